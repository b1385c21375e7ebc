/* dataset.h — the nc_dataset internals shared by dataset.c (folders, common
 * accessors, sample decoding, statistics), csv.c (CSV manifests) and idx.c (MNIST
 * IDX files). A dataset is immutable once opened, which is what lets loader workers
 * decode samples from several threads at once. */
#ifndef NC_DATA_DATASET_H
#define NC_DATA_DATASET_H

#include "neurc.h"

#include <stddef.h>
#include <stdint.h>

typedef enum nc__ds_kind { NC__DS_FOLDER = 0, NC__DS_CSV = 1, NC__DS_IDX = 2 } nc__ds_kind;

/* Strings that live as long as the dataset, carved from large chunks. */
typedef struct nc__ds_chunk {
    struct nc__ds_chunk *next;
    size_t used, cap;
    char data[];
} nc__ds_chunk;

typedef struct nc__ds_head {
    int num_classes;
    const char **names;     /* (num_classes) in the pool */
} nc__ds_head;

struct nc_dataset {
    nc_context *ctx;        /* opened with; allocator of everything below */
    nc__ds_kind kind;
    nc_png_limits limits;   /* for every decoded file */
    int64_t n;              /* samples */
    int heads;
    nc__ds_head *head;      /* (heads) */
    int32_t *labels;        /* (n, heads) */
    int channels;           /* of every decoded sample */
    nc__ds_chunk *pool;     /* owns every string */

    /* folder and csv: each sample is `nfiles` files stacked as channels */
    int nfiles;
    int has_optional;       /* the last file is optional: NULL = absent */
    int *file_channels;     /* (nfiles) channels each file must have */
    int *file_offset;       /* (nfiles) first output channel of each file */
    const char **paths;     /* (n, nfiles) resolved paths in the pool; NULL = absent */
    const char **ref_path;  /* (nfiles) the file each file_channels was learnt from */

    /* idx */
    int idx_h, idx_w;
    unsigned char *pixels;  /* (n, h, w) */
    const char **idx_names; /* (n) "<images path>:<i>" in the pool */
};

/* A zeroed dataset owned by ctx, with limits from opt (NULL = defaults). */
nc_status nc__ds_new(nc_context *ctx, nc__ds_kind kind, const nc_dataset_options *opt,
                     nc_dataset **out);
/* Copies s[0..len) into the dataset's string pool; NULL when out of memory. */
char *nc__ds_strndup(nc_dataset *ds, const char *s, size_t len);
/* Allocates ds->head[heads] (zeroed) and ds->labels[n * heads]. */
nc_status nc__ds_alloc_labels(nc_dataset *ds, int64_t n, int heads);
/* Sets head h to `count` classes named "0".."count-1". */
nc_status nc__ds_int_classes(nc_dataset *ds, int h, int count);
/* Allocates the per-file tables (file_channels, file_offset, ref_path) for `nfiles`
 * files per sample; ds->paths is the caller's to fill. */
nc_status nc__ds_alloc_files(nc_dataset *ds, int nfiles);

/* Decodes `path` once (at open) to learn its channel count; errors to ds->ctx. */
nc_status nc__ds_probe_channels(nc_dataset *ds, const char *path, int *channels);

/* idx.c: fills an IDX dataset (pixels, labels, names). */
nc_status nc__idx_load(nc_dataset *ds, const char *images, const char *labels);
/* idx.c: decodes sample i as 1 x H x W floats / 255. */
nc_status nc__idx_read(const nc_dataset *ds, nc_context *ctx, int64_t i, nc_image **out);

/* csv.c: fills a CSV dataset from a manifest. */
nc_status nc__csv_load(nc_dataset *ds, const char *manifest, const nc_dataset_options *opt);

#endif
