/* fuzz_csv.c — a CSV manifest (nc_dataset_open_csv): the RFC 4180 parser, column
 * selection, relative paths, labels (integers or names), an optional image column.
 * The manifest is written next to three small PNGs (a.png gray 8-bit, b.png RGB,
 * c.png gray 16-bit) in the process's temporary directory and opened twice: with
 * the default columns (image, label) and with image,mask / optional opt / label,zone.
 * On success the first samples are decoded. */
#include "fuzz.h"

#include <stdio.h>

static void write_png(nc_context *ctx, const char *name, int channels, int depth) {
    nc_image *img = NULL;
    fz_ok(ctx, nc_image_create(ctx, channels, 3, 3, &img), "image");
    float *v = nc_image_data(img);
    for (int i = 0; i < channels * 9; i++) v[i] = (float)(i % 7) / 7.0f;
    char path[700];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    fz_ok(ctx, nc_png_write(ctx, path, img, depth), "png");
    nc_image_destroy(img);
}

static void use(nc_dataset *ds) {
    int64_t n = nc_dataset_size(ds);
    int heads = nc_dataset_num_heads(ds);
    for (int64_t i = 0; i < n && i < 4; i++) {
        nc_image *img = NULL;
        int32_t labels[64];
        if (heads > 64) break;
        if (nc_dataset_get(ds, i, &img) == NC_OK) nc_image_destroy(img);
        if (nc_dataset_labels(ds, i, labels) != NC_OK) __builtin_trap();
        for (int h = 0; h < heads; h++)
            if (labels[h] < 0 || labels[h] >= nc_dataset_num_classes(ds, h)) __builtin_trap();
    }
    for (int h = 0; h < heads; h++)
        for (int c = 0; c < nc_dataset_num_classes(ds, h); c++)
            if (!nc_dataset_class_name(ds, h, c)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    nc_context *ctx = fz_context();
    if (!ready) {
        write_png(ctx, "a.png", 1, 8);
        write_png(ctx, "b.png", 3, 8);
        write_png(ctx, "c.png", 1, 16);
        ready = 1;
    }
    const char *manifest = fz_write("manifest.csv", data, size);
    nc_dataset_options o[2];
    nc_dataset_options_init(&o[0]);
    nc_dataset_options_init(&o[1]);
    o[1].image_columns = "image,mask";
    o[1].optional_column = "opt";
    o[1].label_columns = "label,zone";
    for (int k = 0; k < 2; k++) {
        nc_dataset *ds = NULL;
        if (fz_note(ctx, nc_dataset_open_csv(ctx, manifest, &o[k], &ds), k ? "csv image,mask" : "csv") == NC_OK) {
            use(ds);
            nc_dataset_destroy(ds);
        }
    }
    nc_context_destroy(ctx);
    return 0;
}
