/* ref.h — the reference backend's kernels: portable C11 + OpenMP on host NCHW f32.
 * Plain-pointer functions (outputs, then inputs, then sizes) so tests can call them
 * directly; ref.c wraps them in the nc__backend table. Backward kernels accumulate
 * (+=) into every gradient they write. `nt` is the thread count (>= 1). */
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

typedef struct nc__ref_state {
    nc_context *ctx;
    int nt;                 /* threads */
} nc__ref_state;

/* ---- gemm.c: C(M,N) = alpha * op(A) op(B) + beta * C, row-major, leading dims.
 * Cache-blocked with a register-tiled micro-kernel the compiler vectorises; threads
 * split the M/N blocks. */
void nc__ref_gemm(int nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);

/* nc__ref_gemm with a forced kernel variant (for tests); returns the variant used
 * (an unsupported one falls back to the best supported). */
enum { NC__GEMM_AUTO = 0, NC__GEMM_NAIVE = 1, NC__GEMM_GENERIC = 2, NC__GEMM_AVX2 = 3, NC__GEMM_AVX512 = 4 };
int nc__ref_gemm_isa(int isa, int nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* ---- conv.c: grouped convolution through per-group im2col + gemm.
 * y (N, K, OH, OW); x (N, C, H, W); w (K, C/G, R, S); b (K) or NULL. */
void nc__ref_conv2d_forward(int nt, const nc__conv_desc *d, float *y, const float *x, const float *w,
                            const float *b);
/* dx (N,C,H,W) or NULL, dw (K,C/G,R,S), db (K) or NULL: all accumulated. */
void nc__ref_conv2d_backward(int nt, const nc__conv_desc *d, float *dx, float *dw, float *db,
                             const float *dy, const float *x, const float *w);

/* Scratch-free direct loops the kernels fall back on when scratch allocation fails
 * (single-threaded, same contract); also the tests' second opinion. */
void nc__ref_conv2d_forward_direct(const nc__conv_desc *d, float *y, const float *x, const float *w,
                                   const float *b);
void nc__ref_conv2d_backward_direct(const nc__conv_desc *d, float *dx, float *dw, float *db, const float *dy,
                                    const float *x, const float *w);

/* ---- linear (in conv.c, through gemm): y (N,out) = x (N,in) w^T (in,out) + b */
void nc__ref_linear_forward(int nt, const nc__linear_desc *d, float *y, const float *x, const float *w,
                            const float *b);
void nc__ref_linear_backward(int nt, const nc__linear_desc *d, float *dx, float *dw, float *db,
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

/* ---- pool.c: max (floor mode, -inf padding; ties -> first max in window order,
 * as PyTorch), avg (zero padding counted), adaptive avg (PyTorch bin edges
 * start = floor(i*H/OH), end = ceil((i+1)*H/OH)). */
void nc__ref_pool2d_forward(int nt, const nc__pool_desc *d, float *y, const float *x);
void nc__ref_pool2d_backward(int nt, const nc__pool_desc *d, float *dx, const float *dy, const float *x,
                             const float *y);

/* ---- elementwise.c */
void nc__ref_relu_forward(int nt, size_t count, float *y, const float *x);
void nc__ref_relu_backward(int nt, size_t count, float *dx, const float *dy, const float *y);
void nc__ref_add_forward(int nt, size_t count, float *y, const float *a, const float *b);
void nc__ref_accumulate(int nt, size_t count, float *dst, const float *src);
/* keep element i iff nc__rng_uniform(seed, 0, i) >= p */
void nc__ref_dropout_forward(int nt, size_t count, float p, uint64_t seed, float *y, const float *x);
void nc__ref_dropout_backward(int nt, size_t count, float p, uint64_t seed, float *dx, const float *dy);
void nc__ref_concat_forward(int64_t n, int count, const int64_t *widths, float *y, const float *const *xs);
void nc__ref_concat_backward(int64_t n, int count, const int64_t *widths, float *const *dxs,
                             const float *dy);
void nc__ref_sgd_update(int nt, const nc__sgd_desc *d, size_t count, float *param, float *buf,
                        const float *grad);
double nc__ref_sum_squares(int nt, size_t count, const float *x); /* NaN/inf propagate */
/* torch.optim.Adam / AdamW (_single_tensor_adam's operation order, in float). */
void nc__ref_adam_update(int nt, const nc__adam_desc *d, size_t count, float *param, float *m, float *v,
                         const float *grad);
void nc__ref_scale(int nt, size_t count, float *x, float alpha);
void nc__ref_axpby(int nt, size_t count, float *y, float a, const float *x, float b);

#endif
