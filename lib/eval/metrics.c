/* metrics.c — classification metrics of one head (confusion, top-k, P/R/F-beta,
 * balanced accuracy, one-vs-rest ROC-AUC, log loss, ECE) computed once from logits
 * and labels into an nc_metrics handle, with scikit-learn 1.2's semantics; plus
 * temperature scaling, binary decision thresholds and the per-label ROC-AUC of
 * multi-label (sigmoid) outputs. All arithmetic in double. */
#include "core/context.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nc_metrics {
    nc_context *ctx;
    int classes;
    int64_t count;        /* samples counted (not ignored) */
    int64_t *confusion;   /* (classes, classes): truth row, top-1 prediction column */
    int64_t *rank_hist;   /* (classes): samples whose true class has rank r (sklearn ties) */
    double *roc;          /* (classes): one-vs-rest ROC-AUC, NaN when undefined */
    double log_loss;      /* mean clipped NLL, NaN when count = 0 */
    double *conf;         /* (count): top-1 softmax probability, ascending */
    unsigned char *hit;   /* (count): top-1 prediction correct, in the order of conf */
};

/* ------------------------------------------------------------------ helpers */

/* Validates the common (logits, labels) layout and counts the samples kept. */
static nc_status check_layout(nc_context *ctx, const char *fn, const float *logits, int *logit_stride,
                              const int32_t *labels, int *label_stride, int64_t n, int classes,
                              int32_t ignore_label, int64_t *count) {
    if (!ctx) return NC_ERR_NULL;
    if (!logits || !labels) return nc__error(ctx, NC_ERR_NULL, "%s: logits or labels is NULL", fn);
    if (classes < 2) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: num_classes %d < 2", fn, classes);
    if (n < 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: n = %lld < 0", fn, (long long)n);
    if (*logit_stride == 0) *logit_stride = classes;
    if (*label_stride == 0) *label_stride = 1;
    if (*logit_stride < classes)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: logit_stride %d < num_classes %d", fn, *logit_stride,
                         classes);
    if (*label_stride < 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: label_stride %d < 0", fn, *label_stride);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t y = labels[(size_t)i * (size_t)*label_stride];
        if (y == ignore_label) continue;
        if (y < 0 || y >= classes)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: label %d of sample %lld is outside [0, %d)", fn,
                             (int)y, (long long)i, classes);
        const float *z = logits + (size_t)i * (size_t)*logit_stride;
        for (int k = 0; k < classes; k++)
            if (!isfinite(z[k]))
                return nc__error(ctx, NC_ERR_NUMERIC, "%s: logit %d of sample %lld is not finite", fn, k,
                                 (long long)i);
        kept++;
    }
    *count = kept;
    return NC_OK;
}

typedef struct scored {
    double s;
    int pos;
} scored;

static int cmp_scored_asc(const void *a, const void *b) {
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

/* One-vs-rest ROC-AUC by the Mann-Whitney U statistic with midranks for ties (equal
 * to the trapezoidal area under sklearn's ROC curve); v is sorted in place. */
static double auc_of(scored *v, int64_t n) {
    if (n == 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_scored_asc);
    int64_t npos = 0;
    double rank_sum = 0.0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && v[j].s == v[i].s) j++;
        double mid = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1 .. j */
        for (int64_t t = i; t < j; t++)
            if (v[t].pos) {
                rank_sum += mid;
                npos++;
            }
        i = j;
    }
    int64_t nneg = n - npos;
    if (npos == 0 || nneg == 0) return NAN;
    return (rank_sum - 0.5 * (double)npos * (double)(npos + 1)) / ((double)npos * (double)nneg);
}

typedef struct conf_hit {
    double c;
    unsigned char hit;
} conf_hit;

