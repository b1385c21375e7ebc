/* test_raw_input.c — nc_model_forward_raw on described buffers: for every element type
 * (u8, u16 with 12-bit data, f32) x layout (NCHW, NHWC, planar) x stride pattern
 * (packed, padded rows and images at odd byte offsets, bottom-up rows) x normalisation
 * (model's, none) the logits equal nc_model_forward's on the float batch the
 * documented formula gives, bit for bit; a PNG's bytes give what nc_png_read and the
 * normalize transform give; threads calling it on one model get serial results; bad
 * descriptors get a status and a message. */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 2, C = 3, H = 10, W = 9, CLASSES = 4 };

static const float MEAN[C] = {0.485f, 0.456f, 0.406f}, STD[C] = {0.229f, 0.224f, 0.225f};

static nc_model *make_model(nc_context *ctx, int with_norm) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.width = 4;
    mo.num_classes = CLASSES;
    mo.in_channels = C;
    mo.seed = 5;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    if (with_norm) assert_int_equal(nc_model_set_normalization(m, MEAN, STD), NC_OK);
    return m;
}

/* The source values v[i][ch][y][x] as doubles (integers for u8/u16). */
static double value_of(nc_elem_type t, int i, int ch, int y, int x) {
    unsigned k = (unsigned)(((i * C + ch) * H + y) * W + x) * 2654435761u;
    if (t == NC_ELEM_U8) return (double)(k >> 24);
    if (t == NC_ELEM_U16) return (double)((k >> 16) % 4096); /* 12-bit data */
    return (double)(int)(k >> 16) / 65536.0 * 3.0 - 1.5;
}

static void store(unsigned char *p, nc_elem_type t, double v) {
    if (t == NC_ELEM_U8) {
        *p = (unsigned char)v;
    } else if (t == NC_ELEM_U16) {
        uint16_t u = (uint16_t)v;
        memcpy(p, &u, 2);
    } else {
        float f = (float)v;
        memcpy(p, &f, 4);
    }
}

/* The test's own reading of the documented formula. */
static void reference(nc_elem_type t, double lo, double hi, int normalize, float *x) {
    float flo = (float)lo, range = (float)hi - (float)lo;
    for (int i = 0; i < N; i++)
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    double v = value_of(t, i, ch, y, xx);
                    float f = t == NC_ELEM_F32 ? (float)v : (float)v; /* integers are exact */
                    float s = (f - flo) / range;
                    if (normalize) s = (s - MEAN[ch]) / STD[ch];
                    x[((i * C + ch) * H + y) * W + xx] = s;
                }
}

enum { PACKED = 0, PADDED = 1, BOTTOM_UP = 2, N_STRIDES = 3 };

/* A buffer holding the values in `layout` with the stride pattern; fills d. Padding
 * bytes are 0xAB; PADDED starts at an odd byte offset (unaligned u16/f32). */
typedef struct packed_input {
    unsigned char *mem[C + 1];
    const void *planes[C];
} packed_input;

