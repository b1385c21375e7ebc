/* ref.c — the reference backend's nc__backend table: host memory from the context's
 * allocator holding plain NCHW values, and wrappers that hand each op to its f32
 * kernel (gemm.c, conv.c, batchnorm.c, pool.c, elementwise.c, loss.c, optim.c) with
 * the state's thread count. bf16 values (backend.h, DTYPE POLICY) are widened to f32
 * scratch before a kernel and rounded to nearest even after it; convolutions and
 * linear layers also round their weights and bias to bf16 first, as autocast does.
 * So the bf16 path is the same arithmetic on bf16-rounded operands: the oracle. */
#include "backend/ref/ref.h"

#include "core/bf16.h"
#include "core/context.h"

#include <string.h>

#define NT(state) (((const nc__ref_state *)(state))->nt)
#define CTX(state) (((const nc__ref_state *)(state))->ctx)

static size_t numel(const nc__shape *s) { return (size_t)nc__shape_numel(s); }

/* ---- f32 working copies of bf16 operands, freed together at the end of a call */

#define REF_MAX_SCRATCH 8
typedef struct scratch {
    nc__ref_state *s;
    void *p[REF_MAX_SCRATCH];
    int n, oom;
} scratch;

static float *scr_alloc(scratch *sc, size_t count) {
    void *p = sc->n < REF_MAX_SCRATCH ? nc__alloc(sc->s->ctx, count ? count * sizeof(float) : 1) : NULL;
    if (!p) sc->oom = 1;
    else sc->p[sc->n++] = p;
    return p;
}

static void widen(float *dst, const nc__bf16 *src, size_t count) {
    for (size_t i = 0; i < count; i++) dst[i] = nc__bf16_to_f32(src[i]);
}

/* An input of dtype dt as f32 (NULL stays NULL). */
static const float *scr_in(scratch *sc, nc__dtype dt, const void *src, size_t count) {
    if (!src || dt == NC__DTYPE_F32) return src;
    float *f = scr_alloc(sc, count);
    if (f) widen(f, src, count);
    return f;
}

/* f32 weights (or bias) as the kernel sees them: rounded to bf16 for bf16 values. */
static const float *scr_weights(scratch *sc, nc__dtype dt, const float *w, size_t count) {
    if (!w || dt == NC__DTYPE_F32) return w;
    float *f = scr_alloc(sc, count);
    if (f)
        for (size_t i = 0; i < count; i++) f[i] = nc__bf16_round(w[i]);
    return f;
}

/* Where a kernel writes an output of dtype dt: the buffer itself (f32) or scratch. */
static float *scr_out(scratch *sc, nc__dtype dt, void *dst, size_t count) {
    if (!dst || dt == NC__DTYPE_F32) return dst;
    return scr_alloc(sc, count);
}

/* Where an accumulating kernel adds a gradient written with `mode` (backend.h,
 * GRADIENT WRITE RULE): zeroed for SET, the current values for ADD. */
static float *scr_grad(scratch *sc, nc__dtype dt, nc__write mode, void *dst, size_t count) {
    if (!dst) return NULL;
    float *f = dt == NC__DTYPE_F32 ? dst : scr_alloc(sc, count);
    if (!f) return NULL;
    if (mode == NC__WRITE_SET) memset(f, 0, count * sizeof *f);
    else if (dt != NC__DTYPE_F32) widen(f, dst, count);
    return f;
}

/* Stores a kernel's f32 result into dst of dtype dt (nothing to do for f32). */
static void store(nc__dtype dt, void *dst, const float *f, size_t count) {
    if (!dst || dt == NC__DTYPE_F32 || (const void *)f == dst) return;
    nc__bf16 *h = dst;
    for (size_t i = 0; i < count; i++) h[i] = nc__f32_to_bf16(f[i]);
}

static nc_status scr_done(scratch *sc) {
    for (int i = 0; i < sc->n; i++) nc__free(sc->s->ctx, sc->p[i]);
    if (sc->oom) return nc__error(sc->s->ctx, NC_ERR_OUT_OF_MEMORY, "ref backend: out of memory for bf16 scratch");
    return NC_OK;
}

/* ---- state, capabilities and memory */

