/* predict.c — nc-predict: classifies PNG files, folders of PNGs and CSV manifests with
 * a trained model or checkpoint, and writes one CSV row per image (path, class,
 * probability, the next best classes, every class's probability, optionally a
 * calibrated-threshold decision; for a multi-label model, info "output" = "sigmoid",
 * the labels over the threshold and each label's sigmoid probability). It uses only the public API (include/neurc.h), and
 * preprocesses exactly as training's eval preset does. Run `nc-predict --help`. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "args.h"
#include "predict/predict.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ options */

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " --checkpoint FILE [options] PATH...\n"
            "Classifies images with a trained neurc model and writes CSV: one row per image\n"
            "with the columns\n"
            "  path,class,probability,top2_class,top2_prob,...,topK_class,topK_prob,p_<class>...\n"
            "(multi-head models: the same per head, prefixed head0_, head1_, ...).\n"
            "Probabilities are softmax(logits / T) with the model's calibrated temperature T\n"
            "(info key \"temperature\"; 1 when absent or with --no-temperature).\n"
            "A multi-label model (nc-train --loss bce; info key \"output\" = \"sigmoid\") gives\n"
            "  path,labels,p_<label>...\n"
            "instead: p_<label> = sigmoid(logit), labels = the labels whose probability is\n"
            ">= the threshold (0.5, or --threshold=VALUE), joined by '|' (empty when none).\n"
            "A PATH is a PNG file, a folder (its *.png files, sorted) or a CSV manifest\n"
            "(*.csv: one image per row, paths relative to the manifest's folder).\n"
            "Preprocessing is the eval transform: resize the shorter side, center crop,\n"
            "normalize with the model's stored mean/std.\n"
            "\n"
            "  --checkpoint FILE    model file or training checkpoint (required)\n"
            "  --output CSV         write the CSV there atomically (default: stdout)\n"
            "  --top-k K            best classes listed per image (default min(5, classes))\n"
            "  --tta flip           average the softmax of each image and its horizontal flip\n"
            "  --threshold[=VALUE]  add the column <class>_positive = (probability of the\n"
            "                       model's calibrated class >= threshold) (info keys\n"
            "                       threshold.class, threshold.value; VALUE overrides it);\n"
            "                       multi-label models: the labels' threshold (default 0.5)\n"
            "  --no-temperature     plain softmax, ignoring the stored temperature\n"
            "  --img-size N         input side (default: the model's image_size; without one,\n"
            "                       the images' own size, which must then be the same for all)\n"
            "  --resize N           shorter side before the center crop (default: the model's\n"
            "                       resize, unless --img-size is given; else the input side)\n"
            "  --convert            adapt channel counts: drop an alpha channel, replicate\n"
            "                       gray to the model's channels, RGB to gray (0.299, 0.587,\n"
            "                       0.114); without it a mismatch is an error for that image\n"
            "  --recursive          search folders recursively\n"
            "  --image-columns A,B  manifest columns stacked as channels (default image)\n"
            "  --optional-column M  manifest column whose file may be missing: zero channels\n"
            "                       then, followed by a 0/1 present channel (as in training)\n"
            "  --batch-size N       images per forward pass (default 16)\n"
            "  --threads N          CPU threads (default: all cores)\n"
            "  --backend B          auto, ref, onednn or cuda (default auto)\n"
            "  --cam DIR            also write a Grad-CAM overlay PNG per image (and head) into\n"
            "                       DIR: NNNNN_<name>.png, the predicted class's map at the\n"
            "                       last convolutional stage over the image as classified\n"
            "  -h, --help           this text\n"
            "\n"
            "An input that cannot be read is reported on stderr as '" PROG ": PATH: reason';\n"
            "the other inputs are still classified and the exit status is 1. Exit status 2\n"
            "means bad usage. Ctrl-C stops after the batch in hand: the rows classified so\n"
            "far are written (to --output too) and the exit status is 130.\n");
}

static int parse_backend(const char *s, nc_backend_kind *out) {
    const nc_backend_kind kinds[] = {NC_BACKEND_AUTO, NC_BACKEND_REF, NC_BACKEND_ONEDNN, NC_BACKEND_CUDA};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(s, nc_backend_name(kinds[i])) == 0) {
            *out = kinds[i];
            return 0;
        }
    return -1;
}

