/* ref.c — the reference backend's nc__backend table: host memory from the context's
 * allocator holding plain NCHW f32, and thin wrappers that hand each op to its kernel
 * (gemm.c, conv.c, batchnorm.c, pool.c, elementwise.c) with the state's thread count. */
#include "backend/ref/ref.h"

#include "core/context.h"

#include <string.h>

#define NT(state) (((const nc__ref_state *)(state))->nt)

/* ---- state and memory */

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

static nc_status ref_upload(void *state, void *dst, const float *src, const nc__shape *shape) {
    // dst, src (numel(shape)): the ref layout is host NCHW f32
    const size_t n = (size_t)nc__shape_numel(shape);
    if (n && dst != src) memcpy(dst, src, n * sizeof(float));
    return NC_OK;
}

static nc_status ref_download(void *state, float *dst, const void *src, const nc__shape *shape) {
    const size_t n = (size_t)nc__shape_numel(shape);
    if (n && dst != src) memcpy(dst, src, n * sizeof(float));
    return NC_OK;
}

static void fill_kernel(int nt, size_t count, float *dst, float value) {
    // dst (count)
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) dst[i] = value;
}

/* A backward entry whose descriptor says `overwrite` starts from a zeroed dx: the
 * ref kernels always accumulate. */
static void zero_if_overwrite(void *state, int overwrite, void *dx, size_t count) {
    if (overwrite && dx) fill_kernel(NT(state), count, dx, 0.0f);
}

static nc_status ref_fill(void *state, void *dst, float value, size_t count) {
    fill_kernel(NT(state), count, dst, value);
    return NC_OK;
}

static nc_status ref_accumulate(void *state, void *dst, const void *src, size_t count) {
    nc__ref_accumulate(NT(state), count, dst, src);
    return NC_OK;
}

/* ---- convolution and linear (conv.c) */

static nc_status ref_conv2d_forward(void *state, const nc__conv_desc *d, void *y, const void *x,
                                    const void *w, const void *b) {
    nc__ref_conv2d_forward(NT(state), d, y, x, w, b);
    return NC_OK;
}

static nc_status ref_conv2d_backward(void *state, const nc__conv_desc *d, void *dx, void *dw, void *db,
                                     const void *dy, const void *x, const void *w) {
    zero_if_overwrite(state, d->overwrite, dx, (size_t)(d->n * d->c * d->h * d->w));
    nc__ref_conv2d_backward(NT(state), d, dx, dw, db, dy, x, w);
    return NC_OK;
}

static nc_status ref_linear_forward(void *state, const nc__linear_desc *d, void *y, const void *x,
                                    const void *w, const void *b) {
    nc__ref_linear_forward(NT(state), d, y, x, w, b);
    return NC_OK;
}

static nc_status ref_linear_backward(void *state, const nc__linear_desc *d, void *dx, void *dw,
                                     void *db, const void *dy, const void *x, const void *w) {
    zero_if_overwrite(state, d->overwrite, dx, (size_t)(d->n * d->in));
    nc__ref_linear_backward(NT(state), d, dx, dw, db, dy, x, w);
    return NC_OK;
}

/* ---- batch normalisation (batchnorm.c) */

static nc_status ref_bn_forward_train(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                      void *save_invstd, void *running_mean, void *running_var,
                                      const void *x, const void *gamma, const void *beta) {
    nc__ref_batchnorm_forward_train(NT(state), d, y, save_mean, save_invstd, running_mean, running_var,
                                    x, gamma, beta);
    return NC_OK;
}

static nc_status ref_bn_forward_infer(void *state, const nc__bn_desc *d, void *y, const void *x,
                                      const void *gamma, const void *beta, const void *running_mean,
                                      const void *running_var) {
    nc__ref_batchnorm_forward_infer(NT(state), d, y, x, gamma, beta, running_mean, running_var);
    return NC_OK;
}

static nc_status ref_bn_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma,
                                 void *dbeta, const void *dy, const void *x, const void *gamma,
                                 const void *save_mean, const void *save_invstd) {
    zero_if_overwrite(state, d->overwrite, dx, (size_t)(d->n * d->c * d->hw));
    nc__ref_batchnorm_backward(NT(state), d, dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd);
    return NC_OK;
}

/* ---- element-wise (elementwise.c) */

static nc_status ref_relu_forward(void *state, size_t count, void *y, const void *x) {
    nc__ref_relu_forward(NT(state), count, y, x);
    return NC_OK;
}

