/* bench.c — nc-bench: training-step and inference timings of the built-in
 * architectures, and (--loader) the data loader's throughput, median of several
 * runs after warm-up, printed as a table and as JSON. A benchmark is a program,
 * never a timed unit test (docs/performance.md). */
#include "neurc.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: nc-bench [options]\n"
            "  --arch LIST        comma-separated architectures (default resnet18)\n"
            "  --batch N          batch size (default 16)\n"
            "  --size S           image height and width (default 224)\n"
            "  --in-channels C    input channels (default 3)\n"
            "  --classes K        classes (default 1000)\n"
            "  --small-input      small-image stem\n"
            "  --mode M           train, infer or both (default both)\n"
            "  --backend B        auto, ref, onednn or cuda (default auto)\n"
            "  --threads T        CPU threads (default: all cores)\n"
            "  --warmup W         untimed runs first (default 1)\n"
            "  --runs R           timed runs; the median is reported (default 5)\n"
            "  --json FILE        also write the results as JSON to FILE ('-' = stdout)\n"
            "  -h, --help         this text\n"
            "loader mode (images/s of nc_loader_next, nothing else done with the batches):\n"
            "  --loader SRC       folder:DIR or idx:IMAGES,LABELS\n"
            "  --transform T      train (preset_train), eval (preset_eval, resize size*8/7)\n"
            "                     or none (default train); --size sets the output size\n"
            "  --workers N        loader threads (default 2; 0 = decode in nc_loader_next)\n"
            "  --prefetch P       batches decoded ahead (default 2)\n"
            "  --batches K        batches per timed run, each run a new epoch (default 20);\n"
            "                     --batch, --warmup, --runs, --threads and --json apply\n");
}

typedef struct result {
    char arch[64];
    const char *mode;
    double median_s, min_s, max_s;
    int runs;
} result;

static int parse_backend(const char *s, nc_backend_kind *out) {
    const nc_backend_kind kinds[] = {NC_BACKEND_AUTO, NC_BACKEND_REF, NC_BACKEND_ONEDNN, NC_BACKEND_CUDA};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(s, nc_backend_name(kinds[i])) == 0) {
            *out = kinds[i];
            return 0;
        }
    return -1;
}

/* Times `runs` calls of one mode after `warmup`; returns 0 or prints the error. */
static int time_mode(nc_context *ctx, nc_model *m, int train, const float *x, const int32_t *y, int n, int c,
                     int s, int warmup, int runs, result *r) {
    nc_trainer *t = NULL;
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)nc_model_num_outputs(m));
    double *times = malloc(sizeof(double) * (size_t)runs);
    nc_status st = logits && times ? NC_OK : NC_ERR_OUT_OF_MEMORY;
    if (st == NC_OK && train) {
        nc_trainer_options to;
        nc_trainer_options_init(&to);
        to.lr = 1e-4f; /* small: keeps the weights sane over many steps */
        st = nc_trainer_create(m, &to, &t);
    }
    for (int i = 0; st == NC_OK && i < warmup + runs; i++) {
        double t0 = now_s();
        st = train ? nc_trainer_step(t, x, y, n, c, s, s, NULL) : nc_model_forward(m, x, n, c, s, s, logits);
        if (i >= warmup) times[i - warmup] = now_s() - t0;
    }
    if (st == NC_OK) {
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        r->mode = train ? "train_step" : "inference";
        r->median_s = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
        r->min_s = times[0];
        r->max_s = times[runs - 1];
        r->runs = runs;
    } else {
        fprintf(stderr, "nc-bench: %s %s: %s\n", r->arch, train ? "train" : "infer", nc_context_last_error(ctx));
    }
    nc_trainer_destroy(t);
    free(logits);
    free(times);
    return st == NC_OK ? 0 : -1;
}

/* ------------------------------------------------------------------ loader mode */

typedef struct loader_args {
    const char *source, *transform, *json;
    int size, workers, prefetch, batch, batches, warmup, runs, threads;
} loader_args;

static nc_status open_source(nc_context *ctx, const char *src, nc_dataset **ds) {
    if (strncmp(src, "folder:", 7) == 0) return nc_dataset_open_folder(ctx, src + 7, NULL, ds);
    if (strncmp(src, "idx:", 4) == 0) {
        const char *comma = strchr(src + 4, ',');
        if (!comma) {
            fprintf(stderr, "nc-bench: --loader idx:IMAGES,LABELS needs both paths\n");
            return NC_ERR_INVALID_ARGUMENT;
        }
        char *images = strndup(src + 4, (size_t)(comma - src - 4));
        nc_status st = images ? nc_dataset_open_idx(ctx, images, comma + 1, ds) : NC_ERR_OUT_OF_MEMORY;
        free(images);
        return st;
    }
    fprintf(stderr, "nc-bench: --loader takes folder:DIR or idx:IMAGES,LABELS, not '%s'\n", src);
    return NC_ERR_INVALID_ARGUMENT;
}

