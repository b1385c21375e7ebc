/* loss.c — the reference implementation of backend.h's `loss` (the semantics are
 * train/loss.h's): softmax cross-entropy with class weights, label smoothing and an
 * ignore label, and binary cross-entropy with logits and pos_weight, over one or more
 * heads, in double: the log-sum-exp shift and the softplus form keep large logits from
 * overflowing or losing small probabilities. The labels were checked by the caller. */
#include "backend/ref/ref.h"

#include <math.h>
#include <stddef.h>

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
static double loss_ce(const nc__loss_desc *d, const float *logits, const int32_t *labels, float *dlogits,
                      int64_t *hits, int64_t *counted) {
    const int64_t n = d->n;
    const int heads = d->heads, classes = d->classes;
    const float *class_weights = d->class_weights, *head_weights = d->head_weights;
    const int32_t ignore = d->ignore_label;
    const double eps = d->label_smoothing;
    const double eps_k = eps / (double)classes;
    double total = 0.0;
    for (int h = 0; h < heads; h++) {
        const float *w = class_weights ? class_weights + (size_t)h * (size_t)classes : NULL; // (K)
        const double hw = head_weights ? (double)head_weights[h] : 1.0;
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
                    dz[k] = (float)(g * hw / wsum_y * d->grad_scale);
                }
            }
        }
        if (!empty) total += hw * (acc / wsum_y);
    }
    return total;
}

/* ------------------------------------------------------------------ BCE with logits */

/* Per head, over all n*K outputs x with target t in {0, 1} and pos_weight pw:
 *   l = -[pw t log sigmoid(x) + (1-t) log(1 - sigmoid(x))]
 *     = t ? pw softplus(-x) : softplus(x),
 *   dl/dx = t ? -pw sigmoid(-x) : sigmoid(x),
 * (a non-finite x gives NaN, as torch's formula does), loss_h = mean of l over the head's n*K outputs, times the head weight. */
static double loss_bce(const nc__loss_desc *d, const float *logits, const int32_t *labels, float *dlogits,
                       int64_t *hits, int64_t *counted) {
    const int64_t n = d->n;
    const int heads = d->heads, classes = d->classes;
    const float *pos_weight = d->pos_weight, *head_weights = d->head_weights;
    const double m = (double)n * (double)classes; /* outputs averaged per head */
    double total = 0.0;
    for (int h = 0; h < heads; h++) {
        const float *pw = pos_weight ? pos_weight + (size_t)h * (size_t)classes : NULL; // (K)
        const double hw = head_weights ? (double)head_weights[h] : 1.0;
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
                if (dz) dz[k] = (float)(g * hw / m * d->grad_scale);
                *hits += (x > 0.0) == (t[k] != 0);
            }
        }
        *counted += n * (int64_t)classes;
        total += hw * (acc / m);
    }
    return total;
}

void nc__ref_loss(const nc__loss_desc *d, float *dlogits, nc__step_record *rec, const float *logits,
                  const int32_t *labels) {
    int64_t hits = 0, counted = 0;
    rec->loss = d->kind == NC_LOSS_BCE_WITH_LOGITS ? loss_bce(d, logits, labels, dlogits, &hits, &counted)
                                                   : loss_ce(d, logits, labels, dlogits, &hits, &counted);
    rec->correct = (int32_t)hits;
    rec->counted = (int32_t)counted;
}
