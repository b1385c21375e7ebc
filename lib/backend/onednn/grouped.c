/* grouped.c — direct AVX2+FMA kernels for grouped convolutions with 2 or 4 channels
 * per group on the nChw8c layout (see grouped.h for why). An 8-channel block holds
 * 8/cpg whole groups, so each output lane only needs the input lanes of its own group:
 * the kernels multiply the input vector by cpg weight vectors, each time rotated by t
 * lanes within every group (rotation 0 is the vector itself, so cpg - 1 in-lane
 * shuffles per input vector), and register-block several output pixels along W so
 * the cpg weight vectors of a tap are loaded once per block. No oneDNN dependency. */
#include "backend/onednn/grouped.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NC_NO_ISA_DISPATCH)
#define NC__GCONV8_X86 1
#include <immintrin.h>
#else
#define NC__GCONV8_X86 0
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
#define NC__GC_TAPBUF 4096  /* floats of per-thread dw partials (stack, 16 KB) */

/* ------------------------------------------------------------------ packing
 * packed = fwd (C/8, R, S, cpg, 8) then bwd (C/8, R, S, cpg, 8). For block cb, tap
 * (r, s) and rotation t, lane j (channel k = 8 cb + j, group base b = j - j % cpg):
 *   fwd[t][j] = w[k][(j % cpg + t) % cpg][r][s]     (multiplies x rotated by t)
 *   bwd[t][j] = w[8 cb + b + (j % cpg + t) % cpg][j % cpg][r][s]  (multiplies dy rotated by t)
 * so that y lane j = sum_t fwd[t][j] x[b + (j%cpg + t)%cpg] and
 *         dx lane j = sum_t bwd[t][j] dy[b + (j%cpg + t)%cpg]. */

static int64_t cpg_of(const nc__conv_desc *d) { return d->c / d->groups; }

size_t nc__gconv8_weight_floats(const nc__conv_desc *d) {
    return 2 * (size_t)d->k * (size_t)cpg_of(d) * (size_t)d->r * (size_t)d->s;
}

void nc__gconv8_pack_weights(const nc__conv_desc *d, float *packed, const float *w) {
    const int64_t cpg = cpg_of(d), cb_n = d->c / 8, rs = d->r * d->s;
    float *fwd = packed;                                      // (C/8, R, S, cpg, 8)
    float *bwd = packed + (size_t)(cb_n * rs * cpg * 8);      // (C/8, R, S, cpg, 8)
    for (int64_t cb = 0; cb < cb_n; cb++)
        for (int64_t tap = 0; tap < rs; tap++)
            for (int64_t t = 0; t < cpg; t++)
                for (int64_t j = 0; j < 8; j++) {
                    const int64_t b = j - j % cpg, i = (j % cpg + t) % cpg;
                    const size_t o = (size_t)((((cb * rs + tap) * cpg + t) * 8) + j);
                    fwd[o] = w[(size_t)(((cb * 8 + j) * cpg + i) * rs + tap)];         // w (K, C/G, R, S)
                    bwd[o] = w[(size_t)(((cb * 8 + b + i) * cpg + j % cpg) * rs + tap)];
                }
}

