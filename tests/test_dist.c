/* test_dist.c — data-parallel training over MPI, run as `mpirun -np 2 test_dist`
 * (tests/meson.build). Checks, on 2 ranks of one process each:
 *  - the collectives (allreduce, barrier) and the initial broadcast of rank 0's model;
 *  - a model without batch norm: N SGD-momentum steps with each rank on its half of
 *    the global batch equal N steps in one process on the whole batch (rank 0 runs
 *    the single-process reference itself), within 1e-5 relative;
 *  - with batch norm (per-rank statistics, as DDP): each rank's parameters and running
 *    statistics equal PyTorch DDP's (gloo, 2 ranks; tests/fixtures/ddp_golden.h),
 *    and the ranks' parameters are identical;
 *  - a non-finite loss on one rank skips the update on every rank.
 * Exit 77 (skipped) when started without 2 ranks. Plain C + MPI, no cmocka: the
 * ranks must agree on every check, so a failure aborts the whole job. */
#include "neurc.h"
#include "fixtures/ddp_golden.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank = -1;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", rank, __FILE__, __LINE__, #cond); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                      \
        }                                                                                      \
    } while (0)
#define OK(call) CHECK((call) == NC_OK)

enum { B = 8, C = 3, H = 6, W = 6, K = 4, STEPS = 4 };

static nc_model *make_model(nc_context *ctx, int bn, uint64_t seed) {
    nc_builder *b;
    nc_value x, y;
    nc_model *m;
    OK(nc_builder_create(ctx, C, &b, &x));
    OK(nc_builder_conv2d(b, "conv1", x, 5, 3, 1, 1, 1, 1, !bn, &y));
    if (bn) OK(nc_builder_batchnorm(b, "bn1", y, 1e-5f, 0.1f, &y));
    OK(nc_builder_relu(b, y, &y));
    OK(nc_builder_adaptive_avg_pool2d(b, y, 1, 1, &y));
    OK(nc_builder_flatten(b, y, &y));
    OK(nc_builder_linear(b, "fc", y, K, 1, &y));
    OK(nc_builder_finish(b, y, 1, seed, &m));
    nc_builder_destroy(b);
    return m;
}

static nc_trainer *make_trainer(nc_model *m) {
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    nc_trainer *t;
    OK(nc_trainer_create(m, &o, &t));
    return t;
}

/* The global batch of step s: deterministic, the same on every rank. */
static void batch(int s, float *x, int32_t *y) {
    for (int i = 0; i < B * C * H * W; i++) x[i] = (float)sin(0.37 * i + 1.3 * s);
    for (int i = 0; i < B; i++) y[i] = (i * 3 + s) % K;
}

/* Every tensor of m, concatenated (the caller frees). */
static float *weights(nc_model *m, int64_t *n) {
    int64_t total = 0;
    int count = nc_model_num_tensors(m);
    for (int i = 0; i < count; i++) {
        nc_tensor_info ti;
        OK(nc_model_tensor_info(m, i, &ti));
        total += ti.numel;
    }
    float *w = malloc((size_t)total * sizeof *w);
    CHECK(w);
    int64_t at = 0;
    for (int i = 0; i < count; i++) {
        nc_tensor_info ti;
        OK(nc_model_tensor_info(m, i, &ti));
        OK(nc_model_get_tensor(m, ti.name, w + at, ti.numel));
        at += ti.numel;
    }
    *n = total;
    return w;
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(1e-3, fabs((double)b[i]));
        if (d > worst) worst = d;
    }
    return worst;
}

static void test_collectives(nc_comm *comm) {
    double v[2] = {1.0 + rank, 10.0};
    OK(nc_comm_allreduce_sum(comm, v, 2));
    CHECK(v[0] == 3.0 && v[1] == 20.0);
    OK(nc_comm_barrier(comm));
    CHECK(nc_comm_allreduce_sum(comm, v, -1) == NC_ERR_INVALID_ARGUMENT);
    CHECK(nc_comm_rank(NULL) == -1 && nc_comm_size(NULL) == 0);
}

