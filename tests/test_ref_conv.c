/* test_ref_conv.c — the reference backend's GEMM, grouped convolution and linear
 * kernels: against direct formulas accumulated in double, against finite differences,
 * accumulation (+=) semantics, every GEMM kernel variant the CPU runs, and results
 * across thread counts (nt = 1 vs 2). */
#include "testutil.h"

#include "backend/ref/ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define TOL 1e-5 /* normalized error vs a double reference */

/* ------------------------------------------------------------------ helpers */

static float *copy_of(const float *x, size_t n) {
    float *p = tu_zeros(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* max |a - ref| / max |ref| against a double reference. */
static double err_vs(const float *a, const double *ref, size_t n) {
    double md = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= md)) md = d;
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    }
    return md / (mx > 1e-30 ? mx : 1e-30);
}

static void check_below(const char *what, const char *cfg, double err, double tol) {
    if (!(err < tol)) {
        print_error("%s [%s]: error %.3g >= %.3g\n", what, cfg, err, tol);
        fail();
    }
}

/* ------------------------------------------------------------------- GEMM */

/* c (m, n; ldc) = alpha op(A) op(B) + beta c0, in double. */
static void naive_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha, const float *a,
                       int64_t lda, const float *b, int64_t ldb, double beta, const float *c0,
                       int64_t ldc, double *c) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++)
                s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                     (double)(tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * n + j] = alpha * s + (beta == 0 ? 0.0 : beta * (double)c0[i * ldc + j]);
        }
}

typedef struct gemm_case {
    int64_t m, n, k;
} gemm_case;

/* Sizes around the blocking: 1s, odd edges, k > KC, m > MC, n > NC. */
static const gemm_case gemm_cases[] = {
    {1, 1, 1},   {1, 37, 19}, {37, 1, 19}, {7, 5, 3},     {6, 16, 8},   {13, 17, 300},
    {130, 33, 7}, {5, 1100, 9}, {64, 100, 576}, {25, 49, 257}, {151, 3, 130},
};

/* Runs one GEMM through `isa` with padded leading dims and checks it against the
 * naive product; also checks the padding of C is untouched. Returns the isa used. */
static int run_gemm_case(int isa, int nt, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                         float beta, uint64_t seed) {
    const int64_t pad = 3;
    const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    const int64_t arows = ta ? k : m, brows = tb ? n : k;
    float *a = tu_rand((size_t)(arows * lda), -1, 1, seed);       // op(A) (m, k)
    float *b = tu_rand((size_t)(brows * ldb), -1, 1, seed + 1);   // op(B) (k, n)
    float *c = tu_rand((size_t)(m * ldc), -1, 1, seed + 2);       // (m, n) at ldc
    float *c0 = copy_of(c, (size_t)(m * ldc));
    double *ref = tu_dzeros((size_t)(m * n));
    naive_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, ref);
    int used = nc__ref_gemm_isa(tu_kctx, isa, nt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    float *packed = tu_zeros((size_t)(m * n));
    for (int64_t i = 0; i < m; i++) {
        memcpy(packed + i * n, c + i * ldc, (size_t)n * sizeof(float));
        for (int64_t j = n; j < ldc; j++) assert_true(c[i * ldc + j] == c0[i * ldc + j]);
    }
    char cfg[160];
    snprintf(cfg, sizeof cfg, "isa %d nt %d ta %d tb %d m %ld n %ld k %ld alpha %g beta %g", isa, nt,
             ta, tb, (long)m, (long)n, (long)k, alpha, beta);
    check_below("gemm", cfg, err_vs(packed, ref, (size_t)(m * n)), TOL);
    free(a);
    free(b);
    free(c);
    free(c0);
    free(ref);
    free(packed);
    return used;
}

static void test_gemm_matches_naive_all_trans(void **state) {
    (void)state;
    const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 2.0f}, {-1.5f, 1.0f}};
    uint64_t seed = 100;
    for (size_t ci = 0; ci < sizeof gemm_cases / sizeof gemm_cases[0]; ci++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int nt = 1; nt <= 2; nt++) {
                    const float *al = ab[(ci + (size_t)(ta * 2 + tb)) % 3];
                    run_gemm_case(NC__GEMM_AUTO, nt, ta, tb, gemm_cases[ci].m, gemm_cases[ci].n,
                                  gemm_cases[ci].k, al[0], al[1], seed += 3);
                }
}