int nc__gconv8_supported(const nc__conv_desc *d) {
    if (!d || d->groups < 1 || d->c != d->k || d->c < 8 || d->c % 8 != 0 || d->c % d->groups != 0)
        return 0;
    const int64_t cpg = cpg_of(d);
    if (cpg != 2 && cpg != 4) return 0;
    if (d->n < 1 || d->h < 1 || d->w < 1 || d->oh < 1 || d->ow < 1 || d->r < 1 || d->s < 1 ||
        d->stride_h < 1 || d->stride_w < 1 || d->dil_h < 1 || d->dil_w < 1 || d->pad_h < 0 || d->pad_w < 0)
        return 0;
#if NC__GCONV8_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if NC__GCONV8_X86

#define NC__AVX2 __attribute__((target("avx2,fma")))
#define NC__AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* v rotated by t lanes within each group of cpg lanes: lane j gets v[b + (j%cpg + t)%cpg]. */
NC__AVX2_INLINE __m256 rot(__m256 v, int cpg, int t) {
    if (cpg == 2) return _mm256_permute_ps(v, 0xB1);  /* (1,0,3,2) */
    if (t == 1) return _mm256_permute_ps(v, 0x39);    /* (1,2,3,0) */
    if (t == 2) return _mm256_permute_ps(v, 0x4E);    /* (2,3,0,1) */
    return _mm256_permute_ps(v, 0x93);                /* (3,0,1,2) */
}

/* acc += sum_t w[t] * rot(v, t). */
NC__AVX2_INLINE __m256 madd_group(__m256 acc, __m256 v, const __m256 *w, int cpg) {
    acc = _mm256_fmadd_ps(v, w[0], acc);
    NC__UNROLL(3)
    for (int t = 1; t < cpg; t++) acc = _mm256_fmadd_ps(rot(v, cpg, t), w[t], acc);
    return acc;
}

/* ------------------------------------------------------------------ forward */

/* The epilogue of NB output pixels from ow0: + residual, ReLU, store. */
NC__AVX2_INLINE void store_px(float *yr, const __m256 *acc, const float *rr, int relu, int64_t ow0, const int NB) {
    const __m256 zero = _mm256_setzero_ps();
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++) {
        __m256 v = acc[p];
        if (rr) v = _mm256_add_ps(v, _mm256_loadu_ps(rr + (size_t)((ow0 + p) * 8)));
        if (relu) v = _mm256_max_ps(v, zero);
        _mm256_storeu_ps(yr + (size_t)((ow0 + p) * 8), v);
    }
}

/* Output pixels ow0 .. ow0+NB-1 of row oh in block cb. xb: x's block (H, W, 8);
 * wb: fwd weights of the block (R, S, cpg, 8); yr, rr: y and residual rows (OW, 8). */
NC__AVX2_INLINE void fwd_px(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                            const float *bias, const float *rr, int relu, int64_t oh, int64_t ow0,
                            const int NB, const int cpg) {
    const int64_t H = d->h, W = d->w, S = d->s, sw = d->stride_w;
    __m256 acc[NC__GC_NB];
    const __m256 b0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++) acc[p] = b0;
    for (int64_t r = 0; r < d->r; r++) {
        const int64_t ih = oh * d->stride_h - d->pad_h + r * d->dil_h;
        if (ih < 0 || ih >= H) continue;
        const float *xr = xb + (size_t)(ih * W * 8); // (W, 8)
        for (int64_t s = 0; s < S; s++) {
            __m256 wv[4];
            const float *wt = wb + (size_t)((r * S + s) * cpg * 8); // (cpg, 8)
            NC__UNROLL(4)
            for (int t = 0; t < cpg; t++) wv[t] = _mm256_loadu_ps(wt + 8 * t);
            const int64_t iw0 = ow0 * sw - d->pad_w + s * d->dil_w;
            if (iw0 >= 0 && iw0 + (NB - 1) * sw < W) {
                const float *xp = xr + (size_t)(iw0 * 8);
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++)
                    acc[p] = madd_group(acc[p], _mm256_loadu_ps(xp + (size_t)(p * sw * 8)), wv, cpg);
            } else {
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++) {
                    const int64_t iw = iw0 + p * sw;
                    if (iw >= 0 && iw < W)
                        acc[p] = madd_group(acc[p], _mm256_loadu_ps(xr + (size_t)(iw * 8)), wv, cpg);
                }
            }
        }
    }
    store_px(yr, acc, rr, relu, ow0, NB);
}

/* fwd_px for 8 pixels of a kernel with S = 3 taps along W, stride SW, dilation 1:
 * each of the 7 SW + 3 input pixels of the block is loaded and rotated once per t and
 * shared by the taps that read it (at SW = 2: 17 shuffle-groups for 24 pixel-taps
 * instead of 24), the weights come from memory as FMA operands. Input pixels outside
 * the row are skipped (zero padding), so edge blocks take this path too. */
