/* transform_fused.c — the fast path of nc_transform_apply and the loader: one sample's
 * geometric steps (resize, random resized crop, center crop, flips, rotation, affine)
 * composed into a single map from output pixels to source coordinates and sampled
 * once, bilinearly, straight from the decoder's 8/16-bit samples or from floats; then
 * colour jitter, normalisation and erasing in place on the float output. */
#include "data/transform.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCK 256 /* output columns mapped at once (the coordinate rows live on the stack) */

/* ------------------------------------------------------------------ the map */

/* The coordinates of BLOCK output pixels as they travel back through the steps. */
typedef struct coords {
    float x[BLOCK], y[BLOCK]; /* position in the current step's input, pixel centres at integers */
    float cover[BLOCK];       /* product of the warps' fill coverage so far */
} coords;

/* Bilinear coverage of a w-pixel axis (the all-ones image warped with zero padding,
 * torchvision's fill mask): 1 inside [0, w - 1], fading to 0 one pixel outside. */
static inline float axis_cover(float v, int w) {
    float a = v + 1.0f, b = (float)w - v;
    float m = a < b ? a : b;
    return m < 0.0f ? 0.0f : (m > 1.0f ? 1.0f : m);
}

/* Maps n output positions of step g back to its input. */
static void step_back(coords *q, int n, const nc__geom *g) {
    switch (g->kind) {
    case NC__GEOM_RESIZE: { /* ATen's align_corners=False source index, clamped to the box */
        float sx = (float)g->bw / (float)g->out_w, sy = (float)g->bh / (float)g->out_h;
        float hx = (float)(g->bw - 1), hy = (float)(g->bh - 1);
        for (int k = 0; k < n; k++) {
            float x = sx * (q->x[k] + 0.5f) - 0.5f, y = sy * (q->y[k] + 0.5f) - 0.5f;
            x = x < 0.0f ? 0.0f : (x > hx ? hx : x);
            y = y < 0.0f ? 0.0f : (y > hy ? hy : y);
            q->x[k] = x + (float)g->left;
            q->y[k] = y + (float)g->top;
        }
        break;
    }
    case NC__GEOM_SHIFT:
        for (int k = 0; k < n; k++) {
            q->x[k] += (float)g->left;
            q->y[k] += (float)g->top;
        }
        break;
    case NC__GEOM_HFLIP:
        for (int k = 0; k < n; k++) q->x[k] = (float)(g->in_w - 1) - q->x[k];
        break;
    case NC__GEOM_VFLIP:
        for (int k = 0; k < n; k++) q->y[k] = (float)(g->in_h - 1) - q->y[k];
        break;
    case NC__GEOM_WARP: { /* relative to the centre, as torchvision's affine grid */
        float m0 = (float)g->m[0], m1 = (float)g->m[1], m2 = (float)g->m[2];
        float m3 = (float)g->m[3], m4 = (float)g->m[4], m5 = (float)g->m[5];
        float cx = (float)(0.5 * g->in_w - 0.5), cy = (float)(0.5 * g->in_h - 0.5);
        for (int k = 0; k < n; k++) {
            float dx = q->x[k] - cx, dy = q->y[k] - cy;
            float x = m0 * dx + m1 * dy + m2 + cx, y = m3 * dx + m4 * dy + m5 + cy;
            q->cover[k] *= axis_cover(x, g->in_w) * axis_cover(y, g->in_h);
            q->x[k] = x;
            q->y[k] = y;
        }
        break;
    }
    }
}

/* ---------------------------------------------------------------- sampling */

/* floorf without a libm call (exact for every float; coordinates are far below 2^23). */
static inline float floor_f(float v) {
    float t = fabsf(v) < 8388608.0f ? (float)(int32_t)v : v;
    return t > v ? t - 1.0f : t;
}

/* One source pixel's 4 taps: offsets of the samples (in source samples) and weights;
 * a tap outside the image has weight 0 and offset 0. */
typedef struct taps {
    size_t o[4];
    float w[4];
} taps;

