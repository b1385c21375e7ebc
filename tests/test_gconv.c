/* test_gconv.c — the direct grouped-convolution kernels (lib/backend/onednn/grouped.c)
 * on the nChw8c layout (AVX2: 2 and 4 channels per group) and the nChw16c layout
 * (AVX-512: 2, 4, 8 and 16) against the ref backend's plain NCHW kernels, each case
 * on every block whose ISA this CPU has and whose width divides C: forward with every bias/residual/relu combination, backward data
 * in both write modes (NC__WRITE_SET over NaN, NC__WRITE_ADD), backward weights accumulated onto non-zero dw/db, over
 * strides, paddings, dilations, odd sizes, batches and kernel sizes; and the shapes
 * the kernels must refuse. Skips when the build has no oneDNN (grouped.c is built
 * with that backend). */
#include "testutil.h"

#include "nc_config.h"
#include "backend/backend.h"
#include "backend/ref/ref.h"
#if HAVE_ONEDNN
#include "backend/onednn/grouped.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5 /* normalized error, one op in f32 */

#if HAVE_ONEDNN

/* ------------------------------------------------------------------ helpers */

typedef struct gcase {
    int64_t n, c, h, w, cpg, r, s, sh, sw, ph, pw, dh, dw;
} gcase;

static nc__conv_desc desc_of(const gcase *g) {
    return (nc__conv_desc){
        .n = g->n, .c = g->c, .h = g->h, .w = g->w, .k = g->c, .r = g->r, .s = g->s, .groups = g->c / g->cpg,
        .stride_h = g->sh, .stride_w = g->sw, .pad_h = g->ph, .pad_w = g->pw, .dil_h = g->dh, .dil_w = g->dw,
        .oh = (g->h + 2 * g->ph - g->dh * (g->r - 1) - 1) / g->sh + 1,
        .ow = (g->w + 2 * g->pw - g->dw * (g->s - 1) - 1) / g->sw + 1,
        .dtype = NC__DTYPE_F32,
    };
}

