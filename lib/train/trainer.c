/* trainer.c — nc_trainer: one training step = train-mode forward, softmax
 * cross-entropy on the host, backward through the graph, and a torch.optim.SGD
 * update of every trainable tensor in the backend's own layout. */
#include "neurc.h"
#include "core/context.h"
#include "core/model.h"
#include "core/rng.h"
#include "graph/exec.h"
#include "train/loss.h"

#include <math.h>
#include <string.h>

struct nc_trainer {
    nc_model *m;
    nc_trainer_options opt;
    void *momentum;            /* backend buffer, same offsets as the parameter arena */
    int64_t steps;             /* steps taken (updates applied or skipped) */
    int64_t updates;           /* updates applied: the first one initialises momentum */
    float *logits, *dlogits;   /* host, grown to the largest batch */
    size_t logits_cap;
};

void nc_trainer_options_init(nc_trainer_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->lr = 0.01f;
    opt->momentum = 0.9f;
}

static nc_status check_options(nc_context *ctx, const nc_trainer_options *o) {
    if (!(o->lr >= 0.0f) || !isfinite(o->lr))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: lr must be finite and >= 0 (got %g)", (double)o->lr);
    if (!(o->momentum >= 0.0f) || !isfinite(o->momentum))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: momentum must be >= 0 (got %g)", (double)o->momentum);
    if (!(o->weight_decay >= 0.0f) || !isfinite(o->weight_decay))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: weight_decay must be >= 0 (got %g)",
                         (double)o->weight_decay);
    if (!(o->dampening >= 0.0f && o->dampening <= 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: dampening must be in [0, 1] (got %g)",
                         (double)o->dampening);
    if (o->nesterov && (o->momentum <= 0.0f || o->dampening != 0.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "trainer: nesterov needs momentum > 0 and zero dampening");
    return NC_OK;
}

nc_status nc_trainer_create(nc_model *m, const nc_trainer_options *opt, nc_trainer **out) {
    if (!m || !out) return m ? nc__error(m->ctx, NC_ERR_NULL, "nc_trainer_create: out is NULL") : NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    *out = NULL;
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    if (opt) {
        if (opt->struct_size < sizeof(size_t) + sizeof(float) || opt->struct_size > sizeof o)
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
    NC_CHECK(nc__model_ensure_grads(m));
    NC_CHECK(ctx->backend->alloc(ctx->backend_state, m->arena_bytes ? m->arena_bytes : 64, &t->momentum));
    NC_CHECK(ctx->backend->fill(ctx->backend_state, t->momentum, 0.0f, m->arena_bytes / sizeof(float)));
    *out = t;
    return NC_OK;
fail:
    nc_trainer_destroy(t);
    return st;
}

void nc_trainer_destroy(nc_trainer *t) {
    if (!t) return;
    nc_context *ctx = t->m->ctx;
    if (t->momentum) ctx->backend->free(ctx->backend_state, t->momentum);
    nc__free(ctx, t->logits);
    nc__free(ctx, t->dlogits);
    nc__free(ctx, t);
}

nc_status nc_trainer_set_lr(nc_trainer *t, float lr) {
    if (!t) return NC_ERR_NULL;
    if (!(lr >= 0.0f) || !isfinite(lr))
        return nc__error(t->m->ctx, NC_ERR_INVALID_ARGUMENT, "nc_trainer_set_lr: lr must be finite and >= 0");
    t->opt.lr = lr;
    return NC_OK;
}

int64_t nc_trainer_num_steps(const nc_trainer *t) { return t ? t->steps : 0; }

static nc_status sgd_update_all(nc_trainer *t) {
    nc_model *m = t->m;
    nc_context *ctx = m->ctx;
    nc__sgd_desc d = {t->opt.lr, t->opt.momentum, t->opt.dampening, t->opt.weight_decay, t->opt.nesterov,
                      t->updates == 0};
    for (int i = 0; i < m->graph->n_tensors; i++) {
        if (!m->graph->tensors[i].trainable) continue;
        size_t off = m->slots[i].offset;
        nc_status st = ctx->backend->sgd_update(ctx->backend_state, &d, (size_t)m->slots[i].numel,
                                                (char *)m->arena + off,
                                                d.momentum != 0.0f ? (char *)t->momentum + off : NULL,
                                                (char *)m->grad_arena + off);
        if (st != NC_OK) return st;
    }
    t->updates++;
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
    /* validate labels before touching any state */
    double loss = 0.0;
    int correct = 0;
    st = nc__check_labels(ctx, labels, n, heads, classes);
    if (st != NC_OK) return st;

    st = ctx->backend->fill(ctx->backend_state, m->grad_arena, 0.0f, m->arena_bytes / sizeof(float));
    if (st != NC_OK) return st;
    uint64_t seed = nc__rng_u64(t->opt.seed, 0x73746570ull, (uint64_t)t->steps);
    st = nc__plan_forward(m->plan_train, x, 1, seed);
    if (st != NC_OK) return st;
    st = nc__plan_read_output(m->plan_train, t->logits);
    if (st != NC_OK) return st;
    st = nc__softmax_xent(ctx, t->logits, labels, n, heads, classes, t->dlogits, &loss, &correct);
    if (st != NC_OK) return st;
    t->steps++;
    if (out) {
        out->loss = (float)loss;
        out->correct = correct;
        out->total = n * heads;
    }
    if (!isfinite(loss)) {
        if (out) out->skipped = 1;
        return nc__error(ctx, NC_ERR_NUMERIC, "nc_trainer_step: loss is %g at step %lld; update skipped", loss,
                         (long long)t->steps - 1);
    }
    st = nc__plan_backward(m->plan_train, t->dlogits);
    if (st != NC_OK) return st;
    return sgd_update_all(t);
}
