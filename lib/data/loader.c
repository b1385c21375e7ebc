/* loader.c — nc_loader: batches of decoded, transformed samples. `workers` threads
 * fill a ring of prefetch+1 batch slots ahead of the consumer (the work unit is one
 * sample, taken in epoch order) and nc_loader_next hands the slots out in order.
 * What a batch holds depends only on (seed, epoch), never on the number of workers. */
#include "core/context.h"
#include "core/rng.h"
#include "data/data.h"
#include "data/transform.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define STREAM_SHUFFLE 0x73687566666c6500ull /* "shuffle" */
#define NO_ERROR INT64_MAX
#define MAX_WORKERS 256
#define MAX_PREFETCH 1024

typedef struct worker {
    struct nc_loader *l;
    nc_context *ctx; /* private error text, same allocator as the loader's */
    nc__pixels px;   /* decode buffers, reused from sample to sample (ctx's allocator) */
    pthread_t thread;
} worker;

/* Where finished samples go; fixed once the first sample has set the shape. */
typedef struct shape {
    float *x;
    int c, h, w;
    size_t chw;
} shape;

struct nc_loader {
    nc_context *ctx; /* the dataset's: allocator, and errors for the caller */
    nc_dataset *ds;
    const nc_transform *t;
    int batch, shuffle, drop_last, nworkers, nslots, heads;
    uint64_t seed;
    int64_t total;         /* samples given (all ranks together) */
    int shard_rank, shard_count;
    int64_t num;           /* this rank's samples per epoch before drop_last */
    int64_t *base;         /* (total) the samples as given */
    int64_t *perm;         /* (total) this epoch's order of all of them */
    int64_t *order;        /* (num) this rank's part of it */
    int64_t nbatches;      /* per epoch */
    int64_t epoch_samples; /* samples per epoch after drop_last */

    /* batch slots: slot of batch b = b % nslots; x allocated with the first sample */
    int shape_known;
    shape sh;              /* x: (nslots, batch, c, h, w) */
    int32_t *labels;       /* (nslots, batch, heads) */
    int64_t *idx;          /* (nslots, batch) dataset index of each sample */
    int *slot_done;        /* (nslots) samples finished in the slot's batch */

    /* epoch state: under mu once workers exist */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers: work became claimable, or quit */
    pthread_cond_t done_cv; /* consumer: a batch is ready or failed; busy fell to 0 */
    int sync_ready;         /* mu and the condition variables exist */
    int running, quit;
    uint64_t gen;           /* bumped by every start_epoch and by destroy */
    uint64_t epoch;
    int64_t next_pos;       /* next epoch position a worker takes */
    int64_t consumed;       /* batches handed to the consumer */
    int64_t released;       /* batches whose slot may be refilled */
    int busy;               /* workers between taking a sample and finishing it */
    int64_t err_pos;        /* first failing position, NO_ERROR if none */
    nc_status err_status;
    char err_msg[NC__ERROR_TEXT];

    /* consumer-only state */
    int started;
    nc_status sticky;       /* the error already returned in this epoch */
    nc_context *sync_ctx;   /* workers == 0: decoding happens here */
    nc__pixels sync_px;     /* workers == 0: decode buffers */

    worker *workers;        /* (nworkers) */
    int nthreads;           /* threads actually started */
};

void nc_loader_options_init(nc_loader_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->batch_size = 32;
    opt->shuffle = 1;
    opt->drop_last = 0;
    opt->workers = 2;
    opt->prefetch = 2;
    opt->seed = 0;
    opt->indices = NULL;
    opt->num_indices = 0;
    opt->shard_rank = 0;
    opt->shard_count = 1;
}

/* Samples in batch b of the epoch. */
static int64_t batch_count(const nc_loader *l, int64_t b) {
    int64_t left = l->epoch_samples - b * l->batch;
    return left < l->batch ? left : l->batch;
}

/* Makes sure the message in wctx names the sample's file, then returns st. */
static nc_status name_file(nc_loader *l, nc_context *wctx, int64_t idx, nc_status st) {
    const char *path = nc_dataset_path(l->ds, idx);
    if (path && !strstr(nc_context_last_error(wctx), path)) nc__error_prefix(wctx, st, "%s", path);
    return st;
}

/* One sample on its way into a batch: its decoded source, then either the fused plan
 * that renders it straight into the batch or the finished image of the exact path. */
