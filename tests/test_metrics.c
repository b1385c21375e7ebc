/* test_metrics.c — nc_metrics_*, nc_calibrate_temperature and nc_threshold_*:
 * hand-worked cases, scikit-learn 1.2 / SciPy goldens (fixtures/metrics_golden.h, from
 * make_metrics_golden.py) on random data with imbalance, ignored labels, a class with
 * no support, tied scores and a two-head layout, and the error paths; the per-label
 * ROC-AUC of multi-label outputs against pairwise-counted goldens
 * (fixtures/multilabel_golden.h, from make_multilabel_golden.py). */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/metrics_golden.h"
#include "fixtures/multilabel_golden.h"

/* ------------------------------------------------------------------ helpers */

static nc_context *fx_ctx(void **state) { return ((tu_fx *)*state)->ctx; }

/* |a - b| <= tol * max(|b|, 1e-300)-ish; both NaN is a match. */
static void near(double a, double b, double tol, const char *what, int idx) {
    if (isnan(b) && isnan(a)) return;
    double err = fabs(a - b) / fmax(fabs(b), 1e-12);
    if (!(err <= tol)) fail_msg("%s[%d]: got %.17g, want %.17g (rel err %.3g)", what, idx, a, b, err);
}

#define TOL 1e-9

static nc_metrics *compute_case(nc_context *ctx, const gold_metrics_case *c) {
    int K = c->classes, H = c->heads;
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, c->logits + c->head * K, H * K, c->labels + c->head, H, c->n, K,
                                        c->ignore, &m),
                     NC_OK);
    assert_non_null(m);
    return m;
}

static void check_case(nc_context *ctx, const gold_metrics_case *c) {
    nc_metrics *m = compute_case(ctx, c);
    int K = c->classes;
    const double betas[3] = {0.5, 1.0, 2.0};
    assert_int_equal(nc_metrics_count(m), c->count);
    assert_int_equal(nc_metrics_num_classes(m), K);
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) assert_int_equal(nc_metrics_confusion(m, t, p), c->confusion[t * K + p]);
    for (int k = 1; k <= K; k++) near(nc_metrics_top_k(m, k), c->topk[k - 1], TOL, "top_k", k);
    near(nc_metrics_top_k(m, K + 3), 1.0, TOL, "top_k big", K + 3);
    for (int k = 0; k < K; k++) {
        near(nc_metrics_precision(m, k), c->precision[k], TOL, "precision", k);
        near(nc_metrics_recall(m, k), c->recall[k], TOL, "recall", k);
        for (int b = 0; b < 3; b++) near(nc_metrics_fbeta(m, k, betas[b]), c->fbeta[b * K + k], TOL, "fbeta", k);
        near(nc_metrics_roc_auc(m, k), c->roc[k], TOL, "roc", k);
    }
    for (int b = 0; b < 3; b++) {
        const double *a = c->avg + b * 6;
        int avgs[2] = {NC_METRICS_MACRO, NC_METRICS_WEIGHTED};
        for (int w = 0; w < 2; w++) {
            near(nc_metrics_precision(m, avgs[w]), a[3 * w + 0], TOL, "avg precision", b * 2 + w);
            near(nc_metrics_recall(m, avgs[w]), a[3 * w + 1], TOL, "avg recall", b * 2 + w);
            near(nc_metrics_fbeta(m, avgs[w], betas[b]), a[3 * w + 2], TOL, "avg fbeta", b * 2 + w);
        }
    }
    near(nc_metrics_balanced_accuracy(m), c->balanced_accuracy, TOL, "balanced_accuracy", 0);
    near(nc_metrics_roc_auc(m, NC_METRICS_MACRO), c->roc_macro, TOL, "roc macro", 0);
    near(nc_metrics_roc_auc(m, NC_METRICS_WEIGHTED), c->roc_weighted, TOL, "roc weighted", 0);
    near(nc_metrics_log_loss(m), c->log_loss, TOL, "log_loss", 0);
    near(nc_metrics_ece(m, 10), c->ece[0], TOL, "ece10", 0);
    near(nc_metrics_ece(m, 15), c->ece[1], TOL, "ece15", 0);
    nc_metrics_destroy(m);

    int H = c->heads;
    float T = 0.0f;
    assert_int_equal(nc_calibrate_temperature(ctx, c->logits + c->head * K, H * K, c->labels + c->head, H, c->n,
                                              K, c->ignore, &T),
                     NC_OK);
    near(T, c->temperature, 1e-4, "temperature", 0);
}