/* Returns 0 to go on (PATHs from argv[*first]), 1 after --help, 2 on bad usage. */
static int parse_args(int argc, char **argv, options *o, int *first) {
    enum { O_CKPT = 256, O_OUTPUT, O_TOPK, O_TTA, O_THRESHOLD, O_NO_TEMP, O_IMG, O_RESIZE, O_CONVERT,
           O_RECURSIVE, O_COLUMNS, O_OPTIONAL, O_BATCH, O_THREADS, O_BACKEND, O_HELP, O_CAM };
    static const struct option longopts[] = {
        {"checkpoint", required_argument, NULL, O_CKPT},
        {"output", required_argument, NULL, O_OUTPUT},
        {"top-k", required_argument, NULL, O_TOPK},
        {"tta", required_argument, NULL, O_TTA},
        {"threshold", optional_argument, NULL, O_THRESHOLD},
        {"no-temperature", no_argument, NULL, O_NO_TEMP},
        {"img-size", required_argument, NULL, O_IMG},
        {"resize", required_argument, NULL, O_RESIZE},
        {"convert", no_argument, NULL, O_CONVERT},
        {"recursive", no_argument, NULL, O_RECURSIVE},
        {"image-columns", required_argument, NULL, O_COLUMNS},
        {"optional-column", required_argument, NULL, O_OPTIONAL},
        {"batch-size", required_argument, NULL, O_BATCH},
        {"threads", required_argument, NULL, O_THREADS},
        {"backend", required_argument, NULL, O_BACKEND},
        {"help", no_argument, NULL, O_HELP},
        {"cam", required_argument, NULL, O_CAM},
        {NULL, 0, NULL, 0},
    };
    *o = (options){.image_columns = "image", .batch_size = 16, .threads = -1, .backend = NC_BACKEND_AUTO};
    opterr = 0;
    int c;
    /* leading ':' = report a missing value as ':' rather than '?' */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_CKPT: o->checkpoint = optarg; bad = optarg[0] == '\0'; break;
        case O_OUTPUT: o->output = optarg; bad = optarg[0] == '\0'; break;
        case O_COLUMNS: o->image_columns = optarg; bad = optarg[0] == '\0'; break;
        case O_OPTIONAL: o->optional_column = optarg; bad = optarg[0] == '\0'; break;
        case O_TOPK: bad = arg_int(optarg, 1, 1000000, &o->top_k); break;
        case O_TTA: o->tta = 1; bad = strcmp(optarg, "flip") != 0; break;
        case O_THRESHOLD:
            o->threshold = 1;
            /* "--threshold 0.4" (a separate word) is accepted too, when that word is a
             * probability and not the name of an existing file */
            if (!optarg && optind < argc && arg_float(argv[optind], 0.0, 1.0, &o->threshold_value) == 0 &&
                access(argv[optind], F_OK) != 0)
                optarg = argv[optind++];
            if (optarg) {
                o->threshold_set = 1;
                bad = arg_float(optarg, 0.0, 1.0, &o->threshold_value);
            }
            break;
        case O_NO_TEMP: o->no_temperature = 1; break;
        case O_IMG: bad = arg_int(optarg, 1, 65536, &o->img_size); break;
        case O_RESIZE: bad = arg_int(optarg, 1, 65536, &o->resize); break;
        case O_CONVERT: o->convert = 1; break;
        case O_RECURSIVE: o->recursive = 1; break;
        case O_BATCH: bad = arg_int(optarg, 1, 4096, &o->batch_size); break;
        case O_THREADS: bad = arg_int(optarg, 0, 4096, &o->threads); break;
        case O_BACKEND: bad = parse_backend(optarg, &o->backend); break;
        case O_CAM: o->cam_dir = optarg; bad = optarg[0] == '\0'; break;
        case 'h':
        case O_HELP: usage(stdout); return 1;
        case ':':
            fprintf(stderr, PROG ": option '%s' needs a value (try --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, PROG ": unknown option '%s' (try --help)\n", argv[optind - 1]);
            return 2;
        }
        if (bad) {
            fprintf(stderr, PROG ": bad value '%s' for --%s (try --help)\n", optarg, longopts[c - O_CKPT].name);
            return 2;
        }
    }
    if (!o->checkpoint) {
        fprintf(stderr, PROG ": --checkpoint FILE is required (try --help)\n");
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, PROG ": no PATH to classify (try --help)\n");
        return 2;
    }
    if (o->optional_column && strcmp(o->optional_column, o->image_columns) == 0) {
        fprintf(stderr, PROG ": --optional-column may not also be an image column\n");
        return 2;
    }
    *first = optind;
    return 0;
}

/* ---------------------------------------------------------------- the model */

typedef struct app {
    options o;
    nc_context *ctx;
    nc_model *model;
    nc_transform *transform;
    int c, heads, classes, outputs;
    int size, resize;          /* 0 = the images' own size, no resize or crop */
    int h, w;                  /* model input size; 0 until known */
    double temperature;
    int sigmoid;               /* multi-label model: per-label sigmoid probabilities */
    float label_thr;           /* sigmoid: a label is listed when its probability >= this */
    int thr_class;             /* -1 = no threshold column */
    float thr_value;
    int top_k;
    char **names;              /* [classes] class names */
    float *mean, *std;         /* NULL = no normalisation stored */
    float *x, *xf;             /* (batch, c, h, w) input and its flip */
    float *logits, *logits_f;  /* (batch, outputs) */
    double *probs;             /* (outputs) */
    double *probs_f;           /* (classes): one head of the flipped image */
    int *order;                /* (classes) */
    size_t *batch_input;       /* input index of each batch row */
    int batch_n;
    FILE *out;
    int failures;
    cam_writer *cam;           /* --cam */
    int cam_failures;          /* overlays not written */
} app;

