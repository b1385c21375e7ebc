/* png.c — PNG files to and from nc_image with libpng: every colour type and bit depth
 * decodes to interleaved 8/16-bit samples (nc__pixels, what the loader transforms) and
 * from there to planar float in [0, 1] (16-bit at full precision); images encode to
 * 8/16-bit PNGs written atomically. libpng's longjmp error handling stays in this file. */
#include "data/data.h"
#include "core/context.h"
#include "io/file.h"
#include "nc_config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void nc_png_limits_init(nc_png_limits *lim) {
    if (!lim) return;
    memset(lim, 0, sizeof *lim);
    lim->struct_size = sizeof *lim;
    lim->max_width = 32768;
    lim->max_height = 32768;
    lim->max_pixels = (int64_t)1 << 28;
}

#if HAVE_PNG

#include <png.h>
#include <setjmp.h>

#define MEMORY_NAME "<memory>"
#define CHUNK_MALLOC_MAX ((png_alloc_size_t)8 << 20) /* largest ancillary chunk libpng buffers */
#define FILE_SLACK ((uint64_t)64 << 20)              /* room for ancillary chunks in a file */

/* Copies the caller's limits (NULL = defaults) after checking them. */
static nc_status resolve_limits(nc_context *ctx, const char *fn, const nc_png_limits *lim, nc_png_limits *out) {
    nc_png_limits_init(out);
    if (!lim) return NC_OK;
    const size_t min_size = offsetof(nc_png_limits, max_pixels) + sizeof lim->max_pixels;
    if (lim->struct_size < min_size || lim->struct_size > sizeof *lim)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "%s: limits struct_size %zu is not that of nc_png_limits (%zu); call nc_png_limits_init",
                         fn, lim->struct_size, sizeof *lim);
    memcpy(out, lim, lim->struct_size);
    out->struct_size = sizeof *out;
    if (out->max_width < 1 || out->max_height < 1 || out->max_pixels < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "%s: limits must be >= 1 (max_width %" PRId64 ", max_height %" PRId64
                         ", max_pixels %" PRId64 ")",
                         fn, out->max_width, out->max_height, out->max_pixels);
    return NC_OK;
}

/* Everything one libpng session changes. It lives in the frame of the function that
 * calls the setjmp'ing runner (decode_run / encode_run), never in the runner's own
 * frame, so its contents are well-defined after libpng longjmps back. */
typedef struct png_job {
    jmp_buf jmp;               /* the runner's setjmp; on_error jumps here */
    nc_context *ctx;
    const char *name;          /* path or "<memory>", for messages */
    png_structp png;
    png_infop info;
    /* reading */
    const unsigned char *in;   /* the whole encoded file (borrowed) */
    size_t in_size, in_pos;
    unsigned char *rows;       /* writing: one row */
    nc__pixels *px;            /* reading: the result being filled (buffers reused) */
    /* writing */
    void *out;                 /* encoded bytes (nc__alloc'ed) */
    size_t out_size, out_cap;
    /* failure */
    nc_status st;              /* status of a failure found by this file's own checks */
    int png_failed;            /* libpng raised an error; msg holds its text */
    int truncated;             /* the read callback ran out of data */
    int oom;                   /* a callback ran out of memory */
    char msg[256];
} png_job;

/* libpng's error callback: keeps the text and jumps back to the runner. */
static PNG_NORETURN void on_error(png_structp png, png_const_charp msg) {
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "unknown libpng error");
    j->png_failed = 1;
    longjmp(j->jmp, 1);
}

/* Warnings (bad ancillary chunks, most "benign" errors) are not errors for us, but
 * damage in the image data stream is: after the last row libpng only warns about a
 * zlib failure ("IDAT: incorrect data check"), and the rows it returned may be wrong. */
static void on_warning(png_structp png, png_const_charp msg) {
    if (msg && strncmp(msg, "IDAT:", 5) == 0) on_error(png, msg);
}

/* libpng's memory callbacks: its structs, row buffers and zlib state all come from
 * the context's allocator hooks (mem_ptr is the context). A NULL makes libpng raise
 * "Out of memory" (or zlib's "insufficient memory"), which is_oom_text recognises. */
static png_voidp on_alloc(png_structp png, png_alloc_size_t size) {
    return nc__alloc(png_get_mem_ptr(png), (size_t)size);
}

static void on_free(png_structp png, png_voidp ptr) { nc__free(png_get_mem_ptr(png), ptr); }

