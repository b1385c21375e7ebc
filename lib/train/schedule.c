/* schedule.c — learning-rate schedules with PyTorch 1.13's semantics (StepLR,
 * MultiStepLR, ExponentialLR, LinearLR warmup + CosineAnnealingLR, ReduceLROnPlateau),
 * each a function of the step count (and, for PLATEAU, of the metrics seen), so one
 * schedule serves any number of parameter groups through their initial rates.
 *
 * Closed forms. torch updates each group's lr recursively (lr *= ...); we evaluate
 * the product in closed form in double, from the float options converted exactly to
 * double (so parity is with torch given the same float32-rounded values). The two
 * agree to (steps x a few ulps) of double, far inside float precision:
 *   STEP         base * gamma^(n / step_size)           (torch: repeated lr * gamma)
 *   MULTISTEP    base * gamma^(milestones <= n)         (duplicates compound, as
 *                                                        torch's Counter does)
 *   EXPONENTIAL  base * gamma^n
 *   COSINE       warmup n < W: base * (sf + (1 - sf) * n / W)   (LinearLR's product
 *                telescopes to this); then t = n - W on the cosine (SequentialLR hands
 *                over at n = W with step(0), i.e. lr = base). Inside a half-period
 *                segment torch's ratio recursion telescopes exactly (each step's
 *                numerator is the next step's denominator, the same double), so for
 *                t <= T lr = eta + (base - eta)(1 + cos(pi t / T)) / 2. At
 *                t = (2k+1)T + 1 torch restarts from its additive branch
 *                eta + (base - eta)(1 - cos(pi / T)) / 2 (lr_{t-1} is exactly eta
 *                there), and recurses by ratios again; we anchor each later segment
 *                on that same value, so past t_max the rate rises back to base at 2T,
 *                falls to eta_min at 3T, ... as torch's does. (With glibc's cos the
 *                plain closed form agrees too, to ~1e-13; anchoring keeps the match
 *                independent of how cos rounds near the minima, where 1 - cos(pi/T)
 *                has few significant bits for large T.)
 * Fields a kind does not use are not validated (torch never sees them). A NULL
 * schedule's rate is the base rate.
 *   PLATEAU      torch's step(): is_better / bad epochs / cooldown on double metrics.
 *                A reduction applies to every group: lr' = max(lr * factor, min_lr),
 *                kept only when lr - lr' > eps (after a rejected one every later one is
 *                rejected too, lr being unchanged). We count reduction events; the rate
 *                of a base is those events applied in order from base, memoized in a
 *                small per-schedule table. A base first asked for after k events gets
 *                the rate a torch group holding it from the start would have.
 */
#include "train/schedule.h"
#include "core/context.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* math.pi, the double torch uses (M_PI is not in strict C11 + POSIX headers). */
#define PI_DOUBLE 3.141592653589793
#define PLATEAU_CACHE 16 /* distinct base rates memoized; more still work (recomputed) */

/* One base rate's PLATEAU progress: `applied` reduction events folded into lr. */
typedef struct plateau_entry {
    uint32_t key;    /* bit pattern of the float base rate */
    int used;
    int settled;     /* an event was rejected: lr never changes again */
    int64_t applied; /* events folded into lr */
    double lr;
} plateau_entry;

struct nc_schedule {
    nc_context *ctx;
    nc_schedule_options opt; /* resolved; opt.milestones == milestones */
    int *milestones;         /* (num_milestones,) owned copy, non-decreasing */
    nc__schedule_state st;
    plateau_entry cache[PLATEAU_CACHE];
    unsigned next_slot;      /* round-robin victim when the cache is full */
};

void nc_schedule_options_init(nc_schedule_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->kind = NC_SCHEDULE_CONSTANT;
    opt->step_size = 30;
    opt->gamma = 0.1f;
    opt->milestones = NULL;
    opt->num_milestones = 0;
    opt->t_max = 100;
    opt->eta_min = 0.0f;
    opt->warmup_steps = 0;
    opt->warmup_start_factor = 1.0f / 3.0f;
    opt->mode_max = 0;
    opt->factor = 0.1f;
    opt->patience = 10;
    opt->threshold = 1e-4f;
    opt->threshold_abs = 0;
    opt->cooldown = 0;
    opt->min_lr = 0.0f;
    opt->plateau_eps = 1e-8f;
}

/* ------------------------------------------------------------ validation */

#define FN "nc_schedule_create"

static nc_status bad(nc_context *ctx, const char *field, const char *rule, double got) {
    return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, FN ": %s must be %s (got %g)", field, rule, got);
}