/* A positive integer from the model's info, or 0 when the key is absent; -1 if bad. */
static int info_int(app *a, const char *key) {
    const char *s = nc_model_info(a->model, key);
    int v = 0;
    if (!s) return 0;
    if (arg_int(s, 1, 65536, &v) != 0) {
        fprintf(stderr, PROG ": %s: model info %s = '%s' is not an integer in 1..65536\n", a->o.checkpoint, key, s);
        return -1;
    }
    return v;
}

static int fail_lib(app *a, const char *what, nc_status st) {
    const char *msg = nc_context_last_error(a->ctx);
    fprintf(stderr, PROG ": %s: %s\n", what, msg && msg[0] ? msg : nc_status_str(st));
    return 1;
}

/* The model's info "output": absent or "softmax" = softmax classes, "sigmoid" =
 * multi-label (a->sigmoid = 1, the label threshold 0.5 or --threshold=VALUE); 0, or
 * -1 after printing why (a->sigmoid = -1 for a bad value, else bad usage). */
static int output_kind(app *a) {
    const char *kind = nc_model_info(a->model, "output");
    a->sigmoid = kind && strcmp(kind, "sigmoid") == 0;
    a->label_thr = a->o.threshold_set ? a->o.threshold_value : 0.5f;
    if (kind && !a->sigmoid && strcmp(kind, "softmax") != 0) {
        fprintf(stderr, PROG ": %s: model info output = '%s' is neither softmax nor sigmoid\n", a->o.checkpoint, kind);
        a->sigmoid = -1;
        return -1;
    }
    if (a->sigmoid && a->o.top_k) {
        fprintf(stderr, PROG ": --top-k ranks softmax classes; %s is a multi-label (sigmoid) model: every label's "
                        "probability is written\n", a->o.checkpoint);
        return -1;
    }
    return 0;
}

