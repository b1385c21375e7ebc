/* idx.c — MNIST / Fashion-MNIST IDX files (images u8 N x H x W, labels u8 N), plain
 * or gzip-compressed (inflated with zlib on the context's allocator). Headers are checked before
 * anything is allocated and sizes must match exactly; the u8 pixels stay in memory
 * and a sample is decoded to 1 x H x W floats / 255 when asked for. */
#include "data/dataset.h"
#include "data/data.h"
#include "core/context.h"
#include "nc_config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if HAVE_ZLIB
#include <zlib.h>
#endif

#define IDX_MAX_BYTES ((uint64_t)INT32_MAX) /* payload limit: just under 2 GiB */
#define READ_CHUNK ((size_t)1 << 30)
#define PAYLOAD_FIRST ((size_t)1 << 20) /* the payload buffer starts at 1 MiB and doubles */

/* An open IDX file: read directly, or inflated through a z_stream whose state and
 * input buffer come from the context's allocator hooks (gzopen/gzread would malloc). */
typedef struct idx_file {
    nc_context *ctx;
    const char *path;
    int fd;                    /* -1 when closed */
    int gz;                    /* the file starts with the gzip magic */
#if HAVE_ZLIB
    int z_live;                /* z was initialised (inflateEnd owed) */
    int z_done;                /* the compressed data has ended (or the file has) */
    z_stream z;
    unsigned char *in;         /* (GZ_CHUNK) compressed input, nc__alloc'ed */
#endif
} idx_file;

#define GZ_CHUNK ((size_t)1 << 17)

static nc_status read_some(idx_file *f, unsigned char *p, size_t n, size_t *got) {
    ssize_t k;
    do k = read(f->fd, p, n > READ_CHUNK ? READ_CHUNK : n);
    while (k < 0 && errno == EINTR);
    if (k < 0) return nc__error(f->ctx, NC_ERR_IO, "%s: %s", f->path, strerror(errno));
    *got = (size_t)k;
    return NC_OK;
}

#if HAVE_ZLIB
static voidpf z_alloc(voidpf ctx, uInt items, uInt size) {
    return (size_t)items > SIZE_MAX / size ? Z_NULL : nc__alloc(ctx, (size_t)items * size);
}

static void z_free(voidpf ctx, voidpf ptr) { nc__free(ctx, ptr); }

