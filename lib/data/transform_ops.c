/* transform_ops.c — the pixel kernels behind the transform pipeline: bilinear resize,
 * crops, flips, inverse affine warps, colour adjustments, erasing and normalisation
 * on planar float images. Each follows torchvision 0.14's tensor code operation by
 * operation in float32, so results agree with it to a few ulps (see test_transform.c). */
#include "data/transform.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* truncf / floorf without a libm call (exact for every float; NaN passes through). */
static inline float trunc_f(float v) {
    /* from 2^23 on, floats are integers; the conversion runs on every value (0 for
     * those), so that loops calling this stay free of branches and vectorise */
    int small = fabsf(v) < 8388608.0f;
    float t = (float)(int32_t)(small ? v : 0.0f);
    return small ? t : v;
}

static inline float floor_f(float v) {
    float t = trunc_f(v), below = t - 1.0f; /* computed always: a select, not a branch */
    return t > v ? below : t;
}

/* fmodf(v, 1.0f): v - trunc(v) is exact. */
static inline float fmod1(float v) {
    return v - trunc_f(v);
}

/* ------------------------------------------------------------------ resize */

/* One output coordinate of a linear interpolation, as ATen's upsample kernels compute
 * it for align_corners=False: the source position scale * (d + 0.5) - 0.5 (float
 * scale, double arithmetic, clamped at 0), its two neighbours and their float weights. */
typedef struct lin_tap {
    int i0, i1;
    float w0, w1;
} lin_tap;

static lin_tap linear_tap(int d, int in_n, int out_n) {
    lin_tap t;
    float scale = (float)in_n / (float)out_n;
    double src = (double)scale * ((double)d + 0.5) - 0.5;
    if (src < 0.0) src = 0.0;
    int i = (int)src;
    if (i > in_n - 1) i = in_n - 1;
    double lam = src - (double)i;
    if (lam > 1.0) lam = 1.0;
    t.i0 = i;
    t.i1 = i + (i < in_n - 1 ? 1 : 0);
    t.w1 = (float)lam;
    t.w0 = 1.0f - t.w1;
    return t;
}

/* a * b + c rounded once, like a fused multiply-add but without a libm call: the
 * product of two floats is exact in double, so only the sum rounds (in double, then
 * to float; the double rounding can differ from a true fmaf in ~1 case in 2^29). */
static inline float fused(float a, float b, float c) {
    return (float)((double)a * (double)b + (double)c);
}

/* t0 * w0 + t1 * w1 rounded as torch's x86 build computes it (one fused multiply-add):
 * with it our resize is bit-identical to torch's for multi-channel images. */
static inline float lerp2(float t0, float w0, float t1, float w1) {
    return fused(t0, w0, t1 * w1);
}

#define TAP_BLOCK 256 /* output columns whose taps are computed at once */

void nc__resize_bilinear(float *out, const float *x, int c, int h, int w, int top, int left, int bh, int bw,
                         int oh, int ow) {
    // out: (C, oh, ow); x: (C, h, w), the box (top, left, bh, bw) lies inside it
    lin_tap tx[TAP_BLOCK];
    for (int bx = 0; bx < ow; bx += TAP_BLOCK) {
        int nb = ow - bx < TAP_BLOCK ? ow - bx : TAP_BLOCK;
        for (int k = 0; k < nb; k++) {
            tx[k] = linear_tap(bx + k, bw, ow);
            tx[k].i0 += left;
            tx[k].i1 += left;
        }
        for (int ch = 0; ch < c; ch++) {
            const float *p = x + (size_t)ch * (size_t)h * (size_t)w;
            for (int oy = 0; oy < oh; oy++) {
                lin_tap ty = linear_tap(oy, bh, oh);
                const float *r0 = p + (size_t)(top + ty.i0) * (size_t)w, *r1 = p + (size_t)(top + ty.i1) * (size_t)w;
                float *o = out + ((size_t)ch * (size_t)oh + (size_t)oy) * (size_t)ow + (size_t)bx;
                for (int k = 0; k < nb; k++) {
                    float a = lerp2(r0[tx[k].i0], tx[k].w0, r0[tx[k].i1], tx[k].w1);
                    float b = lerp2(r1[tx[k].i0], tx[k].w0, r1[tx[k].i1], tx[k].w1);
                    o[k] = lerp2(a, ty.w0, b, ty.w1);
                }
            }
        }
    }
}