typedef struct sample {
    nc__source src;
    nc_image *img;         /* the source when it is stacked from several files */
    int planned;           /* plan holds the sample's transform (fused path) */
    nc__fused_plan plan;
    nc_image *out;         /* the exact path's result, or NULL */
    int c, h, w;           /* the sample's size in the batch */
} sample;

static void sample_free(sample *s) {
    nc_image_destroy(s->img);
    nc_image_destroy(s->out);
    s->img = s->out = NULL;
}

/* Decodes dataset sample idx into s->src: into px (one file, or IDX), else as a float
 * image (files stacked as channels). */
static nc_status decode_sample(nc_loader *l, nc_context *wctx, int64_t idx, nc__pixels *px, sample *s) {
    nc_status st = nc__dataset_read_pixels(l->ds, wctx, idx, px);
    if (st == NC_OK) {
        s->src = (nc__source){.channels = px->channels, .height = px->height, .width = px->width, .px = px};
        return NC_OK;
    }
    if (st != NC_ERR_UNSUPPORTED) return name_file(l, wctx, idx, st);
    st = nc__dataset_read(l->ds, wctx, idx, &s->img);
    if (st != NC_OK) return name_file(l, wctx, idx, st);
    s->src = (nc__source){.channels = s->img->channels, .height = s->img->height, .width = s->img->width,
                          .planar = s->img->data};
    return NC_OK;
}

/* Decodes sample idx and settles how it is transformed for `epoch`: the fused plan
 * (or none: no transform), or the exact path's image; sets the sample's size. */
static nc_status make_sample(nc_loader *l, nc_context *wctx, int64_t idx, uint64_t epoch, nc__pixels *px,
                             sample *s) {
    s->img = s->out = NULL;
    nc_status st = decode_sample(l, wctx, idx, px, s);
    if (st != NC_OK) return st;
    const nc__source *src = &s->src;
    s->planned = !l->t || nc__transform_plan(l->t, src->channels, src->height, src->width, l->seed, epoch,
                                             (uint64_t)idx, &s->plan);
    if (!l->t) /* the source converted to float as it is: an empty plan */
        s->plan = (nc__fused_plan){.c = src->channels, .out_h = src->height, .out_w = src->width};
    if (s->planned) {
        s->c = s->plan.c;
        s->h = s->plan.out_h;
        s->w = s->plan.out_w;
        return NC_OK;
    }
    if (!s->img) {
        st = nc__pixels_to_image(wctx, px, &s->img);
        if (st != NC_OK) return name_file(l, wctx, idx, st);
    }
    st = nc_transform_apply(l->t, wctx, s->img, l->seed, epoch, (uint64_t)idx, &s->out);
    if (st != NC_OK) return name_file(l, wctx, idx, st);
    s->c = s->out->channels;
    s->h = s->out->height;
    s->w = s->out->width;
    return NC_OK;
}

/* The first sample fixes the batch shape; allocates the slots' pixels (under mu
 * when workers exist). */
static nc_status set_shape(nc_loader *l, nc_context *wctx, int c, int h, int w) {
    size_t chw = (size_t)c * (size_t)h * (size_t)w;
    size_t per = (size_t)l->nslots * (size_t)l->batch;
    if (chw == 0 || chw > SIZE_MAX / sizeof(float) / per)
        return nc__error(wctx, NC_ERR_LIMIT, "loader: %d batches of %d x %d x %d x %d floats do not fit in memory",
                         l->nslots, l->batch, c, h, w);
    float *x = nc__alloc(l->ctx, per * chw * sizeof(float));
    if (!x)
        return nc__error(wctx, NC_ERR_OUT_OF_MEMORY, "loader: out of memory for %d batches of %d x %d x %d x %d floats",
                         l->nslots, l->batch, c, h, w);
    l->sh.x = x;
    l->sh.c = c;
    l->sh.h = h;
    l->sh.w = w;
    l->sh.chw = chw;
    l->shape_known = 1;
    return NC_OK;
}

/* Writes a finished sample (rendered by its plan, or copied), its labels and its
 * index into its batch slot. */