/* Every kernel variant this CPU supports, plus the scratch-free fallback. */
static void test_gemm_every_isa(void **state) {
    (void)state;
    const int isas[] = {NC__GEMM_NAIVE, NC__GEMM_GENERIC, NC__GEMM_AVX2, NC__GEMM_AVX512};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        int used = -1;
        for (size_t ci = 0; ci < sizeof gemm_cases / sizeof gemm_cases[0]; ci++)
            for (int t = 0; t < 4; t++)
                used = run_gemm_case(isas[i], 1 + (int)(ci % 2), t / 2, t % 2, gemm_cases[ci].m,
                                     gemm_cases[ci].n, gemm_cases[ci].k, 1.25f, 0.5f,
                                     (uint64_t)(1000 + 10 * ci + (size_t)t));
        if (used != isas[i]) print_message("gemm isa %d not supported here, ran %d\n", isas[i], used);
    }
}

/* beta == 0 overwrites C, NaN included; alpha == 0 or k == 0 only scale C. */
static void test_gemm_beta_zero_overwrites_nan(void **state) {
    (void)state;
    const int64_t m = 9, n = 20, k = 5;
    float *a = tu_rand((size_t)(m * k), -1, 1, 1), *b = tu_rand((size_t)(k * n), -1, 1, 2);
    float *c = tu_zeros((size_t)(m * n));
    for (int64_t i = 0; i < m * n; i++) c[i] = NAN;
    nc__ref_gemm(tu_kctx, 2, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    for (int64_t i = 0; i < m * n; i++) assert_true(isfinite(c[i]));
    for (int64_t i = 0; i < m * n; i++) c[i] = NAN;
    nc__ref_gemm(tu_kctx, 1, 0, 0, m, n, 0, 1.0f, a, k, b, n, 0.0f, c, n); /* k == 0 */
    for (int64_t i = 0; i < m * n; i++) assert_true(c[i] == 0.0f);
    for (int64_t i = 0; i < m * n; i++) c[i] = 2.0f;
    nc__ref_gemm(tu_kctx, 1, 0, 0, m, n, k, 0.0f, NULL, k, NULL, n, 1.5f, c, n); /* alpha == 0: A, B unread */
    for (int64_t i = 0; i < m * n; i++) assert_true(c[i] == 3.0f);
    free(a);
    free(b);
    free(c);
}

/* m == 0 or n == 0 touch nothing (NULL pointers are fine). */
static void test_gemm_zero_sizes(void **state) {
    (void)state;
    nc__ref_gemm(tu_kctx, 2, 0, 0, 0, 5, 5, 1.0f, NULL, 5, NULL, 5, 0.0f, NULL, 5);
    nc__ref_gemm(tu_kctx, 2, 1, 1, 5, 0, 5, 1.0f, NULL, 5, NULL, 5, 0.0f, NULL, 1);
}

/* Threads split C, never K: the result is bitwise the same for any nt. The first
 * shape splits N, the second M. */
static void test_gemm_thread_count_invariant(void **state) {
    (void)state;
    const gemm_case shapes[] = {{150, 260, 530}, {260, 150, 530}};
    for (int si = 0; si < 2; si++) {
        const int64_t m = shapes[si].m, n = shapes[si].n, k = shapes[si].k;
        float *a = tu_rand((size_t)(m * k), -1, 1, 11), *b = tu_rand((size_t)(k * n), -1, 1, 12);
        float *c1 = tu_zeros((size_t)(m * n)), *c2 = tu_zeros((size_t)(m * n)), *c3 = tu_zeros((size_t)(m * n));
        for (int t = 0; t < 4; t++) {
            const int ta = t / 2, tb = t % 2;
            nc__ref_gemm(tu_kctx, 1, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c1, n);
            nc__ref_gemm(tu_kctx, 2, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c2, n);
            nc__ref_gemm(tu_kctx, 3, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c3, n);
            assert_memory_equal(c1, c2, (size_t)(m * n) * sizeof(float));
            assert_memory_equal(c1, c3, (size_t)(m * n) * sizeof(float));
        }
        free(a);
        free(b);
        free(c1);
        free(c2);
        free(c3);
    }
}

/* -------------------------------------------------------------- convolution */

typedef struct conv_case {
    int64_t n, c, h, w, k, r, s, g, sh, sw, ph, pw, dh, dw;
    int bias;
    const char *name;
} conv_case;

static const conv_case conv_cases[] = {
    /* n  c   h   w   k  r  s  g  sh sw ph pw dh dw bias */
    {3, 5, 7, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, "dense 3x3 s1 p1 7x5"},
    {1, 4, 9, 11, 8, 3, 3, 1, 2, 2, 1, 1, 1, 1, 0, "dense 3x3 s2 p1 9x11"},
    {3, 3, 9, 11, 4, 3, 3, 1, 1, 1, 0, 0, 2, 2, 1, "dense 3x3 dil2 p0"},
    {3, 4, 9, 11, 5, 3, 3, 1, 2, 2, 2, 2, 2, 2, 0, "dense 3x3 s2 dil2 p2"},
    {3, 8, 7, 5, 12, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, "groups 4"},
    {3, 6, 9, 11, 6, 3, 3, 6, 2, 2, 1, 1, 1, 1, 1, "depthwise s2"},
    {1, 6, 9, 11, 12, 3, 3, 6, 1, 1, 1, 1, 1, 1, 0, "depthwise x2 multiplier"},
    {3, 16, 6, 6, 16, 3, 3, 8, 1, 1, 1, 1, 1, 1, 1, "groups 8"},
    {3, 64, 8, 8, 64, 3, 3, 32, 2, 2, 1, 1, 1, 1, 0, "groups 32 s2"},
    {1, 16, 9, 11, 24, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 fast path (n=1)"},
    {3, 16, 17, 16, 24, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, "1x1 fast path (P>=256)"},
    {3, 16, 9, 11, 8, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, "1x1 s1 batched"},
    {3, 8, 9, 11, 16, 1, 1, 1, 2, 2, 0, 0, 1, 1, 0, "1x1 s2 downsample"},
    {3, 8, 16, 16, 16, 1, 1, 4, 1, 1, 0, 0, 1, 1, 1, "1x1 grouped fast path"},
    {3, 3, 19, 17, 8, 7, 7, 1, 2, 2, 3, 3, 1, 1, 0, "7x7 s2 p3 stem"},
    {1, 2, 5, 4, 3, 3, 3, 1, 1, 1, 3, 3, 1, 1, 1, "pad 3 > kernel"},
    {3, 3, 3, 3, 4, 5, 5, 1, 1, 1, 2, 2, 1, 1, 1, "kernel > input"},
    {3, 4, 9, 11, 6, 5, 3, 2, 2, 1, 2, 0, 1, 2, 1, "5x3 mixed stride/dil"},
    {3, 2, 7, 9, 3, 1, 3, 1, 1, 3, 0, 1, 1, 1, 0, "1x3 sw3"},
    {3, 8, 17, 17, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, "17x17 unbatched chunks"},
    {1, 16, 17, 17, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, "n=1 threads in gemm"},
    {70, 8, 4, 4, 6, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, "4x4 batched chunks, workers"},
    {5, 4, 4, 4, 8, 3, 3, 1, 2, 2, 1, 1, 1, 1, 0, "2x2 out, uneven chunks"},
};
#define NCONV (sizeof conv_cases / sizeof conv_cases[0])

static nc__conv_desc desc_of(const conv_case *cc) {
    nc__conv_desc d;
    memset(&d, 0, sizeof d);
    d.n = cc->n;
    d.c = cc->c;
    d.h = cc->h;
    d.w = cc->w;
    d.k = cc->k;
    d.r = cc->r;
    d.s = cc->s;
    d.groups = cc->g;
    d.stride_h = cc->sh;
    d.stride_w = cc->sw;
    d.pad_h = cc->ph;
    d.pad_w = cc->pw;
    d.dil_h = cc->dh;
    d.dil_w = cc->dw;
    d.oh = (cc->h + 2 * cc->ph - cc->dh * (cc->r - 1) - 1) / cc->sh + 1;
    d.ow = (cc->w + 2 * cc->pw - cc->dw * (cc->s - 1) - 1) / cc->sw + 1;
    return d;
}

static size_t xsize(const nc__conv_desc *d) { return (size_t)(d->n * d->c * d->h * d->w); }
static size_t ysize(const nc__conv_desc *d) { return (size_t)(d->n * d->k * d->oh * d->ow); }
static size_t wsize(const nc__conv_desc *d) { return (size_t)(d->k * (d->c / d->groups) * d->r * d->s); }

/* Visits every (n, k, oh, ow, c, r, s) term of the convolution: the 7-loop formula.
 * fn(u, yi, xi, wi) gets the flat indices of y, x, w. */
typedef void (*term_fn)(void *u, size_t yi, size_t xi, size_t wi);
static void for_each_term(const nc__conv_desc *d, term_fn fn, void *u) {
    const int64_t cg = d->c / d->groups, kg = d->k / d->groups;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t k = 0; k < d->k; k++)
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++)
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t r = 0; r < d->r; r++)
                            for (int64_t s = 0; s < d->s; s++) {
                                const int64_t ih = oh * d->stride_h - d->pad_h + r * d->dil_h;
                                const int64_t iw = ow * d->stride_w - d->pad_w + s * d->dil_w;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                const int64_t ci = (k / kg) * cg + c;
                                fn(u, (size_t)(((n * d->k + k) * d->oh + oh) * d->ow + ow),
                                   (size_t)(((n * d->c + ci) * d->h + ih) * d->w + iw),
                                   (size_t)(((k * cg + c) * d->r + r) * d->s + s));
                            }
}

