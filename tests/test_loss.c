/* test_loss.c — nc__loss_compute: cross-entropy (class weights, label smoothing,
 * ignore label, several heads with head weights) and BCE with logits (pos_weight)
 * against PyTorch 1.13 goldens (fixtures/loss_golden.h, losses and autograd
 * gradients), gradients against finite differences in double, hit counts, label
 * validation and the edge cases (all-ignored heads, extreme and non-finite logits). */
#include "testutil.h"

#include "core/context.h"
#include "train/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/loss_golden.h"

/* ------------------------------------------------------------------ helpers */

static nc_context *fx_ctx(void **state) { return ((tu_fx *)*state)->ctx; }

static nc__loss_config config_of(const gold_loss_case *c) {
    nc__loss_config cfg = {
        .kind = (nc_loss_kind)c->kind,
        .label_smoothing = c->label_smoothing,
        .class_weights = c->class_weights,
        .head_weights = c->head_weights,
        .ignore_label = c->ignore_label,
        .pos_weight = c->pos_weight,
    };
    return cfg;
}

static nc__loss_config ce_default(void) {
    nc__loss_config cfg = {.kind = NC_LOSS_CROSS_ENTROPY, .ignore_label = -100};
    return cfg;
}

static const gold_loss_case *gold_case(const char *name) {
    for (int i = 0; i < GOLD_LOSS_CASES; i++)
        if (strcmp(gold_loss_cases[i].name, name) == 0) return &gold_loss_cases[i];
    fail_msg("no golden case %s", name);
    return NULL;
}

/* max_i |a_i - b_i| / max(|b_i|, 1e-9 max_j |b_j|): element-wise relative error, the
 * floor because torch's float64 autograd is only accurate to ~1e-16 of the largest
 * values (pw (sigmoid(x) - 1) at x = 34 is 6e-17 and torch's is 0.8% off; ours is
 * exact to float rounding). */
static double rel_err_d(const float *a, const double *b, size_t n) {
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / fmax(fabs(b[i]), fmax(1e-9 * mx, 1e-300));
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

/* The hits and counted values the documentation promises, recomputed directly. */
static void expected_counts(const gold_loss_case *c, int *hits, int *counted) {
    *hits = *counted = 0;
    for (int i = 0; i < c->n; i++)
        for (int h = 0; h < c->heads; h++) {
            const float *z = c->logits + ((size_t)i * (size_t)c->heads + (size_t)h) * (size_t)c->classes;
            if (c->kind == NC_LOSS_BCE_WITH_LOGITS) {
                const int32_t *t = c->labels + ((size_t)i * (size_t)c->heads + (size_t)h) * (size_t)c->classes;
                for (int k = 0; k < c->classes; k++) {
                    *hits += (z[k] > 0) == (t[k] == 1);
                    (*counted)++;
                }
            } else {
                int32_t y = c->labels[i * c->heads + h];
                if (y == c->ignore_label) continue;
                int arg = 0;
                for (int k = 1; k < c->classes; k++)
                    if (z[k] > z[arg]) arg = k;
                *hits += arg == y;
                (*counted)++;
            }
        }
}

/* Runs one golden case: loss and dlogits within 1e-5 (relative) of torch, counts as
 * documented, and the same loss without a gradient buffer. */
static void check_golden(void **state, const char *name) {
    nc_context *ctx = fx_ctx(state);
    const gold_loss_case *c = gold_case(name);
    nc__loss_config cfg = config_of(c);
    size_t nz = (size_t)c->n * (size_t)c->heads * (size_t)c->classes;
    float *dz = tu_zeros(nz);
    for (size_t i = 0; i < nz; i++) dz[i] = NAN; /* every element must be written */
    double loss = -1;
    int hits = -1, counted = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, c->logits, c->labels, c->n, c->heads, c->classes, dz, &loss,
                                      &hits, &counted),
                     NC_OK);
    double le = fabs(loss - c->loss) / fabs(c->loss);
    double ge = rel_err_d(dz, c->dlogits, nz);
    free(dz);
    if (!(le < 1e-5) || !(ge < 1e-5))
        fail_msg("%s: loss %.17g vs torch %.17g (rel %.3g), dlogits rel err %.3g", name, loss, c->loss, le, ge);
    assert_true(le < 1e-12); /* double math on the same float inputs: agrees to rounding */
    int eh, ec;
    expected_counts(c, &eh, &ec);
    assert_int_equal(hits, eh);
    assert_int_equal(counted, ec);

    double loss2 = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, c->logits, c->labels, c->n, c->heads, c->classes, NULL, &loss2,
                                      NULL, NULL),
                     NC_OK);
    assert_true(loss2 == loss);
}

