/* test_optim.c — the trainer's optimizers, parameter groups, schedules and clipping
 * against PyTorch trajectories (tests/fixtures/make_optim_golden.py), plus gradient
 * accumulation, freezing and the non-finite guard. */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 6, F = 8, K = 3, STEPS = 8 };

typedef struct golden_case {
    char name[64];
    char optimizer[64], schedule[64];
    double lr, momentum, weight_decay, lr_bias, wd_bias, clip;
    int groups;
    char loss_kind[64];  /* "" = plain CE, "ce_smooth_weighted_ignore", "bce" */
    double loss[STEPS], w[STEPS][K * F], b[STEPS][K];
} golden_case;

typedef struct golden {
    float x[N * F], w0[K * F], b0[K];
    int32_t y[N], bce_targets[N * K];
    golden_case cases[64];
    int n_cases;
} golden;

static int read_floats(FILE *f, double *out, int n) {
    for (int i = 0; i < n; i++)
        if (fscanf(f, "%lf", &out[i]) != 1) return -1;
    return 0;
}

static golden *load_golden(void) {
    char *path = tu_fixture("optim_golden.txt");
    FILE *f = fopen(path, "r");
    free(path);
    assert_non_null(f);
    golden *g = calloc(1, sizeof *g);
    char word[64];
    double buf[N * F];
    assert_int_equal(fscanf(f, "%63s", word), 1);
    assert_string_equal(word, "data");
    assert_int_equal(read_floats(f, buf, N * F), 0);
    for (int i = 0; i < N * F; i++) g->x[i] = (float)buf[i];
    assert_int_equal(read_floats(f, buf, N), 0);
    for (int i = 0; i < N; i++) g->y[i] = (int32_t)buf[i];
    assert_int_equal(read_floats(f, buf, K * F), 0);
    for (int i = 0; i < K * F; i++) g->w0[i] = (float)buf[i];
    assert_int_equal(read_floats(f, buf, K), 0);
    for (int i = 0; i < K; i++) g->b0[i] = (float)buf[i];
    assert_int_equal(fscanf(f, "%63s", word), 1);
    assert_string_equal(word, "bce_targets");
    assert_int_equal(read_floats(f, buf, N * K), 0);
    for (int i = 0; i < N * K; i++) g->bce_targets[i] = (int32_t)buf[i];
    golden_case *c = NULL;
    while (fscanf(f, "%63s", word) == 1) {
        if (strcmp(word, "case") == 0) {
            assert_true(g->n_cases < 64);
            c = &g->cases[g->n_cases++];
            assert_int_equal(fscanf(f, "%63s", c->name), 1);
        } else if (strcmp(word, "step") == 0) {
            int k;
            double loss;
            assert_int_equal(fscanf(f, "%d %lf", &k, &loss), 2);
            assert_true(c && k >= 1 && k <= STEPS);
            c->loss[k - 1] = loss;
            assert_int_equal(read_floats(f, c->w[k - 1], K * F), 0);
            assert_int_equal(read_floats(f, c->b[k - 1], K), 0);
        } else if (strcmp(word, "end") == 0) {
            c = NULL;
        } else {
            char value[64];
            assert_non_null(c);
            assert_int_equal(fscanf(f, "%63s", value), 1);
            if (!strcmp(word, "optimizer")) snprintf(c->optimizer, sizeof c->optimizer, "%s", value);
            else if (!strcmp(word, "schedule")) snprintf(c->schedule, sizeof c->schedule, "%s", value);
            else if (!strcmp(word, "lr")) c->lr = atof(value);
            else if (!strcmp(word, "momentum")) c->momentum = atof(value);
            else if (!strcmp(word, "weight_decay")) c->weight_decay = atof(value);
            else if (!strcmp(word, "lr_bias")) c->lr_bias = atof(value);
            else if (!strcmp(word, "wd_bias")) c->wd_bias = atof(value);
            else if (!strcmp(word, "clip")) c->clip = atof(value);
            else if (!strcmp(word, "groups")) c->groups = atoi(value);
            else if (!strcmp(word, "loss")) snprintf(c->loss_kind, sizeof c->loss_kind, "%s", value);
        }
    }
    fclose(f);
    assert_true(g->n_cases >= 30);
    return g;
}