NC__AVX2_INLINE void fwd_px8_s3(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                                const float *bias, const float *rr, int relu, int64_t oh, int64_t ow0,
                                const int SW, const int cpg) {
    enum { NB = 8, S = 3 };
    const int64_t H = d->h, W = d->w;
    /* eight named accumulators (an array indexed by (q - s) / SW ends up in memory) */
    const __m256 b0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    __m256 a0 = b0, a1 = b0, a2 = b0, a3 = b0, a4 = b0, a5 = b0, a6 = b0, a7 = b0;
#define NC__ACC_FMA(p, u, v)                                   \
    switch (p) {                                               \
    case 0: a0 = _mm256_fmadd_ps((u), (v), a0); break;         \
    case 1: a1 = _mm256_fmadd_ps((u), (v), a1); break;         \
    case 2: a2 = _mm256_fmadd_ps((u), (v), a2); break;         \
    case 3: a3 = _mm256_fmadd_ps((u), (v), a3); break;         \
    case 4: a4 = _mm256_fmadd_ps((u), (v), a4); break;         \
    case 5: a5 = _mm256_fmadd_ps((u), (v), a5); break;         \
    case 6: a6 = _mm256_fmadd_ps((u), (v), a6); break;         \
    default: a7 = _mm256_fmadd_ps((u), (v), a7); break;        \
    }
    const int64_t iwb = ow0 * SW - d->pad_w; /* input column of q = 0 */
    const int interior = iwb >= 0 && iwb + (NB - 1) * SW + (S - 1) < W;
    for (int64_t r = 0; r < d->r; r++) {
        const int64_t ih = oh * d->stride_h - d->pad_h + r * d->dil_h;
        if (ih < 0 || ih >= H) continue;
        const float *xr = xb + (size_t)(ih * W * 8);      // (W, 8)
        const float *wt = wb + (size_t)(r * S * cpg * 8); // (S, cpg, 8)
        /* input pixel q = SW p + s feeds output pixel p through tap s */
        NC__UNROLL(4)
        for (int t = 0; t < cpg; t++) {
            NC__UNROLL(17)
            for (int q = 0; q < (NB - 1) * SW + S; q++) {
                const int64_t iw = iwb + q;
                if (!interior && (iw < 0 || iw >= W)) continue;
                const __m256 x0 = _mm256_loadu_ps(xr + (size_t)(iw * 8));
                const __m256 v = t == 0 ? x0 : rot(x0, cpg, t);
                NC__UNROLL(3)
                for (int s = 0; s < S; s++) {
                    if (q < s || (q - s) % SW != 0 || (q - s) / SW >= NB) continue;
                    NC__ACC_FMA((q - s) / SW, v, _mm256_loadu_ps(wt + (s * cpg + t) * 8))
                }
            }
        }
    }
#undef NC__ACC_FMA
    const __m256 acc[NB] = {a0, a1, a2, a3, a4, a5, a6, a7};
    store_px(yr, acc, rr, relu, ow0, NB);
}

NC__AVX2_INLINE void fwd_row(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                             const float *bias, const float *rr, int relu, int64_t oh, const int cpg) {
    int64_t ow = 0;
    /* Measured (2 cores, ResNeXt stage-1 shapes): sharing pays at stride 2 (~60 vs ~47
     * GFLOP/s); at stride 1 the plain blocking is faster (~125 vs ~100), as the shared
     * kernel's accumulator chains are shorter-lived and more latency-bound. */
    if (d->s == 3 && d->dil_w == 1 && d->stride_w == 2)
        for (; ow + 8 <= d->ow; ow += 8) fwd_px8_s3(d, yr, xb, wb, bias, rr, relu, oh, ow, 2, cpg);
    for (; ow + 8 <= d->ow; ow += 8) fwd_px(d, yr, xb, wb, bias, rr, relu, oh, ow, 8, cpg);
    if (ow + 4 <= d->ow) {
        fwd_px(d, yr, xb, wb, bias, rr, relu, oh, ow, 4, cpg);
        ow += 4;
    }
    if (ow + 2 <= d->ow) {
        fwd_px(d, yr, xb, wb, bias, rr, relu, oh, ow, 2, cpg);
        ow += 2;
    }
    if (ow < d->ow) fwd_px(d, yr, xb, wb, bias, rr, relu, oh, ow, 1, cpg);
}

