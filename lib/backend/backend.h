/* backend.h — the private backend interface (ggml's backend-impl on a small op set).
 * A backend owns its memory (host RAM, GPU memory) and the physical layout of the
 * activations in it; the shared graph and training code only passes opaque buffer
 * pointers, logical shapes and dtypes, and crosses to the host solely through the
 * transfer entries. Every op has a forward and a backward entry; the shared executor
 * (graph/exec.c) schedules them and the planner (graph/plan.c) asks `supports` what
 * the backend can run. The reference backend (backend/ref) implements every entry
 * for every dtype and is the oracle the others are compared with
 * (tests/test_backend_ops.c).
 *
 * ---- The rules, stated once (code elsewhere refers here instead of restating them)
 *
 * Arguments: backend state, descriptor, outputs, then inputs. Checks (shapes, NULLs)
 * are done by the executor, not in the backends. Optional gradient outputs may be
 * NULL (dx of the first convolution). Outputs never alias inputs. Every byte of a
 * value's value_bytes is an element or layout padding, and every entry that writes a
 * value (forward outputs, value_upload, SET gradients) leaves its padding 0. `cache` in a descriptor points at a per-node
 * slot (initially NULL) where a backend may keep prepared primitives for that node
 * and shape; the executor calls release_cache on it when the plan is destroyed.
 *
 * CONCURRENCY. Several threads run plans of one model, or of one context's models,
 * at once (docs/api.md, Thread safety). Each plan is used by one thread at a time and
 * runs on its own worker state (worker_create; the context's state for a backend
 * without one), so what an entry changes (cache slots, scratch, streams) belongs to
 * that caller. The context's state is shared by every thread: the entries called on
 * it outside a plan (memory, transfers, supports, value_bytes, the optimizer) change
 * nothing in it. Parameters are only read during inference.
 *
 * DTYPE POLICY. Parameters, their gradients and optimizer state are f32 "masters",
 * plain row-major, in backend memory (fill/axpby/optimizer entries work on them as
 * f32 element counts). Activation values and activation gradients have the dtype in
 * their descriptor (`nc__value_desc.dtype`, `dtype` fields): the plan gives every
 * value NC__DTYPE_F32 under the fp32 and bf16-math precision policies (bf16-math is
 * oneDNN's math mode on f32 storage), and NC__DTYPE_BF16 under the bf16
 * policy (PyTorch autocast's rules: convolutions and linear layers take bf16 inputs
 * and bf16 weight copies and produce bf16; batch norm reads and writes bf16 values
 * with f32 statistics, saved mean/invstd and f32 gamma/beta; ReLU, add, pooling,
 * dropout, flatten and concat keep the dtype; the loss reads the bf16 logits and
 * computes softmax/log-sum-exp and the loss in f32 (in double on ref), writing a bf16
 * dlogits; parameter gradients are accumulated in f32). Arithmetic is at least f32
 * everywhere; bf16 is a storage format, rounded to nearest even. A backend may keep
 * converted (bf16, reordered, folded) weight copies, refreshed when the descriptor's
 * `wversion` changes: every weight-using descriptor carries it.
 *
 * GRADIENT WRITE RULE. Parameter gradients (dw, db, dgamma, dbeta) are always
 * accumulated (+=): several micro-batches accumulate into one gradient arena. An
 * activation gradient (dx, the gradients of an ADD's inputs, of a concat's inputs) is
 * written with the mode `nc__write` the descriptor or argument gives: NC__WRITE_SET
 * when this call is the first writer of that gradient (the planner knows; the buffer
 * holds garbage, even NaN, and must not be read; a blocked layout's padding must end
 * up 0), NC__WRITE_ADD when an earlier backward already
 * wrote part of it (fan-out: residual connections). The planner never zeroes a
 * gradient another call will overwrite whole.
 *
 * TRANSFER BUDGET OF A TRAINING STEP. Host<->backend copies happen only through
 * value_upload, value_download, upload, download, write and read. One
 * nc_trainer_step makes exactly three: 1 value_upload (the input batch), 1 write
 * (the labels) and 1 read (the nc__step_record: loss, hits, gradient norm, finite
 * flag). The loss and its gradient, the global gradient norm with the non-finite
 * check, clipping and the optimizer run in the backend over whole parameter tables;
 * the update of a step whose loss or gradients are not finite is skipped by the
 * backend reading the record, so no decision needs a readback before the end of the
 * step. Descriptors and parameter tables are host memory passed with the call, like
 * kernel arguments (a device backend copies them with its launch, without waiting).
 * tests/test_transfers.c counts this with an instrumented backend. A data-parallel
 * step (dist/) adds the communicator's staging: its transfers move the gradient
 * buckets, the record and, with SYNC BATCH NORM, the per-channel sums.
 *
 * RANDOM MASKS are pure functions of (seed, logical index): dropout keeps element
 * (n, c, h, w) of an (N, C, H, W) value — index i = ((n*C + c)*H + h)*W + w; for
 * (N, F) values i = n*F + f, i.e. the row-major NCHW index — iff nc__rng_uniform(seed, 0, i) >= p, whatever the
 * storage order, so every backend and layout drops the same elements.
 */