/* Times `runs` runs of `batches` batches (each a fresh epoch, from start_epoch to the
 * last batch received) after `warmup` untimed ones; prints images/s. */
static int loader_bench(const loader_args *a) {
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF;
    co.num_threads = a->threads;
    nc_context *ctx = NULL;
    nc_dataset *ds = NULL;
    nc_transform *t = NULL;
    nc_loader *l = NULL;
    double *times = malloc(sizeof(double) * (size_t)a->runs);
    int batches = a->batches;
    nc_status st = times ? nc_context_create(&co, &ctx) : NC_ERR_OUT_OF_MEMORY;
    if (st == NC_OK) st = open_source(ctx, a->source, &ds);
    if (st == NC_OK && strcmp(a->transform, "train") == 0)
        st = nc_transform_preset_train(ctx, a->size, nc_dataset_channels(ds), NULL, NULL, &t);
    else if (st == NC_OK && strcmp(a->transform, "eval") == 0)
        st = nc_transform_preset_eval(ctx, a->size * 8 / 7, a->size, nc_dataset_channels(ds), NULL, NULL, &t);
    if (st == NC_OK) {
        nc_loader_options lo;
        nc_loader_options_init(&lo);
        lo.batch_size = a->batch;
        lo.workers = a->workers;
        lo.prefetch = a->prefetch;
        lo.seed = 1;
        st = nc_loader_create(ds, t, &lo, &l);
    }
    if (st == NC_OK && nc_loader_num_batches(l) < batches) batches = (int)nc_loader_num_batches(l);
    if (st == NC_OK && batches < 1) st = NC_ERR_INVALID_ARGUMENT;
    int64_t images = 0;
    nc_batch b = {0};
    for (int r = 0; st == NC_OK && r < a->warmup + a->runs; r++) {
        double t0 = now_s();
        st = nc_loader_start_epoch(l, r);
        for (int k = 0; st == NC_OK && k < batches; k++) {
            st = nc_loader_next(l, &b);
            if (r == a->warmup) images += b.n;
        }
        if (r >= a->warmup) times[r - a->warmup] = now_s() - t0;
    }
    int failed = st != NC_OK;
    if (failed) {
        fprintf(stderr, "nc-bench: loader %s: %s: %s\n", a->source, nc_status_str(st),
                ctx ? nc_context_last_error(ctx) : "");
    } else {
        qsort(times, (size_t)a->runs, sizeof *times, cmp_double);
        int runs = a->runs;
        double med = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
        printf("%-10s %6s %5s %7s %6s %8s %11s %11s %10s\n", "transform", "batch", "size", "workers", "shape",
               "batches", "median ms", "min ms", "images/s");
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", b.c, b.h, b.w);
        printf("%-10s %6d %5d %7d %6s %8d %11.1f %11.1f %10.1f\n", a->transform, a->batch, a->size, a->workers,
               shape, batches, 1e3 * med, 1e3 * times[0], (double)images / med);
        if (a->json) {
            FILE *f = strcmp(a->json, "-") == 0 ? stdout : fopen(a->json, "w");
            if (!f) {
                perror(a->json);
                failed = 1;
            } else {
                fprintf(f,
                        "{\"mode\": \"loader\", \"source\": \"%s\", \"transform\": \"%s\", \"size\": %d, "
                        "\"channels\": %d, \"height\": %d, \"width\": %d, \"workers\": %d, \"prefetch\": %d, "
                        "\"batch\": %d, \"batches\": %d, \"runs\": %d, \"median_s\": %.6f, \"min_s\": %.6f, "
                        "\"max_s\": %.6f, \"images_per_s\": %.2f}\n",
                        a->source, a->transform, a->size, b.c, b.h, b.w, a->workers, a->prefetch, a->batch,
                        batches, runs, med, times[0], times[runs - 1], (double)images / med);
                if (f != stdout) fclose(f);
            }
        }
    }
    nc_loader_destroy(l);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
    nc_context_destroy(ctx);
    free(times);
    return failed;
}