static void on_read(png_structp png, png_bytep data, size_t length) {
    png_job *j = png_get_io_ptr(png);
    if (length > j->in_size - j->in_pos) {
        j->truncated = 1;
        png_error(png, "unexpected end of file");
    }
    memcpy(data, j->in + j->in_pos, length);
    j->in_pos += length;
}

static void on_write(png_structp png, png_bytep data, size_t length) {
    png_job *j = png_get_io_ptr(png);
    if (length > SIZE_MAX - j->out_size || nc__grow(j->ctx, &j->out, 1, &j->out_cap, j->out_size + length) != 0) {
        j->oom = 1;
        png_error(png, "out of memory for the encoded file");
    }
    memcpy((unsigned char *)j->out + j->out_size, data, length);
    j->out_size += length;
}

static void on_flush(png_structp png) { (void)png; }

static png_uint_32 clamp31(int64_t v) {
    return v > (int64_t)PNG_UINT_31_MAX ? PNG_UINT_31_MAX : (png_uint_32)v;
}

static uint32_t load_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* CRC-32 of the PNG spec (zlib's), bitwise: only used on the 17 bytes of an IHDR. */
static uint32_t crc32_bytes(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static nc_status check_limits(nc_context *ctx, const char *name, const nc_png_limits *lim, uint64_t w,
                              uint64_t h) {
    if ((int64_t)w > lim->max_width)
        return nc__error(ctx, NC_ERR_LIMIT, "%s: PNG width %" PRIu64 " is over the limit max_width %" PRId64,
                         name, w, lim->max_width);
    if ((int64_t)h > lim->max_height)
        return nc__error(ctx, NC_ERR_LIMIT, "%s: PNG height %" PRIu64 " is over the limit max_height %" PRId64,
                         name, h, lim->max_height);
    if ((int64_t)(w * h) > lim->max_pixels) /* both < 2^32: no overflow */
        return nc__error(ctx, NC_ERR_LIMIT,
                         "%s: PNG of %" PRIu64 " x %" PRIu64 " pixels is over the limit max_pixels %" PRId64, name,
                         w, h, lim->max_pixels);
    return NC_OK;
}

/* ------------------------------------------------------------------- reading */

/* The libpng part of a decode. Returns 0, or -1 with the failure recorded in *j.
 * Nothing in this frame is used after a longjmp: the function just returns. */
static int decode_run(png_job *j, const nc_png_limits *lim) {
    if (setjmp(j->jmp)) return -1;
    png_structp png = j->png;
    png_infop info = j->info;
    png_set_read_fn(png, j, on_read);
    png_set_user_limits(png, clamp31(lim->max_width), clamp31(lim->max_height));
    png_set_chunk_malloc_max(png, CHUNK_MALLOC_MAX);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    /* before anything the size of the image is allocated */
    j->st = check_limits(j->ctx, j->name, lim, w, h);
    if (j->st != NC_OK) return -1;

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    const int channels = png_get_channels(png, info);
    const int out_depth = png_get_bit_depth(png, info);
    const size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (out_depth != 8 && out_depth != 16) ||
        rowbytes / w != (size_t)channels * (size_t)(out_depth / 8) || rowbytes % w != 0) {
        j->st = nc__error(j->ctx, NC_ERR_FORMAT, "%s: unexpected PNG layout after expansion (%d channels, %d-bit)",
                          j->name, channels, out_depth);
        return -1;
    }
    /* the rows go straight into the pixel buffer: interlaced passes fill it in place */
    nc__pixels *px = j->px;
    if ((size_t)h > SIZE_MAX / rowbytes) {
        j->st = nc__error(j->ctx, NC_ERR_LIMIT, "%s: PNG too large for the address space", j->name);
        return -1;
    }
    const size_t bytes = (size_t)h * rowbytes;
    if (px->cap < bytes) {
        nc__free(j->ctx, px->buf);
        px->cap = 0;
        px->buf = nc__alloc(j->ctx, bytes);
        if (!px->buf) {
            j->st = nc__error(j->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for %u rows of %zu bytes", j->name,
                              (unsigned)h, rowbytes);
            return -1;
        }
        px->cap = bytes;
    }
    px->channels = channels;
    px->height = (int)h;
    px->width = (int)w;
    px->depth = out_depth;
    px->data = px->buf;
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++) png_read_row(png, px->buf + (size_t)y * rowbytes, NULL);
    png_read_end(png, NULL); /* the rest of the stream: checksums up to IEND */
    return 0;
}

/* libpng's own out-of-memory errors ("Out of memory", "... out of memory ..."). */
static int is_oom_text(const char *msg) {
    return strstr(msg, "ut of memory") || strstr(msg, "ut of Memory") || strstr(msg, "nsufficient memory");
}

