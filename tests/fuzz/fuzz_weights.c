/* fuzz_weights.c — a state_dict loaded into a built model: nc_model_load_weights
 * (strict and not) and nc_model_load_pretrained (first-conv adaptation, replaced or
 * kept heads, strict), from memory, into fz_weights_model (4 input channels, two
 * heads). The model is built once; loads that succeed change its weights, which
 * does not matter to the next input. */
#include "fuzz.h"
#include "io/model_io.h"
#include "io/safetensors.h"

static nc_context *ctx;
static nc_model *model;

static void load_all(const nc__st_file *f) {
    nc_load_report rep = {.struct_size = sizeof rep};
    fz_note(ctx, nc__model_load_weights_st(model, f, "<fuzz>", 1, &rep), "weights strict");
    fz_note(ctx, nc__model_load_weights_st(model, f, "<fuzz>", 0, &rep), "weights");
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    fz_note(ctx, nc__model_load_pretrained_st(model, f, "<fuzz>", &o, &rep), "pretrained");
    o.strict = 1;
    o.keep_head = 1;
    o.adapt = NC_ADAPT_RGB_MEAN;
    fz_note(ctx, nc__model_load_pretrained_st(model, f, "<fuzz>", &o, NULL), "pretrained strict keep_head");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ctx) {
        ctx = fz_context();
        model = fz_weights_model(ctx);
    }
    nc__st_file *f = NULL;
    if (fz_note(ctx, nc__st_parse(ctx, data, size, &f), "parse") == NC_OK) {
        load_all(f);
        nc__st_close(f);
    }
    return 0;
}
