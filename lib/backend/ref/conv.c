/* conv.c — the reference backend's grouped 2-D convolution (PyTorch conv2d semantics:
 * groups, stride, padding, dilation, optional bias) and fully connected layer, both
 * lowered onto nc__ref_gemm: im2col per (image chunk, group), one GEMM, col2im back.
 * Small feature maps batch several images into one GEMM so the weights are packed once. */
#include "backend/ref/ref.h"
#include "core/context.h"

#include <stdlib.h>
#include <string.h>


#if defined(_OPENMP)
#define NC__SIMD _Pragma("omp simd") /* GCC -O2 vectorises these loops only when asked */
#else
#define NC__SIMD
#endif

/* An im2col GEMM wants at least this many columns (output positions x images);
 * below it, images are batched. */
#define NC__CONV_TARGET_COLS 256

/* ------------------------------------------------------------------- plan */

typedef struct conv_plan {
    int64_t g, cg, kg;     /* groups, C/G, K/G */
    int64_t crs;           /* C/G * R * S: rows of col */
    int64_t hw, p;         /* H*W, OH*OW */
    int64_t nb;            /* images per chunk */
    int64_t chunks;        /* ceil(N / nb) */
    int64_t tasks;         /* chunks * G, chunk-major */
    int direct_x;          /* 1x1, stride 1, no padding, nb == 1: col is x itself */
    int workers;           /* tasks run on this many workers ... */
    int gemm_nt;           /* ... each calling gemm with this many threads */
} conv_plan;

static void conv_plan_make(conv_plan *pl, const nc__conv_desc *d, int nt) {
    pl->g = d->groups;
    pl->cg = d->c / d->groups;
    pl->kg = d->k / d->groups;
    pl->crs = pl->cg * d->r * d->s;
    pl->hw = d->h * d->w;
    pl->p = d->oh * d->ow;
    pl->nb = pl->p >= NC__CONV_TARGET_COLS ? 1 : (NC__CONV_TARGET_COLS + pl->p - 1) / pl->p;
    if (pl->nb > d->n) pl->nb = d->n;
    if (pl->nb < 1) pl->nb = 1;
    pl->chunks = (d->n + pl->nb - 1) / pl->nb;
    pl->tasks = pl->chunks * pl->g;
    pl->direct_x = d->r == 1 && d->s == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 &&
                   d->pad_w == 0 && pl->nb == 1;
    /* Independent tasks when there are enough of them to balance; else one task at
     * a time with the threads inside the GEMM. */
    if (nt < 1) nt = 1;
    if (nt > 1 && (pl->tasks >= 4 * (int64_t)nt || (pl->tasks >= nt && pl->tasks % nt == 0))) {
        pl->workers = nt;
        pl->gemm_nt = 1;
    } else {
        pl->workers = 1;
        pl->gemm_nt = nt;
    }
}


static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------ im2col / col2im */

