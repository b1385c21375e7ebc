/* batchnorm.c — reference batch normalisation on (N, C, HW) f32, PyTorch semantics
 * (BatchNorm2d; BatchNorm1d is hw = 1). Statistics are summed in double, one channel
 * per loop iteration, so results do not depend on the thread count. */
#include "backend/ref/ref.h"

#include <math.h>

void nc__ref_batchnorm_forward_train(int nt, const nc__bn_desc *d, float *y, float *save_mean,
                                     float *save_invstd, float *running_mean, float *running_var,
                                     const float *x, const float *gamma, const float *beta) {
    // y, x (N, C, HW); save_mean, save_invstd, running_mean, running_var, gamma, beta (C)
    const size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw;
    const size_t count = N * HW; /* values per channel; the executor guarantees > 1 */
    const double m = (double)d->momentum;
    PARALLEL_FOR_IF(N * C * HW)
    for (size_t c = 0; c < C; c++) {
        double sum = 0.0;
        for (size_t n = 0; n < N; n++) {
            const float *xp = x + (n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) sum += xp[i];
        }
        const double mean = count ? sum / (double)count : 0.0;
        double ss = 0.0; /* two-pass variance: no cancellation */
        for (size_t n = 0; n < N; n++) {
            const float *xp = x + (n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) {
                const double t = (double)xp[i] - mean;
                ss += t * t;
            }
        }
        const double var = count ? ss / (double)count : 0.0; /* biased, for normalising */
        const double invstd = 1.0 / sqrt(var + (double)d->eps);
        if (save_mean) save_mean[c] = (float)mean;
        if (save_invstd) save_invstd[c] = (float)invstd;
        if (running_mean) running_mean[c] = (float)((1.0 - m) * running_mean[c] + m * mean);
        if (running_var) {
            const double unbiased = count > 1 ? var * (double)count / (double)(count - 1) : var;
            running_var[c] = (float)((1.0 - m) * running_var[c] + m * unbiased);
        }
        /* y = x * scale + shift with scale = gamma*invstd, shift = beta - mean*scale */
        const double g = gamma ? (double)gamma[c] : 1.0;
        const double b = beta ? (double)beta[c] : 0.0;
        const double scale = g * invstd, shift = b - mean * scale;
        for (size_t n = 0; n < N; n++) {
            const float *xp = x + (n * C + c) * HW;
            float *yp = y + (n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) yp[i] = (float)((double)xp[i] * scale + shift);
        }
    }
}

void nc__ref_batchnorm_forward_infer(int nt, const nc__bn_desc *d, float *y, const float *x,
                                     const float *gamma, const float *beta, const float *running_mean,
                                     const float *running_var) {
    // y, x (N, C, HW); gamma, beta, running_mean, running_var (C)
    const size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw;
    PARALLEL_FOR_IF(N * C * HW)
    for (size_t c = 0; c < C; c++) {
        const double invstd = 1.0 / sqrt((double)running_var[c] + (double)d->eps);
        const double g = gamma ? (double)gamma[c] : 1.0;
        const double b = beta ? (double)beta[c] : 0.0;
        const float scale = (float)(g * invstd);
        const float shift = (float)(b - (double)running_mean[c] * g * invstd);
        for (size_t n = 0; n < N; n++) {
            const float *xp = x + (n * C + c) * HW;
            float *yp = y + (n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) yp[i] = xp[i] * scale + shift;
        }
    }
}

void nc__ref_batchnorm_backward(int nt, const nc__bn_desc *d, float *dx, float *dgamma, float *dbeta,
                                const float *dy, const float *x, const float *gamma,
                                const float *save_mean, const float *save_invstd) {
    // dx (N, C, HW) or NULL, dgamma, dbeta (C) accumulated; dy, x (N, C, HW);
    // gamma, save_mean, save_invstd (C)
    const size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw;
    const size_t count = N * HW;
    PARALLEL_FOR_IF(N * C * HW)
    for (size_t c = 0; c < C; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (size_t n = 0; n < N; n++) {
            const float *xp = x + (n * C + c) * HW;
            const float *dyp = dy + (n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) {
                sum_dy += dyp[i];
                sum_dy_xhat += (double)dyp[i] * (((double)xp[i] - mean) * invstd);
            }
        }
        if (dgamma) dgamma[c] += (float)sum_dy_xhat;
        if (dbeta) dbeta[c] += (float)sum_dy;
        if (!dx || count == 0) continue;
        /* dx = gamma*invstd/n * (n*dy - sum(dy) - xhat*sum(dy*xhat)) */
        const double g = gamma ? (double)gamma[c] : 1.0;
        const double k = g * invstd;
        const double mean_dy = sum_dy / (double)count;
        const double mean_dy_xhat = sum_dy_xhat / (double)count;
        for (size_t n = 0; n < N; n++) {
            const float *xp = x + (n * C + c) * HW;
            const float *dyp = dy + (n * C + c) * HW;
            float *dxp = dx + (n * C + c) * HW;
            for (size_t i = 0; i < HW; i++) {
                const double xhat = ((double)xp[i] - mean) * invstd;
                dxp[i] += (float)(k * ((double)dyp[i] - mean_dy - xhat * mean_dy_xhat));
            }
        }
    }
}

