/* checkpoint.c — nc_trainer_save_checkpoint / nc_trainer_load_checkpoint: the whole
 * training state in one safetensors file that is also a model file (nc_model_load
 * reads it): model tensors and metadata as nc_model_save, optimizer tensors under
 * "optimizer.", counters, groups and the schedule as JSON metadata. See docs/format.md. */
#include "neurc.h"
#include "core/context.h"
#include "core/json.h"
#include "core/text.h"
#include "core/model.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "train/schedule.h"
#include "train/trainer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKPOINT_VERSION "1"
#define TRAINER_KEY "neurc.trainer"
#define UPDATES_NAME NC__CHECKPOINT_PREFIX "updates"  /* I64 [n_tensors] */
#define GROUPS_NAME NC__CHECKPOINT_PREFIX "groups"    /* I32 [n_tensors]: group, -1 = not trainable */
#define STATE1_PREFIX NC__CHECKPOINT_PREFIX "state1." /* F32, the tensor's shape */
#define STATE2_PREFIX NC__CHECKPOINT_PREFIX "state2."
#define GRAD_PREFIX NC__CHECKPOINT_PREFIX "grad."     /* only while accum_count > 0 */

static const char *const optimizer_names[] = {"sgd", "adam", "adamw"};

void nc_checkpoint_info_init(nc_checkpoint_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    info->best_metric = NAN;
}

static nc_status info_size(nc_context *ctx, const char *fn, size_t size) {
    if (size < offsetof(nc_checkpoint_info, epoch) + sizeof(int64_t) || size > sizeof(nc_checkpoint_info))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: bad info struct_size %zu (expected %zu)", fn, size,
                         sizeof(nc_checkpoint_info));
    return NC_OK;
}

/* ------------------------------------------------------------------ JSON */

/* int64 and double as strings: exact past 2^53, and NaN/inf survive. */
static void add_i64(nc__jw *o, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    nc__jw_str(o, key, buf);
}

static void add_f64(nc__jw *o, const char *key, double v) {
    char buf[40];
    if (isnan(v))
        snprintf(buf, sizeof buf, "nan");
    else if (isinf(v))
        snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
    else
        nc__fmt_exact(buf, sizeof buf, v); /* '.' whatever LC_NUMERIC the embedding program set */
    nc__jw_str(o, key, buf);
}

static int get_i64(const cJSON *o, const char *key, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || !v->valuestring[0]) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v->valuestring, &end, 10);
    if (*end || errno) return -1;
    *out = (int64_t)x;
    return 0;
}

static int get_f64(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || !v->valuestring[0]) return -1;
    const char *t = v->valuestring;
    if (strcmp(t, "nan") == 0) *out = NAN;
    else if (strcmp(t, "inf") == 0 || strcmp(t, "-inf") == 0) *out = t[0] == '-' ? -INFINITY : INFINITY;
    else return nc__parse_num(t, strlen(t), out); /* not strtod: it follows LC_NUMERIC */
    return 0;
}

/* A float stored as a JSON number (cJSON prints doubles round-trip exactly). */
static int get_float(const cJSON *o, const char *key, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.4e38) return -1;
    *out = (float)v->valuedouble;
    return 0;
}

static int get_int(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX) ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

static void options_json(nc__jw *j, const nc_trainer_options *o) {
    nc__jw_object(j, "options");
    nc__jw_num(j, "lr", o->lr);
    nc__jw_num(j, "momentum", o->momentum);
    nc__jw_num(j, "dampening", o->dampening);
    nc__jw_num(j, "weight_decay", o->weight_decay);
    nc__jw_num(j, "nesterov", o->nesterov);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    nc__jw_str(j, "seed", seed);
    nc__jw_num(j, "beta1", o->beta1);
    nc__jw_num(j, "beta2", o->beta2);
    nc__jw_num(j, "eps", o->eps);
    nc__jw_num(j, "no_decay_norm_bias", o->no_decay_norm_bias);
    nc__jw_str(j, "loss", o->loss == NC_LOSS_BCE_WITH_LOGITS ? "bce_with_logits" : "cross_entropy");
    nc__jw_num(j, "label_smoothing", o->label_smoothing);
    nc__jw_num(j, "ignore_label", o->ignore_label);
    nc__jw_num(j, "accumulation_steps", o->accumulation_steps);
    nc__jw_num(j, "clip_grad_norm", o->clip_grad_norm);
    nc__jw_num(j, "max_nonfinite", o->max_nonfinite);
    nc__jw_end(j);
}

