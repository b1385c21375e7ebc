/* builder.c — the public nc_builder_* calls and the graph container (create, clone,
 * destroy, tensor lookup). The builder validates every call eagerly against what is
 * static (ranks, channel counts, attributes, names); H and W stay dynamic and are
 * checked by nc__graph_infer_shapes. The first failure is sticky. */
#include "graph/graph.h"
#include "core/context.h"
#include "core/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Largest element count a parameter tensor may have (keeps all products in int64). */
#define NC__MAX_NUMEL ((int64_t)1 << 40)

struct nc_builder {
    nc_context *ctx;
    nc__graph *g;
    nc_status sticky;          /* first failure, NC_OK while none */
    char msg[NC__ERROR_TEXT];  /* its message, recorded again by later calls */
};

/* ------------------------------------------------------------------ graph */

static void free_node(nc_context *ctx, nc__node *n) {
    nc__free(ctx, n->name);
    nc__free(ctx, n->inputs);
    n->name = NULL;
    n->inputs = NULL;
}

void nc__graph_destroy(nc__graph *g) {
    if (!g) return;
    nc_context *ctx = g->ctx;
    for (int i = 0; i < g->n_nodes; i++) free_node(ctx, &g->nodes[i]);
    for (int i = 0; i < g->n_tensors; i++) nc__free(ctx, g->tensors[i].name);
    nc__free(ctx, g->nodes);
    nc__free(ctx, g->tensors);
    nc__free(ctx, g);
}

nc_status nc__graph_create(nc_context *ctx, int in_channels, nc__graph **out) {
    nc_status st = NC_OK;
    nc__graph *g = NULL;
    if (!ctx || !out) return nc__error(ctx, NC_ERR_NULL, "nc__graph_create: NULL argument");
    *out = NULL;
    if (in_channels < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "input: in_channels %d must be >= 1",
                         in_channels);
    g = nc__calloc(ctx, 1, sizeof *g);
    NC_CHECK_ALLOC(ctx, g);
    g->ctx = ctx;
    g->in_channels = in_channels;
    g->output = -1;
    g->num_heads = 1;
    if (nc__grow(ctx, (void **)&g->nodes, sizeof *g->nodes, &g->cap_nodes, 64) != 0)
        NC_CHECK_ALLOC(ctx, NULL);
    memset(&g->nodes[0], 0, sizeof g->nodes[0]);
    g->nodes[0].op = NC__OP_INPUT;
    g->nodes[0].name = nc__strdup(ctx, "input");
    NC_CHECK_ALLOC(ctx, g->nodes[0].name);
    g->nodes[0].rank = 4;
    g->nodes[0].channels = in_channels;
    g->n_nodes = 1;
    *out = g;
    return NC_OK;
fail:
    nc__graph_destroy(g);
    return st;
}

nc_status nc__graph_clone(const nc__graph *g, nc__graph **out) {
    nc_status st = NC_OK;
    nc__graph *c = NULL;
    if (!g || !out) return nc__error(g ? g->ctx : NULL, NC_ERR_NULL, "nc__graph_clone: NULL argument");
    nc_context *ctx = g->ctx;
    *out = NULL;
    c = nc__calloc(ctx, 1, sizeof *c);
    NC_CHECK_ALLOC(ctx, c);
    *c = *g;
    c->nodes = NULL;
    c->tensors = NULL;
    c->n_nodes = 0;
    c->n_tensors = 0;
    c->cap_nodes = 0;
    c->cap_tensors = 0;
    if (g->n_nodes > 0) {
        c->nodes = nc__calloc(ctx, (size_t)g->n_nodes, sizeof *c->nodes);
        NC_CHECK_ALLOC(ctx, c->nodes);
        c->cap_nodes = (size_t)g->n_nodes;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const nc__node *s = &g->nodes[i];
        nc__node *d = &c->nodes[i];
        *d = *s;
        d->name = NULL;
        d->inputs = NULL;
        c->n_nodes = i + 1; /* so that fail frees what was copied */
        d->name = nc__strdup(ctx, s->name);
        NC_CHECK_ALLOC(ctx, d->name);
        if (s->n_inputs > 0) {
            d->inputs = nc__alloc(ctx, (size_t)s->n_inputs * sizeof *d->inputs);
            NC_CHECK_ALLOC(ctx, d->inputs);
            memcpy(d->inputs, s->inputs, (size_t)s->n_inputs * sizeof *d->inputs);
        }
    }
    if (g->n_tensors > 0) {
        c->tensors = nc__calloc(ctx, (size_t)g->n_tensors, sizeof *c->tensors);
        NC_CHECK_ALLOC(ctx, c->tensors);
        c->cap_tensors = (size_t)g->n_tensors;
    }
    for (int i = 0; i < g->n_tensors; i++) {
        c->tensors[i] = g->tensors[i];
        c->tensors[i].name = NULL;
        c->n_tensors = i + 1;
        c->tensors[i].name = nc__strdup(ctx, g->tensors[i].name);
        NC_CHECK_ALLOC(ctx, c->tensors[i].name);
    }
    *out = c;
    return NC_OK;
fail:
    nc__graph_destroy(c);
    return st;
}

