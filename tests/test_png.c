/* test_png.c — nc_image and the PNG reader/writer: exact round trips for every colour
 * type and bit depth, palette / low-bit / tRNS / interlaced files made here with libpng's
 * own writer, and one case per error path (truncation, corruption, limits, bad args). */
#include "testutil.h"

#include "core/context.h"
#include "data/data.h"
#include "nc_config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if HAVE_PNG
#include <png.h>
#endif

/* ------------------------------------------------------------ fixtures */

/* Each case gets a counting context (tests/testutil.h) that fails it on a leak. */
typedef tu_fx fx;
#define setup tu_fx_setup
#define teardown tu_fx_teardown

static void assert_error_mentions(nc_context *ctx, const char *text) {
    const char *msg = nc_context_last_error(ctx);
    if (!strstr(msg, text)) fail_msg("error \"%s\" does not mention \"%s\"", msg, text);
}

/* ------------------------------------------------------------ image API */

static void test_image_create_accessors(void **state) {
    fx *f = *state;
    nc_image *img = NULL;
    assert_int_equal(nc_image_create(f->ctx, 3, 4, 5, &img), NC_OK);
    assert_int_equal(nc_image_channels(img), 3);
    assert_int_equal(nc_image_height(img), 4);
    assert_int_equal(nc_image_width(img), 5);
    assert_int_equal(nc_image_bit_depth(img), 0);
    float *d = nc_image_data(img);
    assert_non_null(d);
    assert_ptr_equal(nc_image_const_data(img), d);
    for (int i = 0; i < 3 * 4 * 5; i++) assert_true(d[i] == 0.0f);
    d[59] = 1.0f; /* the last value is writable */
    nc_image_destroy(img);
}

static void test_image_null_safety(void **state) {
    fx *f = *state;
    nc_image *img = NULL;
    nc_image_destroy(NULL);
    assert_int_equal(nc_image_width(NULL), 0);
    assert_int_equal(nc_image_height(NULL), 0);
    assert_int_equal(nc_image_channels(NULL), 0);
    assert_int_equal(nc_image_bit_depth(NULL), 0);
    assert_null(nc_image_data(NULL));
    assert_null(nc_image_const_data(NULL));
    assert_int_equal(nc_image_create(NULL, 1, 1, 1, &img), NC_ERR_NULL);
    assert_null(img);
    assert_int_equal(nc_image_create(f->ctx, 1, 1, 1, NULL), NC_ERR_NULL);
}

static void test_image_create_rejects_bad_sizes(void **state) {
    fx *f = *state;
    nc_image *img = (nc_image *)1;
    assert_int_equal(nc_image_create(f->ctx, 0, 4, 4, &img), NC_ERR_INVALID_ARGUMENT);
    assert_null(img);
    assert_int_equal(nc_image_create(f->ctx, 1, -1, 4, &img), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_image_create(f->ctx, 1, 4, 0, &img), NC_ERR_INVALID_ARGUMENT);
    /* 2 * 32768 * 32769 is just over 2^31 values; INT_MAX^3 must not overflow */
    assert_int_equal(nc_image_create(f->ctx, 2, 32768, 32769, &img), NC_ERR_LIMIT);
    assert_error_mentions(f->ctx, "2^31");
    assert_int_equal(nc_image_create(f->ctx, INT_MAX, INT_MAX, INT_MAX, &img), NC_ERR_LIMIT);
    assert_int_equal(nc__image_alloc(f->ctx, 1, INT_MAX, 2, &img), NC_ERR_LIMIT);
    assert_null(img);
    assert_true(f->cnt.largest < 4096); /* refused before any allocation */
}

static void test_image_create_out_of_memory(void **state) {
    fx *f = *state;
    nc_image *img = NULL;
    for (long k = 0; k < 2; k++) {
        f->cnt.fail_after = f->cnt.calls + k;
        assert_int_equal(nc_image_create(f->ctx, 2, 3, 3, &img), NC_ERR_OUT_OF_MEMORY);
        assert_null(img);
    }
    f->cnt.fail_after = -1;
}

#if HAVE_PNG

/* ------------------------------------------------------------ libpng helpers */

/* CRC-32 of the PNG spec, to craft chunks. */
static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void store_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t load_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

typedef struct membuf {
    unsigned char *p;
    size_t n, cap;
} membuf;

