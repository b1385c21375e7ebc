/* test_safetensors.c — the safetensors reader/writer and atomic file writes: round
 * trips, deterministic output, one case per malformed-file rule (status and message),
 * f16/bf16 decoding, a truncate/flip fuzz loop and out-of-memory at every allocation,
 * all with a counting allocator so any leak fails the case. */
#include "testutil.h"

#include "core/context.h"
#include "io/safetensors.h"
#include "io/file.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ fixtures */

/* Each case gets a counting context (tests/testutil.h) that fails it on a leak. */
typedef tu_fx fx;
#define setup tu_fx_setup
#define teardown tu_fx_teardown

/* ------------------------------------------------------------ helpers */

/* A file from a header text and `data_size` data bytes (pattern i*7+1). malloc'ed. */
static unsigned char *make_file(const char *header, size_t data_size, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_size;
    unsigned char *b = malloc(*size + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_size; i++) b[8 + n + i] = (unsigned char)(i * 7 + 1);
    return b;
}

/* Parses header+data and expects `status` with `needle` in the context's message. */
static void expect_bad(fx *f, const char *header, size_t data_size, nc_status status,
                       const char *needle) {
    size_t size;
    unsigned char *b = make_file(header, data_size, &size);
    nc__st_file *sf = (nc__st_file *)1;
    nc_status st = nc__st_parse(f->ctx, b, size, &sf);
    const char *msg = nc_context_last_error(f->ctx);
    if (st != status || !strstr(msg, needle))
        print_error("header %s\n  got %s: \"%s\"\n  want %s with \"%s\"\n", header,
                    nc_status_str(st), msg, nc_status_str(status), needle);
    assert_int_equal(st, status);
    assert_null(sf);
    assert_non_null(strstr(msg, needle));
    assert_non_null(strstr(msg, "<memory>"));
    assert_int_equal(f->cnt.live, f->base);
    free(b);
}

static nc__st_file *expect_good(fx *f, const char *header, size_t data_size) {
    size_t size;
    unsigned char *b = make_file(header, data_size, &size);
    nc__st_file *sf = NULL;
    nc_status st = nc__st_parse(f->ctx, b, size, &sf);
    if (st != NC_OK) print_error("%s\n", nc_context_last_error(f->ctx));
    assert_int_equal(st, NC_OK);
    free(b);
    return sf;
}

static uint32_t bits_of_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static void convert(fx *f, nc__st_dtype dt, const void *data, int64_t n, float *out) {
    nc__st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "t";
    t.dtype = dt;
    t.ndim = 1;
    t.shape[0] = n;
    t.numel = n;
    t.data = data;
    t.nbytes = (size_t)n * nc__st_dtype_size(dt);
    assert_int_equal(nc__st_to_f32(f->ctx, &t, out), NC_OK);
}

/* --------------------------------------------------- writer and round trip */

static const float w_f32[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.75f};
static const uint16_t w_f16[4] = {0x3c00, 0xc100, 0x7bff, 0x0001}; /* 1 -2.5 65504 2^-24 */
static const uint16_t w_bf16[4] = {0x3f80, 0xc020, 0x4000, 0x8000}; /* 1 -2.5 2 -0 */
static const double w_f64[3] = {0.5, -1e10, 3.0};
static const int64_t w_i64 = -123456789;
static const int32_t w_i32_dummy = 0;
static const int16_t w_i16[2] = {-32768, 32767};
static const int8_t w_i8[3] = {-128, 0, 127};
static const uint8_t w_u8[3] = {0, 128, 255};
static const uint8_t w_bool[2] = {1, 0};

/* Adds the sample tensors in the order given by `perm` (10 entries). */
static nc__st_writer *sample_writer(fx *f, const int *perm) {
    nc__st_writer *w = NULL;
    assert_int_equal(nc__st_writer_create(f->ctx, &w), NC_OK);
    const int64_t s23[2] = {2, 3}, s4[1] = {4}, s22[2] = {2, 2}, s3[1] = {3}, s05[2] = {0, 5},
                  s2[1] = {2}, s113[3] = {1, 1, 3};
    for (int k = 0; k < 10; k++) {
        nc_status st = NC_OK;
        switch (perm[k]) {
        case 0: st = nc__st_writer_add(w, "conv1.weight", NC__DT_F32, 2, s23, w_f32); break;
        case 1: st = nc__st_writer_add(w, "half", NC__DT_F16, 1, s4, w_f16); break;
        case 2: st = nc__st_writer_add(w, "brain", NC__DT_BF16, 2, s22, w_bf16); break;
        case 3: st = nc__st_writer_add(w, "double", NC__DT_F64, 1, s3, w_f64); break;
        case 4: st = nc__st_writer_add(w, "bn1.num_batches_tracked", NC__DT_I64, 0, NULL, &w_i64);
            break;
        case 5: st = nc__st_writer_add(w, "empty", NC__DT_I32, 2, s05, &w_i32_dummy); break;
        case 6: st = nc__st_writer_add(w, "i16", NC__DT_I16, 1, s2, w_i16); break;
        case 7: st = nc__st_writer_add(w, "i8", NC__DT_I8, 1, s3, w_i8); break;
        case 8: st = nc__st_writer_add(w, "u8", NC__DT_U8, 3, s113, w_u8); break;
        case 9: st = nc__st_writer_add(w, "flags", NC__DT_BOOL, 1, s2, w_bool); break;
        }
        assert_int_equal(st, NC_OK);
    }
    if (perm[0] == 0) {
        assert_int_equal(nc__st_writer_meta(w, "format", "pt"), NC_OK);
        assert_int_equal(nc__st_writer_meta(w, "arch", "resnet18 \"quoted\" \xc3\xa9"), NC_OK);
    } else {
        assert_int_equal(nc__st_writer_meta(w, "arch", "resnet18 \"quoted\" \xc3\xa9"), NC_OK);
        assert_int_equal(nc__st_writer_meta(w, "format", "pt"), NC_OK);
    }
    return w;
}