static nc_status ref_init(nc_context *ctx, int num_threads, void **state) {
    nc__ref_state *s = nc__alloc(ctx, sizeof *s);
    if (!s) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "ref backend: out of memory for its state");
    s->ctx = ctx;
    s->nt = num_threads >= 1 ? num_threads : 1;
    *state = s;
    return NC_OK;
}

static void ref_destroy(void *state) {
    if (!state) return;
    nc__ref_state *s = state;
    nc__free(s->ctx, s);
}

/* Every single op in every dtype; no fused patterns (the oracle runs ops one by one). */
static int ref_supports(void *state, const nc__op_query *q) {
    return q->kernel != NC__K_CONV_FUSED_INFER && q->kernel != NC__K_BN_RELU_TRAIN && q->kernel < NC__K_COUNT &&
           q->dtype < NC__DTYPE_COUNT;
}

static nc_status ref_alloc(void *state, size_t bytes, void **out) {
    nc__ref_state *s = state;
    void *p = nc__alloc(s->ctx, bytes ? bytes : 1);
    if (!p)
        return nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "ref backend: cannot allocate %zu bytes", bytes);
    *out = p;
    return NC_OK;
}

static void ref_free(void *state, void *ptr) {
    if (ptr) nc__free(((nc__ref_state *)state)->ctx, ptr);
}

static nc_status ref_copy_bytes(void *state, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return NC_OK;
}

static nc_status ref_upload(void *state, void *dst, const float *src, const nc__shape *shape) {
    return ref_copy_bytes(state, dst, src, numel(shape) * sizeof(float));
}

static nc_status ref_download(void *state, float *dst, const void *src, const nc__shape *shape) {
    return ref_copy_bytes(state, dst, src, numel(shape) * sizeof(float));
}

static nc_status ref_fill(void *state, void *dst, float value, size_t count) {
    const int nt = NT(state);
    float *d = dst; // (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) d[i] = value;
    return NC_OK;
}

/* ---- activation values: plain NCHW in their dtype */

static size_t ref_value_bytes(void *state, const nc__value_desc *v) {
    return numel(&v->shape) * nc__dtype_size(v->dtype);
}

static nc_status ref_value_upload(void *state, const nc__value_desc *v, void *dst, const float *src) {
    if (v->dtype == NC__DTYPE_F32) return ref_copy_bytes(state, dst, src, numel(&v->shape) * sizeof(float));
    store(v->dtype, dst, src, numel(&v->shape));
    return NC_OK;
}

static nc_status ref_value_download(void *state, const nc__value_desc *v, float *dst, const void *src) {
    if (v->dtype == NC__DTYPE_F32) return ref_copy_bytes(state, dst, src, numel(&v->shape) * sizeof(float));
    widen(dst, src, numel(&v->shape));
    return NC_OK;
}

static nc_status ref_accumulate(void *state, const nc__value_desc *v, nc__write mode, void *dst, const void *src) {
    nc__ref_write_values(NT(state), v->dtype, mode, numel(&v->shape), dst, src);
    return NC_OK;
}

/* ---- convolution and linear (conv.c) */

static size_t conv_x(const nc__conv_desc *d) { return (size_t)(d->n * d->c * d->h * d->w); }
static size_t conv_y(const nc__conv_desc *d) { return (size_t)(d->n * d->k * d->oh * d->ow); }
static size_t conv_w(const nc__conv_desc *d) { return (size_t)(d->k * (d->c / d->groups) * d->r * d->s); }

static nc_status ref_conv2d_forward(void *state, const nc__conv_desc *d, void *y, const void *x, const void *w,
                                    const void *b) {
    scratch sc = {.s = state};
    const float *xf = scr_in(&sc, d->dtype, x, conv_x(d));
    const float *wf = scr_weights(&sc, d->dtype, w, conv_w(d)), *bf = scr_weights(&sc, d->dtype, b, (size_t)d->k);
    float *yf = scr_out(&sc, d->dtype, y, conv_y(d));
    if (!sc.oom) {
        nc__ref_conv2d_forward(CTX(state), NT(state), d, yf, xf, wf, bf);
        store(d->dtype, y, yf, conv_y(d));
    }
    return scr_done(&sc);
}