static void schedule_json(nc__jw *j, const nc_schedule *s) {
    nc_schedule_options o;
    nc__schedule_state st;
    nc__schedule_options_get(s, &o);
    nc__schedule_state_get(s, &st);
    nc__jw_object(j, "schedule");
    nc__jw_object(j, "options");
    nc__jw_num(j, "kind", (double)o.kind);
    nc__jw_num(j, "step_size", o.step_size);
    nc__jw_num(j, "gamma", o.gamma);
    nc__jw_array(j, "milestones");
    for (int i = 0; i < o.num_milestones; i++) nc__jw_num(j, NULL, o.milestones[i]);
    nc__jw_end(j);
    nc__jw_num(j, "t_max", o.t_max);
    nc__jw_num(j, "eta_min", o.eta_min);
    nc__jw_num(j, "warmup_steps", o.warmup_steps);
    nc__jw_num(j, "warmup_start_factor", o.warmup_start_factor);
    nc__jw_num(j, "mode_max", o.mode_max);
    nc__jw_num(j, "factor", o.factor);
    nc__jw_num(j, "patience", o.patience);
    nc__jw_num(j, "threshold", o.threshold);
    nc__jw_num(j, "threshold_abs", o.threshold_abs);
    nc__jw_num(j, "cooldown", o.cooldown);
    nc__jw_num(j, "min_lr", o.min_lr);
    nc__jw_num(j, "plateau_eps", o.plateau_eps);
    nc__jw_end(j);
    nc__jw_object(j, "state");
    add_i64(j, "position", st.position);
    add_i64(j, "reductions", st.reductions);
    add_i64(j, "num_bad_epochs", st.num_bad_epochs);
    add_i64(j, "cooldown_counter", st.cooldown_counter);
    add_f64(j, "best", st.best);
    nc__jw_end(j);
    nc__jw_end(j);
}

static void trainer_json(nc__jw *j, const nc_trainer *t, const nc_checkpoint_info *info) {
    nc__jw_object(j, NULL);
    add_i64(j, "steps", t->steps);
    add_i64(j, "updates", t->updates);
    nc__jw_num(j, "accum_count", t->accum_count);
    nc__jw_num(j, "nonfinite_run", t->nonfinite_run);
    nc__jw_str(j, "optimizer", optimizer_names[t->opt.optimizer]);
    nc__jw_array(j, "groups");
    for (int g = 0; g < t->n_groups; g++) {
        nc__jw_object(j, NULL);
        nc__jw_str(j, "name", t->groups[g].name);
        nc__jw_num(j, "lr", t->groups[g].lr);
        nc__jw_num(j, "base_lr", t->groups[g].base_lr);
        nc__jw_num(j, "weight_decay", t->groups[g].weight_decay);
        nc__jw_num(j, "frozen", t->groups[g].frozen);
        nc__jw_end(j);
    }
    nc__jw_end(j);
    nc__jw_object(j, "info");
    add_i64(j, "epoch", info->epoch);
    add_i64(j, "batch", info->batch);
    add_f64(j, "best_metric", info->best_metric);
    add_i64(j, "best_epoch", info->best_epoch);
    nc__jw_end(j);
    options_json(j, &t->opt);
    if (t->schedule) schedule_json(j, t->schedule);
    nc__jw_end(j);
}

