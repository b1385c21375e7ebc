/* predict.c — eval-mode forward passes: nc_model_forward runs one batch through an
 * eval plan of the model's pool (graph/pool.h: one per call running at once, so
 * threads may call it on one model together; the model's gate holds back changes
 * meanwhile); nc_model_predict_loader runs a loader's
 * epoch, collecting every sample's logits and labels in loader order, so programs
 * (nc-train's evaluation, nc-predict) compute metrics once from whole arrays;
 * nc_model_forward_raw converts a described camera buffer first (eval/raw_input.h). */
#include "core/context.h"
#include "core/model.h"
#include "core/progress.h"
#include "data/data.h"
#include "eval/raw_input.h"
#include "graph/exec.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* One batch on a plan of the model's pool (graph/pool.h), the read side held. */
static nc_status forward(nc_model *m, const float *x, int n, int c, int h, int w, float *logits) {
    const nc__shape in = nc__shape4(n, c, h, w);
    nc__plan *p;
    nc_status st = nc__plan_pool_take(m, &m->eval_plans, &in, &p);
    if (st != NC_OK) return st;
    st = nc__plan_forward(p, x, 0, 0);
    if (st == NC_OK) st = nc__plan_read_output(p, logits);
    nc__plan_pool_give(&m->eval_plans, p);
    return st;
}

nc_status nc_model_forward(nc_model *m, const float *x, int n, int c, int h, int w, float *logits) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!x || !logits) return nc__error(ctx, NC_ERR_NULL, "nc_model_forward: x or logits is NULL");
    nc__model_read_begin(m);
    nc_status st = forward(m, x, n, c, h, w, logits);
    nc__model_read_end(m);
    return st;
}

/* The described buffer converted into the call's own float batch (so threads never
 * share it), normalised with the model's metadata, then one forward. The read side is
 * held throughout: the normalisation cannot change under the call. */
static nc_status forward_raw(nc_model *m, const nc_input_desc *desc, float *logits) {
    static const char fn[] = "nc_model_forward_raw";
    nc_context *ctx = m->ctx;
    nc__raw r;
    nc_status st = nc__raw_check(ctx, fn, desc, nc_model_in_channels(m), &r);
    if (st != NC_OK) return st;
    if (r.d.normalize && !m->norm_mean)
        return nc__error(ctx, NC_ERR_NOT_FOUND,
                         "%s: normalize = 1 but the model stores no normalisation (nc_model_set_normalization; or "
                         "set normalize = 0)", fn);
    const nc_input_desc *d = &r.d;
    float *x = nc__alloc(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->h * (size_t)d->w * sizeof *x);
    if (!x) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for the converted batch", fn);
    nc__raw_convert(&r, d->normalize ? m->norm_mean : NULL, d->normalize ? m->norm_std : NULL, x);
    st = forward(m, x, d->n, d->c, d->h, d->w, logits);
    nc__free(ctx, x);
    return st;
}

nc_status nc_model_forward_raw(nc_model *m, const nc_input_desc *desc, float *logits) {
    if (!m) return NC_ERR_NULL;
    if (!logits) return nc__error(m->ctx, NC_ERR_NULL, "nc_model_forward_raw: logits is NULL");
    nc__model_read_begin(m);
    nc_status st = forward_raw(m, desc, logits);
    nc__model_read_end(m);
    return st;
}

/* Top-1 hits and counted labels of a batch's rows (labels n x heads, classes per
 * head K; labels outside [0, K) are not counted), for EVALUATE's running metric. */
static void count_hits(const float *logits, const int32_t *labels, int n, int heads, int K, int64_t *hits,
                       int64_t *counted) {
    for (int i = 0; i < n; i++)
        for (int h = 0; h < heads; h++) {
            int32_t y = labels[(size_t)i * (size_t)heads + (size_t)h];
            if (y < 0 || y >= K) continue;
            const float *z = logits + ((size_t)i * (size_t)heads + (size_t)h) * (size_t)K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (z[k] > z[best]) best = k;
            *hits += best == y;
            *counted += 1;
        }
}