/* dw and db are f32 masters: accumulated in f32 from the bf16-rounded operands. */
static nc_status ref_conv2d_backward(void *state, const nc__conv_desc *d, void *dx, void *dw, void *db,
                                     const void *dy, const void *x, const void *w) {
    scratch sc = {.s = state};
    const float *dyf = scr_in(&sc, d->dtype, dy, conv_y(d)), *xf = scr_in(&sc, d->dtype, x, conv_x(d));
    const float *wf = scr_weights(&sc, d->dtype, w, conv_w(d));
    float *dxf = scr_grad(&sc, d->dtype, d->dx_write, dx, conv_x(d));
    if (!sc.oom) {
        nc__ref_conv2d_backward(CTX(state), NT(state), d, dxf, dw, db, dyf, xf, wf);
        store(d->dtype, dx, dxf, conv_x(d));
    }
    return scr_done(&sc);
}

static nc_status ref_linear_forward(void *state, const nc__linear_desc *d, void *y, const void *x, const void *w,
                                    const void *b) {
    scratch sc = {.s = state};
    const size_t nx = (size_t)(d->n * d->in), ny = (size_t)(d->n * d->out);
    const float *xf = scr_in(&sc, d->dtype, x, nx);
    const float *wf = scr_weights(&sc, d->dtype, w, (size_t)(d->out * d->in));
    const float *bf = scr_weights(&sc, d->dtype, b, (size_t)d->out);
    float *yf = scr_out(&sc, d->dtype, y, ny);
    if (!sc.oom) {
        nc__ref_linear_forward(CTX(state), NT(state), d, yf, xf, wf, bf);
        store(d->dtype, y, yf, ny);
    }
    return scr_done(&sc);
}

static nc_status ref_linear_backward(void *state, const nc__linear_desc *d, void *dx, void *dw, void *db,
                                     const void *dy, const void *x, const void *w) {
    scratch sc = {.s = state};
    const size_t nx = (size_t)(d->n * d->in), ny = (size_t)(d->n * d->out);
    const float *dyf = scr_in(&sc, d->dtype, dy, ny), *xf = scr_in(&sc, d->dtype, x, nx);
    const float *wf = scr_weights(&sc, d->dtype, w, (size_t)(d->out * d->in));
    float *dxf = scr_grad(&sc, d->dtype, d->dx_write, dx, nx);
    if (!sc.oom) {
        nc__ref_linear_backward(CTX(state), NT(state), d, dxf, dw, db, dyf, xf, wf);
        store(d->dtype, dx, dxf, nx);
    }
    return scr_done(&sc);
}

/* ---- batch normalisation (batchnorm.c): bf16 values, f32 statistics */

static size_t bn_count(const nc__bn_desc *d) { return (size_t)(d->n * d->c * d->hw); }

static nc_status ref_bn_forward_train(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                      void *save_invstd, void *running_mean, void *running_var, const void *x,
                                      const void *gamma, const void *beta) {
    scratch sc = {.s = state};
    const float *xf = scr_in(&sc, d->dtype, x, bn_count(d));
    float *yf = scr_out(&sc, d->dtype, y, bn_count(d));
    if (!sc.oom) {
        nc__ref_batchnorm_forward_train(NT(state), d, yf, save_mean, save_invstd, running_mean, running_var, xf,
                                        gamma, beta);
        store(d->dtype, y, yf, bn_count(d));
    }
    return scr_done(&sc);
}

static nc_status ref_bn_forward_infer(void *state, const nc__bn_desc *d, void *y, const void *x, const void *gamma,
                                      const void *beta, const void *running_mean, const void *running_var) {
    scratch sc = {.s = state};
    const float *xf = scr_in(&sc, d->dtype, x, bn_count(d));
    float *yf = scr_out(&sc, d->dtype, y, bn_count(d));
    if (!sc.oom) {
        nc__ref_batchnorm_forward_infer(NT(state), d, yf, xf, gamma, beta, running_mean, running_var);
        store(d->dtype, y, yf, bn_count(d));
    }
    return scr_done(&sc);
}

static nc_status ref_bn_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                 const void *dy, const void *x, const void *gamma, const void *save_mean,
                                 const void *save_invstd) {
    scratch sc = {.s = state};
    const float *dyf = scr_in(&sc, d->dtype, dy, bn_count(d)), *xf = scr_in(&sc, d->dtype, x, bn_count(d));
    float *dxf = scr_grad(&sc, d->dtype, d->dx_write, dx, bn_count(d));
    if (!sc.oom) {
        nc__ref_batchnorm_backward(NT(state), d, dxf, dgamma, dbeta, dyf, xf, gamma, save_mean, save_invstd);
        store(d->dtype, dx, dxf, bn_count(d));
    }
    return scr_done(&sc);
}

