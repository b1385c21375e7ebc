/* trainer.c — nc_trainer: one call = train-mode forward, the configured loss on the
 * host, backward through the graph, and (every accumulation_steps calls) an optimizer
 * update (SGD, Adam, AdamW as torch.optim) of every unfrozen trainable tensor in the
 * backend's own layout, with parameter groups, gradient clipping, a schedule and a
 * guard against non-finite losses and gradients. */
#include "neurc.h"
#include "core/context.h"
#include "core/model.h"
#include "core/rng.h"
#include "graph/exec.h"
#include "train/loss.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void nc_trainer_options_init(nc_trainer_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->lr = 0.01f;
    opt->momentum = 0.9f;
    opt->optimizer = NC_OPTIMIZER_SGD;
    opt->beta1 = 0.9f;
    opt->beta2 = 0.999f;
    opt->eps = 1e-8f;
    opt->loss = NC_LOSS_CROSS_ENTROPY;
    opt->ignore_label = -100;
    opt->accumulation_steps = 1;
    opt->max_nonfinite = 5;
}

static int finite_nonneg(float v) { return isfinite(v) && v >= 0.0f; }

static nc_status check_options(nc_context *ctx, const nc_trainer_options *o) {
    if (!finite_nonneg(o->lr))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: lr must be finite and >= 0 (got %g)", (double)o->lr);
    if (!finite_nonneg(o->momentum))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: momentum must be >= 0 (got %g)", (double)o->momentum);
    if (!finite_nonneg(o->weight_decay))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: weight_decay must be >= 0 (got %g)",
                         (double)o->weight_decay);
    if (!(o->dampening >= 0.0f && o->dampening <= 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: dampening must be in [0, 1] (got %g)",
                         (double)o->dampening);
    if (o->nesterov && (o->momentum <= 0.0f || o->dampening != 0.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: nesterov needs momentum > 0 and zero dampening");
    if ((unsigned)o->optimizer > NC_OPTIMIZER_ADAMW)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: unknown optimizer %d", (int)o->optimizer);
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f) || !(o->beta2 >= 0.0f && o->beta2 < 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: betas must be in [0, 1) (got %g, %g)", (double)o->beta1,
                         (double)o->beta2);
    if (!(o->eps >= 0.0f) || !isfinite(o->eps))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: eps must be finite and >= 0 (got %g)", (double)o->eps);
    if ((unsigned)o->loss > NC_LOSS_BCE_WITH_LOGITS)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: unknown loss %d", (int)o->loss);
    if (!(o->label_smoothing >= 0.0f && o->label_smoothing < 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: label_smoothing must be in [0, 1) (got %g)",
                         (double)o->label_smoothing);
    if (o->accumulation_steps < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: accumulation_steps must be >= 1 (got %d)",
                         o->accumulation_steps);
    if (!finite_nonneg(o->clip_grad_norm))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: clip_grad_norm must be finite and >= 0 (got %g)",
                         (double)o->clip_grad_norm);
    if (o->max_nonfinite < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: max_nonfinite must be >= 1 (got %d)",
                         o->max_nonfinite);
    return NC_OK;
}

/* Copies `count` weights into a new array of `total` by repeating them per head
 * (count == classes) or as they are (count == total). */
static nc_status copy_weights(nc_context *ctx, const char *what, const float *src, int count, int per_head,
                              int total, float **out) {
    *out = NULL;
    if (!src) return NC_OK;
    if (count != total && count != per_head)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: %s has %d values; the model needs %d (or %d per head)",
                         what, count, total, per_head);
    float *w = nc__alloc(ctx, (size_t)total * sizeof *w);
    if (!w) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "trainer: out of memory");
    for (int i = 0; i < total; i++) {
        w[i] = src[count == total ? i : i % per_head];
        if (!finite_nonneg(w[i])) {
            nc__free(ctx, w);
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: %s[%d] must be finite and >= 0 (got %g)", what,
                             count == total ? i : i % per_head, (double)src[count == total ? i : i % per_head]);
        }
    }
    *out = w;
    return NC_OK;
}

