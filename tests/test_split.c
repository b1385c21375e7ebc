/* test_split.c — stratified train/val/test splits and stratified k-fold: every
 * class's counts within 1 of exact (also for tiny and heavily imbalanced classes),
 * partitions, fold balance, seeded reproducibility, and argument errors. */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state) {
    nc_context *ctx;
    if (nc_context_create(NULL, &ctx) != NC_OK) return -1;
    *state = ctx;
    return 0;
}

static int teardown(void **state) {
    nc_context_destroy(*state);
    return 0;
}

/* labels[n] with counts[c] members of class c, interleaved deterministically. */
static int32_t *make_labels(const int64_t *counts, int classes, int64_t *n_out) {
    int64_t n = 0;
    for (int c = 0; c < classes; c++) n += counts[c];
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    assert_non_null(labels);
    int64_t *left = calloc((size_t)classes, sizeof(int64_t));
    memcpy(left, counts, sizeof(int64_t) * (size_t)classes);
    int64_t k = 0;
    for (int c = 0; k < n; c = (c + 1) % classes)
        if (left[c] > 0) {
            labels[k++] = c;
            left[c]--;
        }
    free(left);
    *n_out = n;
    return labels;
}

/* Each class's part counts are within 1 of exact; every sample gets 0, 1 or 2. */
static void check_stratified(const int32_t *labels, int64_t n, int classes, const float fr[3], const int8_t *assign) {
    double sum = (double)fr[0] + fr[1] + fr[2];
    for (int c = 0; c < classes; c++) {
        int64_t cnt[3] = {0, 0, 0}, m = 0;
        for (int64_t i = 0; i < n; i++)
            if (labels[i] == c) {
                assert_true(assign[i] >= 0 && assign[i] <= 2);
                cnt[assign[i]]++;
                m++;
            }
        for (int p = 0; p < 3; p++) {
            double exact = (double)m * fr[p] / sum;
            if (!(fabs((double)cnt[p] - exact) < 1.0))
                fail_msg("class %d (%lld members): part %d has %lld, exact %.4f", c, (long long)m, p,
                         (long long)cnt[p], exact);
            if (fr[p] == 0) assert_int_equal(cnt[p], 0);
        }
    }
}

static void run_stratified(nc_context *ctx, const int64_t *counts, int classes, const float fr[3], uint64_t seed) {
    int64_t n;
    int32_t *labels = make_labels(counts, classes, &n);
    int8_t *assign = malloc((size_t)(n ? n : 1));
    memset(assign, -1, (size_t)(n ? n : 1));
    assert_int_equal(nc_split_stratified(ctx, labels, n, fr[0], fr[1], fr[2], seed, assign), NC_OK);
    check_stratified(labels, n, classes, fr, assign);
    free(assign);
    free(labels);
}

static void test_split_stratified_counts_exact_per_class(void **state) {
    nc_context *ctx = *state;
    const float fracs[][3] = {{0.7f, 0.15f, 0.15f}, {0.8f, 0.2f, 0.0f}, {1.0f, 0.0f, 0.0f},
                              {0.6f, 0.2f, 0.2f},   {1 / 3.f, 1 / 3.f, 1 / 3.f}, {0.0f, 0.5f, 0.5f},
                              {0.5f, 0.25f, 0.25f}};
    const int64_t imbalanced[] = {1000, 30, 3};
    const int64_t tiny[] = {1, 2, 1, 2, 3};
    const int64_t mixed[] = {17, 0, 5, 1, 64, 2, 99};
    const int64_t single[] = {1};
    const int64_t big[] = {12345, 6789};
    for (size_t f = 0; f < sizeof fracs / sizeof *fracs; f++) {
        for (uint64_t seed = 0; seed < 3; seed++) {
            run_stratified(ctx, imbalanced, 3, fracs[f], seed);
            run_stratified(ctx, tiny, 5, fracs[f], seed);
            run_stratified(ctx, mixed, 7, fracs[f], seed);
            run_stratified(ctx, single, 1, fracs[f], seed);
        }
        run_stratified(ctx, big, 2, fracs[f], 11);
    }
    for (int64_t m = 0; m < 40; m++) { /* every class size up to 40 */
        const int64_t cnt[] = {m, m + 1, 2 * m + 3};
        run_stratified(ctx, cnt, 3, fracs[0], (uint64_t)m);
    }
}