/* The taps of position (x, y) in a w x h source whose rows are `stride` samples and
 * pixels `step` samples apart. Positions inside give the exact pixel at integers. */
static inline taps make_taps(float x, float y, int w, int h, size_t stride, size_t step) {
    taps t;
    float fx0 = floor_f(x), fy0 = floor_f(y);
    float fx = x - fx0, fy = y - fy0;
    int x0 = (int)fx0, y0 = (int)fy0;
    int ix[2] = {x0, x0 + 1}, iy[2] = {y0, y0 + 1};
    float wx[2] = {1.0f - fx, fx}, wy[2] = {1.0f - fy, fy};
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int in = ix[i] >= 0 && ix[i] < w && iy[j] >= 0 && iy[j] < h;
            t.w[2 * j + i] = in ? wx[i] * wy[j] : 0.0f;
            t.o[2 * j + i] = in ? (size_t)iy[j] * stride + (size_t)ix[i] * step : 0;
        }
    return t;
}

/* (v00 w00 + v01 w01) + (v10 w10 + v11 w11): the same sum for every source type, so a
 * file's 8-bit samples and their float image give identical results. */
static inline float blend(const taps *t, float v0, float v1, float v2, float v3) {
    return (v0 * t->w[0] + v1 * t->w[1]) + (v2 * t->w[2] + v3 * t->w[3]);
}

static inline float u16_at(const unsigned char *p) {
    return (float)(((unsigned)p[0] << 8) | p[1]) / 65535.0f;
}

/* A source pixel's 4 bilinear weights, in make_taps's products. */
typedef struct quad {
    float w00, w01, w10, w11;
} quad;

static inline quad make_quad(float fx, float fy) {
    float ex = 1.0f - fx, ey = 1.0f - fy;
    return (quad){ex * ey, fx * ey, ex * fy, fx * fy};
}

/* The interior taps of a block of positions, computed in one vectorisable pass: the
 * top-left sample's offset and the 4 weights (make_quad's products); inside[k] is 0
 * for a position whose taps leave the image or whose coverage is 0 (handled apart). */
typedef struct quads {
    int32_t off[BLOCK], inside[BLOCK];
    float w00[BLOCK], w01[BLOCK], w10[BLOCK], w11[BLOCK];
} quads;

static void make_quads(quads *t, const coords *q, int n, int W, int H, int C) {
    for (int k = 0; k < n; k++) {
        float x = q->x[k], y = q->y[k], fx0 = floor_f(x), fy0 = floor_f(y);
        float fx = x - fx0, fy = y - fy0, ex = 1.0f - fx, ey = 1.0f - fy;
        /* the range test on floats: no int conversion of far-away positions */
        int in = (fx0 >= 0.0f) & (fy0 >= 0.0f) & (fx0 < (float)(W - 1)) & (fy0 < (float)(H - 1)) & (q->cover[k] != 0.0f);
        int32_t x0 = (int32_t)(in ? fx0 : 0.0f), y0 = (int32_t)(in ? fy0 : 0.0f);
        t->inside[k] = in;
        t->off[k] = (y0 * W + x0) * C;
        t->w00[k] = ex * ey;
        t->w01[k] = fx * ey;
        t->w10[k] = ex * fy;
        t->w11[k] = fx * fy;
    }
}

/* Pixel k of an 8-bit interleaved source with C channels through make_taps (any
 * position; for an interior one the same weights and sums as the quads path). */
static inline void sample_u8_taps(float *o, size_t plane, const coords *q, int k, const unsigned char *base, int W,
                                  int H, const float *lut, const int C) {
    float cover = q->cover[k];
    if (cover == 0.0f) {
        for (int c = 0; c < C; c++) o[(size_t)c * plane] = 0.0f;
        return;
    }
    taps tp = make_taps(q->x[k], q->y[k], W, H, (size_t)W * (size_t)C, (size_t)C);
    for (int c = 0; c < C; c++)
        o[(size_t)c * plane] = blend(&tp, lut[base[tp.o[0] + c]], lut[base[tp.o[1] + c]], lut[base[tp.o[2] + c]],
                                     lut[base[tp.o[3] + c]]) * cover;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NC_NO_ISA_DISPATCH)
