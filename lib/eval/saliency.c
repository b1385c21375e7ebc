/* saliency.c — Grad-CAM and input-gradient saliency (nc_saliency). The model is rebuilt
 * as an eval-mode twin with the same builder calls: each batch norm becomes the
 * per-channel affine map it is in eval mode (a depthwise 1x1 convolution, or a diagonal
 * linear layer after a BatchNorm1d), dropout is left out, and an identity depthwise
 * convolution in front of the first layer gives the input a gradient. The twin's
 * training plan then runs the eval function forward and backward (graph/exec.h,
 * nc__plan_forward_tap / nc__plan_backward_taps), from a one-hot gradient on the
 * explained logit. */
#include "core/context.h"
#include "core/model.h"
#include "graph/exec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct nc_saliency {
    nc_model *m;               /* explained (borrowed) */
    nc_model *twin;            /* owned */
    int *map;                  /* [m's nodes]: the twin's value of each node */
    int *fold;                 /* [twin's nodes]: the batch norm of m a twin node folds, or -1 */
    int layer;                 /* m's node explained by the CAM */
    uint64_t version;          /* m->param_version the twin's weights were copied at */
    int copied;                /* 1 once they were */
    nc__plan *plan;            /* the twin's training plan of the last input shape */
};

static const char *const IDENTITY = "saliency.input";

/* ------------------------------------------------------------------ the layer */

/* Builder names of unnamed nodes: "<op>_<n>" or "<op>_<n>_<k>", no '.'. */
static int auto_named(const char *name) {
    const char *u = strchr(name, '_');
    if (!u || strchr(name, '.') || u == name) return 0;
    for (const char *p = u + 1; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '_')) return 0;
    return 1;
}

static int under(const char *name, const char *prefix, size_t len) {
    return strncmp(name, prefix, len) == 0 && name[len] == '.';
}

/* The output of module `name`: its exact node, else the last node of the run that
 * starts at the module's first node and goes on through its sub-modules and unnamed
 * nodes. -1 when no node belongs to it. */
static int module_output(const nc__graph *g, const char *name) {
    for (int i = 1; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    const size_t len = strlen(name);
    int first = -1;
    for (int i = 1; i < g->n_nodes && first < 0; i++)
        if (under(g->nodes[i].name, name, len)) first = i;
    if (first < 0) return -1;
    int last = first;
    for (int i = first + 1; i < g->n_nodes; i++) {
        const char *n = g->nodes[i].name;
        if (!under(n, name, len) && !auto_named(n)) break;
        last = i;
    }
    return last;
}

/* The input of the last adaptive average pool, else the last spatial node. */
static int default_layer(const nc__graph *g) {
    for (int i = g->n_nodes - 1; i >= 1; i--)
        if (g->nodes[i].op == NC__OP_ADAPTIVE_AVGPOOL) return g->nodes[i].inputs[0];
    for (int i = g->n_nodes - 1; i >= 1; i--)
        if (g->nodes[i].rank == 4) return i;
    return -1;
}

static nc_status find_layer(nc_context *ctx, const nc__graph *g, const char *name, int *out) {
    int i = name ? module_output(g, name) : default_layer(g);
    if (i < 0)
        return name ? nc__error(ctx, NC_ERR_NOT_FOUND,
                                "nc_saliency_create: no layer '%s' (node names are torchvision module paths, e.g. "
                                "\"layer4\", \"layer4.1.conv2\", \"features\")",
                                name)
                    : nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_saliency_create: the model has no spatial layer");
    if (g->nodes[i].rank != 4)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_saliency_create: layer '%s' (node %s) is not a spatial (N, C, H, W) value",
                         name ? name : "(default)", g->nodes[i].name);
    *out = i;
    return NC_OK;
}

/* ------------------------------------------------------------------ the twin */

static nc_status emit_bn(nc_builder *b, const nc__node *nd, nc_value x, nc_value *out) {
    char name[256];
    snprintf(name, sizeof name, "%s.folded", nd->name);
    if (nd->rank == 4)
        return nc_builder_conv2d(b, name, x, (int)nd->channels, 1, 1, 0, 1, (int)nd->channels, 1, out);
    return nc_builder_linear(b, name, x, (int)nd->channels, 1, out);
}