static int is_ascii_letter(unsigned char c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }

/* Walks the chunk list of a whole file up to IEND: a chunk that claims more bytes than
 * the file holds means a truncated or corrupt file. libpng allocates an ancillary
 * chunk's declared length before it reads the data (a 50-byte file with a 1 GB sPLT
 * chunk made it ask for 1 GB), so nothing reaches libpng whose chunks overrun it. */
static nc_status check_chunk_lengths(nc_context *ctx, const char *name, const unsigned char *data, size_t size) {
    size_t pos = 8;
    while (size - pos >= 8) { /* a length and a type: libpng acts on them */
        uint32_t len = load_be32(data + pos);
        if (len > PNG_UINT_31_MAX)
            return nc__error(ctx, NC_ERR_FORMAT, "%s: corrupt PNG file: chunk at byte %zu claims %" PRIu32 " bytes",
                             name, pos, len);
        if (size - pos < 12 || len > size - pos - 12) {
            char type[5] = {0};
            for (int i = 0; i < 4; i++) type[i] = is_ascii_letter(data[pos + 4 + i]) ? (char)data[pos + 4 + i] : '?';
            return nc__error(ctx, NC_ERR_FORMAT,
                             "%s: truncated PNG file: chunk '%s' at byte %zu claims %" PRIu32
                             " bytes, the file ends after %zu",
                             name, type, pos, len, size);
        }
        if (memcmp(data + pos + 4, "IEND", 4) == 0) break;
        pos += 12 + (size_t)len;
    }
    return NC_OK;
}

/* Decodes `size` bytes (a whole PNG file; borrowed). `name` names it in messages. */
static nc_status decode(nc_context *ctx, const char *name, const unsigned char *data, size_t size,
                        const nc_png_limits *lim, nc__pixels *px) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size == 0) return nc__error(ctx, NC_ERR_FORMAT, "%s: not a PNG file (empty)", name);
    if (size < 8 || memcmp(data, sig, 8) != 0) {
        if (size < 8 && memcmp(data, sig, size) == 0)
            return nc__error(ctx, NC_ERR_FORMAT, "%s: truncated PNG file (%zu bytes)", name, size);
        return nc__error(ctx, NC_ERR_FORMAT, "%s: not a PNG file (bad signature)", name);
    }
    /* The IHDR is the first chunk: refuse an oversized image before libpng sees it
     * (libpng's own user limits would report it only as "Invalid IHDR data"). A header
     * with a bad CRC is left to libpng, which calls it corrupt. */
    if (size >= 33 && load_be32(data + 8) == 13 && memcmp(data + 12, "IHDR", 4) == 0 &&
        crc32_bytes(data + 12, 17) == load_be32(data + 29)) {
        uint32_t w = load_be32(data + 16), h = load_be32(data + 20);
        if (w >= 1 && h >= 1 && w <= PNG_UINT_31_MAX && h <= PNG_UINT_31_MAX) {
            nc_status st = check_limits(ctx, name, lim, w, h);
            if (st != NC_OK) return st;
        }
    }

    nc_status st = check_chunk_lengths(ctx, name, data, size);
    if (st != NC_OK) return st;

    png_job j;
    memset(&j, 0, sizeof j);
    j.ctx = ctx;
    j.name = name;
    j.in = data;
    j.in_size = size;
    j.px = px;
    j.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &j, on_error, on_warning, ctx, on_alloc,
                                     on_free);
    if (!j.png) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: cannot create the PNG decoder", name);
    j.info = png_create_info_struct(j.png);
    if (!j.info) {
        png_destroy_read_struct(&j.png, NULL, NULL);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: cannot create the PNG decoder", name);
    }

    int rc = decode_run(&j, lim);
    png_destroy_read_struct(&j.png, &j.info, NULL);
    if (rc == 0) return NC_OK;
    px->data = NULL;
    if (!j.png_failed) return j.st;
    if (j.truncated)
        return nc__error(ctx, NC_ERR_FORMAT, "%s: truncated PNG file (ends after %zu bytes)", name, size);
    if (is_oom_text(j.msg)) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: PNG decoder: %s", name, j.msg);
    return nc__error(ctx, NC_ERR_FORMAT, "%s: corrupt PNG file: %s", name, j.msg);
}