/* ------------------------------------------------------------------ goldens */

static void test_metrics_rand4_matches_sklearn(void **state) { check_case(fx_ctx(state), &gold_rand4); }
static void test_metrics_absent_class_matches_sklearn(void **state) { check_case(fx_ctx(state), &gold_absent5); }
static void test_metrics_head1_of_two_matches_sklearn(void **state) { check_case(fx_ctx(state), &gold_heads2); }
static void test_metrics_ties_match_sklearn(void **state) { check_case(fx_ctx(state), &gold_ties3); }

/* Head 1 of a two-head buffer (strides) equals the metrics of the extracted slice. */
static void test_metrics_head_stride_equals_slice(void **state) {
    nc_context *ctx = fx_ctx(state);
    const gold_metrics_case *c = &gold_heads2;
    int K = c->classes, H = c->heads, n = c->n;
    float *z = tu_zeros((size_t)n * (size_t)K);
    int32_t *y = malloc((size_t)n * sizeof *y);
    assert_non_null(y);
    for (int i = 0; i < n; i++) {
        memcpy(z + (size_t)i * (size_t)K, c->logits + (size_t)i * (size_t)(H * K) + K, (size_t)K * sizeof *z);
        y[i] = c->labels[i * H + 1];
    }
    nc_metrics *a = compute_case(ctx, c), *b = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 0, y, 0, n, K, c->ignore, &b), NC_OK);
    assert_int_equal(nc_metrics_count(a), nc_metrics_count(b));
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) assert_int_equal(nc_metrics_confusion(a, t, p), nc_metrics_confusion(b, t, p));
    for (int k = -2; k < K; k++) {
        assert_true(nc_metrics_fbeta(a, k, 1.0) == nc_metrics_fbeta(b, k, 1.0));
        assert_true(nc_metrics_roc_auc(a, k) == nc_metrics_roc_auc(b, k));
    }
    assert_true(nc_metrics_log_loss(a) == nc_metrics_log_loss(b));
    assert_true(nc_metrics_ece(a, 15) == nc_metrics_ece(b, 15));
    assert_true(nc_metrics_top_k(a, 2) == nc_metrics_top_k(b, 2));
    nc_metrics_destroy(a);
    nc_metrics_destroy(b);
    free(z);
    free(y);
}

/* ------------------------------------------------------------------- by hand */

/* Three classes, 8 samples; logits put the prediction where the comment says.
 *   truth: 0 0 0 1 1 2 2 2      pred: 0 0 1 1 2 2 2 0
 * confusion (rows truth, columns pred):   [2 1 0; 0 1 1; 1 0 2]
 *   precision: 0: 2/3   1: 1/2   2: 2/3     recall: 0: 2/3  1: 1/2  2: 2/3
 *   F1 = 2PR/(P+R): 0: 2/3  1: 1/2  2: 2/3
 *   macro F1 = (2/3 + 1/2 + 2/3)/3 = 11/18; weighted F1 = (3*2/3 + 2*1/2 + 3*2/3)/8 = 5/8
 *   accuracy = 5/8; balanced accuracy = (2/3 + 1/2 + 2/3)/3 = 11/18. */
static const int32_t hand_y[8] = {0, 0, 0, 1, 1, 2, 2, 2};
static const int hand_pred[8] = {0, 0, 1, 1, 2, 2, 2, 0};

static nc_metrics *hand_metrics(nc_context *ctx) {
    float z[8 * 3];
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 3; k++) z[i * 3 + k] = k == hand_pred[i] ? 2.0f : (float)(0.1 * k);
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 3, hand_y, 1, 8, 3, -1, &m), NC_OK);
    return m;
}

static void test_metrics_hand_confusion_and_prf(void **state) {
    nc_metrics *m = hand_metrics(fx_ctx(state));
    const int64_t cm[9] = {2, 1, 0, 0, 1, 1, 1, 0, 2};
    for (int i = 0; i < 9; i++) assert_int_equal(nc_metrics_confusion(m, i / 3, i % 3), cm[i]);
    near(nc_metrics_precision(m, 0), 2.0 / 3, 1e-15, "p", 0);
    near(nc_metrics_precision(m, 1), 0.5, 1e-15, "p", 1);
    near(nc_metrics_recall(m, 2), 2.0 / 3, 1e-15, "r", 2);
    near(nc_metrics_fbeta(m, 1, 1.0), 0.5, 1e-15, "f", 1);
    near(nc_metrics_fbeta(m, NC_METRICS_MACRO, 1.0), 11.0 / 18, 1e-15, "macro f1", 0);
    near(nc_metrics_fbeta(m, NC_METRICS_WEIGHTED, 1.0), 5.0 / 8, 1e-15, "weighted f1", 0);
    near(nc_metrics_top_k(m, 1), 5.0 / 8, 1e-15, "acc", 0);
    near(nc_metrics_balanced_accuracy(m), 11.0 / 18, 1e-15, "bacc", 0);
    assert_int_equal(nc_metrics_count(m), 8);
    nc_metrics_destroy(m);
}

