/* comm_nccl_none.c — a build without NCCL: asking for an NCCL communicator says so. */
#include "dist/comm.h"
#include "core/context.h"

nc_status nc_comm_create_nccl(nc_context *ctx, int device, nc_comm **out) {
    (void)device;
    if (!ctx) return NC_ERR_NULL;
    if (out) *out = NULL;
    return nc__error(ctx, NC_ERR_UNSUPPORTED,
                     "nc_comm_create_nccl: this build of neurc has no NCCL (build feature 'nccl': needs MPI and the "
                     "CUDA toolkit with NCCL)");
}