#ifndef NC_BACKEND_BACKEND_H
#define NC_BACKEND_BACKEND_H

#include "neurc.h"
#include "core/shape.h"

#include <stdint.h>
#include <stddef.h>

/* Storage type of activation values (see DTYPE POLICY). */
typedef enum nc__dtype { NC__DTYPE_F32 = 0, NC__DTYPE_BF16 = 1, NC__DTYPE_COUNT } nc__dtype;

/* Bytes per element of a dtype; its name ("f32", "bf16"). */
static inline size_t nc__dtype_size(nc__dtype t) { return t == NC__DTYPE_BF16 ? 2 : 4; }
static inline const char *nc__dtype_name(nc__dtype t) { return t == NC__DTYPE_BF16 ? "bf16" : "f32"; }

/* The most inputs of one concat (graph node and backend entry). */
#define NC__MAX_CONCAT 256

/* How a backward call writes an activation gradient (see GRADIENT WRITE RULE). */
typedef enum nc__write {
    NC__WRITE_ADD = 0,       /* dx += ... (an earlier call wrote part of dx) */
    NC__WRITE_SET = 1,       /* dx = ...  (first writer; dx holds garbage) */
} nc__write;

/* An activation value: its logical shape and storage dtype. */
typedef struct nc__value_desc {
    nc__shape shape;         /* (N, C, H, W) or (N, F) */
    nc__dtype dtype;
} nc__value_desc;

typedef struct nc__conv_desc {
    int64_t n, c, h, w;      /* input (N, C, H, W) */
    int64_t k, r, s;         /* output channels, kernel height, kernel width */
    int64_t groups;          /* G: C and K divisible by G */
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int64_t oh, ow;          /* output spatial size */
    nc__dtype dtype;         /* of x, y, dy, dx */
    nc__write dx_write;      /* backward: how dx is written */
    uint64_t wversion;       /* changes whenever the parameters may have changed */
    void **cache;
} nc__conv_desc;

typedef struct nc__bn_desc {
    int64_t n, c, hw;        /* (N, C, HW); BatchNorm1d has hw = 1 */
    float eps, momentum;     /* PyTorch semantics */
    int rank;                /* 4: BatchNorm2d on an activation value; 2: BatchNorm1d */
    nc__dtype dtype;         /* of x, y, dy, dx; statistics are f32 */
    nc__write dx_write;
    uint64_t wversion;
    void **cache;
} nc__bn_desc;

typedef enum nc__pool_mode { NC__POOL_MAX = 0, NC__POOL_AVG = 1, NC__POOL_ADAPTIVE_AVG = 2 } nc__pool_mode;

typedef struct nc__pool_desc {
    nc__pool_mode mode;
    int64_t n, c, h, w, oh, ow;
    int64_t kh, kw, stride_h, stride_w, pad_h, pad_w; /* unused for adaptive */
    nc__dtype dtype;
    nc__write dx_write;
    void **cache;
} nc__pool_desc;