/* Flatten -> Linear(8, 3) on 2x2x2 inputs, with the golden initial weights. */
static nc_model *linear_model(nc_context *ctx, const golden *g) {
    nc_builder *b;
    nc_value x, y;
    assert_int_equal(nc_builder_create(ctx, 2, &b, &x), NC_OK);
    nc_builder_adaptive_avg_pool2d(b, x, 2, 2, &y);
    nc_builder_flatten(b, y, &y);
    nc_builder_linear(b, "fc", y, K, 1, &y);
    nc_model *m;
    assert_int_equal(nc_builder_finish(b, y, 1, 0, &m), NC_OK);
    nc_builder_destroy(b);
    assert_int_equal(nc_model_set_tensor(m, "fc.weight", g->w0, K * F), NC_OK);
    assert_int_equal(nc_model_set_tensor(m, "fc.bias", g->b0, K), NC_OK);
    return m;
}

static nc_schedule *make_schedule(nc_context *ctx, const char *kind) {
    static const int milestones[2] = {2, 5};
    nc_schedule_options so;
    nc_schedule_options_init(&so);
    if (!strcmp(kind, "constant")) {
        so.kind = NC_SCHEDULE_CONSTANT;
    } else if (!strcmp(kind, "step")) {
        so.kind = NC_SCHEDULE_STEP;
        so.step_size = 2;
        so.gamma = 0.5f;
    } else if (!strcmp(kind, "multistep")) {
        so.kind = NC_SCHEDULE_MULTISTEP;
        so.milestones = milestones;
        so.num_milestones = 2;
        so.gamma = 0.3f;
    } else if (!strcmp(kind, "exponential")) {
        so.kind = NC_SCHEDULE_EXPONENTIAL;
        so.gamma = 0.8f;
    } else if (!strcmp(kind, "cosine")) {
        so.kind = NC_SCHEDULE_COSINE;
        so.warmup_steps = 2;
        so.warmup_start_factor = 1.0f / 3.0f;
        so.t_max = 6;
        so.eta_min = 0.001f;
    } else {
        assert_string_equal(kind, "plateau");
        so.kind = NC_SCHEDULE_PLATEAU;
        so.factor = 0.5f;
        so.patience = 1;
        so.threshold = 0.05f;
    }
    nc_schedule *s;
    assert_int_equal(nc_schedule_create(ctx, &so, &s), NC_OK);
    return s;
}

static void run_case(const golden *g, const golden_case *c, double *worst) {
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = linear_model(ctx, g);
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.lr = (float)c->lr;
    o.momentum = (float)c->momentum;
    o.weight_decay = (float)c->weight_decay;
    o.clip_grad_norm = (float)c->clip;
    o.optimizer = !strncmp(c->optimizer, "sgd", 3) ? NC_OPTIMIZER_SGD
                  : !strcmp(c->optimizer, "adam") ? NC_OPTIMIZER_ADAM
                                                  : NC_OPTIMIZER_ADAMW;
    o.nesterov = !strcmp(c->optimizer, "sgd_nesterov");
    /* the script's loss settings (make_optim_golden.py) */
    static const float class_weights[K] = {1.0f, 2.0f, 0.5f}, pos_weight[K] = {1.0f, 2.0f, 3.0f};
    int32_t labels[N * K];
    memcpy(labels, g->y, sizeof g->y);
    if (!strcmp(c->loss_kind, "ce_smooth_weighted_ignore")) {
        o.label_smoothing = 0.1f;
        o.class_weights = class_weights;
        o.num_class_weights = K;
        labels[2] = o.ignore_label; /* -100 */
    } else if (!strcmp(c->loss_kind, "bce")) {
        o.loss = NC_LOSS_BCE_WITH_LOGITS;
        o.pos_weight = pos_weight;
        memcpy(labels, g->bce_targets, sizeof g->bce_targets);
    }
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_OK);
    if (c->groups) assert_int_equal(nc_trainer_add_group(t, "bias", "fc.bias", (float)c->lr_bias, (float)c->wd_bias), NC_OK);
    nc_schedule *s = make_schedule(ctx, c->schedule);
    assert_int_equal(nc_trainer_set_schedule(t, s), NC_OK);
    double err = 0;
    for (int k = 0; k < STEPS; k++) {
        nc_step_stats st;
        assert_int_equal(nc_trainer_step(t, g->x, labels, N, 2, 2, 2, &st), NC_OK);
        assert_int_equal(st.updated, 1);
        assert_int_equal(nc_schedule_step(s, st.loss), NC_OK);
        float w[K * F], b[K];
        assert_int_equal(nc_model_get_tensor(m, "fc.weight", w, K * F), NC_OK);
        assert_int_equal(nc_model_get_tensor(m, "fc.bias", b, K), NC_OK);
        double scale = 0;
        for (int i = 0; i < K * F; i++) scale = fmax(scale, fabs(c->w[k][i]));
        for (int i = 0; i < K; i++) scale = fmax(scale, fabs(c->b[k][i]));
        for (int i = 0; i < K * F; i++) err = fmax(err, fabs(w[i] - c->w[k][i]) / scale);
        for (int i = 0; i < K; i++) err = fmax(err, fabs(b[i] - c->b[k][i]) / scale);
        err = fmax(err, fabs(st.loss - c->loss[k]) / fabs(c->loss[k]));
    }
    print_message("  %-22s max normalized error %.2e\n", c->name, err);
    if (err > *worst) *worst = err;
    nc_trainer_destroy(t);
    nc_schedule_destroy(s);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_optim_trajectories_match_pytorch(void **state) {
    (void)state;
    golden *g = load_golden();
    double worst = 0;
    for (int i = 0; i < g->n_cases; i++) run_case(g, &g->cases[i], &worst);
    print_message("  worst %.2e over %d cases x %d steps\n", worst, g->n_cases, STEPS);
    assert_true(worst < 5e-6); /* measured: <= 9.3e-7 */
    free(g);
}