/* The outputs o in [*lo, *hi) whose input index o*stride + off lies in [0, in). */
static void valid_range(int64_t off, int64_t stride, int64_t in, int64_t out, int64_t *lo,
                        int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int64_t h = in - off <= 0 ? 0 : (in - off + stride - 1) / stride;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col rows (C/G*R*S), each (OH*OW) at row stride ldcol <- x_g (C/G, H, W), zeros
 * where the window hangs over the padding. */
static void im2col(const nc__conv_desc *d, int64_t cg, float *col, int64_t ldcol, const float *xg) {
    const int64_t oh_n = d->oh, ow_n = d->ow;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t r = 0; r < d->r; r++)
            for (int64_t s = 0; s < d->s; s++) {
                float *dst = col + (size_t)((c * d->r + r) * d->s + s) * (size_t)ldcol; // (OH, OW)
                const int64_t offh = r * d->dil_h - d->pad_h, offw = s * d->dil_w - d->pad_w;
                int64_t oh0, oh1, ow0, ow1;
                valid_range(offh, d->stride_h, d->h, oh_n, &oh0, &oh1);
                valid_range(offw, d->stride_w, d->w, ow_n, &ow0, &ow1);
                if (oh0 > 0) memset(dst, 0, (size_t)(oh0 * ow_n) * sizeof(float));
                if (oh1 < oh_n)
                    memset(dst + oh1 * ow_n, 0, (size_t)((oh_n - oh1) * ow_n) * sizeof(float));
                for (int64_t oh = oh0; oh < oh1; oh++) {
                    const float *src = xg + (size_t)(c * d->h + oh * d->stride_h + offh) * (size_t)d->w; // (W)
                    float *drow = dst + oh * ow_n; // (OW)
                    for (int64_t ow = 0; ow < ow0; ow++) drow[ow] = 0.0f;
                    if (d->stride_w == 1) {
                        if (ow1 > ow0)
                            memcpy(drow + ow0, src + ow0 + offw, (size_t)(ow1 - ow0) * sizeof(float));
                    } else {
                        NC__SIMD
                        for (int64_t ow = ow0; ow < ow1; ow++) drow[ow] = src[ow * d->stride_w + offw];
                    }
                    for (int64_t ow = ow1; ow < ow_n; ow++) drow[ow] = 0.0f;
                }
            }
}

/* dx_g (C/G, H, W) += the col rows scattered back: the adjoint of im2col. */
static void col2im_add(const nc__conv_desc *d, int64_t cg, float *dxg, const float *col,
                       int64_t ldcol) {
    const int64_t ow_n = d->ow;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t r = 0; r < d->r; r++)
            for (int64_t s = 0; s < d->s; s++) {
                const float *src = col + (size_t)((c * d->r + r) * d->s + s) * (size_t)ldcol; // (OH, OW)
                const int64_t offh = r * d->dil_h - d->pad_h, offw = s * d->dil_w - d->pad_w;
                int64_t oh0, oh1, ow0, ow1;
                valid_range(offh, d->stride_h, d->h, d->oh, &oh0, &oh1);
                valid_range(offw, d->stride_w, d->w, ow_n, &ow0, &ow1);
                for (int64_t oh = oh0; oh < oh1; oh++) {
                    float *drow = dxg + (size_t)(c * d->h + oh * d->stride_h + offh) * (size_t)d->w; // (W)
                    const float *srow = src + oh * ow_n; // (OW)
                    if (d->stride_w == 1) {
                        float *dd = drow + offw;
                        NC__SIMD
                        for (int64_t ow = ow0; ow < ow1; ow++) dd[ow] += srow[ow];
                    } else {
                        NC__SIMD
                        for (int64_t ow = ow0; ow < ow1; ow++) drow[ow * d->stride_w + offw] += srow[ow];
                    }
                }
            }
}

/* col (C/G*R*S, nimg*P) for images n0.. of a chunk, group gi. */
static void im2col_chunk(const nc__conv_desc *d, const conv_plan *pl, float *col, const float *x,
                         int64_t n0, int64_t nimg, int64_t gi) {
    const int64_t ld = nimg * pl->p;
    for (int64_t i = 0; i < nimg; i++) {
        const float *xg = x + (size_t)(((n0 + i) * d->c + gi * pl->cg) * pl->hw); // (C/G, H, W)
        im2col(d, pl->cg, col + i * pl->p, ld, xg);
    }
}

/* A task's GEMM: with one worker, on the kernel's GEMM threads with scratch from the
 * hooks; inside a worker (gs, the worker's share of the scratch), one-threaded, so
 * that the hooks are only called from the thread that called the kernel. */