static nc_status place(nc_loader *l, nc_context *wctx, const shape *sh, int64_t pos, int64_t idx, const sample *s) {
    if (s->c != sh->c || s->h != sh->h || s->w != sh->w) {
        const char *path = nc_dataset_path(l->ds, idx);
        return nc__error(wctx, NC_ERR_SHAPE,
                         "%s: sample is %d x %d x %d (C x H x W)%s but the batch is %d x %d x %d (the first "
                         "sample's size); %s",
                         path ? path : "?", s->c, s->h, s->w, l->t ? " after the transform" : "", sh->c, sh->h,
                         sh->w,
                         l->t ? "end the transform with a fixed-size resize or crop"
                              : "give the loader a transform that resizes or crops");
    }
    int64_t b = pos / l->batch;
    size_t k = (size_t)(b % l->nslots) * (size_t)l->batch + (size_t)(pos % l->batch);
    if (s->planned) nc__fused_render(sh->x + k * sh->chw, &s->src, &s->plan);
    else memcpy(sh->x + k * sh->chw, s->out->data, sh->chw * sizeof(float));
    memcpy(l->labels + k * (size_t)l->heads, nc__dataset_labels_ptr(l->ds, idx), (size_t)l->heads * sizeof(int32_t));
    l->idx[k] = idx;
    return NC_OK;
}

/* Keeps the first failure in epoch order (the one a single thread would meet). */
static void record_error(nc_loader *l, int64_t pos, nc_status st, const nc_context *wctx) {
    if (pos >= l->err_pos) return;
    l->err_pos = pos;
    l->err_status = st;
    snprintf(l->err_msg, sizeof l->err_msg, "%s", nc_context_last_error(wctx));
}

/* Whether a worker may take position next_pos now (mu held): the epoch runs, the
 * position is before any failure, its slot is free, and the shape is known (only
 * position 0 may be taken before: it sets the shape). */
static int claimable(const nc_loader *l) {
    int64_t p = l->next_pos;
    if (!l->running || p >= l->epoch_samples || p >= l->err_pos) return 0;
    if (p / l->batch >= l->released + l->nslots) return 0;
    return l->shape_known || p == 0;
}