static nc_status setup_loss(nc_trainer *t) {
    nc_context *ctx = t->m->ctx;
    const nc_trainer_options *o = &t->opt;
    const int heads = t->m->graph->num_heads, classes = t->m->num_classes;
    nc_status st;
    t->loss.kind = o->loss;
    t->loss.label_smoothing = o->label_smoothing;
    t->loss.ignore_label = o->ignore_label;
    if ((st = copy_weights(ctx, "class_weights", o->class_weights, o->num_class_weights, classes, heads * classes,
                           &t->class_weights)) != NC_OK)
        return st;
    if ((st = copy_weights(ctx, "head_weights", o->head_weights, heads, heads, heads, &t->head_weights)) != NC_OK)
        return st;
    if ((st = copy_weights(ctx, "pos_weight", o->pos_weight, heads * classes, classes, heads * classes,
                           &t->pos_weight)) != NC_OK)
        return st;
    t->loss.class_weights = t->class_weights;
    t->loss.head_weights = t->head_weights;
    t->loss.pos_weight = t->pos_weight;
    return NC_OK;
}

static nc_status add_group_entry(nc_trainer *t, const char *name, float lr, float wd) {
    nc_context *ctx = t->m->ctx;
    if (nc__grow(ctx, (void **)&t->groups, sizeof *t->groups, &t->cap_groups, (size_t)t->n_groups + 1) != 0)
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "trainer: out of memory");
    nc__group *g = &t->groups[t->n_groups++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->lr = g->base_lr = lr;
    g->weight_decay = wd;
    return NC_OK;
}

nc_status nc_trainer_create(nc_model *m, const nc_trainer_options *opt, nc_trainer **out) {
    if (!m || !out) return m ? nc__error(m->ctx, NC_ERR_NULL, "nc_trainer_create: out is NULL") : NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    *out = NULL;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    if (opt) {
        if (opt->struct_size < offsetof(nc_trainer_options, optimizer) || opt->struct_size > sizeof o)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_trainer_create: bad struct_size %zu (expected %zu)",
                             opt->struct_size, sizeof o);
        memcpy(&o, opt, opt->struct_size);
        o.struct_size = sizeof o;
    }
    nc_status st = check_options(ctx, &o);
    if (st != NC_OK) return st;
    nc_trainer *t = nc__calloc(ctx, 1, sizeof *t);
    if (!t) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_trainer_create: out of memory");
    t->m = m;
    t->opt = o;
    const int nt = m->graph->n_tensors;
    t->tensor_group = nc__alloc(ctx, (size_t)(nt ? nt : 1) * sizeof *t->tensor_group);
    t->tensor_updates = nc__calloc(ctx, (size_t)(nt ? nt : 1), sizeof *t->tensor_updates);
    NC_CHECK_ALLOC(ctx, t->tensor_group);
    NC_CHECK_ALLOC(ctx, t->tensor_updates);
    for (int i = 0; i < nt; i++) t->tensor_group[i] = m->graph->tensors[i].trainable ? 0 : -1;
    NC_CHECK(add_group_entry(t, "default", o.lr, o.weight_decay));
    NC_CHECK(setup_loss(t));
    NC_CHECK(nc__model_ensure_grads(m));
    const size_t floats = m->arena_bytes / sizeof(float), bytes = m->arena_bytes ? m->arena_bytes : 64;
    const int two = o.optimizer != NC_OPTIMIZER_SGD;
    NC_CHECK(ctx->backend->alloc(ctx->backend_state, bytes, &t->state1));
    NC_CHECK(ctx->backend->fill(ctx->backend_state, t->state1, 0.0f, floats));
    if (two) {
        NC_CHECK(ctx->backend->alloc(ctx->backend_state, bytes, &t->state2));
        NC_CHECK(ctx->backend->fill(ctx->backend_state, t->state2, 0.0f, floats));
    }
    *out = t;
    return NC_OK;
fail:
    nc_trainer_destroy(t);
    return st;
}

void nc_trainer_destroy(nc_trainer *t) {
    if (!t) return;
    nc_context *ctx = t->m->ctx;
    if (t->state1) ctx->backend->free(ctx->backend_state, t->state1);
    if (t->state2) ctx->backend->free(ctx->backend_state, t->state2);
    nc__free(ctx, t->groups);
    nc__free(ctx, t->tensor_group);
    nc__free(ctx, t->tensor_updates);
    nc__free(ctx, t->class_weights);
    nc__free(ctx, t->head_weights);
    nc__free(ctx, t->pos_weight);
    nc__free(ctx, t->logits);
    nc__free(ctx, t->dlogits);
    nc__free(ctx, t);
}

