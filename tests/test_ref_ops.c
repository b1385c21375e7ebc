/* test_ref_ops.c — the reference backend's batchnorm, pooling and element-wise kernels:
 * forward against direct formulas in double, backward against finite differences,
 * accumulation semantics, dropout statistics, SGD against torch.optim.SGD's formula,
 * PyTorch golden values (fixtures/ref_ops_golden.h) and the nc__backend table. */
#include "testutil.h"

#include "backend/ref/ref.h"
#include "core/context.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/ref_ops_golden.h"

/* ------------------------------------------------------------------ helpers */

static float *filled(size_t n, float v) {
    float *p = tu_zeros(n);
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

static float *copy_of(const float *x, size_t n) {
    float *p = tu_zeros(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* A random permutation of 0.05 * (0..n-1) - offset: distinct values spaced by more
 * than twice the finite-difference step, so no max-pool window has a near tie. */
static float *distinct(size_t n, uint64_t seed) {
    float *p = tu_zeros(n);
    for (size_t i = 0; i < n; i++) p[i] = 0.05f * (float)i - 0.025f * (float)n;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(nc__rng_u64(seed, 3, i) % i);
        float t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    return p;
}

/* Random values in +-[0.05, 1): away from relu's kink. */
static float *away_from_zero(size_t n, uint64_t seed) {
    float *p = tu_rand(n, -1.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i++) p[i] = p[i] < 0 ? p[i] - 0.05f : p[i] + 0.05f;
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

static void assert_err_below(double e, double tol, const char *what) {
    if (!(e <= tol)) fail_msg("%s: error %.3g exceeds %.3g", what, e, tol);
}

/* Finite-difference harness: loss = sum(y * r) after `forward` recomputes y. */
typedef struct fd_case fd_case;
struct fd_case {
    void (*forward)(fd_case *c);
    float *y;        /* (ny) */
    const float *r;  /* (ny) fixed random weights */
    size_t ny;
};

static double fd_loss(void *user) {
    fd_case *c = user;
    c->forward(c);
    double s = 0;
    for (size_t i = 0; i < c->ny; i++) s += (double)c->y[i] * (double)c->r[i];
    return s;
}

static void grad_check(fd_case *c, float *x, const float *g, size_t n, float eps, double tol,
                       const char *what) {
    int probes = n <= 400 ? (int)n : 400;
    double e = tu_grad_check(x, g, n, fd_loss, c, eps, probes);
    assert_err_below(e, tol, what);
}

/* ---------------------------------------------------------------- batchnorm */

static nc__bn_desc bn_desc(int64_t n, int64_t c, int64_t hw) {
    nc__bn_desc d = {.n = n, .c = c, .hw = hw, .eps = 1e-5f, .momentum = 0.1f, .cache = NULL};
    return d;
}

/* y = (x - mean) / sqrt(var + eps) * g + b with batch statistics, in double. */
static void bn_train_formula(const nc__bn_desc *d, const float *x, const float *g, const float *b,
                             double *y, double *mean, double *var) {
    size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw;
    for (size_t c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < HW; i++) s += x[(n * C + c) * HW + i];
        double mu = s / (double)(N * HW);
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < HW; i++) {
                double t = x[(n * C + c) * HW + i] - mu;
                s2 += t * t;
            }
        double v = s2 / (double)(N * HW);
        mean[c] = mu;
        var[c] = v;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < HW; i++) {
                size_t k = (n * C + c) * HW + i;
                y[k] = (x[k] - mu) / sqrt(v + (double)d->eps) * g[c] + b[c];
            }
    }
}

static const int64_t bn_shapes[][3] = {{1, 3, 35}, {2, 5, 21}, {3, 4, 1}, {2, 7, 1}, {3, 2, 13}};

static void test_batchnorm_forward_train_matches_formula(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof bn_shapes / sizeof bn_shapes[0]; t++) {
        nc__bn_desc d = bn_desc(bn_shapes[t][0], bn_shapes[t][1], bn_shapes[t][2]);
        size_t C = (size_t)d.c, n = (size_t)(d.n * d.c * d.hw);
        float *x = tu_rand(n, -2.0f, 3.0f, 10 + t), *g = tu_rand(C, 0.5f, 1.5f, 20 + t);
        float *b = tu_rand(C, -0.5f, 0.5f, 30 + t), *y = tu_zeros(n);
        float *sm = tu_zeros(C), *si = tu_zeros(C), *rm = tu_rand(C, -1, 1, 40 + t), *rv = tu_rand(C, 0.5f, 2, 50 + t);
        double *yr = tu_dzeros(n), *mean = tu_dzeros(C), *var = tu_dzeros(C), *inv = tu_dzeros(C);
        bn_train_formula(&d, x, g, b, yr, mean, var);
        for (size_t c = 0; c < C; c++) inv[c] = 1.0 / sqrt(var[c] + (double)d.eps);
        nc__ref_batchnorm_forward_train(2, &d, y, sm, si, rm, rv, x, g, b);
        assert_err_below(err_vs(y, yr, n), 1e-6, "bn train y");
        assert_err_below(err_vs(sm, mean, C), 1e-6, "bn save_mean");
        assert_err_below(err_vs(si, inv, C), 1e-6, "bn save_invstd");
        free(x), free(g), free(b), free(y), free(sm), free(si), free(rm), free(rv);
        free(yr), free(mean), free(var), free(inv);
    }
}

static void test_batchnorm_running_stats_unbiased(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof bn_shapes / sizeof bn_shapes[0]; t++) {
        nc__bn_desc d = bn_desc(bn_shapes[t][0], bn_shapes[t][1], bn_shapes[t][2]);
        d.momentum = 0.3f;
        size_t C = (size_t)d.c, n = (size_t)(d.n * d.c * d.hw), cnt = (size_t)(d.n * d.hw);
        float *x = tu_rand(n, -2.0f, 3.0f, 60 + t), *g = filled(C, 1), *b = tu_zeros(C), *y = tu_zeros(n);
        float *sm = tu_zeros(C), *si = tu_zeros(C), *rm = tu_rand(C, -1, 1, 70 + t), *rv = tu_rand(C, 0.5f, 2, 80 + t);
        double *yr = tu_dzeros(n), *mean = tu_dzeros(C), *var = tu_dzeros(C), *erm = tu_dzeros(C), *erv = tu_dzeros(C);
        bn_train_formula(&d, x, g, b, yr, mean, var);
        for (size_t c = 0; c < C; c++) {
            erm[c] = 0.7 * rm[c] + 0.3 * mean[c];
            erv[c] = 0.7 * rv[c] + 0.3 * var[c] * (double)cnt / (double)(cnt - 1);
        }
        nc__ref_batchnorm_forward_train(1, &d, y, sm, si, rm, rv, x, g, b);
        assert_err_below(err_vs(rm, erm, C), 1e-6, "running_mean");
        assert_err_below(err_vs(rv, erv, C), 1e-6, "running_var (unbiased)");
        free(x), free(g), free(b), free(y), free(sm), free(si), free(rm), free(rv);
        free(yr), free(mean), free(var), free(erm), free(erv);
    }
}