/* Loads the model and derives everything from it; 0, 1 (error) or 2 (bad usage). */
static int setup(app *a) {
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = a->o.backend;
    if (a->o.threads >= 0) co.num_threads = a->o.threads;
    nc_status st = nc_context_create(&co, &a->ctx);
    if (st != NC_OK) {
        fprintf(stderr, PROG ": cannot create a context (backend %s): %s\n", nc_backend_name(a->o.backend),
                nc_status_str(st));
        return 1;
    }
    if ((st = nc_model_load(a->ctx, a->o.checkpoint, &a->model)) != NC_OK) {
        predict_report_lib(a->ctx, a->o.checkpoint, st);
        return 1;
    }
    a->c = nc_model_in_channels(a->model);
    a->heads = nc_model_num_heads(a->model);
    a->outputs = nc_model_num_outputs(a->model);
    a->classes = a->outputs / a->heads;
    if (output_kind(a) != 0) return a->sigmoid < 0 ? 1 : 2;
    a->top_k = a->o.top_k ? a->o.top_k : (a->classes < 5 ? a->classes : 5);
    if (a->top_k > a->classes) {
        fprintf(stderr, PROG ": --top-k %d is more than the model's %d classes\n", a->top_k, a->classes);
        return 2;
    }

    /* input size: --img-size, else image_size; resize: --resize, else resize, else size */
    int size = info_int(a, "image_size"), resize = info_int(a, "resize");
    if (size < 0 || resize < 0) return 1;
    if (a->o.img_size) size = a->o.img_size;
    if (a->o.resize) resize = a->o.resize;
    else if (a->o.img_size || !resize) resize = size;
    if (!size && a->o.resize) {
        fprintf(stderr, PROG ": --resize needs an input size: the model stores no image_size, give --img-size\n");
        return 2;
    }
    a->size = size;
    a->resize = resize;
    a->h = a->w = size;

    /* temperature */
    a->temperature = 1.0;
    const char *t = nc_model_info(a->model, "temperature");
    if (t && !a->o.no_temperature) {
        char *end = NULL;
        a->temperature = strtod(t, &end);
        if (end == t || *end != '\0' || !isfinite(a->temperature) || a->temperature <= 0.0) {
            fprintf(stderr, PROG ": %s: model info temperature = '%s' is not a positive number\n",
                    a->o.checkpoint, t);
            return 1;
        }
    }

    /* the calibrated threshold */
    a->thr_class = -1;
    if (a->o.threshold && !a->sigmoid) {
        const char *kc = nc_model_info(a->model, "threshold.class");
        const char *kv = nc_model_info(a->model, "threshold.value");
        if (!kc || arg_int(kc, 0, a->classes - 1, &a->thr_class) != 0) {
            fprintf(stderr, PROG ": %s: --threshold needs the model's calibrated class (info threshold.class%s%s%s)\n",
                    a->o.checkpoint, kc ? " = '" : " is not stored", kc ? kc : "", kc ? "' is out of range" : "");
            return 1;
        }
        if (a->o.threshold_set) {
            a->thr_value = a->o.threshold_value;
        } else if (!kv || arg_float(kv, 0.0, 1.0, &a->thr_value) != 0) {
            fprintf(stderr, PROG ": %s: the model stores no valid threshold.value%s%s%s; give --threshold=VALUE\n",
                    a->o.checkpoint, kv ? " ('" : "", kv ? kv : "", kv ? "')" : "");
            return 1;
        }
    }

    /* class names and normalisation */
    a->names = calloc((size_t)a->classes, sizeof *a->names);
    a->mean = malloc((size_t)a->c * sizeof *a->mean);
    a->std = malloc((size_t)a->c * sizeof *a->std);
    a->probs = malloc((size_t)a->outputs * sizeof *a->probs);
    a->probs_f = malloc((size_t)a->classes * sizeof *a->probs_f);
    a->order = malloc((size_t)a->classes * sizeof *a->order);
    a->batch_input = malloc((size_t)a->o.batch_size * sizeof *a->batch_input);
    if (!a->names || !a->mean || !a->std || !a->probs || !a->probs_f || !a->order || !a->batch_input) goto oom;
    for (int k = 0; k < a->classes; k++) {
        const char *n = nc_model_class_name(a->model, k);
        char idx[16];
        snprintf(idx, sizeof idx, "%d", k);
        if (!(a->names[k] = predict_strdup(n ? n : idx))) goto oom;
    }
    st = nc_model_get_normalization(a->model, a->mean, a->std);
    if (st == NC_ERR_NOT_FOUND) {
        free(a->mean);
        free(a->std);
        a->mean = a->std = NULL;
    } else if (st != NC_OK) {
        return fail_lib(a, "nc_model_get_normalization", st);
    }

    /* the eval transform: the preset when it applies, else the same steps without the
     * ones the model gives no value for */
    if (size && a->mean) {
        st = nc_transform_preset_eval(a->ctx, resize, size, a->c, a->mean, a->std, &a->transform);
    } else {
        st = nc_transform_create(a->ctx, &a->transform);
        if (st == NC_OK && size) st = nc_transform_add_resize(a->transform, resize, 0);
        if (st == NC_OK && size) st = nc_transform_add_center_crop(a->transform, size, size);
        if (st == NC_OK && a->mean) st = nc_transform_add_normalize(a->transform, a->mean, a->std, a->c);
    }
    if (st != NC_OK) return fail_lib(a, "building the eval transform", st);
    return 0;
oom:
    fprintf(stderr, PROG ": out of memory\n");
    return 1;
}

/* ------------------------------------------------------------ preprocessing */

/* Copies `planes` planes of src (from plane `from`) into dst at plane `at`. */
static void copy_planes(nc_image *dst, int at, const nc_image *src, int from, int planes) {
    size_t hw = (size_t)nc_image_height(src) * (size_t)nc_image_width(src);
    memcpy(nc_image_data(dst) + (size_t)at * hw, nc_image_const_data(src) + (size_t)from * hw,
           (size_t)planes * hw * sizeof(float));
}

/* Decodes input `in` (files stacked as channels, then the optional file's channels and
 * its present indicator); NULL after reporting. */
