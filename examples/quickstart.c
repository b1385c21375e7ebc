/* quickstart.c — trains a classifier on the real Fashion-MNIST data with nothing but
 * the public API (include/neurc.h): read the IDX files, train with nc_trainer_step,
 * evaluate with nc_model_forward, save, reload and check the reload is exact.
 * The defaults (simple_cnn, two epochs over all 60,000 training images, all 10,000
 * test images) take about two minutes on 2 cores with the reference backend.
 * Run `nc-quickstart --help` for the options. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include "neurc.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define NUM_CLASSES 10
#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

/* Fashion-MNIST's label order, and the mean/std of its training pixels in [0, 1]. */
static const char *const class_names[NUM_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};
static const float pixel_mean = 0.2860f;
static const float pixel_std = 0.3530f;

/* ------------------------------------------------------------------ options */

typedef struct options {
    const char *arch;
    const char *data;
    const char *output;
    int epochs;
    long train_limit;   /* first N training images; 0 = all 60,000 */
    long test_limit;    /* first N test images; 0 = all 10,000 */
    int batch_size;
    float lr, momentum, weight_decay;
    int threads;        /* -1 = library default (NULL context options) */
    uint64_t seed;
    int log_every;      /* batches between progress lines */
} options;

static void usage(FILE *f, const char *prog) {
    fprintf(f,
            "usage: %s [options]\n"
            "Trains a CNN on Fashion-MNIST with neurc, evaluates it on the test set,\n"
            "saves it and checks that the saved file reloads exactly.\n"
            "\n"
            "  --arch NAME          architecture (default simple_cnn; e.g. resnet18, resnext,\n"
            "                       resnet34; VGG needs images of at least 32x32), built\n"
            "                       with small_input=1, 1 input channel, 10 classes\n"
            "  --data DIR           directory of the four *-idx?-ubyte.gz files\n"
            "                       (default " DEFAULT_DATA ")\n"
            "  --epochs N           passes over the training images (default 2)\n"
            "  --train-limit N      train on the first N of the 60,000 images (default 0 =\n"
            "                       all)\n"
            "  --test-limit N       evaluate on the first N of the 10,000 test images\n"
            "                       (default 0 = all)\n"
            "  --batch-size N       images per step (default 64)\n"
            "  --lr X               SGD learning rate (default 0.05)\n"
            "  --momentum X         SGD momentum (default 0.9)\n"
            "  --weight-decay X     L2 weight decay (default 5e-4)\n"
            "  --threads N          CPU threads (default: all cores)\n"
            "  --seed N             seed of initialisation, dropout and shuffling (default 1)\n"
            "  --log-every N        print progress every N batches (default 100)\n"
            "  --output FILE        where to save the model (default quickstart.safetensors)\n"
            "  -h, --help           this text\n",
            prog);
}