#include <immintrin.h>
#define NC__SAMPLE_AVX2 1
#define AVX2 __attribute__((target("avx2")))

/* Byte b of each 32-bit lane as the table's value, byte / 255.0f, without a division:
 * 1/255 = 0x1.0101p-8 + 0x1.0101p-32 + ...; byte * 0x1.0101p-8 is exact (at most 24
 * bits) and adding byte * 0x1.0101p-32 rounds once, to the correctly rounded quotient
 * for each of the 256 bytes (test_transform's identity step compares every one). */
static AVX2 inline __m256 byte_value8(__m256i v, int b) {
    __m256 u = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 8 * b), _mm256_set1_epi32(0xff)));
    return _mm256_add_ps(_mm256_mul_ps(u, _mm256_set1_ps(0x1.0101p-8f)), _mm256_mul_ps(u, _mm256_set1_ps(0x1.0101p-32f)));
}

/* Positions k..k+7 (C = 1, 3 or 4) if all eight are interior, with make_quads's and
 * the quads path's arithmetic operation for operation (no FMA): identical results;
 * returns 0, writing nothing, otherwise. Each tap row is read with 32-bit gathers that
 * stay inside the image: for C = 3 the bytes at offsets 0-3 (x0's three, x1's first)
 * and 2-5 (x1's three at 1-3); for C = 4 at 0-3 and 4-7; for C = 1 the top row at 0-3
 * (the next row exists) and the bottom row at -2..1 (the row above does). */
static AVX2 int sample_u8_avx2(float *o, size_t plane, const coords *q, int k, const unsigned char *base, int W,
                               int H, const int C) {
    __m256 x = _mm256_loadu_ps(q->x + k), y = _mm256_loadu_ps(q->y + k), cv = _mm256_loadu_ps(q->cover + k);
    __m256 fx0 = _mm256_round_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m256 fy0 = _mm256_round_ps(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), zero = _mm256_setzero_ps();
    __m256 in = _mm256_and_ps(_mm256_cmp_ps(fx0, zero, _CMP_GE_OQ), _mm256_cmp_ps(fy0, zero, _CMP_GE_OQ));
    in = _mm256_and_ps(in, _mm256_cmp_ps(fx0, _mm256_set1_ps((float)(W - 1)), _CMP_LT_OQ));
    in = _mm256_and_ps(in, _mm256_cmp_ps(fy0, _mm256_set1_ps((float)(H - 1)), _CMP_LT_OQ));
    in = _mm256_and_ps(in, _mm256_cmp_ps(cv, zero, _CMP_NEQ_UQ));
    if (_mm256_movemask_ps(in) != 0xff) return 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 fx = _mm256_sub_ps(x, fx0), fy = _mm256_sub_ps(y, fy0), ex = _mm256_sub_ps(one, fx),
           ey = _mm256_sub_ps(one, fy);
    __m256 w00 = _mm256_mul_ps(ex, ey), w01 = _mm256_mul_ps(fx, ey), w10 = _mm256_mul_ps(ex, fy),
           w11 = _mm256_mul_ps(fx, fy);
    __m256i off = _mm256_mullo_epi32(
        _mm256_add_epi32(_mm256_mullo_epi32(_mm256_cvttps_epi32(fy0), _mm256_set1_epi32(W)), _mm256_cvttps_epi32(fx0)),
        _mm256_set1_epi32(C));
    const int *r0 = (const int *)(const void *)base, *r1 = (const int *)(const void *)(base + (size_t)W * (size_t)C);
    __m256i a0, b0, a1, b1; /* per row: the gather holding x0's bytes (a) and x1's (b) */
    int ax0 = 0, bx0 = C == 3 ? 1 : 0, ax1 = 0, bx1 = C == 3 ? 1 : 0;
    if (C == 1) {
        a0 = b0 = _mm256_i32gather_epi32(r0, off, 1);
        a1 = b1 = _mm256_i32gather_epi32(r1, _mm256_sub_epi32(off, _mm256_set1_epi32(2)), 1);
        bx0 = 1, ax1 = 2, bx1 = 3;
    } else {
        __m256i next = _mm256_add_epi32(off, _mm256_set1_epi32(C == 3 ? 2 : 4));
        a0 = _mm256_i32gather_epi32(r0, off, 1), b0 = _mm256_i32gather_epi32(r0, next, 1);
        a1 = _mm256_i32gather_epi32(r1, off, 1), b1 = _mm256_i32gather_epi32(r1, next, 1);
    }
    for (int c = 0; c < C; c++) {
        __m256 top = _mm256_add_ps(_mm256_mul_ps(byte_value8(a0, ax0 + c), w00),
                                   _mm256_mul_ps(byte_value8(b0, bx0 + c), w01));
        __m256 bottom = _mm256_add_ps(_mm256_mul_ps(byte_value8(a1, ax1 + c), w10),
                                      _mm256_mul_ps(byte_value8(b1, bx1 + c), w11));
        _mm256_storeu_ps(o + (size_t)c * plane + (size_t)k, _mm256_mul_ps(_mm256_add_ps(top, bottom), cv));
    }
    return 1;
}
#undef AVX2
#endif

