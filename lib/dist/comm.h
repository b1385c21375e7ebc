/* comm.h — nc_comm internals: a communicator between training processes (ranks)
 * for data-parallel training. One table of collectives per transport (MPI now; NCCL
 * with the CUDA backend later); the trainer sees only this table. Collectives work
 * on host memory: the trainer stages backend buffers through the backend's
 * read/write (a copy inside RAM on the CPU backends). No MPI type appears here. */
#ifndef NC_DIST_COMM_H
#define NC_DIST_COMM_H

#include "neurc.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nc__comm_ops {
    const char *name;                     /* "mpi" */
    /* in place, every rank: buf[i] = sum over ranks of buf[i] */
    nc_status (*allreduce_sum_f64)(nc_comm *c, double *buf, size_t n);
    nc_status (*allreduce_sum_f32)(nc_comm *c, float *buf, size_t n);
    /* rank `root`'s bytes to every rank */
    nc_status (*broadcast)(nc_comm *c, void *buf, size_t bytes, int root);
    nc_status (*barrier)(nc_comm *c);
    void (*destroy)(nc_comm *c);
} nc__comm_ops;

struct nc_comm {
    nc_context *ctx;
    const nc__comm_ops *ops;
    void *impl;          /* the transport's own state */
    int rank, size;
    size_t bucket_bytes; /* gradients are reduced in buckets of this size (25 MB) */
};

/* Every tensor of the model (parameters and buffers) from rank 0 to all ranks. */
nc_status nc__comm_broadcast_model(nc_comm *c, nc_model *m);
/* The gradient arena of m averaged over the ranks, in buckets, last tensors first. */
nc_status nc__comm_average_grads(nc_comm *c, nc_model *m, float *staging, size_t staging_floats);
/* Float buffers (batch-norm running statistics) from rank 0, as DDP's
 * broadcast_buffers does before each forward. */
nc_status nc__comm_broadcast_buffers(nc_comm *c, nc_model *m);

#endif