typedef struct terms {
    const float *x, *w, *dy;
    double *y, *dx, *dw;
} terms;

static void fwd_term(void *u, size_t yi, size_t xi, size_t wi) {
    terms *t = u;
    t->y[yi] += (double)t->x[xi] * (double)t->w[wi];
}

static void bwd_term(void *u, size_t yi, size_t xi, size_t wi) {
    terms *t = u;
    t->dx[xi] += (double)t->dy[yi] * (double)t->w[wi];
    t->dw[wi] += (double)t->dy[yi] * (double)t->x[xi];
}

/* y (N, K, OH, OW) in double. */
static double *direct_forward(const nc__conv_desc *d, const float *x, const float *w, const float *b) {
    double *y = tu_dzeros(ysize(d));
    terms t = {x, w, NULL, y, NULL, NULL};
    for_each_term(d, fwd_term, &t);
    if (b)
        for (size_t i = 0; i < ysize(d); i++) y[i] += b[(i / (size_t)(d->oh * d->ow)) % (size_t)d->k];
    return y;
}

/* dx, dw, db in double, starting from the given float values (accumulation). */
static void direct_backward(const nc__conv_desc *d, const float *dy, const float *x, const float *w,
                            const float *dx0, const float *dw0, const float *db0, double **dx,
                            double **dw, double **db) {
    *dx = tu_dzeros(xsize(d));
    *dw = tu_dzeros(wsize(d));
    *db = tu_dzeros((size_t)d->k);
    for (size_t i = 0; i < xsize(d); i++) (*dx)[i] = dx0[i];
    for (size_t i = 0; i < wsize(d); i++) (*dw)[i] = dw0[i];
    for (int64_t k = 0; k < d->k; k++) (*db)[k] = db0[k];
    terms t = {x, w, dy, NULL, *dx, *dw};
    for_each_term(d, bwd_term, &t);
    for (size_t i = 0; i < ysize(d); i++) (*db)[(i / (size_t)(d->oh * d->ow)) % (size_t)d->k] += dy[i];
}

