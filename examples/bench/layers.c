/* layers.c — nc-bench --layers: every distinct convolution of an architecture, timed
 * alone. Each becomes a one-conv model built with nc_builder_*: input -> ReLU -> conv
 * (the layer's exact channels, kernel, stride, padding, groups, input size; no bias)
 * -> global average pool -> flatten, whose K pooled outputs are the logits. The ReLU
 * makes the convolution's input gradient part of the backward pass, as inside the
 * network. compare_pytorch.py --layers times the same graph in PyTorch. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

typedef struct layer_result {
    const bench_layer *layer; /* first occurrence in the network */
    int count;                /* occurrences of this shape */
    double fwd_s, fwd_min_s, train_s, train_min_s;
} layer_result;

static int same_shape(const bench_layer *a, const bench_layer *b) {
    return a->in_c == b->in_c && a->in_h == b->in_h && a->in_w == b->in_w && a->out_c == b->out_c &&
           a->kernel == b->kernel && a->stride == b->stride && a->padding == b->padding && a->groups == b->groups;
}

/* Builds the one-conv model and checks that its output matches the network's layer;
 * prints why when it fails. */
static nc_status build_conv_model(nc_context *ctx, const bench_layer *L, nc_model **out) {
    nc_builder *b = NULL;
    nc_value v;
    nc_status st = nc_builder_create(ctx, L->in_c, &b, &v);
    if (st == NC_OK) {
        nc_builder_relu(b, v, &v);
        nc_builder_conv2d(b, "conv", v, L->out_c, L->kernel, L->stride, L->padding, 1, L->groups, 0, &v);
        nc_builder_adaptive_avg_pool2d(b, v, 1, 1, &v);
        nc_builder_flatten(b, v, &v);
        st = nc_builder_finish(b, v, 1, 1, out); /* returns the builder's first error */
    }
    nc_builder_destroy(b);
    if (st != NC_OK) {
        fprintf(stderr, "nc-bench: layer %s: %s: %s\n", L->name, nc_status_str(st), nc_context_last_error(ctx));
        return st;
    }
    bench_net check;
    char err[256];
    if (bench_net_analyze(*out, L->in_h, L->in_w, &check, err, sizeof err) != 0) {
        fprintf(stderr, "nc-bench: %s: %s\n", L->name, err);
        st = NC_ERR_SHAPE;
    } else {
        const bench_layer *c = NULL;
        for (int i = 0; i < check.n; i++)
            if (strcmp(check.layers[i].type, "Conv2d") == 0) c = &check.layers[i];
        if (!c || c->out_h != L->out_h || c->out_w != L->out_w || c->macs != L->macs) {
            fprintf(stderr, "nc-bench: %s: the one-conv model does not reproduce the layer's shape\n", L->name);
            st = NC_ERR_SHAPE;
        }
        bench_net_free(&check);
    }
    if (st != NC_OK) {
        nc_model_destroy(*out);
        *out = NULL;
    }
    return st;
}