typedef struct nc__linear_desc {
    int64_t n, in, out;      /* y(N, out) = x(N, in) W(out, in)^T + b(out) */
    nc__dtype dtype;         /* of x, y, dy, dx */
    nc__write dx_write;
    uint64_t wversion;
    void **cache;
} nc__linear_desc;

/* Batch normalisation with running statistics, for fusion into a convolution. */
typedef struct nc__bn_params {
    const void *gamma, *beta, *mean, *var; /* (K) each, f32 */
    float eps;
} nc__bn_params;

/* ---- losses (one call computes the loss, the hits and dlogits) */
typedef struct nc__loss_desc {
    nc_loss_kind kind;
    int64_t n;
    int heads, classes;      /* logits (N, heads*classes), head-major */
    nc__dtype dtype;         /* of logits and dlogits */
    float label_smoothing;   /* CE */
    int32_t ignore_label;    /* CE */
    const void *class_weights; /* CE: backend f32 [heads*classes] or NULL */
    const void *head_weights;  /* backend f32 [heads] or NULL */
    const void *pos_weight;    /* BCE: backend f32 [heads*classes] or NULL */
    float grad_scale;        /* dlogits are multiplied by it (1/accumulation steps) */
} nc__loss_desc;

/* The step's record in backend memory, read back once per step (TRANSFER BUDGET).
 * The loss entry writes loss, correct and counted; grad_norm writes sumsq, bad and
 * finite (= loss and every gradient finite); clip_grads and update read it. */
typedef struct nc__step_record {
    double loss;             /* PyTorch's loss value (losses.h semantics), double */
    double sumsq;            /* squared global L2 norm of the table's gradients */
    int32_t correct;         /* CE top-1 hits (counted samples x heads); BCE hits */
    int32_t counted;         /* CE samples x heads not ignored; BCE outputs */
    int32_t bad;             /* first table entry with a non-finite gradient, or -1 */
    int32_t finite;          /* 1: loss and gradients finite, the update may run */
} nc__step_record;

/* ---- optimizers: one call updates a whole table of parameter tensors */
typedef enum nc__optim_kind { NC__OPTIM_SGD = 0, NC__OPTIM_ADAM = 1, NC__OPTIM_ADAMW = 2 } nc__optim_kind;

typedef struct nc__optim_desc {
    nc__optim_kind kind;
    float momentum, dampening; /* SGD; momentum 0: no buffer */
    int nesterov;
    float beta1, beta2, eps;   /* Adam, AdamW */
} nc__optim_desc;

/* One parameter tensor of an update: where it is and its hyper-parameters. */
typedef struct nc__param_entry {
    size_t offset;           /* bytes into the parameter, gradient and state arenas */
    size_t count;            /* f32 elements */
    float lr, weight_decay;
    int64_t step;            /* this update's number for the tensor, from 1 (Adam's bias
                                correction; SGD: 1 sets the momentum buffer to the
                                gradient, as torch's first step) */
} nc__param_entry;

/* ---- capability queries (ggml's supports_op) */
typedef enum nc__kernel {
    NC__K_CONV2D = 0, NC__K_BATCHNORM, NC__K_RELU, NC__K_ADD, NC__K_POOL2D, NC__K_LINEAR,
    NC__K_DROPOUT, NC__K_FLATTEN, NC__K_CONCAT, NC__K_LOSS,
    NC__K_CONV_FUSED_INFER,  /* conv [+bn] [+residual] [+relu], inference */
    NC__K_BN_RELU_TRAIN,     /* batch norm + relu, training forward and backward */
    NC__K_BN_SYNC,           /* the batchnorm_sync_* entries (SYNC BATCH NORM) */
    NC__K_COUNT
} nc__kernel;

