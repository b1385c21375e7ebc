/* gemm.c — the reference backend's single-precision matrix multiply, on which the
 * convolution and linear kernels are built. Goto/BLIS-style: panels of op(A) and op(B)
 * are packed into aligned scratch and a register-tiled micro-kernel (one per ISA,
 * chosen at run time on x86-64) runs over them; threads split C, never K. */
#include "backend/ref/ref.h"
#include "core/context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* ------------------------------------------------------------------ pragmas */

#define NC__STR(x) #x
#if defined(_OPENMP)
#define NC__SIMD _Pragma("omp simd")
#else
#define NC__SIMD
#endif
#if defined(__clang__)
#define NC__UNROLL(n) _Pragma(NC__STR(unroll n))
#define NC__NO_UNROLL _Pragma("clang loop unroll(disable)")
#elif defined(__GNUC__)
#define NC__UNROLL(n) _Pragma(NC__STR(GCC unroll n))
#define NC__NO_UNROLL _Pragma("GCC unroll 1")
#else
#define NC__UNROLL(n)
#define NC__NO_UNROLL
#endif

/* Run-time ISA dispatch needs the target attribute and __builtin_cpu_supports. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NC_NO_ISA_DISPATCH)
#define NC__GEMM_X86 1
#else
#define NC__GEMM_X86 0
#endif

#define NC__MR_MAX 12
#define NC__NR_MAX 32

/* ------------------------------------------------------------- micro-kernels
 * C (rows, NR; row stride ldc) = alpha * sum_p ap[p] (x) bp[p] + beta * C, where
 * ap (kc, MR) and bp (kc, NR) are packed micro-panels and rows <= MR (the rows
 * of a bottom-edge tile are stored directly). beta == 0 overwrites C
 * (NaN in C does not leak). Fixed trip counts let the compiler keep the MR x NR
 * accumulators in vector registers. Under -std=c11 GCC does not contract a*b+c,
 * so the FMA variants say fmaf explicitly. */
#define NC__MADD_PLAIN(a, b, c) ((a) * (b) + (c))
#define NC__MADD_FMA(a, b, c) __builtin_fmaf((a), (b), (c))

#define NC__GEMM_KERNEL(NAME, ATTR, MR, NR, MADD)                                              \
    ATTR static void NAME(int64_t kc, const float *restrict ap, const float *restrict bp,      \
                          float *restrict c, int64_t ldc, float alpha, float beta, int rows)   \
    {                                                                                          \
        float acc[MR][NR]; /* (MR, NR); kc >= 1, so k = 0 initialises it (no zeroing) */      \
        NC__UNROLL(MR)                                                                         \
        for (int i = 0; i < MR; i++) {                                                         \
            const float ai = ap[i];                                                            \
            NC__SIMD                                                                           \
            for (int j = 0; j < NR; j++) acc[i][j] = ai * bp[j];                               \
        }                                                                                      \
        NC__NO_UNROLL /* unrolling k only spills the accumulators */                           \
        for (int64_t p = 1; p < kc; p++) {                                                     \
            const float *restrict a_ = ap + p * MR; /* (MR) */                                 \
            const float *restrict b_ = bp + p * NR; /* (NR) */                                 \
            NC__UNROLL(MR)                                                                     \
            for (int i = 0; i < MR; i++) {                                                     \
                const float ai = a_[i];                                                        \
                NC__SIMD                                                                       \
                for (int j = 0; j < NR; j++) acc[i][j] = MADD(ai, b_[j], acc[i][j]);           \
            }                                                                                  \
        }                                                                                      \
        if (beta == 0.0f) {                                                                    \
            for (int i = 0; i < rows; i++) {                                                   \
                float *restrict ci = c + (size_t)i * (size_t)ldc;                              \
                NC__SIMD                                                                       \
                for (int j = 0; j < NR; j++) ci[j] = alpha * acc[i][j];                        \
            }                                                                                  \
        } else {                                                                               \
            for (int i = 0; i < rows; i++) {                                                   \
                float *restrict ci = c + (size_t)i * (size_t)ldc;                              \
                NC__SIMD                                                                       \
                for (int j = 0; j < NR; j++) ci[j] = beta * ci[j] + alpha * acc[i][j];         \
            }                                                                                  \
        }                                                                                      \
    }