static const int perm_a[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
static const int perm_b[10] = {9, 3, 7, 1, 5, 0, 8, 2, 6, 4};

static void check_tensor(fx *f, const nc__st_file *sf, const char *name, nc__st_dtype dt, int ndim,
                         const int64_t *shape, const float *expect, int64_t numel) {
    const nc__st_tensor *t = nc__st_find(sf, name);
    assert_non_null(t);
    assert_string_equal(t->name, name);
    assert_int_equal(t->dtype, dt);
    assert_int_equal(t->ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(t->shape[i], shape[i]);
    assert_int_equal(t->numel, numel);
    assert_int_equal(t->nbytes, (size_t)numel * nc__st_dtype_size(dt));
    float out[16];
    assert_int_equal(nc__st_to_f32(f->ctx, t, out), NC_OK);
    for (int64_t i = 0; i < numel; i++)
        assert_int_equal(bits_of_f32(out[i]), bits_of_f32(expect[i]));
}

static void check_sample(fx *f, const nc__st_file *sf) {
    assert_int_equal(sf->n_tensors, 10);
    const int64_t s23[2] = {2, 3}, s4[1] = {4}, s22[2] = {2, 2}, s3[1] = {3}, s05[2] = {0, 5},
                  s2[1] = {2}, s113[3] = {1, 1, 3};
    check_tensor(f, sf, "conv1.weight", NC__DT_F32, 2, s23, w_f32, 6);
    const float e_f16[4] = {1.0f, -2.5f, 65504.0f, 0x1p-24f};
    check_tensor(f, sf, "half", NC__DT_F16, 1, s4, e_f16, 4);
    const float e_bf16[4] = {1.0f, -2.5f, 2.0f, -0.0f};
    check_tensor(f, sf, "brain", NC__DT_BF16, 2, s22, e_bf16, 4);
    const float e_f64[3] = {0.5f, -1e10f, 3.0f};
    check_tensor(f, sf, "double", NC__DT_F64, 1, s3, e_f64, 3);
    const float e_i64[1] = {-123456789.0f};
    check_tensor(f, sf, "bn1.num_batches_tracked", NC__DT_I64, 0, NULL, e_i64, 1);
    check_tensor(f, sf, "empty", NC__DT_I32, 2, s05, NULL, 0);
    const float e_i16[2] = {-32768.0f, 32767.0f};
    check_tensor(f, sf, "i16", NC__DT_I16, 1, s2, e_i16, 2);
    const float e_i8[3] = {-128.0f, 0.0f, 127.0f};
    check_tensor(f, sf, "i8", NC__DT_I8, 1, s3, e_i8, 3);
    const float e_u8[3] = {0.0f, 128.0f, 255.0f};
    check_tensor(f, sf, "u8", NC__DT_U8, 3, s113, e_u8, 3);
    const float e_bool[2] = {1.0f, 0.0f};
    check_tensor(f, sf, "flags", NC__DT_BOOL, 1, s2, e_bool, 2);
    /* raw bytes survive untouched */
    assert_memory_equal(nc__st_find(sf, "double")->data, w_f64, sizeof w_f64);
    assert_null(nc__st_find(sf, "missing"));
    assert_int_equal(sf->n_meta, 2);
    assert_string_equal(nc__st_meta(sf, "format"), "pt");
    assert_string_equal(nc__st_meta(sf, "arch"), "resnet18 \"quoted\" \xc3\xa9");
    assert_null(nc__st_meta(sf, "absent"));
}

static void test_st_roundtrip_dtypes_shapes(void **state) {
    fx *f = *state;
    nc__st_writer *w = sample_writer(f, perm_a);
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(nc__st_serialize(w, &buf, &size), NC_OK);
    nc__st_writer_destroy(w);
    nc__st_file *sf = NULL;
    assert_int_equal(nc__st_parse(f->ctx, buf, size, &sf), NC_OK);
    nc__free(f->ctx, buf);
    check_sample(f, sf);
    /* tensors come back sorted by name */
    for (int i = 1; i < sf->n_tensors; i++)
        assert_true(strcmp(sf->tensors[i - 1].name, sf->tensors[i].name) < 0);
    nc__st_close(sf);
}

static void test_st_serialize_deterministic(void **state) {
    fx *f = *state;
    nc__st_writer *wa = sample_writer(f, perm_a), *wb = sample_writer(f, perm_b);
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    assert_int_equal(nc__st_serialize(wa, &a, &na), NC_OK);
    assert_int_equal(nc__st_serialize(wb, &b, &nb), NC_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* serialising twice gives the same bytes too */
    void *c = NULL;
    size_t nc = 0;
    assert_int_equal(nc__st_serialize(wa, &c, &nc), NC_OK);
    assert_int_equal(nc, na);
    assert_memory_equal(a, c, na);
    /* header length a multiple of 8, __metadata__ first, padding with spaces */
    const unsigned char *p = a;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    assert_int_equal(n % 8, 0);
    assert_true(memcmp(p + 8, "{\"__metadata__\":{\"arch\":", 24) == 0);
    const char *close = memchr(p + 8, '}', (size_t)n);
    assert_non_null(close);
    size_t last = 8 + (size_t)n - 1;
    while (p[last] == ' ') last--;
    assert_int_equal(p[last], '}');
    nc__free(f->ctx, a);
    nc__free(f->ctx, b);
    nc__free(f->ctx, c);
    nc__st_writer_destroy(wa);
    nc__st_writer_destroy(wb);
}

static void test_st_write_read_file(void **state) {
    fx *f = *state;
    char *path = tu_tmp_path("roundtrip.safetensors");
    nc__st_writer *w = sample_writer(f, perm_b);
    assert_int_equal(nc__st_write(w, path), NC_OK);
    nc__st_writer_destroy(w);
    nc__st_file *sf = NULL;
    assert_int_equal(nc__st_read(f->ctx, path, &sf), NC_OK);
    check_sample(f, sf);
    nc__st_close(sf);
    unlink(path);
    free(path);
}

static void test_st_writer_empty_file(void **state) {
    fx *f = *state;
    nc__st_writer *w = NULL;
    assert_int_equal(nc__st_writer_create(f->ctx, &w), NC_OK);
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(nc__st_serialize(w, &buf, &size), NC_OK);
    assert_int_equal(size, 16); /* "{}" padded to 8 */
    assert_memory_equal((const char *)buf + 8, "{}      ", 8);
    nc__st_file *sf = NULL;
    assert_int_equal(nc__st_parse(f->ctx, buf, size, &sf), NC_OK);
    assert_int_equal(sf->n_tensors, 0);
    assert_int_equal(sf->n_meta, 0);
    nc__st_close(sf);
    nc__free(f->ctx, buf);
    nc__st_writer_destroy(w);
}

static void test_st_writer_rejects_bad_entries(void **state) {
    fx *f = *state;
    nc__st_writer *w = NULL;
    const int64_t s2[1] = {2}, neg[2] = {2, -1};
    const float d[2] = {1, 2};
    assert_int_equal(nc__st_writer_create(f->ctx, &w), NC_OK);
    assert_int_equal(nc__st_writer_add(w, "a", NC__DT_F32, 1, s2, d), NC_OK);
    assert_int_equal(nc__st_writer_add(w, "a", NC__DT_F32, 1, s2, d), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "duplicate tensor name 'a'"));
    assert_int_equal(nc__st_writer_add(w, "__metadata__", NC__DT_F32, 1, s2, d),
                     NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "reserved"));
    assert_int_equal(nc__st_writer_add(w, "b", NC__DT_F32, 2, neg, d), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "shape[1] = -1"));
    assert_int_equal(nc__st_writer_add(w, "c", NC__DT_COUNT, 1, s2, d), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc__st_writer_add(w, "d", NC__DT_F32, 9, s2, d), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc__st_writer_add(w, "e", NC__DT_F32, 1, s2, NULL), NC_ERR_NULL);
    assert_int_equal(nc__st_writer_add(w, "bad\xff", NC__DT_F32, 1, s2, d),
                     NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "UTF-8"));
    assert_int_equal(nc__st_writer_meta(w, "k", "v"), NC_OK);
    assert_int_equal(nc__st_writer_meta(w, "k", "w"), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "duplicate metadata key 'k'"));
    assert_int_equal(nc__st_writer_meta(w, "k2", NULL), NC_ERR_NULL);
    nc__st_writer_destroy(w);
}