/* An 8-bit interleaved source with C channels (a constant where the caller is
 * specialised). With AVX2 (C = 1, 3, 4) eight interior positions at a time and the
 * rest through make_taps; otherwise interior positions from make_quads's one
 * vectorisable pass, the rest through make_taps. */
static inline void sample_u8(float *out, size_t plane, size_t col, const coords *q, int n, const nc__source *src,
                             const float *lut, const int C) {
    const int W = src->width, H = src->height;
    const unsigned char *base = src->px->data;
    int k = 0;
#if NC__SAMPLE_AVX2
    if ((C == 1 || C == 3 || C == 4) && __builtin_cpu_supports("avx2")) {
        for (; k + 8 <= n; k += 8)
            if (!sample_u8_avx2(out + col, plane, q, k, base, W, H, C))
                for (int j = k; j < k + 8; j++) sample_u8_taps(out + col + (size_t)j, plane, q, j, base, W, H, lut, C);
        for (; k < n; k++) sample_u8_taps(out + col + (size_t)k, plane, q, k, base, W, H, lut, C);
        return;
    }
#endif
    const size_t stride = (size_t)W * (size_t)C;
    quads t;
    make_quads(&t, q, n, W, H, C);
    for (; k < n; k++) {
        float *o = out + col + (size_t)k, cover = q->cover[k];
        if (!t.inside[k]) {
            sample_u8_taps(o, plane, q, k, base, W, H, lut, C);
            continue;
        }
        const unsigned char *p0 = base + t.off[k], *p1 = p0 + stride;
        float w00 = t.w00[k], w01 = t.w01[k], w10 = t.w10[k], w11 = t.w11[k];
        for (int c = 0; c < C; c++)
            o[(size_t)c * plane] =
                ((lut[p0[c]] * w00 + lut[p0[c + C]] * w01) + (lut[p1[c]] * w10 + lut[p1[c + C]] * w11)) * cover;
    }
}

/* The same for a planar float source. */
static void sample_planar(float *out, size_t plane, size_t col, const coords *q, int n, const nc__source *src) {
    const int C = src->channels, W = src->width, H = src->height;
    const size_t pl = (size_t)W * (size_t)H;
    for (int k = 0; k < n; k++) {
        float *o = out + col + (size_t)k, cover = q->cover[k];
        float x = q->x[k], y = q->y[k], fx0 = floor_f(x), fy0 = floor_f(y);
        int x0 = (int)fx0, y0 = (int)fy0;
        if (cover == 0.0f) {
            for (int c = 0; c < C; c++) o[(size_t)c * plane] = 0.0f;
        } else if (x0 >= 0 && y0 >= 0 && x0 < W - 1 && y0 < H - 1) {
            quad w = make_quad(x - fx0, y - fy0);
            const float *p0 = src->planar + (size_t)y0 * (size_t)W + (size_t)x0;
            for (int c = 0; c < C; c++, p0 += pl)
                o[(size_t)c * plane] = ((p0[0] * w.w00 + p0[1] * w.w01) + (p0[W] * w.w10 + p0[W + 1] * w.w11)) * cover;
        } else {
            taps t = make_taps(x, y, W, H, (size_t)W, 1);
            const float *p = src->planar;
            for (int c = 0; c < C; c++, p += pl)
                o[(size_t)c * plane] = blend(&t, p[t.o[0]], p[t.o[1]], p[t.o[2]], p[t.o[3]]) * cover;
        }
    }
}

