/* transform.c — nc_transform: an ordered list of augmentation/preprocessing steps with
 * torchvision 0.14 semantics, the training/eval presets, and the per-sample draw of
 * random parameters from the counter-based RNG keyed by (seed, epoch, index, step).
 * A built transform is read-only, so one can serve many loader threads at once. */
#include "data/transform.h"
#include "data/data.h"
#include "core/context.h"
#include "core/rng.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct step {
    nc__step_kind kind;
    int height, width;   /* resize (width 0: shorter side), center crop, random resized crop */
    float p;             /* flips, erasing: probability */
    float a[4];          /* random resized crop / erasing: scale min, max, ratio min, max;
                            rotation: degrees; affine: tx, ty, scale min, max;
                            jitter: brightness, contrast, saturation, hue */
    float value;         /* erasing fill */
    int channels;        /* normalize */
    float *mean, *std;   /* normalize: (channels) each, owned */
} step;

struct nc_transform {
    nc_context *ctx;     /* allocator and error text for building */
    step *steps;         /* (count) */
    size_t count, cap;
    int exact;           /* nc_transform_set_exact: every step on its own, as torchvision */
};

/* Counters per step: enough for every draw a step makes (erasing: 1 + 2*10 + 2). */
#define DRAWS_PER_STEP 64u

/* ------------------------------------------------------------ create/destroy */

nc_status nc_transform_create(nc_context *ctx, nc_transform **out) {
    if (!ctx || !out) return nc__error(ctx, NC_ERR_NULL, "nc_transform_create: NULL argument");
    *out = NULL;
    nc_transform *t = nc__calloc(ctx, 1, sizeof *t);
    if (!t) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_transform_create: out of memory");
    t->ctx = ctx;
    *out = t;
    return NC_OK;
}

void nc_transform_destroy(nc_transform *t) {
    if (!t) return;
    for (size_t i = 0; i < t->count; i++) {
        nc__free(t->ctx, t->steps[i].mean);
        nc__free(t->ctx, t->steps[i].std);
    }
    nc__free(t->ctx, t->steps);
    nc__free(t->ctx, t);
}

nc_status nc_transform_set_exact(nc_transform *t, int exact) {
    if (!t) return nc__error(NULL, NC_ERR_NULL, "nc_transform_set_exact: NULL transform");
    t->exact = exact != 0;
    return NC_OK;
}

/* Appends s (taking ownership of its mean/std, freed on failure). */
static nc_status push(nc_transform *t, const step *s) {
    if (nc__grow(t->ctx, (void **)&t->steps, sizeof *t->steps, &t->cap, t->count + 1) != 0) {
        nc__free(t->ctx, s->mean);
        nc__free(t->ctx, s->std);
        return nc__error(t->ctx, NC_ERR_OUT_OF_MEMORY, "transform: out of memory adding a step");
    }
    t->steps[t->count++] = *s;
    return NC_OK;
}

/* ------------------------------------------------------------ argument checks */

#define NULL_CHECK(t, who) \
    do { \
        if (!(t)) return nc__error(NULL, NC_ERR_NULL, "%s: NULL transform", who); \
    } while (0)

/* An NC_ERR_INVALID_ARGUMENT with its message, in the transform's context. */
#define INVALID(...) nc__error(t->ctx, NC_ERR_INVALID_ARGUMENT, __VA_ARGS__)

static int is_prob(float p) {
    return p >= 0.0f && p <= 1.0f; /* false for NaN */
}

static nc_status check_range(const nc_transform *t, const char *who, const char *what, float lo, float hi,
                             int lo_may_be_zero) {
    if (!isfinite(lo) || !isfinite(hi) || lo < 0.0f || (!lo_may_be_zero && lo == 0.0f))
        return INVALID("%s: %s_min %g must be finite and %s", who, what, (double)lo, lo_may_be_zero ? ">= 0" : "> 0");
    if (hi <= 0.0f)
        return INVALID("%s: %s_max %g must be > 0", who, what, (double)hi);
    if (lo > hi)
        return INVALID("%s: %s_min %g > %s_max %g", who, what, (double)lo, what, (double)hi);
    return NC_OK;
}

