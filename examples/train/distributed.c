/* distributed.c — nc-train --distributed: one process per rank under mpirun, the
 * trainer's gradients averaged over the ranks (nc_trainer_set_comm), each rank on its
 * shard of every epoch; rank 0 alone evaluates and writes files, and shares what the
 * others must agree on (the monitored metric, a Ctrl-C). A rank that fails aborts the
 * whole job (MPI_Abort), so none waits forever for it; one that dies or hangs makes
 * the others' next collective fail after --dist-timeout seconds (NC_ERR_TIMEOUT), and
 * they abort the job the same way. docs/distributed.md. */
#include "train.h"

#ifdef NC_TRAIN_MPI
#include <mpi.h>
#endif

int dist_start(cfg *c, nc_context *ctx, int *argc, char ***argv) {
    if (!c->distributed) return 0;
#ifdef NC_TRAIN_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return fail_msg("--distributed: MPI_Init failed (start with `mpirun -np N " PROG " --distributed ...`)");
    nc_status st = nc_comm_create_mpi(ctx, &c->comm);
    if (st == NC_OK) st = nc_comm_set_timeout(c->comm, c->dist_timeout);
    if (st != NC_OK) return fail_lib(ctx, "--distributed", st);
    c->rank = nc_comm_rank(c->comm);
    c->ranks = nc_comm_size(c->comm);
    if (c->batch_size % c->ranks != 0)
        return fail_msg("--batch-size %d is the global batch: it must divide among the %d ranks", c->batch_size,
                        c->ranks);
    if (c->rank != 0) c->quiet = 1;
    return 0;
#else
    (void)ctx;
    (void)argc;
    (void)argv;
    return fail_msg("--distributed: this nc-train was built without MPI (Debian: libopenmpi-dev, then rebuild)");
#endif
}

void dist_stop(cfg *c, int rc) {
    if (!c->distributed) return;
#ifdef NC_TRAIN_MPI
    int up = 0;
    MPI_Initialized(&up);
    if (!up) return;
    if (rc != 0 && rc != EXIT_INTERRUPTED && c->ranks > 1) MPI_Abort(MPI_COMM_WORLD, rc); /* the others stop too */
    nc_comm_destroy(c->comm);
    c->comm = NULL;
    MPI_Finalize();
#else
    (void)rc;
#endif
}

int dist_any(const cfg *c, nc_context *ctx, int flag) {
    if (!c->comm || c->ranks < 2) return flag;
    double v = flag ? 1.0 : 0.0;
    nc_status st = nc_comm_allreduce_sum(c->comm, &v, 1);
    if (st != NC_OK) return fail_lib(ctx, "--distributed: agreeing on a stop", st), -1;
    return v > 0.0;
}

int dist_share(const cfg *c, nc_context *ctx, double *v, int n) {
    if (!c->comm || c->ranks < 2) return 0;
    for (int i = 0; c->rank != 0 && i < n; i++) v[i] = 0.0;
    nc_status st = nc_comm_allreduce_sum(c->comm, v, n);
    return st == NC_OK ? 0 : fail_lib(ctx, "--distributed: sharing rank 0's numbers", st);
}
