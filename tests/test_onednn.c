/* test_onednn.c — the oneDNN backend against the ref backend (the oracle): every op
 * forward and backward by normalized error on fresh random inputs (dense, grouped,
 * depthwise and dilated convs, strides 1/2, odd sizes, batch 1 and 3), backward
 * accumulation (+=), then whole-model eval logits and one SGD training step for each
 * architecture at small sizes, and the bf16 option. Skips cleanly when the build
 * has no oneDNN. */
#include "testutil.h"

#include "nc_config.h"
#include "core/context.h"
#include "backend/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_OP 1e-5    /* normalized error, one op in f32 */
#define TOL_MODEL 1e-3 /* normalized error, whole networks (summation orders differ) */

/* Two contexts on the same thread count: ref and onednn. */
typedef struct pair {
    nc_context *ref, *dn;
} pair;

static int pair_setup(void **state) {
#if !HAVE_ONEDNN
    (void)state;
    return 0;
#else
    pair *p = calloc(1, sizeof *p);
    if (!p) return -1;
    nc_context_options o;
    nc_context_options_init(&o);
    o.num_threads = 2;
    o.backend = NC_BACKEND_REF;
    if (nc_context_create(&o, &p->ref) != NC_OK) return -1;
    o.backend = NC_BACKEND_ONEDNN;
    if (nc_context_create(&o, &p->dn) != NC_OK) return -1;
    *state = p;
    return 0;
#endif
}

static int pair_teardown(void **state) {
    pair *p = *state;
    if (p) {
        nc_context_destroy(p->ref);
        nc_context_destroy(p->dn);
        free(p);
    }
    return 0;
}

static void check_below(const char *what, const char *cfg, double err, double tol) {
    if (!(err < tol)) {
        print_error("%s [%s]: normalized error %.3g >= %.3g\n", what, cfg, err, tol);
        fail();
    }
}

