/* test_model_io.c — models as files: save -> load round trips bit-exact for
 * built-in and builder-made models (tensors, metadata, logits), torchvision-style
 * weight loading with its missing / unexpected / mismatched report, and every
 * failure (missing, truncated, corrupt, foreign file) as a status + message. */
#include "testutil.h"

#include "neurc.h"
#include "core/context.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static nc_context *ctx_new(void) {
    nc_context *ctx;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    return ctx;
}

static nc_model *make_arch(nc_context *ctx, const char *arch, int classes, int in_c, int heads) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = arch;
    o.num_classes = classes;
    o.in_channels = in_c;
    o.num_heads = heads;
    o.small_input = 1;
    o.seed = 17;
    if (strcmp(arch, "resnext") == 0) {
        o.cardinality = 4;
        o.base_width = 2;
        o.blocks[0] = o.blocks[1] = o.blocks[2] = o.blocks[3] = 1;
    }
    if (strcmp(arch, "simple_cnn") == 0) o.width = 8;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    return m;
}

/* Every tensor of a and b is bit-identical. */
static void assert_same_tensors(nc_model *a, nc_model *b) {
    assert_int_equal(nc_model_num_tensors(a), nc_model_num_tensors(b));
    for (int i = 0; i < nc_model_num_tensors(a); i++) {
        nc_tensor_info ia;
        assert_int_equal(nc_model_tensor_info(a, i, &ia), NC_OK);
        float *va = malloc((size_t)ia.numel * 4), *vb = malloc((size_t)ia.numel * 4);
        assert_int_equal(nc_model_get_tensor(a, ia.name, va, ia.numel), NC_OK);
        assert_int_equal(nc_model_get_tensor(b, ia.name, vb, ia.numel), NC_OK);
        assert_memory_equal(va, vb, (size_t)ia.numel * 4);
        free(va);
        free(vb);
    }
}

static void roundtrip(nc_model *m, int c) {
    nc_context *ctx = nc_model_context(m);
    char *path = tu_tmp_path("roundtrip.safetensors");
    /* train one step so running stats and num_batches_tracked are not defaults */
    enum { N = 4, H = 12, W = 12 };
    float *x = malloc(sizeof(float) * N * (size_t)c * H * W);
    tu_fill_uniform(x, (size_t)N * c * H * W, -1, 1, 8);
    int32_t y[N * 2] = {0, 1, 1, 0, 0, 0, 1, 1};
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    assert_int_equal(nc_trainer_step(t, x, y, N, c, H, W, NULL), NC_OK);
    nc_trainer_destroy(t);
    assert_int_equal(nc_model_save(m, path), NC_OK);
    nc_model *r;
    assert_int_equal(nc_model_load(ctx, path, &r), NC_OK);
    assert_int_equal(nc_model_num_outputs(r), nc_model_num_outputs(m));
    assert_int_equal(nc_model_num_heads(r), nc_model_num_heads(m));
    assert_int_equal(nc_model_in_channels(r), c);
    assert_true(nc_model_num_params(r) == nc_model_num_params(m));
    assert_same_tensors(m, r);
    int outs = nc_model_num_outputs(m);
    float *la = malloc(sizeof(float) * N * (size_t)outs), *lb = malloc(sizeof(float) * N * (size_t)outs);
    assert_int_equal(nc_model_forward(m, x, N, c, H, W, la), NC_OK);
    assert_int_equal(nc_model_forward(r, x, N, c, H, W, lb), NC_OK);
    assert_memory_equal(la, lb, sizeof(float) * N * (size_t)outs);
    nc_model_destroy(r);
    unlink(path);
    free(path);
    free(x);
    free(la);
    free(lb);
}

