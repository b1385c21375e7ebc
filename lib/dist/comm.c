/* comm.c — what every transport shares: the public nc_comm calls, the DEADLINE
 * (comm.h) every collective is waited for under, and moving the model's parameters
 * and buffers through a communicator (staged through the backend's read/write). */
#include "dist/comm.h"
#include "core/context.h"
#include "core/model.h"
#include "graph/graph.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <time.h>

void nc__comm_init(nc_comm *c, nc_context *ctx, const nc__comm_ops *ops, void *impl) {
    c->ctx = ctx;
    c->ops = ops;
    c->impl = impl;
    c->bucket_bytes = (size_t)25 << 20;
    c->timeout_s = NC__COMM_DEFAULT_TIMEOUT;
}

void nc_comm_destroy(nc_comm *c) {
    if (!c) return;
    nc_context *ctx = c->ctx;
    if (c->ops && c->ops->destroy) c->ops->destroy(c);
    nc__free(ctx, c);
}

int nc_comm_rank(const nc_comm *c) { return c ? c->rank : -1; }
int nc_comm_size(const nc_comm *c) { return c ? c->size : 0; }

nc_status nc_comm_set_timeout(nc_comm *c, double seconds) {
    if (!c) return NC_ERR_NULL;
    if (!(seconds > 0.0)) /* NaN too */
        return nc__error(c->ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_comm_set_timeout: seconds must be > 0 (INFINITY: no limit), got %g", seconds);
    c->timeout_s = seconds;
    return NC_OK;
}

double nc_comm_timeout(const nc_comm *c) { return c ? c->timeout_s : 0.0; }

nc_status nc__comm_usable(nc_comm *c, const char *what) {
    if (!c->broken) return NC_OK;
    return nc__error(c->ctx, NC_ERR_STATE,
                     "%s: the communicator is unusable after an earlier collective failed or timed out "
                     "(end the job: MPI_Abort)", what);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Between two polls: yield the core for the first 10 ms (the transport progresses
 * only inside its calls, so waits stay short), then sleep up to 1 ms at a time, so a
 * long wait (rank 0 evaluating alone) leaves the CPU to others. */
static void pause_after(double waited) {
    if (waited < 0.01) {
        sched_yield();
        return;
    }
    const long ns = waited < 0.1 ? 100000L : 1000000L;
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

nc_status nc__comm_wait(nc_comm *c, nc__comm_req *req) {
    if (!req->active) return NC_OK;
    const double start = now_s();
    for (;;) {
        int done = 0;
        nc_status st = c->ops->test(c, req, &done);
        if (st != NC_OK) {
            c->broken = 1;
            return st;
        }
        if (done) return NC_OK;
        const double waited = now_s() - start;
        if (waited > c->timeout_s) {
            c->broken = 1;
            return nc__error(c->ctx, NC_ERR_TIMEOUT,
                             "%s timed out on rank %d of %d after %.0f s (the communicator's timeout, "
                             "nc_comm_set_timeout): another rank died, hangs or stopped taking part; "
                             "end the job (MPI_Abort)",
                             req->what, c->rank, c->size, c->timeout_s);
        }
        pause_after(waited);
    }
}

/* The blocking collectives: start + wait for every piece of at most INT_MAX
 * elements (MPI counts are ints). */
typedef enum piece_kind { SUM_F64, SUM_F32, BROADCAST } piece_kind;

static nc_status start_piece(nc_comm *c, piece_kind k, char *p, size_t n, int root, nc__comm_req *r) {
    switch (k) {
    case SUM_F64: return c->ops->start_sum_f64(c, (double *)(void *)p, n, r);
    case SUM_F32: return c->ops->start_sum_f32(c, (float *)(void *)p, n, r);
    case BROADCAST: break;
    }
    return c->ops->start_broadcast(c, p, n, root, r);
}

static nc_status in_pieces(nc_comm *c, piece_kind k, void *buf, size_t n, size_t elem, int root) {
    nc_status st = nc__comm_usable(c, k == BROADCAST ? "broadcast" : "all-reduce");
    for (size_t done = 0; st == NC_OK && done < n;) {
        const size_t m = n - done < (size_t)INT_MAX ? n - done : (size_t)INT_MAX;
        nc__comm_req r = {0};
        st = start_piece(c, k, (char *)buf + done * elem, m, root, &r);
        if (st == NC_OK) st = nc__comm_wait(c, &r);
        done += m;
    }
    return st;
}

nc_status nc__comm_sum_f64(nc_comm *c, double *buf, size_t n) { return in_pieces(c, SUM_F64, buf, n, sizeof *buf, 0); }
nc_status nc__comm_sum_f32(nc_comm *c, float *buf, size_t n) { return in_pieces(c, SUM_F32, buf, n, sizeof *buf, 0); }
nc_status nc__comm_broadcast(nc_comm *c, void *buf, size_t bytes, int root) {
    return in_pieces(c, BROADCAST, buf, bytes, 1, root);
}

nc_status nc_comm_barrier(nc_comm *c) {
    if (!c) return NC_ERR_NULL;
    nc_status st = nc__comm_usable(c, "nc_comm_barrier");
    nc__comm_req r = {0};
    if (st == NC_OK) st = c->ops->start_barrier(c, &r);
    return st == NC_OK ? nc__comm_wait(c, &r) : st;
}

nc_status nc_comm_allreduce_sum(nc_comm *c, double *values, int64_t count) {
    if (!c) return NC_ERR_NULL;
    if (!values && count > 0) return nc__error(c->ctx, NC_ERR_NULL, "nc_comm_allreduce_sum: values is NULL");
    if (count < 0) return nc__error(c->ctx, NC_ERR_INVALID_ARGUMENT, "nc_comm_allreduce_sum: count < 0");
    return count ? nc__comm_sum_f64(c, values, (size_t)count) : nc__comm_usable(c, "nc_comm_allreduce_sum");
}

/* Rank 0's backend bytes [off, off + bytes) of buffer `dev` to every rank, staged
 * through `host`. */
static nc_status broadcast_dev(nc_comm *c, void *dev, size_t off, size_t bytes, void *host) {
    const nc__backend *be = c->ctx->backend;
    void *bs = c->ctx->backend_state;
    char *p = (char *)dev + off;
    nc_status st = be->read(bs, host, p, bytes);
    if (st == NC_OK) st = nc__comm_broadcast(c, host, bytes, 0);
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
        st = nc__comm_broadcast(c, m->num_batches, (size_t)m->graph->n_tensors * sizeof *m->num_batches, 0);
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