static void *worker_main(void *arg) {
    worker *wk = arg;
    nc_loader *l = wk->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && !claimable(l)) pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->quit) break;
        const int64_t pos = l->next_pos++;
        const int64_t idx = l->order[pos];
        const uint64_t gen = l->gen, epoch = l->epoch;
        const int known = l->shape_known;
        shape sh = l->sh;
        l->busy++;
        pthread_mutex_unlock(&l->mu);

        sample smp;
        int cancelled = 0;
        nc_status st = make_sample(l, wk->ctx, idx, epoch, &wk->px, &smp);
        if (st == NC_OK && !known) {
            pthread_mutex_lock(&l->mu);
            if (gen != l->gen) cancelled = 1;
            else st = set_shape(l, wk->ctx, smp.c, smp.h, smp.w);
            sh = l->sh;
            pthread_mutex_unlock(&l->mu);
        }
        /* No one else writes this sample's place: positions are taken once per epoch
         * and start_epoch waits for busy == 0 before the next epoch reuses slots. */
        if (st == NC_OK && !cancelled) st = place(l, wk->ctx, &sh, pos, idx, &smp);
        sample_free(&smp);

        pthread_mutex_lock(&l->mu);
        l->busy--;
        if (gen == l->gen) {
            if (st != NC_OK) {
                record_error(l, pos, st, wk->ctx);
                pthread_cond_broadcast(&l->done_cv);
            } else {
                int64_t b = pos / l->batch;
                if (++l->slot_done[b % l->nslots] == batch_count(l, b)) pthread_cond_broadcast(&l->done_cv);
            }
            if (!known) pthread_cond_broadcast(&l->work_cv); /* shape known (or position 0 failed) */
        } else if (l->busy == 0) {
            pthread_cond_broadcast(&l->done_cv); /* start_epoch or destroy waits for this */
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Stops the workers' current epoch: no new samples are taken and every sample in
 * progress is finished (and discarded) when this returns with mu held. */
static void stop_epoch_locked(nc_loader *l) {
    l->gen++;
    l->running = 0;
    while (l->busy > 0) pthread_cond_wait(&l->done_cv, &l->mu);
}

nc_status nc_loader_start_epoch(nc_loader *l, int64_t epoch) {
    if (!l) return NC_ERR_NULL;
    if (epoch < 0)
        return nc__error(l->ctx, NC_ERR_INVALID_ARGUMENT, "nc_loader_start_epoch: epoch %lld is negative",
                         (long long)epoch);
    if (l->nworkers > 0) {
        pthread_mutex_lock(&l->mu);
        stop_epoch_locked(l);
    }
    /* The epoch's order: a Fisher-Yates shuffle of the samples drawn from (seed, epoch),
     * then this rank's positions of it, wrapping around as DistributedSampler pads. */
    memcpy(l->perm, l->base, (size_t)l->total * sizeof *l->perm);
    if (l->shuffle)
        for (int64_t i = l->total - 1; i > 0; i--) {
            uint64_t j = nc__rng_u64(l->seed, STREAM_SHUFFLE + (uint64_t)epoch, (uint64_t)i) % (uint64_t)(i + 1);
            int64_t v = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = v;
        }
    for (int64_t k = 0; k < l->num; k++)
        l->order[k] = l->perm[(l->shard_rank + k * l->shard_count) % l->total];
    l->epoch = (uint64_t)epoch;
    l->next_pos = 0;
    l->consumed = 0;
    l->released = 0;
    l->err_pos = NO_ERROR;
    l->err_status = NC_OK;
    l->err_msg[0] = 0;
    for (int s = 0; s < l->nslots; s++) l->slot_done[s] = 0;
    l->started = 1;
    l->sticky = NC_OK;
    if (l->nworkers > 0) {
        l->running = 1;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
    }
    return NC_OK;
}

/* Points out at batch b (whose slot is filled). */
static void fill(const nc_loader *l, const shape *sh, int64_t b, int64_t count, nc_batch *out) {
    size_t k = (size_t)(b % l->nslots) * (size_t)l->batch;
    out->x = sh->x + k * sh->chw;
    out->labels = l->labels + k * (size_t)l->heads;
    out->indices = l->idx + k;
    out->n = (int)count;
    out->c = sh->c;
    out->h = sh->h;
    out->w = sh->w;
    out->heads = l->heads;
}

/* workers == 0: decodes batch `consumed` here, in order. */
static nc_status next_sync(nc_loader *l, nc_batch *out) {
    l->released = l->consumed;
    int64_t b = l->consumed;
    if (b >= l->nbatches) return NC_OK;
    int64_t count = batch_count(l, b);
    for (int64_t j = 0; j < count; j++) {
        int64_t pos = b * l->batch + j, idx = l->order[pos];
        sample smp;
        nc_status st = make_sample(l, l->sync_ctx, idx, l->epoch, &l->sync_px, &smp);
        if (st == NC_OK && !l->shape_known) st = set_shape(l, l->sync_ctx, smp.c, smp.h, smp.w);
        if (st == NC_OK) st = place(l, l->sync_ctx, &l->sh, pos, idx, &smp);
        sample_free(&smp);
        if (st != NC_OK) {
            record_error(l, pos, st, l->sync_ctx);
            l->sticky = st;
            return nc__error(l->ctx, st, "%s", l->err_msg);
        }
    }
    l->consumed++;
    fill(l, &l->sh, b, count, out);
    return NC_OK;
}

/* workers > 0: frees the held slot, then waits for batch `consumed` (or its error). */
static nc_status next_async(nc_loader *l, nc_batch *out) {
    char msg[NC__ERROR_TEXT];
    pthread_mutex_lock(&l->mu);
    if (l->released < l->consumed) {
        l->slot_done[l->released % l->nslots] = 0;
        l->released = l->consumed;
        pthread_cond_broadcast(&l->work_cv);
    }
    int64_t b = l->consumed;
    if (b >= l->nbatches) {
        pthread_mutex_unlock(&l->mu);
        return NC_OK;
    }
    int64_t count = batch_count(l, b), end = (b + 1) * l->batch;
    int *done = &l->slot_done[b % l->nslots];
    while (*done < count && l->err_pos >= end) pthread_cond_wait(&l->done_cv, &l->mu);
    if (l->err_pos < end) {
        nc_status st = l->err_status;
        memcpy(msg, l->err_msg, sizeof msg);
        l->sticky = st;
        l->running = 0; /* the epoch is over: nothing more is taken */
        pthread_mutex_unlock(&l->mu);
        return nc__error(l->ctx, st, "%s", msg);
    }
    l->consumed++;
    shape sh = l->sh;
    pthread_mutex_unlock(&l->mu);
    fill(l, &sh, b, count, out);
    return NC_OK;
}

nc_status nc_loader_next(nc_loader *l, nc_batch *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!l) return NC_ERR_NULL;
    if (!out) return nc__error(l->ctx, NC_ERR_NULL, "nc_loader_next: NULL out");
    if (!l->started) {
        nc_status st = nc_loader_start_epoch(l, 0);
        if (st != NC_OK) return st;
    }
    if (l->sticky != NC_OK) return nc__error(l->ctx, l->sticky, "%s", l->err_msg);
    return l->nworkers > 0 ? next_async(l, out) : next_sync(l, out);
}

