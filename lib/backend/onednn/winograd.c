/* winograd.c — Winograd F(2x2,3x3) forward convolution on nChw8c with AVX2 + FMA
 * (see winograd.h for why). With d the 4x4 input tile, g the 3x3 filter:
 *   V = B^T d B,  U = G g G^T,  y (2x2) = A^T (sum over c of U .* V) A
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016; the
 * cross-correlation form, as PyTorch's convolution.)
 *
 * Work: the output's 2x2 tiles (over the batch) are cut into chunks of at most
 * WG_CT tiles; a work item is a chunk and a range of 16-channel output blocks. It
 * transforms its chunk's input tiles into V (16 matrices of tiles x C), multiplies
 * them by U per output block (16 small GEMMs, register-blocked 6 tiles x 16 output
 * channels), and transforms the products into y. No oneDNN dependency. */
#include "backend/onednn/winograd.h"

#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NC_NO_ISA_DISPATCH)
#define NC__WINO_X86 1
#include <immintrin.h>
#else
#define NC__WINO_X86 0
#endif

#define WG_MB 6   /* tiles per register block */
#define WG_CT 24  /* most tiles per chunk (4 register blocks) */
#define WG_KB 16  /* output channels per block: two 8-lane vectors */
#define WG_M_FLOATS ((WG_CT / WG_MB) * 16 * WG_MB * WG_KB) /* one block's products, per thread */

int nc__wino_supported(const nc__conv_desc *d, int block) {
    if (!d || block != 8 || d->groups != 1 || d->r != 3 || d->s != 3 || d->stride_h != 1 || d->stride_w != 1 ||
        d->dil_h != 1 || d->dil_w != 1 || d->dtype != NC__DTYPE_F32)
        return 0;
    if (d->c < 8 || d->c % 8 != 0 || d->k < WG_KB || d->k % WG_KB != 0 || d->n < 1 || d->pad_h < 0 ||
        d->pad_w < 0 || d->oh != d->h + 2 * d->pad_h - 2 || d->ow != d->w + 2 * d->pad_w - 2 || d->oh < 1 ||
        d->ow < 1)
        return 0;
#if NC__WINO_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

size_t nc__wino_weight_floats(const nc__conv_desc *d) { return 16 * (size_t)d->c * (size_t)d->k; }

/* ------------------------------------------------------------------ geometry */

typedef struct wg_geom {
    int64_t th, tw;      /* tiles per image along H and W */
    int64_t tiles;       /* over the batch */
    int64_t ct, chunks;  /* tiles per chunk (a multiple of WG_MB), chunk count */
    int64_t kb_n, parts; /* 16-channel output blocks, ranges they are split into */
} wg_geom;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Chunks of equal size (so the last is not a sliver); output blocks split further
 * when there are too few chunks to keep nt threads busy. */
static wg_geom geom_of(const nc__conv_desc *d, int nt) {
    wg_geom g;
    g.th = ceil_div(d->oh, 2);
    g.tw = ceil_div(d->ow, 2);
    g.tiles = d->n * g.th * g.tw;
    g.chunks = ceil_div(g.tiles, WG_CT);
    g.ct = ceil_div(ceil_div(g.tiles, g.chunks), WG_MB) * WG_MB;
    g.kb_n = d->k / WG_KB;
    g.parts = nt > 1 ? ceil_div(4 * (int64_t)nt, g.chunks) : 1;
    if (g.parts > g.kb_n) g.parts = g.kb_n;
    return g;
}

size_t nc__wino_scratch_floats(const nc__conv_desc *d, int nt) {
    if (nt < 1) nt = 1;
    return (size_t)nt * (16 * (size_t)WG_CT * (size_t)d->c + WG_M_FLOATS);
}

#if NC__WINO_X86

#define WG_FN __attribute__((target("avx2,fma")))

/* U = G g G^T for output channels [k0, k0 + 8) and input channel c, from 8 filters
 * gathered from plain (K, C, 3, 3), stored at u (stride between positions: 16 C). */
WG_FN static void transform_filters(const float *w, int64_t C, int64_t k0, int64_t c, float *u) {
    const __m256i rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)(C * 9)));
    const __m256 half = _mm256_set1_ps(0.5f);
    const float *base = w + (size_t)((k0 * C + c) * 9);
    __m256 g[9], gg[4][3];
    for (int t = 0; t < 9; t++) g[t] = _mm256_i32gather_ps(base + t, rows, 4);
    for (int j = 0; j < 3; j++) { /* G g */
        const __m256 outer = _mm256_add_ps(g[j], g[6 + j]);
        gg[0][j] = g[j];
        gg[1][j] = _mm256_mul_ps(half, _mm256_add_ps(outer, g[3 + j]));
        gg[2][j] = _mm256_mul_ps(half, _mm256_sub_ps(outer, g[3 + j]));
        gg[3][j] = g[6 + j];
    }
    const size_t step = (size_t)(C * WG_KB);
    for (int i = 0; i < 4; i++) { /* (G g) G^T */
        const __m256 outer = _mm256_add_ps(gg[i][0], gg[i][2]);
        _mm256_storeu_ps(u + (i * 4 + 0) * step, gg[i][0]);
        _mm256_storeu_ps(u + (i * 4 + 1) * step, _mm256_mul_ps(half, _mm256_add_ps(outer, gg[i][1])));
        _mm256_storeu_ps(u + (i * 4 + 2) * step, _mm256_mul_ps(half, _mm256_sub_ps(outer, gg[i][1])));
        _mm256_storeu_ps(u + (i * 4 + 3) * step, gg[i][2]);
    }
}

