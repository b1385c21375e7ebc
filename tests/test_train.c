/* test_train.c — the trainer: SGD (momentum, dampening, nesterov, weight decay)
 * against torch.optim.SGD's formulas on a model whose gradient is known in closed
 * form, overfitting a tiny batch to 100%, the non-finite guard, bad labels, options
 * and reproducibility. */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Deterministic noise in [-0.5, 0.5). */
static float test_noise(uint64_t stream, uint64_t i) {
    uint64_t z = stream * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull + 1;
    z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
    return (float)((z >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

/* logits = W flatten(x) + b: a linear softmax classifier on h x w images (the
 * adaptive pool to the image's own size is an identity that fixes the size). */
static nc_model *linear_model(nc_context *ctx, int c, int h, int w, int classes) {
    nc_builder *b;
    nc_value x, y;
    assert_int_equal(nc_builder_create(ctx, c, &b, &x), NC_OK);
    nc_builder_adaptive_avg_pool2d(b, x, h, w, &y);
    nc_builder_flatten(b, y, &y);
    nc_builder_linear(b, "fc", y, classes, 1, &y);
    nc_model *m;
    assert_int_equal(nc_builder_finish(b, y, 1, 5, &m), NC_OK);
    nc_builder_destroy(b);
    return m;
}

/* Expected SGD trajectory computed here in double from the closed-form gradient
 * dL/dW = (softmax(z) - onehot)^T x / n, following torch.optim.SGD step by step. */
static void sgd_reference(double *w, double *bias, double *bw, double *bb, int steps, const float *x,
                          const int32_t *y, int n, int f, int k, const nc_trainer_options *o) {
    for (int s = 0; s < steps; s++) {
        double gw[64] = {0}, gb[8] = {0};
        for (int i = 0; i < n; i++) {
            double z[8], mx = -1e300, sum = 0;
            for (int j = 0; j < k; j++) {
                z[j] = bias[j];
                for (int q = 0; q < f; q++) z[j] += w[j * f + q] * x[i * f + q];
                if (z[j] > mx) mx = z[j];
            }
            for (int j = 0; j < k; j++) sum += exp(z[j] - mx);
            for (int j = 0; j < k; j++) {
                double d = (exp(z[j] - mx) / sum - (j == y[i])) / n;
                gb[j] += d;
                for (int q = 0; q < f; q++) gw[j * f + q] += d * x[i * f + q];
            }
        }
        double *ps[2] = {w, bias}, *gs[2] = {gw, gb}, *bufs[2] = {bw, bb};
        int cnt[2] = {k * f, k};
        for (int t = 0; t < 2; t++)
            for (int e = 0; e < cnt[t]; e++) {
                double g = gs[t][e] + o->weight_decay * ps[t][e];
                if (o->momentum != 0) {
                    bufs[t][e] = s == 0 ? g : o->momentum * bufs[t][e] + (1 - o->dampening) * g;
                    g = o->nesterov ? g + o->momentum * bufs[t][e] : bufs[t][e];
                }
                ps[t][e] -= o->lr * g;
            }
    }
}

static void check_sgd(float momentum, float dampening, float wd, int nesterov) {
    enum { N = 5, C = 2, H = 2, W = 2, F = 8, K = 3, STEPS = 4 };
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = linear_model(ctx, C, H, W, K);
    float x[N * F], wf[K * F], bf[K];
    int32_t y[N] = {0, 1, 2, 1, 0};
    tu_fill_uniform(x, N * F, -1, 1, 21);
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", wf, K * F), NC_OK);
    assert_int_equal(nc_model_get_tensor(m, "fc.bias", bf, K), NC_OK);
    double w[K * F], b[K], bw[K * F] = {0}, bb[K] = {0};
    for (int i = 0; i < K * F; i++) w[i] = wf[i];
    for (int i = 0; i < K; i++) b[i] = bf[i];
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.lr = 0.3f;
    o.momentum = momentum;
    o.dampening = dampening;
    o.weight_decay = wd;
    o.nesterov = nesterov;
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_OK);
    for (int s = 0; s < STEPS; s++) assert_int_equal(nc_trainer_step(t, x, y, N, C, H, W, NULL), NC_OK);
    sgd_reference(w, b, bw, bb, STEPS, x, y, N, F, K, &o);
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", wf, K * F), NC_OK);
    assert_int_equal(nc_model_get_tensor(m, "fc.bias", bf, K), NC_OK);
    for (int i = 0; i < K * F; i++) assert_true(fabs(wf[i] - w[i]) < 1e-5);
    for (int i = 0; i < K; i++) assert_true(fabs(bf[i] - b[i]) < 1e-5);
    assert_int_equal(nc_trainer_num_steps(t), STEPS);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_sgd_plain(void **s) { (void)s; check_sgd(0.0f, 0.0f, 0.0f, 0); }
static void test_sgd_momentum_weight_decay(void **s) { (void)s; check_sgd(0.9f, 0.0f, 5e-2f, 0); }
static void test_sgd_dampening(void **s) { (void)s; check_sgd(0.8f, 0.3f, 0.0f, 0); }
static void test_sgd_nesterov(void **s) { (void)s; check_sgd(0.9f, 0.0f, 1e-2f, 1); }

/* Overfits a tiny batch under a precision policy: the loss falls tenfold and every
 * sample is classified right. */
static void overfit_tiny_batch(nc_precision precision) {
    enum { N = 8, C = 1, H = 16, W = 16, K = 4 };
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF;
    co.precision = precision;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&co, &ctx), NC_OK);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "resnext";
    mo.num_classes = K;
    mo.in_channels = C;
    mo.cardinality = 4;
    mo.base_width = 4;
    mo.blocks[0] = mo.blocks[1] = mo.blocks[2] = mo.blocks[3] = 1;
    mo.small_input = 1;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    float x[N * C * H * W];
    tu_fill_uniform(x, N * C * H * W, -1, 1, 99);
    int32_t y[N] = {0, 1, 2, 3, 3, 2, 1, 0};
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.lr = 0.05f;
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, &to, &t), NC_OK);
    nc_step_stats st = {0};
    float first = 0;
    for (int i = 0; i < 60; i++) {
        assert_int_equal(nc_trainer_step(t, x, y, N, C, H, W, &st), NC_OK);
        if (i == 0) first = st.loss;
    }
    print_message("  loss %.4f -> %.4f, train correct %d/%d\n", first, st.loss, st.correct, st.total);
    assert_true(st.loss < 0.1f * first);
    float logits[N * K];
    assert_int_equal(nc_model_forward(m, x, N, C, H, W, logits), NC_OK);
    int hits = 0;
    for (int i = 0; i < N; i++) {
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (logits[i * K + k] > logits[i * K + arg]) arg = k;
        hits += arg == y[i];
    }
    assert_int_equal(hits, N);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* CheXNet's setup: densenet121 (memory-efficient training), 14 findings as sigmoid
 * outputs with BCE, on the oneDNN backend when built (ref otherwise); the loss falls
 * on a fixed batch. */
