/* safetensors_write.c — the safetensors writer: entries sorted by name, the JSON
 * header (core/json.h) padded with spaces to 8 bytes as the reference implementation
 * does, data contiguous in the same order; deterministic for the same content. */
#include "io/safetensors.h"
#include "io/file.h"
#include "core/context.h"
#include "core/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXACT_INT NC__ST_MAX_EXACT_INT
#define NAME_MAX_SHOWN NC__ST_NAME_SHOWN

static void store_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* ------------------------------------------------------------------ writer */

typedef struct st_entry {
    char *name;
    nc__st_dtype dtype;
    int ndim;
    int64_t shape[NC__ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* borrowed */
} st_entry;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct nc__st_writer {
    nc_context *ctx;
    st_entry *entries;
    size_t n_entries, cap_entries;
    st_meta *meta;
    size_t n_meta, cap_meta;
};

nc_status nc__st_writer_create(nc_context *ctx, nc__st_writer **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc__st_writer_create: NULL out");
    *out = NULL;
    if (!nc__st_host_little_endian())
        return nc__error(ctx, NC_ERR_UNSUPPORTED,
                         "safetensors: big-endian hosts are not supported");
    nc__st_writer *w = nc__calloc(ctx, 1, sizeof *w);
    if (!w) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    w->ctx = ctx;
    *out = w;
    return NC_OK;
}

void nc__st_writer_destroy(nc__st_writer *w) {
    if (!w) return;
    nc_context *ctx = w->ctx;
    for (size_t i = 0; i < w->n_entries; i++) nc__free(ctx, w->entries[i].name);
    for (size_t i = 0; i < w->n_meta; i++) {
        nc__free(ctx, w->meta[i].key);
        nc__free(ctx, w->meta[i].value);
    }
    nc__free(ctx, w->entries);
    nc__free(ctx, w->meta);
    nc__free(ctx, w);
}

static int is_utf8(const char *s) {
    size_t n = strlen(s);
    return nc__st_utf8_invalid_at((const unsigned char *)s, n) == n;
}

nc_status nc__st_writer_add(nc__st_writer *w, const char *name, nc__st_dtype dtype, int ndim,
                            const int64_t *shape, const void *data) {
    if (!w) return NC_ERR_NULL;
    nc_context *ctx = w->ctx;
    if (!name) return nc__error(ctx, NC_ERR_NULL, "safetensors writer: NULL tensor name");
    if (strncmp(name, "__", 2) == 0 || !is_utf8(name))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "safetensors writer: tensor name '%.*s' %s",
                         NAME_MAX_SHOWN, name,
                         is_utf8(name) ? "starts with \"__\" (reserved)" : "is not valid UTF-8");
    if ((unsigned)dtype >= NC__DT_COUNT)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "safetensors writer: tensor '%.*s': bad dtype %d", NAME_MAX_SHOWN, name,
                         (int)dtype);
    if (ndim < 0 || ndim > NC__ST_MAX_DIMS)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "safetensors writer: tensor '%.*s': ndim %d outside [0, %d]",
                         NAME_MAX_SHOWN, name, ndim, NC__ST_MAX_DIMS);
    if (ndim > 0 && !shape)
        return nc__error(ctx, NC_ERR_NULL, "safetensors writer: tensor '%.*s': NULL shape",
                         NAME_MAX_SHOWN, name);
    /* bytes, kept below 2^53 so that every offset is an exact JSON integer */
    uint64_t bytes = nc__st_dtype_size(dtype);
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "safetensors writer: tensor '%.*s': shape[%d] = %" PRId64
                             " is negative",
                             NAME_MAX_SHOWN, name, i, shape[i]);
        if (shape[i] == 0) zero = 1;
    }
    for (int i = 0; i < ndim && !zero; i++) {
        if (bytes > (uint64_t)MAX_EXACT_INT / (uint64_t)shape[i])
            return nc__error(ctx, NC_ERR_LIMIT, "safetensors writer: tensor '%.*s' is too large",
                             NAME_MAX_SHOWN, name);
        bytes *= (uint64_t)shape[i];
    }
    if (zero) bytes = 0;
    if (bytes > 0 && !data)
        return nc__error(ctx, NC_ERR_NULL, "safetensors writer: tensor '%.*s': NULL data",
                         NAME_MAX_SHOWN, name);
    for (size_t i = 0; i < w->n_entries; i++) {
        if (strcmp(w->entries[i].name, name) == 0)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "safetensors writer: duplicate tensor name '%.*s'", NAME_MAX_SHOWN,
                             name);
    }
    if (nc__grow(ctx, (void **)&w->entries, sizeof *w->entries, &w->cap_entries,
                 w->n_entries + 1) != 0)
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    st_entry *e = &w->entries[w->n_entries];
    memset(e, 0, sizeof *e);
    e->name = nc__strdup(ctx, name);
    if (!e->name) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = (size_t)bytes;
    e->data = data;
    w->n_entries++;
    return NC_OK;
}

