/* loss.c — softmax cross-entropy over one or more classifier heads, computed with
 * the log-sum-exp shift in double so large logits neither overflow nor lose the
 * small probabilities. */
#include "train/loss.h"
#include "core/context.h"

#include <math.h>

nc_status nc__check_labels(nc_context *ctx, const int32_t *labels, int64_t n, int heads, int classes) {
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < heads; h++) {
            int32_t y = labels[i * heads + h];
            if (y < 0 || y >= classes)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                 "label %d of sample %lld (head %d) is outside [0, %d)", (int)y, (long long)i, h,
                                 classes);
        }
    return NC_OK;
}

nc_status nc__softmax_xent(nc_context *ctx, const float *logits, const int32_t *labels, int64_t n, int heads,
                           int classes, float *dlogits, double *loss, int *correct) {
    nc_status st = nc__check_labels(ctx, labels, n, heads, classes);
    if (st != NC_OK) return st;
    double total = 0.0;
    int hits = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int h = 0; h < heads; h++) {
            const float *z = logits + (size_t)(i * heads + h) * (size_t)classes;
            int32_t y = labels[i * heads + h];
            double mx = z[0];
            int arg = 0;
            for (int k = 1; k < classes; k++)
                if (z[k] > mx || (isnan(z[k]) && !isnan(mx))) {
                    mx = z[k];
                    arg = k;
                }
            double sum = 0.0;
            for (int k = 0; k < classes; k++) sum += exp((double)z[k] - mx);
            double lse = mx + log(sum);
            total += lse - (double)z[y];
            hits += arg == y;
            if (dlogits) {
                float *dz = dlogits + (size_t)(i * heads + h) * (size_t)classes;
                for (int k = 0; k < classes; k++)
                    dz[k] = (float)((exp((double)z[k] - lse) - (k == y ? 1.0 : 0.0)) / (double)n);
            }
        }
    }
    *loss = total / (double)n;
    if (correct) *correct = hits;
    return NC_OK;
}
