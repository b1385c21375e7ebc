/* test_schedule.c — learning-rate schedules against torch 1.13's schedulers (golden
 * lrs of three parameter groups from fixtures/make_schedule_golden.py, past t_max and
 * through plateau cooldowns), lazily tracked PLATEAU bases, the non-finite metric
 * guard, option validation, NULL handling, the state round trip and allocation
 * failures. */
#include "testutil.h"

#include "core/context.h"
#include "train/schedule.h"
#include "neurc.h"

#include "fixtures/schedule_golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each case gets a counting context (tests/testutil.h) that fails it on a leak. */
typedef tu_fx fx;
#define setup tu_fx_setup
#define teardown tu_fx_teardown

/* nc_schedule_lr returns float computed in double: the float rounding of torch's
 * double (2^-24 relative) plus the closed forms' few-ulp drift stays far below this. */
#define LR_RTOL 1e-6

static void assert_error_mentions(nc_context *ctx, const char *text) {
    const char *msg = nc_context_last_error(ctx);
    if (!strstr(msg, text)) fail_msg("error \"%s\" does not mention \"%s\"", msg, text);
}

static void assert_lr_close(float got, double want, const char *what, int pos, int base) {
    double err = fabs((double)got - want);
    if (!(err <= LR_RTOL * fabs(want)))
        fail_msg("%s: position %d base %d: lr %.9g, torch %.17g (rel err %.3g)", what, pos, base, (double)got, want,
                 want != 0 ? err / fabs(want) : err);
}

static void options_of_case(const gold_sched_case *g, nc_schedule_options *o) {
    nc_schedule_options_init(o);
    o->kind = (nc_schedule_kind)g->kind;
    o->step_size = g->step_size;
    o->gamma = g->gamma;
    o->milestones = g->milestones;
    o->num_milestones = g->num_milestones;
    o->t_max = g->t_max;
    o->eta_min = g->eta_min;
    o->warmup_steps = g->warmup_steps;
    o->warmup_start_factor = g->warmup_start_factor;
    o->mode_max = g->mode_max;
    o->factor = g->factor;
    o->patience = g->patience;
    o->threshold = g->threshold;
    o->threshold_abs = g->threshold_abs;
    o->cooldown = g->cooldown;
    o->min_lr = g->min_lr;
    o->plateau_eps = g->plateau_eps;
}

/* The metric step i (0-based) gives: the golden one for PLATEAU; NaN for the other
 * kinds, which must ignore it. */
static float case_metric(const gold_sched_case *g, int i) { return g->metrics ? g->metrics[i] : NAN; }

static nc_schedule *make(nc_context *ctx, const nc_schedule_options *o) {
    nc_schedule *s = NULL;
    nc_status st = nc_schedule_create(ctx, o, &s);
    if (st != NC_OK) fail_msg("nc_schedule_create: %s (%s)", nc_status_str(st), nc_context_last_error(ctx));
    return s;
}

/* ------------------------------------------------------------ torch parity */

static void test_schedule_matches_torch_every_recorded_step(void **state) {
    fx *f = *state;
    for (int c = 0; c < GOLD_SCHED_NUM_CASES; c++) {
        const gold_sched_case *g = &gold_sched_cases[c];
        nc_schedule_options o;
        options_of_case(g, &o);
        nc_schedule *s = make(f->ctx, &o);
        int next = 0;
        for (int p = 0; p <= g->steps; p++) {
            if (p > 0) assert_int_equal(nc_schedule_step(s, case_metric(g, p - 1)), NC_OK);
            assert_int_equal(nc_schedule_position(s), p);
            if (next < g->num_points && g->positions[next] == p) {
                for (int b = 0; b < GOLD_SCHED_NUM_BASES; b++)
                    assert_lr_close(nc_schedule_lr(s, gold_sched_bases[b]), g->lr[next * GOLD_SCHED_NUM_BASES + b],
                                    g->name, p, b);
                next++;
            }
        }
        assert_int_equal(next, g->num_points);
        nc_schedule_destroy(s);
    }
}

/* Bases asked for only at the end (PLATEAU: after all reductions), in reverse order,
 * get what torch's groups that held them from the start have. */
