/* safetensors.h — reader and writer of the safetensors format
 * (8-byte little-endian header length, a JSON header, then the raw tensor bytes),
 * with the format's validation rules: header size limit, offsets that tile the
 * data exactly, dtype/shape/size agreement, no duplicate keys. JSON via core/json.h. */
#ifndef NC_IO_SAFETENSORS_H
#define NC_IO_SAFETENSORS_H

#include "neurc.h"

#include <stdint.h>
#include <stddef.h>

#define NC__ST_MAX_HEADER (100u * 1024u * 1024u) /* 100 MB, as the reference implementation */
#define NC__ST_MAX_DIMS 8
#define NC__ST_MAX_EXACT_INT 9007199254740992.0 /* 2^53: the largest integer a double holds exactly */
#define NC__ST_NAME_SHOWN 200                   /* tensor names are cut to this in messages */

/* Shared by reader and writer: host byte order, and the offset of the first byte
 * that breaks UTF-8 in s[0..n) (n when valid). */
int nc__st_host_little_endian(void);
size_t nc__st_utf8_invalid_at(const unsigned char *s, size_t n);

typedef enum nc__st_dtype {
    NC__DT_F32 = 0, NC__DT_F16, NC__DT_BF16, NC__DT_F64,
    NC__DT_I64, NC__DT_I32, NC__DT_I16, NC__DT_I8, NC__DT_U8, NC__DT_BOOL,
    NC__DT_COUNT
} nc__st_dtype;

const char *nc__st_dtype_name(nc__st_dtype dt);      /* "F32" */
size_t nc__st_dtype_size(nc__st_dtype dt);           /* bytes per element */

typedef struct nc__st_tensor {
    char *name;
    nc__st_dtype dtype;
    int ndim;
    int64_t shape[NC__ST_MAX_DIMS];
    int64_t numel;
    const void *data;          /* into the file's data section; little-endian */
    size_t nbytes;
} nc__st_tensor;

typedef struct nc__st_file {
    nc_context *ctx;
    void *blob;                /* whole file contents (owned) */
    size_t blob_size;
    nc__st_tensor *tensors;    /* sorted by name (strcmp order) */
    int n_tensors;
    char **meta_keys;          /* __metadata__ (string -> string), sorted by key */
    char **meta_values;
    int n_meta;
} nc__st_file;

/* Reads and validates a whole file. Errors: NC_ERR_IO (open/read, with path and
 * strerror), NC_ERR_FORMAT (any rule broken, message says which and where),
 * NC_ERR_LIMIT (header over the limit), NC_ERR_UNSUPPORTED (a valid dtype this
 * library does not read such as U16/F8_*, more than NC__ST_MAX_DIMS dimensions, a
 * big-endian host), NC_ERR_OUT_OF_MEMORY. Messages start with the path ("<memory>"
 * for nc__st_parse), then "tensor '<name>': " where one tensor is at fault.
 * Tensor data may be unaligned (the format does not align it): read it with memcpy
 * or nc__st_to_f32. *out is NULL on failure. */
nc_status nc__st_read(nc_context *ctx, const char *path, nc__st_file **out);
/* Same from memory (copied). */
nc_status nc__st_parse(nc_context *ctx, const void *data, size_t size, nc__st_file **out);
void nc__st_close(nc__st_file *f);
const nc__st_tensor *nc__st_find(const nc__st_file *f, const char *name);
const char *nc__st_meta(const nc__st_file *f, const char *key);     /* NULL if absent */
/* Converts any dtype to f32 (out[t->numel]): f16/bf16 exactly (subnormals, inf, nan),
 * f64 rounded (overflow to +-inf), integers rounded to nearest, BOOL non-zero -> 1. */
nc_status nc__st_to_f32(nc_context *ctx, const nc__st_tensor *t, float *out);

/* Writer: collect tensors (data borrowed until nc__st_write returns), then write
 * atomically: "<path>.tmp.XXXXXX" in the same directory, fsync, rename, fsync dir.
 * The file is deterministic: "__metadata__" first, then tensors sorted by name, keys
 * sorted, header padded with spaces to a multiple of 8 bytes, data contiguous in the
 * same order. add/meta reject duplicates, names starting "__" and non-UTF-8 text
 * (NC_ERR_INVALID_ARGUMENT); the name, key and value strings are copied. */
typedef struct nc__st_writer nc__st_writer;
nc_status nc__st_writer_create(nc_context *ctx, nc__st_writer **out);
void nc__st_writer_destroy(nc__st_writer *w);
nc_status nc__st_writer_add(nc__st_writer *w, const char *name, nc__st_dtype dtype, int ndim,
                            const int64_t *shape, const void *data);  /* rejects duplicates */
nc_status nc__st_writer_meta(nc__st_writer *w, const char *key, const char *value);
nc_status nc__st_write(nc__st_writer *w, const char *path);
/* The same with NC_PHASE_SAVE progress reported under the public call `fn`
 * (io/file.h, nc__write_file_atomic_reported): NC_ERR_CANCELLED leaves `path` as it was. */
nc_status nc__st_write_reported(nc__st_writer *w, const char *path, const char *fn);
/* Serialises into a new buffer (nc__free with the context). */
nc_status nc__st_serialize(nc__st_writer *w, void **out, size_t *size);

#endif