static void test_batchnorm_forward_infer_uses_running_stats(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof bn_shapes / sizeof bn_shapes[0]; t++) {
        nc__bn_desc d = bn_desc(bn_shapes[t][0], bn_shapes[t][1], bn_shapes[t][2]);
        size_t C = (size_t)d.c, HW = (size_t)d.hw, n = (size_t)(d.n * d.c * d.hw);
        float *x = tu_rand(n, -2.0f, 3.0f, 90 + t), *g = tu_rand(C, 0.5f, 1.5f, 91 + t);
        float *b = tu_rand(C, -0.5f, 0.5f, 92 + t), *y = tu_zeros(n);
        float *rm = tu_rand(C, -1, 1, 93 + t), *rv = tu_rand(C, 0.2f, 2, 94 + t);
        double *yr = tu_dzeros(n);
        for (size_t i = 0; i < n; i++) {
            size_t c = (i / HW) % C;
            yr[i] = (x[i] - (double)rm[c]) / sqrt((double)rv[c] + (double)d.eps) * g[c] + b[c];
        }
        nc__ref_batchnorm_forward_infer(3, &d, y, x, g, b, rm, rv);
        assert_err_below(err_vs(y, yr, n), 1e-6, "bn infer y");
        free(x), free(g), free(b), free(y), free(rm), free(rv), free(yr);
    }
}

typedef struct bn_case {
    fd_case base;
    nc__bn_desc d;
    float *x, *g, *b, *sm, *si, *rm, *rv;
} bn_case;

static void bn_forward(fd_case *c) {
    bn_case *k = (bn_case *)c;
    nc__ref_batchnorm_forward_train(2, &k->d, c->y, k->sm, k->si, k->rm, k->rv, k->x, k->g, k->b);
}

static void bn_grad_check(int64_t N, int64_t C, int64_t HW, uint64_t seed) {
    bn_case k = {.d = bn_desc(N, C, HW)};
    size_t c = (size_t)C, n = (size_t)(N * C * HW);
    k.x = tu_rand(n, -2.0f, 2.0f, seed);
    k.g = tu_rand(c, 0.5f, 1.5f, seed + 1);
    k.b = tu_rand(c, -0.5f, 0.5f, seed + 2);
    k.sm = tu_zeros(c), k.si = tu_zeros(c), k.rm = tu_zeros(c), k.rv = filled(c, 1);
    k.base = (fd_case){.forward = bn_forward, .y = tu_zeros(n), .r = tu_rand(n, -1, 1, seed + 3), .ny = n};
    float *dx = tu_zeros(n), *dg = tu_zeros(c), *db = tu_zeros(c);
    bn_forward(&k.base);
    nc__ref_batchnorm_backward(2, &k.d, dx, dg, db, k.base.r, k.x, k.g, k.sm, k.si);
    grad_check(&k.base, k.x, dx, n, 1e-2f, 1e-2, "bn dx");
    grad_check(&k.base, k.g, dg, c, 1e-2f, 1e-3, "bn dgamma");
    grad_check(&k.base, k.b, db, c, 1e-2f, 1e-3, "bn dbeta");
    free(k.x), free(k.g), free(k.b), free(k.sm), free(k.si), free(k.rm), free(k.rv);
    free(k.base.y), free((float *)k.base.r), free(dx), free(dg), free(db);
}

static void test_batchnorm_backward_2d_finite_diff(void **state) {
    (void)state;
    bn_grad_check(1, 3, 35, 100);
    bn_grad_check(2, 5, 9, 110);
    bn_grad_check(3, 2, 7, 120);
}

static void test_batchnorm_backward_1d_finite_diff(void **state) {
    (void)state;
    /* (N = 2 is legal but degenerate: xhat = +-1 whatever x, so dx is ~0 and the
     * check would only measure rounding noise) */
    bn_grad_check(3, 7, 1, 130);
    bn_grad_check(3, 5, 1, 140);
}

static void test_batchnorm_backward_accumulates(void **state) {
    (void)state;
    nc__bn_desc d = bn_desc(2, 3, 5);
    size_t C = 3, n = 30;
    float *x = tu_rand(n, -1, 1, 150), *g = tu_rand(C, 0.5f, 1.5f, 151), *b = tu_zeros(C), *y = tu_zeros(n);
    float *dy = tu_rand(n, -1, 1, 152), *sm = tu_zeros(C), *si = tu_zeros(C), *rm = tu_zeros(C), *rv = filled(C, 1);
    float *dx0 = tu_zeros(n), *dg0 = tu_zeros(C), *db0 = tu_zeros(C);
    float *dx1 = filled(n, 1.5f), *dg1 = filled(C, -2.0f), *db1 = filled(C, 0.25f);
    nc__ref_batchnorm_forward_train(1, &d, y, sm, si, rm, rv, x, g, b);
    nc__ref_batchnorm_backward(1, &d, dx0, dg0, db0, dy, x, g, sm, si);
    nc__ref_batchnorm_backward(1, &d, dx1, dg1, db1, dy, x, g, sm, si);
    for (size_t i = 0; i < n; i++) assert_float_equal(dx1[i], dx0[i] + 1.5f, 1e-6);
    for (size_t i = 0; i < C; i++) {
        assert_float_equal(dg1[i], dg0[i] - 2.0f, 1e-6);
        assert_float_equal(db1[i], db0[i] + 0.25f, 1e-6);
    }
    /* dx may be NULL: only the parameter gradients are written */
    nc__ref_batchnorm_backward(1, &d, NULL, dg0, db0, dy, x, g, sm, si);
    for (size_t i = 0; i < C; i++) {
        assert_float_equal(dg0[i], 2 * (dg1[i] + 2.0f), 1e-5);
        assert_float_equal(db0[i], 2 * (db1[i] - 0.25f), 1e-5);
    }
    free(x), free(g), free(b), free(y), free(dy), free(sm), free(si), free(rm), free(rv);
    free(dx0), free(dg0), free(db0), free(dx1), free(dg1), free(db1);
}

