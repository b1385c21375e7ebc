/* pool.c — reference 2-D pooling on NCHW f32 with PyTorch semantics: max pool (floor
 * mode, -inf padding, gradient to the first maximum in window scan order), average
 * pool (zero padding counted in the divisor) and adaptive average pool. Threads split
 * the N*C planes; each plane's backward writes only its own dx plane. */
#include "backend/ref/ref.h"

#include <math.h>


static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

nc__pool_window nc__ref_pool_window(const nc__pool_desc *d, int64_t oh, int64_t ow) {
    nc__pool_window win;
    if (d->mode == NC__POOL_ADAPTIVE_AVG) {
        /* start = floor(i*H/OH), end = ceil((i+1)*H/OH) */
        win.h0 = oh * d->h / d->oh;
        win.h1 = ((oh + 1) * d->h + d->oh - 1) / d->oh;
        win.w0 = ow * d->w / d->ow;
        win.w1 = ((ow + 1) * d->w + d->ow - 1) / d->ow;
        win.divisor = (win.h1 - win.h0) * (win.w1 - win.w0);
        return win;
    }
    const int64_t hs = oh * d->stride_h - d->pad_h, ws = ow * d->stride_w - d->pad_w;
    /* count_include_pad: the window clipped to the padded input, before clamping */
    const int64_t he = min64(hs + d->kh, d->h + d->pad_h), we = min64(ws + d->kw, d->w + d->pad_w);
    win.divisor = (he - hs) * (we - ws);
    win.h0 = max64(hs, 0);
    win.w0 = max64(ws, 0);
    win.h1 = min64(he, d->h);
    win.w1 = min64(we, d->w);
    return win;
}

/* Index (within the plane) of the first maximum in row-major window order, as
 * PyTorch's CPU kernel: a NaN wins (and propagates); -1 for an empty window. */
static int64_t window_argmax(const float *xp, int64_t W, const nc__pool_window *win) {
    int64_t best = -1;
    float bv = -INFINITY;
    for (int64_t ih = win->h0; ih < win->h1; ih++)
        for (int64_t iw = win->w0; iw < win->w1; iw++) {
            const float v = xp[ih * W + iw];
            if (best < 0 || v > bv || isnan(v)) {
                best = ih * W + iw;
                bv = v;
            }
        }
    return best;
}

void nc__ref_pool2d_forward(int nt, const nc__pool_desc *d, float *y, const float *x) {
    // y (N, C, OH, OW); x (N, C, H, W)
    const size_t planes = (size_t)d->n * (size_t)d->c;
    const size_t in_plane = (size_t)d->h * (size_t)d->w, out_plane = (size_t)d->oh * (size_t)d->ow;
    PARALLEL_FOR_IF(planes * (in_plane + out_plane))
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * in_plane;
        float *yp = y + p * out_plane;
        for (int64_t oh = 0; oh < d->oh; oh++)
            for (int64_t ow = 0; ow < d->ow; ow++) {
                const nc__pool_window win = nc__ref_pool_window(d, oh, ow);
                float out;
                if (d->mode == NC__POOL_MAX) {
                    const int64_t i = window_argmax(xp, d->w, &win);
                    out = i >= 0 ? xp[i] : -INFINITY;
                } else {
                    double s = 0.0;
                    for (int64_t ih = win.h0; ih < win.h1; ih++)
                        for (int64_t iw = win.w0; iw < win.w1; iw++) s += xp[ih * d->w + iw];
                    out = win.divisor > 0 ? (float)(s / (double)win.divisor) : 0.0f;
                }
                yp[(size_t)oh * (size_t)d->ow + (size_t)ow] = out;
            }
    }
}

void nc__ref_pool2d_backward(int nt, const nc__pool_desc *d, float *dx, const float *dy, const float *x,
                             const float *y) {
    // dx (N, C, H, W) accumulated; dy, y (N, C, OH, OW); x (N, C, H, W), read by max pooling only
    // (average pooling passes x = NULL, so no pointer is formed from it then)
    const size_t planes = (size_t)d->n * (size_t)d->c;
    const size_t in_plane = (size_t)d->h * (size_t)d->w, out_plane = (size_t)d->oh * (size_t)d->ow;
    PARALLEL_FOR_IF(planes * (in_plane + out_plane))
    for (size_t p = 0; p < planes; p++) {
        const float *xp = d->mode == NC__POOL_MAX ? x + p * in_plane : NULL;
        const float *dyp = dy + p * out_plane;
        float *dxp = dx + p * in_plane;
        for (int64_t oh = 0; oh < d->oh; oh++)
            for (int64_t ow = 0; ow < d->ow; ow++) {
                const nc__pool_window win = nc__ref_pool_window(d, oh, ow);
                const float g = dyp[(size_t)oh * (size_t)d->ow + (size_t)ow];
                if (d->mode == NC__POOL_MAX) {
                    const int64_t i = window_argmax(xp, d->w, &win);
                    if (i >= 0) dxp[i] += g;
                } else if (win.divisor > 0) {
                    const float share = g / (float)win.divisor;
                    for (int64_t ih = win.h0; ih < win.h1; ih++)
                        for (int64_t iw = win.w0; iw < win.w1; iw++) dxp[ih * d->w + iw] += share;
                }
            }
    }
}