/* --------------------------------------------------------- crops and flips */

void nc__crop(float *out, const float *x, int c, int h, int w, int top, int left, int oh, int ow) {
    // out: (C, oh, ow); x: (C, h, w)
    for (int ch = 0; ch < c; ch++) {
        const float *p = x + (size_t)ch * (size_t)h * (size_t)w;
        for (int oy = 0; oy < oh; oy++) {
            float *o = out + ((size_t)ch * (size_t)oh + (size_t)oy) * (size_t)ow;
            long sy = (long)oy + top;
            if (sy < 0 || sy >= h) {
                memset(o, 0, (size_t)ow * sizeof *o);
                continue;
            }
            for (int ox = 0; ox < ow; ox++) {
                long sx = (long)ox + left;
                o[ox] = (sx < 0 || sx >= w) ? 0.0f : p[(size_t)sy * (size_t)w + (size_t)sx];
            }
        }
    }
}

void nc__hflip(float *out, const float *x, int c, int h, int w) {
    for (size_t r = 0; r < (size_t)c * (size_t)h; r++) {
        const float *p = x + r * (size_t)w;
        float *o = out + r * (size_t)w;
        for (int i = 0; i < w; i++) o[i] = p[w - 1 - i];
    }
}

void nc__vflip(float *out, const float *x, int c, int h, int w) {
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            memcpy(out + ((size_t)ch * (size_t)h + (size_t)y) * (size_t)w,
                   x + ((size_t)ch * (size_t)h + (size_t)(h - 1 - y)) * (size_t)w, (size_t)w * sizeof *out);
}

/* ------------------------------------------------------------------- warps */

/* torchvision's _get_inverse_affine_matrix with center (0, 0) and no shear. */
static void inverse_affine(double m[6], double angle, double tx, double ty, double scale) {
    double rot = angle * 3.14159265358979323846 / 180.0;
    double a = cos(rot), b = -sin(rot), c = sin(rot), d = cos(rot);
    m[0] = d / scale;
    m[1] = -b / scale;
    m[2] = 0.0;
    m[3] = -c / scale;
    m[4] = a / scale;
    m[5] = 0.0;
    m[2] += m[0] * (-tx) + m[1] * (-ty);
    m[5] += m[3] * (-tx) + m[4] * (-ty);
}

void nc__rotation_matrix(double m[6], double angle) {
    /* F.rotate passes -angle: its rotations are counter-clockwise */
    inverse_affine(m, -angle, 0.0, 0.0, 1.0);
}

void nc__affine_matrix(double m[6], int tx, int ty, double scale) {
    inverse_affine(m, 0.0, (double)tx, (double)ty, scale);
}

/* The four-tap sum of torch's vectorised grid_sample, a chain of fused multiply-adds. */
static float bilerp4(float v_nw, float v_ne, float v_sw, float v_se, float nw, float ne, float sw, float se) {
    return fused(v_se, se, fused(v_sw, sw, fused(v_ne, ne, v_nw * nw)));
}