/* u layout: (K/16, 16 positions, C, 16 output channels), threaded over the output
 * blocks (training transforms every step's new weights). */
WG_FN void nc__wino_pack_weights(int nt, const nc__conv_desc *d, float *u, const float *w) {
    const int64_t C = d->c, kb_n = d->k / WG_KB;
    if (nt < 1) nt = 1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int64_t kb = 0; kb < kb_n; kb++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < WG_KB; h += 8)
                transform_filters(w, C, kb * WG_KB + h, c, u + (size_t)(kb * 16 * C * WG_KB + c * WG_KB + h));
}

/* V (16, ct, C) for tiles [t0, t0 + n): zero outside the input, zero rows for the
 * padding tiles up to the register block. */
WG_FN static void input_tiles(const nc__conv_desc *d, const wg_geom *g, const float *x, int64_t t0, int64_t n,
                              int64_t rows, float *v) {
    const int64_t C = d->c, cb_n = C / 8, H = d->h, W = d->w, per = g->th * g->tw;
    const __m256 z = _mm256_setzero_ps();
    for (int64_t i = 0; i < rows; i++) {
        if (i >= n) {
            for (int p = 0; p < 16; p++) memset(v + (size_t)((p * g->ct + i) * C), 0, (size_t)C * sizeof(float));
            continue;
        }
        const int64_t t = t0 + i, img = t / per, ty = (t % per) / g->tw, tx = t % g->tw;
        const int64_t ih0 = 2 * ty - d->pad_h, iw0 = 2 * tx - d->pad_w;
        for (int64_t cb = 0; cb < cb_n; cb++) {
            const float *xb = x + (size_t)((img * cb_n + cb) * H * W * 8);
            __m256 a[4][4], b[4][4];
            for (int r = 0; r < 4; r++)
                for (int s = 0; s < 4; s++) {
                    const int64_t ih = ih0 + r, iw = iw0 + s;
                    a[r][s] = ih >= 0 && ih < H && iw >= 0 && iw < W ? _mm256_loadu_ps(xb + (ih * W + iw) * 8) : z;
                }
            for (int s = 0; s < 4; s++) { /* B^T a */
                b[0][s] = _mm256_sub_ps(a[0][s], a[2][s]);
                b[1][s] = _mm256_add_ps(a[1][s], a[2][s]);
                b[2][s] = _mm256_sub_ps(a[2][s], a[1][s]);
                b[3][s] = _mm256_sub_ps(a[1][s], a[3][s]);
            }
            float *vo = v + (size_t)(i * C + cb * 8);
            const size_t step = (size_t)(g->ct * C); /* between positions */
            for (int r = 0; r < 4; r++) { /* (B^T a) B */
                _mm256_storeu_ps(vo + (r * 4 + 0) * step, _mm256_sub_ps(b[r][0], b[r][2]));
                _mm256_storeu_ps(vo + (r * 4 + 1) * step, _mm256_add_ps(b[r][1], b[r][2]));
                _mm256_storeu_ps(vo + (r * 4 + 2) * step, _mm256_sub_ps(b[r][2], b[r][1]));
                _mm256_storeu_ps(vo + (r * 4 + 3) * step, _mm256_sub_ps(b[r][1], b[r][3]));
            }
        }
    }
}