/* ------------------------------------------------------------------ save */

/* "<prefix><name>" in a buffer from the context. */
static char *join(nc_context *ctx, const char *prefix, const char *name) {
    size_t a = strlen(prefix), b = strlen(name);
    char *s = nc__alloc(ctx, a + b + 1);
    if (s) {
        memcpy(s, prefix, a);
        memcpy(s + a, name, b + 1);
    }
    return s;
}

/* Downloads one optimizer buffer (arena offsets) of every trainable tensor into host
 * (advanced past them) and adds them to w under prefix + name. */
static nc_status add_state(nc_trainer *t, nc__st_writer *w, const char *prefix, const void *buf, float **host) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    for (int i = 0; i < g->n_tensors; i++) {
        if (t->tensor_group[i] < 0) continue;
        const nc__tensor_def *d = &g->tensors[i];
        nc_status st = ctx->backend->download(ctx->backend_state, *host, (const char *)buf + m->slots[i].offset,
                                              &d->shape);
        if (st != NC_OK) return st;
        char *name = join(ctx, prefix, d->name);
        if (!name) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_trainer_save_checkpoint: out of memory");
        st = nc__st_writer_add(w, name, NC__DT_F32, d->shape.ndim, d->shape.d, *host);
        nc__free(ctx, name);
        if (st != NC_OK) return st;
        *host += m->slots[i].numel;
    }
    return NC_OK;
}

static nc_status save_checkpoint(nc_trainer *t, const char *path, const nc_checkpoint_info *info) {
    if (!t) return NC_ERR_NULL;
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    if (!path) return nc__error(ctx, NC_ERR_NULL, "nc_trainer_save_checkpoint: path is NULL");
    nc_checkpoint_info in;
    nc_checkpoint_info_init(&in);
    nc_status st;
    if (info) {
        if ((st = info_size(ctx, "nc_trainer_save_checkpoint", info->struct_size)) != NC_OK) return st;
        memcpy(&in, info, info->struct_size);
    }
    const nc__graph *g = m->graph;
    const int nt = g->n_tensors;
    nc__st_writer *w = NULL;
    float *model_host = NULL, *host = NULL;
    int32_t *group_map = NULL;
    char *text = NULL;
    int64_t trainable = 0;
    for (int i = 0; i < nt; i++)
        if (t->tensor_group[i] >= 0) trainable += m->slots[i].numel;
    const int sets = 1 + (t->state2 != NULL) + (t->accum_count > 0);
    host = nc__alloc(ctx, (size_t)(trainable ? trainable : 1) * (size_t)sets * sizeof(float));
    group_map = nc__alloc(ctx, (size_t)(nt ? nt : 1) * sizeof *group_map);
    NC_CHECK_ALLOC(ctx, host);
    NC_CHECK_ALLOC(ctx, group_map);
    for (int i = 0; i < nt; i++) group_map[i] = (int32_t)t->tensor_group[i];
    NC_CHECK(nc__st_writer_create(ctx, &w));
    NC_CHECK(nc__model_io_add(m, w, &model_host));
    float *cur = host;
    NC_CHECK(add_state(t, w, STATE1_PREFIX, t->state1, &cur));
    if (t->state2) NC_CHECK(add_state(t, w, STATE2_PREFIX, t->state2, &cur));
    if (t->accum_count > 0) NC_CHECK(add_state(t, w, GRAD_PREFIX, m->grad_arena, &cur));
    const int64_t shape[1] = {nt};
    NC_CHECK(nc__st_writer_add(w, UPDATES_NAME, NC__DT_I64, 1, shape, t->tensor_updates));
    NC_CHECK(nc__st_writer_add(w, GROUPS_NAME, NC__DT_I32, 1, shape, group_map));
    NC_CHECK(nc__st_writer_meta(w, NC__CHECKPOINT_VERSION_KEY, CHECKPOINT_VERSION));
    {
        nc__jw j;
        nc__jw_init(&j, ctx, 0);
        trainer_json(&j, t, &in);
        NC_CHECK(nc__jw_finish(&j, "nc_trainer_save_checkpoint: " TRAINER_KEY, &text, NULL));
    }
    NC_CHECK(nc__st_writer_meta(w, TRAINER_KEY, text));
    NC_CHECK(nc__st_write_reported(w, path, "nc_trainer_save_checkpoint"));
fail:
    nc__free(ctx, text);
    nc__st_writer_destroy(w);
    nc__free(ctx, model_host);
    nc__free(ctx, host);
    nc__free(ctx, group_map);
    return st;
}

