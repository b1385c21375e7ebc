/* loader.c — nc-bench --loader: images/s of nc_loader_next (decoding, transforms and
 * batching, nothing else done with the batches), median of several epochs' worth of
 * batches after warm-up. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

static nc_status open_source(nc_context *ctx, const char *src, nc_dataset **ds) {
    if (strncmp(src, "folder:", 7) == 0) return nc_dataset_open_folder(ctx, src + 7, NULL, ds);
    if (strncmp(src, "idx:", 4) == 0) {
        const char *comma = strchr(src + 4, ',');
        if (!comma) {
            fprintf(stderr, "nc-bench: --loader idx:IMAGES,LABELS needs both paths\n");
            return NC_ERR_INVALID_ARGUMENT;
        }
        char *images = strndup(src + 4, (size_t)(comma - src - 4));
        nc_status st = images ? nc_dataset_open_idx(ctx, images, comma + 1, ds) : NC_ERR_OUT_OF_MEMORY;
        free(images);
        return st;
    }
    fprintf(stderr, "nc-bench: --loader takes folder:DIR or idx:IMAGES,LABELS, not '%s'\n", src);
    return NC_ERR_INVALID_ARGUMENT;
}

/* Times `runs` runs of `batches` batches (each a fresh epoch, from start_epoch to the
 * last batch received) after `warmup` untimed ones; prints images/s. */
int bench_loader(const loader_args *a) {
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF;
    co.num_threads = a->threads;
    nc_context *ctx = NULL;
    nc_dataset *ds = NULL;
    nc_transform *t = NULL;
    nc_loader *l = NULL;
    double *times = malloc(sizeof(double) * (size_t)a->runs);
    int batches = a->batches;
    nc_status st = times ? nc_context_create(&co, &ctx) : NC_ERR_OUT_OF_MEMORY;
    if (st == NC_OK) st = open_source(ctx, a->source, &ds);
    if (st == NC_OK && strcmp(a->transform, "train") == 0)
        st = nc_transform_preset_train(ctx, a->size, nc_dataset_channels(ds), NULL, NULL, &t);
    else if (st == NC_OK && strcmp(a->transform, "eval") == 0)
        st = nc_transform_preset_eval(ctx, a->size * 8 / 7, a->size, nc_dataset_channels(ds), NULL, NULL, &t);
    if (st == NC_OK) {
        nc_loader_options lo;
        nc_loader_options_init(&lo);
        lo.batch_size = a->batch;
        lo.workers = a->workers;
        lo.prefetch = a->prefetch;
        lo.seed = 1;
        st = nc_loader_create(ds, t, &lo, &l);
    }
    if (st == NC_OK && nc_loader_num_batches(l) < batches) batches = (int)nc_loader_num_batches(l);
    if (st == NC_OK && batches < 1) st = NC_ERR_INVALID_ARGUMENT;
    int64_t images = 0;
    nc_batch b = {0};
    for (int r = 0; st == NC_OK && r < a->warmup + a->runs; r++) {
        double t0 = bench_now_s();
        st = nc_loader_start_epoch(l, r);
        for (int k = 0; st == NC_OK && k < batches; k++) {
            st = nc_loader_next(l, &b);
            if (r == a->warmup) images += b.n;
        }
        if (r >= a->warmup) times[r - a->warmup] = bench_now_s() - t0;
    }
    int failed = st != NC_OK;
    if (failed) {
        fprintf(stderr, "nc-bench: loader %s: %s: %s\n", a->source, nc_status_str(st),
                ctx ? nc_context_last_error(ctx) : "");
    } else {
        int runs = a->runs;
        double med = bench_median(times, runs);
        printf("%-10s %6s %5s %7s %6s %8s %11s %11s %10s\n", "transform", "batch", "size", "workers", "shape",
               "batches", "median ms", "min ms", "images/s");
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", b.c, b.h, b.w);
        printf("%-10s %6d %5d %7d %6s %8d %11.1f %11.1f %10.1f\n", a->transform, a->batch, a->size, a->workers,
               shape, batches, 1e3 * med, 1e3 * times[0], (double)images / med);
        if (a->json) {
            FILE *f = bench_json_open(a->json);
            if (!f) {
                failed = 1;
            } else {
                fprintf(f,
                        "{\"mode\": \"loader\", \"source\": \"%s\", \"transform\": \"%s\", \"size\": %d, "
                        "\"channels\": %d, \"height\": %d, \"width\": %d, \"workers\": %d, \"prefetch\": %d, "
                        "\"batch\": %d, \"batches\": %d, \"runs\": %d, \"median_s\": %.6f, \"min_s\": %.6f, "
                        "\"max_s\": %.6f, \"images_per_s\": %.2f}\n",
                        a->source, a->transform, a->size, b.c, b.h, b.w, a->workers, a->prefetch, a->batch,
                        batches, runs, med, times[0], times[runs - 1], (double)images / med);
                bench_json_close(f);
            }
        }
    }
    nc_loader_destroy(l);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
    nc_context_destroy(ctx);
    free(times);
    return failed;
}