static void test_conv2d_forward_matches_direct(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCONV; ci++) {
        const nc__conv_desc d = desc_of(&conv_cases[ci]);
        float *x = tu_rand(xsize(&d), -1, 1, 10 * ci + 1);
        float *w = tu_rand(wsize(&d), -1, 1, 10 * ci + 2);
        float *b = conv_cases[ci].bias ? tu_rand((size_t)d.k, -1, 1, 10 * ci + 3) : NULL;
        double *ref = direct_forward(&d, x, w, b);
        for (int nt = 1; nt <= 2; nt++) {
            float *y = tu_rand(ysize(&d), 5, 6, 99); /* garbage: forward overwrites */
            nc__ref_conv2d_forward(tu_kctx, nt, &d, y, x, w, b);
            check_below(nt == 1 ? "conv forward nt=1" : "conv forward nt=2", conv_cases[ci].name,
                        err_vs(y, ref, ysize(&d)), TOL);
            free(y);
        }
        free(x);
        free(w);
        free(b);
        free(ref);
    }
}

/* dx, dw, db against the direct formula; buffers start pre-filled, so this also
 * checks that the kernel adds to them. */
static void test_conv2d_backward_matches_direct(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCONV; ci++) {
        const nc__conv_desc d = desc_of(&conv_cases[ci]);
        float *x = tu_rand(xsize(&d), -1, 1, 10 * ci + 1);
        float *w = tu_rand(wsize(&d), -1, 1, 10 * ci + 2);
        float *dy = tu_rand(ysize(&d), -1, 1, 10 * ci + 4);
        float *dx0 = tu_rand(xsize(&d), -1, 1, 10 * ci + 5);
        float *dw0 = tu_rand(wsize(&d), -1, 1, 10 * ci + 6);
        float *db0 = tu_rand((size_t)d.k, -1, 1, 10 * ci + 7);
        double *rdx, *rdw, *rdb;
        direct_backward(&d, dy, x, w, dx0, dw0, db0, &rdx, &rdw, &rdb);
        for (int nt = 1; nt <= 2; nt++) {
            float *dx = copy_of(dx0, xsize(&d)), *dw = copy_of(dw0, wsize(&d));
            float *db = copy_of(db0, (size_t)d.k);
            nc__ref_conv2d_backward(tu_kctx, nt, &d, dx, dw, db, dy, x, w);
            check_below("conv backward dx", conv_cases[ci].name, err_vs(dx, rdx, xsize(&d)), TOL);
            check_below("conv backward dw", conv_cases[ci].name, err_vs(dw, rdw, wsize(&d)), TOL);
            check_below("conv backward db", conv_cases[ci].name, err_vs(db, rdb, (size_t)d.k), TOL);
            free(dx);
            free(dw);
            free(db);
        }
        free(x);
        free(w);
        free(dy);
        free(dx0);
        free(dw0);
        free(db0);
        free(rdx);
        free(rdw);
        free(rdb);
    }
}