nc_status nc_trainer_save_checkpoint(nc_trainer *t, const char *path, const nc_checkpoint_info *info) {
    if (!t) return NC_ERR_NULL;
    nc__model_read_begin(t->m);
    nc_status st = save_checkpoint(t, path, info);
    nc__model_read_end(t->m);
    return st;
}

/* ------------------------------------------------------------------ load */

/* What the checkpoint's JSON says, checked against the trainer before anything is
 * applied. */
typedef struct parsed {
    int64_t steps, updates;
    int accum_count, nonfinite_run;
    nc__group *groups; /* [t->n_groups] */
    nc_checkpoint_info info;
    int has_schedule;
    nc__schedule_state sched;
} parsed;

#define BAD(...) \
    do { st = nc__error(ctx, NC_ERR_FORMAT, __VA_ARGS__); goto fail; } while (0)

static nc_status parse_trainer(nc_trainer *t, const char *path, const char *text, parsed *p) {
    nc_context *ctx = t->m->ctx;
    nc_status st = NC_OK;
    cJSON *j = NULL;
    st = nc__json_parse(ctx, text, strlen(text), NULL, &j);
    if (st == NC_ERR_OUT_OF_MEMORY) {
        nc__error_prefix(ctx, st, "%s: checkpoint metadata '" TRAINER_KEY "'", path);
        goto fail;
    }
    if (!cJSON_IsObject(j)) BAD("%s: checkpoint metadata '" TRAINER_KEY "' is not a JSON object", path);
    int64_t accum, nonfinite;
    if (get_i64(j, "steps", &p->steps) || p->steps < 0 || get_i64(j, "updates", &p->updates) || p->updates < 0)
        BAD("%s: checkpoint: 'steps'/'updates' missing or negative", path);
    if (get_int(j, "accum_count", &p->accum_count) || get_int(j, "nonfinite_run", &p->nonfinite_run) ||
        p->accum_count < 0 || p->nonfinite_run < 0)
        BAD("%s: checkpoint: 'accum_count'/'nonfinite_run' missing or negative", path);
    accum = p->accum_count;
    nonfinite = p->nonfinite_run;
    if (accum >= t->opt.accumulation_steps)
        BAD("%s: checkpoint was saved after %d accumulated micro-batches; this trainer's accumulation_steps is %d",
            path, p->accum_count, t->opt.accumulation_steps);
    if (nonfinite >= t->opt.max_nonfinite)
        BAD("%s: checkpoint's non-finite run %d reaches this trainer's max_nonfinite %d", path, p->nonfinite_run,
            t->opt.max_nonfinite);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j, "optimizer");
    if (!cJSON_IsString(opt)) BAD("%s: checkpoint: 'optimizer' is missing", path);
    if (strcmp(opt->valuestring, optimizer_names[t->opt.optimizer]) != 0)
        BAD("%s: checkpoint is for optimizer '%s'; this trainer uses '%s'", path, opt->valuestring,
            optimizer_names[t->opt.optimizer]);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(j, "groups");
    if (!cJSON_IsArray(groups)) BAD("%s: checkpoint: 'groups' is missing", path);
    if (cJSON_GetArraySize(groups) != t->n_groups)
        BAD("%s: checkpoint has %d parameter groups; this trainer has %d", path, cJSON_GetArraySize(groups),
            t->n_groups);
    for (int g = 0; g < t->n_groups; g++) {
        const cJSON *o = cJSON_GetArrayItem(groups, g), *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        nc__group *dst = &p->groups[g];
        int frozen;
        if (!cJSON_IsString(name)) BAD("%s: checkpoint: group %d has no name", path, g);
        if (strcmp(name->valuestring, t->groups[g].name) != 0)
            BAD("%s: checkpoint's group %d is '%.64s'; this trainer's is '%s'", path, g, name->valuestring,
                t->groups[g].name);
        if (get_float(o, "lr", &dst->lr) || get_float(o, "base_lr", &dst->base_lr) ||
            get_float(o, "weight_decay", &dst->weight_decay) || get_int(o, "frozen", &frozen) || dst->lr < 0 ||
            dst->base_lr < 0 || dst->weight_decay < 0)
            BAD("%s: checkpoint: group '%s' has a bad lr, base_lr, weight_decay or frozen", path, t->groups[g].name);
        memcpy(dst->name, t->groups[g].name, sizeof dst->name);
        dst->frozen = frozen != 0;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "info");
    nc_checkpoint_info_init(&p->info);
    if (get_i64(in, "epoch", &p->info.epoch) || get_i64(in, "batch", &p->info.batch) ||
        get_f64(in, "best_metric", &p->info.best_metric) || get_i64(in, "best_epoch", &p->info.best_epoch))
        BAD("%s: checkpoint: 'info' is missing or malformed", path);
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(j, "schedule");
    if (sched && t->schedule) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(sched, "options");
        const cJSON *ss = cJSON_GetObjectItemCaseSensitive(sched, "state");
        int kind;
        nc_schedule_options now;
        nc__schedule_options_get(t->schedule, &now);
        if (get_int(so, "kind", &kind)) BAD("%s: checkpoint: schedule options are malformed", path);
        if (kind != (int)now.kind)
            BAD("%s: checkpoint's schedule is of kind %d; the attached one is of kind %d", path, kind, (int)now.kind);
        nc__schedule_state *s = &p->sched;
        if (get_i64(ss, "position", &s->position) || get_i64(ss, "reductions", &s->reductions) ||
            get_i64(ss, "num_bad_epochs", &s->num_bad_epochs) ||
            get_i64(ss, "cooldown_counter", &s->cooldown_counter) || get_f64(ss, "best", &s->best))
            BAD("%s: checkpoint: schedule state is malformed", path);
        p->has_schedule = 1;
    }
