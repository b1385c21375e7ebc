/* elementwise.c — the oneDNN backend's element-wise, reshaping and concat entries:
 * memory-bound loops over the (padded) activation layout, where a primitive would
 * only add its set-up cost. The ref kernels run on the buffers directly where they
 * do exactly what is needed; the NC__WRITE_SET variants of the gradients and dropout,
 * whose mask follows logical indices rather than the blocked storage order
 * (backend.h, RANDOM MASKS), have their own loops here, as do bf16 values (widened
 * to f32, computed, rounded to nearest even once: backend.h, DTYPE POLICY). */
#include "backend/onednn/onednn.h"
#include "backend/ref/ref.h"
#include "core/bf16.h"
#include "core/rng.h"

#include <string.h>

#define S(state) ((dn_state *)(state))

static size_t value_floats(const dn_state *s, const nc__value_desc *v) {
    return nc__dnnl_act_floats(s, v->shape.ndim, v->shape.d);
}

/* Element i of a buffer of dtype dt, as f32; storing f32 f there (bf16: rounded to
 * nearest even). The bf16 loops below widen, compute in f32 and round once, as ref. */
static inline float ld(nc__dtype dt, const void *p, size_t i) {
    return dt == NC__DTYPE_BF16 ? nc__bf16_to_f32(((const nc__bf16 *)p)[i]) : ((const float *)p)[i];
}
static inline void st(nc__dtype dt, void *p, size_t i, float f) {
    if (dt == NC__DTYPE_BF16)
        ((nc__bf16 *)p)[i] = nc__f32_to_bf16(f);
    else
        ((float *)p)[i] = f;
}

/* ---- kernels */

/* dx = y > 0 ? dy : 0 over count floats: ReLU's backward written over garbage (y's
 * padding channels are 0, so dx's become 0). */
static void relu_backward_set(int nt, size_t count, float *dx, const float *dy, const float *y) {
    // dx, dy, y (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* The bf16 element-wise kernels: count elements (padding included, which stays 0). */
static void bf16_relu_forward(int nt, size_t count, nc__bf16 *y, const nc__bf16 *x) {
    // y, x (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) y[i] = nc__bf16_to_f32(x[i]) > 0.0f ? x[i] : 0;
}

static void bf16_relu_backward(int nt, nc__write mode, size_t count, nc__bf16 *dx, const nc__bf16 *dy,
                               const nc__bf16 *y) {
    // dx, dy, y (count)
    if (mode == NC__WRITE_SET) {
        PARALLEL_FOR_IF(count)
        for (size_t i = 0; i < count; i++) dx[i] = nc__bf16_to_f32(y[i]) > 0.0f ? dy[i] : 0;
    } else {
        PARALLEL_FOR_IF(count)
        for (size_t i = 0; i < count; i++)
            if (nc__bf16_to_f32(y[i]) > 0.0f) dx[i] = nc__f32_to_bf16(nc__bf16_to_f32(dx[i]) + nc__bf16_to_f32(dy[i]));
    }
}

static void bf16_add(int nt, size_t count, nc__bf16 *y, const nc__bf16 *a, const nc__bf16 *b) {
    // y, a, b (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) y[i] = nc__f32_to_bf16(nc__bf16_to_f32(a[i]) + nc__bf16_to_f32(b[i]));
}

/* A value as dropout sees it: storage (N, CB, HW, B) of the logical (N, C, HW), with
 * B the layout's channel block (1 for plain values) and CB = ceil(C / B). */
typedef struct dn_geom {
    int64_t n, c, hw, block, cb;
} dn_geom;

static dn_geom geom_of(const dn_state *s, const nc__value_desc *v) {
    const nc__shape *sh = &v->shape;
    dn_geom g = {.n = sh->ndim > 0 ? sh->d[0] : 1, .c = sh->ndim > 1 ? sh->d[1] : 1, .hw = 1,
                 .block = nc__dnnl_act_block(s, sh->ndim, sh->d)};
    for (int i = 2; i < sh->ndim; i++) g.hw *= sh->d[i];
    g.cb = (g.c + g.block - 1) / g.block;
    return g;
}

/* out (=|+=) in * scale where the mask keeps, 0 elsewhere: storage element
 * (n, cb, hw, ci) is channel c = cb*B + ci of logical index ((n*C + c)*HW + hw).
 * Padding channels (c >= C) are written 0 under SET and left (0) under ADD. Forward
 * is the SET case with out = y, in = x (which may alias). */
static void dropout_kernel(int nt, const dn_geom *g, nc__dtype dt, float p, uint64_t seed, nc__write mode,
                           void *out, const void *in) {
    // out, in (N, CB, HW, B) of dtype dt
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const int64_t B = g->block, C = g->c, HW = g->hw, CB = g->cb, tasks = g->n * CB;
    const int set = mode == NC__WRITE_SET;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (tasks * HW * B >= NC__REF_PAR_MIN)
#endif
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t n = t / CB, c0 = t % CB * B;
        const int64_t lanes = C - c0 < B ? C - c0 : B; /* the block's real channels */
        const size_t base = (size_t)(t * HW * B);     // out, in + base: (HW, B)
        for (int64_t hw = 0; hw < HW; hw++) {
            for (int64_t ci = 0; ci < lanes; ci++) {
                const size_t k = base + (size_t)(hw * B + ci);
                const uint64_t i = (uint64_t)((n * C + c0 + ci) * HW + hw);
                if (nc__rng_uniform(seed, 0, i) >= p)
                    st(dt, out, k, set ? ld(dt, in, k) * scale : ld(dt, out, k) + ld(dt, in, k) * scale);
                else if (set)
                    st(dt, out, k, 0.0f);
            }
            if (set)
                for (int64_t ci = lanes; ci < B; ci++) st(dt, out, base + (size_t)(hw * B + ci), 0.0f);
        }
    }
}

