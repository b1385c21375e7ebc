/* grouped.c — direct kernels for grouped convolutions with narrow groups on the
 * blocked layouts (see grouped.h for why): weight packing, which shapes and CPUs they
 * take, the per-ISA instances of grouped_kernels.h (AVX2 + FMA on nChw8c, AVX-512 on
 * nChw16c) and the threaded drivers, which pick an instance by (block, channels per
 * group). No oneDNN dependency. */
#include "backend/onednn/grouped.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NC_NO_ISA_DISPATCH)
#define NC__GCONV_X86 1
#include <immintrin.h>
#else
#define NC__GCONV_X86 0
#endif

#define NC__STR(x) #x
#if defined(__clang__)
#define NC__UNROLL(n) _Pragma(NC__STR(unroll n))
#elif defined(__GNUC__)
#define NC__UNROLL(n) _Pragma(NC__STR(GCC unroll n))
#else
#define NC__UNROLL(n)
#endif

#define NC__GC_NB 8         /* output pixels register-blocked along W */
#define NC__GC_MAXCPG 16    /* widest group the kernels are instantiated for */
#define NC__GC_TAPBUF 4096  /* floats of per-thread dw partials (stack, 16 KB) */

/* ------------------------------------------------------------------ packing
 * packed = fwd (C/B, R, S, cpg, B) then bwd (C/B, R, S, cpg, B) for block B. For
 * block cb, tap (r, s) and rotation t, lane j (channel k = B cb + j, group base
 * b = j - j % cpg):
 *   fwd[t][j] = w[k][(j % cpg + t) % cpg][r][s]     (multiplies x rotated by t)
 *   bwd[t][j] = w[B cb + b + (j % cpg + t) % cpg][j % cpg][r][s]  (multiplies dy rotated by t)
 * so that y lane j = sum_t fwd[t][j] x[b + (j%cpg + t)%cpg] and
 *         dx lane j = sum_t bwd[t][j] dy[b + (j%cpg + t)%cpg]. */

static int64_t cpg_of(const nc__conv_desc *d) { return d->c / d->groups; }

size_t nc__gconv_weight_floats(const nc__conv_desc *d) {
    return 2 * (size_t)d->k * (size_t)cpg_of(d) * (size_t)d->r * (size_t)d->s;
}

void nc__gconv_pack_weights(const nc__conv_desc *d, int block, float *packed, const float *w) {
    const int64_t B = block, cpg = cpg_of(d), cb_n = d->c / B, rs = d->r * d->s;
    float *fwd = packed;                                  // (C/B, R, S, cpg, B)
    float *bwd = packed + (size_t)(cb_n * rs * cpg * B);  // (C/B, R, S, cpg, B)
    for (int64_t cb = 0; cb < cb_n; cb++)
        for (int64_t tap = 0; tap < rs; tap++)
            for (int64_t t = 0; t < cpg; t++)
                for (int64_t j = 0; j < B; j++) {
                    const int64_t b = j - j % cpg, i = (j % cpg + t) % cpg;
                    const size_t o = (size_t)((((cb * rs + tap) * cpg + t) * B) + j);
                    fwd[o] = w[(size_t)(((cb * B + j) * cpg + i) * rs + tap)];         // w (K, C/G, R, S)
                    bwd[o] = w[(size_t)(((cb * B + b + i) * cpg + j % cpg) * rs + tap)];
                }
}

/* The widths that run here per block: where ours beat oneDNN's primitives on
 * ResNeXt shapes (docs/performance.md, "Grouped convolutions"). */
static int width_ok(int block, int64_t cpg) {
    if (block == 8) return cpg == 2 || cpg == 4;
    if (block == 16) return cpg == 2 || cpg == 4 || cpg == 8;
    return 0;
}

static int isa_ok(int block) {
#if NC__GCONV_X86
    if (block == 8) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (block == 16) return __builtin_cpu_supports("avx512f");
#endif
    (void)block;
    return 0;
}

int nc__gconv_supported(const nc__conv_desc *d, int block) {
    if (!d || d->groups < 1 || d->c != d->k || d->c < block || block < 1 || d->c % block != 0 ||
        d->c % d->groups != 0)
        return 0;
    if (!width_ok(block, cpg_of(d))) return 0;
    if (d->n < 1 || d->h < 1 || d->w < 1 || d->oh < 1 || d->ow < 1 || d->r < 1 || d->s < 1 ||
        d->stride_h < 1 || d->stride_w < 1 || d->dil_h < 1 || d->dil_w < 1 || d->pad_h < 0 || d->pad_w < 0)
        return 0;
    return isa_ok(block);
}

