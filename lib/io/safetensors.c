/* safetensors.c — reader of the safetensors format (see safetensors.h; the writer is
 * safetensors_write.c). The reader treats a file as hostile: every number in the header is checked before
 * it is used, and the whole file is validated before any tensor is handed out. */
#include "io/safetensors.h"
#include "core/context.h"

#include "core/json.h"
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_EXACT_INT NC__ST_MAX_EXACT_INT
#define NAME_MAX_SHOWN NC__ST_NAME_SHOWN

/* ------------------------------------------------------------------ dtypes */

static const struct {
    const char *name;
    size_t size;
} dtype_table[NC__DT_COUNT] = {
    [NC__DT_F32] = {"F32", 4}, [NC__DT_F16] = {"F16", 2}, [NC__DT_BF16] = {"BF16", 2},
    [NC__DT_F64] = {"F64", 8}, [NC__DT_I64] = {"I64", 8}, [NC__DT_I32] = {"I32", 4},
    [NC__DT_I16] = {"I16", 2}, [NC__DT_I8] = {"I8", 1},   [NC__DT_U8] = {"U8", 1},
    [NC__DT_BOOL] = {"BOOL", 1},
};

/* dtypes of the format that this library does not read */
static const char *const dtype_unsupported[] = {"U16",     "U32",      "U64",      "F8_E4M3",
                                                "F8_E5M2", "F8_E8M0",  "F6_E2M3",  "F6_E3M2",
                                                "F4",      "C64",      "F8_E4M3FNUZ",
                                                "F8_E5M2FNUZ"};

const char *nc__st_dtype_name(nc__st_dtype dt) {
    return (unsigned)dt < NC__DT_COUNT ? dtype_table[dt].name : "?";
}

size_t nc__st_dtype_size(nc__st_dtype dt) {
    return (unsigned)dt < NC__DT_COUNT ? dtype_table[dt].size : 0;
}

int nc__st_host_little_endian(void) {
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
#else
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
#endif
}

static uint64_t load_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and code
 * points past U+10FFFF included), or n when all of s[0..n) is valid. */
size_t nc__st_utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