static void task_gemm(nc_context *ctx, const conv_plan *pl, float *gs, int ta, int tb, int64_t m, int64_t n,
                      int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc) {
    if (gs) nc__ref_gemm_serial(gs, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else nc__ref_gemm(ctx, pl->gemm_nt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* -------------------------------------------------------------- conv forward */

/* One (chunk, group): y_g (K/G, P) per image = w_g (K/G, CRS) col (CRS, nimg*P) + b_g. */
static void conv_forward_task(nc_context *ctx, const nc__conv_desc *d, const conv_plan *pl, int64_t t, float *y,
                              const float *x, const float *w, const float *b, float *col, float *tmp, float *gs) {
    const int64_t ci = t / pl->g, gi = t % pl->g;
    const int64_t n0 = ci * pl->nb, nimg = min64(pl->nb, d->n - n0), cols = nimg * pl->p;
    const float *wg = w + (size_t)(gi * pl->kg * pl->crs); // (K/G, C/G*R*S)
    const float *colp;                                       // (CRS, cols)
    if (pl->direct_x) {
        colp = x + (size_t)((n0 * d->c + gi * pl->cg) * pl->hw);
    } else {
        im2col_chunk(d, pl, col, x, n0, nimg, gi);
        colp = col;
    }
    if (nimg == 1) {
        float *yg = y + (size_t)((n0 * d->k + gi * pl->kg) * pl->p); // (K/G, P)
        task_gemm(ctx, pl, gs, 0, 0, pl->kg, pl->p, pl->crs, 1.0f, wg, pl->crs, colp, cols, 0.0f,
                     yg, pl->p);
        if (b)
            for (int64_t k = 0; k < pl->kg; k++) {
                const float bk = b[gi * pl->kg + k];
                float *row = yg + k * pl->p;
                NC__SIMD
                for (int64_t q = 0; q < pl->p; q++) row[q] += bk;
            }
    } else {
        task_gemm(ctx, pl, gs, 0, 0, pl->kg, cols, pl->crs, 1.0f, wg, pl->crs, colp, cols, 0.0f,
                     tmp, cols); // tmp (K/G, nimg*P)
        for (int64_t i = 0; i < nimg; i++)
            for (int64_t k = 0; k < pl->kg; k++) {
                const float bk = b ? b[gi * pl->kg + k] : 0.0f;
                const float *src = tmp + k * cols + i * pl->p;                             // (P)
                float *dst = y + (size_t)(((n0 + i) * d->k + gi * pl->kg + k) * pl->p); // (P)
                if (b) {
                    NC__SIMD
                    for (int64_t q = 0; q < pl->p; q++) dst[q] = src[q] + bk;
                } else {
                    memcpy(dst, src, (size_t)pl->p * sizeof(float));
                }
            }
    }
}

void nc__ref_conv2d_forward(nc_context *ctx, int nt, const nc__conv_desc *d, float *y, const float *x, const float *w,
                            const float *b) {
    if (d->n <= 0 || d->k <= 0 || d->oh <= 0 || d->ow <= 0) return;
    conv_plan pl;
    conv_plan_make(&pl, d, nt);
    const int64_t cols = pl.nb * pl.p;
    const size_t col_n = pl.direct_x ? 0 : (size_t)(pl.crs * cols);   // (CRS, nb*P)
    const size_t tmp_n = pl.nb > 1 ? (size_t)(pl.kg * cols) : 0;      // (K/G, nb*P)
    const size_t gs_off = (col_n + tmp_n + 15) / 16 * 16;
    const size_t gs_n = pl.workers > 1 ? nc__ref_gemm_scratch_floats(pl.kg, cols, pl.crs) : 0; // GEMM packing
    const size_t each = gs_off + gs_n;
    float *scratch = nc__alloc(ctx, sizeof(float) * each * (size_t)pl.workers);       // (workers, each)
    if (!scratch) {
        nc__ref_conv2d_forward_direct(d, y, x, w, b);
        return;
    }
    const int workers = pl.workers;
#ifdef _OPENMP
#pragma omp parallel for num_threads(workers) schedule(static, 1) if (workers > 1)
#endif
    for (int wi = 0; wi < workers; wi++) {
        float *col = scratch + (size_t)wi * each;
        float *tmp = col + col_n;
        float *gs = workers > 1 ? col + gs_off : NULL;
        const int64_t t0 = pl.tasks * wi / workers, t1 = pl.tasks * (wi + 1) / workers;
        for (int64_t t = t0; t < t1; t++) conv_forward_task(ctx, d, &pl, t, y, x, w, b, col, tmp, gs);
    }
    nc__free(ctx, scratch);
}

/* ------------------------------------------------------------- conv backward */

/* One (chunk, group): dw_g += dy_g col^T; dx_g += col2im(w_g^T dy_g). */
static void conv_backward_task(nc_context *ctx, const nc__conv_desc *d, const conv_plan *pl, int64_t t, float *dx,
                               float *dw, const float *dy, const float *x, const float *w, float *col,
                               float *dyb, float *gs) {
    const int64_t ci = t / pl->g, gi = t % pl->g;
    const int64_t n0 = ci * pl->nb, nimg = min64(pl->nb, d->n - n0), cols = nimg * pl->p;
    const float *wg = w + (size_t)(gi * pl->kg * pl->crs); // (K/G, C/G*R*S)
    float *dwg = dw + (size_t)(gi * pl->kg * pl->crs);     // (K/G, C/G*R*S)
    const float *colp;                                       // (CRS, cols)
    if (pl->direct_x) {
        colp = x + (size_t)((n0 * d->c + gi * pl->cg) * pl->hw);
    } else {
        im2col_chunk(d, pl, col, x, n0, nimg, gi);
        colp = col;
    }
    const float *dyp; // (K/G, cols)
    if (nimg == 1) {
        dyp = dy + (size_t)((n0 * d->k + gi * pl->kg) * pl->p);
    } else {
        for (int64_t k = 0; k < pl->kg; k++)
            for (int64_t i = 0; i < nimg; i++)
                memcpy(dyb + k * cols + i * pl->p,
                       dy + (size_t)(((n0 + i) * d->k + gi * pl->kg + k) * pl->p),
                       (size_t)pl->p * sizeof(float));
        dyp = dyb;
    }
    task_gemm(ctx, pl, gs, 0, 1, pl->kg, pl->crs, cols, 1.0f, dyp, cols, colp, cols, 1.0f, dwg,
                 pl->crs);
    if (!dx) return;
    if (pl->direct_x) { /* dx_g (C/G, HW) += w_g^T dy_g, straight into dx */
        float *dxg = dx + (size_t)((n0 * d->c + gi * pl->cg) * pl->hw);
        task_gemm(ctx, pl, gs, 1, 0, pl->cg, pl->p, pl->kg, 1.0f, wg, pl->crs, dyp, cols, 1.0f, dxg,
                     pl->hw);
        return;
    }
    /* dcol (CRS, cols) = w_g^T dy_g, reusing col */
    task_gemm(ctx, pl, gs, 1, 0, pl->crs, cols, pl->kg, 1.0f, wg, pl->crs, dyp, cols, 0.0f, col,
                 cols);
    for (int64_t i = 0; i < nimg; i++) {
        float *dxg = dx + (size_t)(((n0 + i) * d->c + gi * pl->cg) * pl->hw); // (C/G, H, W)
        col2im_add(d, pl->cg, dxg, col + i * pl->p, cols);
    }
}

/* Sum of a row in double: 8 lanes in a fixed order, so it vectorises and does
 * not depend on how the caller splits the work. */
static double row_sum(const float *row, int64_t p) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t q = 0;
    for (; q + 8 <= p; q += 8)
        for (int j = 0; j < 8; j++) lane[j] += row[q + j];
    double s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; q < p; q++) s += row[q];
    return s;
}

/* db (K) += sum over N, OH, OW of dy, in double, one channel per iteration. */
static void bias_backward(int nt, int64_t n, int64_t k, int64_t p, float *db, const float *dy) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && n * k * p >= 65536)
#endif
    for (int64_t kk = 0; kk < k; kk++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += row_sum(dy + (size_t)((i * k + kk) * p), p); // (P)
        db[kk] += (float)s;
    }
}