static int cmp_conf_asc(const void *a, const void *b) {
    double x = ((const conf_hit *)a)->c, y = ((const conf_hit *)b)->c;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ compute */

nc_status nc_metrics_compute(nc_context *ctx, const float *logits, int logit_stride, const int32_t *labels,
                             int label_stride, int64_t n, int num_classes, int32_t ignore_label,
                             nc_metrics **out) {
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_metrics_compute: out is NULL");
    *out = NULL;
    int64_t count = 0;
    nc_status st = check_layout(ctx, "nc_metrics_compute", logits, &logit_stride, labels, &label_stride, n,
                                num_classes, ignore_label, &count);
    if (st != NC_OK) return st;
    const int K = num_classes;
    const size_t cnt = (size_t)count;
    double *prob = NULL;   // (count, K) softmax probabilities
    int32_t *truth = NULL; // (count)
    scored *col = NULL;    // (count)
    conf_hit *ch = NULL;   // (count)
    nc_metrics *m = nc__calloc(ctx, 1, sizeof *m);
    NC_CHECK_ALLOC(ctx, m);
    m->ctx = ctx;
    m->classes = K;
    m->count = count;
    m->confusion = nc__calloc(ctx, (size_t)K * (size_t)K, sizeof *m->confusion);
    m->rank_hist = nc__calloc(ctx, (size_t)K, sizeof *m->rank_hist);
    m->roc = nc__calloc(ctx, (size_t)K, sizeof *m->roc);
    NC_CHECK_ALLOC(ctx, m->confusion);
    NC_CHECK_ALLOC(ctx, m->rank_hist);
    NC_CHECK_ALLOC(ctx, m->roc);
    if (cnt > 0) {
        m->conf = nc__alloc(ctx, cnt * sizeof *m->conf);
        m->hit = nc__alloc(ctx, cnt * sizeof *m->hit);
        prob = nc__alloc(ctx, cnt * (size_t)K * sizeof *prob);
        truth = nc__alloc(ctx, cnt * sizeof *truth);
        col = nc__alloc(ctx, cnt * sizeof *col);
        ch = nc__alloc(ctx, cnt * sizeof *ch);
        NC_CHECK_ALLOC(ctx, m->conf);
        NC_CHECK_ALLOC(ctx, m->hit);
        NC_CHECK_ALLOC(ctx, prob);
        NC_CHECK_ALLOC(ctx, truth);
        NC_CHECK_ALLOC(ctx, col);
        NC_CHECK_ALLOC(ctx, ch);
    }
    /* Log loss clips p to [eps, 1 - eps] with eps = DBL_EPSILON, as sklearn 1.2 does
     * for float64 probabilities: -log p in [-log1p(-eps), -log(eps)]. */
    const double nll_lo = -log1p(-DBL_EPSILON), nll_hi = -log(DBL_EPSILON);
    double nll_sum = 0.0;
    size_t c = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t y = labels[(size_t)i * (size_t)label_stride];
        if (y == ignore_label) continue;
        const float *z = logits + (size_t)i * (size_t)logit_stride; // (K)
        double *p = prob + c * (size_t)K;                           // (K)
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[arg]) arg = k; /* first maximum, as np.argmax */
        double mx = z[arg], sum = 0.0;
        for (int k = 0; k < K; k++) sum += (p[k] = exp((double)z[k] - mx));
        for (int k = 0; k < K; k++) p[k] /= sum;
        double nll = log(sum) - ((double)z[y] - mx);
        nll_sum += fmin(fmax(nll, nll_lo), nll_hi);
        /* sklearn's top_k_accuracy_score sorts with a stable ascending argsort and
         * reverses it: among equal scores the higher class index ranks first. */
        int rank = 0;
        for (int k = 0; k < K; k++) rank += z[k] > z[y] || (z[k] == z[y] && k > y);
        m->rank_hist[rank]++;
        m->confusion[(size_t)y * (size_t)K + (size_t)arg]++;
        ch[c].c = p[arg];
        ch[c].hit = arg == y;
        truth[c] = y;
        c++;
    }
    m->log_loss = cnt > 0 ? nll_sum / (double)count : NAN;
    for (int k = 0; k < K; k++) {
        for (size_t i = 0; i < cnt; i++) {
            col[i].s = prob[i * (size_t)K + (size_t)k];
            col[i].pos = truth[i] == k;
        }
        m->roc[k] = auc_of(col, count);
    }
    if (cnt > 0) qsort(ch, cnt, sizeof *ch, cmp_conf_asc);
    for (size_t i = 0; i < cnt; i++) {
        m->conf[i] = ch[i].c;
        m->hit[i] = ch[i].hit;
    }
    nc__free(ctx, prob);
    nc__free(ctx, truth);
    nc__free(ctx, col);
    nc__free(ctx, ch);
    *out = m;
    return NC_OK;
