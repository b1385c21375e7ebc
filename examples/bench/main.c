/* main.c — nc-bench: training-step and inference timings of the built-in
 * architectures (median, min and max of several runs after warm-up, images/s,
 * FLOPs counted from the model summary, GFLOP/s, resident memory), single
 * convolutions (--layers), FLOP counts alone (--count) and the data loader's
 * throughput (--loader); a table on stdout and JSON. A benchmark is a program,
 * never a timed unit test (docs/performance.md). */
#include "bench.h"
#include "../args.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: nc-bench [options]\n"
            "  --arch LIST        comma-separated architectures (default resnet18)\n"
            "  --batch N          batch size (default 16)\n"
            "  --size S           image height and width (default 224)\n"
            "  --in-channels C    input channels (default 3)\n"
            "  --classes K        classes (default 1000)\n"
            "  --small-input      small-image stem\n"
            "  --cardinality G    \"resnext\": groups (default 32)\n"
            "  --base-width W     \"resnext\": width per group (default 4)\n"
            "  --blocks A,B,C,D   \"resnext\": blocks per stage (default 3,4,6,3)\n"
            "  --basic            \"resnext\": basic blocks instead of bottlenecks\n"
            "  --mode M           train, infer or both (default both)\n"
            "  --backend B        auto, ref, onednn or cuda (default auto)\n"
            "  --precision P      fp32, bf16 (autocast rules) or bf16-math (default fp32)\n"
            "  --conv-algorithm A auto, direct or winograd: how 3x3 convolutions are computed\n"
            "                     where the backend has a choice (default auto)\n"
            "  --threads T        CPU threads (default: all cores)\n"
            "  --distributed      under `mpirun -np N`: train steps data-parallel over the N\n"
            "                     ranks, each on batch/N images (--mode train; MPI builds)\n"
            "  --warmup W         untimed runs first (default 1)\n"
            "  --runs R           timed runs; the median is reported (default 5)\n"
            "  --json FILE        also write the results as JSON to FILE ('-' = stdout)\n"
            "  --count            only count MACs/FLOPs per image (no timing)\n"
            "  --layers           time each distinct convolution of the (one) architecture\n"
            "                     alone: ReLU -> conv -> global average pool, forward and\n"
            "                     training step over --batch images at --size\n"
            "  --gemm N           time one N x N x N matrix product (a linear layer with N\n"
            "                     inputs and outputs over N images, forward): GFLOP/s\n"
            "  -h, --help         this text\n"
            "FLOPs: 2 x the multiply-accumulates of convolutions and linear layers per image\n"
            "(batchnorm, activations, pooling and additions not counted); a training step\n"
            "counts 3 x the forward FLOPs. Memory: resident set (MiB) after the context,\n"
            "after model and trainer creation, and its high-water mark (VmHWM), which\n"
            "covers everything this process ran so far: one workload per process for\n"
            "per-workload peaks.\n"
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
    double flops;                    /* per step (the whole batch) */
    double rss_setup_mb, peak_rss_mb; /* before the first step of this mode; high-water mark after it */
    int64_t conv_macs, linear_macs;  /* per image */
} result;

/* The index of s in names[count] (an enum's values in order), or -1. */
static int parse_name(const char *s, const char *const *names, int count) {
    for (int i = 0; i < count; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static int parse_precision(const char *s, nc_precision *out) {
    static const char *const names[] = {"fp32", "bf16", "bf16-math"};
    const int i = parse_name(s, names, 3);
    if (i >= 0) *out = (nc_precision)i;
    return i < 0 ? -1 : 0;
}

static int parse_conv_algorithm(const char *s, nc_conv_algorithm *out) {
    static const char *const names[] = {"auto", "direct", "winograd"};
    const int i = parse_name(s, names, 3);
    if (i >= 0) *out = (nc_conv_algorithm)i;
    return i < 0 ? -1 : 0;
}

static int parse_backend(const char *s, nc_backend_kind *out) {
    const nc_backend_kind kinds[] = {NC_BACKEND_AUTO, NC_BACKEND_REF, NC_BACKEND_ONEDNN, NC_BACKEND_CUDA};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(s, nc_backend_name(kinds[i])) == 0) {
            *out = kinds[i];
            return 0;
        }
    return -1;
}

static int parse_blocks(const char *s, int blocks[4]) {
    char *end;
    for (int i = 0; i < 4; i++) {
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1000 || (i < 3 ? *end != ',' : *end != 0)) return -1;
        blocks[i] = (int)v;
        s = end + 1;
    }
    return 0;
}