/* --------------------------------------------------- independent fixture */

static void test_st_read_torch_fixture(void **state) {
    fx *f = *state;
    char *path = tu_fixture("sample.safetensors");
    nc__st_file *sf = NULL;
    nc_status st = nc__st_read(f->ctx, path, &sf);
    if (st != NC_OK) print_error("%s\n", nc_context_last_error(f->ctx));
    assert_int_equal(st, NC_OK);
    free(path);
    assert_int_equal(sf->n_tensors, 4);
    const int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3};
    const float weight[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.75f};
    check_tensor(f, sf, "weight", NC__DT_F32, 2, s23, weight, 6);
    const float half[4] = {1.0f, -2.5f, 65504.0f, 0x1p-24f};
    check_tensor(f, sf, "half", NC__DT_F16, 1, s4, half, 4);
    const float count[1] = {(float)123456789012LL};
    check_tensor(f, sf, "count", NC__DT_I64, 0, NULL, count, 1);
    const float ids[3] = {-1.0f, 0.0f, 7.0f};
    check_tensor(f, sf, "ids", NC__DT_I64, 1, s3, ids, 3);
    int64_t c;
    memcpy(&c, nc__st_find(sf, "count")->data, 8);
    assert_true(c == 123456789012LL);
    assert_string_equal(nc__st_meta(sf, "format"), "pt");
    assert_string_equal(nc__st_meta(sf, "source"), "make_safetensors_fixture.py");
    nc__st_close(sf);
}

