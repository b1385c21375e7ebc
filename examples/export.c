/* export.c — nc-export: writes a trained model or checkpoint as an ONNX file for other
 * runtimes (ONNX Runtime, TensorRT, OpenVINO): the inference graph with a dynamic batch
 * dimension, class names and normalisation as metadata (docs/onnx.md). Public API only.
 * Run `nc-export --help`. Exit status: 0 written, 1 the model could not be loaded or
 * exported (the output is unchanged), 2 bad usage. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <neurc.h>
#include "args.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "nc-export"

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " --checkpoint FILE --output FILE.onnx [options]\n"
            "Writes a trained neurc model as ONNX: input \"input\" (batch, C, H, W) float32,\n"
            "output \"logits\" (batch, heads*classes), or one \"logits_<h>\" per head with\n"
            "--split-heads; the batch dimension is dynamic, H and W are fixed. Class names,\n"
            "normalisation and the model's info keys go into the file's metadata_props.\n"
            "The output is written atomically: on any failure it is left as it was.\n"
            "\n"
            "  --checkpoint FILE   model file or training checkpoint (required)\n"
            "  --output FILE       the ONNX file to write (required)\n"
            "  --img-size N|HxW    input size (default: the model's image_size, which\n"
            "                      nc-train records)\n"
            "  --opset N           ONNX opset, 13..17 (default 13)\n"
            "  --split-heads       one output per head instead of one concatenated output\n"
            "  --normalize         apply the model's stored mean/std inside the graph, so it\n"
            "                      takes unnormalised images (scaled to [0, 1] as in training)\n"
            "  --fold-batchnorm    fold batch norms into the convolutions before them\n"
            "  -q, --quiet         no summary line on stdout\n"
            "  -h, --help          this text\n"
            "Exit status: 0 written, 1 load or export failed, 2 bad usage.\n");
}

typedef struct options {
    const char *checkpoint, *output, *size;
    nc_onnx_options onnx;
    int quiet;
} options;

/* "N" (square) or "HxW" into height and width. */
static int parse_size(const char *s, int *h, int *w) {
    char buf[64];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    char *x = strchr(buf, 'x');
    if (x) *x = '\0';
    if (arg_int(buf, 1, 1 << 20, h) != 0) return -1;
    return x ? arg_int(x + 1, 1, 1 << 20, w) : (*w = *h, 0);
}

/* 0 parsed, 1 help printed, 2 bad usage (message printed). */
static int parse_args(int argc, char **argv, options *o) {
    enum { O_CKPT = 256, O_OUT, O_SIZE, O_OPSET, O_SPLIT, O_NORM, O_FOLD };
    static const struct option longopts[] = {
        {"checkpoint", required_argument, NULL, O_CKPT}, {"output", required_argument, NULL, O_OUT},
        {"img-size", required_argument, NULL, O_SIZE},   {"opset", required_argument, NULL, O_OPSET},
        {"split-heads", no_argument, NULL, O_SPLIT},     {"normalize", no_argument, NULL, O_NORM},
        {"fold-batchnorm", no_argument, NULL, O_FOLD},   {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0}};
    int c, li = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hq", longopts, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case O_CKPT: o->checkpoint = optarg; break;
        case O_OUT: o->output = optarg; break;
        case O_SIZE: o->size = optarg; bad = parse_size(optarg, &o->onnx.height, &o->onnx.width); break;
        case O_OPSET: bad = arg_int(optarg, 13, 17, &o->onnx.opset); break;
        case O_SPLIT: o->onnx.split_heads = 1; break;
        case O_NORM: o->onnx.normalize = 1; break;
        case O_FOLD: o->onnx.fold_batchnorm = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); return 1;
        case ':': fprintf(stderr, PROG ": %s needs a value\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, PROG ": unknown option %s (see --help)\n", argv[optind - 1]); return 2;
        }
        if (bad) {
            fprintf(stderr, PROG ": bad value '%s' for --%s%s\n", optarg, longopts[li].name,
                    c == O_OPSET ? " (13..17)" : " (N or HxW)");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!o->checkpoint || !o->output) {
        fprintf(stderr, PROG ": --checkpoint and --output are required (see --help)\n");
        return 2;
    }
    return 0;
}

/* The input size from the model's info key image_size when --img-size was not given. */
static int size_from_model(const nc_model *m, options *o) {
    if (o->size) return 0;
    const char *s = nc_model_info(m, "image_size");
    if (!s || parse_size(s, &o->onnx.height, &o->onnx.width) != 0) {
        fprintf(stderr, PROG ": %s records no usable image_size%s%s%s; give --img-size\n", o->checkpoint,
                s ? " ('" : "", s ? s : "", s ? "')" : "");
        return -1;
    }
    return 0;
}

static void summary(const nc_model *m, const options *o) {
    struct stat sb;
    const long long bytes = stat(o->output, &sb) == 0 ? (long long)sb.st_size : -1;
    const int heads = nc_model_num_heads(m), k = nc_model_num_outputs(m) / heads;
    printf("%s: input (batch, %d, %d, %d), ", o->output, nc_model_in_channels(m), o->onnx.height, o->onnx.width);
    if (o->onnx.split_heads)
        printf("outputs logits_0..logits_%d (batch, %d) each", heads - 1, k);
    else
        printf("output logits (batch, %d)", heads * k);
    printf(", opset %d, %s, %lld bytes\n", o->onnx.opset,
           o->onnx.normalize ? "normalisation in the graph" : "input normalised by the caller", bytes);
}

int main(int argc, char **argv) {
    options o = {0};
    nc_onnx_options_init(&o.onnx);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF; /* only reads the weights: no backend is worth starting */
    co.num_threads = 1;
    nc_context *ctx = NULL;
    nc_model *m = NULL;
    rc = 1;
    if (nc_context_create(&co, &ctx) != NC_OK) {
        fprintf(stderr, PROG ": cannot create a context\n");
        return 1;
    }
    if (nc_model_load(ctx, o.checkpoint, &m) != NC_OK)
        fprintf(stderr, PROG ": %s\n", nc_context_last_error(ctx));
    else if (size_from_model(m, &o) == 0) {
        if (nc_model_export_onnx(m, o.output, &o.onnx) != NC_OK) {
            fprintf(stderr, PROG ": %s\n", nc_context_last_error(ctx));
        } else {
            if (!o.quiet) summary(m, &o);
            rc = 0;
        }
    }
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    return rc;
}
