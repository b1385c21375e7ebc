/* flops.c — counts a model's multiply-accumulates from the public API only: the
 * layer table of nc_model_summary (output shapes, in graph order) and the weight
 * shapes of nc_model_tensor_info. Conv2d: out_c*out_h*out_w * (C/groups)*k*k MACs per
 * image; Linear: out*in. The convention (fvcore's, also torchvision's GFLOPS column)
 * ignores batchnorm, activations, pooling and additions; docs/performance.md. */
#include "bench.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t errsz, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* "[-1, 64, 112, 112]" without the brackets -> dims after the batch. */
static int parse_shape(const char *s, int *dims, int max) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v != -1) return -1;
    int n = 0;
    for (s = end; *s == ','; s = end) {
        v = strtol(s + 1, &end, 10);
        if (end == s + 1 || v < 1 || v > (1L << 30) || n == max) return -1;
        dims[n++] = (int)v;
    }
    return *s == 0 ? n : -1;
}

static const nc_tensor_info *find_weight(const nc_tensor_info *ti, int nt, const char *layer) {
    size_t l = strlen(layer);
    for (int i = 0; i < nt; i++)
        if (strncmp(ti[i].name, layer, l) == 0 && strcmp(ti[i].name + l, ".weight") == 0) return &ti[i];
    return NULL;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The layer whose output feeds convolution i: the previous row of the table, except
 * for a residual shortcut ("<block>.downsample.0"), which reads the block's input,
 * i.e. the row before "<block>.conv1". -1 = the network input. */
static int conv_source(const bench_net *net, int i, char *err, size_t errsz) {
    const char *name = net->layers[i].name;
    if (!ends_with(name, ".downsample.0")) return i - 1;
    char first[160];
    snprintf(first, sizeof first, "%.*s.conv1", (int)(strlen(name) - strlen(".downsample.0")), name);
    for (int j = 0; j < i; j++)
        if (strcmp(net->layers[j].name, first) == 0) return j - 1;
    set_err(err, errsz, "%s: no %s before it to find the block input", name, first);
    return -2;
}

static int analyze_conv(bench_net *net, int i, const nc_tensor_info *w, int in_c, int h, int wd, char *err,
                        size_t errsz) {
    bench_layer *L = &net->layers[i];
    int src = conv_source(net, i, err, errsz);
    if (src == -2) return -1;
    if (src >= 0 && net->layers[src].ndim != 4) {
        set_err(err, errsz, "%s: input %s is not 4-D", L->name, net->layers[src].name);
        return -1;
    }
    L->in_c = src >= 0 ? net->layers[src].out_c : in_c;
    L->in_h = src >= 0 ? net->layers[src].out_h : h;
    L->in_w = src >= 0 ? net->layers[src].out_w : wd;
    if (w->ndim != 4 || w->shape[0] != L->out_c || w->shape[2] != w->shape[3] || L->in_c % w->shape[1] != 0) {
        set_err(err, errsz, "%s: weight (%lld, %lld, %lld, %lld) does not fit input %d x %dx%d, output %d", L->name,
                (long long)w->shape[0], (long long)w->shape[1], (long long)w->shape[2], (long long)w->shape[3],
                L->in_c, L->in_h, L->in_w, L->out_c);
        return -1;
    }
    L->kernel = (int)w->shape[2];
    L->groups = L->in_c / (int)w->shape[1];
    L->padding = L->kernel / 2; /* every built-in architecture pads "same" */
    L->stride = 0;
    for (int s = 1; s <= 8 && !L->stride; s++)
        if ((L->in_h + 2 * L->padding - L->kernel) / s + 1 == L->out_h &&
            (L->in_w + 2 * L->padding - L->kernel) / s + 1 == L->out_w)
            L->stride = s;
    if (!L->stride) {
        set_err(err, errsz, "%s: no stride maps %dx%d to %dx%d with a %dx%d kernel", L->name, L->in_h, L->in_w,
                L->out_h, L->out_w, L->kernel, L->kernel);
        return -1;
    }
    L->macs = (int64_t)L->out_c * L->out_h * L->out_w * w->shape[1] * L->kernel * L->kernel;
    return 0;
}

int bench_net_analyze(nc_model *model, int h, int w, bench_net *net, char *err, size_t errsz) {
    memset(net, 0, sizeof *net);
    size_t need = 0;
    char *text = NULL;
    nc_tensor_info *ti = NULL;
    int nt = nc_model_num_tensors(model), rc = -1, rules = 0, weights4 = 0, weights2 = 0;
    nc_status st = nc_model_summary(model, h, w, NULL, 0, &need);
    if (st != NC_OK && st != NC_ERR_LIMIT) {
        set_err(err, errsz, "summary at %dx%d: %s", h, w, nc_context_last_error(nc_model_context(model)));
        return -1;
    }
    text = malloc(need);
    ti = calloc((size_t)(nt > 0 ? nt : 1), sizeof *ti);
    const size_t cap = need / 16 + 1; /* a table row is longer than 16 characters */
    net->layers = calloc(cap, sizeof *net->layers);
    if (!text || !ti || !net->layers) {
        set_err(err, errsz, "out of memory");
        goto done;
    }
    if (nc_model_summary(model, h, w, text, need, NULL) != NC_OK) {
        set_err(err, errsz, "summary: %s", nc_context_last_error(nc_model_context(model)));
        goto done;
    }
    for (int i = 0; i < nt; i++) {
        if (nc_model_tensor_info(model, i, &ti[i]) != NC_OK) {
            set_err(err, errsz, "tensor %d: %s", i, nc_context_last_error(nc_model_context(model)));
            goto done;
        }
        if (ti[i].trainable && ends_with(ti[i].name, ".weight")) {
            weights4 += ti[i].ndim == 4;
            weights2 += ti[i].ndim == 2;
        }
    }
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '=') {
            if (++rules == 2) break;
            continue;
        }
        if (rules != 1) continue;
        if ((size_t)net->n == cap) {
            set_err(err, errsz, "summary has more rows than expected");
            goto done;
        }
        bench_layer *L = &net->layers[net->n];
        char shape[128];
        int dims[3];
        if (sscanf(line, "%127s (%31[^)]) [%127[^]]]", L->name, L->type, shape) != 3) {
            set_err(err, errsz, "cannot parse summary row '%s'", line);
            goto done;
        }
        int nd = parse_shape(shape, dims, 3);
        if (nd != 1 && nd != 3) {
            set_err(err, errsz, "cannot parse the shape of summary row '%s'", line);
            goto done;
        }
        L->ndim = nd + 1;
        L->out_c = dims[0];
        L->out_h = nd == 3 ? dims[1] : 1;
        L->out_w = nd == 3 ? dims[2] : 1;
        int is_conv = strcmp(L->type, "Conv2d") == 0, is_linear = strcmp(L->type, "Linear") == 0;
        const nc_tensor_info *wt = is_conv || is_linear ? find_weight(ti, nt, L->name) : NULL;
        if ((is_conv || is_linear) && !wt) {
            set_err(err, errsz, "%s (%s): no tensor %s.weight", L->name, L->type, L->name);
            goto done;
        }
        net->n++;
        if (is_conv) {
            if (analyze_conv(net, net->n - 1, wt, nc_model_in_channels(model), h, w, err, errsz) != 0) goto done;
            net->convs++;
            net->conv_macs += L->macs;
        } else if (is_linear) {
            if (wt->ndim != 2 || wt->shape[0] != L->out_c) {
                set_err(err, errsz, "%s: weight does not match its %d outputs", L->name, L->out_c);
                goto done;
            }
            L->in_c = (int)wt->shape[1];
            L->in_h = L->in_w = 1;
            L->macs = wt->shape[0] * wt->shape[1];
            net->linears++;
            net->linear_macs += L->macs;
        }
    }
    /* Every 4-D weight belongs to a counted convolution, every 2-D one to a linear layer. */
    if (net->convs != weights4 || net->linears != weights2) {
        set_err(err, errsz, "counted %d convolutions and %d linear layers, but the model has %d 4-D and %d 2-D weights",
                net->convs, net->linears, weights4, weights2);
        goto done;
    }
    rc = 0;
done:
    free(text);
    free(ti);
    if (rc != 0) bench_net_free(net);
    return rc;
}

void bench_net_free(bench_net *net) {
    if (!net) return;
    free(net->layers);
    memset(net, 0, sizeof *net);
}
