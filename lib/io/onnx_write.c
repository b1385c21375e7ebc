/* onnx_write.c — the ONNX writer: a model's eval-mode graph translated node by node
 * into ONNX operators, parameters as float32 initializers under their state_dict
 * names, the model's metadata as metadata_props, all as the protobuf-c structs of the
 * bindings protoc-c generated from onnx.proto at build time (lib/io/meson.build),
 * packed into one buffer and written atomically. The op mapping is in docs/onnx.md.
 *
 * Every string, array and struct of the message lives in one list of allocations on
 * the context's hooks (`ox_new`), freed together; a failed allocation is sticky and
 * reported once, so the translators need no checks of their own. */
#include "neurc.h"
#include "core/context.h"
#include "core/model.h"
#include "io/file.h"
#include "io/model_io.h"
#include "io/onnx.h"
#include "io/onnx.pb-c.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_ATTRS 8                     /* attributes of one node */
#define PROTOBUF_LIMIT 0x7fffffffu      /* protobuf messages are at most 2 GB - 1 */

typedef struct ox_block { struct ox_block *next; } ox_block;
#define OX_HEADER 64                    /* keeps every allocation 64-byte aligned */

/* A list of message pointers being filled (nodes, initializers, metadata). */
typedef struct ox_list { void **v; size_t n, cap; } ox_list;

typedef struct ox {
    nc_context *ctx;
    const nc_model *m;
    const nc__graph *g;
    const nc_onnx_options *opt;
    nc__shape *shapes;          /* [n_nodes] for a 1 x C x height x width input */
    float *host;                /* every float tensor of the model, on the host */
    size_t *host_off;           /* [n_tensors] offset (floats) of tensor i in host */
    const char **value;         /* [n_nodes] ONNX name of node i's output */
    int *users;                 /* [n_nodes] nodes reading node i (the output counts) */
    int *folded;                /* [n_nodes] conv: the batch norm folded into it, else 0 */
    int output;                 /* node whose value is the logits (dropouts skipped) */
    ox_block *blocks;
    int oom;
    ox_list nodes, inits, props;
} ox;

/* ------------------------------------------------------------ allocation */

static void *ox_new(ox *o, size_t size) {
    if (o->oom) return NULL;
    ox_block *b = nc__calloc(o->ctx, 1, OX_HEADER + size);
    if (!b) {
        o->oom = 1;
        return NULL;
    }
    b->next = o->blocks;
    o->blocks = b;
    return (char *)b + OX_HEADER;
}

static void ox_free(ox *o) {
    while (o->blocks) {
        ox_block *next = o->blocks->next;
        nc__free(o->ctx, o->blocks);
        o->blocks = next;
    }
    nc__free(o->ctx, o->nodes.v);
    nc__free(o->ctx, o->inits.v);
    nc__free(o->ctx, o->props.v);
}