fail:
    nc__free(ctx, prob);
    nc__free(ctx, truth);
    nc__free(ctx, col);
    nc__free(ctx, ch);
    nc_metrics_destroy(m);
    return st;
}

void nc_metrics_destroy(nc_metrics *m) {
    if (!m) return;
    nc_context *ctx = m->ctx;
    nc__free(ctx, m->confusion);
    nc__free(ctx, m->rank_hist);
    nc__free(ctx, m->roc);
    nc__free(ctx, m->conf);
    nc__free(ctx, m->hit);
    nc__free(ctx, m);
}

/* ---------------------------------------------------------------- accessors */

int64_t nc_metrics_count(const nc_metrics *m) { return m ? m->count : 0; }

int nc_metrics_num_classes(const nc_metrics *m) { return m ? m->classes : 0; }

int64_t nc_metrics_confusion(const nc_metrics *m, int truth, int pred) {
    if (!m || truth < 0 || truth >= m->classes || pred < 0 || pred >= m->classes) return 0;
    return m->confusion[(size_t)truth * (size_t)m->classes + (size_t)pred];
}

double nc_metrics_top_k(const nc_metrics *m, int k) {
    if (!m || k < 1 || m->count == 0) return NAN;
    int64_t hits = 0;
    for (int r = 0; r < k && r < m->classes; r++) hits += m->rank_hist[r];
    return (double)hits / (double)m->count;
}

static int64_t support_of(const nc_metrics *m, int cls) { /* row sum: true samples */
    int64_t s = 0;
    for (int j = 0; j < m->classes; j++) s += m->confusion[(size_t)cls * (size_t)m->classes + (size_t)j];
    return s;
}

static int64_t predicted_of(const nc_metrics *m, int cls) { /* column sum */
    int64_t s = 0;
    for (int i = 0; i < m->classes; i++) s += m->confusion[(size_t)i * (size_t)m->classes + (size_t)cls];
    return s;
}

enum { P_PRECISION, P_RECALL, P_FBETA };

static double class_prf(const nc_metrics *m, int cls, int what, double beta) {
    int64_t tp = m->confusion[(size_t)cls * (size_t)m->classes + (size_t)cls];
    int64_t pred = predicted_of(m, cls), sup = support_of(m, cls);
    double p = pred > 0 ? (double)tp / (double)pred : 0.0; /* zero_division = 0 */
    double r = sup > 0 ? (double)tp / (double)sup : 0.0;
    if (what == P_PRECISION) return p;
    if (what == P_RECALL) return r;
    double b2 = beta * beta, den = b2 * p + r;
    return den > 0.0 ? (1.0 + b2) * p * r / den : 0.0;
}

/* Per class, or the macro mean over the classes that occur in the truth or the
 * top-1 predictions (sklearn's default labels), or the support-weighted mean. */
static double prf(const nc_metrics *m, int cls, int what, double beta) {
    if (!m) return NAN;
    if (what == P_FBETA && !(beta >= 0.0 && isfinite(beta))) return NAN;
    if (cls >= 0 && cls < m->classes) return class_prf(m, cls, what, beta);
    if (cls != NC_METRICS_MACRO && cls != NC_METRICS_WEIGHTED) return NAN;
    double sum = 0.0, wsum = 0.0;
    for (int k = 0; k < m->classes; k++) {
        int64_t sup = support_of(m, k);
        double w = cls == NC_METRICS_WEIGHTED ? (double)sup : (sup > 0 || predicted_of(m, k) > 0) ? 1.0 : 0.0;
        if (w > 0.0) {
            sum += w * class_prf(m, k, what, beta);
            wsum += w;
        }
    }
    return wsum > 0.0 ? sum / wsum : 0.0;
}

double nc_metrics_precision(const nc_metrics *m, int cls) { return prf(m, cls, P_PRECISION, 1.0); }
double nc_metrics_recall(const nc_metrics *m, int cls) { return prf(m, cls, P_RECALL, 1.0); }
double nc_metrics_fbeta(const nc_metrics *m, int cls, double beta) { return prf(m, cls, P_FBETA, beta); }