/* Strict number parsing: the whole string must be a number in [lo, hi]. */
static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) return -1;
    *out = (float)v;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    if (s[0] == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0') return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Returns 0 to go on, 1 after --help, 2 on bad usage (message printed). */
static int parse_args(int argc, char **argv, options *o) {
    enum { O_ARCH = 256, O_DATA, O_EPOCHS, O_TRAIN_LIMIT, O_TEST_LIMIT, O_BATCH, O_LR,
           O_MOMENTUM, O_WD, O_THREADS, O_SEED, O_LOG, O_OUTPUT, O_HELP };
    static const struct option longopts[] = {
        {"arch", required_argument, NULL, O_ARCH},
        {"data", required_argument, NULL, O_DATA},
        {"epochs", required_argument, NULL, O_EPOCHS},
        {"train-limit", required_argument, NULL, O_TRAIN_LIMIT},
        {"test-limit", required_argument, NULL, O_TEST_LIMIT},
        {"batch-size", required_argument, NULL, O_BATCH},
        {"lr", required_argument, NULL, O_LR},
        {"momentum", required_argument, NULL, O_MOMENTUM},
        {"weight-decay", required_argument, NULL, O_WD},
        {"threads", required_argument, NULL, O_THREADS},
        {"seed", required_argument, NULL, O_SEED},
        {"log-every", required_argument, NULL, O_LOG},
        {"output", required_argument, NULL, O_OUTPUT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *prog = argv[0] ? argv[0] : "nc-quickstart";
    *o = (options){
        .arch = "simple_cnn",
        .data = DEFAULT_DATA,
        .output = "quickstart.safetensors",
        .epochs = 2,
        .train_limit = 0,
        .test_limit = 0,
        .batch_size = 64,
        .lr = 0.05f,
        .momentum = 0.9f,
        .weight_decay = 5e-4f,
        .threads = -1,
        .seed = 1,
        .log_every = 100,
    };
    opterr = 0;
    int c;
    /* leading ':' = report a missing value as ':' rather than '?' */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        long v = 0;
        int bad = 0;
        switch (c) {
        case O_ARCH: o->arch = optarg; bad = optarg[0] == '\0'; break;
        case O_DATA: o->data = optarg; bad = optarg[0] == '\0'; break;
        case O_OUTPUT: o->output = optarg; bad = optarg[0] == '\0'; break;
        case O_EPOCHS: bad = parse_long(optarg, 1, 1000, &v); o->epochs = (int)v; break;
        case O_TRAIN_LIMIT: bad = parse_long(optarg, 0, 60000, &o->train_limit); break;
        case O_TEST_LIMIT: bad = parse_long(optarg, 0, 10000, &o->test_limit); break;
        case O_BATCH: bad = parse_long(optarg, 2, 4096, &v); o->batch_size = (int)v; break;
        case O_LR: bad = parse_float(optarg, 0.0f, 10.0f, &o->lr); break;
        case O_MOMENTUM: bad = parse_float(optarg, 0.0f, 0.999f, &o->momentum); break;
        case O_WD: bad = parse_float(optarg, 0.0f, 1.0f, &o->weight_decay); break;
        case O_THREADS: bad = parse_long(optarg, 0, 4096, &v); o->threads = (int)v; break;
        case O_SEED: bad = parse_seed(optarg, &o->seed); break;
        case O_LOG: bad = parse_long(optarg, 1, 1000000, &v); o->log_every = (int)v; break;
        case 'h':
        case O_HELP: usage(stdout, prog); return 1;
        case ':':
            fprintf(stderr, "%s: option '%s' needs a value\n", prog, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, argv[optind - 1]);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "%s: bad value '%s' for --%s (try --help)\n", prog, optarg,
                    longopts[c - O_ARCH].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", prog, argv[optind]);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------ IDX reading */

/* One IDX file of unsigned bytes: magic 0x00000800 | ndim, then ndim big-endian
 * uint32 sizes, then the data. */
typedef struct idx_data {
    char path[4096];    /* the file actually read */
    uint8_t *bytes;
    uint32_t dims[3];
    int ndim;
    size_t count;       /* product of dims */
} idx_data;

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads exactly n bytes; 0 on success. */
static int gz_read_all(gzFile f, void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

static const char *gz_error_text(gzFile f) {
    int zerr = 0;
    const char *msg = gzerror(f, &zerr);
    if (zerr == Z_ERRNO) return strerror(errno);
    if (zerr == Z_OK || !msg || !msg[0]) return "file ends early";
    return msg;
}

/* Reads DIR/NAME.gz (or DIR/NAME uncompressed) expecting `ndim` dimensions.
 * Prints a precise message and returns -1 on any problem. */
static int idx_read(const char *dir, const char *name, int ndim, idx_data *out) {
    memset(out, 0, sizeof *out);
    char *path = out->path;
    const size_t path_size = sizeof out->path;
    snprintf(path, path_size, "%s/%s.gz", dir, name);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        int gz_errno = errno;
        snprintf(path, path_size, "%s/%s", dir, name); /* gzread reads plain files too */
        f = gzopen(path, "rb");
        if (!f) {
            fprintf(stderr,
                    "error: cannot open %s/%s.gz: %s\n"
                    "  (install the data with `apt-get install dataset-fashion-mnist`,\n"
                    "   or point --data at a directory holding the IDX files)\n",
                    dir, name, gz_errno ? strerror(gz_errno) : "cannot open");
            return -1;
        }
    }
    unsigned char head[4 + 4 * 3];
    uint32_t magic;
    const uint32_t want_magic = 0x00000800u | (uint32_t)ndim;
    if (gz_read_all(f, head, 4 + 4 * (size_t)ndim) != 0) {
        fprintf(stderr, "error: %s: cannot read the IDX header: %s\n", path, gz_error_text(f));
        goto fail;
    }
    magic = be32(head);
    if (magic != want_magic) {
        fprintf(stderr,
                "error: %s: bad IDX magic 0x%08x (expected 0x%08x: unsigned bytes, %d "
                "dimension%s)\n",
                path, (unsigned)magic, (unsigned)want_magic, ndim, ndim > 1 ? "s" : "");
        goto fail;
    }
    out->ndim = ndim;
    out->count = 1;
    for (int i = 0; i < ndim; i++) {
        out->dims[i] = be32(head + 4 + 4 * i);
        /* Sanity bounds: a count up to 10^7 samples, images up to 4096 x 4096. */
        uint32_t limit = i == 0 ? 10000000u : 4096u;
        if (out->dims[i] == 0 || out->dims[i] > limit) {
            fprintf(stderr, "error: %s: IDX dimension %d is %u (expected 1..%u)\n", path, i,
                    (unsigned)out->dims[i], (unsigned)limit);
            goto fail;
        }
        out->count *= out->dims[i];
    }
    out->bytes = malloc(out->count);
    if (!out->bytes) {
        fprintf(stderr, "error: %s: out of memory for %zu bytes\n", path, out->count);
        goto fail;
    }
    if (gz_read_all(f, out->bytes, out->count) != 0) {
        fprintf(stderr, "error: %s: truncated: the header promises %zu data bytes (%s)\n", path,
                out->count, gz_error_text(f));
        goto fail;
    }
    unsigned char extra;
    if (gzread(f, &extra, 1) != 0) {
        fprintf(stderr, "error: %s: unexpected bytes after the %zu data bytes\n", path,
                out->count);
        goto fail;
    }
    gzclose(f);
    return 0;
fail:
    gzclose(f);
    free(out->bytes);
    out->bytes = NULL;
    return -1;
}

typedef struct split {
    uint8_t *pixels;    /* (n, rows, cols) */
    uint8_t *labels;    /* (n) */
    int n, rows, cols;
} split;

/* Loads "<prefix>-images-idx3-ubyte" and "<prefix>-labels-idx1-ubyte", keeps the first
 * `limit` samples (0 = all) and checks that they agree. */
static int load_split(const char *dir, const char *prefix, long limit, split *s) {
    char iname[128], lname[128];
    idx_data img, lab;
    memset(s, 0, sizeof *s);
    snprintf(iname, sizeof iname, "%s-images-idx3-ubyte", prefix);
    snprintf(lname, sizeof lname, "%s-labels-idx1-ubyte", prefix);
    if (idx_read(dir, iname, 3, &img) != 0) return -1;
    if (idx_read(dir, lname, 1, &lab) != 0) {
        free(img.bytes);
        return -1;
    }
    if (img.dims[0] != lab.dims[0]) {
        fprintf(stderr, "error: %s has %u images but %s has %u labels\n", img.path,
                (unsigned)img.dims[0], lab.path, (unsigned)lab.dims[0]);
        goto fail;
    }
    for (size_t i = 0; i < lab.count; i++) {
        if (lab.bytes[i] >= NUM_CLASSES) {
            fprintf(stderr, "error: %s: label %u at index %zu is not in 0..%d\n", lab.path,
                    (unsigned)lab.bytes[i], i, NUM_CLASSES - 1);
            goto fail;
        }
    }
    s->pixels = img.bytes;
    s->labels = lab.bytes;
    s->n = (int)img.dims[0];
    s->rows = (int)img.dims[1];
    s->cols = (int)img.dims[2];
    if (limit > 0 && limit < s->n) s->n = (int)limit;
    return 0;
fail:
    free(img.bytes);
    free(lab.bytes);
    return -1;
}

/* ----------------------------------------------------------------- helpers */

/* splitmix64: a small seeded generator for the shuffles. */
static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static uint64_t rng_below(uint64_t *state, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = rng_next(state);
    while (r >= limit);
    return r % n;
}

static void shuffle(int *idx, int n, uint64_t *state) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(state, (uint64_t)i + 1);
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes samples idx[0..n) of s into x (n, 1, rows, cols), normalised, and labels. */
static void make_batch(const split *s, const int *idx, int n, float *x, int32_t *labels) {
    const size_t hw = (size_t)s->rows * (size_t)s->cols;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = s->pixels + (size_t)idx[i] * hw;
        float *dst = x + (size_t)i * hw;
        for (size_t p = 0; p < hw; p++)
            dst[p] = ((float)src[p] / 255.0f - pixel_mean) / pixel_std;
        if (labels) labels[i] = s->labels[idx[i]];
    }
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Softmax cross-entropy of one row of logits against `label` (stable log-sum-exp). */
static double cross_entropy(const float *v, int n, int label) {
    double mx = v[0], sum = 0.0;
    for (int i = 1; i < n; i++)
        if (v[i] > mx) mx = v[i];
    for (int i = 0; i < n; i++) sum += exp((double)v[i] - mx);
    return log(sum) + mx - (double)v[label];
}

/* Prints the library's message for a failed call; returns 1 (the exit code). */
static int fail_with(nc_context *ctx, const char *what, nc_status st) {
    const char *msg = nc_context_last_error(ctx);
    fprintf(stderr, "error: %s: %s%s%s\n", what, nc_status_str(st), msg && msg[0] ? ": " : "",
            msg ? msg : "");
    return 1;
}

/* Everything the phases below share; main() owns and frees it. */
typedef struct app {
    options o;
    split train, test;
    int h, w;
    nc_context *ctx;
    nc_model *model;
    nc_trainer *trainer;
    int outputs;        /* logits per image (num_heads * num_classes = 10) */
    int *order;         /* sample order, max(train.n, test.n) */
    float *x;           /* (batch, 1, h, w) */
    int32_t *labels;    /* (batch) */
    float *logits;      /* (batch, outputs) */
    float *logits2;     /* (batch, outputs), for the reload check */
} app;

/* Context, model (with class names and normalisation), trainer, batch buffers. */
static int setup(app *a) {
    nc_status st;
    /* NULL options = defaults: the fastest backend built in, all cores. */
    if (a->o.threads < 0) {
        st = nc_context_create(NULL, &a->ctx);
    } else {
        nc_context_options co;
        nc_context_options_init(&co);
        co.num_threads = a->o.threads;
        st = nc_context_create(&co, &a->ctx);
    }
    if (st != NC_OK) { /* no context, so no message beyond the status */
        fprintf(stderr, "error: nc_context_create: %s\n", nc_status_str(st));
        return 1;
    }

    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = a->o.arch;
    mo.num_classes = NUM_CLASSES;
    mo.in_channels = 1;
    mo.small_input = 1;
    mo.seed = a->o.seed;
    if ((st = nc_model_create(a->ctx, &mo, &a->model)) != NC_OK)
        return fail_with(a->ctx, "nc_model_create", st);
    if ((st = nc_model_set_class_names(a->model, class_names, NUM_CLASSES)) != NC_OK ||
        (st = nc_model_set_normalization(a->model, &pixel_mean, &pixel_std)) != NC_OK)
        return fail_with(a->ctx, "storing class names and normalisation", st);
    a->outputs = nc_model_num_outputs(a->model);
    printf("model: %s (small_input), %lld parameters, backend %s, neurc %s\n", a->o.arch,
           (long long)nc_model_num_params(a->model), nc_backend_name(nc_context_backend(a->ctx)),
           nc_version_string());

    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.lr = a->o.lr;
    to.momentum = a->o.momentum;
    to.weight_decay = a->o.weight_decay;
    to.seed = a->o.seed + 1; /* dropout stream, distinct from the initialisation's */
    if ((st = nc_trainer_create(a->model, &to, &a->trainer)) != NC_OK)
        return fail_with(a->ctx, "nc_trainer_create", st);

    const size_t img = (size_t)a->h * (size_t)a->w, batch = (size_t)a->o.batch_size;
    const size_t most = (size_t)(a->train.n > a->test.n ? a->train.n : a->test.n);
    a->order = malloc(most * sizeof *a->order);
    a->x = malloc(batch * img * sizeof *a->x);
    a->labels = malloc(batch * sizeof *a->labels);
    a->logits = malloc(batch * (size_t)a->outputs * sizeof *a->logits);
    a->logits2 = malloc(batch * (size_t)a->outputs * sizeof *a->logits2);
    if (!a->order || !a->x || !a->labels || !a->logits || !a->logits2) {
        fprintf(stderr, "error: out of memory for the batch buffers\n");
        return 1;
    }
    return 0;
}

/* Epochs of SGD over the shuffled training images; the last partial batch of an
 * epoch is dropped so every step has the same shape. */
static int train(app *a) {
    const options *o = &a->o;
    const int batches = a->train.n / o->batch_size;
    uint64_t rng = o->seed;
    printf("training: %d epoch%s of %d batches of %d, lr %g, momentum %g, weight decay %g, "
           "seed %llu\n",
           o->epochs, o->epochs > 1 ? "s" : "", batches, o->batch_size, (double)o->lr,
           (double)o->momentum, (double)o->weight_decay, (unsigned long long)o->seed);
    const double t_train = now_seconds();
    for (int epoch = 1; epoch <= o->epochs; epoch++) {
        for (int i = 0; i < a->train.n; i++) a->order[i] = i;
        shuffle(a->order, a->train.n, &rng);
        double loss_sum = 0.0, t_log = now_seconds();
        long correct = 0, total = 0, steps = 0, since_log = 0;
        int skipped_in_a_row = 0;
        for (int b = 0; b < batches; b++) {
            make_batch(&a->train, a->order + (size_t)b * (size_t)o->batch_size, o->batch_size,
                       a->x, a->labels);
            nc_step_stats s;
            nc_status st = nc_trainer_step(a->trainer, a->x, a->labels, o->batch_size, 1, a->h,
                                           a->w, &s);
            if (st == NC_ERR_NUMERIC) {
                fprintf(stderr, "warning: epoch %d step %d: update skipped: %s\n", epoch, b + 1,
                        nc_context_last_error(a->ctx));
                if (++skipped_in_a_row >= 5) {
                    fprintf(stderr, "error: training diverged; try a smaller --lr\n");
                    return 1;
                }
                continue;
            }
            if (st != NC_OK) return fail_with(a->ctx, "nc_trainer_step", st);
            skipped_in_a_row = 0;
            loss_sum += s.loss;
            correct += s.correct;
            total += s.total;
            steps++;
            since_log += o->batch_size;
            if ((b + 1) % o->log_every == 0 || b + 1 == batches) {
                double t = now_seconds();
                printf("epoch %d [%6ld/%d] loss %.4f  acc %5.1f%%  %7.1f img/s\n", epoch,
                       (long)(b + 1) * o->batch_size, batches * o->batch_size,
                       steps ? loss_sum / (double)steps : 0.0,
                       total ? 100.0 * (double)correct / (double)total : 0.0,
                       t > t_log ? (double)since_log / (t - t_log) : 0.0);
                fflush(stdout);
                t_log = t;
                since_log = 0;
            }
        }
    }
    const double secs = now_seconds() - t_train;
    printf("training took %.1f s (%.1f img/s)\n", secs,
           secs > 0 ? (double)batches * o->batch_size * o->epochs / secs : 0.0);
    return 0;
}

/* Eval-mode forward over the test images: top-1 accuracy, loss, per-class table. */
static int evaluate(app *a) {
    long class_hits[NUM_CLASSES] = {0}, class_total[NUM_CLASSES] = {0}, hits = 0;
    double loss = 0.0;
    const int n_test = a->test.n, batch = a->o.batch_size;
    const double t_eval = now_seconds();
    for (int i = 0; i < n_test; i++) a->order[i] = i;
    for (int start = 0; start < n_test; start += batch) {
        const int n = n_test - start < batch ? n_test - start : batch;
        make_batch(&a->test, a->order + start, n, a->x, a->labels);
        nc_status st = nc_model_forward(a->model, a->x, n, 1, a->h, a->w, a->logits);
        if (st != NC_OK) return fail_with(a->ctx, "nc_model_forward", st);
        for (int i = 0; i < n; i++) {
            const float *row = a->logits + (size_t)i * (size_t)a->outputs;
            const int y = a->labels[i];
            loss += cross_entropy(row, NUM_CLASSES, y);
            class_total[y]++;
            if (argmax(row, NUM_CLASSES) == y) {
                class_hits[y]++;
                hits++;
            }
        }
    }
    const double secs = now_seconds() - t_eval;
    printf("\ntest: top-1 accuracy %.2f%% (%ld/%d), loss %.4f, %.1f s (%.1f img/s)\n",
           100.0 * (double)hits / (double)n_test, hits, n_test, loss / (double)n_test, secs,
           secs > 0 ? (double)n_test / secs : 0.0);
    printf("  %-2s %-12s %11s %9s\n", "#", "class", "correct", "accuracy");
    for (int k = 0; k < NUM_CLASSES; k++) {
        const char *name = nc_model_class_name(a->model, k);
        printf("  %-2d %-12s %5ld/%-5ld %8.1f%%\n", k, name ? name : "?", class_hits[k],
               class_total[k],
               class_total[k] ? 100.0 * (double)class_hits[k] / (double)class_total[k] : 0.0);
    }
    return 0;
}

/* Saves the model, loads it back into a new handle and checks that one batch of test
 * images gives bit-identical logits and that the metadata survived. */
static int save_and_reload(app *a) {
    nc_model *reloaded = NULL;
    nc_status st;
    int rc = 1;
    float mean = 0.0f, std = 0.0f;
    const char *first, *last;
    if ((st = nc_model_save(a->model, a->o.output)) != NC_OK)
        return fail_with(a->ctx, "nc_model_save", st);
    printf("\nsaved %s\n", a->o.output);
    if ((st = nc_model_load(a->ctx, a->o.output, &reloaded)) != NC_OK)
        return fail_with(a->ctx, "nc_model_load", st);

    const int n = a->test.n < a->o.batch_size ? a->test.n : a->o.batch_size;
    const size_t count = (size_t)n * (size_t)a->outputs;
    for (int i = 0; i < n; i++) a->order[i] = i;
    make_batch(&a->test, a->order, n, a->x, NULL);
    if ((st = nc_model_forward(a->model, a->x, n, 1, a->h, a->w, a->logits)) != NC_OK ||
        (st = nc_model_forward(reloaded, a->x, n, 1, a->h, a->w, a->logits2)) != NC_OK) {
        rc = fail_with(a->ctx, "nc_model_forward (reload check)", st);
        goto out;
    }
    if (memcmp(a->logits, a->logits2, count * sizeof *a->logits) != 0) {
        double worst = 0.0;
        for (size_t i = 0; i < count; i++) {
            double d = fabs((double)a->logits[i] - (double)a->logits2[i]);
            if (!(d <= worst)) worst = d; /* NaN counts as worst */
        }
        fprintf(stderr, "error: reload check: logits differ (max |difference| %g)\n", worst);
        goto out;
    }
    first = nc_model_class_name(reloaded, 0);
    last = nc_model_class_name(reloaded, NUM_CLASSES - 1);
    if (nc_model_get_normalization(reloaded, &mean, &std) != NC_OK || mean != pixel_mean ||
        std != pixel_std || !first || strcmp(first, class_names[0]) != 0 || !last ||
        strcmp(last, class_names[NUM_CLASSES - 1]) != 0) {
        fprintf(stderr, "error: reload check: class names or normalisation were not kept\n");
        goto out;
    }
    printf("reload check: identical (%d images x %d logits)\n", n, a->outputs);
    rc = 0;
out:
    nc_model_destroy(reloaded);
    return rc;
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    app a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a.o);
    if (rc == 1) return 0;
    if (rc != 0) return 2;

    if (nc_version() != NC_VERSION)
        fprintf(stderr, "warning: built against neurc %d.%d.%d but running %s\n",
                NC_VERSION_MAJOR, NC_VERSION_MINOR, NC_VERSION_PATCH, nc_version_string());

    const double t_start = now_seconds();
    rc = 1;
    if (load_split(a.o.data, "train", a.o.train_limit, &a.train) == 0 &&
        load_split(a.o.data, "t10k", a.o.test_limit, &a.test) == 0) {
        a.h = a.train.rows;
        a.w = a.train.cols;
        if (a.test.rows != a.h || a.test.cols != a.w) {
            fprintf(stderr, "error: training images are %dx%d but test images are %dx%d\n", a.h,
                    a.w, a.test.rows, a.test.cols);
        } else if (a.train.n < a.o.batch_size) {
            fprintf(stderr, "error: %d training images are fewer than one batch of %d "
                            "(see --train-limit, --batch-size)\n",
                    a.train.n, a.o.batch_size);
            rc = 2;
        } else {
            printf("data: %d training and %d test images of %dx%d from %s\n", a.train.n,
                   a.test.n, a.h, a.w, a.o.data);
            rc = setup(&a);
            if (rc == 0) rc = train(&a);
            if (rc == 0) rc = evaluate(&a);
            if (rc == 0) rc = save_and_reload(&a);
            if (rc == 0) printf("total time %.1f s\n", now_seconds() - t_start);
        }
    }

    /* trainers before their model, models before their context */
    nc_trainer_destroy(a.trainer);
    nc_model_destroy(a.model);
    nc_context_destroy(a.ctx);
    free(a.train.pixels);
    free(a.train.labels);
    free(a.test.pixels);
    free(a.test.labels);
    free(a.order);
    free(a.x);
    free(a.labels);
    free(a.logits);
    free(a.logits2);
    return rc;
}
