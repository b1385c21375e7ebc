/* raw_input.c — camera frames as they come: a described buffer (element type, layout,
 * byte strides, value range) is checked, then converted to float NCHW in one pass with
 * the same float arithmetic as the PNG decoder and the normalize transform, so the
 * logits equal those of a caller's own conversion bit for bit. */
#include "eval/raw_input.h"
#include "core/context.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

void nc_input_desc_init(nc_input_desc *desc) {
    if (!desc) return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->type = NC_ELEM_U8;
    desc->layout = NC_LAYOUT_NCHW;
    desc->normalize = 1;
}

static int64_t elem_bytes(nc_elem_type t) {
    return t == NC_ELEM_U8 ? 1 : t == NC_ELEM_U16 ? 2 : t == NC_ELEM_F32 ? 4 : 0;
}

static double full_range(nc_elem_type t) { return t == NC_ELEM_U8 ? 255.0 : t == NC_ELEM_U16 ? 65535.0 : 1.0; }

/* Packed strides of the layout for the zero ones. */
static void resolve_strides(nc_input_desc *d, int64_t e) {
    const int64_t c = d->c, h = d->h, w = d->w;
    int64_t sn, sc, sh, sw;
    if (d->layout == NC_LAYOUT_NHWC) {
        sc = e, sw = c * e, sh = w * c * e, sn = h * w * c * e;
    } else { /* NCHW; PLANAR (each plane n x h x w, stride_c unused) */
        sw = e, sh = w * e, sc = h * w * e, sn = (d->layout == NC_LAYOUT_PLANAR ? 1 : c) * h * w * e;
    }
    if (!d->stride_n) d->stride_n = sn;
    if (!d->stride_c) d->stride_c = d->layout == NC_LAYOUT_PLANAR ? 0 : sc;
    if (!d->stride_h) d->stride_h = sh;
    if (!d->stride_w) d->stride_w = sw;
}

static nc_status check_pointers(nc_context *ctx, const char *fn, const nc_input_desc *d) {
    if (d->layout != NC_LAYOUT_PLANAR) {
        if (!d->data) return nc__error(ctx, NC_ERR_NULL, "%s: desc->data is NULL", fn);
        return NC_OK;
    }
    if (!d->planes) return nc__error(ctx, NC_ERR_NULL, "%s: desc->planes is NULL (layout PLANAR)", fn);
    for (int ch = 0; ch < d->c; ch++)
        if (!d->planes[ch]) return nc__error(ctx, NC_ERR_NULL, "%s: desc->planes[%d] is NULL", fn, ch);
    if (d->stride_c)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: stride_c must be 0 with layout PLANAR (one buffer a channel)",
                         fn);
    return NC_OK;
}

static nc_status check_sizes(nc_context *ctx, const char *fn, const nc_input_desc *d, int in_channels) {
    if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: n, c, h, w = %d, %d, %d, %d must all be >= 1", fn, d->n,
                         d->c, d->h, d->w);
    if (d->c != in_channels)
        return nc__error(ctx, NC_ERR_SHAPE, "%s: the input has %d channels, the model expects %d", fn, d->c,
                         in_channels);
    if ((int64_t)d->n * d->c * d->h * d->w > INT32_MAX)
        return nc__error(ctx, NC_ERR_LIMIT, "%s: %d x %d x %d x %d values are over 2^31", fn, d->n, d->c, d->h, d->w);
    return NC_OK;
}

static nc_status check_range(nc_context *ctx, const char *fn, const nc_input_desc *d) {
    if (!isfinite(d->min_value) || !isfinite(d->max_value) || d->max_value == d->min_value)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: value range [%g, %g] is empty or not finite", fn,
                         d->min_value, d->max_value);
    if (d->normalize != 0 && d->normalize != 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: normalize %d is not 0 or 1", fn, d->normalize);
    return NC_OK;
}

nc_status nc__raw_check(nc_context *ctx, const char *fn, const nc_input_desc *desc, int in_channels, nc__raw *out) {
    if (!desc) return nc__error(ctx, NC_ERR_NULL, "%s: desc is NULL", fn);
    if (desc->struct_size < sizeof(nc_input_desc) || desc->struct_size > sizeof(nc_input_desc))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: desc->struct_size %zu is not that of nc_input_desc (%zu)",
                         fn, desc->struct_size, sizeof(nc_input_desc));
    nc_input_desc d = *desc;
    const int64_t e = elem_bytes(d.type);
    if (!e) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: unknown element type %d", fn, (int)d.type);
    if (d.layout != NC_LAYOUT_NCHW && d.layout != NC_LAYOUT_NHWC && d.layout != NC_LAYOUT_PLANAR)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: unknown layout %d", fn, (int)d.layout);
    nc_status st = check_sizes(ctx, fn, &d, in_channels);
    if (st == NC_OK) st = check_pointers(ctx, fn, &d);
    if (st != NC_OK) return st;
    if (d.max_value == 0.0 && d.min_value == 0.0) d.max_value = full_range(d.type);
    if ((st = check_range(ctx, fn, &d)) != NC_OK) return st;
    resolve_strides(&d, e);
    *out = (nc__raw){.d = d, .elem = e, .lo = (float)d.min_value, .range = (float)d.max_value - (float)d.min_value};
    if (!(out->range != 0.0f) || !isfinite(out->range))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: value range [%g, %g] is empty in float", fn, d.min_value,
                         d.max_value);
    return NC_OK;
}

/* One row of w values at src (stride sw bytes) into dst, scaled and normalised. */
static void convert_row(float *dst, const unsigned char *src, int64_t sw, nc_elem_type t, int w, float lo,
                        float range, const float *mean, const float *std) {
    for (int x = 0; x < w; x++) {
        const unsigned char *p = src + (ptrdiff_t)(x * sw);
        float v;
        if (t == NC_ELEM_U8) {
            v = (float)p[0];
        } else if (t == NC_ELEM_U16) {
            uint16_t u;
            memcpy(&u, p, sizeof u);
            v = (float)u;
        } else {
            memcpy(&v, p, sizeof v);
        }
        dst[x] = (v - lo) / range;
    }
    if (mean)
        for (int x = 0; x < w; x++) dst[x] = (dst[x] - *mean) / *std;
}

void nc__raw_convert(const nc__raw *r, const float *mean, const float *std, float *x) {
    const nc_input_desc *d = &r->d;
    for (int i = 0; i < d->n; i++)
        for (int ch = 0; ch < d->c; ch++) {
            const unsigned char *base = d->layout == NC_LAYOUT_PLANAR ? (const unsigned char *)d->planes[ch]
                                                                      : (const unsigned char *)d->data + (ptrdiff_t)(ch * d->stride_c);
            base += (ptrdiff_t)(i * d->stride_n);
            for (int y = 0; y < d->h; y++) {
                float *dst = x + (((size_t)i * (size_t)d->c + (size_t)ch) * (size_t)d->h + (size_t)y) * (size_t)d->w;
                convert_row(dst, base + (ptrdiff_t)(y * d->stride_h), d->stride_w, d->type, d->w, r->lo, r->range,
                            mean ? mean + ch : NULL, std ? std + ch : NULL);
            }
        }
}