/* ---------------------------------------------------------------- pooling */

static nc__pool_desc pool_desc(nc__pool_mode mode, int64_t n, int64_t c, int64_t h, int64_t w,
                               int64_t k, int64_t s, int64_t p) {
    nc__pool_desc d = {.mode = mode, .n = n, .c = c, .h = h, .w = w, .kh = k, .kw = k,
                       .stride_h = s, .stride_w = s, .pad_h = p, .pad_w = p, .cache = NULL};
    d.oh = (h + 2 * p - k) / s + 1; /* floor mode */
    d.ow = (w + 2 * p - k) / s + 1;
    return d;
}

static nc__pool_desc adaptive_desc(int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow) {
    nc__pool_desc d = {.mode = NC__POOL_ADAPTIVE_AVG, .n = n, .c = c, .h = h, .w = w, .oh = oh, .ow = ow};
    return d;
}

/* Direct formulas, one output at a time. */
static void pool_formula(const nc__pool_desc *d, const float *x, double *y) {
    size_t planes = (size_t)(d->n * d->c);
    for (size_t p = 0; p < planes; p++)
        for (int64_t oh = 0; oh < d->oh; oh++)
            for (int64_t ow = 0; ow < d->ow; ow++) {
                const float *xp = x + p * (size_t)(d->h * d->w);
                double out;
                if (d->mode == NC__POOL_ADAPTIVE_AVG) {
                    int64_t h0 = (int64_t)floor((double)oh * d->h / d->oh);
                    int64_t h1 = (int64_t)ceil((double)(oh + 1) * d->h / d->oh);
                    int64_t w0 = (int64_t)floor((double)ow * d->w / d->ow);
                    int64_t w1 = (int64_t)ceil((double)(ow + 1) * d->w / d->ow);
                    double s = 0;
                    for (int64_t i = h0; i < h1; i++)
                        for (int64_t j = w0; j < w1; j++) s += xp[i * d->w + j];
                    out = s / (double)((h1 - h0) * (w1 - w0));
                } else {
                    double best = -INFINITY, s = 0;
                    for (int64_t r = 0; r < d->kh; r++)
                        for (int64_t q = 0; q < d->kw; q++) {
                            int64_t ih = oh * d->stride_h - d->pad_h + r;
                            int64_t iw = ow * d->stride_w - d->pad_w + q;
                            if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue; /* pad */
                            double v = xp[ih * d->w + iw];
                            s += v;
                            if (v > best) best = v;
                        }
                    out = d->mode == NC__POOL_MAX ? best : s / (double)(d->kh * d->kw);
                }
                y[(p * (size_t)d->oh + (size_t)oh) * (size_t)d->ow + (size_t)ow] = out;
            }
}

static nc__pool_desc pool_cases(int i) {
    switch (i) {
    case 0: return pool_desc(NC__POOL_MAX, 2, 3, 9, 11, 3, 2, 1);  /* the ResNet stem's pool */
    case 1: return pool_desc(NC__POOL_MAX, 1, 2, 7, 6, 2, 2, 0);   /* VGG's pool, odd H */
    case 2: return pool_desc(NC__POOL_MAX, 3, 1, 5, 5, 3, 1, 1);
    case 3: return pool_desc(NC__POOL_AVG, 2, 3, 9, 11, 3, 2, 1);
    case 4: return pool_desc(NC__POOL_AVG, 1, 2, 7, 7, 2, 2, 0);
    case 5: return pool_desc(NC__POOL_AVG, 3, 2, 6, 5, 3, 1, 1);
    case 6: return adaptive_desc(2, 3, 10, 13, 7, 7);              /* downsampling bins */
    case 7: return adaptive_desc(1, 2, 5, 5, 7, 7);                /* upsampling: overlapping */
    case 8: return adaptive_desc(3, 4, 9, 11, 1, 1);               /* global */
    default: return adaptive_desc(2, 1, 7, 7, 7, 7);               /* identity */
    }
}
#define POOL_CASES 10

static void test_pool_forward_matches_formula(void **state) {
    (void)state;
    for (int t = 0; t < POOL_CASES; t++) {
        nc__pool_desc d = pool_cases(t);
        size_t nx = (size_t)(d.n * d.c * d.h * d.w), ny = (size_t)(d.n * d.c * d.oh * d.ow);
        float *x = tu_rand(nx, -3, 2, 200 + (uint64_t)t), *y = tu_zeros(ny);
        double *yr = tu_dzeros(ny);
        pool_formula(&d, x, yr);
        nc__ref_pool2d_forward(2, &d, y, x);
        assert_err_below(err_vs(y, yr, ny), 1e-6, "pool forward");
        free(x), free(y), free(yr);
    }
}

typedef struct pool_case {
    fd_case base;
    nc__pool_desc d;
    float *x;
} pool_case;

static void pool_forward(fd_case *c) {
    pool_case *k = (pool_case *)c;
    nc__ref_pool2d_forward(2, &k->d, c->y, k->x);
}

static void test_pool_backward_finite_diff(void **state) {
    (void)state;
    for (int t = 0; t < POOL_CASES; t++) {
        pool_case k = {.d = pool_cases(t)};
        size_t nx = (size_t)(k.d.n * k.d.c * k.d.h * k.d.w), ny = (size_t)(k.d.n * k.d.c * k.d.oh * k.d.ow);
        /* max pool: no near ties; the averages: small values, so float rounding of
         * the outputs stays far below the finite-difference signal */
        k.x = k.d.mode == NC__POOL_MAX ? distinct(nx, 300 + (uint64_t)t) : tu_rand(nx, -1, 1, 300 + (uint64_t)t);
        k.base = (fd_case){.forward = pool_forward, .y = tu_zeros(ny), .r = tu_rand(ny, -1, 1, 310 + (uint64_t)t),
                           .ny = ny};
        float *dx = tu_zeros(nx);
        pool_forward(&k.base);
        nc__ref_pool2d_backward(2, &k.d, dx, k.base.r, k.x, k.base.y);
        grad_check(&k.base, k.x, dx, nx, 1e-2f, 1e-3, "pool dx");
        free(k.x), free(k.base.y), free((float *)k.base.r), free(dx);
    }
}

