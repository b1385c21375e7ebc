/* grouped_kernels.h — the kernels of grouped.c, written once for a vector of GC_B
 * lanes (one channel block) and included by grouped.c once per ISA: GC_B 8 with
 * AVX2 + FMA (__m256) and GC_B 16 with AVX-512 (__m512). The includer defines GC_B,
 * GC_V (the vector type), GC_SFX(name) (the instance's name suffix), GC_FN (the
 * target attribute of a function), GC_INLINE (the same, always inlined), GC_LOAD,
 * GC_STORE, GC_FMA(a, b, c) = a b + c, GC_ADD, GC_MAX, GC_ZERO() and
 * GC_ROT(v, cpg, t): v rotated by t lanes within each group of cpg lanes (lane j
 * gets v[b + (j % cpg + t) % cpg], b = j - j % cpg).
 *
 * An output lane needs only the input lanes of its own group, so the kernels
 * multiply an input vector by cpg weight vectors, each time rotated by t lanes within
 * every group (rotation 0 is the vector itself: cpg - 1 shuffles per input vector),
 * and register-block several output pixels along W so the cpg weight vectors of a
 * tap are loaded once per block. No include guard: included once per instance. */

/* acc += sum_t w[t] * rot(v, t). */
GC_INLINE GC_V GC_SFX(madd_group)(GC_V acc, GC_V v, const GC_V *w, int cpg) {
    acc = GC_FMA(v, w[0], acc);
    NC__UNROLL(15)
    for (int t = 1; t < cpg; t++) acc = GC_FMA(GC_ROT(v, cpg, t), w[t], acc);
    return acc;
}

/* ------------------------------------------------------------------ forward */

/* The epilogue of NB output pixels from ow0: + residual, ReLU, store. */
GC_INLINE void GC_SFX(store_px)(float *yr, const GC_V *acc, const float *rr, int relu, int64_t ow0, const int NB) {
    const GC_V zero = GC_ZERO();
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++) {
        GC_V v = acc[p];
        if (rr) v = GC_ADD(v, GC_LOAD(rr + (size_t)((ow0 + p) * GC_B)));
        if (relu) v = GC_MAX(v, zero);
        GC_STORE(yr + (size_t)((ow0 + p) * GC_B), v);
    }
}

/* Output pixels ow0 .. ow0+NB-1 of row oh in block cb. xb: x's block (H, W, B);
 * wb: fwd weights of the block (R, S, cpg, B); yr, rr: y and residual rows (OW, B). */
GC_INLINE void GC_SFX(fwd_px)(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                              const float *bias, const float *rr, int relu, int64_t oh, int64_t ow0, const int NB,
                              const int cpg) {
    const int64_t H = d->h, W = d->w, S = d->s, sw = d->stride_w;
    GC_V acc[NC__GC_NB];
    const GC_V b0 = bias ? GC_LOAD(bias) : GC_ZERO();
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++) acc[p] = b0;
    for (int64_t r = 0; r < d->r; r++) {
        const int64_t ih = oh * d->stride_h - d->pad_h + r * d->dil_h;
        if (ih < 0 || ih >= H) continue;
        const float *xr = xb + (size_t)(ih * W * GC_B); // (W, B)
        for (int64_t s = 0; s < S; s++) {
            GC_V wv[NC__GC_MAXCPG];
            const float *wt = wb + (size_t)((r * S + s) * cpg * GC_B); // (cpg, B)
            NC__UNROLL(16)
            for (int t = 0; t < cpg; t++) wv[t] = GC_LOAD(wt + GC_B * t);
            const int64_t iw0 = ow0 * sw - d->pad_w + s * d->dil_w;
            if (iw0 >= 0 && iw0 + (NB - 1) * sw < W) {
                const float *xp = xr + (size_t)(iw0 * GC_B);
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++)
                    acc[p] = GC_SFX(madd_group)(acc[p], GC_LOAD(xp + (size_t)(p * sw * GC_B)), wv, cpg);
            } else {
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++) {
                    const int64_t iw = iw0 + p * sw;
                    if (iw >= 0 && iw < W)
                        acc[p] = GC_SFX(madd_group)(acc[p], GC_LOAD(xr + (size_t)(iw * GC_B)), wv, cpg);
                }
            }
        }
    }
    GC_SFX(store_px)(yr, acc, rr, relu, ow0, NB);
}

/* fwd_px for 8 pixels of a kernel with S = 3 taps along W, stride SW, dilation 1:
 * each of the 7 SW + 3 input pixels of the block is loaded and rotated once per t and
 * shared by the taps that read it (at SW = 2: 17 shuffle-groups for 24 pixel-taps
 * instead of 24), the weights come from memory as FMA operands. Input pixels outside
 * the row are skipped (zero padding), so edge blocks take this path too. */