static void mb_write(png_structp png, png_bytep d, size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        assert_non_null(m->p);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void mb_flush(png_structp png) { (void)png; }

/* What a test PNG holds: `raw` is h rows packed as the PNG stores them. */
typedef struct spec {
    int w, h, depth, color, interlace;
    const png_color *palette;
    int npalette;
    const png_byte *trns;            /* palette alpha entries */
    int ntrns;
    const png_color_16 *trns_color;  /* gray/RGB transparent colour */
    const unsigned char *raw;
} spec;

/* Encodes s with libpng's writer directly (independent of nc_png_write); malloc'ed. */
static unsigned char *encode_raw(const spec *s, size_t *size) {
    membuf m = {NULL, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed to write the test image");
    png_set_write_fn(png, &m, mb_write, mb_flush);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color, s->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette) png_set_PLTE(png, info, s->palette, s->npalette);
    if (s->trns || s->trns_color) png_set_tRNS(png, info, s->trns, s->ntrns, s->trns_color);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc((size_t)s->h * sizeof *rows);
    for (int y = 0; y < s->h; y++) rows[y] = (png_bytep)s->raw + (size_t)y * rowbytes;
    if (s->interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *size = m.n;
    return m.p;
}

static void mb_read(png_structp png, png_bytep d, size_t n) {
    membuf *m = png_get_io_ptr(png); /* n = read position, cap = size */
    if (n > m->cap - m->n) png_error(png, "end of data");
    memcpy(d, m->p + m->n, n);
    m->n += n;
}

/* Decodes with libpng directly, no transforms, to check what nc_png_write put in the
 * file: samples[h * w * channels] (malloc'ed), 8- or 16-bit only. */
static unsigned *decode_raw(const unsigned char *data, size_t size, int *w, int *h, int *depth, int *color) {
    membuf src = {(unsigned char *)data, 0, size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed to read the written image");
    png_set_read_fn(png, &src, mb_read);
    png_read_info(png, info);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    *depth = png_get_bit_depth(png, info);
    *color = png_get_color_type(png, info);
    assert_true(*depth == 8 || *depth == 16);
    size_t rowbytes = png_get_rowbytes(png, info), n = rowbytes * (size_t)*h / (size_t)(*depth / 8);
    unsigned char *bytes = malloc(rowbytes * (size_t)*h);
    png_bytep *rows = malloc((size_t)*h * sizeof *rows);
    for (int y = 0; y < *h; y++) rows[y] = bytes + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    unsigned *s = malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++)
        s[i] = *depth == 16 ? ((unsigned)bytes[2 * i] << 8) | bytes[2 * i + 1] : bytes[i];
    free(rows);
    free(bytes);
    return s;
}

/* Packs h rows of w*ch samples (interleaved) at `depth` bits, MSB first, as PNG rows. */
static unsigned char *pack_raw(const unsigned *v, int w, int h, int ch, int depth) {
    size_t rowbytes = ((size_t)w * (size_t)ch * (size_t)depth + 7) / 8;
    unsigned char *raw = calloc((size_t)h, rowbytes);
    for (int y = 0; y < h; y++) {
        unsigned char *row = raw + (size_t)y * rowbytes;
        for (size_t i = 0; i < (size_t)w * (size_t)ch; i++) {
            unsigned s = v[(size_t)y * (size_t)w * (size_t)ch + i];
            if (depth == 16) {
                row[2 * i] = (unsigned char)(s >> 8), row[2 * i + 1] = (unsigned char)s;
            } else {
                size_t bit = i * (size_t)depth;
                row[bit / 8] |= (unsigned char)(s << (8 - depth - (int)(bit % 8)));
            }
        }
    }
    return raw;
}

/* Sample k of a test pattern below 2^depth: covers 0 and the maximum. */
static unsigned pattern(size_t k, int depth) {
    unsigned maxv = (1u << depth) - 1u;
    if (k == 0) return 0;
    if (k == 1) return maxv;
    return (unsigned)((k * 7919u + 12345u) % (maxv + 1u));
}

static void write_bytes(const char *path, const void *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, size, fp), size);
    assert_int_equal(fclose(fp), 0);
}

/* An 8-byte signature, a valid IHDR (CRC included) and an IEND: 45 bytes. */
static size_t craft_header_only(unsigned char *buf, uint32_t w, uint32_t h, int depth, int color) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(buf, sig, 8);
    store_be32(buf + 8, 13);
    memcpy(buf + 12, "IHDR", 4);
    store_be32(buf + 16, w);
    store_be32(buf + 20, h);
    buf[24] = (unsigned char)depth, buf[25] = (unsigned char)color, buf[26] = buf[27] = buf[28] = 0;
    store_be32(buf + 29, crc32_of(buf + 12, 17));
    store_be32(buf + 33, 0);
    memcpy(buf + 37, "IEND", 4);
    store_be32(buf + 41, crc32_of(buf + 37, 4));
    return 45;
}

/* Offset of the data of the first chunk called `type`, its length in *len. */
static size_t find_chunk(const unsigned char *buf, size_t size, const char *type, size_t *len) {
    size_t pos = 8;
    while (pos + 12 <= size) {
        size_t n = load_be32(buf + pos);
        if (memcmp(buf + pos + 4, type, 4) == 0) {
            *len = n;
            return pos + 8;
        }
        pos += 12 + n;
    }
    fail_msg("no %s chunk", type);
    return 0;
}

/* ------------------------------------------------------------ round trips */

/* nc_png_write, then the file's samples as libpng itself decodes them (malloc'ed);
 * checks the size and bit depth in the file and returns its colour type. */
static unsigned *write_and_inspect(fx *f, const nc_image *img, int depth, const char *path, int *color) {
    assert_int_equal(nc_png_write(f->ctx, path, img, depth), NC_OK);
    size_t size;
    unsigned char *bytes = (unsigned char *)tu_read_file(path, &size);
    assert_non_null(bytes);
    int w, h, d;
    unsigned *s = decode_raw(bytes, size, &w, &h, &d, color);
    assert_true(w == nc_image_width(img) && h == nc_image_height(img) && d == depth);
    free(bytes);
    return s;
}