static void test_pool_backward_accumulates(void **state) {
    (void)state;
    for (int t = 0; t < POOL_CASES; t++) {
        nc__pool_desc d = pool_cases(t);
        size_t nx = (size_t)(d.n * d.c * d.h * d.w), ny = (size_t)(d.n * d.c * d.oh * d.ow);
        float *x = distinct(nx, 400 + (uint64_t)t), *y = tu_zeros(ny), *dy = tu_rand(ny, -1, 1, 410 + (uint64_t)t);
        float *dx0 = tu_zeros(nx), *dx1 = filled(nx, 0.75f);
        nc__ref_pool2d_forward(1, &d, y, x);
        nc__ref_pool2d_backward(1, &d, dx0, dy, x, y);
        nc__ref_pool2d_backward(3, &d, dx1, dy, x, y);
        for (size_t i = 0; i < nx; i++) assert_float_equal(dx1[i], dx0[i] + 0.75f, 1e-6);
        free(x), free(y), free(dy), free(dx0), free(dx1);
    }
}

static void test_maxpool_ties_go_to_first_max(void **state) {
    (void)state;
    nc__pool_desc d = pool_desc(NC__POOL_MAX, 1, 1, 4, 4, 2, 2, 0);
    float x[16] = {0}, y[4], dy[4] = {1, 2, 3, 4}, dx[16] = {0};
    nc__ref_pool2d_forward(1, &d, y, x);
    nc__ref_pool2d_backward(1, &d, dx, dy, x, y);
    for (int i = 0; i < 16; i++) {
        int r = i / 4, c = i % 4;
        float want = (r % 2 == 0 && c % 2 == 0) ? dy[(r / 2) * 2 + c / 2] : 0.0f;
        assert_float_equal(dx[i], want, 0);
    }
    /* a tie inside the window but after a larger value: the first maximum wins */
    float x2[16] = {1, 5, 0, 0, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, dx2[16] = {0};
    nc__ref_pool2d_backward(1, &d, dx2, dy, x2, y);
    assert_float_equal(dx2[1], 1.0f, 0);
    assert_float_equal(dx2[4] + dx2[5] + dx2[0], 0.0f, 0);
}

static void test_maxpool_padding_is_minus_infinity(void **state) {
    (void)state;
    /* all inputs negative: zero padding would win, -inf padding does not */
    nc__pool_desc d = pool_desc(NC__POOL_MAX, 1, 1, 3, 3, 3, 2, 1);
    float x[9] = {-9, -8, -7, -6, -5, -4, -3, -2, -1}, y[4];
    nc__ref_pool2d_forward(1, &d, y, x);
    assert_float_equal(y[0], -5.0f, 0);
    assert_float_equal(y[1], -4.0f, 0);
    assert_float_equal(y[2], -2.0f, 0);
    assert_float_equal(y[3], -1.0f, 0);
    /* and a NaN in a window propagates, as in PyTorch */
    x[4] = NAN;
    nc__ref_pool2d_forward(1, &d, y, x);
    for (int i = 0; i < 4; i++) assert_true(isnan(y[i]));
}

static void test_avgpool_counts_padding(void **state) {
    (void)state;
    nc__pool_desc d = pool_desc(NC__POOL_AVG, 1, 1, 3, 3, 3, 2, 1);
    float x[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, y[4];
    nc__ref_pool2d_forward(1, &d, y, x);
    for (int i = 0; i < 4; i++) assert_float_equal(y[i], 4.0f / 9.0f, 1e-7); /* corner windows */
}

/* Large enough for the kernels' parallel paths: every thread count gives the same
 * bits, since each channel / plane is reduced by one thread in a fixed order. */
static void test_bn_pool_thread_count_invariant(void **state) {
    (void)state;
    nc__bn_desc d = bn_desc(3, 5, 2501);
    size_t C = 5, n = 3 * 5 * 2501;
    float *x = tu_rand(n, -2, 2, 950), *g = tu_rand(C, 0.5f, 1.5f, 951), *b = tu_rand(C, -1, 1, 952);
    float *dy = tu_rand(n, -1, 1, 953), *out[2][6];
    for (int t = 0; t < 2; t++) {
        int nt = t ? 3 : 1;
        float *y = tu_zeros(n), *sm = tu_zeros(C), *si = tu_zeros(C), *rm = tu_zeros(C), *rv = filled(C, 1);
        float *dx = tu_zeros(n), *dg = tu_zeros(C), *db = tu_zeros(C);
        nc__ref_batchnorm_forward_train(nt, &d, y, sm, si, rm, rv, x, g, b);
        nc__ref_batchnorm_backward(nt, &d, dx, dg, db, dy, x, g, sm, si);
        out[t][0] = y, out[t][1] = dx, out[t][2] = dg, out[t][3] = db, out[t][4] = rv;
        out[t][5] = tu_zeros(n);
        nc__ref_batchnorm_forward_infer(nt, &d, out[t][5], x, g, b, rm, rv);
        free(sm), free(si), free(rm);
    }
    const size_t sizes[6] = {n, n, C, C, C, n};
    for (int i = 0; i < 6; i++) {
        assert_memory_equal(out[0][i], out[1][i], sizes[i] * sizeof(float));
        free(out[0][i]), free(out[1][i]);
    }
    for (int t = 0; t < POOL_CASES; t++) {
        nc__pool_desc p = pool_cases(t);
        p.n = 3, p.c = 1000; /* 3000 planes */
        size_t nx = (size_t)(p.n * p.c * p.h * p.w), ny = (size_t)(p.n * p.c * p.oh * p.ow);
        float *px = tu_rand(nx, -1, 1, 960 + (uint64_t)t), *pdy = tu_rand(ny, -1, 1, 970 + (uint64_t)t);
        float *y1 = tu_zeros(ny), *y3 = tu_zeros(ny), *dx1 = tu_zeros(nx), *dx3 = tu_zeros(nx);
        nc__ref_pool2d_forward(1, &p, y1, px);
        nc__ref_pool2d_forward(3, &p, y3, px);
        nc__ref_pool2d_backward(1, &p, dx1, pdy, px, y1);
        nc__ref_pool2d_backward(3, &p, dx3, pdy, px, y3);
        assert_memory_equal(y1, y3, ny * sizeof(float));
        assert_memory_equal(dx1, dx3, nx * sizeof(float));
        free(px), free(pdy), free(y1), free(y3), free(dx1), free(dx3);
    }
    free(x), free(g), free(b), free(dy);
}

/* ------------------------------------------------------------ element-wise */

typedef struct ew_case {
    fd_case base;
    float *x, *x2;
    size_t n;
    float p;
    uint64_t seed;
    int op; /* 0 relu, 1 add, 2 dropout */
} ew_case;

static void ew_forward(fd_case *c) {
    ew_case *k = (ew_case *)c;
    if (k->op == 0) nc__ref_relu_forward(2, k->n, c->y, k->x);
    if (k->op == 1) nc__ref_add_forward(2, k->n, c->y, k->x, k->x2);
    if (k->op == 2) nc__ref_dropout_forward(2, k->n, k->p, k->seed, c->y, k->x);
}

static void test_relu_forward_and_backward(void **state) {
    (void)state;
    size_t n = 777;
    ew_case k = {.n = n, .op = 0};
    k.x = away_from_zero(n, 500);
    k.base = (fd_case){.forward = ew_forward, .y = tu_zeros(n), .r = tu_rand(n, -1, 1, 501), .ny = n};
    ew_forward(&k.base);
    for (size_t i = 0; i < n; i++) assert_float_equal(k.base.y[i], k.x[i] > 0 ? k.x[i] : 0.0f, 0);
    float *dx = tu_zeros(n), *dx1 = filled(n, 2.0f);
    nc__ref_relu_backward(2, n, dx, k.base.r, k.base.y);
    nc__ref_relu_backward(2, n, dx1, k.base.r, k.base.y);
    for (size_t i = 0; i < n; i++) {
        assert_float_equal(dx[i], k.x[i] > 0 ? k.base.r[i] : 0.0f, 0);
        assert_float_equal(dx1[i], dx[i] + 2.0f, 1e-6);
    }
    grad_check(&k.base, k.x, dx, n, 1e-2f, 1e-4, "relu dx");
    /* NaN propagates (the numerical guard relies on it); in place works */
    float z[3] = {NAN, -1.0f, 2.0f};
    nc__ref_relu_forward(1, 3, z, z);
    assert_true(isnan(z[0]));
    assert_float_equal(z[1], 0.0f, 0);
    assert_float_equal(z[2], 2.0f, 0);
    free(k.x), free(k.base.y), free((float *)k.base.r), free(dx), free(dx1);
}

static void test_add_forward_and_backward(void **state) {
    (void)state;
    size_t n = 1001;
    ew_case k = {.n = n, .op = 1};
    k.x = tu_rand(n, -1, 1, 510), k.x2 = tu_rand(n, -2, 2, 511);
    k.base = (fd_case){.forward = ew_forward, .y = tu_zeros(n), .r = tu_rand(n, -1, 1, 512), .ny = n};
    ew_forward(&k.base);
    for (size_t i = 0; i < n; i++) assert_float_equal(k.base.y[i], k.x[i] + k.x2[i], 0);
    /* add's backward is an accumulate of dy into both inputs' gradients */
    float *da = tu_zeros(n), *db = tu_zeros(n);
    nc__ref_accumulate(2, n, da, k.base.r);
    nc__ref_accumulate(2, n, db, k.base.r);
    grad_check(&k.base, k.x, da, n, 1e-2f, 1e-4, "add da");
    grad_check(&k.base, k.x2, db, n, 1e-2f, 1e-4, "add db");
    free(k.x), free(k.x2), free(k.base.y), free((float *)k.base.r), free(da), free(db);
}

static void test_accumulate_adds_to_destination(void **state) {
    (void)state;
    size_t n = 70001; /* above the parallel threshold */
    float *dst = tu_rand(n, -1, 1, 520), *src = tu_rand(n, -1, 1, 521), *orig = copy_of(dst, n);
    nc__ref_accumulate(4, n, dst, src);
    for (size_t i = 0; i < n; i++) assert_float_equal(dst[i], orig[i] + src[i], 0);
    free(dst), free(src), free(orig);
}

static void test_dropout_forward_matches_mask(void **state) {
    (void)state;
    size_t n = 999;
    float p = 0.3f, *x = tu_rand(n, -1, 1, 530), *y = tu_zeros(n);
    nc__ref_dropout_forward(2, n, p, 42, y, x);
    for (size_t i = 0; i < n; i++) {
        float want = nc__rng_uniform(42, 0, i) >= p ? x[i] * (1.0f / (1.0f - p)) : 0.0f;
        assert_float_equal(y[i], want, 0);
    }
    /* p == 0 is a plain copy, also in place */
    nc__ref_dropout_forward(2, n, 0.0f, 42, y, x);
    assert_memory_equal(y, x, n * sizeof(float));
    nc__ref_dropout_forward(2, n, 0.0f, 42, y, y);
    assert_memory_equal(y, x, n * sizeof(float));
    free(x), free(y);
}

static void test_dropout_statistics(void **state) {
    (void)state;
    const size_t n = 100000;
    const float ps[] = {0.1f, 0.3f, 0.5f, 0.8f};
    float *x = filled(n, 1.0f), *y = tu_zeros(n), *y2 = tu_zeros(n), *y1t = tu_zeros(n);
    for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++) {
        float p = ps[t];
        nc__ref_dropout_forward(2, n, p, 7, y, x);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (y[i] != 0.0f) {
                kept++;
                assert_float_equal(y[i], 1.0f / (1.0f - p), 1e-6);
            }
        }
        double q = 1.0 - p, sigma = sqrt(p * q / (double)n);
        double frac = (double)kept / (double)n;
        if (fabs(frac - q) > 3 * sigma) fail_msg("p=%g: kept %g, expected %g +- %g", p, frac, q, 3 * sigma);
        /* same seed: same mask, whatever the thread count; another seed: another mask */
        nc__ref_dropout_forward(1, n, p, 7, y1t, x);
        assert_memory_equal(y, y1t, n * sizeof(float));
        nc__ref_dropout_forward(2, n, p, 7, y2, x);
        assert_memory_equal(y, y2, n * sizeof(float));
        nc__ref_dropout_forward(2, n, p, 8, y2, x);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += y[i] != y2[i];
        assert_true(differ > n / 20);
    }
    free(x), free(y), free(y2), free(y1t);
}