/* Node i of g again, into the twin; map holds the twin's values of g's nodes. */
static nc_status emit_node(nc_builder *b, const nc__node *nd, const int *map, nc_value *out) {
    const nc_value x = nd->n_inputs ? map[nd->inputs[0]] : -1;
    const nc__pool_attr *pa = &nd->attr.pool;
    const nc__conv_attr *ca = &nd->attr.conv;
    switch (nd->op) {
    case NC__OP_CONV2D:
        return nc_builder_conv2d(b, nd->name, x, (int)ca->out_channels, (int)ca->kh, (int)ca->stride_h,
                                 (int)ca->pad_h, (int)ca->dil_h, (int)ca->groups, ca->bias, out);
    case NC__OP_BATCHNORM: return emit_bn(b, nd, x, out);
    case NC__OP_RELU: return nc_builder_relu(b, x, out);
    case NC__OP_MAXPOOL: return nc_builder_max_pool2d(b, x, (int)pa->kh, (int)pa->stride_h, (int)pa->pad_h, out);
    case NC__OP_AVGPOOL: return nc_builder_avg_pool2d(b, x, (int)pa->kh, (int)pa->stride_h, (int)pa->pad_h, out);
    case NC__OP_ADAPTIVE_AVGPOOL: return nc_builder_adaptive_avg_pool2d(b, x, (int)pa->out_h, (int)pa->out_w, out);
    case NC__OP_ADD: return nc_builder_add(b, x, map[nd->inputs[1]], out);
    case NC__OP_LINEAR: return nc_builder_linear(b, nd->name, x, (int)nd->attr.linear.out_features,
                                                 nd->attr.linear.bias, out);
    case NC__OP_DROPOUT: *out = x; return NC_OK; /* identity in eval mode */
    case NC__OP_FLATTEN: return nc_builder_flatten(b, x, out);
    case NC__OP_CONCAT: {
        nc_value xs[NC__MAX_CONCAT];
        for (int k = 0; k < nd->n_inputs; k++) xs[k] = map[nd->inputs[k]];
        return nc_builder_concat(b, xs, nd->n_inputs, out);
    }
    case NC__OP_INPUT:
    case NC__OP_COUNT: break;
    }
    return NC_ERR_UNSUPPORTED;
}

static nc_status build_twin(nc_saliency *s) {
    const nc__graph *g = s->m->graph;
    nc_context *ctx = s->m->ctx;
    nc_builder *b = NULL;
    nc_value in;
    nc_status st = nc_builder_create(ctx, g->in_channels, &b, &in);
    if (st == NC_OK)
        st = nc_builder_conv2d(b, IDENTITY, in, g->in_channels, 1, 1, 0, 1, g->in_channels, 0, &s->map[0]);
    for (int i = 1; i < g->n_nodes && st == NC_OK; i++) st = emit_node(b, &g->nodes[i], s->map, &s->map[i]);
    if (st == NC_OK) st = nc_builder_finish(b, s->map[g->output], g->num_heads, 0, &s->twin);
    nc_builder_destroy(b);
    if (st != NC_OK) return nc__error_prefix(ctx, st, "nc_saliency_create: rebuilding the model");
    const nc__graph *t = s->twin->graph;
    s->fold = nc__alloc(ctx, (size_t)t->n_nodes * sizeof *s->fold);
    if (!s->fold) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_saliency_create: out of memory");
    for (int j = 0; j < t->n_nodes; j++) s->fold[j] = -1;
    for (int i = 1; i < g->n_nodes; i++)
        if (g->nodes[i].op == NC__OP_BATCHNORM) s->fold[s->map[i]] = i;
    return nc__model_ensure_grads(s->twin);
}

/* ------------------------------------------------------------------ weights */

/* The eval-mode batch norm `bn` of m as scale (C) and shift (C), in double. */
static nc_status bn_affine(const nc_model *m, int bn, float *host, float *scale, float *shift) {
    const nc__node *nd = &m->graph->nodes[bn];
    const nc__backend *be = m->ctx->backend;
    const int64_t C = nd->channels;
    nc_status st = NC_OK;
    for (int k = 0; k < 4 && st == NC_OK; k++) {
        const nc__tensor_def *t = &m->graph->tensors[nd->tensors[k]];
        st = be->download(m->ctx->backend_state, host + k * C, nc__model_tensor_ptr(m, nd->tensors[k]), &t->shape);
    }
    for (int64_t c = 0; c < C && st == NC_OK; c++) {
        double sc = (double)host[c] / sqrt((double)host[3 * C + c] + (double)nd->attr.bn.eps);
        scale[c] = (float)sc;
        shift[c] = (float)((double)host[C + c] - (double)host[2 * C + c] * sc);
    }
    return st;
}