static void test_schedule_late_first_query_matches_torch(void **state) {
    fx *f = *state;
    for (int c = 0; c < GOLD_SCHED_NUM_CASES; c++) {
        const gold_sched_case *g = &gold_sched_cases[c];
        nc_schedule_options o;
        options_of_case(g, &o);
        nc_schedule *s = make(f->ctx, &o);
        for (int p = 1; p <= g->steps; p++) assert_int_equal(nc_schedule_step(s, case_metric(g, p - 1)), NC_OK);
        const double *last = g->lr + (size_t)(g->num_points - 1) * GOLD_SCHED_NUM_BASES;
        for (int b = GOLD_SCHED_NUM_BASES - 1; b >= 0; b--)
            assert_lr_close(nc_schedule_lr(s, gold_sched_bases[b]), last[b], g->name, g->steps, b);
        nc_schedule_destroy(s);
    }
}

/* Find a golden case by name (the test depends on what it exercises). */
static const gold_sched_case *golden(const char *name) {
    for (int c = 0; c < GOLD_SCHED_NUM_CASES; c++)
        if (!strcmp(gold_sched_cases[c].name, name)) return &gold_sched_cases[c];
    fail_msg("no golden case %s", name);
    return NULL;
}

/* The golden set really covers what it claims: torch's cosine rises again past t_max,
 * duplicated milestones compound, and plateau's eps rule stops small bases early. */
static void test_schedule_golden_covers_edge_behaviour(void **state) {
    (void)state;
    const gold_sched_case *g = golden("cosine_10"); /* t_max 10: lr(20) back at base */
    assert_true(g->lr[10 * GOLD_SCHED_NUM_BASES] < 1e-12);
    assert_true(fabs(g->lr[20 * GOLD_SCHED_NUM_BASES] - (double)gold_sched_bases[0]) < 1e-12);
    g = golden("multistep_duplicates"); /* milestones 3, 10, 10, 25; gamma 0.5 */
    assert_true(fabs(g->lr[10 * GOLD_SCHED_NUM_BASES] / g->lr[9 * GOLD_SCHED_NUM_BASES] - 0.25) < 1e-12);
    g = golden("plateau_min_big_eps"); /* eps 1e-3, factor 0.1, a reduction every step: */
    const double *last = g->lr + (size_t)(g->num_points - 1) * GOLD_SCHED_NUM_BASES;
    assert_true(fabs(last[0] - 1e-3) < 1e-9);                /* 0.1 stops after two */
    assert_true(fabs(last[1] - 1e-3) < 1e-9);                /* 0.01 after one */
    assert_true(last[2] == (double)gold_sched_bases[2]);     /* 1e-5 never moves */
}

/* More bases than the memo table holds, asked in a scrambled order at every step,
 * give what a schedule that only ever sees one of them gives. */
static void test_schedule_plateau_many_bases_independent(void **state) {
    fx *f = *state;
    const gold_sched_case *g = golden("plateau_max_abs_every_step");
    nc_schedule_options o;
    options_of_case(g, &o);
    enum { NB = 40 };
    float bases[NB];
    for (int i = 0; i < NB; i++) bases[i] = 1e-4f * powf(1.37f, (float)i);
    nc_schedule *all = make(f->ctx, &o);
    nc_schedule *one[NB];
    for (int i = 0; i < NB; i++) one[i] = make(f->ctx, &o);
    for (int p = 1; p <= g->steps; p++) {
        assert_int_equal(nc_schedule_step(all, g->metrics[p - 1]), NC_OK);
        for (int i = 0; i < NB; i++) assert_int_equal(nc_schedule_step(one[i], g->metrics[p - 1]), NC_OK);
        for (int k = 0; k < NB; k++) {
            int i = (k * 17 + p * 5) % NB; /* 17 is coprime with 40: a permutation */
            float want = p % 7 == 0 || i % 3 == 0 ? nc_schedule_lr(one[i], bases[i]) : NAN;
            float got = nc_schedule_lr(all, bases[i]);
            if (!isnan(want) && got != want) fail_msg("position %d base %g: %g != %g", p, bases[i], got, want);
        }
    }
    for (int i = 0; i < NB; i++) {
        assert_true(nc_schedule_lr(all, bases[i]) == nc_schedule_lr(one[i], bases[i]));
        nc_schedule_destroy(one[i]);
    }
    nc_schedule_destroy(all);
}