/* dx and db may be NULL; dw is still accumulated. */
static void test_conv2d_backward_null_dx_db(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCONV; ci += 3) {
        const nc__conv_desc d = desc_of(&conv_cases[ci]);
        float *x = tu_rand(xsize(&d), -1, 1, 1), *w = tu_rand(wsize(&d), -1, 1, 2);
        float *dy = tu_rand(ysize(&d), -1, 1, 3), *dw0 = tu_rand(wsize(&d), -1, 1, 4);
        float *dx0 = tu_zeros(xsize(&d)), *db0 = tu_zeros((size_t)d.k);
        double *rdx, *rdw, *rdb;
        direct_backward(&d, dy, x, w, dx0, dw0, db0, &rdx, &rdw, &rdb);
        float *dw = copy_of(dw0, wsize(&d));
        nc__ref_conv2d_backward(tu_kctx, 2, &d, NULL, dw, NULL, dy, x, w);
        check_below("conv backward dw (dx, db NULL)", conv_cases[ci].name, err_vs(dw, rdw, wsize(&d)),
                    TOL);
        free(x);
        free(w);
        free(dy);
        free(dw0);
        free(dx0);
        free(db0);
        free(dw);
        free(rdx);
        free(rdw);
        free(rdb);
    }
}

/* Two backward calls into the same buffers give twice one call (+= semantics). */
static void test_conv2d_backward_accumulates(void **state) {
    (void)state;
    const nc__conv_desc d = desc_of(&conv_cases[4]);
    float *x = tu_rand(xsize(&d), -1, 1, 1), *w = tu_rand(wsize(&d), -1, 1, 2), *dy = tu_rand(ysize(&d), -1, 1, 3);
    float *dx1 = tu_zeros(xsize(&d)), *dw1 = tu_zeros(wsize(&d)), *db1 = tu_zeros((size_t)d.k);
    float *dx2 = tu_zeros(xsize(&d)), *dw2 = tu_zeros(wsize(&d)), *db2 = tu_zeros((size_t)d.k);
    nc__ref_conv2d_backward(tu_kctx, 2, &d, dx1, dw1, db1, dy, x, w);
    nc__ref_conv2d_backward(tu_kctx, 2, &d, dx2, dw2, db2, dy, x, w);
    nc__ref_conv2d_backward(tu_kctx, 2, &d, dx2, dw2, db2, dy, x, w);
    for (size_t i = 0; i < xsize(&d); i++) dx1[i] *= 2;
    for (size_t i = 0; i < wsize(&d); i++) dw1[i] *= 2;
    for (int64_t i = 0; i < d.k; i++) db1[i] *= 2;
    check_below("dx twice", "groups 4", tu_norm_err(dx2, dx1, xsize(&d)), TOL);
    check_below("dw twice", "groups 4", tu_norm_err(dw2, dw1, wsize(&d)), TOL);
    check_below("db twice", "groups 4", tu_norm_err(db2, db1, (size_t)d.k), TOL);
    free(x);
    free(w);
    free(dy);
    free(dx1);
    free(dw1);
    free(db1);
    free(dx2);
    free(dw2);
    free(db2);
}

/* loss = sum(y * r) in double; its gradient w.r.t. y is r. */
typedef struct conv_loss {
    const nc__conv_desc *d;
    float *x, *w, *b, *y;
    const float *r;
} conv_loss;

static double conv_loss_fn(void *user) {
    conv_loss *l = user;
    nc__ref_conv2d_forward(tu_kctx, 1, l->d, l->y, l->x, l->w, l->b);
    double s = 0;
    for (size_t i = 0; i < ysize(l->d); i++) s += (double)l->y[i] * (double)l->r[i];
    return s;
}