/* A class never true and never predicted: its P/R/F are 0 (zero_division=0) and it is
 * left out of the macro mean and the balanced accuracy; its ROC-AUC is NaN. */
static void test_metrics_class_without_support(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[8 * 4];
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++) z[i * 4 + k] = k == hand_pred[i] ? 2.0f : (k == 3 ? -5.0f : 0.1f * (float)k);
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 0, hand_y, 0, 8, 4, -1, &m), NC_OK);
    assert_true(nc_metrics_precision(m, 3) == 0.0);
    assert_true(nc_metrics_recall(m, 3) == 0.0);
    assert_true(nc_metrics_fbeta(m, 3, 2.0) == 0.0);
    near(nc_metrics_fbeta(m, NC_METRICS_MACRO, 1.0), 11.0 / 18, 1e-15, "macro f1", 0);
    near(nc_metrics_balanced_accuracy(m), 11.0 / 18, 1e-15, "bacc", 0);
    assert_true(isnan(nc_metrics_roc_auc(m, 3)));
    assert_false(isnan(nc_metrics_roc_auc(m, NC_METRICS_MACRO)));
    nc_metrics_destroy(m);
}

/* ignore_label skips samples wherever it is, in or out of [0, K). */
static void test_metrics_ignore_label(void **state) {
    nc_context *ctx = fx_ctx(state);
    float z[10 * 3];
    int32_t y[10];
    for (int i = 0; i < 10; i++) {
        for (int k = 0; k < 3; k++) z[i * 3 + k] = i < 8 ? (k == hand_pred[i] ? 2.0f : 0.1f * (float)k) : 9.0f;
        y[i] = i < 8 ? hand_y[i] : 1;
    }
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 3, y, 1, 10, 3, 1, &m), NC_OK);
    assert_int_equal(nc_metrics_count(m), 6); /* the two 1s of hand_y and samples 8, 9 */
    assert_int_equal(nc_metrics_confusion(m, 1, 1), 0);
    nc_metrics_destroy(m);
    y[8] = y[9] = -7; /* out of range but ignored */
    assert_int_equal(nc_metrics_compute(ctx, z, 3, y, 1, 10, 3, -7, &m), NC_OK);
    assert_int_equal(nc_metrics_count(m), 8);
    near(nc_metrics_top_k(m, 1), 5.0 / 8, 1e-15, "acc", 0);
    nc_metrics_destroy(m);
}

/* ROC-AUC with tied scores: midranks. Class 0 probabilities (equal logits rows give
 * equal probabilities): scores 0.9 (pos), 0.5 (pos), 0.5 (neg), 0.1 (neg):
 * pairs (pos, neg): (0.9,0.5)=1, (0.9,0.1)=1, (0.5,0.5)=1/2, (0.5,0.1)=1 -> 3.5/4. */
static void test_metrics_roc_auc_ties_by_hand(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[4 * 2] = {3.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 3.0f};
    const int32_t y[4] = {0, 0, 1, 1};
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 2, y, 1, 4, 2, -1, &m), NC_OK);
    near(nc_metrics_roc_auc(m, 0), 3.5 / 4, 1e-15, "auc", 0);
    near(nc_metrics_roc_auc(m, 1), 3.5 / 4, 1e-15, "auc", 1);
    /* top-1 ties go to the higher class index (sklearn): sample 1 (truth 0, logits
     * equal) misses at k = 1, sample 2 (truth 1) hits. Argmax (first maximum) predicts
     * 0 for both, so the confusion matrix has them the other way round. */
    near(nc_metrics_top_k(m, 1), 3.0 / 4, 1e-15, "top1", 0);
    assert_int_equal(nc_metrics_confusion(m, 0, 0), 2);
    assert_int_equal(nc_metrics_confusion(m, 1, 0), 1);
    nc_metrics_destroy(m);
}