static void test_split_stratified_tiny_classes_totals_balanced(void **state) {
    /* 100 classes of 10: each class gives 7 train and one extra to val or test; the
     * extras alternate so the totals are 700 / 150 / 150. */
    nc_context *ctx = *state;
    int64_t counts[100];
    for (int c = 0; c < 100; c++) counts[c] = 10;
    int64_t n;
    int32_t *labels = make_labels(counts, 100, &n);
    int8_t *assign = malloc((size_t)n);
    assert_int_equal(nc_split_stratified(ctx, labels, n, 0.7f, 0.15f, 0.15f, 5, assign), NC_OK);
    int64_t tot[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) tot[assign[i]]++;
    assert_int_equal(tot[0], 700);
    assert_true(llabs(tot[1] - 150) <= 1 && llabs(tot[2] - 150) <= 1);
    free(assign);
    free(labels);
}

static void test_split_stratified_deterministic_per_seed(void **state) {
    nc_context *ctx = *state;
    const int64_t counts[] = {300, 200, 50};
    int64_t n;
    int32_t *labels = make_labels(counts, 3, &n);
    int8_t *a = malloc((size_t)n), *b = malloc((size_t)n), *c = malloc((size_t)n);
    assert_int_equal(nc_split_stratified(ctx, labels, n, 0.7f, 0.15f, 0.15f, 42, a), NC_OK);
    assert_int_equal(nc_split_stratified(ctx, labels, n, 0.7f, 0.15f, 0.15f, 42, b), NC_OK);
    assert_int_equal(nc_split_stratified(ctx, labels, n, 0.7f, 0.15f, 0.15f, 43, c), NC_OK);
    assert_memory_equal(a, b, (size_t)n);
    assert_memory_not_equal(a, c, (size_t)n);
    /* shuffled: class 0's training part is not simply its first members */
    int64_t first_train = 0, seen = 0;
    for (int64_t i = 0; i < n && seen < 210; i++)
        if (labels[i] == 0) {
            first_train += a[i] == 0;
            seen++;
        }
    assert_true(first_train < 210);
    free(a);
    free(b);
    free(c);
    free(labels);
}

static void test_split_stratified_empty_and_huge_labels(void **state) {
    nc_context *ctx = *state;
    assert_int_equal(nc_split_stratified(ctx, NULL, 0, 0.7f, 0.15f, 0.15f, 1, NULL), NC_OK);
    /* sparse label values (no table indexed by label) */
    int32_t labels[6] = {2000000000, 5, 2000000000, 5, 2000000000, 7};
    int8_t assign[6];
    assert_int_equal(nc_split_stratified(ctx, labels, 6, 0.5f, 0.5f, 0.0f, 1, assign), NC_OK);
    int hi[2] = {0, 0}, lo[2] = {0, 0};
    for (int i = 0; i < 6; i++) {
        assert_true(assign[i] == 0 || assign[i] == 1);
        if (labels[i] == 2000000000) hi[assign[i]]++;
        if (labels[i] == 5) lo[assign[i]]++;
    }
    assert_true(abs(hi[0] - hi[1]) == 1);
    assert_int_equal(lo[0], 1);
    assert_int_equal(lo[1], 1);
}

static void test_split_stratified_bad_arguments(void **state) {
    nc_context *ctx = *state;
    int32_t labels[4] = {0, 1, 0, 1};
    int8_t assign[4];
    assert_int_equal(nc_split_stratified(NULL, labels, 4, 0.5f, 0.5f, 0, 1, assign), NC_ERR_NULL);
    assert_int_equal(nc_split_stratified(ctx, NULL, 4, 0.5f, 0.5f, 0, 1, assign), NC_ERR_NULL);
    assert_int_equal(nc_split_stratified(ctx, labels, 4, 0.5f, 0.5f, 0, 1, NULL), NC_ERR_NULL);
    assert_int_equal(nc_split_stratified(ctx, labels, -1, 0.5f, 0.5f, 0, 1, assign), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_stratified(ctx, labels, 4, 0.5f, 0.6f, 0, 1, assign), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "not 1"));
    assert_int_equal(nc_split_stratified(ctx, labels, 4, 0.5f, 0.4f, 0, 1, assign), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_stratified(ctx, labels, 4, 1.2f, -0.2f, 0, 1, assign), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_stratified(ctx, labels, 4, NAN, 0.5f, 0.5f, 1, assign), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_stratified(ctx, labels, 4, INFINITY, 0, 0, 1, assign), NC_ERR_INVALID_ARGUMENT);
    /* within 1e-4 of 1 is accepted */
    assert_int_equal(nc_split_stratified(ctx, labels, 4, 0.50004f, 0.5f, 0, 1, assign), NC_OK);
    labels[2] = -3;
    assert_int_equal(nc_split_stratified(ctx, labels, 4, 0.5f, 0.5f, 0, 1, assign), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "labels[2]"));
}