/* Writes a channels x 7 x 9 image at `depth` with nc_png_write, checks the file with
 * libpng directly, reads it back with nc_png_read: every value must be exact. */
static void roundtrip(fx *f, int channels, int depth) {
    static const int colors[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                  PNG_COLOR_TYPE_RGB_ALPHA};
    const int h = 7, w = 9;
    const size_t plane = (size_t)h * w;
    const float maxv = depth == 16 ? 65535.0f : 255.0f;
    nc_image *img, *back = NULL;
    assert_int_equal(nc_image_create(f->ctx, channels, h, w, &img), NC_OK);
    float *d = nc_image_data(img);
    for (int c = 0; c < channels; c++)
        for (size_t i = 0; i < plane; i++) d[c * plane + i] = (float)pattern(i * 4 + (size_t)c, depth) / maxv;
    char name[64];
    snprintf(name, sizeof name, "rt_%d_%d.png", channels, depth);
    char *path = tu_tmp_path(name);
    int color;
    unsigned *s = write_and_inspect(f, img, depth, path, &color);
    assert_int_equal(color, colors[channels - 1]);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < channels; c++) assert_int_equal(s[i * (size_t)channels + (size_t)c], pattern(i * 4 + (size_t)c, depth));

    assert_int_equal(nc_png_read(f->ctx, path, NULL, &back), NC_OK);
    assert_true(nc_image_channels(back) == channels && nc_image_height(back) == h && nc_image_width(back) == w);
    assert_int_equal(nc_image_bit_depth(back), depth);
    const float *b = nc_image_const_data(back);
    for (size_t i = 0; i < plane * (size_t)channels; i++)
        if (b[i] != d[i]) fail_msg("value %zu: %.9g != %.9g", i, (double)b[i], (double)d[i]);
    nc_image_destroy(back);
    nc_image_destroy(img);
    free(s);
    unlink(path);
    free(path);
}

static void test_png_roundtrip_gray8(void **state) { roundtrip(*state, 1, 8); }
static void test_png_roundtrip_gray16(void **state) { roundtrip(*state, 1, 16); }
static void test_png_roundtrip_gray_alpha8(void **state) { roundtrip(*state, 2, 8); }
static void test_png_roundtrip_gray_alpha16(void **state) { roundtrip(*state, 2, 16); }
static void test_png_roundtrip_rgb8(void **state) { roundtrip(*state, 3, 8); }
static void test_png_roundtrip_rgb16(void **state) { roundtrip(*state, 3, 16); }
static void test_png_roundtrip_rgba8(void **state) { roundtrip(*state, 4, 8); }
static void test_png_roundtrip_rgba16(void **state) { roundtrip(*state, 4, 16); }

/* Values that are not multiples of 257 would be lost by any trip through 8 bits. */
static void test_png_16bit_keeps_full_precision(void **state) {
    fx *f = *state;
    static const unsigned v[5] = {12345, 1, 65534, 32767, 258};
    nc_image *img, *back;
    assert_int_equal(nc_image_create(f->ctx, 1, 1, 5, &img), NC_OK);
    for (int i = 0; i < 5; i++) nc_image_data(img)[i] = (float)v[i] / 65535.0f;
    char *path = tu_tmp_path("p16.png");
    int color;
    unsigned *s = write_and_inspect(f, img, 16, path, &color);
    for (int i = 0; i < 5; i++) assert_int_equal(s[i], v[i]);
    assert_int_equal(nc_png_read(f->ctx, path, NULL, &back), NC_OK);
    assert_int_equal(nc_image_bit_depth(back), 16);
    for (int i = 0; i < 5; i++) assert_true(nc_image_data(back)[i] == (float)v[i] / 65535.0f);
    assert_true(nc_image_data(back)[0] != 48.0f / 255.0f); /* 12345/65535 is not 8-bit */
    nc_image_destroy(back);
    nc_image_destroy(img);
    free(s);
    unlink(path);
    free(path);
}

static void test_png_write_clamps_and_rounds(void **state) {
    fx *f = *state;
    const float in[7] = {-0.5f, 1.5f, NAN, 0.5f, 0.2f, INFINITY, -INFINITY};
    static const unsigned want8[7] = {0, 255, 0, 128, 51, 255, 0};
    static const unsigned want16[7] = {0, 65535, 0, 32768, 13107, 65535, 0};
    nc_image *img;
    assert_int_equal(nc_image_create(f->ctx, 1, 1, 7, &img), NC_OK);
    memcpy(nc_image_data(img), in, sizeof in);
    char *path = tu_tmp_path("clamp.png");
    for (int depth = 8; depth <= 16; depth += 8) {
        int color;
        unsigned *s = write_and_inspect(f, img, depth, path, &color);
        for (int i = 0; i < 7; i++) assert_int_equal(s[i], depth == 8 ? want8[i] : want16[i]);
        free(s);
    }
    nc_image_destroy(img);
    unlink(path);
    free(path);
}

/* ------------------------------------------------------------ files made by libpng */

