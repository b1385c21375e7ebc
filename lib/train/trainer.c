/* trainer.c — nc_trainer: one call = train-mode forward, the configured loss,
 * backward through the graph, and (every accumulation_steps calls) the global
 * gradient norm, clipping and an optimizer update (SGD, Adam, AdamW as torch.optim)
 * of every unfrozen trainable tensor as one table, with parameter groups, a schedule
 * and a guard against non-finite losses and gradients. All of it runs in the
 * backend; a step crosses to the host three times (backend.h, TRANSFER BUDGET). */
#include "neurc.h"
#include "core/context.h"
#include "core/model.h"
#include "core/rng.h"
#include "dist/buckets.h"
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

/* A copy of `count` host floats in backend memory (NULL stays NULL). */
static nc_status to_backend(nc_context *ctx, const float *src, size_t count, void **out) {
    *out = NULL;
    if (!src) return NC_OK;
    nc_status st = ctx->backend->alloc(ctx->backend_state, count * sizeof *src, out);
    if (st == NC_OK) st = ctx->backend->write(ctx->backend_state, *out, src, count * sizeof *src);
    return st;
}

/* The backend must compute this loss on logits of the context's dtype. */
static nc_status check_loss_support(nc_trainer *t) {
    nc_context *ctx = t->m->ctx;
    const int heads = t->m->graph->num_heads, classes = t->m->num_classes;
    const nc__loss_desc d = nc__loss_desc_of(&t->loss, 1, heads, classes, nc__context_act_dtype(ctx), 1.0f,
                                             t->class_weights_dev, t->head_weights_dev, t->pos_weight_dev);
    const nc__value_desc logits = {.shape = nc__shape2(1, (int64_t)heads * classes), .dtype = d.dtype};
    const nc__op_query q = {.kernel = NC__K_LOSS, .dtype = d.dtype, .training = 1, .value = &logits, .loss = &d};
    if (ctx->backend->supports(ctx->backend_state, &q)) return NC_OK;
    return nc__error(ctx, NC_ERR_UNSUPPORTED, "trainer: the %s backend cannot compute the %s loss on %s logits",
                     ctx->backend->name, d.kind == NC_LOSS_BCE_WITH_LOGITS ? "BCE-with-logits" : "cross-entropy",
                     nc__dtype_name(d.dtype));
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
    if ((st = to_backend(ctx, t->class_weights, (size_t)heads * classes, &t->class_weights_dev)) != NC_OK) return st;
    if ((st = to_backend(ctx, t->head_weights, (size_t)heads, &t->head_weights_dev)) != NC_OK) return st;
    return to_backend(ctx, t->pos_weight, (size_t)heads * classes, &t->pos_weight_dev);
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

static nc_status trainer_create(nc_model *m, const nc_trainer_options *opt, nc_trainer **out) {
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
    t->table = nc__alloc(ctx, (size_t)(nt ? nt : 1) * sizeof *t->table);
    t->table_tensor = nc__alloc(ctx, (size_t)(nt ? nt : 1) * sizeof *t->table_tensor);
    NC_CHECK_ALLOC(ctx, t->tensor_group);
    NC_CHECK_ALLOC(ctx, t->tensor_updates);
    NC_CHECK_ALLOC(ctx, t->table);
    NC_CHECK_ALLOC(ctx, t->table_tensor);
    for (int i = 0; i < nt; i++) t->tensor_group[i] = m->graph->tensors[i].trainable ? 0 : -1;
    NC_CHECK(add_group_entry(t, "default", o.lr, o.weight_decay));
    NC_CHECK(setup_loss(t));
    NC_CHECK(check_loss_support(t));
    NC_CHECK(nc__model_ensure_grads(m));
    const size_t floats = nc__model_param_floats(m), bytes = m->arena_bytes ? m->arena_bytes : 64;
    const int two = o.optimizer != NC_OPTIMIZER_SGD;
    NC_CHECK(ctx->backend->alloc(ctx->backend_state, sizeof(nc__step_record), &t->record_dev));
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

nc_status nc_trainer_create(nc_model *m, const nc_trainer_options *opt, nc_trainer **out) {
    if (!m) return NC_ERR_NULL;
    nc__model_write_begin(m);
    nc_status st = trainer_create(m, opt, out);
    nc__model_write_end(m);
    return st;
}

void nc_trainer_destroy(nc_trainer *t) {
    if (!t) return;
    nc_context *ctx = t->m->ctx;
    void *dev[] = {t->state1, t->state2, t->record_dev, t->labels_dev, t->class_weights_dev, t->head_weights_dev,
                   t->pos_weight_dev};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) ctx->backend->free(ctx->backend_state, dev[i]);
    nc__free(ctx, t->groups);
    nc__free(ctx, t->tensor_group);
    nc__free(ctx, t->tensor_updates);
    nc__free(ctx, t->class_weights);
    nc__free(ctx, t->head_weights);
    nc__free(ctx, t->pos_weight);
    nc__free(ctx, t->table);
    nc__free(ctx, t->table_tensor);
    nc__buckets_destroy(t->buckets);
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

/* A rate set by the caller is the group's base rate: with a schedule attached the
 * schedule's rates are computed from it (from the next update on). */
static void set_rate(nc_trainer *t, int g, float lr) {
    t->groups[g].base_lr = lr;
    t->groups[g].lr = t->schedule ? nc_schedule_lr(t->schedule, lr) : lr;
}

nc_status nc_trainer_set_group_lr(nc_trainer *t, const char *name, float lr) {
    if (!t) return NC_ERR_NULL;
    int g;
    nc_status st = group_arg(t, "nc_trainer_set_group_lr", name, &g);
    if (st != NC_OK) return st;
    if (!finite_nonneg(lr))
        return nc__error(t->m->ctx, NC_ERR_INVALID_ARGUMENT, "nc_trainer_set_group_lr: lr must be finite and >= 0");
    set_rate(t, g, lr);
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
    set_rate(t, 0, lr);
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

/* The table of tensors this update changes (unfrozen, trainable) with their groups'
 * rates, decay and step numbers; returns its length. */
static int build_table(nc_trainer *t) {
    const nc_model *m = t->m;
    const nc_trainer_options *o = &t->opt;
    int count = 0;
    for (int i = 0; i < m->graph->n_tensors; i++) {
        const int gi = t->tensor_group[i];
        if (gi < 0 || t->groups[gi].frozen) continue;
        const nc__group *g = &t->groups[gi];
        const float wd = o->no_decay_norm_bias && is_bias_or_norm(&m->graph->tensors[i]) ? 0.0f : g->weight_decay;
        t->table_tensor[count] = i;
        t->table[count++] = (nc__param_entry){.offset = m->slots[i].offset, .count = (size_t)m->slots[i].numel,
                                               .lr = g->lr, .weight_decay = wd, .step = t->tensor_updates[i] + 1};
    }
    return count;
}

static nc__optim_desc optim_desc(const nc_trainer_options *o) {
    return (nc__optim_desc){.kind = o->optimizer == NC_OPTIMIZER_SGD     ? NC__OPTIM_SGD
                                    : o->optimizer == NC_OPTIMIZER_ADAM ? NC__OPTIM_ADAM
                                                                        : NC__OPTIM_ADAMW,
                            .momentum = o->momentum, .dampening = o->dampening, .nesterov = o->nesterov,
                            .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps};
}

/* The update's backend calls: global norm and finite check, clipping, the optimizer;
 * the backend skips the last two when the record says something is not finite. */
static nc_status run_update(nc_trainer *t, int count) {
    nc_model *m = t->m;
    const nc__backend *be = m->ctx->backend;
    void *bs = m->ctx->backend_state;
    const nc__optim_desc d = optim_desc(&t->opt);
    nc_status st = be->grad_norm(bs, t->table, count, t->record_dev, m->grad_arena);
    if (st == NC_OK && t->opt.clip_grad_norm > 0.0f)
        st = be->clip_grads(bs, t->table, count, t->opt.clip_grad_norm, m->grad_arena, t->record_dev);
    nc__model_params_changed(m); /* before the writes: also right when one fails half-way */
    if (st == NC_OK) st = be->update(bs, &d, t->table, count, m->arena, t->state1, t->state2, m->grad_arena, t->record_dev);
    return st;
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

/* The step's labels in backend memory (the one `write` of the step). */
static nc_status send_labels(nc_trainer *t, const int32_t *labels, size_t count) {
    nc_context *ctx = t->m->ctx;
    const size_t bytes = count * sizeof *labels;
    nc_status st;
    if (bytes > t->labels_cap) {
        ctx->backend->free(ctx->backend_state, t->labels_dev);
        t->labels_dev = NULL;
        t->labels_cap = 0;
        if ((st = ctx->backend->alloc(ctx->backend_state, bytes, &t->labels_dev)) != NC_OK) return st;
        t->labels_cap = bytes;
    }
    return ctx->backend->write(ctx->backend_state, t->labels_dev, labels, bytes);
}

/* Forward, loss (dlogits scaled by 1/k as torch's loss / k) and backward. */
static nc_status forward_backward(nc_trainer *t, const float *x, int n) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    const nc__plan *p = m->plan_train;
    const nc__value_desc out = nc__plan_value_desc(p, m->graph->output);
    const nc__loss_desc d = nc__loss_desc_of(&t->loss, n, m->graph->num_heads, m->num_classes, out.dtype,
                                             1.0f / (float)t->opt.accumulation_steps, t->class_weights_dev,
                                             t->head_weights_dev, t->pos_weight_dev);
    const uint64_t seed = nc__rng_u64(t->opt.seed, 0x73746570ull, (uint64_t)t->steps);
    nc_status st = nc__plan_forward(m->plan_train, x, 1, seed);
    if (st == NC_OK)
        st = ctx->backend->loss(nc__plan_backend_state(p), &d, nc__plan_output_grad(p), t->record_dev,
                                nc__plan_output(p), t->labels_dev);
    if (st != NC_OK) return st;
    t->steps++;
    return nc__plan_backward(m->plan_train);
}

/* After the step's one read of the record: counters, stats, the non-finite guard. */
static nc_status finish_step(nc_trainer *t, const nc__step_record *r, int updated, int count, nc_step_stats *out) {
    if (out) {
        out->loss = (float)r->loss;
        out->correct = r->correct;
        out->total = r->counted;
        out->lr = t->groups[0].lr;
    }
    if (!isfinite(r->loss)) return skip_update(t, out, isnan(r->loss) ? "loss is NaN" : "loss is infinite");
    if (!updated) return NC_OK;
    if (!r->finite) {
        char what[256];
        const int bad = r->bad >= 0 && r->bad < count ? t->table_tensor[r->bad] : t->table_tensor[0];
        snprintf(what, sizeof what, "non-finite gradient in '%s'", t->m->graph->tensors[bad].name);
        return skip_update(t, out, what);
    }
    for (int e = 0; e < count; e++) t->tensor_updates[t->table_tensor[e]]++;
    t->updates++;
    t->nonfinite_run = 0;
    if (out) {
        out->updated = 1;
        out->grad_norm = (float)sqrt(r->sumsq);
    }
    return NC_OK;
}

/* ------------------------------------------------------------ data parallel */

nc_status nc_trainer_set_comm(nc_trainer *t, nc_comm *comm) {
    if (!t) return NC_ERR_NULL;
    nc_context *ctx = t->m->ctx;
    if (comm && comm->ctx != ctx)
        return nc__error(ctx, NC_ERR_STATE, "nc_trainer_set_comm: the communicator belongs to another context");
    nc__buckets_destroy(t->buckets);
    t->buckets = NULL;
    t->comm = NULL;
    if (!comm) return NC_OK;
    if (comm->ops->device_memory && strcmp(ctx->backend->name, "cuda") != 0)
        return nc__error(ctx, NC_ERR_UNSUPPORTED,
                         "nc_trainer_set_comm: the %s communicator reduces GPU memory, and the %s backend's tensors "
                         "are in host memory (use nc_comm_create_mpi)", comm->ops->name, ctx->backend->name);
    nc_status st = nc__comm_usable(comm, "nc_trainer_set_comm");
    if (st == NC_OK) st = nc__model_ensure_grads(t->m);
    if (st == NC_OK) st = nc__buckets_create(comm, t->m, &t->buckets);
    if (st != NC_OK) return st;
    nc__model_write_begin(t->m); /* the broadcast writes the model (core/gate.h) */
    st = nc__comm_broadcast_model(comm, t->m);
    nc__model_write_end(t->m);
    if (st == NC_OK) t->comm = comm;
    return st;
}

nc_status nc_trainer_set_sync_batchnorm(nc_trainer *t, int enable) {
    if (!t) return NC_ERR_NULL;
    t->sync_bn = enable != 0;
    return NC_OK;
}

nc_status nc_trainer_set_grad_overlap(nc_trainer *t, int enable) {
    if (!t) return NC_ERR_NULL;
    t->no_overlap = enable == 0;
    return NC_OK;
}

static nc_status hook_sum(void *user, double *buf, size_t n) {
    return nc__comm_sum_f64(((nc_trainer *)user)->comm, buf, n);
}

static nc_status hook_after_backward(void *user, int node) {
    return nc__buckets_after_node(((nc_trainer *)user)->buckets, node);
}

/* What the data-parallel trainer hooks into this step's plan (exec.h). */
static nc__plan_hooks step_hooks(nc_trainer *t, int update) {
    if (!t->comm || t->comm->size < 2) return (nc__plan_hooks){0};
    return (nc__plan_hooks){.sum = t->sync_bn ? hook_sum : NULL,
                            .after_backward = update && !t->no_overlap ? hook_after_backward : NULL,
                            .user = t};
}

/* The step's loss and counts summed over the ranks (the loss then averaged), back in
 * the record before the update reads it: every rank decides the same skip. */
static nc_status sync_record(nc_trainer *t) {
    nc_context *ctx = t->m->ctx;
    nc__step_record r;
    nc_status st = ctx->backend->read(ctx->backend_state, &r, t->record_dev, sizeof r);
    double v[3] = {r.loss, (double)r.correct, (double)r.counted};
    if (st == NC_OK) st = nc__comm_sum_f64(t->comm, v, 3);
    if (st != NC_OK) return st;
    r.loss = v[0] / (double)t->comm->size;
    r.correct = (int32_t)v[1];
    r.counted = (int32_t)v[2];
    return ctx->backend->write(ctx->backend_state, t->record_dev, &r, sizeof r);
}

/* UNDO. The first step on a plan can still fail for memory after its forward pass
 * has moved the batch-norm running statistics (a backend prepares each node the
 * first time it runs; oneDNN does). So that a failed step changes nothing, that
 * step copies the running statistics and, between the micro-batches of one update,
 * the gradients into a backend buffer (copies inside the backend: no transfer), and
 * keeps the host batch counters and the step and micro-batch counts; a failure puts
 * them back. Later
 * steps on the same plan allocate nothing that can fail and copy nothing. */
typedef struct step_undo {
    void *dev;        /* backend buffer: running means and variances in tensor order, then the gradients */
    int64_t *batches; /* m->num_batches */
    int64_t steps, grads; /* t->steps; gradient floats copied (0 when accum_count was 0) */
    int accum_count;
} step_undo;

static int is_stat(const nc__tensor_def *d) {
    return d->role == NC__ROLE_RUNNING_MEAN || d->role == NC__ROLE_RUNNING_VAR;
}

static void undo_free(nc_context *ctx, step_undo *u) {
    if (u->dev) ctx->backend->free(ctx->backend_state, u->dev);
    nc__free(ctx, u->batches);
}

/* dst = src, `floats` f32 values, inside the backend. */
static nc_status copy_floats(nc_context *ctx, void *dst, const void *src, int64_t floats) {
    const nc__value_desc v = {.shape = nc__shape2(1, floats), .dtype = NC__DTYPE_F32};
    return ctx->backend->accumulate(ctx->backend_state, &v, NC__WRITE_SET, dst, src);
}

/* Copies (save) or restores (!save) what UNDO lists; restoring allocates nothing. */
static nc_status undo_copy(nc_trainer *t, step_undo *u, int save) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    const size_t nt = (size_t)(g->n_tensors ? g->n_tensors : 1);
    if (save) u->grads = t->accum_count > 0 ? (int64_t)nc__model_param_floats(m) : 0;
    const int64_t grads = u->grads;
    int64_t stats = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (is_stat(&g->tensors[i])) stats += m->slots[i].numel;
    nc_status st = NC_OK;
    if (save) {
        st = ctx->backend->alloc(ctx->backend_state, (size_t)(stats + grads + 1) * sizeof(float), &u->dev);
        if (st != NC_OK) return st;
        u->batches = nc__alloc(ctx, nt * sizeof *u->batches);
        if (!u->batches) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_trainer_step: out of memory");
        memcpy(u->batches, m->num_batches, nt * sizeof *u->batches);
        u->steps = t->steps;
        u->accum_count = t->accum_count;
    } else {
        memcpy(m->num_batches, u->batches, nt * sizeof *u->batches);
        t->steps = u->steps;
        t->accum_count = u->accum_count;
    }
    float *cur = u->dev;
    for (int i = 0; i < g->n_tensors && st == NC_OK; i++) {
        if (!is_stat(&g->tensors[i])) continue;
        void *slot = nc__model_tensor_ptr(m, i);
        st = save ? copy_floats(ctx, cur, slot, m->slots[i].numel) : copy_floats(ctx, slot, cur, m->slots[i].numel);
        cur += m->slots[i].numel;
    }
    if (st == NC_OK && grads > 0)
        st = save ? copy_floats(ctx, cur, m->grad_arena, grads) : copy_floats(ctx, m->grad_arena, cur, grads);
    return st;
}

static nc_status step_run(nc_trainer *t, const float *x, const int32_t *labels, int n, nc_step_stats *out);

static nc_status trainer_step(nc_trainer *t, const float *x, const int32_t *labels, int n, int c, int h, int w,
                              nc_step_stats *out) {
    if (!t) return NC_ERR_NULL;
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    if (out) memset(out, 0, sizeof *out);
    if (!x || !labels) return nc__error(ctx, NC_ERR_NULL, "nc_trainer_step: x or labels is NULL");
    nc__shape in = nc__shape4(n, c, h, w);
    nc_status st = nc__plan_get(m, &m->plan_train, 1, &in);
    if (st != NC_OK) return st;
    const int warm = t->warm_plan == m->plan_train;
    step_undo u = {0};
    if (!warm && (st = undo_copy(t, &u, 1)) != NC_OK) {
        undo_free(ctx, &u);
        return st;
    }
    st = step_run(t, x, labels, n, out);
    if (!warm) {
        if (st == NC_OK || st == NC_ERR_NUMERIC) { /* the plan ran through */
            t->warm_plan = m->plan_train;
        } else {
            (void)undo_copy(t, &u, 0); /* records nothing when it succeeds */
        }
        undo_free(ctx, &u);
    }
    return st;
}

/* The step itself, on the prepared m->plan_train. */
static nc_status step_run(nc_trainer *t, const float *x, const int32_t *labels, int n, nc_step_stats *out) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    nc_status st;
    const int heads = m->graph->num_heads, classes = m->num_classes;
    /* labels are checked before the forward pass so a bad batch changes no state */
    if ((st = nc__loss_check_labels(ctx, &t->loss, labels, n, heads, classes)) != NC_OK) return st;
    const size_t label_count = (size_t)n * (size_t)heads * (t->loss.kind == NC_LOSS_BCE_WITH_LOGITS ? classes : 1);
    if ((st = send_labels(t, labels, label_count)) != NC_OK) return st;
    if (t->accum_count == 0 &&
        (st = ctx->backend->fill(ctx->backend_state, m->grad_arena, 0.0f, nc__model_param_floats(m))) != NC_OK)
        return st;
    const int parallel = t->comm && t->comm->size > 1;
    const int update = t->accum_count + 1 >= t->opt.accumulation_steps;
    if (parallel && (st = nc__comm_broadcast_buffers(t->comm, m)) != NC_OK) return st;
    if (parallel && (st = nc__buckets_reset(t->buckets)) != NC_OK) return st;
    m->plan_train->hooks = step_hooks(t, update);
    st = forward_backward(t, x, n);
    m->plan_train->hooks = (nc__plan_hooks){0};
    if (st != NC_OK) return st;
    if (parallel && (st = sync_record(t)) != NC_OK) return st;
    ++t->accum_count;
    int count = 0;
    if (update) {
        t->accum_count = 0;
        if (t->schedule)
            for (int g = 0; g < t->n_groups; g++) t->groups[g].lr = nc_schedule_lr(t->schedule, t->groups[g].base_lr);
        count = build_table(t);
        if (parallel && (st = nc__buckets_finish(t->buckets)) != NC_OK) return st;
        if ((st = run_update(t, count)) != NC_OK) return st;
    }
    nc__step_record r;
    if ((st = ctx->backend->read(ctx->backend_state, &r, t->record_dev, sizeof r)) != NC_OK) return st;
    return finish_step(t, &r, update, count, out);
}

/* A step changes the model: it waits for inference calls on it (core/gate.h). */
nc_status nc_trainer_step(nc_trainer *t, const float *x, const int32_t *labels, int n, int c, int h, int w,
                          nc_step_stats *out) {
    if (!t) return NC_ERR_NULL;
    nc__model_write_begin(t->m);
    nc_status st = trainer_step(t, x, labels, n, c, h, w, out);
    nc__model_write_end(t->m);
    return st;
}
