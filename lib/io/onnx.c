/* onnx.c — nc_model_export_onnx's options and checks, the same in every build; the
 * writer itself is io/onnx_write.c, present when neurc was built with protobuf-c
 * (meson option `onnx`), otherwise the call says so. See docs/onnx.md. */
#include "neurc.h"
#include "nc_config.h"
#include "core/context.h"
#include "core/model.h"
#include "io/onnx.h"

#include <stddef.h>
#include <string.h>

#define FN "nc_model_export_onnx"

void nc_onnx_options_init(nc_onnx_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->opset = NC__ONNX_OPSET_MIN;
}

/* Copies the caller's options (older, shorter structs get the defaults for the rest)
 * and checks each field. */
static nc_status read_options(const nc_model *m, const nc_onnx_options *opt, nc_onnx_options *o) {
    nc_context *ctx = m->ctx;
    nc_onnx_options_init(o);
    if (opt) {
        if (opt->struct_size < offsetof(nc_onnx_options, split_heads) || opt->struct_size > sizeof *o)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             FN ": struct_size %zu is not that of nc_onnx_options (%zu); call "
                                "nc_onnx_options_init first",
                             opt->struct_size, sizeof *o);
        memcpy(o, opt, opt->struct_size);
        o->struct_size = sizeof *o;
    }
    if (o->height < 1 || o->width < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         FN ": input size %dx%d: set height and width (>= 1) to the image size the model "
                            "was trained for",
                         o->height, o->width);
    if (o->opset < NC__ONNX_OPSET_MIN || o->opset > NC__ONNX_OPSET_MAX)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, FN ": opset %d is outside %d..%d", o->opset,
                         NC__ONNX_OPSET_MIN, NC__ONNX_OPSET_MAX);
    const struct { const char *name; int v; } flags[] = {
        {"split_heads", o->split_heads}, {"normalize", o->normalize}, {"fold_batchnorm", o->fold_batchnorm}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (flags[i].v != 0 && flags[i].v != 1)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, FN ": %s must be 0 or 1, got %d", flags[i].name,
                             flags[i].v);
    if (o->normalize && !m->norm_mean)
        return nc__error(ctx, NC_ERR_STATE,
                         FN ": normalize is set but the model stores no normalization "
                            "(nc_model_set_normalization)");
    return NC_OK;
}

nc_status nc_model_export_onnx(nc_model *m, const char *path, const nc_onnx_options *opt) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!path) return nc__error(ctx, NC_ERR_NULL, FN ": path is NULL");
    nc_onnx_options o;
    nc_status st = read_options(m, opt, &o);
    if (st != NC_OK) return st;
#if HAVE_ONNX
    nc__model_read_begin(m);
    st = nc__onnx_write(m, path, &o);
    nc__model_read_end(m);
    return st;
#else
    return nc__error(ctx, NC_ERR_UNSUPPORTED,
                     FN ": this neurc was built without ONNX export (meson option onnx; needs protobuf-c "
                        "and onnx.proto: libprotobuf-c-dev, protobuf-c-compiler, libonnx-dev)");
#endif
}