static nc_status gz_start(idx_file *f) {
    f->in = nc__alloc(f->ctx, GZ_CHUNK);
    if (!f->in) return nc__error(f->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for the gzip reader", f->path);
    f->z.zalloc = z_alloc;
    f->z.zfree = z_free;
    f->z.opaque = f->ctx;
    int r = inflateInit2(&f->z, 15 + 16); /* gzip wrapper only */
    if (r != Z_OK)
        return nc__error(f->ctx, r == Z_MEM_ERROR ? NC_ERR_OUT_OF_MEMORY : NC_ERR_UNSUPPORTED,
                         "%s: cannot start the gzip reader (zlib: %s)", f->path, f->z.msg ? f->z.msg : zError(r));
    f->z_live = 1;
    return NC_OK;
}

/* After the end of a gzip member: another member follows (gzip -c a b > ab), or
 * the data has ended and what follows, if anything, is ignored (as gzread does). */
static nc_status gz_next_member(idx_file *f) {
    while (f->z.avail_in < 2) {
        size_t k;
        memmove(f->in, f->z.next_in, f->z.avail_in);
        f->z.next_in = f->in;
        nc_status st = read_some(f, f->in + f->z.avail_in, GZ_CHUNK - f->z.avail_in, &k);
        if (st != NC_OK) return st;
        if (k == 0) break;
        f->z.avail_in += (uInt)k;
    }
    if (f->z.avail_in < 2 || f->z.next_in[0] != 0x1f || f->z.next_in[1] != 0x8b) {
        f->z_done = 1;
        return NC_OK;
    }
    return inflateReset(&f->z) == Z_OK ? NC_OK
                                        : nc__error(f->ctx, NC_ERR_FORMAT, "%s: corrupt gzip data", f->path);
}

/* Inflates up to n bytes into p; *got is how many. */
static nc_status gz_read(idx_file *f, unsigned char *p, size_t n, size_t *got) {
    nc_status st;
    *got = 0;
    while (*got < n && !f->z_done) {
        if (f->z.avail_in == 0) {
            size_t k;
            if ((st = read_some(f, f->in, GZ_CHUNK, &k)) != NC_OK) return st;
            if (k == 0) { /* a stream that ends early: the caller reports the shortfall */
                f->z_done = 1;
                break;
            }
            f->z.next_in = f->in;
            f->z.avail_in = (uInt)k;
        }
        size_t want = n - *got < READ_CHUNK ? n - *got : READ_CHUNK;
        f->z.next_out = p + *got;
        f->z.avail_out = (uInt)want;
        int r = inflate(&f->z, Z_NO_FLUSH);
        *got += want - f->z.avail_out;
        if (r == Z_STREAM_END) {
            if ((st = gz_next_member(f)) != NC_OK) return st;
        } else if (r == Z_MEM_ERROR) {
            return nc__error(f->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory in the gzip reader", f->path);
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            return nc__error(f->ctx, NC_ERR_FORMAT, "%s: corrupt gzip data (zlib: %s)", f->path,
                             f->z.msg ? f->z.msg : zError(r));
        }
    }
    return NC_OK;
}
#endif

static nc_status idx_open(nc_context *ctx, const char *path, idx_file *f) {
    f->ctx = ctx;
    f->path = path;
    f->fd = open(path, O_RDONLY);
    if (f->fd < 0) return nc__error(ctx, NC_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f->fd, &sb) != 0 || S_ISDIR(sb.st_mode))
        return nc__error(ctx, NC_ERR_IO, "%s: %s", path, strerror(S_ISDIR(sb.st_mode) ? EISDIR : errno));
    unsigned char sig[2] = {0, 0};
    size_t got = 0;
    nc_status st = read_some(f, sig, 2, &got);
    if (st != NC_OK) return st;
    f->gz = got == 2 && sig[0] == 0x1f && sig[1] == 0x8b;
    if (lseek(f->fd, 0, SEEK_SET) != 0) return nc__error(ctx, NC_ERR_IO, "%s: %s", path, strerror(errno));
#if HAVE_ZLIB
    if (f->gz) return gz_start(f);
#else
    if (f->gz)
        return nc__error(ctx, NC_ERR_UNSUPPORTED,
                         "%s: gzip-compressed, but this build of neurc has no zlib (gunzip it first)", path);
#endif
    return NC_OK;
}

static void idx_close(idx_file *f) {
#if HAVE_ZLIB
    if (f->z_live) inflateEnd(&f->z);
    f->z_live = 0;
    nc__free(f->ctx, f->in);
    f->in = NULL;
#endif
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

/* Reads up to n bytes into buf; *got is how many arrived before the end of the data.
 * A gzip stream that ends early counts as the end of the data (the caller reports
 * the shortfall); read errors and corrupt streams are errors. */
static nc_status idx_read(idx_file *f, void *buf, size_t n, size_t *got) {
    unsigned char *p = buf;
    *got = 0;
#if HAVE_ZLIB
    if (f->gz) return gz_read(f, p, n, got);
#endif
    while (*got < n) {
        size_t k;
        nc_status st = read_some(f, p + *got, n - *got, &k);
        if (st != NC_OK) return st;
        if (k == 0) break;
        *got += k;
    }
    return NC_OK;
}

static uint32_t load_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads the payload of `total` bytes into a new buffer (*out, freed by the caller
 * even on failure) that grows as data arrives, so that a short file whose header
 * claims up to 2 GiB gets "truncated", not a 2 GiB allocation (found by fuzzing,
 * tests/fuzz/regress/idx/). *got < total when the data ended early. */
static nc_status read_payload(idx_file *f, size_t total, unsigned char **out, size_t *got) {
    size_t cap = total < PAYLOAD_FIRST ? total : PAYLOAD_FIRST;
    unsigned char *buf = nc__alloc(f->ctx, cap ? cap : 1);
    *out = buf;
    *got = 0;
    if (!buf) return nc__error(f->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (;;) {
        size_t n;
        nc_status st = idx_read(f, buf + *got, cap - *got, &n);
        *got += n;
        if (st != NC_OK || *got < cap || cap == total) return st;
        size_t grown = cap > total / 2 ? total : 2 * cap;
        unsigned char *more = nc__alloc(f->ctx, grown);
        if (!more)
            return nc__error(f->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", f->path, grown);
        memcpy(more, buf, *got);
        nc__free(f->ctx, buf);
        *out = buf = more;
        cap = grown;
    }
}

/* Reads a whole u8 IDX file of `ndim` dimensions: dims[ndim] and *data (the caller
 * frees it with nc__free). `what` names the payload in messages. */
static nc_status idx_read_file(nc_context *ctx, const char *path, int ndim, const char *what,
                               uint32_t *dims, unsigned char **data) {
    idx_file f = {.fd = -1};
    unsigned char hdr[4 + 4 * 3];
    unsigned char *buf = NULL;
    size_t got;
    nc_status st;
    *data = NULL;
    NC_CHECK(idx_open(ctx, path, &f));
    NC_CHECK(idx_read(&f, hdr, 4, &got));
    if (got < 4) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: truncated: %zu bytes, too short for an IDX header",
                       path, got);
        goto fail;
    }
    uint32_t magic = load_be32(hdr), want = 0x00000800u | (uint32_t)ndim;
    if (magic != want) {
        st = nc__error(ctx, NC_ERR_FORMAT,
                       "%s: bad magic 0x%08" PRIx32 " (expected 0x%08" PRIx32
                       ": IDX unsigned bytes in %d dimension%s, %s)",
                       path, magic, want, ndim, ndim == 1 ? "" : "s", what);
        goto fail;
    }
    NC_CHECK(idx_read(&f, hdr + 4, 4 * (size_t)ndim, &got));
    if (got < 4 * (size_t)ndim) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: truncated: header ends inside the dimensions", path);
        goto fail;
    }
    uint64_t total = 1;
    int over = 0;
    char dtext[64] = "";
    for (int d = 0; d < ndim; d++) {
        dims[d] = load_be32(hdr + 4 + 4 * d);
        if (dims[d] == 0) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s: dimension %d of %d is 0", path, d + 1, ndim);
            goto fail;
        }
        size_t used = strlen(dtext);
        snprintf(dtext + used, sizeof dtext - used, d ? " x %" PRIu32 : "%" PRIu32, dims[d]);
        total *= dims[d]; /* <= 2^31 * 2^32 here: no overflow */
        if (total > IDX_MAX_BYTES) over = 1, total = IDX_MAX_BYTES + 1;
    }
    if (over) {
        st = nc__error(ctx, NC_ERR_LIMIT, "%s: dimensions %s are over the limit of %" PRIu64 " bytes",
                       path, dtext, IDX_MAX_BYTES);
        goto fail;
    }
    NC_CHECK(read_payload(&f, (size_t)total, &buf, &got));
    if (got < total) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: truncated: expected %" PRIu64 " bytes of %s data, got %zu",
                       path, total, what, got);
        goto fail;
    }
    unsigned char extra[4096];
    NC_CHECK(idx_read(&f, extra, sizeof extra, &got));
    if (got > 0) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: %s%zu trailing bytes after the %" PRIu64 " bytes of %s data",
                       path, got == sizeof extra ? "at least " : "", got, total, what);
        goto fail;
    }
    idx_close(&f);
    *data = buf;
    return NC_OK;
