/* fuzz_idx.c — an MNIST-style IDX pair (nc_dataset_open_idx), plain or gzip: the
 * input is a 2-byte little-endian length L, then the images file (its first L bytes,
 * at most what is there), then the labels file (the rest). Both are written to the
 * process's temporary directory (the loader reads paths through zlib); on success
 * the samples are decoded. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t n_img = (size_t)data[0] | (size_t)data[1] << 8;
    if (n_img > size - 2) n_img = size - 2;
    const char *images = fz_write("images-idx3-ubyte", data + 2, n_img);
    const char *labels = fz_write("labels-idx1-ubyte", data + 2 + n_img, size - 2 - n_img);
    nc_context *ctx = fz_context();
    nc_dataset *ds = NULL;
    if (fz_note(ctx, nc_dataset_open_idx(ctx, images, labels, &ds), "idx") == NC_OK) {
        int64_t n = nc_dataset_size(ds);
        for (int64_t i = 0; i < n && i < 8; i++) {
            nc_image *img = NULL;
            int32_t label;
            if (nc_dataset_get(ds, i, &img) != NC_OK || nc_dataset_labels(ds, i, &label) != NC_OK) __builtin_trap();
            if (label < 0 || label >= nc_dataset_num_classes(ds, 0)) __builtin_trap();
            nc_image_destroy(img);
        }
        nc_dataset_destroy(ds);
    }
    nc_context_destroy(ctx);
    return 0;
}
