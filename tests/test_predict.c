/* test_predict.c — nc_model_predict_loader over a small PNG class folder written to a
 * temporary directory: logits equal nc_model_forward's on the same batches (and, up
 * to rounding, on single images), labels in loader order, the capacity check, decode
 * failures naming the file (also through a second context), channel mismatches and
 * NULL / bad arguments. */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { N_GOOD = 11, IMG = 12, CLASSES = 2 };

static char *g_root; /* /tmp/nc_test_<pid>_predict */

static char *path_of(const char *rel) { return tu_path_join(g_root, rel); }

/* good/{a,b}: 6 + 5 gray 12x12 images; bad/: the same plus b/zz.png, truncated. */
static int group_setup(void **state) {
    (void)state;
    g_root = tu_tmp_path("predict");
    nc_context *ctx;
    if (mkdir(g_root, 0755) != 0 || nc_context_create(NULL, &ctx) != NC_OK) return -1;
    int rc = 0;
    char rel[128];
    const char *sets[2] = {"good", "bad"};
    for (int s = 0; s < 2; s++) {
        rc |= tu_mkdir_in(g_root, sets[s]);
        for (int c = 0; c < CLASSES; c++) {
            snprintf(rel, sizeof rel, "%s/%c", sets[s], 'a' + c);
            rc |= tu_mkdir_in(g_root, rel);
        }
        for (int i = 0; i < N_GOOD; i++) {
            snprintf(rel, sizeof rel, "%s/%c/%02d.png", sets[s], i < 6 ? 'a' : 'b', i);
            rc |= tu_write_gray_png(ctx, g_root, rel, IMG, i);
        }
    }
    char *bad = path_of("bad/b/zz.png");
    FILE *f = fopen(bad, "wb");
    if (!f) rc = -1;
    else {
        static const unsigned char head[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H'};
        fwrite(head, 1, sizeof head, f);
        fclose(f);
    }
    free(bad);
    nc_context_destroy(ctx);
    return rc;
}

static int group_teardown(void **state) {
    (void)state;
    int rc = tu_remove_tree(g_root);
    free(g_root);
    return rc;
}

static nc_context *fx_ctx(void **state) { return ((tu_fx *)*state)->ctx; }

static nc_dataset *open_set(nc_context *ctx, const char *rel) {
    nc_dataset *ds = NULL;
    char *p = path_of(rel);
    assert_int_equal(nc_dataset_open_folder(ctx, p, NULL, &ds), NC_OK);
    free(p);
    return ds;
}

static nc_loader *make_loader(nc_dataset *ds, int batch, int shuffle, int workers) {
    nc_loader_options lo;
    nc_loader_options_init(&lo);
    lo.batch_size = batch;
    lo.shuffle = shuffle;
    lo.workers = workers;
    lo.seed = 7;
    nc_loader *l = NULL;
    assert_int_equal(nc_loader_create(ds, NULL, &lo, &l), NC_OK);
    return l;
}

static nc_model *make_model(nc_context *ctx, int in_channels) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.width = 4;
    mo.num_classes = CLASSES;
    mo.in_channels = in_channels;
    mo.seed = 3;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    return m;
}

/* ------------------------------------------------------------------- cases */

/* Shuffled epoch 3 with workers: the same rows as a hand loop of nc_model_forward over
 * a second loader's epoch 3, bit for bit, and the labels of each row's sample. */