/* ------------------------------------------------------------------ groups */

static int find_group(const nc_trainer *t, const char *name) {
    for (int g = 0; g < t->n_groups; g++)
        if (strcmp(t->groups[g].name, name) == 0) return g;
    return -1;
}

/* name starts with prefix at a module boundary: "layer1" matches "layer1.0.conv1.weight"
 * but not "layer10.weight". */
static int has_prefix(const char *name, const char *prefix, size_t len) {
    return strncmp(name, prefix, len) == 0 && (name[len] == '.' || name[len] == '\0');
}

nc_status nc_trainer_add_group(nc_trainer *t, const char *name, const char *prefixes, float lr, float weight_decay) {
    if (!t) return NC_ERR_NULL;
    nc_context *ctx = t->m->ctx;
    if (!name || !prefixes) return nc__error(ctx, NC_ERR_NULL, "nc_trainer_add_group: name or prefixes is NULL");
    if (t->steps > 0)
        return nc__error(ctx, NC_ERR_STATE, "nc_trainer_add_group: groups must be added before the first step");
    if (!name[0] || strlen(name) >= NC__GROUP_NAME || find_group(t, name) >= 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_trainer_add_group: group name '%s' is empty, too long or already used", name);
    if (!finite_nonneg(lr) || !finite_nonneg(weight_decay))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_trainer_add_group: '%s': lr and weight_decay must be finite and >= 0", name);
    const nc__graph *g = t->m->graph;
    const int index = t->n_groups;
    /* check every prefix matches something before changing anything */
    for (const char *p = prefixes; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        int found = 0;
        for (int i = 0; i < g->n_tensors && len; i++)
            found |= t->tensor_group[i] == 0 && has_prefix(g->tensors[i].name, p, len);
        if (len && !found)
            return nc__error(ctx, NC_ERR_NOT_FOUND,
                             "nc_trainer_add_group: '%s': no trainable tensor outside other groups starts with '%.*s'",
                             name, (int)len, p);
        p = end ? end + 1 : p + strlen(p);
    }
    nc_status st = add_group_entry(t, name, lr, weight_decay);
    if (st != NC_OK) return st;
    for (const char *p = prefixes; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        for (int i = 0; i < g->n_tensors && len; i++)
            if (t->tensor_group[i] == 0 && has_prefix(g->tensors[i].name, p, len)) t->tensor_group[i] = index;
        p = end ? end + 1 : p + strlen(p);
    }
    return NC_OK;
}

static nc_status group_arg(const nc_trainer *t, const char *fn, const char *name, int *g) {
    if (!name) return nc__error(t->m->ctx, NC_ERR_NULL, "%s: name is NULL", fn);
    *g = find_group(t, name);
    if (*g < 0) return nc__error(t->m->ctx, NC_ERR_NOT_FOUND, "%s: no group '%s'", fn, name);
    return NC_OK;
}

nc_status nc_trainer_freeze_group(nc_trainer *t, const char *name, int frozen) {
    if (!t) return NC_ERR_NULL;
    int g;
    nc_status st = group_arg(t, "nc_trainer_freeze_group", name, &g);
    if (st == NC_OK) t->groups[g].frozen = frozen != 0;
    return st;
}

nc_status nc_trainer_set_group_lr(nc_trainer *t, const char *name, float lr) {
    if (!t) return NC_ERR_NULL;
    int g;
    nc_status st = group_arg(t, "nc_trainer_set_group_lr", name, &g);
    if (st != NC_OK) return st;
    if (!finite_nonneg(lr))
        return nc__error(t->m->ctx, NC_ERR_INVALID_ARGUMENT, "nc_trainer_set_group_lr: lr must be finite and >= 0");
    t->groups[g].lr = lr;
    return NC_OK;
}

nc_status nc_trainer_group_lr(const nc_trainer *t, const char *name, float *lr) {
    if (!t) return NC_ERR_NULL;
    if (!lr) return nc__error(t->m->ctx, NC_ERR_NULL, "nc_trainer_group_lr: lr is NULL");
    int g;
    nc_status st = group_arg(t, "nc_trainer_group_lr", name, &g);
    if (st == NC_OK) *lr = t->groups[g].lr;
    return st;
}

nc_status nc_trainer_set_lr(nc_trainer *t, float lr) {
    if (!t) return NC_ERR_NULL;
    if (!finite_nonneg(lr))
        return nc__error(t->m->ctx, NC_ERR_INVALID_ARGUMENT, "nc_trainer_set_lr: lr must be finite and >= 0");
    t->groups[0].lr = lr;
    return NC_OK;
}

nc_status nc_trainer_set_schedule(nc_trainer *t, nc_schedule *s) {
    if (!t) return NC_ERR_NULL;
    t->schedule = s;
    return NC_OK;
}

int64_t nc_trainer_num_steps(const nc_trainer *t) { return t ? t->steps : 0; }

/* ------------------------------------------------------------------ update */

/* A 1-D tensor that is a bias or a normalisation weight (torch's usual no-decay set). */
static int is_bias_or_norm(const nc__tensor_def *d) { return d->role == NC__ROLE_BIAS || d->shape.ndim <= 1; }

/* Global L2 norm of the gradients that will be applied; *bad = first tensor with a
 * non-finite gradient (or -1). */
static nc_status grad_norm(nc_trainer *t, double *norm, int *bad) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    double total = 0.0;
    *bad = -1;
    for (int i = 0; i < m->graph->n_tensors; i++) {
        int g = t->tensor_group[i];
        if (g < 0 || t->groups[g].frozen) continue;
        double ss;
        nc_status st = ctx->backend->sum_squares(ctx->backend_state, (size_t)m->slots[i].numel,
                                                 nc__model_grad_ptr(m, i), &ss);
        if (st != NC_OK) return st;
        if (!isfinite(ss) && *bad < 0) *bad = i;
        total += ss;
    }
    *norm = sqrt(total);
    return NC_OK;
}

