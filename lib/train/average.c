/* average.c — weights kept beside the model: an exponential moving average (timm's
 * ModelEmaV2) that can be swapped into the model in O(1) for evaluation, and early
 * stopping that snapshots the best weights. Both are backend buffers laid out like
 * the model's parameter arena, so no host round trip is needed. */
#include "neurc.h"
#include "core/context.h"
#include "core/model.h"

#include <math.h>
#include <string.h>

/* A backend copy of the model's arena (and its host counters). */
typedef struct snapshot {
    void *arena;
    int64_t *num_batches;
} snapshot;

static nc_status snapshot_alloc(nc_model *m, snapshot *s) {
    nc_context *ctx = m->ctx;
    memset(s, 0, sizeof *s);
    nc_status st = ctx->backend->alloc(ctx->backend_state, m->arena_bytes ? m->arena_bytes : 64, &s->arena);
    if (st != NC_OK) return st;
    s->num_batches = nc__calloc(ctx, (size_t)(m->graph->n_tensors ? m->graph->n_tensors : 1), sizeof(int64_t));
    if (!s->num_batches) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "out of memory for a copy of the weights");
    return NC_OK;
}

static void snapshot_free(nc_model *m, snapshot *s) {
    if (s->arena) m->ctx->backend->free(m->ctx->backend_state, s->arena);
    nc__free(m->ctx, s->num_batches);
}

/* dst = a * dst + b * src over every float tensor of the model; counters copied. */
static nc_status blend(nc_model *m, void *dst, int64_t *dst_counts, float a, const void *src,
                       const int64_t *src_counts, float b) {
    nc_context *ctx = m->ctx;
    for (int i = 0; i < m->graph->n_tensors; i++) {
        if (m->graph->tensors[i].role == NC__ROLE_NUM_BATCHES) {
            dst_counts[i] = src_counts[i];
            continue;
        }
        size_t off = m->slots[i].offset;
        nc_status st = ctx->backend->axpby(ctx->backend_state, (size_t)m->slots[i].numel, (char *)dst + off, a,
                                           (const char *)src + off, b);
        if (st != NC_OK) return st;
    }
    return NC_OK;
}

/* ------------------------------------------------------------------- EMA */

struct nc_ema {
    nc_model *m;
    float decay;
    snapshot avg;
    int swapped;
};