/* Two ranks on halves of the batch == one process on the whole batch. */
static void test_equals_single_process(nc_context *ctx, nc_comm *comm) {
    nc_model *m = make_model(ctx, 0, 100 + (uint64_t)rank); /* different seeds: the broadcast must fix them */
    nc_trainer *t = make_trainer(m);
    OK(nc_trainer_set_comm(t, comm));
    nc_model *ref = rank == 0 ? make_model(ctx, 0, 100) : NULL;
    nc_trainer *tref = ref ? make_trainer(ref) : NULL;
    float x[B * C * H * W];
    int32_t y[B];
    const int half = B / 2, per = C * H * W;
    for (int s = 0; s < STEPS; s++) {
        batch(s, x, y);
        nc_step_stats st, sref;
        OK(nc_trainer_step(t, x + rank * half * per, y + rank * half, half, C, H, W, &st));
        CHECK(st.updated && !st.skipped);
        if (tref) {
            OK(nc_trainer_step(tref, x, y, B, C, H, W, &sref));
            CHECK(fabs(st.loss - sref.loss) <= 1e-5 * fabs(sref.loss) + 1e-6); /* the global loss */
            CHECK(st.correct == sref.correct && st.total == sref.total);
        }
    }
    int64_t n, nref;
    float *w = weights(m, &n);
    if (ref) {
        float *wr = weights(ref, &nref);
        CHECK(n == nref);
        double d = max_rel_diff(w, wr, n);
        printf("2 ranks x %d samples vs 1 process x %d, %d SGD steps: max relative difference %.2e\n", half, B,
               STEPS, d);
        CHECK(d < 1e-5);
        free(wr);
    }
    /* and the ranks hold the same weights */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)w[i] * (double)(i % 7 + 1);
    double both[2] = {rank == 0 ? sum : 0.0, rank == 1 ? sum : 0.0};
    OK(nc_comm_allreduce_sum(comm, both, 2));
    CHECK(both[0] == both[1]);
    free(w);
    nc_trainer_destroy(tref);
    nc_model_destroy(ref);
    OK(nc_trainer_set_comm(t, NULL));
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

/* Batch norm per rank (DDP's default): each rank's parameters and running statistics
 * after the steps equal that rank's in PyTorch DDP on the same data
 * (tests/fixtures/ddp_golden.h, gloo, 2 ranks); the ranks' parameters are equal. */
static void test_batchnorm_as_pytorch_ddp(nc_context *ctx, nc_comm *comm) {
    nc_model *m = make_model(ctx, 1, 7);
    for (int i = 0; i < 7; i++) OK(nc_model_set_tensor(m, ddp_names[i], ddp_initial[i], ddp_numel[i]));
    nc_trainer *t = make_trainer(m);
    OK(nc_trainer_set_comm(t, comm));
    float x[B * C * H * W];
    int32_t y[B];
    for (int s = 0; s < STEPS; s++) {
        batch(s, x, y);
        OK(nc_trainer_step(t, x + rank * (B / 2) * C * H * W, y + rank * (B / 2), B / 2, C, H, W, NULL));
    }
    double worst = 0.0, sums[2] = {0.0, 0.0};
    for (int i = 0; i < 7; i++) {
        float v[256];
        CHECK(ddp_numel[i] <= 256);
        OK(nc_model_get_tensor(m, ddp_names[i], v, ddp_numel[i]));
        double d = max_rel_diff(v, ddp_final[rank][i], ddp_numel[i]);
        if (d > worst) worst = d;
        if (!strstr(ddp_names[i], "running_"))
            for (int k = 0; k < ddp_numel[i]; k++) sums[rank] += (double)v[k] * (double)(k % 5 + 1 + i);
    }
    printf("rank %d: batch norm per rank vs PyTorch DDP (gloo), %d steps: max relative difference %.2e\n", rank,
           STEPS, worst);
    CHECK(worst < 1e-5);
    OK(nc_comm_allreduce_sum(comm, sums, 2));
    CHECK(sums[0] == sums[1]);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

/* One rank's loss is not finite: both ranks skip the update. */
static void test_nonfinite_skips_everywhere(nc_context *ctx, nc_comm *comm) {
    nc_model *m = make_model(ctx, 0, 3);
    nc_trainer *t = make_trainer(m);
    OK(nc_trainer_set_comm(t, comm));
    float x[B * C * H * W];
    int32_t y[B];
    batch(0, x, y);
    if (rank == 1) /* overflows the forward pass: rank 1's loss is not finite (ReLU would zero a NaN) */
        for (int i = 0; i < B * C * H * W; i++) x[i] = 3e38f;
    nc_step_stats st;
    OK(nc_trainer_step(t, x + rank * (B / 2) * C * H * W, y + rank * (B / 2), B / 2, C, H, W, &st));
    CHECK(st.skipped && !st.updated);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    MPI_Init(&argc, &argv);
    int size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0) printf("test_dist needs exactly 2 ranks (mpirun -np 2): skipped\n");
        MPI_Finalize();
        return 77;
    }
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF;
    co.num_threads = 1;
    nc_context *ctx;
    OK(nc_context_create(&co, &ctx));
    nc_comm *comm;
    OK(nc_comm_create_mpi(ctx, &comm));
    CHECK(nc_comm_rank(comm) == rank && nc_comm_size(comm) == 2);
    test_collectives(comm);
    test_equals_single_process(ctx, comm);
    test_batchnorm_as_pytorch_ddp(ctx, comm);
    test_nonfinite_skips_everywhere(ctx, comm);
    nc_comm_destroy(comm);
    nc_context_destroy(ctx);
    MPI_Finalize();
    if (rank == 0) printf("test_dist: all checks passed on 2 ranks\n");
    return 0;
}