/* --------------------------------------------------- accepted variants */

static void test_st_parse_accepts_padding_and_extra_members(void **state) {
    fx *f = *state;
    nc__st_file *sf = expect_good(
        f,
        "{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2], \"x\": [1.5]}}  \n ",
        2);
    assert_int_equal(sf->n_tensors, 1);
    assert_int_equal(nc__st_find(sf, "a")->numel, 2);
    nc__st_close(sf);
    /* zero-size tensors may sit at any offset, also between others */
    sf = expect_good(f,
                     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                     "\"z\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[1,1]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                     2);
    assert_int_equal(nc__st_find(sf, "z")->numel, 0);
    nc__st_close(sf);
}

/* --------------------------------------------------- malformed files */

static void test_st_parse_rejects_short_file(void **state) {
    fx *f = *state;
    const unsigned char b[5] = {2, 0, 0, 0, 0};
    nc__st_file *sf = NULL;
    assert_int_equal(nc__st_parse(f->ctx, b, sizeof b, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "too short"));
    assert_int_equal(nc__st_parse(f->ctx, b, 0, &sf), NC_ERR_FORMAT);
    assert_null(sf);
}

static void test_st_parse_rejects_header_past_eof(void **state) {
    fx *f = *state;
    size_t size;
    unsigned char *b = make_file("{}", 0, &size);
    b[0] = 3; /* header claims 3 bytes, 2 follow */
    nc__st_file *sf = NULL;
    assert_int_equal(nc__st_parse(f->ctx, b, size, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "header length 3 runs past the end"));
    free(b);
}

static void test_st_parse_rejects_data_short(void **state) {
    expect_bad(*state, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12,
               NC_ERR_FORMAT,
               "tensor 'a': data_offsets [0,16] run past the end of the data section (12");
}

/* A header over the limit in a file that really is that large: NC_ERR_LIMIT, and the
 * file reader refuses it before reading the rest (the file is sparse). */
static void test_st_parse_rejects_huge_header(void **state) {
    fx *f = *state;
    size_t size;
    unsigned char *b = make_file("{}", 0, &size);
    uint64_t n = (uint64_t)NC__ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    nc__st_file *sf = NULL;
    char *path = tu_tmp_path("huge.safetensors");
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, size, fp), size);
    assert_int_equal(ftruncate(fileno(fp), (off_t)(8 + n)), 0);
    fclose(fp);
    assert_int_equal(nc__st_read(f->ctx, path, &sf), NC_ERR_LIMIT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), path));
    assert_non_null(strstr(nc_context_last_error(f->ctx), "exceeds the limit"));
    assert_null(sf);
    /* the same length in a short file: the file is not safetensors at all */
    assert_int_equal(nc__st_parse(f->ctx, b, size, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "not a safetensors file"));
    memset(b, 0xff, 8); /* 2^64-1 */
    assert_int_equal(nc__st_parse(f->ctx, b, size, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "header length 18446744073709551615 runs past the end"));
    unlink(path);
    free(path);
    free(b);
}

/* Issue 15: a text file given as a model was "header length 2338328219631577204 exceeds
 * the limit"; it is not a safetensors file, and the message says so and shows how the
 * file begins. Through the reader and through nc_model_load. */
static void test_st_read_text_file_is_not_safetensors(void **state) {
    fx *f = *state;
    static const char text[] = "# lab notes\nsample 1: chlorella\nsample 2: debris\n";
    char *path = tu_tmp_path("notes.txt");
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    nc__st_file *sf = NULL;
    assert_int_equal(nc__st_read(f->ctx, path, &sf), NC_ERR_FORMAT);
    const char *msg = nc_context_last_error(f->ctx);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "not a safetensors file"));
    assert_non_null(strstr(msg, "it begins with the text \"# lab no\""));
    assert_null(strstr(msg, "exceeds the limit"));
    assert_null(sf);
    nc_model *m = NULL;
    assert_int_equal(nc_model_load(f->ctx, path, &m), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "not a safetensors file"));
    assert_null(m);
    /* from memory, and binary bytes are not shown as text */
    assert_int_equal(nc__st_parse(f->ctx, text, sizeof text - 1, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "<memory>: not a safetensors file"));
    const unsigned char bin[12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    assert_int_equal(nc__st_parse(f->ctx, bin, sizeof bin, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "not a safetensors file"));
    assert_null(strstr(nc_context_last_error(f->ctx), "begins with the text"));
    /* a length that fits but a header that is not JSON: also not a safetensors file */
    size_t size;
    unsigned char *b = make_file("[1, 2]", 0, &size);
    assert_int_equal(nc__st_parse(f->ctx, b, size, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "not a safetensors file: header does not begin with '{'"));
    free(b);
    unlink(path);
    free(path);
}

static void test_st_parse_rejects_not_json(void **state) {
    expect_bad(*state, "{\"a\": nope}", 0, NC_ERR_FORMAT, "not a valid JSON object");
}