void nc__warp_affine(float *out, const float *x, int c, int h, int w, const double m[6]) {
    // out, x: (C, h, w)
    /* As _gen_affine_grid: theta in float32, divided by the half sizes; the base grid
     * holds pixel centres relative to the image centre; grid_sample (bilinear, zero
     * padding, align_corners=False) then maps back to pixel units. */
    float hw = (float)(0.5 * w), hh = (float)(0.5 * h);
    float th[6];
    for (int i = 0; i < 6; i++) th[i] = (float)m[i];
    float r00 = th[0] / hw, r10 = th[1] / hw, r20 = th[2] / hw;
    float r01 = th[3] / hh, r11 = th[4] / hh, r21 = th[5] / hh;
    size_t plane = (size_t)h * (size_t)w;
    for (int oy = 0; oy < h; oy++) {
        float by = (float)((double)oy + 0.5 - 0.5 * h);
        for (int ox = 0; ox < w; ox++) {
            float bx = (float)((double)ox + 0.5 - 0.5 * w);
            float gx = bx * r00 + by * r10 + r20;
            float gy = bx * r01 + by * r11 + r21;
            /* grid_sample's unnormalisation (g + 1) * size / 2 - 0.5, fused as in torch */
            float ix = fused(gx + 1.0f, hw, -0.5f);
            float iy = fused(gy + 1.0f, hh, -0.5f);
            size_t o = (size_t)oy * (size_t)w + (size_t)ox;
            /* far outside (or not finite): nothing to sample */
            if (!(ix > -2.0f && ix < (float)w + 1.0f && iy > -2.0f && iy < (float)h + 1.0f)) {
                for (int ch = 0; ch < c; ch++) out[(size_t)ch * plane + o] = 0.0f;
                continue;
            }
            float fx = floor_f(ix), fy = floor_f(iy);
            float we = ix - fx, e = 1.0f - we;
            float n = iy - fy, s = 1.0f - n;
            float nw = s * e, ne = s * we, sw = n * e, se = n * we;
            int x0 = (int)fx, y0 = (int)fy, x1 = x0 + 1, y1 = y0 + 1;
            int in_x0 = x0 >= 0 && x0 < w, in_x1 = x1 >= 0 && x1 < w;
            int in_y0 = y0 >= 0 && y0 < h, in_y1 = y1 >= 0 && y1 < h;
            int k_nw = in_x0 && in_y0, k_ne = in_x1 && in_y0, k_sw = in_x0 && in_y1, k_se = in_x1 && in_y1;
            /* torchvision's fill: the warped all-ones "coverage" channel multiplies the
             * result (fill 0), so partly covered border pixels fade towards 0 */
            float cover = bilerp4(k_nw ? 1.0f : 0.0f, k_ne ? 1.0f : 0.0f, k_sw ? 1.0f : 0.0f, k_se ? 1.0f : 0.0f,
                                  nw, ne, sw, se);
            size_t a_nw = k_nw ? (size_t)y0 * (size_t)w + (size_t)x0 : 0;
            size_t a_ne = k_ne ? (size_t)y0 * (size_t)w + (size_t)x1 : 0;
            size_t a_sw = k_sw ? (size_t)y1 * (size_t)w + (size_t)x0 : 0;
            size_t a_se = k_se ? (size_t)y1 * (size_t)w + (size_t)x1 : 0;
            for (int ch = 0; ch < c; ch++) {
                const float *p = x + (size_t)ch * plane;
                float v_nw = k_nw ? p[a_nw] : 0.0f, v_ne = k_ne ? p[a_ne] : 0.0f;
                float v_sw = k_sw ? p[a_sw] : 0.0f, v_se = k_se ? p[a_se] : 0.0f;
                float v = bilerp4(v_nw, v_ne, v_sw, v_se, nw, ne, sw, se);
                out[(size_t)ch * plane + o] = v * cover;
            }
        }
    }
}

/* ------------------------------------------------------------------ colour */

