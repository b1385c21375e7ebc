/* pretrained.c — imports a torchvision state_dict (ImageNet weights, say) into a
 * model whose input channels, class count or head count differ: the first
 * convolution's RGB weight is adapted to the model's channels, head tensors that no
 * longer fit keep the model's fresh initialisation, and the backbone loads as
 * nc_model_load_weights would (strict or not). See docs/format.md, "Pretrained weights". */
#include "neurc.h"
#include "core/context.h"
#include "core/model.h"
#include "core/rng.h"
#include "io/model_io.h"
#include "io/safetensors.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define NEW_HEAD_NOTE " (head: initialisation kept)"

void nc_pretrained_options_init(nc_pretrained_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->strict = 0;
    opt->adapt = NC_ADAPT_RGB_NORMAL;
    opt->keep_head = 0;
    opt->seed = 0;
}

/* ------------------------------------------------------------ the head's keys */

/* A tensor is in the head when its name is "<prefix>.<anything>" for a prefix. */
typedef struct head_prefix {
    const char *s; /* borrowed: a string literal or a node name of the model */
    size_t len;
} head_prefix;

static int in_head(const head_prefix *p, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strncmp(name, p[i].s, p[i].len) == 0 && name[p[i].len] == '.') return 1;
    return 0;
}

/* The head's module paths. Built-in architectures: "fc" (ResNet, ResNeXt,
 * simple_cnn), "classifier.6" (VGG) or "classifier" (DenseNet), which cover every
 * head layout of heads.c.
 * Builder-made models: the Linear nodes reached from the output through
 * parameterless nodes only (dropout, flatten, concat, ...), plus the parent of a
 * name ending in ".<digits>" ("cls" for "cls.0", an nn.ModuleList of heads).
 * p has room for 2 * n_nodes entries. */
static nc_status find_heads(const nc_model *m, head_prefix *p, int *n) {
    const nc__graph *g = m->graph;
    *n = 0;
    if (m->has_arch) {
        p[0].s = strncmp(m->arch_name, "vgg", 3) == 0        ? "classifier.6"
                 : strncmp(m->arch_name, "densenet", 8) == 0 ? "classifier"
                                                             : "fc";
        p[0].len = strlen(p[0].s);
        *n = 1;
        return NC_OK;
    }
    nc_context *ctx = m->ctx;
    char *seen = nc__calloc(ctx, (size_t)g->n_nodes, 1);
    int *stack = nc__alloc(ctx, (size_t)g->n_nodes * sizeof *stack);
    if (!seen || !stack) {
        nc__free(ctx, seen);
        nc__free(ctx, stack);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_load_pretrained: out of memory");
    }
    int top = 0;
    if (g->output > 0 && g->output < g->n_nodes) {
        stack[top++] = g->output;
        seen[g->output] = 1;
    }
    while (top > 0) {
        const nc__node *nd = &g->nodes[stack[--top]];
        if (nd->n_tensors > 0) {
            if (nd->op != NC__OP_LINEAR) continue;
            size_t len = strlen(nd->name);
            p[*n].s = nd->name;
            p[*n].len = len;
            (*n)++;
            const char *dot = strrchr(nd->name, '.');
            if (dot && dot[1] && strspn(dot + 1, "0123456789") == strlen(dot + 1) && dot > nd->name) {
                p[*n].s = nd->name;
                p[*n].len = (size_t)(dot - nd->name);
                (*n)++;
            }
            continue;
        }
        for (int k = 0; k < nd->n_inputs; k++) {
            int u = nd->inputs[k];
            if (u > 0 && u < g->n_nodes && !seen[u]) {
                seen[u] = 1;
                stack[top++] = u;
            }
        }
    }
    nc__free(ctx, seen);
    nc__free(ctx, stack);
    return NC_OK;
}

/* -------------------------------------------------------- the first convolution */

/* Tensor index of the weight of the first ungrouped convolution reading the graph
 * input (node 0), or -1. */
static int first_conv_weight(const nc__graph *g) {
    for (int i = 1; i < g->n_nodes; i++) {
        const nc__node *nd = &g->nodes[i];
        if (nd->op == NC__OP_CONV2D && nd->n_inputs >= 1 && nd->inputs[0] == 0 && nd->n_tensors >= 1)
            return nd->attr.conv.groups == 1 ? nd->tensors[0] : -1;
    }
    return -1;
}

/* A (K, 3, R, S) file weight adapts to a (K, c, R, S) model weight, c != 3. */
static int can_adapt(const nc__st_tensor *ft, const nc__tensor_def *t) {
    return ft->ndim == 4 && t->shape.ndim == 4 && ft->shape[1] == 3 && t->shape.d[1] != 3 &&
           ft->shape[0] == t->shape.d[0] && ft->shape[2] == t->shape.d[2] && ft->shape[3] == t->shape.d[3] &&
           nc__load_dtype_ok(ft->dtype);
}

