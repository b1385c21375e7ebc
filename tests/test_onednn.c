/* test_onednn.c — the oneDNN backend beyond single ops: a convolution's cached
 * primitives rebuilt for a new input shape, whole-model eval logits and one SGD
 * training step for each architecture at small sizes against ref, the bf16 option,
 * automatic backend choice, balanced allocations and the conv_algorithm switch
 * (direct / Winograd). Every op forward and backward,
 * in f32 and bf16, is compared with ref by tests/test_backend_ops.c. Skips cleanly
 * when the build has no oneDNN. */
#include "testutil.h"

#include "nc_config.h"
#include "core/context.h"
#include "backend/backend.h"
#if HAVE_ONEDNN
#include "backend/onednn/onednn.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_OP 1e-5    /* normalized error, one op in f32 (max-norm, as tu_norm_err) */
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

/* Backend memory through the context's backend table, as the executor uses it. */
static void *dev_alloc(nc_context *ctx, size_t bytes) {
    void *p = NULL;
    assert_int_equal(ctx->backend->alloc(ctx->backend_state, bytes, &p), NC_OK);
    return p;
}

static void dev_free(nc_context *ctx, void *p) { ctx->backend->free(ctx->backend_state, p); }

/* An activation value in the backend's layout; host NULL: left unwritten. */
static void *value_in(nc_context *ctx, const nc__value_desc *v, const float *host) {
    void *p = dev_alloc(ctx, ctx->backend->value_bytes(ctx->backend_state, v));
    if (host) assert_int_equal(ctx->backend->value_upload(ctx->backend_state, v, p, host), NC_OK);
    return p;
}

static float *value_out(nc_context *ctx, const nc__value_desc *v, const void *buf) {
    float *host = tu_zeros((size_t)nc__shape_numel(&v->shape));
    assert_int_equal(ctx->backend->value_download(ctx->backend_state, v, host, buf), NC_OK);
    return host;
}

static void *param_in(nc_context *ctx, const float *host, size_t count) {
    const nc__shape s = nc__shape1((int64_t)count);
    void *p = dev_alloc(ctx, count * sizeof(float));
    assert_int_equal(ctx->backend->upload(ctx->backend_state, p, host, &s), NC_OK);
    return p;
}

static void release(nc_context *ctx, void **cache) {
    if (*cache && ctx->backend->release_cache) ctx->backend->release_cache(ctx->backend_state, *cache);
    *cache = NULL;
}

/* A cache slot reused for other sizes is rebuilt (a plan per input shape). */
static void test_conv_cache_rebuilds_for_new_shape(void **state) {
    SKIP_WITHOUT_ONEDNN();
    pair *p = *state;
    nc_context *ctxs[2] = {p->ref, p->dn};
    void *cache[2] = {NULL, NULL};
    const size_t nw = 8 * 4 * 9;
    float *x = tu_rand(2 * 4 * 9 * 9, -1, 1, 500), *w = tu_rand(nw, -1, 1, 501);
    for (int64_t hw = 5; hw <= 9; hw += 4) {
        const nc__value_desc xv = {nc__shape4(2, 4, hw, hw), NC__DTYPE_F32};
        const nc__value_desc yv = {nc__shape4(2, 8, hw, hw), NC__DTYPE_F32};
        float *y[2];
        for (int i = 0; i < 2; i++) {
            nc_context *c = ctxs[i];
            const nc__conv_desc d = {.n = 2, .c = 4, .h = hw, .w = hw, .k = 8, .r = 3, .s = 3, .groups = 1,
                                     .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1,
                                     .oh = hw, .ow = hw, .dtype = NC__DTYPE_F32, .dx_write = NC__WRITE_SET,
                                     .wversion = 1, .cache = &cache[i]};
            void *xd = value_in(c, &xv, x), *wd = param_in(c, w, nw), *yd = value_in(c, &yv, NULL);
            assert_int_equal(c->backend->conv2d_forward(c->backend_state, &d, yd, xd, wd, NULL), NC_OK);
            y[i] = value_out(c, &yv, yd);
            dev_free(c, xd), dev_free(c, wd), dev_free(c, yd);
        }
        check_below("conv after a shape change", "5x5 then 9x9",
                    tu_norm_err(y[1], y[0], (size_t)nc__shape_numel(&yv.shape)), TOL_OP);
        free(y[0]), free(y[1]);
    }
    release(p->ref, &cache[0]);
    release(p->dn, &cache[1]);
    free(x), free(w);
}