/* Checks the fields the kind uses (others are ignored, as torch never sees them). */
static nc_status check_options(nc_context *ctx, const nc_schedule_options *o) {
    switch (o->kind) {
    case NC_SCHEDULE_CONSTANT: return NC_OK;
    case NC_SCHEDULE_STEP:
        if (o->step_size < 1) return bad(ctx, "step_size", ">= 1", o->step_size);
        if (!(isfinite(o->gamma) && o->gamma > 0)) return bad(ctx, "gamma", "finite and > 0", o->gamma);
        return NC_OK;
    case NC_SCHEDULE_MULTISTEP:
        if (!(isfinite(o->gamma) && o->gamma > 0)) return bad(ctx, "gamma", "finite and > 0", o->gamma);
        if (o->num_milestones < 0) return bad(ctx, "num_milestones", ">= 0", o->num_milestones);
        if (o->num_milestones > 0 && !o->milestones)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, FN ": milestones is NULL but num_milestones is %d",
                             o->num_milestones);
        for (int i = 0; i < o->num_milestones; i++) {
            if (o->milestones[i] < 1)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, FN ": milestones[%d] must be >= 1 (got %d)", i,
                                 o->milestones[i]);
            if (i > 0 && o->milestones[i] < o->milestones[i - 1])
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                 FN ": milestones must be increasing (milestones[%d] = %d < milestones[%d] = %d)",
                                 i, o->milestones[i], i - 1, o->milestones[i - 1]);
        }
        return NC_OK;
    case NC_SCHEDULE_EXPONENTIAL:
        if (!(isfinite(o->gamma) && o->gamma > 0)) return bad(ctx, "gamma", "finite and > 0", o->gamma);
        return NC_OK;
    case NC_SCHEDULE_COSINE:
        if (o->t_max < 1) return bad(ctx, "t_max", ">= 1", o->t_max);
        if (!(isfinite(o->eta_min) && o->eta_min >= 0)) return bad(ctx, "eta_min", "finite and >= 0", o->eta_min);
        if (o->warmup_steps < 0) return bad(ctx, "warmup_steps", ">= 0", o->warmup_steps);
        if (o->warmup_steps > 0 && !(o->warmup_start_factor > 0 && o->warmup_start_factor <= 1))
            return bad(ctx, "warmup_start_factor", "in (0, 1]", o->warmup_start_factor);
        return NC_OK;
    case NC_SCHEDULE_PLATEAU:
        if (o->mode_max != 0 && o->mode_max != 1) return bad(ctx, "mode_max", "0 or 1", o->mode_max);
        if (!(o->factor > 0 && o->factor < 1)) return bad(ctx, "factor", "in (0, 1)", o->factor);
        if (o->patience < 0) return bad(ctx, "patience", ">= 0", o->patience);
        if (!(isfinite(o->threshold) && o->threshold >= 0))
            return bad(ctx, "threshold", "finite and >= 0", o->threshold);
        if (o->threshold_abs != 0 && o->threshold_abs != 1)
            return bad(ctx, "threshold_abs", "0 or 1", o->threshold_abs);
        if (o->cooldown < 0) return bad(ctx, "cooldown", ">= 0", o->cooldown);
        if (!(isfinite(o->min_lr) && o->min_lr >= 0)) return bad(ctx, "min_lr", "finite and >= 0", o->min_lr);
        if (!(isfinite(o->plateau_eps) && o->plateau_eps >= 0))
            return bad(ctx, "plateau_eps", "finite and >= 0", o->plateau_eps);
        return NC_OK;
    }
    return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, FN ": kind %d is not an nc_schedule_kind", (int)o->kind);
}

/* The state of a fresh schedule (torch right after construction). */
static void initial_state(const nc_schedule_options *o, nc__schedule_state *st) {
    memset(st, 0, sizeof *st);
    if (o->kind == NC_SCHEDULE_PLATEAU) st->best = o->mode_max ? -INFINITY : INFINITY;
}