static float clamp01(float v) {
    return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

/* torchvision's _blend(img1, img2, ratio) weights: ratio and (1 - ratio) in float32. */
static void blend_weights(float factor, float *a, float *b) {
    *a = factor;
    *b = (float)(1.0 - (double)factor);
}

static float gray(float r, float g, float b) {
    return 0.2989f * r + 0.587f * g + 0.114f * b;
}

/* The whole image as a span. */
static nc__span whole(float *x, int c, int h, int w) {
    size_t plane = (size_t)h * (size_t)w;
    return (nc__span){.x = x, .c = c, .n = plane, .stride = plane};
}

NC__VECTOR_CLONES static void brightness_span_loop(const nc__span *s, float factor) {
    float a, b;
    blend_weights(factor, &a, &b);
    for (int ch = 0; ch < s->c; ch++) {
        float *x = s->x + (size_t)ch * s->stride;
        for (size_t i = 0; i < s->n; i++) x[i] = clamp01(a * x[i] + b * 0.0f);
    }
}

void nc__brightness_span(const nc__span *s, float factor) {
    brightness_span_loop(s, factor);
}

NC__VECTOR_CLONES static double contrast_sum_loop(const nc__span *s) {
    /* torch.mean: a float32 sum (accumulated here in double) divided in float32; the
     * grayscale image for 3 channels, every value otherwise */
    double sum = 0.0;
    if (s->c == 3) {
        const float *r = s->x, *g = r + s->stride, *b = g + s->stride;
        for (size_t i = 0; i < s->n; i++) sum += gray(r[i], g[i], b[i]);
    } else {
        for (int ch = 0; ch < s->c; ch++)
            for (size_t i = 0; i < s->n; i++) sum += s->x[(size_t)ch * s->stride + i];
    }
    return sum;
}

double nc__contrast_sum(const nc__span *s) {
    return contrast_sum_loop(s);
}

NC__VECTOR_CLONES static void contrast_apply_loop(const nc__span *s, float factor, float mean) {
    float a, b;
    blend_weights(factor, &a, &b);
    float bm = b * mean;
    for (int ch = 0; ch < s->c; ch++) {
        float *x = s->x + (size_t)ch * s->stride;
        for (size_t i = 0; i < s->n; i++) x[i] = clamp01(a * x[i] + bm);
    }
}

void nc__contrast_apply(const nc__span *s, float factor, float mean) {
    contrast_apply_loop(s, factor, mean);
}

NC__VECTOR_CLONES static void saturation_span_loop(const nc__span *s, float factor) {
    float a, b;
    blend_weights(factor, &a, &b);
    float *restrict r = s->x, *restrict g = r + s->stride, *restrict bl = g + s->stride; /* disjoint planes */
    for (size_t i = 0; i < s->n; i++) {
        float gb = b * gray(r[i], g[i], bl[i]);
        r[i] = clamp01(a * r[i] + gb);
        g[i] = clamp01(a * g[i] + gb);
        bl[i] = clamp01(a * bl[i] + gb);
    }
}

void nc__saturation_span(const nc__span *s, float factor) {
    saturation_span_loop(s, factor);
}

void nc__adjust_brightness(float *x, int c, int h, int w, float factor) {
    nc__span s = whole(x, c, h, w);
    nc__brightness_span(&s, factor);
}

void nc__adjust_contrast(float *x, int c, int h, int w, float factor) {
    nc__span s = whole(x, c, h, w);
    size_t count = c == 3 ? s.n : (size_t)c * s.n;
    nc__contrast_apply(&s, factor, (float)nc__contrast_sum(&s) / (float)count);
}

void nc__adjust_saturation(float *x, int h, int w, float factor) {
    nc__span s = whole(x, 3, h, w);
    nc__saturation_span(&s, factor);
}

/* torch.remainder(v, 1.0) for floats: fmod, shifted into [0, 1). */
static float remainder1(float v) {
    float m = fmod1(v), up = m + 1.0f;
    return m < 0.0f ? up : m;
}

/* One pixel of F.adjust_hue: _rgb2hsv, the shift, _hsv2rgb, in torchvision's float32
 * operations. Branch-free (selects instead of the sector table) so that the loop over
 * pixels vectorises; the selects pick the same values as torchvision's gather. */
static inline void hue_pixel(float *rp, float *gp, float *bp, float factor) {
    float r = *rp, g = *gp, b = *bp;
    float maxc = r > g ? r : g, minc = r < g ? r : g;
    maxc = maxc > b ? maxc : b;
    minc = minc < b ? minc : b;
    float cr = maxc - minc;
    float s = cr / (maxc == minc ? 1.0f : maxc);
    float crd = maxc == minc ? 1.0f : cr;
    float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
    /* hr + hg + hb of torchvision, where exactly one term is not 0 */
    float h_r = bc - gc, h_g = 2.0f + rc - bc, h_b = 4.0f + gc - rc;
    float hsum = maxc == r ? h_r : (maxc == g ? h_g : h_b);
    float hue = fmod1(hsum / 6.0f + 1.0f);
    float v = maxc;
    hue = remainder1(hue + factor);
    float fi = floor_f(hue * 6.0f); /* 0..6; sector 6 is sector 0 */
    float f = hue * 6.0f - fi;
    float p = clamp01(v * (1.0f - s));
    float q = clamp01(v * (1.0f - s * f));
    float t = clamp01(v * (1.0f - s * (1.0f - f)));
    /* sectors 0..5: r = v q p p t v, g = t v v q p p, b = p p t v v q */
    float r1 = fi == 4.0f ? t : v, g1 = fi == 3.0f ? q : t, b1 = fi == 5.0f ? q : p;
    r1 = fi == 2.0f ? p : r1;
    r1 = fi == 3.0f ? p : r1;
    r1 = fi == 1.0f ? q : r1;
    g1 = fi == 1.0f ? v : g1;
    g1 = fi == 2.0f ? v : g1;
    g1 = fi == 4.0f ? p : g1;
    g1 = fi == 5.0f ? p : g1;
    b1 = fi == 2.0f ? t : b1;
    b1 = fi == 3.0f ? v : b1;
    b1 = fi == 4.0f ? v : b1;
    *rp = r1;
    *gp = g1;
    *bp = b1;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NC_NO_ISA_DISPATCH)
#include <immintrin.h>
#define NC__HUE_AVX2 1

#define AVX2 __attribute__((target("avx2")))
static AVX2 inline __m256 sel8(__m256 cond, __m256 yes, __m256 no) { return _mm256_blendv_ps(no, yes, cond); }
static AVX2 inline __m256 eq8(__m256 a, float b) { return _mm256_cmp_ps(a, _mm256_set1_ps(b), _CMP_EQ_OQ); }

/* trunc_f, eight at a time: the int conversion of the small values, v itself from 2^23 */
static AVX2 inline __m256 trunc8(__m256 v) {
    __m256 small = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), _mm256_set1_ps(8388608.0f), _CMP_LT_OQ);
    __m256 t = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_and_ps(v, small)));
    return sel8(small, t, v);
}