static void test_st_parse_rejects_not_object(void **state) {
    expect_bad(*state, "[1, 2]", 0, NC_ERR_FORMAT, "does not begin with '{'");
    expect_bad(*state, " {}", 0, NC_ERR_FORMAT, "does not begin with '{'");
    expect_bad(*state, "", 0, NC_ERR_FORMAT, "does not begin with '{'");
    expect_bad(*state, "{} {}", 0, NC_ERR_FORMAT, "other than space padding");
    expect_bad(*state, "{\"a\":5}", 0, NC_ERR_FORMAT, "tensor 'a': entry is not an object");
}

static void test_st_parse_rejects_bad_text(void **state) {
    expect_bad(*state, "{\"a\xc3\":{}}", 0, NC_ERR_FORMAT, "not valid UTF-8");
    expect_bad(*state, "{\"\xed\xa0\x80\":{}}", 0, NC_ERR_FORMAT,
               "not valid UTF-8"); /* surrogate */
    expect_bad(*state, "{\"a\x01\":{}}", 0, NC_ERR_FORMAT, "control byte 0x01");
    expect_bad(*state, "{\"a\\u0000b\":{}}", 0, NC_ERR_FORMAT, "\\u0000");
}

static void test_st_parse_rejects_unknown_dtype(void **state) {
    expect_bad(*state, "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               NC_ERR_FORMAT, "tensor 'a': unknown dtype 'Q7'");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
               NC_ERR_UNSUPPORTED, "tensor 'a': dtype U16 is not supported");
    expect_bad(*state, "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               NC_ERR_FORMAT, "\"dtype\" is not a string");
    expect_bad(*state, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, NC_ERR_FORMAT,
               "\"dtype\" is missing");
}

static void test_st_parse_rejects_size_mismatch(void **state) {
    expect_bad(*state, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12,
               NC_ERR_FORMAT,
               "tensor 'w': data_offsets [0,12] span 12 bytes but F32 shape [2,2] needs 16");
    expect_bad(*state, "{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 0,
               NC_ERR_FORMAT, "needs 4");
}

static void test_st_parse_rejects_overlap(void **state) {
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, NC_ERR_FORMAT, "tensor 'b': data_offsets [4,12] overlap tensor 'a' [0,8]");
    /* the same range twice */
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               8, NC_ERR_FORMAT, "overlap");
}

static void test_st_parse_rejects_hole(void **state) {
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               12, NC_ERR_FORMAT,
               "tensor 'b': data_offsets [8,12] leave a hole of 4 bytes at data offset 4");
    expect_bad(*state, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
               NC_ERR_FORMAT, "hole of 4 bytes at data offset 0");
}

static void test_st_parse_rejects_trailing_bytes(void **state) {
    expect_bad(*state, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
               NC_ERR_FORMAT, "4 trailing bytes");
    expect_bad(*state, "{}", 1, NC_ERR_FORMAT, "1 trailing bytes");
}

static void test_st_parse_rejects_duplicate_keys(void **state) {
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
               2, NC_ERR_FORMAT, "duplicate key 'a'");
    expect_bad(*state, "{\"__metadata__\":{},\"__metadata__\":{}}", 0, NC_ERR_FORMAT,
               "duplicate key '__metadata__'");
    expect_bad(*state, "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, NC_ERR_FORMAT,
               "__metadata__: duplicate key 'k'");
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
               1, NC_ERR_FORMAT, "tensor 'a': duplicate key 'dtype'");
}

static void test_st_parse_rejects_negative_shape(void **state) {
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0,
               NC_ERR_FORMAT, "tensor 'a': shape[1] is -1, not a non-negative integer");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0,
               NC_ERR_FORMAT, "shape[0] is 1.5");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}", 2,
               NC_ERR_FORMAT, "shape[0] is a string");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", 2,
               NC_ERR_FORMAT, "\"shape\" is not an array");
}

static void test_st_parse_rejects_shape_overflow(void **state) {
    /* 2^53 * 2^53 elements: the product must not wrap around to a small number */
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"U8\",\"shape\":[9007199254740992,9007199254740992,4],"
               "\"data_offsets\":[0,4]}}",
               4, NC_ERR_FORMAT, "shape [9007199254740992,9007199254740992,4] is too large");
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
               0, NC_ERR_FORMAT, "shape[0] is 4.6");
    expect_bad(*state,
               "{\"a\":{\"dtype\":\"F64\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,8]}}",
               8, NC_ERR_UNSUPPORTED, "shape has 9 dimensions");
}

static void test_st_parse_rejects_metadata_non_string(void **state) {
    expect_bad(*state, "{\"__metadata__\":{\"epochs\":10}}", 0, NC_ERR_FORMAT,
               "__metadata__ key 'epochs' has a non-string value");
    expect_bad(*state, "{\"__metadata__\":[\"a\"]}", 0, NC_ERR_FORMAT,
               "__metadata__ is not an object");
}

static void test_st_parse_rejects_offsets_not_integers(void **state) {
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0.5,4]}}", 4,
               NC_ERR_FORMAT, "tensor 'a': data_offsets must be two non-negative integers");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", 4,
               NC_ERR_FORMAT, "got -4, 0");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 4,
               NC_ERR_FORMAT, "data_offsets has 3 entries, not two");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":\"0-4\"}}", 4,
               NC_ERR_FORMAT, "data_offsets is a string, not an array");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4]}}", 4, NC_ERR_FORMAT,
               "\"data_offsets\" is missing");
    expect_bad(*state, "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
               NC_ERR_FORMAT, "data_offsets [4,0] begin after end");
}

