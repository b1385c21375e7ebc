/* embed.c — the smallest complete use of neurc in an application: load a trained
 * model or checkpoint, classify one PNG as training evaluated (resize, center crop,
 * normalise), print "<class> <probability>". Public API only; copy it freely.
 * Build: cc embed.c $(pkg-config --cflags --libs neurc) -lm
 * Run:   nc-embed model.safetensors image.png */
#include <neurc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Every neurc call returns a status; on failure the context holds the reason. */
#define CHECK(call)                                                              \
    do {                                                                         \
        if ((call) != NC_OK) {                                                   \
            fprintf(stderr, "%s: %s\n", #call, nc_context_last_error(ctx));      \
            goto done;                                                           \
        }                                                                        \
    } while (0)

int main(int argc, char **argv) {
    nc_context *ctx = NULL; nc_model *model = NULL; nc_transform *eval = NULL;
    nc_image *img = NULL, *x = NULL; float mean[64], std[64], logits[1024];
    int rc = 1;
    if (argc != 3) { fprintf(stderr, "usage: %s MODEL IMAGE.png\n", argv[0]); return 2; }
    if (nc_context_create(NULL, &ctx) != NC_OK) return 1;  /* NULL = defaults */
    CHECK(nc_model_load(ctx, argv[1], &model));            /* model file or checkpoint */
    int c = nc_model_in_channels(model), n = nc_model_num_outputs(model), k = n / nc_model_num_heads(model);
    if (c > 64 || n > 1024) { fprintf(stderr, "model too wide for this example\n"); goto done; }
    CHECK(nc_png_read(ctx, argv[2], NULL, &img));          /* 8/16-bit -> [0, 1] floats */
    /* The eval transform saved with the model; missing keys mean "leave as is". */
    const char *size = nc_model_info(model, "image_size"), *resize = nc_model_info(model, "resize");
    CHECK(nc_transform_create(ctx, &eval));
    if (size) CHECK(nc_transform_add_resize(eval, atoi(resize ? resize : size), 0));  /* shorter side */
    if (size) CHECK(nc_transform_add_center_crop(eval, atoi(size), atoi(size)));
    if (nc_model_get_normalization(model, mean, std) == NC_OK)
        CHECK(nc_transform_add_normalize(eval, mean, std, c));
    CHECK(nc_transform_apply(eval, ctx, img, 0, 0, 0, &x));  /* x: c x h x w floats */
    CHECK(nc_model_forward(model, nc_image_const_data(x), 1, c, nc_image_height(x), nc_image_width(x), logits));
    /* Softmax of head 0 with the calibrated temperature, if the model has one. */
    const char *tk = nc_model_info(model, "temperature");
    double t = tk && atof(tk) > 0 ? atof(tk) : 1.0, sum = 0.0;
    int best = 0;
    for (int i = 1; i < k; i++) if (logits[i] > logits[best]) best = i;
    for (int i = 0; i < k; i++) sum += exp((logits[i] - logits[best]) / t);
    const char *name = nc_model_class_name(model, best);
    if (name) printf("%s %.6f\n", name, 1.0 / sum);
    else printf("%d %.6f\n", best, 1.0 / sum);
    rc = 0;
done:
    nc_image_destroy(x); nc_image_destroy(img); nc_transform_destroy(eval);
    nc_model_destroy(model); nc_context_destroy(ctx);
    return rc;
}
