/* quickstart.c — trains a classifier on the real Fashion-MNIST data with nothing but
 * the public API (include/neurc.h): open the IDX files as datasets, feed batches
 * through threaded loaders, train with nc_trainer_step, evaluate with
 * nc_model_forward, save, reload and check the reload is exact.
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

/* ----------------------------------------------------------------- helpers */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
    nc_context *ctx;
    nc_dataset *train_set, *test_set;
    nc_transform *normalize;  /* (x - mean) / std */
    nc_loader *train_loader, *test_loader;
    int h, w;
    nc_model *model;
    nc_trainer *trainer;
    int outputs;        /* logits per image (num_heads * num_classes = 10) */
    float *logits;      /* (batch, outputs) */
    float *logits2;     /* (batch, outputs), for the reload check */
} app;

/* Opens DIR/<prefix>-images-idx3-ubyte.gz and the labels as a dataset. */
static int open_split(app *a, const char *prefix, nc_dataset **out) {
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", a->o.data, prefix);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", a->o.data, prefix);
    nc_status st = nc_dataset_open_idx(a->ctx, images, labels, out);
    if (st == NC_ERR_IO)
        fprintf(stderr, "(install the data with `apt-get install dataset-fashion-mnist`, or point --data at a\n"
                        " directory holding the four *-idx?-ubyte.gz files)\n");
    if (st != NC_OK) return fail_with(a->ctx, "nc_dataset_open_idx", st);
    if (nc_dataset_num_classes(*out, 0) > NUM_CLASSES) {
        fprintf(stderr, "error: %s has labels outside 0..%d\n", labels, NUM_CLASSES - 1);
        return 1;
    }
    return 0;
}

/* A loader over the first `limit` samples (0 = all) of ds. */
static int make_loader(app *a, nc_dataset *ds, long limit, int train, nc_loader **out) {
    nc_loader_options lo;
    nc_loader_options_init(&lo);
    lo.batch_size = a->o.batch_size;
    lo.shuffle = train;
    lo.drop_last = train; /* every training step has the same shape */
    lo.workers = 1;       /* decoding is cheap here; the cores train */
    lo.seed = a->o.seed;
    int64_t n = nc_dataset_size(ds), *first = NULL;
    if (limit > 0 && limit < n) {
        first = malloc((size_t)limit * sizeof *first);
        if (!first) {
            fprintf(stderr, "error: out of memory\n");
            return 1;
        }
        for (long i = 0; i < limit; i++) first[i] = i;
        lo.indices = first;
        lo.num_indices = limit;
    }
    nc_status st = nc_loader_create(ds, a->normalize, &lo, out);
    free(first); /* the loader copies the indices */
    return st == NC_OK ? 0 : fail_with(a->ctx, "nc_loader_create", st);
}

/* Context, datasets, loaders, model (with class names and normalisation), trainer. */
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
    if (open_split(a, "train", &a->train_set) || open_split(a, "t10k", &a->test_set)) return 1;
    if ((st = nc_transform_create(a->ctx, &a->normalize)) != NC_OK ||
        (st = nc_transform_add_normalize(a->normalize, &pixel_mean, &pixel_std, 1)) != NC_OK)
        return fail_with(a->ctx, "nc_transform", st);
    if (make_loader(a, a->train_set, a->o.train_limit, 1, &a->train_loader) ||
        make_loader(a, a->test_set, a->o.test_limit, 0, &a->test_loader))
        return 1;
    if (nc_loader_num_batches(a->train_loader) < 1) {
        fprintf(stderr, "error: fewer training images than one batch of %d (see --train-limit, --batch-size)\n",
                a->o.batch_size);
        return 2;
    }
    nc_image *first = NULL;
    if ((st = nc_dataset_get(a->train_set, 0, &first)) != NC_OK) return fail_with(a->ctx, "nc_dataset_get", st);
    a->h = nc_image_height(first);
    a->w = nc_image_width(first);
    nc_image_destroy(first);
    printf("data: %lld training and %lld test images of %dx%d from %s\n",
           (long long)(a->o.train_limit > 0 && a->o.train_limit < nc_dataset_size(a->train_set)
                           ? a->o.train_limit
                           : nc_dataset_size(a->train_set)),
           (long long)(a->o.test_limit > 0 && a->o.test_limit < nc_dataset_size(a->test_set)
                           ? a->o.test_limit
                           : nc_dataset_size(a->test_set)),
           a->h, a->w, a->o.data);

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

    const size_t batch = (size_t)a->o.batch_size;
    a->logits = malloc(batch * (size_t)a->outputs * sizeof *a->logits);
    a->logits2 = malloc(batch * (size_t)a->outputs * sizeof *a->logits2);
    if (!a->logits || !a->logits2) {
        fprintf(stderr, "error: out of memory for the logits\n");
        return 1;
    }
    return 0;
}

/* Epochs of SGD over the shuffled training images (the loader reshuffles each epoch
 * and drops the last partial batch). */