double nc_metrics_balanced_accuracy(const nc_metrics *m) {
    if (!m) return NAN;
    double sum = 0.0;
    int present = 0;
    for (int k = 0; k < m->classes; k++) {
        int64_t sup = support_of(m, k);
        if (sup == 0) continue; /* sklearn drops classes absent from the truth */
        sum += (double)m->confusion[(size_t)k * (size_t)m->classes + (size_t)k] / (double)sup;
        present++;
    }
    return present > 0 ? sum / present : NAN;
}

double nc_metrics_roc_auc(const nc_metrics *m, int cls) {
    if (!m) return NAN;
    if (cls >= 0 && cls < m->classes) return m->roc[cls];
    if (cls != NC_METRICS_MACRO && cls != NC_METRICS_WEIGHTED) return NAN;
    double sum = 0.0, wsum = 0.0;
    for (int k = 0; k < m->classes; k++) {
        if (isnan(m->roc[k])) continue;
        double w = cls == NC_METRICS_WEIGHTED ? (double)support_of(m, k) : 1.0;
        sum += w * m->roc[k];
        wsum += w;
    }
    return wsum > 0.0 ? sum / wsum : NAN;
}

double nc_metrics_log_loss(const nc_metrics *m) { return m ? m->log_loss : NAN; }

double nc_metrics_ece(const nc_metrics *m, int bins) {
    if (!m || bins < 1 || m->count == 0) return NAN;
    /* conf is ascending, so each bin is one run of samples. */
    double ece = 0.0;
    int64_t i = 0;
    while (i < m->count) {
        double b = floor(m->conf[i] * bins);
        int bin = b >= bins - 1 ? bins - 1 : (int)b;
        double csum = 0.0;
        int64_t hits = 0, j = i;
        for (; j < m->count; j++) {
            double bj = floor(m->conf[j] * bins);
            if ((bj >= bins - 1 ? bins - 1 : (int)bj) != bin) break;
            csum += m->conf[j];
            hits += m->hit[j];
        }
        double nb = (double)(j - i);
        ece += nb / (double)m->count * fabs((double)hits / nb - csum / nb);
        i = j;
    }
    return ece;
}

/* -------------------------------------------------------------- temperature */

/* Mean over kept samples of d/db and d2/db2 of NLL(b z) = lse(b z) - b z_y, b = 1/T:
 * E_p[z] - z_y and Var_p[z] with p = softmax(b z). The NLL is convex in b. */
static void nll_derivs(const float *logits, int ls, const int32_t *labels, int lbs, int64_t n, int K,
                       int32_t ignore, int64_t count, double b, double *g, double *h) {
    double gs = 0.0, hs = 0.0;
    for (int64_t i = 0; i < n; i++) {
        int32_t y = labels[(size_t)i * (size_t)lbs];
        if (y == ignore) continue;
        const float *z = logits + (size_t)i * (size_t)ls;
        double mx = z[0];
        for (int k = 1; k < K; k++) mx = fmax(mx, z[k]);
        double sum = 0.0, ez = 0.0;
        for (int k = 0; k < K; k++) {
            double e = exp(b * ((double)z[k] - mx));
            sum += e;
            ez += e * z[k];
        }
        ez /= sum;
        double var = 0.0;
        for (int k = 0; k < K; k++) {
            double d = (double)z[k] - ez;
            var += exp(b * ((double)z[k] - mx)) * d * d;
        }
        gs += ez - (double)z[y];
        hs += var / sum;
    }
    *g = gs / (double)count;
    *h = hs / (double)count;
}

#define T_MIN 1e-3
#define T_MAX 1e3