static void pack(nc_elem_type t, nc_layout layout, int pattern, nc_input_desc *d, packed_input *pk) {
    const int64_t e = t == NC_ELEM_U8 ? 1 : t == NC_ELEM_U16 ? 2 : 4;
    const int pad = pattern == PADDED ? 3 : 0;
    const int64_t cw = layout == NC_LAYOUT_NHWC ? C : 1; /* values per pixel */
    const int64_t sw = e * cw + (pattern == PADDED ? 1 : 0) * (layout == NC_LAYOUT_NHWC ? 2 : 1);
    const int64_t row = W * sw + pad * 5;
    const int64_t img_planes = layout == NC_LAYOUT_NCHW ? C : 1;
    const int64_t plane = H * row + pad * 7;
    const int64_t img = img_planes * plane + pad * 11;
    const int64_t off = pattern == PADDED ? 1 : 0;
    const int nbuf = layout == NC_LAYOUT_PLANAR ? C : 1;
    memset(pk, 0, sizeof *pk);
    for (int b = 0; b < nbuf; b++) {
        pk->mem[b] = malloc((size_t)(N * img + off + 16));
        memset(pk->mem[b], 0xAB, (size_t)(N * img + off + 16));
    }
    d->type = t;
    d->layout = layout;
    d->n = N, d->c = C, d->h = H, d->w = W;
    d->stride_n = pattern == PACKED ? 0 : img;
    d->stride_c = layout == NC_LAYOUT_PLANAR || pattern == PACKED ? 0 : layout == NC_LAYOUT_NHWC ? e : plane;
    d->stride_w = pattern == PACKED ? 0 : sw;
    d->stride_h = pattern == PACKED ? 0 : pattern == BOTTOM_UP ? -row : row;
    if (pattern == PACKED) { /* packed strides as the library must derive them */
        assert_true(row == W * e * cw && plane == H * row);
    }
    const int64_t sc = layout == NC_LAYOUT_NHWC ? e : layout == NC_LAYOUT_NCHW ? plane : 0;
    const int64_t first_row = pattern == BOTTOM_UP ? (H - 1) * row : 0;
    for (int i = 0; i < N; i++)
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    unsigned char *base = pk->mem[layout == NC_LAYOUT_PLANAR ? ch : 0] + off + first_row;
                    int64_t at = i * img + ch * sc + y * (pattern == BOTTOM_UP ? -row : row) + x * sw;
                    store(base + at, t, value_of(t, i, ch, y, x));
                }
    if (layout == NC_LAYOUT_PLANAR) {
        for (int ch = 0; ch < C; ch++) pk->planes[ch] = pk->mem[ch] + off + first_row;
        d->planes = pk->planes;
    } else {
        d->data = pk->mem[0] + off + first_row;
    }
}

static void unpack(packed_input *pk) {
    for (int b = 0; b < C + 1; b++) free(pk->mem[b]);
}

/* ---------------------------------------------------------------------- cases */

static void test_forward_raw_every_combination_equals_float_path(void **state) {
    nc_context *ctx = ((tu_fx *)*state)->ctx;
    nc_model *m = make_model(ctx, 1);
    const nc_elem_type types[3] = {NC_ELEM_U8, NC_ELEM_U16, NC_ELEM_F32};
    const nc_layout layouts[3] = {NC_LAYOUT_NCHW, NC_LAYOUT_NHWC, NC_LAYOUT_PLANAR};
    float *x = tu_zeros((size_t)N * C * H * W);
    float want[N * CLASSES], got[N * CLASSES];
    int cases = 0;
    for (int ti = 0; ti < 3; ti++)
        for (int li = 0; li < 3; li++)
            for (int pattern = 0; pattern < N_STRIDES; pattern++)
                for (int norm = 0; norm <= 1; norm++)
                    for (int range = 0; range <= 1; range++) {
                        nc_elem_type t = types[ti];
                        /* range 0: the type's default; 1: a window (12-bit data in u16,
                         * 16..240 in u8, -1..2 in f32) */
                        double lo = 0.0, hi = t == NC_ELEM_U8 ? 255.0 : t == NC_ELEM_U16 ? 65535.0 : 1.0;
                        nc_input_desc d;
                        nc_input_desc_init(&d);
                        if (range) {
                            lo = t == NC_ELEM_U8 ? 16.0 : t == NC_ELEM_U16 ? 0.0 : -1.0;
                            hi = t == NC_ELEM_U8 ? 240.0 : t == NC_ELEM_U16 ? 4095.0 : 2.0;
                            d.min_value = lo;
                            d.max_value = hi;
                        }
                        d.normalize = norm;
                        packed_input pk;
                        pack(t, layouts[li], pattern, &d, &pk);
                        reference(t, lo, hi, norm, x);
                        assert_int_equal(nc_model_forward(m, x, N, C, H, W, want), NC_OK);
                        memset(got, 0xFF, sizeof got);
                        nc_status st = nc_model_forward_raw(m, &d, got);
                        if (st != NC_OK) fail_msg("type %d layout %d pattern %d: %s", t, li, pattern,
                                                  nc_context_last_error(ctx));
                        if (memcmp(got, want, sizeof got) != 0)
                            fail_msg("type %d layout %d pattern %d norm %d range %d: logits differ (%g vs %g)", t, li,
                                     pattern, norm, range, got[0], want[0]);
                        unpack(&pk);
                        cases++;
                    }
    assert_int_equal(cases, 3 * 3 * N_STRIDES * 2 * 2);
    free(x);
    nc_model_destroy(m);
}

