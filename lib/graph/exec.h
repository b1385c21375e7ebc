/* exec.h — execution plans: a graph prepared for one input shape and mode (eval or
 * train): value shapes, backend descriptors with their primitive caches, and a memory
 * plan that packs every activation, saved statistic and gradient into one arena by
 * liveness. Forward runs nodes in topological order; backward (autodiff) runs each
 * op's backward rule in reverse order, accumulating gradients. */
#ifndef NC_GRAPH_EXEC_H
#define NC_GRAPH_EXEC_H

#include "core/model.h"
#include "backend/backend.h"

/* One buffer request of the memory planner: `bytes` live during [first, last]
 * (inclusive, in plan time steps). */
typedef struct nc__interval {
    size_t bytes;
    int first, last;
    size_t offset;          /* result */
} nc__interval;

/* Assigns offsets so that intervals overlapping in time never overlap in memory
 * (greedy by decreasing size, lowest fitting offset). Returns the arena size.
 * Scratch comes from ctx; without memory it degrades to no reuse. */
size_t nc__plan_memory(nc_context *ctx, nc__interval *iv, int count, size_t align);

typedef struct nc__plan {
    nc_model *m;
    int training;
    nc__shape in_shape;
    nc__shape *shapes;          /* [n_nodes] */
    void **cache;               /* [n_nodes] backend primitive slots */
    /* memory plan, byte offsets into `arena`; SIZE_MAX = none */
    size_t *val_off;            /* [n_nodes] */
    size_t *grad_off;           /* [n_nodes] (training) */
    size_t *save_off;           /* [n_nodes] bn saved mean, then invstd (training) */
    int *zero_first;            /* [n_nodes] CSR: grads to zero before backward of node */
    int *zero_list;
    size_t arena_bytes;         /* planned size */
    size_t naive_bytes;         /* sum of all buffers without reuse (for reports) */
    void *arena;
    uint64_t dropout_seed;      /* of the last forward */
} nc__plan;

/* Returns a plan for (mode, input shape) in *slot, reusing it when the shape matches. */
nc_status nc__plan_get(nc_model *m, nc__plan **slot, int training, const nc__shape *in);
void nc__plan_destroy(nc__plan *p);
/* Uploads x (host NCHW f32) and runs every node. training: batch statistics,
 * running-stat updates, dropout with masks drawn from dropout_seed. */
nc_status nc__plan_forward(nc__plan *p, const float *x, int training, uint64_t dropout_seed);
/* Copies the output value (N x outputs) to host. */
nc_status nc__plan_read_output(nc__plan *p, float *out);
/* Backward from host dlogits (N x outputs): accumulates into the model's gradient
 * arena (which the caller zeroes). Needs a training forward just before. */
nc_status nc__plan_backward(nc__plan *p, const float *dlogits);

#endif