static void shape_text(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%" PRId64 : "%" PRId64, shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* ------------------------------------------------------------------ reader */

typedef struct range {
    uint64_t begin, end;
    int tensor;
} range;

typedef struct reader {
    nc_context *ctx;
    const char *label;   /* path, or "<memory>" */
    nc__st_file *f;
    uint64_t data_size;  /* bytes after the header */
    const unsigned char *data;
    range *ranges;       /* (n_tensors) */
} reader;

/* Error about the file: "<label>: <message>". */
static nc_status ferr(reader *r, nc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static nc_status ferr(reader *r, nc_status status, const char *fmt, ...) {
    char msg[NC__ERROR_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nc__error(r->ctx, status, "%s: %s", r->label, msg);
}

/* Error about one tensor: "<label>: tensor '<name>': <message>". */
static nc_status terr(reader *r, const char *name, nc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static nc_status terr(reader *r, const char *name, nc_status status, const char *fmt, ...) {
    char msg[NC__ERROR_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nc__error(r->ctx, status, "%s: tensor '%.*s': %s", r->label, NAME_MAX_SHOWN, name, msg);
}

static int cmp_items_by_key(const void *a, const void *b) {
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

static int cmp_ranges(const void *a, const void *b) {
    const range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Collects the members of `obj` sorted by key into *out (nc__free) and rejects a key
 * that appears twice (cJSON keeps both). `what` names the object in messages. */
static nc_status sorted_members(reader *r, const cJSON *obj, const char *what, cJSON ***out,
                                int *count) {
    int n = 0;
    *out = NULL;
    *count = 0;
    for (const cJSON *it = obj->child; it; it = it->next) n++;
    if (n == 0) return NC_OK;
    cJSON **items = nc__alloc(r->ctx, (size_t)n * sizeof *items);
    if (!items) return ferr(r, NC_ERR_OUT_OF_MEMORY, "out of memory");
    int k = 0;
    for (cJSON *it = obj->child; it; it = it->next) items[k++] = it;
    qsort(items, (size_t)n, sizeof *items, cmp_items_by_key);
    for (int i = 1; i < n; i++) {
        if (strcmp(items[i - 1]->string, items[i]->string) == 0) {
            nc_status st = ferr(r, NC_ERR_FORMAT, "%sduplicate key '%.*s'", what, NAME_MAX_SHOWN,
                                items[i]->string);
            nc__free(r->ctx, items);
            return st;
        }
    }
    *out = items;
    *count = n;
    return NC_OK;
}

/* A JSON number that is a non-negative integer a double holds exactly. */
static int get_uint(const cJSON *item, uint64_t *v) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > MAX_EXACT_INT || d != floor(d)) return 0;
    *v = (uint64_t)d;
    return 1;
}

/* Text of a JSON value for messages: numbers as numbers, anything else by type. */
static void value_text(char *buf, size_t size, const cJSON *item) {
    if (!item) snprintf(buf, size, "missing");
    else if (cJSON_IsNumber(item)) snprintf(buf, size, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item)) snprintf(buf, size, "a string");
    else if (cJSON_IsArray(item)) snprintf(buf, size, "an array");
    else if (cJSON_IsObject(item)) snprintf(buf, size, "an object");
    else if (cJSON_IsBool(item)) snprintf(buf, size, "a boolean");
    else snprintf(buf, size, "null");
}

static nc_status parse_dtype(reader *r, const char *name, const cJSON *item, nc__st_dtype *dt) {
    if (!cJSON_IsString(item) || !item->valuestring)
        return terr(r, name, NC_ERR_FORMAT, "\"dtype\" is %s", item ? "not a string" : "missing");
    for (int i = 0; i < NC__DT_COUNT; i++) {
        if (strcmp(item->valuestring, dtype_table[i].name) == 0) {
            *dt = (nc__st_dtype)i;
            return NC_OK;
        }
    }
    for (size_t i = 0; i < sizeof dtype_unsupported / sizeof *dtype_unsupported; i++) {
        if (strcmp(item->valuestring, dtype_unsupported[i]) == 0)
            return terr(r, name, NC_ERR_UNSUPPORTED, "dtype %s is not supported",
                        item->valuestring);
    }
    return terr(r, name, NC_ERR_FORMAT, "unknown dtype '%.32s'", item->valuestring);
}

static nc_status parse_tensor(reader *r, const cJSON *item, int index) {
    nc__st_tensor *t = &r->f->tensors[index];
    const char *name = item->string;
    const cJSON *jdtype = NULL, *jshape = NULL, *joff = NULL;
    char vbuf[64];
    nc_status st;

    if (!cJSON_IsObject(item)) return terr(r, name, NC_ERR_FORMAT, "entry is not an object");
    /* Unknown members are ignored (as the reference implementation does); the
     * three known ones must appear exactly once. */
    for (const cJSON *m = item->child; m; m = m->next) {
        const cJSON **slot = strcmp(m->string, "dtype") == 0          ? &jdtype
                             : strcmp(m->string, "shape") == 0        ? &jshape
                             : strcmp(m->string, "data_offsets") == 0 ? &joff
                                                                      : NULL;
        if (!slot) continue;
        if (*slot) return terr(r, name, NC_ERR_FORMAT, "duplicate key '%s'", m->string);
        *slot = m;
    }

    st = parse_dtype(r, name, jdtype, &t->dtype);
    if (st != NC_OK) return st;
    size_t esize = dtype_table[t->dtype].size;

    if (!cJSON_IsArray(jshape))
        return terr(r, name, NC_ERR_FORMAT, "\"shape\" is %s", jshape ? "not an array" : "missing");
    int ndim = cJSON_GetArraySize(jshape);
    if (ndim > NC__ST_MAX_DIMS)
        return terr(r, name, NC_ERR_UNSUPPORTED,
                    "shape has %d dimensions, more than the %d supported", ndim, NC__ST_MAX_DIMS);
    t->ndim = ndim;
    int zero = 0;
    int d = 0;
    for (const cJSON *e = jshape->child; e; e = e->next, d++) {
        uint64_t v;
        if (!get_uint(e, &v)) {
            value_text(vbuf, sizeof vbuf, e);
            return terr(r, name, NC_ERR_FORMAT, "shape[%d] is %s, not a non-negative integer", d,
                        vbuf);
        }
        t->shape[d] = (int64_t)v;
        if (v == 0) zero = 1;
    }
    char sbuf[8 * 24 + 4];
    shape_text(sbuf, sizeof sbuf, t->ndim, t->shape);
    /* bytes = numel * element size, refusing any product that does not fit 64 bits;
     * the offsets check below then bounds it by the data section */
    uint64_t numel = zero ? 0 : 1;
    for (int i = 0; i < ndim && !zero; i++) {
        uint64_t v = (uint64_t)t->shape[i];
        if (numel > UINT64_MAX / esize / v)
            return terr(r, name, NC_ERR_FORMAT, "shape %s is too large", sbuf);
        numel *= v;
    }
    uint64_t need = numel * esize;

    uint64_t b = 0, e = 0;
    if (!joff) return terr(r, name, NC_ERR_FORMAT, "\"data_offsets\" is missing");
    if (!cJSON_IsArray(joff)) {
        value_text(vbuf, sizeof vbuf, joff);
        return terr(r, name, NC_ERR_FORMAT, "data_offsets is %s, not an array [begin,end]", vbuf);
    }
    if (cJSON_GetArraySize(joff) != 2)
        return terr(r, name, NC_ERR_FORMAT, "data_offsets has %d entries, not two [begin,end]",
                    cJSON_GetArraySize(joff));
    if (!get_uint(joff->child, &b) || !get_uint(joff->child->next, &e)) {
        char b1[64];
        value_text(vbuf, sizeof vbuf, joff->child);
        value_text(b1, sizeof b1, joff->child->next);
        return terr(r, name, NC_ERR_FORMAT,
                    "data_offsets must be two non-negative integers "
                    "[begin,end] (got %s, %s)",
                    vbuf, b1);
    }
    if (b > e)
        return terr(r, name, NC_ERR_FORMAT,
                    "data_offsets [%" PRIu64 ",%" PRIu64 "] begin after end", b, e);
    if (e > r->data_size)
        return terr(r, name, NC_ERR_FORMAT,
                    "data_offsets [%" PRIu64 ",%" PRIu64
                    "] run past the end of the data section (%" PRIu64 " bytes)",
                    b, e, r->data_size);
    if (e - b != need)
        return terr(r, name, NC_ERR_FORMAT,
                    "data_offsets [%" PRIu64 ",%" PRIu64 "] span %" PRIu64
                    " bytes but %s shape %s needs %" PRIu64,
                    b, e, e - b, dtype_table[t->dtype].name, sbuf, need);

    t->name = nc__strdup(r->ctx, name);
    if (!t->name) return ferr(r, NC_ERR_OUT_OF_MEMORY, "out of memory");
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)need;
    t->data = r->data + b;
    r->ranges[index].begin = b;
    r->ranges[index].end = e;
    r->ranges[index].tensor = index;
    return NC_OK;
}

static nc_status parse_metadata(reader *r, const cJSON *meta) {
    nc__st_file *f = r->f;
    cJSON **items = NULL;
    int n = 0;
    nc_status st;
    if (!cJSON_IsObject(meta)) return ferr(r, NC_ERR_FORMAT, "__metadata__ is not an object");
    st = sorted_members(r, meta, "__metadata__: ", &items, &n);
    if (st != NC_OK) return st;
    if (n == 0) return NC_OK;
    for (int i = 0; i < n; i++) {
        if (!cJSON_IsString(items[i]) || !items[i]->valuestring) {
            st = ferr(r, NC_ERR_FORMAT, "__metadata__ key '%.*s' has a non-string value",
                      NAME_MAX_SHOWN, items[i]->string);
            goto done;
        }
    }
    f->meta_keys = nc__calloc(r->ctx, (size_t)n, sizeof *f->meta_keys);
    f->meta_values = nc__calloc(r->ctx, (size_t)n, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) goto oom;
    for (int i = 0; i < n; i++) {
        f->meta_keys[i] = nc__strdup(r->ctx, items[i]->string);
        f->meta_values[i] = nc__strdup(r->ctx, items[i]->valuestring);
        f->n_meta = i + 1; /* close() frees entries [0, n_meta) */
        if (!f->meta_keys[i] || !f->meta_values[i]) goto oom;
    }
    st = NC_OK;
    goto done;
oom:
    st = ferr(r, NC_ERR_OUT_OF_MEMORY, "out of memory");
done:
    nc__free(r->ctx, items);
    return st;
}

/* Checks the header's bytes before JSON parsing: it starts with '{', is UTF-8, has no
 * raw control bytes (JSON allows none but whitespace) and no "\u0000" escape (which
 * would cut a C string short). */
static nc_status check_header_text(reader *r, const unsigned char *h, size_t n) {
    if (n == 0 || h[0] != '{')
        return ferr(r, NC_ERR_FORMAT, "not a safetensors file: header does not begin with '{'");
    size_t bad = nc__st_utf8_invalid_at(h, n);
    if (bad < n)
        return ferr(r, NC_ERR_FORMAT,
                    "header is not valid UTF-8 (byte 0x%02x at header offset %zu)", h[bad], bad);
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = h[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return ferr(r, NC_ERR_FORMAT,
                        "header contains control byte 0x%02x at header offset %zu", c, i);
        if (!in_string) {
            if (c == '"') in_string = 1;
        } else if (c == '"') {
            in_string = 0;
        } else if (c == '\\' && i + 1 < n) {
            if (h[i + 1] == 'u' && n - i >= 6 && memcmp(h + i + 2, "0000", 4) == 0)
                return ferr(r, NC_ERR_FORMAT,
                            "header string contains a \\u0000 escape at header offset %zu", i);
            i++; /* skip the escaped character */
        }
    }
    return NC_OK;
}

/* Checks the header length n read from the file's first 8 bytes `head`. A length
 * that runs past the end of the file means the file is not safetensors at all (a text
 * file's first 8 bytes read as a huge number): said so, with those bytes when they are
 * printable. Only a file that really holds a header over the limit gets NC_ERR_LIMIT. */
static nc_status check_header_length(nc_context *ctx, const char *label, uint64_t file_size,
                                     const unsigned char *head) {
    uint64_t n = load_le64(head);
    if (n > file_size - 8) {
        int text = 1;
        for (int i = 0; i < 8; i++) text &= head[i] >= 0x20 && head[i] < 0x7f;
        return nc__error(ctx, NC_ERR_FORMAT,
                         "%s: not a safetensors file: header length %" PRIu64
                         " runs past the end of the file (%" PRIu64 " bytes)%s%.*s%s",
                         label, n, file_size, text ? "; it begins with the text \"" : "", text ? 8 : 0,
                         (const char *)head, text ? "\"" : "");
    }
    if (n > NC__ST_MAX_HEADER)
        return nc__error(ctx, NC_ERR_LIMIT,
                         "%s: header length %" PRIu64 " exceeds the limit of %u bytes", label, n,
                         NC__ST_MAX_HEADER);
    return NC_OK;
}

/* Validates blob[0..size) (blob[size] must be a readable NUL) and builds the file;
 * takes ownership of blob in every case. */
static nc_status parse_blob(nc_context *ctx, const char *label, unsigned char *blob, size_t size,
                            nc__st_file **out) {
    nc_status st;
    cJSON *root = NULL;
    cJSON **items = NULL;
    int n_items = 0;
    reader r = {ctx, label, NULL, 0, NULL, NULL};

    nc__st_file *f = nc__calloc(ctx, 1, sizeof *f);
    if (!f) {
        nc__free(ctx, blob);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    }
    f->ctx = ctx;
    f->blob = blob;
    f->blob_size = size;
    r.f = f;

    if (size < 8) {
        st = ferr(&r, NC_ERR_FORMAT, "file is %zu bytes, too short for the 8-byte header length",
                  size);
        goto fail;
    }
    NC_CHECK(check_header_length(ctx, label, size, blob));
    uint64_t n = load_le64(blob);
    const unsigned char *hdr = blob + 8;
    r.data = hdr + n;
    r.data_size = (uint64_t)size - 8 - n;
    NC_CHECK(check_header_text(&r, hdr, (size_t)n));

    const char *end = NULL;
    st = nc__json_parse(ctx, (const char *)hdr, (size_t)n, &end, &root);
    if (st == NC_ERR_OUT_OF_MEMORY) {
        st = ferr(&r, st, "out of memory for the header's JSON");
        goto fail;
    }
    if (st != NC_OK || !cJSON_IsObject(root)) {
        st = ferr(&r, NC_ERR_FORMAT, "header is not a valid JSON object");
        goto fail;
    }
    for (const char *p = end; p < (const char *)hdr + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = ferr(&r, NC_ERR_FORMAT,
                      "header has bytes other than space padding after the JSON object "
                      "(header offset %zu)",
                      (size_t)(p - (const char *)hdr));
            goto fail;
        }
    }

    NC_CHECK(sorted_members(&r, root, "", &items, &n_items));
    int n_tensors = 0;
    const cJSON *meta = NULL;
    for (int i = 0; i < n_items; i++) {
        if (strcmp(items[i]->string, "__metadata__") == 0) meta = items[i];
        else n_tensors++;
    }
    if (meta) NC_CHECK(parse_metadata(&r, meta));
    if (n_tensors > 0) {
        f->tensors = nc__calloc(ctx, (size_t)n_tensors, sizeof *f->tensors);
        r.ranges = nc__alloc(ctx, (size_t)n_tensors * sizeof *r.ranges);
        if (!f->tensors || !r.ranges) {
            st = ferr(&r, NC_ERR_OUT_OF_MEMORY, "out of memory");
            goto fail;
        }
    }
    /* tensors in name order (items are sorted): nc__st_find is a binary search */
    for (int i = 0; i < n_items; i++) {
        if (items[i] == meta) continue;
        NC_CHECK(parse_tensor(&r, items[i], f->n_tensors));
        f->n_tensors++;
    }

    /* the byte ranges, in order, must tile the data section: no overlap, no hole */
    if (f->n_tensors) qsort(r.ranges, (size_t)f->n_tensors, sizeof *r.ranges, cmp_ranges);
    uint64_t cursor = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const range *g = &r.ranges[i];
        const char *tn = f->tensors[g->tensor].name;
        if (g->begin < cursor) {
            const range *p = &r.ranges[i - 1];
            st = terr(&r, tn, NC_ERR_FORMAT,
                      "data_offsets [%" PRIu64 ",%" PRIu64 "] overlap tensor '%.*s' [%" PRIu64
                      ",%" PRIu64 "]",
                      g->begin, g->end, NAME_MAX_SHOWN, f->tensors[p->tensor].name, p->begin,
                      p->end);
            goto fail;
        }
        if (g->begin > cursor) {
            st = terr(&r, tn, NC_ERR_FORMAT,
                      "data_offsets [%" PRIu64 ",%" PRIu64 "] leave a hole of %" PRIu64
                      " bytes at data offset %" PRIu64,
                      g->begin, g->end, g->begin - cursor, cursor);
            goto fail;
        }
        cursor = g->end;
    }
    if (cursor != r.data_size) {
        st = ferr(&r, NC_ERR_FORMAT,
                  "%" PRIu64 " trailing bytes in the data section are not covered by any tensor "
                  "(tensors end at %" PRIu64 ", data section is %" PRIu64 " bytes)",
                  r.data_size - cursor, cursor, r.data_size);
        goto fail;
    }

    nc__free(ctx, r.ranges);
    nc__free(ctx, items);
    nc__json_delete(ctx, root);
    *out = f;
    return NC_OK;
fail:
    nc__free(ctx, r.ranges);
    nc__free(ctx, items);
    nc__json_delete(ctx, root);
    nc__st_close(f);
    return st;
}

nc_status nc__st_parse(nc_context *ctx, const void *data, size_t size, nc__st_file **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out || (!data && size > 0))
        return nc__error(ctx, NC_ERR_NULL, "nc__st_parse: NULL %s", out ? "data" : "out");
    *out = NULL;
    if (!nc__st_host_little_endian())
        return nc__error(ctx, NC_ERR_UNSUPPORTED,
                         "safetensors: big-endian hosts are not supported");
    if (size == SIZE_MAX) return nc__error(ctx, NC_ERR_LIMIT, "<memory>: too large");
    /* an owned, 64-byte aligned copy with a NUL after it */
    unsigned char *blob = nc__alloc(ctx, size + 1);
    if (!blob)
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "<memory>: out of memory for %zu bytes", size);
    if (size) memcpy(blob, data, size);
    blob[size] = 0;
    return parse_blob(ctx, "<memory>", blob, size, out);
}