static float *copy_of(const float *x, size_t n) {
    float *p = tu_zeros(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* The oneDNN backend keeps activations in its own (blocked) layout: values go in
 * and out through value_upload / value_download, as the executor does. */
static nc__shape shape4(int64_t n, int64_t c, int64_t h, int64_t w) {
    nc__shape s = {4, {n, c, h, w}};
    return s;
}

static float *act_in(pair *p, const float *host, nc__shape s) {
    const size_t floats = nc__value_floats(p->dn, &s);
    float *buf = tu_zeros(floats);
    assert_int_equal(nc__value_upload(p->dn, buf, host, &s), NC_OK);
    return buf;
}

static float *act_out(pair *p, const float *buf, nc__shape s) {
    float *host = tu_zeros((size_t)nc__shape_numel(&s));
    assert_int_equal(nc__value_download(p->dn, host, buf, &s), NC_OK);
    return host;
}

/* A buffer of NaN in the layout: a gradient written first (overwrite) must replace
 * every float, padding included. */
static float *act_nan(pair *p, nc__shape s) {
    const size_t floats = nc__value_floats(p->dn, &s);
    float *buf = tu_zeros(floats);
    for (size_t i = 0; i < floats; i++) buf[i] = NAN;
    return buf;
}

static void check_all_finite(const char *what, const char *cfg, const float *buf, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(buf[i])) {
            print_error("%s [%s]: float %zu of %zu is %g: not overwritten\n", what, cfg, i, n, (double)buf[i]);
            fail();
        }
}

/* Compares a oneDNN activation buffer against a host NCHW reference. */
static void check_act(pair *p, const char *what, const char *cfg, const float *buf, nc__shape s, const float *ref,
                      double tol) {
    float *host = act_out(p, buf, s);
    check_below(what, cfg, tu_norm_err(host, ref, (size_t)nc__shape_numel(&s)), tol);
    free(host);
}

static void release(nc_context *ctx, void **cache) {
    if (*cache && ctx->backend->release_cache) ctx->backend->release_cache(ctx->backend_state, *cache);
    *cache = NULL;
}

/* ------------------------------------------------------------- convolution */

typedef struct conv_case {
    int64_t n, c, h, w, k, r, s, g, sh, sw, ph, pw, dh, dw;
    int bias;
} conv_case;

static void run_conv_case(pair *p, const conv_case *cc, uint64_t seed) {
    char cfg[160];
    snprintf(cfg, sizeof cfg, "n%lld c%lld %lldx%lld k%lld %lldx%lld g%lld s%lld,%lld p%lld,%lld d%lld,%lld b%d",
             (long long)cc->n, (long long)cc->c, (long long)cc->h, (long long)cc->w, (long long)cc->k,
             (long long)cc->r, (long long)cc->s, (long long)cc->g, (long long)cc->sh, (long long)cc->sw,
             (long long)cc->ph, (long long)cc->pw, (long long)cc->dh, (long long)cc->dw, cc->bias);
    void *cache_ref = NULL, *cache_dn = NULL;
    nc__conv_desc d = {cc->n, cc->c, cc->h, cc->w, cc->k, cc->r, cc->s, cc->g, cc->sh, cc->sw, cc->ph, cc->pw,
                       cc->dh, cc->dw, 0, 0, NULL, 0, 0};
    d.oh = (cc->h + 2 * cc->ph - cc->dh * (cc->r - 1) - 1) / cc->sh + 1;
    d.ow = (cc->w + 2 * cc->pw - cc->dw * (cc->s - 1) - 1) / cc->sw + 1;
    const nc__shape xs = shape4(d.n, d.c, d.h, d.w), ys = shape4(d.n, d.k, d.oh, d.ow);
    const size_t nx = (size_t)(d.n * d.c * d.h * d.w), ny = (size_t)(d.n * d.k * d.oh * d.ow);
    const size_t nw = (size_t)(d.k * (d.c / d.groups) * d.r * d.s), nb = (size_t)d.k;
    float *x = tu_rand(nx, -1, 1, seed), *w = tu_rand(nw, -1, 1, seed + 1), *b = tu_rand(nb, -1, 1, seed + 2);
    float *dy = tu_rand(ny, -1, 1, seed + 3);
    float *y_ref = tu_zeros(ny), *y_dn = act_in(p, y_ref, ys), *x_dn = act_in(p, x, xs), *dy_dn = act_in(p, dy, ys);
    /* gradients start non-zero: backward must accumulate */
    float *dx_ref = tu_rand(nx, -1, 1, seed + 4), *dw_ref = tu_rand(nw, -1, 1, seed + 5);
    float *db_ref = tu_rand(nb, -1, 1, seed + 6);
    float *dx_dn = act_in(p, dx_ref, xs), *dw_dn = copy_of(dw_ref, nw), *db_dn = copy_of(db_ref, nb);
    const float *bias = cc->bias ? b : NULL;

    for (int rep = 0; rep < 2; rep++) { /* the second run reuses the cached primitives */
        d.cache = &cache_ref;
        assert_int_equal(p->ref->backend->conv2d_forward(p->ref->backend_state, &d, y_ref, x, w, bias), NC_OK);
        d.cache = &cache_dn;
        assert_int_equal(p->dn->backend->conv2d_forward(p->dn->backend_state, &d, y_dn, x_dn, w, bias), NC_OK);
        check_act(p, "conv forward", cfg, y_dn, ys, y_ref, TOL_OP);
    }
    d.cache = &cache_ref;
    assert_int_equal(p->ref->backend->conv2d_backward(p->ref->backend_state, &d, dx_ref, dw_ref,
                                                      cc->bias ? db_ref : NULL, dy, x, w), NC_OK);
    d.cache = &cache_dn;
    assert_int_equal(p->dn->backend->conv2d_backward(p->dn->backend_state, &d, dx_dn, dw_dn,
                                                     cc->bias ? db_dn : NULL, dy_dn, x_dn, w), NC_OK);
    check_act(p, "conv backward dx", cfg, dx_dn, xs, dx_ref, TOL_OP);
    check_below("conv backward dw", cfg, tu_norm_err(dw_dn, dw_ref, nw), TOL_OP);
    if (cc->bias) check_below("conv backward db", cfg, tu_norm_err(db_dn, db_ref, nb), TOL_OP);
    /* dx written first (overwrite): every float replaced, equal to a fresh gradient */
    d.overwrite = 1;
    float *dx_ow = act_nan(p, xs);
    for (size_t i = 0; i < nx; i++) dx_ref[i] = NAN;
    d.cache = &cache_ref;
    assert_int_equal(p->ref->backend->conv2d_backward(p->ref->backend_state, &d, dx_ref, dw_ref, NULL, dy, x, w), NC_OK);
    d.cache = &cache_dn;
    assert_int_equal(p->dn->backend->conv2d_backward(p->dn->backend_state, &d, dx_ow, dw_dn, NULL, dy_dn, x_dn, w),
                     NC_OK);
    check_all_finite("conv backward dx (overwrite)", cfg, dx_ow, nc__value_floats(p->dn, &xs));
    check_act(p, "conv backward dx (overwrite)", cfg, dx_ow, xs, dx_ref, TOL_OP);
    d.overwrite = 0;
    /* dx NULL (first layer): weights only */
    assert_int_equal(p->dn->backend->conv2d_backward(p->dn->backend_state, &d, NULL, dw_dn, NULL, dy_dn, x_dn, w),
                     NC_OK);
    release(p->ref, &cache_ref);
    release(p->dn, &cache_dn);
    free(x), free(w), free(b), free(dy), free(y_ref), free(y_dn), free(x_dn), free(dy_dn), free(dx_ow);
    free(dx_ref), free(dw_ref), free(db_ref), free(dx_dn), free(dw_dn), free(db_dn);
}

static void test_conv_matches_ref(void **state) {
    SKIP_WITHOUT_ONEDNN();
    static const conv_case cases[] = {
        /* n  c   h   w   k   r  s  g  sh sw ph pw dh dw bias */
        {1, 3, 16, 16, 8, 7, 7, 1, 2, 2, 3, 3, 1, 1, 0},   /* stem-like 7x7 s2, batch 1 */
        {3, 8, 7, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},    /* odd sizes, bias */
        {3, 16, 8, 8, 32, 1, 1, 1, 2, 2, 0, 0, 1, 1, 0},   /* 1x1 s2 downsample (even size) */
        {2, 16, 9, 7, 16, 3, 3, 4, 2, 2, 1, 1, 1, 1, 0},   /* grouped s2, odd */
        {2, 12, 7, 7, 12, 3, 3, 12, 1, 1, 1, 1, 1, 1, 1},  /* depthwise */
        {1, 32, 6, 6, 64, 3, 3, 32, 2, 2, 1, 1, 1, 1, 0},  /* resnext-like 32 groups */
        {2, 4, 11, 10, 6, 3, 3, 2, 1, 1, 2, 2, 2, 2, 0},   /* dilated, grouped */
        {3, 5, 5, 8, 7, 1, 3, 1, 1, 2, 0, 1, 1, 1, 1},     /* rectangular kernel and stride */
        {1, 1, 9, 9, 3, 3, 3, 1, 1, 1, 0, 0, 1, 1, 0},     /* one input channel, no padding */
        {2, 8, 4, 4, 8, 3, 3, 1, 2, 2, 1, 1, 1, 1, 0},     /* 3x3 s2 on an even size: the last pad unused */
        {2, 8, 8, 6, 16, 3, 3, 4, 2, 2, 1, 1, 1, 1, 1},    /* the same, grouped */
        {4, 256, 4, 4, 64, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0},  /* bottleneck 1x1 reduce */
        {4, 64, 4, 4, 256, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0},  /* bottleneck 1x1 expand */
        {4, 256, 8, 8, 512, 1, 1, 1, 2, 2, 0, 0, 1, 1, 0}, /* downsample 1x1 s2, wide */
        {4, 128, 8, 8, 128, 3, 3, 1, 2, 2, 1, 1, 1, 1, 0}, /* bottleneck 3x3 s2, wide */
        {4, 1024, 4, 4, 256, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0}, /* resnet50 layer3 1x1 at 64x64 */
        {4, 2048, 2, 2, 512, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0}, /* resnet50 layer4 1x1 at 64x64 */
        {2, 128, 9, 9, 128, 3, 3, 32, 1, 1, 1, 1, 1, 1, 0}, /* resnext stage 1: 4 per group (grouped.c) */
        {2, 128, 9, 9, 128, 3, 3, 32, 2, 2, 1, 1, 1, 1, 0}, /* the same, stride 2 */
        {2, 64, 7, 7, 64, 3, 3, 32, 1, 1, 1, 1, 1, 1, 1}, /* 2 per group, bias (grouped.c) */
        {2, 1024, 8, 8, 1024, 3, 3, 32, 2, 2, 1, 1, 1, 1, 0}, /* resnext50 layer4.0.conv2 at 32x32 */
        {2, 256, 7, 7, 256, 3, 3, 32, 1, 1, 1, 1, 1, 1, 0}, /* 8 per group (resnext101 32x8d stage 1) */
        {2, 512, 8, 8, 512, 3, 3, 32, 2, 2, 1, 1, 1, 1, 0}, /* 16 per group, stride 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_conv_case(*state, &cases[i], 100 + 10 * i);
}

/* y = [relu](bn(conv(x)) + res) by the ref backend's ops one by one; t scratch of y's size. */
static void fused_by_ref(pair *p, nc__conv_desc *d, void **cr, void **cbr, float *y, float *t, const float *x,
                         const float *w, const float *b, const nc__bn_params *bn, const float *res, int relu) {
    const nc__backend *rb = p->ref->backend;
    void *rs = p->ref->backend_state;
    const size_t ny = (size_t)(d->n * d->k * d->oh * d->ow);
    void **saved = d->cache;
    d->cache = cr;
    assert_int_equal(rb->conv2d_forward(rs, d, t, x, w, b), NC_OK);
    d->cache = saved;
    if (bn) {
        nc__bn_desc bd = {d->n, d->k, d->oh * d->ow, bn->eps, 0.1f, cbr, 4, 0};
        assert_int_equal(rb->batchnorm_forward_infer(rs, &bd, y, t, bn->gamma, bn->beta, bn->mean, bn->var), NC_OK);
    } else {
        memcpy(y, t, ny * sizeof(float));
    }
    if (res) assert_int_equal(rb->add_forward(rs, ny, y, y, res), NC_OK);
    if (relu) assert_int_equal(rb->relu_forward(rs, ny, y, y), NC_OK);
}

/* Fused inference convolution (batch norm folded, residual sum, ReLU) against the
 * ref ops one by one. */
static void run_fused_case(pair *p, const conv_case *cc, int with_bn, int with_res, int relu, uint64_t seed) {
    char cfg[200];
    snprintf(cfg, sizeof cfg, "n%lld c%lld %lldx%lld k%lld %lldx%lld g%lld s%lld b%d bn%d res%d relu%d",
             (long long)cc->n, (long long)cc->c, (long long)cc->h, (long long)cc->w, (long long)cc->k,
             (long long)cc->r, (long long)cc->s, (long long)cc->g, (long long)cc->sh, cc->bias, with_bn, with_res,
             relu);
    void *cr = NULL, *cbr = NULL, *cd = NULL;
    nc__conv_desc d = {cc->n, cc->c, cc->h, cc->w, cc->k, cc->r, cc->s, cc->g, cc->sh, cc->sw, cc->ph, cc->pw,
                       cc->dh, cc->dw, 0, 0, NULL, 0, 7};
    d.oh = (cc->h + 2 * cc->ph - cc->dh * (cc->r - 1) - 1) / cc->sh + 1;
    d.ow = (cc->w + 2 * cc->pw - cc->dw * (cc->s - 1) - 1) / cc->sw + 1;
    const nc__shape xs = shape4(d.n, d.c, d.h, d.w), ys = shape4(d.n, d.k, d.oh, d.ow);
    const size_t nx = (size_t)nc__shape_numel(&xs), ny = (size_t)nc__shape_numel(&ys), K = (size_t)d.k;
    const size_t nw = K * (size_t)(d.c / d.groups * d.r * d.s);
    float *x = tu_rand(nx, -1, 1, seed), *w = tu_rand(nw, -1, 1, seed + 1), *b = tu_rand(K, -1, 1, seed + 2);
    float *res = tu_rand(ny, -1, 1, seed + 3), *gamma = tu_rand(K, 0.5f, 1.5f, seed + 4);
    float *beta = tu_rand(K, -1, 1, seed + 5), *mean = tu_rand(K, -1, 1, seed + 6), *var = tu_rand(K, 0.2f, 2, seed + 7);
    float *y_ref = tu_zeros(ny), *t = tu_zeros(ny);
    float *x_dn = act_in(p, x, xs), *res_dn = act_in(p, res, ys), *y_dn = act_nan(p, ys);
    const nc__bn_params bn = {gamma, beta, mean, var, 1e-5f};
    fused_by_ref(p, &d, &cr, &cbr, y_ref, t, x, w, cc->bias ? b : NULL, with_bn ? &bn : NULL, with_res ? res : NULL,
                 relu);
    d.cache = &cd;
    for (int rep = 0; rep < 3; rep++) { /* cached folded weights; then new parameters (version) */
        if (rep == 2) { /* changed gamma and weights under a new version: refolded */
            for (size_t k = 0; k < K; k++) gamma[k] *= 0.5f;
            for (size_t i = 0; i < nw; i++) w[i] = -w[i];
            d.wversion++;
            fused_by_ref(p, &d, &cr, &cbr, y_ref, t, x, w, cc->bias ? b : NULL, with_bn ? &bn : NULL,
                         with_res ? res : NULL, relu);
            d.cache = &cd;
        }
        nc_status st = p->dn->backend->conv2d_fused_infer(p->dn->backend_state, &d, with_bn ? &bn : NULL, y_dn, x_dn,
                                                          w, cc->bias ? b : NULL, with_res ? res_dn : NULL, relu);
        if (st != NC_OK) print_error("%s\n", nc_context_last_error(p->dn));
        assert_int_equal(st, NC_OK);
        check_act(p, "fused conv inference", cfg, y_dn, ys, y_ref, TOL_OP);
    }
    release(p->ref, &cr);
    release(p->ref, &cbr);
    release(p->dn, &cd);
    free(x), free(w), free(b), free(res), free(gamma), free(beta), free(mean), free(var), free(y_ref), free(t);
    free(x_dn), free(res_dn), free(y_dn);
}

static void test_fused_conv_matches_ref(void **state) {
    SKIP_WITHOUT_ONEDNN();
    static const conv_case cases[] = {
        /* n  c   h   w   k   r  s  g  sh sw ph pw dh dw bias */
        {1, 3, 16, 16, 16, 7, 7, 1, 2, 2, 3, 3, 1, 1, 0},  /* stem */
        {2, 16, 9, 7, 16, 3, 3, 4, 2, 2, 1, 1, 1, 1, 0},  /* grouped s2, odd */
        {1, 32, 6, 6, 64, 3, 3, 32, 1, 1, 1, 1, 1, 1, 0}, /* 32 groups, batch 1 */
        {2, 64, 5, 5, 256, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1}, /* 1x1 expand with bias */
        {2, 12, 5, 5, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* channels padded to the block */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int combo = 1; combo < 8; combo++) /* bn, residual, relu: every non-empty mix */
            run_fused_case(*state, &cases[i], combo & 1, (combo >> 1) & 1, (combo >> 2) & 1, 600 + 10 * i);
}

/* --------------------------------------------------------------- batchnorm */

static void run_bn_case(pair *p, int64_t n, int64_t c, int64_t hw, int relu, uint64_t seed) {
    char cfg[64];
    snprintf(cfg, sizeof cfg, "n%lld c%lld hw%lld%s", (long long)n, (long long)c, (long long)hw,
             relu ? " +relu" : "");
    void *cr = NULL, *cd = NULL;
    /* hw 1 is BatchNorm1d on a 2-D value (plain), else BatchNorm2d on (N, C, HW, 1) */
    const int rank = hw == 1 ? 2 : 4;
    nc__bn_desc d = {n, c, hw, 1e-5f, 0.1f, NULL, rank, 0};
    const nc__shape xs = rank == 2 ? (nc__shape){2, {n, c}} : shape4(n, c, hw, 1);
    const size_t nx = (size_t)(n * c * hw), C = (size_t)c;
    float *x = tu_rand(nx, -2, 3, seed), *dy = tu_rand(nx, -1, 1, seed + 1);
    float *gamma = tu_rand(C, 0.5f, 1.5f, seed + 2), *beta = tu_rand(C, -1, 1, seed + 3);
    float *rm_ref = tu_rand(C, -1, 1, seed + 4), *rv_ref = tu_rand(C, 0.5f, 2, seed + 5);
    float *rm_dn = copy_of(rm_ref, C), *rv_dn = copy_of(rv_ref, C);
    float *y_ref = tu_zeros(nx), *y_dn = act_in(p, y_ref, xs), *x_dn = act_in(p, x, xs), *dy_dn = act_in(p, dy, xs);
    float *sm_ref = tu_zeros(C), *si_ref = tu_zeros(C), *sm_dn = tu_zeros(C), *si_dn = tu_zeros(C);
    const nc__backend *rb = p->ref->backend, *db = p->dn->backend;
    void *rs = p->ref->backend_state, *ds = p->dn->backend_state;

    d.cache = &cr;
    assert_int_equal(rb->batchnorm_forward_train(rs, &d, y_ref, sm_ref, si_ref, rm_ref, rv_ref, x, gamma, beta), NC_OK);
    if (relu) assert_int_equal(rb->relu_forward(rs, nx, y_ref, y_ref), NC_OK);
    d.cache = &cd;
    nc_status st = (relu ? db->batchnorm_relu_forward_train : db->batchnorm_forward_train)(
        ds, &d, y_dn, sm_dn, si_dn, rm_dn, rv_dn, x_dn, gamma, beta);
    if (st != NC_OK) print_error("%s\n", nc_context_last_error(p->dn));
    assert_int_equal(st, NC_OK);
    check_act(p, "bn train y", cfg, y_dn, xs, y_ref, TOL_OP);
    check_below("bn save_mean", cfg, tu_norm_err(sm_dn, sm_ref, C), TOL_OP);
    check_below("bn save_invstd", cfg, tu_norm_err(si_dn, si_ref, C), TOL_OP);
    check_below("bn running_mean", cfg, tu_norm_err(rm_dn, rm_ref, C), TOL_OP);
    check_below("bn running_var (unbiased)", cfg, tu_norm_err(rv_dn, rv_ref, C), TOL_OP);

    float *dx_ref = tu_rand(nx, -1, 1, seed + 6), *dg_ref = tu_rand(C, -1, 1, seed + 7);
    float *db_ref = tu_rand(C, -1, 1, seed + 8);
    float *dx_dn = act_in(p, dx_ref, xs), *dg_dn = copy_of(dg_ref, C), *db_dn = copy_of(db_ref, C);
    float *dz = tu_zeros(nx); /* ref: the ReLU's backward into the BN output's gradient */
    if (relu) assert_int_equal(rb->relu_backward(rs, nx, dz, dy, y_ref), NC_OK);
    /* accumulating onto dx, then dx written first (overwrite) into NaN */
    float *dx_ow = act_nan(p, xs);
    for (int overwrite = 0; overwrite <= 1; overwrite++) {
        float *dx = overwrite ? dx_ow : dx_dn;
        if (overwrite)
            for (size_t i = 0; i < nx; i++) dx_ref[i] = NAN;
        d.overwrite = overwrite;
        d.cache = &cr;
        assert_int_equal(rb->batchnorm_backward(rs, &d, dx_ref, dg_ref, db_ref, relu ? dz : dy, x, gamma, sm_ref,
                                                si_ref), NC_OK);
        d.cache = &cd;
        st = relu ? db->batchnorm_relu_backward(ds, &d, dx, dg_dn, db_dn, dy_dn, y_dn, x_dn, gamma, sm_dn, si_dn)
                  : db->batchnorm_backward(ds, &d, dx, dg_dn, db_dn, dy_dn, x_dn, gamma, sm_dn, si_dn);
        if (st != NC_OK) print_error("%s\n", nc_context_last_error(p->dn));
        assert_int_equal(st, NC_OK);
        if (overwrite) check_all_finite("bn backward dx (overwrite)", cfg, dx, nc__value_floats(p->dn, &xs));
        check_act(p, overwrite ? "bn backward dx (overwrite)" : "bn backward dx", cfg, dx, xs, dx_ref, 1e-4);
        check_below("bn backward dgamma", cfg, tu_norm_err(dg_dn, dg_ref, C), 1e-4);
        check_below("bn backward dbeta", cfg, tu_norm_err(db_dn, db_ref, C), TOL_OP);
    }
    d.overwrite = 0;

    if (!relu) {
        d.cache = &cr;
        assert_int_equal(rb->batchnorm_forward_infer(rs, &d, y_ref, x, gamma, beta, rm_ref, rv_ref), NC_OK);
        d.cache = &cd;
        assert_int_equal(db->batchnorm_forward_infer(ds, &d, y_dn, x_dn, gamma, beta, rm_ref, rv_ref), NC_OK);
        check_act(p, "bn infer y", cfg, y_dn, xs, y_ref, TOL_OP);
    }
    release(p->ref, &cr);
    release(p->dn, &cd);
    free(x), free(dy), free(gamma), free(beta), free(rm_ref), free(rv_ref), free(rm_dn), free(rv_dn);
    free(y_ref), free(y_dn), free(x_dn), free(dy_dn), free(sm_ref), free(si_ref), free(sm_dn), free(si_dn);
    free(dx_ref), free(dg_ref), free(db_ref), free(dx_dn), free(dg_dn), free(db_dn), free(dz), free(dx_ow);
}

static void test_batchnorm_matches_ref(void **state) {
    SKIP_WITHOUT_ONEDNN();
    for (int relu = 0; relu <= 1; relu++) { /* plain, then fused with ReLU (training) */
        run_bn_case(*state, 3, 8, 35, relu, 200);  /* odd spatial (5x7) */
        run_bn_case(*state, 1, 16, 9, relu, 210);  /* batch 1 */
        run_bn_case(*state, 6, 32, 1, relu, 220);  /* BatchNorm1d */
        run_bn_case(*state, 2, 64, 4, relu, 230);  /* 8 values per channel, as ResNet's last stage at 64x64 */
        run_bn_case(*state, 4, 512, 4, relu, 240); /* wide */
        run_bn_case(*state, 2, 12, 25, relu, 250); /* channels not a multiple of the block: padded */
        run_bn_case(*state, 2, 4, 9, relu, 260);   /* fewer channels than a block: plain */
    }
}

/* ----------------------------------------------------------------- pooling */

static void run_pool_case(pair *p, nc__pool_mode mode, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                          int64_t ow, int64_t k, int64_t s, int64_t pad, uint64_t seed) {
    char cfg[96];
    snprintf(cfg, sizeof cfg, "mode%d n%lld c%lld %lldx%lld -> %lldx%lld k%lld s%lld p%lld", (int)mode,
             (long long)n, (long long)c, (long long)h, (long long)w, (long long)oh, (long long)ow, (long long)k,
             (long long)s, (long long)pad);
    void *cr = NULL, *cd = NULL;
    nc__pool_desc d = {mode, n, c, h, w, oh, ow, k, k, s, s, pad, pad, NULL, 0};
    if (mode != NC__POOL_ADAPTIVE_AVG) {
        d.oh = (h + 2 * pad - k) / s + 1;
        d.ow = (w + 2 * pad - k) / s + 1;
    }
    const nc__shape xs = shape4(n, c, h, w), ys = shape4(n, c, d.oh, d.ow);
    const size_t nx = (size_t)(n * c * h * w), ny = (size_t)(n * c * d.oh * d.ow);
    float *x = tu_rand(nx, -1, 1, seed), *dy = tu_rand(ny, -1, 1, seed + 1);
    float *y_ref = tu_zeros(ny), *y_dn = act_in(p, y_ref, ys), *x_dn = act_in(p, x, xs), *dy_dn = act_in(p, dy, ys);
    float *dx_ref = tu_rand(nx, -1, 1, seed + 2), *dx_dn = act_in(p, dx_ref, xs);
    d.cache = &cr;
    assert_int_equal(p->ref->backend->pool2d_forward(p->ref->backend_state, &d, y_ref, x), NC_OK);
    d.cache = &cd;
    assert_int_equal(p->dn->backend->pool2d_forward(p->dn->backend_state, &d, y_dn, x_dn), NC_OK);
    check_act(p, "pool forward", cfg, y_dn, ys, y_ref, TOL_OP);
    const int is_max = mode == NC__POOL_MAX;
    for (int overwrite = 0; overwrite <= 1; overwrite++) {
        float *dx_ow = overwrite ? act_nan(p, xs) : dx_dn;
        if (overwrite)
            for (size_t i = 0; i < nx; i++) dx_ref[i] = NAN;
        d.overwrite = overwrite;
        d.cache = &cr;
        assert_int_equal(p->ref->backend->pool2d_backward(p->ref->backend_state, &d, dx_ref, dy, is_max ? x : NULL,
                                                          is_max ? y_ref : NULL), NC_OK);
        d.cache = &cd;
        assert_int_equal(p->dn->backend->pool2d_backward(p->dn->backend_state, &d, dx_ow, dy_dn,
                                                         is_max ? x_dn : NULL, is_max ? y_dn : NULL), NC_OK);
        if (overwrite) check_all_finite("pool backward (overwrite)", cfg, dx_ow, nc__value_floats(p->dn, &xs));
        check_act(p, overwrite ? "pool backward (overwrite)" : "pool backward", cfg, dx_ow, xs, dx_ref, TOL_OP);
        if (overwrite) free(dx_ow);
    }
    release(p->ref, &cr);
    release(p->dn, &cd);
    free(x), free(dy), free(y_ref), free(y_dn), free(x_dn), free(dy_dn), free(dx_ref), free(dx_dn);
}

static void test_pool_matches_ref(void **state) {
    SKIP_WITHOUT_ONEDNN();
    run_pool_case(*state, NC__POOL_MAX, 2, 4, 16, 16, 0, 0, 3, 2, 1, 300); /* the ResNet stem pool */
    run_pool_case(*state, NC__POOL_MAX, 1, 3, 7, 9, 0, 0, 2, 2, 0, 310);   /* odd: last row/col dropped */
    run_pool_case(*state, NC__POOL_MAX, 3, 2, 9, 9, 0, 0, 3, 2, 1, 320);
    run_pool_case(*state, NC__POOL_AVG, 2, 3, 9, 7, 0, 0, 3, 2, 1, 330);   /* padding counted */
    run_pool_case(*state, NC__POOL_AVG, 1, 4, 8, 8, 0, 0, 2, 2, 0, 340);
    run_pool_case(*state, NC__POOL_ADAPTIVE_AVG, 3, 8, 7, 7, 1, 1, 0, 0, 0, 350); /* global */
    run_pool_case(*state, NC__POOL_ADAPTIVE_AVG, 2, 3, 8, 12, 2, 3, 0, 0, 0, 360); /* uniform bins */
    run_pool_case(*state, NC__POOL_ADAPTIVE_AVG, 2, 3, 7, 10, 3, 4, 0, 0, 0, 370); /* uneven: ref kernel */
    /* blocked layouts (>= 16 channels, one not a multiple of the block) */
    run_pool_case(*state, NC__POOL_MAX, 2, 16, 16, 16, 0, 0, 3, 2, 1, 380);
    run_pool_case(*state, NC__POOL_MAX, 1, 20, 9, 9, 0, 0, 3, 2, 1, 390);
    run_pool_case(*state, NC__POOL_AVG, 2, 24, 9, 7, 0, 0, 3, 2, 1, 395);
    run_pool_case(*state, NC__POOL_ADAPTIVE_AVG, 2, 32, 7, 7, 1, 1, 0, 0, 0, 396);
    run_pool_case(*state, NC__POOL_ADAPTIVE_AVG, 2, 16, 7, 10, 3, 4, 0, 0, 0, 397); /* uneven, blocked */
}

/* ------------------------------------------------------------------ linear */

static void run_linear_case(pair *p, int64_t n, int64_t in, int64_t out, int bias, uint64_t seed) {
    char cfg[64];
    snprintf(cfg, sizeof cfg, "n%lld in%lld out%lld b%d", (long long)n, (long long)in, (long long)out, bias);
    void *cr = NULL, *cd = NULL;
    nc__linear_desc d = {n, in, out, NULL, 0};
    const size_t nx = (size_t)(n * in), ny = (size_t)(n * out), nw = (size_t)(in * out), nb = (size_t)out;
    float *x = tu_rand(nx, -1, 1, seed), *w = tu_rand(nw, -1, 1, seed + 1), *b = tu_rand(nb, -1, 1, seed + 2);
    float *dy = tu_rand(ny, -1, 1, seed + 3), *y_ref = tu_zeros(ny), *y_dn = tu_zeros(ny);
    float *dx_ref = tu_rand(nx, -1, 1, seed + 4), *dw_ref = tu_rand(nw, -1, 1, seed + 5);
    float *db_ref = tu_rand(nb, -1, 1, seed + 6);
    float *dx_dn = copy_of(dx_ref, nx), *dw_dn = copy_of(dw_ref, nw), *db_dn = copy_of(db_ref, nb);
    d.cache = &cr;
    assert_int_equal(p->ref->backend->linear_forward(p->ref->backend_state, &d, y_ref, x, w, bias ? b : NULL),
                     NC_OK);
    d.cache = &cd;
    assert_int_equal(p->dn->backend->linear_forward(p->dn->backend_state, &d, y_dn, x, w, bias ? b : NULL), NC_OK);
    check_below("linear forward", cfg, tu_norm_err(y_dn, y_ref, ny), TOL_OP);
    d.cache = &cr;
    assert_int_equal(p->ref->backend->linear_backward(p->ref->backend_state, &d, dx_ref, dw_ref,
                                                      bias ? db_ref : NULL, dy, x, w), NC_OK);
    d.cache = &cd;
    assert_int_equal(p->dn->backend->linear_backward(p->dn->backend_state, &d, dx_dn, dw_dn, bias ? db_dn : NULL,
                                                     dy, x, w), NC_OK);
    check_below("linear backward dx", cfg, tu_norm_err(dx_dn, dx_ref, nx), TOL_OP);
    check_below("linear backward dw", cfg, tu_norm_err(dw_dn, dw_ref, nw), TOL_OP);
    if (bias) check_below("linear backward db", cfg, tu_norm_err(db_dn, db_ref, nb), TOL_OP);
    release(p->ref, &cr);
    release(p->dn, &cd);
    free(x), free(w), free(b), free(dy), free(y_ref), free(y_dn);
    free(dx_ref), free(dw_ref), free(db_ref), free(dx_dn), free(dw_dn), free(db_dn);
}

static void test_linear_matches_ref(void **state) {
    SKIP_WITHOUT_ONEDNN();
    run_linear_case(*state, 1, 37, 10, 1, 400);
    run_linear_case(*state, 3, 64, 17, 0, 410);
    run_linear_case(*state, 5, 512, 1000, 1, 420);
}

/* A cache slot reused for other sizes is rebuilt (a plan per input shape). */
static void test_conv_cache_rebuilds_for_new_shape(void **state) {
    SKIP_WITHOUT_ONEDNN();
    pair *p = *state;
    void *cr = NULL, *cd = NULL;
    float *x = tu_rand(2 * 4 * 9 * 9, -1, 1, 500), *w = tu_rand(8 * 4 * 9, -1, 1, 501);
    float *yr = tu_zeros(2 * 8 * 81);
    for (int64_t hw = 5; hw <= 9; hw += 4) {
        nc__conv_desc d = {2, 4, hw, hw, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, hw, hw, &cr, 0, 0};
        const nc__shape xs = shape4(2, 4, hw, hw), ys = shape4(2, 8, hw, hw);
        float *xd = act_in(p, x, xs), *yd = act_in(p, yr, ys);
        assert_int_equal(p->ref->backend->conv2d_forward(p->ref->backend_state, &d, yr, x, w, NULL), NC_OK);
        d.cache = &cd;
        assert_int_equal(p->dn->backend->conv2d_forward(p->dn->backend_state, &d, yd, xd, w, NULL), NC_OK);
        check_act(p, "conv after a shape change", "5x5 then 9x9", yd, ys, yr, TOL_OP);
        free(xd), free(yd);
    }
    release(p->ref, &cr);
    release(p->dn, &cd);
    free(x), free(w), free(yr);
}

/* ------------------------------------------------------------ whole models */

typedef struct model_case {
    const char *label, *arch;
    int n, c, h, w, classes, heads, small_input;
    int resnext_small; /* "resnext": blocks {1,1,1,1}, cardinality 4 */
    double step_tol;   /* bound on the one-step tensor change error; 0 = 1e-2 */
} model_case;

static nc_model *make_model(nc_context *ctx, const model_case *mc) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = mc->arch;
    mo.num_classes = mc->classes;
    mo.in_channels = mc->c;
    mo.num_heads = mc->heads;
    mo.small_input = mc->small_input;
    mo.seed = 7;
    if (mc->resnext_small) {
        for (int i = 0; i < 4; i++) mo.blocks[i] = 1;
        mo.cardinality = 4;
        mo.base_width = 4;
    }
    if (!strcmp(mc->arch, "simple_cnn")) mo.width = 8;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    return m;
}

/* All tensors of a model, concatenated in index order. */
static float *all_tensors(nc_model *m, size_t *total) {
    size_t n = 0;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        n += (size_t)ti.numel;
    }
    float *all = tu_zeros(n), *at = all;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        assert_int_equal(nc_model_get_tensor(m, ti.name, at, ti.numel), NC_OK);
        at += ti.numel;
    }
    *total = n;
    return all;
}

/* The worst normalized error, tensor by tensor, of the change one step made. */
static double worst_delta_err(nc_model *mr, nc_model *md, const float *before, const float *after_r,
                              const float *after_d, const char **worst_name) {
    double worst = 0, global = 0;
    size_t off = 0, total = 0;
    for (int i = 0; i < nc_model_num_tensors(mr); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(mr, i, &ti), NC_OK);
        total += (size_t)ti.numel;
    }
    for (size_t j = 0; j < total; j++)
        if (fabs((double)after_r[j] - before[j]) > global) global = fabs((double)after_r[j] - before[j]);
    for (int i = 0; i < nc_model_num_tensors(mr); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(mr, i, &ti), NC_OK);
        const size_t k = (size_t)ti.numel;
        float *dr = tu_zeros(k), *dd = tu_zeros(k);
        for (size_t j = 0; j < k; j++) {
            dr[j] = after_r[off + j] - before[off + j];
            dd[j] = after_d[off + j] - before[off + j];
        }
        /* normalized by the larger of the tensor's change and 1e-3 of the largest
         * change in the model: a gradient that is zero in exact arithmetic (a conv
         * bias before batch norm) is rounding noise on both sides */
        double mdiff = 0, mx = 0;
        for (size_t j = 0; j < k; j++) {
            const double dj = fabs((double)dd[j] - (double)dr[j]);
            if (!(dj <= mdiff)) mdiff = dj;
            if (fabs((double)dr[j]) > mx) mx = fabs((double)dr[j]);
        }
        if (1e-3 * global > mx) mx = 1e-3 * global;
        double e = mdiff / (mx > 1e-30 ? mx : 1e-30);
        if (strstr(ti.name, "num_batches_tracked")) e = 0; /* a counter, compared exactly below */
        if (!(e <= worst)) {
            worst = e;
            *worst_name = ti.name;
        }
        free(dr), free(dd);
        off += k;
    }
    (void)md;
    return worst;
}