int64_t nc_loader_num_batches(const nc_loader *l) { return l ? l->nbatches : 0; }

void nc_loader_destroy(nc_loader *l) {
    if (!l) return;
    if (l->sync_ready) {
        pthread_mutex_lock(&l->mu);
        stop_epoch_locked(l);
        l->quit = 1;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nthreads; i++) pthread_join(l->workers[i].thread, NULL);
        pthread_cond_destroy(&l->done_cv);
        pthread_cond_destroy(&l->work_cv);
        pthread_mutex_destroy(&l->mu);
    }
    nc_context *ctx = l->ctx;
    if (l->workers)
        for (int i = 0; i < l->nworkers; i++) {
            nc__pixels_free(l->workers[i].ctx, &l->workers[i].px);
            nc_context_destroy(l->workers[i].ctx);
        }
    if (l->sync_ctx) nc__pixels_free(l->sync_ctx, &l->sync_px);
    nc_context_destroy(l->sync_ctx);
    nc__free(ctx, l->workers);
    nc__free(ctx, l->sh.x);
    nc__free(ctx, l->labels);
    nc__free(ctx, l->idx);
    nc__free(ctx, l->slot_done);
    nc__free(ctx, l->perm);
    nc__free(ctx, l->order);
    nc__free(ctx, l->base);
    nc__free(ctx, l);
}

/* Checks the options against the dataset; messages go to ctx. */
static nc_status check_options(nc_context *ctx, nc_dataset *ds, const nc_loader_options *o) {
    const char *fn = "nc_loader_create";
    if (o->batch_size < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: batch_size %d must be >= 1", fn, o->batch_size);
    if (o->workers < 0 || o->workers > MAX_WORKERS)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: workers %d must be in [0, %d]", fn, o->workers,
                         MAX_WORKERS);
    if (o->prefetch < (o->workers > 0 ? 1 : 0) || o->prefetch > MAX_PREFETCH)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: prefetch %d must be in [%d, %d]", fn, o->prefetch,
                         o->workers > 0 ? 1 : 0, MAX_PREFETCH);
    if (o->shard_count < 1 || o->shard_rank < 0 || o->shard_rank >= o->shard_count)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: shard_rank %d of shard_count %d is not a rank", fn,
                         o->shard_rank, o->shard_count);
    if (o->indices) {
        if (o->num_indices < 0)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: num_indices %lld is negative", fn,
                             (long long)o->num_indices);
        int64_t size = nc_dataset_size(ds);
        for (int64_t i = 0; i < o->num_indices; i++)
            if (o->indices[i] < 0 || o->indices[i] >= size)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                 "%s: indices[%lld] = %lld is outside the dataset's %lld samples", fn, (long long)i,
                                 (long long)o->indices[i], (long long)size);
    }
    return NC_OK;
}

static nc_status start_workers(nc_loader *l) {
    nc_status st = NC_OK;
    l->workers = nc__calloc(l->ctx, (size_t)l->nworkers, sizeof *l->workers);
    if (!l->workers) return nc__error(l->ctx, NC_ERR_OUT_OF_MEMORY, "nc_loader_create: out of memory");
    for (int i = 0; i < l->nworkers; i++) {
        l->workers[i].l = l;
        NC_CHECK(nc__context_create_child(l->ctx, &l->workers[i].ctx));
    }
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return nc__error(l->ctx, NC_ERR_OUT_OF_MEMORY, "nc_loader_create: cannot create a mutex");
    if (pthread_cond_init(&l->work_cv, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        return nc__error(l->ctx, NC_ERR_OUT_OF_MEMORY, "nc_loader_create: cannot create a condition variable");
    }
    if (pthread_cond_init(&l->done_cv, NULL) != 0) {
        pthread_cond_destroy(&l->work_cv);
        pthread_mutex_destroy(&l->mu);
        return nc__error(l->ctx, NC_ERR_OUT_OF_MEMORY, "nc_loader_create: cannot create a condition variable");
    }
    l->sync_ready = 1;
    for (int i = 0; i < l->nworkers; i++) {
        int rc = pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]);
        if (rc != 0)
            return nc__error(l->ctx, NC_ERR_OUT_OF_MEMORY, "nc_loader_create: cannot start worker thread %d of %d: %s",
                             i + 1, l->nworkers, strerror(rc));
        l->nthreads++;
    }
