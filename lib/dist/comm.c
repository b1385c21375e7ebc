/* comm.c — what every transport shares: the public nc_comm calls, and moving the
 * model's parameters, buffers and gradients through a communicator (staged through
 * the backend's read/write). */
#include "dist/comm.h"
#include "core/context.h"
#include "core/model.h"
#include "graph/graph.h"

#include <string.h>

void nc_comm_destroy(nc_comm *c) {
    if (!c) return;
    nc_context *ctx = c->ctx;
    if (c->ops && c->ops->destroy) c->ops->destroy(c);
    nc__free(ctx, c);
}

int nc_comm_rank(const nc_comm *c) { return c ? c->rank : -1; }
int nc_comm_size(const nc_comm *c) { return c ? c->size : 0; }

nc_status nc_comm_barrier(nc_comm *c) {
    if (!c) return NC_ERR_NULL;
    return c->ops->barrier(c);
}

nc_status nc_comm_allreduce_sum(nc_comm *c, double *values, int64_t count) {
    if (!c) return NC_ERR_NULL;
    if (!values && count > 0) return nc__error(c->ctx, NC_ERR_NULL, "nc_comm_allreduce_sum: values is NULL");
    if (count < 0) return nc__error(c->ctx, NC_ERR_INVALID_ARGUMENT, "nc_comm_allreduce_sum: count < 0");
    return count ? c->ops->allreduce_sum_f64(c, values, (size_t)count) : NC_OK;
}

/* Rank 0's backend bytes [off, off + bytes) of buffer `dev` to every rank, staged
 * through `host`. */
static nc_status broadcast_dev(nc_comm *c, void *dev, size_t off, size_t bytes, void *host) {
    const nc__backend *be = c->ctx->backend;
    void *bs = c->ctx->backend_state;
    char *p = (char *)dev + off;
    nc_status st = be->read(bs, host, p, bytes);
    if (st == NC_OK) st = c->ops->broadcast(c, host, bytes, 0);
    if (st == NC_OK) st = be->write(bs, p, host, bytes);
    return st;
}

nc_status nc__comm_broadcast_model(nc_comm *c, nc_model *m) {
    nc_context *ctx = c->ctx;
    void *host = nc__alloc(ctx, m->arena_bytes ? m->arena_bytes : 1);
    if (!host) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "broadcasting the model: out of memory");
    nc_status st = m->arena_bytes ? broadcast_dev(c, m->arena, 0, m->arena_bytes, host) : NC_OK;
    nc__free(ctx, host);
    if (st == NC_OK)
        st = c->ops->broadcast(c, m->num_batches, (size_t)m->graph->n_tensors * sizeof *m->num_batches, 0);
    nc__model_params_changed(m);
    return st;
}

nc_status nc__comm_broadcast_buffers(nc_comm *c, nc_model *m) {
    nc_context *ctx = c->ctx;
    nc_status st = NC_OK;
    size_t largest = 0;
    for (int i = 0; i < m->graph->n_tensors; i++) {
        const nc__tensor_role r = m->graph->tensors[i].role;
        if ((r == NC__ROLE_RUNNING_MEAN || r == NC__ROLE_RUNNING_VAR) && m->slots[i].bytes > largest)
            largest = m->slots[i].bytes;
    }
    if (!largest) return NC_OK;
    void *host = nc__alloc(ctx, largest);
    if (!host) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "broadcasting buffers: out of memory");
    for (int i = 0; i < m->graph->n_tensors && st == NC_OK; i++) {
        const nc__tensor_role r = m->graph->tensors[i].role;
        if (r == NC__ROLE_RUNNING_MEAN || r == NC__ROLE_RUNNING_VAR)
            st = broadcast_dev(c, m->arena, m->slots[i].offset, m->slots[i].bytes, host);
    }
    nc__free(ctx, host);
    nc__model_params_changed(m);
    return st;
}

nc_status nc__comm_average_grads(nc_comm *c, nc_model *m, float *staging, size_t staging_floats) {
    const size_t total = nc__model_param_floats(m);
    const float scale = 1.0f / (float)c->size;
    nc_status st = NC_OK;
    /* buckets from the end of the arena: the last layers' gradients first, as DDP */
    for (size_t end = total; end > 0 && st == NC_OK;) {
        const size_t n = end < staging_floats ? end : staging_floats, begin = end - n;
        const nc__backend *be = c->ctx->backend;
        void *bs = c->ctx->backend_state;
        char *p = (char *)m->grad_arena + begin * sizeof(float);
        st = be->read(bs, staging, p, n * sizeof(float));
        if (st == NC_OK) st = c->ops->allreduce_sum_f32(c, staging, n);
        for (size_t i = 0; st == NC_OK && i < n; i++) staging[i] *= scale;
        if (st == NC_OK) st = be->write(bs, p, staging, n * sizeof(float));
        end = begin;
    }
    return st;
}