/* ---- synchronised batch norm (backend.h, SYNC BATCH NORM): bf16 values widened */

static nc_status ref_bn_sync_sums(void *state, const nc__bn_desc *d, double *sums, const void *x,
                                  const double *mean) {
    scratch sc = {.s = state};
    const float *xf = scr_in(&sc, d->dtype, x, bn_count(d));
    if (!sc.oom) nc__ref_bn_sync_sums(NT(state), d, 1, sums, xf, mean);
    return scr_done(&sc);
}

static nc_status ref_bn_sync_forward(void *state, const nc__bn_desc *d, int relu, void *y, void *save_mean,
                                     void *save_invstd, void *running_mean, void *running_var, const void *x,
                                     const void *gamma, const void *beta, const double *stats, double count) {
    scratch sc = {.s = state};
    const float *xf = scr_in(&sc, d->dtype, x, bn_count(d));
    float *yf = scr_out(&sc, d->dtype, y, bn_count(d));
    if (!sc.oom) {
        nc__ref_bn_sync_forward(NT(state), d, 1, relu, yf, save_mean, save_invstd, running_mean, running_var, xf,
                                gamma, beta, stats, count);
        store(d->dtype, y, yf, bn_count(d));
    }
    return scr_done(&sc);
}

static nc_status ref_bn_sync_backward_sums(void *state, const nc__bn_desc *d, double *sums, const void *dy,
                                           const void *y, const void *x, const void *save_mean,
                                           const void *save_invstd) {
    scratch sc = {.s = state};
    const float *dyf = scr_in(&sc, d->dtype, dy, bn_count(d)), *xf = scr_in(&sc, d->dtype, x, bn_count(d));
    const float *yf = scr_in(&sc, d->dtype, y, bn_count(d));
    if (!sc.oom) nc__ref_bn_sync_backward_sums(NT(state), d, 1, sums, dyf, yf, xf, save_mean, save_invstd);
    return scr_done(&sc);
}

static nc_status ref_bn_sync_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                      const void *dy, const void *y, const void *x, const void *gamma,
                                      const void *save_mean, const void *save_invstd, const double *sums,
                                      double count) {
    scratch sc = {.s = state};
    const float *dyf = scr_in(&sc, d->dtype, dy, bn_count(d)), *xf = scr_in(&sc, d->dtype, x, bn_count(d));
    const float *yf = scr_in(&sc, d->dtype, y, bn_count(d));
    float *dxf = scr_grad(&sc, d->dtype, d->dx_write, dx, bn_count(d));
    if (!sc.oom) {
        nc__ref_bn_sync_backward(NT(state), d, 1, dxf, dgamma, dbeta, dyf, yf, xf, gamma, save_mean, save_invstd,
                                 sums, count);
        store(d->dtype, dx, dxf, bn_count(d));
    }
    return scr_done(&sc);
}

/* ---- element-wise (elementwise.c) */

static nc_status ref_relu_forward(void *state, const nc__value_desc *v, void *y, const void *x) {
    scratch sc = {.s = state};
    const size_t n = numel(&v->shape);
    const float *xf = scr_in(&sc, v->dtype, x, n);
    float *yf = scr_out(&sc, v->dtype, y, n);
    if (!sc.oom) {
        nc__ref_relu_forward(NT(state), n, yf, xf);
        store(v->dtype, y, yf, n);
    }
    return scr_done(&sc);
}

static nc_status ref_relu_backward(void *state, const nc__value_desc *v, nc__write mode, void *dx, const void *dy,
                                   const void *y) {
    scratch sc = {.s = state};
    const size_t n = numel(&v->shape);
    const float *dyf = scr_in(&sc, v->dtype, dy, n), *yf = scr_in(&sc, v->dtype, y, n);
    float *dxf = scr_grad(&sc, v->dtype, mode, dx, n);
    if (!sc.oom) {
        nc__ref_relu_backward(NT(state), n, dxf, dyf, yf);
        store(v->dtype, dx, dxf, n);
    }
    return scr_done(&sc);
}