static void test_conv2d_backward_finite_differences(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCONV; ci++) {
        const nc__conv_desc d = desc_of(&conv_cases[ci]);
        if (ysize(&d) * wsize(&d) > 2000000) continue; /* keep the suite fast */
        float *x = tu_rand(xsize(&d), -1, 1, 10 * ci + 1), *w = tu_rand(wsize(&d), -1, 1, 10 * ci + 2);
        float *b = tu_rand((size_t)d.k, -1, 1, 10 * ci + 3), *r = tu_rand(ysize(&d), -1, 1, 10 * ci + 4);
        float *y = tu_zeros(ysize(&d));
        float *dx = tu_zeros(xsize(&d)), *dw = tu_zeros(wsize(&d)), *db = tu_zeros((size_t)d.k);
        nc__ref_conv2d_backward(tu_kctx, 2, &d, dx, dw, db, r, x, w);
        conv_loss l = {&d, x, w, b, y, r};
        const char *name = conv_cases[ci].name;
        check_below("fd dx", name, tu_grad_check(x, dx, xsize(&d), conv_loss_fn, &l, 1e-2f, 12), 1e-3);
        check_below("fd dw", name, tu_grad_check(w, dw, wsize(&d), conv_loss_fn, &l, 1e-2f, 12), 1e-3);
        check_below("fd db", name, tu_grad_check(b, db, (size_t)d.k, conv_loss_fn, &l, 1e-2f, 6), 1e-3);
        free(x);
        free(w);
        free(b);
        free(r);
        free(y);
        free(dx);
        free(dw);
        free(db);
    }
}

/* Forward and dx do not depend on nt (bitwise); dw sums per-thread partials, so it
 * may differ in rounding across nt but is repeatable for one nt. */
static void test_conv2d_thread_count_determinism(void **state) {
    (void)state;
    const conv_case cases[] = {
        {8, 16, 12, 12, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, "8x16x12x12 3x3"},
        {6, 32, 6, 6, 32, 3, 3, 8, 1, 1, 1, 1, 1, 1, 0, "grouped"},
        {1, 16, 20, 20, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, "n=1"},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const nc__conv_desc d = desc_of(&cases[ci]);
        float *x = tu_rand(xsize(&d), -1, 1, 1), *w = tu_rand(wsize(&d), -1, 1, 2);
        float *b = tu_rand((size_t)d.k, -1, 1, 3), *dy = tu_rand(ysize(&d), -1, 1, 4);
        float *y[3], *dx[3], *dw[3], *db[3];
        const int nts[3] = {1, 2, 2};
        for (int i = 0; i < 3; i++) {
            y[i] = tu_zeros(ysize(&d));
            dx[i] = tu_zeros(xsize(&d));
            dw[i] = tu_zeros(wsize(&d));
            db[i] = tu_zeros((size_t)d.k);
            nc__ref_conv2d_forward(tu_kctx, nts[i], &d, y[i], x, w, b);
            nc__ref_conv2d_backward(tu_kctx, nts[i], &d, dx[i], dw[i], db[i], dy, x, w);
        }
        assert_memory_equal(y[0], y[1], ysize(&d) * sizeof(float));
        assert_memory_equal(dx[0], dx[1], xsize(&d) * sizeof(float));
        assert_memory_equal(db[0], db[1], (size_t)d.k * sizeof(float));
        check_below("dw nt=1 vs nt=2", cases[ci].name, tu_norm_err(dw[1], dw[0], wsize(&d)), TOL);
        assert_memory_equal(dw[1], dw[2], wsize(&d) * sizeof(float));
        for (int i = 0; i < 3; i++) {
            free(y[i]);
            free(dx[i]);
            free(dw[i]);
            free(db[i]);
        }
        free(x);
        free(w);
        free(b);
        free(dy);
    }
}

