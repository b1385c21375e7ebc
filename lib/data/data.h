/* data.h — internals shared by the data pipeline (lib/data/): the image struct and
 * thread-safe sample decoding for loader workers. Loader workers never write to the
 * user's context: each has a child context (nc__context_create_child, core/context.h:
 * same allocator) whose error text the loader hands to the consumer. */
#ifndef NC_DATA_DATA_H
#define NC_DATA_DATA_H

#include "neurc.h"

#include <stdint.h>
#include <stddef.h>

struct nc_image {
    nc_context *ctx;        /* allocator of `data` and of the struct */
    int channels, height, width;
    int bit_depth;          /* of the source file; 0 if made in memory */
    float *data;            /* (C, H, W) */
};

/* Decoded samples as the file stores them: interleaved (H, W, C), 8-bit (one byte a
 * sample) or 16-bit (two bytes, big-endian as in a PNG). The loader decodes into one
 * of these per worker and reuses its buffers, so a sample costs no allocation and is
 * converted to float only once, by the transform that writes the batch. */
typedef struct nc__pixels {
    int channels, height, width;
    int depth;                  /* 8 or 16 */
    const unsigned char *data;  /* (H, W, C) samples: `buf`, or memory the dataset owns */
    unsigned char *buf;         /* owned decode buffer, reused (`cap` bytes) */
    size_t cap;
    unsigned char *file;        /* owned buffer of the encoded file, reused */
    size_t file_cap;
} nc__pixels;

/* Frees px's buffers (allocated from ctx) and zeroes it. */
void nc__pixels_free(nc_context *ctx, nc__pixels *px);
/* Decodes a PNG file into px (expanded as nc_png_read does: palette -> RGB, tRNS ->
 * alpha, 1/2/4-bit gray -> 8-bit), reusing px's buffers. Same statuses as nc_png_read. */
nc_status nc__png_read_pixels(nc_context *ctx, const char *path, const nc_png_limits *lim, nc__pixels *px);
/* The planar float image of px: 8-bit samples / 255, 16-bit / 65535 (nc_png_read's values). */
nc_status nc__pixels_to_image(nc_context *ctx, const nc__pixels *px, nc_image **out);

/* Creates an image without zeroing it (callers fill every value). */
nc_status nc__image_alloc(nc_context *ctx, int channels, int height, int width, nc_image **out);

/* Decodes sample i of ds with errors reported to `ctx` (not ds's context): safe to
 * call from several threads at once on one dataset. */
nc_status nc__dataset_read(nc_dataset *ds, nc_context *ctx, int64_t i, nc_image **out);
/* Decodes sample i into px when it is one file (or an IDX image, which px then
 * borrows from the dataset); NC_ERR_UNSUPPORTED, with no message, for a sample
 * stacked from several files: read it with nc__dataset_read. */
nc_status nc__dataset_read_pixels(nc_dataset *ds, nc_context *ctx, int64_t i, nc__pixels *px);
/* The context the dataset was opened with (loaders report through it). */
nc_context *nc__dataset_context(const nc_dataset *ds);
/* Labels of sample i without touching any context (i in range). */
const int32_t *nc__dataset_labels_ptr(const nc_dataset *ds, int64_t i);

/* A failed nc_loader_start_epoch / nc_loader_next (status st at 0-based `batch`)
 * reported by the public call `fn` into ctx, whose text the caller cleared before the
 * loader call (loader.c says why). Returns st. */
nc_status nc__loader_failed(nc_context *ctx, nc_status st, const char *fn, int64_t batch);

#endif