/* An 8-bit and a 16-bit RGB PNG: their bytes, described as interleaved NHWC (the PNG
 * row order, 16-bit swapped to native), give the logits of nc_png_read + the
 * normalize transform + nc_model_forward, bit for bit. */
static void test_forward_raw_equals_png_and_normalize(void **state) {
    nc_context *ctx = ((tu_fx *)*state)->ctx;
    nc_model *m = make_model(ctx, 1);
    nc_transform *tr = NULL;
    assert_int_equal(nc_transform_create(ctx, &tr), NC_OK);
    assert_int_equal(nc_transform_add_normalize(tr, MEAN, STD, C), NC_OK);
    for (int depth = 8; depth <= 16; depth += 8) {
        nc_image *img = NULL, *back = NULL, *norm = NULL;
        assert_int_equal(nc_image_create(ctx, C, H, W, &img), NC_OK);
        float *p = nc_image_data(img);
        for (int k = 0; k < C * H * W; k++) p[k] = (float)((k * 37) % 101) / 100.0f;
        char *path = tu_tmp_path("raw_input.png");
        assert_int_equal(nc_png_write(ctx, path, img, depth), NC_OK);
        assert_int_equal(nc_png_read(ctx, path, NULL, &back), NC_OK);
        assert_int_equal(nc_transform_apply(tr, ctx, back, 0, 0, 0, &norm), NC_OK);
        float want[CLASSES], got[CLASSES];
        assert_int_equal(nc_model_forward(m, nc_image_const_data(norm), 1, C, H, W, want), NC_OK);
        /* the file's samples, recovered exactly from the decoded values */
        const float *v = nc_image_const_data(back);
        const double full = depth == 8 ? 255.0 : 65535.0;
        uint8_t b8[H * W * C];
        uint16_t b16[H * W * C];
        for (int ch = 0; ch < C; ch++)
            for (int k = 0; k < H * W; k++) {
                double s = round((double)v[ch * H * W + k] * full);
                b8[k * C + ch] = (uint8_t)s;
                b16[k * C + ch] = (uint16_t)s;
            }
        nc_input_desc d;
        nc_input_desc_init(&d);
        d.type = depth == 8 ? NC_ELEM_U8 : NC_ELEM_U16;
        d.layout = NC_LAYOUT_NHWC;
        d.n = 1, d.c = C, d.h = H, d.w = W;
        d.data = depth == 8 ? (const void *)b8 : (const void *)b16;
        assert_int_equal(nc_model_forward_raw(m, &d, got), NC_OK);
        assert_memory_equal(got, want, sizeof got);
        remove(path);
        free(path);
        nc_image_destroy(img);
        nc_image_destroy(back);
        nc_image_destroy(norm);
    }
    nc_transform_destroy(tr);
    nc_model_destroy(m);
}

typedef struct worker {
    nc_model *m;
    const nc_input_desc *d;
    float out[N * CLASSES];
    nc_status st;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    for (int k = 0; k < 20 && w->st == NC_OK; k++) w->st = nc_model_forward_raw(w->m, w->d, w->out);
    return NULL;
}

