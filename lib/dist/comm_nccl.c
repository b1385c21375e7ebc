/* comm_nccl.c — the NCCL transport for GPUs (NCCL 2.x from the CUDA toolkit): one
 * rank per GPU, the unique id handed out from rank 0 over MPI (an MPI communicator
 * made and dropped for it), a nonblocking NCCL communicator (config.blocking = 0) so
 * that creation and every collective can be polled against the DEADLINE (comm.h) and
 * a stuck one ended with ncclCommAbort. Collectives run on the communicator's own
 * stream; a request is a CUDA event recorded after the collective. Buffers in device
 * memory are reduced in place; host buffers (the public calls: metrics, barrier) go
 * through a device scratch and pinned staging, one at a time.
 * UNTESTED: built and linked here, never run — the machine has no GPU, and there is
 * no CUDA backend yet to hand it device tensors (docs/distributed.md, NCCL). */
#include "dist/comm.h"
#include "core/context.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <string.h>

typedef struct nccl_impl {
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
    void *dev_scratch, *pinned; /* host-buffer staging, `scratch_bytes` each */
    size_t scratch_bytes;
    int staging_busy;
    double one; /* the barrier's value */
} nccl_impl;

_Static_assert(sizeof(cudaEvent_t) <= sizeof(((nc__comm_req *)0)->opaque), "cudaEvent_t fits nc__comm_req");

static nccl_impl *impl_of(nc_comm *c) { return c->impl; }

static nc_status cuda_fail(nc_comm *c, const char *what, cudaError_t e) {
    c->broken = 1;
    return nc__error(c->ctx, NC_ERR_BACKEND, "%s failed on rank %d of %d: CUDA: %s", what, c->rank, c->size,
                     cudaGetErrorString(e));
}

static nc_status nccl_fail(nc_comm *c, const char *what, ncclResult_t r) {
    const char *last = impl_of(c) && impl_of(c)->comm ? ncclGetLastError(impl_of(c)->comm) : NULL;
    c->broken = 1;
    return nc__error(c->ctx, NC_ERR_BACKEND, "%s failed on rank %d of %d: NCCL: %s%s%s", what, c->rank, c->size,
                     ncclGetErrorString(r), last && last[0] ? ": " : "", last ? last : "");
}

/* After an enqueue on a nonblocking communicator: wait (deadline) while NCCL is
 * still "in progress" with it, as NCCL asks before the next call. */
static nc_status settle(nc_comm *c, const char *what, ncclResult_t r) {
    nc__comm_req req = {.what = what, .active = 1};
    if (r != ncclSuccess && r != ncclInProgress) return nccl_fail(c, what, r);
    if (r == ncclSuccess) return NC_OK;
    return nc__comm_wait(c, &req); /* req without an event: test polls the async state */
}

/* Device memory for buf: buf itself, or the scratch after copying `bytes` in. */
static nc_status device_view(nc_comm *c, void *buf, size_t bytes, nc__comm_req *req, void **out) {
    nccl_impl *im = impl_of(c);
    struct cudaPointerAttributes a;
    cudaError_t e = cudaPointerGetAttributes(&a, buf);
    if (e == cudaSuccess && a.type == cudaMemoryTypeDevice) {
        *out = buf;
        return NC_OK;
    }
    (void)cudaGetLastError(); /* an unregistered host pointer is not an error to keep */
    if (im->staging_busy) return nc__error(c->ctx, NC_ERR_STATE, "internal: NCCL host staging already in use");
    if (bytes > im->scratch_bytes) {
        if (im->dev_scratch) cudaFree(im->dev_scratch);
        if (im->pinned) cudaFreeHost(im->pinned);
        im->dev_scratch = im->pinned = NULL;
        im->scratch_bytes = 0;
        if ((e = cudaMalloc(&im->dev_scratch, bytes)) != cudaSuccess) return cuda_fail(c, "cudaMalloc", e);
        if ((e = cudaMallocHost(&im->pinned, bytes)) != cudaSuccess) return cuda_fail(c, "cudaMallocHost", e);
        im->scratch_bytes = bytes;
    }
    memcpy(im->pinned, buf, bytes);
    e = cudaMemcpyAsync(im->dev_scratch, im->pinned, bytes, cudaMemcpyHostToDevice, im->stream);
    if (e != cudaSuccess) return cuda_fail(c, "cudaMemcpyAsync", e);
    im->staging_busy = 1;
    req->host = buf;
    req->bytes = bytes;
    *out = im->dev_scratch;
    return NC_OK;
}

