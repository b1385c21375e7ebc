/* backend.h — the private backend interface. A backend owns its memory (host RAM,
 * GPU memory) and the physical layout of tensors in it; the shared graph code only
 * passes opaque buffer pointers and logical shapes, and converts to host NCHW f32
 * solely through upload/download. Every op has a forward and a backward entry;
 * the shared executor (graph/exec.c) schedules them. The reference backend
 * (backend/ref) implements everything and is the oracle for the others.
 *
 * Conventions for all entries:
 *  - Arguments: backend state, descriptor, outputs, then inputs.
 *  - Backward entries ACCUMULATE into every gradient they write (dx += ...,
 *    dw += ...): the executor zeroes gradient buffers before their first use, so
 *    fan-out (residual connections) needs no special case. Exception: a descriptor's
 *    `overwrite` flag says dx is written here first (the executor did not zero it),
 *    so the backend writes dx instead of adding to it.
 *  - Layouts: parameters, their gradients and optimizer state are plain row-major
 *    f32 (the host layout). Activation values and their gradients are in the
 *    backend's own layout, which may pad (value_floats); element-wise entries
 *    (fill, accumulate, relu, add, dropout) work on value_floats() elements of it,
 *    and upload/download of activations go through value_upload/value_download.
 *  - Optional gradient outputs may be NULL (e.g. dx of the first convolution).
 *  - `cache` in a descriptor points at a per-node slot (initially NULL) where a
 *    backend may keep prepared primitives for that node and shape; the executor
 *    calls release_cache on it when the plan is destroyed.
 *  - Checks (shapes, NULLs) are done by the executor, not in the backends.
 */
#ifndef NC_BACKEND_BACKEND_H
#define NC_BACKEND_BACKEND_H

#include "neurc.h"
#include "core/shape.h"

#include <stdint.h>
#include <stddef.h>

typedef struct nc__conv_desc {
    int64_t n, c, h, w;      /* input (N, C, H, W) */
    int64_t k, r, s;         /* output channels, kernel height, kernel width */
    int64_t groups;          /* G: C and K divisible by G */
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int64_t oh, ow;          /* output spatial size */
    void **cache;
    int overwrite;           /* backward: dx holds nothing yet, write it instead of
                                accumulating (dw, db always accumulate) */
    uint64_t wversion;       /* changes whenever the model's parameters may have
                                changed: lets a backend cache prepared (reordered,
                                folded) weights between inference calls */
} nc__conv_desc;

typedef struct nc__bn_desc {
    int64_t n, c, hw;        /* (N, C, HW); BatchNorm1d has hw = 1 */
    float eps, momentum;     /* PyTorch semantics */
    void **cache;
    int rank;                /* 4: BatchNorm2d on an activation value; 2: BatchNorm1d */
    int overwrite;           /* backward: dx holds nothing yet (see nc__conv_desc) */
} nc__bn_desc;

typedef enum nc__pool_mode { NC__POOL_MAX = 0, NC__POOL_AVG = 1, NC__POOL_ADAPTIVE_AVG = 2 } nc__pool_mode;

typedef struct nc__pool_desc {
    nc__pool_mode mode;
    int64_t n, c, h, w, oh, ow;
    int64_t kh, kw, stride_h, stride_w, pad_h, pad_w; /* unused for adaptive */
    void **cache;
    int overwrite;           /* backward: dx holds nothing yet (see nc__conv_desc) */
} nc__pool_desc;

typedef struct nc__linear_desc {
    int64_t n, in, out;      /* y(N, out) = x(N, in) W(out, in)^T + b(out) */
    void **cache;
    int overwrite;           /* backward: dx holds nothing yet (see nc__conv_desc) */
} nc__linear_desc;

/* Batch normalisation with running statistics, for fusion into a convolution. */
typedef struct nc__bn_params {
    const void *gamma, *beta, *mean, *var; /* (K) each, plain */
    float eps;
} nc__bn_params;

