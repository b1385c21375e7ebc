/* comm_mpi.c — the MPI transport (Open MPI from Debian's libopenmpi-dev): a
 * duplicate of MPI_COMM_WORLD, so neurc's collectives never mix with the host
 * program's messages, with MPI_ERRORS_RETURN, so a failed collective becomes a
 * status and a message instead of an abort. Collectives are MPI-3's nonblocking
 * ones (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier) polled with MPI_Test, so a wait
 * has a deadline (comm.h, DEADLINE). The host program initialises and finalises MPI;
 * neurc only checks that it is initialised. */
#include "dist/comm.h"
#include "core/context.h"

#include <limits.h>
#include <mpi.h>
#include <string.h>

_Static_assert(sizeof(MPI_Request) <= sizeof(((nc__comm_req *)0)->opaque), "MPI_Request fits nc__comm_req");

typedef struct mpi_impl {
    MPI_Comm comm;
} mpi_impl;

static MPI_Comm comm_of(const nc_comm *c) { return ((const mpi_impl *)c->impl)->comm; }

static nc_status mpi_fail(nc_comm *c, const char *what, int rc) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    text[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    c->broken = 1;
    return nc__error(c->ctx, NC_ERR_BACKEND, "%s failed on rank %d of %d: %s", what, c->rank, c->size,
                     len ? text : "unknown MPI error");
}

/* Records the started request rc/r in req. */
static nc_status started(nc_comm *c, const char *what, int rc, MPI_Request r, nc__comm_req *req) {
    if (rc != MPI_SUCCESS) return mpi_fail(c, what, rc);
    memcpy(req->opaque, &r, sizeof r);
    req->what = what;
    req->active = 1;
    return NC_OK;
}

static nc_status mpi_start_sum_f64(nc_comm *c, double *buf, size_t n, nc__comm_req *req) {
    MPI_Request r = MPI_REQUEST_NULL;
    const int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, comm_of(c), &r);
    return started(c, "MPI_Iallreduce (all-reduce of doubles)", rc, r, req);
}

static nc_status mpi_start_sum_f32(nc_comm *c, float *buf, size_t n, nc__comm_req *req) {
    MPI_Request r = MPI_REQUEST_NULL;
    const int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, comm_of(c), &r);
    return started(c, "MPI_Iallreduce (all-reduce of gradients)", rc, r, req);
}

static nc_status mpi_start_broadcast(nc_comm *c, void *buf, size_t bytes, int root, nc__comm_req *req) {
    MPI_Request r = MPI_REQUEST_NULL;
    const int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, comm_of(c), &r);
    return started(c, "MPI_Ibcast (broadcast from rank 0)", rc, r, req);
}

static nc_status mpi_start_barrier(nc_comm *c, nc__comm_req *req) {
    MPI_Request r = MPI_REQUEST_NULL;
    const int rc = MPI_Ibarrier(comm_of(c), &r);
    return started(c, "MPI_Ibarrier (barrier)", rc, r, req);
}

static nc_status mpi_test(nc_comm *c, nc__comm_req *req, int *done) {
    MPI_Request r;
    memcpy(&r, req->opaque, sizeof r);
    const int rc = MPI_Test(&r, done, MPI_STATUS_IGNORE);
    memcpy(req->opaque, &r, sizeof r);
    if (rc != MPI_SUCCESS) return mpi_fail(c, req->what, rc);
    if (*done) req->active = 0;
    return NC_OK;
}

/* A broken communicator may still have a collective in flight that can never
 * complete: freeing it would wait, so it is left to MPI_Abort / process exit. */
static void mpi_destroy(nc_comm *c) {
    mpi_impl *impl = c->impl;
    if (!impl) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && !c->broken) MPI_Comm_free(&impl->comm);
    nc__free(c->ctx, impl);
}

static const nc__comm_ops mpi_ops = {
    .name = "mpi",
    .start_sum_f64 = mpi_start_sum_f64,
    .start_sum_f32 = mpi_start_sum_f32,
    .start_broadcast = mpi_start_broadcast,
    .start_barrier = mpi_start_barrier,
    .test = mpi_test,
    .destroy = mpi_destroy,
};

nc_status nc_comm_create_mpi(nc_context *ctx, nc_comm **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_comm_create_mpi: out is NULL");
    *out = NULL;
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized)
        return nc__error(ctx, NC_ERR_STATE, "nc_comm_create_mpi: MPI is not initialised: call MPI_Init first");
    nc_comm *c = nc__calloc(ctx, 1, sizeof *c);
    mpi_impl *impl = c ? nc__calloc(ctx, 1, sizeof *impl) : NULL;
    if (!impl) {
        nc__free(ctx, c);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_comm_create_mpi: out of memory");
    }
    nc__comm_init(c, ctx, &mpi_ops, impl);
    /* the duplicate is itself a collective: started nonblocking, under the deadline */
    MPI_Request r = MPI_REQUEST_NULL;
    nc__comm_req req = {0};
    int rc = MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_idup(MPI_COMM_WORLD, &impl->comm, &r);
    nc_status st = started(c, "MPI_Comm_idup (creating the communicator)", rc, r, &req);
    if (st == NC_OK) st = nc__comm_wait(c, &req);
    if (st == NC_OK && (rc = MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN)) != MPI_SUCCESS)
        st = mpi_fail(c, "nc_comm_create_mpi", rc);
    if (st != NC_OK) {
        nc__free(ctx, impl);
        nc__free(ctx, c);
        return st;
    }
    *out = c;
    return NC_OK;
}