/* Decodes s with nc_png_read_memory; checks the layout the decoder promises. */
static nc_image *decode_spec(fx *f, const spec *s, int want_channels, int want_depth) {
    size_t size;
    unsigned char *bytes = encode_raw(s, &size);
    nc_image *img = NULL;
    nc_status st = nc_png_read_memory(f->ctx, bytes, size, NULL, &img);
    if (st != NC_OK) fail_msg("decode: %s", nc_context_last_error(f->ctx));
    free(bytes);
    assert_int_equal(nc_image_channels(img), want_channels);
    assert_int_equal(nc_image_width(img), s->w);
    assert_int_equal(nc_image_height(img), s->h);
    assert_int_equal(nc_image_bit_depth(img), want_depth);
    return img;
}

static void test_png_read_palette_to_rgb(void **state) {
    fx *f = *state;
    for (int depth = 1; depth <= 8; depth *= 2) {
        const int w = 11, h = 3, n = 1 << depth;
        png_color pal[256];
        for (int i = 0; i < n; i++)
            pal[i] = (png_color){(png_byte)(i * 37 + 5), (png_byte)(255 - i), (png_byte)(i * 3)};
        unsigned idx[33];
        for (int i = 0; i < w * h; i++) idx[i] = (unsigned)((i * 5 + 1) % n);
        unsigned char *raw = pack_raw(idx, w, h, 1, depth);
        spec s = {w, h, depth, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, pal, n, NULL, 0, NULL, raw};
        nc_image *img = decode_spec(f, &s, 3, 8);
        const float *d = nc_image_const_data(img);
        for (int i = 0; i < w * h; i++) {
            const png_color *p = &pal[idx[i]];
            assert_true(d[i] == (float)p->red / 255.0f);
            assert_true(d[w * h + i] == (float)p->green / 255.0f);
            assert_true(d[2 * w * h + i] == (float)p->blue / 255.0f);
        }
        nc_image_destroy(img);
        free(raw);
    }
}

static void test_png_read_palette_trns_gives_rgba(void **state) {
    fx *f = *state;
    const int w = 4, h = 2;
    const png_color pal[4] = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}, {100, 110, 120}};
    const png_byte alpha[2] = {0, 128}; /* entries 2 and 3 are opaque */
    unsigned idx[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    unsigned char *raw = pack_raw(idx, w, h, 1, 8);
    spec s = {w, h, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, pal, 4, alpha, 2, NULL, raw};
    nc_image *img = decode_spec(f, &s, 4, 8);
    const float *d = nc_image_const_data(img);
    for (int i = 0; i < w * h; i++) {
        float a = idx[i] < 2 ? (float)alpha[idx[i]] / 255.0f : 1.0f;
        assert_true(d[i] == (float)pal[idx[i]].red / 255.0f);
        assert_true(d[2 * w * h + i] == (float)pal[idx[i]].blue / 255.0f);
        assert_true(d[3 * w * h + i] == a);
    }
    nc_image_destroy(img);
    free(raw);
}

static void test_png_read_gray_low_bit_depths(void **state) {
    fx *f = *state;
    for (int depth = 1; depth <= 4; depth *= 2) {
        const int w = 13, h = 3;
        const unsigned maxv = (1u << depth) - 1u;
        unsigned v[39];
        for (int i = 0; i < w * h; i++) v[i] = pattern((size_t)i, depth);
        unsigned char *raw = pack_raw(v, w, h, 1, depth);
        spec s = {w, h, depth, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL, raw};
        nc_image *img = decode_spec(f, &s, 1, 8); /* 1/2/4-bit report 8 */
        const float *d = nc_image_const_data(img);
        for (int i = 0; i < w * h; i++) assert_true(d[i] == (float)(v[i] * (255u / maxv)) / 255.0f);
        nc_image_destroy(img);
        free(raw);
    }
}

static void test_png_read_gray_trns_adds_alpha(void **state) {
    fx *f = *state;
    const int w = 5, h = 4;
    for (int depth = 8; depth <= 16; depth += 8) {
        unsigned v[20];
        for (int i = 0; i < w * h; i++) v[i] = depth == 8 ? (unsigned)(i % 10) : (unsigned)(i % 10) * 1000u + 7u;
        png_color_16 key = {0, 0, 0, 0, (png_uint_16)v[7]}; /* the value of pixels 7 and 17 */
        unsigned char *raw = pack_raw(v, w, h, 1, depth);
        spec s = {w, h, depth, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, &key, raw};
        nc_image *img = decode_spec(f, &s, 2, depth);
        const float *d = nc_image_const_data(img);
        const float maxv = depth == 8 ? 255.0f : 65535.0f;
        for (int i = 0; i < w * h; i++) {
            assert_true(d[i] == (float)v[i] / maxv);
            assert_true(d[w * h + i] == (v[i] == v[7] ? 0.0f : 1.0f));
        }
        nc_image_destroy(img);
        free(raw);
    }
}