/* k micro-batches with accumulation_steps = k give the update of one batch of k*n. */
static void test_optim_accumulation_equals_big_batch(void **state) {
    (void)state;
    golden *g = load_golden();
    nc_context *ctx = tu_ref_context(1);
    nc_model *a = linear_model(ctx, g), *b = linear_model(ctx, g);
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.lr = 0.3f;
    o.optimizer = NC_OPTIMIZER_ADAM;
    nc_trainer *ta, *tb;
    assert_int_equal(nc_trainer_create(a, &o, &ta), NC_OK);
    o.accumulation_steps = 3;
    assert_int_equal(nc_trainer_create(b, &o, &tb), NC_OK);
    for (int step = 0; step < 3; step++) {
        nc_step_stats st;
        assert_int_equal(nc_trainer_step(ta, g->x, g->y, N, 2, 2, 2, &st), NC_OK);
        for (int part = 0; part < 3; part++) {
            assert_int_equal(nc_trainer_step(tb, g->x + part * 2 * F, g->y + part * 2, 2, 2, 2, 2, &st), NC_OK);
            assert_int_equal(st.updated, part == 2);
        }
    }
    float wa[K * F], wb[K * F];
    assert_int_equal(nc_model_get_tensor(a, "fc.weight", wa, K * F), NC_OK);
    assert_int_equal(nc_model_get_tensor(b, "fc.weight", wb, K * F), NC_OK);
    print_message("  accumulation vs big batch: normalized error %.2e\n", tu_norm_err(wb, wa, K * F));
    assert_true(tu_norm_err(wb, wa, K * F) < 1e-5);
    nc_trainer_destroy(ta);
    nc_trainer_destroy(tb);
    nc_model_destroy(a);
    nc_model_destroy(b);
    nc_context_destroy(ctx);
    free(g);
}

