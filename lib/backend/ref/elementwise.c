/* elementwise.c — reference element-wise kernels on flat buffers (f32 unless
 * named): relu, add, accumulate, inverted dropout (mask a pure function of seed and
 * index), feature concat and gradient writes (f32 or bf16, either write mode),
 * scaling and a sum of squares for gradient norms. */
#include "backend/ref/ref.h"

#include "core/bf16.h"
#include "core/rng.h"

#include <math.h>
#include <string.h>

void nc__ref_relu_forward(int nt, size_t count, float *y, const float *x) {
    // y, x (count); y may alias x
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN propagates */
}

void nc__ref_relu_backward(int nt, size_t count, float *dx, const float *dy, const float *y) {
    // dx (count) accumulated; dy, y (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++)
        if (y[i] > 0.0f) dx[i] += dy[i];
}

void nc__ref_add_forward(int nt, size_t count, float *y, const float *a, const float *b) {
    // y, a, b (count); y may alias a or b
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void nc__ref_accumulate(int nt, size_t count, float *dst, const float *src) {
    // dst, src (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) dst[i] += src[i];
}

void nc__ref_dropout_forward(int nt, size_t count, float p, uint64_t seed, float *y, const float *x) {
    // y, x (count); y may alias x
    if (p <= 0.0f) {
        if (y != x && count) memcpy(y, x, count * sizeof(float));
        return;
    }
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++)
        y[i] = nc__rng_uniform(seed, 0, (uint64_t)i) >= p ? x[i] * scale : 0.0f;
}

void nc__ref_dropout_backward(int nt, size_t count, float p, uint64_t seed, float *dx, const float *dy) {
    // dx (count) accumulated; dy (count)
    if (p <= 0.0f) {
        nc__ref_accumulate(nt, count, dx, dy);
        return;
    }
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++)
        if (nc__rng_uniform(seed, 0, (uint64_t)i) >= p) dx[i] += dy[i] * scale;
}

void nc__ref_write_values(int nt, nc__dtype dt, nc__write mode, size_t count, void *dst, const void *src) {
    // dst, src (count) of dtype dt
    if (mode == NC__WRITE_SET) {
        if (count && dst != src) memcpy(dst, src, count * nc__dtype_size(dt));
    } else if (dt == NC__DTYPE_F32) {
        nc__ref_accumulate(nt, count, dst, src);
    } else { /* bf16: widened, added in f32, rounded once */
        nc__bf16 *d = dst;
        const nc__bf16 *x = src;
        PARALLEL_FOR_IF(count)
        for (size_t i = 0; i < count; i++) d[i] = nc__f32_to_bf16(nc__bf16_to_f32(d[i]) + nc__bf16_to_f32(x[i]));
    }
}

void nc__ref_concat_forward(nc__dtype dt, int64_t n, int count, const int64_t *widths, void *y,
                            const void *const *xs) {
    // y (n, sum widths); xs[i] (n, widths[i]); whole elements moved byte for byte
    const size_t es = nc__dtype_size(dt);
    size_t total = 0;
    for (int i = 0; i < count; i++) total += (size_t)widths[i];
    for (size_t r = 0; r < (size_t)n; r++) {
        size_t off = 0;
        for (int i = 0; i < count; i++) {
            const size_t w = (size_t)widths[i];
            if (w) memcpy((char *)y + (r * total + off) * es, (const char *)xs[i] + r * w * es, w * es);
            off += w;
        }
    }
}

void nc__ref_concat_backward(nc__dtype dt, int64_t n, int count, const int64_t *widths, const nc__write *modes,
                             void *const *dxs, const void *dy) {
    // dxs[i] (n, widths[i]) written as modes[i] says, each may be NULL; dy (n, sum widths)
    const size_t es = nc__dtype_size(dt);
    size_t total = 0;
    for (int i = 0; i < count; i++) total += (size_t)widths[i];
    for (size_t r = 0; r < (size_t)n; r++) {
        size_t off = 0;
        for (int i = 0; i < count; i++) { /* in index order: the same dx may come twice */
            const size_t w = (size_t)widths[i];
            if (dxs[i])
                nc__ref_write_values(1, dt, modes[i], w, (char *)dxs[i] + r * w * es, (const char *)dy + (r * total + off) * es);
            off += w;
        }
    }
}

void nc__ref_scale(int nt, size_t count, float *x, float alpha) {
    // x (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) x[i] *= alpha;
}

void nc__ref_axpby(int nt, size_t count, float *y, float a, const float *x, float b) {
    // y, x (count); a == 0 overwrites y (NaN in y included)
    if (a == 0.0f) {
        PARALLEL_FOR_IF(count)
        for (size_t i = 0; i < count; i++) y[i] = b * x[i];
        return;
    }
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) y[i] = a * y[i] + b * x[i];
}

/* Fixed chunking makes the double sum independent of the thread count. */
#define SS_CHUNKS 64

double nc__ref_sum_squares(int nt, size_t count, const float *x) {
    // x (count)
    double part[SS_CHUNKS];
    const size_t per = (count + SS_CHUNKS - 1) / SS_CHUNKS;
    PARALLEL_FOR_IF(count)
    for (int c = 0; c < SS_CHUNKS; c++) {
        const size_t lo = (size_t)c * per, hi = lo + per < count ? lo + per : count;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        part[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < SS_CHUNKS; c++) total += part[c];
    return total;
}
