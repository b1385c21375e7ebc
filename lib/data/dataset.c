/* dataset.c — nc_dataset: image folders (one subfolder per class, like torchvision's
 * ImageFolder), the accessors shared with CSV manifests (csv.c) and IDX files (idx.c),
 * thread-safe sample decoding (files stacked as channels), class counts and weights,
 * and per-channel statistics. A dataset never changes after it is opened. */
#include "data/dataset.h"
#include "data/data.h"
#include "core/context.h"
#include "core/progress.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define POOL_CHUNK ((size_t)64 * 1024)

/* ------------------------------------------------------------ lifecycle */

void nc_dataset_options_init(nc_dataset_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    nc_png_limits_init(&opt->limits);
}

nc_status nc__ds_new(nc_context *ctx, nc__ds_kind kind, const nc_dataset_options *opt,
                     nc_dataset **out) {
    static const char *const fn[] = {"nc_dataset_open_folder", "nc_dataset_open_csv",
                                     "nc_dataset_open_idx"};
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    if (opt) {
        if (opt->struct_size < offsetof(nc_dataset_options, image_columns) ||
            opt->struct_size > sizeof o)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "%s: struct_size %zu is not that of nc_dataset_options (%zu); call "
                             "nc_dataset_options_init first",
                             fn[kind], opt->struct_size, sizeof o);
        memcpy(&o, opt, opt->struct_size);
        o.struct_size = sizeof o;
    }
    nc_dataset *ds = nc__calloc(ctx, 1, sizeof *ds);
    if (!ds) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn[kind]);
    ds->ctx = ctx;
    ds->kind = kind;
    ds->limits = o.limits;
    *out = ds;
    return NC_OK;
}

char *nc__ds_strndup(nc_dataset *ds, const char *s, size_t len) {
    nc__ds_chunk *c = ds->pool;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > POOL_CHUNK ? len + 1 : POOL_CHUNK;
        c = nc__alloc(ds->ctx, sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = ds->pool;
        ds->pool = c;
    }
    char *p = c->data + c->used;
    memcpy(p, s, len);
    p[len] = 0;
    c->used += len + 1;
    return p;
}