/* Times `runs` calls of one mode after `warmup`; returns 0 or prints the error. */
static int time_mode(nc_context *ctx, nc_comm *comm, nc_model *m, int train, const float *x, const int32_t *y,
                     int n, int c, int s, int warmup, int runs, result *r) {
    nc_trainer *t = NULL;
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)nc_model_num_outputs(m));
    double *times = malloc(sizeof(double) * (size_t)runs);
    nc_status st = logits && times ? NC_OK : NC_ERR_OUT_OF_MEMORY;
    if (st == NC_OK && train) {
        nc_trainer_options to;
        nc_trainer_options_init(&to); /* SGD, momentum 0.9, softmax cross-entropy */
        to.lr = 1e-4f;                /* small: keeps the weights sane over many steps */
        st = nc_trainer_create(m, &to, &t);
        if (st == NC_OK && comm) { /* --distributed: this rank's part of the global batch */
            st = nc_trainer_set_comm(t, comm);
            n /= nc_comm_size(comm);
            x += (size_t)nc_comm_rank(comm) * (size_t)n * (size_t)c * (size_t)s * (size_t)s;
            y += (size_t)nc_comm_rank(comm) * (size_t)n;
        }
    }
    r->rss_setup_mb = bench_rss_mb();
    for (int i = 0; st == NC_OK && i < warmup + runs; i++) {
        double t0 = bench_now_s();
        st = train ? nc_trainer_step(t, x, y, n, c, s, s, NULL) : nc_model_forward(m, x, n, c, s, s, logits);
        if (i >= warmup) times[i - warmup] = bench_now_s() - t0;
    }
    if (st == NC_OK) {
        r->peak_rss_mb = bench_peak_rss_mb();
        r->mode = train ? "train_step" : "inference";
        r->median_s = bench_median(times, runs);
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

static void write_json(FILE *f, const bench_common *c, const char *backend, double rss_start, const result *res,
                       int nres) {
    fprintf(f,
            "{\"mode\": \"model\", \"backend\": \"%s\", \"threads\": %d, \"batch\": %d, \"size\": %d, "
            "\"warmup\": %d, \"runs\": %d, \"rss_start_mb\": %.1f, \"results\": [",
            backend, c->threads, c->batch, c->size, c->warmup, c->runs, rss_start);
    for (int i = 0; i < nres; i++) {
        const result *r = &res[i];
        fprintf(f,
                "%s\n  {\"arch\": \"%s\", \"mode\": \"%s\", \"median_s\": %.6f, \"min_s\": %.6f, \"max_s\": %.6f, "
                "\"runs\": %d, \"images_per_s\": %.2f, \"conv_macs_per_image\": %lld, "
                "\"linear_macs_per_image\": %lld, \"flops_per_step\": %.0f, \"gflops\": %.3f, "
                "\"rss_setup_mb\": %.1f, \"peak_rss_mb\": %.1f}",
                i ? "," : "", r->arch, r->mode, r->median_s, r->min_s, r->max_s, r->runs, c->batch / r->median_s,
                (long long)r->conv_macs, (long long)r->linear_macs, r->flops, r->flops / r->median_s * 1e-9,
                r->rss_setup_mb, r->peak_rss_mb);
    }
    fprintf(f, "\n]}\n");
}

/* --gemm N: the forward pass of input (N, N, 1, 1) -> global average pool (a copy)
 * -> flatten -> linear N -> N, i.e. one N x N x N SGEMM plus O(N^2) moves; 2 N^3 FLOPs. */
static int gemm_bench(nc_context *ctx, const bench_common *c, int n) {
    nc_builder *b = NULL;
    nc_model *m = NULL;
    nc_value v;
    size_t nn = (size_t)n * (size_t)n;
    float *x = malloc(nn * sizeof *x), *out = malloc(nn * sizeof *out);
    double *t = malloc((size_t)c->runs * sizeof *t);
    nc_status st = x && out && t ? nc_builder_create(ctx, n, &b, &v) : NC_ERR_OUT_OF_MEMORY;
    if (st == NC_OK) {
        nc_builder_adaptive_avg_pool2d(b, v, 1, 1, &v);
        nc_builder_flatten(b, v, &v);
        nc_builder_linear(b, "fc", v, n, 0, &v);
        st = nc_builder_finish(b, v, 1, 1, &m);
    }
    for (size_t i = 0; st == NC_OK && i < nn; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; st == NC_OK && i < c->warmup + c->runs; i++) {
        double t0 = bench_now_s();
        st = nc_model_forward(m, x, n, n, 1, 1, out);
        if (i >= c->warmup) t[i - c->warmup] = bench_now_s() - t0;
    }
    if (st == NC_OK) {
        double med = bench_median(t, c->runs), flops = 2.0 * (double)n * (double)n * (double)n;
        printf("%-8s %6s %10s %10s %9s\n", "gemm", "n", "median ms", "min ms", "GFLOP/s");
        printf("%-8s %6d %10.2f %10.2f %9.2f\n", "linear", n, 1e3 * med, 1e3 * t[0], flops / med * 1e-9);
        FILE *f = c->json ? bench_json_open(c->json) : NULL;
        if (f) {
            fprintf(f,
                    "{\"mode\": \"gemm\", \"backend\": \"%s\", \"threads\": %d, \"n\": %d, \"runs\": %d, "
                    "\"median_s\": %.6f, \"min_s\": %.6f, \"max_s\": %.6f, \"flops\": %.0f, \"gflops\": %.3f, "
                    "\"best_gflops\": %.3f}\n",
                    nc_backend_name(nc_context_backend(ctx)), c->threads, n, c->runs, med, t[0], t[c->runs - 1],
                    flops, flops / med * 1e-9, flops / t[0] * 1e-9);
            bench_json_close(f);
        } else if (c->json) {
            st = NC_ERR_IO;
        }
    } else {
        fprintf(stderr, "nc-bench: gemm %d: %s: %s\n", n, nc_status_str(st),
                st == NC_ERR_OUT_OF_MEMORY && !b ? "" : nc_context_last_error(ctx));
    }
    nc_builder_destroy(b);
    nc_model_destroy(m);
    free(x);
    free(out);
    free(t);
    return st != NC_OK;
}

/* --count: MACs and FLOPs per image of each architecture, no timing. */
static int count_only(nc_context *ctx, const bench_common *c, nc_model_options *mo, char *list) {
    int failed = 0, first = 1;
    FILE *f = c->json ? bench_json_open(c->json) : NULL;
    if (c->json && !f) return 1;
    if (f) fprintf(f, "{\"mode\": \"count\", \"size\": %d, \"results\": [", c->size);
    printf("%-18s %5s %6s %8s %16s %16s %12s %12s\n", "arch", "size", "convs", "linears", "conv MACs/img",
           "linear MACs/img", "fwd GFLOP", "train GFLOP");
    for (char *save = NULL, *arch = strtok_r(list, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        mo->arch = arch;
        nc_model *m = NULL;
        bench_net net;
        char err[256];
        if (nc_model_create(ctx, mo, &m) != NC_OK) {
            fprintf(stderr, "nc-bench: %s: %s\n", arch, nc_context_last_error(ctx));
            failed = 1;
            continue;
        }
        if (bench_net_analyze(m, c->size, c->size, &net, err, sizeof err) != 0) {
            fprintf(stderr, "nc-bench: %s: %s\n", arch, err);
            failed = 1;
        } else {
            double fwd = bench_forward_flops(&net);
            printf("%-18s %5d %6d %8d %16lld %16lld %12.3f %12.3f\n", arch, c->size, net.convs, net.linears,
                   (long long)net.conv_macs, (long long)net.linear_macs, 1e-9 * fwd, 3e-9 * fwd);
            if (f)
                fprintf(f,
                        "%s\n  {\"arch\": \"%s\", \"convs\": %d, \"linears\": %d, \"conv_macs_per_image\": %lld, "
                        "\"linear_macs_per_image\": %lld, \"forward_flops_per_image\": %.0f, "
                        "\"train_flops_per_image\": %.0f}",
                        first ? "" : ",", arch, net.convs, net.linears, (long long)net.conv_macs,
                        (long long)net.linear_macs, fwd, 3 * fwd);
            first = 0;
            bench_net_free(&net);
        }
        nc_model_destroy(m);
    }
    if (f) {
        fprintf(f, "\n]}\n");
        bench_json_close(f);
    }
    return failed;
}

int main(int argc, char **argv) {
    const char *archs = "resnet18", *mode = "both", *json = NULL, *source = NULL, *transform = "train";
    int batch = 16, size = 224, threads = 0, warmup = 1, runs = 5;
    int workers = 2, prefetch = 2, batches = 20, count = 0, layers = 0, gemm = 0, bad = 0, distributed = 0;
    nc_backend_kind backend = NC_BACKEND_AUTO;
    nc_precision precision = NC_PRECISION_FP32;
    nc_conv_algorithm conv_algorithm = NC_CONV_ALGORITHM_AUTO;
    nc_model_options mo;
    nc_model_options_init(&mo);
    static const struct option longopts[] = {
        {"arch", required_argument, 0, 'a'},        {"batch", required_argument, 0, 'b'},
        {"size", required_argument, 0, 's'},        {"in-channels", required_argument, 0, 'c'},
        {"classes", required_argument, 0, 'k'},     {"small-input", no_argument, 0, 'S'},
        {"mode", required_argument, 0, 'm'},        {"backend", required_argument, 0, 'B'},
        {"threads", required_argument, 0, 't'},     {"warmup", required_argument, 0, 'w'},
        {"distributed", no_argument, 0, 'M'},
        {"runs", required_argument, 0, 'r'},        {"json", required_argument, 0, 'j'},
        {"loader", required_argument, 0, 'L'},      {"transform", required_argument, 0, 'T'},
        {"workers", required_argument, 0, 'W'},     {"prefetch", required_argument, 0, 'P'},
        {"batches", required_argument, 0, 'K'},     {"cardinality", required_argument, 0, 'G'},
        {"base-width", required_argument, 0, 'D'},  {"blocks", required_argument, 0, 'N'},
        {"basic", no_argument, 0, 'A'},             {"count", no_argument, 0, 'C'},
        {"layers", no_argument, 0, 'Y'},            {"gemm", required_argument, 0, 'E'},
        {"precision", required_argument, 0, 'p'},  {"help", no_argument, 0, 'h'},
        {"conv-algorithm", required_argument, 0, 'V'},
        {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'a': archs = optarg; break;
        case 'b': bad |= arg_int(optarg, 1, 1 << 20, &batch); break;
        case 's': bad |= arg_int(optarg, 1, 1 << 16, &size); break;
        case 'c': bad |= arg_int(optarg, 1, 1 << 16, &mo.in_channels); break;
        case 'k': bad |= arg_int(optarg, 1, 1 << 24, &mo.num_classes); break;
        case 'S': mo.small_input = 1; break;
        case 'G': bad |= arg_int(optarg, 1, 1 << 16, &mo.cardinality); break;
        case 'D': bad |= arg_int(optarg, 1, 1 << 16, &mo.base_width); break;
        case 'N': bad |= parse_blocks(optarg, mo.blocks); break;
        case 'A': mo.bottleneck = 0; break;
        case 'm': mode = optarg; break;
        case 'B':
            if (parse_backend(optarg, &backend) != 0) {
                fprintf(stderr, "nc-bench: unknown backend '%s'\n", optarg);
                return 2;
            }
            break;
        case 'p':
            if (parse_precision(optarg, &precision) != 0) {
                fprintf(stderr, "nc-bench: unknown precision '%s' (fp32, bf16 or bf16-math)\n", optarg);
                return 2;
            }
            break;
        case 'V':
            if (parse_conv_algorithm(optarg, &conv_algorithm) != 0) {
                fprintf(stderr, "nc-bench: unknown conv algorithm '%s' (auto, direct or winograd)\n", optarg);
                return 2;
            }
            break;
        case 't': bad |= arg_int(optarg, 0, 4096, &threads); break;
        case 'w': bad |= arg_int(optarg, 0, 1 << 20, &warmup); break;
        case 'r': bad |= arg_int(optarg, 1, 1 << 20, &runs); break;
        case 'j': json = optarg; break;
        case 'L': source = optarg; break;
        case 'T': transform = optarg; break;
        case 'W': bad |= arg_int(optarg, 0, 1024, &workers); break;
        case 'P': bad |= arg_int(optarg, 0, 1024, &prefetch); break;
        case 'K': bad |= arg_int(optarg, 1, 1 << 24, &batches); break;
        case 'C': count = 1; break;
        case 'Y': layers = 1; break;
        case 'E': bad |= arg_int(optarg, 1, 1 << 15, &gemm); break;
        case 'M': distributed = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad || optind != argc) {
        fprintf(stderr, "nc-bench: bad option value or stray argument\n");
        usage(stderr);
        return 2;
    }
    if (source) {
        int known = strcmp(transform, "train") == 0 || strcmp(transform, "eval") == 0 ||
                    strcmp(transform, "none") == 0;
        if (!known) {
            usage(stderr);
            return 2;
        }
        loader_args a = {source, transform, json, size, workers, prefetch, batch, batches, warmup, runs, threads};
        return bench_loader(&a);
    }
    bench_common c = {backend, threads, batch, size, warmup, runs, 0, 0, json, conv_algorithm};
    c.do_train = strcmp(mode, "train") == 0 || strcmp(mode, "both") == 0;
    c.do_infer = strcmp(mode, "infer") == 0 || strcmp(mode, "both") == 0;
    if (!(c.do_train || c.do_infer)) {
        fprintf(stderr, "nc-bench: --mode takes train, infer or both, not '%s'\n", mode);
        return 2;
    }
    if (layers) {
        if (strchr(archs, ',')) {
            fprintf(stderr, "nc-bench: --layers takes one architecture\n");
            return 2;
        }
        mo.arch = archs;
        return bench_layers(&c, &mo);
    }

    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = backend;
    co.num_threads = threads;
    co.precision = precision;
    co.conv_algorithm = conv_algorithm;
    nc_context *ctx;
    nc_status st = nc_context_create(&co, &ctx);
    if (st != NC_OK) {
        fprintf(stderr, "nc-bench: context: %s\n", nc_status_str(st));
        return 1;
    }
    char *list = strdup(archs);
    if (!list) {
        nc_context_destroy(ctx);
        return 1;
    }
    if (count || gemm) {
        int rc = gemm ? gemm_bench(ctx, &c, gemm) : count_only(ctx, &c, &mo, list);
        free(list);
        nc_context_destroy(ctx);
        return rc;
    }
    nc_comm *comm = NULL;
    if (distributed && (strcmp(mode, "train") != 0 || bench_dist_start(&argc, &argv, ctx, batch, &comm) != 0)) {
        if (strcmp(mode, "train") != 0) fprintf(stderr, "nc-bench: --distributed times --mode train only\n");
        bench_dist_end(comm, 1);
        free(list);
        nc_context_destroy(ctx);
        return 1;
    }
    const int in_c = mo.in_channels, classes = mo.num_classes;
    size_t n_x = (size_t)batch * (size_t)in_c * (size_t)size * (size_t)size;
    float *x = malloc(n_x * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    result *res = calloc(64, sizeof *res);
    int nres = 0, failed = 0;
    if (!x || !y || !res) {
        fprintf(stderr, "nc-bench: out of memory\n");
        free(x);
        free(y);
        free(res);
        free(list);
        nc_context_destroy(ctx);
        return 1;
    }
    for (size_t i = 0; i < n_x; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < batch; i++) y[i] = i % classes;
    const double rss_start = bench_rss_mb(); /* context and input batch, no model yet */

    printf("%-18s %-11s %6s %5s %10s %10s %10s %9s %9s %9s %9s\n", "arch", "mode", "batch", "size", "median ms",
           "min ms", "images/s", "GFLOP/s", "setup MB", "peak MB", "GFLOP");
    for (char *save = NULL, *arch = strtok_r(list, ",", &save); arch && nres < 62;
         arch = strtok_r(NULL, ",", &save)) {
        mo.arch = arch;
        nc_model *m;
        bench_net net;
        char err[256];
        if (nc_model_create(ctx, &mo, &m) != NC_OK) {
            fprintf(stderr, "nc-bench: %s: %s\n", arch, nc_context_last_error(ctx));
            failed = 1;
            continue;
        }
        if (bench_net_analyze(m, size, size, &net, err, sizeof err) != 0) {
            fprintf(stderr, "nc-bench: %s: %s\n", arch, err);
            nc_model_destroy(m);
            failed = 1;
            continue;
        }
        for (int train = 1; train >= 0; train--) {
            if ((train && !c.do_train) || (!train && !c.do_infer)) continue;
            result *r = &res[nres];
            snprintf(r->arch, sizeof r->arch, "%s", arch);
            r->conv_macs = net.conv_macs;
            r->linear_macs = net.linear_macs;
            r->flops = (train ? 3.0 : 1.0) * bench_forward_flops(&net) * batch;
            if (time_mode(ctx, comm, m, train, x, y, batch, in_c, size, warmup, runs, r) != 0) {
                failed = 1;
                continue;
            }
            printf("%-18s %-11s %6d %5d %10.1f %10.1f %10.1f %9.2f %9.1f %9.1f %9.2f\n", r->arch, r->mode, batch,
                   size, 1e3 * r->median_s, 1e3 * r->min_s, batch / r->median_s, r->flops / r->median_s * 1e-9,
                   r->rss_setup_mb, r->peak_rss_mb, r->flops * 1e-9);
            fflush(stdout);
            nres++;
        }
        bench_net_free(&net);
        nc_model_destroy(m);
    }
    if (json) {
        FILE *f = bench_json_open(json);
        if (!f) {
            failed = 1;
        } else {
            write_json(f, &c, nc_backend_name(nc_context_backend(ctx)), rss_start, res, nres);
            bench_json_close(f);
        }
    }
    free(list);
    free(res);
    free(x);
    free(y);
    if (distributed) bench_dist_end(comm, failed);
    nc_context_destroy(ctx);
    return failed;
}