static nc_image *load_input(app *a, const input *in) {
    nc_image **parts = calloc((size_t)in->nfiles + 1, sizeof *parts);
    nc_image *img = NULL;
    const char *first = in->files[0];
    if (!parts) {
        predict_report(first, "out of memory");
        return NULL;
    }
    int channels = 0, ok = 1, h = 0, w = 0;
    for (int k = 0; ok && k < in->nfiles; k++) {
        nc_status st = nc_png_read(a->ctx, in->files[k], NULL, &parts[k]);
        if (st != NC_OK) {
            predict_report_lib(a->ctx, in->files[k], st);
            ok = 0;
        } else if (k == 0) {
            h = nc_image_height(parts[k]);
            w = nc_image_width(parts[k]);
        } else if (nc_image_height(parts[k]) != h || nc_image_width(parts[k]) != w) {
            predict_report(in->files[k], "is %dx%d (width x height) but %s is %dx%d", nc_image_width(parts[k]),
                   nc_image_height(parts[k]), first, w, h);
            ok = 0;
        }
        if (ok) channels += nc_image_channels(parts[k]);
    }
    int opt_channels = 0;
    nc_image *opt = NULL;
    if (ok && in->has_optional) {
        opt_channels = a->c - channels - 1; /* what the model leaves for it */
        if (opt_channels < 1) {
            predict_report(first, "the image columns have %d channels; with the optional column and its indicator the "
                          "model's %d channels are exceeded", channels, a->c);
            ok = 0;
        } else if (in->optional && access(in->optional, F_OK) == 0) {
            nc_status st = nc_png_read(a->ctx, in->optional, NULL, &opt);
            if (st != NC_OK) {
                predict_report_lib(a->ctx, in->optional, st);
                ok = 0;
            } else if (nc_image_height(opt) != h || nc_image_width(opt) != w) {
                predict_report(in->optional, "is %dx%d (width x height) but %s is %dx%d", nc_image_width(opt),
                       nc_image_height(opt), first, w, h);
                ok = 0;
            } else if (nc_image_channels(opt) != opt_channels) {
                predict_report(in->optional, "%d channels, but the model leaves %d for the optional column",
                       nc_image_channels(opt), opt_channels);
                ok = 0;
            }
        }
        channels += opt_channels + 1;
    }
    if (ok && in->nfiles == 1 && !in->has_optional) {
        img = parts[0]; /* the common case: no copy */
        parts[0] = NULL;
    } else if (ok) {
        nc_status st = nc_image_create(a->ctx, channels, h, w, &img);
        if (st != NC_OK) {
            predict_report_lib(a->ctx, first, st);
        } else {
            int at = 0;
            for (int k = 0; k < in->nfiles; k++) {
                copy_planes(img, at, parts[k], 0, nc_image_channels(parts[k]));
                at += nc_image_channels(parts[k]);
            }
            if (opt) copy_planes(img, at, opt, 0, opt_channels); /* else: zeros */
            if (in->has_optional && opt) {
                float *ind = nc_image_data(img) + (size_t)(at + opt_channels) * (size_t)h * (size_t)w;
                for (size_t i = 0; i < (size_t)h * (size_t)w; i++) ind[i] = 1.0f;
            }
        }
    }
    for (int k = 0; k < in->nfiles; k++) nc_image_destroy(parts[k]);
    nc_image_destroy(opt);
    free(parts);
    return img;
}

/* --convert: drop alpha, gray -> replicate, RGB -> gray; the new image or NULL. */
static nc_image *convert_channels(app *a, const char *path, nc_image *img) {
    int from = nc_image_channels(img), to = a->c, h = nc_image_height(img), w = nc_image_width(img);
    int base = from == 2 || from == 4 ? from - 1 : from; /* without alpha */
    if (!((base == to) || (base == 1) || (base == 3 && to == 1))) {
        predict_report(path, "%d channels, and the model expects %d: --convert does not know how to map them", from, to);
        return NULL;
    }
    nc_image *out = NULL;
    nc_status st = nc_image_create(a->ctx, to, h, w, &out);
    if (st != NC_OK) {
        predict_report_lib(a->ctx, path, st);
        return NULL;
    }
    size_t hw = (size_t)h * (size_t)w;
    const float *s = nc_image_const_data(img);
    float *d = nc_image_data(out);
    if (base == to) {
        copy_planes(out, 0, img, 0, to);
    } else if (base == 1) {
        for (int k = 0; k < to; k++) copy_planes(out, k, img, 0, 1);
    } else { /* RGB -> gray, ITU-R 601-2 luma as torchvision's rgb_to_grayscale */
        for (size_t i = 0; i < hw; i++) d[i] = 0.299f * s[i] + 0.587f * s[hw + i] + 0.114f * s[2 * hw + i];
    }
    return out;
}

/* Decodes, converts and transforms input i into batch row a->batch_n; 0 or -1. */
static int prepare(app *a, const input_list *l, size_t i) {
    const char *path = l->v[i].files[0];
    nc_image *img = load_input(a, &l->v[i]), *t = NULL;
    if (!img) return -1;
    if (nc_image_channels(img) != a->c) {
        if (!a->o.convert) {
            predict_report(path, "%d channel%s, but the model expects %d (--convert replicates gray and drops alpha)",
                   nc_image_channels(img), nc_image_channels(img) == 1 ? "" : "s", a->c);
            nc_image_destroy(img);
            return -1;
        }
        nc_image *c = convert_channels(a, path, img);
        nc_image_destroy(img);
        if (!(img = c)) return -1;
    }
    nc_status st = nc_transform_apply(a->transform, a->ctx, img, 0, 0, i, &t);
    nc_image_destroy(img);
    if (st != NC_OK) {
        predict_report_lib(a->ctx, path, st);
        return -1;
    }
    int h = nc_image_height(t), w = nc_image_width(t);
    if (!a->h) { /* no input size given: the first image's size is the size */
        size_t n = (size_t)a->o.batch_size * (size_t)a->c * (size_t)h * (size_t)w;
        a->x = malloc(n * sizeof *a->x);
        a->xf = a->o.tta ? malloc(n * sizeof *a->xf) : NULL;
        a->logits = malloc((size_t)a->o.batch_size * (size_t)a->outputs * sizeof *a->logits);
        a->logits_f = malloc((size_t)a->o.batch_size * (size_t)a->outputs * sizeof *a->logits_f);
        if (!a->x || (a->o.tta && !a->xf) || !a->logits || !a->logits_f) {
            predict_report(path, "out of memory for a batch of %d images of %dx%d", a->o.batch_size, w, h);
            nc_image_destroy(t);
            return -1;
        }
        a->h = h;
        a->w = w;
    } else if (h != a->h || w != a->w) {
        predict_report(path, "is %dx%d (width x height), but the model input is %dx%d, taken from the first image since the "
                     "model stores no image_size; give --img-size", w, h, a->w, a->h);
        nc_image_destroy(t);
        return -1;
    }
    size_t n = (size_t)a->c * (size_t)h * (size_t)w;
    memcpy(a->x + (size_t)a->batch_n * n, nc_image_const_data(t), n * sizeof(float));
    nc_image_destroy(t);
    a->batch_input[a->batch_n++] = i;
    return 0;
}