/* After the collective: the copy back of a staged buffer, then the event. */
static nc_status finish_start(nc_comm *c, const char *what, nc__comm_req *req) {
    nccl_impl *im = impl_of(c);
    cudaError_t e = cudaSuccess;
    if (req->host)
        e = cudaMemcpyAsync(im->pinned, im->dev_scratch, req->bytes, cudaMemcpyDeviceToHost, im->stream);
    cudaEvent_t ev = NULL;
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(ev, im->stream);
    if (e != cudaSuccess) return cuda_fail(c, what, e);
    memcpy(req->opaque, &ev, sizeof ev);
    req->what = what;
    req->active = 1;
    return NC_OK;
}

static nc_status start_sum(nc_comm *c, void *buf, size_t n, size_t elem, ncclDataType_t type, const char *what,
                           nc__comm_req *req) {
    void *p = NULL;
    memset(req, 0, sizeof *req);
    nc_status st = device_view(c, buf, n * elem, req, &p);
    if (st == NC_OK) st = settle(c, what, ncclAllReduce(p, p, n, type, ncclSum, impl_of(c)->comm, impl_of(c)->stream));
    return st == NC_OK ? finish_start(c, what, req) : st;
}

static nc_status nccl_start_sum_f64(nc_comm *c, double *buf, size_t n, nc__comm_req *req) {
    return start_sum(c, buf, n, sizeof *buf, ncclFloat64, "ncclAllReduce (all-reduce of doubles)", req);
}

static nc_status nccl_start_sum_f32(nc_comm *c, float *buf, size_t n, nc__comm_req *req) {
    return start_sum(c, buf, n, sizeof *buf, ncclFloat32, "ncclAllReduce (all-reduce of gradients)", req);
}

static nc_status nccl_start_broadcast(nc_comm *c, void *buf, size_t bytes, int root, nc__comm_req *req) {
    const char *what = "ncclBroadcast (broadcast from rank 0)";
    void *p = NULL;
    memset(req, 0, sizeof *req);
    nc_status st = device_view(c, buf, bytes, req, &p);
    if (st == NC_OK)
        st = settle(c, what, ncclBroadcast(p, p, bytes, ncclUint8, root, impl_of(c)->comm, impl_of(c)->stream));
    return st == NC_OK ? finish_start(c, what, req) : st;
}

/* NCCL has no barrier: an all-reduce of one value does the same. */
static nc_status nccl_start_barrier(nc_comm *c, nc__comm_req *req) {
    static const char *what = "ncclAllReduce (barrier)";
    nccl_impl *im = impl_of(c);
    im->one = 1.0;
    return start_sum(c, &im->one, 1, sizeof im->one, ncclFloat64, what, req);
}

/* Done when the event passed; an asynchronous NCCL error (a peer gone) fails it. */
static nc_status nccl_test(nc_comm *c, nc__comm_req *req, int *done) {
    nccl_impl *im = impl_of(c);
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(im->comm, &async);
    if (r != ncclSuccess) return nccl_fail(c, req->what, r);
    if (async != ncclSuccess && async != ncclInProgress) return nccl_fail(c, req->what, async);
    cudaEvent_t ev;
    memcpy(&ev, req->opaque, sizeof ev);
    *done = 0;
    if (!ev) { /* settle(): no event, only the communicator's state */
        *done = async == ncclSuccess;
    } else {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaErrorNotReady) return NC_OK;
        if (e != cudaSuccess) return cuda_fail(c, req->what, e);
        cudaEventDestroy(ev);
        if (req->host) memcpy(req->host, im->pinned, req->bytes);
        if (req->host) im->staging_busy = 0;
        *done = 1;
    }
    if (*done) req->active = 0;
    return NC_OK;
}