/* ------------------------------------------------------------------ instances */

#if NC__GCONV_X86

/* AVX2 + FMA, nChw8c. Rotations within groups of 2 and 4 lanes stay inside each
 * 128-bit lane: one in-lane permute. */
#define NC__AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

NC__AVX2_INLINE __m256 rot8(__m256 v, int cpg, int t) {
    if (cpg == 2) return _mm256_permute_ps(v, 0xB1);  /* (1,0,3,2) */
    if (t == 1) return _mm256_permute_ps(v, 0x39);    /* (1,2,3,0) */
    if (t == 2) return _mm256_permute_ps(v, 0x4E);    /* (2,3,0,1) */
    return _mm256_permute_ps(v, 0x93);                /* (3,0,1,2) */
}

#define GC_B 8
#define GC_V __m256
#define GC_SFX(name) name##_b8
#define GC_FN __attribute__((target("avx2,fma")))
#define GC_INLINE NC__AVX2_INLINE
#define GC_LOAD _mm256_loadu_ps
#define GC_STORE _mm256_storeu_ps
#define GC_FMA _mm256_fmadd_ps
#define GC_ADD _mm256_add_ps
#define GC_MAX _mm256_max_ps
#define GC_ZERO _mm256_setzero_ps
#define GC_ROT rot8
#include "backend/onednn/grouped_kernels.h"
GC_ENTRIES(2)
GC_ENTRIES(4)
#undef GC_B
#undef GC_V
#undef GC_SFX
#undef GC_FN
#undef GC_INLINE
#undef GC_LOAD
#undef GC_STORE
#undef GC_FMA
#undef GC_ADD
#undef GC_MAX
#undef GC_ZERO
#undef GC_ROT
#undef GC_ENTRIES

/* AVX-512, nChw16c. Groups of 2 and 4 lanes rotate inside each 128-bit lane (one
 * in-lane permute, as with AVX2); groups of 8 and 16 need a cross-lane permute by
 * an index vector (lane j reads (j & ~(cpg-1)) | ((j + t) & (cpg-1))), a constant
 * once cpg and t are. */
#define NC__AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline

NC__AVX512_INLINE __m512 rot16(__m512 v, int cpg, int t) {
    if (cpg == 2) return _mm512_permute_ps(v, 0xB1);
    if (cpg == 4) {
        if (t == 1) return _mm512_permute_ps(v, 0x39);
        if (t == 2) return _mm512_permute_ps(v, 0x4E);
        return _mm512_permute_ps(v, 0x93);
    }
    const __m512i j = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i m = _mm512_set1_epi32(cpg - 1);
    const __m512i idx = _mm512_or_si512(_mm512_andnot_si512(m, j),
                                        _mm512_and_si512(_mm512_add_epi32(j, _mm512_set1_epi32(t)), m));
    return _mm512_permutexvar_ps(idx, v);
}

#define GC_B 16
#define GC_V __m512
#define GC_SFX(name) name##_b16
#define GC_FN __attribute__((target("avx512f")))
#define GC_INLINE NC__AVX512_INLINE
#define GC_LOAD _mm512_loadu_ps
#define GC_STORE _mm512_storeu_ps
#define GC_FMA _mm512_fmadd_ps
#define GC_ADD _mm512_add_ps
#define GC_MAX _mm512_max_ps
#define GC_ZERO _mm512_setzero_ps
#define GC_ROT rot16
#include "backend/onednn/grouped_kernels.h"
GC_ENTRIES(2)
GC_ENTRIES(4)
GC_ENTRIES(8)
GC_ENTRIES(16)
#undef GC_B
#undef GC_V
#undef GC_SFX
#undef GC_FN
#undef GC_INLINE
#undef GC_LOAD
#undef GC_STORE
#undef GC_FMA
#undef GC_ADD
#undef GC_MAX
#undef GC_ZERO
#undef GC_ROT
#undef GC_ENTRIES

#endif /* NC__GCONV_X86 */