/* The same for 16-bit big-endian interleaved samples (every tap through make_taps). */
static void sample_u16(float *out, size_t plane, size_t col, const coords *q, int n, const nc__source *src) {
    const int C = src->channels, W = src->width, H = src->height;
    const unsigned char *p = src->px->data;
    for (int k = 0; k < n; k++) {
        float *o = out + col + (size_t)k, cover = q->cover[k];
        taps t = make_taps(q->x[k], q->y[k], W, H, (size_t)W * (size_t)C * 2, (size_t)C * 2);
        for (int c = 0; c < C; c++)
            o[(size_t)c * plane] = cover == 0.0f ? 0.0f
                                   : blend(&t, u16_at(p + 2 * c + t.o[0]), u16_at(p + 2 * c + t.o[1]),
                                           u16_at(p + 2 * c + t.o[2]), u16_at(p + 2 * c + t.o[3])) * cover;
    }
}

/* Samples n mapped positions of every channel into out (C, plane) at column `col`. */
static void sample_row(float *out, size_t plane, size_t col, const coords *q, int n, const nc__source *src,
                       const float *lut8) {
    if (src->planar) sample_planar(out, plane, col, q, n, src);
    else if (src->px->depth == 16) sample_u16(out, plane, col, q, n, src);
    else if (src->channels == 3) sample_u8(out, plane, col, q, n, src, lut8, 3);
    else if (src->channels == 1) sample_u8(out, plane, col, q, n, src, lut8, 1);
    else sample_u8(out, plane, col, q, n, src, lut8, src->channels);
}

/* ---------------------------------------------------------------- render */

/* Rows [y0, y1) of the plan's geometry: each output pixel sampled once. */
/* No geometric step: rows [y0, y1) of the source as they are (no interpolation, so a
 * NaN or infinity stays where it is). */
static void copy_rows(float *out, const nc__source *src, const float *lut8, int y0, int y1) {
    const size_t w = (size_t)src->width, plane = (size_t)src->height * w, C = (size_t)src->channels;
    for (size_t c = 0; c < C; c++)
        for (size_t i = (size_t)y0 * w; i < (size_t)y1 * w; i++) {
            float v;
            if (src->planar) v = src->planar[c * plane + i];
            else if (src->px->depth == 8) v = lut8[src->px->data[i * C + c]];
            else v = u16_at(src->px->data + 2 * (i * C + c));
            out[c * plane + i] = v;
        }
}

NC__VECTOR_CLONES static void render_rows(float *out, const nc__source *src, const nc__fused_plan *plan,
                                          const float *lut8, int y0, int y1) {
    if (plan->ngeom == 0) {
        copy_rows(out, src, lut8, y0, y1);
        return;
    }
    const size_t plane = (size_t)plan->out_h * (size_t)plan->out_w;
    coords q;
    for (int oy = y0; oy < y1; oy++)
        for (int bx = 0; bx < plan->out_w; bx += BLOCK) {
            int n = plan->out_w - bx < BLOCK ? plan->out_w - bx : BLOCK;
            for (int k = 0; k < n; k++) {
                q.x[k] = (float)(bx + k);
                q.y[k] = (float)oy;
                q.cover[k] = 1.0f;
            }
            for (int s = plan->ngeom - 1; s >= 0; s--) step_back(&q, n, &plan->geom[s]);
            sample_row(out, plane, (size_t)oy * (size_t)plan->out_w + (size_t)bx, &q, n, src, lut8);
        }
}