/* Shared code calls an entry only for what `supports` accepted: the value entries
 * (value_bytes, value_upload, ...) only for dtypes of accepted ops. The answer must
 * depend only on the kernel, dtype, training and the descriptors' sizes and
 * attributes, never on dx_write, wversion or cache (the planner passes any), nor on
 * the context's precision (the op suite asks bf16 questions of any context). The fused kernels
 * are asked with their own mode: CONV_FUSED_INFER with training 0, BN_RELU_TRAIN
 * with training 1 (its backward reads what its training forward left in the node's
 * cache slot, so it runs only after that forward, as in a training step). */
typedef struct nc__op_query {
    nc__kernel kernel;
    nc__dtype dtype;
    int training;            /* 1: the backward entry is needed too */
    /* the descriptor of the op (the one matching `kernel`; others NULL) */
    const nc__conv_desc *conv;   /* CONV2D, CONV_FUSED_INFER */
    const nc__bn_desc *bn;       /* BATCHNORM, BN_RELU_TRAIN */
    const nc__pool_desc *pool;
    const nc__linear_desc *linear;
    const nc__value_desc *value; /* element-wise ops, flatten's input, concat's output,
                                    the loss's logits */
    const nc__loss_desc *loss;   /* LOSS */
    int fused_bn, fused_residual, fused_relu; /* CONV_FUSED_INFER's members */
} nc__op_query;