static int train(app *a) {
    const options *o = &a->o;
    const int64_t batches = nc_loader_num_batches(a->train_loader);
    printf("training: %d epoch%s of %lld batches of %d, lr %g, momentum %g, weight decay %g, "
           "seed %llu\n",
           o->epochs, o->epochs > 1 ? "s" : "", (long long)batches, o->batch_size, (double)o->lr,
           (double)o->momentum, (double)o->weight_decay, (unsigned long long)o->seed);
    const double t_train = now_seconds();
    for (int epoch = 1; epoch <= o->epochs; epoch++) {
        nc_status st = nc_loader_start_epoch(a->train_loader, epoch - 1);
        if (st != NC_OK) return fail_with(a->ctx, "nc_loader_start_epoch", st);
        double loss_sum = 0.0, t_log = now_seconds();
        long correct = 0, total = 0, steps = 0, since_log = 0;
        int skipped_in_a_row = 0;
        for (int64_t b = 0;; b++) {
            nc_batch batch;
            if ((st = nc_loader_next(a->train_loader, &batch)) != NC_OK)
                return fail_with(a->ctx, "nc_loader_next", st);
            if (batch.n == 0) break;
            nc_step_stats s;
            st = nc_trainer_step(a->trainer, batch.x, batch.labels, batch.n, batch.c, batch.h, batch.w, &s);
            if (st == NC_ERR_NUMERIC) {
                fprintf(stderr, "warning: epoch %d step %lld: update skipped: %s\n", epoch, (long long)b + 1,
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
            since_log += batch.n;
            if ((b + 1) % o->log_every == 0 || b + 1 == batches) {
                double t = now_seconds();
                printf("epoch %d [%6lld/%lld] loss %.4f  acc %5.1f%%  %7.1f img/s\n", epoch,
                       (long long)(b + 1) * o->batch_size, (long long)batches * o->batch_size,
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
    long class_hits[NUM_CLASSES] = {0}, class_total[NUM_CLASSES] = {0}, hits = 0, n_test = 0;
    double loss = 0.0;
    const double t_eval = now_seconds();
    nc_status st = nc_loader_start_epoch(a->test_loader, 0);
    if (st != NC_OK) return fail_with(a->ctx, "nc_loader_start_epoch", st);
    for (;;) {
        nc_batch batch;
        if ((st = nc_loader_next(a->test_loader, &batch)) != NC_OK) return fail_with(a->ctx, "nc_loader_next", st);
        if (batch.n == 0) break;
        st = nc_model_forward(a->model, batch.x, batch.n, batch.c, batch.h, batch.w, a->logits);
        if (st != NC_OK) return fail_with(a->ctx, "nc_model_forward", st);
        for (int i = 0; i < batch.n; i++) {
            const float *row = a->logits + (size_t)i * (size_t)a->outputs;
            const int y = batch.labels[i];
            loss += cross_entropy(row, NUM_CLASSES, y);
            class_total[y]++;
            if (argmax(row, NUM_CLASSES) == y) {
                class_hits[y]++;
                hits++;
            }
        }
        n_test += batch.n;
    }
    const double secs = now_seconds() - t_eval;
    printf("\ntest: top-1 accuracy %.2f%% (%ld/%ld), loss %.4f, %.1f s (%.1f img/s)\n",
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
    nc_batch batch;
    if ((st = nc_model_save(a->model, a->o.output)) != NC_OK)
        return fail_with(a->ctx, "nc_model_save", st);
    printf("\nsaved %s\n", a->o.output);
    if ((st = nc_model_load(a->ctx, a->o.output, &reloaded)) != NC_OK)
        return fail_with(a->ctx, "nc_model_load", st);

    if ((st = nc_loader_start_epoch(a->test_loader, 0)) != NC_OK ||
        (st = nc_loader_next(a->test_loader, &batch)) != NC_OK) {
        rc = fail_with(a->ctx, "nc_loader (reload check)", st);
        goto out;
    }
    const size_t count = (size_t)batch.n * (size_t)a->outputs;
    if ((st = nc_model_forward(a->model, batch.x, batch.n, batch.c, batch.h, batch.w, a->logits)) != NC_OK ||
        (st = nc_model_forward(reloaded, batch.x, batch.n, batch.c, batch.h, batch.w, a->logits2)) != NC_OK) {
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
    printf("reload check: identical (%d images x %d logits)\n", batch.n, a->outputs);
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
    rc = setup(&a);
    if (rc == 0) rc = train(&a);
    if (rc == 0) rc = evaluate(&a);
    if (rc == 0) rc = save_and_reload(&a);
    if (rc == 0) printf("total time %.1f s\n", now_seconds() - t_start);

    /* loaders before their datasets and transform; trainers before their model;
     * everything before the context */
    nc_loader_destroy(a.train_loader);
    nc_loader_destroy(a.test_loader);
    nc_transform_destroy(a.normalize);
    nc_dataset_destroy(a.train_set);
    nc_dataset_destroy(a.test_set);
    nc_trainer_destroy(a.trainer);
    nc_model_destroy(a.model);
    nc_context_destroy(a.ctx);
    free(a.logits);
    free(a.logits2);
    return rc;
}
