/* loss.c — the training losses (softmax cross-entropy with class weights, label
 * smoothing and an ignore label; binary cross-entropy with logits and pos_weight)
 * over one or more heads, on the host in double: the log-sum-exp shift and the
 * softplus form keep large logits from overflowing or losing small probabilities. */
#include "train/loss.h"
#include "core/context.h"

#include <math.h>
#include <stddef.h>

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

/* ------------------------------------------------------------------ helpers */

/* Index of the first maximum (a NaN counts as the maximum, as torch.argmax); *mx its
 * value. */
static int row_argmax(const float *z, int classes, double *mx) {
    double m = z[0];
    int arg = 0;
    for (int k = 1; k < classes; k++)
        if (z[k] > m || (isnan(z[k]) && !isnan(m))) {
            m = z[k];
            arg = k;
        }
    *mx = m;
    return arg;
}

/* log(1 + exp(x)) without overflow or loss of the small values. */
static double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

/* 1 / (1 + exp(-x)) without overflow. */
static double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* ------------------------------------------------------------------ cross-entropy */

/* Per head h, over the counted samples i (y_i != ignore), with w the head's class
 * weights (1 without), W = sum_i w[y_i], eps the smoothing and K the classes:
 *   loss_h = [ (1-eps) sum_i w[y_i] (lse_i - z_i[y_i]) + (eps/K) sum_i sum_k w[k] (lse_i - z_ik) ] / W
 * (torch 1.13: (1-eps) * nll_loss(mean) + eps * smooth.sum() / W), and
 *   dloss_h/dz_ik = [ ((1-eps) w[y_i] + (eps/K) sum_j w[j]) p_ik - (1-eps) w[y_i] [k == y_i]
 *                     - (eps/K) w[k] ] / W
 * with p_i = softmax(z_i). Multiplied by the head weight. */
static nc_status loss_ce(nc_context *ctx, const nc__loss_config *cfg, const float *logits, const int32_t *labels,
                         int64_t n, int heads, int classes, float *dlogits, double *loss, int64_t *hits,
                         int64_t *counted) {
    const int32_t ignore = cfg->ignore_label;
    const double eps = cfg->label_smoothing;
    const double eps_k = eps / (double)classes;
    double total = 0.0;
    for (int h = 0; h < heads; h++) {
        const float *w = cfg->class_weights ? cfg->class_weights + (size_t)h * (size_t)classes : NULL; // (K)
        const double hw = cfg->head_weights ? (double)cfg->head_weights[h] : 1.0;
        double wsum_y = 0.0; /* W: the weights of the counted samples' labels */
        int64_t cnt = 0;
        for (int64_t i = 0; i < n; i++) {
            int32_t y = labels[(size_t)i * (size_t)heads + (size_t)h];
            if (y == ignore) continue;
            wsum_y += w ? (double)w[y] : 1.0;
            cnt++;
        }
        double wsum_k = 0.0; /* sum_k w[k] */
        for (int k = 0; k < classes; k++) wsum_k += w ? (double)w[k] : 1.0;
        /* Nothing to average over (all ignored, or zero total weight, where torch gives
         * NaN): the head contributes 0 and no gradient; its top-1 hits still count. */
        const int empty = cnt == 0 || wsum_y == 0.0;

        double acc = 0.0;
        for (int64_t i = 0; i < n; i++) {
            size_t row = (size_t)i * (size_t)heads + (size_t)h;
            const float *z = logits + row * (size_t)classes;               // (K)
            float *dz = dlogits ? dlogits + row * (size_t)classes : NULL; // (K)
            int32_t y = labels[row];
            if (y == ignore || empty) {
                if (dz)
                    for (int k = 0; k < classes; k++) dz[k] = 0.0f;
                if (y == ignore) continue;
            }
            double mx;
            int arg = row_argmax(z, classes, &mx);
            *hits += arg == y;
            (*counted)++;
            if (empty) continue;
            double sum = 0.0;
            for (int k = 0; k < classes; k++) sum += exp((double)z[k] - mx);
            double lse = mx + log(sum);
            double wy = w ? (double)w[y] : 1.0;
            double term = (1.0 - eps) * wy * (lse - (double)z[y]);
            if (eps != 0.0) {
                double s = 0.0;
                for (int k = 0; k < classes; k++) s += (w ? (double)w[k] : 1.0) * (lse - (double)z[k]);
                term += eps_k * s;
            }
            acc += term;
            if (dz) {
                double a = (1.0 - eps) * wy + eps_k * wsum_k; /* coefficient of p_ik */
                double b = (1.0 - eps) * wy;                  /* at the label */
                for (int k = 0; k < classes; k++) {
                    double p = exp((double)z[k] - lse);
                    double g = a * p - (k == y ? b : 0.0) - eps_k * (w ? (double)w[k] : 1.0);
                    dz[k] = (float)(g * hw / wsum_y);
                }
            }
        }
        if (!empty) total += hw * (acc / wsum_y);
    }
    *loss = total;
    return NC_OK;
}

/* ------------------------------------------------------------------ BCE with logits */