GC_INLINE void GC_SFX(fwd_px8_s3)(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                                  const float *bias, const float *rr, int relu, int64_t oh, int64_t ow0,
                                  const int SW, const int cpg) {
    enum { NB = 8, S = 3 };
    const int64_t H = d->h, W = d->w;
    /* eight named accumulators (an array indexed by (q - s) / SW ends up in memory) */
    const GC_V b0 = bias ? GC_LOAD(bias) : GC_ZERO();
    GC_V a0 = b0, a1 = b0, a2 = b0, a3 = b0, a4 = b0, a5 = b0, a6 = b0, a7 = b0;
#define NC__ACC_FMA(p, u, v)                        \
    switch (p) {                                    \
    case 0: a0 = GC_FMA((u), (v), a0); break;       \
    case 1: a1 = GC_FMA((u), (v), a1); break;       \
    case 2: a2 = GC_FMA((u), (v), a2); break;       \
    case 3: a3 = GC_FMA((u), (v), a3); break;       \
    case 4: a4 = GC_FMA((u), (v), a4); break;       \
    case 5: a5 = GC_FMA((u), (v), a5); break;       \
    case 6: a6 = GC_FMA((u), (v), a6); break;       \
    default: a7 = GC_FMA((u), (v), a7); break;      \
    }
    const int64_t iwb = ow0 * SW - d->pad_w; /* input column of q = 0 */
    const int interior = iwb >= 0 && iwb + (NB - 1) * SW + (S - 1) < W;
    for (int64_t r = 0; r < d->r; r++) {
        const int64_t ih = oh * d->stride_h - d->pad_h + r * d->dil_h;
        if (ih < 0 || ih >= H) continue;
        const float *xr = xb + (size_t)(ih * W * GC_B);      // (W, B)
        const float *wt = wb + (size_t)(r * S * cpg * GC_B); // (S, cpg, B)
        /* input pixel q = SW p + s feeds output pixel p through tap s */
        NC__UNROLL(16)
        for (int t = 0; t < cpg; t++) {
            NC__UNROLL(17)
            for (int q = 0; q < (NB - 1) * SW + S; q++) {
                const int64_t iw = iwb + q;
                if (!interior && (iw < 0 || iw >= W)) continue;
                const GC_V x0 = GC_LOAD(xr + (size_t)(iw * GC_B));
                const GC_V v = t == 0 ? x0 : GC_ROT(x0, cpg, t);
                NC__UNROLL(3)
                for (int s = 0; s < S; s++) {
                    if (q < s || (q - s) % SW != 0 || (q - s) / SW >= NB) continue;
                    NC__ACC_FMA((q - s) / SW, v, GC_LOAD(wt + (s * cpg + t) * GC_B))
                }
            }
        }
    }
#undef NC__ACC_FMA
    const GC_V acc[NB] = {a0, a1, a2, a3, a4, a5, a6, a7};
    GC_SFX(store_px)(yr, acc, rr, relu, ow0, NB);
}

GC_INLINE void GC_SFX(fwd_row)(const nc__conv_desc *d, float *yr, const float *xb, const float *wb,
                               const float *bias, const float *rr, int relu, int64_t oh, const int cpg) {
    int64_t ow = 0;
    /* Measured (2 cores, AVX2, ResNeXt stage-1 shapes): sharing pays at stride 2 (~60
     * vs ~47 GFLOP/s); at stride 1 the plain blocking is faster (~125 vs ~100), as the
     * shared kernel's accumulator chains are shorter-lived and more latency-bound. */
    if (d->s == 3 && d->dil_w == 1 && d->stride_w == 2)
        for (; ow + 8 <= d->ow; ow += 8) GC_SFX(fwd_px8_s3)(d, yr, xb, wb, bias, rr, relu, oh, ow, 2, cpg);
    for (; ow + 8 <= d->ow; ow += 8) GC_SFX(fwd_px)(d, yr, xb, wb, bias, rr, relu, oh, ow, 8, cpg);
    if (ow + 4 <= d->ow) {
        GC_SFX(fwd_px)(d, yr, xb, wb, bias, rr, relu, oh, ow, 4, cpg);
        ow += 4;
    }
    if (ow + 2 <= d->ow) {
        GC_SFX(fwd_px)(d, yr, xb, wb, bias, rr, relu, oh, ow, 2, cpg);
        ow += 2;
    }
    if (ow < d->ow) GC_SFX(fwd_px)(d, yr, xb, wb, bias, rr, relu, oh, ow, 1, cpg);
}