static char *ox_fmt(ox *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static char *ox_fmt(ox *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? ox_new(o, (size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void ox_push(ox *o, ox_list *l, void *p) {
    if (o->oom || !p) {
        o->oom = 1;
        return;
    }
    if (nc__grow(o->ctx, (void **)&l->v, sizeof *l->v, &l->cap, l->n + 1) != 0) {
        o->oom = 1;
        return;
    }
    l->v[l->n++] = p;
}

/* ------------------------------------------------------- message pieces */

static Onnx__NodeProto *add_node(ox *o, const char *op, const char *name, int n_in, const char *const *in,
                                 const char *out) {
    Onnx__NodeProto *n = ox_new(o, sizeof *n);
    char **inputs = ox_new(o, (size_t)n_in * sizeof *inputs);
    char **outputs = ox_new(o, sizeof *outputs);
    Onnx__AttributeProto **attrs = ox_new(o, MAX_ATTRS * sizeof *attrs);
    if (o->oom) return NULL;
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    for (int k = 0; k < n_in; k++) inputs[k] = (char *)in[k];
    outputs[0] = (char *)out;
    n->n_input = (size_t)n_in;
    n->input = inputs;
    n->n_output = 1;
    n->output = outputs;
    n->name = (char *)name;
    n->op_type = (char *)op;
    n->attribute = attrs;
    ox_push(o, &o->nodes, n);
    return n;
}

static Onnx__AttributeProto *add_attr(ox *o, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    if (!n || n->n_attribute >= MAX_ATTRS) return NULL;
    Onnx__AttributeProto *a = ox_new(o, sizeof *a);
    if (!a) return NULL;
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_int(ox *o, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = add_attr(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a) return;
    a->has_i = 1;
    a->i = v;
}

static void attr_float(ox *o, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = add_attr(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (!a) return;
    a->has_f = 1;
    a->f = v;
}

static void attr_ints(ox *o, Onnx__NodeProto *n, const char *name, const int64_t *v, int count) {
    Onnx__AttributeProto *a = add_attr(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = a ? ox_new(o, (size_t)count * sizeof *copy) : NULL;
    if (!copy) return;
    memcpy(copy, v, (size_t)count * sizeof *copy);
    a->n_ints = (size_t)count;
    a->ints = copy;
}

/* An initializer with dims[ndim]; float32 data are stored little-endian as raw_data
 * (borrowed where the host is little-endian: they must outlive the packing). */
static const char *add_init(ox *o, const char *name, int ndim, const int64_t *dims, int32_t type,
                            const void *data, size_t elem_size) {
    Onnx__TensorProto *t = ox_new(o, sizeof *t);
    int64_t *d = ox_new(o, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (o->oom) return name;
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    size_t count = 1;
    for (int k = 0; k < ndim; k++) count *= (size_t)(d[k] = dims[k]);
    t->name = (char *)name;
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->has_raw_data = 1;
    t->raw_data.len = count * elem_size;
    t->raw_data.data = (uint8_t *)data;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t *le = ox_new(o, count * elem_size + 1);
    if (!le) return name;
    for (size_t i = 0; i < count * elem_size; i++)
        le[i] = ((const uint8_t *)data)[i - i % elem_size + elem_size - 1 - i % elem_size];
    t->raw_data.data = le;
#endif
    ox_push(o, &o->inits, t);
    return name;
}

static const char *init_f32(ox *o, const char *name, int ndim, const int64_t *dims, const float *data) {
    return add_init(o, name, ndim, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, data, sizeof(float));
}

/* A 1-D int64 initializer (shapes, split sizes); v is copied. */
static const char *init_i64(ox *o, const char *name, int count, const int64_t *v) {
    int64_t *copy = ox_new(o, (size_t)count * sizeof *copy);
    if (!copy) return name;
    memcpy(copy, v, (size_t)count * sizeof *copy);
    const int64_t dims[1] = {count};
    return add_init(o, name, 1, dims, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, copy, sizeof *copy);
}

/* Parameter k of node i (role order, graph.h) as an initializer; its name. */
static const char *param(ox *o, int i, int k) {
    const int t = o->g->nodes[i].tensors[k];
    const nc__tensor_def *d = &o->g->tensors[t];
    return init_f32(o, d->name, d->shape.ndim, d->shape.d, o->host + o->host_off[t]);
}

static const float *param_data(const ox *o, int i, int k) {
    return o->host + o->host_off[o->g->nodes[i].tensors[k]];
}

/* ---------------------------------------------------------- translators */

/* The ONNX name of node i's output: the node's own name, "logits" for the output. */
static const char *out_name(const ox *o, int i) {
    if (i != o->output) return o->g->nodes[i].name;
    return o->opt->split_heads && o->g->num_heads == 1 ? "logits_0" : "logits";
}

static const char *in_name(const ox *o, int i, int k) { return o->value[o->g->nodes[i].inputs[k]]; }

static void pads_of(int64_t ph, int64_t pw, int64_t out[4]) {
    out[0] = ph, out[1] = pw, out[2] = ph, out[3] = pw;  /* begins (H, W), ends (H, W) */
}

/* conv's weight and bias with batch norm node bn folded in: W' = W * s, b' = (b - mean)
 * * s + beta with s = gamma / sqrt(var + eps), per output channel. */
static void fold_conv_bn(ox *o, int conv, int bn, const char **w_name, const char **b_name) {
    const nc__node *c = &o->g->nodes[conv];
    const nc__shape *ws = &o->g->tensors[c->tensors[0]].shape;      // (K, C/G, R, S)
    const int64_t k_out = ws->d[0], per = ws->d[1] * ws->d[2] * ws->d[3];
    float *w = ox_new(o, (size_t)(k_out * per) * sizeof *w), *b = ox_new(o, (size_t)k_out * sizeof *b);
    *w_name = ox_fmt(o, "%s.weight_bn_folded", c->name);
    *b_name = ox_fmt(o, "%s.bias_bn_folded", c->name);
    if (o->oom) return;
    const float *w0 = param_data(o, conv, 0), *b0 = c->attr.conv.bias ? param_data(o, conv, 1) : NULL;
    const float *gamma = param_data(o, bn, 0), *beta = param_data(o, bn, 1);
    const float *mean = param_data(o, bn, 2), *var = param_data(o, bn, 3);
    const double eps = o->g->nodes[bn].attr.bn.eps;
    for (int64_t k = 0; k < k_out; k++) {
        const double s = gamma[k] / sqrt((double)var[k] + eps);
        for (int64_t j = 0; j < per; j++) w[k * per + j] = (float)(w0[k * per + j] * s);
        b[k] = (float)(((b0 ? b0[k] : 0.0) - mean[k]) * s + beta[k]);
    }
    init_f32(o, *w_name, ws->ndim, ws->d, w);
    const int64_t bd[1] = {k_out};
    init_f32(o, *b_name, 1, bd, b);
}

static void emit_conv(ox *o, int i) {
    const nc__node *nd = &o->g->nodes[i];
    const nc__conv_attr *a = &nd->attr.conv;
    const int bn = o->folded[i];
    const char *in[3] = {in_name(o, i, 0), NULL, NULL};
    int n_in = 2;
    if (bn) {
        fold_conv_bn(o, i, bn, &in[1], &in[2]);
        n_in = 3;
    } else {
        in[1] = param(o, i, 0);
        if (a->bias) in[n_in++] = param(o, i, 1);
    }
    const int out = bn ? bn : i;
    Onnx__NodeProto *n = add_node(o, "Conv", nd->name, n_in, in, out_name(o, out));
    const int64_t k[2] = {a->kh, a->kw}, s[2] = {a->stride_h, a->stride_w}, d[2] = {a->dil_h, a->dil_w};
    int64_t p[4];
    pads_of(a->pad_h, a->pad_w, p);
    attr_ints(o, n, "kernel_shape", k, 2);
    attr_ints(o, n, "strides", s, 2);
    attr_ints(o, n, "pads", p, 4);
    attr_ints(o, n, "dilations", d, 2);
    attr_int(o, n, "group", a->groups);
    o->value[out] = out_name(o, out);
}

static void emit_batchnorm(ox *o, int i) {
    const nc__node *nd = &o->g->nodes[i];
    if (o->value[i]) return; /* folded into the convolution before it */
    const char *in[5] = {in_name(o, i, 0), param(o, i, 0), param(o, i, 1), param(o, i, 2), param(o, i, 3)};
    Onnx__NodeProto *n = add_node(o, "BatchNormalization", nd->name, 5, in, out_name(o, i));
    attr_float(o, n, "epsilon", nd->attr.bn.eps);
    o->value[i] = out_name(o, i);
}

/* A node with one input and no parameters (Relu, Flatten, GlobalAveragePool). */
static Onnx__NodeProto *emit_unary(ox *o, int i, const char *op) {
    const char *in[1] = {in_name(o, i, 0)};
    o->value[i] = out_name(o, i);
    return add_node(o, op, o->g->nodes[i].name, 1, in, o->value[i]);
}

static void emit_pool(ox *o, int i, const char *op, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                      int64_t pw) {
    Onnx__NodeProto *n = emit_unary(o, i, op);
    const int64_t k[2] = {kh, kw}, s[2] = {sh, sw};
    int64_t p[4];
    pads_of(ph, pw, p);
    attr_ints(o, n, "kernel_shape", k, 2);
    attr_ints(o, n, "strides", s, 2);
    attr_ints(o, n, "pads", p, 4);
    if (strcmp(op, "AveragePool") == 0) attr_int(o, n, "count_include_pad", 1); /* PyTorch's default */
}

/* Adaptive average pool of an h x w input to oh x ow whose windows overlap or differ
 * in size: (N, C, h*w) times the constant (h*w, oh*ow) averaging matrix, between two
 * Reshapes (0 keeps the dynamic batch). The windows are PyTorch's: rows
 * [floor(i*h/oh), ceil((i+1)*h/oh)). */
static void emit_adaptive_matrix(ox *o, int i, int64_t h, int64_t w, int64_t oh, int64_t ow) {
    const nc__node *nd = &o->g->nodes[i];
    const int64_t c = o->shapes[i].d[1], hw = h * w, ohw = oh * ow;
    float *p = ox_new(o, (size_t)(hw * ohw) * sizeof *p);  // (h*w, oh*ow)
    if (!p) return;
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++) {
            const int64_t h0 = y * h / oh, h1 = ((y + 1) * h + oh - 1) / oh;
            const int64_t w0 = x * w / ow, w1 = ((x + 1) * w + ow - 1) / ow;
            const float inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
            for (int64_t r = h0; r < h1; r++)
                for (int64_t s = w0; s < w1; s++) p[(r * w + s) * ohw + y * ow + x] = inv;
        }
    const int64_t shape_in[3] = {0, c, hw}, shape_out[4] = {0, c, oh, ow}, pd[2] = {hw, ohw};
    const char *flat = ox_fmt(o, "%s.flat", nd->name), *pooled = ox_fmt(o, "%s.pooled", nd->name);
    const char *in1[2] = {in_name(o, i, 0), init_i64(o, ox_fmt(o, "%s.shape_in", nd->name), 3, shape_in)};
    add_node(o, "Reshape", ox_fmt(o, "%s.reshape_in", nd->name), 2, in1, flat);
    const char *in2[2] = {flat, init_f32(o, ox_fmt(o, "%s.matrix", nd->name), 2, pd, p)};
    add_node(o, "MatMul", ox_fmt(o, "%s.matmul", nd->name), 2, in2, pooled);
    const char *in3[2] = {pooled, init_i64(o, ox_fmt(o, "%s.shape_out", nd->name), 4, shape_out)};
    o->value[i] = out_name(o, i);
    add_node(o, "Reshape", nd->name, 2, in3, o->value[i]);
}

static void emit_adaptive(ox *o, int i) {
    const nc__shape *x = &o->shapes[o->g->nodes[i].inputs[0]];
    const nc__pool_attr *a = &o->g->nodes[i].attr.pool;
    const int64_t h = x->d[2], w = x->d[3], oh = a->out_h, ow = a->out_w;
    if (oh == 1 && ow == 1)
        emit_unary(o, i, "GlobalAveragePool");
    else if (h % oh == 0 && w % ow == 0)
        emit_pool(o, i, "AveragePool", h / oh, w / ow, h / oh, w / ow, 0, 0);
    else
        emit_adaptive_matrix(o, i, h, w, oh, ow);
}

static void emit_linear(ox *o, int i) {
    const nc__node *nd = &o->g->nodes[i];
    const char *in[3] = {in_name(o, i, 0), param(o, i, 0), nd->attr.linear.bias ? param(o, i, 1) : NULL};
    o->value[i] = out_name(o, i);
    Onnx__NodeProto *n = add_node(o, "Gemm", nd->name, nd->attr.linear.bias ? 3 : 2, in, o->value[i]);
    attr_int(o, n, "transB", 1);
}

/* Add and Concat: every input, in order. */
static Onnx__NodeProto *emit_nary(ox *o, int i, const char *op) {
    const nc__node *nd = &o->g->nodes[i];
    const char **in = ox_new(o, (size_t)nd->n_inputs * sizeof *in);
    if (!in) return NULL;
    for (int k = 0; k < nd->n_inputs; k++) in[k] = in_name(o, i, k);
    o->value[i] = out_name(o, i);
    return add_node(o, op, nd->name, nd->n_inputs, in, o->value[i]);
}

static void emit_node(ox *o, int i) {
    const nc__node *nd = &o->g->nodes[i];
    const nc__pool_attr *pa = &nd->attr.pool;
    switch (nd->op) {
    case NC__OP_CONV2D: emit_conv(o, i); break;
    case NC__OP_BATCHNORM: emit_batchnorm(o, i); break;
    case NC__OP_RELU: emit_unary(o, i, "Relu"); break;
    case NC__OP_MAXPOOL:
        emit_pool(o, i, "MaxPool", pa->kh, pa->kw, pa->stride_h, pa->stride_w, pa->pad_h, pa->pad_w);
        break;
    case NC__OP_AVGPOOL:
        emit_pool(o, i, "AveragePool", pa->kh, pa->kw, pa->stride_h, pa->stride_w, pa->pad_h, pa->pad_w);
        break;
    case NC__OP_ADAPTIVE_AVGPOOL: emit_adaptive(o, i); break;
    case NC__OP_ADD: emit_nary(o, i, "Add"); break;
    case NC__OP_LINEAR: emit_linear(o, i); break;
    case NC__OP_DROPOUT: o->value[i] = in_name(o, i, 0); break; /* identity in eval mode */
    case NC__OP_FLATTEN: attr_int(o, emit_unary(o, i, "Flatten"), "axis", 1); break;
    case NC__OP_CONCAT: attr_int(o, emit_nary(o, i, "Concat"), "axis", 1); break;
    default: break; /* the input; nc__graph_infer_shapes refused anything else */
    }
}

/* The input, normalised in the graph when asked: (x - mean) / std per channel. */
static void emit_input(ox *o) {
    o->value[0] = "input";
    if (!o->opt->normalize) return;
    const int64_t dims[4] = {1, o->g->in_channels, 1, 1};
    const char *sub[2] = {"input", init_f32(o, "input.mean", 4, dims, o->m->norm_mean)};
    add_node(o, "Sub", "input.sub_mean", 2, sub, "input.centered");
    const char *div[2] = {"input.centered", init_f32(o, "input.std", 4, dims, o->m->norm_std)};
    add_node(o, "Div", "input.div_std", 2, div, "input.normalized");
    o->value[0] = "input.normalized";
}

/* With split_heads and several heads: Split of the logits into logits_<h>. */
static void emit_split(ox *o) {
    const int heads = o->g->num_heads;
    int64_t *sizes = ox_new(o, (size_t)heads * sizeof *sizes);
    char **outs = ox_new(o, (size_t)heads * sizeof *outs);
    if (!outs) return;
    for (int h = 0; h < heads; h++) {
        sizes[h] = o->shapes[o->output].d[1] / heads;
        outs[h] = ox_fmt(o, "logits_%d", h);
    }
    const char *in[2] = {"logits", init_i64(o, "logits.split_sizes", heads, sizes)};
    Onnx__NodeProto *n = add_node(o, "Split", "split_heads", 2, in, outs[0]);
    if (!n) return;
    n->n_output = (size_t)heads;
    n->output = outs;
    attr_int(o, n, "axis", 1);
}

/* ------------------------------------------------------------ the graph */

/* Counts users, picks the output (past trailing dropouts) and the conv + batch norm
 * pairs to fold. */
static void analyse(ox *o) {
    const nc__graph *g = o->g;
    for (int i = 1; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) o->users[g->nodes[i].inputs[k]]++;
    o->output = g->output;
    while (o->output > 0 && g->nodes[o->output].op == NC__OP_DROPOUT) o->output = g->nodes[o->output].inputs[0];
    o->users[o->output]++;
    for (int i = 1; i < g->n_nodes && o->opt->fold_batchnorm; i++) {
        const nc__node *nd = &g->nodes[i];
        const int src = nd->op == NC__OP_BATCHNORM ? nd->inputs[0] : 0;
        if (src > 0 && g->nodes[src].op == NC__OP_CONV2D && o->users[src] == 1) {
            o->folded[src] = i;
            o->value[i] = out_name(o, i); /* marks the batch norm as done */
        }
    }
}

/* A float32 tensor value (batch, dims...) with a symbolic batch dimension. */
static Onnx__ValueInfoProto *value_info(ox *o, const char *name, int ndim, const int64_t *d) {
    Onnx__ValueInfoProto *v = ox_new(o, sizeof *v);
    Onnx__TypeProto *t = ox_new(o, sizeof *t);
    Onnx__TypeProto__Tensor *tt = ox_new(o, sizeof *tt);
    Onnx__TensorShapeProto *s = ox_new(o, sizeof *s);
    Onnx__TensorShapeProto__Dimension **dims = ox_new(o, (size_t)ndim * sizeof *dims);
    for (int k = 0; k < ndim && dims; k++) dims[k] = ox_new(o, sizeof **dims);
    if (o->oom) return NULL;
    for (int k = 0; k < ndim; k++) {
        *dims[k] = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (k == 0) {
            dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dims[k]->dim_param = "batch";
        } else {
            dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dims[k]->dim_value = d[k];
        }
    }
    *s = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    s->n_dim = (size_t)ndim;
    s->dim = dims;
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = s;
    *t = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    v->name = (char *)name;
    v->type = t;
    return v;
}

static Onnx__GraphProto *build_graph(ox *o) {
    const nc__graph *g = o->g;
    analyse(o);
    emit_input(o);
    for (int i = 1; i < g->n_nodes; i++) emit_node(o, i);
    const int heads = g->num_heads, split = o->opt->split_heads && heads > 1;
    if (split) emit_split(o);
    Onnx__GraphProto *gp = ox_new(o, sizeof *gp);
    Onnx__ValueInfoProto **in = ox_new(o, sizeof *in), **out = ox_new(o, (size_t)heads * sizeof *out);
    if (o->oom) return NULL;
    *gp = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    const nc__shape *xs = &o->shapes[0], *ys = &o->shapes[o->output];
    in[0] = value_info(o, "input", 4, xs->d);
    const int64_t per_head[2] = {0, ys->d[1] / heads};
    if (!split) out[0] = value_info(o, out_name(o, o->output), 2, ys->d);
    for (int h = 0; h < (split ? heads : 0); h++) out[h] = value_info(o, ox_fmt(o, "logits_%d", h), 2, per_head);
    if (o->oom) return NULL;
    gp->name = o->m->has_arch ? (char *)o->m->arch_name : "custom";
    gp->n_node = o->nodes.n;
    gp->node = (Onnx__NodeProto **)o->nodes.v;
    gp->n_initializer = o->inits.n;
    gp->initializer = (Onnx__TensorProto **)o->inits.v;
    gp->n_input = 1;
    gp->input = in;
    gp->n_output = (size_t)(split ? heads : 1);
    gp->output = out;
    return gp;
}

/* ------------------------------------------------------------ the model */

static nc_status add_prop(void *user, const char *key, const char *value) {
    ox *o = user;
    Onnx__StringStringEntryProto *p = ox_new(o, sizeof *p);
    char *k = ox_fmt(o, "%s", key), *v = ox_fmt(o, "%s", value);
    if (o->oom) return nc__error(o->ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_export_onnx: out of memory");
    *p = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    p->key = k;
    p->value = v;
    ox_push(o, &o->props, p);
    return NC_OK;
}

/* The model's metadata (io/model_io.h) and what the export itself decided. */
static nc_status add_props(ox *o) {
    nc_status st = nc__model_io_meta(o->m, add_prop, o);
    if (st != NC_OK) return st;
    char size[48];
    snprintf(size, sizeof size, "%dx%d", o->opt->height, o->opt->width);
    if ((st = add_prop(o, "neurc.onnx.input_size", size)) != NC_OK) return st;
    return add_prop(o, "neurc.onnx.normalized_in_graph", o->opt->normalize ? "1" : "0");
}

/* Every float tensor of the model downloaded from the backend. */
static nc_status load_params(ox *o) {
    const nc__graph *g = o->g;
    size_t total = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        o->host_off[i] = total;
        if (g->tensors[i].role != NC__ROLE_NUM_BATCHES) total += (size_t)o->m->slots[i].numel;
    }
    o->host = ox_new(o, (total ? total : 1) * sizeof(float));
    if (!o->host) return nc__error(o->ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_export_onnx: out of memory");
    nc_context *ctx = o->ctx;
    for (int i = 0; i < g->n_tensors; i++) {
        if (g->tensors[i].role == NC__ROLE_NUM_BATCHES) continue;
        nc_status st = ctx->backend->download(ctx->backend_state, o->host + o->host_off[i],
                                              nc__model_tensor_ptr(o->m, i), &g->tensors[i].shape);
        if (st != NC_OK) return st;
    }
    return NC_OK;
}

static nc_status pack_and_write(ox *o, Onnx__ModelProto *mp, const char *path) {
    const size_t size = onnx__model_proto__get_packed_size(mp);
    if (size > PROTOBUF_LIMIT)
        return nc__error(o->ctx, NC_ERR_LIMIT,
                         "nc_model_export_onnx: %s: the model is %zu bytes, over protobuf's 2 GB limit of one "
                         "ONNX file",
                         path, size);
    uint8_t *buf = nc__alloc(o->ctx, size ? size : 1);
    if (!buf)
        return nc__error(o->ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_export_onnx: out of memory for %zu bytes", size);
    onnx__model_proto__pack(mp, buf);
    nc_status st = nc__write_file_atomic(o->ctx, path, buf, size);
    nc__free(o->ctx, buf);
    return st;
}

static nc_status write_model(ox *o, const char *path) {
    nc_status st = load_params(o);
    if (st != NC_OK) return st;
    Onnx__GraphProto *graph = build_graph(o);
    if ((st = add_props(o)) != NC_OK) return st;
    Onnx__ModelProto *mp = ox_new(o, sizeof *mp);
    Onnx__OperatorSetIdProto *opset = ox_new(o, sizeof *opset);
    Onnx__OperatorSetIdProto **opsets = ox_new(o, sizeof *opsets);
    if (o->oom || !graph) return nc__error(o->ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_export_onnx: out of memory");
    *opset = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset->domain = "";
    opset->has_version = 1;
    opset->version = o->opt->opset;
    opsets[0] = opset;
    *mp = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    mp->has_ir_version = 1;
    mp->ir_version = o->opt->opset == 13 ? 7 : 8; /* the IR version that introduced the opset */
    mp->n_opset_import = 1;
    mp->opset_import = opsets;
    mp->producer_name = "neurc";
    mp->producer_version = (char *)nc_version_string();
    mp->doc_string = ox_fmt(o, "%s exported by neurc %s for %dx%d inputs", graph->name, nc_version_string(),
                            o->opt->height, o->opt->width);
    mp->graph = graph;
    mp->n_metadata_props = o->props.n;
    mp->metadata_props = (Onnx__StringStringEntryProto **)o->props.v;
    if (o->oom) return nc__error(o->ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_export_onnx: out of memory");
    return pack_and_write(o, mp, path);
}

nc_status nc__onnx_write(nc_model *m, const char *path, const nc_onnx_options *opt) {
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    ox o = {.ctx = ctx, .m = m, .g = g, .opt = opt};
    const size_t nn = (size_t)g->n_nodes;
    o.shapes = ox_new(&o, nn * sizeof *o.shapes);
    o.host_off = ox_new(&o, (size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof *o.host_off);
    o.value = ox_new(&o, nn * sizeof *o.value);
    o.users = ox_new(&o, nn * sizeof *o.users);
    o.folded = ox_new(&o, nn * sizeof *o.folded);
    nc_status st = NC_OK;
    if (o.oom) {
        st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_export_onnx: out of memory");
    } else {
        const nc__shape input = nc__shape4(1, g->in_channels, opt->height, opt->width);
        st = nc__graph_infer_shapes(g, &input, o.shapes);
        if (st != NC_OK)
            nc__error_prefix(ctx, st, "nc_model_export_onnx: input %dx%d", opt->height, opt->width);
        else
            st = write_model(&o, path);
    }
    ox_free(&o);
    return st;
}