nc_status nc_schedule_create(nc_context *ctx, const nc_schedule_options *opt, nc_schedule **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out) return nc__error(ctx, NC_ERR_NULL, FN ": out is NULL");
    *out = NULL;
    nc_schedule_options o;
    nc_schedule_options_init(&o);
    if (opt) {
        const size_t min_size = offsetof(nc_schedule_options, plateau_eps) + sizeof opt->plateau_eps;
        if (opt->struct_size < min_size || opt->struct_size > sizeof o)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             FN ": struct_size %zu is not that of nc_schedule_options (%zu); call "
                                "nc_schedule_options_init",
                             opt->struct_size, sizeof o);
        memcpy(&o, opt, opt->struct_size);
        o.struct_size = sizeof o;
    }
    nc_status st = check_options(ctx, &o);
    if (st != NC_OK) return st;
    if (o.kind != NC_SCHEDULE_MULTISTEP) { /* milestones belong to MULTISTEP only */
        o.milestones = NULL;
        o.num_milestones = 0;
    }

    nc_schedule *s = nc__calloc(ctx, 1, sizeof *s);
    if (!s) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, FN ": out of memory");
    s->ctx = ctx;
    if (o.num_milestones > 0) {
        s->milestones = nc__alloc(ctx, (size_t)o.num_milestones * sizeof *s->milestones);
        if (!s->milestones) {
            nc__free(ctx, s);
            return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, FN ": out of memory for %d milestones", o.num_milestones);
        }
        memcpy(s->milestones, o.milestones, (size_t)o.num_milestones * sizeof *s->milestones);
    }
    o.milestones = s->milestones;
    s->opt = o;
    initial_state(&o, &s->st);
    *out = s;
    return NC_OK;
}

#undef FN

void nc_schedule_destroy(nc_schedule *s) {
    if (!s) return;
    nc_context *ctx = s->ctx;
    nc__free(ctx, s->milestones);
    nc__free(ctx, s);
}

/* ------------------------------------------------------------ stepping */

/* torch ReduceLROnPlateau.is_better, in double. */
static int is_better(const nc_schedule_options *o, double a, double best) {
    double th = (double)o->threshold;
    if (!o->mode_max) return o->threshold_abs ? a < best - th : a < best * (1.0 - th);
    return o->threshold_abs ? a > best + th : a > best * (th + 1.0);
}

nc_status nc_schedule_step(nc_schedule *s, float metric) {
    if (!s) return NC_ERR_NULL;
    nc__schedule_state *st = &s->st;
    if (st->position == INT64_MAX)
        return nc__error(s->ctx, NC_ERR_LIMIT, "nc_schedule_step: the step counter is at its maximum");
    if (s->opt.kind == NC_SCHEDULE_PLATEAU) {
        if (!isfinite(metric))
            return nc__error(s->ctx, NC_ERR_NUMERIC, "nc_schedule_step: metric is %g (PLATEAU needs a finite value)",
                             (double)metric);
        const nc_schedule_options *o = &s->opt;
        double current = (double)metric;
        if (is_better(o, current, st->best)) {
            st->best = current;
            st->num_bad_epochs = 0;
        } else {
            st->num_bad_epochs++;
        }
        if (st->cooldown_counter > 0) { /* in cooldown: bad epochs are ignored */
            st->cooldown_counter--;
            st->num_bad_epochs = 0;
        }
        if (st->num_bad_epochs > o->patience) {
            st->reductions++;
            st->cooldown_counter = o->cooldown;
            st->num_bad_epochs = 0;
        }
    }
    st->position++;
    return NC_OK;
}

