/* test_api.c — the public API's contract: version and status strings, context
 * options, NULL handles everywhere, unknown architectures and bad options, wrong
 * input shapes, the summary table, the custom allocator hooks. */
#include "testutil.h"

#include "neurc.h"
#include "nc_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static void test_version_matches_header(void **s) {
    (void)s;
    assert_int_equal(nc_version(), NC_VERSION);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", NC_VERSION_MAJOR, NC_VERSION_MINOR, NC_VERSION_PATCH);
    assert_string_equal(nc_version_string(), want);
}

static void test_status_strings(void **s) {
    (void)s;
    assert_string_equal(nc_status_str(NC_OK), "success");
    assert_string_equal(nc_status_str(NC_ERR_SHAPE), "tensor shape mismatch");
    assert_string_equal(nc_status_str((nc_status)999), "unknown status");
    assert_int_equal(NC_ERR_NUMERIC, 9); /* values are ABI: never renumbered */
    assert_int_equal(NC_ERR_LIMIT, 12);
}

static void test_context_options(void **s) {
    (void)s;
    nc_context *ctx = NULL;
    nc_context_options o;
    assert_int_equal(nc_context_create(NULL, NULL), NC_ERR_NULL);
    nc_context_options_init(&o);
    o.num_threads = -1;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
    nc_context_options_init(&o);
    o.struct_size = 1;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
    nc_context_options_init(&o);
    o.backend = (nc_backend_kind)42;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_CUDA; /* not in this build's CPU-only test configuration */
    nc_status st = nc_context_create(&o, &ctx);
    if (st == NC_OK) nc_context_destroy(ctx);
    else assert_int_equal(st, NC_ERR_UNSUPPORTED);
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    assert_int_not_equal(nc_context_backend(ctx), NC_BACKEND_AUTO);
    assert_string_equal(nc_context_last_error(ctx), "");
    assert_string_equal(nc_backend_name(NC_BACKEND_REF), "ref");
    nc_context_destroy(ctx);
    nc_context_destroy(NULL);
    assert_non_null(nc_context_last_error(NULL));
}