static int read_full(int fd, unsigned char *p, size_t size) {
    while (size > 0) {
        size_t chunk = size > ((size_t)1 << 30) ? ((size_t)1 << 30) : size;
        ssize_t k = read(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = 0; /* the file shrank while we read it */
            return -1;
        }
        p += k;
        size -= (size_t)k;
    }
    return 0;
}

/* Reads the whole file at path into px->file (grown when too small). */
static nc_status read_file(nc_context *ctx, const char *path, const nc_png_limits *l, nc__pixels *px,
                           size_t *size_out) {
    nc_status st = NC_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) return nc__error(ctx, NC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = nc__error(ctx, NC_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = nc__error(ctx, NC_ERR_IO, "%s: not a regular file", path);
        goto done;
    }
    /* No PNG within the limits is larger than twice its raw samples (8 bytes a pixel
     * at most, plus a filter byte a row) plus room for ancillary chunks. */
    uint64_t raw = (uint64_t)l->max_pixels * 8u + (uint64_t)l->max_height;
    uint64_t max_file = raw > (UINT64_MAX - FILE_SLACK) / 2 ? UINT64_MAX : 2 * raw + FILE_SLACK;
    if (sb.st_size < 0 || (uintmax_t)sb.st_size > max_file || (uintmax_t)sb.st_size >= SIZE_MAX) {
        st = nc__error(ctx, NC_ERR_LIMIT, "%s: file of %jd bytes is larger than any PNG within the limits", path,
                       (intmax_t)sb.st_size);
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    if (px->file_cap < size || !px->file) {
        nc__free(ctx, px->file);
        px->file_cap = 0;
        px->file = nc__alloc(ctx, size ? size : 1);
        if (!px->file) {
            st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", path, size);
            goto done;
        }
        px->file_cap = size ? size : 1;
    }
    if (read_full(fd, px->file, size) != 0) {
        st = nc__error(ctx, NC_ERR_IO, "%s: read failed: %s", path, errno ? strerror(errno) : "unexpected end of file");
        goto done;
    }
    *size_out = size;
done:
    close(fd);
    return st;
}

nc_status nc__png_read_pixels(nc_context *ctx, const char *path, const nc_png_limits *lim, nc__pixels *px) {
    px->data = NULL;
    size_t size = 0;
    nc_status st = read_file(ctx, path, lim, px, &size);
    return st == NC_OK ? decode(ctx, path, px->file, size, lim, px) : st;
}

/* Hands out px as a float image (the public readers' result), then frees px. */
static nc_status to_image(nc_context *ctx, nc_status st, nc__pixels *px, nc_image **out) {
    if (st == NC_OK) st = nc__pixels_to_image(ctx, px, out);
    nc__pixels_free(ctx, px);
    return st;
}

nc_status nc_png_read(nc_context *ctx, const char *path, const nc_png_limits *lim, nc_image **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || !out) return nc__error(ctx, NC_ERR_NULL, "nc_png_read: NULL %s", path ? "out" : "path");
    *out = NULL;
    nc_png_limits l;
    nc_status st = resolve_limits(ctx, "nc_png_read", lim, &l);
    if (st != NC_OK) return st;
    nc__pixels px = {0};
    return to_image(ctx, nc__png_read_pixels(ctx, path, &l, &px), &px, out);
}

nc_status nc_png_read_memory(nc_context *ctx, const void *data, size_t size, const nc_png_limits *lim,
                             nc_image **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!data || !out) return nc__error(ctx, NC_ERR_NULL, "nc_png_read_memory: NULL %s", data ? "out" : "data");
    *out = NULL;
    nc_png_limits l;
    nc_status st = resolve_limits(ctx, "nc_png_read_memory", lim, &l);
    if (st != NC_OK) return st;
    nc__pixels px = {0};
    return to_image(ctx, decode(ctx, MEMORY_NAME, data, size, &l, &px), &px, out);
}

/* ------------------------------------------------------------------- writing */

/* [0, 1] -> 0..maxv, rounded to nearest; NaN and negatives -> 0. */
static unsigned quantize(float v, unsigned maxv) {
    if (!(v > 0.0f)) return 0;
    if (v >= 1.0f) return maxv;
    return (unsigned)((double)v * maxv + 0.5);
}