fail:
    return st;
}

nc_status nc_loader_create(nc_dataset *ds, const nc_transform *t, const nc_loader_options *opt, nc_loader **out) {
    const char *fn = "nc_loader_create";
    if (out) *out = NULL;
    if (!ds) return NC_ERR_NULL;
    nc_context *ctx = nc__dataset_context(ds);
    if (!out) return nc__error(ctx, NC_ERR_NULL, "%s: NULL out", fn);
    nc_loader_options o;
    nc_loader_options_init(&o);
    if (opt) {
        if (opt->struct_size < offsetof(nc_loader_options, num_indices) + sizeof o.num_indices ||
            opt->struct_size > sizeof o)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: struct_size %zu is not that of this version (%zu)",
                             fn, opt->struct_size, sizeof o);
        memcpy(&o, opt, opt->struct_size);
    }
    nc_status st = check_options(ctx, ds, &o);
    if (st != NC_OK) return st;

    nc_loader *l = nc__calloc(ctx, 1, sizeof *l);
    if (!l) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    l->ctx = ctx;
    l->ds = ds;
    l->t = t;
    l->batch = o.batch_size;
    l->shuffle = o.shuffle != 0;
    l->drop_last = o.drop_last != 0;
    l->nworkers = o.workers;
    l->nslots = o.workers > 0 ? o.prefetch + 1 : 1;
    l->heads = nc_dataset_num_heads(ds);
    l->seed = o.seed;
    l->total = o.indices ? o.num_indices : nc_dataset_size(ds);
    l->shard_rank = o.shard_rank;
    l->shard_count = o.shard_count;
    l->num = l->total ? (l->total + o.shard_count - 1) / o.shard_count : 0;
    l->nbatches = l->drop_last ? l->num / l->batch : (l->num + l->batch - 1) / l->batch;
    l->epoch_samples = l->drop_last ? l->nbatches * l->batch : l->num;
    l->err_pos = NO_ERROR;

    size_t per = (size_t)l->nslots * (size_t)l->batch;
    if ((uint64_t)l->total > SIZE_MAX / sizeof(int64_t) || per > SIZE_MAX / sizeof(int64_t) / (size_t)(l->heads + 1)) {
        st = nc__error(ctx, NC_ERR_LIMIT, "%s: batch_size %d with prefetch %d is too large", fn, l->batch, o.prefetch);
        goto fail;
    }
    l->base = nc__alloc(ctx, (size_t)(l->total ? l->total : 1) * sizeof *l->base);
    l->perm = nc__alloc(ctx, (size_t)(l->total ? l->total : 1) * sizeof *l->perm);
    l->order = nc__alloc(ctx, (size_t)(l->num ? l->num : 1) * sizeof *l->order);
    l->labels = nc__alloc(ctx, per * (size_t)l->heads * sizeof *l->labels);
    l->idx = nc__alloc(ctx, per * sizeof *l->idx);
    l->slot_done = nc__calloc(ctx, (size_t)l->nslots, sizeof *l->slot_done);
    if (!l->base || !l->perm || !l->order || !l->labels || !l->idx || !l->slot_done) {
        st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
        goto fail;
    }
    for (int64_t i = 0; i < l->total; i++) l->base[i] = o.indices ? o.indices[i] : i;

    if (l->nworkers == 0) NC_CHECK(nc__context_create_child(ctx, &l->sync_ctx));
    else NC_CHECK(start_workers(l));
    *out = l;
    return NC_OK;
fail:
    nc_loader_destroy(l);
    return st;
}

/* The loader's message lands in its dataset's context. The caller clears its
 * context's text before each loader call: when the loader shares that context (the
 * usual case) its message is there and gets prefixed; when the text is still empty the
 * loader wrote elsewhere and the caller's context says where to look. */
nc_status nc__loader_failed(nc_context *ctx, nc_status st, const char *fn, int64_t batch) {
    if (nc_context_last_error(ctx)[0] != '\0')
        return nc__error_prefix(ctx, st, "%s: batch %lld", fn, (long long)batch + 1);
    return nc__error(ctx, st,
                     "%s: the loader failed at batch %lld (%s); its message is in the context of the loader's "
                     "dataset",
                     fn, (long long)batch + 1, nc_status_str(st));
}