/* ---- entries */

nc_status nc__dnnl_accumulate(void *state, const nc__value_desc *v, nc__write mode, void *dst, const void *src) {
    nc__ref_write_values(S(state)->nt, v->dtype, mode, value_floats(state, v), dst, src);
    return NC_OK;
}

nc_status nc__dnnl_relu_forward(void *state, const nc__value_desc *v, void *y, const void *x) {
    if (v->dtype == NC__DTYPE_BF16)
        bf16_relu_forward(S(state)->nt, value_floats(state, v), y, x);
    else
        nc__ref_relu_forward(S(state)->nt, value_floats(state, v), y, x);
    return NC_OK;
}

nc_status nc__dnnl_relu_backward(void *state, const nc__value_desc *v, nc__write mode, void *dx, const void *dy,
                                 const void *y) {
    const size_t count = value_floats(state, v);
    if (v->dtype == NC__DTYPE_BF16)
        bf16_relu_backward(S(state)->nt, mode, count, dx, dy, y);
    else if (mode == NC__WRITE_SET)
        relu_backward_set(S(state)->nt, count, dx, dy, y);
    else
        nc__ref_relu_backward(S(state)->nt, count, dx, dy, y);
    return NC_OK;
}

nc_status nc__dnnl_add_forward(void *state, const nc__value_desc *v, void *y, const void *a, const void *b) {
    if (v->dtype == NC__DTYPE_BF16)
        bf16_add(S(state)->nt, value_floats(state, v), y, a, b);
    else
        nc__ref_add_forward(S(state)->nt, value_floats(state, v), y, a, b);
    return NC_OK;
}

/* p <= 0 keeps everything unscaled, as the ref kernels. */
nc_status nc__dnnl_dropout_forward(void *state, const nc__value_desc *v, float p, uint64_t seed, void *y,
                                   const void *x) {
    const dn_state *s = state;
    if (p <= 0.0f) {
        nc__ref_write_values(s->nt, v->dtype, NC__WRITE_SET, value_floats(s, v), y, x);
        return NC_OK;
    }
    const dn_geom g = geom_of(s, v);
    dropout_kernel(s->nt, &g, v->dtype, p, seed, NC__WRITE_SET, y, x);
    return NC_OK;
}

nc_status nc__dnnl_dropout_backward(void *state, const nc__value_desc *v, nc__write mode, float p, uint64_t seed,
                                    void *dx, const void *dy) {
    const dn_state *s = state;
    if (p <= 0.0f) {
        nc__ref_write_values(s->nt, v->dtype, mode, value_floats(s, v), dx, dy);
        return NC_OK;
    }
    const dn_geom g = geom_of(s, v);
    dropout_kernel(s->nt, &g, v->dtype, p, seed, mode, dx, dy);
    return NC_OK;
}

/* Flatten is (N, C, H, W) in logical order: the plain layout of the input, same dtype. */
nc_status nc__dnnl_flatten_forward(void *state, const nc__value_desc *in, void *y, const void *x) {
    return nc__dnnl_value_to_plain(state, in, y, x);
}

nc_status nc__dnnl_flatten_backward(void *state, const nc__value_desc *in, nc__write mode, void *dx,
                                    const void *dy) {
    dn_state *s = state;
    nc_status st;
    void *tmp = NULL;
    if (mode == NC__WRITE_SET) return nc__dnnl_value_from_plain(s, in, dx, dy);
    const size_t n = value_floats(s, in);
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DX, n * nc__dtype_size(in->dtype), &tmp));
    NC_CHECK(nc__dnnl_value_from_plain(s, in, tmp, dy));
    nc__ref_write_values(s->nt, in->dtype, NC__WRITE_ADD, n, dx, tmp);