/* Values of twin tensor j: the identity, a folded batch norm, or m's tensor of that name. */
static nc_status twin_tensor(nc_saliency *s, int j, float *host, float *vals) {
    const nc__graph *t = s->twin->graph;
    const nc__tensor_def *td = &t->tensors[j];
    const nc__backend *be = s->m->ctx->backend;
    if (strncmp(td->name, IDENTITY, strlen(IDENTITY)) == 0) {
        for (int64_t k = 0; k < td->shape.d[0]; k++) vals[k] = 1.0f;
        return NC_OK;
    }
    const int bn = s->fold[td->node];
    if (bn < 0) {
        int i = nc__graph_find_tensor(s->m->graph, td->name);
        if (i < 0) return nc__error(s->m->ctx, NC_ERR_STATE, "internal: saliency twin tensor %s", td->name);
        return be->download(s->m->ctx->backend_state, vals, nc__model_tensor_ptr(s->m, i), &td->shape);
    }
    const int64_t C = s->m->graph->nodes[bn].channels;
    float *scale = host + 4 * C, *shift = host + 5 * C;
    nc_status st = bn_affine(s->m, bn, host, scale, shift);
    if (st != NC_OK) return st;
    const int is_bias = td->role == NC__ROLE_BIAS;
    if (is_bias || td->shape.ndim == 4) {
        memcpy(vals, is_bias ? shift : scale, (size_t)C * sizeof *vals);
    } else { /* BatchNorm1d: a diagonal (C, C) linear weight */
        memset(vals, 0, (size_t)(C * C) * sizeof *vals);
        for (int64_t c = 0; c < C; c++) vals[c * C + c] = scale[c];
    }
    return NC_OK;
}

/* Copies m's weights into the twin when m changed since the last copy (read side of
 * m's gate held by the caller). */
static nc_status refresh(nc_saliency *s) {
    if (s->copied && s->version == s->m->param_version) return NC_OK;
    nc_context *ctx = s->m->ctx;
    const nc__graph *t = s->twin->graph;
    int64_t most = 1; /* floats: the largest tensor, and 6 C of a folded batch norm */
    for (int i = 1; i < s->m->graph->n_nodes; i++)
        if (s->m->graph->nodes[i].op == NC__OP_BATCHNORM && 6 * s->m->graph->nodes[i].channels > most)
            most = 6 * s->m->graph->nodes[i].channels;
    for (int j = 0; j < t->n_tensors; j++) {
        int64_t n = 1;
        for (int d = 0; d < t->tensors[j].shape.ndim; d++) n *= t->tensors[j].shape.d[d];
        most = n > most ? n : most;
    }
    float *host = nc__alloc(ctx, (size_t)most * sizeof *host), *vals = nc__alloc(ctx, (size_t)most * sizeof *vals);
    nc_status st = host && vals ? NC_OK : nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_saliency: out of memory");
    for (int j = 0; j < t->n_tensors && st == NC_OK; j++) {
        if (t->tensors[j].role == NC__ROLE_NUM_BATCHES) continue;
        st = twin_tensor(s, j, host, vals);
        if (st == NC_OK)
            st = ctx->backend->upload(ctx->backend_state, nc__model_tensor_ptr(s->twin, j), vals, &t->tensors[j].shape);
    }
    nc__free(ctx, host);
    nc__free(ctx, vals);
    if (st == NC_OK) {
        nc__model_params_changed(s->twin);
        s->version = s->m->param_version;
        s->copied = 1;
    }
    return st;
}

/* ------------------------------------------------------------------- public */

nc_status nc_saliency_create(nc_model *m, const char *layer, nc_saliency **out) {
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_saliency_create: out is NULL");
    *out = NULL;
    nc_saliency *s = nc__calloc(ctx, 1, sizeof *s);
    if (!s) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_saliency_create: out of memory");
    s->m = m;
    nc__model_read_begin(m);
    nc_status st = find_layer(ctx, m->graph, layer, &s->layer);
    if (st == NC_OK) {
        s->map = nc__alloc(ctx, (size_t)m->graph->n_nodes * sizeof *s->map);
        st = s->map ? build_twin(s) : nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_saliency_create: out of memory");
    }
    if (st == NC_OK) st = refresh(s);
    nc__model_read_end(m);
    if (st != NC_OK) {
        nc_saliency_destroy(s);
        return st;
    }
    *out = s;
    return NC_OK;
}