static void test_dropout_backward_same_mask(void **state) {
    (void)state;
    size_t n = 513;
    ew_case k = {.n = n, .op = 2, .p = 0.4f, .seed = 99};
    k.x = tu_rand(n, -1, 1, 540);
    k.base = (fd_case){.forward = ew_forward, .y = tu_zeros(n), .r = tu_rand(n, -1, 1, 541), .ny = n};
    float *dx = tu_zeros(n), *dx1 = filled(n, -1.0f);
    nc__ref_dropout_backward(2, n, k.p, k.seed, dx, k.base.r);
    nc__ref_dropout_backward(1, n, k.p, k.seed, dx1, k.base.r);
    ew_forward(&k.base);
    for (size_t i = 0; i < n; i++) {
        assert_true((dx[i] == 0.0f) == (k.base.y[i] == 0.0f));
        assert_float_equal(dx1[i], dx[i] - 1.0f, 1e-6);
    }
    grad_check(&k.base, k.x, dx, n, 1e-2f, 1e-4, "dropout dx");
    /* p == 0: backward is a plain accumulate */
    float *dx0 = filled(n, 1.0f);
    nc__ref_dropout_backward(2, n, 0.0f, k.seed, dx0, k.base.r);
    for (size_t i = 0; i < n; i++) assert_float_equal(dx0[i], 1.0f + k.base.r[i], 0);
    free(k.x), free(k.base.y), free((float *)k.base.r), free(dx), free(dx1), free(dx0);
}