static int read_full(int fd, unsigned char *buf, size_t size, off_t offset) {
    size_t done = 0;
    while (done < size) {
        ssize_t k = pread(fd, buf + done, size - done, offset + (off_t)done);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = 0; /* the file shrank while we read it */
            return -1;
        }
        done += (size_t)k;
    }
    return 0;
}

nc_status nc__st_read(nc_context *ctx, const char *path, nc__st_file **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || !out)
        return nc__error(ctx, NC_ERR_NULL, "nc__st_read: NULL %s", path ? "out" : "path");
    *out = NULL;
    if (!nc__st_host_little_endian())
        return nc__error(ctx, NC_ERR_UNSUPPORTED,
                         "safetensors: big-endian hosts are not supported");

    nc_status st;
    unsigned char *blob = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) return nc__error(ctx, NC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = nc__error(ctx, NC_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = nc__error(ctx, NC_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 0 || (uintmax_t)sb.st_size >= SIZE_MAX) {
        st = nc__error(ctx, NC_ERR_LIMIT, "%s: file too large", path);
        goto fail;
    }
    size_t size = (size_t)sb.st_size;
    /* refuse a bad header length before reading (and allocating) the whole file */
    if (size >= 8) {
        unsigned char len[8];
        if (read_full(fd, len, 8, 0) != 0) goto read_error;
        NC_CHECK(check_header_length(ctx, path, size, len));
    }
    blob = nc__alloc(ctx, size + 1);
    if (!blob) {
        st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", path, size);
        goto fail;
    }
    if (read_full(fd, blob, size, 0) != 0) goto read_error;
    blob[size] = 0;
    close(fd);
    return parse_blob(ctx, path, blob, size, out);

read_error:
    st = nc__error(ctx, NC_ERR_IO, "%s: read failed: %s", path,
                   errno ? strerror(errno) : "unexpected end of file");
fail:
    nc__free(ctx, blob);
    close(fd);
    return st;
}

void nc__st_close(nc__st_file *f) {
    if (!f) return;
    nc_context *ctx = f->ctx;
    for (int i = 0; i < f->n_tensors; i++) nc__free(ctx, f->tensors[i].name);
    nc__free(ctx, f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        nc__free(ctx, f->meta_keys[i]);
        nc__free(ctx, f->meta_values[i]);
    }
    nc__free(ctx, f->meta_keys);
    nc__free(ctx, f->meta_values);
    nc__free(ctx, f->blob);
    nc__free(ctx, f);
}

const nc__st_tensor *nc__st_find(const nc__st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *nc__st_meta(const nc__st_file *f, const char *key) {
    if (!f || !key) return NULL;
    int lo = 0, hi = f->n_meta - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->meta_keys[mid]);
        if (c == 0) return f->meta_values[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

/* ------------------------------------------------------------- conversion */

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Exact in float. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or nan keeping its payload */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13); /* rebias 15 -> 127 */
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* subnormal: mant * 2^-24 = 1.xxx * 2^(k-24), k the top set bit of mant */
        int k = 9;
        while (!(mant >> k)) k--;
        bits = sign | ((uint32_t)(k + 103) << 23) | ((mant << (23 - k)) & 0x7fffffu);
    }
    return bits_to_float(bits);
}

