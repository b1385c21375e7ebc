/* comm_none.c — a build without MPI: asking for an MPI communicator says so. */
#include "dist/comm.h"
#include "core/context.h"

nc_status nc_comm_create_mpi(nc_context *ctx, nc_comm **out) {
    if (!ctx) return NC_ERR_NULL;
    if (out) *out = NULL;
    return nc__error(ctx, NC_ERR_UNSUPPORTED,
                     "nc_comm_create_mpi: this build of neurc has no MPI (build feature 'mpi'; Debian: libopenmpi-dev)");
}