static void test_optim_freeze_and_unfreeze_group(void **state) {
    (void)state;
    golden *g = load_golden();
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = linear_model(ctx, g);
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    assert_int_equal(nc_trainer_add_group(t, "head_bias", "fc.bias", 0.1f, 0.0f), NC_OK);
    assert_int_equal(nc_trainer_freeze_group(t, "head_bias", 1), NC_OK);
    float b0[K], b1[K], w0[K * F], w1[K * F];
    assert_int_equal(nc_model_get_tensor(m, "fc.bias", b0, K), NC_OK);
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", w0, K * F), NC_OK);
    assert_int_equal(nc_trainer_step(t, g->x, g->y, N, 2, 2, 2, NULL), NC_OK);
    assert_int_equal(nc_model_get_tensor(m, "fc.bias", b1, K), NC_OK);
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", w1, K * F), NC_OK);
    assert_memory_equal(b0, b1, sizeof b0);
    assert_true(memcmp(w0, w1, sizeof w0) != 0);
    assert_int_equal(nc_trainer_freeze_group(t, "head_bias", 0), NC_OK);
    assert_int_equal(nc_trainer_step(t, g->x, g->y, N, 2, 2, 2, NULL), NC_OK);
    assert_int_equal(nc_model_get_tensor(m, "fc.bias", b1, K), NC_OK);
    assert_true(memcmp(b0, b1, sizeof b0) != 0);
    float lr;
    assert_int_equal(nc_trainer_group_lr(t, "head_bias", &lr), NC_OK);
    assert_true(lr == 0.1f);
    assert_int_equal(nc_trainer_set_group_lr(t, "default", 0.02f), NC_OK);
    assert_int_equal(nc_trainer_group_lr(t, "default", &lr), NC_OK);
    assert_true(lr == 0.02f);
    /* errors */
    assert_int_equal(nc_trainer_freeze_group(t, "nope", 1), NC_ERR_NOT_FOUND);
    assert_int_equal(nc_trainer_add_group(t, "late", "fc.weight", 0.1f, 0.0f), NC_ERR_STATE);
    nc_trainer_destroy(t);
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    assert_int_equal(nc_trainer_add_group(t, "x", "conv9", 0.1f, 0.0f), NC_ERR_NOT_FOUND);
    assert_non_null(strstr(nc_context_last_error(ctx), "conv9"));
    assert_int_equal(nc_trainer_add_group(t, "default", "fc", 0.1f, 0.0f), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_trainer_add_group(t, "neg", "fc", -1.0f, 0.0f), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_trainer_add_group(t, "all", "fc", 0.1f, 0.0f), NC_OK);
    assert_int_equal(nc_trainer_add_group(t, "again", "fc", 0.1f, 0.0f), NC_ERR_NOT_FOUND); /* taken */
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    free(g);
}

/* Non-finite losses skip their updates; max_nonfinite in a row is an error. */
static void test_optim_nonfinite_guard(void **state) {
    (void)state;
    golden *g = load_golden();
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = linear_model(ctx, g);
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.max_nonfinite = 3;
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_OK);
    float bad[N * F], w0[K * F], w1[K * F];
    memcpy(bad, g->x, sizeof bad);
    bad[5] = NAN;
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", w0, K * F), NC_OK);
    nc_step_stats st;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nc_trainer_step(t, bad, g->y, N, 2, 2, 2, &st), NC_OK);
        assert_int_equal(st.skipped, 1);
        assert_int_equal(st.updated, 0);
    }
    assert_int_equal(nc_model_get_tensor(m, "fc.weight", w1, K * F), NC_OK);
    assert_memory_equal(w0, w1, sizeof w0);
    /* a good step resets the run */
    assert_int_equal(nc_trainer_step(t, g->x, g->y, N, 2, 2, 2, &st), NC_OK);
    assert_int_equal(st.updated, 1);
    for (int i = 0; i < 2; i++) assert_int_equal(nc_trainer_step(t, bad, g->y, N, 2, 2, 2, &st), NC_OK);
    assert_int_equal(nc_trainer_step(t, bad, g->y, N, 2, 2, 2, &st), NC_ERR_NUMERIC);
    assert_int_equal(st.skipped, 1);
    assert_non_null(strstr(nc_context_last_error(ctx), "3 updates in a row"));
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    free(g);
}

static void test_optim_bad_options(void **state) {
    (void)state;
    golden *g = load_golden();
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = linear_model(ctx, g);
    nc_trainer *t = NULL;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.optimizer = (nc_optimizer)7;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    nc_trainer_options_init(&o);
    o.beta2 = 1.0f;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    nc_trainer_options_init(&o);
    o.accumulation_steps = 0;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    nc_trainer_options_init(&o);
    o.label_smoothing = 1.0f;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    nc_trainer_options_init(&o);
    float cw[2] = {1, 1};
    o.class_weights = cw;
    o.num_class_weights = 2;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "class_weights"));
    nc_trainer_options_init(&o);
    o.clip_grad_norm = -1.0f;
    assert_int_equal(nc_trainer_create(m, &o, &t), NC_ERR_INVALID_ARGUMENT);
    assert_null(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optim_trajectories_match_pytorch),
        cmocka_unit_test(test_optim_accumulation_equals_big_batch),
        cmocka_unit_test(test_optim_freeze_and_unfreeze_group),
        cmocka_unit_test(test_optim_nonfinite_guard),
        cmocka_unit_test(test_optim_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