fail:
    return st;
}

/* ---- concat along dimension 1: each value in its own layout (blocked or plain) */

/* Storage index of logical element (n, c, hw) in a value of geometry g. */
static inline size_t geom_index(const dn_geom *g, int64_t n, int64_t c, int64_t hw) {
    return (size_t)(((n * g->cb + c / g->block) * g->hw + hw) * g->block + c % g->block);
}

/* Whether channels [off, off + x.c) of y are whole blocks of y's layout that x has
 * too: then each sample of x is one contiguous run in y (x's padding, if any, is y's). */
static int concat_contiguous(const dn_geom *y, const dn_geom *x, int64_t off) {
    return x->block == y->block && off % y->block == 0 && (x->c % x->block == 0 || off + x->c == y->c);
}

/* Copies x (geometry gx) to or from channels [off, off + gx.c) of y (geometry gy):
 * to_y 1 writes y (forward, whole elements), 0 writes x as `mode` says (backward). */
static void concat_move(const dn_state *s, nc__dtype dt, const dn_geom *gy, const dn_geom *gx, int64_t off,
                        int to_y, nc__write mode, void *y, void *x) {
    // y (N, CBy, HW, By), x (N, CBx, HW, Bx) of dtype dt
    const size_t es = nc__dtype_size(dt);
    if (concat_contiguous(gy, gx, off)) {
        const size_t run = (size_t)(gx->cb * gx->hw * gx->block);
        for (int64_t n = 0; n < gx->n; n++) {
            char *yp = (char *)y + geom_index(gy, n, off, 0) * es, *xp = (char *)x + (size_t)n * run * es;
            nc__ref_write_values(s->nt, dt, to_y ? NC__WRITE_SET : mode, run, to_y ? yp : xp, to_y ? xp : yp);
        }
        return;
    }
    const int set = to_y || mode == NC__WRITE_SET;
    const int64_t tasks = gx->n * gx->cb * gx->block;
#ifdef _OPENMP
#pragma omp parallel for num_threads(s->nt) schedule(static) if (tasks * gx->hw >= NC__REF_PAR_MIN)
#endif
    for (int64_t t = 0; t < tasks; t++) { /* (n, c) of x, padding lanes included */
        const int64_t n = t / (gx->cb * gx->block), c = t % (gx->cb * gx->block);
        for (int64_t hw = 0; hw < gx->hw; hw++) {
            const size_t kx = geom_index(gx, n, c, hw);
            if (c >= gx->c) { /* x's padding: 0 when written */
                if (!to_y && set) st(dt, x, kx, 0.0f);
                continue;
            }
            const size_t ky = geom_index(gy, n, off + c, hw);
            if (to_y)
                st(dt, y, ky, ld(dt, x, kx));
            else
                st(dt, x, kx, set ? ld(dt, y, ky) : ld(dt, x, kx) + ld(dt, y, ky));
        }
    }
}

/* Zeroes y's padding channels [C, CB*B) (forward, after the inputs' copies). */
static void zero_padding(nc__dtype dt, const dn_geom *g, void *y) {
    // y (N, CB, HW, B)
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t c = g->c; c < g->cb * g->block; c++)
            for (int64_t hw = 0; hw < g->hw; hw++) st(dt, y, geom_index(g, n, c, hw), 0.0f);
}

nc_status nc__dnnl_concat_forward(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                  void *y, const void *const *xs) {
    const dn_state *s = state;
    const dn_geom gy = geom_of(s, yv);
    int64_t off = 0;
    for (int i = 0; i < count; i++) {
        const dn_geom gx = geom_of(s, &xv[i]);
        concat_move(s, yv->dtype, &gy, &gx, off, 1, NC__WRITE_SET, y, (void *)xs[i]);
        off += gx.c;
    }
    zero_padding(yv->dtype, &gy, y);
    return NC_OK;
}

nc_status nc__dnnl_concat_backward(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                   const nc__write *modes, void *const *dxs, const void *dy) {
    const dn_state *s = state;
    const dn_geom gy = geom_of(s, yv);
    int64_t off = 0;
    for (int i = 0; i < count; i++) { /* in index order: the same dx may come twice */
        const dn_geom gx = geom_of(s, &xv[i]);
        if (dxs[i]) concat_move(s, yv->dtype, &gy, &gx, off, 0, modes[i], (void *)dy, dxs[i]);
        off += gx.c;
    }
    return NC_OK;
}