/* ------------------------------------------------------- conv algorithms */

#if HAVE_ONEDNN
/* One 3x3 convolution that Winograd takes (64 -> 64 channels, stride 1; 2 x 10 x 10
 * = 200 output pixels, above AUTO's 196), forward
 * and backward on a context with conv_algorithm `alg`, against ref; the
 * implementations oneDNN chose for the three passes (the cache's slots 0, 1, 2:
 * ops.c's CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS) go to impl[]. */
static void conv_with_algorithm(pair *p, nc_conv_algorithm alg, char impl[3][64]) {
    nc_context_options o;
    nc_context_options_init(&o);
    o.num_threads = 2;
    o.backend = NC_BACKEND_ONEDNN;
    o.conv_algorithm = alg;
    nc_context *ctxs[2] = {p->ref, NULL};
    assert_int_equal(nc_context_create(&o, &ctxs[1]), NC_OK);
    void *cache[2] = {NULL, NULL};
    const int64_t n = 2, c = 64, k = 64, hw = 10;
    const size_t nx = (size_t)(n * c * hw * hw), ny = (size_t)(n * k * hw * hw), nw = (size_t)(k * c * 9);
    const nc__value_desc xv = {nc__shape4(n, c, hw, hw), NC__DTYPE_F32}, yv = {nc__shape4(n, k, hw, hw), NC__DTYPE_F32};
    float *x = tu_rand(nx, -1, 1, 510), *w = tu_rand(nw, -0.1f, 0.1f, 511), *dy = tu_rand(ny, -1, 1, 512);
    float *y[2], *dx[2], *dw[2];
    for (int i = 0; i < 2; i++) {
        nc_context *ctx = ctxs[i];
        const nc__conv_desc d = {.n = n, .c = c, .h = hw, .w = hw, .k = k, .r = 3, .s = 3, .groups = 1,
                                 .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1,
                                 .oh = hw, .ow = hw, .dtype = NC__DTYPE_F32, .dx_write = NC__WRITE_SET,
                                 .wversion = 1, .cache = &cache[i]};
        float *zero = tu_zeros(nw);
        void *xd = value_in(ctx, &xv, x), *wd = param_in(ctx, w, nw), *yd = value_in(ctx, &yv, NULL);
        void *dyd = value_in(ctx, &yv, dy), *dxd = value_in(ctx, &xv, NULL), *dwd = param_in(ctx, zero, nw);
        assert_int_equal(ctx->backend->conv2d_forward(ctx->backend_state, &d, yd, xd, wd, NULL), NC_OK);
        assert_int_equal(ctx->backend->conv2d_backward(ctx->backend_state, &d, dxd, dwd, NULL, dyd, xd, wd), NC_OK);
        y[i] = value_out(ctx, &yv, yd);
        dx[i] = value_out(ctx, &xv, dxd);
        dw[i] = tu_zeros(nw);
        const nc__shape ws = nc__shape1((int64_t)nw);
        assert_int_equal(ctx->backend->download(ctx->backend_state, dw[i], dwd, &ws), NC_OK);
        if (i == 1)
            for (int pass = 0; pass < 3; pass++)
                snprintf(impl[pass], 64, "%s", nc__dnnl_impl(cache[1], pass));
        dev_free(ctx, xd), dev_free(ctx, wd), dev_free(ctx, yd), dev_free(ctx, dyd), dev_free(ctx, dxd);
        dev_free(ctx, dwd);
        free(zero);
    }
    /* Winograd F(4x4,3x3) rounds more than direct (docs/backends.md): a bound of
     * 1e-5 on the max-norm error holds both with margin (measured in the print) */
    const double ey = tu_norm_err(y[1], y[0], ny), edx = tu_norm_err(dx[1], dx[0], nx), edw = tu_norm_err(dw[1], dw[0], nw);
    print_message("conv_algorithm %d (%s / %s / %s): error y %.2g dx %.2g dw %.2g\n", (int)alg, impl[0], impl[1],
                  impl[2], ey, edx, edw);
    check_below("conv y", impl[0], ey, TOL_OP);
    check_below("conv dx", impl[1], edx, TOL_OP);
    check_below("conv dw", impl[2], edw, TOL_OP);
    release(p->ref, &cache[0]);
    release(ctxs[1], &cache[1]);
    nc_context_destroy(ctxs[1]);
    for (int i = 0; i < 2; i++) free(y[i]), free(dx[i]), free(dw[i]);
    free(x), free(w), free(dy);
}
#endif