int nc__graph_find_tensor(const nc__graph *g, const char *name) {
    if (!g || !name) return -1;
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return i;
    return -1;
}

static int find_node(const nc__graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

/* --------------------------------------------------------- error handling */

/* Records a failure of builder call: message to the context, sticky status. */
static nc_status bfail(nc_builder *b, nc_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static nc_status bfail(nc_builder *b, nc_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
    b->sticky = st;
    return nc__error(b->ctx, st, "%s", b->msg);
}

/* Makes a failure already recorded in the context (e.g. out of memory) sticky. */
static nc_status bkeep(nc_builder *b, nc_status st) {
    snprintf(b->msg, sizeof b->msg, "%s", nc_context_last_error(b->ctx));
    b->sticky = st;
    return st;
}

/* Common prologue: NULL builder / output pointer, sticky error. */
static nc_status begin(nc_builder *b, const void *out, const char *who) {
    if (!b) return nc__error(NULL, NC_ERR_NULL, "%s: NULL builder", who);
    if (b->sticky != NC_OK) return nc__error(b->ctx, b->sticky, "%s", b->msg);
    if (!out) return bfail(b, NC_ERR_NULL, "%s: NULL output pointer", who);
    return NC_OK;
}

/* The name of a named layer: non-NULL, non-empty, not used by another node. */
static nc_status check_name(nc_builder *b, const char *name, const char *who) {
    if (!name) return bfail(b, NC_ERR_NULL, "%s: NULL layer name", who);
    if (!name[0]) return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: empty layer name", who);
    if (find_node(b->g, name) >= 0)
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: name '%s' already used", who, name);
    return NC_OK;
}

/* A value id that exists. */
static nc_status check_value(nc_builder *b, nc_value x, const char *who) {
    if (x < 0 || x >= b->g->n_nodes)
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: value %d does not exist (graph has %d values)",
                     who, (int)x, b->g->n_nodes);
    return NC_OK;
}

static nc_status check_rank(nc_builder *b, nc_value x, int rank, const char *who, const char *what) {
    const nc__node *n = &b->g->nodes[x];
    if (n->rank != rank)
        return bfail(b, NC_ERR_SHAPE, "%s: %s needs a %d-D input, but '%s' is %d-D", who, what, rank,
                     n->name, n->rank);
    return NC_OK;
}

/* Auto name "<prefix>_<node index>", made unique if a user took it. */
static void auto_name(const nc__graph *g, const char *prefix, char *buf, size_t size) {
    snprintf(buf, size, "%s_%d", prefix, g->n_nodes);
    for (int k = 1; find_node(g, buf) >= 0; k++) snprintf(buf, size, "%s_%d_%d", prefix, g->n_nodes, k);
}

/* ------------------------------------------------------------ node making */

/* Appends a node (name and inputs copied); rank, channels and static size are
 * copied from the first input and adjusted by the caller. */
static nc_status add_node(nc_builder *b, nc__op op, const char *name, const int *inputs,
                          int n_inputs, int *index) {
    nc__graph *g = b->g;
    nc_context *ctx = b->ctx;
    if (nc__grow(ctx, (void **)&g->nodes, sizeof *g->nodes, &g->cap_nodes, (size_t)g->n_nodes + 1) != 0)
        return bkeep(b, nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", name));
    nc__node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = nc__strdup(ctx, name);
    if (n_inputs > 0) n->inputs = nc__alloc(ctx, (size_t)n_inputs * sizeof *n->inputs);
    if (!n->name || (n_inputs > 0 && !n->inputs)) {
        free_node(ctx, n);
        return bkeep(b, nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", name));
    }
    if (n_inputs > 0) memcpy(n->inputs, inputs, (size_t)n_inputs * sizeof *inputs);
    n->n_inputs = n_inputs;
    if (n_inputs > 0) {
        const nc__node *in = &g->nodes[inputs[0]];
        n->rank = in->rank;
        n->channels = in->channels;
        n->static_h = in->static_h;
        n->static_w = in->static_w;
    }
    *index = g->n_nodes++;
    return NC_OK;
}

/* Removes the last node again (after a failure while adding its tensors). */
static void drop_last_node(nc_builder *b) {
    nc__graph *g = b->g;
    nc__node *n = &g->nodes[g->n_nodes - 1];
    for (int i = n->n_tensors - 1; i >= 0; i--) {
        nc__free(b->ctx, g->tensors[n->tensors[i]].name);
        g->n_tensors--;
    }
    free_node(b->ctx, n);
    g->n_nodes--;
}

/* Adds the tensor "<node name>.<suffix>" to the last node. */
static nc_status add_tensor(nc_builder *b, const char *suffix, nc__shape shape, nc__tensor_role role,
                            nc__init init, int64_t fan_in, int64_t fan_out) {
    nc__graph *g = b->g;
    nc_context *ctx = b->ctx;
    int node = g->n_nodes - 1;
    nc__node *n = &g->nodes[node];
    size_t len = strlen(n->name) + strlen(suffix) + 2;
    char *name = nc__alloc(ctx, len);
    if (!name) return bkeep(b, nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", n->name));
    snprintf(name, len, "%s.%s", n->name, suffix);
    if (nc__graph_find_tensor(g, name) >= 0) {
        nc_status st = bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: tensor name '%s' already used", n->name, name);
        nc__free(ctx, name);
        return st;
    }
    if (nc__grow(ctx, (void **)&g->tensors, sizeof *g->tensors, &g->cap_tensors,
                 (size_t)g->n_tensors + 1) != 0) {
        nc__free(ctx, name);
        return bkeep(b, nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", n->name));
    }
    nc__tensor_def *t = &g->tensors[g->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->shape = shape;
    t->role = role;
    t->init = init;
    t->fan_in = fan_in;
    t->fan_out = fan_out;
    t->trainable = (role == NC__ROLE_WEIGHT || role == NC__ROLE_BIAS);
    t->node = node;
    n->tensors[n->n_tensors++] = g->n_tensors++;
    return NC_OK;
}

/* Output size of a window op along one axis; < 1 when the input is too small. */
static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    int64_t num = in + 2 * p - d * (k - 1) - 1;
    if (num < 0) return 0;
    return num / s + 1;
}

/* a*b*c*d within NC__MAX_NUMEL (all factors >= 1). */
static int numel_ok(int64_t a, int64_t b2, int64_t c, int64_t d) {
    int64_t v = a;
    const int64_t f[3] = {b2, c, d};
    for (int i = 0; i < 3; i++) {
        if (f[i] > NC__MAX_NUMEL || v > NC__MAX_NUMEL / f[i]) return 0;
        v *= f[i];
    }
    return 1;
}

/* ----------------------------------------------------------- public calls */

nc_status nc_builder_create(nc_context *ctx, int in_channels, nc_builder **out, nc_value *input) {
    nc_status st = NC_OK;
    nc_builder *b = NULL;
    if (!ctx) return nc__error(NULL, NC_ERR_NULL, "nc_builder_create: NULL context");
    if (!out || !input) return nc__error(ctx, NC_ERR_NULL, "nc_builder_create: NULL output pointer");
    *out = NULL;
    if (in_channels < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_builder_create: in_channels %d must be >= 1",
                         in_channels);
    b = nc__calloc(ctx, 1, sizeof *b);
    NC_CHECK_ALLOC(ctx, b);
    b->ctx = ctx;
    NC_CHECK(nc__graph_create(ctx, in_channels, &b->g));
    *out = b;
    *input = 0;
    return NC_OK;
fail:
    nc__free(ctx, b);
    return st;
}

void nc_builder_destroy(nc_builder *b) {
    if (!b) return;
    nc__graph_destroy(b->g);
    nc__free(b->ctx, b);
}

nc__graph *nc__builder_graph(nc_builder *b) { return b ? b->g : NULL; }

nc_status nc_builder_conv2d(nc_builder *b, const char *name, nc_value x, int out_channels, int kernel,
                            int stride, int padding, int dilation, int groups, int bias,
                            nc_value *out) {
    nc_status st = begin(b, out, "nc_builder_conv2d");
    if (st != NC_OK) return st;
    if ((st = check_name(b, name, "nc_builder_conv2d")) != NC_OK) return st;
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    if ((st = check_rank(b, x, 4, name, "conv2d")) != NC_OK) return st;
    if (out_channels < 1 || kernel < 1 || stride < 1 || padding < 0 || dilation < 1 || groups < 1)
        return bfail(b, NC_ERR_INVALID_ARGUMENT,
                     "%s: invalid conv2d arguments out_channels=%d kernel=%d stride=%d padding=%d "
                     "dilation=%d groups=%d (need out_channels, kernel, stride, dilation, groups >= 1, "
                     "padding >= 0)",
                     name, out_channels, kernel, stride, padding, dilation, groups);
    const nc__node *in = &b->g->nodes[x];
    int64_t c = in->channels;
    if (c % groups != 0)
        return bfail(b, NC_ERR_SHAPE, "%s: input has %lld channels but groups=%d does not divide them",
                     name, (long long)c, groups);
    if (out_channels % groups != 0)
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: out_channels=%d is not divisible by groups=%d", name,
                     out_channels, groups);
    if (!numel_ok(out_channels, c / groups, kernel, kernel))
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: weight (%d, %lld, %d, %d) is too large", name,
                     out_channels, (long long)(c / groups), kernel, kernel);
    int64_t sh = 0, sw = 0;
    if (in->static_h > 0) {
        sh = window_out(in->static_h, kernel, stride, padding, dilation);
        sw = window_out(in->static_w, kernel, stride, padding, dilation);
        if (sh < 1 || sw < 1)
            return bfail(b, NC_ERR_SHAPE,
                         "%s: input %lldx%lld too small for kernel %d stride %d padding %d dilation %d",
                         name, (long long)in->static_h, (long long)in->static_w, kernel, stride, padding,
                         dilation);
    }
    int node;
    int inputs[1] = {x};
    if ((st = add_node(b, NC__OP_CONV2D, name, inputs, 1, &node)) != NC_OK) return st;
    nc__node *n = &b->g->nodes[node];
    n->channels = out_channels;
    n->static_h = sh;
    n->static_w = sw;
    nc__conv_attr *a = &n->attr.conv;
    a->out_channels = out_channels;
    a->kh = a->kw = kernel;
    a->stride_h = a->stride_w = stride;
    a->pad_h = a->pad_w = padding;
    a->dil_h = a->dil_w = dilation;
    a->groups = groups;
    a->bias = bias ? 1 : 0;
    int64_t rs = (int64_t)kernel * kernel;
    int64_t fan_in = (c / groups) * rs;        /* PyTorch: size(1) * receptive field */
    int64_t fan_out = (int64_t)out_channels * rs; /* PyTorch: size(0) * receptive field */
    nc__shape ws = {4, {out_channels, c / groups, kernel, kernel}};
    st = add_tensor(b, "weight", ws, NC__ROLE_WEIGHT, NC__INIT_KAIMING_NORMAL_FAN_OUT, fan_in, fan_out);
    if (st == NC_OK && bias)
        st = add_tensor(b, "bias", nc__shape1(out_channels), NC__ROLE_BIAS, NC__INIT_LINEAR_UNIFORM,
                        fan_in, fan_out);
    if (st != NC_OK) {
        drop_last_node(b);
        return st;
    }
    *out = node;
    return NC_OK;
}

nc_status nc_builder_batchnorm(nc_builder *b, const char *name, nc_value x, float eps, float momentum,
                               nc_value *out) {
    nc_status st = begin(b, out, "nc_builder_batchnorm");
    if (st != NC_OK) return st;
    if ((st = check_name(b, name, "nc_builder_batchnorm")) != NC_OK) return st;
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    const nc__node *in = &b->g->nodes[x];
    if (in->rank != 4 && in->rank != 2)
        return bfail(b, NC_ERR_SHAPE, "%s: batchnorm needs a 2-D or 4-D input, but '%s' is %d-D", name,
                     in->name, in->rank);
    if (!(eps > 0.0f) || !isfinite(eps) || !(momentum >= 0.0f && momentum <= 1.0f))
        return bfail(b, NC_ERR_INVALID_ARGUMENT,
                     "%s: batchnorm eps=%g must be > 0 and momentum=%g in [0, 1]", name, (double)eps,
                     (double)momentum);
    int64_t c = in->channels;
    int node;
    int inputs[1] = {x};
    if ((st = add_node(b, NC__OP_BATCHNORM, name, inputs, 1, &node)) != NC_OK) return st;
    b->g->nodes[node].attr.bn.eps = eps;
    b->g->nodes[node].attr.bn.momentum = momentum;
    nc__shape s1 = nc__shape1(c);
    nc__shape s0 = {0, {1, 1, 1, 1}};
    st = add_tensor(b, "weight", s1, NC__ROLE_WEIGHT, NC__INIT_ONE, c, c);
    if (st == NC_OK) st = add_tensor(b, "bias", s1, NC__ROLE_BIAS, NC__INIT_ZERO, c, c);
    if (st == NC_OK) st = add_tensor(b, "running_mean", s1, NC__ROLE_RUNNING_MEAN, NC__INIT_ZERO, c, c);
    if (st == NC_OK) st = add_tensor(b, "running_var", s1, NC__ROLE_RUNNING_VAR, NC__INIT_ONE, c, c);
    if (st == NC_OK)
        st = add_tensor(b, "num_batches_tracked", s0, NC__ROLE_NUM_BATCHES, NC__INIT_ZERO, 0, 0);
    if (st != NC_OK) {
        drop_last_node(b);
        return st;
    }
    *out = node;
    return NC_OK;
}

/* Unnamed single-input ops that keep rank and channels. */
static nc_status simple_op(nc_builder *b, nc__op op, const char *prefix, const char *who, nc_value x,
                           int need_rank, nc_value *out, int *node) {
    char name[64];
    nc_status st = begin(b, out, who);
    if (st != NC_OK) return st;
    auto_name(b->g, prefix, name, sizeof name);
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    if (need_rank && (st = check_rank(b, x, need_rank, name, prefix)) != NC_OK) return st;
    int inputs[1] = {x};
    return add_node(b, op, name, inputs, 1, node);
}

nc_status nc_builder_relu(nc_builder *b, nc_value x, nc_value *out) {
    int node;
    nc_status st = simple_op(b, NC__OP_RELU, "relu", "nc_builder_relu", x, 0, out, &node);
    if (st == NC_OK) *out = node;
    return st;
}

static nc_status pool(nc_builder *b, nc__op op, const char *prefix, const char *who, nc_value x,
                      int kernel, int stride, int padding, nc_value *out) {
    char name[64];
    nc_status st = begin(b, out, who);
    if (st != NC_OK) return st;
    auto_name(b->g, prefix, name, sizeof name);
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    if ((st = check_rank(b, x, 4, name, prefix)) != NC_OK) return st;
    if (kernel < 1 || stride < 1 || padding < 0)
        return bfail(b, NC_ERR_INVALID_ARGUMENT,
                     "%s: invalid pooling arguments kernel=%d stride=%d padding=%d (need kernel, stride "
                     ">= 1, padding >= 0)",
                     name, kernel, stride, padding);
    if (padding > kernel / 2)
        return bfail(b, NC_ERR_INVALID_ARGUMENT,
                     "%s: padding=%d must be at most half the kernel size %d", name, padding, kernel);
    const nc__node *in = &b->g->nodes[x];
    int64_t sh = 0, sw = 0;
    if (in->static_h > 0) {
        sh = window_out(in->static_h, kernel, stride, padding, 1);
        sw = window_out(in->static_w, kernel, stride, padding, 1);
        if (sh < 1 || sw < 1)
            return bfail(b, NC_ERR_SHAPE, "%s: input %lldx%lld too small for kernel %d stride %d padding %d",
                         name, (long long)in->static_h, (long long)in->static_w, kernel, stride, padding);
    }
    int node;
    int inputs[1] = {x};
    if ((st = add_node(b, op, name, inputs, 1, &node)) != NC_OK) return st;
    nc__node *n = &b->g->nodes[node];
    n->static_h = sh;
    n->static_w = sw;
    nc__pool_attr *a = &n->attr.pool;
    a->kh = a->kw = kernel;
    a->stride_h = a->stride_w = stride;
    a->pad_h = a->pad_w = padding;
    *out = node;
    return NC_OK;
}

nc_status nc_builder_max_pool2d(nc_builder *b, nc_value x, int kernel, int stride, int padding,
                                nc_value *out) {
    return pool(b, NC__OP_MAXPOOL, "maxpool", "nc_builder_max_pool2d", x, kernel, stride, padding, out);
}

nc_status nc_builder_avg_pool2d(nc_builder *b, nc_value x, int kernel, int stride, int padding,
                                nc_value *out) {
    return pool(b, NC__OP_AVGPOOL, "avgpool", "nc_builder_avg_pool2d", x, kernel, stride, padding, out);
}

nc_status nc_builder_adaptive_avg_pool2d(nc_builder *b, nc_value x, int out_h, int out_w, nc_value *out) {
    char name[64];
    nc_status st = begin(b, out, "nc_builder_adaptive_avg_pool2d");
    if (st != NC_OK) return st;
    auto_name(b->g, "adaptive_avgpool", name, sizeof name);
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    if ((st = check_rank(b, x, 4, name, "adaptive_avg_pool2d")) != NC_OK) return st;
    if (out_h < 1 || out_w < 1)
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: output size %dx%d must be at least 1x1", name, out_h,
                     out_w);
    int node;
    int inputs[1] = {x};
    if ((st = add_node(b, NC__OP_ADAPTIVE_AVGPOOL, name, inputs, 1, &node)) != NC_OK) return st;
    nc__node *n = &b->g->nodes[node];
    n->static_h = out_h;
    n->static_w = out_w;
    n->attr.pool.out_h = out_h;
    n->attr.pool.out_w = out_w;
    *out = node;
    return NC_OK;
}

nc_status nc_builder_add(nc_builder *b, nc_value a, nc_value c, nc_value *out) {
    char name[64];
    nc_status st = begin(b, out, "nc_builder_add");
    if (st != NC_OK) return st;
    auto_name(b->g, "add", name, sizeof name);
    if ((st = check_value(b, a, name)) != NC_OK) return st;
    if ((st = check_value(b, c, name)) != NC_OK) return st;
    const nc__node *na = &b->g->nodes[a], *nb = &b->g->nodes[c];
    if (na->rank != nb->rank)
        return bfail(b, NC_ERR_SHAPE, "%s: '%s' is %d-D but '%s' is %d-D", name, na->name, na->rank,
                     nb->name, nb->rank);
    if (na->channels != nb->channels)
        return bfail(b, NC_ERR_SHAPE, "%s: '%s' has %lld channels but '%s' has %lld", name, na->name,
                     (long long)na->channels, nb->name, (long long)nb->channels);
    if (na->static_h > 0 && nb->static_h > 0 &&
        (na->static_h != nb->static_h || na->static_w != nb->static_w))
        return bfail(b, NC_ERR_SHAPE, "%s: '%s' is %lldx%lld but '%s' is %lldx%lld", name, na->name,
                     (long long)na->static_h, (long long)na->static_w, nb->name,
                     (long long)nb->static_h, (long long)nb->static_w);
    int64_t sh = na->static_h > 0 ? na->static_h : nb->static_h;
    int64_t sw = na->static_h > 0 ? na->static_w : nb->static_w;
    int node;
    int inputs[2] = {a, c};
    if ((st = add_node(b, NC__OP_ADD, name, inputs, 2, &node)) != NC_OK) return st;
    b->g->nodes[node].static_h = sh;
    b->g->nodes[node].static_w = sw;
    *out = node;
    return NC_OK;
}

nc_status nc_builder_linear(nc_builder *b, const char *name, nc_value x, int out_features, int bias,
                            nc_value *out) {
    nc_status st = begin(b, out, "nc_builder_linear");
    if (st != NC_OK) return st;
    if ((st = check_name(b, name, "nc_builder_linear")) != NC_OK) return st;
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    if ((st = check_rank(b, x, 2, name, "linear")) != NC_OK) return st;
    if (out_features < 1)
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: out_features=%d must be >= 1", name, out_features);
    int64_t in = b->g->nodes[x].channels;
    if (!numel_ok(out_features, in, 1, 1))
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: weight (%d, %lld) is too large", name, out_features,
                     (long long)in);
    int node;
    int inputs[1] = {x};
    if ((st = add_node(b, NC__OP_LINEAR, name, inputs, 1, &node)) != NC_OK) return st;
    nc__node *n = &b->g->nodes[node];
    n->channels = out_features;
    n->attr.linear.out_features = out_features;
    n->attr.linear.bias = bias ? 1 : 0;
    nc__shape ws = nc__shape2(out_features, in);
    st = add_tensor(b, "weight", ws, NC__ROLE_WEIGHT, NC__INIT_LINEAR_UNIFORM, in, out_features);
    if (st == NC_OK && bias)
        st = add_tensor(b, "bias", nc__shape1(out_features), NC__ROLE_BIAS, NC__INIT_LINEAR_UNIFORM, in,
                        out_features);
    if (st != NC_OK) {
        drop_last_node(b);
        return st;
    }
    *out = node;
    return NC_OK;
}

nc_status nc_builder_dropout(nc_builder *b, nc_value x, float p, nc_value *out) {
    char name[64];
    nc_status st = begin(b, out, "nc_builder_dropout");
    if (st != NC_OK) return st;
    auto_name(b->g, "dropout", name, sizeof name);
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    if (!(p >= 0.0f && p < 1.0f))
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: dropout probability %g must be in [0, 1)", name,
                     (double)p);
    int node;
    int inputs[1] = {x};
    if ((st = add_node(b, NC__OP_DROPOUT, name, inputs, 1, &node)) != NC_OK) return st;
    b->g->nodes[node].attr.dropout.p = p;
    *out = node;
    return NC_OK;
}