static nc_status ref_add_forward(void *state, const nc__value_desc *v, void *y, const void *a, const void *b) {
    scratch sc = {.s = state};
    const size_t n = numel(&v->shape);
    const float *af = scr_in(&sc, v->dtype, a, n), *bf = scr_in(&sc, v->dtype, b, n);
    float *yf = scr_out(&sc, v->dtype, y, n);
    if (!sc.oom) {
        nc__ref_add_forward(NT(state), n, yf, af, bf);
        store(v->dtype, y, yf, n);
    }
    return scr_done(&sc);
}

/* Plain NCHW: the storage index is the logical index of backend.h's RANDOM MASKS. */
static nc_status ref_dropout_forward(void *state, const nc__value_desc *v, float p, uint64_t seed, void *y,
                                     const void *x) {
    scratch sc = {.s = state};
    const size_t n = numel(&v->shape);
    const float *xf = scr_in(&sc, v->dtype, x, n);
    float *yf = scr_out(&sc, v->dtype, y, n);
    if (!sc.oom) {
        nc__ref_dropout_forward(NT(state), n, p, seed, yf, xf);
        store(v->dtype, y, yf, n);
    }
    return scr_done(&sc);
}

static nc_status ref_dropout_backward(void *state, const nc__value_desc *v, nc__write mode, float p, uint64_t seed,
                                      void *dx, const void *dy) {
    scratch sc = {.s = state};
    const size_t n = numel(&v->shape);
    const float *dyf = scr_in(&sc, v->dtype, dy, n);
    float *dxf = scr_grad(&sc, v->dtype, mode, dx, n);
    if (!sc.oom) {
        nc__ref_dropout_backward(NT(state), n, p, seed, dxf, dyf);
        store(v->dtype, dx, dxf, n);
    }
    return scr_done(&sc);
}

/* ---- pooling (pool.c) */

static nc_status ref_pool2d_forward(void *state, const nc__pool_desc *d, void *y, const void *x) {
    scratch sc = {.s = state};
    const size_t nx = (size_t)(d->n * d->c * d->h * d->w), ny = (size_t)(d->n * d->c * d->oh * d->ow);
    const float *xf = scr_in(&sc, d->dtype, x, nx);
    float *yf = scr_out(&sc, d->dtype, y, ny);
    if (!sc.oom) {
        nc__ref_pool2d_forward(NT(state), d, yf, xf);
        store(d->dtype, y, yf, ny);
    }
    return scr_done(&sc);
}

static nc_status ref_pool2d_backward(void *state, const nc__pool_desc *d, void *dx, const void *dy, const void *x,
                                     const void *y) {
    scratch sc = {.s = state};
    const size_t nx = (size_t)(d->n * d->c * d->h * d->w), ny = (size_t)(d->n * d->c * d->oh * d->ow);
    const float *dyf = scr_in(&sc, d->dtype, dy, ny), *xf = scr_in(&sc, d->dtype, x, nx);
    const float *yf = scr_in(&sc, d->dtype, y, ny);
    float *dxf = scr_grad(&sc, d->dtype, d->dx_write, dx, nx);
    if (!sc.oom) {
        nc__ref_pool2d_backward(NT(state), d, dxf, dyf, xf, yf);
        store(d->dtype, dx, dxf, nx);
    }
    return scr_done(&sc);
}

/* ---- reshaping: NCHW is already the logical order, so flatten is a copy */

static nc_status ref_flatten_forward(void *state, const nc__value_desc *in, void *y, const void *x) {
    return ref_copy_bytes(state, y, x, ref_value_bytes(state, in));
}

static nc_status ref_flatten_backward(void *state, const nc__value_desc *in, nc__write mode, void *dx,
                                      const void *dy) {
    return ref_accumulate(state, in, mode, dx, dy);
}

/* In NCHW a value's sample is contiguous, so concat along dimension 1 of 2-D or 4-D
 * values joins rows of C_i*H*W elements. */
static void concat_widths(int count, const nc__value_desc *xv, int64_t *widths) {
    for (int i = 0; i < count; i++) widths[i] = nc__shape_numel(&xv[i].shape) / xv[i].shape.d[0];
}