static void test_png_read_rgb_trns_adds_alpha(void **state) {
    fx *f = *state;
    const int w = 3, h = 2;
    unsigned v[18] = {1, 2, 3, 4, 5, 6, 1, 2, 3, 1, 2, 4, 9, 9, 9, 1, 2, 3};
    png_color_16 key = {0, 1, 2, 3, 0};
    unsigned char *raw = pack_raw(v, w, h, 3, 8);
    spec s = {w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, &key, raw};
    nc_image *img = decode_spec(f, &s, 4, 8);
    const float *d = nc_image_const_data(img);
    static const float alpha[6] = {0, 1, 0, 1, 1, 0};
    for (int i = 0; i < w * h; i++) {
        for (int c = 0; c < 3; c++) assert_true(d[c * w * h + i] == (float)v[3 * i + c] / 255.0f);
        assert_true(d[3 * w * h + i] == alpha[i]);
    }
    nc_image_destroy(img);
    free(raw);
}

/* Adam7 for 8-bit RGB, 16-bit gray+alpha and 1-bit gray (sub-byte passes). */
static void test_png_read_interlaced(void **state) {
    fx *f = *state;
    static const struct { int color, ch, depth; } kinds[3] = {
        {PNG_COLOR_TYPE_RGB, 3, 8}, {PNG_COLOR_TYPE_GRAY_ALPHA, 2, 16}, {PNG_COLOR_TYPE_GRAY, 1, 1}};
    for (int k = 0; k < 3; k++) {
        const int w = 13, h = 11, ch = kinds[k].ch, depth = kinds[k].depth;
        unsigned *v = malloc((size_t)(w * h * ch) * sizeof *v);
        for (int i = 0; i < w * h * ch; i++) v[i] = pattern((size_t)i, depth);
        unsigned char *raw = pack_raw(v, w, h, ch, depth);
        spec s = {w, h, depth, kinds[k].color, PNG_INTERLACE_ADAM7, NULL, 0, NULL, 0, NULL, raw};
        nc_image *img = decode_spec(f, &s, ch, depth == 16 ? 16 : 8);
        const float *d = nc_image_const_data(img);
        const float maxv = depth == 16 ? 65535.0f : 255.0f;
        const unsigned scale = depth == 1 ? 255u : 1u;
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < ch; c++)
                if (d[c * w * h + i] != (float)(v[i * ch + c] * scale) / maxv)
                    fail_msg("kind %d pixel %d channel %d", k, i, c);
        nc_image_destroy(img);
        free(raw);
        free(v);
    }
}

/* ------------------------------------------------------------ errors */

/* A small valid PNG (6 x 5 RGB, 8-bit) made by libpng; malloc'ed. */
static unsigned char *small_png(size_t *size) {
    unsigned v[90];
    for (int i = 0; i < 90; i++) v[i] = pattern((size_t)i, 8);
    unsigned char *raw = pack_raw(v, 6, 5, 3, 8);
    spec s = {6, 5, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL, raw};
    unsigned char *bytes = encode_raw(&s, size);
    free(raw);
    return bytes;
}

/* Decodes a private copy of n bytes (so ASan sees any over-read); expects `want`. */
static void expect_memory_status(fx *f, const unsigned char *bytes, size_t n, nc_status want, const char *where) {
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, bytes, n);
    nc_image *img = (nc_image *)1;
    nc_status st = nc_png_read_memory(f->ctx, copy, n, NULL, &img);
    if (st != want) fail_msg("%s: status %d (%s), want %d", where, st, nc_context_last_error(f->ctx), want);
    assert_null(img);
    if (strncmp(nc_context_last_error(f->ctx), "<memory>: ", 10) != 0)
        fail_msg("%s: message \"%s\" does not start with <memory>", where, nc_context_last_error(f->ctx));
    free(copy);
}

static void test_png_read_memory_matches_file(void **state) {
    fx *f = *state;
    size_t size;
    unsigned char *bytes = small_png(&size);
    char *path = tu_tmp_path("same.png");
    write_bytes(path, bytes, size);
    nc_image *a, *b;
    assert_int_equal(nc_png_read(f->ctx, path, NULL, &a), NC_OK);
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, NULL, &b), NC_OK);
    assert_int_equal(nc_image_channels(a), nc_image_channels(b));
    assert_int_equal(nc_image_height(a), nc_image_height(b));
    assert_int_equal(nc_image_width(a), nc_image_width(b));
    assert_int_equal(nc_image_bit_depth(a), nc_image_bit_depth(b));
    assert_memory_equal(nc_image_data(a), nc_image_data(b), 3 * 5 * 6 * sizeof(float));
    nc_image_destroy(a);
    nc_image_destroy(b);
    unlink(path);
    free(path);
    free(bytes);
}

static void test_png_read_missing_file(void **state) {
    fx *f = *state;
    char *path = tu_tmp_path("does_not_exist.png");
    nc_image *img = (nc_image *)1;
    assert_int_equal(nc_png_read(f->ctx, path, NULL, &img), NC_ERR_IO);
    assert_null(img);
    assert_error_mentions(f->ctx, path);
    assert_error_mentions(f->ctx, "No such file");
    assert_int_equal(nc_png_read(f->ctx, "/tmp", NULL, &img), NC_ERR_IO); /* a directory */
    free(path);
}