nc_status nc_builder_flatten(nc_builder *b, nc_value x, nc_value *out) {
    char name[64];
    nc_status st = begin(b, out, "nc_builder_flatten");
    if (st != NC_OK) return st;
    auto_name(b->g, "flatten", name, sizeof name);
    if ((st = check_value(b, x, name)) != NC_OK) return st;
    if ((st = check_rank(b, x, 4, name, "flatten")) != NC_OK) return st;
    const nc__node *in = &b->g->nodes[x];
    if (in->static_h < 1)
        return bfail(b, NC_ERR_SHAPE,
                     "%s: the spatial size of '%s' depends on the image size; put an adaptive average "
                     "pool before flatten so the feature count is fixed",
                     name, in->name);
    if (!numel_ok(in->channels, in->static_h, in->static_w, 1))
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: too many features", name);
    int64_t f = in->channels * in->static_h * in->static_w;
    int node;
    int inputs[1] = {x};
    if ((st = add_node(b, NC__OP_FLATTEN, name, inputs, 1, &node)) != NC_OK) return st;
    nc__node *n = &b->g->nodes[node];
    n->rank = 2;
    n->channels = f;
    n->static_h = n->static_w = 0;
    *out = node;
    return NC_OK;
}

/* Concat's inputs share their rank: 2-D (features) or 4-D (channels, with equal
 * spatial sizes where they are fixed). */