/* The precision policy: its options, AUTO's choice, and a plan refused by name. */
static void test_precision_policy(void **s) {
    (void)s;
    nc_context *ctx = NULL;
    nc_context_options o;
    nc_context_options_init(&o);
    o.precision = (nc_precision)7;
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
    o.precision = NC_PRECISION_BF16;
    o.bf16 = 1; /* the 0.1 field means BF16_MATH: contradicts BF16 */
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
    o.bf16 = 0;
    o.backend = NC_BACKEND_REF;
    o.precision = NC_PRECISION_BF16_MATH; /* oneDNN's math mode only */
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_UNSUPPORTED);
    /* AUTO with bf16 values: the first backend that stores them (onednn where its
     * ISA has bf16 kernels, else ref) */
    nc_context_options_init(&o);
    o.precision = NC_PRECISION_BF16;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    assert_int_equal(nc_context_precision(ctx), NC_PRECISION_BF16);
    const nc_backend_kind auto_kind = nc_context_backend(ctx);
    assert_true(auto_kind == NC_BACKEND_REF || auto_kind == NC_BACKEND_ONEDNN);
    nc_context_destroy(ctx);
    assert_int_equal(nc_context_precision(NULL), NC_PRECISION_FP32);
    if (!HAVE_ONEDNN) return;
    /* oneDNN asked for bf16 values: it runs them where it stores them (AUTO chose it)
     * and gives ref's bf16 logits; elsewhere the first forward names the node it
     * cannot run */
    const int onednn_bf16 = auto_kind == NC_BACKEND_ONEDNN;
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.num_classes = 3;
    mo.in_channels = 1;
    float x[2 * 8 * 8], y[6], want[6];
    for (int i = 0; i < 2 * 8 * 8; i++) x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    nc_model *m = NULL;
    if (onednn_bf16) {
        o.backend = NC_BACKEND_REF;
        assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
        assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
        assert_int_equal(nc_model_forward(m, x, 2, 1, 8, 8, want), NC_OK);
        nc_model_destroy(m);
        nc_context_destroy(ctx);
    }
    o.backend = NC_BACKEND_ONEDNN;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    if (onednn_bf16) {
        assert_int_equal(nc_model_forward(m, x, 2, 1, 8, 8, y), NC_OK);
        for (int i = 0; i < 6; i++) /* logits within a few bf16 ulps of ref's */
            assert_true(fabsf(y[i] - want[i]) <= 2e-2f * (fabsf(want[i]) + 1e-2f));
    } else {
        assert_int_equal(nc_model_forward(m, x, 2, 1, 8, 8, y), NC_ERR_UNSUPPORTED);
        assert_non_null(strstr(nc_context_last_error(ctx), "cannot run Conv2d on bf16 values"));
    }
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_null_handles(void **s) {
    (void)s;
    float buf[4] = {0};
    int32_t lab[1] = {0};
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(NULL, NULL, &m), NC_ERR_NULL);
    assert_int_equal(nc_model_forward(NULL, buf, 1, 1, 2, 2, buf), NC_ERR_NULL);
    assert_int_equal(nc_model_num_params(NULL), 0);
    assert_int_equal(nc_model_num_outputs(NULL), 0);
    assert_int_equal(nc_model_num_tensors(NULL), 0);
    assert_int_equal(nc_model_in_channels(NULL), 0);
    assert_int_equal(nc_model_num_heads(NULL), 0);
    assert_null(nc_model_context(NULL));
    assert_int_equal(nc_model_summary(NULL, 8, 8, NULL, 0, NULL), NC_ERR_NULL);
    assert_int_equal(nc_model_save(NULL, "x"), NC_ERR_NULL);
    assert_int_equal(nc_model_load_weights(NULL, "x", 1, NULL), NC_ERR_NULL);
    assert_int_equal(nc_model_get_tensor(NULL, "x", buf, 1), NC_ERR_NULL);
    assert_int_equal(nc_model_set_tensor(NULL, "x", buf, 1), NC_ERR_NULL);
    assert_int_equal(nc_model_tensor_info(NULL, 0, NULL), NC_ERR_NULL);
    assert_int_equal(nc_model_set_class_names(NULL, NULL, 0), NC_ERR_NULL);
    assert_null(nc_model_class_name(NULL, 0));
    assert_int_equal(nc_model_set_normalization(NULL, buf, buf), NC_ERR_NULL);
    assert_int_equal(nc_model_get_normalization(NULL, buf, buf), NC_ERR_NULL);
    assert_int_equal(nc_trainer_step(NULL, buf, lab, 1, 1, 2, 2, NULL), NC_ERR_NULL);
    assert_int_equal(nc_trainer_num_steps(NULL), 0);
    assert_int_equal(nc_builder_create(NULL, 3, NULL, NULL), NC_ERR_NULL);
    nc_model_destroy(NULL);
    nc_builder_destroy(NULL);
    nc_model_options_init(NULL);
    nc_trainer_options_init(NULL);
    nc_context_options_init(NULL);
}

static void test_model_unknown_arch_and_bad_options(void **s) {
    (void)s;
    nc_context *ctx;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    nc_model_options o;
    nc_model *m = (nc_model *)&m;
    nc_model_options_init(&o);
    o.arch = "resnet19";
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_ERR_NOT_FOUND);
    assert_null(m);
    assert_non_null(strstr(nc_context_last_error(ctx), "resnet19"));
    nc_model_options_init(&o);
    o.num_classes = 0;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_ERR_INVALID_ARGUMENT);
    nc_model_options_init(&o);
    o.in_channels = -3;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_ERR_INVALID_ARGUMENT);
    nc_model_options_init(&o);
    o.head_dropout = 1.0f;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_ERR_INVALID_ARGUMENT);
    nc_model_options_init(&o);
    o.arch = NULL;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_ERR_NULL);
    nc_model_options_init(&o);
    o.struct_size = 0;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_ERR_INVALID_ARGUMENT);
    nc_context_destroy(ctx);
}