static nc_status time_layer(nc_context *ctx, const bench_common *c, layer_result *r) {
    const bench_layer *L = r->layer;
    const int n = c->batch;
    size_t count = (size_t)n * (size_t)L->in_c * (size_t)L->in_h * (size_t)L->in_w;
    float *x = malloc(count * sizeof *x);
    float *logits = malloc((size_t)n * (size_t)L->out_c * sizeof *logits);
    int32_t *y = malloc((size_t)n * sizeof *y);
    double *t = malloc((size_t)c->runs * sizeof *t);
    nc_model *m = NULL;
    nc_trainer *tr = NULL;
    nc_status st = x && logits && y && t ? NC_OK : NC_ERR_OUT_OF_MEMORY;
    if (st == NC_OK) {
        for (size_t i = 0; i < count; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        for (int i = 0; i < n; i++) y[i] = i % L->out_c;
        if ((st = build_conv_model(ctx, L, &m)) != NC_OK) goto done; /* reported */
    } else {
        fprintf(stderr, "nc-bench: layer %s: out of memory\n", L->name);
        goto done;
    }
    if (st == NC_OK && c->do_infer) {
        for (int i = 0; st == NC_OK && i < c->warmup + c->runs; i++) {
            double t0 = bench_now_s();
            st = nc_model_forward(m, x, n, L->in_c, L->in_h, L->in_w, logits);
            if (i >= c->warmup) t[i - c->warmup] = bench_now_s() - t0;
        }
        if (st == NC_OK) {
            r->fwd_s = bench_median(t, c->runs);
            r->fwd_min_s = t[0];
        }
    }
    if (st == NC_OK && c->do_train) {
        nc_trainer_options to;
        nc_trainer_options_init(&to);
        to.lr = 1e-4f;
        st = nc_trainer_create(m, &to, &tr);
        for (int i = 0; st == NC_OK && i < c->warmup + c->runs; i++) {
            double t0 = bench_now_s();
            st = nc_trainer_step(tr, x, y, n, L->in_c, L->in_h, L->in_w, NULL);
            if (i >= c->warmup) t[i - c->warmup] = bench_now_s() - t0;
        }
        if (st == NC_OK) {
            r->train_s = bench_median(t, c->runs);
            r->train_min_s = t[0];
        }
    }
    if (st != NC_OK)
        fprintf(stderr, "nc-bench: layer %s: %s: %s\n", L->name, nc_status_str(st), nc_context_last_error(ctx));
done:
    nc_trainer_destroy(tr);
    nc_model_destroy(m);
    free(x);
    free(logits);
    free(y);
    free(t);
    return st;
}

static double gflops(double flops, double s) { return s > 0 ? flops / s * 1e-9 : 0.0; }

int bench_layers(const bench_common *c, const nc_model_options *mo) {
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = c->backend;
    co.conv_algorithm = c->conv_algorithm;
    co.num_threads = c->threads;
    nc_context *ctx = NULL;
    nc_model *net_model = NULL;
    bench_net net = {0};
    layer_result *res = NULL;
    int nres = 0, failed = 1;
    char err[256];
    nc_status st = nc_context_create(&co, &ctx);
    if (st != NC_OK) {
        fprintf(stderr, "nc-bench: context: %s\n", nc_status_str(st));
        return 1;
    }
    if (nc_model_create(ctx, mo, &net_model) != NC_OK) {
        fprintf(stderr, "nc-bench: %s: %s\n", mo->arch, nc_context_last_error(ctx));
        goto done;
    }
    if (bench_net_analyze(net_model, c->size, c->size, &net, err, sizeof err) != 0) {
        fprintf(stderr, "nc-bench: %s: %s\n", mo->arch, err);
        goto done;
    }
    nc_model_destroy(net_model); /* only its shapes are needed */
    net_model = NULL;
    res = calloc((size_t)net.n + 1, sizeof *res);
    if (!res) goto done;
    for (int i = 0; i < net.n; i++) {
        if (strcmp(net.layers[i].type, "Conv2d") != 0) continue;
        int j = 0;
        while (j < nres && !same_shape(res[j].layer, &net.layers[i])) j++;
        if (j == nres) res[nres++].layer = &net.layers[i];
        res[j].count++;
    }
    printf("%s at %dx%d, batch %d, %s backend, %d distinct convolutions of %d\n", mo->arch, c->size, c->size,
           c->batch, nc_backend_name(nc_context_backend(ctx)), nres, net.convs);
    printf("%-24s %5s %5s %4s %5s %5s %6s %3s %4s %8s %9s %8s %9s %8s\n", "first layer", "count", "C", "HxW", "K",
           "HoWo", "kernel", "s", "g", "MMAC/img", "fwd ms", "fwd GF/s", "train ms", "trn GF/s");
    failed = 0;
    for (int j = 0; j < nres && !failed; j++) {
        const bench_layer *L = res[j].layer;
        if (time_layer(ctx, c, &res[j]) != NC_OK) {
            failed = 1;
            break;
        }
        double f = 2.0 * (double)L->macs * c->batch;
        printf("%-24s %5d %5d %4d %5d %5d %4dx%d %3d %4d %8.1f %9.2f %8.1f %9.2f %8.1f\n", L->name, res[j].count,
               L->in_c, L->in_h, L->out_c, L->out_h, L->kernel, L->kernel, L->stride, L->groups, 1e-6 * (double)L->macs,
               1e3 * res[j].fwd_s, gflops(f, res[j].fwd_s), 1e3 * res[j].train_s, gflops(3 * f, res[j].train_s));
        fflush(stdout);
    }
    if (!failed && c->json) {
        FILE *f = bench_json_open(c->json);
        if (!f) {
            failed = 1;
        } else {
            fprintf(f,
                    "{\"mode\": \"layers\", \"arch\": \"%s\", \"backend\": \"%s\", \"threads\": %d, \"batch\": %d, "
                    "\"size\": %d, \"warmup\": %d, \"runs\": %d, \"layers\": [",
                    mo->arch, nc_backend_name(nc_context_backend(ctx)), c->threads, c->batch, c->size, c->warmup,
                    c->runs);
            for (int j = 0; j < nres; j++) {
                const bench_layer *L = res[j].layer;
                double fl = 2.0 * (double)L->macs * c->batch;
                fprintf(f,
                        "%s\n  {\"name\": \"%s\", \"count\": %d, \"in_c\": %d, \"in_h\": %d, \"in_w\": %d, "
                        "\"out_c\": %d, \"out_h\": %d, \"out_w\": %d, \"kernel\": %d, \"stride\": %d, \"padding\": %d, "
                        "\"groups\": %d, \"macs_per_image\": %lld, \"forward_flops\": %.0f, \"fwd_median_s\": %.6f, "
                        "\"fwd_min_s\": %.6f, \"fwd_gflops\": %.3f, \"train_flops\": %.0f, \"train_median_s\": %.6f, "
                        "\"train_min_s\": %.6f, \"train_gflops\": %.3f}",
                        j ? "," : "", L->name, res[j].count, L->in_c, L->in_h, L->in_w, L->out_c, L->out_h, L->out_w,
                        L->kernel, L->stride, L->padding, L->groups, (long long)L->macs, fl, res[j].fwd_s,
                        res[j].fwd_min_s, gflops(fl, res[j].fwd_s), 3 * fl, res[j].train_s, res[j].train_min_s,
                        gflops(3 * fl, res[j].train_s));
            }
            fprintf(f, "\n]}\n");
            bench_json_close(f);
        }
    }
done:
    free(res);
    bench_net_free(&net);
    nc_model_destroy(net_model);
    nc_context_destroy(ctx);
    return failed;
}