/* conv_algorithm: DIRECT never runs Winograd; WINOGRAD and AUTO run it for all three
 * passes of a qualifying convolution where oneDNN has the kernels (AVX-512), and
 * fall back to direct elsewhere (test_onednn_isa.c runs the AVX2 case); every
 * choice matches ref. An unknown value is refused. */
static void test_conv_algorithm_switch(void **state) {
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    pair *p = *state;
    const int avx512 = (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
    const nc_conv_algorithm algs[3] = {NC_CONV_ALGORITHM_DIRECT, NC_CONV_ALGORITHM_WINOGRAD, NC_CONV_ALGORITHM_AUTO};
    for (int a = 0; a < 3; a++) {
        char impl[3][64];
        conv_with_algorithm(p, algs[a], impl);
        for (int pass = 0; pass < 3; pass++) {
            const int wino = strstr(impl[pass], "wino") != NULL;
            if (wino != (avx512 && algs[a] != NC_CONV_ALGORITHM_DIRECT)) {
                print_error("conv_algorithm %d pass %d ran %s\n", (int)algs[a], pass, impl[pass]);
                fail();
            }
        }
    }
    nc_context_options o;
    nc_context_options_init(&o);
    o.conv_algorithm = (nc_conv_algorithm)3;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
#else
    (void)state;
#endif
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
        /* Winograd (the default conv_algorithm on AVX-512 runs it in layer1 here) rounds
         * ~3x more than direct (1.6e-6 against 5e-7 per convolution), enough to flip a
         * ReLU or max-pool decision somewhere: the step's max-norm delta of
         * layer1.1.conv1.weight is then 1.1e-2 (direct: 1.2e-4). The measure is a
         * threshold: ref against ref with 1e-6 relative noise on the input gives
         * 1.2e-4, with 1e-5 already 0.13 (resnet18 small); logits, loss and gradient
         * norm stay within 1e-6. */
        {"resnet18 4ch 2 heads", "resnet18", 3, 4, 24, 24, 6, 2, 1, 0, 5e-2},
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
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_UNSUPPORTED); /* bf16 = 1 is BF16_MATH: oneDNN's alone */
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
    tu_counting cnt = {0, 0, -1, 0, 0};
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
        cmocka_unit_test(test_conv_cache_rebuilds_for_new_shape),
        cmocka_unit_test(test_models_match_ref),
        cmocka_unit_test(test_bf16_runtime_checked),
        cmocka_unit_test(test_auto_picks_onednn),
        cmocka_unit_test(test_onednn_allocations_balanced),
        cmocka_unit_test(test_onednn_absent_is_unsupported),
        cmocka_unit_test(test_conv_algorithm_switch),
    };
    return cmocka_run_group_tests(tests, pair_setup, pair_teardown);
}