nc_status nc__ds_alloc_labels(nc_dataset *ds, int64_t n, int heads) {
    ds->n = n;
    ds->heads = heads;
    ds->head = nc__calloc(ds->ctx, (size_t)heads, sizeof *ds->head);
    ds->labels = nc__calloc(ds->ctx, (size_t)n * (size_t)heads, sizeof *ds->labels);
    if (!ds->head || !ds->labels) return nc__error(ds->ctx, NC_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    return NC_OK;
}

nc_status nc__ds_int_classes(nc_dataset *ds, int h, int count) {
    nc__ds_head *hd = &ds->head[h];
    hd->names = nc__calloc(ds->ctx, (size_t)(count > 0 ? count : 1), sizeof *hd->names);
    if (!hd->names) return nc__error(ds->ctx, NC_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    hd->num_classes = count;
    for (int k = 0; k < count; k++) {
        char buf[16];
        int len = snprintf(buf, sizeof buf, "%d", k);
        if (!(hd->names[k] = nc__ds_strndup(ds, buf, (size_t)len)))
            return nc__error(ds->ctx, NC_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    }
    return NC_OK;
}

nc_status nc__ds_alloc_files(nc_dataset *ds, int nfiles) {
    ds->nfiles = nfiles;
    ds->file_channels = nc__calloc(ds->ctx, (size_t)nfiles, sizeof(int));
    ds->file_offset = nc__calloc(ds->ctx, (size_t)nfiles, sizeof(int));
    ds->ref_path = nc__calloc(ds->ctx, (size_t)nfiles, sizeof(char *));
    if (!ds->file_channels || !ds->file_offset || !ds->ref_path)
        return nc__error(ds->ctx, NC_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    return NC_OK;
}

/* Prefixes the path to an error message that does not name it yet. */
static nc_status name_file(nc_context *ctx, nc_status st, const char *path) {
    if (!strstr(nc_context_last_error(ctx), path)) nc__error_prefix(ctx, st, "%s", path);
    return st;
}

nc_status nc__ds_probe_channels(nc_dataset *ds, const char *path, int *channels) {
    nc_image *img = NULL;
    nc_status st = nc_png_read(ds->ctx, path, &ds->limits, &img);
    if (st != NC_OK) return name_file(ds->ctx, st, path);
    *channels = nc_image_channels(img);
    nc_image_destroy(img);
    return NC_OK;
}

void nc_dataset_destroy(nc_dataset *ds) {
    if (!ds) return;
    nc_context *ctx = ds->ctx;
    for (int h = 0; ds->head && h < ds->heads; h++) nc__free(ctx, (void *)ds->head[h].names);
    nc__free(ctx, ds->head);
    nc__free(ctx, ds->labels);
    nc__free(ctx, ds->file_channels);
    nc__free(ctx, ds->file_offset);
    nc__free(ctx, (void *)ds->ref_path);
    nc__free(ctx, (void *)ds->paths);
    nc__free(ctx, ds->pixels);
    nc__free(ctx, (void *)ds->idx_names);
    while (ds->pool) {
        nc__ds_chunk *next = ds->pool->next;
        nc__free(ctx, ds->pool);
        ds->pool = next;
    }
    nc__free(ctx, ds);
}

/* --------------------------------------------------------------- folder */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int has_png_extension(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

/* "dir/name" in the pool (no doubled '/'). */
static char *join(nc_dataset *ds, const char *dir, const char *name) {
    size_t d = strlen(dir), m = strlen(name);
    while (d > 1 && dir[d - 1] == '/') d--;
    char *buf = nc__alloc(ds->ctx, d + m + 2);
    if (!buf) return NULL;
    memcpy(buf, dir, d);
    size_t k = d;
    if (!(d == 1 && dir[0] == '/')) buf[k++] = '/';
    memcpy(buf + k, name, m);
    char *p = nc__ds_strndup(ds, buf, k + m);
    nc__free(ds->ctx, buf);
    return p;
}

/* Entries of `dir` not starting with '.' whose stat (symlinks followed) is a
 * directory (want_dir) or a regular .png file; full paths (in the pool) appended to
 * *list, sorted by name. */
static nc_status list_entries(nc_dataset *ds, const char *dir, int want_dir, const char ***list,
                              size_t *count, size_t *cap) {
    DIR *d = opendir(dir);
    if (!d) return nc__error(ds->ctx, NC_ERR_IO, "%s: %s", dir, strerror(errno));
    size_t first = *count;
    nc_status st = NC_OK;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (!want_dir && !has_png_extension(e->d_name)) continue;
        char *path = join(ds, dir, e->d_name);
        if (!path) {
            st = nc__error(ds->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0) continue; /* a dangling symlink: not an entry */
        if (want_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)) continue;
        if (nc__grow(ds->ctx, (void **)list, sizeof **list, cap, *count + 1) != 0) {
            st = nc__error(ds->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            break;
        }
        (*list)[(*count)++] = path;
        errno = 0;
    }
    if (st == NC_OK && errno != 0) st = nc__error(ds->ctx, NC_ERR_IO, "%s: %s", dir, strerror(errno));
    closedir(d);
    /* same directory prefix everywhere, so this sorts by entry name */
    if (st == NC_OK && *count > first) qsort(*list + first, *count - first, sizeof **list, cmp_str);
    return st;
}

nc_status nc_dataset_open_folder(nc_context *ctx, const char *root, const nc_dataset_options *opt,
                                 nc_dataset **out) {
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_dataset_open_folder: out is NULL");
    *out = NULL;
    if (!ctx) return NC_ERR_NULL;
    if (!root) return nc__error(ctx, NC_ERR_NULL, "nc_dataset_open_folder: root is NULL");
    nc_dataset *ds = NULL;
    const char **classes = NULL;
    size_t nclass = 0, class_cap = 0, nfile = 0, file_cap = 0, label_cap = 0;
    int32_t *labels = NULL;
    nc_status st;
    NC_CHECK(nc__ds_new(ctx, NC__DS_FOLDER, opt, &ds));

    struct stat sb;
    if (stat(root, &sb) != 0) {
        st = nc__error(ctx, NC_ERR_IO, "%s: %s", root, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(sb.st_mode)) {
        st = nc__error(ctx, NC_ERR_IO, "%s: not a directory", root);
        goto fail;
    }
    NC_CHECK(list_entries(ds, root, 1, &classes, &nclass, &class_cap));
    if (nclass == 0) {
        st = nc__error(ctx, NC_ERR_NOT_FOUND,
                       "%s: no class folders (expected one subfolder of PNG files per class)", root);
        goto fail;
    }
    if (nclass > INT32_MAX) {
        st = nc__error(ctx, NC_ERR_LIMIT, "%s: too many class folders", root);
        goto fail;
    }
    nc_progress pr = nc__progress_begin(NC_PHASE_SCAN, (int64_t)nclass, root);
    for (size_t c = 0; c < nclass; c++) {
        size_t before = nfile;
        pr.done = (int64_t)c;
        NC_CHECK(nc__progress(ctx, &pr, "nc_dataset_open_folder", "class folders"));
        NC_CHECK(list_entries(ds, classes[c], 0, &ds->paths, &nfile, &file_cap));
        if (nc__grow(ctx, (void **)&labels, sizeof *labels, &label_cap, nfile) != 0) {
            st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", root);
            goto fail;
        }
        for (size_t k = before; k < nfile; k++) labels[k] = (int32_t)c;
    }
    if (nfile == 0) {
        st = nc__error(ctx, NC_ERR_NOT_FOUND, "%s: no .png files in its %zu class folder%s", root,
                       nclass, nclass == 1 ? "" : "s");
        goto fail;
    }
    ds->n = (int64_t)nfile;
    ds->heads = 1;
    ds->labels = labels;
    labels = NULL;
    ds->head = nc__calloc(ctx, 1, sizeof *ds->head);
    NC_CHECK_ALLOC(ctx, ds->head);
    ds->head[0].num_classes = (int)nclass;
    ds->head[0].names = nc__calloc(ctx, nclass, sizeof(char *));
    NC_CHECK_ALLOC(ctx, ds->head[0].names);
    for (size_t c = 0; c < nclass; c++) {
        const char *slash = strrchr(classes[c], '/');
        ds->head[0].names[c] = slash ? slash + 1 : classes[c]; /* already in the pool */
    }
    NC_CHECK(nc__ds_alloc_files(ds, 1));
    ds->ref_path[0] = ds->paths[0];
    NC_CHECK(nc__ds_probe_channels(ds, ds->paths[0], &ds->file_channels[0]));
    ds->channels = ds->file_channels[0];
    nc__free(ctx, (void *)classes);
    *out = ds;
    return NC_OK;
fail:
    nc__free(ctx, (void *)classes);
    nc__free(ctx, labels);
    nc_dataset_destroy(ds);
    return st;
}

/* --------------------------------------------------------------- idx */

nc_status nc_dataset_open_idx(nc_context *ctx, const char *images, const char *labels,
                              nc_dataset **out) {
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_dataset_open_idx: out is NULL");
    *out = NULL;
    if (!ctx) return NC_ERR_NULL;
    if (!images || !labels)
        return nc__error(ctx, NC_ERR_NULL, "nc_dataset_open_idx: %s path is NULL",
                         images ? "labels" : "images");
    nc_dataset *ds = NULL;
    nc_status st;
    NC_CHECK(nc__ds_new(ctx, NC__DS_IDX, NULL, &ds));
    NC_CHECK(nc__idx_load(ds, images, labels));
    *out = ds;
    return NC_OK;
fail:
    nc_dataset_destroy(ds);
    return st;
}

/* --------------------------------------------------------------- csv */

nc_status nc_dataset_open_csv(nc_context *ctx, const char *manifest, const nc_dataset_options *opt,
                              nc_dataset **out) {
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_dataset_open_csv: out is NULL");
    *out = NULL;
    if (!ctx) return NC_ERR_NULL;
    if (!manifest) return nc__error(ctx, NC_ERR_NULL, "nc_dataset_open_csv: manifest is NULL");
    nc_dataset *ds = NULL;
    nc_status st;
    NC_CHECK(nc__ds_new(ctx, NC__DS_CSV, opt, &ds));
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    if (opt) memcpy(&o, opt, opt->struct_size); /* size checked by nc__ds_new */
    NC_CHECK(nc__csv_load(ds, manifest, &o));
    *out = ds;
    return NC_OK;
fail:
    nc_dataset_destroy(ds);
    return st;
}

/* --------------------------------------------------------------- accessors */

int64_t nc_dataset_size(const nc_dataset *ds) { return ds ? ds->n : 0; }

int nc_dataset_num_heads(const nc_dataset *ds) { return ds ? ds->heads : 0; }

int nc_dataset_num_classes(const nc_dataset *ds, int head) {
    return ds && head >= 0 && head < ds->heads ? ds->head[head].num_classes : 0;
}

const char *nc_dataset_class_name(const nc_dataset *ds, int head, int cls) {
    if (!ds || head < 0 || head >= ds->heads) return NULL;
    if (cls < 0 || cls >= ds->head[head].num_classes) return NULL;
    return ds->head[head].names[cls];
}

int nc_dataset_channels(const nc_dataset *ds) { return ds ? ds->channels : 0; }

const char *nc_dataset_path(const nc_dataset *ds, int64_t i) {
    if (!ds || i < 0 || i >= ds->n) return NULL;
    if (ds->kind == NC__DS_IDX) return ds->idx_names[i];
    return ds->paths[(size_t)i * (size_t)ds->nfiles];
}

nc_context *nc__dataset_context(const nc_dataset *ds) { return ds ? ds->ctx : NULL; }

const int32_t *nc__dataset_labels_ptr(const nc_dataset *ds, int64_t i) {
    return ds->labels + (size_t)i * (size_t)ds->heads;
}

nc_status nc_dataset_labels(const nc_dataset *ds, int64_t i, int32_t *labels) {
    if (!ds) return NC_ERR_NULL;
    if (!labels) return nc__error(ds->ctx, NC_ERR_NULL, "nc_dataset_labels: labels is NULL");
    if (i < 0 || i >= ds->n)
        return nc__error(ds->ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_dataset_labels: sample %lld out of range [0, %lld)", (long long)i,
                         (long long)ds->n);
    memcpy(labels, nc__dataset_labels_ptr(ds, i), (size_t)ds->heads * sizeof *labels);
    return NC_OK;
}

static nc_status check_head(const nc_dataset *ds, int head, const void *ptr, const char *fn) {
    if (!ds) return NC_ERR_NULL;
    if (!ptr) return nc__error(ds->ctx, NC_ERR_NULL, "%s: output array is NULL", fn);
    if (head < 0 || head >= ds->heads)
        return nc__error(ds->ctx, NC_ERR_INVALID_ARGUMENT, "%s: head %d out of range [0, %d)", fn,
                         head, ds->heads);
    return NC_OK;
}

nc_status nc_dataset_class_counts(const nc_dataset *ds, int head, int64_t *counts) {
    nc_status st = check_head(ds, head, counts, "nc_dataset_class_counts");
    if (st != NC_OK) return st;
    memset(counts, 0, (size_t)ds->head[head].num_classes * sizeof *counts);
    for (int64_t i = 0; i < ds->n; i++) counts[ds->labels[(size_t)i * (size_t)ds->heads + (size_t)head]]++;
    return NC_OK;
}

nc_status nc_dataset_class_weights(const nc_dataset *ds, int head, float *weights) {
    nc_status st = check_head(ds, head, weights, "nc_dataset_class_weights");
    if (st != NC_OK) return st;
    int k = ds->head[head].num_classes;
    int64_t *counts = nc__calloc(ds->ctx, (size_t)k, sizeof *counts);
    if (!counts) return nc__error(ds->ctx, NC_ERR_OUT_OF_MEMORY, "nc_dataset_class_weights: out of memory");
    nc_dataset_class_counts(ds, head, counts);
    for (int c = 0; c < k; c++)
        weights[c] = counts[c] ? (float)((double)ds->n / ((double)k * (double)counts[c])) : 0.0f;
    nc__free(ds->ctx, counts);
    return NC_OK;
}

/* --------------------------------------------------------------- decoding */

/* Folder and CSV samples: the files of sample i stacked as channels, an absent
 * optional file as zero channels followed by a 0/1 indicator channel. */
static nc_status read_files(const nc_dataset *ds, nc_context *ctx, int64_t i, nc_image **out) {
    const char *const *paths = ds->paths + (size_t)i * (size_t)ds->nfiles;
    nc_image *res = NULL, *part = NULL;
    nc_status st;
    int bit_depth = 0;
    for (int j = 0; j < ds->nfiles; j++) {
        if (!paths[j]) continue; /* the absent optional file: zeros below */
        st = nc_png_read(ctx, paths[j], &ds->limits, &part);
        if (st != NC_OK) {
            name_file(ctx, st, paths[j]); /* when libpng's message does not */
            goto fail;
        }
        if (part->channels != ds->file_channels[j]) {
            st = nc__error(ctx, NC_ERR_SHAPE, "%s: %d channel%s, but '%s' has %d", paths[j],
                           part->channels, part->channels == 1 ? "" : "s", ds->ref_path[j],
                           ds->file_channels[j]);
            goto fail;
        }
        if (!res) {
            NC_CHECK(nc__image_alloc(ctx, ds->channels, part->height, part->width, &res));
        } else if (part->height != res->height || part->width != res->width) {
            st = nc__error(ctx, NC_ERR_SHAPE, "%s is %dx%d (width x height) but %s is %dx%d",
                           paths[j], part->width, part->height, paths[0], res->width, res->height);
            goto fail;
        }
        size_t plane = (size_t)res->height * (size_t)res->width;
        memcpy(res->data + (size_t)ds->file_offset[j] * plane, part->data,
               (size_t)part->channels * plane * sizeof(float));
        if (part->bit_depth > bit_depth) bit_depth = part->bit_depth;
        nc_image_destroy(part);
        part = NULL;
    }
    if (ds->has_optional) {
        int j = ds->nfiles - 1;
        size_t plane = (size_t)res->height * (size_t)res->width;
        float *ind = res->data + (size_t)(ds->channels - 1) * plane;
        if (!paths[j]) memset(res->data + (size_t)ds->file_offset[j] * plane, 0,
                              (size_t)ds->file_channels[j] * plane * sizeof(float));
        float v = paths[j] ? 1.0f : 0.0f;
        for (size_t k = 0; k < plane; k++) ind[k] = v;
    }
    res->bit_depth = bit_depth;
    *out = res;
    return NC_OK;
fail:
    nc_image_destroy(part);
    nc_image_destroy(res);
    return st;
}

nc_status nc__dataset_read(nc_dataset *ds, nc_context *ctx, int64_t i, nc_image **out) {
    if (!out) return nc__error(ctx, NC_ERR_NULL, "dataset read: out is NULL");
    *out = NULL;
    if (!ds) return nc__error(ctx, NC_ERR_NULL, "dataset read: dataset is NULL");
    if (i < 0 || i >= ds->n)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "dataset: sample %lld out of range [0, %lld)",
                         (long long)i, (long long)ds->n);
    if (ds->kind == NC__DS_IDX) return nc__idx_read(ds, ctx, i, out);
    return read_files(ds, ctx, i, out);
}

nc_status nc__dataset_read_pixels(nc_dataset *ds, nc_context *ctx, int64_t i, nc__pixels *px) {
    px->data = NULL;
    if (!ds) return nc__error(ctx, NC_ERR_NULL, "dataset read: dataset is NULL");
    if (i < 0 || i >= ds->n)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "dataset: sample %lld out of range [0, %lld)",
                         (long long)i, (long long)ds->n);
    if (ds->kind == NC__DS_IDX) { /* borrowed: the dataset keeps every image decoded */
        px->channels = 1;
        px->height = ds->idx_h;
        px->width = ds->idx_w;
        px->depth = 8;
        px->data = ds->pixels + (size_t)i * (size_t)ds->idx_h * (size_t)ds->idx_w;
        return NC_OK;
    }
    if (ds->nfiles != 1 || ds->has_optional) return NC_ERR_UNSUPPORTED;
    const char *path = ds->paths[i];
    nc_status st = nc__png_read_pixels(ctx, path, &ds->limits, px);
    if (st != NC_OK) return name_file(ctx, st, path);
    if (px->channels != ds->file_channels[0]) {
        px->data = NULL;
        return nc__error(ctx, NC_ERR_SHAPE, "%s: %d channel%s, but '%s' has %d", path, px->channels,
                         px->channels == 1 ? "" : "s", ds->ref_path[0], ds->file_channels[0]);
    }
    return NC_OK;
}

nc_status nc_dataset_get(nc_dataset *ds, int64_t i, nc_image **out) {
    if (!ds) {
        if (out) *out = NULL;
        return NC_ERR_NULL;
    }
    return nc__dataset_read(ds, ds->ctx, i, out);
}

/* --------------------------------------------------------------- statistics */

nc_status nc_dataset_channel_stats(nc_dataset *ds, const int64_t *indices, int64_t count,
                                   const nc_transform *t, float *mean, float *std) {
    if (!ds) return NC_ERR_NULL;
    nc_context *ctx = ds->ctx;
    if (!mean || !std) return nc__error(ctx, NC_ERR_NULL, "nc_dataset_channel_stats: mean or std is NULL");
    if (!indices) count = ds->n;
    if (count < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_dataset_channel_stats: count %lld < 1",
                         (long long)count);
    const int C = ds->channels;
    /* (C) running mean and sum of squared deviations, combined image by image (Chan et
     * al.), in double */
    double *acc = nc__calloc(ctx, 2 * (size_t)C, sizeof(double));
    if (!acc) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_dataset_channel_stats: out of memory");
    double *mu = acc, *m2 = acc + C;
    double seen = 0;
    nc_image *img = NULL, *tr = NULL;
    nc_status st = NC_OK;
    nc_progress pr = nc__progress_begin(NC_PHASE_SCAN, count, NULL);
    for (int64_t k = 0; k < count; k++) {
        pr.done = k;
        NC_CHECK(nc__progress(ctx, &pr, "nc_dataset_channel_stats", "samples"));
        int64_t i = indices ? indices[k] : k;
        if (i < 0 || i >= ds->n) {
            st = nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                           "nc_dataset_channel_stats: indices[%lld] = %lld out of range [0, %lld)",
                           (long long)k, (long long)i, (long long)ds->n);
            goto fail;
        }
        NC_CHECK(nc__dataset_read(ds, ctx, i, &img));
        if (t) {
            NC_CHECK(nc_transform_apply(t, ctx, img, 0, 0, (uint64_t)i, &tr));
            nc_image_destroy(img);
            img = tr;
            tr = NULL;
        }
        if (img->channels != C) {
            st = nc__error(ctx, NC_ERR_SHAPE, "nc_dataset_channel_stats: sample %lld has %d channels, expected %d",
                           (long long)i, img->channels, C);
            goto fail;
        }
        size_t plane = (size_t)img->height * (size_t)img->width;
        double nb = (double)plane, n = seen + nb;
        for (int c = 0; c < C; c++) {
            const float *x = img->data + (size_t)c * plane;
            double s = 0, q = 0;
            for (size_t p = 0; p < plane; p++) s += x[p];
            double mb = s / nb;
            for (size_t p = 0; p < plane; p++) q += ((double)x[p] - mb) * ((double)x[p] - mb);
            double delta = mb - mu[c];
            mu[c] += delta * nb / n;
            m2[c] += q + delta * delta * seen * nb / n;
        }
        seen = n;
        nc_image_destroy(img);
        img = NULL;
    }
    pr.done = count;
    NC_CHECK(nc__progress(ctx, &pr, "nc_dataset_channel_stats", "samples"));
    for (int c = 0; c < C; c++) {
        mean[c] = (float)mu[c];
        std[c] = (float)sqrt(m2[c] / seen);
    }
fail:
    nc_image_destroy(img);
    nc__free(ctx, acc);
    return st;
}