typedef struct nc__sgd_desc {
    float lr, momentum, dampening, weight_decay;
    int nesterov;
    int first_step;          /* 1: momentum buffer := grad (torch's first step) */
} nc__sgd_desc;

typedef struct nc__adam_desc {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled;           /* 1 = AdamW (param *= 1 - lr*wd first); 0 = Adam (wd*param
                                added to the gradient) */
    int64_t step;            /* this update's step number, from 1 (bias correction) */
} nc__adam_desc;

typedef struct nc__backend {
    const char *name;
    nc_backend_kind kind;

    /* Creates the backend state; num_threads >= 1. Errors go to ctx. */
    nc_status (*init)(nc_context *ctx, int num_threads, void **state);
    void (*destroy)(void *state);

    /* ---- memory: `bytes` of backend memory holding `count` f32 logical values */
    nc_status (*alloc)(void *state, size_t bytes, void **out);
    void (*free)(void *state, void *ptr);                    /* NULL-safe */
    /* Host NCHW f32 <-> backend buffer holding a tensor of `shape`. */
    nc_status (*upload)(void *state, void *dst, const float *src, const nc__shape *shape);
    nc_status (*download)(void *state, float *dst, const void *src, const nc__shape *shape);
    /* dst[i] = value for the `count` logical elements. */
    nc_status (*fill)(void *state, void *dst, float value, size_t count);
    /* dst[i] += src[i]. */
    nc_status (*accumulate)(void *state, void *dst, const void *src, size_t count);
    /* (optional) Frees what a backend stored in a descriptor's cache slot. */
    void (*release_cache)(void *state, void *cache);
    /* (optional) Floats of backend memory an activation value of `shape` occupies in
     * the backend's layout (>= numel when a blocked layout pads channels); NULL:
     * numel, plain NCHW. Also the count element-wise entries get for activations. */
    size_t (*value_floats)(void *state, const nc__shape *shape);
    /* (optional) Host NCHW f32 <-> an activation value in the backend's layout;
     * NULL: upload/download (the layout is plain). */
    nc_status (*value_upload)(void *state, void *dst, const float *src, const nc__shape *shape);
    nc_status (*value_download)(void *state, float *dst, const void *src, const nc__shape *shape);

    /* ---- convolution; w (K, C/G, R, S), b (K) may be NULL */
    nc_status (*conv2d_forward)(void *state, const nc__conv_desc *d, void *y, const void *x,
                                const void *w, const void *b);
    nc_status (*conv2d_backward)(void *state, const nc__conv_desc *d, void *dx, void *dw, void *db,
                                 const void *dy, const void *x, const void *w);

    /* ---- batch normalisation. Train mode normalises with batch statistics, saves
     * mean and 1/sqrt(var+eps) (C each) for backward, and updates the running stats:
     * running = (1-m)*running + m*batch, the variance unbiased (n/(n-1)). */
    nc_status (*batchnorm_forward_train)(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                         void *save_invstd, void *running_mean, void *running_var,
                                         const void *x, const void *gamma, const void *beta);
    nc_status (*batchnorm_forward_infer)(void *state, const nc__bn_desc *d, void *y, const void *x,
                                         const void *gamma, const void *beta,
                                         const void *running_mean, const void *running_var);
    nc_status (*batchnorm_backward)(void *state, const nc__bn_desc *d, void *dx, void *dgamma,
                                    void *dbeta, const void *dy, const void *x, const void *gamma,
                                    const void *save_mean, const void *save_invstd);

    /* ---- element-wise */
    nc_status (*relu_forward)(void *state, size_t count, void *y, const void *x);
    nc_status (*relu_backward)(void *state, size_t count, void *dx, const void *dy, const void *y);
    nc_status (*add_forward)(void *state, size_t count, void *y, const void *a, const void *b);
    /* Inverted dropout: keep with probability 1-p and scale by 1/(1-p); the mask is a
     * pure function of (seed, element index), so backward regenerates it. */
    nc_status (*dropout_forward)(void *state, size_t count, float p, uint64_t seed, void *y,
                                 const void *x);
    nc_status (*dropout_backward)(void *state, size_t count, float p, uint64_t seed, void *dx,
                                  const void *dy);

    /* ---- pooling */
    nc_status (*pool2d_forward)(void *state, const nc__pool_desc *d, void *y, const void *x);
    nc_status (*pool2d_backward)(void *state, const nc__pool_desc *d, void *dx, const void *dy,
                                 const void *x, const void *y);

    /* ---- reshaping: (N,C,H,W) -> (N, C*H*W) in logical order; and feature concat */
    nc_status (*flatten_forward)(void *state, const nc__shape *in, void *y, const void *x);
    nc_status (*flatten_backward)(void *state, const nc__shape *in, void *dx, const void *dy);
    /* y (N, sum widths) = [x_0 | x_1 | ...], each x_i (N, widths[i]) */
    nc_status (*concat_forward)(void *state, int64_t n, int count, const int64_t *widths, void *y,
                                const void *const *xs);
    nc_status (*concat_backward)(void *state, int64_t n, int count, const int64_t *widths,
                                 void *const *dxs, const void *dy);

    /* ---- fused entries (optional; the executor fuses only where a backend has them,
     * so the ref backend, the oracle, always runs the ops one by one).
     * Inference: y = [relu]( bn(conv(x, w) + b) + residual ): bn with running
     * statistics (NULL: none), residual of y's shape (NULL: none). */
    nc_status (*conv2d_fused_infer)(void *state, const nc__conv_desc *d, const nc__bn_params *bn, void *y,
                                    const void *x, const void *w, const void *b, const void *residual, int relu);
    /* Training: y = relu(batchnorm_forward_train(x)), same bookkeeping. */
    nc_status (*batchnorm_relu_forward_train)(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                              void *save_invstd, void *running_mean, void *running_var,
                                              const void *x, const void *gamma, const void *beta);
    /* Its backward: dy is the gradient of the ReLU's output y; as batchnorm_backward. */
    nc_status (*batchnorm_relu_backward)(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                         const void *dy, const void *y, const void *x, const void *gamma,
                                         const void *save_mean, const void *save_invstd);

    /* ---- fully connected; w (out, in), b (out) may be NULL */
    nc_status (*linear_forward)(void *state, const nc__linear_desc *d, void *y, const void *x,
                                const void *w, const void *b);
    nc_status (*linear_backward)(void *state, const nc__linear_desc *d, void *dx, void *dw,
                                 void *db, const void *dy, const void *x, const void *w);

    /* ---- optimizer: torch.optim.SGD on `count` elements stored in the same layout
     * (param, grad, momentum buffer). buf may be NULL when momentum == 0. */
    nc_status (*sgd_update)(void *state, const nc__sgd_desc *d, size_t count, void *param,
                            void *buf, const void *grad);
    /* torch.optim.Adam / AdamW on `count` elements: m, v the first and second moment
     * buffers, same layout as param and grad. */
    nc_status (*adam_update)(void *state, const nc__adam_desc *d, size_t count, void *param, void *m, void *v,
                             const void *grad);
    /* Sum of squares of `count` values in double (NaN/inf propagate): gradient norms
     * for clipping and the numerical guard. */
    nc_status (*sum_squares)(void *state, size_t count, const void *x, double *out);
    /* x[i] *= alpha (gradient clipping). */
    nc_status (*scale)(void *state, size_t count, void *x, float alpha);
    /* y[i] = a * y[i] + b * x[i] (weight averages). a = 0 must not read y (y may hold
     * NaN garbage): with b = 1 it is the exact copy the executor uses for an ADD's
     * first-written input gradient, so it also runs on activation gradients
     * (value_floats elements). */
    nc_status (*axpby)(void *state, size_t count, void *y, float a, const void *x, float b);
} nc__backend;

/* The built-in backends; NULL when not compiled in. */
const nc__backend *nc__backend_ref(void);
const nc__backend *nc__backend_onednn(void);
const nc__backend *nc__backend_cuda(void);

#endif
