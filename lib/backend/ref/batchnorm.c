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