/* ECE by hand: two classes, confidence p = 1/(1+e^-d) for d = z0 - z1. Samples
 * d = 0 (c = 0.5 exactly, a bin edge), d = ln 4 (c = 0.8), d = ln 9 (c = 0.9); truths
 * 0, 1, 0; top-1 (first maximum on the tie) is 0 for all: hits 1, 0, 1.
 *   bins 1 and 2 (0.5 -> floor(1.0) = bin 1 of 2): one bin, |2/3 - 2.2/3| = 0.2/3
 *   bins 4: 0.5 -> bin 2, 0.8 and 0.9 -> bin 3: 1/3 |1 - 0.5| + 2/3 |1/2 - 0.85| */
static void test_metrics_ece_by_hand(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[3 * 2] = {0.0f, 0.0f, (float)log(4.0), 0.0f, (float)log(9.0), 0.0f};
    const int32_t y[3] = {0, 1, 0};
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 2, y, 1, 3, 2, -1, &m), NC_OK);
    near(nc_metrics_ece(m, 2), 0.2 / 3, 1e-6, "ece2", 0);
    near(nc_metrics_ece(m, 4), 1.0 / 6 + 2.0 / 3 * 0.35, 1e-6, "ece4", 0);
    near(nc_metrics_ece(m, 1), 0.2 / 3, 1e-6, "ece1", 0);
    assert_true(isnan(nc_metrics_ece(m, 0)));
    nc_metrics_destroy(m);
}

/* Log loss on a hand case: -mean log softmax(z)_y. */
static void test_metrics_log_loss_by_hand(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[2 * 2] = {0.0f, 0.0f, 200.0f, 0.0f};
    const int32_t y[2] = {1, 1};
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 2, y, 1, 2, 2, -1, &m), NC_OK);
    /* sample 2: p = e^-200 clipped to DBL_EPSILON as sklearn: -log(2^-52) */
    near(nc_metrics_log_loss(m), (log(2.0) + 52 * log(2.0)) / 2, 1e-12, "log_loss", 0);
    nc_metrics_destroy(m);
}

/* All samples ignored (or n = 0): a valid, empty result. */
static void test_metrics_empty(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[2] = {1.0f, 2.0f};
    const int32_t y[1] = {-1};
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 0, y, 0, 1, 2, -1, &m), NC_OK);
    assert_int_equal(nc_metrics_count(m), 0);
    assert_true(isnan(nc_metrics_top_k(m, 1)));
    assert_true(nc_metrics_fbeta(m, NC_METRICS_MACRO, 1.0) == 0.0);
    assert_true(isnan(nc_metrics_balanced_accuracy(m)));
    assert_true(isnan(nc_metrics_roc_auc(m, NC_METRICS_MACRO)));
    assert_true(isnan(nc_metrics_log_loss(m)));
    assert_true(isnan(nc_metrics_ece(m, 10)));
    nc_metrics_destroy(m);
    assert_int_equal(nc_metrics_compute(ctx, z, 0, y, 0, 0, 2, -1, &m), NC_OK);
    assert_int_equal(nc_metrics_count(m), 0);
    nc_metrics_destroy(m);
}

/* ------------------------------------------------------------- temperature */

/* Logits scaled by s: the fitted temperature scales by s too. */
static void test_temperature_scales_with_logits(void **state) {
    nc_context *ctx = fx_ctx(state);
    const gold_metrics_case *c = &gold_rand4;
    size_t nz = (size_t)c->n * (size_t)c->classes;
    float *z = tu_zeros(nz);
    for (size_t i = 0; i < nz; i++) z[i] = 4.0f * c->logits[i];
    float T = 0.0f;
    assert_int_equal(nc_calibrate_temperature(ctx, z, 0, c->labels, 0, c->n, c->classes, c->ignore, &T), NC_OK);
    near(T, 4.0 * c->temperature, 1e-4, "T*4", 0);
    free(z);
}

/* Degenerate fits return the bounds: separable data (T -> 0) and logits that are
 * wrong on every sample (T -> inf). */
static void test_temperature_degenerate_bounds(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[2 * 2] = {1.0f, 0.0f, 0.0f, 1.0f};
    const int32_t right[2] = {0, 1}, wrong[2] = {1, 0};
    float T = 0.0f;
    assert_int_equal(nc_calibrate_temperature(ctx, z, 2, right, 1, 2, 2, -1, &T), NC_OK);
    assert_true(T == 1e-3f);
    assert_int_equal(nc_calibrate_temperature(ctx, z, 2, wrong, 1, 2, 2, -1, &T), NC_OK);
    assert_true(T == 1e3f);
}

