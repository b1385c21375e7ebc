/* fuzz_util.c — the fuzz targets' shared set-up (fuzz.h): a `ref` context, a private
 * temporary directory for the loaders that take paths, and the models and trainers
 * the weight and checkpoint targets load into (make_corpus.c builds the same ones). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

nc_context *fz_context(void) {
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = 1;
    nc_context *ctx = NULL;
    if (nc_context_create(&o, &ctx) != NC_OK) {
        fprintf(stderr, "fuzz: cannot create a ref context\n");
        abort();
    }
    return ctx;
}

void fz_ok(nc_context *ctx, nc_status st, const char *what) {
    if (st == NC_OK) return;
    fprintf(stderr, "fuzz: set-up failed: %s: %s: %s\n", what, nc_status_str(st), nc_context_last_error(ctx));
    abort();
}

nc_status fz_note(nc_context *ctx, nc_status st, const char *what) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("NC_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s %s\n", what, nc_status_str(st), st ? nc_context_last_error(ctx) : "");
    return st;
}

/* ------------------------------------------------------------ temp files */

#define MAX_FILES 16
static char dir_path[512];
static char file_paths[MAX_FILES][600];
static int n_files;

static void remove_dir(void) {
    for (int i = 0; i < n_files; i++) unlink(file_paths[i]);
    rmdir(dir_path);
}

const char *fz_dir(void) {
    if (dir_path[0]) return dir_path;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir_path, sizeof dir_path, "%s/nc-fuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return dir_path;
}

const char *fz_write(const char *name, const void *data, size_t size) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    int known = 0;
    for (int i = 0; i < n_files && !known; i++) known = strcmp(file_paths[i], path) == 0;
    if (!known) {
        if (n_files == MAX_FILES) abort();
        memcpy(file_paths[n_files++], path, sizeof path);
    }
    /* a new file each time: truncating an existing one makes ext4 flush it on close
     * (auto_da_alloc), which slowed the CSV target to a few dozen inputs a second */
    unlink(path);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: writing a temporary file");
        abort();
    }
    for (int i = 0; i < n_files; i++)
        if (strcmp(file_paths[i], path) == 0) return file_paths[i];
    return NULL;
}

/* ------------------------------------------------------------ models */

nc_model *fz_weights_model(nc_context *ctx) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "simple_cnn";
    o.in_channels = 4;
    o.width = 4;
    o.num_classes = 3;
    o.num_heads = 2;
    nc_model *m = NULL;
    fz_ok(ctx, nc_model_create(ctx, &o, &m), "weights model");
    return m;
}

nc_trainer *fz_checkpoint_trainer(nc_context *ctx, int kind, nc_model **model, nc_schedule **sched) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.in_channels = 1;
    mo.width = 2;
    mo.num_classes = 3;
    fz_ok(ctx, nc_model_create(ctx, &mo, model), "checkpoint model");
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    *sched = NULL;
    if (kind == 0) {
        to.optimizer = NC_OPTIMIZER_ADAM;
        to.lr = 0.001f;
    } else {
        to.optimizer = NC_OPTIMIZER_SGD;
        to.momentum = 0.9f;
        to.accumulation_steps = 2;
    }
    nc_trainer *t = NULL;
    fz_ok(ctx, nc_trainer_create(*model, &to, &t), "checkpoint trainer");
    if (kind == 0) {
        nc_schedule_options so;
        nc_schedule_options_init(&so);
        so.kind = NC_SCHEDULE_COSINE;
        so.t_max = 10;
        so.warmup_steps = 2;
        fz_ok(ctx, nc_schedule_create(ctx, &so, sched), "schedule");
        fz_ok(ctx, nc_trainer_set_schedule(t, *sched), "set schedule");
    }
    return t;
}
