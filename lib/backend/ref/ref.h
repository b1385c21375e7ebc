/* ref.h — the reference backend's kernels: portable C11 + OpenMP on host NCHW f32.
 * Plain-pointer functions (outputs, then inputs, then sizes) so tests and the other
 * CPU backends can call them directly; ref.c wraps them in the nc__backend table,
 * converting bf16 values to f32 and back around them (backend.h, DTYPE POLICY) and
 * applying the write mode (a NC__WRITE_SET gradient is zeroed, then accumulated).
 * Backward kernels accumulate (+=) into every gradient they write. `nt` is the
 * thread count (>= 1). */
#ifndef NC_BACKEND_REF_REF_H
#define NC_BACKEND_REF_REF_H

#include "backend/backend.h"

#include <stddef.h>
#include <stdint.h>

/* The element-wise kernels' loops: `nt` threads, but only above NC__REF_PAR_MIN
 * elements of work (below it a parallel region costs more than it saves). */
#define NC__REF_PAR_MIN 32768
#ifdef _OPENMP
#define NC__REF_PRAGMA(x) _Pragma(#x)
#define PARALLEL_FOR_IF(work) \
    NC__REF_PRAGMA(omp parallel for num_threads(nt) schedule(static) if ((work) >= NC__REF_PAR_MIN))
#else
#define PARALLEL_FOR_IF(work)
#endif

/* Per-tensor optimizer steps (the table entries of backend.h's `update` run these). */
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

typedef struct nc__ref_state {
    nc_context *ctx;
    int nt;                 /* threads */
} nc__ref_state;

/* SCRATCH. The GEMM and convolution kernels take their short-lived packing buffers
 * from ctx's allocator hooks, on the calling thread only (a convolution sizes its
 * workers' GEMM scratch up front), and free them before returning. When an
 * allocation fails they do not fail: they run their scratch-free loops instead
 * (naive GEMM, direct convolution), same contract, slower, results equal within
 * rounding. */

/* ---- gemm.c: C(M,N) = alpha * op(A) op(B) + beta * C, row-major, leading dims.
 * Cache-blocked with a register-tiled micro-kernel the compiler vectorises; threads
 * split the M/N blocks. */
void nc__ref_gemm(nc_context *ctx, int nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);

/* One-threaded nc__ref_gemm in the caller's packing scratch: at least
 * nc__ref_gemm_scratch_floats(m, n, k) floats, 64-byte aligned. For kernels that
 * run GEMMs inside their own worker threads (SCRATCH). */
size_t nc__ref_gemm_scratch_floats(int64_t m, int64_t n, int64_t k);
void nc__ref_gemm_serial(float *scratch, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                         int64_t ldc);

/* nc__ref_gemm with a forced kernel variant (for tests); returns the variant used
 * (an unsupported one falls back to the best supported). */