typedef struct concat_case {
    fd_case base;
    int64_t n;
    const int64_t *widths;
    int count;
    float *xs[3];
} concat_case;

static void concat_forward(fd_case *c) {
    concat_case *k = (concat_case *)c;
    const void *xs[3] = {k->xs[0], k->xs[1], k->xs[2]};
    nc__ref_concat_forward(NC__DTYPE_F32, k->n, k->count, k->widths, c->y, xs);
}

static void test_concat_forward_and_backward(void **state) {
    (void)state;
    static const int64_t widths[3] = {3, 1, 5};
    const int64_t total = 9;
    for (int64_t n = 1; n <= 3; n++) {
        concat_case k = {.n = n, .widths = widths, .count = 3};
        for (int i = 0; i < 3; i++) k.xs[i] = tu_rand((size_t)(n * widths[i]), -1, 1, 550 + (uint64_t)(i + 3 * n));
        size_t ny = (size_t)(n * total);
        k.base = (fd_case){.forward = concat_forward, .y = tu_zeros(ny), .r = tu_rand(ny, -1, 1, 560), .ny = ny};
        concat_forward(&k.base);
        for (int64_t r = 0; r < n; r++) {
            int64_t off = 0;
            for (int i = 0; i < 3; i++) {
                for (int64_t j = 0; j < widths[i]; j++)
                    assert_float_equal(k.base.y[r * total + off + j], k.xs[i][r * widths[i] + j], 0);
                off += widths[i];
            }
        }
        float *dxs[3];
        const nc__write add[3] = {NC__WRITE_ADD, NC__WRITE_ADD, NC__WRITE_ADD};
        for (int i = 0; i < 3; i++) dxs[i] = filled((size_t)(n * widths[i]), 0.5f);
        nc__ref_concat_backward(NC__DTYPE_F32, n, 3, widths, add, (void *const *)dxs, k.base.r);
        for (int i = 0; i < 3; i++) {
            size_t m = (size_t)(n * widths[i]);
            for (size_t j = 0; j < m; j++) dxs[i][j] -= 0.5f; /* accumulated onto 0.5 */
            grad_check(&k.base, k.xs[i], dxs[i], m, 1e-2f, 1e-4, "concat dx");
        }
        /* a NULL gradient is skipped, the others still accumulate */
        void *skip[3] = {dxs[0], NULL, dxs[2]};
        nc__ref_concat_backward(NC__DTYPE_F32, n, 3, widths, add, skip, k.base.r);
        assert_float_equal(dxs[0][0], 2 * k.base.r[0], 1e-6);
        for (int i = 0; i < 3; i++) free(k.xs[i]), free(dxs[i]);
        free(k.base.y), free((float *)k.base.r);
    }
}

/* ------------------------------------------------------------------- sgd */

static void test_sgd_update_matches_torch_formula(void **state) {
    (void)state;
    static const nc__sgd_desc cfg[] = {
        {.lr = 0.1f},
        {.lr = 0.05f, .weight_decay = 1e-2f},
        {.lr = 0.1f, .momentum = 0.9f},
        {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f},
        {.lr = 0.1f, .momentum = 0.9f, .nesterov = 1},
        {.lr = 0.02f, .momentum = 0.9f, .nesterov = 1, .weight_decay = 5e-4f},
        {.lr = 0.02f, .momentum = 0.5f, .dampening = 0.5f, .weight_decay = 1e-3f},
    };
    const size_t n = 40007;
    for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
        float *param = tu_rand(n, -1, 1, 600 + t), *buf = filled(n, 123.0f); /* junk before step 1 */
        double *p = tu_dzeros(n), *b = tu_dzeros(n);
        for (size_t i = 0; i < n; i++) p[i] = param[i];
        for (int step = 0; step < 4; step++) {
            nc__sgd_desc d = cfg[t];
            d.first_step = step == 0;
            float *grad = tu_rand(n, -1, 1, 700 + 10 * t + (uint64_t)step);
            nc__ref_sgd_update(2, &d, n, param, d.momentum != 0 ? buf : NULL, grad);
            for (size_t i = 0; i < n; i++) {
                double g = grad[i] + (double)d.weight_decay * p[i];
                if (d.momentum != 0) {
                    b[i] = step == 0 ? g : d.momentum * b[i] + (1.0 - d.dampening) * g;
                    g = d.nesterov ? g + d.momentum * b[i] : b[i];
                }
                p[i] -= d.lr * g;
            }
            free(grad);
        }
        assert_err_below(err_vs(param, p, n), 1e-6, "sgd param");
        if (cfg[t].momentum != 0) assert_err_below(err_vs(buf, b, n), 1e-6, "sgd momentum buffer");
        free(param), free(buf), free(p), free(b);
    }
}