static nc_status clip_grads(nc_trainer *t, float coef) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    for (int i = 0; i < m->graph->n_tensors; i++) {
        int g = t->tensor_group[i];
        if (g < 0 || t->groups[g].frozen) continue;
        nc_status st = ctx->backend->scale(ctx->backend_state, (size_t)m->slots[i].numel, nc__model_grad_ptr(m, i), coef);
        if (st != NC_OK) return st;
    }
    return NC_OK;
}

static nc_status apply_update(nc_trainer *t) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    const nc_trainer_options *o = &t->opt;
    if (t->schedule)
        for (int g = 0; g < t->n_groups; g++) t->groups[g].lr = nc_schedule_lr(t->schedule, t->groups[g].base_lr);
    nc__model_params_changed(m); /* before the writes: also right when one fails half-way */
    for (int i = 0; i < m->graph->n_tensors; i++) {
        int gi = t->tensor_group[i];
        if (gi < 0 || t->groups[gi].frozen) continue;
        const nc__group *g = &t->groups[gi];
        const float wd = o->no_decay_norm_bias && is_bias_or_norm(&m->graph->tensors[i]) ? 0.0f : g->weight_decay;
        const size_t off = m->slots[i].offset, count = (size_t)m->slots[i].numel;
        void *p = (char *)m->arena + off, *gr = (char *)m->grad_arena + off, *s1 = (char *)t->state1 + off;
        nc_status st;
        if (o->optimizer == NC_OPTIMIZER_SGD) {
            nc__sgd_desc d = {g->lr, o->momentum, o->dampening, wd, o->nesterov, t->tensor_updates[i] == 0};
            st = ctx->backend->sgd_update(ctx->backend_state, &d, count, p, o->momentum != 0.0f ? s1 : NULL, gr);
        } else {
            nc__adam_desc d = {g->lr, o->beta1, o->beta2, o->eps, wd, o->optimizer == NC_OPTIMIZER_ADAMW,
                               t->tensor_updates[i] + 1};
            st = ctx->backend->adam_update(ctx->backend_state, &d, count, p, s1, (char *)t->state2 + off, gr);
        }
        if (st != NC_OK) return st;
        t->tensor_updates[i]++;
    }
    t->updates++;
    return NC_OK;
}

/* A non-finite loss or gradient: drop this update's gradients; fail after
 * max_nonfinite in a row. */