enum { NC__GEMM_AUTO = 0, NC__GEMM_NAIVE = 1, NC__GEMM_GENERIC = 2, NC__GEMM_AVX2 = 3, NC__GEMM_AVX512 = 4 };
int nc__ref_gemm_isa(nc_context *ctx, int isa, int nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* ---- conv.c: grouped convolution through per-group im2col + gemm.
 * y (N, K, OH, OW); x (N, C, H, W); w (K, C/G, R, S); b (K) or NULL. */
void nc__ref_conv2d_forward(nc_context *ctx, int nt, const nc__conv_desc *d, float *y, const float *x, const float *w,
                            const float *b);
/* dx (N,C,H,W) or NULL, dw (K,C/G,R,S), db (K) or NULL: all accumulated. */
void nc__ref_conv2d_backward(nc_context *ctx, int nt, const nc__conv_desc *d, float *dx, float *dw, float *db,
                             const float *dy, const float *x, const float *w);

/* Scratch-free direct loops the kernels fall back on when scratch allocation fails
 * (SCRATCH above; single-threaded, same contract); also the tests' second opinion. */
void nc__ref_conv2d_forward_direct(const nc__conv_desc *d, float *y, const float *x, const float *w,
                                   const float *b);
void nc__ref_conv2d_backward_direct(const nc__conv_desc *d, float *dx, float *dw, float *db, const float *dy,
                                    const float *x, const float *w);

/* ---- linear (in conv.c, through gemm): y (N,out) = x (N,in) w^T (in,out) + b */
void nc__ref_linear_forward(nc_context *ctx, int nt, const nc__linear_desc *d, float *y, const float *x, const float *w,
                            const float *b);
void nc__ref_linear_backward(nc_context *ctx, int nt, const nc__linear_desc *d, float *dx, float *dw, float *db,
                             const float *dy, const float *x, const float *w);

/* ---- batchnorm.c (N, C, HW) */
void nc__ref_batchnorm_forward_train(int nt, const nc__bn_desc *d, float *y, float *save_mean,
                                     float *save_invstd, float *running_mean, float *running_var,
                                     const float *x, const float *gamma, const float *beta);
void nc__ref_batchnorm_forward_infer(int nt, const nc__bn_desc *d, float *y, const float *x,
                                     const float *gamma, const float *beta, const float *running_mean,
                                     const float *running_var);
void nc__ref_batchnorm_backward(int nt, const nc__bn_desc *d, float *dx, float *dgamma, float *dbeta,
                                const float *dy, const float *x, const float *gamma,
                                const float *save_mean, const float *save_invstd);
/* Synchronised batch norm's pieces (backend.h, SYNC BATCH NORM) on f32 values with
 * channel block `block` (1: plain NCHW); dx accumulates (+=). */
void nc__ref_bn_sync_sums(int nt, const nc__bn_desc *d, int block, double *sums, const float *x,
                          const double *mean);
void nc__ref_bn_sync_forward(int nt, const nc__bn_desc *d, int block, int relu, float *y, float *save_mean,
                             float *save_invstd, float *running_mean, float *running_var, const float *x,
                             const float *gamma, const float *beta, const double *stats, double count);
void nc__ref_bn_sync_backward_sums(int nt, const nc__bn_desc *d, int block, double *sums, const float *dy,
                                   const float *y, const float *x, const float *save_mean,
                                   const float *save_invstd);
void nc__ref_bn_sync_backward(int nt, const nc__bn_desc *d, int block, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *y, const float *x, const float *gamma,
                              const float *save_mean, const float *save_invstd, const double *sums,
                              double count);

/* ---- pool.c: max (floor mode, -inf padding; ties -> first max in window order,
 * as PyTorch), avg (zero padding counted), adaptive avg (PyTorch bin edges
 * start = floor(i*H/OH), end = ceil((i+1)*H/OH)). */
/* One output position's window: rows [h0, h1), cols [w0, w1) clamped to the input
 * (empty when it lies in the padding), and the divisor of an average (PyTorch's
 * pool_size). */
typedef struct nc__pool_window {
    int64_t h0, h1, w0, w1;
    int64_t divisor;
} nc__pool_window;
nc__pool_window nc__ref_pool_window(const nc__pool_desc *d, int64_t oh, int64_t ow);
void nc__ref_pool2d_forward(int nt, const nc__pool_desc *d, float *y, const float *x);
void nc__ref_pool2d_backward(int nt, const nc__pool_desc *d, float *dx, const float *dy, const float *x,
                             const float *y);

/* ---- elementwise.c */
void nc__ref_relu_forward(int nt, size_t count, float *y, const float *x);
void nc__ref_relu_backward(int nt, size_t count, float *dx, const float *dy, const float *y);
void nc__ref_add_forward(int nt, size_t count, float *y, const float *a, const float *b);
void nc__ref_accumulate(int nt, size_t count, float *dst, const float *src);
/* keep element i iff nc__rng_uniform(seed, 0, i) >= p: i is the logical index for
 * the plain layout (backend.h, RANDOM MASKS) */
void nc__ref_dropout_forward(int nt, size_t count, float p, uint64_t seed, float *y, const float *x);
void nc__ref_dropout_backward(int nt, size_t count, float p, uint64_t seed, float *dx, const float *dy);
/* dst (=|+=) src, as mode says, for count elements of dtype dt (bf16 adds in f32 and
 * rounds once): an activation gradient's write (backend.h, GRADIENT WRITE RULE). */
void nc__ref_write_values(int nt, nc__dtype dt, nc__write mode, size_t count, void *dst, const void *src);
/* y (n, sum widths) = [x_0 | x_1 | ...], each x_i (n, widths[i]), of dtype dt. */
void nc__ref_concat_forward(nc__dtype dt, int64_t n, int count, const int64_t *widths, void *y,
                            const void *const *xs);
/* dxs[i] (=|+=) dy's column block i as modes[i] says; NULL dxs[i] skipped; inputs in
 * index order (the same dx may come twice). */
void nc__ref_concat_backward(nc__dtype dt, int64_t n, int count, const int64_t *widths, const nc__write *modes,
                             void *const *dxs, const void *dy);
void nc__ref_sgd_update(int nt, const nc__sgd_desc *d, size_t count, float *param, float *buf,
                        const float *grad);
double nc__ref_sum_squares(int nt, size_t count, const float *x); /* NaN/inf propagate */
/* torch.optim.Adam / AdamW (_single_tensor_adam's operation order, in float). */
void nc__ref_adam_update(int nt, const nc__adam_desc *d, size_t count, float *param, float *m, float *v,
                         const float *grad);
void nc__ref_scale(int nt, size_t count, float *x, float alpha);
void nc__ref_axpby(int nt, size_t count, float *y, float a, const float *x, float b);

/* ---- loss.c: backend.h's `loss` on host f32 logits (N, heads*classes) and int32
 * labels, computed in double; the semantics are train/loss.h's. dlogits may be NULL. */
void nc__ref_loss(const nc__loss_desc *d, float *dlogits, nc__step_record *rec, const float *logits,
                  const int32_t *labels);

/* ---- optim.c: backend.h's grad_norm, clip_grads and update over a table whose
 * offsets are bytes into the f32 arenas (params, grads, s1, s2). */
void nc__ref_grad_norm(int nt, const nc__param_entry *table, int count, nc__step_record *rec, const void *grads);
void nc__ref_clip_grads(int nt, const nc__param_entry *table, int count, float max_norm, void *grads,
                        const nc__step_record *rec);
void nc__ref_update(int nt, const nc__optim_desc *d, const nc__param_entry *table, int count, void *params,
                    void *s1, void *s2, const void *grads, const nc__step_record *rec);

#endif