static void test_png_read_not_png(void **state) {
    fx *f = *state;
    const char text[] = "hello, this is not a PNG file at all";
    char *path = tu_tmp_path("text.png");
    write_bytes(path, text, sizeof text);
    nc_image *img = (nc_image *)1;
    assert_int_equal(nc_png_read(f->ctx, path, NULL, &img), NC_ERR_FORMAT);
    assert_null(img);
    assert_error_mentions(f->ctx, path);
    assert_error_mentions(f->ctx, "not a PNG");
    expect_memory_status(f, (const unsigned char *)text, sizeof text, NC_ERR_FORMAT, "text");
    assert_error_mentions(f->ctx, "not a PNG");
    write_bytes(path, text, 0); /* empty file */
    assert_int_equal(nc_png_read(f->ctx, path, NULL, &img), NC_ERR_FORMAT);
    unlink(path);
    free(path);
}

static void test_png_read_truncated_every_length(void **state) {
    fx *f = *state;
    size_t size;
    unsigned char *bytes = small_png(&size);
    char where[64];
    for (size_t n = 0; n < size; n++) {
        snprintf(where, sizeof where, "truncated to %zu of %zu", n, size);
        expect_memory_status(f, bytes, n, NC_ERR_FORMAT, where);
        if (n > 0) assert_error_mentions(f->ctx, "truncated");
    }
    char *path = tu_tmp_path("trunc.png");
    for (size_t n = 0; n < size; n += 7) {
        write_bytes(path, bytes, n);
        nc_image *img = (nc_image *)1;
        assert_int_equal(nc_png_read(f->ctx, path, NULL, &img), NC_ERR_FORMAT);
        assert_null(img);
        assert_error_mentions(f->ctx, path);
    }
    unlink(path);
    free(path);
    free(bytes);
}

/* Every chunk of the file is critical, so every flipped byte breaks a CRC (or the
 * signature): each must be NC_ERR_FORMAT. */
static void test_png_read_corrupt_bytes_fail(void **state) {
    fx *f = *state;
    size_t size, len;
    unsigned char *bytes = small_png(&size);
    char where[64];
    for (size_t i = 0; i < size; i++) {
        bytes[i] ^= 0x5a;
        snprintf(where, sizeof where, "byte %zu of %zu flipped", i, size);
        expect_memory_status(f, bytes, size, NC_ERR_FORMAT, where);
        bytes[i] ^= 0x5a;
    }
    size_t idat = find_chunk(bytes, size, "IDAT", &len);
    bytes[idat + len] ^= 1; /* the IDAT's CRC itself */
    expect_memory_status(f, bytes, size, NC_ERR_FORMAT, "IDAT CRC");
    assert_error_mentions(f->ctx, "CRC");
    free(bytes);
}

/* Damaged compressed data with a CRC that matches it: zlib must catch it. */
static void test_png_read_corrupt_idat_with_valid_crc(void **state) {
    fx *f = *state;
    size_t size, len;
    unsigned char *bytes = small_png(&size);
    size_t idat = find_chunk(bytes, size, "IDAT", &len);
    char where[64];
    for (size_t i = 0; i < len; i++) {
        bytes[idat + i] ^= 0xff;
        store_be32(bytes + idat + len, crc32_of(bytes + idat - 4, len + 4));
        snprintf(where, sizeof where, "IDAT byte %zu of %zu", i, len);
        expect_memory_status(f, bytes, size, NC_ERR_FORMAT, where);
        bytes[idat + i] ^= 0xff;
    }
    free(bytes);
}

/* Ancillary chunks before and after the image data are skipped, and one with a bad
 * CRC only draws a libpng warning, which the reader ignores. */
static void test_png_read_ignores_bad_ancillary_chunk(void **state) {
    fx *f = *state;
    size_t size;
    unsigned char *bytes = small_png(&size);
    unsigned char text[24] = {0, 0, 0, 12, 't', 'E', 'X', 't', 'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 'h', 'i', '!', '!'};
    unsigned char *more = malloc(size + 48);
    store_be32(text + 20, crc32_of(text + 4, 16) ^ 1u); /* a wrong CRC */
    memcpy(more, bytes, 33);                             /* signature + IHDR */
    memcpy(more + 33, text, 24);
    memcpy(more + 57, bytes + 33, size - 45);            /* up to IEND */
    store_be32(text + 20, crc32_of(text + 4, 16));
    memcpy(more + size + 12, text, 24);
    memcpy(more + size + 36, bytes + size - 12, 12);     /* IEND */
    nc_image *a, *b;
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, NULL, &a), NC_OK);
    nc_status st = nc_png_read_memory(f->ctx, more, size + 48, NULL, &b);
    if (st != NC_OK) fail_msg("%s", nc_context_last_error(f->ctx));
    assert_memory_equal(nc_image_data(a), nc_image_data(b), 3 * 5 * 6 * sizeof(float));
    nc_image_destroy(a);
    nc_image_destroy(b);
    free(more);
    free(bytes);
}

