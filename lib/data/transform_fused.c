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

/* Samples n mapped positions of every channel into out (C, plane) at column `col`. */
static void sample_row(float *out, size_t plane, size_t col, const coords *q, int n, const nc__source *src,
                       const float *lut8) {
    const int C = src->channels, W = src->width, H = src->height;
    for (int k = 0; k < n; k++) {
        float *o = out + col + (size_t)k;
        float cover = q->cover[k];
        if (cover == 0.0f) {
            for (int c = 0; c < C; c++) o[(size_t)c * plane] = 0.0f;
            continue;
        }
        if (src->planar) {
            taps t = make_taps(q->x[k], q->y[k], W, H, (size_t)W, 1);
            const float *p = src->planar;
            size_t pl = (size_t)W * (size_t)H;
            for (int c = 0; c < C; c++, p += pl)
                o[(size_t)c * plane] = blend(&t, p[t.o[0]], p[t.o[1]], p[t.o[2]], p[t.o[3]]) * cover;
        } else if (src->px->depth == 8) {
            taps t = make_taps(q->x[k], q->y[k], W, H, (size_t)W * (size_t)C, (size_t)C);
            const unsigned char *p = src->px->data;
            for (int c = 0; c < C; c++, p++)
                o[(size_t)c * plane] =
                    blend(&t, lut8[p[t.o[0]]], lut8[p[t.o[1]]], lut8[p[t.o[2]]], lut8[p[t.o[3]]]) * cover;
        } else {
            taps t = make_taps(q->x[k], q->y[k], W, H, (size_t)W * (size_t)C * 2, (size_t)C * 2);
            const unsigned char *p = src->px->data;
            for (int c = 0; c < C; c++, p += 2)
                o[(size_t)c * plane] =
                    blend(&t, u16_at(p + t.o[0]), u16_at(p + t.o[1]), u16_at(p + t.o[2]), u16_at(p + t.o[3])) * cover;
        }
    }
}

/* ---------------------------------------------------------------- render */

static void render_geometry(float *out, const nc__source *src, const nc__fused_plan *plan) {
    float lut8[256];
    for (int k = 0; k < 256; k++) lut8[k] = (float)k / 255.0f; /* nc_png_read's values */
    const size_t plane = (size_t)plan->out_h * (size_t)plan->out_w;
    coords q;
    for (int oy = 0; oy < plan->out_h; oy++)
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

void nc__fused_render(float *out, const nc__source *src, const nc__fused_plan *plan) {
    // out: (C, out_h, out_w)
    render_geometry(out, src, plan);
    const int c = plan->c, h = plan->out_h, w = plan->out_w;
    for (int i = 0; i < plan->npost; i++) {
        const nc__post *s = &plan->post[i];
        switch (s->kind) {
        case NC__STEP_COLOR_JITTER: nc__apply_jitter(out, c, h, w, &s->p); break;
        case NC__STEP_NORMALIZE: nc__normalize(out, c, h, w, s->mean, s->std); break;
        case NC__STEP_RANDOM_ERASING:
            if (s->p.apply) nc__erase(out, c, h, w, s->p.top, s->p.left, s->p.height, s->p.width, s->value);
            break;
        default: break;
        }
    }
}