static void test_predict_loader_equals_forward_per_batch(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_set(ctx, "good");
    nc_loader *l = make_loader(ds, 4, 1, 2), *l2 = make_loader(ds, 4, 1, 0);
    nc_model *m = make_model(ctx, 1);
    const int K = nc_model_num_outputs(m);
    float *got = tu_zeros((size_t)N_GOOD * K), *want = tu_zeros((size_t)N_GOOD * K);
    int32_t labels[N_GOOD], want_labels[N_GOOD];
    int64_t count = -1;
    assert_int_equal(nc_model_predict_loader(m, l, 3, got, labels, N_GOOD, &count), NC_OK);
    assert_int_equal(count, N_GOOD);

    assert_int_equal(nc_loader_start_epoch(l2, 3), NC_OK);
    int64_t rows = 0, order_changed = 0;
    for (;;) {
        nc_batch b;
        assert_int_equal(nc_loader_next(l2, &b), NC_OK);
        if (b.n == 0) break;
        assert_int_equal(nc_model_forward(m, b.x, b.n, b.c, b.h, b.w, want + rows * K), NC_OK);
        for (int i = 0; i < b.n; i++) {
            int32_t y;
            assert_int_equal(nc_dataset_labels(ds, b.indices[i], &y), NC_OK);
            want_labels[rows + i] = y;
            if (b.indices[i] != rows + i) order_changed++;
        }
        rows += b.n;
    }
    assert_int_equal(rows, N_GOOD);
    assert_true(order_changed > 0); /* the epoch really was shuffled */
    assert_memory_equal(got, want, (size_t)N_GOOD * K * sizeof *got);
    assert_memory_equal(labels, want_labels, sizeof labels);
    free(got);
    free(want);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_loader_destroy(l2);
    nc_dataset_destroy(ds);
}

/* In order (no shuffle), each row equals the forward pass of that image alone (up to
 * the rounding of a different batch size), and labels may be NULL. */