/* The libpng part of an encode into j->out; j->rows holds one row. 0 or -1. */
static int encode_run(png_job *j, const nc_image *img, int bit_depth) {
    if (setjmp(j->jmp)) return -1;
    static const int color_types[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                       PNG_COLOR_TYPE_RGB_ALPHA};
    png_structp png = j->png;
    png_infop info = j->info;
    const size_t w = (size_t)img->width, c = (size_t)img->channels;
    const size_t plane = (size_t)img->height * w;
    png_set_write_fn(png, j, on_write, on_flush);
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, bit_depth,
                 color_types[img->channels - 1], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++) {
        const float *src = img->data + (size_t)y * w; // (C, H, W), row y of plane 0
        unsigned char *row = j->rows;
        if (bit_depth == 16) {
            for (size_t x = 0; x < w; x++)
                for (size_t k = 0; k < c; k++) {
                    unsigned v = quantize(src[k * plane + x], 65535u);
                    row[2 * (x * c + k)] = (unsigned char)(v >> 8);
                    row[2 * (x * c + k) + 1] = (unsigned char)(v & 0xff);
                }
        } else {
            for (size_t x = 0; x < w; x++)
                for (size_t k = 0; k < c; k++) row[x * c + k] = (unsigned char)quantize(src[k * plane + x], 255u);
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    return 0;
}

nc_status nc_png_write(nc_context *ctx, const char *path, const nc_image *img, int bit_depth) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || !img) return nc__error(ctx, NC_ERR_NULL, "nc_png_write: NULL %s", path ? "image" : "path");
    if (bit_depth != 8 && bit_depth != 16)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_png_write: %s: bit depth %d (must be 8 or 16)", path,
                         bit_depth);
    if (img->channels < 1 || img->channels > 4)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_png_write: %s: %d channels (PNG holds 1 gray, 2 gray+alpha, 3 RGB or 4 RGBA)", path,
                         img->channels);
    const size_t bytes = (size_t)img->channels * (size_t)(bit_depth / 8);
    if ((size_t)img->width > SIZE_MAX / bytes)
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_png_write: %s: rows too long for the address space", path);

    png_job j;
    memset(&j, 0, sizeof j);
    j.ctx = ctx;
    j.name = path;
    j.rows = nc__alloc(ctx, (size_t)img->width * bytes);
    if (!j.rows) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_png_write: %s: out of memory", path);
    j.png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &j, on_error, on_warning, ctx, on_alloc,
                                      on_free);
    if (j.png) j.info = png_create_info_struct(j.png);
    if (!j.png || !j.info) {
        png_destroy_write_struct(&j.png, NULL);
        nc__free(ctx, j.rows);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_png_write: %s: cannot create the PNG encoder", path);
    }

    int rc = encode_run(&j, img, bit_depth);
    png_destroy_write_struct(&j.png, &j.info);
    nc__free(ctx, j.rows);
    nc_status st;
    if (rc == 0)
        st = nc__write_file_atomic(ctx, path, j.out, j.out_size);
    else if (j.oom || is_oom_text(j.msg))
        st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_png_write: %s: %s", path, j.msg);
    else
        st = nc__error(ctx, NC_ERR_IO, "nc_png_write: %s: PNG encoder: %s", path, j.msg);
    nc__free(ctx, j.out);
    return st;
}

#else /* !HAVE_PNG */

#define NO_PNG "this build of neurc has no libpng (meson option 'png')"

nc_status nc__png_read_pixels(nc_context *ctx, const char *path, const nc_png_limits *lim, nc__pixels *px) {
    (void)lim;
    px->data = NULL;
    return nc__error(ctx, NC_ERR_UNSUPPORTED, "%s: cannot read: " NO_PNG, path);
}

nc_status nc_png_read(nc_context *ctx, const char *path, const nc_png_limits *lim, nc_image **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || !out) return nc__error(ctx, NC_ERR_NULL, "nc_png_read: NULL %s", path ? "out" : "path");
    *out = NULL;
    (void)lim;
    return nc__error(ctx, NC_ERR_UNSUPPORTED, "%s: cannot read: " NO_PNG, path);
}

nc_status nc_png_read_memory(nc_context *ctx, const void *data, size_t size, const nc_png_limits *lim,
                             nc_image **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!data || !out) return nc__error(ctx, NC_ERR_NULL, "nc_png_read_memory: NULL %s", data ? "out" : "data");
    *out = NULL;
    (void)size;
    (void)lim;
    return nc__error(ctx, NC_ERR_UNSUPPORTED, "<memory>: cannot read: " NO_PNG);
}

nc_status nc_png_write(nc_context *ctx, const char *path, const nc_image *img, int bit_depth) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || !img) return nc__error(ctx, NC_ERR_NULL, "nc_png_write: NULL %s", path ? "image" : "path");
    (void)bit_depth;
    return nc__error(ctx, NC_ERR_UNSUPPORTED, "%s: cannot write: " NO_PNG, path);
}

#endif