static nc_status check_size(const nc_transform *t, const char *who, int height, int width, int width_may_be_0) {
    if (height < 1)
        return INVALID("%s: height %d must be >= 1", who, height);
    if (width < (width_may_be_0 ? 0 : 1))
        return INVALID("%s: width %d must be >= %d", who, width, width_may_be_0 ? 0 : 1);
    return NC_OK;
}

/* ------------------------------------------------------------------- steps */

nc_status nc_transform_add_resize(nc_transform *t, int height, int width) {
    NULL_CHECK(t, "resize");
    nc_status st = check_size(t, "resize", height, width, 1);
    if (st != NC_OK) return st;
    step s = {.kind = NC__STEP_RESIZE, .height = height, .width = width};
    return push(t, &s);
}

nc_status nc_transform_add_center_crop(nc_transform *t, int height, int width) {
    NULL_CHECK(t, "center_crop");
    nc_status st = check_size(t, "center_crop", height, width, 0);
    if (st != NC_OK) return st;
    step s = {.kind = NC__STEP_CENTER_CROP, .height = height, .width = width};
    return push(t, &s);
}

nc_status nc_transform_add_random_resized_crop(nc_transform *t, int height, int width, float scale_min,
                                               float scale_max, float ratio_min, float ratio_max) {
    static const char *who = "random_resized_crop";
    NULL_CHECK(t, who);
    nc_status st = check_size(t, who, height, width, 0);
    if (st == NC_OK) st = check_range(t, who, "scale", scale_min, scale_max, 1);
    if (st == NC_OK) st = check_range(t, who, "ratio", ratio_min, ratio_max, 0);
    if (st != NC_OK) return st;
    step s = {.kind = NC__STEP_RANDOM_RESIZED_CROP, .height = height, .width = width,
              .a = {scale_min, scale_max, ratio_min, ratio_max}};
    return push(t, &s);
}

static nc_status add_flip(nc_transform *t, nc__step_kind kind, const char *who, float p) {
    NULL_CHECK(t, who);
    if (!is_prob(p)) return INVALID("%s: p %g is not in [0, 1]", who, (double)p);
    step s = {.kind = kind, .p = p};
    return push(t, &s);
}

nc_status nc_transform_add_hflip(nc_transform *t, float p) {
    return add_flip(t, NC__STEP_HFLIP, "hflip", p);
}

nc_status nc_transform_add_vflip(nc_transform *t, float p) {
    return add_flip(t, NC__STEP_VFLIP, "vflip", p);
}

nc_status nc_transform_add_rotation(nc_transform *t, float degrees) {
    NULL_CHECK(t, "rotation");
    if (!(degrees >= 0.0f && degrees <= 360.0f))
        return INVALID("rotation: degrees %g is not in [0, 360]", (double)degrees);
    step s = {.kind = NC__STEP_ROTATION, .a = {degrees}};
    return push(t, &s);
}

nc_status nc_transform_add_affine(nc_transform *t, float translate_x, float translate_y, float scale_min,
                                  float scale_max) {
    NULL_CHECK(t, "affine");
    if (!is_prob(translate_x)) return INVALID("affine: translate_x %g is not in [0, 1]", (double)translate_x);
    if (!is_prob(translate_y)) return INVALID("affine: translate_y %g is not in [0, 1]", (double)translate_y);
    nc_status st = check_range(t, "affine", "scale", scale_min, scale_max, 0);
    if (st != NC_OK) return st;
    step s = {.kind = NC__STEP_AFFINE, .a = {translate_x, translate_y, scale_min, scale_max}};
    return push(t, &s);
}