static AVX2 inline __m256 clamp8(__m256 v) {
    __m256 lo = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ), hi = _mm256_cmp_ps(v, _mm256_set1_ps(1.0f), _CMP_GT_OQ);
    return sel8(lo, _mm256_setzero_ps(), sel8(hi, _mm256_set1_ps(1.0f), v));
}

/* hue_pixel's hsv part: v, s and the shifted hue of eight pixels */
static AVX2 inline __m256 hue8_hsv(__m256 r, __m256 g, __m256 b, __m256 factor, __m256 *v, __m256 *s) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 maxc = _mm256_max_ps(_mm256_max_ps(r, g), b), minc = _mm256_min_ps(_mm256_min_ps(r, g), b); /* as the ?: */
    __m256 same = _mm256_cmp_ps(maxc, minc, _CMP_EQ_OQ), cr = _mm256_sub_ps(maxc, minc);
    *s = _mm256_div_ps(cr, sel8(same, one, maxc));
    __m256 crd = sel8(same, one, cr);
    __m256 rc = _mm256_div_ps(_mm256_sub_ps(maxc, r), crd), gc = _mm256_div_ps(_mm256_sub_ps(maxc, g), crd),
           bc = _mm256_div_ps(_mm256_sub_ps(maxc, b), crd);
    __m256 h_r = _mm256_sub_ps(bc, gc), h_g = _mm256_sub_ps(_mm256_add_ps(_mm256_set1_ps(2.0f), rc), bc),
           h_b = _mm256_sub_ps(_mm256_add_ps(_mm256_set1_ps(4.0f), gc), rc);
    __m256 hsum = sel8(_mm256_cmp_ps(maxc, r, _CMP_EQ_OQ), h_r, sel8(_mm256_cmp_ps(maxc, g, _CMP_EQ_OQ), h_g, h_b));
    __m256 hue = _mm256_add_ps(_mm256_div_ps(hsum, _mm256_set1_ps(6.0f)), one);
    hue = _mm256_add_ps(_mm256_sub_ps(hue, trunc8(hue)), factor);
    __m256 m = _mm256_sub_ps(hue, trunc8(hue));
    *v = maxc;
    return sel8(_mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_LT_OQ), _mm256_add_ps(m, one), m);
}