static void test_st_read_missing_file_is_io_error(void **state) {
    fx *f = *state;
    nc__st_file *sf = (nc__st_file *)1;
    assert_int_equal(nc__st_read(f->ctx, "/nonexistent/dir/x.safetensors", &sf), NC_ERR_IO);
    assert_null(sf);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "/nonexistent/dir/x.safetensors"));
    assert_non_null(strstr(nc_context_last_error(f->ctx), strerror(ENOENT)));
    assert_int_equal(nc__st_read(f->ctx, "/tmp", &sf), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "not a regular file"));
    /* an empty file: a format error naming the path */
    char *path = tu_tmp_path("empty.safetensors");
    FILE *fp = fopen(path, "wb");
    fclose(fp);
    assert_int_equal(nc__st_read(f->ctx, path, &sf), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), path));
    unlink(path);
    free(path);
}

/* --------------------------------------------------- conversions */

/* Half-precision value computed from the definition, independent of the library. */
static double half_reference(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp(m, -24);
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_st_f16_known_values(void **state) {
    fx *f = *state;
    const uint16_t h[9] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x03ff};
    float out[9];
    convert(f, NC__DT_F16, h, 9, out);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -2.5f);
    assert_true(out[2] == 65504.0f);
    assert_true(out[3] == 0x1p-24f); /* smallest subnormal */
    assert_true(isinf(out[4]) && out[4] > 0);
    assert_true(isinf(out[5]) && out[5] < 0);
    assert_true(isnan(out[6]));
    assert_true(out[7] == 0.0f && signbit(out[7]));
    assert_true(out[8] == 1023 * 0x1p-24f); /* largest subnormal */
    /* every one of the 65536 patterns against the definition */
    uint16_t *all = malloc(65536 * sizeof *all);
    float *v = malloc(65536 * sizeof *v);
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    convert(f, NC__DT_F16, all, 65536, v);
    for (uint32_t i = 0; i < 65536; i++) {
        double r = half_reference((uint16_t)i);
        if (isnan(r)) assert_true(isnan(v[i]));
        else if ((double)v[i] != r || !signbit(v[i]) != !signbit(r))
            fail_msg("f16 0x%04x: got %a want %a", i, (double)v[i], r);
    }
    free(all);
    free(v);
}

static void test_st_bf16_known_values(void **state) {
    fx *f = *state;
    /* 1, -2.5, 65280 (65504 is not a bf16 value), 2^-133 (smallest subnormal),
     * largest finite, inf, -inf, nan */
    const uint16_t h[8] = {0x3f80, 0xc020, 0x477f, 0x0001, 0x7f7f, 0x7f80, 0xff80, 0x7fc1};
    float out[8];
    convert(f, NC__DT_BF16, h, 8, out);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -2.5f);
    assert_true(out[2] == 65280.0f);
    assert_true(out[3] == 0x1p-133f);
    assert_true(out[4] == 0x1.fep127f);
    assert_true(isinf(out[5]) && out[5] > 0);
    assert_true(isinf(out[6]) && out[6] < 0);
    assert_true(isnan(out[7]));
    assert_int_equal(bits_of_f32(out[7]), 0x7fc10000u); /* payload kept */
}

static void test_st_to_f32_wide_types(void **state) {
    fx *f = *state;
    const double d[6] = {1e300, -1e300, NAN, 0x1.fffffefffffffp127, 0x1p-149, 1.0 / 3.0};
    float out[6];
    convert(f, NC__DT_F64, d, 6, out);
    assert_true(isinf(out[0]) && out[0] > 0);
    assert_true(isinf(out[1]) && out[1] < 0);
    assert_true(isnan(out[2]));
    assert_true(out[3] == FLT_MAX); /* just below the rounding boundary */
    assert_true(out[4] == 0x1p-149f);
    assert_true(out[5] == (float)(1.0 / 3.0));
    const int64_t i64[3] = {INT64_MIN, INT64_MAX, -5};
    convert(f, NC__DT_I64, i64, 3, out);
    assert_true(out[0] == -0x1p63f && out[1] == 0x1p63f && out[2] == -5.0f);
    const int32_t i32[2] = {INT32_MIN, 16777217};
    convert(f, NC__DT_I32, i32, 2, out);
    assert_true(out[0] == -0x1p31f && out[1] == 16777216.0f);
    const uint8_t b[3] = {0, 1, 7}; /* any non-zero byte is true */
    convert(f, NC__DT_BOOL, b, 3, out);
    assert_true(out[0] == 0.0f && out[1] == 1.0f && out[2] == 1.0f);
}