void nc__ref_conv2d_backward(nc_context *ctx, int nt, const nc__conv_desc *d, float *dx, float *dw, float *db,
                             const float *dy, const float *x, const float *w) {
    if (d->n <= 0 || d->k <= 0 || d->oh <= 0 || d->ow <= 0) return;
    if (nt < 1) nt = 1;
    if (db) bias_backward(nt, d->n, d->k, d->oh * d->ow, db, dy);
    conv_plan pl;
    conv_plan_make(&pl, d, nt);
    const int64_t cols = pl.nb * pl.p;
    const size_t wsize = (size_t)(d->k * pl.crs);                        // (K, C/G, R, S)
    const size_t col_n = pl.direct_x ? 0 : (size_t)(pl.crs * cols);      // (CRS, nb*P)
    const size_t dyb_n = pl.nb > 1 ? (size_t)(pl.kg * cols) : 0;         // (K/G, nb*P)
    const size_t part_n = pl.workers > 1 ? wsize : 0;                    // private dw
    const size_t dyb_off = (col_n + 15) / 16 * 16, part_off = dyb_off + (dyb_n + 15) / 16 * 16;
    const size_t gs_off = part_off + (part_n + 15) / 16 * 16;
    const size_t gs_n = pl.workers > 1 ? max_size(nc__ref_gemm_scratch_floats(pl.kg, pl.crs, cols),
                                                  max_size(nc__ref_gemm_scratch_floats(pl.cg, pl.p, pl.kg),
                                                           nc__ref_gemm_scratch_floats(pl.crs, cols, pl.kg)))
                                       : 0; // GEMM packing
    const size_t each = gs_off + gs_n;
    float *scratch = nc__alloc(ctx, sizeof(float) * each * (size_t)pl.workers);          // (workers, each)
    if (!scratch) {
        nc__ref_conv2d_backward_direct(d, dx, dw, NULL, dy, x, w);
        return;
    }
    /* With several workers, each sums its images' dw in a private buffer; the
     * buffers are then added to dw in worker order: deterministic for a given nt. */
    const int workers = pl.workers;
#ifdef _OPENMP
#pragma omp parallel for num_threads(workers) schedule(static, 1) if (workers > 1)
#endif
    for (int wi = 0; wi < workers; wi++) {
        float *col = scratch + (size_t)wi * each;
        float *dyb = col + dyb_off;
        float *part = col + part_off;
        float *dwt = dw;
        if (workers > 1) {
            memset(part, 0, wsize * sizeof(float));
            dwt = part;
        }
        const int64_t t0 = pl.tasks * wi / workers, t1 = pl.tasks * (wi + 1) / workers;
        float *gs = workers > 1 ? col + gs_off : NULL;
        for (int64_t t = t0; t < t1; t++) conv_backward_task(ctx, d, &pl, t, dx, dwt, dy, x, w, col, dyb, gs);
    }
    if (workers > 1) {
        const int64_t ws = (int64_t)wsize;
#ifdef _OPENMP
#pragma omp parallel for num_threads(workers) schedule(static) if (ws >= 16384)
#endif
        for (int64_t i = 0; i < ws; i++) {
            float s = dw[i];
            for (int wi = 0; wi < workers; wi++) s += scratch[(size_t)wi * each + part_off + (size_t)i];
            dw[i] = s;
        }
    }
    nc__free(ctx, scratch);
}