static nc_status ref_relu_backward(void *state, size_t count, void *dx, const void *dy, const void *y) {
    nc__ref_relu_backward(NT(state), count, dx, dy, y);
    return NC_OK;
}

static nc_status ref_add_forward(void *state, size_t count, void *y, const void *a, const void *b) {
    nc__ref_add_forward(NT(state), count, y, a, b);
    return NC_OK;
}

static nc_status ref_dropout_forward(void *state, size_t count, float p, uint64_t seed, void *y,
                                     const void *x) {
    nc__ref_dropout_forward(NT(state), count, p, seed, y, x);
    return NC_OK;
}

static nc_status ref_dropout_backward(void *state, size_t count, float p, uint64_t seed, void *dx,
                                      const void *dy) {
    nc__ref_dropout_backward(NT(state), count, p, seed, dx, dy);
    return NC_OK;
}

/* ---- pooling (pool.c) */

static nc_status ref_pool2d_forward(void *state, const nc__pool_desc *d, void *y, const void *x) {
    nc__ref_pool2d_forward(NT(state), d, y, x);
    return NC_OK;
}

static nc_status ref_pool2d_backward(void *state, const nc__pool_desc *d, void *dx, const void *dy,
                                     const void *x, const void *y) {
    zero_if_overwrite(state, d->overwrite, dx, (size_t)(d->n * d->c * d->h * d->w));
    nc__ref_pool2d_backward(NT(state), d, dx, dy, x, y);
    return NC_OK;
}

/* ---- reshaping: NCHW is already the logical order, so flatten is the identity */

static nc_status ref_flatten_forward(void *state, const nc__shape *in, void *y, const void *x) {
    const size_t n = (size_t)nc__shape_numel(in);
    if (n && y != x) memcpy(y, x, n * sizeof(float));
    return NC_OK;
}

static nc_status ref_flatten_backward(void *state, const nc__shape *in, void *dx, const void *dy) {
    nc__ref_accumulate(NT(state), (size_t)nc__shape_numel(in), dx, dy);
    return NC_OK;
}

static nc_status ref_concat_forward(void *state, int64_t n, int count, const int64_t *widths, void *y,
                                    const void *const *xs) {
    nc__ref_concat_forward(n, count, widths, y, (const float *const *)xs);
    return NC_OK;
}

static nc_status ref_concat_backward(void *state, int64_t n, int count, const int64_t *widths,
                                     void *const *dxs, const void *dy) {
    nc__ref_concat_backward(n, count, widths, (float *const *)dxs, dy);
    return NC_OK;
}

/* ---- optimizer and reductions */

static nc_status ref_sgd_update(void *state, const nc__sgd_desc *d, size_t count, void *param, void *buf,
                                const void *grad) {
    nc__ref_sgd_update(NT(state), d, count, param, buf, grad);
    return NC_OK;
}

static nc_status ref_adam_update(void *state, const nc__adam_desc *d, size_t count, void *param, void *m, void *v,
                                 const void *grad) {
    nc__ref_adam_update(NT(state), d, count, param, m, v, grad);
    return NC_OK;
}

static nc_status ref_scale(void *state, size_t count, void *x, float alpha) {
    nc__ref_scale(NT(state), count, x, alpha);
    return NC_OK;
}

static nc_status ref_axpby(void *state, size_t count, void *y, float a, const void *x, float b) {
    nc__ref_axpby(NT(state), count, y, a, x, b);
    return NC_OK;
}

static nc_status ref_sum_squares(void *state, size_t count, const void *x, double *out) {
    *out = nc__ref_sum_squares(NT(state), count, x);
    return NC_OK;
}

static const nc__backend ref_backend = {
    .name = "ref",
    .kind = NC_BACKEND_REF,
    .init = ref_init,
    .destroy = ref_destroy,
    .alloc = ref_alloc,
    .free = ref_free,
    .upload = ref_upload,
    .download = ref_download,
    .fill = ref_fill,
    .accumulate = ref_accumulate,
    .release_cache = NULL, /* ref prepares nothing per node */
    .conv2d_forward = ref_conv2d_forward,
    .conv2d_backward = ref_conv2d_backward,
    .batchnorm_forward_train = ref_bn_forward_train,
    .batchnorm_forward_infer = ref_bn_forward_infer,
    .batchnorm_backward = ref_bn_backward,
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
    .sgd_update = ref_sgd_update,
    .adam_update = ref_adam_update,
    .sum_squares = ref_sum_squares,
    .scale = ref_scale,
    .axpby = ref_axpby,
};

const nc__backend *nc__backend_ref(void) { return &ref_backend; }
