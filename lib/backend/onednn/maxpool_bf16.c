/* maxpool_bf16.c — max-pooling backward on bf16 values in the oneDNN backend's
 * activation layout (nChw16c / nChw8c blocks, or plain NCHW below one block of
 * channels), summing each input's gradient in f32 and rounding it to bf16 once, as
 * ref does (backend.h, DTYPE POLICY). oneDNN 2.6's bf16 primitive sums the
 * contributions of overlapping windows (the stems' 3x3 stride-2 pool) in bf16, so the
 * backend used to widen x and dy to f32, run f32 primitives and round the result: five
 * passes over the widest activation of a ResNet, a quarter of its bf16 training step.
 * Here it is one pass: per plane block, the window argmax of each channel (ref's rule:
 * the first maximum in row-major order, a NaN wins) and its gradient added into an
 * f32 plane in cache, rounded when the plane is done. */
#include "backend/onednn/onednn.h"
#include "backend/ref/ref.h"
#include "core/bf16.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

#define MAX_BLOCK 16

/* One (image, channel block) plane of B lanes: acc (H*W*B f32) gets the gradients,
 * starting from dx's values under ADD; then dx = acc rounded once. */
static void plane_backward(const nc__pool_desc *d, int B, int add, float *acc, nc__bf16 *dx, const nc__bf16 *dy,
                           const nc__bf16 *x) {
    const size_t in = (size_t)d->h * (size_t)d->w * (size_t)B;
    for (size_t i = 0; i < in; i++) acc[i] = add ? nc__bf16_to_f32(dx[i]) : 0.0f;
    for (int64_t oh = 0; oh < d->oh; oh++)
        for (int64_t ow = 0; ow < d->ow; ow++) {
            const nc__pool_window s = nc__ref_pool_window(d, oh, ow);
            if (s.h0 >= s.h1 || s.w0 >= s.w1) continue;
            int32_t best[MAX_BLOCK];
            float bv[MAX_BLOCK];
            const int32_t first = (int32_t)(s.h0 * d->w + s.w0);
            for (int b = 0; b < B; b++) best[b] = first, bv[b] = nc__bf16_to_f32(x[(size_t)first * (size_t)B + (size_t)b]);
            for (int64_t ih = s.h0; ih < s.h1; ih++)
                for (int64_t iw = s.w0; iw < s.w1; iw++) {
                    const int32_t at = (int32_t)(ih * d->w + iw);
                    const nc__bf16 *xp = x + (size_t)at * (size_t)B;
#pragma omp simd
                    for (int b = 0; b < B; b++) {
                        const float v = nc__bf16_to_f32(xp[b]);
                        const int take = (v > bv[b]) | (v != v); /* a NaN wins */
                        best[b] = take ? at : best[b];
                        bv[b] = take ? v : bv[b];
                    }
                }
            const nc__bf16 *g = dy + ((size_t)oh * (size_t)d->ow + (size_t)ow) * (size_t)B;
            for (int b = 0; b < B; b++) acc[(size_t)best[b] * (size_t)B + (size_t)b] += nc__bf16_to_f32(g[b]);
        }
    for (size_t i = 0; i < in; i++) dx[i] = nc__f32_to_bf16(acc[i]);
}

int nc__dnnl_maxpool_bf16_fits(const dn_state *s, const nc__pool_desc *d) {
    const int64_t dims[4] = {d->n, d->c, d->h, d->w};
    return d->mode == NC__POOL_MAX && d->dtype == NC__DTYPE_BF16 && nc__dnnl_act_block(s, 4, dims) <= MAX_BLOCK;
}

nc_status nc__dnnl_maxpool_bf16_backward(dn_state *s, const nc__pool_desc *d, void *dx, const void *dy,
                                         const void *x) {
    // dx, x (N, C, H, W); dy (N, C, OH, OW): bf16 in the activation layout
    nc_status st;
    const int64_t dims[4] = {d->n, d->c, d->h, d->w};
    const int B = nc__dnnl_act_block(s, 4, dims);
    const int64_t CB = (d->c + B - 1) / B, tasks = d->n * CB;
    const size_t in = (size_t)d->h * (size_t)d->w * (size_t)B, out = (size_t)d->oh * (size_t)d->ow * (size_t)B;
    if (tasks <= 0 || in == 0) return NC_OK;
    const int nt = s->nt < tasks ? s->nt : (int)tasks;
    float *acc;
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B2, (size_t)nt * in * sizeof(float), (void **)&acc));
    const int add = d->dx_write != NC__WRITE_SET;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t t = 0; t < tasks; t++) {
#if defined(_OPENMP)
        float *mine = acc + (size_t)omp_get_thread_num() * in;
#else
        float *mine = acc;
#endif
        plane_backward(d, B, add, mine, (nc__bf16 *)dx + (size_t)t * in, (const nc__bf16 *)dy + (size_t)t * out,
                       (const nc__bf16 *)x + (size_t)t * in);
    }
fail:
    return st;
}