fail:
    nc__json_delete(ctx, j);
    return st;
}

/* The file tensor `name` with dtype dt and shape[ndim]; NC_ERR_FORMAT when absent or
 * of another dtype, NC_ERR_SHAPE when of another shape. */
static nc_status need(nc_context *ctx, const nc__st_file *f, const char *path, const char *name, nc__st_dtype dt,
                      int ndim, const int64_t *shape, const nc__st_tensor **out) {
    const nc__st_tensor *ft = nc__st_find(f, name);
    if (!ft) return nc__error(ctx, NC_ERR_FORMAT, "%s: checkpoint has no tensor '%s'", path, name);
    if (ft->dtype != dt)
        return nc__error(ctx, NC_ERR_FORMAT, "%s: checkpoint tensor '%s' is %s, expected %s", path, name,
                         nc__st_dtype_name(ft->dtype), nc__st_dtype_name(dt));
    int same = ft->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = ft->shape[d] == shape[d];
    if (!same) return nc__error(ctx, NC_ERR_SHAPE, "%s: checkpoint tensor '%s' has another shape", path, name);
    *out = ft;
    return NC_OK;
}

/* Check (buf NULL): finds prefix + name of every trainable tensor i, into found[i].
 * Apply: uploads found[i] into buf; it allocates nothing, so that once the first
 * tensor is applied no failure for memory can leave the trainer half-loaded. */