/* The scratch-free fallback the kernels use when allocation fails. */
static void test_conv2d_direct_fallback_matches(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCONV; ci += 2) {
        const nc__conv_desc d = desc_of(&conv_cases[ci]);
        float *x = tu_rand(xsize(&d), -1, 1, 1), *w = tu_rand(wsize(&d), -1, 1, 2);
        float *b = conv_cases[ci].bias ? tu_rand((size_t)d.k, -1, 1, 3) : NULL;
        float *dy = tu_rand(ysize(&d), -1, 1, 4);
        float *dx0 = tu_rand(xsize(&d), -1, 1, 5), *dw0 = tu_rand(wsize(&d), -1, 1, 6);
        float *db0 = tu_rand((size_t)d.k, -1, 1, 7);
        double *ref = direct_forward(&d, x, w, b), *rdx, *rdw, *rdb;
        direct_backward(&d, dy, x, w, dx0, dw0, db0, &rdx, &rdw, &rdb);
        float *y = tu_zeros(ysize(&d));
        nc__ref_conv2d_forward_direct(&d, y, x, w, b);
        check_below("direct forward", conv_cases[ci].name, err_vs(y, ref, ysize(&d)), TOL);
        float *dx = copy_of(dx0, xsize(&d)), *dw = copy_of(dw0, wsize(&d)), *db = copy_of(db0, (size_t)d.k);
        nc__ref_conv2d_backward_direct(&d, dx, dw, db, dy, x, w);
        check_below("direct dx", conv_cases[ci].name, err_vs(dx, rdx, xsize(&d)), TOL);
        check_below("direct dw", conv_cases[ci].name, err_vs(dw, rdw, wsize(&d)), TOL);
        check_below("direct db", conv_cases[ci].name, err_vs(db, rdb, (size_t)d.k), TOL);
        free(x);
        free(w);
        free(b);
        free(dy);
        free(dx0);
        free(dw0);
        free(db0);
        free(ref);
        free(rdx);
        free(rdw);
        free(rdb);
        free(y);
        free(dx);
        free(dw);
        free(db);
    }
}

/* ------------------------------------------------------------------- linear */

typedef struct lin_case {
    int64_t n, in, out;
} lin_case;
static const lin_case lin_cases[] = {{1, 1, 1}, {3, 7, 5}, {64, 512, 10}, {5, 300, 129}, {2, 9, 1000}};
#define NLIN (sizeof lin_cases / sizeof lin_cases[0])

static void test_linear_forward_matches_direct(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NLIN; ci++) {
        const nc__linear_desc d = {.n = lin_cases[ci].n, .in = lin_cases[ci].in, .out = lin_cases[ci].out};
        float *x = tu_rand((size_t)(d.n * d.in), -1, 1, 1), *w = tu_rand((size_t)(d.out * d.in), -1, 1, 2);
        float *b = tu_rand((size_t)d.out, -1, 1, 3);
        for (int with_b = 0; with_b < 2; with_b++) {
            double *ref = tu_dzeros((size_t)(d.n * d.out));
            for (int64_t i = 0; i < d.n; i++)
                for (int64_t o = 0; o < d.out; o++) {
                    double s = with_b ? b[o] : 0.0;
                    for (int64_t j = 0; j < d.in; j++) s += (double)x[i * d.in + j] * w[o * d.in + j];
                    ref[i * d.out + o] = s;
                }
            for (int nt = 1; nt <= 2; nt++) {
                float *y = tu_rand((size_t)(d.n * d.out), 7, 8, 9);
                nc__ref_linear_forward(tu_kctx, nt, &d, y, x, w, with_b ? b : NULL);
                char cfg[64];
                snprintf(cfg, sizeof cfg, "n %ld in %ld out %ld bias %d nt %d", (long)d.n, (long)d.in,
                         (long)d.out, with_b, nt);
                check_below("linear forward", cfg, err_vs(y, ref, (size_t)(d.n * d.out)), TOL);
                free(y);
            }
            free(ref);
        }
        free(x);
        free(w);
        free(b);
    }
}