static void test_st_to_f32_unaligned_data(void **state) {
    fx *f = *state;
    unsigned char buf[1 + 3 * 8];
    const double d[3] = {1.25, -2.0, 8.5};
    memcpy(buf + 1, d, sizeof d);
    float out[3];
    convert(f, NC__DT_F64, buf + 1, 3, out);
    assert_true(out[0] == 1.25f && out[1] == -2.0f && out[2] == 8.5f);
    const float x[3] = {3.5f, -1.0f, 0.25f};
    memcpy(buf + 1, x, sizeof x);
    convert(f, NC__DT_F32, buf + 1, 3, out);
    assert_memory_equal(out, x, sizeof x);
    /* a real file whose header length is odd puts every tensor at an odd address */
    nc__st_file *sf =
        expect_good(f, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    const nc__st_tensor *t = nc__st_find(sf, "a");
    assert_true(((uintptr_t)t->data & 3) != 0);
    assert_int_equal(nc__st_to_f32(f->ctx, t, out), NC_OK);
    nc__st_close(sf);
}

/* --------------------------------------------------- robustness */

/* Parses b[0..size); on success converts every tensor. Never crashes or leaks. */
static void parse_any(fx *f, const unsigned char *b, size_t size, int *ok) {
    nc__st_file *sf = NULL;
    nc_status st = nc__st_parse(f->ctx, b, size, &sf);
    if (st == NC_OK) {
        (*ok)++;
        for (int i = 0; i < sf->n_tensors; i++) {
            float *out = malloc((size_t)sf->tensors[i].numel * sizeof(float) + 1);
            assert_int_equal(nc__st_to_f32(f->ctx, &sf->tensors[i], out), NC_OK);
            free(out);
        }
        nc__st_close(sf);
    } else {
        assert_null(sf);
        assert_true(nc_context_last_error(f->ctx)[0] != 0);
    }
    assert_int_equal(f->cnt.live, f->base);
}

static void test_st_parse_fuzz_truncate_and_flip(void **state) {
    fx *f = *state;
    nc__st_writer *w = sample_writer(f, perm_a);
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(nc__st_serialize(w, &buf, &size), NC_OK);
    nc__st_writer_destroy(w);
    unsigned char *b = malloc(size);
    memcpy(b, buf, size);
    nc__free(f->ctx, buf);

    int ok = 0;
    for (size_t len = 0; len < size; len++) parse_any(f, b, len, &ok);
    assert_int_equal(ok, 0); /* every proper prefix is rejected */
    parse_any(f, b, size, &ok);
    assert_int_equal(ok, 1);

    const unsigned char masks[] = {0x01, 0x02, 0x08, 0x20, 0x80, 0xff};
    const unsigned char sets[] = {'"', '{', '}', '[', ']', ',', ':', '-', '0', '9', ' ', '\\', 0};
    for (size_t pos = 0; pos < size; pos++) {
        unsigned char orig = b[pos];
        for (size_t k = 0; k < sizeof masks; k++) {
            b[pos] = orig ^ masks[k];
            parse_any(f, b, size, &ok);
        }
        for (size_t k = 0; k < sizeof sets; k++) {
            b[pos] = sets[k];
            parse_any(f, b, size, &ok);
        }
        b[pos] = orig;
    }
    free(b);
}

static void test_st_parse_out_of_memory_every_allocation(void **state) {
    fx *f = *state;
    nc__st_writer *w = sample_writer(f, perm_a);
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(nc__st_serialize(w, &buf, &size), NC_OK);
    nc__st_writer_destroy(w);
    unsigned char *b = malloc(size);
    memcpy(b, buf, size);
    nc__free(f->ctx, buf);

    int succeeded = 0;
    for (long k = 0; k < 1000 && !succeeded; k++) {
        f->cnt.calls = 0;
        f->cnt.fail_after = k;
        nc__st_file *sf = NULL;
        nc_status st = nc__st_parse(f->ctx, b, size, &sf);
        f->cnt.fail_after = -1;
        if (st == NC_OK) {
            succeeded = 1;
            nc__st_close(sf);
        } else {
            assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
            assert_null(sf);
        }
        assert_int_equal(f->cnt.live, f->base);
    }
    assert_true(succeeded);
    free(b);
}

static void test_st_writer_out_of_memory_every_allocation(void **state) {
    fx *f = *state;
    int succeeded = 0;
    for (long k = 0; k < 1000 && !succeeded; k++) {
        f->cnt.calls = 0;
        f->cnt.fail_after = k;
        nc__st_writer *w = NULL;
        nc_status st = nc__st_writer_create(f->ctx, &w);
        const int64_t s2[1] = {2};
        const float d[2] = {1, 2};
        if (st == NC_OK) st = nc__st_writer_add(w, "b", NC__DT_F32, 1, s2, d);
        if (st == NC_OK) st = nc__st_writer_add(w, "a", NC__DT_F32, 1, s2, d);
        if (st == NC_OK) st = nc__st_writer_meta(w, "k", "v");
        void *buf = NULL;
        size_t size = 0;
        if (st == NC_OK) st = nc__st_serialize(w, &buf, &size);
        f->cnt.fail_after = -1;
        if (st == NC_OK) {
            succeeded = 1;
            nc__free(f->ctx, buf);
        } else {
            assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
        }
        nc__st_writer_destroy(w);
        assert_int_equal(f->cnt.live, f->base);
    }
    assert_true(succeeded);
}

/* --------------------------------------------------- atomic writes */

static char *make_dir(void) {
    char tmpl[] = "/tmp/nc_test_atomic_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = join(dir, e->d_name);
        if (rmdir(p) != 0) unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void assert_file_text(const char *path, const char *text) {
    size_t n = 0;
    char *got = tu_read_file(path, &n);
    assert_non_null(got);
    assert_int_equal(n, strlen(text));
    assert_string_equal(got, text);
    free(got);
}

static void test_atomic_write_replaces_existing(void **state) {
    fx *f = *state;
    char *dir = make_dir(), *path = join(dir, "model.safetensors");
    write_text(path, "old contents, longer than the new ones");
    chmod(path, 0640);
    assert_int_equal(nc__write_file_atomic(f->ctx, path, "new", 3), NC_OK);
    assert_file_text(path, "new");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640); /* the replaced file's mode is kept */
    assert_int_equal(count_entries(dir), 1);   /* no temporary file left */
    /* a new file gets the usual mode, not mkstemp's 0600 */
    char *fresh = join(dir, "fresh.bin");
    assert_int_equal(nc__write_file_atomic(f->ctx, fresh, "", 0), NC_OK);
    assert_file_text(fresh, "");
    mode_t mask = umask(022);
    umask(mask);
    assert_int_equal(stat(fresh, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0666 & ~mask);
    free(fresh);
    remove_dir(dir);
    free(path);
    free(dir);
}

static void test_atomic_write_missing_dir_fails(void **state) {
    fx *f = *state;
    char *dir = make_dir(), *path = join(dir, "no/such/dir/x.bin");
    assert_int_equal(nc__write_file_atomic(f->ctx, path, "abc", 3), NC_ERR_IO);
    const char *msg = nc_context_last_error(f->ctx);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, strerror(ENOENT)));
    assert_int_equal(count_entries(dir), 0);
    remove_dir(dir);
    free(path);
    free(dir);
}