static nc_status check_concat_input(nc_builder *b, const char *name, nc_value first, nc_value x) {
    const nc__node *a = &b->g->nodes[first], *n = &b->g->nodes[x];
    if (n->rank != a->rank)
        return bfail(b, NC_ERR_SHAPE, "%s: concat inputs must have one rank, but '%s' is %d-D and '%s' %d-D", name,
                     a->name, a->rank, n->name, n->rank);
    if (a->static_h > 0 && n->static_h > 0 && (a->static_h != n->static_h || a->static_w != n->static_w))
        return bfail(b, NC_ERR_SHAPE, "%s: '%s' is %lldx%lld but '%s' is %lldx%lld", name, a->name,
                     (long long)a->static_h, (long long)a->static_w, n->name, (long long)n->static_h,
                     (long long)n->static_w);
    return NC_OK;
}

nc_status nc_builder_concat(nc_builder *b, const nc_value *xs, int count, nc_value *out) {
    char name[64];
    nc_status st = begin(b, out, "nc_builder_concat");
    if (st != NC_OK) return st;
    auto_name(b->g, "concat", name, sizeof name);
    if (!xs) return bfail(b, NC_ERR_NULL, "%s: NULL value list", name);
    if (count < 1 || count > NC__MAX_CONCAT)
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: count %d must be in [1, %d]", name, count, NC__MAX_CONCAT);
    int64_t f = 0, sh = 0, sw = 0;
    for (int i = 0; i < count; i++) {
        if ((st = check_value(b, xs[i], name)) != NC_OK) return st;
        const nc__node *in = &b->g->nodes[xs[i]];
        if (in->rank != 2 && in->rank != 4)
            return bfail(b, NC_ERR_SHAPE, "%s: concat needs 2-D or 4-D inputs, but '%s' is %d-D", name, in->name,
                         in->rank);
        if ((st = check_concat_input(b, name, xs[0], xs[i])) != NC_OK) return st;
        if (in->static_h > 0) {
            sh = in->static_h;
            sw = in->static_w;
        }
        f += in->channels;
        if (f > NC__MAX_NUMEL) return bfail(b, NC_ERR_INVALID_ARGUMENT, "%s: too many features", name);
    }
    int node;
    if ((st = add_node(b, NC__OP_CONCAT, name, xs, count, &node)) != NC_OK) return st;
    b->g->nodes[node].channels = f;
    b->g->nodes[node].static_h = sh;
    b->g->nodes[node].static_w = sw;
    *out = node;
    return NC_OK;
}

