/* epoch.c — nc_trainer_train_epoch: one loader epoch of nc_trainer_step calls with
 * progress reports and cancellation between steps. A cancelled epoch is resumed by
 * skipping the batches it consumed (the loader's order depends only on the seed and the
 * epoch), which is how nc-train resumes from a checkpoint's info.batch. */
#include "core/context.h"
#include "core/model.h"
#include "core/progress.h"
#include "data/data.h"
#include "train/trainer.h"

#include <math.h>
#include <string.h>

static const char FN[] = "nc_trainer_train_epoch";

void nc_epoch_stats_init(nc_epoch_stats *s) {
    if (!s) return;
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
    s->loss = s->accuracy = NAN;
}

/* Running sums of the steps this call made. */
typedef struct epoch_sums {
    nc_epoch_stats s;
    double loss_sum;
    int64_t counted, correct, total;
} epoch_sums;

static void add_step(epoch_sums *e, const nc_step_stats *st, int n) {
    e->s.steps++;
    e->s.samples += n;
    if (st->skipped) {
        e->s.skipped++;
        return;
    }
    e->loss_sum += (double)st->loss * n;
    e->counted += n;
    e->correct += st->correct;
    e->total += st->total;
    e->s.loss = e->loss_sum / (double)e->counted;
    e->s.accuracy = e->total ? (double)e->correct / (double)e->total : NAN;
}

static nc_status run_epoch(nc_trainer *t, nc_loader *l, int64_t epoch, int64_t start, epoch_sums *e) {
    nc_context *ctx = t->m->ctx;
    nc_status st;
    nc_progress pr = nc__progress_begin(NC_PHASE_TRAIN, nc_loader_num_batches(l), NULL);
    pr.epoch = epoch;
    pr.done = start;
    nc__error_clear(ctx);
    if ((st = nc_loader_start_epoch(l, epoch)) != NC_OK) return nc__loader_failed(ctx, st, FN, 0);
    if ((st = nc__progress(ctx, &pr, FN, "batches")) != NC_OK) return st;
    for (int64_t b = 0;; b++) {
        nc_batch batch;
        nc__error_clear(ctx);
        if ((st = nc_loader_next(l, &batch)) != NC_OK) return nc__loader_failed(ctx, st, FN, b);
        if (batch.n == 0) break;
        e->s.batches = b + 1;
        if (b < start) continue; /* trained before the cancellation */
        nc_step_stats ss;
        st = nc_trainer_step(t, batch.x, batch.labels, batch.n, batch.c, batch.h, batch.w, &ss);
        if (st != NC_OK) return nc__error_prefix(ctx, st, "%s: epoch %lld batch %lld", FN, (long long)epoch,
                                                 (long long)b + 1);
        add_step(e, &ss, batch.n);
        pr.done = b + 1;
        pr.loss = e->s.loss;
        pr.metric = e->s.accuracy;
        if ((st = nc__progress(ctx, &pr, FN, "batches")) != NC_OK) return st;
    }
    e->s.finished = 1;
    return NC_OK;
}

nc_status nc_trainer_train_epoch(nc_trainer *t, nc_loader *l, int64_t epoch, int64_t start_batch,
                                 nc_epoch_stats *out) {
    if (!t) return NC_ERR_NULL;
    nc_context *ctx = t->m->ctx;
    if (!l) return nc__error(ctx, NC_ERR_NULL, "%s: loader is NULL", FN);
    if (out && (out->struct_size < offsetof(nc_epoch_stats, finished) || out->struct_size > sizeof *out))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: out->struct_size %zu is not that of nc_epoch_stats", FN,
                         out->struct_size);
    if (epoch < 0 || start_batch < 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: epoch %lld and start_batch %lld must be >= 0", FN,
                         (long long)epoch, (long long)start_batch);
    epoch_sums e = {0};
    nc_epoch_stats_init(&e.s);
    e.s.batches = start_batch;
    nc_status st = run_epoch(t, l, epoch, start_batch, &e);
    if (out) {
        size_t size = out->struct_size;
        memcpy(out, &e.s, size);
        out->struct_size = size;
    }
    return st;
}
