/* comm.h — nc_comm internals: a communicator between training processes (ranks)
 * for data-parallel training. One table of collectives per transport (MPI; NCCL,
 * comm_nccl.c); the trainer sees only this table. Collectives work on host memory:
 * the trainer stages backend buffers through the backend's read/write (a copy inside
 * RAM on the CPU backends); NCCL reduces device memory (comm_nccl.c). No MPI or
 * NCCL type appears here.
 *
 * DEADLINE. Every collective is started nonblocking and polled until it completes or
 * the communicator's timeout (nc_comm_set_timeout, NC__COMM_DEFAULT_TIMEOUT) passes
 * since it started; then it returns NC_ERR_TIMEOUT naming the collective, the rank
 * and the timeout, and the communicator is `broken`: a collective that never
 * completed cannot be cancelled, so every later call returns NC_ERR_STATE and the
 * program should end the job (MPI_Abort). A rank that dies or hangs therefore stops
 * the others within the timeout instead of never. */
#ifndef NC_DIST_COMM_H
#define NC_DIST_COMM_H

#include "neurc.h"

#include <stddef.h>
#include <stdint.h>

/* torch.distributed's default timeout (30 minutes): rank 0 may evaluate a whole
 * validation split while the others wait in a collective. */
#define NC__COMM_DEFAULT_TIMEOUT 1800.0

/* A started collective: the transport's request, opaque here (an MPI_Request, a
 * cudaEvent_t). */
typedef struct nc__comm_req {
    _Alignas(8) unsigned char opaque[16];
    const char *what; /* the collective's name, for the timeout message */
    int active;
    void *host;       /* NCCL: the caller's host buffer the result goes to on completion */
    size_t bytes;
} nc__comm_req;

typedef struct nc__comm_ops {
    const char *name; /* "mpi", "nccl" */
    /* 1: the buffers the trainer hands over are device memory (NCCL: a CUDA backend's
     * tensors); 0: host memory (MPI). The public calls pass host memory either way. */
    int device_memory;
    /* Starts buf[i] = sum over ranks of buf[i], in place, every rank; n <= INT_MAX.
     * buf must stay untouched until the request completes. */
    nc_status (*start_sum_f64)(nc_comm *c, double *buf, size_t n, nc__comm_req *req);
    nc_status (*start_sum_f32)(nc_comm *c, float *buf, size_t n, nc__comm_req *req);
    /* Starts rank `root`'s bytes to every rank; bytes <= INT_MAX. */
    nc_status (*start_broadcast)(nc_comm *c, void *buf, size_t bytes, int root, nc__comm_req *req);
    nc_status (*start_barrier)(nc_comm *c, nc__comm_req *req);
    /* Progress: *done = 1 when req completed (then it is no longer active). */
    nc_status (*test)(nc_comm *c, nc__comm_req *req, int *done);
    void (*destroy)(nc_comm *c);
} nc__comm_ops;

struct nc_comm {
    nc_context *ctx;
    const nc__comm_ops *ops;
    void *impl;          /* the transport's own state */
    int rank, size;
    size_t bucket_bytes; /* gradients are reduced in buckets of this size (25 MB) */
    double timeout_s;    /* DEADLINE; INFINITY: none */
    int broken;          /* a collective timed out or failed (DEADLINE) */
};

/* Fills the fields every transport shares (ctx, ops, impl, bucket, timeout). */
void nc__comm_init(nc_comm *c, nc_context *ctx, const nc__comm_ops *ops, void *impl);
/* Waits for req under the DEADLINE; marks the communicator broken on failure. */
nc_status nc__comm_wait(nc_comm *c, nc__comm_req *req);
/* NC_OK while the communicator is usable, else NC_ERR_STATE naming `what`. */
nc_status nc__comm_usable(nc_comm *c, const char *what);
/* Blocking collectives (start + wait), of any size: pieces of at most INT_MAX. */
nc_status nc__comm_sum_f64(nc_comm *c, double *buf, size_t n);
nc_status nc__comm_sum_f32(nc_comm *c, float *buf, size_t n);
nc_status nc__comm_broadcast(nc_comm *c, void *buf, size_t bytes, int root);

/* Every tensor of the model (parameters and buffers) from rank 0 to all ranks. */
nc_status nc__comm_broadcast_model(nc_comm *c, nc_model *m);
/* Float buffers (batch-norm running statistics) from rank 0, as DDP's
 * broadcast_buffers does before each forward. */
nc_status nc__comm_broadcast_buffers(nc_comm *c, nc_model *m);

#endif