static nc_status ref_concat_forward(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                    void *y, const void *const *xs) {
    int64_t widths[NC__MAX_CONCAT];
    concat_widths(count, xv, widths);
    nc__ref_concat_forward(yv->dtype, yv->shape.d[0], count, widths, y, xs);
    return NC_OK;
}

static nc_status ref_concat_backward(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                     const nc__write *modes, void *const *dxs, const void *dy) {
    int64_t widths[NC__MAX_CONCAT];
    concat_widths(count, xv, widths);
    nc__ref_concat_backward(yv->dtype, yv->shape.d[0], count, widths, modes, dxs, dy);
    return NC_OK;
}

/* ---- the training step's reductions and updates (loss.c, optim.c) */

static nc_status ref_loss(void *state, const nc__loss_desc *d, void *dlogits, void *record, const void *logits,
                          const void *labels) {
    scratch sc = {.s = state};
    const size_t n = (size_t)d->n * (size_t)d->heads * (size_t)d->classes;
    const float *zf = scr_in(&sc, d->dtype, logits, n);
    float *df = scr_out(&sc, d->dtype, dlogits, n);
    if (!sc.oom) {
        nc__ref_loss(d, df, record, zf, labels);
        store(d->dtype, dlogits, df, n);
    }
    return scr_done(&sc);
}

static nc_status ref_grad_norm(void *state, const nc__param_entry *table, int count, void *record,
                               const void *grads) {
    nc__ref_grad_norm(NT(state), table, count, record, grads);
    return NC_OK;
}

static nc_status ref_clip_grads(void *state, const nc__param_entry *table, int count, float max_norm, void *grads,
                                const void *record) {
    nc__ref_clip_grads(NT(state), table, count, max_norm, grads, record);
    return NC_OK;
}

static nc_status ref_update(void *state, const nc__optim_desc *d, const nc__param_entry *table, int count,
                            void *params, void *s1, void *s2, const void *grads, const void *record) {
    nc__ref_update(NT(state), d, table, count, params, s1, s2, grads, record);
    return NC_OK;
}

static nc_status ref_axpby(void *state, size_t count, void *y, float a, const void *x, float b) {
    nc__ref_axpby(NT(state), count, y, a, x, b);
    return NC_OK;
}

static const nc__backend ref_backend = {
    .name = "ref",
    .kind = NC_BACKEND_REF,
    .init = ref_init,
    .destroy = ref_destroy,
    .supports = ref_supports,
    .alloc = ref_alloc,
    .free = ref_free,
    .write = ref_copy_bytes,
    .read = ref_copy_bytes,
    .upload = ref_upload,
    .download = ref_download,
    .fill = ref_fill,
    .release_cache = NULL, /* ref prepares nothing per node */
    .value_bytes = ref_value_bytes,
    .value_upload = ref_value_upload,
    .value_download = ref_value_download,
    .accumulate = ref_accumulate,
    .conv2d_forward = ref_conv2d_forward,
    .conv2d_backward = ref_conv2d_backward,
    .batchnorm_forward_train = ref_bn_forward_train,
    .batchnorm_forward_infer = ref_bn_forward_infer,
    .batchnorm_backward = ref_bn_backward,
    .batchnorm_sync_sums = ref_bn_sync_sums,
    .batchnorm_sync_forward = ref_bn_sync_forward,
    .batchnorm_sync_backward_sums = ref_bn_sync_backward_sums,
    .batchnorm_sync_backward = ref_bn_sync_backward,
    .relu_forward = ref_relu_forward,
    .relu_backward = ref_relu_backward,
    .add_forward = ref_add_forward,
    .dropout_forward = ref_dropout_forward,
    .dropout_backward = ref_dropout_backward,
    .pool2d_forward = ref_pool2d_forward,
    .pool2d_backward = ref_pool2d_backward,
    .flatten_forward = ref_flatten_forward,
    .flatten_backward = ref_flatten_backward,
    .concat_forward = ref_concat_forward,
    .concat_backward = ref_concat_backward,
    .linear_forward = ref_linear_forward,
    .linear_backward = ref_linear_backward,
    .loss = ref_loss,
    .grad_norm = ref_grad_norm,
    .clip_grads = ref_clip_grads,
    .update = ref_update,
    .axpby = ref_axpby,
};

const nc__backend *nc__backend_ref(void) { return &ref_backend; }