nc_status nc_calibrate_temperature(nc_context *ctx, const float *logits, int logit_stride, const int32_t *labels,
                                   int label_stride, int64_t n, int num_classes, int32_t ignore_label,
                                   float *temperature) {
    const char *fn = "nc_calibrate_temperature";
    if (!temperature) return nc__error(ctx, NC_ERR_NULL, "%s: temperature is NULL", fn);
    int64_t count = 0;
    nc_status st = check_layout(ctx, fn, logits, &logit_stride, labels, &label_stride, n, num_classes,
                                ignore_label, &count);
    if (st != NC_OK) return st;
    if (count == 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: no sample to fit (all ignored)", fn);
    double g, h;
#define DERIVS(b) nll_derivs(logits, logit_stride, labels, label_stride, n, num_classes, ignore_label, count, (b), &g, &h)
    /* Bracket b = 1/T in [1/T_MAX, 1/T_MIN]; g is nondecreasing in b. */
    double lo = 1.0 / T_MAX, hi = 1.0 / T_MIN, b;
    DERIVS(lo);
    if (g >= 0.0) {
        *temperature = (float)T_MAX; /* logits no better than uniform: T -> inf */
        return NC_OK;
    }
    DERIVS(hi);
    if (g <= 0.0) {
        *temperature = (float)T_MIN; /* (nearly) separable: T -> 0 */
        return NC_OK;
    }
    b = 1.0;
    for (int it = 0; it < 200; it++) {
        DERIVS(b);
        if (g == 0.0) break;
        if (g < 0.0) lo = b;
        else hi = b;
        double next = h > 0.0 ? b - g / h : NAN;
        if (!(next > lo && next < hi)) next = sqrt(lo * hi); /* safeguard: bisect in log b */
        double step = fabs(next - b);
        b = next;
        if (step <= 1e-15 * b || hi - lo <= 1e-15 * hi) break;
    }
#undef DERIVS
    if (!isfinite(b) || b <= 0.0) return nc__error(ctx, NC_ERR_NUMERIC, "%s: the fit did not converge", fn);
    *temperature = (float)(1.0 / b);
    return NC_OK;
}

/* --------------------------------------------------------------- thresholds */

static void fill_stats(nc_binary_stats *s, int64_t tp, int64_t fp, int64_t npos, int64_t nneg, double beta) {
    s->tp = tp;
    s->fp = fp;
    s->fn = npos - tp;
    s->tn = nneg - fp;
    s->precision = tp + fp > 0 ? (double)tp / (double)(tp + fp) : 0.0;
    s->recall = npos > 0 ? (double)tp / (double)npos : 0.0;
    double b2 = beta * beta, den = b2 * s->precision + s->recall;
    s->fbeta = den > 0.0 ? (1.0 + b2) * s->precision * s->recall / den : 0.0;
}

static nc_status check_binary(nc_context *ctx, const char *fn, const float *scores, const int32_t *positive,
                              int64_t n, int64_t *npos) {
    if (!ctx) return NC_ERR_NULL;
    if (!scores || !positive) return nc__error(ctx, NC_ERR_NULL, "%s: scores or positive is NULL", fn);
    if (n < 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: n = %lld < 0", fn, (long long)n);
    int64_t p = 0;
    for (int64_t i = 0; i < n; i++) {
        if (positive[i] != 0 && positive[i] != 1)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: positive[%lld] = %d is not 0 or 1", fn,
                             (long long)i, (int)positive[i]);
        if (isnan(scores[i]))
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: scores[%lld] is NaN", fn, (long long)i);
        p += positive[i];
    }
    *npos = p;
    return NC_OK;
}

static int cmp_scored_desc(const void *a, const void *b) { return cmp_scored_asc(b, a); }

nc_status nc_threshold_select(nc_context *ctx, const float *scores, const int32_t *positive, int64_t n,
                              nc_threshold_rule rule, double value, float *threshold, nc_binary_stats *at) {
    const char *fn = "nc_threshold_select";
    if (!threshold) return nc__error(ctx, NC_ERR_NULL, "%s: threshold is NULL", fn);
    int64_t npos = 0;
    nc_status st = check_binary(ctx, fn, scores, positive, n, &npos);
    if (st != NC_OK) return st;
    if (n == 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: no scores (n = 0)", fn);
    double beta = 1.0;
    if (rule == NC_THRESHOLD_MAX_FBETA) {
        if (!(value >= 0.0 && isfinite(value)))
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: beta %g is not finite and >= 0", fn, value);
        beta = value;
    } else if (rule == NC_THRESHOLD_TARGET_PRECISION) {
        if (!(value >= 0.0 && value <= 1.0))
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: target precision %g is outside [0, 1]", fn, value);
    } else {
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: unknown rule %d", fn, (int)rule);
    }
    scored *v = nc__alloc(ctx, (size_t)n * sizeof *v);
    if (!v) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    for (int64_t i = 0; i < n; i++) {
        v[i].s = scores[i];
        v[i].pos = positive[i];
    }
    qsort(v, (size_t)n, sizeof *v, cmp_scored_desc);
    /* Walk the distinct scores from the highest: "score >= t" takes whole groups. */
    int64_t tp = 0, fp = 0, best_tp = 0, best_fp = 0;
    int found = 0;
    double best_f = -1.0, best_t = 0.0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && v[j].s == v[i].s) {
            tp += v[j].pos;
            fp += !v[j].pos;
            j++;
        }
        nc_binary_stats s;
        fill_stats(&s, tp, fp, npos, n - npos, beta);
        if (rule == NC_THRESHOLD_MAX_FBETA) {
            if (s.fbeta > best_f) { /* strict: ties keep the higher threshold */
                best_f = s.fbeta;
                found = 1;
                best_t = v[i].s;
                best_tp = tp;
                best_fp = fp;
            }
        } else if (s.precision >= value) { /* keep the lowest one */
            found = 1;
            best_t = v[i].s;
            best_tp = tp;
            best_fp = fp;
        }
        i = j;
    }
    nc__free(ctx, v);
    if (!found)
        return nc__error(ctx, NC_ERR_NOT_FOUND, "%s: no threshold reaches precision %g", fn, value);
    *threshold = (float)best_t;
    if (at) fill_stats(at, best_tp, best_fp, npos, n - npos, beta);
    return NC_OK;
}