/* ------------------------------------------------------------ metrics */

static void test_schedule_plateau_nonfinite_metric_changes_nothing(void **state) {
    fx *f = *state;
    const gold_sched_case *g = golden("plateau_min_abs_cooldown");
    nc_schedule_options o;
    options_of_case(g, &o);
    nc_schedule *s = make(f->ctx, &o);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    int next = 0;
    for (int p = 0; p <= g->steps; p++) {
        if (p > 0) {
            nc__schedule_state before, after;
            nc__schedule_state_get(s, &before);
            float lr_before = nc_schedule_lr(s, 0.1f);
            assert_int_equal(nc_schedule_step(s, bad[p % 3]), NC_ERR_NUMERIC);
            assert_error_mentions(f->ctx, "metric");
            nc__schedule_state_get(s, &after);
            assert_memory_equal(&before, &after, sizeof before);
            assert_true(nc_schedule_lr(s, 0.1f) == lr_before);
            assert_int_equal(nc_schedule_step(s, g->metrics[p - 1]), NC_OK);
        }
        assert_int_equal(nc_schedule_position(s), p);
        if (g->positions[next] == p) {
            for (int b = 0; b < GOLD_SCHED_NUM_BASES; b++)
                assert_lr_close(nc_schedule_lr(s, gold_sched_bases[b]), g->lr[next * GOLD_SCHED_NUM_BASES + b],
                                g->name, p, b);
            next++;
        }
    }
    nc_schedule_destroy(s);
}

static void test_schedule_other_kinds_ignore_metric(void **state) {
    fx *f = *state;
    nc_schedule_options o;
    nc_schedule_options_init(&o);
    o.kind = NC_SCHEDULE_EXPONENTIAL;
    o.gamma = 0.5f;
    nc_schedule *s = make(f->ctx, &o);
    assert_int_equal(nc_schedule_step(s, NAN), NC_OK);
    assert_int_equal(nc_schedule_step(s, INFINITY), NC_OK);
    assert_int_equal(nc_schedule_step(s, 3.0f), NC_OK);
    assert_int_equal(nc_schedule_position(s), 3);
    assert_true(nc_schedule_lr(s, 1.0f) == 0.125f);
    nc_schedule_destroy(s);
}

/* ------------------------------------------------------------ basics */

static void test_schedule_options_init_defaults(void **state) {
    (void)state;
    nc_schedule_options o;
    memset(&o, 0xab, sizeof o);
    nc_schedule_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.kind, NC_SCHEDULE_CONSTANT);
    assert_int_equal(o.step_size, 30);
    assert_true(o.gamma == 0.1f);
    assert_null(o.milestones);
    assert_int_equal(o.num_milestones, 0);
    assert_int_equal(o.t_max, 100);
    assert_true(o.eta_min == 0.0f);
    assert_int_equal(o.warmup_steps, 0);
    assert_true(o.warmup_start_factor == 1.0f / 3.0f);
    assert_int_equal(o.mode_max, 0);
    assert_true(o.factor == 0.1f);
    assert_int_equal(o.patience, 10);
    assert_true(o.threshold == 1e-4f);
    assert_int_equal(o.threshold_abs, 0);
    assert_int_equal(o.cooldown, 0);
    assert_true(o.min_lr == 0.0f);
    assert_true(o.plateau_eps == 1e-8f);
    nc_schedule_options_init(NULL); /* ignored */
}