/* ------------------------------------------------------------------- output */

/* A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break. */
static void put_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* A header field: prefix + name + suffix, quoted as a whole. */
static void put_header(FILE *f, const char *prefix, const char *name, const char *suffix) {
    size_t n = strlen(prefix) + strlen(name) + strlen(suffix) + 1;
    char *s = malloc(n);
    fputc(',', f);
    if (!s) { /* cannot happen in practice; still writes a usable header */
        fputs(prefix, f);
        put_field(f, name);
        fputs(suffix, f);
        return;
    }
    snprintf(s, n, "%s%s%s", prefix, name, suffix);
    put_field(f, s);
    free(s);
}

static void write_header(app *a) {
    FILE *f = a->out;
    fputs("path", f);
    for (int hd = 0; hd < a->heads; hd++) {
        char p[32] = "";
        if (a->heads > 1) snprintf(p, sizeof p, "head%d_", hd);
        if (a->sigmoid) {
            char pp[40];
            snprintf(pp, sizeof pp, "%sp_", p);
            fprintf(f, ",%slabels", p);
            for (int k = 0; k < a->classes; k++) put_header(f, pp, a->names[k], "");
            continue;
        }
        fprintf(f, ",%sclass,%sprobability", p, p);
        for (int k = 2; k <= a->top_k; k++) fprintf(f, ",%stop%d_class,%stop%d_prob", p, k, p, k);
        char pp[40];
        snprintf(pp, sizeof pp, "%sp_", p);
        for (int k = 0; k < a->classes; k++) put_header(f, pp, a->names[k], "");
    }
    if (a->thr_class >= 0) put_header(f, a->heads > 1 ? "head0_" : "", a->names[a->thr_class], "_positive");
    fputc('\n', f);
}

/* softmax(z / T) in double into p[n]. */
static void softmax(const float *z, int n, double t, double *p) {
    double mx = z[0], sum = 0.0;
    for (int i = 1; i < n; i++)
        if (z[i] > mx) mx = z[i];
    for (int i = 0; i < n; i++) sum += (p[i] = exp(((double)z[i] - mx) / t));
    for (int i = 0; i < n; i++) p[i] /= sum;
}

/* 1 / (1 + exp(-z)) without overflow (the Python bindings' formula, for equal output). */
static double sigmoid(double z) {
    if (z >= 0.0) return 1.0 / (1.0 + exp(-z));
    const double e = exp(z);
    return e / (1.0 + e);
}

/* The labels of one head whose probability is >= the threshold, joined by '|', as one
 * CSV field (quoted as put_field would quote the joined text), without a buffer. */
static void put_label_list(app *a, const double *p) {
    FILE *f = a->out;
    int quote = 0, first = 1;
    for (int k = 0; k < a->classes; k++)
        if ((float)p[k] >= a->label_thr && strpbrk(a->names[k], ",\"\r\n")) quote = 1;
    if (quote) fputc('"', f);
    for (int k = 0; k < a->classes; k++) {
        if (!((float)p[k] >= a->label_thr)) continue;
        if (!first) fputc('|', f);
        first = 0;
        for (const char *c = a->names[k]; *c; c++) {
            if (quote && *c == '"') fputc('"', f);
            fputc(*c, f);
        }
    }
    if (quote) fputc('"', f);
}

/* Multi-label: per head the labels whose sigmoid probability (flip TTA: the mean of
 * both) is >= the threshold, then every label's probability. */