/* ---- synchronised batch norm (backend.h, SYNC BATCH NORM): the executor all-reduces
 * the per-channel sums between these calls. Values may be channel-blocked (block >
 * 1: (N, C/block, HW, block), oneDNN's nChw8c/16c, padding channels untouched);
 * block 1 is plain (N, C, HW). Arithmetic as the kernels above, so one rank with the
 * whole batch computes what the single-process kernels compute. */

/* Offset of element (n, c, i) of an (N, C, HW) value with channel block B. */
static size_t at(size_t n, size_t c, size_t i, size_t C, size_t HW, size_t B) {
    return ((n * ((C + B - 1) / B) + c / B) * HW + i) * B + c % B;
}

void nc__ref_bn_sync_sums(int nt, const nc__bn_desc *d, int block, double *sums, const float *x,
                          const double *mean) {
    // sums (C) f64: sum of x, or of (x - mean)^2 when mean is given; x (N, C, HW)
    const size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw, B = (size_t)block;
    PARALLEL_FOR_IF(N * C * HW)
    for (size_t c = 0; c < C; c++) {
        double s = 0.0;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < HW; i++) {
                const double v = (double)x[at(n, c, i, C, HW, B)] - (mean ? mean[c] : 0.0);
                s += mean ? v * v : v;
            }
        sums[c] = s;
    }
}

void nc__ref_bn_sync_forward(int nt, const nc__bn_desc *d, int block, int relu, float *y, float *save_mean,
                             float *save_invstd, float *running_mean, float *running_var, const float *x,
                             const float *gamma, const float *beta, const double *stats, double count) {
    // stats: mean (C), biased variance (C) over every rank's batch; count: their values per channel
    const size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw, B = (size_t)block;
    const double m = (double)d->momentum;
    PARALLEL_FOR_IF(N * C * HW)
    for (size_t c = 0; c < C; c++) {
        const double mean = stats[c], var = stats[C + c];
        const double invstd = 1.0 / sqrt(var + (double)d->eps);
        if (save_mean) save_mean[c] = (float)mean;
        if (save_invstd) save_invstd[c] = (float)invstd;
        if (running_mean) running_mean[c] = (float)((1.0 - m) * running_mean[c] + m * mean);
        if (running_var) {
            const double unbiased = count > 1.0 ? var * count / (count - 1.0) : var;
            running_var[c] = (float)((1.0 - m) * running_var[c] + m * unbiased);
        }
        const double g = gamma ? (double)gamma[c] : 1.0, b = beta ? (double)beta[c] : 0.0;
        const double scale = g * invstd, shift = b - mean * scale;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < HW; i++) {
                const size_t k = at(n, c, i, C, HW, B);
                const float v = (float)((double)x[k] * scale + shift);
                y[k] = relu && !(v > 0.0f) ? 0.0f : v;
            }
    }
}

/* dy of the batch norm's output: dy itself, or masked by the fused ReLU's y > 0. */
static double bn_dy(const float *dy, const float *y, size_t k) { return !y || y[k] > 0.0f ? (double)dy[k] : 0.0; }

void nc__ref_bn_sync_backward_sums(int nt, const nc__bn_desc *d, int block, double *sums, const float *dy,
                                   const float *y, const float *x, const float *save_mean,
                                   const float *save_invstd) {
    // sums: sum dy (C), sum dy * xhat (C), f64, over this rank's batch
    const size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw, B = (size_t)block;
    PARALLEL_FOR_IF(N * C * HW)
    for (size_t c = 0; c < C; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < HW; i++) {
                const size_t k = at(n, c, i, C, HW, B);
                const double g = bn_dy(dy, y, k);
                sum_dy += g;
                sum_dy_xhat += g * (((double)x[k] - mean) * invstd);
            }
        sums[c] = sum_dy;
        sums[C + c] = sum_dy_xhat;
    }
}

void nc__ref_bn_sync_backward(int nt, const nc__bn_desc *d, int block, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *y, const float *x, const float *gamma,
                              const float *save_mean, const float *save_invstd, const double *sums,
                              double count) {
    // dx accumulated (+=) or NULL; sums: this rank's sum dy, sum dy*xhat (2C), then every rank's (2C)
    const size_t N = (size_t)d->n, C = (size_t)d->c, HW = (size_t)d->hw, B = (size_t)block;
    PARALLEL_FOR_IF(N * C * HW)
    for (size_t c = 0; c < C; c++) {
        if (dgamma) dgamma[c] += (float)sums[C + c];
        if (dbeta) dbeta[c] += (float)sums[c];
        if (!dx || count <= 0.0) continue;
        const double mean = save_mean[c], invstd = save_invstd[c];
        const double k = (gamma ? (double)gamma[c] : 1.0) * invstd;
        const double mean_dy = sums[2 * C + c] / count, mean_dy_xhat = sums[3 * C + c] / count;
        for (size_t n = 0; n < N; n++)
            for (size_t i = 0; i < HW; i++) {
                const size_t e = at(n, c, i, C, HW, B);
                const double xhat = ((double)x[e] - mean) * invstd;
                dx[e] += (float)(k * (bn_dy(dy, y, e) - mean_dy - xhat * mean_dy_xhat));
            }
    }
}
