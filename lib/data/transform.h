/* transform.h — internals of the transform pipeline (lib/data/transform.c) and its
 * pixel kernels (lib/data/transform_ops.c): the fixed-parameter operations the random
 * steps are made of, and the parameter draw, exposed so that tests can compare each
 * kernel with torchvision and check the distributions of the draws. */
#ifndef NC_DATA_TRANSFORM_H
#define NC_DATA_TRANSFORM_H

#include "neurc.h"
#include "data/data.h"

#include <stdint.h>

/* Per-pixel loops compiled twice where the toolchain can: for AVX2 and for the
 * baseline, the first picked at load time when the CPU has it (GCC/clang
 * target_clones, an ifunc). Only on static functions: GCC exports the resolver of a
 * non-static one whatever its visibility. The loops are plain C that the compiler
 * vectorises; without FMA contraction (-std=c11) both versions round identically. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define NC__SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define NC__SANITIZED 1
#endif
/* Not under sanitizers: the ifunc resolver runs during relocation, before the
 * sanitizer's runtime is up, and an instrumented resolver crashes there (TSan). */
#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(NC_NO_TARGET_CLONES) && !defined(NC__SANITIZED)
#define NC__VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NC__VECTOR_CLONES
#endif

/* ---------------------------------------------------------------- kernels */
/* Planar float images: x is (C, H, W). Every kernel writes all of `out`. */

/* Bilinear resize of the box (top, left, bh, bw) of x (inside the image) to oh x ow,
 * as torch.nn.functional.interpolate(mode='bilinear', align_corners=False). */
void nc__resize_bilinear(float *out, const float *x, int c, int h, int w, int top, int left, int bh, int bw,
                         int oh, int ow);
/* out (C, oh, ow) = x shifted: out[y][x] = x[y + top][x + left], 0 outside the image. */
void nc__crop(float *out, const float *x, int c, int h, int w, int top, int left, int oh, int ow);
void nc__hflip(float *out, const float *x, int c, int h, int w);
void nc__vflip(float *out, const float *x, int c, int h, int w);
/* Inverse affine warp as torchvision's tensor affine/rotate with fill=0: out(p) =
 * bilinear(x, m * p) * coverage(m * p), p and m * p relative to the image center;
 * m = {a, b, tx, c, d, ty} maps an output position to its source. */
void nc__warp_affine(float *out, const float *x, int c, int h, int w, const double m[6]);
/* torchvision's inverse matrix for F.rotate(img, angle) (degrees, counter-clockwise). */
void nc__rotation_matrix(double m[6], double angle);
/* torchvision's inverse matrix for F.affine(img, angle=0, translate=(tx, ty), scale, shear=0). */
void nc__affine_matrix(double m[6], int tx, int ty, double scale);

/* In-place colour operations, torchvision's F.adjust_* on float images: brightness
 * and contrast for any channel count (contrast blends with the grayscale mean for 3
 * channels, the mean of all values otherwise); saturation and hue for 3 channels. */
void nc__adjust_brightness(float *x, int c, int h, int w, float factor);
void nc__adjust_contrast(float *x, int c, int h, int w, float factor);
void nc__adjust_saturation(float *x, int h, int w, float factor);
void nc__adjust_hue(float *x, int h, int w, float factor);
/* The same operations on a span: c channels of n consecutive values each, channel k
 * at x + k * stride (a band of rows of a planar image: the fused path works band by
 * band while the band is in cache). Every value gets the same arithmetic as above. */
typedef struct nc__span {
    float *x;
    int c;
    size_t n, stride;
} nc__span;
void nc__brightness_span(const nc__span *s, float factor);
/* contrast's sum: of the grayscale values for 3 channels, of every value otherwise
 * (channel after channel); the mean divides it by n (3 channels) or c * n in float */
double nc__contrast_sum(const nc__span *s);
void nc__contrast_apply(const nc__span *s, float factor, float mean);
void nc__saturation_span(const nc__span *s, float factor); /* 3 channels */
void nc__hue_span(const nc__span *s, float factor);        /* 3 channels */
void nc__normalize_span(const nc__span *s, const float *mean, const float *std);

struct nc__transform_params;
/* ColorJitter with drawn parameters p: the enabled adjustments in p's order. */
void nc__apply_jitter(float *x, int c, int h, int w, const struct nc__transform_params *p);
/* Fills the box (top, left, bh, bw) of every channel with value. */
void nc__erase(float *x, int c, int h, int w, int top, int left, int bh, int bw, float value);
/* x[c] = (x[c] - mean[c]) / std[c]. */
void nc__normalize(float *x, int c, int h, int w, const float *mean, const float *std);