static void write_sigmoid_row(app *a, const char *path, const float *z, const float *zf) {
    FILE *f = a->out;
    for (int o = 0; o < a->outputs; o++) {
        a->probs[o] = sigmoid(z[o]);
        if (zf) a->probs[o] = 0.5 * (a->probs[o] + sigmoid(zf[o]));
    }
    put_field(f, path);
    for (int hd = 0; hd < a->heads; hd++) {
        const double *p = a->probs + (size_t)hd * (size_t)a->classes;
        fputc(',', f);
        put_label_list(a, p);
        for (int k = 0; k < a->classes; k++) fprintf(f, ",%.6g", p[k]);
    }
    fputc('\n', f);
}

static void write_row(app *a, const char *path, const float *z, const float *zf) {
    FILE *f = a->out;
    if (a->sigmoid) {
        write_sigmoid_row(a, path, z, zf);
        return;
    }
    for (int hd = 0; hd < a->heads; hd++) {
        double *p = a->probs + (size_t)hd * (size_t)a->classes;
        softmax(z + (size_t)hd * (size_t)a->classes, a->classes, a->temperature, p);
        if (zf) { /* flip TTA: the mean of the two softmax outputs */
            softmax(zf + (size_t)hd * (size_t)a->classes, a->classes, a->temperature, a->probs_f);
            for (int k = 0; k < a->classes; k++) p[k] = 0.5 * (p[k] + a->probs_f[k]);
        }
    }
    put_field(f, path);
    for (int hd = 0; hd < a->heads; hd++) {
        const double *p = a->probs + (size_t)hd * (size_t)a->classes;
        /* the top k by probability, ties to the lower class index (selection sort) */
        for (int k = 0; k < a->classes; k++) a->order[k] = k;
        for (int r = 0; r < a->top_k; r++) {
            int best = r;
            for (int k = r + 1; k < a->classes; k++)
                if (p[a->order[k]] > p[a->order[best]] ||
                    (p[a->order[k]] == p[a->order[best]] && a->order[k] < a->order[best]))
                    best = k;
            int tmp = a->order[r];
            a->order[r] = a->order[best];
            a->order[best] = tmp;
        }
        for (int r = 0; r < a->top_k; r++) {
            fputc(',', f);
            put_field(f, a->names[a->order[r]]);
            fprintf(f, ",%.6g", p[a->order[r]]);
        }
        for (int k = 0; k < a->classes; k++) fprintf(f, ",%.6g", p[k]);
    }
    /* compared in float, as nc-train scored the validation images when it chose it */
    if (a->thr_class >= 0) fprintf(f, ",%d", (float)a->probs[a->thr_class] >= a->thr_value ? 1 : 0);
    fputc('\n', f);
}

/* Runs the batch and writes its rows; a failed forward reports every image of it. */
static void flush_batch(app *a, const input_list *l) {
    int n = a->batch_n;
    if (!n) return;
    a->batch_n = 0;
    nc_status st = nc_model_forward(a->model, a->x, n, a->c, a->h, a->w, a->logits);
    if (st == NC_OK && a->o.tta) {
        size_t rows = (size_t)n * (size_t)a->c * (size_t)a->h, w = (size_t)a->w;
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < w; j++) a->xf[r * w + j] = a->x[r * w + (w - 1 - j)];
        st = nc_model_forward(a->model, a->xf, n, a->c, a->h, a->w, a->logits_f);
    }
    if (st != NC_OK) {
        const char *msg = nc_context_last_error(a->ctx);
        for (int i = 0; i < n; i++) predict_report(l->v[a->batch_input[i]].files[0], "%s", msg && msg[0] ? msg : nc_status_str(st));
        a->failures += n;
        return;
    }
    for (int i = 0; i < n; i++)
        write_row(a, l->v[a->batch_input[i]].files[0], a->logits + (size_t)i * (size_t)a->outputs,
                  a->o.tta ? a->logits_f + (size_t)i * (size_t)a->outputs : NULL);
    if (a->cam) {
        const char *paths[4096];
        for (int i = 0; i < n; i++) paths[i] = l->v[a->batch_input[i]].files[0];
        a->cam_failures += cam_write_batch(a->cam, a->x, n, a->c, a->h, a->w, paths, a->batch_input);
    }
}

/* ------------------------------------------------------------------- main */

/* Opens the output: stdout, or a temporary file beside --output (renamed at the end). */
static int open_output(app *a, char **tmp) {
    if (!a->o.output) {
        a->out = stdout;
        return 0;
    }
    size_t n = strlen(a->o.output) + 16;
    if (!(*tmp = malloc(n))) return -1;
    snprintf(*tmp, n, "%s.tmp.XXXXXX", a->o.output);
    int fd = mkstemp(*tmp);
    if (fd < 0 || !(a->out = fdopen(fd, "w"))) {
        predict_report(a->o.output, "cannot create a temporary file beside it: %s", strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(*tmp);
        }
        free(*tmp);
        *tmp = NULL;
        return -1;
    }
    return 0;
}