#define GOLDEN_TEST(fn, name) \
    static void fn(void **state) { check_golden(state, name); }

/* ------------------------------------------------------------------ PyTorch goldens */

GOLDEN_TEST(test_ce_plain_matches_torch, "ce_plain")
GOLDEN_TEST(test_ce_label_smoothing_matches_torch, "ce_smoothing")
GOLDEN_TEST(test_ce_class_weights_matches_torch, "ce_weights")
GOLDEN_TEST(test_ce_weights_and_smoothing_matches_torch, "ce_weights_smoothing")
GOLDEN_TEST(test_ce_ignore_label_matches_torch, "ce_ignore")
GOLDEN_TEST(test_ce_ignore_label_in_range_matches_torch, "ce_ignore_in_range")
GOLDEN_TEST(test_ce_multihead_weights_matches_torch, "ce_multihead")
GOLDEN_TEST(test_ce_all_ignored_head_matches_torch_without_it, "ce_head_all_ignored")
GOLDEN_TEST(test_ce_large_logits_matches_torch, "ce_large_logits")
GOLDEN_TEST(test_bce_head_weights_matches_torch, "bce")
GOLDEN_TEST(test_bce_pos_weight_matches_torch, "bce_pos_weight")
GOLDEN_TEST(test_bce_multihead_pos_weight_matches_torch, "bce_multihead_pos_weight")

/* ------------------------------------------------------------------ finite differences */

/* Central differences of the double loss over every logit, with the step actually
 * taken (x +- h rounded to float) as denominator; compared with dlogits. */
static double finite_diff_err(nc_context *ctx, const gold_loss_case *c) {
    nc__loss_config cfg = config_of(c);
    size_t nz = (size_t)c->n * (size_t)c->heads * (size_t)c->classes;
    float *x = tu_zeros(nz), *dz = tu_zeros(nz);
    memcpy(x, c->logits, nz * sizeof(float));
    double loss;
    assert_int_equal(nc__loss_compute(ctx, &cfg, x, c->labels, c->n, c->heads, c->classes, dz, &loss, NULL, NULL),
                     NC_OK);
    double worst = 0;
    for (size_t i = 0; i < nz; i++) {
        float orig = x[i];
        float h = 1e-3f * fmaxf(1.0f, fabsf(orig));
        float xp = orig + h, xm = orig - h;
        double lp, lm;
        x[i] = xp;
        assert_int_equal(nc__loss_compute(ctx, &cfg, x, c->labels, c->n, c->heads, c->classes, NULL, &lp, NULL,
                                          NULL),
                         NC_OK);
        x[i] = xm;
        assert_int_equal(nc__loss_compute(ctx, &cfg, x, c->labels, c->n, c->heads, c->classes, NULL, &lm, NULL,
                                          NULL),
                         NC_OK);
        x[i] = orig;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double e = fabs(fd - dz[i]) / fmax(fabs(fd), 1e-4);
        if (!(e <= worst)) worst = e;
    }
    free(x);
    free(dz);
    return worst;
}

static void test_ce_gradient_finite_diff(void **state) {
    const char *names[] = {"ce_weights_smoothing", "ce_ignore_in_range", "ce_multihead", "ce_head_all_ignored"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        double e = finite_diff_err(fx_ctx(state), gold_case(names[i]));
        if (!(e < 1e-4)) fail_msg("%s: finite-difference error %.3g", names[i], e);
    }
}