nc_status nc_transform_add_color_jitter(nc_transform *t, float brightness, float contrast, float saturation,
                                        float hue) {
    NULL_CHECK(t, "color_jitter");
    const float v[3] = {brightness, contrast, saturation};
    static const char *names[3] = {"brightness", "contrast", "saturation"};
    for (int i = 0; i < 3; i++)
        if (!(v[i] >= 0.0f && isfinite(v[i])))
            return INVALID("color_jitter: %s %g must be finite and >= 0", names[i], (double)v[i]);
    if (!(hue >= 0.0f && hue <= 0.5f)) return INVALID("color_jitter: hue %g is not in [0, 0.5]", (double)hue);
    step s = {.kind = NC__STEP_COLOR_JITTER, .a = {brightness, contrast, saturation, hue}};
    return push(t, &s);
}

nc_status nc_transform_add_random_erasing(nc_transform *t, float p, float scale_min, float scale_max,
                                          float ratio_min, float ratio_max, float value) {
    static const char *who = "random_erasing";
    NULL_CHECK(t, who);
    if (!is_prob(p)) return INVALID("random_erasing: p %g is not in [0, 1]", (double)p);
    nc_status st = check_range(t, who, "scale", scale_min, scale_max, 1);
    if (st == NC_OK && scale_max > 1.0f) st = INVALID("random_erasing: scale_max %g is above 1", (double)scale_max);
    if (st == NC_OK) st = check_range(t, who, "ratio", ratio_min, ratio_max, 0);
    if (st == NC_OK && !isfinite(value)) st = INVALID("random_erasing: value %g is not finite", (double)value);
    if (st != NC_OK) return st;
    step s = {.kind = NC__STEP_RANDOM_ERASING, .p = p, .a = {scale_min, scale_max, ratio_min, ratio_max},
              .value = value};
    return push(t, &s);
}

nc_status nc_transform_add_normalize(nc_transform *t, const float *mean, const float *std, int channels) {
    NULL_CHECK(t, "normalize");
    if (!mean || !std) return nc__error(t->ctx, NC_ERR_NULL, "normalize: NULL mean or std");
    if (channels < 1) return INVALID("normalize: channels %d must be >= 1", channels);
    for (int c = 0; c < channels; c++) {
        if (!isfinite(mean[c]))
            return INVALID("normalize: mean[%d] %g is not finite", c, (double)mean[c]);
        if (!(std[c] > 0.0f && isfinite(std[c])))
            return INVALID("normalize: std[%d] %g must be finite and > 0", c, (double)std[c]);
    }
    step s = {.kind = NC__STEP_NORMALIZE, .channels = channels};
    s.mean = nc__alloc(t->ctx, (size_t)channels * sizeof(float));
    s.std = nc__alloc(t->ctx, (size_t)channels * sizeof(float));
    if (!s.mean || !s.std) {
        nc__free(t->ctx, s.mean);
        nc__free(t->ctx, s.std);
        return nc__error(t->ctx, NC_ERR_OUT_OF_MEMORY, "normalize: out of memory");
    }
    memcpy(s.mean, mean, (size_t)channels * sizeof(float));
    memcpy(s.std, std, (size_t)channels * sizeof(float));
    return push(t, &s);
}

/* ------------------------------------------------------------------- sizes */

