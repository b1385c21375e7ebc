/* comm_mpi.c — the MPI transport (Open MPI from Debian's libopenmpi-dev): a
 * duplicate of MPI_COMM_WORLD, so neurc's collectives never mix with the host
 * program's messages, with MPI_ERRORS_RETURN, so a failed collective becomes a
 * status and a message instead of an abort. The host program initialises and
 * finalises MPI; neurc only checks that it is initialised. */
#include "dist/comm.h"
#include "core/context.h"

#include <limits.h>
#include <mpi.h>

typedef struct mpi_impl {
    MPI_Comm comm;
} mpi_impl;

static MPI_Comm comm_of(const nc_comm *c) { return ((const mpi_impl *)c->impl)->comm; }

static nc_status mpi_fail(nc_comm *c, const char *what, int rc) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    text[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    return nc__error(c->ctx, NC_ERR_BACKEND, "%s failed on rank %d of %d: %s", what, c->rank, c->size,
                     len ? text : "unknown MPI error");
}

/* MPI counts are ints: large buffers go in pieces of at most INT_MAX elements. */
static nc_status allreduce(nc_comm *c, void *buf, size_t n, size_t elem, MPI_Datatype type) {
    for (size_t done = 0; done < n;) {
        const size_t k = n - done < (size_t)INT_MAX ? n - done : (size_t)INT_MAX;
        const int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + done * elem, (int)k, type, MPI_SUM, comm_of(c));
        if (rc != MPI_SUCCESS) return mpi_fail(c, "MPI_Allreduce", rc);
        done += k;
    }
    return NC_OK;
}

static nc_status mpi_allreduce_f64(nc_comm *c, double *buf, size_t n) { return allreduce(c, buf, n, sizeof *buf, MPI_DOUBLE); }
static nc_status mpi_allreduce_f32(nc_comm *c, float *buf, size_t n) { return allreduce(c, buf, n, sizeof *buf, MPI_FLOAT); }

static nc_status mpi_broadcast(nc_comm *c, void *buf, size_t bytes, int root) {
    for (size_t done = 0; done < bytes;) {
        const size_t k = bytes - done < (size_t)INT_MAX ? bytes - done : (size_t)INT_MAX;
        const int rc = MPI_Bcast((char *)buf + done, (int)k, MPI_BYTE, root, comm_of(c));
        if (rc != MPI_SUCCESS) return mpi_fail(c, "MPI_Bcast", rc);
        done += k;
    }
    return NC_OK;
}

static nc_status mpi_barrier(nc_comm *c) {
    const int rc = MPI_Barrier(comm_of(c));
    return rc == MPI_SUCCESS ? NC_OK : mpi_fail(c, "MPI_Barrier", rc);
}

static void mpi_destroy(nc_comm *c) {
    mpi_impl *impl = c->impl;
    if (!impl) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&impl->comm);
    nc__free(c->ctx, impl);
}

static const nc__comm_ops mpi_ops = {"mpi", mpi_allreduce_f64, mpi_allreduce_f32, mpi_broadcast, mpi_barrier,
                                     mpi_destroy};

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
    c->ctx = ctx;
    c->ops = &mpi_ops;
    c->impl = impl;
    c->bucket_bytes = (size_t)25 << 20;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &impl->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(impl->comm, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(impl->comm, &c->size);
    if (rc != MPI_SUCCESS) {
        nc_status st = mpi_fail(c, "nc_comm_create_mpi", rc);
        nc__free(ctx, impl);
        nc__free(ctx, c);
        return st;
    }
    *out = c;
    return NC_OK;
}
