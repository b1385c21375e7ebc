/* buckets.c — DDP's bucketed gradient all-reduce (buckets.h). A bucket is a float
 * range [begin, end) of the gradient arena; ready_at is the lowest node that writes a
 * gradient in it: backward runs nodes from the output down, so once the backward of
 * node `ready_at` has run, the bucket holds its final gradients. */
#include "dist/buckets.h"
#include "core/context.h"
#include "core/model.h"
#include "graph/graph.h"

#include <limits.h>

struct nc__grad_buckets {
    nc_comm *comm;
    nc_model *m;
    float *host;         /* (total) staging of the gradient arena */
    size_t total;        /* floats in the arena */
    int count;           /* buckets; [0] ends at the end of the arena */
    size_t *begin;       /* [count] first float */
    int *ready_at;       /* [count] INT_MAX: no gradient written (buffers only) */
    nc__comm_req *req;   /* [count] */
    int next;            /* the next bucket to start */
    int first_owner;     /* the lowest node writing a gradient: its backward is the last */
    int early;           /* buckets started before that last backward */
};

static size_t bucket_end(const nc__grad_buckets *b, int k) { return k == 0 ? b->total : b->begin[k - 1]; }

/* ready_at of every bucket: the lowest node owning a tensor that overlaps it. */
static void find_ready(nc__grad_buckets *b) {
    const nc__graph *g = b->m->graph;
    for (int k = 0; k < b->count; k++) b->ready_at[k] = INT_MAX;
    for (int i = 0; i < g->n_nodes; i++) {
        const nc__node *nd = &g->nodes[i];
        for (int t = 0; t < nd->n_tensors; t++) {
            const nc__tensor_slot *s = &b->m->slots[nd->tensors[t]];
            const size_t lo = s->offset / sizeof(float), hi = lo + (size_t)s->numel;
            for (int k = 0; k < b->count; k++)
                if (lo < bucket_end(b, k) && hi > b->begin[k] && i < b->ready_at[k]) b->ready_at[k] = i;
        }
    }
}

nc_status nc__buckets_create(nc_comm *c, nc_model *m, nc__grad_buckets **out) {
    nc_context *ctx = c->ctx;
    *out = NULL;
    nc__grad_buckets *b = nc__calloc(ctx, 1, sizeof *b);
    if (!b) goto oom;
    b->comm = c;
    b->m = m;
    b->total = nc__model_param_floats(m);
    const size_t per = c->bucket_bytes / sizeof(float) ? c->bucket_bytes / sizeof(float) : 1;
    b->count = (int)((b->total + per - 1) / per);
    const size_t n = (size_t)(b->count ? b->count : 1);
    b->host = nc__alloc(ctx, (b->total ? b->total : 1) * sizeof *b->host);
    b->begin = nc__alloc(ctx, n * sizeof *b->begin);
    b->ready_at = nc__alloc(ctx, n * sizeof *b->ready_at);
    b->req = nc__calloc(ctx, n, sizeof *b->req);
    if (!b->host || !b->begin || !b->ready_at || !b->req) goto oom;
    for (int k = 0; k < b->count; k++) b->begin[k] = bucket_end(b, k) > per ? bucket_end(b, k) - per : 0;
    find_ready(b);
    b->first_owner = INT_MAX;
    for (int k = 0; k < b->count; k++)
        if (b->ready_at[k] < b->first_owner) b->first_owner = b->ready_at[k];
    *out = b;
    return NC_OK;
oom:
    nc__buckets_destroy(b);
    return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "data parallel: out of memory for the gradient buckets");
}

void nc__buckets_destroy(nc__grad_buckets *b) {
    if (!b) return;
    nc_context *ctx = b->comm->ctx;
    nc__free(ctx, b->host);
    nc__free(ctx, b->begin);
    nc__free(ctx, b->ready_at);
    nc__free(ctx, b->req);
    nc__free(ctx, b);
}

nc_status nc__buckets_reset(nc__grad_buckets *b) {
    nc_status st = NC_OK; /* a step that failed after starting buckets left them in flight */
    for (int k = 0; k < b->count && st == NC_OK; k++) st = nc__comm_wait(b->comm, &b->req[k]);
    b->next = 0;
    b->early = 0;
    return st;
}

/* Bucket k from the backend into the staging, then its all-reduce started. */
static nc_status start(nc__grad_buckets *b, int k) {
    nc_context *ctx = b->comm->ctx;
    const size_t lo = b->begin[k], n = bucket_end(b, k) - lo;
    nc_status st = ctx->backend->read(ctx->backend_state, b->host + lo, (char *)b->m->grad_arena + lo * sizeof(float),
                                      n * sizeof(float));
    if (st == NC_OK) st = b->comm->ops->start_sum_f32(b->comm, b->host + lo, n, &b->req[k]);
    return st;
}

nc_status nc__buckets_after_node(nc__grad_buckets *b, int node) {
    nc_status st = nc__comm_usable(b->comm, "gradient all-reduce");
    for (; st == NC_OK && b->next < b->count && b->ready_at[b->next] >= node; b->next++) {
        st = start(b, b->next);
        b->early += node > b->first_owner;
    }
    for (int k = 0; st == NC_OK && k < b->next; k++) { /* progress: MPI moves data inside its calls */
        int done = 0;
        if (b->req[k].active) st = b->comm->ops->test(b->comm, &b->req[k], &done);
    }
    if (st != NC_OK) b->comm->broken = 1;
    return st;
}

nc_status nc__buckets_finish(nc__grad_buckets *b) {
    nc_context *ctx = b->comm->ctx;
    nc_status st = nc__comm_usable(b->comm, "gradient all-reduce");
    for (; st == NC_OK && b->next < b->count; b->next++) st = start(b, b->next);
    const float scale = 1.0f / (float)b->comm->size;
    for (int k = 0; st == NC_OK && k < b->count; k++) {
        st = nc__comm_wait(b->comm, &b->req[k]);
        const size_t lo = b->begin[k], n = bucket_end(b, k) - lo;
        for (size_t i = lo; st == NC_OK && i < lo + n; i++) b->host[i] *= scale;
        if (st == NC_OK)
            st = ctx->backend->write(ctx->backend_state, (char *)b->m->grad_arena + lo * sizeof(float), b->host + lo,
                                     n * sizeof(float));
    }
    if (st != NC_OK) b->comm->broken = 1;
    return st;
}

int nc__buckets_started_early(const nc__grad_buckets *b) { return b ? b->early : 0; }
int nc__buckets_count(const nc__grad_buckets *b) { return b ? b->count : 0; }
