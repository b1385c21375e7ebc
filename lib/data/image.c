/* image.c — nc_image: `channels` planes of height x width float32 values (planar CHW),
 * the unit the public PNG reader returns and the transforms and datasets pass around;
 * and nc__pixels, the decoder's interleaved 8/16-bit samples, converted to it here.
 * Memory comes from the owning context's allocator; sizes are checked for overflow. */
#include "data/data.h"
#include "core/context.h"

#include <stdint.h>
#include <string.h>

#define MAX_VALUES ((int64_t)1 << 31) /* the largest image: 2^31 floats (8 GiB) */

/* Checks the sizes of an image and returns its value count in *count. */
static nc_status check_size(nc_context *ctx, const char *fn, int channels, int height, int width,
                            size_t *count) {
    if (channels < 1 || height < 1 || width < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: bad image size %d x %d x %d (each must be >= 1)",
                         fn, channels, height, width);
    /* each factor is < 2^31, so the first product fits int64 and the second is only
     * formed once the first is known to be <= 2^31 */
    int64_t ch = (int64_t)channels * height;
    if (ch > MAX_VALUES || ch * width > MAX_VALUES)
        return nc__error(ctx, NC_ERR_LIMIT, "%s: image %d x %d x %d has more than 2^31 values", fn, channels,
                         height, width);
    int64_t n = ch * width;
    if ((uint64_t)n > SIZE_MAX / sizeof(float))
        return nc__error(ctx, NC_ERR_LIMIT, "%s: image %d x %d x %d does not fit the address space", fn,
                         channels, height, width);
    *count = (size_t)n;
    return NC_OK;
}

static nc_status image_alloc(nc_context *ctx, const char *fn, int channels, int height, int width,
                             nc_image **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out) return nc__error(ctx, NC_ERR_NULL, "%s: NULL out", fn);
    *out = NULL;
    size_t count = 0;
    nc_status st = check_size(ctx, fn, channels, height, width, &count);
    if (st != NC_OK) return st;
    nc_image *img = nc__alloc(ctx, sizeof *img);
    if (!img) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    img->ctx = ctx;
    img->channels = channels;
    img->height = height;
    img->width = width;
    img->bit_depth = 0;
    img->data = nc__alloc(ctx, count * sizeof(float));
    if (!img->data) {
        nc__free(ctx, img);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for %d x %d x %d floats", fn, channels,
                         height, width);
    }
    *out = img;
    return NC_OK;
}

nc_status nc__image_alloc(nc_context *ctx, int channels, int height, int width, nc_image **out) {
    return image_alloc(ctx, "nc__image_alloc", channels, height, width, out);
}

nc_status nc_image_create(nc_context *ctx, int channels, int height, int width, nc_image **out) {
    nc_status st = image_alloc(ctx, "nc_image_create", channels, height, width, out);
    if (st != NC_OK) return st;
    nc_image *img = *out;
    memset(img->data, 0, (size_t)channels * (size_t)height * (size_t)width * sizeof(float));
    return NC_OK;
}

void nc_image_destroy(nc_image *img) {
    if (!img) return;
    nc_context *ctx = img->ctx;
    nc__free(ctx, img->data);
    nc__free(ctx, img);
}

int nc_image_width(const nc_image *img) { return img ? img->width : 0; }

int nc_image_height(const nc_image *img) { return img ? img->height : 0; }

int nc_image_channels(const nc_image *img) { return img ? img->channels : 0; }

int nc_image_bit_depth(const nc_image *img) { return img ? img->bit_depth : 0; }

float *nc_image_data(nc_image *img) { return img ? img->data : NULL; }

const float *nc_image_const_data(const nc_image *img) { return img ? img->data : NULL; }

/* ------------------------------------------------------------------ pixels */

void nc__pixels_free(nc_context *ctx, nc__pixels *px) {
    nc__free(ctx, px->buf);
    nc__free(ctx, px->file);
    memset(px, 0, sizeof *px);
}

nc_status nc__pixels_to_image(nc_context *ctx, const nc__pixels *px, nc_image **out) {
    nc_image *img = NULL;
    nc_status st = nc__image_alloc(ctx, px->channels, px->height, px->width, &img);
    if (st != NC_OK) return st;
    img->bit_depth = px->depth;
    const size_t c = (size_t)px->channels, plane = (size_t)px->height * (size_t)px->width;
    if (px->depth == 16) {
        for (size_t i = 0; i < plane; i++)
            for (size_t k = 0; k < c; k++) {
                const unsigned char *s = px->data + 2 * (i * c + k);
                img->data[k * plane + i] = (float)(((unsigned)s[0] << 8) | s[1]) / 65535.0f;
            }
    } else {
        float lut[256];
        for (int k = 0; k < 256; k++) lut[k] = (float)k / 255.0f;
        for (size_t k = 0; k < c; k++) { /* one plane at a time: sequential writes */
            float *dst = img->data + k * plane;
            const unsigned char *s = px->data + k;
            for (size_t i = 0; i < plane; i++) dst[i] = lut[s[i * c]];
        }
    }
    *out = img;
    return NC_OK;
}