nc_status nc_ema_create(nc_model *m, float decay, nc_ema **out) {
    if (!m || !out) return m ? nc__error(m->ctx, NC_ERR_NULL, "nc_ema_create: out is NULL") : NC_ERR_NULL;
    *out = NULL;
    nc_context *ctx = m->ctx;
    if (!(decay >= 0.0f && decay < 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_ema_create: decay must be in [0, 1) (got %g)", (double)decay);
    nc_ema *e = nc__calloc(ctx, 1, sizeof *e);
    if (!e) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_ema_create: out of memory");
    e->m = m;
    e->decay = decay;
    nc_status st = snapshot_alloc(m, &e->avg);
    if (st == NC_OK) st = blend(m, e->avg.arena, e->avg.num_batches, 0.0f, m->arena, m->num_batches, 1.0f);
    if (st != NC_OK) {
        nc_ema_destroy(e);
        return st;
    }
    *out = e;
    return NC_OK;
}

void nc_ema_destroy(nc_ema *e) {
    if (!e) return;
    if (e->swapped) nc_ema_swap(e); /* never leave the model holding our buffer */
    snapshot_free(e->m, &e->avg);
    nc__free(e->m->ctx, e);
}

static nc_status ema_update(nc_ema *e) {
    if (!e) return NC_ERR_NULL;
    if (e->swapped)
        return nc__error(e->m->ctx, NC_ERR_STATE, "nc_ema_update: the average is swapped into the model; swap back first");
    return blend(e->m, e->avg.arena, e->avg.num_batches, e->decay, e->m->arena, e->m->num_batches, 1.0f - e->decay);
}

nc_status nc_ema_update(nc_ema *e) {
    if (!e) return NC_ERR_NULL;
    nc__model_read_begin(e->m);
    nc_status st = ema_update(e);
    nc__model_read_end(e->m);
    return st;
}

static nc_status ema_swap(nc_ema *e) {
    if (!e) return NC_ERR_NULL;
    nc_model *m = e->m;
    void *arena = m->arena;
    m->arena = e->avg.arena;
    e->avg.arena = arena;
    int64_t *counts = m->num_batches;
    m->num_batches = e->avg.num_batches;
    e->avg.num_batches = counts;
    e->swapped = !e->swapped;
    nc__model_params_changed(m);
    return NC_OK;
}

nc_status nc_ema_swap(nc_ema *e) {
    if (!e) return NC_ERR_NULL;
    nc__model_write_begin(e->m);
    nc_status st = ema_swap(e);
    nc__model_write_end(e->m);
    return st;
}

int nc_ema_swapped(const nc_ema *e) { return e ? e->swapped : 0; }

/* -------------------------------------------------------- early stopping */

struct nc_early_stopping {
    nc_model *m;
    int mode_max, patience;
    float min_delta;
    float best;        /* NaN before the first update */
    int have_best;
    int bad_epochs;
    snapshot best_weights;
};

nc_status nc_early_stopping_create(nc_model *m, int mode_max, int patience, float min_delta,
                                   nc_early_stopping **out) {
    if (!m || !out) return m ? nc__error(m->ctx, NC_ERR_NULL, "nc_early_stopping_create: out is NULL") : NC_ERR_NULL;
    *out = NULL;
    nc_context *ctx = m->ctx;
    if (patience < 0 || !(min_delta >= 0.0f) || !isfinite(min_delta))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_early_stopping_create: patience (%d) and min_delta (%g) must be >= 0", patience,
                         (double)min_delta);
    nc_early_stopping *es = nc__calloc(ctx, 1, sizeof *es);
    if (!es) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_early_stopping_create: out of memory");
    es->m = m;
    es->mode_max = mode_max != 0;
    es->patience = patience;
    es->min_delta = min_delta;
    es->best = NAN;
    nc_status st = snapshot_alloc(m, &es->best_weights);
    if (st != NC_OK) {
        nc_early_stopping_destroy(es);
        return st;
    }
    *out = es;
    return NC_OK;
}

void nc_early_stopping_destroy(nc_early_stopping *es) {
    if (!es) return;
    snapshot_free(es->m, &es->best_weights);
    nc__free(es->m->ctx, es);
}

static nc_status early_stopping_update(nc_early_stopping *es, float metric, int *improved, int *stop) {
    if (!es) return NC_ERR_NULL;
    nc_model *m = es->m;
    if (improved) *improved = 0;
    if (stop) *stop = 0;
    if (!isfinite(metric))
        return nc__error(m->ctx, NC_ERR_NUMERIC, "nc_early_stopping_update: the metric is %g", (double)metric);
    int better = !es->have_best || (es->mode_max ? metric > es->best + es->min_delta : metric < es->best - es->min_delta);
    if (better) {
        nc_status st = blend(m, es->best_weights.arena, es->best_weights.num_batches, 0.0f, m->arena, m->num_batches, 1.0f);
        if (st != NC_OK) return st;
        es->best = metric;
        es->have_best = 1;
        es->bad_epochs = 0;
        if (improved) *improved = 1;
    } else {
        es->bad_epochs++;
    }
    if (stop) *stop = es->bad_epochs >= es->patience && es->bad_epochs > 0;
    return NC_OK;
}

nc_status nc_early_stopping_update(nc_early_stopping *es, float metric, int *improved, int *stop) {
    if (!es) return NC_ERR_NULL;
    nc__model_read_begin(es->m);
    nc_status st = early_stopping_update(es, metric, improved, stop);
    nc__model_read_end(es->m);
    return st;
}

static nc_status restore_best(nc_early_stopping *es) {
    if (!es) return NC_ERR_NULL;
    nc_model *m = es->m;
    if (!es->have_best)
        return nc__error(m->ctx, NC_ERR_STATE, "nc_early_stopping_restore_best: no metric reported yet");
    nc__model_params_changed(m);
    return blend(m, m->arena, m->num_batches, 0.0f, es->best_weights.arena, es->best_weights.num_batches, 1.0f);
}

nc_status nc_early_stopping_restore_best(nc_early_stopping *es) {
    if (!es) return NC_ERR_NULL;
    nc__model_write_begin(es->m);
    nc_status st = restore_best(es);
    nc__model_write_end(es->m);
    return st;
}

float nc_early_stopping_best(const nc_early_stopping *es) { return es && es->have_best ? es->best : NAN; }