void nc_saliency_destroy(nc_saliency *s) {
    if (!s) return;
    nc_context *ctx = s->m->ctx;
    nc__plan_destroy(s->plan);
    nc_model_destroy(s->twin);
    nc__free(ctx, s->map);
    nc__free(ctx, s->fold);
    nc__free(ctx, s);
}

const char *nc_saliency_layer(const nc_saliency *s) { return s ? s->m->graph->nodes[s->layer].name : NULL; }

/* Bilinear resize of one (fh, fw) map to (h, w), align_corners = false as torch's
 * upsample_bilinear2d: source = (dst + 0.5) * in / out - 0.5, clamped at 0. */
static void resize_bilinear(const float *src, int fh, int fw, float *dst, int h, int w) {
    const float sy = (float)fh / (float)h, sx = (float)fw / (float)w;
    for (int y = 0; y < h; y++) {
        float fy = ((float)y + 0.5f) * sy - 0.5f;
        if (fy < 0.0f) fy = 0.0f;
        int y0 = (int)fy, y1 = y0 + (y0 < fh - 1);
        float ly = fy - (float)y0;
        for (int x = 0; x < w; x++) {
            float fx = ((float)x + 0.5f) * sx - 0.5f;
            if (fx < 0.0f) fx = 0.0f;
            int x0 = (int)fx, x1 = x0 + (x0 < fw - 1);
            float lx = fx - (float)x0;
            dst[(size_t)y * (size_t)w + (size_t)x] =
                (1.0f - ly) * ((1.0f - lx) * src[y0 * fw + x0] + lx * src[y0 * fw + x1]) +
                ly * ((1.0f - lx) * src[y1 * fw + x0] + lx * src[y1 * fw + x1]);
        }
    }
}

/* cam (n, h, w) from the layer's activations a and gradients da, both (n, K, fh, fw):
 * ReLU(sum_k mean(da_k) a_k), resized. fmap: scratch of fh * fw floats. */
static void grad_cam(const float *a, const float *da, const nc__shape *ls, int h, int w, float *fmap, float *cam) {
    const int64_t n = ls->d[0], K = ls->d[1], fh = ls->d[2], fw = ls->d[3], hw = fh * fw;
    for (int64_t i = 0; i < n; i++) {
        memset(fmap, 0, (size_t)hw * sizeof *fmap);
        for (int64_t k = 0; k < K; k++) {
            const float *ak = a + (i * K + k) * hw, *gk = da + (i * K + k) * hw;
            double alpha = 0.0;
            for (int64_t p = 0; p < hw; p++) alpha += gk[p];
            const float al = (float)(alpha / (double)hw);
            for (int64_t p = 0; p < hw; p++) fmap[p] += al * ak[p];
        }
        for (int64_t p = 0; p < hw; p++) fmap[p] = fmap[p] > 0.0f ? fmap[p] : 0.0f;
        resize_bilinear(fmap, (int)fh, (int)fw, cam + (size_t)i * (size_t)h * (size_t)w, h, w);
    }
}

/* The explained classes (given, or each row's top-1 of `head`) and the one-hot output
 * gradient they give. */
static nc_status pick_classes(nc_context *ctx, const float *logits, int n, int heads, int K, int head,
                              const int32_t *given, int32_t *used, float *onehot) {
    memset(onehot, 0, (size_t)n * (size_t)heads * (size_t)K * sizeof *onehot);
    for (int i = 0; i < n; i++) {
        const float *z = logits + ((size_t)i * (size_t)heads + (size_t)head) * (size_t)K;
        int c = 0;
        if (given) {
            c = given[i];
            if (c < 0 || c >= K)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_saliency_compute: classes[%d] = %d is not in [0, %d)",
                                 i, c, K);
        } else {
            for (int k = 1; k < K; k++)
                if (z[k] > z[c]) c = k;
        }
        used[i] = c;
        onehot[((size_t)i * (size_t)heads + (size_t)head) * (size_t)K + (size_t)c] = 1.0f;
    }
    return NC_OK;
}