/* ------------------------------------------------------------------ dispatch */

typedef void (*fwd_fn)(const nc__conv_desc *d, float *yr, const float *xb, const float *wb, const float *bias,
                       const float *rr, int relu, int64_t oh);
typedef void (*bwd_fn)(const nc__conv_desc *d, float *dxr, const float *dyb, const float *wb, int64_t ih,
                       int overwrite);
typedef void (*wgt_fn)(const nc__conv_desc *d, float *part, float *dbp, const float *dy, const float *x,
                       int64_t cb, int64_t row0, int64_t row1, int64_t tap0, int64_t tap1);

typedef struct gc_kernels {
    fwd_fn fwd;
    bwd_fn bwd;
    wgt_fn wgt;
} gc_kernels;

/* The instance for (block, cpg); all NULL where there is none (never reached: the
 * callers check nc__gconv_supported). */
static gc_kernels kernels_of(int block, int64_t cpg) {
#if NC__GCONV_X86
#define NC__GC_SET(B, CPG) (gc_kernels){fwd_row_##CPG##_b##B, bwd_row_##CPG##_b##B, wgt_rows_##CPG##_b##B}
    if (block == 8 && cpg == 2) return NC__GC_SET(8, 2);
    if (block == 8 && cpg == 4) return NC__GC_SET(8, 4);
    if (block == 16 && cpg == 2) return NC__GC_SET(16, 2);
    if (block == 16 && cpg == 4) return NC__GC_SET(16, 4);
    if (block == 16 && cpg == 8) return NC__GC_SET(16, 8);
    if (block == 16 && cpg == 16) return NC__GC_SET(16, 16);
#undef NC__GC_SET
#endif
    (void)block, (void)cpg;
    return (gc_kernels){NULL, NULL, NULL};
}

/* ------------------------------------------------------------------ drivers */

void nc__gconv_forward(int nt, const nc__conv_desc *d, int block, float *y, const float *x, const float *packed,
                       const float *bias, const float *residual, int relu) {
    const fwd_fn row = kernels_of(block, cpg_of(d)).fwd;
    if (!row) return;
    if (nt < 1) nt = 1;
    const int64_t B = block, cb_n = d->c / B, OH = d->oh, OW = d->ow, HW = d->h * d->w, cpg = cpg_of(d);
    const int64_t tasks = d->n * cb_n * OH;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int64_t task = 0; task < tasks; task++) {
        const int64_t nb = task / OH, oh = task % OH, cb = nb % cb_n; /* nb = n * C/B + cb */
        const float *xb = x + (size_t)(nb * HW * B);                      // (H, W, B)
        const float *wb = packed + (size_t)(cb * d->r * d->s * cpg * B);  // (R, S, cpg, B)
        float *yr = y + (size_t)((nb * OH + oh) * OW * B);                // (OW, B)
        const float *rr = residual ? residual + (size_t)((nb * OH + oh) * OW * B) : NULL;
        row(d, yr, xb, wb, bias ? bias + cb * B : NULL, rr, relu, oh);
    }
}

void nc__gconv_backward_data(int nt, const nc__conv_desc *d, int block, float *dx, const float *dy,
                             const float *packed, nc__write mode) {
    const bwd_fn row = kernels_of(block, cpg_of(d)).bwd;
    if (!row) return;
    if (nt < 1) nt = 1;
    const int overwrite = mode == NC__WRITE_SET; /* the accumulators start at 0, dx unread */
    const int64_t B = block, cb_n = d->c / B, H = d->h, W = d->w, OHW = d->oh * d->ow, cpg = cpg_of(d);
    const int64_t rs = d->r * d->s;
    const float *bwd = packed + (size_t)(cb_n * rs * cpg * B); // (C/B, R, S, cpg, B)
    const int64_t tasks = d->n * cb_n * H;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int64_t task = 0; task < tasks; task++) {
        const int64_t nb = task / H, ih = task % H, cb = nb % cb_n;
        row(d, dx + (size_t)((nb * H + ih) * W * B), // (W, B)
            dy + (size_t)(nb * OHW * B),             // (OH, OW, B)
            bwd + (size_t)(cb * rs * cpg * B),       // (R, S, cpg, B)
            ih, overwrite);
    }
}