static void test_predict_loader_rows_follow_dataset_order(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_set(ctx, "good");
    nc_loader *l = make_loader(ds, 3, 0, 0);
    nc_model *m = make_model(ctx, 1);
    const int K = nc_model_num_outputs(m);
    float *got = tu_zeros((size_t)N_GOOD * K), one[CLASSES];
    int64_t count = 0;
    assert_int_equal(nc_model_predict_loader(m, l, 0, got, NULL, N_GOOD + 5, &count), NC_OK);
    assert_int_equal(count, N_GOOD);
    for (int64_t i = 0; i < N_GOOD; i++) {
        nc_image *img;
        assert_int_equal(nc_dataset_get(ds, i, &img), NC_OK);
        assert_int_equal(nc_model_forward(m, nc_image_data(img), 1, 1, IMG, IMG, one), NC_OK);
        nc_image_destroy(img);
        assert_true(tu_norm_err(got + i * K, one, (size_t)K) < 1e-5);
    }
    free(got);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

/* A too-small buffer: NC_ERR_INVALID_ARGUMENT naming the size needed, the whole
 * batches that fit are written and nothing beyond the capacity. */
static void test_predict_loader_capacity_too_small(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_set(ctx, "good");
    nc_loader *l = make_loader(ds, 4, 0, 0);
    nc_model *m = make_model(ctx, 1);
    const int K = nc_model_num_outputs(m);
    const int cap = 6;
    float *buf = tu_zeros((size_t)N_GOOD * K);
    int32_t labels[N_GOOD];
    for (int i = 0; i < N_GOOD * K; i++) buf[i] = -12345.0f;
    for (int i = 0; i < N_GOOD; i++) labels[i] = -7;
    int64_t count = -1;
    assert_int_equal(nc_model_predict_loader(m, l, 0, buf, labels, cap, &count), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "11 needed"));
    assert_int_equal(count, 4); /* the first batch of 4; the second would pass 6 */
    for (int i = 0; i < 4 * K; i++) assert_true(buf[i] != -12345.0f);
    for (int i = 4 * K; i < N_GOOD * K; i++) assert_true(buf[i] == -12345.0f);
    for (int i = 4; i < N_GOOD; i++) assert_int_equal(labels[i], -7);
    /* capacity 0: the same error, nothing written */
    assert_int_equal(nc_model_predict_loader(m, l, 0, buf, labels, 0, &count), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(count, 0);
    free(buf);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

/* A truncated PNG: the loader's status comes back with the file named, both with and
 * without workers, and with the loader on another context the model's context says
 * where the message is. */
static void test_predict_loader_decode_error_names_file(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_set(ctx, "bad");
    nc_model *m = make_model(ctx, 1);
    const int K = nc_model_num_outputs(m);
    float *buf = tu_zeros((size_t)(N_GOOD + 1) * K);
    int64_t count = -1;
    for (int workers = 0; workers <= 2; workers += 2) {
        nc_loader *l = make_loader(ds, 4, 0, workers);
        nc_status st = nc_model_predict_loader(m, l, 0, buf, NULL, N_GOOD + 1, &count);
        assert_int_equal(st, NC_ERR_FORMAT);
        const char *msg = nc_context_last_error(ctx);
        assert_non_null(strstr(msg, "zz.png"));
        assert_non_null(strstr(msg, "nc_model_predict_loader: batch 3"));
        assert_int_equal(count, 8);
        nc_loader_destroy(l);
    }

    nc_context *other = tu_ref_context(1);
    nc_dataset *ds2 = NULL;
    char *p = path_of("bad");
    assert_int_equal(nc_dataset_open_folder(other, p, NULL, &ds2), NC_OK);
    free(p);
    nc_loader *l2 = make_loader(ds2, 4, 0, 0);
    assert_int_equal(nc_model_predict_loader(m, l2, 0, buf, NULL, N_GOOD + 1, &count), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(ctx), "context of the loader's dataset"));
    assert_non_null(strstr(nc_context_last_error(other), "zz.png"));
    nc_loader_destroy(l2);
    nc_dataset_destroy(ds2);
    nc_context_destroy(other);
    free(buf);
    nc_model_destroy(m);
    nc_dataset_destroy(ds);
}

/* Gray batches into an RGB model: NC_ERR_SHAPE with both channel counts. */
static void test_predict_loader_channel_mismatch(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_set(ctx, "good");
    nc_loader *l = make_loader(ds, 4, 0, 0);
    nc_model *m = make_model(ctx, 3);
    float *buf = tu_zeros((size_t)N_GOOD * CLASSES);
    int64_t count = -1;
    assert_int_equal(nc_model_predict_loader(m, l, 0, buf, NULL, N_GOOD, &count), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(ctx), "1 channels, the model expects 3"));
    assert_int_equal(count, 0);
    free(buf);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

static void test_predict_loader_null_and_bad_arguments(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_set(ctx, "good");
    nc_loader *l = make_loader(ds, 4, 0, 0);
    nc_model *m = make_model(ctx, 1);
    float buf[N_GOOD * CLASSES];
    int64_t count = 99;
    assert_int_equal(nc_model_predict_loader(NULL, l, 0, buf, NULL, N_GOOD, &count), NC_ERR_NULL);
    assert_int_equal(count, 99); /* no model: nothing touched */
    assert_int_equal(nc_model_predict_loader(m, NULL, 0, buf, NULL, N_GOOD, &count), NC_ERR_NULL);
    assert_int_equal(count, 0);
    assert_non_null(strstr(nc_context_last_error(ctx), "loader is NULL"));
    assert_int_equal(nc_model_predict_loader(m, l, 0, NULL, NULL, N_GOOD, &count), NC_ERR_NULL);
    assert_int_equal(nc_model_predict_loader(m, l, 0, buf, NULL, N_GOOD, NULL), NC_ERR_NULL);
    assert_int_equal(nc_model_predict_loader(m, l, 0, buf, NULL, -1, &count), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_model_predict_loader(m, l, -2, buf, NULL, N_GOOD, &count), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "epoch -2"));
    /* still usable afterwards */
    assert_int_equal(nc_model_predict_loader(m, l, 0, buf, NULL, N_GOOD, &count), NC_OK);
    assert_int_equal(count, N_GOOD);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_predict_loader_equals_forward_per_batch, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_predict_loader_rows_follow_dataset_order, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_predict_loader_capacity_too_small, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_predict_loader_decode_error_names_file, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_predict_loader_channel_mismatch, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_predict_loader_null_and_bad_arguments, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