static void test_temperature_errors(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[2 * 2] = {1.0f, 0.0f, 0.0f, NAN};
    const int32_t y[2] = {0, 1}, ign[2] = {-1, -1};
    float T;
    assert_int_equal(nc_calibrate_temperature(ctx, z, 2, y, 1, 2, 2, -1, NULL), NC_ERR_NULL);
    assert_int_equal(nc_calibrate_temperature(ctx, NULL, 2, y, 1, 2, 2, -1, &T), NC_ERR_NULL);
    assert_int_equal(nc_calibrate_temperature(ctx, z, 2, y, 1, 2, 2, -1, &T), NC_ERR_NUMERIC);
    assert_non_null(strstr(nc_context_last_error(ctx), "logit 1 of sample 1 is not finite"));
    assert_int_equal(nc_calibrate_temperature(ctx, z, 2, ign, 1, 2, 2, -1, &T), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "no sample"));
    assert_int_equal(nc_calibrate_temperature(ctx, z, 2, y, 1, 2, 1, -1, &T), NC_ERR_INVALID_ARGUMENT);
}

/* --------------------------------------------------------------- thresholds */

static void stats_equal(const nc_binary_stats *s, const gold_threshold_stats *g, int row) {
    assert_int_equal(s->tp, g->tp);
    assert_int_equal(s->fp, g->fp);
    assert_int_equal(s->tn, g->tn);
    assert_int_equal(s->fn, g->fn);
    near(s->precision, g->precision, TOL, "precision", row);
    near(s->recall, g->recall, TOL, "recall", row);
    near(s->fbeta, g->fbeta, TOL, "fbeta", row);
}

static void test_threshold_select_and_apply_match_golden(void **state) {
    nc_context *ctx = fx_ctx(state);
    for (int r = 0; r < GOLD_THR_ROWS; r++) {
        const gold_threshold_row *g = &gold_thr_rows[r];
        float t = -1.0f;
        nc_binary_stats at, held;
        nc_status st = nc_threshold_select(ctx, gold_thr_scores, gold_thr_positive, GOLD_THR_N,
                                           (nc_threshold_rule)g->rule, g->value, &t, &at);
        if (!g->found) {
            assert_int_equal(st, NC_ERR_NOT_FOUND);
            continue;
        }
        assert_int_equal(st, NC_OK);
        assert_true(t == g->threshold);
        double beta = g->rule == NC_THRESHOLD_MAX_FBETA ? g->value : 1.0;
        stats_equal(&at, &g->at, r);
        assert_int_equal(nc_threshold_apply(ctx, gold_thr_scores2, gold_thr_positive2, GOLD_THR_N2, t, beta, &held),
                         NC_OK);
        stats_equal(&held, &g->held_out, r);
    }
}

/* By hand: scores 0.9+ 0.8- 0.7+ 0.6+ 0.5- (P = 3).
 *   t=0.9: P 1, R 1/3, F1 1/2     t=0.8: P 1/2, R 1/3, F1 0.4
 *   t=0.7: P 2/3, R 2/3, F1 2/3   t=0.6: P 3/4, R 1, F1 6/7     t=0.5: P 3/5, R 1, F1 3/4
 * MAX F1 -> 0.6. Precision >= 2/3: 0.9, 0.7, 0.6 qualify -> lowest 0.6. Precision >= 0.8:
 * only 0.9. With beta = 0, F = precision: 0.9 (P = 1). */