static void test_atomic_write_onto_directory_fails(void **state) {
    fx *f = *state;
    char *dir = make_dir(), *path = join(dir, "target");
    assert_int_equal(mkdir(path, 0755), 0);
    char *inner = join(path, "keep");
    write_text(inner, "kept");
    assert_int_equal(nc__write_file_atomic(f->ctx, path, "abc", 3), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(f->ctx), path));
    assert_non_null(strstr(nc_context_last_error(f->ctx), "rename"));
    assert_file_text(inner, "kept");
    assert_int_equal(count_entries(dir), 1); /* the temporary file was removed */
    remove_dir(path);
    remove_dir(dir);
    free(inner);
    free(path);
    free(dir);
}

static void test_atomic_write_failure_keeps_old_file(void **state) {
    fx *f = *state;
    char *dir = make_dir(), *path = join(dir, "model.safetensors");
    write_text(path, "previous");
    /* a file size limit makes write() fail half way (EFBIG), also when run as root */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    size_t big = 64 * 1024;
    char *data = malloc(big);
    memset(data, 'x', big);
    nc_status st = nc__write_file_atomic(f->ctx, path, data, big);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    assert_int_equal(st, NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(f->ctx), path));
    assert_non_null(strstr(nc_context_last_error(f->ctx), strerror(EFBIG)));
    assert_file_text(path, "previous");
    assert_int_equal(count_entries(dir), 1);
    free(data);
    remove_dir(dir);
    free(path);
    free(dir);
}

static void test_st_write_into_missing_dir_fails(void **state) {
    fx *f = *state;
    nc__st_writer *w = sample_writer(f, perm_a);
    assert_int_equal(nc__st_write(w, "/nonexistent_nc_dir/m.safetensors"), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "/nonexistent_nc_dir/m.safetensors"));
    nc__st_writer_destroy(w);
}

/* ------------------------------------------------------------ main */

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_st_roundtrip_dtypes_shapes),
        T(test_st_serialize_deterministic),
        T(test_st_write_read_file),
        T(test_st_writer_empty_file),
        T(test_st_writer_rejects_bad_entries),
        T(test_st_read_torch_fixture),
        T(test_st_parse_accepts_padding_and_extra_members),
        T(test_st_parse_rejects_short_file),
        T(test_st_parse_rejects_header_past_eof),
        T(test_st_parse_rejects_data_short),
        T(test_st_parse_rejects_huge_header),
        T(test_st_read_text_file_is_not_safetensors),
        T(test_st_parse_rejects_not_json),
        T(test_st_parse_rejects_not_object),
        T(test_st_parse_rejects_bad_text),
        T(test_st_parse_rejects_unknown_dtype),
        T(test_st_parse_rejects_size_mismatch),
        T(test_st_parse_rejects_overlap),
        T(test_st_parse_rejects_hole),
        T(test_st_parse_rejects_trailing_bytes),
        T(test_st_parse_rejects_duplicate_keys),
        T(test_st_parse_rejects_negative_shape),
        T(test_st_parse_rejects_shape_overflow),
        T(test_st_parse_rejects_metadata_non_string),
        T(test_st_parse_rejects_offsets_not_integers),
        T(test_st_read_missing_file_is_io_error),
        T(test_st_f16_known_values),
        T(test_st_bf16_known_values),
        T(test_st_to_f32_wide_types),
        T(test_st_to_f32_unaligned_data),
        T(test_st_parse_fuzz_truncate_and_flip),
        T(test_st_parse_out_of_memory_every_allocation),
        T(test_st_writer_out_of_memory_every_allocation),
        T(test_atomic_write_replaces_existing),
        T(test_atomic_write_missing_dir_fails),
        T(test_atomic_write_onto_directory_fails),
        T(test_atomic_write_failure_keeps_old_file),
        T(test_st_write_into_missing_dir_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