/* hue_pixel, eight pixels at a time, operation for operation (no FMA): identical results */
static AVX2 void hue8(float *rp, float *gp, float *bp, __m256 factor) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 v, s, hue = hue8_hsv(_mm256_loadu_ps(rp), _mm256_loadu_ps(gp), _mm256_loadu_ps(bp), factor, &v, &s);
    __m256 h6 = _mm256_mul_ps(hue, _mm256_set1_ps(6.0f)), t0 = trunc8(h6);
    __m256 fi = sel8(_mm256_cmp_ps(t0, h6, _CMP_GT_OQ), _mm256_sub_ps(t0, one), t0), f = _mm256_sub_ps(h6, fi);
    __m256 p = clamp8(_mm256_mul_ps(v, _mm256_sub_ps(one, s)));
    __m256 q = clamp8(_mm256_mul_ps(v, _mm256_sub_ps(one, _mm256_mul_ps(s, f))));
    __m256 t = clamp8(_mm256_mul_ps(v, _mm256_sub_ps(one, _mm256_mul_ps(s, _mm256_sub_ps(one, f)))));
    __m256 r1 = sel8(eq8(fi, 4.0f), t, v), g1 = sel8(eq8(fi, 3.0f), q, t), b1 = sel8(eq8(fi, 5.0f), q, p);
    r1 = sel8(eq8(fi, 1.0f), q, sel8(eq8(fi, 3.0f), p, sel8(eq8(fi, 2.0f), p, r1)));
    g1 = sel8(eq8(fi, 5.0f), p, sel8(eq8(fi, 4.0f), p, sel8(eq8(fi, 2.0f), v, sel8(eq8(fi, 1.0f), v, g1))));
    b1 = sel8(eq8(fi, 4.0f), v, sel8(eq8(fi, 3.0f), v, sel8(eq8(fi, 2.0f), t, b1)));
    _mm256_storeu_ps(rp, r1);
    _mm256_storeu_ps(gp, g1);
    _mm256_storeu_ps(bp, b1);
}

static AVX2 size_t hue_span_avx2(float *r, float *g, float *b, size_t n, float factor) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) hue8(r + i, g + i, b + i, _mm256_set1_ps(factor));
    return i;
}
#undef AVX2
#endif

/* GCC 12 does not vectorise hue_pixel's loop for AVX (it does for SSE2): on a CPU with
 * AVX2 eight pixels at a time go through the intrinsics above, the rest one by one. */
void nc__hue_span(const nc__span *s, float factor) {
    float *restrict r = s->x, *restrict g = r + s->stride, *restrict b = g + s->stride; /* disjoint planes */
    size_t i = 0;
#if NC__HUE_AVX2
    if (__builtin_cpu_supports("avx2")) i = hue_span_avx2(r, g, b, s->n, factor);
#endif
    for (; i < s->n; i++) hue_pixel(r + i, g + i, b + i, factor);
}

void nc__adjust_hue(float *x, int h, int w, float factor) {
    nc__span s = whole(x, 3, h, w);
    nc__hue_span(&s, factor);
}

void nc__apply_jitter(float *x, int c, int h, int w, const nc__transform_params *p) {
    for (int k = 0; k < 4; k++) {
        int op = p->order[k];
        if (!p->jitter_on[op]) continue;
        float f = p->jitter[op];
        switch (op) {
        case 0: nc__adjust_brightness(x, c, h, w, f); break;
        case 1: nc__adjust_contrast(x, c, h, w, f); break;
        case 2: nc__adjust_saturation(x, h, w, f); break;
        default: nc__adjust_hue(x, h, w, f); break;
        }
    }
}

/* ------------------------------------------------------ erasing, normalise */

void nc__erase(float *x, int c, int h, int w, int top, int left, int bh, int bw, float value) {
    for (int ch = 0; ch < c; ch++)
        for (int y = top; y < top + bh; y++) {
            float *row = x + ((size_t)ch * (size_t)h + (size_t)y) * (size_t)w;
            for (int i = left; i < left + bw; i++) row[i] = value;
        }
}

NC__VECTOR_CLONES static void normalize_span_loop(const nc__span *s, const float *mean, const float *std) {
    for (int ch = 0; ch < s->c; ch++) {
        float *p = s->x + (size_t)ch * s->stride;
        float m = mean[ch], sd = std[ch];
        for (size_t i = 0; i < s->n; i++) p[i] = (p[i] - m) / sd;
    }
}

void nc__normalize_span(const nc__span *s, const float *mean, const float *std) {
    normalize_span_loop(s, mean, std);
}

void nc__normalize(float *x, int c, int h, int w, const float *mean, const float *std) {
    nc__span s = whole(x, c, h, w);
    nc__normalize_span(&s, mean, std);
}