/* Per head, over all n*K outputs x with target t in {0, 1} and pos_weight pw:
 *   l = -[pw t log sigmoid(x) + (1-t) log(1 - sigmoid(x))]
 *     = t ? pw softplus(-x) : softplus(x),
 *   dl/dx = t ? -pw sigmoid(-x) : sigmoid(x),
 * (a non-finite x gives NaN, as torch's formula does), loss_h = mean of l over the head's n*K outputs, times the head weight. */
static nc_status loss_bce(nc_context *ctx, const nc__loss_config *cfg, const float *logits, const int32_t *labels,
                          int64_t n, int heads, int classes, float *dlogits, double *loss, int64_t *hits,
                          int64_t *counted) {
    const double m = (double)n * (double)classes; /* outputs averaged per head */
    double total = 0.0;
    for (int h = 0; h < heads; h++) {
        const float *pw = cfg->pos_weight ? cfg->pos_weight + (size_t)h * (size_t)classes : NULL; // (K)
        const double hw = cfg->head_weights ? (double)cfg->head_weights[h] : 1.0;
        if (n == 0) continue;
        double acc = 0.0;
        for (int64_t i = 0; i < n; i++) {
            size_t row = ((size_t)i * (size_t)heads + (size_t)h) * (size_t)classes;
            const float *z = logits + row;               // (K)
            const int32_t *t = labels + row;             // (K)
            float *dz = dlogits ? dlogits + row : NULL;  // (K)
            for (int k = 0; k < classes; k++) {
                double x = z[k];
                double g;
                if (!isfinite(x)) { /* as torch: NaN (its (1-t) x term makes 0 * inf) */
                    acc += NAN;
                    g = NAN;
                } else if (t[k]) {
                    double p = pw ? (double)pw[k] : 1.0;
                    acc += p * softplus(-x);
                    g = -p * sigmoid(-x);
                } else {
                    acc += softplus(x);
                    g = sigmoid(x);
                }
                if (dz) dz[k] = (float)(g * hw / m);
                *hits += (x > 0.0) == (t[k] != 0);
            }
        }
        *counted += n * (int64_t)classes;
        total += hw * (acc / m);
    }
    *loss = total;
    return NC_OK;
}

/* ------------------------------------------------------------------ entry */

nc_status nc__loss_check_labels(nc_context *ctx, const nc__loss_config *cfg, const int32_t *labels, int64_t n,
                                int heads, int classes) {
    if (cfg->kind == NC_LOSS_BCE_WITH_LOGITS) {
        for (int64_t i = 0; i < n; i++)
            for (int h = 0; h < heads; h++)
                for (int k = 0; k < classes; k++) {
                    int32_t t = labels[((size_t)i * (size_t)heads + (size_t)h) * (size_t)classes + (size_t)k];
                    if (t != 0 && t != 1)
                        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                         "BCE target %d of sample %lld (head %d, class %d) is not 0 or 1", (int)t,
                                         (long long)i, h, k);
                }
        return NC_OK;
    }
    const int32_t ignore = cfg->ignore_label;
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < heads; h++) {
            int32_t y = labels[(size_t)i * (size_t)heads + (size_t)h];
            if (y != ignore && (y < 0 || y >= classes))
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                 "label %d of sample %lld (head %d) is outside [0, %d) and is not the ignore "
                                 "label %d",
                                 (int)y, (long long)i, h, classes, (int)ignore);
        }
    return NC_OK;
}

nc_status nc__loss_compute(nc_context *ctx, const nc__loss_config *cfg, const float *logits, const int32_t *labels,
                           int64_t n, int heads, int classes, float *dlogits, double *loss, int *correct,
                           int *counted) {
    if (!cfg || !logits || !labels || !loss) return nc__error(ctx, NC_ERR_NULL, "loss: NULL argument");
    if (n < 0 || heads < 1 || classes < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "loss: bad sizes (n %lld, heads %d, classes %d)",
                         (long long)n, heads, classes);
    int64_t hits = 0, cnt = 0;
    nc_status st = cfg->kind == NC_LOSS_CROSS_ENTROPY || cfg->kind == NC_LOSS_BCE_WITH_LOGITS
                       ? nc__loss_check_labels(ctx, cfg, labels, n, heads, classes) /* before writing anything */
                       : NC_OK;
    if (st != NC_OK) return st;
    switch (cfg->kind) {
    case NC_LOSS_CROSS_ENTROPY:
        if (!(cfg->label_smoothing >= 0.0f && cfg->label_smoothing <= 1.0f))
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "loss: label smoothing %g is outside [0, 1]",
                             (double)cfg->label_smoothing);
        st = loss_ce(ctx, cfg, logits, labels, n, heads, classes, dlogits, loss, &hits, &cnt);
        break;
    case NC_LOSS_BCE_WITH_LOGITS:
        st = loss_bce(ctx, cfg, logits, labels, n, heads, classes, dlogits, loss, &hits, &cnt);
        break;
    default:
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "loss: unknown loss kind %d", (int)cfg->kind);
    }
    if (st != NC_OK) return st;
    if (correct) *correct = (int)hits;
    if (counted) *counted = (int)cnt;
    return NC_OK;
}