/* --------------------------------------------------------- direct fallbacks */

void nc__ref_conv2d_forward_direct(const nc__conv_desc *d, float *y, const float *x, const float *w,
                                   const float *b) {
    const int64_t cg = d->c / d->groups, kg = d->k / d->groups;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t k = 0; k < d->k; k++) {
            const int64_t gi = k / kg;
            const float *wk = w + (size_t)(k * cg * d->r * d->s);                // (C/G, R, S)
            const float *xn = x + (size_t)((n * d->c + gi * cg) * d->h * d->w);  // (C/G, H, W)
            float *yk = y + (size_t)((n * d->k + k) * d->oh * d->ow);            // (OH, OW)
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++) {
                    float s = 0.0f;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t r = 0; r < d->r; r++) {
                            const int64_t ih = oh * d->stride_h - d->pad_h + r * d->dil_h;
                            if (ih < 0 || ih >= d->h) continue;
                            for (int64_t s2 = 0; s2 < d->s; s2++) {
                                const int64_t iw = ow * d->stride_w - d->pad_w + s2 * d->dil_w;
                                if (iw < 0 || iw >= d->w) continue;
                                s += wk[(c * d->r + r) * d->s + s2] * xn[(c * d->h + ih) * d->w + iw];
                            }
                        }
                    yk[oh * d->ow + ow] = b ? s + b[k] : s;
                }
        }
}