/* Number of milestones <= n (bisect_right over the sorted copy). */
static int64_t milestones_passed(const nc_schedule *s, int64_t n) {
    int lo = 0, hi = s->opt.num_milestones;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if ((int64_t)s->milestones[mid] <= n) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static double cosine_lr(const nc_schedule_options *o, int64_t n, double base) {
    const int64_t w = o->warmup_steps;
    if (n < w) { /* LinearLR(start_factor=sf, end_factor=1, total_iters=w) */
        double sf = (double)o->warmup_start_factor;
        return base * (sf + (1.0 - sf) * (double)n / (double)w);
    }
    const int64_t t = n - w, tmax = o->t_max;
    const double eta = (double)o->eta_min, T = (double)tmax;
    if (t <= tmax) return eta + (base - eta) * (1.0 + cos(PI_DOUBLE * (double)t / T)) / 2.0;
    /* Later segments start at torch's additive branch, t0 = (2k+1)T + 1. */
    int64_t t0 = tmax + 1 + 2 * tmax * ((t - tmax - 1) / (2 * tmax));
    double d0 = (base - eta) * (1.0 - cos(PI_DOUBLE / T)) / 2.0;
    if (t == t0) return eta + d0;
    double den = 1.0 + cos(PI_DOUBLE * (double)t0 / T);
    if (den == 0.0) return eta; /* only when 1 - cos(pi/T) == 0 too (T ~ 1e8+): d0 is 0 */
    return eta + d0 * ((1.0 + cos(PI_DOUBLE * (double)t / T)) / den);
}

/* One torch _reduce_lr on a group holding `lr`; returns 0 when the change is rejected. */
static int reduce_once(const nc_schedule_options *o, double *lr) {
    double old_lr = *lr, new_lr = old_lr * (double)o->factor, floor_lr = (double)o->min_lr;
    if (floor_lr > new_lr) new_lr = floor_lr; /* Python max(new, min_lr) */
    if (old_lr - new_lr > (double)o->plateau_eps) {
        *lr = new_lr;
        return 1;
    }
    return 0;
}

static void plateau_advance(const nc_schedule_options *o, plateau_entry *e, int64_t events) {
    while (!e->settled && e->applied < events) {
        if (!reduce_once(o, &e->lr)) e->settled = 1;
        e->applied++;
    }
}

static double plateau_lr(nc_schedule *s, float base) {
    uint32_t key;
    memcpy(&key, &base, sizeof key);
    plateau_entry *e = NULL;
    for (int i = 0; i < PLATEAU_CACHE && !e; i++)
        if (s->cache[i].used && s->cache[i].key == key) e = &s->cache[i];
    if (!e) {
        e = &s->cache[s->next_slot];
        s->next_slot = (s->next_slot + 1) % PLATEAU_CACHE;
        *e = (plateau_entry){.key = key, .used = 1, .settled = 0, .applied = 0, .lr = (double)base};
    }
    plateau_advance(&s->opt, e, s->st.reductions);
    return e->lr;
}

float nc_schedule_lr(nc_schedule *s, float base_lr) {
    if (!s) return base_lr; /* no schedule: the rate stays */
    const nc_schedule_options *o = &s->opt;
    const int64_t n = s->st.position;
    const double base = (double)base_lr;
    switch (o->kind) {
    case NC_SCHEDULE_CONSTANT: return base_lr;
    case NC_SCHEDULE_STEP: return (float)(base * pow((double)o->gamma, (double)(n / o->step_size)));
    case NC_SCHEDULE_MULTISTEP: return (float)(base * pow((double)o->gamma, (double)milestones_passed(s, n)));
    case NC_SCHEDULE_EXPONENTIAL: return (float)(base * pow((double)o->gamma, (double)n));
    case NC_SCHEDULE_COSINE: return (float)cosine_lr(o, n, base);
    case NC_SCHEDULE_PLATEAU: return (float)plateau_lr(s, base_lr);
    }
    return base_lr; /* unreachable: the kind was checked at creation */
}

int64_t nc_schedule_position(const nc_schedule *s) { return s ? s->st.position : 0; }

/* ------------------------------------------------------------ private API */

void nc__schedule_state_get(const nc_schedule *s, nc__schedule_state *out) { *out = s->st; }

nc_status nc__schedule_state_set(nc_schedule *s, const nc__schedule_state *st) {
    if (!s) return NC_ERR_NULL;
    if (!st) return nc__error(s->ctx, NC_ERR_NULL, "nc__schedule_state_set: state is NULL");
    const nc_schedule_options *o = &s->opt;
#define BAD_STATE(field, rule)                                                                              \
    return nc__error(s->ctx, NC_ERR_INVALID_ARGUMENT, "nc__schedule_state_set: %s must be %s (got %g)", #field, \
                     rule, (double)(st->field))
    if (st->position < 0) BAD_STATE(position, ">= 0");
    if (o->kind == NC_SCHEDULE_PLATEAU) {
        double worse = o->mode_max ? -INFINITY : INFINITY;
        if (st->reductions < 0 || st->reductions > st->position) BAD_STATE(reductions, "in [0, position]");
        if (st->num_bad_epochs < 0 || st->num_bad_epochs > o->patience)
            BAD_STATE(num_bad_epochs, "in [0, patience]");
        if (st->cooldown_counter < 0 || st->cooldown_counter > o->cooldown)
            BAD_STATE(cooldown_counter, "in [0, cooldown]");
        if (!(isfinite(st->best) || st->best == worse)) BAD_STATE(best, "finite or the mode's starting infinity");
    } else {
        if (st->reductions != 0) BAD_STATE(reductions, "0 for this kind");
        if (st->num_bad_epochs != 0) BAD_STATE(num_bad_epochs, "0 for this kind");
        if (st->cooldown_counter != 0) BAD_STATE(cooldown_counter, "0 for this kind");
        if (st->best != 0) BAD_STATE(best, "0 for this kind");
    }
#undef BAD_STATE
    s->st = *st;
    memset(s->cache, 0, sizeof s->cache); /* memoized rates may be ahead of `reductions` */
    s->next_slot = 0;
    return NC_OK;
}

void nc__schedule_options_get(const nc_schedule *s, nc_schedule_options *out) { *out = s->opt; }

nc_context *nc__schedule_context(const nc_schedule *s) { return s->ctx; }
