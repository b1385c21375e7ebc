/* summary.c — nc_model_summary: a torchsummary-like layer table (name, type, output
 * shape for a 1 x C x h x w input, parameter count) with totals and memory
 * estimates, written into a caller buffer snprintf-style. */
#include "graph/graph.h"
#include "core/context.h"
#include "core/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A growable string in context memory. */
typedef struct sbuf {
    nc_context *ctx;
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *s, const char *fmt, ...) {
    if (s->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (nc__grow(s->ctx, (void **)&s->p, 1, &s->cap, s->len + (size_t)n + 1) != 0) {
        s->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

static void sb_repeat(sbuf *s, char c, int count) {
    for (int i = 0; i < count; i++) sb_printf(s, "%c", c);
    sb_printf(s, "\n");
}

/* 11689512 -> "11,689,512". */
static char *thousands(int64_t v, char *buf, size_t size) {
    char digits[32];
    int neg = v < 0;
    snprintf(digits, sizeof digits, "%lld", (long long)(neg ? -v : v));
    size_t nd = strlen(digits), o = 0;
    if (neg && o + 1 < size) buf[o++] = '-';
    for (size_t i = 0; i < nd && o + 1 < size; i++) {
        if (i > 0 && (nd - i) % 3 == 0 && o + 1 < size) buf[o++] = ',';
        if (o + 1 < size) buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

/* "[-1, 64, 112, 112]" */
static char *shape_text(const nc__shape *s, char *buf, size_t size) {
    size_t o = (size_t)snprintf(buf, size, "[-1");
    for (int i = 1; i < s->ndim && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, ", %lld", (long long)s->d[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
    return buf;
}

static const char *type_name(const nc__node *n, const nc__shape *y) {
    if (n->op == NC__OP_BATCHNORM) return y->ndim == 2 ? "BatchNorm1d" : "BatchNorm2d";
    return nc__op_name(n->op);
}

static int64_t node_params(const nc__graph *g, const nc__node *n, int trainable) {
    int64_t p = 0;
    for (int j = 0; j < n->n_tensors; j++) {
        const nc__tensor_def *t = &g->tensors[n->tensors[j]];
        int is_param = t->role == NC__ROLE_WEIGHT || t->role == NC__ROLE_BIAS;
        if (is_param && t->trainable == trainable) p += nc__shape_numel(&t->shape);
    }
    return p;
}

nc_status nc_model_summary(nc_model *model, int h, int w, char *buf, size_t size, size_t *needed) {
    if (!model || !model->graph) return nc__error(NULL, NC_ERR_NULL, "nc_model_summary: NULL model");
    nc_context *ctx = model->ctx;
    const nc__graph *g = model->graph;
    if (!buf && size > 0) return nc__error(ctx, NC_ERR_NULL, "nc_model_summary: NULL buffer with size %zu", size);
    if (needed) *needed = 0;
    if (h < 1 || w < 1)
        return nc__error(ctx, NC_ERR_SHAPE, "nc_model_summary: image size %dx%d must be at least 1x1", h, w);

    nc_status st = NC_OK;
    sbuf s = {ctx, NULL, 0, 0, 0};
    nc__shape *shapes = nc__alloc(ctx, (size_t)g->n_nodes * sizeof *shapes);
    NC_CHECK_ALLOC(ctx, shapes);
    nc__shape in = nc__shape4(1, g->in_channels, h, w);
    NC_CHECK(nc__graph_infer_shapes(g, &in, shapes));

    /* Column widths from the content. */
    char label[512], shp[96], num[40];
    int wl = (int)strlen("Layer (type)"), ws = (int)strlen("Output Shape"), wp = (int)strlen("Param #");
    for (int i = 0; i < g->n_nodes; i++) {
        const nc__node *n = &g->nodes[i];
        if (n->op == NC__OP_INPUT) continue;
        int l = snprintf(label, sizeof label, "%s (%s)", n->name, type_name(n, &shapes[i]));
        if (l > wl) wl = l < (int)sizeof label ? l : (int)sizeof label - 1;
        l = (int)strlen(shape_text(&shapes[i], shp, sizeof shp));
        if (l > ws) ws = l;
        l = (int)strlen(thousands(node_params(g, n, 1) + node_params(g, n, 0), num, sizeof num));
        if (l > wp) wp = l;
    }
    int width = wl + 3 + ws + 3 + wp;

    sb_repeat(&s, '-', width);
    sb_printf(&s, "%-*s   %*s   %*s\n", wl, "Layer (type)", ws, "Output Shape", wp, "Param #");
    sb_repeat(&s, '=', width);
    int64_t trainable = 0, frozen = 0, buffers = 0;
    double act_bytes = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const nc__node *n = &g->nodes[i];
        if (n->op == NC__OP_INPUT) continue;
        int64_t pt = node_params(g, n, 1), pf = node_params(g, n, 0);
        trainable += pt;
        frozen += pf;
        for (int j = 0; j < n->n_tensors; j++) {
            const nc__tensor_def *t = &g->tensors[n->tensors[j]];
            if (t->role == NC__ROLE_RUNNING_MEAN || t->role == NC__ROLE_RUNNING_VAR)
                buffers += nc__shape_numel(&t->shape);
        }
        act_bytes += 4.0 * (double)nc__shape_numel(&shapes[i]);
        snprintf(label, sizeof label, "%s (%s)", n->name, type_name(n, &shapes[i]));
        sb_printf(&s, "%-*s   %*s   %*s\n", wl, label, ws, shape_text(&shapes[i], shp, sizeof shp), wp,
                  thousands(pt + pf, num, sizeof num));
    }
    sb_repeat(&s, '=', width);
    sb_printf(&s, "Total params: %s\n", thousands(trainable + frozen, num, sizeof num));
    sb_printf(&s, "Trainable params: %s\n", thousands(trainable, num, sizeof num));
    sb_printf(&s, "Non-trainable params: %s\n", thousands(frozen, num, sizeof num));
    sb_printf(&s, "Buffers (running statistics): %s\n", thousands(buffers, num, sizeof num));
    sb_repeat(&s, '-', width);
    const double mb = 1024.0 * 1024.0;
    double in_bytes = 4.0 * (double)nc__shape_numel(&in);
    double par_bytes = 4.0 * (double)(trainable + frozen + buffers);
    sb_printf(&s, "Input size (MB): %.2f\n", in_bytes / mb);
    sb_printf(&s, "Forward activations (MB): %.2f\n", act_bytes / mb);
    sb_printf(&s, "Params + buffers size (MB): %.2f\n", par_bytes / mb);
    sb_printf(&s, "Estimated total size (MB): %.2f\n", (in_bytes + act_bytes + par_bytes) / mb);
    sb_repeat(&s, '-', width);
    if (s.oom) NC_CHECK_ALLOC(ctx, NULL);

    if (needed) *needed = s.len + 1;
    if (size > 0) {
        size_t n = s.len < size - 1 ? s.len : size - 1;
        memcpy(buf, s.p, n);
        buf[n] = 0;
    }
    if (s.len + 1 > size)
        st = nc__error(ctx, NC_ERR_LIMIT, "nc_model_summary: the table needs %zu bytes, buffer has %zu",
                       s.len + 1, size);
fail:
    nc__free(ctx, shapes);
    nc__free(ctx, s.p);
    return st;
}
