/* split.c — stratified train/val/test splits and stratified k-fold assignment.
 * Each class is shuffled on its own counter-based stream (Fisher-Yates), so a
 * split depends only on the labels and the seed, never on threads or history. */
#include "core/context.h"
#include "core/rng.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_STRATIFIED 0x73706c6974000000ull /* "split" */
#define STREAM_KFOLD 0x6b666f6c64000000ull      /* "kfold" */

/* One sample: its label and its index; sorted by (label, index). */
typedef struct member {
    int32_t label;
    int64_t index;
} member;

static int cmp_member(const void *a, const void *b) {
    const member *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Checks the common arguments and returns the samples grouped by class (ascending
 * label, ascending index inside a class) in *out (NULL when n == 0). */
static nc_status group_by_class(nc_context *ctx, const char *fn, const int32_t *labels, int64_t n,
                                const void *result, member **out) {
    *out = NULL;
    if (!ctx) return NC_ERR_NULL;
    if (n < 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: n = %lld is negative", fn, (long long)n);
    if (n > 0 && (!labels || !result)) return nc__error(ctx, NC_ERR_NULL, "%s: labels or output is NULL", fn);
    if (n == 0) return NC_OK;
    if ((uint64_t)n > SIZE_MAX / sizeof(member))
        return nc__error(ctx, NC_ERR_LIMIT, "%s: n = %lld is too large", fn, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: labels[%lld] = %d is negative", fn, (long long)i,
                             (int)labels[i]);
    member *m = nc__alloc(ctx, (size_t)n * sizeof *m);
    if (!m) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for %lld samples", fn, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        m[i].label = labels[i];
        m[i].index = i;
    }
    qsort(m, (size_t)n, sizeof *m, cmp_member);
    *out = m;
    return NC_OK;
}

/* Fisher-Yates shuffle of m[0..count) drawn from (seed, stream, i). */
static void shuffle_members(member *m, int64_t count, uint64_t seed, uint64_t stream) {
    for (int64_t i = count - 1; i > 0; i--) {
        uint64_t j = nc__rng_u64(seed, stream, (uint64_t)i) % (uint64_t)(i + 1);
        member t = m[i];
        m[i] = m[j];
        m[j] = t;
    }
}

/* Largest-remainder split of `count` samples by frac[3] (summing to 1). Ties between
 * equal remainders go to the part furthest behind its exact running total (deficit),
 * then to the lower part, so small classes do not all favour the same part. */
static void allocate(int64_t count, const double frac[3], const double deficit[3], int64_t cut[3]) {
    double rem[3];
    int64_t sum = 0;
    for (int p = 0; p < 3; p++) {
        double exact = (double)count * frac[p];
        double fl = floor(exact);
        cut[p] = (int64_t)fl;
        rem[p] = exact - fl;
        sum += cut[p];
    }
    int64_t left = count - sum; /* 0..2 in exact arithmetic; rounding may push it by 1 */
    while (left > 0) {
        int best = -1;
        for (int p = 0; p < 3; p++) {
            if (frac[p] <= 0) continue;
            if (best < 0 || rem[p] > rem[best] || (rem[p] == rem[best] && deficit[p] > deficit[best])) best = p;
        }
        if (best < 0) best = 0;
        cut[best]++;
        rem[best] = -1.0; /* each part gets at most one extra per round */
        left--;
        if (left > 0 && rem[0] < 0 && rem[1] < 0 && rem[2] < 0) rem[0] = rem[1] = rem[2] = 0;
    }
    while (left < 0) {
        int worst = -1;
        for (int p = 0; p < 3; p++)
            if (cut[p] > 0 && (worst < 0 || rem[p] < rem[worst])) worst = p;
        cut[worst]--;
        rem[worst] = 2.0;
        left++;
    }
}

nc_status nc_split_stratified(nc_context *ctx, const int32_t *labels, int64_t n, float train, float val,
                              float test, uint64_t seed, int8_t *assign) {
    const char *fn = "nc_split_stratified";
    if (!ctx) return NC_ERR_NULL;
    const float fr[3] = {train, val, test};
    double total = 0;
    for (int p = 0; p < 3; p++) {
        if (!isfinite(fr[p]) || fr[p] < 0)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: fraction %g is not in [0, 1]", fn, (double)fr[p]);
        total += fr[p];
    }
    if (fabs(total - 1.0) > 1e-4)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: fractions %g + %g + %g = %g, not 1", fn, (double)train,
                         (double)val, (double)test, total);
    member *m;
    nc_status st = group_by_class(ctx, fn, labels, n, assign, &m);
    if (st != NC_OK || n == 0) return st;

    const double frac[3] = {fr[0] / total, fr[1] / total, fr[2] / total};
    double deficit[3] = {0, 0, 0}; /* exact running total - assigned so far, per part */
    for (int64_t start = 0; start < n;) {
        int64_t end = start;
        while (end < n && m[end].label == m[start].label) end++;
        int64_t count = end - start;
        shuffle_members(m + start, count, seed, STREAM_STRATIFIED + (uint64_t)m[start].label);
        int64_t cut[3];
        allocate(count, frac, deficit, cut);
        int64_t k = start;
        for (int p = 0; p < 3; p++) {
            for (int64_t j = 0; j < cut[p]; j++) assign[m[k++].index] = (int8_t)p;
            deficit[p] += (double)count * frac[p] - (double)cut[p];
        }
        start = end;
    }
    nc__free(ctx, m);
    return NC_OK;
}

nc_status nc_split_kfold(nc_context *ctx, const int32_t *labels, int64_t n, int k, uint64_t seed, int32_t *fold) {
    const char *fn = "nc_split_kfold";
    if (!ctx) return NC_ERR_NULL;
    if (k < 2 || (int64_t)k > n)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: k = %d must be in [2, n = %lld]", fn, k, (long long)n);
    member *m;
    nc_status st = group_by_class(ctx, fn, labels, n, fold, &m);
    if (st != NC_OK) return st;

    /* Deal every class round-robin, each class starting where the previous stopped:
     * per-class fold counts and total fold sizes both differ by at most 1. */
    int64_t next = 0;
    for (int64_t start = 0; start < n;) {
        int64_t end = start;
        while (end < n && m[end].label == m[start].label) end++;
        shuffle_members(m + start, end - start, seed, STREAM_KFOLD + (uint64_t)m[start].label);
        for (int64_t i = start; i < end; i++) {
            fold[m[i].index] = (int32_t)next;
            next = next + 1 == k ? 0 : next + 1;
        }
        start = end;
    }
    nc__free(ctx, m);
    return NC_OK;
}