/* Flushes and closes the output; with --output, renames the temporary file over it. */
static int close_output(app *a, char *tmp) {
    if (!a->out) return 0;
    int bad = fflush(a->out) != 0 || ferror(a->out);
    if (tmp) {
        bad = bad || fsync(fileno(a->out)) != 0;
        bad = fclose(a->out) != 0 || bad;
        if (!bad && rename(tmp, a->o.output) != 0) bad = 1;
        if (bad) {
            predict_report(a->o.output, "cannot write: %s", strerror(errno));
            unlink(tmp);
        }
    } else if (bad) {
        fprintf(stderr, PROG ": cannot write the output: %s\n", strerror(errno));
    }
    a->out = NULL;
    return bad ? -1 : 0;
}

/* No image was classified: the temporary file goes and an existing --output stays. */
static void discard_output(app *a, char *tmp) {
    fclose(a->out);
    a->out = NULL;
    unlink(tmp);
    fprintf(stderr, PROG ": no image classified; %s not written%s\n", a->o.output,
            access(a->o.output, F_OK) == 0 ? " (the existing file is unchanged)" : "");
}

/* Ctrl-C: the first one ends the run after the batch in hand (the rows classified so
 * far are written, exit 130); a second one stops at once. Only this flag is set here. */
static volatile sig_atomic_t g_interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
    signal(SIGINT, SIG_DFL);
}

static void catch_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
}

int main(int argc, char **argv) {
    app a = {0};
    input_list l = {0};
    char *tmp = NULL;
    int first = 0, rc = parse_args(argc, argv, &a.o, &first);
    if (rc) return rc == 1 ? 0 : 2;

    rc = setup(&a);
    if (rc == 0) {
        for (int i = first; i < argc && !l.oom; i++) predict_add_path(&l, argv[i], &a.o);
        if (l.oom) {
            fprintf(stderr, PROG ": out of memory while listing the inputs\n");
            rc = 1;
        }
    }
    if (rc == 0 && a.size) { /* the batch size is known up front */
        size_t n = (size_t)a.o.batch_size * (size_t)a.c * (size_t)a.h * (size_t)a.w;
        a.x = malloc(n * sizeof *a.x);
        a.xf = a.o.tta ? malloc(n * sizeof *a.xf) : NULL;
        a.logits = malloc((size_t)a.o.batch_size * (size_t)a.outputs * sizeof *a.logits);
        a.logits_f = malloc((size_t)a.o.batch_size * (size_t)a.outputs * sizeof *a.logits_f);
        if (!a.x || (a.o.tta && !a.xf) || !a.logits || !a.logits_f) {
            fprintf(stderr, PROG ": out of memory for a batch of %d images of %dx%d\n", a.o.batch_size, a.w, a.h);
            rc = 1;
        }
    }
    if (rc == 0 && a.o.cam_dir && cam_open(&a.cam, a.model, a.o.cam_dir, a.mean, a.std) != 0) rc = 1;
    if (rc == 0 && open_output(&a, &tmp) != 0) rc = 1;
    if (rc == 0) {
        write_header(&a);
        catch_sigint();
        size_t seen = 0;
        for (; seen < l.n && !g_interrupted; seen++) {
            if (prepare(&a, &l, seen) != 0) a.failures++;
            if (a.batch_n == a.o.batch_size) flush_batch(&a, &l);
        }
        flush_batch(&a, &l);
        if (seen == (size_t)a.failures && tmp) discard_output(&a, tmp);
        else if (close_output(&a, tmp) != 0) rc = 1;
        if (g_interrupted) {
            fprintf(stderr, PROG ": interrupted after %zu of %zu images; %s holds the rows of those classified\n",
                    seen, l.n, a.o.output ? a.o.output : "the output");
            rc = 130;
        }
        if (a.cam_failures) {
            fprintf(stderr, PROG ": %d Grad-CAM overlay%s not written (see above)\n", a.cam_failures,
                    a.cam_failures == 1 ? "" : "s");
            if (rc == 0) rc = 1;
        }
        int failed = a.failures + l.failures;
        if (failed) {
            fprintf(stderr, PROG ": %d input%s failed (see above); %zu image%s classified\n", failed,
                    failed == 1 ? "" : "s", seen - (size_t)a.failures, seen - (size_t)a.failures == 1 ? "" : "s");
            if (rc == 0) rc = 1;
        }
    }

    predict_inputs_free(&l);
    free(tmp);
    if (a.names)
        for (int k = 0; k < a.classes; k++) free(a.names[k]);
    free(a.names);
    free(a.mean);
    free(a.std);
    free(a.x);
    free(a.xf);
    free(a.logits);
    free(a.logits_f);
    free(a.probs);
    free(a.probs_f);
    free(a.order);
    free(a.batch_input);
    nc_transform_destroy(a.transform);
    cam_close(a.cam);
    nc_model_destroy(a.model);
    nc_context_destroy(a.ctx);
    return rc;
}