nc_status nc__st_writer_meta(nc__st_writer *w, const char *key, const char *value) {
    if (!w) return NC_ERR_NULL;
    nc_context *ctx = w->ctx;
    if (!key || !value)
        return nc__error(ctx, NC_ERR_NULL, "safetensors writer: NULL metadata %s",
                         key ? "value" : "key");
    if (!is_utf8(key) || !is_utf8(value))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "safetensors writer: metadata '%.*s' is not valid UTF-8", NAME_MAX_SHOWN,
                         key);
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "safetensors writer: duplicate metadata key '%.*s'", NAME_MAX_SHOWN,
                             key);
    }
    if (nc__grow(ctx, (void **)&w->meta, sizeof *w->meta, &w->cap_meta, w->n_meta + 1) != 0)
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    st_meta *m = &w->meta[w->n_meta];
    m->key = nc__strdup(ctx, key);
    m->value = nc__strdup(ctx, value);
    if (!m->key || !m->value) {
        nc__free(ctx, m->key);
        nc__free(ctx, m->value);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    }
    w->n_meta++;
    return NC_OK;
}

static int cmp_entries(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

/* The header JSON (*text, nc__free it), entries and metadata sorted by name; sizes
 * and offsets printed as exact integers. */
static nc_status build_header(nc__st_writer *w, char **text, size_t *len) {
    nc__jw j;
    nc__jw_init(&j, w->ctx, 0);
    nc__jw_object(&j, NULL);
    if (w->n_meta > 0) {
        nc__jw_object(&j, "__metadata__");
        for (size_t i = 0; i < w->n_meta; i++) nc__jw_str(&j, w->meta[i].key, w->meta[i].value);
        nc__jw_end(&j);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_entries; i++) {
        const st_entry *e = &w->entries[i];
        nc__jw_object(&j, e->name);
        nc__jw_str(&j, "dtype", nc__st_dtype_name(e->dtype));
        nc__jw_array(&j, "shape");
        for (int d = 0; d < e->ndim; d++) nc__jw_uint(&j, NULL, (uint64_t)e->shape[d]);
        nc__jw_end(&j);
        nc__jw_array(&j, "data_offsets");
        nc__jw_uint(&j, NULL, offset);
        offset += e->nbytes;
        nc__jw_uint(&j, NULL, offset);
        nc__jw_end(&j);
        nc__jw_end(&j);
    }
    nc__jw_end(&j);
    return nc__jw_finish(&j, "safetensors writer: header", text, len);
}

nc_status nc__st_serialize(nc__st_writer *w, void **out, size_t *size) {
    if (!w) return NC_ERR_NULL;
    nc_context *ctx = w->ctx;
    if (!out || !size) return nc__error(ctx, NC_ERR_NULL, "nc__st_serialize: NULL out or size");
    *out = NULL;
    *size = 0;
    if (w->n_entries) qsort(w->entries, w->n_entries, sizeof *w->entries, cmp_entries);
    if (w->n_meta) qsort(w->meta, w->n_meta, sizeof *w->meta, cmp_meta);

    uint64_t data_bytes = 0;
    for (size_t i = 0; i < w->n_entries; i++) {
        data_bytes += w->entries[i].nbytes;
        if (data_bytes > (uint64_t)MAX_EXACT_INT)
            return nc__error(ctx, NC_ERR_LIMIT, "safetensors writer: tensors too large in total");
    }
    char *text = NULL;
    size_t len = 0;
    nc_status st = build_header(w, &text, &len);
    if (st != NC_OK) return st;
    size_t padded = (len + 7) & ~(size_t)7; /* spaces up to a multiple of 8 bytes */
    if (padded > NC__ST_MAX_HEADER || data_bytes > SIZE_MAX - 8 - padded) {
        nc__free(ctx, text);
        return nc__error(ctx, NC_ERR_LIMIT, "safetensors writer: header of %zu bytes is too large",
                         len);
    }
    size_t total = 8 + padded + (size_t)data_bytes;
    unsigned char *buf = nc__alloc(ctx, total);
    if (!buf) {
        nc__free(ctx, text);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory (%zu bytes)",
                         total);
    }
    store_le64(buf, padded);
    memcpy(buf + 8, text, len);
    memset(buf + 8 + len, ' ', padded - len);
    nc__free(ctx, text);
    unsigned char *p = buf + 8 + padded;
    for (size_t i = 0; i < w->n_entries; i++) {
        if (w->entries[i].nbytes) memcpy(p, w->entries[i].data, w->entries[i].nbytes);
        p += w->entries[i].nbytes;
    }
    *out = buf;
    *size = total;
    return NC_OK;
}

nc_status nc__st_write(nc__st_writer *w, const char *path) { return nc__st_write_reported(w, path, NULL); }

nc_status nc__st_write_reported(nc__st_writer *w, const char *path, const char *fn) {
    if (!w) return NC_ERR_NULL;
    if (!path) return nc__error(w->ctx, NC_ERR_NULL, "nc__st_write: NULL path");
    void *buf = NULL;
    size_t size = 0;
    nc_status st = nc__st_serialize(w, &buf, &size);
    if (st != NC_OK) return nc__error_prefix(w->ctx, st, "%s", path);
    st = nc__write_file_atomic_reported(w->ctx, path, buf, size, fn);
    nc__free(w->ctx, buf);
    return st;
}