static void test_bce_gradient_finite_diff(void **state) {
    const char *names[] = {"bce", "bce_multihead_pos_weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        double e = finite_diff_err(fx_ctx(state), gold_case(names[i]));
        if (!(e < 1e-4)) fail_msg("%s: finite-difference error %.3g", names[i], e);
    }
}

/* ------------------------------------------------------------------ semantics */

/* With the default configuration the loss is nc__softmax_xent's. */
static void test_ce_default_config_matches_softmax_xent(void **state) {
    nc_context *ctx = fx_ctx(state);
    enum { N = 7, H = 2, K = 5 };
    float *z = tu_rand(N * H * K, -4.0f, 4.0f, 91);
    int32_t y[N * H];
    for (int i = 0; i < N * H; i++) y[i] = (i * 3 + 1) % K;
    float *d1 = tu_zeros(N * H * K), *d2 = tu_zeros(N * H * K);
    double l1, l2;
    int c1, c2, counted;
    assert_int_equal(nc__softmax_xent(ctx, z, y, N, H, K, d1, &l1, &c1), NC_OK);
    nc__loss_config cfg = ce_default();
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, N, H, K, d2, &l2, &c2, &counted), NC_OK);
    assert_true(fabs(l1 - l2) <= 1e-12 * fabs(l1));
    assert_true(tu_max_rel_err(d2, d1, N * H * K, 1e-12) < 1e-6);
    assert_int_equal(c1, c2);
    assert_int_equal(counted, N * H);
    free(z);
    free(d1);
    free(d2);
}

/* A head whose samples are all ignored adds nothing (torch would give NaN): the loss
 * is the other head's alone, its gradient is zero, its samples are not counted. */
static void test_ce_all_ignored_head_contributes_zero(void **state) {
    nc_context *ctx = fx_ctx(state);
    enum { N = 4, K = 3 };
    float *z = tu_rand(N * 2 * K, -2.0f, 2.0f, 17);
    int32_t y2[N * 2] = {0, -100, 2, -100, 1, -100, 2, -100};
    float hw[2] = {0.5f, 3.0f};
    nc__loss_config cfg = ce_default();
    cfg.head_weights = hw;
    cfg.label_smoothing = 0.1f;
    float *dz = tu_zeros(N * 2 * K);
    double loss;
    int hits, counted;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y2, N, 2, K, dz, &loss, &hits, &counted), NC_OK);
    assert_int_equal(counted, N);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) assert_true(dz[(i * 2 + 1) * K + k] == 0.0f);

    /* head 0 alone, as a one-head problem */
    float z1[N * K], d1[N * K];
    int32_t y1[N];
    for (int i = 0; i < N; i++) {
        memcpy(z1 + i * K, z + i * 2 * K, K * sizeof(float));
        y1[i] = y2[i * 2];
    }
    nc__loss_config one = ce_default();
    one.label_smoothing = 0.1f;
    double l1;
    int h1, c1;
    assert_int_equal(nc__loss_compute(ctx, &one, z1, y1, N, 1, K, d1, &l1, &h1, &c1), NC_OK);
    assert_true(fabs(loss - 0.5 * l1) <= 1e-12 * l1);
    assert_int_equal(hits, h1);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) assert_true(fabsf(dz[i * 2 * K + k] - 0.5f * d1[i * K + k]) <= 1e-7f);
    free(z);
    free(dz);
}

static void test_ce_all_samples_ignored_gives_zero(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[6] = {1, 2, 3, 4, 5, 6}, dz[6] = {9, 9, 9, 9, 9, 9};
    int32_t y[2] = {7, 7};
    nc__loss_config cfg = ce_default();
    cfg.ignore_label = 7;
    double loss = -1;
    int hits = -1, counted = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 2, 1, 3, dz, &loss, &hits, &counted), NC_OK);
    assert_true(loss == 0.0);
    assert_int_equal(hits, 0);
    assert_int_equal(counted, 0);
    for (int i = 0; i < 6; i++) assert_true(dz[i] == 0.0f);
}

/* Only zero-weight labels present: nothing to average (torch: 0/0), contributes 0;
 * the samples still count for accuracy. */
