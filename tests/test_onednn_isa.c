/* test_onednn_isa.c — the oneDNN backend on a CPU without bf16 kernels, simulated by
 * capping oneDNN's ISA: meson runs this file with ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN
 * reads it once, at its first ISA query). The bf16 policy on `onednn` is refused with
 * NC_ERR_UNSUPPORTED and a message naming the missing CPU feature, bf16-math is
 * refused at context creation, `auto` falls back to ref (which stores bf16 too), and
 * fp32 runs on the nChw8c layout, and conv_algorithm = WINOGRAD runs our own
 * F(2x2,3x3) for inference (winograd.c; oneDNN's Winograd is AVX-512 only) and
 * direct convolutions for training. Skips when the cap is not in effect (run by hand
 * without the variable, or a CPU without AVX2). */
#include "testutil.h"

#include "nc_config.h"
#include "core/context.h"
#if HAVE_ONEDNN
#include "backend/onednn/onednn.h"
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int capped_to_avx2(void) {
#if HAVE_ONEDNN
    const char *cap = getenv("ONEDNN_MAX_CPU_ISA");
    return cap && strcmp(cap, "AVX2") == 0 && dnnl_get_effective_cpu_isa() == dnnl_cpu_isa_avx2;
#else
    return 0;
#endif
}

#define SKIP_UNLESS_CAPPED()                                                                  \
    do {                                                                                      \
        SKIP_WITHOUT_ONEDNN();                                                                \
        if (!capped_to_avx2()) {                                                              \
            print_message("needs ONEDNN_MAX_CPU_ISA=AVX2 on an AVX2 CPU (meson sets it): skipped\n"); \
            skip();                                                                           \
        }                                                                                     \
    } while (0)

static nc_context *context(nc_backend_kind backend, nc_precision precision, nc_status *st) {
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = backend;
    o.precision = precision;
    o.num_threads = 1;
    nc_context *ctx = NULL;
    *st = nc_context_create(&o, &ctx);
    return ctx;
}

/* The first failing status of model creation and one forward pass of a small CNN. */
static nc_status run_small_model(nc_context *ctx) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.width = 8;
    mo.num_classes = 3;
    mo.in_channels = 3;
    nc_model *m = NULL;
    nc_status st = nc_model_create(ctx, &mo, &m);
    if (st == NC_OK) {
        float *x = tu_rand(2 * 3 * 16 * 16, -1, 1, 3), logits[6];
        st = nc_model_forward(m, x, 2, 3, 16, 16, logits);
        free(x);
    }
    nc_model_destroy(m);
    return st;
}

static void test_onednn_bf16_refused_names_cpu_feature(void **state) {
    (void)state;
    SKIP_UNLESS_CAPPED();
#if HAVE_ONEDNN
    nc_status st;
    nc_context *ctx = context(NC_BACKEND_ONEDNN, NC_PRECISION_BF16, &st);
    assert_int_equal(st, NC_OK);
    assert_int_equal(run_small_model(ctx), NC_ERR_UNSUPPORTED);
    const char *msg = nc_context_last_error(ctx);
    if (!strstr(msg, "AVX512_BF16") || !strstr(msg, "AMX") || !strstr(msg, "ISA: AVX2")) {
        print_error("message does not name the missing CPU feature: %s\n", msg);
        fail();
    }
    nc_context_destroy(ctx);
#endif
}

static void test_onednn_bf16_math_refused_at_creation(void **state) {
    (void)state;
    SKIP_UNLESS_CAPPED();
#if HAVE_ONEDNN
    nc_status st;
    nc_context *ctx = context(NC_BACKEND_ONEDNN, NC_PRECISION_BF16_MATH, &st);
    assert_int_equal(st, NC_ERR_UNSUPPORTED);
    assert_null(ctx);
#endif
}

static void test_auto_bf16_falls_back_to_ref(void **state) {
    (void)state;
    SKIP_UNLESS_CAPPED();
#if HAVE_ONEDNN
    nc_status st;
    nc_context *ctx = context(NC_BACKEND_AUTO, NC_PRECISION_BF16, &st);
    assert_int_equal(st, NC_OK);
    assert_int_equal(nc_context_backend(ctx), NC_BACKEND_REF);
    assert_int_equal(run_small_model(ctx), NC_OK);
    nc_context_destroy(ctx);
#endif
}