static void test_trainer_densenet121_chexnet_bce(void **s) {
    (void)s;
    enum { N = 4, C = 1, H = 32, K = 14, STEPS = 8 };
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "densenet121";
    mo.num_classes = K;
    mo.in_channels = C;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    float x[N * C * H * H];
    tu_fill_uniform(x, N * C * H * H, -1, 1, 14);
    int32_t y[N * K];
    for (int i = 0; i < N * K; i++) y[i] = (i * 5 + i / K) % 3 == 0;
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.loss = NC_LOSS_BCE_WITH_LOGITS;
    to.optimizer = NC_OPTIMIZER_ADAM;
    to.lr = 1e-3f;
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, &to, &t), NC_OK);
    nc_step_stats st = {0};
    float first = 0;
    for (int i = 0; i < STEPS; i++) {
        assert_int_equal(nc_trainer_step(t, x, y, N, C, H, H, &st), NC_OK);
        if (i == 0) first = st.loss;
    }
    print_message("  BCE loss %.4f -> %.4f, outputs right %d/%d\n", first, st.loss, st.correct, st.total);
    assert_int_equal(st.total, N * K);
    assert_true(st.loss < 0.7f * first);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_trainer_overfits_tiny_batch(void **s) {
    (void)s;
    overfit_tiny_batch(NC_PRECISION_FP32);
}

/* The bf16 policy (bf16 activations, f32 masters) trains as f32 does. */
static void test_trainer_overfits_tiny_batch_bf16(void **s) {
    (void)s;
    overfit_tiny_batch(NC_PRECISION_BF16);
}