/* ------------------------------------------------------------ backward data
 * A gather: dx pixel (ih, iw) takes dy at oh = (ih + pad_h - r dil_h) / stride_h for
 * every r where that divides exactly (same along W). Pixels of one row are visited by
 * phase q = iw mod stride_w, so a block iw = iwb + p stride_w (p < NB) meets dy at the
 * consecutive ow0 + p for each tap s that divides. */

/* dxr, dyb: dx row (W, B) and dy's block (OH, OW, B); wb: bwd weights (R, S, cpg, B). */
GC_INLINE void GC_SFX(bwd_px)(const nc__conv_desc *d, float *dxr, const float *dyb, const float *wb, int64_t ih,
                              int64_t iwb, int overwrite, const int NB, const int cpg) {
    const int64_t OH = d->oh, OW = d->ow, S = d->s, sh = d->stride_h, sw = d->stride_w;
    GC_V acc[NC__GC_NB];
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++)
        acc[p] = overwrite ? GC_ZERO() : GC_LOAD(dxr + (size_t)((iwb + p * sw) * GC_B));
    for (int64_t r = 0; r < d->r; r++) {
        const int64_t th = ih + d->pad_h - r * d->dil_h;
        if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
        const float *dyr = dyb + (size_t)(th / sh * OW * GC_B); // (OW, B)
        for (int64_t s = 0; s < S; s++) {
            const int64_t tw = iwb + d->pad_w - s * d->dil_w;
            const int64_t m = tw % sw;
            if (m != 0) continue; /* (also right for tw < 0: C's % keeps the sign, 0 is 0) */
            const int64_t ow0 = tw / sw; /* exact */
            GC_V wv[NC__GC_MAXCPG];
            const float *wt = wb + (size_t)((r * S + s) * cpg * GC_B); // (cpg, B)
            NC__UNROLL(16)
            for (int t = 0; t < cpg; t++) wv[t] = GC_LOAD(wt + GC_B * t);
            if (ow0 >= 0 && ow0 + NB - 1 < OW) {
                const float *dp = dyr + (size_t)(ow0 * GC_B);
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++)
                    acc[p] = GC_SFX(madd_group)(acc[p], GC_LOAD(dp + (size_t)(p * GC_B)), wv, cpg);
            } else {
                NC__UNROLL(8)
                for (int p = 0; p < NB; p++) {
                    const int64_t ow = ow0 + p;
                    if (ow >= 0 && ow < OW)
                        acc[p] = GC_SFX(madd_group)(acc[p], GC_LOAD(dyr + (size_t)(ow * GC_B)), wv, cpg);
                }
            }
        }
    }
    NC__UNROLL(8)
    for (int p = 0; p < NB; p++) GC_STORE(dxr + (size_t)((iwb + p * sw) * GC_B), acc[p]);
}

GC_INLINE void GC_SFX(bwd_row)(const nc__conv_desc *d, float *dxr, const float *dyb, const float *wb, int64_t ih,
                               int overwrite, const int cpg) {
    const int64_t sw = d->stride_w;
    for (int64_t q = 0; q < sw && q < d->w; q++) {
        const int64_t m_n = (d->w - q + sw - 1) / sw; /* pixels q, q + sw, ... < W */
        int64_t m = 0;
        for (; m + 8 <= m_n; m += 8) GC_SFX(bwd_px)(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 8, cpg);
        if (m + 4 <= m_n) {
            GC_SFX(bwd_px)(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 4, cpg);
            m += 4;
        }
        if (m + 2 <= m_n) {
            GC_SFX(bwd_px)(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 2, cpg);
            m += 2;
        }
        if (m < m_n) GC_SFX(bwd_px)(d, dxr, dyb, wb, ih, q + m * sw, overwrite, 1, cpg);
    }
}

/* --------------------------------------------------------- backward weights
 * For one block cb and the rows (n, oh) in [row0, row1): part (taps, cpg, B) +=
 * sum over pixels of dy * rot(x, t) for taps [tap0, tap1); lane j of part[tap][t]
 * belongs to dw[B cb + j][(j%cpg + t)%cpg][tap]. dbp (B) += sum of dy when not NULL.
 * `sets` interleaved accumulator sets keep at least 8 FMA chains in flight. */