/* Python's round() on doubles: halves go to the even neighbour. */
static double round_half_even(double v) {
    double f = floor(v), d = v - f;
    if (d > 0.5) return f + 1.0;
    if (d < 0.5) return f;
    return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

/* The output size of step s for an h x w input; NC_ERR_LIMIT when a side would not fit an int. */
static nc_status step_size(const step *s, int h, int w, int *oh, int *ow) {
    switch (s->kind) {
    case NC__STEP_RESIZE:
        if (s->width > 0) {
            *oh = s->height;
            *ow = s->width;
        } else { /* torchvision's _compute_resized_output_size with one size */
            int shorter = w <= h ? w : h, longer = w <= h ? h : w;
            double other = floor((double)((int64_t)s->height * longer) / (double)shorter);
            if (other > INT_MAX || other < 1.0) return NC_ERR_LIMIT;
            *oh = w <= h ? (int)other : s->height;
            *ow = w <= h ? s->height : (int)other;
        }
        return NC_OK;
    case NC__STEP_CENTER_CROP:
    case NC__STEP_RANDOM_RESIZED_CROP:
        *oh = s->height;
        *ow = s->width;
        return NC_OK;
    default:
        *oh = h;
        *ow = w;
        return NC_OK;
    }
}

static const char *step_name(nc__step_kind k) {
    static const char *names[] = {"resize", "center_crop", "random_resized_crop", "hflip", "vflip",
                                  "rotation", "affine", "color_jitter", "random_erasing", "normalize"};
    return names[k];
}

nc_status nc_transform_output_size(const nc_transform *t, int in_h, int in_w, int *out_h, int *out_w) {
    if (!t || !out_h || !out_w)
        return nc__error(t ? t->ctx : NULL, NC_ERR_NULL, "nc_transform_output_size: NULL argument");
    if (in_h < 1 || in_w < 1)
        return INVALID("nc_transform_output_size: input size %dx%d must be >= 1x1", in_h, in_w);
    int h = in_h, w = in_w;
    for (size_t i = 0; i < t->count; i++) {
        int oh, ow;
        if (step_size(&t->steps[i], h, w, &oh, &ow) != NC_OK)
            return nc__error(t->ctx, NC_ERR_LIMIT, "%s (step %zu): output size for a %dx%d input does not fit an int",
                             step_name(t->steps[i].kind), i, h, w);
        h = oh;
        w = ow;
    }
    *out_h = h;
    *out_w = w;
    return NC_OK;
}

/* ------------------------------------------------------------------- draws */

typedef struct drawer {
    uint64_t seed, stream, base;
} drawer;

/* Uniform in [0, 1): draw k of the step. */
static double u01(const drawer *d, unsigned k) {
    return (double)nc__rng_uniform(d->seed, d->stream, d->base + k);
}

static double uniform(const drawer *d, unsigned k, double lo, double hi) {
    return lo + (hi - lo) * u01(d, k);
}

/* torch.randint(0, n): an integer in [0, n). */
static int randint(const drawer *d, unsigned k, int n) {
    int v = (int)(u01(d, k) * (double)n);
    return v < n ? v : n - 1;
}

/* torchvision's area/log-ratio tries shared by RandomResizedCrop and RandomErasing.
 * Draws 2*try and 2*try+1 pick the area and the ratio, 20 and 21 the position
 * (counted from `first`). Returns 1 with the box when a try fits. */
static int area_ratio_box(const drawer *d, unsigned first, int h, int w, const float a[4], int erasing,
                          nc__transform_params *p) {
    double area = (double)h * (double)w;
    double lr0 = log((double)a[2]), lr1 = log((double)a[3]);
    for (unsigned i = 0; i < 10; i++) {
        double target = area * uniform(d, first + 2 * i, a[0], a[1]);
        double ratio = exp(uniform(d, first + 2 * i + 1, lr0, lr1));
        double bw = round_half_even(sqrt(target * ratio)), bh = round_half_even(sqrt(target / ratio));
        if (erasing) { /* RandomErasing: h from area * ratio, and strictly inside */
            double tmp = bw;
            bw = bh;
            bh = tmp;
            if (!(bh < h && bw < w)) continue;
        } else if (!(bw > 0 && bw <= w && bh > 0 && bh <= h)) {
            continue;
        }
        p->height = (int)bh;
        p->width = (int)bw;
        p->top = randint(d, first + 20, h - p->height + 1);
        p->left = randint(d, first + 21, w - p->width + 1);
        return 1;
    }
    return 0;
}

int nc__transform_num_steps(const nc_transform *t) {
    return t ? (int)t->count : 0;
}

nc__step_kind nc__transform_step_kind(const nc_transform *t, int i) {
    return t->steps[i].kind;
}

/* The RNG stream of one sample: a hash of (epoch, index) salted so that transforms
 * never share draws with other consumers of the same seed. */
static uint64_t sample_stream(uint64_t epoch, uint64_t index) {
    return nc__rng_u64(epoch, index, 0x6e632e7472616e73ull /* "nc.trans" */);
}

void nc__transform_draw(const nc_transform *t, int i, int c, int h, int w, uint64_t seed, uint64_t epoch,
                        uint64_t index, nc__transform_params *p) {
    const step *s = &t->steps[i];
    drawer d = {seed, sample_stream(epoch, index), (uint64_t)i * DRAWS_PER_STEP};
    memset(p, 0, sizeof *p);
    p->apply = 1;
    p->scale = 1.0;
    p->jitter[0] = p->jitter[1] = p->jitter[2] = 1.0f;
    for (int k = 0; k < 4; k++) p->order[k] = k;
    switch (s->kind) {
    case NC__STEP_RANDOM_RESIZED_CROP:
        if (!area_ratio_box(&d, 0, h, w, s->a, 0, p)) { /* torchvision's central fallback */
            double in_ratio = (double)w / (double)h;
            int bw = w, bh = h;
            if (in_ratio < s->a[2]) bh = (int)round_half_even(bw / (double)s->a[2]);
            else if (in_ratio > s->a[3]) bw = (int)round_half_even(bh * (double)s->a[3]);
            if (bh < 1) bh = 1; /* extreme ratios on tiny images */
            if (bw < 1) bw = 1;
            if (bh > h) bh = h;
            if (bw > w) bw = w;
            p->height = bh;
            p->width = bw;
            p->top = (h - bh) / 2;
            p->left = (w - bw) / 2;
            p->fallback = 1;
        }
        break;
    case NC__STEP_HFLIP:
    case NC__STEP_VFLIP:
        p->apply = u01(&d, 0) < s->p;
        break;
    case NC__STEP_ROTATION:
        p->angle = uniform(&d, 0, -(double)s->a[0], (double)s->a[0]);
        break;
    case NC__STEP_AFFINE: {
        double mx = (double)s->a[0] * w, my = (double)s->a[1] * h;
        p->tx = (int)round_half_even(uniform(&d, 0, -mx, mx));
        p->ty = (int)round_half_even(uniform(&d, 1, -my, my));
        p->scale = uniform(&d, 2, s->a[2], s->a[3]);
        break;
    }
    case NC__STEP_COLOR_JITTER:
        /* torch.randperm(4) as a Fisher-Yates shuffle, then the four factors */
        for (int k = 3; k > 0; k--) {
            int j = randint(&d, (unsigned)(3 - k), k + 1);
            int tmp = p->order[k];
            p->order[k] = p->order[j];
            p->order[j] = tmp;
        }
        for (int k = 0; k < 3; k++) {
            double r = s->a[k];
            p->jitter_on[k] = r > 0.0 && (k < 2 || c == 3);
            if (r > 0.0) p->jitter[k] = (float)uniform(&d, 3 + (unsigned)k, fmax(0.0, 1.0 - r), 1.0 + r);
        }
        p->jitter_on[3] = s->a[3] > 0.0f && c == 3;
        if (s->a[3] > 0.0f) p->jitter[3] = (float)uniform(&d, 6, -(double)s->a[3], (double)s->a[3]);
        break;
    case NC__STEP_RANDOM_ERASING:
        p->apply = u01(&d, 0) < s->p;
        if (p->apply && !area_ratio_box(&d, 1, h, w, s->a, 1, p)) {
            p->apply = 0; /* torchvision returns the image unchanged */
            p->fallback = 1;
        }
        break;
    default:
        break;
    }
}

/* -------------------------------------------------------------- fused plan */

static int is_geometric(nc__step_kind k) {
    return k == NC__STEP_RESIZE || k == NC__STEP_CENTER_CROP || k == NC__STEP_RANDOM_RESIZED_CROP ||
           k == NC__STEP_HFLIP || k == NC__STEP_VFLIP || k == NC__STEP_ROTATION || k == NC__STEP_AFFINE;
}

/* The fused stage of geometric step s (input h x w, output oh x ow, draw p): 1 with *g,
 * 0 when the step does nothing to this sample, -1 when it cannot be fused. */
static int plan_geom(const step *s, const nc__transform_params *p, int h, int w, int oh, int ow, nc__geom *g) {
    *g = (nc__geom){.in_h = h, .in_w = w, .out_h = oh, .out_w = ow, .bh = h, .bw = w};
    switch (s->kind) {
    case NC__STEP_RESIZE: g->kind = NC__GEOM_RESIZE; return 1;
    case NC__STEP_RANDOM_RESIZED_CROP:
        *g = (nc__geom){.kind = NC__GEOM_RESIZE, .in_h = h, .in_w = w, .out_h = oh, .out_w = ow,
                        .top = p->top, .left = p->left, .bh = p->height, .bw = p->width};
        return 1;
    case NC__STEP_CENTER_CROP:
        if (oh > h || ow > w) return -1; /* torchvision pads first: the exact path does that */
        g->kind = NC__GEOM_SHIFT;
        g->top = (int)round_half_even((h - oh) / 2.0);
        g->left = (int)round_half_even((w - ow) / 2.0);
        return 1;
    case NC__STEP_HFLIP: g->kind = NC__GEOM_HFLIP; return p->apply;
    case NC__STEP_VFLIP: g->kind = NC__GEOM_VFLIP; return p->apply;
    case NC__STEP_ROTATION:
        g->kind = NC__GEOM_WARP;
        nc__rotation_matrix(g->m, p->angle);
        return 1;
    case NC__STEP_AFFINE:
        g->kind = NC__GEOM_WARP;
        nc__affine_matrix(g->m, p->tx, p->ty, p->scale);
        return 1;
    default: return -1;
    }
}

int nc__transform_plan(const nc_transform *t, int c, int h, int w, uint64_t seed, uint64_t epoch, uint64_t index,
                       nc__fused_plan *plan) {
    if (t->exact) return 0;
    plan->c = c;
    plan->ngeom = plan->npost = 0;
    int settled = 0; /* a normalize or erasing step came: no geometry may follow */
    for (size_t i = 0; i < t->count; i++) {
        const step *s = &t->steps[i];
        int oh, ow;
        if (step_size(s, h, w, &oh, &ow) != NC_OK) return 0;
        nc__transform_params p;
        nc__transform_draw(t, (int)i, c, h, w, seed, epoch, index, &p);
        if (is_geometric(s->kind)) {
            nc__geom g;
            int r = plan_geom(s, &p, h, w, oh, ow, &g);
            if (r < 0 || settled || (r > 0 && plan->ngeom == NC__FUSED_MAX_GEOM)) return 0;
            if (r > 0) plan->geom[plan->ngeom++] = g;
        } else {
            if (s->kind == NC__STEP_NORMALIZE && s->channels != c) return 0; /* the exact path says why */
            if (s->kind != NC__STEP_COLOR_JITTER) settled = 1;
            if (plan->npost == NC__FUSED_MAX_POST) return 0;
            plan->post[plan->npost++] =
                (nc__post){.kind = s->kind, .p = p, .mean = s->mean, .std = s->std, .value = s->value};
        }
        h = oh;
        w = ow;
    }
    plan->out_h = h;
    plan->out_w = w;
    return 1;
}

/* ------------------------------------------------------------------- apply */

/* A new c x h x w image (not initialised) carrying the input's bit depth. */
static nc_status next_image(nc_context *ctx, const nc_image *in, int c, int h, int w, nc_image **nxt) {
    nc_status st = nc__image_alloc(ctx, c, h, w, nxt);
    if (st != NC_OK) return st;
    (*nxt)->bit_depth = in->bit_depth;
    return NC_OK;
}

/* Makes *cur writable: a copy of the caller's input the first time. */
static nc_status writable(nc_context *ctx, const nc_image *in, nc_image **cur) {
    if (*cur != (nc_image *)in) return NC_OK;
    nc_image *copy;
    nc_status st = next_image(ctx, in, in->channels, in->height, in->width, &copy);
    if (st != NC_OK) return st;
    memcpy(copy->data, in->data, (size_t)in->channels * (size_t)in->height * (size_t)in->width * sizeof(float));
    *cur = copy;
    return NC_OK;
}

nc_status nc_transform_apply(const nc_transform *t, nc_context *ctx, const nc_image *in, uint64_t seed,
                             uint64_t epoch, uint64_t index, nc_image **out) {
    if (out) *out = NULL;
    if (!t || !ctx || !in || !out || !in->data)
        return nc__error(ctx, NC_ERR_NULL, "nc_transform_apply: NULL argument");
    if (in->channels < 1 || in->height < 1 || in->width < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_transform_apply: empty %dx%dx%d image", in->channels,
                         in->height, in->width);
    nc__fused_plan plan;
    if (nc__transform_plan(t, in->channels, in->height, in->width, seed, epoch, index, &plan)) {
        nc_status st = next_image(ctx, in, plan.c, plan.out_h, plan.out_w, out);
        if (st != NC_OK) return st;
        nc__source src = {.channels = in->channels, .height = in->height, .width = in->width, .planar = in->data};
        nc__fused_render((*out)->data, &src, &plan);
        return NC_OK;
    }
    nc_status st = NC_OK;
    nc_image *cur = (nc_image *)in; /* never written while it is the input */
    for (size_t i = 0; i < t->count; i++) {
        const step *s = &t->steps[i];
        int c = cur->channels, h = cur->height, w = cur->width, oh, ow;
        nc__transform_params p;
        nc__transform_draw(t, (int)i, c, h, w, seed, epoch, index, &p);
        if (step_size(s, h, w, &oh, &ow) != NC_OK) {
            st = nc__error(ctx, NC_ERR_LIMIT, "%s (step %zu): output size for a %dx%d input does not fit an int",
                           step_name(s->kind), i, h, w);
            goto fail;
        }
        nc_image *nxt = NULL;
        switch (s->kind) {
        case NC__STEP_RESIZE:
        case NC__STEP_RANDOM_RESIZED_CROP:
        case NC__STEP_CENTER_CROP:
        case NC__STEP_ROTATION:
        case NC__STEP_AFFINE:
            NC_CHECK(next_image(ctx, in, c, oh, ow, &nxt));
            if (s->kind == NC__STEP_RESIZE) {
                nc__resize_bilinear(nxt->data, cur->data, c, h, w, 0, 0, h, w, oh, ow);
            } else if (s->kind == NC__STEP_RANDOM_RESIZED_CROP) {
                nc__resize_bilinear(nxt->data, cur->data, c, h, w, p.top, p.left, p.height, p.width, oh, ow);
            } else if (s->kind == NC__STEP_CENTER_CROP) {
                /* torchvision pads (zeros, the extra pixel after) then crops at round((H - h) / 2) */
                int top = oh > h ? -((oh - h) / 2) : (int)round_half_even((h - oh) / 2.0);
                int left = ow > w ? -((ow - w) / 2) : (int)round_half_even((w - ow) / 2.0);
                nc__crop(nxt->data, cur->data, c, h, w, top, left, oh, ow);
            } else {
                double m[6];
                if (s->kind == NC__STEP_ROTATION) nc__rotation_matrix(m, p.angle);
                else nc__affine_matrix(m, p.tx, p.ty, p.scale);
                nc__warp_affine(nxt->data, cur->data, c, h, w, m);
            }
            break;
        case NC__STEP_HFLIP:
        case NC__STEP_VFLIP:
            if (!p.apply) break;
            NC_CHECK(next_image(ctx, in, c, h, w, &nxt));
            if (s->kind == NC__STEP_HFLIP) nc__hflip(nxt->data, cur->data, c, h, w);
            else nc__vflip(nxt->data, cur->data, c, h, w);
            break;
        case NC__STEP_COLOR_JITTER:
            if (!(p.jitter_on[0] || p.jitter_on[1] || p.jitter_on[2] || p.jitter_on[3])) break;
            NC_CHECK(writable(ctx, in, &cur));
            nc__apply_jitter(cur->data, cur->channels, cur->height, cur->width, &p);
            break;
        case NC__STEP_RANDOM_ERASING:
            if (!p.apply) break;
            NC_CHECK(writable(ctx, in, &cur));
            nc__erase(cur->data, c, h, w, p.top, p.left, p.height, p.width, s->value);
            break;
        case NC__STEP_NORMALIZE:
            if (s->channels != c) {
                st = nc__error(ctx, NC_ERR_SHAPE, "normalize (step %zu): image has %d channels, normalize expects %d",
                               i, c, s->channels);
                goto fail;
            }
            NC_CHECK(writable(ctx, in, &cur));
            nc__normalize(cur->data, c, h, w, s->mean, s->std);
            break;
        }
        if (nxt) {
            if (cur != in) nc_image_destroy(cur);
            cur = nxt;
        }
    }
    NC_CHECK(writable(ctx, in, &cur)); /* identity so far: the caller still gets a new image */
    *out = cur;
    return NC_OK;
fail:
    if (cur != in) nc_image_destroy(cur);
    return st;
}

/* ----------------------------------------------------------------- presets */

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* Appends normalize with the given or default statistics. */
static nc_status add_preset_normalize(nc_transform *t, int channels, const float *mean, const float *std) {
    float *dm = nc__alloc(t->ctx, 2 * (size_t)channels * sizeof(float));
    if (!dm) return nc__error(t->ctx, NC_ERR_OUT_OF_MEMORY, "preset: out of memory");
    float *ds = dm + channels;
    for (int c = 0; c < channels; c++) {
        dm[c] = channels == 3 ? imagenet_mean[c] : 0.5f;
        ds[c] = channels == 3 ? imagenet_std[c] : 0.5f;
    }
    nc_status st = nc_transform_add_normalize(t, mean ? mean : dm, std ? std : ds, channels);
    nc__free(t->ctx, dm);
    return st;
}

/* Checks the common preset arguments and creates the empty transform in *t. */
static nc_status preset_begin(nc_context *ctx, const char *who, int size, int channels, nc_transform **out,
                              nc_transform **t) {
    if (!ctx || !out) return nc__error(ctx, NC_ERR_NULL, "%s: NULL argument", who);
    *out = NULL;
    if (size < 1) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: size %d must be >= 1", who, size);
    if (channels < 1) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: channels %d must be >= 1", who, channels);
    return nc_transform_create(ctx, t);
}

nc_status nc_transform_preset_train(nc_context *ctx, int size, int channels, const float *mean, const float *std,
                                    nc_transform **out) {
    nc_transform *t = NULL;
    nc_status st = preset_begin(ctx, "nc_transform_preset_train", size, channels, out, &t);
    if (st != NC_OK) return st;
    NC_CHECK(nc_transform_add_random_resized_crop(t, size, size, 0.7f, 1.0f, 3.0f / 4.0f, 4.0f / 3.0f));
    NC_CHECK(nc_transform_add_hflip(t, 0.5f));
    NC_CHECK(nc_transform_add_rotation(t, 20.0f));
    NC_CHECK(nc_transform_add_color_jitter(t, 0.2f, 0.2f, 0.2f, 0.05f));
    NC_CHECK(nc_transform_add_affine(t, 0.1f, 0.1f, 0.9f, 1.1f));
    NC_CHECK(add_preset_normalize(t, channels, mean, std));
    /* after normalize, as in torchvision's recipes: the box is filled with 0 = the mean */
    NC_CHECK(nc_transform_add_random_erasing(t, 0.2f, 0.02f, 0.33f, 0.3f, 3.3f, 0.0f));
    *out = t;
    return NC_OK;
fail:
    nc_transform_destroy(t);
    return st;
}

nc_status nc_transform_preset_eval(nc_context *ctx, int resize, int size, int channels, const float *mean,
                                   const float *std, nc_transform **out) {
    nc_transform *t = NULL;
    static const char *who = "nc_transform_preset_eval";
    if (ctx && out && resize < 1) {
        *out = NULL;
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: resize %d must be >= 1", who, resize);
    }
    nc_status st = preset_begin(ctx, who, size, channels, out, &t);
    if (st != NC_OK) return st;
    NC_CHECK(nc_transform_add_resize(t, resize, 0));
    NC_CHECK(nc_transform_add_center_crop(t, size, size));
    NC_CHECK(add_preset_normalize(t, channels, mean, std));
    *out = t;
    return NC_OK;
fail:
    nc_transform_destroy(t);
    return st;
}