/* out = the model's first conv weight built from the RGB weight rgb:
 *   NC_ADAPT_RGB_NORMAL: c == 1: R+G+B; c == 2: R, G; c > 3: R, G, B, then
 *     0.01 * N(0, 1) drawn from (seed, hash(name), flat index into out);
 *   NC_ADAPT_RGB_MEAN: every channel (R+G+B)/c = mean(R, G, B) * 3/c. */
static void adapt_weight(float *out, const float *rgb, const char *name, nc_first_conv_adapt mode,
                         uint64_t seed, size_t K, size_t C, size_t RS) {
    // out: (K, C, R, S)   rgb: (K, 3, R, S)
    const uint64_t stream = nc__hash_str(name);
    for (size_t k = 0; k < K; k++)
        for (size_t ch = 0; ch < C; ch++)
            for (size_t p = 0; p < RS; p++) {
                const float *w = rgb + k * 3 * RS + p; /* w[0], w[RS], w[2 * RS]: R, G, B */
                size_t o = (k * C + ch) * RS + p;
                double sum = (double)w[0] + (double)w[RS] + (double)w[2 * RS];
                if (mode == NC_ADAPT_RGB_MEAN)
                    out[o] = (float)(sum / (double)C);
                else if (C == 1)
                    out[o] = (float)sum;
                else if (ch < 3)
                    out[o] = w[ch * RS];
                else
                    out[o] = 0.01f * nc__rng_normal(seed, stream, (uint64_t)o);
            }
}

static void adapt_note(char *buf, size_t size, const nc__st_tensor *ft, const nc__tensor_def *t,
                       nc_first_conv_adapt mode) {
    char a[64], b[64], how[96];
    nc__shape fs = {4, {ft->shape[0], ft->shape[1], ft->shape[2], ft->shape[3]}};
    int64_t c = t->shape.d[1];
    if (mode == NC_ADAPT_RGB_MEAN)
        snprintf(how, sizeof how, "rgb_mean: every channel (R+G+B)/%lld", (long long)c);
    else if (c == 1)
        snprintf(how, sizeof how, "rgb_normal: R+G+B");
    else if (c == 2)
        snprintf(how, sizeof how, "rgb_normal: R, G");
    else
        snprintf(how, sizeof how, "rgb_normal: R, G, B + %lld new channel%s N(0, 0.01^2)", (long long)(c - 3),
                 c - 3 > 1 ? "s" : "");
    snprintf(buf, size, " %s in file to %s in model (%s)", nc__shape_str(&fs, a, sizeof a),
             nc__shape_str(&t->shape, b, sizeof b), how);
}

/* ------------------------------------------------------------------- import */

enum { PLAN_SKIP = 0, PLAN_LOAD, PLAN_ADAPT };

static nc_status load_pretrained(nc_model *m, const char *path, const nc_pretrained_options *opt,
                                 nc_load_report *report) {
    static const char fn[] = "nc_model_load_pretrained";
    if (!m) return NC_ERR_NULL;
    nc_context *ctx = m->ctx;
    if (!path) return nc__error(ctx, NC_ERR_NULL, "%s: path is NULL", fn);
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    if (opt) {
        size_t min = offsetof(nc_pretrained_options, strict) + sizeof o.strict;
        if (opt->struct_size < min || opt->struct_size > sizeof o)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "%s: struct_size %zu is not that of nc_pretrained_options (%zu); call "
                             "nc_pretrained_options_init",
                             fn, opt->struct_size, sizeof o);
        memcpy(&o, opt, opt->struct_size);
        o.struct_size = sizeof o;
    }
    if (o.adapt != NC_ADAPT_RGB_NORMAL && o.adapt != NC_ADAPT_RGB_MEAN)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: unknown first-conv adaptation %d", fn, (int)o.adapt);
    if (report && report->struct_size != 0 && report->struct_size < sizeof *report)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: bad report struct_size", fn);

    if (report) {
        memset(report, 0, sizeof *report);
        report->struct_size = sizeof *report;
    }
    nc__st_file *f = NULL;
    nc_status st = nc__st_read(ctx, path, &f);
    if (st != NC_OK) return st;
    st = nc__model_load_pretrained_st(m, f, path, &o, report);
    nc__st_close(f);
    return st;
}

