/* test_dist.c — data-parallel training over MPI, run as `mpirun -np 2 test_dist`
 * (tests/meson.build). Checks, on 2 ranks of one process each:
 *  - the collectives (allreduce, barrier) and the initial broadcast of rank 0's model;
 *  - a model without batch norm: N SGD-momentum steps with each rank on its half of
 *    the global batch equal N steps in one process on the whole batch (rank 0 runs
 *    the single-process reference itself), within 1e-5 relative;
 *  - with batch norm (per-rank statistics, as DDP): each rank's parameters and running
 *    statistics equal PyTorch DDP's (gloo, 2 ranks; tests/fixtures/ddp_golden.h),
 *    and the ranks' parameters are identical;
 *  - a non-finite loss on one rank skips the update on every rank;
 *  - synchronised batch norm: 20 steps on 2 ranks x B/2 equal 20 steps in one
 *    process x B within 1e-5 relative (ref; onednn's blocked layout too);
 *  - the gradient all-reduce overlapped with the backward pass (many small buckets)
 *    gives bit-identical weights to the all-reduce after it, and did start buckets
 *    during the backward;
 *  - nc_comm_create_nccl refuses clearly without a GPU (or works, with GPUs).
 * With an argument, a failure scenario instead (tests/cli/test_dist_failure.py runs
 * them): `hang` — rank 1 stops taking part after 2 steps, `die` — rank 1 kills
 * itself (SIGKILL) after 2 steps; rank 0, with a 3 s timeout, must get
 * NC_ERR_TIMEOUT (or, for `die`, an MPI error) from its next step within the
 * timeout and print what it got.
 * Exit 77 (skipped) when started without 2 ranks. Plain C + MPI, no cmocka: the
 * ranks must agree on every check, so a failure aborts the whole job. Linked with
 * the internal library to look at the trainer's buckets. */
#include "neurc.h"
#include "dist/buckets.h"
#include "train/trainer.h"
#include "fixtures/ddp_golden.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

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

/* conv(5) [-> bn] -> relu -> avgpool -> fc; `wide`: conv(20) -> bn -> relu -> conv(20)
 * -> bn -> relu (20 channels: oneDNN's blocked layout with padding) */
static nc_model *make_model_wide(nc_context *ctx, int bn, int wide, uint64_t seed) {
    nc_builder *b;
    nc_value x, y;
    nc_model *m;
    OK(nc_builder_create(ctx, C, &b, &x));
    OK(nc_builder_conv2d(b, "conv1", x, wide ? 20 : 5, 3, 1, 1, 1, 1, !bn, &y));
    if (bn) OK(nc_builder_batchnorm(b, "bn1", y, 1e-5f, 0.1f, &y));
    OK(nc_builder_relu(b, y, &y));
    if (wide) {
        OK(nc_builder_conv2d(b, "conv2", y, 20, 3, 1, 1, 1, 1, 0, &y));
        OK(nc_builder_batchnorm(b, "bn2", y, 1e-5f, 0.1f, &y));
        OK(nc_builder_relu(b, y, &y));
    }
    OK(nc_builder_adaptive_avg_pool2d(b, y, 1, 1, &y));
    OK(nc_builder_flatten(b, y, &y));
    OK(nc_builder_linear(b, "fc", y, K, 1, &y));
    OK(nc_builder_finish(b, y, 1, seed, &m));
    nc_builder_destroy(b);
    return m;
}

static nc_model *make_model(nc_context *ctx, int bn, uint64_t seed) { return make_model_wide(ctx, bn, 0, seed); }

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