static void test_linear_backward_matches_direct(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NLIN; ci++) {
        const nc__linear_desc d = {.n = lin_cases[ci].n, .in = lin_cases[ci].in, .out = lin_cases[ci].out};
        const size_t nx = (size_t)(d.n * d.in), nw = (size_t)(d.out * d.in), ny = (size_t)(d.n * d.out);
        float *x = tu_rand(nx, -1, 1, 1), *w = tu_rand(nw, -1, 1, 2), *dy = tu_rand(ny, -1, 1, 3);
        float *dx0 = tu_rand(nx, -1, 1, 4), *dw0 = tu_rand(nw, -1, 1, 5), *db0 = tu_rand((size_t)d.out, -1, 1, 6);
        double *rdx = tu_dzeros(nx), *rdw = tu_dzeros(nw), *rdb = tu_dzeros((size_t)d.out);
        for (int64_t i = 0; i < d.n; i++)
            for (int64_t j = 0; j < d.in; j++) {
                double s = dx0[i * d.in + j];
                for (int64_t o = 0; o < d.out; o++) s += (double)dy[i * d.out + o] * w[o * d.in + j];
                rdx[i * d.in + j] = s;
            }
        for (int64_t o = 0; o < d.out; o++) {
            for (int64_t j = 0; j < d.in; j++) {
                double s = dw0[o * d.in + j];
                for (int64_t i = 0; i < d.n; i++) s += (double)dy[i * d.out + o] * x[i * d.in + j];
                rdw[o * d.in + j] = s;
            }
            double s = db0[o];
            for (int64_t i = 0; i < d.n; i++) s += dy[i * d.out + o];
            rdb[o] = s;
        }
        for (int nt = 1; nt <= 2; nt++) {
            float *dx = copy_of(dx0, nx), *dw = copy_of(dw0, nw), *db = copy_of(db0, (size_t)d.out);
            nc__ref_linear_backward(tu_kctx, nt, &d, dx, dw, db, dy, x, w);
            char cfg[64];
            snprintf(cfg, sizeof cfg, "n %ld in %ld out %ld nt %d", (long)d.n, (long)d.in, (long)d.out, nt);
            check_below("linear dx", cfg, err_vs(dx, rdx, nx), TOL);
            check_below("linear dw", cfg, err_vs(dw, rdw, nw), TOL);
            check_below("linear db", cfg, err_vs(db, rdb, (size_t)d.out), TOL);
            /* NULL dx and db */
            float *dw2 = copy_of(dw0, nw);
            nc__ref_linear_backward(tu_kctx, nt, &d, NULL, dw2, NULL, dy, x, w);
            check_below("linear dw (dx, db NULL)", cfg, err_vs(dw2, rdw, nw), TOL);
            free(dx);
            free(dw);
            free(db);
            free(dw2);
        }
        free(x);
        free(w);
        free(dy);
        free(dx0);
        free(dw0);
        free(db0);
        free(rdx);
        free(rdw);
        free(rdb);
    }
}

typedef struct lin_loss {
    const nc__linear_desc *d;
    float *x, *w, *b, *y;
    const float *r;
} lin_loss;

static double lin_loss_fn(void *user) {
    lin_loss *l = user;
    nc__ref_linear_forward(tu_kctx, 1, l->d, l->y, l->x, l->w, l->b);
    double s = 0;
    for (int64_t i = 0; i < l->d->n * l->d->out; i++) s += (double)l->y[i] * (double)l->r[i];
    return s;
}

static void test_linear_backward_finite_differences(void **state) {
    (void)state;
    const nc__linear_desc d = {.n = 4, .in = 33, .out = 7};
    const size_t nx = (size_t)(d.n * d.in), nw = (size_t)(d.out * d.in), ny = (size_t)(d.n * d.out);
    float *x = tu_rand(nx, -1, 1, 1), *w = tu_rand(nw, -1, 1, 2), *b = tu_rand((size_t)d.out, -1, 1, 3);
    float *r = tu_rand(ny, -1, 1, 4), *y = tu_zeros(ny);
    float *dx = tu_zeros(nx), *dw = tu_zeros(nw), *db = tu_zeros((size_t)d.out);
    nc__ref_linear_backward(tu_kctx, 1, &d, dx, dw, db, r, x, w);
    lin_loss l = {&d, x, w, b, y, r};
    check_below("fd dx", "linear", tu_grad_check(x, dx, nx, lin_loss_fn, &l, 1e-2f, 20), 1e-3);
    check_below("fd dw", "linear", tu_grad_check(w, dw, nw, lin_loss_fn, &l, 1e-2f, 20), 1e-3);
    check_below("fd db", "linear", tu_grad_check(b, db, (size_t)d.out, lin_loss_fn, &l, 1e-2f, 7), 1e-3);
    free(x);
    free(w);
    free(b);
    free(r);
    free(y);
    free(dx);
    free(dw);
    free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_matches_naive_all_trans),
        cmocka_unit_test(test_gemm_every_isa),
        cmocka_unit_test(test_gemm_beta_zero_overwrites_nan),
        cmocka_unit_test(test_gemm_zero_sizes),
        cmocka_unit_test(test_gemm_thread_count_invariant),
        cmocka_unit_test(test_conv2d_forward_matches_direct),
        cmocka_unit_test(test_conv2d_backward_matches_direct),
        cmocka_unit_test(test_conv2d_backward_null_dx_db),
        cmocka_unit_test(test_conv2d_backward_accumulates),
        cmocka_unit_test(test_conv2d_backward_finite_differences),
        cmocka_unit_test(test_conv2d_thread_count_determinism),
        cmocka_unit_test(test_conv2d_direct_fallback_matches),
        cmocka_unit_test(test_linear_forward_matches_direct),
        cmocka_unit_test(test_linear_backward_matches_direct),
        cmocka_unit_test(test_linear_backward_finite_differences),
    };
    return cmocka_run_group_tests(tests, tu_kctx_setup, tu_kctx_teardown);
}
