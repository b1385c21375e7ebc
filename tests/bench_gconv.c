/* bench_gconv.c — grouped convolutions on the oneDNN backend's activation layout:
 * oneDNN's primitives (through the backend, with grouped.c switched off) against
 * grouped.c's kernels (called directly, so also for widths the backend leaves to
 * oneDNN), forward, backward data and backward weights, at ResNeXt shapes with 2, 4,
 * 8 and 16 channels per group. A benchmark program, not a test (built with the tests
 * because it uses internals); docs/performance.md, "Grouped convolutions".
 *
 *   bench_gconv [threads [runs]]       (default 2 threads, best of 5)
 *   ONEDNN_MAX_CPU_ISA=AVX2 bench_gconv   the nChw8c layout on an AVX-512 CPU */
#include "testutil.h"

#include "backend/backend.h"
#include "backend/onednn/grouped.h"
#include "backend/onednn/onednn.h"
#include "core/context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shape {
    const char *name;
    int64_t n, c, h, cpg, stride;
} shape;

/* ResNeXt stages: 32x4d's widths 4 (layer1), 8 (layer2), 16 (layer3); 32x2d's 2. */
static const shape shapes[] = {
    {"32x2d layer1 56² s1", 16, 64, 56, 2, 1},   {"32x4d layer1 56² s1", 16, 128, 56, 4, 1},
    {"32x4d layer2.0 56² s2", 16, 256, 56, 8, 2}, {"32x4d layer2 28² s1", 16, 256, 28, 8, 1},
    {"32x4d layer3.0 28² s2", 16, 512, 28, 16, 2}, {"32x4d layer3 14² s1", 16, 512, 14, 16, 1},
    {"32x4d layer1 56² s1 b1", 1, 128, 56, 4, 1}, {"32x4d layer2 28² s1 b1", 1, 256, 28, 8, 1},
    {"32x4d layer3 14² s1 b1", 1, 512, 14, 16, 1},
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { FWD = 0, BWD_DATA, BWD_WEIGHTS, PASSES };
static const char *const pass_names[PASSES] = {"fwd", "bwd data", "bwd weights"};

typedef struct bufs {
    void *x, *y, *dy, *dx;
    float *w, *dw, *packed;
} bufs;

/* One pass of one side: ours = grouped.c directly, else the backend (oneDNN). */
static nc_status run_pass(nc_context *ctx, nc__conv_desc *d, int pass, int ours, bufs *b) {
    dn_state *s = ctx->backend_state;
    const nc__backend *be = ctx->backend;
    if (ours) {
        if (pass == FWD) nc__gconv_forward(s->nt, d, s->block, b->y, b->x, b->packed, NULL, NULL, 0);
        if (pass == BWD_DATA) nc__gconv_backward_data(s->nt, d, s->block, b->dx, b->dy, b->packed, NC__WRITE_SET);
        if (pass == BWD_WEIGHTS) nc__gconv_backward_weights(s->nt, d, s->block, b->dw, NULL, b->dy, b->x);
        return NC_OK;
    }
    s->gconv_off = 1;
    if (pass == FWD) return be->conv2d_forward(s, d, b->y, b->x, b->w, NULL);
    if (pass == BWD_DATA) return be->conv2d_backward(s, d, b->dx, NULL, NULL, b->dy, b->x, b->w);
    return be->conv2d_backward(s, d, NULL, b->dw, NULL, b->dy, b->x, b->w);
}

/* The fastest of `runs` calls after one warm-up, in seconds (on shared cores the
 * least disturbed run); < 0 on an error. */
static double time_pass(nc_context *ctx, nc__conv_desc *d, int pass, int ours, bufs *b, int runs) {
    double t[64];
    if (run_pass(ctx, d, pass, ours, b) != NC_OK) return -1;
    for (int i = 0; i < runs; i++) {
        const double t0 = now_s();
        if (run_pass(ctx, d, pass, ours, b) != NC_OK) return -1;
        t[i] = now_s() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    return t[0];
}

static int bench_shape(nc_context *ctx, const shape *sh, int runs) {
    dn_state *s = ctx->backend_state;
    const nc__backend *be = ctx->backend;
    void *cache = NULL;
    const int64_t oh = (sh->h + 2 - 3) / sh->stride + 1;
    nc__conv_desc d = {.n = sh->n, .c = sh->c, .h = sh->h, .w = sh->h, .k = sh->c, .r = 3, .s = 3,
                       .groups = sh->c / sh->cpg, .stride_h = sh->stride, .stride_w = sh->stride, .pad_h = 1,
                       .pad_w = 1, .dil_h = 1, .dil_w = 1, .oh = oh, .ow = oh, .dtype = NC__DTYPE_F32,
                       .dx_write = NC__WRITE_SET, .wversion = 1, .cache = &cache};
    const nc__value_desc xv = {.shape = {.ndim = 4, .d = {d.n, d.c, d.h, d.w}}, .dtype = NC__DTYPE_F32};
    const nc__value_desc yv = {.shape = {.ndim = 4, .d = {d.n, d.k, d.oh, d.ow}}, .dtype = NC__DTYPE_F32};
    const size_t xn = (size_t)(d.n * d.c * d.h * d.w), yn = (size_t)(d.n * d.k * d.oh * d.ow);
    const size_t wn = (size_t)(d.k * sh->cpg * 9);
    float *hx = tu_rand(xn, -1, 1, 1), *hdy = tu_rand(yn, -1, 1, 2);
    bufs b = {0};
    int ok = be->alloc(s, be->value_bytes(s, &xv), &b.x) == NC_OK &&
             be->alloc(s, be->value_bytes(s, &xv), &b.dx) == NC_OK &&
             be->alloc(s, be->value_bytes(s, &yv), &b.y) == NC_OK &&
             be->alloc(s, be->value_bytes(s, &yv), &b.dy) == NC_OK;
    ok = ok && be->value_upload(s, &xv, b.x, hx) == NC_OK && be->value_upload(s, &yv, b.dy, hdy) == NC_OK;
    b.w = tu_rand(wn, -0.1f, 0.1f, 3);
    b.dw = tu_zeros(wn);
    b.packed = tu_zeros(nc__gconv_weight_floats(&d));
    nc__gconv_pack_weights(&d, s->block, b.packed, b.w);
    const double macs = (double)d.n * (double)d.k * (double)(d.oh * d.ow) * (double)sh->cpg * 9.0;
    printf("| %s | %lld | %lld→%lld | %lld |", sh->name, (long long)sh->n, (long long)d.c, (long long)d.k,
           (long long)sh->cpg);
    for (int pass = 0; ok && pass < PASSES; pass++) {
        const double tn = time_pass(ctx, &d, pass, 0, &b, runs);
        const double to = time_pass(ctx, &d, pass, 1, &b, runs);
        if (tn < 0 || to < 0) {
            fprintf(stderr, "bench_gconv: %s %s: %s\n", sh->name, pass_names[pass], nc_context_last_error(ctx));
            ok = 0;
            break;
        }
        printf(" %.2f (%.0f) | %.2f (%.0f) | %.2f× |", 1e3 * tn, 2e-9 * macs / tn, 1e3 * to, 2e-9 * macs / to,
               tn / to);
    }
    printf("\n");
    fflush(stdout);
    be->release_cache(s, cache);
    be->free(s, b.x), be->free(s, b.dx), be->free(s, b.y), be->free(s, b.dy);
    free(hx), free(hdy), free(b.w), free(b.dw), free(b.packed);
    return ok;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2, runs = argc > 2 ? atoi(argv[2]) : 5;
    if (threads < 1 || runs < 1 || runs > 64) {
        fprintf(stderr, "usage: bench_gconv [threads [runs <= 64]]\n");
        return 2;
    }
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_ONEDNN;
    o.num_threads = threads;
    nc_context *ctx = NULL;
    if (nc_context_create(&o, &ctx) != NC_OK) {
        fprintf(stderr, "bench_gconv: no oneDNN backend\n");
        return 77;
    }
    const dn_state *s = ctx->backend_state;
    printf("# activation layout nChw%dc, oneDNN ISA 0x%x, %d threads, best of %d; ms (GFLOP/s); "
           "ratio = oneDNN time / ours\n", s->block, (unsigned)dnnl_get_effective_cpu_isa(), threads, runs);
    printf("| shape | N | C→K | C/G | fwd oneDNN | fwd ours | fwd ratio | bwd data oneDNN | bwd data ours | "
           "bwd data ratio | bwd weights oneDNN | bwd weights ours | bwd weights ratio |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    int ok = 1;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        if (shapes[i].cpg > s->block || s->block == 0) continue; /* no kernel of ours for it */
        if (s->block == 8 && shapes[i].cpg > 4) continue;
        ok &= bench_shape(ctx, &shapes[i], runs);
    }
    nc_context_destroy(ctx);
    return ok ? 0 : 1;
}