/* Host buffers of one computation. */
typedef struct work {
    float *a, *da, *dx, *logits, *onehot, *fmap;
    int32_t *used;
} work;

static nc_status run(nc_saliency *s, const float *x, const nc__shape *in, int head, const int32_t *classes,
                     work *wk, int want_cam, float *input_grad) {
    nc__plan *p = s->plan;
    const int tap = s->map[s->layer];
    const nc__graph *tg = s->twin->graph;
    const int heads = tg->num_heads, K = nc_model_num_outputs(s->twin) / heads, n = (int)in->d[0];
    nc_status st = nc__plan_forward_tap(p, x, 1, 0, want_cam ? tap : -1, wk->a);
    if (st == NC_OK) st = nc__plan_read_output(p, wk->logits);
    if (st == NC_OK) st = pick_classes(s->m->ctx, wk->logits, n, heads, K, head, classes, wk->used, wk->onehot);
    if (st != NC_OK) return st;
    const nc__value_desc od = nc__plan_value_desc(p, tg->output);
    st = s->m->ctx->backend->value_upload(nc__plan_backend_state(p), &od, nc__plan_output_grad(p), wk->onehot);
    int taps[2];
    float *hosts[2];
    int nt = 0;
    if (want_cam) taps[nt] = tap, hosts[nt++] = wk->da;
    if (input_grad) taps[nt] = s->map[0], hosts[nt++] = input_grad;
    if (st == NC_OK) st = nc__plan_backward_taps(p, taps, hosts, nt);
    return st;
}

static size_t numel(const nc__shape *s) {
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (size_t)s->d[d];
    return n;
}

static nc_status compute(nc_saliency *s, const float *x, int n, int c, int h, int w, int head,
                         const int32_t *classes, int32_t *classes_used, float *cam, float *input_grad) {
    static const char fn[] = "nc_saliency_compute";
    nc_context *ctx = s->m->ctx;
    if (!x) return nc__error(ctx, NC_ERR_NULL, "%s: x is NULL", fn);
    if (head < 0 || head >= s->m->graph->num_heads)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: head %d is not in [0, %d)", fn, head,
                         s->m->graph->num_heads);
    const nc__shape in = nc__shape4(n, c, h, w);
    nc_status st = refresh(s);
    if (st == NC_OK) st = nc__plan_get(s->twin, &s->plan, 1, &in);
    if (st != NC_OK) return nc__error_prefix(ctx, st, "%s", fn);
    const nc__shape *ls = &s->plan->shapes[s->map[s->layer]];
    const size_t outs = (size_t)n * (size_t)nc_model_num_outputs(s->twin), lay = numel(ls);
    const size_t fhw = (size_t)ls->d[2] * (size_t)ls->d[3];
    work wk = {.a = nc__alloc(ctx, lay * sizeof(float)), .da = nc__alloc(ctx, lay * sizeof(float)),
               .logits = nc__alloc(ctx, outs * sizeof(float)), .onehot = nc__alloc(ctx, outs * sizeof(float)),
               .fmap = nc__alloc(ctx, fhw * sizeof(float)), .used = nc__alloc(ctx, (size_t)n * sizeof(int32_t))};
    if (!wk.a || !wk.da || !wk.logits || !wk.onehot || !wk.fmap || !wk.used)
        st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (st == NC_OK) st = run(s, x, &in, head, classes, &wk, cam != NULL, input_grad);
    if (st == NC_OK && cam) grad_cam(wk.a, wk.da, ls, h, w, wk.fmap, cam);
    if (st == NC_OK && classes_used) memcpy(classes_used, wk.used, (size_t)n * sizeof *classes_used);
    nc__free(ctx, wk.a);
    nc__free(ctx, wk.da);
    nc__free(ctx, wk.logits);
    nc__free(ctx, wk.onehot);
    nc__free(ctx, wk.fmap);
    nc__free(ctx, wk.used);
    return st;
}

nc_status nc_saliency_compute(nc_saliency *s, const float *x, int n, int c, int h, int w, int head,
                              const int32_t *classes, int32_t *classes_used, float *cam, float *input_grad) {
    if (!s) return NC_ERR_NULL;
    nc__model_read_begin(s->m);
    nc_status st = compute(s, x, n, c, h, w, head, classes, classes_used, cam, input_grad);
    nc__model_read_end(s->m);
    return st;
}