static void test_trainer_nonfinite_loss_skips_update(void **s) {
    (void)s;
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = linear_model(ctx, 1, 2, 2, 3);
    float x[2 * 4] = {1, 2, 3, 4, 5, 6, 7, NAN}, before[12], after[12];
    int32_t y[2] = {0, 1};
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", before, 12), NC_OK);
    nc_trainer *t;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.max_nonfinite = 1; /* the first non-finite loss is already an error */
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_OK);
    nc_step_stats st;
    assert_int_equal(nc_trainer_step(t, x, y, 2, 1, 2, 2, &st), NC_ERR_NUMERIC);
    assert_int_equal(st.skipped, 1);
    assert_non_null(strstr(nc_context_last_error(ctx), "skipped"));
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", after, 12), NC_OK);
    assert_memory_equal(before, after, sizeof before);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_trainer_bad_label_changes_nothing(void **s) {
    (void)s;
    nc_context *ctx = tu_ref_context(1);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.num_classes = 3;
    mo.in_channels = 1;
    mo.width = 4;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    float x[4 * 64], rv[4];
    tu_fill_uniform(x, 4 * 64, 0, 1, 1);
    int32_t y[4] = {0, 1, 3, 2};
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    assert_int_equal(nc_trainer_step(t, x, y, 4, 1, 8, 8, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "label 3 of sample 2"));
    assert_int_equal(nc_model_get_tensor(m, "bn1.running_var", rv, 4), NC_OK);
    for (int i = 0; i < 4; i++) assert_true(rv[i] == 1.0f);
    y[2] = -1;
    assert_int_equal(nc_trainer_step(t, x, y, 4, 1, 8, 8, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_trainer_step(t, x, y, 4, 2, 8, 8, NULL), NC_ERR_SHAPE);
    assert_int_equal(nc_trainer_step(t, NULL, y, 4, 1, 8, 8, NULL), NC_ERR_NULL);
    assert_int_equal(nc_trainer_step(t, x, y, 0, 1, 8, 8, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_trainer_step(NULL, x, y, 4, 1, 8, 8, NULL), NC_ERR_NULL);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_trainer_options_rejected(void **s) {
    (void)s;
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = linear_model(ctx, 1, 2, 2, 2);
    nc_trainer *t = (nc_trainer *)&t;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.lr = -1.0f;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    assert_null(t);
    assert_non_null(strstr(nc_context_last_error(ctx), "lr"));
    nc_trainer_options_init(&o);
    o.momentum = 0.0f;
    o.nesterov = 1;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    nc_trainer_options_init(&o);
    o.struct_size = 3;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_trainer_create(NULL, NULL, &t), NC_ERR_NULL);
    assert_int_equal(nc_trainer_create(m, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_trainer_set_lr(NULL, 0.1f), NC_ERR_NULL);
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    assert_int_equal(nc_trainer_set_lr(t, NAN), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_trainer_set_lr(t, 0.5f), NC_OK);
    nc_trainer_destroy(t);
    nc_trainer_destroy(NULL);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* Same seed -> identical weights; dropout makes different trainer seeds differ. */
static void run_dropout_training(uint64_t seed, int threads, float *out, int64_t count) {
    nc_context *ctx = tu_ref_context(threads);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.num_classes = 3;
    mo.in_channels = 2;
    mo.width = 4;
    mo.head_dropout = 0.5f;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.seed = seed;
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_OK);
    float x[6 * 2 * 100];
    int32_t y[6] = {0, 1, 2, 0, 1, 2};
    tu_fill_uniform(x, sizeof x / sizeof *x, -1, 1, 5);
    for (int i = 0; i < 3; i++) assert_int_equal(nc_trainer_step(t, x, y, 6, 2, 10, 10, NULL), NC_OK);
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", out, count), NC_OK);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_trainer_reproducible_by_seed(void **s) {
    (void)s;
    enum { COUNT = 3 * 16 };
    float a[COUNT], b[COUNT], c[COUNT], d[COUNT];
    run_dropout_training(1, 1, a, COUNT);
    run_dropout_training(1, 1, b, COUNT);
    run_dropout_training(2, 1, c, COUNT);
    run_dropout_training(1, 2, d, COUNT);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
    assert_true(tu_norm_err(d, a, COUNT) < 1e-4); /* thread count changes only rounding */
}

/* The data pipeline feeding training end to end: a folder of RGB PNGs (class 0 has a
 * bright left half, class 1 a bright right half, plus noise) through
 * nc_dataset_open_folder and a 2-worker nc_loader into nc_trainer_step. */
static void test_trainer_learns_from_png_folder_through_loader(void **s) {
    (void)s;
    enum { PER_CLASS = 24, H = 12, W = 12 };
    nc_context *ctx = tu_ref_context(0);
    char *root = tu_tmp_path("png_folder");
    char path[512];
    assert_int_equal(mkdir(root, 0700), 0);
    const char *classes[2] = {"left", "right"};
    nc_image *img;
    assert_int_equal(nc_image_create(ctx, 3, H, W, &img), NC_OK);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", root, classes[k]);
        assert_int_equal(mkdir(path, 0700), 0);
        for (int i = 0; i < PER_CLASS; i++) {
            float *px = nc_image_data(img);
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        float noise = 0.3f * test_noise((uint64_t)(k * 1000 + i), (uint64_t)((c * H + y) * W + x));
                        int bright = k == 0 ? x < W / 2 : x >= W / 2;
                        px[(c * H + y) * W + x] = (bright ? 0.6f : 0.1f) + noise;
                    }
            snprintf(path, sizeof path, "%s/%s/%03d.png", root, classes[k], i);
            assert_int_equal(nc_png_write(ctx, path, img, 8), NC_OK);
        }
    }
    nc_image_destroy(img);

    nc_dataset *ds;
    assert_int_equal(nc_dataset_open_folder(ctx, root, NULL, &ds), NC_OK);
    assert_int_equal(nc_dataset_size(ds), 2 * PER_CLASS);
    assert_string_equal(nc_dataset_class_name(ds, 0, 1), "right");
    nc_transform *t;
    float mean[3] = {0.35f, 0.35f, 0.35f}, sd[3] = {0.3f, 0.3f, 0.3f};
    assert_int_equal(nc_transform_create(ctx, &t), NC_OK);
    assert_int_equal(nc_transform_add_normalize(t, mean, sd, 3), NC_OK);
    nc_loader_options lo;
    nc_loader_options_init(&lo);
    lo.batch_size = 8;
    lo.workers = 2;
    lo.seed = 3;
    nc_loader *l;
    assert_int_equal(nc_loader_create(ds, t, &lo, &l), NC_OK);

    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.num_classes = 2;
    mo.in_channels = 3;
    mo.width = 8;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.lr = 0.05f;
    nc_trainer *tr;
    assert_int_equal(nc_trainer_create(m, &to, &tr), NC_OK);
    double first_epoch = 0, last_epoch = 0;
    int last_correct = 0;
    for (int epoch = 0; epoch < 8; epoch++) {
        assert_int_equal(nc_loader_start_epoch(l, epoch), NC_OK);
        double sum = 0;
        int correct = 0;
        for (;;) {
            nc_batch b;
            assert_int_equal(nc_loader_next(l, &b), NC_OK);
            if (b.n == 0) break;
            assert_int_equal(b.c, 3);
            nc_step_stats st;
            assert_int_equal(nc_trainer_step(tr, b.x, b.labels, b.n, b.c, b.h, b.w, &st), NC_OK);
            sum += st.loss * b.n;
            correct += st.correct;
        }
        if (epoch == 0) first_epoch = sum;
        last_epoch = sum;
        last_correct = correct;
    }
    print_message("  epoch loss %.3f -> %.3f, last epoch %d/%d correct\n", first_epoch / (2 * PER_CLASS),
                  last_epoch / (2 * PER_CLASS), last_correct, 2 * PER_CLASS);
    assert_true(last_epoch < 0.5 * first_epoch);
    assert_true(last_correct >= 2 * PER_CLASS - 2);
    nc_trainer_destroy(tr);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < PER_CLASS; i++) {
            snprintf(path, sizeof path, "%s/%s/%03d.png", root, classes[k], i);
            unlink(path);
        }
        snprintf(path, sizeof path, "%s/%s", root, classes[k]);
        rmdir(path);
    }
    rmdir(root);
    free(root);
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_momentum_weight_decay),
        cmocka_unit_test(test_sgd_dampening),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_trainer_overfits_tiny_batch),
        cmocka_unit_test(test_trainer_overfits_tiny_batch_bf16),
        cmocka_unit_test(test_trainer_nonfinite_loss_skips_update),
        cmocka_unit_test(test_trainer_bad_label_changes_nothing),
        cmocka_unit_test(test_trainer_options_rejected),
        cmocka_unit_test(test_trainer_reproducible_by_seed),
        cmocka_unit_test(test_trainer_learns_from_png_folder_through_loader),
        cmocka_unit_test(test_trainer_densenet121_chexnet_bce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