/* The largest ||a - b|| / ||b|| over m's tensors (a, b: weights() of two models like m). */
static double max_tensor_rel_diff(nc_model *m, const float *a, const float *b) {
    double worst = 0.0;
    int64_t at = 0;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        OK(nc_model_tensor_info(m, i, &ti));
        double dd = 0.0, bb = 0.0;
        for (int64_t k = at; k < at + ti.numel; k++) {
            dd += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
            bb += (double)b[k] * b[k];
        }
        const double d = bb > 0.0 ? sqrt(dd / bb) : sqrt(dd);
        if (d > worst) worst = d;
        at += ti.numel;
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

/* Synchronised batch norm: 20 steps on 2 ranks x B/2 == 20 steps in one process x B
 * (the reference: rank 0, ref backend, plain batch norm on the whole batch). */
static void test_sync_batchnorm_equals_single_process(nc_context *ctx, nc_context *ref_ctx, nc_comm *comm,
                                                      const char *what) {
    enum { SYNC_STEPS = 20 };
    nc_model *m = make_model_wide(ctx, 1, 1, 200 + (uint64_t)rank);
    nc_trainer *t = make_trainer(m);
    OK(nc_trainer_set_comm(t, comm));
    OK(nc_trainer_set_sync_batchnorm(t, 1));
    nc_model *ref = rank == 0 ? make_model_wide(ref_ctx, 1, 1, 200) : NULL;
    nc_trainer *tref = ref ? make_trainer(ref) : NULL;
    float x[B * C * H * W];
    int32_t y[B];
    const int half = B / 2, per = C * H * W;
    for (int s = 0; s < SYNC_STEPS; s++) {
        batch(s, x, y);
        nc_step_stats st, sref;
        OK(nc_trainer_step(t, x + rank * half * per, y + rank * half, half, C, H, W, &st));
        CHECK(st.updated);
        if (tref) {
            OK(nc_trainer_step(tref, x, y, B, C, H, W, &sref));
            CHECK(fabs(st.loss - sref.loss) <= 1e-5 * fabs(sref.loss) + 1e-6);
        }
    }
    int64_t n, nref;
    float *w = weights(m, &n);
    if (ref) {
        float *wr = weights(ref, &nref);
        CHECK(n == nref);
        const double d = max_tensor_rel_diff(m, w, wr);
        printf("%s: synchronised batch norm, 2 ranks x %d vs 1 process x %d, %d steps: largest relative "
               "difference of a tensor %.2e (parameters and running statistics; elementwise %.2e)\n", what, half,
               B, SYNC_STEPS, d, max_rel_diff(w, wr, n));
        CHECK(d < 1e-5);
        free(wr);
    }
    free(w);
    nc_trainer_destroy(tref);
    nc_model_destroy(ref);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

/* Weights after STEPS steps of a 2-conv batch-norm model, gradients in ~256-byte
 * buckets, the all-reduce overlapped with the backward pass or not. */
static float *train_buckets(nc_context *ctx, nc_comm *comm, int overlap, int64_t *n, int *early, int *count) {
    nc_model *m = make_model_wide(ctx, 1, 1, 300);
    nc_trainer *t = make_trainer(m);
    comm->bucket_bytes = 256;
    OK(nc_trainer_set_comm(t, comm));
    comm->bucket_bytes = (size_t)25 << 20;
    OK(nc_trainer_set_grad_overlap(t, overlap));
    float x[B * C * H * W];
    int32_t y[B];
    for (int s = 0; s < STEPS; s++) {
        batch(s, x, y);
        OK(nc_trainer_step(t, x + rank * (B / 2) * C * H * W, y + rank * (B / 2), B / 2, C, H, W, NULL));
    }
    *early = nc__buckets_started_early(t->buckets);
    *count = nc__buckets_count(t->buckets);
    float *w = weights(m, n);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    return w;
}

static void test_overlap_is_bit_identical(nc_context *ctx, nc_comm *comm) {
    int64_t n1, n2;
    int early1, early2, count1, count2;
    float *a = train_buckets(ctx, comm, 1, &n1, &early1, &count1);
    float *b = train_buckets(ctx, comm, 0, &n2, &early2, &count2);
    CHECK(n1 == n2 && count1 == count2 && count1 > 10);
    CHECK(early1 > 0 && early1 < count1 && early2 == 0); /* overlapped: started during the backward */
    CHECK(memcmp(a, b, (size_t)n1 * sizeof *a) == 0);
    if (rank == 0)
        printf("overlap: %d of %d buckets started during the backward pass; weights bit-identical to the "
               "non-overlapped all-reduce\n", early1, count1);
    free(a);
    free(b);
}

/* NCCL: on a machine without a GPU (or a build without NCCL) the call refuses
 * clearly; with GPUs, its collectives on host memory work and the trainer refuses it
 * on the CPU backend (docs/distributed.md, NCCL: untested until a GPU run). */
static void test_nccl_creates_or_refuses(nc_context *ctx) {
    nc_comm *nc = NULL;
    const nc_status st = nc_comm_create_nccl(ctx, -1, &nc);
    if (rank == 0) printf("nc_comm_create_nccl: %s: %s\n", nc_status_str(st), st ? nc_context_last_error(ctx) : "");
    if (st != NC_OK) {
        CHECK(nc == NULL && strstr(nc_context_last_error(ctx), "nc_comm_create_nccl") != NULL);
        CHECK(st == NC_ERR_UNSUPPORTED || st == NC_ERR_BACKEND); /* no GPU / both ranks on one GPU */
        return;
    }
    double v[2] = {1.0 + rank, 2.0};
    OK(nc_comm_allreduce_sum(nc, v, 2));
    CHECK(v[0] == 3.0 && v[1] == 4.0);
    OK(nc_comm_barrier(nc));
    nc_model *m = make_model(ctx, 0, 1);
    nc_trainer *t = make_trainer(m);
    CHECK(nc_trainer_set_comm(t, nc) == NC_ERR_UNSUPPORTED);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_comm_destroy(nc);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* `hang` or `die` (see the top): rank 0 reports what its step returned and ends the job. */
static int failure_scenario(nc_context *ctx, nc_comm *comm, const char *mode) {
    OK(nc_comm_set_timeout(comm, 3.0));
    CHECK(nc_comm_set_timeout(comm, 0.0) == NC_ERR_INVALID_ARGUMENT && nc_comm_timeout(comm) == 3.0);
    nc_model *m = make_model(ctx, 1, 5);
    nc_trainer *t = make_trainer(m);
    OK(nc_trainer_set_comm(t, comm));
    float x[B * C * H * W];
    int32_t y[B];
    for (int s = 0; s < 2; s++) {
        batch(s, x, y);
        OK(nc_trainer_step(t, x + rank * (B / 2) * C * H * W, y + rank * (B / 2), B / 2, C, H, W, NULL));
    }
    if (rank == 1) {
        fflush(stdout);
        if (strcmp(mode, "die") == 0) raise(SIGKILL);
        sleep(60); /* hangs: takes no part any more */
        return 1;
    }
    const double start = now_s();
    batch(2, x, y);
    nc_status st = nc_trainer_step(t, x, y, B / 2, C, H, W, NULL);
    const double took = now_s() - start;
    printf("rank 0: step after the other rank stopped: status %s (%s) after %.1f s: %s\n", nc_status_str(st),
           st == NC_ERR_TIMEOUT ? "NC_ERR_TIMEOUT" : st == NC_ERR_BACKEND ? "NC_ERR_BACKEND" : "other", took,
           nc_context_last_error(ctx));
    nc_status again = nc_comm_barrier(comm);
    printf("rank 0: then nc_comm_barrier: %s: %s\n", again == NC_ERR_STATE ? "NC_ERR_STATE" : "other",
           nc_context_last_error(ctx));
    fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 3); /* as documented: end the job */
    return 1;
}

int main(int argc, char **argv) {
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
    if (argc > 1) return failure_scenario(ctx, comm, argv[1]);
    test_collectives(comm);
    test_equals_single_process(ctx, comm);
    test_batchnorm_as_pytorch_ddp(ctx, comm);
    test_nonfinite_skips_everywhere(ctx, comm);
    test_sync_batchnorm_equals_single_process(ctx, ctx, comm, "ref");
    nc_context *dn = NULL;
    co.backend = NC_BACKEND_ONEDNN;
    if (nc_context_create(&co, &dn) == NC_OK) { /* both ranks: the same build */
        nc_comm *dn_comm;
        OK(nc_comm_create_mpi(dn, &dn_comm));
        test_sync_batchnorm_equals_single_process(dn, ctx, dn_comm, "onednn");
        nc_comm_destroy(dn_comm);
        nc_context_destroy(dn);
    }
    test_overlap_is_bit_identical(ctx, comm);
    test_nccl_creates_or_refuses(ctx);
    nc_comm_destroy(comm);
    nc_context_destroy(ctx);
    MPI_Finalize();
    if (rank == 0) printf("test_dist: all checks passed on 2 ranks\n");
    return 0;
}