/* Portable: on x86 without AVX (16 xmm registers) 6 x 8 = 12 accumulators; elsewhere
 * 6 x 16 (24 of NEON's 32 registers). fmaf only where the target has it. */
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define NC__GENERIC_NR 8
#else
#define NC__GENERIC_NR 16
#endif
#if defined(__FP_FAST_FMAF)
#define NC__MADD_GENERIC(a, b, c) fmaf((a), (b), (c))
#else
#define NC__MADD_GENERIC NC__MADD_PLAIN
#endif
NC__GEMM_KERNEL(kernel_generic, , 6, NC__GENERIC_NR, NC__MADD_GENERIC)
#if NC__GEMM_X86
/* AVX2 + FMA: 6 x 16 = 12 ymm accumulators + 2 for B + 1 broadcast. */
NC__GEMM_KERNEL(kernel_avx2, __attribute__((target("avx2,fma"))), 6, 16, NC__MADD_FMA)
/* AVX-512: 12 x 32 = 24 zmm accumulators (8+ independent FMA chains per port). */
NC__GEMM_KERNEL(kernel_avx512, __attribute__((target("avx512f,fma"))), 12, 32, NC__MADD_FMA)
#endif

typedef void (*kernel_fn)(int64_t kc, const float *restrict ap, const float *restrict bp,
                          float *restrict c, int64_t ldc, float alpha, float beta, int rows);

/* Blocking: a (kc, NR) B micro-panel stays in L1, an (MC, kc) A block in L2, a
 * (kc, NC) B panel in L3. */
typedef struct gemm_impl {
    int isa;
    int mr, nr;
    int64_t kc, mc, nc;
    kernel_fn kernel;
} gemm_impl;

static const gemm_impl impl_generic = {NC__GEMM_GENERIC, 6, NC__GENERIC_NR, 256, 120, 1024,
                                        kernel_generic};
#if NC__GEMM_X86
static const gemm_impl impl_avx2 = {NC__GEMM_AVX2, 6, 16, 256, 120, 1024, kernel_avx2};
static const gemm_impl impl_avx512 = {NC__GEMM_AVX512, 12, 32, 192, 144, 1024, kernel_avx512};
#endif

static const gemm_impl *pick_impl(int isa) {
#if NC__GEMM_X86
    int has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == NC__GEMM_GENERIC) return &impl_generic;
    if (isa == NC__GEMM_AVX2 && has2) return &impl_avx2;
    if (has512 && (isa == NC__GEMM_AUTO || isa == NC__GEMM_AVX512)) return &impl_avx512;
    if (has2) return &impl_avx2;
#else
    (void)isa;
#endif
    return &impl_generic;
}

/* ------------------------------------------------------------------ packing */

/* Rows of a micro-panel, copied as aggregates: GCC turns a copy loop (or a memcpy
 * of run-time size) into a library call per row, an aggregate copy into moves. */
typedef struct row6 { float v[6]; } row6;
typedef struct row12 { float v[12]; } row12;
typedef struct row16 { float v[16]; } row16;
typedef struct row32 { float v[32]; } row32;

/* ap (ceil(mc/mr), kc, mr) <- op(A)[i0 : i0+mc, p0 : p0+kc], zero-padded rows. */
static void pack_a(float *restrict ap, int mr, int trans_a, const float *restrict a, int64_t lda,
                   int64_t i0, int64_t p0, int64_t mc, int64_t kc) {
    for (int64_t ir = 0; ir < mc; ir += mr) {
        const int64_t rows = mc - ir < mr ? mc - ir : mr;
        float *restrict dst = ap + (size_t)ir * (size_t)kc; // (kc, mr)
        if (!trans_a) {
            for (int64_t i = 0; i < rows; i++) {
                const float *src = a + (size_t)(i0 + ir + i) * (size_t)lda + (size_t)p0; // (kc)
                for (int64_t p = 0; p < kc; p++) dst[(size_t)p * mr + (size_t)i] = src[p];
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = a + (size_t)(p0 + p) * (size_t)lda + (size_t)(i0 + ir); // (rows)
                float *d = dst + (size_t)p * mr;
                if (rows == 6 && mr == 6) /* inlined, not a library call per row */
                    *(row6 *)d = *(const row6 *)src;
                else if (rows == 12 && mr == 12)
                    *(row12 *)d = *(const row12 *)src;
                else /* a select, so GCC makes no memcpy + memset calls of it */
                    for (int64_t i = 0; i < mr; i++) d[i] = i < rows ? src[i] : 0.0f;
            }
            continue;
        }
        for (int64_t i = rows; i < mr; i++) /* strided: no memset per k */
            for (int64_t p = 0; p < kc; p++) dst[(size_t)p * mr + (size_t)i] = 0.0f;
    }
}