/* bfloat16 is the top half of a float. */
static float bf16_to_float(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

/* double -> float rounding to nearest, with overflow to +-inf spelled out (the cast
 * alone is undefined for values out of float's range). */
static float double_to_float(double d) {
    if (d >= 0x1.ffffffp127) return INFINITY; /* FLT_MAX plus half an ulp rounds up */
    if (d <= -0x1.ffffffp127) return -INFINITY;
    return (float)d;
}

nc_status nc__st_to_f32(nc_context *ctx, const nc__st_tensor *t, float *out) {
    if (!ctx) return NC_ERR_NULL;
    if (!t || (!out && t->numel > 0))
        return nc__error(ctx, NC_ERR_NULL, "nc__st_to_f32: NULL %s", t ? "out" : "tensor");
    if (!nc__st_host_little_endian())
        return nc__error(ctx, NC_ERR_UNSUPPORTED,
                         "safetensors: big-endian hosts are not supported");
    const unsigned char *p = t->data;
    size_t n = (size_t)t->numel;
    if (n == 0) return NC_OK;
        /* the file's tensors may sit at any address: each element is read with memcpy */
#define CONVERT_EACH(TYPE, EXPR)                                                        \
    for (size_t i = 0; i < n; i++) {                                                    \
        TYPE v;                                                                         \
        memcpy(&v, p + i * sizeof(TYPE), sizeof(TYPE));                                 \
        out[i] = (EXPR);                                                                \
    }                                                                                   \
    break
    switch (t->dtype) {
    case NC__DT_F32: if (n) memcpy(out, p, n * sizeof(float)); break;
    case NC__DT_F16: CONVERT_EACH(uint16_t, half_to_float(v));
    case NC__DT_BF16: CONVERT_EACH(uint16_t, bf16_to_float(v));
    case NC__DT_F64: CONVERT_EACH(double, double_to_float(v));
    case NC__DT_I64: CONVERT_EACH(int64_t, (float)v);
    case NC__DT_I32: CONVERT_EACH(int32_t, (float)v);
    case NC__DT_I16: CONVERT_EACH(int16_t, (float)v);
    case NC__DT_I8: CONVERT_EACH(int8_t, (float)v);
    case NC__DT_U8: CONVERT_EACH(uint8_t, (float)v);
    case NC__DT_BOOL: CONVERT_EACH(uint8_t, v ? 1.0f : 0.0f);
    default:
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc__st_to_f32: tensor '%.*s': bad dtype %d",
                         NAME_MAX_SHOWN, t->name ? t->name : "?", (int)t->dtype);
    }
#undef CONVERT_EACH
    return NC_OK;
}