static void cfg_str(char *buf, size_t len, const gcase *g) {
    snprintf(buf, len, "N%lld C%lld %lldx%lld cpg%lld k%lldx%lld s%lld,%lld p%lld,%lld d%lld,%lld",
             (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->cpg,
             (long long)g->r, (long long)g->s, (long long)g->sh, (long long)g->sw, (long long)g->ph,
             (long long)g->pw, (long long)g->dh, (long long)g->dw);
}

/* dst (N, C/B, H, W, B) from src (N, C, H, W), and back. */
static void to_blocked(float *dst, const float *src, int64_t B, int64_t n, int64_t c, int64_t h, int64_t w) {
    for (int64_t in = 0; in < n; in++)
        for (int64_t ic = 0; ic < c; ic++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    dst[(((in * (c / B) + ic / B) * h + y) * w + x) * B + ic % B] =
                        src[((in * c + ic) * h + y) * w + x];
}
static void from_blocked(float *dst, const float *src, int64_t B, int64_t n, int64_t c, int64_t h, int64_t w) {
    for (int64_t in = 0; in < n; in++)
        for (int64_t ic = 0; ic < c; ic++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    dst[((in * c + ic) * h + y) * w + x] =
                        src[(((in * (c / B) + ic / B) * h + y) * w + x) * B + ic % B];
}

/* The block's ISA on this CPU (grouped.h). */
static int cpu_has(int B) {
    if (B == 8) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return __builtin_cpu_supports("avx512f");
}

/* 1 when grouped.c has kernels for g on block B and this CPU runs them: every width
 * it is built for, also those nc__gconv_supported leaves to oneDNN (16 on block 16). */
static int runnable(const gcase *g, int B) {
    const int widths = B == 8 ? (g->cpg == 2 || g->cpg == 4) : (g->cpg == 2 || g->cpg == 4 || g->cpg == 8 || g->cpg == 16);
    return widths && g->c % B == 0 && cpu_has(B);
}

static void check_below(const char *what, const char *cfg, double err) {
    if (!(err < TOL)) {
        print_error("%s [%s]: normalized error %.3g >= %.3g\n", what, cfg, err, TOL);
        fail();
    }
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Packs w and returns the packed buffer (malloc'ed). */
static float *packed_of(const nc__conv_desc *d, int B, const float *w) {
    const size_t n = nc__gconv_weight_floats(d);
    float *p = tu_zeros(n);
    nc__gconv_pack_weights(d, B, p, w);
    return p;
}

/* ------------------------------------------------------------------ checks */

/* Forward with the four bias / residual / relu combinations. */
static void check_forward(const gcase *g, int B, int nt, uint64_t seed) {
    char cfg[160];
    cfg_str(cfg, sizeof cfg, g);
    nc__conv_desc d = desc_of(g);
    const size_t xn = (size_t)(d.n * d.c * d.h * d.w), yn = (size_t)(d.n * d.k * d.oh * d.ow);
    const size_t wn = (size_t)(d.k * g->cpg * d.r * d.s);
    float *x = tu_rand(xn, -1, 1, seed), *w = tu_rand(wn, -1, 1, seed + 1);
    float *b = tu_rand((size_t)d.k, -1, 1, seed + 2), *res = tu_rand(yn, -1, 1, seed + 3);
    float *xb = tu_zeros(xn), *resb = tu_zeros(yn), *yb = tu_zeros(yn), *y = tu_zeros(yn);
    float *yref = tu_zeros(yn);
    float *packed = packed_of(&d, B, w);
    to_blocked(xb, x, B, d.n, d.c, d.h, d.w);
    to_blocked(resb, res, B, d.n, d.k, d.oh, d.ow);
    static const int combos[4][3] = {{0, 0, 0}, {1, 0, 1}, {1, 1, 1}, {0, 1, 0}}; /* bias, res, relu */
    for (int ci = 0; ci < 4; ci++) {
        const int use_b = combos[ci][0], use_r = combos[ci][1], relu = combos[ci][2];
        nc__ref_conv2d_forward(tu_kctx, 1, &d, yref, x, w, use_b ? b : NULL);
        for (size_t i = 0; i < yn; i++) {
            float v = yref[i] + (use_r ? res[i] : 0.0f);
            yref[i] = relu && v < 0 ? 0.0f : v;
        }
        for (size_t i = 0; i < yn; i++) yb[i] = NAN; /* y is overwritten */
        nc__gconv_forward(nt, &d, B, yb, xb, packed, use_b ? b : NULL, use_r ? resb : NULL, relu);
        from_blocked(y, yb, B, d.n, d.k, d.oh, d.ow);
        char what[80];
        snprintf(what, sizeof what, "forward block=%d bias=%d res=%d relu=%d nt=%d", B, use_b, use_r, relu, nt);
        assert_true(all_finite(y, yn));
        check_below(what, cfg, tu_norm_err(y, yref, yn));
    }
    free(x), free(w), free(b), free(res), free(xb), free(resb), free(yb), free(y), free(yref), free(packed);
}

/* Backward data (accumulated onto random dx, then written over NaN) and backward
 * weights (accumulated onto random dw, db; and without db). */
static void check_backward(const gcase *g, int B, int nt, uint64_t seed) {
    char cfg[180];
    cfg_str(cfg, sizeof cfg - 20, g);
    snprintf(cfg + strlen(cfg), 20, " block %d", B);
    nc__conv_desc d = desc_of(g);
    const size_t xn = (size_t)(d.n * d.c * d.h * d.w), yn = (size_t)(d.n * d.k * d.oh * d.ow);
    const size_t wn = (size_t)(d.k * g->cpg * d.r * d.s), kn = (size_t)d.k;
    float *x = tu_rand(xn, -1, 1, seed), *w = tu_rand(wn, -1, 1, seed + 1);
    float *dy = tu_rand(yn, -1, 1, seed + 2), *dx0 = tu_rand(xn, -1, 1, seed + 3);
    float *dw0 = tu_rand(wn, -1, 1, seed + 4), *db0 = tu_rand(kn, -1, 1, seed + 5);
    float *xb = tu_zeros(xn), *dyb = tu_zeros(yn), *dxb = tu_zeros(xn), *dx = tu_zeros(xn);
    float *dxref = tu_zeros(xn), *dwref = tu_zeros(wn), *dbref = tu_zeros(kn);
    float *dw = tu_zeros(wn), *db = tu_zeros(kn), *dw2 = tu_zeros(wn), *db2 = tu_zeros(kn);
    float *packed = packed_of(&d, B, w);
    to_blocked(xb, x, B, d.n, d.c, d.h, d.w);
    to_blocked(dyb, dy, B, d.n, d.k, d.oh, d.ow);

    /* reference: dx += , dw += , db += */
    memcpy(dxref, dx0, xn * sizeof(float));
    memcpy(dwref, dw0, wn * sizeof(float));
    memcpy(dbref, db0, kn * sizeof(float));
    nc__ref_conv2d_backward(tu_kctx, 1, &d, dxref, dwref, dbref, dy, x, w);

    /* backward data, NC__WRITE_ADD */
    to_blocked(dxb, dx0, B, d.n, d.c, d.h, d.w);
    nc__gconv_backward_data(nt, &d, B, dxb, dyb, packed, NC__WRITE_ADD);
    from_blocked(dx, dxb, B, d.n, d.c, d.h, d.w);
    check_below("backward data add", cfg, tu_norm_err(dx, dxref, xn));

    /* backward data, NC__WRITE_SET over NaN: equals the accumulated result minus dx0 */
    for (size_t i = 0; i < xn; i++) dxb[i] = NAN;
    nc__gconv_backward_data(nt, &d, B, dxb, dyb, packed, NC__WRITE_SET);
    from_blocked(dx, dxb, B, d.n, d.c, d.h, d.w);
    assert_true(all_finite(dx, xn));
    for (size_t i = 0; i < xn; i++) dxref[i] = 0.0f;
    nc__ref_conv2d_backward(tu_kctx, 1, &d, dxref, dw2, NULL, dy, x, w); /* dw2: scratch */
    check_below("backward data set", cfg, tu_norm_err(dx, dxref, xn));

    /* backward weights with db, accumulating */
    memcpy(dw, dw0, wn * sizeof(float));
    memcpy(db, db0, kn * sizeof(float));
    nc__gconv_backward_weights(nt, &d, B, dw, db, dyb, xb);
    check_below("backward weights dw", cfg, tu_norm_err(dw, dwref, wn));
    check_below("backward weights db", cfg, tu_norm_err(db, dbref, kn));

    /* without db: the same dw, bit for bit (same thread count), db untouched */
    memcpy(dw2, dw0, wn * sizeof(float));
    nc__gconv_backward_weights(nt, &d, B, dw2, NULL, dyb, xb);
    assert_memory_equal(dw, dw2, wn * sizeof(float));

    free(x), free(w), free(dy), free(dx0), free(dw0), free(db0), free(xb), free(dyb), free(dxb), free(dx);
    free(dxref), free(dwref), free(dbref), free(dw), free(db), free(dw2), free(db2), free(packed);
}

/* Every case on each block it can run on; at least one (case, block) must run on a
 * CPU with AVX2, so that a table of cases can never be skipped whole by mistake. */
static void check_all(const gcase *cases, size_t count, uint64_t seed) {
    int ran = 0;
    for (size_t i = 0; i < count; i++)
        for (int B = 8; B <= 16; B += 8) {
            if (!runnable(&cases[i], B)) continue;
            ran++;
            for (int nt = 1; nt <= 2; nt++) {
                check_forward(&cases[i], B, nt, seed + 100 * i);
                check_backward(&cases[i], B, nt, seed + 100 * i + 50);
            }
        }
    if (cpu_has(8)) assert_true(ran > 0);
}

#endif /* HAVE_ONEDNN */

/* ------------------------------------------------------------------ cases */

/* 3x3, pad 1, strides 1 and 2, odd sizes, batch 1 and 3, C = 16, 32, 128, cpg 4 and 2. */
static void test_gconv_3x3_matches_ref(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase cases[] = {
        /* n  c    h   w  cpg r  s sh sw ph pw dh dw */
        {1, 16, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1},   {3, 16, 7, 9, 2, 3, 3, 1, 1, 1, 1, 1, 1},
        {3, 32, 7, 9, 4, 3, 3, 2, 2, 1, 1, 1, 1},   {1, 32, 9, 7, 2, 3, 3, 2, 2, 1, 1, 1, 1},
        {1, 128, 12, 13, 4, 3, 3, 1, 1, 1, 1, 1, 1}, {3, 128, 9, 7, 4, 3, 3, 2, 2, 1, 1, 1, 1},
        {1, 128, 7, 9, 2, 3, 3, 1, 1, 1, 1, 1, 1},  {2, 16, 20, 21, 4, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 16, 23, 22, 2, 3, 3, 2, 2, 1, 1, 1, 1},
    };
    check_all(cases, sizeof cases / sizeof cases[0], 1000);
#endif
}

/* 1x1 (strides 1 and 2) and 5x5 with dilation 2. */
static void test_gconv_1x1_and_dilated_5x5_match_ref(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase cases[] = {
        /* n  c    h   w  cpg r  s sh sw ph pw dh dw */
        {2, 16, 7, 9, 4, 1, 1, 1, 1, 0, 0, 1, 1},  {3, 32, 7, 9, 2, 1, 1, 2, 2, 0, 0, 1, 1},
        {1, 16, 7, 9, 4, 5, 5, 1, 1, 4, 4, 2, 2},  {3, 32, 9, 7, 2, 5, 5, 1, 1, 4, 4, 2, 2},
        {1, 128, 11, 10, 4, 5, 5, 2, 2, 2, 2, 2, 2}, {2, 16, 13, 17, 2, 5, 5, 2, 2, 3, 3, 2, 2},
    };
    check_all(cases, sizeof cases / sizeof cases[0], 2000);
#endif
}

/* Shapes off the beaten path: non-square kernels, strides and dilations differing by
 * axis (also wide rows, so 3-wide kernels at strides 1 and 2 meet interior blocks), padding wider than the kernel reach (rows with no tap), input narrower than
 * the kernel, stride larger than the kernel, and C = 8 (one channel block, so
 * backward weights splits the rows of a block between threads). */
static void test_gconv_odd_shapes_match_ref(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase cases[] = {
        /* n  c   h   w  cpg r  s sh sw ph pw dh dw */
        {2, 16, 9, 11, 2, 3, 5, 1, 2, 1, 0, 2, 1}, {1, 24, 8, 6, 4, 1, 3, 3, 1, 0, 2, 1, 3},
        {1, 16, 5, 6, 4, 3, 3, 1, 1, 3, 4, 1, 1},  {2, 8, 2, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1},
        {3, 8, 7, 9, 2, 3, 3, 1, 1, 1, 1, 1, 1},   {1, 16, 10, 10, 4, 2, 2, 3, 3, 0, 0, 1, 1},
        {1, 8, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1},   {1, 16, 5, 40, 4, 3, 3, 2, 2, 1, 1, 1, 1},
        {2, 16, 9, 20, 4, 3, 3, 1, 1, 2, 1, 2, 1}, {1, 16, 6, 37, 2, 3, 3, 1, 2, 1, 0, 1, 1},
    };
    check_all(cases, sizeof cases / sizeof cases[0], 3000);
#endif
}

/* A kernel with more taps than the per-thread partial sums hold at once (13x13 = 169
 * taps > 128 for cpg 4): backward weights makes several passes. */
static void test_gconv_large_kernel_matches_ref(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase cases[] = {
        /* n  c   h   w  cpg r   s  sh sw ph pw dh dw */
        {2, 8, 15, 15, 4, 13, 13, 1, 1, 6, 6, 1, 1}, {1, 16, 17, 16, 2, 17, 17, 1, 1, 8, 8, 1, 1},
    };
    check_all(cases, sizeof cases / sizeof cases[0], 4000);
#endif
}

/* Backward weights with more threads than channel blocks splits a block's rows; the
 * result depends only on the thread count: equal bit for bit when repeated, and
 * matching the reference for 3 and 4 threads. One channel block: C = 8 on nChw8c,
 * C = 16 on nChw16c. */
static void check_split_rows(const gcase *g, int B) {
    nc__conv_desc d = desc_of(g);
    const size_t xn = (size_t)(d.n * d.c * d.h * d.w), yn = (size_t)(d.n * d.k * d.oh * d.ow);
    const size_t wn = (size_t)(d.k * g->cpg * d.r * d.s);
    float *x = tu_rand(xn, -1, 1, 51), *dy = tu_rand(yn, -1, 1, 52), *w = tu_zeros(wn);
    float *xb = tu_zeros(xn), *dyb = tu_zeros(yn);
    float *ref = tu_zeros(wn), *dbref = tu_zeros((size_t)d.k);
    float *a = tu_zeros(wn), *b = tu_zeros(wn), *dba = tu_zeros((size_t)d.k), *dbb = tu_zeros((size_t)d.k);
    to_blocked(xb, x, B, d.n, d.c, d.h, d.w);
    to_blocked(dyb, dy, B, d.n, d.k, d.oh, d.ow);
    nc__ref_conv2d_backward(tu_kctx, 1, &d, NULL, ref, dbref, dy, x, w);
    for (int nt = 3; nt <= 4; nt++) {
        memset(a, 0, wn * sizeof(float));
        memset(b, 0, wn * sizeof(float));
        memset(dba, 0, (size_t)d.k * sizeof(float));
        memset(dbb, 0, (size_t)d.k * sizeof(float));
        nc__gconv_backward_weights(nt, &d, B, a, dba, dyb, xb);
        nc__gconv_backward_weights(nt, &d, B, b, dbb, dyb, xb);
        assert_memory_equal(a, b, wn * sizeof(float));
        assert_memory_equal(dba, dbb, (size_t)d.k * sizeof(float));
        check_below("backward weights split rows dw", "one block, nt > blocks", tu_norm_err(a, ref, wn));
        check_below("backward weights split rows db", "one block, nt > blocks",
                    tu_norm_err(dba, dbref, (size_t)d.k));
    }
    free(x), free(dy), free(w), free(xb), free(dyb), free(ref), free(dbref), free(a), free(b), free(dba),
        free(dbb);
}

static void test_gconv_backward_weights_split_rows_deterministic(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase g8 = {3, 8, 11, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1};
    static const gcase g16 = {3, 16, 11, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1};
    if (cpu_has(8)) check_split_rows(&g8, 8);
    if (cpu_has(16)) check_split_rows(&g16, 16);
#endif
}

/* Packing against hand-worked lanes: C = 8, cpg 4 (groups {0..3}, {4..7}), 1x1,
 * w[k][i] = 10 k + i. Forward rotation t, lane j: w[j][(j%4 + t)%4]; backward
 * rotation t, lane j: w[b + (j%4 + t)%4][j%4] with b = j - j%4. */
static void test_gconv_pack_weights_layout(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase g = {1, 8, 1, 1, 4, 1, 1, 1, 1, 0, 0, 1, 1};
    nc__conv_desc d = desc_of(&g);
    assert_int_equal(nc__gconv_weight_floats(&d), 2 * 8 * 4);
    float w[32]; // (K=8, C/G=4, 1, 1)
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 4; i++) w[k * 4 + i] = (float)(10 * k + i);
    float p[64];
    nc__gconv_pack_weights(&d, 8, p, w);
    /* t = 1: forward lanes w[0][1] w[1][2] w[2][3] w[3][0] | w[4][1] w[5][2] w[6][3] w[7][0] */
    static const float fwd1[8] = {1, 12, 23, 30, 41, 52, 63, 70};
    /* t = 1: backward lanes w[1][0] w[2][1] w[3][2] w[0][3] | w[5][0] w[6][1] w[7][2] w[4][3] */
    static const float bwd1[8] = {10, 21, 32, 3, 50, 61, 72, 43};
    static const float fwd0[8] = {0, 11, 22, 33, 40, 51, 62, 73};
    assert_memory_equal(p + 0, fwd0, sizeof fwd0);
    assert_memory_equal(p + 8, fwd1, sizeof fwd1);
    assert_memory_equal(p + 32, fwd0, sizeof fwd0); /* bwd t = 0 is the diagonal too */
    assert_memory_equal(p + 40, bwd1, sizeof bwd1);
#endif
}

/* The same for block 16 and cpg 8, 1x1, C = 16 (groups {0..7}, {8..15}),
 * w[k][i] = 10 k + i: forward rotation t = 3, lane j: w[j][(j%8 + 3)%8]; backward
 * rotation t = 3, lane j: w[b + (j%8 + 3)%8][j%8]. */
static void test_gconv_pack_weights_layout_block16(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase g = {1, 16, 1, 1, 8, 1, 1, 1, 1, 0, 0, 1, 1};
    nc__conv_desc d = desc_of(&g);
    assert_int_equal(nc__gconv_weight_floats(&d), 2 * 16 * 8);
    float w[128]; // (K=16, C/G=8, 1, 1)
    for (int k = 0; k < 16; k++)
        for (int i = 0; i < 8; i++) w[k * 8 + i] = (float)(10 * k + i);
    float p[256];
    nc__gconv_pack_weights(&d, 16, p, w);
    for (int j = 0; j < 16; j++) {
        const int b = j - j % 8, i = (j % 8 + 3) % 8;
        assert_true(p[3 * 16 + j] == (float)(10 * j + i));                /* fwd, t = 3 */
        assert_true(p[128 + 3 * 16 + j] == (float)(10 * (b + i) + j % 8)); /* bwd, t = 3 */
    }
#endif
}

/* What the kernels must refuse, so callers fall back on oneDNN. */
static void test_gconv_supported_rejects(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    static const gcase ok4 = {1, 16, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1};
    static const gcase ok2 = {1, 16, 7, 9, 2, 3, 3, 1, 1, 1, 1, 1, 1};
    static const gcase ok8 = {1, 32, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1};
    nc__conv_desc d = desc_of(&ok4);
    const int avx2 = cpu_has(8), avx512 = cpu_has(16);
    assert_int_equal(nc__gconv_supported(&d, 8), avx2);
    assert_int_equal(nc__gconv_supported(&d, 16), avx512);
    d = desc_of(&ok2);
    assert_int_equal(nc__gconv_supported(&d, 8), avx2);
    assert_int_equal(nc__gconv_supported(&d, 16), avx512);
    d = desc_of(&ok8);
    assert_false(nc__gconv_supported(&d, 8)); /* cpg 8 on nChw8c: oneDNN's blocked kernel */
    assert_int_equal(nc__gconv_supported(&d, 16), avx512);
    d = desc_of(&ok8), d.groups = 2; /* cpg 16: oneDNN's own blocked kernel is faster */
    assert_false(nc__gconv_supported(&d, 16));
    if (!avx2) skip();

    assert_false(nc__gconv_supported(NULL, 8));
    d = desc_of(&ok4);
    assert_false(nc__gconv_supported(&d, 0)); /* plain layout */
    assert_false(nc__gconv_supported(&d, 4)); /* no such block */
    d = desc_of(&ok4), d.c = d.k = 12, d.groups = 3; /* C % 8 != 0 (cpg 4) */
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.c = d.k = 20, d.groups = 10; /* C % 8 != 0 (cpg 2) */
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.c = d.k = 24, d.groups = 6; /* C % 16 != 0 */
    assert_true(nc__gconv_supported(&d, 8));
    assert_false(nc__gconv_supported(&d, 16));
    d = desc_of(&ok4), d.c = d.k = 8, d.groups = 2; /* C < 16 */
    assert_false(nc__gconv_supported(&d, 16));
    d = desc_of(&ok4), d.groups = 2; /* cpg 8 */
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.groups = 16; /* depthwise, cpg 1 */
    assert_false(nc__gconv_supported(&d, 8));
    assert_false(nc__gconv_supported(&d, 16));
    d = desc_of(&ok4), d.groups = 1; /* dense */
    assert_false(nc__gconv_supported(&d, 8));
    assert_false(nc__gconv_supported(&d, 16));
    d = desc_of(&ok4), d.k = 32; /* C != K */
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.groups = 0;
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.stride_h = 0;
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.dil_w = 0;
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.pad_h = -1;
    assert_false(nc__gconv_supported(&d, 8));
    d = desc_of(&ok4), d.oh = 0;
    assert_false(nc__gconv_supported(&d, 8));
#endif
}

/* 8 and 16 channels per group (nChw16c only): ResNeXt's stage 2 and 3 widths, at
 * strides 1 and 2, odd sizes, batch 1 and 3, 1x1, a dilated 5x5, and C = 16 (one
 * block; backward weights splits its rows between the two threads). */
static void test_gconv_wide_groups_match_ref(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
#if HAVE_ONEDNN
    if (!cpu_has(16)) skip();
    static const gcase cases[] = {
        /* n  c    h   w  cpg r  s sh sw ph pw dh dw */
        {1, 32, 7, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1},    {3, 64, 9, 7, 8, 3, 3, 2, 2, 1, 1, 1, 1},
        {2, 16, 20, 21, 8, 3, 3, 1, 1, 1, 1, 1, 1},  {1, 128, 12, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 64, 7, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1},   {3, 32, 9, 7, 16, 3, 3, 2, 2, 1, 1, 1, 1},
        {2, 32, 7, 9, 8, 1, 1, 1, 1, 0, 0, 1, 1},    {1, 32, 11, 10, 8, 5, 5, 2, 2, 2, 2, 2, 2},
        {1, 16, 23, 22, 16, 3, 3, 2, 2, 1, 1, 1, 1}, {2, 48, 9, 20, 8, 3, 3, 1, 1, 2, 1, 2, 1},
    };
    check_all(cases, sizeof cases / sizeof cases[0], 5000);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gconv_3x3_matches_ref),
        cmocka_unit_test(test_gconv_1x1_and_dilated_5x5_match_ref),
        cmocka_unit_test(test_gconv_odd_shapes_match_ref),
        cmocka_unit_test(test_gconv_large_kernel_matches_ref),
        cmocka_unit_test(test_gconv_backward_weights_split_rows_deterministic),
        cmocka_unit_test(test_gconv_pack_weights_layout),
        cmocka_unit_test(test_gconv_pack_weights_layout_block16),
        cmocka_unit_test(test_gconv_wide_groups_match_ref),
        cmocka_unit_test(test_gconv_supported_rejects),
    };
    return cmocka_run_group_tests(tests, tu_kctx_setup, tu_kctx_teardown);
}