static void run_model_case(pair *p, const model_case *mc) {
    nc_model *mr = make_model(p->ref, mc), *md = make_model(p->dn, mc);
    const size_t nx = (size_t)mc->n * (size_t)(mc->c * mc->h * mc->w);
    const size_t nl = (size_t)mc->n * (size_t)nc_model_num_outputs(mr);
    float *x = tu_rand(nx, -2, 2, 600), *lr = tu_zeros(nl), *ld = tu_zeros(nl);

    /* eval logits */
    assert_int_equal(nc_model_forward(mr, x, mc->n, mc->c, mc->h, mc->w, lr), NC_OK);
    assert_int_equal(nc_model_forward(md, x, mc->n, mc->c, mc->h, mc->w, ld), NC_OK);
    check_below("eval logits", mc->label, tu_norm_err(ld, lr, nl), TOL_MODEL);

    /* one SGD step: loss and the change of every tensor */
    size_t nt = 0, nt2 = 0;
    float *before = all_tensors(mr, &nt);
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.lr = 0.05f;
    to.weight_decay = 1e-4f;
    nc_trainer *tr = NULL, *td = NULL;
    assert_int_equal(nc_trainer_create(mr, &to, &tr), NC_OK);
    assert_int_equal(nc_trainer_create(md, &to, &td), NC_OK);
    int32_t *labels = calloc((size_t)(mc->n * mc->heads), sizeof *labels);
    assert_non_null(labels);
    for (int i = 0; i < mc->n * mc->heads; i++) labels[i] = (i * 7 + 3) % mc->classes;
    nc_step_stats sr, sd;
    assert_int_equal(nc_trainer_step(tr, x, labels, mc->n, mc->c, mc->h, mc->w, &sr), NC_OK);
    assert_int_equal(nc_trainer_step(td, x, labels, mc->n, mc->c, mc->h, mc->w, &sd), NC_OK);
    check_below("train loss", mc->label, fabs((double)sd.loss - (double)sr.loss) / fabs((double)sr.loss), TOL_MODEL);
    check_below("grad norm", mc->label, fabs((double)sd.grad_norm - sr.grad_norm) / sr.grad_norm, 1e-2);
    float *after_r = all_tensors(mr, &nt), *after_d = all_tensors(md, &nt2);
    assert_int_equal(nt, nt2);
    const char *worst = "";
    double e = worst_delta_err(mr, md, before, after_r, after_d, &worst);
    const double step_tol = mc->step_tol > 0 ? mc->step_tol : 1e-2;
    if (!(e < step_tol)) print_error("worst tensor change: %s\n", worst);
    check_below("one-step tensor change", mc->label, e, step_tol);
    print_message("%-22s logits %.2g  loss %.2g  grad norm %.2g  step delta %.2g (%s)\n", mc->label,
                  tu_norm_err(ld, lr, nl), fabs((double)sd.loss - (double)sr.loss) / fabs((double)sr.loss),
                  fabs((double)sd.grad_norm - sr.grad_norm) / sr.grad_norm, e, worst);

    nc_trainer_destroy(tr);
    nc_trainer_destroy(td);
    nc_model_destroy(mr);
    nc_model_destroy(md);
    free(x), free(lr), free(ld), free(before), free(after_r), free(after_d), free(labels);
}