/* A broken communicator is aborted (its kernels may never finish), else finalised. */
static void nccl_destroy(nc_comm *c) {
    nccl_impl *im = c->impl;
    if (!im) return;
    if (im->comm) {
        if (!c->broken && ncclCommFinalize(im->comm) == ncclSuccess) {
            nc__comm_req req = {.what = "ncclCommFinalize", .active = 1};
            if (nc__comm_wait(c, &req) == NC_OK) ncclCommDestroy(im->comm);
            else ncclCommAbort(im->comm);
        } else {
            ncclCommAbort(im->comm);
        }
    }
    if (im->stream) cudaStreamDestroy(im->stream);
    if (im->dev_scratch) cudaFree(im->dev_scratch);
    if (im->pinned) cudaFreeHost(im->pinned);
    nc__free(c->ctx, im);
}

static const nc__comm_ops nccl_ops = {
    .name = "nccl",
    .device_memory = 1,
    .start_sum_f64 = nccl_start_sum_f64,
    .start_sum_f32 = nccl_start_sum_f32,
    .start_broadcast = nccl_start_broadcast,
    .start_barrier = nccl_start_barrier,
    .test = nccl_test,
    .destroy = nccl_destroy,
};

/* This rank's index among the ranks on its node (MPI-3 shared-memory split). */
static int local_rank(void) {
    MPI_Comm node;
    int r = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS) return 0;
    MPI_Comm_rank(node, &r);
    MPI_Comm_free(&node);
    return r;
}

/* Rank and size from MPI, the unique id from rank 0 (under the deadline). */
static nc_status exchange_id(nc_context *ctx, nc_comm *c, ncclUniqueId *id) {
    nc_comm *mpi = NULL;
    nc_status st = nc_comm_create_mpi(ctx, &mpi);
    if (st != NC_OK) return st;
    c->rank = mpi->rank;
    c->size = mpi->size;
    memset(id, 0, sizeof *id);
    ncclResult_t r = c->rank == 0 ? ncclGetUniqueId(id) : ncclSuccess;
    if (r != ncclSuccess) st = nccl_fail(c, "ncclGetUniqueId", r); /* the others then time out */
    if (st == NC_OK) st = nc__comm_broadcast(mpi, id, sizeof *id, 0);
    if (st != NC_OK) mpi->broken = 1;
    nc_comm_destroy(mpi);
    return st;
}

static nc_status nccl_init(nc_context *ctx, nc_comm *c, nccl_impl *im, int device) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1)
        return nc__error(ctx, NC_ERR_UNSUPPORTED, "nc_comm_create_nccl: no CUDA device (%s)",
                         e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    im->device = device >= 0 ? device : local_rank() % count;
    if (im->device >= count)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_comm_create_nccl: device %d, but %d CUDA devices",
                         im->device, count);
    ncclUniqueId id;
    nc_status st = exchange_id(ctx, c, &id);
    if (st != NC_OK) return st;
    if ((e = cudaSetDevice(im->device)) != cudaSuccess) return cuda_fail(c, "cudaSetDevice", e);
    if ((e = cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return cuda_fail(c, "cudaStreamCreate", e);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; /* creation and collectives polled under the deadline */
    return settle(c, "ncclCommInitRankConfig (creating the communicator)",
                  ncclCommInitRankConfig(&im->comm, c->size, id, c->rank, &config));
}

nc_status nc_comm_create_nccl(nc_context *ctx, int device, nc_comm **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_comm_create_nccl: out is NULL");
    *out = NULL;
    nc_comm *c = nc__calloc(ctx, 1, sizeof *c);
    nccl_impl *im = c ? nc__calloc(ctx, 1, sizeof *im) : NULL;
    if (!im) {
        nc__free(ctx, c);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_comm_create_nccl: out of memory");
    }
    nc__comm_init(c, ctx, &nccl_ops, im);
    nc_status st = nccl_init(ctx, c, im, device);
    if (st != NC_OK) {
        c->broken = 1;
        nc_comm_destroy(c);
        return st;
    }
    *out = c;
    return NC_OK;
}