typedef struct nc__backend {
    const char *name;
    nc_backend_kind kind;

    /* Creates the backend state; num_threads >= 1. Errors go to ctx. */
    nc_status (*init)(nc_context *ctx, int num_threads, void **state);
    void (*destroy)(void *state);
    /* (optional) A state for one more caller running beside the others (CONCURRENCY):
     * it shares what init made and never changes (engine, layout, thread count) and
     * has its own mutable parts (stream, scratch). Takes every entry `state` takes;
     * destroyed before the state it came from. NULL: the state has no mutable part. */
    nc_status (*worker_create)(void *state, void **worker);
    void (*worker_destroy)(void *worker);                    /* NULL-safe */

    /* 1 when the backend runs the op (and, for training, its backward) for this
     * descriptor and dtype; 0 otherwise. The planner fuses only where this says yes
     * and fails naming the node where a single op is refused. */
    int (*supports)(void *state, const nc__op_query *q);
    /* (optional) Why this backend refuses every op on values of dtype dt on this
     * machine (a missing CPU feature, say), or NULL when it has no such reason. The
     * planner appends it to its message when it fails on a node of that dtype. */
    const char *(*dtype_refusal)(void *state, nc__dtype dt);

    /* ---- memory */
    nc_status (*alloc)(void *state, size_t bytes, void **out);
    void (*free)(void *state, void *ptr);                    /* NULL-safe */
    /* Raw copies between host memory and backend memory (labels, tables, records). */
    nc_status (*write)(void *state, void *dst, const void *src, size_t bytes);
    nc_status (*read)(void *state, void *dst, const void *src, size_t bytes);
    /* Parameters: host f32 <-> a plain f32 backend buffer of `shape`. */
    nc_status (*upload)(void *state, void *dst, const float *src, const nc__shape *shape);
    nc_status (*download)(void *state, float *dst, const void *src, const nc__shape *shape);
    /* dst[i] = value for `count` f32 elements (parameters, gradients, optimizer state). */
    nc_status (*fill)(void *state, void *dst, float value, size_t count);
    /* (optional) Frees what a backend stored in a descriptor's cache slot. */
    void (*release_cache)(void *state, void *cache);

    /* ---- activation values in the backend's layout and dtype */
    /* Bytes a value occupies (>= numel * dtype size when a blocked layout pads). The
     * value entries are called only for dtypes `supports` accepts for some op. */
    size_t (*value_bytes)(void *state, const nc__value_desc *v);
    /* Host NCHW f32 <-> the value (rounding to the dtype on upload). */
    nc_status (*value_upload)(void *state, const nc__value_desc *v, void *dst, const float *src);
    nc_status (*value_download)(void *state, const nc__value_desc *v, float *dst, const void *src);
    /* dst (=|+=) src, as `mode` says: an ADD's input gradients. */
    nc_status (*accumulate)(void *state, const nc__value_desc *v, nc__write mode, void *dst, const void *src);

    /* ---- convolution; w (K, C/G, R, S), b (K) may be NULL */
    nc_status (*conv2d_forward)(void *state, const nc__conv_desc *d, void *y, const void *x,
                                const void *w, const void *b);
    nc_status (*conv2d_backward)(void *state, const nc__conv_desc *d, void *dx, void *dw, void *db,
                                 const void *dy, const void *x, const void *w);

    /* ---- batch normalisation. Train mode normalises with batch statistics, saves
     * mean and 1/sqrt(var+eps) (C each, f32) for backward, and updates the running
     * stats: running = (1-m)*running + m*batch, the variance unbiased (n/(n-1)). */
    nc_status (*batchnorm_forward_train)(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                         void *save_invstd, void *running_mean, void *running_var,
                                         const void *x, const void *gamma, const void *beta);
    nc_status (*batchnorm_forward_infer)(void *state, const nc__bn_desc *d, void *y, const void *x,
                                         const void *gamma, const void *beta,
                                         const void *running_mean, const void *running_var);
    nc_status (*batchnorm_backward)(void *state, const nc__bn_desc *d, void *dx, void *dgamma,
                                    void *dbeta, const void *dy, const void *x, const void *gamma,
                                    const void *save_mean, const void *save_invstd);

    /* ---- SYNC BATCH NORM (optional, NC__K_BN_SYNC; torch.nn.SyncBatchNorm): training
     * batch norm whose statistics cover every rank's batch. The executor (graph/exec.c)
     * calls these in order and all-reduces the per-channel sums between them; sums and
     * statistics are f64, C or 2C or 4C of them, in backend memory. `relu` / a non-NULL
     * `y` (the ReLU's output) make them the fused batch norm + ReLU of BN_RELU_TRAIN:
     * forward applies the ReLU, backward masks dy by y > 0.
     * sums[c] = sum over (N, HW) of x, or of (x - mean[c])^2 when mean is given. */
    nc_status (*batchnorm_sync_sums)(void *state, const nc__bn_desc *d, double *sums, const void *x,
                                     const double *mean);
    /* batchnorm_forward_train with the statistics given: stats = mean (C), biased
     * variance (C); count = values per channel over all ranks (the running variance's
     * n/(n-1)). */
    nc_status (*batchnorm_sync_forward)(void *state, const nc__bn_desc *d, int relu, void *y, void *save_mean,
                                        void *save_invstd, void *running_mean, void *running_var, const void *x,
                                        const void *gamma, const void *beta, const double *stats, double count);
    /* sums = sum of dy (C), sum of dy * xhat (C) over this rank's batch. */
    nc_status (*batchnorm_sync_backward_sums)(void *state, const nc__bn_desc *d, double *sums, const void *dy,
                                              const void *y, const void *x, const void *save_mean,
                                              const void *save_invstd);
    /* dgamma += sums[C..2C), dbeta += sums[0..C) (this rank's); dx (d->dx_write) from
     * every rank's sums[2C..4C) and count, as batchnorm_backward from global means. */
    nc_status (*batchnorm_sync_backward)(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                         const void *dy, const void *y, const void *x, const void *gamma,
                                         const void *save_mean, const void *save_invstd, const double *sums,
                                         double count);

    /* ---- element-wise on values of one descriptor */
    nc_status (*relu_forward)(void *state, const nc__value_desc *v, void *y, const void *x);
    nc_status (*relu_backward)(void *state, const nc__value_desc *v, nc__write mode, void *dx, const void *dy,
                               const void *y);
    nc_status (*add_forward)(void *state, const nc__value_desc *v, void *y, const void *a, const void *b);
    /* Inverted dropout: keep with probability 1-p and scale by 1/(1-p); the mask is
     * the RANDOM MASKS rule, so backward regenerates it. */
    nc_status (*dropout_forward)(void *state, const nc__value_desc *v, float p, uint64_t seed, void *y,
                                 const void *x);
    nc_status (*dropout_backward)(void *state, const nc__value_desc *v, nc__write mode, float p, uint64_t seed,
                                  void *dx, const void *dy);

    /* ---- pooling. Max pooling's gradient goes to the first maximum in window order
     * (row by row), as PyTorch's; x and y are passed to backward for max pooling only
     * (NULL for the average pools). */
    nc_status (*pool2d_forward)(void *state, const nc__pool_desc *d, void *y, const void *x);
    nc_status (*pool2d_backward)(void *state, const nc__pool_desc *d, void *dx, const void *dy,
                                 const void *x, const void *y);

    /* ---- reshaping: in (N,C,H,W) -> (N, C*H*W) in logical order (same dtype); and
     * concat along dimension 1: y = [x_0 | x_1 | ...] (torch.cat(xs, 1)), each x_i
     * (N, F_i) or (N, C_i, H, W), y (N, sum) or (N, sum C_i, H, W), one dtype; each
     * value in the backend's layout for its own shape (a blocked layout's inputs may
     * be blocked or plain, their channel offsets need not be block multiples). */
    nc_status (*flatten_forward)(void *state, const nc__value_desc *in, void *y, const void *x);
    nc_status (*flatten_backward)(void *state, const nc__value_desc *in, nc__write mode, void *dx,
                                  const void *dy);
    nc_status (*concat_forward)(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                void *y, const void *const *xs);
    /* dxs[i] NULL: no gradient wanted; modes[i] for each. The same dx may appear
     * twice (concat(f, f): modes SET then ADD), so inputs are handled in index order. */
    nc_status (*concat_backward)(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                 const nc__write *modes, void *const *dxs, const void *dy);

    /* ---- fused entries (optional; used only where `supports` says yes, never on ref,
     * the oracle, which runs the ops one by one).
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

    /* ---- training step: loss, global norm, clipping, update (TRANSFER BUDGET) */
    /* The configured loss (PyTorch's semantics; train/loss.h states them) of logits
     * (N, heads*classes), a 2-D value in the backend's value layout, against labels (backend int32: CE (N, heads) class indices,
     * BCE (N, heads, classes) 0/1, already checked): writes dlogits (NC__WRITE_SET,
     * times grad_scale; may be NULL) and the record's loss, correct, counted. */
    nc_status (*loss)(void *state, const nc__loss_desc *d, void *dlogits, void *record, const void *logits,
                      const void *labels);
    /* Sum of squares of the table's gradients (in double, NaN/inf propagate) into
     * record->sumsq; record->bad, and record->finite = finite(loss) && finite(sumsq). */
    nc_status (*grad_norm)(void *state, const nc__param_entry *table, int count, void *record, const void *grads);
    /* When record->finite and max_norm / (sqrt(sumsq) + 1e-6) < 1 (torch's
     * clip_grad_norm_), scales the table's gradients by that factor. */
    nc_status (*clip_grads)(void *state, const nc__param_entry *table, int count, float max_norm, void *grads,
                            const void *record);
    /* torch.optim.SGD / Adam / AdamW on every table entry (params, grads, s1: SGD
     * momentum (may be NULL when momentum is 0) or Adam's first moment, s2: Adam's
     * second moment or NULL, all with the table's offsets, which are multiples of 4). Does nothing when record is not NULL and !record->finite. */
    nc_status (*update)(void *state, const nc__optim_desc *d, const nc__param_entry *table, int count,
                        void *params, void *s1, void *s2, const void *grads, const void *record);
    /* y[i] = a * y[i] + b * x[i] on `count` f32 elements (weight averages). a = 0
     * must not read y (y may hold NaN garbage). */
    nc_status (*axpby)(void *state, size_t count, void *y, float a, const void *x, float b);
} nc__backend;

/* The built-in backends; NULL when not compiled in. */
const nc__backend *nc__backend_ref(void);
const nc__backend *nc__backend_onednn(void);
const nc__backend *nc__backend_cuda(void);

#endif