NC__AVX2 static void fwd_row4(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                              const float *bias, const float *rr, int relu, int64_t oh) {
    fwd_row(d, yr, xb, wb, bias, rr, relu, oh, 4);
}
NC__AVX2 static void fwd_row2(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                              const float *bias, const float *rr, int relu, int64_t oh) {
    fwd_row(d, yr, xb, wb, bias, rr, relu, oh, 2);
}

/* ------------------------------------------------------------ backward data
 * A gather: dx pixel (ih, iw) takes dy at oh = (ih + pad_h - r dil_h) / stride_h for
 * every r where that divides exactly (same along W). Pixels of one row are visited by
 * phase q = iw mod stride_w, so a block iw = iwb + p stride_w (p < NB) meets dy at the
 * consecutive ow0 + p for each tap s that divides. */

/* dxr, dyb: dx row (W, 8) and dy's block (OH, OW, 8); wb: bwd weights (R, S, cpg, 8). */
NC__AVX2_INLINE void bwd_px(const nc__conv_desc *d, float *dxr, const float *dyb, const float *wb,
                            int64_t ih, int64_t iwb, int overwrite, const int NB, const int cpg) {
    const int64_t OH = d->oh, OW = d->ow, S = d->s, sh = d->stride_h, sw = d->stride_w;
    __m256 acc[NC__GC_NB];
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++)
        acc[p] = overwrite ? _mm256_setzero_ps() : _mm256_loadu_ps(dxr + (size_t)((iwb + p * sw) * 8));
    for (int64_t r = 0; r < d->r; r++) {
        const int64_t th = ih + d->pad_h - r * d->dil_h;
        if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
        const float *dyr = dyb + (size_t)(th / sh * OW * 8); // (OW, 8)
        for (int64_t s = 0; s < S; s++) {
            const int64_t tw = iwb + d->pad_w - s * d->dil_w;
            const int64_t m = tw % sw;
            if (m != 0) continue; /* (also right for tw < 0: C's % keeps the sign, 0 is 0) */
            const int64_t ow0 = tw / sw; /* exact */
            __m256 wv[4];
            const float *wt = wb + (size_t)((r * S + s) * cpg * 8); // (cpg, 8)
            NC__UNROLL(4)
            for (int t = 0; t < cpg; t++) wv[t] = _mm256_loadu_ps(wt + 8 * t);
            if (ow0 >= 0 && ow0 + NB - 1 < OW) {
                const float *dp = dyr + (size_t)(ow0 * 8);
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++)
                    acc[p] = madd_group(acc[p], _mm256_loadu_ps(dp + (size_t)(p * 8)), wv, cpg);
            } else {
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++) {
                    const int64_t ow = ow0 + p;
                    if (ow >= 0 && ow < OW)
                        acc[p] = madd_group(acc[p], _mm256_loadu_ps(dyr + (size_t)(ow * 8)), wv, cpg);
                }
            }
        }
    }
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++) _mm256_storeu_ps(dxr + (size_t)((iwb + p * sw) * 8), acc[p]);
}

NC__AVX2_INLINE void bwd_row(const nc__conv_desc *d, float *dxr, const float *dyb, const float *wb,
                             int64_t ih, int overwrite, const int cpg) {
    const int64_t sw = d->stride_w;
    for (int64_t q = 0; q < sw && q < d->w; q++) {
        const int64_t m_n = (d->w - q + sw - 1) / sw; /* pixels q, q + sw, ... < W */
        int64_t m = 0;
        for (; m + 8 <= m_n; m += 8) bwd_px(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 8, cpg);
        if (m + 4 <= m_n) {
            bwd_px(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 4, cpg);
            m += 4;
        }
        if (m + 2 <= m_n) {
            bwd_px(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 2, cpg);
            m += 2;
        }
        if (m < m_n) bwd_px(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 1, cpg);
    }
}

NC__AVX2 static void bwd_row4(const nc__conv_desc *d, float *dxr, const float *dyb, const float *wb,
                              int64_t ih, int overwrite) {
    bwd_row(d, dxr, dyb, wb, ih, overwrite, 4);
}
NC__AVX2 static void bwd_row2(const nc__conv_desc *d, float *dxr, const float *dyb, const float *wb,
                              int64_t ih, int overwrite) {
    bwd_row(d, dxr, dyb, wb, ih, overwrite, 2);
}