/* bp (ceil(nc/nr), kc, nr) <- op(B)[p0 : p0+kc, j0 : j0+nc], zero-padded columns. */
static void pack_b(float *restrict bp, int nr, int trans_b, const float *restrict b, int64_t ldb,
                   int64_t p0, int64_t j0, int64_t kc, int64_t nc) {
    for (int64_t jr = 0; jr < nc; jr += nr) {
        const int64_t cols = nc - jr < nr ? nc - jr : nr;
        float *restrict dst = bp + (size_t)jr * (size_t)kc; // (kc, nr)
        if (!trans_b) {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = b + (size_t)(p0 + p) * (size_t)ldb + (size_t)(j0 + jr); // (cols)
                float *d = dst + (size_t)p * nr;
                if (cols == 16 && nr == 16) {
                    *(row16 *)d = *(const row16 *)src;
                } else if (cols == 32 && nr == 32) {
                    *(row32 *)d = *(const row32 *)src;
                } else if (cols == nr) {
                    memcpy(d, src, (size_t)nr * sizeof(float));
                } else {
                    for (int64_t j = 0; j < nr; j++) d[j] = j < cols ? src[j] : 0.0f;
                }
            }
        } else {
            for (int64_t j = 0; j < cols; j++) {
                const float *src = b + (size_t)(j0 + jr + j) * (size_t)ldb + (size_t)p0; // (kc)
                for (int64_t p = 0; p < kc; p++) dst[(size_t)p * nr + (size_t)j] = src[p];
            }
            for (int64_t j = cols; j < nr; j++)
                for (int64_t p = 0; p < kc; p++) dst[(size_t)p * nr + (size_t)j] = 0.0f;
        }
    }
}

/* ------------------------------------------------------------------- driver */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Scratch floats one serial block of (m, n, k) needs: packed A block + packed B panel. */
static size_t scratch_floats(const gemm_impl *im, int64_t m, int64_t n, int64_t k) {
    const int64_t kc = min64(im->kc, k);
    const size_t a = (size_t)round_up(min64(im->mc, m), im->mr) * (size_t)kc;
    const size_t b = (size_t)round_up(min64(im->nc, n), im->nr) * (size_t)kc;
    return round_up((int64_t)a, 16) + (size_t)b; /* B starts 64-byte aligned */
}

/* Serial blocked GEMM on one rectangle of C. a, b, c already point at the
 * rectangle's first row of op(A), first column of op(B), and its corner of C. */
static void gemm_serial(const gemm_impl *im, int trans_a, int trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                        int64_t ldb, float beta, float *c, int64_t ldc, float *scratch) {
    const int mr = im->mr, nr = im->nr;
    const int64_t kcmax = min64(im->kc, k);
    float *ap = scratch;                                                       // (MC/mr, kc, mr)
    float *bp = scratch + round_up(round_up(min64(im->mc, m), mr) * kcmax, 16); // (NC/nr, kc, nr)
    float edge[NC__MR_MAX * NC__NR_MAX];                                       // (mr, nr)

    for (int64_t jc = 0; jc < n; jc += im->nc) {
        const int64_t nc = min64(im->nc, n - jc);
        for (int64_t pc = 0; pc < k; pc += im->kc) {
            const int64_t kc = min64(im->kc, k - pc);
            const float beta_eff = pc == 0 ? beta : 1.0f; /* later K blocks accumulate */
            pack_b(bp, nr, trans_b, b, ldb, pc, jc, kc, nc);
            for (int64_t ic = 0; ic < m; ic += im->mc) {
                const int64_t mc = min64(im->mc, m - ic);
                pack_a(ap, mr, trans_a, a, lda, ic, pc, mc, kc);
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    const int64_t cols = min64(nr, nc - jr);
                    const float *bpp = bp + (size_t)jr * (size_t)kc; // (kc, nr)
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        const int64_t rows = min64(mr, mc - ir);
                        const float *app = ap + (size_t)ir * (size_t)kc; // (kc, mr)
                        float *ct = c + (size_t)(ic + ir) * (size_t)ldc + (size_t)(jc + jr);
                        if (cols == nr) {
                            im->kernel(kc, app, bpp, ct, ldc, alpha, beta_eff, (int)rows);
                        } else {
                            /* right-edge tile: same arithmetic through a local tile */
                            im->kernel(kc, app, bpp, edge, nr, 1.0f, 0.0f, mr);
                            for (int64_t i = 0; i < rows; i++)
                                for (int64_t j = 0; j < cols; j++) {
                                    float *cij = ct + (size_t)i * (size_t)ldc + (size_t)j;
                                    const float v = alpha * edge[i * nr + j];
                                    *cij = beta_eff == 0.0f ? v : beta_eff * *cij + v;
                                }
                        }
                    }
                }
            }
        }
    }
}