static void test_ce_zero_total_weight_gives_zero(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[6] = {3, 1, 0, 0, 1, 3}, dz[6] = {9, 9, 9, 9, 9, 9};
    int32_t y[2] = {0, 0};
    float w[3] = {0.0f, 1.0f, 2.0f};
    nc__loss_config cfg = ce_default();
    cfg.class_weights = w;
    cfg.label_smoothing = 0.2f;
    double loss = -1;
    int hits = -1, counted = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 2, 1, 3, dz, &loss, &hits, &counted), NC_OK);
    assert_true(loss == 0.0);
    assert_int_equal(hits, 1);
    assert_int_equal(counted, 2);
    for (int i = 0; i < 6; i++) assert_true(dz[i] == 0.0f);
}

/* Ties go to the first maximum, as torch.argmax. */
static void test_ce_hits_first_maximum_wins(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[9] = {2, 2, 0, 0, 1, 1, 5, -1, 5};
    int32_t y[3] = {0, 2, 0};
    nc__loss_config cfg = ce_default();
    double loss;
    int hits, counted;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 3, 1, 3, NULL, &loss, &hits, &counted), NC_OK);
    assert_int_equal(hits, 2);
    assert_int_equal(counted, 3);
}

/* Logits of +-500 stay finite: the log-sigmoid is a softplus. */
static void test_bce_extreme_logits_are_finite(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[4] = {500.0f, -500.0f, 500.0f, -500.0f}, dz[4];
    int32_t t[4] = {0, 1, 1, 0};
    float pw[4] = {1.0f, 2.0f, 1.0f, 1.0f};
    nc__loss_config cfg = {.kind = NC_LOSS_BCE_WITH_LOGITS, .pos_weight = pw};
    double loss;
    int hits, counted;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, t, 1, 1, 4, dz, &loss, &hits, &counted), NC_OK);
    /* (500 + 2 * 500 + 0 + 0) / 4 up to exp(-500) */
    assert_true(fabs(loss - 375.0) <= 1e-12 * 375.0);
    assert_true(dz[0] == 0.25f && dz[1] == -0.5f && fabsf(dz[2]) < 1e-30f && fabsf(dz[3]) < 1e-30f);
    assert_int_equal(hits, 2);
    assert_int_equal(counted, 4);
}

/* CE: NaN or +inf logits give a non-finite loss; BCE: any non-finite logit gives NaN
 * (torch: 0 * inf in its (1 - t) x term), so the trainer's guard sees them. */
static void test_loss_nonfinite_logits_give_nonfinite_loss(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        float z[6] = {0.5f, 0.0f, 1.0f, 0.0f, 1.0f, 2.0f}, dz[6];
        int32_t y[2] = {0, 1};
        nc__loss_config cfg = ce_default();
        double loss = 0;
        z[1] = bad[b];
        assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 2, 1, 3, dz, &loss, NULL, NULL), NC_OK);
        if (b < 2) assert_false(isfinite(loss));
        else assert_true(isfinite(loss)); /* -inf for a class other than the label: p = 0 */

        for (int32_t t = 0; t <= 1; t++) {
            int32_t tt[6] = {0, t, 0, 1, 0, 1};
            nc__loss_config bce = {.kind = NC_LOSS_BCE_WITH_LOGITS};
            assert_int_equal(nc__loss_compute(ctx, &bce, z, tt, 2, 1, 3, dz, &loss, NULL, NULL), NC_OK);
            assert_true(isnan(loss));
        }
    }
}

/* ------------------------------------------------------------------ errors */

static void test_ce_label_out_of_range_fails(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[12] = {0}, dz[12];
    for (int i = 0; i < 12; i++) dz[i] = 7.0f;
    int32_t y[4] = {0, 1, 2, 3}; /* sample 1, head 1 has label 3 with 3 classes */
    nc__loss_config cfg = ce_default();
    double loss = -1;
    int hits = -1, counted = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 2, 2, 3, dz, &loss, &hits, &counted),
                     NC_ERR_INVALID_ARGUMENT);
    const char *msg = nc_context_last_error(ctx);
    assert_non_null(strstr(msg, "label 3 of sample 1 (head 1)"));
    assert_non_null(strstr(msg, "[0, 3)"));
    for (int i = 0; i < 12; i++) assert_true(dz[i] == 7.0f); /* nothing written */
    assert_true(loss == -1 && hits == -1 && counted == -1);

    /* a negative label that is not the ignore label */
    y[3] = 0;
    y[2] = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 2, 2, 3, dz, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "label -1 of sample 1 (head 0)"));
    assert_non_null(strstr(nc_context_last_error(ctx), "ignore label -100"));
}