static void test_sum_squares_double_and_nonfinite(void **state) {
    (void)state;
    size_t n = 100003;
    float *x = tu_rand(n, -3, 3, 800);
    double want = 0;
    for (size_t i = 0; i < n; i++) want += (double)x[i] * x[i];
    double s1 = nc__ref_sum_squares(1, n, x), s4 = nc__ref_sum_squares(4, n, x);
    assert_true(fabs(s1 - want) <= 1e-12 * want);
    assert_memory_equal(&s1, &s4, sizeof s1); /* independent of the thread count */
    assert_true(nc__ref_sum_squares(2, 0, x) == 0.0);
    assert_true(nc__ref_sum_squares(2, 5, x) > 0.0);
    x[n / 2] = INFINITY;
    assert_true(isinf(nc__ref_sum_squares(2, n, x)));
    x[7] = NAN;
    assert_true(isnan(nc__ref_sum_squares(2, n, x)));
    free(x);
}

/* ------------------------------------------------------- PyTorch goldens */

static void test_golden_batchnorm_matches_torch(void **state) {
    (void)state;
    nc__bn_desc d = bn_desc(GOLD_BN_N, GOLD_BN_C, GOLD_BN_HW);
    d.eps = GOLD_BN_EPS, d.momentum = GOLD_BN_MOMENTUM;
    const size_t n = GOLD_BN_N * GOLD_BN_C * GOLD_BN_HW, C = GOLD_BN_C;
    float y[GOLD_BN_N * GOLD_BN_C * GOLD_BN_HW], dx[GOLD_BN_N * GOLD_BN_C * GOLD_BN_HW] = {0};
    float sm[GOLD_BN_C], si[GOLD_BN_C], rm[GOLD_BN_C], rv[GOLD_BN_C], dg[GOLD_BN_C] = {0}, db[GOLD_BN_C] = {0};
    memcpy(rm, gold_bn_rm0, sizeof rm);
    memcpy(rv, gold_bn_rv0, sizeof rv);
    nc__ref_batchnorm_forward_train(2, &d, y, sm, si, rm, rv, gold_bn_x, gold_bn_gamma, gold_bn_beta);
    nc__ref_batchnorm_backward(2, &d, dx, dg, db, gold_bn_dy, gold_bn_x, gold_bn_gamma, sm, si);
    assert_err_below(tu_norm_err(y, gold_bn_y, n), 1e-5, "golden bn y");
    assert_err_below(tu_norm_err(rm, gold_bn_rm1, C), 1e-5, "golden bn running_mean");
    assert_err_below(tu_norm_err(rv, gold_bn_rv1, C), 1e-5, "golden bn running_var");
    assert_err_below(tu_norm_err(dx, gold_bn_dx, n), 1e-5, "golden bn dx");
    assert_err_below(tu_norm_err(dg, gold_bn_dgamma, C), 1e-5, "golden bn dgamma");
    assert_err_below(tu_norm_err(db, gold_bn_dbeta, C), 1e-5, "golden bn dbeta");
    nc__ref_batchnorm_forward_infer(2, &d, y, gold_bn_x, gold_bn_gamma, gold_bn_beta, rm, rv);
    assert_err_below(tu_norm_err(y, gold_bn_y_eval, n), 1e-5, "golden bn eval y");
}

static void test_golden_pool_matches_torch(void **state) {
    (void)state;
    const nc__pool_desc ds[3] = {
        pool_desc(NC__POOL_MAX, GOLD_POOL_N, GOLD_POOL_C, GOLD_POOL_H, GOLD_POOL_W, 3, 2, 1),
        pool_desc(NC__POOL_AVG, GOLD_POOL_N, GOLD_POOL_C, GOLD_POOL_H, GOLD_POOL_W, 3, 2, 1),
        adaptive_desc(GOLD_POOL_N, GOLD_POOL_C, GOLD_POOL_H, GOLD_POOL_W, GOLD_ADAPT_OH, GOLD_ADAPT_OW),
    };
    const float *ys[3] = {gold_maxpool_y, gold_avgpool_y, gold_adaptive_y};
    const float *dxs[3] = {gold_maxpool_dx, gold_avgpool_dx, gold_adaptive_dx};
    const float *dys[3] = {gold_maxpool_dy, gold_avgpool_dy, gold_adaptive_dy};
    const size_t nx = GOLD_POOL_N * GOLD_POOL_C * GOLD_POOL_H * GOLD_POOL_W;
    for (int t = 0; t < 3; t++) {
        const nc__pool_desc *d = &ds[t];
        size_t ny = (size_t)(d->n * d->c * d->oh * d->ow);
        float *y = tu_zeros(ny), *dx = tu_zeros(nx);
        nc__ref_pool2d_forward(2, d, y, gold_pool_x);
        nc__ref_pool2d_backward(2, d, dx, dys[t], gold_pool_x, y);
        assert_err_below(tu_norm_err(y, ys[t], ny), 1e-6, "golden pool y");
        assert_err_below(tu_norm_err(dx, dxs[t], nx), 1e-6, "golden pool dx");
        free(y), free(dx);
    }
}

static void test_golden_sgd_matches_torch(void **state) {
    (void)state;
    for (int t = 0; t < GOLD_SGD_CONFIGS; t++) {
        nc__sgd_desc d = {.lr = gold_sgd_cfg[t][0], .momentum = gold_sgd_cfg[t][1],
                          .dampening = gold_sgd_cfg[t][2], .weight_decay = gold_sgd_cfg[t][3],
                          .nesterov = (int)gold_sgd_cfg[t][4]};
        float p[GOLD_SGD_N], buf[GOLD_SGD_N] = {0};
        memcpy(p, gold_sgd_p0, sizeof p);
        for (int s = 0; s < GOLD_SGD_STEPS; s++) {
            d.first_step = s == 0;
            nc__ref_sgd_update(1, &d, GOLD_SGD_N, p, buf, gold_sgd_grads[s]);
        }
        assert_err_below(tu_norm_err(p, gold_sgd_p[t], GOLD_SGD_N), 1e-6, "golden sgd");
    }
}

/* ------------------------------------------------------- backend table */