/* ------------------------------------------------------------ colour and after */

/* The post steps as one list of operations: operation f is step f / 4's; a jitter step
 * has four (its adjustments in drawn order, k = f % 4), the others one (k = 0). */
#define OPS_PER_STEP 4

/* Whether operation f is a contrast adjustment (which needs the whole image's mean). */
static int is_contrast(const nc__fused_plan *plan, int f) {
    const nc__post *s = &plan->post[f / OPS_PER_STEP];
    int op = s->p.order[f % OPS_PER_STEP];
    return s->kind == NC__STEP_COLOR_JITTER && op == 1 && s->p.jitter_on[1];
}

/* Operations [from, to) (no contrast among them) on the band of rows [y0, y1). */
static void run_ops(const nc__fused_plan *plan, float *out, const nc__span *band, int y0, int y1, int from, int to) {
    for (int f = from; f < to; f++) {
        const nc__post *s = &plan->post[f / OPS_PER_STEP];
        int k = f % OPS_PER_STEP;
        if (s->kind != NC__STEP_COLOR_JITTER) {
            if (k != 0) continue;
            if (s->kind == NC__STEP_NORMALIZE) nc__normalize_span(band, s->mean, s->std);
            if (s->kind == NC__STEP_RANDOM_ERASING && s->p.apply) { /* the box's rows in this band */
                int top = s->p.top > y0 ? s->p.top : y0;
                int end = s->p.top + s->p.height < y1 ? s->p.top + s->p.height : y1;
                if (end > top)
                    nc__erase(out, plan->c, plan->out_h, plan->out_w, top, s->p.left, end - top, s->p.width, s->value);
            }
            continue;
        }
        int op = s->p.order[k];
        if (!s->p.jitter_on[op]) continue;
        float factor = s->p.jitter[op];
        if (op == 0) nc__brightness_span(band, factor);
        else if (op == 2) nc__saturation_span(band, factor);
        else if (op == 3) nc__hue_span(band, factor);
    }
}

#define BAND_VALUES 8192 /* values per channel in a band: a 3-channel band stays in L2 */

void nc__fused_render(float *out, const nc__source *src, const nc__fused_plan *plan) {
    // out: (C, out_h, out_w)
    float lut8[256];
    for (int k = 0; k < 256; k++) lut8[k] = (float)k / 255.0f; /* nc_png_read's values */
    const int h = plan->out_h, w = plan->out_w, nops = plan->npost * OPS_PER_STEP;
    const size_t plane = (size_t)h * (size_t)w;
    const int rows = BAND_VALUES / w > 1 ? BAND_VALUES / w : 1;
    /* Band by band while the band is in cache: sampling, then the operations up to the
     * next contrast adjustment, summing for its mean; the next pass over the bands
     * applies that contrast and continues. Without contrast it is one pass. */
    int from = 0, pending = -1, first = 1;
    float mean = 0.0f;
    for (;;) {
        int to = from;
        while (to < nops && !is_contrast(plan, to)) to++;
        double sum = 0.0;
        for (int y0 = 0; y0 < h; y0 += rows) {
            int y1 = y0 + rows < h ? y0 + rows : h;
            nc__span band = {.x = out + (size_t)y0 * (size_t)w, .c = plan->c, .n = (size_t)(y1 - y0) * (size_t)w,
                             .stride = plane};
            if (first) render_rows(out, src, plan, lut8, y0, y1);
            if (pending >= 0) {
                const nc__post *s = &plan->post[pending / OPS_PER_STEP];
                nc__contrast_apply(&band, s->p.jitter[1], mean);
            }
            run_ops(plan, out, &band, y0, y1, from, to);
            if (to < nops) sum += nc__contrast_sum(&band);
        }
        if (to == nops) return;
        mean = (float)sum / (float)(plan->c == 3 ? plane : (size_t)plan->c * plane);
        pending = to;
        from = to + 1;
        first = 0;
    }
}