static nc_status state_tensors(nc_trainer *t, const nc__st_file *f, const char *path, const char *prefix,
                               const nc__st_tensor **found, void *buf, float *host) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    for (int i = 0; i < g->n_tensors; i++) {
        if (t->tensor_group[i] < 0) continue;
        const nc__tensor_def *d = &g->tensors[i];
        nc_status st = NC_OK;
        if (buf) {
            memcpy(host, found[i]->data, found[i]->nbytes); /* the file's data may be unaligned */
            st = ctx->backend->upload(ctx->backend_state, (char *)buf + m->slots[i].offset, host, &d->shape);
        } else {
            int64_t shape[4];
            for (int k = 0; k < d->shape.ndim; k++) shape[k] = d->shape.d[k];
            char *name = join(ctx, prefix, d->name);
            if (!name) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            st = need(ctx, f, path, name, NC__DT_F32, d->shape.ndim, shape, &found[i]);
            nc__free(ctx, name);
        }
        if (st != NC_OK) return st;
    }
    return NC_OK;
}

static nc_status load_checkpoint(nc_trainer *t, const char *path, nc_checkpoint_info *info) {
    if (!t) return NC_ERR_NULL;
    nc_context *ctx = t->m->ctx;
    if (!path) return nc__error(ctx, NC_ERR_NULL, "nc_trainer_load_checkpoint: path is NULL");
    nc_status st;
    if (info && (st = info_size(ctx, "nc_trainer_load_checkpoint", info->struct_size)) != NC_OK) return st;
    nc__st_file *f = NULL;
    if ((st = nc__st_read(ctx, path, &f)) != NC_OK) return st;
    st = nc__trainer_load_checkpoint_st(t, f, path, info);
    nc__st_close(f);
    return st;
}