static void test_schedule_null_handling(void **state) {
    fx *f = *state;
    nc_schedule *s = (nc_schedule *)&s;
    assert_int_equal(nc_schedule_create(NULL, NULL, &s), NC_ERR_NULL);
    assert_int_equal(nc_schedule_create(f->ctx, NULL, NULL), NC_ERR_NULL);
    assert_error_mentions(f->ctx, "out");
    nc_schedule_destroy(NULL);
    assert_int_equal(nc_schedule_step(NULL, 1.0f), NC_ERR_NULL);
    assert_true(nc_schedule_lr(NULL, 0.25f) == 0.25f); /* no schedule: the rate stays */
    assert_int_equal(nc_schedule_position(NULL), 0);
    /* NULL options: the defaults (CONSTANT). */
    s = make(f->ctx, NULL);
    assert_int_equal(nc_schedule_step(s, 0.0f), NC_OK);
    assert_true(nc_schedule_lr(s, 0.3f) == 0.3f);
    assert_int_equal(nc_schedule_position(s), 1);
    assert_int_equal(nc__schedule_state_set(NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc__schedule_state_set(s, NULL), NC_ERR_NULL);
    assert_ptr_equal(nc__schedule_context(s), f->ctx);
    nc_schedule_destroy(s);
}

typedef struct bad_case {
    const char *what; /* the field the message must name */
    void (*mutate)(nc_schedule_options *o);
} bad_case;

static int neg_milestones[3] = {2, 0, 5}, down_milestones[3] = {2, 5, 4};

static void m_kind(nc_schedule_options *o) { o->kind = (nc_schedule_kind)6; }
static void m_kind_neg(nc_schedule_options *o) { o->kind = (nc_schedule_kind)-1; }
static void m_step_size(nc_schedule_options *o) { o->kind = NC_SCHEDULE_STEP, o->step_size = 0; }
static void m_step_gamma(nc_schedule_options *o) { o->kind = NC_SCHEDULE_STEP, o->gamma = 0; }
static void m_exp_gamma_nan(nc_schedule_options *o) { o->kind = NC_SCHEDULE_EXPONENTIAL, o->gamma = NAN; }
static void m_exp_gamma_inf(nc_schedule_options *o) { o->kind = NC_SCHEDULE_EXPONENTIAL, o->gamma = INFINITY; }
static void m_ms_gamma(nc_schedule_options *o) { o->kind = NC_SCHEDULE_MULTISTEP, o->gamma = -0.5f; }
static void m_ms_count(nc_schedule_options *o) { o->kind = NC_SCHEDULE_MULTISTEP, o->num_milestones = -1; }
static void m_ms_null(nc_schedule_options *o) { o->kind = NC_SCHEDULE_MULTISTEP, o->num_milestones = 2; }
static void m_ms_zero(nc_schedule_options *o) {
    o->kind = NC_SCHEDULE_MULTISTEP, o->milestones = neg_milestones, o->num_milestones = 3;
}
static void m_ms_down(nc_schedule_options *o) {
    o->kind = NC_SCHEDULE_MULTISTEP, o->milestones = down_milestones, o->num_milestones = 3;
}
static void m_tmax(nc_schedule_options *o) { o->kind = NC_SCHEDULE_COSINE, o->t_max = 0; }
static void m_eta(nc_schedule_options *o) { o->kind = NC_SCHEDULE_COSINE, o->eta_min = -1e-3f; }
static void m_warm(nc_schedule_options *o) { o->kind = NC_SCHEDULE_COSINE, o->warmup_steps = -1; }
static void m_sf0(nc_schedule_options *o) { o->kind = NC_SCHEDULE_COSINE, o->warmup_steps = 2, o->warmup_start_factor = 0; }
static void m_sf2(nc_schedule_options *o) {
    o->kind = NC_SCHEDULE_COSINE, o->warmup_steps = 2, o->warmup_start_factor = 1.5f;
}
static void m_mode(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->mode_max = 2; }
static void m_factor1(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->factor = 1.0f; }
static void m_factor0(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->factor = 0.0f; }
static void m_patience(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->patience = -1; }
static void m_threshold(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->threshold = -1e-4f; }
static void m_threshold_abs(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->threshold_abs = 7; }
static void m_cooldown(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->cooldown = -2; }
static void m_min_lr(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->min_lr = NAN; }
static void m_eps(nc_schedule_options *o) { o->kind = NC_SCHEDULE_PLATEAU, o->plateau_eps = -1.0f; }
static void m_size_small(nc_schedule_options *o) { o->struct_size = sizeof(size_t); }
static void m_size_big(nc_schedule_options *o) { o->struct_size = sizeof *o + 8; }

static void test_schedule_rejects_bad_options(void **state) {
    fx *f = *state;
    static const bad_case cases[] = {
        {"kind", m_kind},           {"kind", m_kind_neg},
        {"step_size", m_step_size}, {"gamma", m_step_gamma},
        {"gamma", m_exp_gamma_nan}, {"gamma", m_exp_gamma_inf},
        {"gamma", m_ms_gamma},      {"num_milestones", m_ms_count},
        {"milestones", m_ms_null},  {"milestones[1]", m_ms_zero},
        {"increasing", m_ms_down},  {"t_max", m_tmax},
        {"eta_min", m_eta},         {"warmup_steps", m_warm},
        {"warmup_start_factor", m_sf0}, {"warmup_start_factor", m_sf2},
        {"mode_max", m_mode},       {"factor", m_factor1},
        {"factor", m_factor0},      {"patience", m_patience},
        {"threshold", m_threshold}, {"threshold_abs", m_threshold_abs},
        {"cooldown", m_cooldown},   {"min_lr", m_min_lr},
        {"plateau_eps", m_eps},     {"struct_size", m_size_small},
        {"struct_size", m_size_big},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nc_schedule_options o;
        nc_schedule_options_init(&o);
        cases[i].mutate(&o);
        nc_schedule *s = (nc_schedule *)&o;
        nc_status st = nc_schedule_create(f->ctx, &o, &s);
        if (st != NC_ERR_INVALID_ARGUMENT) fail_msg("case %zu (%s): status %s", i, cases[i].what, nc_status_str(st));
        assert_null(s);
        assert_error_mentions(f->ctx, cases[i].what);
        assert_error_mentions(f->ctx, "nc_schedule_create");
    }
}

/* Fields a kind does not use are not checked (torch never sees them). */
static void test_schedule_unused_fields_ignored(void **state) {
    fx *f = *state;
    nc_schedule_options o;
    nc_schedule_options_init(&o);
    o.kind = NC_SCHEDULE_COSINE;
    o.gamma = -1.0f;
    o.step_size = 0;
    o.factor = 7.0f;
    o.num_milestones = 5; /* milestones NULL: ignored outside MULTISTEP */
    o.warmup_start_factor = 0.0f; /* no warmup: no LinearLR */
    nc_schedule *s = make(f->ctx, &o);
    nc_schedule_options got;
    nc__schedule_options_get(s, &got);
    assert_int_equal(got.num_milestones, 0);
    assert_null(got.milestones);
    assert_int_equal(got.struct_size, sizeof got);
    nc_schedule_destroy(s);
}

static void test_schedule_milestones_copied_duplicates_compound(void **state) {
    fx *f = *state;
    int ms[4] = {2, 4, 4, 6};
    nc_schedule_options o;
    nc_schedule_options_init(&o);
    o.kind = NC_SCHEDULE_MULTISTEP;
    o.gamma = 0.5f;
    o.milestones = ms;
    o.num_milestones = 4;
    nc_schedule *s = make(f->ctx, &o);
    ms[0] = ms[1] = ms[2] = ms[3] = 1; /* the schedule kept its own copy */
    const float want[8] = {1, 1, 0.5f, 0.5f, 0.125f, 0.125f, 0.0625f, 0.0625f};
    for (int p = 0; p < 8; p++) {
        if (p > 0) assert_int_equal(nc_schedule_step(s, 0), NC_OK);
        assert_true(nc_schedule_lr(s, 1.0f) == want[p]);
    }
    nc_schedule_options got;
    nc__schedule_options_get(s, &got);
    assert_int_equal(got.num_milestones, 4);
    assert_int_equal(got.milestones[1], 4);
    assert_int_equal(got.milestones[2], 4);
    nc_schedule_destroy(s);
}

static void test_schedule_position_counts_steps(void **state) {
    fx *f = *state;
    for (int kind = NC_SCHEDULE_CONSTANT; kind <= NC_SCHEDULE_PLATEAU; kind++) {
        nc_schedule_options o;
        nc_schedule_options_init(&o);
        o.kind = (nc_schedule_kind)kind;
        nc_schedule *s = make(f->ctx, &o);
        assert_int_equal(nc_schedule_position(s), 0);
        for (int i = 1; i <= 250; i++) {
            assert_int_equal(nc_schedule_step(s, 1.0f / (float)i), NC_OK);
            assert_int_equal(nc_schedule_position(s), i);
        }
        nc_schedule_destroy(s);
    }
}

/* The same options and metrics give bit-identical rates, however often they are read. */
static void test_schedule_deterministic(void **state) {
    fx *f = *state;
    for (int c = 0; c < GOLD_SCHED_NUM_CASES; c++) {
        const gold_sched_case *g = &gold_sched_cases[c];
        if (g->steps > 1000) continue;
        nc_schedule_options o;
        options_of_case(g, &o);
        nc_schedule *a = make(f->ctx, &o), *b = make(f->ctx, &o);
        for (int p = 1; p <= g->steps; p++) {
            assert_int_equal(nc_schedule_step(a, case_metric(g, p - 1)), NC_OK);
            assert_int_equal(nc_schedule_step(b, case_metric(g, p - 1)), NC_OK);
            for (int k = 0; k < 3; k++) (void)nc_schedule_lr(a, 0.05f * (float)(k + 1)); /* a reads more */
            for (int i = 0; i < GOLD_SCHED_NUM_BASES; i++) {
                float x = nc_schedule_lr(a, gold_sched_bases[i]), y = nc_schedule_lr(b, gold_sched_bases[i]);
                assert_memory_equal(&x, &y, sizeof x);
            }
        }
        nc_schedule_destroy(a);
        nc_schedule_destroy(b);
    }
}

/* ------------------------------------------------------------ state (checkpoints) */

/* Saving mid-run and restoring into a fresh schedule continues identically. */
static void test_schedule_state_round_trip(void **state) {
    fx *f = *state;
    for (int c = 0; c < GOLD_SCHED_NUM_CASES; c++) {
        const gold_sched_case *g = &gold_sched_cases[c];
        if (g->steps > 1000) continue;
        nc_schedule_options o;
        options_of_case(g, &o);
        nc_schedule *a = make(f->ctx, &o), *b = make(f->ctx, &o);
        int half = g->steps / 2;
        for (int p = 1; p <= half; p++) assert_int_equal(nc_schedule_step(a, case_metric(g, p - 1)), NC_OK);
        (void)nc_schedule_lr(b, gold_sched_bases[0]); /* b's memo is at 0 reductions: must be dropped */
        nc__schedule_state saved;
        nc__schedule_state_get(a, &saved);
        assert_int_equal(saved.position, half);
        assert_int_equal(nc__schedule_state_set(b, &saved), NC_OK);
        assert_int_equal(nc_schedule_position(b), half);
        for (int p = half; p <= g->steps; p++) {
            if (p > half) {
                assert_int_equal(nc_schedule_step(a, case_metric(g, p - 1)), NC_OK);
                assert_int_equal(nc_schedule_step(b, case_metric(g, p - 1)), NC_OK);
            }
            for (int i = 0; i < GOLD_SCHED_NUM_BASES; i++)
                assert_true(nc_schedule_lr(a, gold_sched_bases[i]) == nc_schedule_lr(b, gold_sched_bases[i]));
        }
        /* ... and both end where torch ends. */
        const double *last = g->lr + (size_t)(g->num_points - 1) * GOLD_SCHED_NUM_BASES;
        for (int i = 0; i < GOLD_SCHED_NUM_BASES; i++)
            assert_lr_close(nc_schedule_lr(b, gold_sched_bases[i]), last[i], g->name, g->steps, i);
        nc_schedule_destroy(a);
        nc_schedule_destroy(b);
    }
}

static void test_schedule_state_set_rejects_inconsistent(void **state) {
    fx *f = *state;
    nc_schedule_options o;
    nc_schedule_options_init(&o);
    o.kind = NC_SCHEDULE_PLATEAU;
    o.patience = 2;
    o.cooldown = 3;
    nc_schedule *s = make(f->ctx, &o);
    nc__schedule_state fresh;
    nc__schedule_state_get(s, &fresh);
    assert_int_equal(fresh.position, 0);
    assert_true(isinf(fresh.best) && fresh.best > 0); /* mode min starts at +inf */
    struct {
        const char *what;
        nc__schedule_state st;
    } bad[] = {
        {"position", {-1, 0, 0, 0, 1.0}},
        {"reductions", {3, 4, 0, 0, 1.0}},
        {"reductions", {3, -1, 0, 0, 1.0}},
        {"num_bad_epochs", {3, 1, 3, 0, 1.0}},
        {"cooldown_counter", {3, 1, 0, 4, 1.0}},
        {"best", {3, 1, 0, 0, NAN}},
        {"best", {3, 1, 0, 0, -INFINITY}}, /* mode min never holds -inf */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(nc__schedule_state_set(s, &bad[i].st), NC_ERR_INVALID_ARGUMENT);
        assert_error_mentions(f->ctx, bad[i].what);
        nc__schedule_state now;
        nc__schedule_state_get(s, &now);
        assert_memory_equal(&now, &fresh, sizeof now); /* unchanged */
    }
    nc__schedule_state ok = {10, 2, 2, 3, 0.25};
    assert_int_equal(nc__schedule_state_set(s, &ok), NC_OK);
    assert_true(nc_schedule_lr(s, 1.0f) == (float)(1.0 * (double)0.1f * (double)0.1f));
    nc_schedule_destroy(s);

    /* Non-PLATEAU kinds carry only a position. */
    o.kind = NC_SCHEDULE_STEP;
    o.step_size = 2;
    o.gamma = 0.5f;
    s = make(f->ctx, &o);
    nc__schedule_state st = {5, 0, 0, 0, 0.0};
    assert_int_equal(nc__schedule_state_set(s, &st), NC_OK);
    assert_true(nc_schedule_lr(s, 1.0f) == 0.25f);
    st.reductions = 1;
    assert_int_equal(nc__schedule_state_set(s, &st), NC_ERR_INVALID_ARGUMENT);
    assert_error_mentions(f->ctx, "reductions");
    st.reductions = 0;
    st.best = 1.0;
    assert_int_equal(nc__schedule_state_set(s, &st), NC_ERR_INVALID_ARGUMENT);
    assert_error_mentions(f->ctx, "best");
    nc_schedule_destroy(s);
}

/* ------------------------------------------------------------ memory */

static void test_schedule_out_of_memory_at_every_allocation(void **state) {
    fx *f = *state;
    int ms[3] = {1, 2, 3};
    nc_schedule_options o;
    nc_schedule_options_init(&o);
    o.kind = NC_SCHEDULE_MULTISTEP;
    o.milestones = ms;
    o.num_milestones = 3;
    int succeeded = 0;
    for (long k = 0; k < 10 && !succeeded; k++) {
        f->cnt.fail_after = f->cnt.calls + k;
        nc_schedule *s = (nc_schedule *)&o;
        nc_status st = nc_schedule_create(f->ctx, &o, &s);
        f->cnt.fail_after = -1;
        if (st == NC_OK) {
            succeeded = 1;
            assert_int_equal(k, 2); /* the handle and the milestones */
            nc_schedule_destroy(s);
        } else {
            assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
            assert_null(s);
            assert_int_equal(f->cnt.live, f->base);
        }
    }
    assert_true(succeeded);
    /* nc_schedule_lr and nc_schedule_step never allocate. */
    o.kind = NC_SCHEDULE_PLATEAU;
    o.patience = 0;
    nc_schedule *s = make(f->ctx, &o);
    long calls = f->cnt.calls;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(nc_schedule_step(s, 1.0f), NC_OK);
        for (int b = 0; b < 40; b++) (void)nc_schedule_lr(s, 0.001f * (float)(b + 1));
    }
    assert_int_equal(f->cnt.calls, calls);
    nc_schedule_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schedule_matches_torch_every_recorded_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_late_first_query_matches_torch, setup, teardown),
        cmocka_unit_test(test_schedule_golden_covers_edge_behaviour),
        cmocka_unit_test_setup_teardown(test_schedule_plateau_many_bases_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_plateau_nonfinite_metric_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_other_kinds_ignore_metric, setup, teardown),
        cmocka_unit_test(test_schedule_options_init_defaults),
        cmocka_unit_test_setup_teardown(test_schedule_null_handling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_rejects_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_unused_fields_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_milestones_copied_duplicates_compound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_position_counts_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_state_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_state_set_rejects_inconsistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_out_of_memory_at_every_allocation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
