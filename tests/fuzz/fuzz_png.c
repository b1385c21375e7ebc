/* fuzz_png.c — PNG decoding from memory (nc_png_read_memory): libpng behind the
 * library's limits, conversions of every colour type and bit depth, and its error
 * path (longjmp out of libpng). Limits are kept small (1 Mi pixels) so that a header
 * that claims a large image stays inside libFuzzer's memory limit; the default
 * limits are exercised for headers the small ones refuse. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nc_context *ctx = fz_context();
    nc_png_limits lim;
    nc_png_limits_init(&lim);
    lim.max_width = 4096;
    lim.max_height = 4096;
    lim.max_pixels = (int64_t)1 << 20;
    nc_image *img = NULL;
    if (fz_note(ctx, nc_png_read_memory(ctx, data, size, &lim, &img), "png") == NC_OK) {
        /* every value was written and lies in [0, 1] */
        const float *v = nc_image_const_data(img);
        size_t n = (size_t)nc_image_channels(img) * (size_t)nc_image_height(img) * (size_t)nc_image_width(img);
        for (size_t i = 0; i < n; i++)
            if (!(v[i] >= 0.0f && v[i] <= 1.0f)) __builtin_trap();
        nc_image_destroy(img);
    }
    nc_context_destroy(ctx);
    return 0;
}