static void test_roundtrip_resnet18_bit_exact(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    nc_model *m = make_arch(ctx, "resnet18", 2, 3, 1);
    roundtrip(m, 3);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_roundtrip_resnext_multihead_bit_exact(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    nc_model *m = make_arch(ctx, "resnext", 2, 4, 2);
    roundtrip(m, 4);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_roundtrip_builder_model_bit_exact(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    nc_builder *b;
    nc_value x, y, z;
    assert_int_equal(nc_builder_create(ctx, 2, &b, &x), NC_OK);
    nc_builder_conv2d(b, "stem", x, 6, 3, 1, 1, 1, 1, 0, &y);
    nc_builder_batchnorm(b, "stem_bn", y, 1e-3f, 0.2f, &y);
    nc_builder_relu(b, y, &y);
    nc_builder_conv2d(b, "grouped", y, 6, 3, 1, 2, 2, 3, 1, &z);
    nc_builder_add(b, y, z, &y);
    nc_builder_avg_pool2d(b, y, 2, 2, 0, &y);
    nc_builder_max_pool2d(b, y, 3, 1, 1, &y);
    nc_builder_adaptive_avg_pool2d(b, y, 3, 3, &y);
    nc_builder_flatten(b, y, &y);
    nc_builder_dropout(b, y, 0.25f, &y);
    nc_builder_linear(b, "head", y, 4, 1, &y);
    nc_model *m;
    assert_int_equal(nc_builder_finish(b, y, 2, 3, &m), NC_OK);
    nc_builder_destroy(b);
    const char *names[] = {"a", "b"};
    assert_int_equal(nc_model_set_class_names(m, names, 2), NC_OK);
    float mean[2] = {0.25f, -1.5f}, sd[2] = {2.0f, 0.125f}, m2[2], s2[2];
    assert_int_equal(nc_model_set_normalization(m, mean, sd), NC_OK);
    roundtrip(m, 2);
    /* metadata survives */
    char *path = tu_tmp_path("meta.safetensors");
    assert_int_equal(nc_model_save(m, path), NC_OK);
    nc_model *r;
    assert_int_equal(nc_model_load(ctx, path, &r), NC_OK);
    assert_string_equal(nc_model_class_name(r, 1), "b");
    assert_null(nc_model_class_name(r, 2));
    assert_int_equal(nc_model_get_normalization(r, m2, s2), NC_OK);
    assert_memory_equal(m2, mean, sizeof mean);
    assert_memory_equal(s2, sd, sizeof sd);
    nc_model_destroy(r);
    unlink(path);
    free(path);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_load_missing_file(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    nc_model *m = (nc_model *)&m;
    assert_int_equal(nc_model_load(ctx, "/nonexistent/dir/model.safetensors", &m), NC_ERR_IO);
    assert_null(m);
    assert_non_null(strstr(nc_context_last_error(ctx), "/nonexistent/dir/model.safetensors"));
    assert_int_equal(nc_model_load(NULL, "x", &m), NC_ERR_NULL);
    assert_int_equal(nc_model_load(ctx, NULL, &m), NC_ERR_NULL);
    nc_context_destroy(ctx);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_load_truncated_and_corrupt(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    nc_model *m = make_arch(ctx, "simple_cnn", 3, 1, 1);
    char *path = tu_tmp_path("good.safetensors"), *bad = tu_tmp_path("bad.safetensors");
    assert_int_equal(nc_model_save(m, path), NC_OK);
    size_t size;
    char *bytes = tu_read_file(path, &size);
    assert_non_null(bytes);
    size_t cuts[] = {0, 4, 8, 20, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(bad, bytes, cuts[i]);
        nc_model *r = NULL;
        nc_status st = nc_model_load(ctx, bad, &r);
        assert_true(st == NC_ERR_FORMAT || st == NC_ERR_LIMIT);
        assert_null(r);
        assert_non_null(strstr(nc_context_last_error(ctx), bad));
        assert_int_equal(nc_model_load_weights(m, bad, 0, NULL), st);
    }
    /* corrupt JSON header */
    char *copy = malloc(size);
    memcpy(copy, bytes, size);
    copy[9] = '#';
    write_bytes(bad, copy, size);
    nc_model *r = NULL;
    assert_int_equal(nc_model_load(ctx, bad, &r), NC_ERR_FORMAT);
    /* the original file is still fine */
    assert_int_equal(nc_model_load(ctx, path, &r), NC_OK);
    nc_model_destroy(r);
    unlink(path);
    unlink(bad);
    free(copy);
    free(bytes);
    free(path);
    free(bad);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* A plain state_dict (no neurc metadata), with one tensor missing, one extra and
 * one of the wrong shape, as torchvision checkpoints adapted to new heads are. */
static char *write_state_dict(nc_context *ctx, nc_model *m, int drop, int extra, int wrong_shape) {
    char *path = tu_tmp_path("state_dict.safetensors");
    nc__st_writer *w;
    assert_int_equal(nc__st_writer_create(ctx, &w), NC_OK);
    int n = nc_model_num_tensors(m);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    int64_t one = 7;
    float fake[6] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < n; i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        if (drop && strcmp(ti.name, "fc.bias") == 0) continue;
        if (strstr(ti.name, "num_batches_tracked")) {
            assert_int_equal(nc__st_writer_add(w, ti.name, NC__DT_I64, 0, NULL, &one), NC_OK);
            continue;
        }
        bufs[i] = malloc((size_t)ti.numel * 4);
        for (int64_t k = 0; k < ti.numel; k++) bufs[i][k] = 0.5f + (float)(k % 7);
        if (wrong_shape && strcmp(ti.name, "fc.weight") == 0) {
            int64_t shape[2] = {1, 6};
            assert_int_equal(nc__st_writer_add(w, ti.name, NC__DT_F32, 2, shape, fake), NC_OK);
            continue;
        }
        assert_int_equal(nc__st_writer_add(w, ti.name, NC__DT_F32, ti.ndim, ti.shape, bufs[i]), NC_OK);
    }
    int64_t shape1[1] = {6};
    if (extra) assert_int_equal(nc__st_writer_add(w, "aux.weight", NC__DT_F32, 1, shape1, fake), NC_OK);
    assert_int_equal(nc__st_write(w, path), NC_OK);
    nc__st_writer_destroy(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    return path;
}

static void test_load_weights_strict_and_report(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    nc_model *m = make_arch(ctx, "resnet18", 5, 1, 1);
    int64_t nconv = 64 * 1 * 3 * 3;
    float *before = malloc((size_t)nconv * 4), *after = malloc((size_t)nconv * 4);
    assert_int_equal(nc_model_get_tensor(m, "conv1.weight", before, nconv), NC_OK);

    char *path = write_state_dict(ctx, m, 1, 1, 1);
    nc_load_report rep;
    memset(&rep, 0, sizeof rep);
    assert_int_equal(nc_model_load_weights(m, path, 1, &rep), NC_ERR_SHAPE);
    assert_int_equal(rep.missing, 1);
    assert_int_equal(rep.unexpected, 1);
    assert_int_equal(rep.mismatched, 1);
    assert_non_null(strstr(rep.text, "fc.bias"));
    assert_non_null(strstr(rep.text, "aux.weight"));
    assert_non_null(strstr(rep.text, "fc.weight"));
    assert_non_null(strstr(nc_context_last_error(ctx), "1 missing"));
    assert_int_equal(nc_model_get_tensor(m, "conv1.weight", after, nconv), NC_OK);
    assert_memory_equal(before, after, (size_t)nconv * 4); /* strict failure changes nothing */

    assert_int_equal(nc_model_load_weights(m, path, 0, &rep), NC_OK);
    assert_int_equal(rep.loaded, nc_model_num_tensors(m) - 2);
    assert_int_equal(nc_model_get_tensor(m, "conv1.weight", after, nconv), NC_OK);
    assert_true(after[0] == 0.5f && after[8] == 1.5f);
    float nb;
    assert_int_equal(nc_model_get_tensor(m, "bn1.num_batches_tracked", &nb, 1), NC_OK);
    assert_true(nb == 7.0f);
    unlink(path);
    free(path);

    path = write_state_dict(ctx, m, 0, 0, 0);
    assert_int_equal(nc_model_load_weights(m, path, 1, NULL), NC_OK);
    /* a plain state_dict is not a neurc model file */
    nc_model *r = NULL;
    assert_int_equal(nc_model_load(ctx, path, &r), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(ctx), "nc_model_load_weights"));
    unlink(path);
    free(path);
    free(before);
    free(after);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* Copies the model file at `src` to `dst`, replacing metadata `key` by `value`. */
static void rewrite_meta(nc_context *ctx, const char *src, const char *dst, const char *key, const char *value) {
    nc__st_file *f;
    assert_int_equal(nc__st_read(ctx, src, &f), NC_OK);
    nc__st_writer *w;
    assert_int_equal(nc__st_writer_create(ctx, &w), NC_OK);
    for (int i = 0; i < f->n_tensors; i++) {
        const nc__st_tensor *t = &f->tensors[i];
        assert_int_equal(nc__st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data), NC_OK);
    }
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) != 0)
            assert_int_equal(nc__st_writer_meta(w, f->meta_keys[i], f->meta_values[i]), NC_OK);
    assert_int_equal(nc__st_writer_meta(w, key, value), NC_OK);
    assert_int_equal(nc__st_write(w, dst), NC_OK);
    nc__st_writer_destroy(w);
    nc__st_close(f);
}

/* Hostile or damaged metadata is an error status, never a crash, a wrap-around or a
 * giant allocation. */
static void test_load_bad_metadata(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    char *good = tu_tmp_path("arch.safetensors"), *custom = tu_tmp_path("custom.safetensors"),
         *bad = tu_tmp_path("badmeta.safetensors");
    nc_model *m = make_arch(ctx, "simple_cnn", 3, 1, 1);
    assert_int_equal(nc_model_save(m, good), NC_OK);
    nc_model_destroy(m);
    nc_builder *b;
    nc_value x, y;
    assert_int_equal(nc_builder_create(ctx, 1, &b, &x), NC_OK);
    nc_builder_conv2d(b, "c", x, 2, 3, 1, 1, 1, 1, 1, &y);
    nc_builder_batchnorm(b, "bn", y, 1e-5f, 0.1f, &y);
    nc_builder_adaptive_avg_pool2d(b, y, 1, 1, &y);
    nc_builder_flatten(b, y, &y);
    assert_int_equal(nc_builder_finish(b, y, 1, 0, &m), NC_OK);
    nc_builder_destroy(b);
    assert_int_equal(nc_model_save(m, custom), NC_OK);
    nc_model_destroy(m);

    const struct { const char *file, *key, *value; } cases[] = {
        {"arch", "neurc.options", "{\"num_classes\": 1e300}"},
        {"arch", "neurc.options", "{\"num_classes\": 2.5}"},
        {"arch", "neurc.options", "{\"width\": -4}"},
        {"arch", "neurc.options", "{\"blocks\": [1e9, 1, 1, 1]}"},
        {"arch", "neurc.options", "{\"head_dropout\": 1e300}"},
        {"arch", "neurc.options", "[1, 2]"},
        {"arch", "neurc.options", "not json"},
        {"arch", "neurc.arch", "resnet1000"},
        {"arch", "neurc.format_version", "99"},
        {"arch", "neurc.class_names", "[\"a\"]"},
        {"arch", "neurc.norm_mean", "[1e300]"},
        {"arch", "neurc.options", "{\"head\": \"conv\"}"},
        {"custom", "neurc.num_heads", "abc"},
        {"custom", "neurc.num_heads", "99999999999999999999"},
        {"custom", "neurc.graph", "{\"nodes\": 3}"},
        {"custom", "neurc.graph", "{\"in_channels\": 1, \"output\": 1, \"nodes\": [{\"op\": \"relu\", \"name\": \"r\", \"inputs\": [5]}]}"},
        {"custom", "neurc.graph", "{\"in_channels\": 1, \"output\": 1, \"nodes\": [{\"op\": \"warp\", \"name\": \"r\", \"inputs\": [0]}]}"},
        {"custom", "neurc.graph", "{\"in_channels\": 1, \"output\": 9, \"nodes\": [{\"op\": \"relu\", \"name\": \"r\", \"inputs\": [0]}]}"},
        {"custom", "neurc.graph", "{\"in_channels\": 1e99, \"output\": 1, \"nodes\": []}"},
        {"arch", "user.bad key", "x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rewrite_meta(ctx, strcmp(cases[i].file, "arch") == 0 ? good : custom, bad, cases[i].key, cases[i].value);
        nc_model *r = (nc_model *)&r;
        nc_status st = nc_model_load(ctx, bad, &r);
        print_message("  %-20s %-40.40s -> %s: %s\n", cases[i].key, cases[i].value, nc_status_str(st),
                      nc_context_last_error(ctx));
        assert_true(st == NC_ERR_FORMAT || st == NC_ERR_INVALID_ARGUMENT || st == NC_ERR_NOT_FOUND);
        assert_null(r);
        assert_non_null(strstr(nc_context_last_error(ctx), bad));
    }
    unlink(good);
    unlink(custom);
    unlink(bad);
    free(good);
    free(custom);
    free(bad);
    nc_context_destroy(ctx);
}

/* A model file of a few kilobytes whose metadata names a huge architecture (here a
 * simple_cnn of width 4096 with 20000 classes: 1.3 G values) is refused from the
 * tensors it lacks before anything of the model's size is allocated. Before, the
 * whole model was allocated and initialised first: 12 GB and ten minutes for a
 * 200-byte file (found by fuzz_model_load; tests/fuzz/regress/model_load/). */
static void test_load_huge_architecture_from_small_file(void **s) {
    (void)s;
    tu_counting cnt;
    nc_context *ctx = tu_counting_context(&cnt);
    assert_non_null(ctx);
    char *good = tu_tmp_path("small.safetensors"), *bad = tu_tmp_path("huge_meta.safetensors");
    nc_model *m = make_arch(ctx, "simple_cnn", 3, 1, 1);
    assert_int_equal(nc_model_save(m, good), NC_OK);
    nc_model_destroy(m);
    rewrite_meta(ctx, good, bad, "neurc.options", "{\"width\": 4096, \"num_classes\": 20000, \"in_channels\": 3}");
    cnt.largest = 0;
    m = (nc_model *)&m;
    assert_int_equal(nc_model_load(ctx, bad, &m), NC_ERR_SHAPE);
    assert_null(m);
    const char *msg = nc_context_last_error(ctx);
    assert_non_null(strstr(msg, bad));
    assert_non_null(strstr(msg, "mismatched conv1.weight"));
    assert_true(cnt.largest < ((size_t)1 << 20));
    unlink(good);
    unlink(bad);
    free(good);
    free(bad);
    nc_context_destroy(ctx);
}

static void test_info_set_get_save_load(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    char *path = tu_tmp_path("info.safetensors"), *ckpt = tu_tmp_path("info_ckpt.safetensors");
    nc_model *m = make_arch(ctx, "simple_cnn", 3, 1, 1);
    assert_null(nc_model_info(m, "image_size"));
    assert_int_equal(nc_model_set_info(m, "image_size", "28"), NC_OK);
    assert_int_equal(nc_model_set_info(m, "threshold.value", "0.25"), NC_OK);
    assert_int_equal(nc_model_set_info(m, "a-first_key", "comma, \"quote\" and ünïcode"), NC_OK);
    assert_int_equal(nc_model_set_info(m, "gone", "soon"), NC_OK);
    assert_int_equal(nc_model_set_info(m, "threshold.value", "0.5"), NC_OK); /* replaces */
    assert_int_equal(nc_model_set_info(m, "gone", NULL), NC_OK);             /* removes */
    assert_int_equal(nc_model_set_info(m, "never-set", NULL), NC_OK);
    assert_null(nc_model_info(m, "gone"));
    assert_string_equal(nc_model_info(m, "threshold.value"), "0.5");
    /* bad keys and NULLs */
    const char *bad[] = {"", "with space", "slash/key", "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(nc_model_set_info(m, bad[i], "v"), NC_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(nc_context_last_error(ctx), "nc_model_set_info"));
    }
    assert_int_equal(nc_model_set_info(m, NULL, "v"), NC_ERR_NULL);
    assert_int_equal(nc_model_set_info(NULL, "k", "v"), NC_ERR_NULL);
    assert_null(nc_model_info(NULL, "k"));
    assert_null(nc_model_info(m, NULL));
    /* model file and checkpoint both carry the keys, and only them */
    assert_int_equal(nc_model_save(m, path), NC_OK);
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    assert_int_equal(nc_trainer_save_checkpoint(t, ckpt, NULL), NC_OK);
    nc_trainer_destroy(t);
    const char *files[] = {path, ckpt};
    for (int f = 0; f < 2; f++) {
        nc_model *r;
        assert_int_equal(nc_model_load(ctx, files[f], &r), NC_OK);
        assert_string_equal(nc_model_info(r, "image_size"), "28");
        assert_string_equal(nc_model_info(r, "threshold.value"), "0.5");
        assert_string_equal(nc_model_info(r, "a-first_key"), "comma, \"quote\" and ünïcode");
        assert_null(nc_model_info(r, "gone"));
        assert_null(nc_model_info(r, "format"));
        nc_model_destroy(r);
    }
    /* stored under the "user." prefix */
    nc__st_file *sf;
    assert_int_equal(nc__st_read(ctx, path, &sf), NC_OK);
    assert_string_equal(nc__st_meta(sf, "user.image_size"), "28");
    nc__st_close(sf);
    nc_model_destroy(m);
    unlink(path);
    unlink(ckpt);
    free(path);
    free(ckpt);
    nc_context_destroy(ctx);
}

static void test_save_errors(void **s) {
    (void)s;
    nc_context *ctx = ctx_new();
    nc_model *m = make_arch(ctx, "simple_cnn", 2, 1, 1);
    assert_int_equal(nc_model_save(m, "/nonexistent/dir/m.safetensors"), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), "/nonexistent/dir"));
    assert_int_equal(nc_model_save(NULL, "x"), NC_ERR_NULL);
    assert_int_equal(nc_model_save(m, NULL), NC_ERR_NULL);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_resnet18_bit_exact),
        cmocka_unit_test(test_roundtrip_resnext_multihead_bit_exact),
        cmocka_unit_test(test_roundtrip_builder_model_bit_exact),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_load_truncated_and_corrupt),
        cmocka_unit_test(test_load_weights_strict_and_report),
        cmocka_unit_test(test_load_bad_metadata),
        cmocka_unit_test(test_load_huge_architecture_from_small_file),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_info_set_get_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