static void test_threshold_by_hand(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float s[5] = {0.6f, 0.9f, 0.5f, 0.8f, 0.7f};
    const int32_t p[5] = {1, 1, 0, 0, 1};
    float t;
    nc_binary_stats at;
    assert_int_equal(nc_threshold_select(ctx, s, p, 5, NC_THRESHOLD_MAX_FBETA, 1.0, &t, &at), NC_OK);
    assert_true(t == 0.6f);
    near(at.fbeta, 6.0 / 7, 1e-15, "f1", 0);
    assert_int_equal(at.tp, 3);
    assert_int_equal(at.fp, 1);
    assert_int_equal(at.tn, 1);
    assert_int_equal(at.fn, 0);
    assert_int_equal(nc_threshold_select(ctx, s, p, 5, NC_THRESHOLD_TARGET_PRECISION, 2.0 / 3, &t, NULL), NC_OK);
    assert_true(t == 0.6f);
    assert_int_equal(nc_threshold_select(ctx, s, p, 5, NC_THRESHOLD_TARGET_PRECISION, 0.8, &t, &at), NC_OK);
    assert_true(t == 0.9f);
    near(at.recall, 1.0 / 3, 1e-15, "recall", 0);
    assert_int_equal(nc_threshold_select(ctx, s, p, 5, NC_THRESHOLD_MAX_FBETA, 0.0, &t, NULL), NC_OK);
    assert_true(t == 0.9f);
    /* Ties in F-beta keep the higher threshold: 0.9+ 0.8- 0.7- 0.6+ gives F1 2/3 at
     * 0.9 (P 1, R 1/2) and 2/3 at 0.6 (P 1/2, R 1). */
    const float s2[4] = {0.9f, 0.8f, 0.7f, 0.6f};
    const int32_t p2[4] = {1, 0, 0, 1};
    assert_int_equal(nc_threshold_select(ctx, s2, p2, 4, NC_THRESHOLD_MAX_FBETA, 1.0, &t, &at), NC_OK);
    assert_true(t == 0.9f);
    /* apply: "score >= threshold" */
    assert_int_equal(nc_threshold_apply(ctx, s, p, 5, 0.7f, 1.0, &at), NC_OK);
    assert_int_equal(at.tp, 2);
    assert_int_equal(at.fp, 1);
    /* no positives at all: recall and F are 0 (undefined) */
    const int32_t none[4] = {0, 0, 0, 0};
    assert_int_equal(nc_threshold_apply(ctx, s2, none, 4, 0.0f, 1.0, &at), NC_OK);
    assert_true(at.recall == 0.0 && at.fbeta == 0.0 && at.precision == 0.0);
    assert_int_equal(nc_threshold_select(ctx, s2, none, 4, NC_THRESHOLD_TARGET_PRECISION, 0.5, &t, &at),
                     NC_ERR_NOT_FOUND);
    assert_non_null(strstr(nc_context_last_error(ctx), "no threshold reaches precision 0.5"));
}

static void test_threshold_errors(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float s[2] = {0.5f, NAN};
    const int32_t p[2] = {1, 0}, bad[2] = {1, 2};
    float t;
    nc_binary_stats at;
    assert_int_equal(nc_threshold_select(ctx, s, p, 1, NC_THRESHOLD_MAX_FBETA, 1.0, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_threshold_select(ctx, NULL, p, 1, NC_THRESHOLD_MAX_FBETA, 1.0, &t, NULL), NC_ERR_NULL);
    assert_int_equal(nc_threshold_select(NULL, s, p, 1, NC_THRESHOLD_MAX_FBETA, 1.0, &t, NULL), NC_ERR_NULL);
    assert_int_equal(nc_threshold_select(ctx, s, p, 2, NC_THRESHOLD_MAX_FBETA, 1.0, &t, NULL),
                     NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "scores[1] is NaN"));
    assert_int_equal(nc_threshold_select(ctx, s, bad, 2, NC_THRESHOLD_MAX_FBETA, 1.0, &t, NULL),
                     NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "positive[1] = 2 is not 0 or 1"));
    assert_int_equal(nc_threshold_select(ctx, s, p, 0, NC_THRESHOLD_MAX_FBETA, 1.0, &t, NULL),
                     NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_threshold_select(ctx, s, p, 1, NC_THRESHOLD_MAX_FBETA, -1.0, &t, NULL),
                     NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_threshold_select(ctx, s, p, 1, NC_THRESHOLD_TARGET_PRECISION, 1.5, &t, NULL),
                     NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_threshold_select(ctx, s, p, 1, (nc_threshold_rule)7, 0.5, &t, NULL),
                     NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_threshold_apply(ctx, s, p, 1, 0.5f, 1.0, NULL), NC_ERR_NULL);
    assert_int_equal(nc_threshold_apply(ctx, s, p, -1, 0.5f, 1.0, &at), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_threshold_apply(ctx, s, p, 1, NAN, 1.0, &at), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_threshold_apply(ctx, s, p, 1, 0.5f, NAN, &at), NC_ERR_INVALID_ARGUMENT);
}

/* --------------------------------------------------------------- multi-label */

/* Per-label AUC against the pairwise definition: continuous and tied scores, a perfect
 * and an inverted ranking, a label with no positive and one with no negative (NaN,
 * left out of the mean). */