/* m (6 tiles, 16 channels) = v (6 tiles, C; row stride C) x u (C, 16). The twelve
 * accumulators are named, not an array, so that they stay in registers. */
WG_FN static void gemm_block(int64_t C, const float *v, const float *u, float *m) {
    __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0, a4 = a0,
           b4 = a0, a5 = a0, b5 = a0;
    const float *v0 = v, *v1 = v + C, *v2 = v + 2 * C, *v3 = v + 3 * C, *v4 = v + 4 * C, *v5 = v + 5 * C;
#define WG_ROW(i)                                                                                                  \
    do {                                                                                                           \
        const __m256 x = _mm256_broadcast_ss(v##i + c);                                                            \
        a##i = _mm256_fmadd_ps(x, w0, a##i);                                                                       \
        b##i = _mm256_fmadd_ps(x, w1, b##i);                                                                       \
    } while (0)
    for (int64_t c = 0; c < C; c++) {
        const __m256 w0 = _mm256_loadu_ps(u + c * WG_KB), w1 = _mm256_loadu_ps(u + c * WG_KB + 8);
        WG_ROW(0);
        WG_ROW(1);
        WG_ROW(2);
        WG_ROW(3);
        WG_ROW(4);
        WG_ROW(5);
    }
#undef WG_ROW
    const __m256 out[2 * WG_MB] = {a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5};
    for (int i = 0; i < 2 * WG_MB; i++) _mm256_storeu_ps(m + i * 8, out[i]);
}

/* One output pixel: + residual, ReLU, store. */
WG_FN static inline void put(float *y, const float *res, size_t off, __m256 v, int relu) {
    if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + off));
    if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
    _mm256_storeu_ps(y + off, v);
}

/* y for tiles [t0, t0 + n) and output block kb from m (blocks, 16 positions, 6
 * tiles, 16 channels): A^T m A + bias, then residual and ReLU. */