/* A 45-byte file claiming 100000 x 100000 pixels: refused from the header alone. */
static void test_png_read_limit_width_before_allocation(void **state) {
    fx *f = *state;
    unsigned char buf[45];
    size_t n = craft_header_only(buf, 100000, 100000, 8, PNG_COLOR_TYPE_RGB);
    f->cnt.largest = 0;
    expect_memory_status(f, buf, n, NC_ERR_LIMIT, "100000 x 100000");
    assert_error_mentions(f->ctx, "max_width");
    assert_true(f->cnt.largest < 4096);
    char *path = tu_tmp_path("huge.png");
    write_bytes(path, buf, n);
    nc_image *img = (nc_image *)1;
    assert_int_equal(nc_png_read(f->ctx, path, NULL, &img), NC_ERR_LIMIT);
    assert_null(img);
    assert_error_mentions(f->ctx, path);
    assert_true(f->cnt.largest < 4096);
    unlink(path);
    free(path);
}

/* A 48-byte file whose ancillary sPLT chunk claims 1.2 GB (found by fuzz_png): libpng
 * would allocate the declared length before reading; refused as truncated first. */
static void test_png_read_chunk_longer_than_file(void **state) {
    fx *f = *state;
    unsigned char buf[48];
    craft_header_only(buf, 9, 9, 4, PNG_COLOR_TYPE_PALETTE);
    store_be32(buf + 33, 0x4c000030u);
    memcpy(buf + 37, "sPLT", 4);
    memcpy(buf + 41, "PLTE\0\0\0", 7);
    f->cnt.largest = 0;
    expect_memory_status(f, buf, sizeof buf, NC_ERR_FORMAT, "sPLT claims 1.2 GB");
    assert_error_mentions(f->ctx, "truncated");
    assert_error_mentions(f->ctx, "sPLT");
    assert_true(f->cnt.largest < 65536);
}

static void test_png_read_limit_height_and_pixels(void **state) {
    fx *f = *state;
    unsigned char buf[45];
    size_t n = craft_header_only(buf, 10, 40000, 16, PNG_COLOR_TYPE_GRAY);
    expect_memory_status(f, buf, n, NC_ERR_LIMIT, "10 x 40000");
    assert_error_mentions(f->ctx, "max_height");
    n = craft_header_only(buf, 20000, 20000, 8, PNG_COLOR_TYPE_GRAY); /* 4e8 > 2^28 */
    f->cnt.largest = 0;
    expect_memory_status(f, buf, n, NC_ERR_LIMIT, "20000 x 20000");
    assert_error_mentions(f->ctx, "max_pixels");
    assert_true(f->cnt.largest < 4096);
}

static void test_png_read_custom_limits(void **state) {
    fx *f = *state;
    size_t size;
    unsigned char *bytes = small_png(&size); /* 6 x 5 */
    nc_png_limits lim;
    nc_png_limits_init(&lim);
    assert_int_equal(lim.struct_size, sizeof lim);
    assert_int_equal(lim.max_width, 32768);
    assert_int_equal(lim.max_height, 32768);
    assert_int_equal(lim.max_pixels, (int64_t)1 << 28);
    nc_image *img = NULL;
    lim.max_width = 5;
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, &lim, &img), NC_ERR_LIMIT);
    lim.max_width = 6, lim.max_height = 4;
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, &lim, &img), NC_ERR_LIMIT);
    lim.max_height = 5, lim.max_pixels = 29;
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, &lim, &img), NC_ERR_LIMIT);
    assert_null(img);
    lim.max_pixels = 30;
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, &lim, &img), NC_OK);
    nc_image_destroy(img);
    lim.max_pixels = 0;
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, &lim, &img), NC_ERR_INVALID_ARGUMENT);
    nc_png_limits_init(&lim);
    lim.struct_size = 3;
    assert_int_equal(nc_png_read_memory(f->ctx, bytes, size, &lim, &img), NC_ERR_INVALID_ARGUMENT);
    assert_error_mentions(f->ctx, "struct_size");
    nc_png_limits_init(NULL);
    free(bytes);
}

static void test_png_write_bad_args(void **state) {
    fx *f = *state;
    nc_image *img;
    char *path = tu_tmp_path("bad.png");
    struct stat sb;
    assert_int_equal(nc_image_create(f->ctx, 3, 2, 2, &img), NC_OK);
    assert_int_equal(nc_png_write(f->ctx, path, img, 12), NC_ERR_INVALID_ARGUMENT);
    assert_error_mentions(f->ctx, "bit depth 12");
    assert_int_equal(nc_png_write(f->ctx, path, img, 0), NC_ERR_INVALID_ARGUMENT);
    nc_image_destroy(img);
    assert_int_equal(nc_image_create(f->ctx, 5, 2, 2, &img), NC_OK);
    assert_int_equal(nc_png_write(f->ctx, path, img, 8), NC_ERR_INVALID_ARGUMENT);
    assert_error_mentions(f->ctx, "5 channels");
    assert_int_equal(stat(path, &sb), -1); /* nothing written */
    nc_image_destroy(img);
    free(path);
}

static void test_png_write_missing_directory(void **state) {
    fx *f = *state;
    nc_image *img;
    char *path = tu_tmp_path("no_such_dir/x.png");
    assert_int_equal(nc_image_create(f->ctx, 1, 2, 2, &img), NC_OK);
    assert_int_equal(nc_png_write(f->ctx, path, img, 8), NC_ERR_IO);
    assert_error_mentions(f->ctx, path);
    nc_image_destroy(img);
    free(path);
}