static void test_multilabel_roc_auc_matches_golden(void **state) {
    nc_context *ctx = fx_ctx(state);
    double auc[ML_L], mean = 0.0;
    assert_int_equal(nc_multilabel_roc_auc(ctx, ml_logits, ml_labels, ML_N, ML_L, auc, &mean), NC_OK);
    for (int k = 0; k < ML_L; k++) near(auc[k], ml_auc[k], 1e-12, "auc", k);
    near(mean, ml_mean_auc, 1e-12, "mean auc", 0);
    assert_true(auc[2] == 1.0 && auc[5] == 0.0);
    assert_true(isnan(auc[3]) && isnan(auc[4]));
}

/* Ties by hand: scores (1, 1, 2, 0) with truth (1, 0, 1, 0): pairs (p, n) = (1 vs 1:
 * 1/2, 1 vs 0: 1, 2 vs 1: 1, 2 vs 0: 1) -> 3.5 / 4. One label, so the mean equals it;
 * n = 0 gives NaN everywhere. */
static void test_multilabel_roc_auc_by_hand(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[4] = {1, 1, 2, 0};
    const int32_t y[4] = {1, 0, 1, 0};
    double auc = 0.0, mean = 0.0;
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, y, 4, 1, &auc, &mean), NC_OK);
    near(auc, 3.5 / 4, 1e-15, "auc", 0);
    near(mean, 3.5 / 4, 1e-15, "mean", 0);
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, y, 0, 1, &auc, &mean), NC_OK);
    assert_true(isnan(auc) && isnan(mean));
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, y, 4, 1, &auc, NULL), NC_OK);
}

static void test_multilabel_roc_auc_errors(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[4] = {1, 2, 3, INFINITY};
    const int32_t bad[4] = {0, 1, 2, 0}, ok[4] = {0, 1, 1, 0};
    double auc[2];
    assert_int_equal(nc_multilabel_roc_auc(NULL, z, ok, 2, 2, auc, NULL), NC_ERR_NULL);
    assert_int_equal(nc_multilabel_roc_auc(ctx, NULL, ok, 2, 2, auc, NULL), NC_ERR_NULL);
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, NULL, 2, 2, auc, NULL), NC_ERR_NULL);
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, ok, 2, 2, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, ok, -1, 2, auc, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, ok, 2, 0, auc, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, bad, 2, 2, auc, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "label 0 of sample 1 is 2, not 0 or 1"));
    assert_int_equal(nc_multilabel_roc_auc(ctx, z, ok, 2, 2, auc, NULL), NC_ERR_NUMERIC);
    assert_non_null(strstr(nc_context_last_error(ctx), "logit 1 of sample 1 is not finite"));
}

/* ------------------------------------------------------------------ errors */

static void test_metrics_compute_errors(void **state) {
    nc_context *ctx = fx_ctx(state);
    const float z[2 * 3] = {1, 2, 3, 4, 5, INFINITY};
    const int32_t y[2] = {0, 3}, ok[2] = {0, 2};
    nc_metrics *m = (nc_metrics *)0x1;
    assert_int_equal(nc_metrics_compute(ctx, z, 3, y, 1, 2, 3, -1, NULL), NC_ERR_NULL);
    assert_int_equal(nc_metrics_compute(NULL, z, 3, y, 1, 2, 3, -1, &m), NC_ERR_NULL);
    assert_null(m);
    assert_int_equal(nc_metrics_compute(ctx, NULL, 3, y, 1, 2, 3, -1, &m), NC_ERR_NULL);
    assert_int_equal(nc_metrics_compute(ctx, z, 3, NULL, 1, 2, 3, -1, &m), NC_ERR_NULL);
    assert_int_equal(nc_metrics_compute(ctx, z, 3, y, 1, 2, 3, -1, &m), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "label 3 of sample 1 is outside [0, 3)"));
    assert_int_equal(nc_metrics_compute(ctx, z, 3, ok, 1, 2, 3, -1, &m), NC_ERR_NUMERIC);
    assert_non_null(strstr(nc_context_last_error(ctx), "logit 2 of sample 1 is not finite"));
    assert_int_equal(nc_metrics_compute(ctx, z, 3, ok, 1, 1, 1, -1, &m), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "num_classes 1 < 2"));
    assert_int_equal(nc_metrics_compute(ctx, z, 3, ok, 1, -1, 3, -1, &m), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_metrics_compute(ctx, z, 2, ok, 1, 1, 3, -1, &m), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "logit_stride 2 < num_classes 3"));
    assert_int_equal(nc_metrics_compute(ctx, z, 3, ok, -1, 1, 3, -1, &m), NC_ERR_INVALID_ARGUMENT);
    assert_null(m);
}