static nc_status skip_update(nc_trainer *t, nc_step_stats *out, const char *what) {
    nc_context *ctx = t->m->ctx;
    t->accum_count = 0;
    t->nonfinite_run++;
    if (out) out->skipped = 1;
    if (t->nonfinite_run >= t->opt.max_nonfinite)
        return nc__error(ctx, NC_ERR_NUMERIC, "nc_trainer_step: %s at step %lld; %d updates in a row skipped", what,
                         (long long)t->steps - 1, t->nonfinite_run);
    return NC_OK;
}

nc_status nc_trainer_step(nc_trainer *t, const float *x, const int32_t *labels, int n, int c, int h, int w,
                          nc_step_stats *out) {
    if (!t) return NC_ERR_NULL;
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    if (out) memset(out, 0, sizeof *out);
    if (!x || !labels) return nc__error(ctx, NC_ERR_NULL, "nc_trainer_step: x or labels is NULL");
    nc__shape in = nc__shape4(n, c, h, w);
    nc_status st = nc__plan_get(m, &m->plan_train, 1, &in);
    if (st != NC_OK) return st;
    const int heads = m->graph->num_heads, classes = m->num_classes;
    size_t outputs = (size_t)n * (size_t)heads * (size_t)classes;
    if (outputs > t->logits_cap) {
        nc__free(ctx, t->logits);
        nc__free(ctx, t->dlogits);
        t->logits = nc__alloc(ctx, outputs * sizeof(float));
        t->dlogits = nc__alloc(ctx, outputs * sizeof(float));
        t->logits_cap = t->logits && t->dlogits ? outputs : 0;
        if (!t->logits_cap) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_trainer_step: out of memory");
    }
    /* labels are checked before the forward pass so a bad batch changes no state */
    if ((st = nc__loss_check_labels(ctx, &t->loss, labels, n, heads, classes)) != NC_OK) return st;

    if (t->accum_count == 0) {
        st = ctx->backend->fill(ctx->backend_state, m->grad_arena, 0.0f, m->arena_bytes / sizeof(float));
        if (st != NC_OK) return st;
    }
    uint64_t seed = nc__rng_u64(t->opt.seed, 0x73746570ull, (uint64_t)t->steps);
    if ((st = nc__plan_forward(m->plan_train, x, 1, seed)) != NC_OK) return st;
    if ((st = nc__plan_read_output(m->plan_train, t->logits)) != NC_OK) return st;
    double loss = 0.0;
    int correct = 0, counted = 0;
    st = nc__loss_compute(ctx, &t->loss, t->logits, labels, n, heads, classes, t->dlogits, &loss, &correct, &counted);
    if (st != NC_OK) return st;
    t->steps++;
    if (out) {
        out->loss = (float)loss;
        out->correct = correct;
        out->total = counted;
        out->lr = t->groups[0].lr;
    }
    if (!isfinite(loss)) return skip_update(t, out, isnan(loss) ? "loss is NaN" : "loss is infinite");
    const int k = t->opt.accumulation_steps;
    if (k > 1)
        for (size_t i = 0; i < outputs; i++) t->dlogits[i] /= (float)k; /* as torch's loss / k */
    if ((st = nc__plan_backward(m->plan_train, t->dlogits)) != NC_OK) return st;
    if (++t->accum_count < k) return NC_OK;
    t->accum_count = 0;

    double norm;
    int bad;
    if ((st = grad_norm(t, &norm, &bad)) != NC_OK) return st;
    if (bad >= 0) {
        char what[256];
        snprintf(what, sizeof what, "non-finite gradient in '%s'", m->graph->tensors[bad].name);
        return skip_update(t, out, what);
    }
    if (t->opt.clip_grad_norm > 0.0f) {
        double coef = (double)t->opt.clip_grad_norm / (norm + 1e-6); /* torch.nn.utils.clip_grad_norm_ */
        if (coef < 1.0 && (st = clip_grads(t, (float)coef)) != NC_OK) return st;
    }
    if ((st = apply_update(t)) != NC_OK) return st;
    t->nonfinite_run = 0;
    if (out) {
        out->updated = 1;
        out->grad_norm = (float)norm;
        out->lr = t->groups[0].lr;
    }
    return NC_OK;
}