static void test_bce_target_not_binary_fails(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[6] = {0}, dz[6] = {7, 7, 7, 7, 7, 7};
    int32_t t[6] = {0, 1, 1, 0, 2, 1}; /* n 1, heads 2, classes 3: sample 0, head 1, class 1 */
    nc__loss_config cfg = {.kind = NC_LOSS_BCE_WITH_LOGITS};
    double loss = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, t, 1, 2, 3, dz, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "BCE target 2 of sample 0 (head 1, class 1) is not 0 or 1"));
    for (int i = 0; i < 6; i++) assert_true(dz[i] == 7.0f);
    assert_true(loss == -1);
    t[4] = -1;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, t, 1, 2, 3, dz, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
}

static void test_loss_bad_arguments_fail(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[3] = {0};
    int32_t y[1] = {0};
    double loss;
    nc__loss_config cfg = ce_default();
    assert_int_equal(nc__loss_compute(ctx, NULL, z, y, 1, 1, 3, NULL, &loss, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc__loss_compute(ctx, &cfg, NULL, y, 1, 1, 3, NULL, &loss, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, NULL, 1, 1, 3, NULL, &loss, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 1, 1, 3, NULL, NULL, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 1, 0, 3, NULL, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 1, 1, 0, NULL, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, -1, 1, 3, NULL, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    cfg.label_smoothing = 1.5f;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 1, 1, 3, NULL, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "label smoothing"));
    cfg.label_smoothing = NAN;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 1, 1, 3, NULL, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    cfg.label_smoothing = 0.0f;
    cfg.kind = (nc_loss_kind)7;
    assert_int_equal(nc__loss_compute(ctx, &cfg, z, y, 1, 1, 3, NULL, &loss, NULL, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "unknown loss kind 7"));
}

/* nc__softmax_xent keeps rejecting any label outside [0, K), -100 included. */
static void test_softmax_xent_rejects_out_of_range(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[6] = {0};
    int32_t y[2] = {0, -100};
    double loss;
    assert_int_equal(nc__softmax_xent(ctx, z, y, 2, 1, 3, NULL, &loss, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "label -100 of sample 1 (head 0)"));
}

#define FX(t) cmocka_unit_test_setup_teardown(t, tu_fx_setup, tu_fx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        FX(test_ce_plain_matches_torch),
        FX(test_ce_label_smoothing_matches_torch),
        FX(test_ce_class_weights_matches_torch),
        FX(test_ce_weights_and_smoothing_matches_torch),
        FX(test_ce_ignore_label_matches_torch),
        FX(test_ce_ignore_label_in_range_matches_torch),
        FX(test_ce_multihead_weights_matches_torch),
        FX(test_ce_all_ignored_head_matches_torch_without_it),
        FX(test_ce_large_logits_matches_torch),
        FX(test_bce_head_weights_matches_torch),
        FX(test_bce_pos_weight_matches_torch),
        FX(test_bce_multihead_pos_weight_matches_torch),
        FX(test_ce_gradient_finite_diff),
        FX(test_bce_gradient_finite_diff),
        FX(test_ce_default_config_matches_softmax_xent),
        FX(test_ce_all_ignored_head_contributes_zero),
        FX(test_ce_all_samples_ignored_gives_zero),
        FX(test_ce_zero_total_weight_gives_zero),
        FX(test_ce_hits_first_maximum_wins),
        FX(test_bce_extreme_logits_are_finite),
        FX(test_loss_nonfinite_logits_give_nonfinite_loss),
        FX(test_ce_label_out_of_range_fails),
        FX(test_bce_target_not_binary_fails),
        FX(test_loss_bad_arguments_fail),
        FX(test_softmax_xent_rejects_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