/* Scratch-free fallback (allocation failure, or forced for tests): dot products in
 * float, k in order. */
static void gemm_naive(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                       int64_t ldc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float s = 0.0f;
            for (int64_t p = 0; p < k; p++) {
                const float av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                const float bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += av * bv;
            }
            float *cij = c + (size_t)i * (size_t)ldc + (size_t)j;
            *cij = beta == 0.0f ? alpha * s : beta * *cij + alpha * s;
        }
}


/* C = beta C (k == 0 or alpha == 0): A and B are not read. */
static void scale_only(int64_t m, int64_t n, float beta, float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + (size_t)i * (size_t)ldc; // (n)
        if (beta == 0.0f)
            memset(ci, 0, (size_t)n * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++) ci[j] *= beta;
    }
}

size_t nc__ref_gemm_scratch_floats(int64_t m, int64_t n, int64_t k) {
    if (m <= 0 || n <= 0 || k <= 0) return 0;
    return (size_t)round_up((int64_t)scratch_floats(pick_impl(NC__GEMM_AUTO), m, n, k), 16);
}

void nc__ref_gemm_serial(float *scratch, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                         int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        scale_only(m, n, beta, c, ldc);
        return;
    }
    gemm_serial(pick_impl(NC__GEMM_AUTO), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, scratch);
}

int nc__ref_gemm_isa(nc_context *ctx, int isa, int nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                     float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                     float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return isa;
    if (k <= 0 || alpha == 0.0f) {
        scale_only(m, n, beta, c, ldc);
        return isa;
    }
    if (isa == NC__GEMM_NAIVE) {
        gemm_naive(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return NC__GEMM_NAIVE;
    }
    const gemm_impl *im = pick_impl(isa);

    /* Threads take disjoint rectangles of C: split N when A is the smaller operand
     * (each thread then packs all of A, and its own part of B), else split M. Every
     * element of C sees the same arithmetic whatever the split, so the result does
     * not depend on nt. Small products stay on one thread. */
    if (nt < 1) nt = 1;
    if ((double)m * (double)n * (double)k < 64.0 * 64.0 * 64.0) nt = 1;
    const int split_n = m <= n;
    const int64_t unit = split_n ? im->nr : im->mr;
    const int64_t tiles = ((split_n ? n : m) + unit - 1) / unit;
    int parts = nt;
    if (parts > tiles) parts = (int)tiles;
    if (parts < 1) parts = 1;

    const int64_t per = (tiles + parts - 1) / parts * unit; /* upper bound of a part */
    const size_t each = scratch_floats(im, split_n ? m : min64(per, m), split_n ? min64(per, n) : n, k);
    const size_t each_pad = (size_t)round_up((int64_t)each, 16);
    float *scratch = nc__alloc(ctx, sizeof(float) * each_pad * (size_t)parts); // (parts, each_pad)
    if (!scratch) {
        gemm_naive(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return NC__GEMM_NAIVE;
    }

#ifdef _OPENMP
#pragma omp parallel for num_threads(parts) schedule(static, 1) if (parts > 1)
#endif
    for (int t = 0; t < parts; t++) {
        const int64_t lo = tiles * t / parts * unit;
        int64_t hi = tiles * (t + 1) / parts * unit;
        float *sc = scratch + (size_t)t * each_pad;
        if (split_n) {
            if (hi > n) hi = n;
            if (hi <= lo) continue;
            const float *bt = trans_b ? b + (size_t)lo * (size_t)ldb : b + (size_t)lo;
            gemm_serial(im, trans_a, trans_b, m, hi - lo, k, alpha, a, lda, bt, ldb, beta, c + lo,
                        ldc, sc);
        } else {
            if (hi > m) hi = m;
            if (hi <= lo) continue;
            const float *at = trans_a ? a + (size_t)lo : a + (size_t)lo * (size_t)lda;
            gemm_serial(im, trans_a, trans_b, hi - lo, n, k, alpha, at, lda, b, ldb, beta,
                        c + (size_t)lo * (size_t)ldc, ldc, sc);
        }
    }
    nc__free(ctx, scratch);
    return im->isa;
}

void nc__ref_gemm(nc_context *ctx, int nt, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
    (void)nc__ref_gemm_isa(ctx, NC__GEMM_AUTO, nt, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                           c, ldc);
}
