/* fuzz.h — what the fuzz targets (tests/fuzz/fuzz_*.c, one per input kind) share:
 * each defines LLVMFuzzerTestOneInput; libFuzzer drives it in the fuzz build
 * (meson -Dfuzz=true, clang), replay.c's main() in the normal build (the regression
 * and seed files, every test run). The models and trainers the targets load into are
 * built here so that make_corpus.c writes seeds that fit them exactly. Everything
 * runs on the `ref` backend with one thread. */
#ifndef NC_FUZZ_H
#define NC_FUZZ_H

#include "neurc.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A new context on `ref`, one thread; aborts when that fails (a harness error). */
nc_context *fz_context(void);

/* Aborts with the context's message when st is not NC_OK (harness set-up only). */
void fz_ok(nc_context *ctx, nc_status st, const char *what);

/* Returns st; with NC_FUZZ_VERBOSE set in the environment also prints
 * "<what>: <status> <message>" to stderr (to see what a seed or crash input reaches). */
nc_status fz_note(nc_context *ctx, nc_status st, const char *what);

/* A directory private to this process (made on first use, removed at exit with the
 * files fz_write put in it) and a file in it holding data[size]; returns its path
 * (static storage, one per name). */
const char *fz_dir(void);
const char *fz_write(const char *name, const void *data, size_t size);

/* The model fuzz_weights loads state_dicts into: simple_cnn, 4 input channels,
 * width 4, 3 classes, two linear heads. */
nc_model *fz_weights_model(nc_context *ctx);

/* The two trainers fuzz_checkpoint loads checkpoints into, each on its own fresh
 * model (simple_cnn, 1 channel, width 2, 3 classes): `kind` 0 = Adam with a cosine
 * schedule attached, 1 = SGD with momentum and accumulation_steps 2. The schedule
 * (kind 0) is returned in *sched for the caller to destroy after the trainer. */
nc_trainer *fz_checkpoint_trainer(nc_context *ctx, int kind, nc_model **model, nc_schedule **sched);

#endif