/* --------------------------------------------------------- backward weights
 * For one block cb and the rows (n, oh) in [row0, row1): part (taps, cpg, 8) +=
 * sum over pixels of dy * rot(x, t) for taps [tap0, tap1); lane j of part[tap][t]
 * belongs to dw[8 cb + j][(j%cpg + t)%cpg][tap]. dbp (8) += sum of dy when not NULL.
 * 8/cpg interleaved accumulator sets keep 8 FMA chains in flight. */
NC__AVX2_INLINE void wgt_rows(const nc__conv_desc *d, float *part, float *dbp, const float *dy,
                              const float *x, int64_t cb, int64_t row0, int64_t row1, int64_t tap0,
                              int64_t tap1, const int cpg) {
    const int64_t H = d->h, W = d->w, OH = d->oh, OW = d->ow, S = d->s, cb_n = d->c / 8;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    const int sets = 8 / cpg; /* 2 or 4 */
    for (int64_t row = row0; row < row1; row++) {
        const int64_t n = row / OH, oh = row % OH;
        const float *dyr = dy + (size_t)((((n * cb_n + cb) * OH + oh) * OW) * 8); // (OW, 8)
        const float *xb = x + (size_t)((n * cb_n + cb) * H * W * 8);               // (H, W, 8)
        if (dbp) {
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
            int64_t ow = 0;
            for (; ow + 2 <= OW; ow += 2) {
                s0 = _mm256_add_ps(s0, _mm256_loadu_ps(dyr + (size_t)(ow * 8)));
                s1 = _mm256_add_ps(s1, _mm256_loadu_ps(dyr + (size_t)(ow * 8 + 8)));
            }
            if (ow < OW) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(dyr + (size_t)(ow * 8)));
            _mm256_storeu_ps(dbp, _mm256_add_ps(_mm256_loadu_ps(dbp), _mm256_add_ps(s0, s1)));
        }
        for (int64_t tap = tap0; tap < tap1; tap++) {
            const int64_t r = tap / S, s = tap % S;
            const int64_t ih = oh * sh - d->pad_h + r * d->dil_h;
            if (ih < 0 || ih >= H) continue;
            /* ow with 0 <= ow sw - pad_w + s dil_w < W */
            const int64_t lo_num = d->pad_w - s * d->dil_w, hi_num = W - 1 + d->pad_w - s * d->dil_w;
            if (hi_num < 0) continue;
            const int64_t lo = lo_num <= 0 ? 0 : (lo_num + sw - 1) / sw;
            int64_t hi = hi_num / sw + 1;
            if (hi > OW) hi = OW;
            if (lo >= hi) continue;
            const float *xp = xb + (size_t)((ih * W + lo * sw - lo_num) * 8); // x at ow = lo
            const float *dp = dyr + (size_t)(lo * 8);
            float *pt = part + (size_t)((tap - tap0) * cpg * 8); // (cpg, 8)
            __m256 acc[4][4];
            NC__UNROLL(4)
            for (int u = 0; u < sets; u++) {
                NC__UNROLL(4)
                for (int t = 0; t < cpg; t++) acc[u][t] = _mm256_setzero_ps();
            }
            const int64_t cnt = hi - lo;
            int64_t i = 0;
            for (; i + sets <= cnt; i += sets) {
                NC__UNROLL(4)
                for (int u = 0; u < sets; u++) {
                    const __m256 g = _mm256_loadu_ps(dp + (size_t)((i + u) * 8));
                    const __m256 v = _mm256_loadu_ps(xp + (size_t)((i + u) * sw * 8));
                    acc[u][0] = _mm256_fmadd_ps(g, v, acc[u][0]);
                    NC__UNROLL(3)
                    for (int t = 1; t < cpg; t++) acc[u][t] = _mm256_fmadd_ps(g, rot(v, cpg, t), acc[u][t]);
                }
            }
            for (; i < cnt; i++) {
                const __m256 g = _mm256_loadu_ps(dp + (size_t)(i * 8));
                const __m256 v = _mm256_loadu_ps(xp + (size_t)(i * sw * 8));
                acc[0][0] = _mm256_fmadd_ps(g, v, acc[0][0]);
                NC__UNROLL(3)
                for (int t = 1; t < cpg; t++) acc[0][t] = _mm256_fmadd_ps(g, rot(v, cpg, t), acc[0][t]);
            }
            NC__UNROLL(4)
            for (int t = 0; t < cpg; t++) {
                __m256 sum = acc[0][t];
                NC__UNROLL(3)
                for (int u = 1; u < sets; u++) sum = _mm256_add_ps(sum, acc[u][t]);
                _mm256_storeu_ps(pt + 8 * t, _mm256_add_ps(_mm256_loadu_ps(pt + 8 * t), sum));
            }
        }
    }
}