nc_status nc_threshold_apply(nc_context *ctx, const float *scores, const int32_t *positive, int64_t n,
                             float threshold, double beta, nc_binary_stats *out) {
    const char *fn = "nc_threshold_apply";
    if (!out) return nc__error(ctx, NC_ERR_NULL, "%s: out is NULL", fn);
    int64_t npos = 0;
    nc_status st = check_binary(ctx, fn, scores, positive, n, &npos);
    if (st != NC_OK) return st;
    if (isnan(threshold)) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: threshold is NaN", fn);
    if (!(beta >= 0.0 && isfinite(beta)))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: beta %g is not finite and >= 0", fn, beta);
    int64_t tp = 0, fp = 0;
    for (int64_t i = 0; i < n; i++)
        if (scores[i] >= threshold) {
            tp += positive[i];
            fp += !positive[i];
        }
    fill_stats(out, tp, fp, npos, n - npos, beta);
    return NC_OK;
}

/* --------------------------------------------------------------- multi-label */

nc_status nc_multilabel_roc_auc(nc_context *ctx, const float *logits, const int32_t *labels, int64_t n,
                                int num_labels, double *auc, double *mean_auc) {
    const char *fn = "nc_multilabel_roc_auc";
    if (!ctx) return NC_ERR_NULL;
    if (!auc || (n > 0 && (!logits || !labels)))
        return nc__error(ctx, NC_ERR_NULL, "%s: logits, labels or auc is NULL", fn);
    if (n < 0 || num_labels < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: n = %lld, num_labels = %d (need n >= 0, num_labels >= 1)",
                         fn, (long long)n, num_labels);
    const size_t L = (size_t)num_labels;
    for (int64_t i = 0; i < n; i++)
        for (size_t k = 0; k < L; k++) {
            int32_t t = labels[(size_t)i * L + k];
            if (t != 0 && t != 1)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: label %zu of sample %lld is %d, not 0 or 1", fn,
                                 k, (long long)i, (int)t);
            if (!isfinite(logits[(size_t)i * L + k]))
                return nc__error(ctx, NC_ERR_NUMERIC, "%s: logit %zu of sample %lld is not finite", fn, k,
                                 (long long)i);
        }
    scored *col = nc__alloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof *col);
    if (!col) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    double sum = 0.0;
    int defined = 0;
    for (size_t k = 0; k < L; k++) {
        for (int64_t i = 0; i < n; i++) {
            col[i].s = logits[(size_t)i * L + k];
            col[i].pos = labels[(size_t)i * L + k];
        }
        auc[k] = auc_of(col, n);
        if (!isnan(auc[k])) {
            sum += auc[k];
            defined++;
        }
    }
    nc__free(ctx, col);
    if (mean_auc) *mean_auc = defined ? sum / defined : NAN;
    return NC_OK;
}