static void test_png_null_args(void **state) {
    fx *f = *state;
    nc_image *img = NULL;
    unsigned char b[8] = {0};
    assert_int_equal(nc_png_read(NULL, "x.png", NULL, &img), NC_ERR_NULL);
    assert_int_equal(nc_png_read(f->ctx, NULL, NULL, &img), NC_ERR_NULL);
    assert_int_equal(nc_png_read(f->ctx, "x.png", NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_png_read_memory(NULL, b, 8, NULL, &img), NC_ERR_NULL);
    assert_int_equal(nc_png_read_memory(f->ctx, NULL, 8, NULL, &img), NC_ERR_NULL);
    assert_int_equal(nc_png_read_memory(f->ctx, b, 8, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_image_create(f->ctx, 1, 1, 1, &img), NC_OK);
    assert_int_equal(nc_png_write(NULL, "x.png", img, 8), NC_ERR_NULL);
    assert_int_equal(nc_png_write(f->ctx, NULL, img, 8), NC_ERR_NULL);
    assert_int_equal(nc_png_write(f->ctx, "x.png", NULL, 8), NC_ERR_NULL);
    nc_image_destroy(img);
}

/* Allocation k fails, for every k until the call succeeds: a clean status, no leak. */
static void test_png_out_of_memory_every_allocation(void **state) {
    fx *f = *state;
    size_t size;
    unsigned char *bytes = small_png(&size);
    char *path = tu_tmp_path("oom.png");
    nc_image *img = NULL;
    nc_status st = NC_ERR_OUT_OF_MEMORY;
    for (long k = 0; st != NC_OK; k++) {
        assert_true(k < 100);
        f->cnt.fail_after = f->cnt.calls + k;
        st = nc_png_read_memory(f->ctx, bytes, size, NULL, &img);
        assert_true(st == NC_OK || st == NC_ERR_OUT_OF_MEMORY);
        assert_int_equal(f->cnt.live, f->base + (st == NC_OK ? 2 : 0));
    }
    st = NC_ERR_OUT_OF_MEMORY;
    for (long k = 0; st != NC_OK; k++) {
        assert_true(k < 100);
        f->cnt.fail_after = f->cnt.calls + k;
        st = nc_png_write(f->ctx, path, img, 16);
        assert_true(st == NC_OK || st == NC_ERR_OUT_OF_MEMORY || st == NC_ERR_IO);
        assert_int_equal(f->cnt.live, f->base + 2);
    }
    f->cnt.fail_after = -1;
    nc_image_destroy(img);
    unlink(path);
    free(path);
    free(bytes);
}

#else /* !HAVE_PNG */

static void test_png_unsupported_without_libpng(void **state) {
    fx *f = *state;
    nc_image *img = NULL;
    unsigned char b[8] = {0};
    assert_int_equal(nc_png_read(f->ctx, "x.png", NULL, &img), NC_ERR_UNSUPPORTED);
    assert_int_equal(nc_png_read_memory(f->ctx, b, 8, NULL, &img), NC_ERR_UNSUPPORTED);
    assert_int_equal(nc_image_create(f->ctx, 1, 1, 1, &img), NC_OK);
    assert_int_equal(nc_png_write(f->ctx, "x.png", img, 8), NC_ERR_UNSUPPORTED);
    assert_error_mentions(f->ctx, "libpng");
    nc_image_destroy(img);
}

#endif /* HAVE_PNG */

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_image_create_accessors), T(test_image_null_safety), T(test_image_create_rejects_bad_sizes),
        T(test_image_create_out_of_memory),
#if HAVE_PNG
        T(test_png_roundtrip_gray8), T(test_png_roundtrip_gray16), T(test_png_roundtrip_gray_alpha8),
        T(test_png_roundtrip_gray_alpha16), T(test_png_roundtrip_rgb8), T(test_png_roundtrip_rgb16),
        T(test_png_roundtrip_rgba8), T(test_png_roundtrip_rgba16), T(test_png_16bit_keeps_full_precision),
        T(test_png_write_clamps_and_rounds), T(test_png_read_palette_to_rgb),
        T(test_png_read_palette_trns_gives_rgba), T(test_png_read_gray_low_bit_depths),
        T(test_png_read_gray_trns_adds_alpha), T(test_png_read_rgb_trns_adds_alpha),
        T(test_png_read_interlaced), T(test_png_read_memory_matches_file), T(test_png_read_missing_file),
        T(test_png_read_not_png), T(test_png_read_truncated_every_length), T(test_png_read_chunk_longer_than_file),
        T(test_png_read_corrupt_bytes_fail), T(test_png_read_corrupt_idat_with_valid_crc),
        T(test_png_read_ignores_bad_ancillary_chunk), T(test_png_read_limit_width_before_allocation),
        T(test_png_read_limit_height_and_pixels), T(test_png_read_custom_limits), T(test_png_write_bad_args),
        T(test_png_write_missing_directory), T(test_png_null_args),
        T(test_png_out_of_memory_every_allocation),
#else
        T(test_png_unsupported_without_libpng),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