static void test_forward_wrong_shapes(void **s) {
    (void)s;
    nc_context *ctx;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "resnet18";
    o.num_classes = 3;
    o.in_channels = 4;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    assert_int_equal(nc_model_num_outputs(m), 3);
    float *x = calloc(2 * 4 * 32 * 32, sizeof(float)), logits[6];
    assert_int_equal(nc_model_forward(m, x, 2, 3, 32, 32, logits), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(ctx), "3 channels"));
    assert_int_equal(nc_model_forward(m, x, 0, 4, 32, 32, logits), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_model_forward(m, x, 2, 4, 32, 32, NULL), NC_ERR_NULL);
    assert_int_equal(nc_model_forward(m, x, 1, 4, 8, 8, logits), NC_OK); /* torchvision stem copes with 8x8 */
    assert_int_equal(nc_model_forward(m, x, 2, 4, 32, 32, logits), NC_OK);
    float bogus[3];
    assert_int_equal(nc_model_set_tensor(m, "conv1.weight", bogus, 3), NC_ERR_SHAPE);
    assert_int_equal(nc_model_set_tensor(m, "conv9.weight", bogus, 3), NC_ERR_NOT_FOUND);
    nc_tensor_info ti;
    assert_int_equal(nc_model_tensor_info(m, -1, &ti), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_model_tensor_info(m, 0, &ti), NC_OK);
    assert_string_equal(ti.name, "conv1.weight");
    assert_int_equal(ti.shape[1], 4);
    free(x);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_summary_table(void **s) {
    (void)s;
    nc_context *ctx;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    nc_model_options o;
    nc_model_options_init(&o);
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    size_t need = 0;
    char small[16];
    assert_int_equal(nc_model_summary(m, 224, 224, small, sizeof small, &need), NC_ERR_LIMIT);
    assert_true(need > sizeof small);
    assert_int_equal(small[sizeof small - 1], 0);
    char *text = malloc(need);
    assert_int_equal(nc_model_summary(m, 224, 224, text, need, NULL), NC_OK);
    assert_non_null(strstr(text, "11,689,512"));
    assert_non_null(strstr(text, "[-1, 64, 112, 112]"));
    assert_non_null(strstr(text, "layer4.1.conv2"));
    free(text);
    nc_model_destroy(m);
    /* an image too small for a 5x5 kernel without padding */
    nc_builder *b;
    nc_value x, y;
    assert_int_equal(nc_builder_create(ctx, 1, &b, &x), NC_OK);
    nc_builder_conv2d(b, "c", x, 2, 5, 1, 0, 1, 1, 1, &y);
    nc_builder_adaptive_avg_pool2d(b, y, 1, 1, &y);
    nc_builder_flatten(b, y, &y);
    assert_int_equal(nc_builder_finish(b, y, 1, 0, &m), NC_OK);
    nc_builder_destroy(b);
    char buf[64];
    assert_int_equal(nc_model_summary(m, 3, 3, buf, sizeof buf, NULL), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(ctx), "c"));
    float xin[9] = {0}, out[2];
    assert_int_equal(nc_model_forward(m, xin, 1, 1, 3, 3, out), NC_ERR_SHAPE);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

typedef struct counting { size_t live, calls; } counting;
static void *count_alloc(void *user, size_t size, size_t align) {
    counting *c = user;
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0) return NULL;
    c->live++;
    c->calls++;
    return p;
}
static void count_free(void *user, void *ptr) {
    counting *c = user;
    c->live--;
    free(ptr);
}

static void test_allocator_hooks_see_everything(void **s) {
    (void)s;
    counting c = {0, 0};
    nc_context_options o;
    nc_context_options_init(&o);
    o.allocator.alloc = count_alloc;
    o.allocator.free = count_free;
    o.allocator.user = &c;
    nc_context *ctx;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.num_classes = 2;
    mo.in_channels = 1;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    float x[2 * 64] = {0}, l[4];
    assert_int_equal(nc_model_forward(m, x, 2, 1, 8, 8, l), NC_OK);
    assert_true(c.calls > 3);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    assert_int_equal(c.live, 0);
    o.allocator.free = NULL; /* half a pair is an error */
    assert_int_equal(nc_context_create(&o, &ctx), NC_ERR_INVALID_ARGUMENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_matches_header),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_context_options),
        cmocka_unit_test(test_precision_policy),
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test(test_model_unknown_arch_and_bad_options),
        cmocka_unit_test(test_forward_wrong_shapes),
        cmocka_unit_test(test_summary_table),
        cmocka_unit_test(test_allocator_hooks_see_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