/* Folds partition the samples; per-class and total fold sizes differ by <= 1. */
static void check_kfold(const int32_t *labels, int64_t n, int classes, int k, const int32_t *fold) {
    int64_t *tot = calloc((size_t)k, sizeof(int64_t)), *per = calloc((size_t)k, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        assert_true(fold[i] >= 0 && fold[i] < k);
        tot[fold[i]]++;
    }
    int64_t mn = tot[0], mx = tot[0], sum = 0;
    for (int f = 0; f < k; f++) {
        mn = tot[f] < mn ? tot[f] : mn;
        mx = tot[f] > mx ? tot[f] : mx;
        sum += tot[f];
    }
    assert_int_equal(sum, n);
    assert_true(mx - mn <= 1);
    for (int c = 0; c < classes; c++) {
        memset(per, 0, sizeof(int64_t) * (size_t)k);
        for (int64_t i = 0; i < n; i++)
            if (labels[i] == c) per[fold[i]]++;
        mn = per[0], mx = per[0];
        for (int f = 0; f < k; f++) {
            mn = per[f] < mn ? per[f] : mn;
            mx = per[f] > mx ? per[f] : mx;
        }
        if (mx - mn > 1) fail_msg("class %d: fold counts from %lld to %lld", c, (long long)mn, (long long)mx);
    }
    free(tot);
    free(per);
}

static void test_split_kfold_partition_and_balance(void **state) {
    nc_context *ctx = *state;
    const int64_t sets[][5] = {{1000, 30, 3, 0, 0}, {1, 2, 1, 2, 3}, {7, 7, 7, 7, 7}, {5, 0, 11, 1, 2}};
    const int ks[] = {2, 3, 5, 10};
    for (size_t s = 0; s < sizeof sets / sizeof *sets; s++) {
        int64_t n;
        int32_t *labels = make_labels(sets[s], 5, &n);
        int32_t *fold = malloc(sizeof(int32_t) * (size_t)n);
        for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
            if (ks[j] > n) continue;
            for (uint64_t seed = 0; seed < 3; seed++) {
                assert_int_equal(nc_split_kfold(ctx, labels, n, ks[j], seed, fold), NC_OK);
                check_kfold(labels, n, 5, ks[j], fold);
            }
        }
        /* k = n: leave-one-out, every fold has exactly one sample */
        assert_int_equal(nc_split_kfold(ctx, labels, n, (int)n, 9, fold), NC_OK);
        check_kfold(labels, n, 5, (int)n, fold);
        free(fold);
        free(labels);
    }
}

static void test_split_kfold_deterministic_per_seed(void **state) {
    nc_context *ctx = *state;
    const int64_t counts[] = {120, 80, 13};
    int64_t n;
    int32_t *labels = make_labels(counts, 3, &n);
    size_t bytes = sizeof(int32_t) * (size_t)n;
    int32_t *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    assert_int_equal(nc_split_kfold(ctx, labels, n, 5, 3, a), NC_OK);
    assert_int_equal(nc_split_kfold(ctx, labels, n, 5, 3, b), NC_OK);
    assert_int_equal(nc_split_kfold(ctx, labels, n, 5, 4, c), NC_OK);
    assert_memory_equal(a, b, bytes);
    assert_memory_not_equal(a, c, bytes);
    free(a);
    free(b);
    free(c);
    free(labels);
}

static void test_split_kfold_bad_arguments(void **state) {
    nc_context *ctx = *state;
    int32_t labels[4] = {0, 1, 0, 1};
    int32_t fold[4];
    assert_int_equal(nc_split_kfold(ctx, labels, 4, 5, 1, fold), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "k = 5"));
    assert_int_equal(nc_split_kfold(ctx, labels, 4, 1, 1, fold), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_kfold(ctx, labels, 4, 0, 1, fold), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_kfold(ctx, labels, 0, 2, 1, fold), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_kfold(ctx, labels, -4, 2, 1, fold), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_split_kfold(NULL, labels, 4, 2, 1, fold), NC_ERR_NULL);
    assert_int_equal(nc_split_kfold(ctx, NULL, 4, 2, 1, fold), NC_ERR_NULL);
    assert_int_equal(nc_split_kfold(ctx, labels, 4, 2, 1, NULL), NC_ERR_NULL);
    labels[3] = -1;
    assert_int_equal(nc_split_kfold(ctx, labels, 4, 2, 1, fold), NC_ERR_INVALID_ARGUMENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_stratified_counts_exact_per_class),
        cmocka_unit_test(test_split_stratified_tiny_classes_totals_balanced),
        cmocka_unit_test(test_split_stratified_deterministic_per_seed),
        cmocka_unit_test(test_split_stratified_empty_and_huge_labels),
        cmocka_unit_test(test_split_stratified_bad_arguments),
        cmocka_unit_test(test_split_kfold_partition_and_balance),
        cmocka_unit_test(test_split_kfold_deterministic_per_seed),
        cmocka_unit_test(test_split_kfold_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