static void test_ref_backend_table_complete(void **state) {
    (void)state;
    const nc__backend *be = nc__backend_ref();
    assert_non_null(be);
    assert_string_equal(be->name, "ref");
    assert_int_equal(be->kind, NC_BACKEND_REF);
#define ENTRY(f) if (!be->f) fail_msg("ref backend entry %s is NULL", #f)
    ENTRY(init); ENTRY(destroy); ENTRY(alloc); ENTRY(free); ENTRY(upload); ENTRY(download);
    ENTRY(fill); ENTRY(accumulate); ENTRY(conv2d_forward); ENTRY(conv2d_backward);
    ENTRY(batchnorm_forward_train); ENTRY(batchnorm_forward_infer); ENTRY(batchnorm_backward);
    ENTRY(relu_forward); ENTRY(relu_backward); ENTRY(add_forward); ENTRY(dropout_forward);
    ENTRY(dropout_backward); ENTRY(pool2d_forward); ENTRY(pool2d_backward); ENTRY(flatten_forward);
    ENTRY(flatten_backward); ENTRY(concat_forward); ENTRY(concat_backward); ENTRY(linear_forward);
    ENTRY(linear_backward); ENTRY(supports); ENTRY(write); ENTRY(read); ENTRY(value_bytes);
    ENTRY(value_upload); ENTRY(value_download); ENTRY(loss); ENTRY(grad_norm);
    ENTRY(clip_grads); ENTRY(update); ENTRY(axpby);
#undef ENTRY
    assert_null(be->release_cache); /* ref caches nothing */
}

static void test_ref_backend_memory_roundtrip(void **state) {
    (void)state;
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = 2;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    const nc__backend *be = nc__backend_ref();
    void *st = NULL;
    assert_int_equal(be->init(ctx, 3, &st), NC_OK);
    assert_int_equal(((nc__ref_state *)st)->nt, 3);

    nc__shape sh = nc__shape4(2, 3, 4, 5);
    const size_t n = 120;
    float *host = tu_rand(n, -1, 1, 900), *back = tu_zeros(n);
    void *a = NULL, *b = NULL;
    assert_int_equal(be->alloc(st, n * sizeof(float), &a), NC_OK);
    assert_int_equal(be->alloc(st, n * sizeof(float), &b), NC_OK);
    assert_true(((uintptr_t)a & 63) == 0);
    assert_int_equal(be->upload(st, a, host, &sh), NC_OK);
    assert_int_equal(be->download(st, back, a, &sh), NC_OK);
    assert_memory_equal(back, host, n * sizeof(float));
    assert_int_equal(be->fill(st, b, 0.5f, n), NC_OK);
    const nc__value_desc v = {.shape = sh, .dtype = NC__DTYPE_F32};
    assert_int_equal(be->value_bytes(st, &v), n * sizeof(float));
    assert_int_equal(be->accumulate(st, &v, NC__WRITE_ADD, b, a), NC_OK);
    assert_int_equal(be->download(st, back, b, &sh), NC_OK);
    for (size_t i = 0; i < n; i++) assert_float_equal(back[i], host[i] + 0.5f, 0);
    /* flatten is the identity on NCHW memory; its backward accumulates or writes */
    assert_int_equal(be->flatten_forward(st, &v, b, a), NC_OK);
    assert_memory_equal(b, host, n * sizeof(float));
    assert_int_equal(be->flatten_backward(st, &v, NC__WRITE_ADD, b, a), NC_OK);
    for (size_t i = 0; i < n; i++) assert_float_equal(((float *)b)[i], 2 * host[i], 0);
    assert_int_equal(be->flatten_backward(st, &v, NC__WRITE_SET, b, a), NC_OK);
    assert_memory_equal(b, host, n * sizeof(float));
    /* bf16 values: half the bytes, rounded to nearest even on upload */
    const nc__value_desc v16 = {.shape = sh, .dtype = NC__DTYPE_BF16};
    assert_int_equal(be->value_bytes(st, &v16), n * 2);
    assert_int_equal(be->value_upload(st, &v16, b, host), NC_OK);
    assert_int_equal(be->value_download(st, &v16, back, b), NC_OK);
    for (size_t i = 0; i < n; i++) assert_true(fabsf(back[i] - host[i]) <= fabsf(host[i]) * (1.0f / 256));
    be->free(st, a);
    be->free(st, b);
    be->free(st, NULL);
    be->destroy(st);
    be->destroy(NULL);
    free(host), free(back);
    nc_context_destroy(ctx);
}

/* An allocator that refuses anything over 1 MiB. */
static void *small_alloc(void *user, size_t size, size_t align) {
    (void)user;
    if (size > (1u << 20)) return NULL;
    void *p = NULL;
    return posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) ? NULL : p;
}
static void small_free(void *user, void *p) {
    (void)user;
    free(p);
}

static void test_ref_backend_alloc_out_of_memory(void **state) {
    (void)state;
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = 1;
    o.allocator.alloc = small_alloc;
    o.allocator.free = small_free;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    void *p = (void *)&o;
    assert_int_equal(ctx->backend->alloc(ctx->backend_state, (size_t)1 << 30, &p), NC_ERR_OUT_OF_MEMORY);
    assert_true(strstr(nc_context_last_error(ctx), "1073741824") != NULL);
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_forward_train_matches_formula),
        cmocka_unit_test(test_batchnorm_running_stats_unbiased),
        cmocka_unit_test(test_batchnorm_forward_infer_uses_running_stats),
        cmocka_unit_test(test_batchnorm_backward_2d_finite_diff),
        cmocka_unit_test(test_batchnorm_backward_1d_finite_diff),
        cmocka_unit_test(test_batchnorm_backward_accumulates),
        cmocka_unit_test(test_pool_forward_matches_formula),
        cmocka_unit_test(test_pool_backward_finite_diff),
        cmocka_unit_test(test_pool_backward_accumulates),
        cmocka_unit_test(test_maxpool_ties_go_to_first_max),
        cmocka_unit_test(test_maxpool_padding_is_minus_infinity),
        cmocka_unit_test(test_avgpool_counts_padding),
        cmocka_unit_test(test_bn_pool_thread_count_invariant),
        cmocka_unit_test(test_relu_forward_and_backward),
        cmocka_unit_test(test_add_forward_and_backward),
        cmocka_unit_test(test_accumulate_adds_to_destination),
        cmocka_unit_test(test_dropout_forward_matches_mask),
        cmocka_unit_test(test_dropout_statistics),
        cmocka_unit_test(test_dropout_backward_same_mask),
        cmocka_unit_test(test_concat_forward_and_backward),
        cmocka_unit_test(test_sgd_update_matches_torch_formula),
        cmocka_unit_test(test_sum_squares_double_and_nonfinite),
        cmocka_unit_test(test_golden_batchnorm_matches_torch),
        cmocka_unit_test(test_golden_pool_matches_torch),
        cmocka_unit_test(test_golden_sgd_matches_torch),
        cmocka_unit_test(test_ref_backend_table_complete),
        cmocka_unit_test(test_ref_backend_memory_roundtrip),
        cmocka_unit_test(test_ref_backend_alloc_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
