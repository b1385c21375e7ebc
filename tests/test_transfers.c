/* test_transfers.c — the transfer budget of a training step (backend.h, TRANSFER
 * BUDGET): an instrumented copy of the ref backend counts every host<->backend copy
 * while a small CNN trains with each loss, optimizer, clipping and accumulation
 * option, and while it predicts. A step must make exactly one value_upload (the
 * batch), one write (the labels) and one read (the step's record). */
#include "testutil.h"

#include "neurc.h"
#include "core/context.h"

#include <stdlib.h>
#include <string.h>

/* Counters live in a test-global: the backend table has no user pointer of its own. */
typedef struct counts {
    int value_upload, value_download, upload, download, write, read;
} counts;
static counts g_n;

static const nc__backend *ref(void) { return nc__backend_ref(); }

static nc_status c_value_upload(void *s, const nc__value_desc *v, void *dst, const float *src) {
    g_n.value_upload++;
    return ref()->value_upload(s, v, dst, src);
}
static nc_status c_value_download(void *s, const nc__value_desc *v, float *dst, const void *src) {
    g_n.value_download++;
    return ref()->value_download(s, v, dst, src);
}
static nc_status c_upload(void *s, void *dst, const float *src, const nc__shape *shape) {
    g_n.upload++;
    return ref()->upload(s, dst, src, shape);
}
static nc_status c_download(void *s, float *dst, const void *src, const nc__shape *shape) {
    g_n.download++;
    return ref()->download(s, dst, src, shape);
}
static nc_status c_write(void *s, void *dst, const void *src, size_t bytes) {
    g_n.write++;
    return ref()->write(s, dst, src, bytes);
}
static nc_status c_read(void *s, void *dst, const void *src, size_t bytes) {
    g_n.read++;
    return ref()->read(s, dst, src, bytes);
}

static nc__backend g_counting;

/* A ref context whose backend table counts transfers. */
static nc_context *counting_context(void) {
    nc_context *ctx = tu_ref_context(1);
    g_counting = *ref();
    g_counting.value_upload = c_value_upload;
    g_counting.value_download = c_value_download;
    g_counting.upload = c_upload;
    g_counting.download = c_download;
    g_counting.write = c_write;
    g_counting.read = c_read;
    ctx->backend = &g_counting;
    return ctx;
}

/* conv-bn-relu-pool, two heads of 3 classes, dropout before the heads. */
static nc_model *small_model(nc_context *ctx) {
    nc_builder *b;
    nc_value x, y;
    assert_int_equal(nc_builder_create(ctx, 2, &b, &x), NC_OK);
    assert_int_equal(nc_builder_conv2d(b, "conv1", x, 4, 3, 1, 1, 1, 1, 0, &y), NC_OK);
    assert_int_equal(nc_builder_batchnorm(b, "bn1", y, 1e-5f, 0.1f, &y), NC_OK);
    assert_int_equal(nc_builder_relu(b, y, &y), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(b, y, 1, 1, &y), NC_OK);
    assert_int_equal(nc_builder_flatten(b, y, &y), NC_OK);
    assert_int_equal(nc_builder_dropout(b, y, 0.25f, &y), NC_OK);
    nc_value h0, h1, heads[2];
    assert_int_equal(nc_builder_linear(b, "head0", y, 3, 1, &h0), NC_OK);
    assert_int_equal(nc_builder_linear(b, "head1", y, 3, 1, &h1), NC_OK);
    heads[0] = h0;
    heads[1] = h1;
    assert_int_equal(nc_builder_concat(b, heads, 2, &y), NC_OK);
    nc_model *m;
    assert_int_equal(nc_builder_finish(b, y, 2, 7, &m), NC_OK);
    nc_builder_destroy(b);
    return m;
}

enum { N = 4, C = 2, H = 6, W = 6, HEADS = 2, K = 3 };

/* Trains `steps` steps with options `o`; each must cost exactly 3 transfers. */
static void check_steps(const nc_trainer_options *o, int steps) {
    nc_context *ctx = counting_context();
    nc_model *m = small_model(ctx);
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, o, &t), NC_OK);
    float *x = tu_rand(N * C * H * W, -1, 1, 3);
    int32_t labels[N * HEADS * K];
    for (int i = 0; i < N * HEADS * K; i++) labels[i] = o->loss == NC_LOSS_BCE_WITH_LOGITS ? i % 2 : i % K;
    for (int s = 0; s < steps; s++) {
        memset(&g_n, 0, sizeof g_n);
        nc_step_stats st;
        assert_int_equal(nc_trainer_step(t, x, labels, N, C, H, W, &st), NC_OK);
        assert_int_equal(g_n.value_upload, 1);
        assert_int_equal(g_n.write, 1);
        assert_int_equal(g_n.read, 1);
        assert_int_equal(g_n.value_download + g_n.upload + g_n.download, 0);
        assert_true(st.loss > 0.0f);
    }
    free(x);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_step_sgd_ce_three_transfers(void **state) {
    (void)state;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.label_smoothing = 0.1f;
    o.weight_decay = 1e-4f;
    float cw[K] = {1.0f, 2.0f, 0.5f}, hw[HEADS] = {1.0f, 0.5f};
    o.class_weights = cw;
    o.num_class_weights = K;
    o.head_weights = hw;
    check_steps(&o, 3);
}

static void test_step_adamw_clip_accumulate_three_transfers(void **state) {
    (void)state;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.optimizer = NC_OPTIMIZER_ADAMW;
    o.weight_decay = 1e-2f;
    o.clip_grad_norm = 0.5f;
    o.accumulation_steps = 2;
    check_steps(&o, 4);
}

static void test_step_bce_three_transfers(void **state) {
    (void)state;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.loss = NC_LOSS_BCE_WITH_LOGITS;
    o.optimizer = NC_OPTIMIZER_ADAM;
    check_steps(&o, 2);
}

/* Inference: the batch up, the logits down. */
static void test_forward_two_transfers(void **state) {
    (void)state;
    nc_context *ctx = counting_context();
    nc_model *m = small_model(ctx);
    float *x = tu_rand(N * C * H * W, -1, 1, 5), logits[N * HEADS * K];
    for (int r = 0; r < 2; r++) {
        memset(&g_n, 0, sizeof g_n);
        assert_int_equal(nc_model_forward(m, x, N, C, H, W, logits), NC_OK);
        assert_int_equal(g_n.value_upload, 1);
        assert_int_equal(g_n.value_download, 1);
        assert_int_equal(g_n.write + g_n.read + g_n.upload + g_n.download, 0);
    }
    free(x);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_sgd_ce_three_transfers),
        cmocka_unit_test(test_step_adamw_clip_accumulate_three_transfers),
        cmocka_unit_test(test_step_bce_three_transfers),
        cmocka_unit_test(test_forward_two_transfers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
