/* test_threads.c — a context's num_threads bounds the threads the library starts:
 * with num_threads = 1 a training step and an inference on `onednn` (convolutions,
 * their weight and gradient reorders, batch norm, pooling) and on `ref` run on the
 * calling thread alone, so the process never grows past one thread; with 2 it never
 * grows past 2. OpenMP starts its workers at the first parallel region that asks for
 * them, so the process's thread count (/proc/self/status) shows whether any region
 * asked for more. Its own executable: no earlier test may have started a thread pool. */
#include "testutil.h"

#include "neurc.h"
#include "nc_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The "Threads:" line of /proc/self/status; -1 where it cannot be read (not Linux). */
static int process_threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0) n = atoi(line + 8);
    fclose(f);
    return n;
}

/* One SGD step and one inference of a small ResNet (3x3 and 1x1 convolutions with
 * strides, batch norm, max pool, residual adds) on a context with nt threads. */
static void train_and_infer(nc_backend_kind backend, int nt) {
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = backend;
    co.num_threads = nt;
    nc_context *ctx = NULL;
    nc_status st = nc_context_create(&co, &ctx);
    if (st == NC_ERR_UNSUPPORTED) {
        print_message("backend not available: skipped\n");
        skip();
    }
    assert_int_equal(st, NC_OK);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "resnet18";
    mo.num_classes = 3;
    mo.in_channels = 3;
    mo.small_input = 1;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    nc_trainer *t = NULL;
    assert_int_equal(nc_trainer_create(m, &to, &t), NC_OK);
    float *x = tu_rand(4 * 3 * 16 * 16, -1, 1, 7), logits[4 * 3];
    int32_t labels[4] = {0, 1, 2, 1};
    nc_step_stats s;
    for (int k = 0; k < 2; k++) assert_int_equal(nc_trainer_step(t, x, labels, 4, 3, 16, 16, &s), NC_OK);
    assert_int_equal(nc_model_forward(m, x, 4, 3, 16, 16, logits), NC_OK);
    free(x);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void expect_at_most(int limit) {
    int n = process_threads();
    if (n < 0) {
        print_message("/proc/self/status not readable: skipped\n");
        skip();
    }
    if (n > limit) fail_msg("the process has %d threads after work on a context with num_threads %d", n, limit);
}

/* The cases run in this order: one thread first, while the process has no pool. */
static void test_threads_one_ref(void **state) {
    (void)state;
    train_and_infer(NC_BACKEND_REF, 1);
    expect_at_most(1);
}

static void test_threads_one_onednn(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
    train_and_infer(NC_BACKEND_ONEDNN, 1);
    expect_at_most(1);
}

static void test_threads_two_onednn(void **state) {
    (void)state;
    SKIP_WITHOUT_ONEDNN();
    train_and_infer(NC_BACKEND_ONEDNN, 2);
    expect_at_most(2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_one_ref),
        cmocka_unit_test(test_threads_one_onednn),
        cmocka_unit_test(test_threads_two_onednn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