static void test_models_match_ref(void **state) {
    SKIP_WITHOUT_ONEDNN();
    static const model_case cases[] = {
        /* label                arch               n  c   h   w cls hd small rx */
        {"resnet18 small", "resnet18", 2, 3, 16, 16, 10, 1, 1, 0, 0},
        {"resnext small", "resnext", 3, 3, 20, 20, 5, 1, 1, 1, 0},
        {"vgg11_bn small", "vgg11_bn", 2, 3, 32, 32, 10, 1, 1, 0, 0},
        {"simple_cnn batch 1", "simple_cnn", 1, 1, 28, 28, 10, 1, 0, 0, 0},
        {"resnet18 4ch 2 heads", "resnet18", 3, 4, 24, 24, 6, 2, 1, 0, 0},
        {"resnet18 stem", "resnet18", 2, 3, 64, 64, 10, 1, 0, 0, 0},
        {"vgg11 (no BN) small", "vgg11", 2, 3, 32, 32, 10, 1, 1, 0, 0}, /* conv+ReLU chains */
        /* The real ResNeXt-50 (4..32 channels per group; our grouped kernels in stage
         * 1). At batch 2 its one-step update is chaotic in the max norm: ref against
         * ref with the input scaled by 1 + 1e-7 changes layer4.1.conv2's update by 6 %
         * (1e-6: 1.5 %, 1e-5: 6 %; measured with a throw-away program), so the update
         * bound is loose; logits, loss and gradient norm stay tight. (ResNeXt-101
         * 32x8d takes 20 s here and is left to the op tests: 8..64 per group.) */
        {"resnext50_32x4d small", "resnext50_32x4d", 2, 3, 64, 64, 10, 1, 1, 0, 0.3},
        /* resnet50 at 64x64 trains on 2x2 maps in its last stage: one step is ill-
         * conditioned there. Measured: ref against ref with the input perturbed by
         * 1e-6 (relative) already changes layer3.0's update by 3.5%, so the bound on
         * the update is loose; logits, loss and gradient norm stay tight. */
        {"resnet50 stem", "resnet50", 2, 3, 64, 64, 10, 1, 0, 0, 0.3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_model_case(*state, &cases[i]);
}

/* ------------------------------------------------------------ bf16 and auto */

static void test_bf16_runtime_checked(void **state) {
    SKIP_WITHOUT_ONEDNN();
    (void)state;
    nc_context_options o;
    nc_context_options_init(&o);
    o.num_threads = 2;
    o.bf16 = 1;
    o.backend = NC_BACKEND_REF;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_UNSUPPORTED); /* ref has no bf16 */
    o.bf16 = 2;
    o.backend = NC_BACKEND_ONEDNN;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
    o.bf16 = 1;
    nc_status st = nc_context_create(&o, &ctx);
    if (st == NC_ERR_UNSUPPORTED) {
        print_message("this CPU has no AVX512_BF16: bf16 compute refused as documented; accuracy check skipped\n");
        return;
    }
    assert_int_equal(st, NC_OK);
    /* bf16 compute vs fp32: resnet18 logits within bf16's ~3 significant digits */
    nc_context_options of;
    nc_context_options_init(&of);
    of.num_threads = 2;
    of.backend = NC_BACKEND_ONEDNN;
    nc_context *cf = NULL;
    assert_int_equal(nc_context_create(&of, &cf), NC_OK);
    const model_case mc = {"resnet18 bf16", "resnet18", 2, 3, 32, 32, 10, 1, 1, 0, 0};
    nc_model *mb = make_model(ctx, &mc), *mf = make_model(cf, &mc);
    const size_t nx = 2 * 3 * 32 * 32, nl = 2 * 10;
    float *x = tu_rand(nx, -2, 2, 700), *lb = tu_zeros(nl), *lf = tu_zeros(nl);
    assert_int_equal(nc_model_forward(mb, x, 2, 3, 32, 32, lb), NC_OK);
    assert_int_equal(nc_model_forward(mf, x, 2, 3, 32, 32, lf), NC_OK);
    const double e = tu_norm_err(lb, lf, nl);
    print_message("bf16 vs fp32 logits: normalized error %.3g\n", e);
    check_below("bf16 logits vs fp32", mc.label, e, 5e-2);
    nc_model_destroy(mb);
    nc_model_destroy(mf);
    nc_context_destroy(ctx);
    nc_context_destroy(cf);
    free(x), free(lb), free(lf);
}

static void test_auto_picks_onednn(void **state) {
    SKIP_WITHOUT_ONEDNN();
    (void)state;
    nc_context_options o;
    nc_context_options_init(&o);
    o.num_threads = 1;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    if (nc_context_backend(ctx) != NC_BACKEND_CUDA) assert_int_equal(nc_context_backend(ctx), NC_BACKEND_ONEDNN);
    nc_context_destroy(ctx);
    o.backend = NC_BACKEND_REF; /* ref stays selectable */
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    assert_int_equal(nc_context_backend(ctx), NC_BACKEND_REF);
    nc_context_destroy(ctx);
}

/* Allocations of the backend (state, node caches, scratch) all go through the
 * context allocator and are returned. */
static void test_onednn_allocations_balanced(void **state) {
    SKIP_WITHOUT_ONEDNN();
    (void)state;
    tu_counting cnt = {0, 0, -1, 0};
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_ONEDNN;
    o.num_threads = 1;
    o.allocator.alloc = tu_count_alloc;
    o.allocator.free = tu_count_free;
    o.allocator.user = &cnt;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    const model_case mc = {"simple_cnn", "simple_cnn", 2, 1, 12, 12, 4, 1, 0, 0, 0};
    nc_model *m = make_model(ctx, &mc);
    nc_trainer *tr = NULL;
    assert_int_equal(nc_trainer_create(m, NULL, &tr), NC_OK);
    float *x = tu_rand(2 * 144, -1, 1, 800);
    int32_t labels[2] = {1, 3};
    assert_int_equal(nc_trainer_step(tr, x, labels, 2, 1, 12, 12, NULL), NC_OK);
    nc_trainer_destroy(tr);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    assert_int_equal(cnt.live, 0);
    free(x);
}

/* With no oneDNN, NC_BACKEND_ONEDNN is refused (and the suite still runs). */
static void test_onednn_absent_is_unsupported(void **state) {
    (void)state;
    if (HAVE_ONEDNN) skip();
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_ONEDNN;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_UNSUPPORTED);
    assert_null(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_matches_ref),
        cmocka_unit_test(test_conv_cache_rebuilds_for_new_shape),
        cmocka_unit_test(test_fused_conv_matches_ref),
        cmocka_unit_test(test_batchnorm_matches_ref),
        cmocka_unit_test(test_pool_matches_ref),
        cmocka_unit_test(test_linear_matches_ref),
        cmocka_unit_test(test_models_match_ref),
        cmocka_unit_test(test_bf16_runtime_checked),
        cmocka_unit_test(test_auto_picks_onednn),
        cmocka_unit_test(test_onednn_allocations_balanced),
        cmocka_unit_test(test_onednn_absent_is_unsupported),
    };
    return cmocka_run_group_tests(tests, pair_setup, pair_teardown);
}