int main(int argc, char **argv) {
    const char *archs = "resnet18", *mode = "both", *json = NULL, *source = NULL, *transform = "train";
    int batch = 16, size = 224, in_c = 3, classes = 1000, small = 0, threads = 0, warmup = 1, runs = 5;
    int workers = 2, prefetch = 2, batches = 20;
    nc_backend_kind backend = NC_BACKEND_AUTO;
    static const struct option longopts[] = {
        {"arch", required_argument, 0, 'a'},    {"batch", required_argument, 0, 'b'},
        {"size", required_argument, 0, 's'},    {"in-channels", required_argument, 0, 'c'},
        {"classes", required_argument, 0, 'k'}, {"small-input", no_argument, 0, 'S'},
        {"mode", required_argument, 0, 'm'},    {"backend", required_argument, 0, 'B'},
        {"threads", required_argument, 0, 't'}, {"warmup", required_argument, 0, 'w'},
        {"runs", required_argument, 0, 'r'},    {"json", required_argument, 0, 'j'},
        {"loader", required_argument, 0, 'L'},  {"transform", required_argument, 0, 'T'},
        {"workers", required_argument, 0, 'W'}, {"prefetch", required_argument, 0, 'P'},
        {"batches", required_argument, 0, 'K'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'a': archs = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'c': in_c = atoi(optarg); break;
        case 'k': classes = atoi(optarg); break;
        case 'S': small = 1; break;
        case 'm': mode = optarg; break;
        case 'B':
            if (parse_backend(optarg, &backend) != 0) {
                fprintf(stderr, "nc-bench: unknown backend '%s'\n", optarg);
                return 2;
            }
            break;
        case 't': threads = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'r': runs = atoi(optarg); break;
        case 'j': json = optarg; break;
        case 'L': source = optarg; break;
        case 'T': transform = optarg; break;
        case 'W': workers = atoi(optarg); break;
        case 'P': prefetch = atoi(optarg); break;
        case 'K': batches = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (source) {
        int known = strcmp(transform, "train") == 0 || strcmp(transform, "eval") == 0 ||
                    strcmp(transform, "none") == 0;
        if (optind != argc || !known || batch < 1 || size < 1 || threads < 0 || warmup < 0 || runs < 1 ||
            workers < 0 || prefetch < 0 || batches < 1) {
            usage(stderr);
            return 2;
        }
        loader_args a = {source, transform, json, size, workers, prefetch, batch, batches, warmup, runs, threads};
        return loader_bench(&a);
    }
    int do_train = strcmp(mode, "train") == 0 || strcmp(mode, "both") == 0;
    int do_infer = strcmp(mode, "infer") == 0 || strcmp(mode, "both") == 0;
    if (optind != argc || batch < 1 || size < 1 || in_c < 1 || classes < 1 || threads < 0 || warmup < 0 ||
        runs < 1 || !(do_train || do_infer)) {
        usage(stderr);
        return 2;
    }
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = backend;
    co.num_threads = threads;
    nc_context *ctx;
    nc_status st = nc_context_create(&co, &ctx);
    if (st != NC_OK) {
        fprintf(stderr, "nc-bench: context: %s\n", nc_status_str(st));
        return 1;
    }
    size_t count = (size_t)batch * (size_t)in_c * (size_t)size * (size_t)size;
    float *x = malloc(count * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    result *res = calloc(64, sizeof *res);
    int nres = 0, failed = 0;
    if (!x || !y || !res) {
        fprintf(stderr, "nc-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < count; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < batch; i++) y[i] = i % classes;

    char *list = strdup(archs);
    printf("%-18s %-11s %6s %5s %12s %12s %12s\n", "arch", "mode", "batch", "size", "median ms", "min ms",
           "images/s");
    for (char *save = NULL, *arch = strtok_r(list, ",", &save); arch && nres < 62;
         arch = strtok_r(NULL, ",", &save)) {
        nc_model_options mo;
        nc_model_options_init(&mo);
        mo.arch = arch;
        mo.num_classes = classes;
        mo.in_channels = in_c;
        mo.small_input = small;
        nc_model *m;
        if (nc_model_create(ctx, &mo, &m) != NC_OK) {
            fprintf(stderr, "nc-bench: %s: %s\n", arch, nc_context_last_error(ctx));
            failed = 1;
            continue;
        }
        for (int train = 1; train >= 0; train--) {
            if ((train && !do_train) || (!train && !do_infer)) continue;
            result *r = &res[nres];
            snprintf(r->arch, sizeof r->arch, "%s", arch);
            if (time_mode(ctx, m, train, x, y, batch, in_c, size, warmup, runs, r) != 0) {
                failed = 1;
                continue;
            }
            printf("%-18s %-11s %6d %5d %12.1f %12.1f %12.1f\n", r->arch, r->mode, batch, size, 1e3 * r->median_s,
                   1e3 * r->min_s, batch / r->median_s);
            fflush(stdout);
            nres++;
        }
        nc_model_destroy(m);
    }
    if (json) {
        FILE *f = strcmp(json, "-") == 0 ? stdout : fopen(json, "w");
        if (!f) {
            perror(json);
            failed = 1;
        } else {
            fprintf(f, "{\"backend\": \"%s\", \"threads\": %d, \"batch\": %d, \"size\": %d, \"results\": [",
                    nc_backend_name(nc_context_backend(ctx)), threads, batch, size);
            for (int i = 0; i < nres; i++)
                fprintf(f, "%s\n  {\"arch\": \"%s\", \"mode\": \"%s\", \"median_s\": %.6f, \"min_s\": %.6f, "
                        "\"max_s\": %.6f, \"runs\": %d, \"images_per_s\": %.2f}",
                        i ? "," : "", res[i].arch, res[i].mode, res[i].median_s, res[i].min_s, res[i].max_s,
                        res[i].runs, batch / res[i].median_s);
            fprintf(f, "\n]}\n");
            if (f != stdout) fclose(f);
        }
    }
    free(list);
    free(res);
    free(x);
    free(y);
    nc_context_destroy(ctx);
    return failed;
}