nc_status nc__trainer_load_checkpoint_st(nc_trainer *t, const nc__st_file *f, const char *path,
                                         nc_checkpoint_info *info) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    nc_status st = NC_OK;
    const nc__graph *g = m->graph;
    const int nt = g->n_tensors;
    float *host = NULL;
    const nc__st_tensor **found = NULL;
    parsed p;
    memset(&p, 0, sizeof p);
    nc__schedule_state old_sched;
    int sched_set = 0;
    const char *ver = nc__st_meta(f, NC__CHECKPOINT_VERSION_KEY), *text = nc__st_meta(f, TRAINER_KEY);
    if (!ver || !text) BAD("%s: not a checkpoint (no '" NC__CHECKPOINT_VERSION_KEY "' metadata)", path);
    if (strcmp(ver, CHECKPOINT_VERSION) != 0)
        BAD("%s: checkpoint version %.32s is not supported (this library reads " CHECKPOINT_VERSION ")", path, ver);
    const char *arch = nc__st_meta(f, "neurc.arch");
    if (arch && strcmp(arch, m->has_arch ? m->arch_name : "custom") != 0)
        BAD("%s: checkpoint is for architecture '%.64s'; the model is '%s'", path, arch,
            m->has_arch ? m->arch_name : "custom");
    p.groups = nc__calloc(ctx, (size_t)t->n_groups, sizeof *p.groups);
    NC_CHECK_ALLOC(ctx, p.groups);
    NC_CHECK(parse_trainer(t, path, text, &p));
    /* the architecture and the tensor -> group map */
    const nc__st_tensor *gm = nc__st_find(f, GROUPS_NAME), *up;
    if (!gm || gm->dtype != NC__DT_I32 || gm->ndim != 1)
        BAD("%s: checkpoint has no I32 tensor '" GROUPS_NAME "'", path);
    if (gm->shape[0] != nt)
        BAD("%s: checkpoint is for a model with %lld tensors; this one has %d (a different architecture)", path,
            (long long)gm->shape[0], nt);
    NC_CHECK(nc__model_io_load_tensors(m, f, path, NC__CHECKPOINT_PREFIX, 1));
    for (int i = 0; i < nt; i++) {
        int32_t v;
        memcpy(&v, (const char *)gm->data + (size_t)i * sizeof v, sizeof v);
        if (v != t->tensor_group[i])
            BAD("%s: tensor '%s' is in group %s in the checkpoint and %s here", path, g->tensors[i].name,
                v >= 0 && v < t->n_groups ? t->groups[v].name : "(none)",
                t->tensor_group[i] >= 0 ? t->groups[t->tensor_group[i]].name : "(none)");
    }
    const int64_t shape[1] = {nt};
    NC_CHECK(need(ctx, f, path, UPDATES_NAME, NC__DT_I64, 1, shape, &up));
    for (int i = 0; i < nt; i++) {
        int64_t v;
        memcpy(&v, (const char *)up->data + (size_t)i * sizeof v, sizeof v);
        if (v < 0) BAD("%s: checkpoint: negative update count for '%s'", path, g->tensors[i].name);
    }
    found = nc__calloc(ctx, 3 * (size_t)(nt ? nt : 1), sizeof *found); /* state1, state2, grad */
    NC_CHECK_ALLOC(ctx, found);
    NC_CHECK(state_tensors(t, f, path, STATE1_PREFIX, found, NULL, NULL));
    if (t->state2) NC_CHECK(state_tensors(t, f, path, STATE2_PREFIX, found + nt, NULL, NULL));
    if (p.accum_count > 0) NC_CHECK(state_tensors(t, f, path, GRAD_PREFIX, found + 2 * nt, NULL, NULL));
    int64_t maxn = 1;
    for (int i = 0; i < nt; i++)
        if (m->slots[i].numel > maxn) maxn = m->slots[i].numel;
    host = nc__alloc(ctx, (size_t)maxn * sizeof(float));
    NC_CHECK_ALLOC(ctx, host);

    /* apply: the schedule first (its setter has the last checks), then the rest */
    if (p.has_schedule) {
        nc__schedule_state_get(t->schedule, &old_sched);
        if ((st = nc__schedule_state_set(t->schedule, &p.sched)) != NC_OK) {
            nc__error_prefix(ctx, NC_ERR_FORMAT, "%s: checkpoint's schedule state", path);
            st = NC_ERR_FORMAT;
            goto fail;
        }
        sched_set = 1;
    }
    NC_CHECK(nc__model_io_load_tensors(m, f, path, NC__CHECKPOINT_PREFIX, 0));
    NC_CHECK(state_tensors(t, f, path, STATE1_PREFIX, found, t->state1, host));
    if (t->state2) NC_CHECK(state_tensors(t, f, path, STATE2_PREFIX, found + nt, t->state2, host));
    if (p.accum_count > 0) NC_CHECK(state_tensors(t, f, path, GRAD_PREFIX, found + 2 * nt, m->grad_arena, host));
    memcpy(t->tensor_updates, up->data, (size_t)nt * sizeof *t->tensor_updates);
    for (int k = 0; k < t->n_groups; k++) t->groups[k] = p.groups[k];
    t->steps = p.steps;
    t->updates = p.updates;
    t->accum_count = p.accum_count;
    t->nonfinite_run = p.nonfinite_run;
    if (info) {
        size_t size = info->struct_size;
        p.info.struct_size = size;
        memcpy(info, &p.info, size);
    }
    sched_set = 0;
fail:
    if (sched_set) nc__schedule_state_set(t->schedule, &old_sched);
    nc__free(ctx, host);
    nc__free(ctx, (void *)found);
    nc__free(ctx, p.groups);
    return st;
}

nc_status nc_trainer_load_checkpoint(nc_trainer *t, const char *path, nc_checkpoint_info *info) {
    if (!t) return NC_ERR_NULL;
    nc__model_write_begin(t->m);
    nc_status st = load_checkpoint(t, path, info);
    nc__model_write_end(t->m);
    return st;
}
