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

/* Creates an image without zeroing it (callers fill every value). */
nc_status nc__image_alloc(nc_context *ctx, int channels, int height, int width, nc_image **out);

/* Decodes sample i of ds with errors reported to `ctx` (not ds's context): safe to
 * call from several threads at once on one dataset. */
nc_status nc__dataset_read(nc_dataset *ds, nc_context *ctx, int64_t i, nc_image **out);
/* The context the dataset was opened with (loaders report through it). */
nc_context *nc__dataset_context(const nc_dataset *ds);
/* Labels of sample i without touching any context (i in range). */
const int32_t *nc__dataset_labels_ptr(const nc_dataset *ds, int64_t i);

#endif