nc_status nc__model_load_pretrained_st(nc_model *m, const nc__st_file *f, const char *path,
                                       const nc_pretrained_options *opt, nc_load_report *report) {
    nc_context *ctx = m->ctx;
    const nc_pretrained_options o = *opt;
    const nc__graph *g = m->graph;
    nc_status st = NC_OK;
    head_prefix *heads = NULL;
    unsigned char *plan = NULL;
    float *host = NULL, *rgb = NULL, *adapted = NULL;
    nc_load_report local;
    nc_load_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;

    heads = nc__alloc(ctx, 2 * (size_t)g->n_nodes * sizeof *heads);
    plan = nc__calloc(ctx, (size_t)g->n_tensors + 1, 1);
    NC_CHECK_ALLOC(ctx, heads);
    NC_CHECK_ALLOC(ctx, plan);
    int n_heads;
    NC_CHECK(find_heads(m, heads, &n_heads));

    /* Plan every tensor before anything changes, so a failure leaves the model as it was. */
    const int fc = first_conv_weight(g);
    const nc__st_tensor *fc_file = NULL;
    int hard_missing = 0, hard_unexpected = 0, hard_mismatched = 0, head_missing = 0, head_mismatched = 0;
    char extra[256];
    for (int i = 0; i < g->n_tensors; i++) {
        const nc__tensor_def *t = &g->tensors[i];
        const nc__st_tensor *ft = nc__st_find(f, t->name);
        const int head = in_head(heads, n_heads, t->name);
        const int fresh = head && !o.keep_head; /* may keep the model's initialisation */
        if (!ft) {
            r->missing++;
            nc__load_report_add(r, "missing", t->name, fresh ? NEW_HEAD_NOTE : NULL);
            if (head && o.keep_head) head_missing++;
            if (!fresh) hard_missing++;
        } else if (i == fc && can_adapt(ft, t)) {
            plan[i] = PLAN_ADAPT;
            fc_file = ft;
            adapt_note(extra, sizeof extra, ft, t, o.adapt);
            nc__load_report_add(r, "adapted", t->name, extra);
        } else if (!nc__load_shape_matches(ft, t) || !nc__load_dtype_ok(ft->dtype)) {
            nc__load_mismatch_text(ft, t, extra, sizeof extra - sizeof NEW_HEAD_NOTE);
            if (fresh) strcat(extra, NEW_HEAD_NOTE);
            r->mismatched++;
            nc__load_report_add(r, "mismatched", t->name, extra);
            if (head && o.keep_head) head_mismatched++;
            if (!fresh) hard_mismatched++;
        } else {
            plan[i] = PLAN_LOAD;
        }
    }
    for (int k = 0; k < f->n_tensors; k++) {
        const char *name = f->tensors[k].name;
        if (nc__graph_find_tensor(g, name) >= 0) continue;
        const int fresh = !o.keep_head && in_head(heads, n_heads, name);
        r->unexpected++;
        nc__load_report_add(r, "unexpected", name, fresh ? " (replaced head)" : NULL);
        if (!fresh) hard_unexpected++;
    }
    if (head_missing || head_mismatched) {
        st = nc__error(ctx, head_mismatched ? NC_ERR_SHAPE : NC_ERR_NOT_FOUND,
                       "%s: keep_head is set but %d head tensors are missing and %d differ in shape (%s)", path,
                       head_missing, head_mismatched, r->text);
        goto fail;
    }
    if (o.strict && (hard_missing || hard_unexpected || hard_mismatched)) {
        st = nc__error(ctx, hard_mismatched ? NC_ERR_SHAPE : NC_ERR_NOT_FOUND,
                       "%s: %d missing, %d unexpected, %d mismatched tensors outside the head (%s)", path,
                       hard_missing, hard_unexpected, hard_mismatched, r->text);
        goto fail;
    }

    /* Build the adapted first-conv weight before the first write into the model. */
    int64_t maxn = 1;
    for (int i = 0; i < g->n_tensors; i++)
        if (m->slots[i].numel > maxn) maxn = m->slots[i].numel;
    host = nc__alloc(ctx, (size_t)maxn * sizeof(float));
    NC_CHECK_ALLOC(ctx, host);
    if (fc_file) {
        const nc__tensor_def *t = &g->tensors[fc];
        rgb = nc__alloc(ctx, (size_t)fc_file->numel * sizeof(float));
        adapted = nc__alloc(ctx, (size_t)m->slots[fc].numel * sizeof(float));
        NC_CHECK_ALLOC(ctx, rgb);
        NC_CHECK_ALLOC(ctx, adapted);
        NC_CHECK(nc__st_to_f32(ctx, fc_file, rgb));
        adapt_weight(adapted, rgb, t->name, o.adapt, o.seed, (size_t)t->shape.d[0], (size_t)t->shape.d[1],
                     (size_t)(t->shape.d[2] * t->shape.d[3]));
    }
    for (int i = 0; i < g->n_tensors; i++) {
        if (plan[i] == PLAN_LOAD)
            NC_CHECK(nc__load_copy(m, i, nc__st_find(f, g->tensors[i].name), host));
        else if (plan[i] == PLAN_ADAPT)
            NC_CHECK(nc_model_set_tensor(m, g->tensors[i].name, adapted, m->slots[i].numel));
        else
            continue;
        r->loaded++;
    }
fail:
    nc__free(ctx, adapted);
    nc__free(ctx, rgb);
    nc__free(ctx, host);
    nc__free(ctx, plan);
    nc__free(ctx, heads);
    return st;
}

nc_status nc_model_load_pretrained(nc_model *m, const char *path, const nc_pretrained_options *opt,
                                   nc_load_report *report) {
    if (!m) return NC_ERR_NULL;
    nc__model_write_begin(m);
    nc_status st = load_pretrained(m, path, opt, report);
    nc__model_write_end(m);
    return st;
}