/* Accessors on NULL or out-of-range arguments: 0 for counts, NaN for rates. */
static void test_metrics_accessors_bad_arguments(void **state) {
    nc_metrics_destroy(NULL);
    assert_int_equal(nc_metrics_count(NULL), 0);
    assert_int_equal(nc_metrics_num_classes(NULL), 0);
    assert_int_equal(nc_metrics_confusion(NULL, 0, 0), 0);
    assert_true(isnan(nc_metrics_top_k(NULL, 1)));
    assert_true(isnan(nc_metrics_precision(NULL, 0)));
    assert_true(isnan(nc_metrics_log_loss(NULL)));
    assert_true(isnan(nc_metrics_ece(NULL, 10)));
    assert_true(isnan(nc_metrics_balanced_accuracy(NULL)));
    nc_metrics *m = hand_metrics(fx_ctx(state));
    assert_int_equal(nc_metrics_confusion(m, 3, 0), 0);
    assert_int_equal(nc_metrics_confusion(m, 0, -1), 0);
    assert_true(isnan(nc_metrics_top_k(m, 0)));
    assert_true(isnan(nc_metrics_recall(m, 3)));
    assert_true(isnan(nc_metrics_precision(m, -3)));
    assert_true(isnan(nc_metrics_fbeta(m, 0, -1.0)));
    assert_true(isnan(nc_metrics_fbeta(m, 0, INFINITY)));
    assert_true(isnan(nc_metrics_roc_auc(m, 3)));
    nc_metrics_destroy(m);
}

/* Out of memory at every allocation of nc_metrics_compute and nc_threshold_select:
 * a clean NC_ERR_OUT_OF_MEMORY and nothing leaked (the teardown checks). */
static void test_metrics_out_of_memory(void **state) {
    tu_fx *fx = *state;
    const gold_metrics_case *c = &gold_rand4;
    for (long f = 0;; f++) {
        fx->cnt.calls = 0;
        fx->cnt.fail_after = f;
        nc_metrics *m = NULL;
        nc_status st = nc_metrics_compute(fx->ctx, c->logits, 0, c->labels, 0, c->n, c->classes, c->ignore, &m);
        fx->cnt.fail_after = -1;
        if (st == NC_OK) {
            nc_metrics_destroy(m);
            break;
        }
        assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
        assert_null(m);
        assert_true(f < 50);
    }
    float t;
    fx->cnt.calls = 0;
    fx->cnt.fail_after = 0;
    assert_int_equal(nc_threshold_select(fx->ctx, gold_thr_scores, gold_thr_positive, GOLD_THR_N,
                                         NC_THRESHOLD_MAX_FBETA, 1.0, &t, NULL),
                     NC_ERR_OUT_OF_MEMORY);
    fx->cnt.fail_after = -1;
}

#define FX(t) cmocka_unit_test_setup_teardown(t, tu_fx_setup, tu_fx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        FX(test_metrics_rand4_matches_sklearn),
        FX(test_metrics_absent_class_matches_sklearn),
        FX(test_metrics_head1_of_two_matches_sklearn),
        FX(test_metrics_ties_match_sklearn),
        FX(test_metrics_head_stride_equals_slice),
        FX(test_metrics_hand_confusion_and_prf),
        FX(test_metrics_class_without_support),
        FX(test_metrics_ignore_label),
        FX(test_metrics_roc_auc_ties_by_hand),
        FX(test_metrics_ece_by_hand),
        FX(test_metrics_log_loss_by_hand),
        FX(test_metrics_empty),
        FX(test_temperature_scales_with_logits),
        FX(test_temperature_degenerate_bounds),
        FX(test_temperature_errors),
        FX(test_threshold_select_and_apply_match_golden),
        FX(test_threshold_by_hand),
        FX(test_threshold_errors),
        FX(test_metrics_compute_errors),
        FX(test_metrics_accessors_bad_arguments),
        FX(test_metrics_out_of_memory),
        FX(test_multilabel_roc_auc_matches_golden),
        FX(test_multilabel_roc_auc_by_hand),
        FX(test_multilabel_roc_auc_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
