/* fuzz_checkpoint.c — a training checkpoint (nc_trainer_load_checkpoint, from
 * memory) into the two trainers of fz_checkpoint_trainer: Adam with a cosine
 * schedule, and SGD with gradient accumulation (which reads saved gradients). The
 * trainers are built once; a load either applies whole or leaves them as they were. */
#include "fuzz.h"
#include "io/safetensors.h"
#include "train/trainer.h"

static nc_context *ctx;
static nc_trainer *trainers[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ctx) {
        ctx = fz_context();
        for (int k = 0; k < 2; k++) {
            nc_model *m;
            nc_schedule *s;
            trainers[k] = fz_checkpoint_trainer(ctx, k, &m, &s); /* kept for the process */
        }
    }
    nc__st_file *f = NULL;
    if (fz_note(ctx, nc__st_parse(ctx, data, size, &f), "parse") == NC_OK) {
        for (int k = 0; k < 2; k++) {
            nc_checkpoint_info info;
            nc_checkpoint_info_init(&info);
            fz_note(ctx, nc__trainer_load_checkpoint_st(trainers[k], f, "<fuzz>", &info), k ? "sgd trainer" : "adam trainer");
        }
        nc__st_close(f);
    }
    return 0;
}
