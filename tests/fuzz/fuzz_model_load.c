/* fuzz_model_load.c — a whole file given as a model (nc_model_load, from memory):
 * the safetensors reader (header length, JSON header, dtypes, shapes, offsets that
 * tile the data), the conversion of every tensor to f32, then the model rebuilt from
 * the neurc metadata (architecture options or a custom graph) and its tensors and
 * metadata loaded strictly. */
#include "fuzz.h"
#include "io/model_io.h"
#include "io/safetensors.h"

#include <stdlib.h>

/* The reader on its own: every tensor it hands out converts to f32. */
static void convert_all(nc_context *ctx, const nc__st_file *f) {
    for (int i = 0; i < f->n_tensors; i++) {
        const nc__st_tensor *t = &f->tensors[i];
        if (t->numel > ((int64_t)1 << 22)) continue; /* a zero-sized dtype cannot claim this */
        float *out = malloc((size_t)t->numel * sizeof *out + 1);
        if (!out) abort();
        nc__st_to_f32(ctx, t, out);
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nc_context *ctx = fz_context();
    nc__st_file *f = NULL;
    if (fz_note(ctx, nc__st_parse(ctx, data, size, &f), "parse") == NC_OK) {
        convert_all(ctx, f);
        nc_model *m = NULL;
        if (fz_note(ctx, nc__model_load_st(ctx, f, "<fuzz>", &m), "model load") == NC_OK) {
            if (nc_model_num_outputs(m) < 1 || nc_model_in_channels(m) < 1) __builtin_trap();
            nc_model_destroy(m);
        }
        nc__st_close(f);
    }
    nc_context_destroy(ctx);
    return 0;
}