/* One task: block cb, rows chunk p of nparts, taps [tap0, tap1): partials on the
 * stack, then (in task order when chunks share a block) added into dw and db. */
static void wgt_task(const nc__conv_desc *d, int block, wgt_fn rows_fn, float *part, float *dbp, const float *dy,
                     const float *x, int64_t cb, int64_t p, int64_t nparts, int64_t tap0, int64_t tap1,
                     int want_db) {
    const int64_t rows = d->n * d->oh, cpg = cpg_of(d);
    memset(part, 0, (size_t)((tap1 - tap0) * cpg * block) * sizeof(float));
    memset(dbp, 0, (size_t)block * sizeof(float));
    const int64_t row0 = rows * p / nparts, row1 = rows * (p + 1) / nparts;
    rows_fn(d, part, want_db ? dbp : NULL, dy, x, cb, row0, row1, tap0, tap1);
}

static void wgt_merge(const nc__conv_desc *d, int block, float *dw, float *db, const float *part, const float *dbp,
                      int64_t cb, int64_t tap0, int64_t tap1) {
    const int64_t B = block, cpg = cpg_of(d), rs = d->r * d->s;
    for (int64_t tap = tap0; tap < tap1; tap++)
        for (int64_t t = 0; t < cpg; t++)
            for (int64_t j = 0; j < B; j++) {
                const int64_t i = (j % cpg + t) % cpg;
                dw[(size_t)(((cb * B + j) * cpg + i) * rs + tap)] +=
                    part[(size_t)(((tap - tap0) * cpg + t) * B + j)]; // dw (K, C/G, R, S)
            }
    if (db)
        for (int64_t j = 0; j < B; j++) db[cb * B + j] += dbp[j];
}

/* Work split: tasks are (channel block, chunk of the N*OH output rows). With at least
 * as many blocks as threads each block is one task and writes its own slice of dw, db;
 * otherwise a block's rows are split into nparts chunks whose partials are added in
 * task order (omp ordered), so results depend only on the thread count. The partials
 * live on each thread's stack (NC__GC_TAPBUF floats): taps beyond what fits there are
 * done in further passes over the data. */
void nc__gconv_backward_weights(int nt, const nc__conv_desc *d, int block, float *dw, float *db, const float *dy,
                                const float *x) {
    const wgt_fn rows_fn = kernels_of(block, cpg_of(d)).wgt;
    if (!rows_fn) return;
    if (nt < 1) nt = 1;
    const int64_t cb_n = d->c / block, cpg = cpg_of(d), rs = d->r * d->s, rows = d->n * d->oh;
    const int64_t tap_chunk = NC__GC_TAPBUF / (cpg * block);
    int64_t nparts = 1;
    if (nt > 1 && cb_n < nt) {
        nparts = (nt + cb_n - 1) / cb_n;
        if (nparts > rows) nparts = rows;
    }
    const int64_t tasks = cb_n * nparts;
    for (int64_t tap0 = 0; tap0 < rs; tap0 += tap_chunk) {
        const int64_t tap1 = tap0 + tap_chunk < rs ? tap0 + tap_chunk : rs;
        const int want_db = db != NULL && tap0 == 0;
        if (nparts == 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
            for (int64_t cb = 0; cb < tasks; cb++) {
                _Alignas(64) float part[NC__GC_TAPBUF]; // (taps, cpg, B)
                _Alignas(64) float dbp[16];
                wgt_task(d, block, rows_fn, part, dbp, dy, x, cb, 0, 1, tap0, tap1, want_db);
                wgt_merge(d, block, dw, want_db ? db : NULL, part, dbp, cb, tap0, tap1);
            }
        } else {
#ifdef _OPENMP
#pragma omp parallel for ordered num_threads(nt) schedule(static, 1)
#endif
            for (int64_t task = 0; task < tasks; task++) {
                _Alignas(64) float part[NC__GC_TAPBUF]; // (taps, cpg, B)
                _Alignas(64) float dbp[16];
                const int64_t cb = task / nparts, p = task % nparts;
                wgt_task(d, block, rows_fn, part, dbp, dy, x, cb, p, nparts, tap0, tap1, want_db);
#ifdef _OPENMP
#pragma omp ordered
#endif
                wgt_merge(d, block, dw, want_db ? db : NULL, part, dbp, cb, tap0, tap1);
            }
        }
    }
}