/* fp32 under the cap: the AVX2 layout (where grouped.c's nChw8c kernels run). */
static void test_onednn_fp32_runs_on_avx2_layout(void **state) {
    (void)state;
    SKIP_UNLESS_CAPPED();
#if HAVE_ONEDNN
    nc_status st;
    nc_context *ctx = context(NC_BACKEND_ONEDNN, NC_PRECISION_FP32, &st);
    assert_int_equal(st, NC_OK);
    const dn_state *s = ctx->backend_state;
    assert_int_equal(s->block, 8);
    assert_false(s->isa_bf16);
    assert_int_equal(run_small_model(ctx), NC_OK);
    nc_context_destroy(ctx);
#endif
}

/* conv_algorithm = WINOGRAD under the cap: oneDNN 2.6 has Winograd kernels for
 * AVX-512 only, so the forward passes run our F(2x2,3x3) on nChw8c (winograd.c):
 * the logits (inference) and the loss of a training step (training forward) of a
 * ResNet-18 (64-channel 3x3 layers: the shapes Winograd takes) match ref's but are
 * not DIRECT's bit for bit (so it ran); the step's backward (oneDNN's direct
 * primitives) ran too, and a second step's loss, after the update, matches. */
static void resnet18_run(nc_backend_kind backend, nc_conv_algorithm alg, const float *x, float logits[10],
                             float *loss) {
    nc_context_options o;
    nc_context_options_init(&o);
    o.num_threads = 1;
    o.conv_algorithm = alg;
    o.backend = backend;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "resnet18";
    mo.num_classes = 5;
    mo.in_channels = 3;
    mo.small_input = 1;
    mo.seed = 7;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    assert_int_equal(nc_model_forward(m, x, 2, 3, 16, 16, logits), NC_OK);
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    nc_trainer *tr = NULL;
    const int32_t y[2] = {1, 3};
    nc_step_stats ss;
    assert_int_equal(nc_trainer_create(m, &to, &tr), NC_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nc_trainer_step(tr, x, y, 2, 3, 16, 16, &ss), NC_OK);
        loss[i] = ss.loss;
    }
    nc_trainer_destroy(tr);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_onednn_winograd_under_avx2(void **state) {
    (void)state;
    SKIP_UNLESS_CAPPED();
#if HAVE_ONEDNN
    float *x = tu_rand(2 * 3 * 16 * 16, -1, 1, 5), ref[10], wino[10], direct[10], loss[3][2];
    resnet18_run(NC_BACKEND_REF, NC_CONV_ALGORITHM_AUTO, x, ref, loss[0]);
    resnet18_run(NC_BACKEND_ONEDNN, NC_CONV_ALGORITHM_WINOGRAD, x, wino, loss[1]);
    resnet18_run(NC_BACKEND_ONEDNN, NC_CONV_ALGORITHM_DIRECT, x, direct, loss[2]);
    assert_true(tu_norm_err(wino, ref, 10) < 1e-4);
    assert_true(tu_norm_err(direct, ref, 10) < 1e-4);
    assert_true(memcmp(wino, direct, sizeof wino) != 0);
    for (int i = 0; i < 2; i++) {
        print_message("step %d loss: ref %.9g, winograd %.9g, direct %.9g\n", i, loss[0][i], loss[1][i], loss[2][i]);
        assert_true(fabsf(loss[1][i] - loss[0][i]) < 1e-4f * fabsf(loss[0][i]));
    }
    assert_true(loss[1][0] != loss[2][0]);
    free(x);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_onednn_bf16_refused_names_cpu_feature),
        cmocka_unit_test(test_onednn_bf16_math_refused_at_creation),
        cmocka_unit_test(test_auto_bf16_falls_back_to_ref),
        cmocka_unit_test(test_onednn_fp32_runs_on_avx2_layout),
        cmocka_unit_test(test_onednn_winograd_under_avx2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
