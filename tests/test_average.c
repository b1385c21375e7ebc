/* test_average.c — the exponential moving average of the weights (formula over
 * parameters and running statistics, O(1) swap in and out) and early stopping
 * (Lightning's improvement rule, patience, best-weight restore). */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 4, C = 1, H = 8, W = 8, CLASSES = 3 };

static nc_model *small_model(nc_context *ctx) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.num_classes = CLASSES;
    mo.in_channels = C;
    mo.width = 4;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    return m;
}

static float *get(nc_model *m, const char *name, int64_t n) {
    float *v = malloc((size_t)n * sizeof *v);
    assert_int_equal(nc_model_get_tensor(m, name, v, n), NC_OK);
    return v;
}

static void train_steps(nc_trainer *t, int steps, uint64_t seed) {
    float x[N * C * H * W];
    int32_t y[N] = {0, 1, 2, 1};
    for (int s = 0; s < steps; s++) {
        tu_fill_uniform(x, sizeof x / sizeof *x, -1, 1, seed + (uint64_t)s);
        assert_int_equal(nc_trainer_step(t, x, y, N, C, H, W, NULL), NC_OK);
    }
}

static void test_ema_follows_the_formula(void **state) {
    tu_fx *f = *state;
    nc_model *m = small_model(f->ctx);
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    const float decay = 0.75f;
    nc_ema *e;
    assert_int_equal(nc_ema_create(m, decay, &e), NC_OK);
    const char *names[2] = {"fc.weight", "bn1.running_var"};
    int64_t sizes[2] = {CLASSES * 16, 4};
    double *expect[2];
    for (int k = 0; k < 2; k++) {
        float *v = get(m, names[k], sizes[k]);
        expect[k] = calloc((size_t)sizes[k], sizeof(double));
        for (int64_t i = 0; i < sizes[k]; i++) expect[k][i] = v[i];
        free(v);
    }
    for (int step = 0; step < 4; step++) {
        train_steps(t, 1, 10 + (uint64_t)step);
        assert_int_equal(nc_ema_update(e), NC_OK);
        for (int k = 0; k < 2; k++) {
            float *v = get(m, names[k], sizes[k]);
            for (int64_t i = 0; i < sizes[k]; i++) expect[k][i] = decay * expect[k][i] + (1 - decay) * v[i];
            free(v);
        }
    }
    float *trained = get(m, "fc.weight", sizes[0]);
    assert_int_equal(nc_ema_swap(e), NC_OK);
    assert_int_equal(nc_ema_swapped(e), 1);
    assert_int_equal(nc_ema_update(e), NC_ERR_STATE);
    for (int k = 0; k < 2; k++) {
        float *v = get(m, names[k], sizes[k]);
        for (int64_t i = 0; i < sizes[k]; i++) assert_true(fabs(v[i] - expect[k][i]) <= 1e-6 * (1 + fabs(expect[k][i])));
        free(v);
    }
    assert_int_equal(nc_ema_swap(e), NC_OK);
    float *back = get(m, "fc.weight", sizes[0]);
    assert_memory_equal(back, trained, (size_t)sizes[0] * sizeof(float));
    free(back);
    free(trained);
    free(expect[0]);
    free(expect[1]);
    nc_ema_destroy(e);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

static void test_ema_swapped_model_evaluates_and_destroy_swaps_back(void **state) {
    tu_fx *f = *state;
    nc_model *m = small_model(f->ctx);
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    nc_ema *e;
    assert_int_equal(nc_ema_create(m, 0.5f, &e), NC_OK);
    train_steps(t, 3, 1);
    float x[N * C * H * W], la[N * CLASSES], lb[N * CLASSES];
    tu_fill_uniform(x, sizeof x / sizeof *x, -1, 1, 99);
    assert_int_equal(nc_model_forward(m, x, N, C, H, W, la), NC_OK);
    assert_int_equal(nc_ema_swap(e), NC_OK);
    assert_int_equal(nc_model_forward(m, x, N, C, H, W, lb), NC_OK);
    assert_true(memcmp(la, lb, sizeof la) != 0);
    nc_ema_destroy(e); /* swaps back */
    assert_int_equal(nc_model_forward(m, x, N, C, H, W, lb), NC_OK);
    assert_memory_equal(la, lb, sizeof la);
    assert_int_equal(nc_ema_create(m, 1.0f, &e), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_ema_create(NULL, 0.5f, &e), NC_ERR_NULL);
    assert_int_equal(nc_ema_update(NULL), NC_ERR_NULL);
    nc_ema_destroy(NULL);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

static void test_early_stopping_patience_and_restore(void **state) {
    tu_fx *f = *state;
    nc_model *m = small_model(f->ctx);
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    nc_early_stopping *es;
    assert_int_equal(nc_early_stopping_create(m, 0, 2, 0.01f, &es), NC_OK);
    assert_true(isnan(nc_early_stopping_best(es)));
    assert_int_equal(nc_early_stopping_restore_best(es), NC_ERR_STATE);
    /* metric per epoch (lower is better): 1.0 best, 0.995 not by more than min_delta */
    const float metrics[5] = {1.0f, 0.8f, 0.795f, 0.9f, 0.7f};
    const int want_improved[5] = {1, 1, 0, 0, 1}, want_stop[5] = {0, 0, 0, 1, 0};
    float *best = NULL;
    for (int epoch = 0; epoch < 4; epoch++) {
        train_steps(t, 1, 50 + (uint64_t)epoch);
        int improved, stop;
        assert_int_equal(nc_early_stopping_update(es, metrics[epoch], &improved, &stop), NC_OK);
        assert_int_equal(improved, want_improved[epoch]);
        assert_int_equal(stop, want_stop[epoch]);
        if (improved) {
            free(best);
            best = get(m, "conv1.weight", 4 * 9);
        }
    }
    assert_true(nc_early_stopping_best(es) == 0.8f);
    float *now = get(m, "conv1.weight", 4 * 9);
    assert_true(memcmp(now, best, 4 * 9 * sizeof(float)) != 0);
    free(now);
    assert_int_equal(nc_early_stopping_restore_best(es), NC_OK);
    now = get(m, "conv1.weight", 4 * 9);
    assert_memory_equal(now, best, 4 * 9 * sizeof(float));
    float nb;
    assert_int_equal(nc_model_get_tensor(m, "bn1.num_batches_tracked", &nb, 1), NC_OK);
    assert_true(nb == 2.0f); /* the counters come back too */
    int improved, stop;
    assert_int_equal(nc_early_stopping_update(es, metrics[4], &improved, &stop), NC_OK);
    assert_int_equal(improved, 1);
    assert_int_equal(nc_early_stopping_update(es, NAN, &improved, &stop), NC_ERR_NUMERIC);
    assert_int_equal(improved, 0);
    free(now);
    free(best);
    nc_early_stopping_destroy(es);
    /* mode max */
    assert_int_equal(nc_early_stopping_create(m, 1, 0, 0.0f, &es), NC_OK);
    assert_int_equal(nc_early_stopping_update(es, 0.5f, &improved, &stop), NC_OK);
    assert_int_equal(improved, 1);
    assert_int_equal(nc_early_stopping_update(es, 0.4f, &improved, &stop), NC_OK);
    assert_int_equal(improved, 0);
    assert_int_equal(stop, 1); /* patience 0: the first non-improving epoch stops */
    nc_early_stopping_destroy(es);
    assert_int_equal(nc_early_stopping_create(m, 0, -1, 0.0f, &es), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_early_stopping_create(m, 0, 1, -0.5f, &es), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_early_stopping_update(NULL, 1.0f, NULL, NULL), NC_ERR_NULL);
    nc_early_stopping_destroy(NULL);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ema_follows_the_formula, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_ema_swapped_model_evaluates_and_destroy_swaps_back, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_early_stopping_patience_and_restore, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
