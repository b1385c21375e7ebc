/* distributed.c — nc-bench --distributed: the train-step timing of `mpirun -np N
 * nc-bench --distributed`, each rank stepping on its batch/N part of the global
 * batch with the trainer over an MPI communicator (docs/distributed.md, Measured), so
 * images/s is the global batch over the step time. Rank 0 prints; the others are
 * silent. Without MPI the option says so. */
#include "bench.h"

#include <stdio.h>

#ifdef NC_BENCH_MPI
#include <mpi.h>

int bench_dist_start(int *argc, char ***argv, nc_context *ctx, int batch, nc_comm **out) {
    MPI_Init(argc, argv);
    nc_status st = nc_comm_create_mpi(ctx, out);
    if (st != NC_OK) {
        fprintf(stderr, "nc-bench: --distributed: %s\n", nc_context_last_error(ctx));
        return -1;
    }
    if (batch % nc_comm_size(*out) != 0) {
        fprintf(stderr, "nc-bench: --batch %d must divide among the %d ranks\n", batch, nc_comm_size(*out));
        return -1;
    }
    if (nc_comm_rank(*out) != 0 && !freopen("/dev/null", "w", stdout)) return -1;
    return 0;
}

void bench_dist_end(nc_comm *comm, int failed) {
    int up = 0;
    MPI_Initialized(&up);
    if (!up) return;
    if (failed && nc_comm_size(comm) > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    nc_comm_destroy(comm);
    MPI_Finalize();
}
#else
int bench_dist_start(int *argc, char ***argv, nc_context *ctx, int batch, nc_comm **out) {
    (void)argc, (void)argv, (void)ctx, (void)batch;
    *out = NULL;
    fprintf(stderr, "nc-bench: --distributed: this nc-bench was built without MPI\n");
    return -1;
}

void bench_dist_end(nc_comm *comm, int failed) { (void)comm, (void)failed; }
#endif