static nc_status predict_loader(nc_model *model, nc_loader *loader, int64_t epoch, float *logits,
                                int32_t *labels, int64_t capacity, int64_t *count) {
    static const char fn[] = "nc_model_predict_loader";
    nc_context *ctx = nc_model_context(model);
    if (count) *count = 0;
    if (!loader) return nc__error(ctx, NC_ERR_NULL, "%s: loader is NULL", fn);
    if (!logits) return nc__error(ctx, NC_ERR_NULL, "%s: logits is NULL", fn);
    if (!count) return nc__error(ctx, NC_ERR_NULL, "%s: count is NULL", fn);
    if (capacity < 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: capacity %lld is negative", fn, (long long)capacity);
    if (epoch < 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: epoch %lld is negative", fn, (long long)epoch);

    const size_t outputs = (size_t)nc_model_num_outputs(model);
    const int in_c = nc_model_in_channels(model);
    nc_status st;
    nc__error_clear(ctx);
    if ((st = nc_loader_start_epoch(loader, epoch)) != NC_OK) return nc__loader_failed(ctx, st, fn, 0);

    int64_t rows = 0, hits = 0, counted = 0;
    nc_progress pr = nc__progress_begin(labels ? NC_PHASE_EVALUATE : NC_PHASE_PREDICT, nc_loader_num_batches(loader),
                                        NULL);
    pr.epoch = epoch;
    if ((st = nc__progress(ctx, &pr, fn, "batches")) != NC_OK) return st;
    for (int64_t b = 0;; b++) {
        nc_batch batch;
        nc__error_clear(ctx);
        if ((st = nc_loader_next(loader, &batch)) != NC_OK) return nc__loader_failed(ctx, st, fn, b);
        if (batch.n == 0) break;
        if (batch.c != in_c)
            return nc__error(ctx, NC_ERR_SHAPE, "%s: batch %lld has %d channels, the model expects %d", fn,
                             (long long)b + 1, batch.c, in_c);
        if (rows + batch.n > capacity) {
            /* count the rest of the epoch so the message gives the size needed; the
             * loader decodes the remaining batches, but nothing is written */
            int64_t needed = rows + batch.n;
            for (;;) {
                if ((st = nc_loader_next(loader, &batch)) != NC_OK || batch.n == 0) break;
                needed += batch.n;
            }
            *count = rows;
            if (st != NC_OK)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                 "%s: capacity %lld rows is too small (at least %lld needed)", fn,
                                 (long long)capacity, (long long)needed);
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: capacity %lld rows is too small (%lld needed)", fn,
                             (long long)capacity, (long long)needed);
        }
        st = forward(model, batch.x, batch.n, batch.c, batch.h, batch.w, logits + (size_t)rows * outputs);
        if (st != NC_OK) return nc__error_prefix(ctx, st, "%s: batch %lld", fn, (long long)b + 1);
        if (labels)
            memcpy(labels + (size_t)rows * (size_t)batch.heads, batch.labels,
                   (size_t)batch.n * (size_t)batch.heads * sizeof *labels);
        if (labels && nc__progress_wanted(ctx) && batch.heads == nc_model_num_heads(model))
            count_hits(logits + (size_t)rows * outputs, batch.labels, batch.n, batch.heads,
                       (int)outputs / batch.heads, &hits, &counted);
        rows += batch.n;
        *count = rows;
        pr.done = b + 1;
        pr.metric = counted ? (double)hits / (double)counted : NAN;
        if ((st = nc__progress(ctx, &pr, fn, "batches")) != NC_OK) return st;
    }
    return NC_OK;
}

nc_status nc_model_predict_loader(nc_model *model, nc_loader *loader, int64_t epoch, float *logits,
                                  int32_t *labels, int64_t capacity, int64_t *count) {
    if (!model) return NC_ERR_NULL;
    nc__model_read_begin(model);
    nc_status st = predict_loader(model, loader, epoch, logits, labels, capacity, count);
    nc__model_read_end(model);
    return st;
}