fail:
    idx_close(&f);
    nc__free(ctx, buf);
    return st;
}

nc_status nc__idx_load(nc_dataset *ds, const char *images, const char *labels) {
    nc_context *ctx = ds->ctx;
    uint32_t idim[3], ldim[1];
    unsigned char *lab = NULL;
    char *name = NULL;
    nc_status st;
    NC_CHECK(idx_read_file(ctx, images, 3, "pixel", idim, &ds->pixels));
    NC_CHECK(idx_read_file(ctx, labels, 1, "label", ldim, &lab));
    if (idim[0] != ldim[0]) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s has %" PRIu32 " images but %s has %" PRIu32 " labels",
                       images, idim[0], labels, ldim[0]);
        goto fail;
    }
    const int64_t n = idim[0];
    ds->idx_h = (int)idim[1];
    ds->idx_w = (int)idim[2];
    ds->channels = 1;
    NC_CHECK(nc__ds_alloc_labels(ds, n, 1));
    int max = 0;
    for (int64_t i = 0; i < n; i++) {
        ds->labels[i] = lab[i];
        if (lab[i] > max) max = lab[i];
    }
    NC_CHECK(nc__ds_int_classes(ds, 0, max + 1));

    /* nc_dataset_path text: "<images>:<i>" */
    ds->idx_names = nc__calloc(ctx, (size_t)n, sizeof *ds->idx_names);
    NC_CHECK_ALLOC(ctx, ds->idx_names);
    size_t len = strlen(images);
    name = nc__alloc(ctx, len + 24);
    NC_CHECK_ALLOC(ctx, name);
    memcpy(name, images, len);
    for (int64_t i = 0; i < n; i++) {
        int k = snprintf(name + len, 24, ":%" PRId64, i);
        ds->idx_names[i] = nc__ds_strndup(ds, name, len + (size_t)k);
        NC_CHECK_ALLOC(ctx, ds->idx_names[i]);
    }
    nc__free(ctx, name);
    nc__free(ctx, lab);
    return NC_OK;
fail:
    nc__free(ctx, name);
    nc__free(ctx, lab);
    return st; /* the caller destroys ds */
}

nc_status nc__idx_read(const nc_dataset *ds, nc_context *ctx, int64_t i, nc_image **out) {
    nc_image *img = NULL;
    nc_status st = nc__image_alloc(ctx, 1, ds->idx_h, ds->idx_w, &img);
    if (st != NC_OK) return st;
    size_t plane = (size_t)ds->idx_h * (size_t)ds->idx_w;
    const unsigned char *px = ds->pixels + (size_t)i * plane;
    for (size_t k = 0; k < plane; k++) img->data[k] = (float)px[k] / 255.0f;
    img->bit_depth = 8;
    *out = img;
    return NC_OK;
}