NC__AVX2 static void wgt_rows4(const nc__conv_desc *d, float *part, float *dbp, const float *dy,
                               const float *x, int64_t cb, int64_t row0, int64_t row1, int64_t tap0,
                               int64_t tap1) {
    wgt_rows(d, part, dbp, dy, x, cb, row0, row1, tap0, tap1, 4);
}
NC__AVX2 static void wgt_rows2(const nc__conv_desc *d, float *part, float *dbp, const float *dy,
                               const float *x, int64_t cb, int64_t row0, int64_t row1, int64_t tap0,
                               int64_t tap1) {
    wgt_rows(d, part, dbp, dy, x, cb, row0, row1, tap0, tap1, 2);
}

#endif /* NC__GCONV8_X86 */

/* ------------------------------------------------------------------ drivers
 * Callers check nc__gconv8_supported first; on a CPU or compiler without AVX2 the
 * drivers below do nothing (they are never reached). */

void nc__gconv8_forward(int nt, const nc__conv_desc *d, float *y, const float *x, const float *packed,
                        const float *bias, const float *residual, int relu) {
#if NC__GCONV8_X86
    if (nt < 1) nt = 1;
    const int64_t cb_n = d->c / 8, OH = d->oh, OW = d->ow, HW = d->h * d->w, cpg = cpg_of(d);
    const int64_t tasks = d->n * cb_n * OH;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int64_t task = 0; task < tasks; task++) {
        const int64_t nb = task / OH, oh = task % OH, cb = nb % cb_n; /* nb = n * C/8 + cb */
        const float *xb = x + (size_t)(nb * HW * 8);                    // (H, W, 8)
        const float *wb = packed + (size_t)(cb * d->r * d->s * cpg * 8); // (R, S, cpg, 8)
        float *yr = y + (size_t)((nb * OH + oh) * OW * 8);               // (OW, 8)
        const float *rr = residual ? residual + (size_t)((nb * OH + oh) * OW * 8) : NULL;
        const float *bb = bias ? bias + cb * 8 : NULL;
        if (cpg == 4)
            fwd_row4(d, yr, xb, wb, bb, rr, relu, oh);
        else
            fwd_row2(d, yr, xb, wb, bb, rr, relu, oh);
    }
#else
    (void)nt, (void)d, (void)y, (void)x, (void)packed, (void)bias, (void)residual, (void)relu;
#endif
}

void nc__gconv8_backward_data(int nt, const nc__conv_desc *d, float *dx, const float *dy, const float *packed,
                              nc__write mode) {
#if NC__GCONV8_X86
    if (nt < 1) nt = 1;
    const int overwrite = mode == NC__WRITE_SET; /* the accumulators start at 0, dx unread */
    const int64_t cb_n = d->c / 8, H = d->h, W = d->w, OHW = d->oh * d->ow, cpg = cpg_of(d);
    const int64_t rs = d->r * d->s;
    const float *bwd = packed + (size_t)(cb_n * rs * cpg * 8); // (C/8, R, S, cpg, 8)
    const int64_t tasks = d->n * cb_n * H;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int64_t task = 0; task < tasks; task++) {
        const int64_t nb = task / H, ih = task % H, cb = nb % cb_n;
        float *dxr = dx + (size_t)((nb * H + ih) * W * 8);           // (W, 8)
        const float *dyb = dy + (size_t)(nb * OHW * 8);              // (OH, OW, 8)
        const float *wb = bwd + (size_t)(cb * rs * cpg * 8);         // (R, S, cpg, 8)
        if (cpg == 4)
            bwd_row4(d, dxr, dyb, wb, ih, overwrite);
        else
            bwd_row2(d, dxr, dyb, wb, ih, overwrite);
    }