nc_status nc_builder_finish(nc_builder *b, nc_value output, int num_heads, uint64_t seed,
                            nc_model **out) {
    nc_status st = begin(b, out, "nc_builder_finish");
    if (st != NC_OK) return st;
    *out = NULL;
    if ((st = check_value(b, output, "nc_builder_finish")) != NC_OK) return st;
    const nc__node *n = &b->g->nodes[output];
    if (n->rank != 2)
        return bfail(b, NC_ERR_INVALID_ARGUMENT,
                     "nc_builder_finish: output '%s' is %d-D; logits must be 2-D (N, outputs)", n->name,
                     n->rank);
    if (num_heads < 1 || n->channels % num_heads != 0)
        return bfail(b, NC_ERR_INVALID_ARGUMENT,
                     "nc_builder_finish: num_heads=%d must be >= 1 and divide the %lld outputs of '%s'",
                     num_heads, (long long)n->channels, n->name);
    if (n->channels > INT32_MAX)
        return bfail(b, NC_ERR_INVALID_ARGUMENT, "nc_builder_finish: %lld outputs are too many",
                     (long long)n->channels);
    nc__graph *clone = NULL;
    if ((st = nc__graph_clone(b->g, &clone)) != NC_OK) return bkeep(b, st);
    clone->output = output;
    clone->num_heads = num_heads;
    /* Takes ownership of clone on success and failure. A failure here (e.g. out of
     * memory for the parameters) leaves the builder usable. */
    return nc__model_create_from_graph(b->ctx, clone, num_heads, seed, out);
}