GC_INLINE void GC_SFX(wgt_rows)(const nc__conv_desc *d, float *part, float *dbp, const float *dy, const float *x,
                                int64_t cb, int64_t row0, int64_t row1, int64_t tap0, int64_t tap1,
                                const int cpg) {
    const int64_t H = d->h, W = d->w, OH = d->oh, OW = d->ow, S = d->s, cb_n = d->c / GC_B;
    const int64_t sh = d->stride_h, sw = d->stride_w;
    const int sets = cpg >= 8 ? 1 : 8 / cpg; /* 4, 2 or 1 */
    for (int64_t row = row0; row < row1; row++) {
        const int64_t n = row / OH, oh = row % OH;
        const float *dyr = dy + (size_t)((((n * cb_n + cb) * OH + oh) * OW) * GC_B); // (OW, B)
        const float *xb = x + (size_t)((n * cb_n + cb) * H * W * GC_B);               // (H, W, B)
        if (dbp) {
            GC_V s0 = GC_ZERO(), s1 = GC_ZERO();
            int64_t ow = 0;
            for (; ow + 2 <= OW; ow += 2) {
                s0 = GC_ADD(s0, GC_LOAD(dyr + (size_t)(ow * GC_B)));
                s1 = GC_ADD(s1, GC_LOAD(dyr + (size_t)(ow * GC_B + GC_B)));
            }
            if (ow < OW) s0 = GC_ADD(s0, GC_LOAD(dyr + (size_t)(ow * GC_B)));
            GC_STORE(dbp, GC_ADD(GC_LOAD(dbp), GC_ADD(s0, s1)));
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
            const float *xp = xb + (size_t)((ih * W + lo * sw - lo_num) * GC_B); // x at ow = lo
            const float *dp = dyr + (size_t)(lo * GC_B);
            float *pt = part + (size_t)((tap - tap0) * cpg * GC_B); // (cpg, B)
            GC_V acc[4][NC__GC_MAXCPG];
            NC__UNROLL(4)
            for (int u = 0; u < sets; u++) {
                NC__UNROLL(16)
                for (int t = 0; t < cpg; t++) acc[u][t] = GC_ZERO();
            }
            const int64_t cnt = hi - lo;
            int64_t i = 0;
            for (; i + sets <= cnt; i += sets) {
                NC__UNROLL(4)
                for (int u = 0; u < sets; u++) {
                    const GC_V g = GC_LOAD(dp + (size_t)((i + u) * GC_B));
                    const GC_V v = GC_LOAD(xp + (size_t)((i + u) * sw * GC_B));
                    acc[u][0] = GC_FMA(g, v, acc[u][0]);
                    NC__UNROLL(15)
                    for (int t = 1; t < cpg; t++) acc[u][t] = GC_FMA(g, GC_ROT(v, cpg, t), acc[u][t]);
                }
            }
            for (; i < cnt; i++) {
                const GC_V g = GC_LOAD(dp + (size_t)(i * GC_B));
                const GC_V v = GC_LOAD(xp + (size_t)(i * sw * GC_B));
                acc[0][0] = GC_FMA(g, v, acc[0][0]);
                NC__UNROLL(15)
                for (int t = 1; t < cpg; t++) acc[0][t] = GC_FMA(g, GC_ROT(v, cpg, t), acc[0][t]);
            }
            NC__UNROLL(16)
            for (int t = 0; t < cpg; t++) {
                GC_V sum = acc[0][t];
                NC__UNROLL(3)
                for (int u = 1; u < sets; u++) sum = GC_ADD(sum, acc[u][t]);
                GC_STORE(pt + GC_B * t, GC_ADD(GC_LOAD(pt + GC_B * t), sum));
            }
        }
    }
}

/* ------------------------------------------------------------------ entries
 * One non-inlined function per channels-per-group width, so that cpg is a constant
 * in each and the loops over t unroll; grouped.c's drivers pick them by (block, cpg). */
#define GC_ENTRIES(CPG)                                                                                          \
    GC_FN static void GC_SFX(fwd_row_##CPG)(const nc__conv_desc *d, float *yr, const float *xb, const float *wb, \
                                            const float *bias, const float *rr, int relu, int64_t oh) {          \
        GC_SFX(fwd_row)(d, yr, xb, wb, bias, rr, relu, oh, CPG);                                                 \
    }                                                                                                            \
    GC_FN static void GC_SFX(bwd_row_##CPG)(const nc__conv_desc *d, float *dxr, const float *dyb,                \
                                            const float *wb, int64_t ih, int overwrite) {                        \
        GC_SFX(bwd_row)(d, dxr, dyb, wb, ih, overwrite, CPG);                                                    \
    }                                                                                                            \
    GC_FN static void GC_SFX(wgt_rows_##CPG)(const nc__conv_desc *d, float *part, float *dbp, const float *dy,   \
                                             const float *x, int64_t cb, int64_t row0, int64_t row1,             \
                                             int64_t tap0, int64_t tap1) {                                       \
        GC_SFX(wgt_rows)(d, part, dbp, dy, x, cb, row0, row1, tap0, tap1, CPG);                                  \
    }