#else
    (void)nt, (void)d, (void)dx, (void)dy, (void)packed, (void)mode;
#endif
}

#if NC__GCONV8_X86
/* One task: block cb, rows chunk p of nparts, taps [tap0, tap1): partials on the
 * stack, then (in task order when chunks share a block) added into dw and db. */
static void wgt_task(const nc__conv_desc *d, float *part, float *dbp, const float *dy, const float *x,
                     int64_t cb, int64_t p, int64_t nparts, int64_t tap0, int64_t tap1, int want_db) {
    const int64_t rows = d->n * d->oh, cpg = cpg_of(d);
    memset(part, 0, (size_t)((tap1 - tap0) * cpg * 8) * sizeof(float));
    memset(dbp, 0, 8 * sizeof(float));
    const int64_t row0 = rows * p / nparts, row1 = rows * (p + 1) / nparts;
    if (cpg == 4)
        wgt_rows4(d, part, want_db ? dbp : NULL, dy, x, cb, row0, row1, tap0, tap1);
    else
        wgt_rows2(d, part, want_db ? dbp : NULL, dy, x, cb, row0, row1, tap0, tap1);
}

static void wgt_merge(const nc__conv_desc *d, float *dw, float *db, const float *part, const float *dbp,
                      int64_t cb, int64_t tap0, int64_t tap1) {
    const int64_t cpg = cpg_of(d), rs = d->r * d->s;
    for (int64_t tap = tap0; tap < tap1; tap++)
        for (int64_t t = 0; t < cpg; t++)
            for (int64_t j = 0; j < 8; j++) {
                const int64_t i = (j % cpg + t) % cpg;
                dw[(size_t)(((cb * 8 + j) * cpg + i) * rs + tap)] +=
                    part[(size_t)(((tap - tap0) * cpg + t) * 8 + j)]; // dw (K, C/G, R, S)
            }
    if (db)
        for (int64_t j = 0; j < 8; j++) db[cb * 8 + j] += dbp[j];
}
#endif

/* Work split: tasks are (channel block, chunk of the N*OH output rows). With at least
 * as many blocks as threads each block is one task and writes its own slice of dw, db;
 * otherwise a block's rows are split into nparts chunks whose partials are added in
 * task order (omp ordered), so results depend only on the thread count. The partials
 * live on each thread's stack (NC__GC_TAPBUF floats): taps beyond what fits there are
 * done in further passes over the data. */
void nc__gconv8_backward_weights(int nt, const nc__conv_desc *d, float *dw, float *db, const float *dy,
                                 const float *x) {
#if NC__GCONV8_X86
    if (nt < 1) nt = 1;
    const int64_t cb_n = d->c / 8, cpg = cpg_of(d), rs = d->r * d->s, rows = d->n * d->oh;
    const int64_t tap_chunk = NC__GC_TAPBUF / (cpg * 8);
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
                _Alignas(32) float part[NC__GC_TAPBUF]; // (taps, cpg, 8)
                _Alignas(32) float dbp[8];
                wgt_task(d, part, dbp, dy, x, cb, 0, 1, tap0, tap1, want_db);
                wgt_merge(d, dw, want_db ? db : NULL, part, dbp, cb, tap0, tap1);
            }
        } else {
#ifdef _OPENMP
#pragma omp parallel for ordered num_threads(nt) schedule(static, 1)
#endif
            for (int64_t task = 0; task < tasks; task++) {
                _Alignas(32) float part[NC__GC_TAPBUF]; // (taps, cpg, 8)
                _Alignas(32) float dbp[8];
                const int64_t cb = task / nparts, p = task % nparts;
                wgt_task(d, part, dbp, dy, x, cb, p, nparts, tap0, tap1, want_db);
#ifdef _OPENMP
#pragma omp ordered
#endif
                wgt_merge(d, dw, want_db ? db : NULL, part, dbp, cb, tap0, tap1);
            }
        }
    }
#else
    (void)nt, (void)d, (void)dw, (void)db, (void)dy, (void)x;
#endif
}