/* Four threads, two descriptors, one model: every result equals the serial one. */
static void test_forward_raw_threads(void **state) {
    (void)state;
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = make_model(ctx, 1);
    nc_input_desc d[2];
    packed_input pk[2];
    float want[2][N * CLASSES];
    for (int k = 0; k < 2; k++) {
        nc_input_desc_init(&d[k]);
        pack(k ? NC_ELEM_U16 : NC_ELEM_U8, k ? NC_LAYOUT_PLANAR : NC_LAYOUT_NHWC, k ? PADDED : PACKED, &d[k], &pk[k]);
        assert_int_equal(nc_model_forward_raw(m, &d[k], want[k]), NC_OK);
    }
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.m = m, .d = &d[i % 2], .st = NC_OK};
        assert_int_equal(pthread_create(&th[i], NULL, run_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].st, NC_OK);
        assert_memory_equal(w[i].out, want[i % 2], sizeof want[0]);
    }
    for (int k = 0; k < 2; k++) unpack(&pk[k]);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void expect(nc_context *ctx, nc_model *m, const nc_input_desc *d, nc_status want, const char *text) {
    float out[N * CLASSES];
    assert_int_equal(nc_model_forward_raw(m, d, out), want);
    if (!strstr(nc_context_last_error(ctx), text)) fail_msg("'%s' not in '%s'", text, nc_context_last_error(ctx));
}

static void test_forward_raw_bad_descriptors(void **state) {
    nc_context *ctx = ((tu_fx *)*state)->ctx;
    nc_model *m = make_model(ctx, 1), *bare = make_model(ctx, 0);
    uint8_t buf[N * C * H * W] = {0};
    nc_input_desc good, d;
    nc_input_desc_init(&good);
    good.n = N, good.c = C, good.h = H, good.w = W;
    good.data = buf;
    float out[N * CLASSES];
    assert_int_equal(nc_model_forward_raw(m, &good, out), NC_OK);
    assert_int_equal(nc_model_forward_raw(NULL, &good, out), NC_ERR_NULL);
    expect(ctx, m, NULL, NC_ERR_NULL, "desc is NULL");
    assert_int_equal(nc_model_forward_raw(m, &good, NULL), NC_ERR_NULL);
    d = good, d.struct_size = 8;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, "struct_size");
    d = good, d.type = (nc_elem_type)9;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, "element type 9");
    d = good, d.layout = (nc_layout)7;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, "layout 7");
    d = good, d.h = 0;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, ">= 1");
    d = good, d.c = 1;
    expect(ctx, m, &d, NC_ERR_SHAPE, "the model expects 3");
    d = good, d.data = NULL;
    expect(ctx, m, &d, NC_ERR_NULL, "data is NULL");
    d = good, d.layout = NC_LAYOUT_PLANAR;
    expect(ctx, m, &d, NC_ERR_NULL, "planes is NULL");
    const void *planes[C] = {buf, NULL, buf};
    d.planes = planes;
    expect(ctx, m, &d, NC_ERR_NULL, "planes[1] is NULL");
    planes[1] = buf;
    d.stride_c = 4;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, "stride_c must be 0");
    d = good, d.min_value = 5, d.max_value = 5;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, "value range");
    d = good, d.max_value = NAN;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, "value range");
    d = good, d.normalize = 2;
    expect(ctx, m, &d, NC_ERR_INVALID_ARGUMENT, "normalize 2");
    d = good, d.w = 4, d.h = 4;
    expect(ctx, m, &d, NC_ERR_SHAPE, "");
    expect(ctx, bare, &good, NC_ERR_NOT_FOUND, "stores no normalisation");
    d = good, d.normalize = 0;
    assert_int_equal(nc_model_forward_raw(bare, &d, out), NC_OK);
    nc_input_desc_init(NULL);
    nc_model_destroy(m);
    nc_model_destroy(bare);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forward_raw_every_combination_equals_float_path, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_forward_raw_equals_png_and_normalize, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test(test_forward_raw_threads),
        cmocka_unit_test_setup_teardown(test_forward_raw_bad_descriptors, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