void nc__ref_conv2d_backward_direct(const nc__conv_desc *d, float *dx, float *dw, float *db,
                                    const float *dy, const float *x, const float *w) {
    const int64_t cg = d->c / d->groups, kg = d->k / d->groups;
    if (db) bias_backward(1, d->n, d->k, d->oh * d->ow, db, dy);
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t k = 0; k < d->k; k++) {
            const int64_t gi = k / kg;
            const float *wk = w + (size_t)(k * cg * d->r * d->s);                // (C/G, R, S)
            float *dwk = dw + (size_t)(k * cg * d->r * d->s);                    // (C/G, R, S)
            const float *xn = x + (size_t)((n * d->c + gi * cg) * d->h * d->w);  // (C/G, H, W)
            float *dxn = dx ? dx + (size_t)((n * d->c + gi * cg) * d->h * d->w) : NULL;
            const float *dyk = dy + (size_t)((n * d->k + k) * d->oh * d->ow);    // (OH, OW)
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++) {
                    const float g = dyk[oh * d->ow + ow];
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t r = 0; r < d->r; r++) {
                            const int64_t ih = oh * d->stride_h - d->pad_h + r * d->dil_h;
                            if (ih < 0 || ih >= d->h) continue;
                            for (int64_t s2 = 0; s2 < d->s; s2++) {
                                const int64_t iw = ow * d->stride_w - d->pad_w + s2 * d->dil_w;
                                if (iw < 0 || iw >= d->w) continue;
                                const int64_t wi = (c * d->r + r) * d->s + s2;
                                const int64_t xi = (c * d->h + ih) * d->w + iw;
                                dwk[wi] += g * xn[xi];
                                if (dxn) dxn[xi] += g * wk[wi];
                            }
                        }
                }
        }
}

/* ------------------------------------------------------------------- linear */

void nc__ref_linear_forward(nc_context *ctx, int nt, const nc__linear_desc *d, float *y, const float *x, const float *w,
                            const float *b) {
    if (d->n <= 0 || d->out <= 0) return;
    // y (N, out) = x (N, in) w^T (in, out)
    nc__ref_gemm(ctx, nt, 0, 1, d->n, d->out, d->in, 1.0f, x, d->in, w, d->in, 0.0f, y, d->out);
    if (b)
        for (int64_t i = 0; i < d->n; i++) {
            float *row = y + (size_t)(i * d->out); // (out)
            NC__SIMD
            for (int64_t o = 0; o < d->out; o++) row[o] += b[o];
        }
}

void nc__ref_linear_backward(nc_context *ctx, int nt, const nc__linear_desc *d, float *dx, float *dw, float *db,
                             const float *dy, const float *x, const float *w) {
    if (d->n <= 0 || d->out <= 0) return;
    // dx (N, in) += dy (N, out) w (out, in)
    if (dx) nc__ref_gemm(ctx, nt, 0, 0, d->n, d->in, d->out, 1.0f, dy, d->out, w, d->in, 1.0f, dx, d->in);
    // dw (out, in) += dy^T (out, N) x (N, in)
    nc__ref_gemm(ctx, nt, 1, 0, d->out, d->in, d->n, 1.0f, dy, d->out, x, d->in, 1.0f, dw, d->in);
    if (db) // db (out) += sum over N of dy
        for (int64_t o = 0; o < d->out; o++) {
            double s = 0.0;
            for (int64_t i = 0; i < d->n; i++) s += dy[(size_t)(i * d->out + o)];
            db[o] += (float)s;
        }
}