WG_FN static void output_tiles(const nc__conv_desc *d, const wg_geom *g, float *y, const float *m, int64_t t0,
                               int64_t n, int64_t kb, const float *bias, const float *res, int relu) {
    const int64_t OH = d->oh, OW = d->ow, kc_n = d->k / 8, per = g->th * g->tw;
    for (int64_t i = 0; i < n; i++) {
        const int64_t t = t0 + i, img = t / per, oh = 2 * ((t % per) / g->tw), ow = 2 * (t % g->tw);
        const float *mt = m + (size_t)(((i / WG_MB) * 16 * WG_MB + i % WG_MB) * WG_KB);
        for (int h = 0; h < 2; h++) {
            const int64_t kc = kb * 2 + h;
            __m256 p[16], q[2][4];
            for (int x = 0; x < 16; x++) p[x] = _mm256_loadu_ps(mt + x * WG_MB * WG_KB + h * 8);
            for (int s = 0; s < 4; s++) { /* A^T p */
                const __m256 mid = _mm256_add_ps(p[4 + s], p[8 + s]);
                q[0][s] = _mm256_add_ps(p[s], mid);
                q[1][s] = _mm256_sub_ps(_mm256_sub_ps(p[4 + s], p[8 + s]), p[12 + s]);
            }
            const __m256 bv = bias ? _mm256_loadu_ps(bias + kc * 8) : _mm256_setzero_ps();
            const size_t base = (size_t)(((img * kc_n + kc) * OH + oh) * OW + ow) * 8;
            for (int r = 0; r < 2 && oh + r < OH; r++) { /* (A^T p) A */
                const __m256 y0 = _mm256_add_ps(_mm256_add_ps(q[r][0], q[r][1]), q[r][2]);
                const __m256 y1 = _mm256_sub_ps(_mm256_sub_ps(q[r][1], q[r][2]), q[r][3]);
                const size_t off = base + (size_t)(r * OW * 8);
                put(y, res, off, _mm256_add_ps(y0, bv), relu);
                if (ow + 1 < OW) put(y, res, off + 8, _mm256_add_ps(y1, bv), relu);
            }
        }
    }
}

/* One work item: chunk `chunk`, output blocks [kb0, kb1). */
WG_FN static void work_item(const nc__conv_desc *d, const wg_geom *g, float *y, const float *x, const float *u,
                            const float *bias, const float *res, int relu, int64_t chunk, int64_t kb0, int64_t kb1,
                            float *v, float *m) {
    const int64_t C = d->c, t0 = chunk * g->ct;
    const int64_t n = t0 + g->ct <= g->tiles ? g->ct : g->tiles - t0;
    const int64_t blocks = ceil_div(n, WG_MB);
    input_tiles(d, g, x, t0, n, blocks * WG_MB, v);
    for (int64_t kb = kb0; kb < kb1; kb++) {
        for (int p = 0; p < 16; p++) {
            const float *up = u + (size_t)((kb * 16 + p) * C * WG_KB);
            for (int64_t b = 0; b < blocks; b++)
                gemm_block(C, v + (size_t)((p * g->ct + b * WG_MB) * C), up,
                           m + (size_t)((b * 16 + p) * WG_MB * WG_KB));
        }
        output_tiles(d, g, y, m, t0, n, kb, bias, res, relu);
    }
}

void nc__wino_forward(int nt, const nc__conv_desc *d, float *y, const float *x, const float *u, const float *bias,
                      const float *residual, int relu, float *scratch) {
    if (nt < 1) nt = 1;
    const wg_geom g = geom_of(d, nt);
    const size_t per_thread = 16 * (size_t)WG_CT * (size_t)d->c + WG_M_FLOATS;
    const int64_t items = g.chunks * g.parts;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
#endif
    for (int64_t it = 0; it < items; it++) {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        float *v = scratch + (size_t)tid * per_thread, *m = v + 16 * (size_t)WG_CT * (size_t)d->c;
        const int64_t chunk = it / g.parts, part = it % g.parts;
        work_item(d, &g, y, x, u, bias, residual, relu, chunk, g.kb_n * part / g.parts,
                  g.kb_n * (part + 1) / g.parts, v, m);
    }
}

#else /* no x86: nc__wino_supported is 0, so this is never reached */

void nc__wino_pack_weights(int nt, const nc__conv_desc *d, float *u, const float *w) {
    (void)nt, (void)d, (void)u, (void)w;
}

void nc__wino_forward(int nt, const nc__conv_desc *d, float *y, const float *x, const float *u, const float *bias,
                      const float *residual, int relu, float *scratch) {
    (void)nt, (void)d, (void)y, (void)x, (void)u, (void)bias, (void)residual, (void)relu, (void)scratch;
}

#endif