/* --------------------------------------------------------------- pipeline */

typedef enum nc__step_kind {
    NC__STEP_RESIZE,
    NC__STEP_CENTER_CROP,
    NC__STEP_RANDOM_RESIZED_CROP,
    NC__STEP_HFLIP,
    NC__STEP_VFLIP,
    NC__STEP_ROTATION,
    NC__STEP_AFFINE,
    NC__STEP_COLOR_JITTER,
    NC__STEP_RANDOM_ERASING,
    NC__STEP_NORMALIZE
} nc__step_kind;

/* The random parameters one step drew for one sample. */
typedef struct nc__transform_params {
    int apply;                     /* flips, erasing: the step acts; 1 for the others */
    int top, left, height, width;  /* random resized crop: the crop box; erasing: the box */
    int fallback;                  /* random resized crop / erasing: no try fitted */
    double angle;                  /* rotation, degrees */
    int tx, ty;                    /* affine translation, pixels */
    double scale;                  /* affine scale */
    int jitter_on[4];              /* brightness, contrast, saturation, hue: enabled */
    float jitter[4];               /* their factors (hue: the shift) */
    int order[4];                  /* jitter: torchvision's fn_idx, a permutation of 0..3 */
} nc__transform_params;

int nc__transform_num_steps(const nc_transform *t);
nc__step_kind nc__transform_step_kind(const nc_transform *t, int step);
/* The parameters step `step` draws for sample (seed, epoch, index) when its input is
 * c x h x w: exactly what nc_transform_apply uses. Deterministic steps get apply = 1. */
void nc__transform_draw(const nc_transform *t, int step, int c, int h, int w, uint64_t seed, uint64_t epoch,
                        uint64_t index, nc__transform_params *p);

/* ------------------------------------------------------------ fused path */
/* The fast path (transform_fused.c): every geometric step of a sample composed into
 * one map from output pixels to source coordinates, sampled once (bilinear), then
 * the colour, normalisation and erasing steps in their order on the float output.
 * See docs/data.md (fused and exact transforms) for how it differs from applying the
 * steps one by one. */

#define NC__FUSED_MAX_GEOM 16 /* geometric steps one plan holds; longer pipelines run exact */
#define NC__FUSED_MAX_POST 16 /* colour / normalize / erasing steps one plan holds */

typedef enum nc__geom_kind {
    NC__GEOM_RESIZE, /* the box (top, left, bh, bw) of the input to the output size */
    NC__GEOM_SHIFT,  /* center crop inside the input: out(y, x) = in(y + top, x + left) */
    NC__GEOM_HFLIP,
    NC__GEOM_VFLIP,
    NC__GEOM_WARP    /* rotation / affine: torchvision's inverse matrix m, zero fill */
} nc__geom_kind;

typedef struct nc__geom {
    nc__geom_kind kind;
    int in_h, in_w, out_h, out_w;
    int top, left, bh, bw;
    double m[6];
} nc__geom;

typedef struct nc__post {
    nc__step_kind kind;            /* NC__STEP_COLOR_JITTER, _NORMALIZE or _RANDOM_ERASING */
    nc__transform_params p;        /* the step's draw */
    const float *mean, *std;       /* normalize: borrowed from the transform */
    float value;                   /* erasing fill */
} nc__post;

/* One sample's steps with their draws: what nc__fused_render executes. */
typedef struct nc__fused_plan {
    int c, out_h, out_w;
    int ngeom, npost;
    nc__geom geom[NC__FUSED_MAX_GEOM]; /* in pipeline order */
    nc__post post[NC__FUSED_MAX_POST]; /* in pipeline order, after all of geom */
} nc__fused_plan;

/* A sample to transform: planar floats, or the decoder's interleaved samples. */
typedef struct nc__source {
    int channels, height, width;
    const float *planar;     /* (C, H, W); NULL: px */
    const nc__pixels *px;
} nc__source;

/* Plans sample (seed, epoch, index) of a c x h x w input for the fused path. Returns 1
 * with *plan filled, or 0 when the transform runs exact (nc_transform_set_exact),
 * cannot be fused (erasing or normalize before a geometric step, a padding center
 * crop, too many steps) or the sizes are invalid (the exact path reports those). */
int nc__transform_plan(const nc_transform *t, int c, int h, int w, uint64_t seed, uint64_t epoch, uint64_t index,
                       nc__fused_plan *plan);
/* Writes the plan's output (C, out_h, out_w) for src into out (src matches plan). */
void nc__fused_render(float *out, const nc__source *src, const nc__fused_plan *plan);

#endif
