/* exec.c — runs a prepared plan on the context's backend. Forward walks the nodes
 * in topological order; backward is the autodiff of the static graph: each op's
 * backward rule in reverse order, gradients accumulated (+=) so values with several
 * consumers (residual connections) need no special case, except that the first
 * writer of a gradient overwrites it where the plan says so. Fused groups (exec.h)
 * run as one backend call at their head's position; their members are skipped. */
#include "graph/exec.h"
#include "core/context.h"
#include "core/rng.h"

#include <string.h>

#define NONE SIZE_MAX

static void *val(const nc__plan *p, int v) { return (char *)p->arena + p->val_off[v]; }
static void *grad(const nc__plan *p, int v) {
    return p->grad_off[v] == NONE ? NULL : (char *)p->arena + p->grad_off[v];
}
static void *param(const nc__plan *p, const nc__node *node, int k) {
    return nc__model_tensor_ptr(p->m, node->tensors[k]);
}
static void *param_grad(const nc__plan *p, const nc__node *node, int k) {
    return nc__model_grad_ptr(p->m, node->tensors[k]);
}

static nc__conv_desc conv_desc(const nc__plan *p, int i) {
    const nc__node *nd = &p->m->graph->nodes[i];
    const nc__shape *x = &p->shapes[nd->inputs[0]], *y = &p->shapes[i];
    const nc__conv_attr *a = &nd->attr.conv;
    nc__conv_desc d = {x->d[0], x->d[1], x->d[2], x->d[3], a->out_channels, a->kh, a->kw, a->groups,
                       a->stride_h, a->stride_w, a->pad_h, a->pad_w, a->dil_h, a->dil_w, y->d[2], y->d[3],
                       &p->cache[i], 0, p->m->param_version};
    return d;
}

static nc__bn_desc bn_desc(const nc__plan *p, int i) {
    const nc__node *nd = &p->m->graph->nodes[i];
    const nc__shape *x = &p->shapes[i];
    nc__bn_desc d = {x->d[0], x->d[1], x->ndim == 4 ? x->d[2] * x->d[3] : 1, nd->attr.bn.eps,
                     nd->attr.bn.momentum, &p->cache[i], x->ndim, 0};
    return d;
}

static nc__pool_desc pool_desc(const nc__plan *p, int i) {
    const nc__node *nd = &p->m->graph->nodes[i];
    const nc__shape *x = &p->shapes[nd->inputs[0]], *y = &p->shapes[i];
    const nc__pool_attr *a = &nd->attr.pool;
    nc__pool_desc d = {nd->op == NC__OP_MAXPOOL ? NC__POOL_MAX
                       : nd->op == NC__OP_AVGPOOL ? NC__POOL_AVG
                                                  : NC__POOL_ADAPTIVE_AVG,
                       x->d[0], x->d[1], x->d[2], x->d[3], y->d[2], y->d[3],
                       a->kh, a->kw, a->stride_h, a->stride_w, a->pad_h, a->pad_w, &p->cache[i], 0};
    return d;
}

static nc__linear_desc linear_desc(const nc__plan *p, int i) {
    const nc__node *nd = &p->m->graph->nodes[i];
    nc__linear_desc d = {p->shapes[i].d[0], p->shapes[nd->inputs[0]].d[1], p->shapes[i].d[1], &p->cache[i], 0};
    return d;
}

/* Elements of value v's buffer in the backend's layout (element-wise counts). */
static size_t floats(const nc__plan *p, int v) { return nc__value_floats(p->m->ctx, &p->shapes[v]); }

static uint64_t node_seed(const nc__plan *p, int i) { return nc__rng_u64(p->dropout_seed, 0x64726f70ull, (uint64_t)i); }

nc_status nc__plan_forward(nc__plan *p, const float *x, int training, uint64_t dropout_seed) {
    nc_context *ctx = p->m->ctx;
    const nc__backend *be = ctx->backend;
    void *bs = ctx->backend_state;
    const nc__graph *g = p->m->graph;
    nc_status st = NC_OK;
    if (training != p->training)
        return nc__error(ctx, NC_ERR_STATE, "internal: plan prepared for %s, run for %s",
                         p->training ? "training" : "eval", training ? "training" : "eval");
    p->dropout_seed = dropout_seed;
    for (int i = 0; i < g->n_nodes && st == NC_OK; i++) {
        if (p->run_at[i] != i) continue; /* not needed for the output, or run by its group */
        const nc__node *nd = &g->nodes[i];
        const nc__fusion *f = &p->fusion[i];
        void *y = val(p, f->out);
        const void *x0 = nd->n_inputs > 0 ? val(p, nd->inputs[0]) : NULL;
        size_t count = floats(p, i);
        switch (nd->op) {
        case NC__OP_INPUT: st = nc__value_upload(ctx, y, x, &p->shapes[0]); break;
        case NC__OP_CONV2D: {
            nc__conv_desc d = conv_desc(p, i);
            const void *b = nd->attr.conv.bias ? param(p, nd, 1) : NULL;
            if (f->out == i) {
                st = be->conv2d_forward(bs, &d, y, x0, param(p, nd, 0), b);
            } else { /* fused eval chain: [relu]([bn](conv) [+ residual]) */
                nc__bn_params bp = {NULL, NULL, NULL, NULL, 0.0f};
                if (f->bn >= 0) {
                    const nc__node *bn = &g->nodes[f->bn];
                    bp = (nc__bn_params){param(p, bn, 0), param(p, bn, 1), param(p, bn, 2), param(p, bn, 3),
                                         bn->attr.bn.eps};
                }
                st = be->conv2d_fused_infer(bs, &d, f->bn >= 0 ? &bp : NULL, y, x0, param(p, nd, 0), b,
                                            f->residual >= 0 ? val(p, f->residual) : NULL, f->relu >= 0);
            }
            break;
        }
        case NC__OP_BATCHNORM: {
            nc__bn_desc d = bn_desc(p, i);
            if (training) {
                char *save = (char *)p->arena + p->save_off[i];
                st = (f->relu >= 0 ? be->batchnorm_relu_forward_train : be->batchnorm_forward_train)(
                    bs, &d, y, save, save + d.c * sizeof(float), param(p, nd, 2), param(p, nd, 3), x0,
                    param(p, nd, 0), param(p, nd, 1));
                p->m->num_batches[nd->tensors[4]]++;
            } else {
                st = be->batchnorm_forward_infer(bs, &d, y, x0, param(p, nd, 0), param(p, nd, 1), param(p, nd, 2),
                                                 param(p, nd, 3));
            }
            break;
        }
        case NC__OP_RELU: st = be->relu_forward(bs, count, y, x0); break;
        case NC__OP_MAXPOOL:
        case NC__OP_AVGPOOL:
        case NC__OP_ADAPTIVE_AVGPOOL: {
            nc__pool_desc d = pool_desc(p, i);
            st = be->pool2d_forward(bs, &d, y, x0);
            break;
        }
        case NC__OP_ADD: st = be->add_forward(bs, count, y, x0, val(p, nd->inputs[1])); break;
        case NC__OP_LINEAR: {
            nc__linear_desc d = linear_desc(p, i);
            st = be->linear_forward(bs, &d, y, x0, param(p, nd, 0), nd->attr.linear.bias ? param(p, nd, 1) : NULL);
            break;
        }
        case NC__OP_DROPOUT:
            st = be->dropout_forward(bs, count, training ? nd->attr.dropout.p : 0.0f, node_seed(p, i), y, x0);
            break;
        case NC__OP_FLATTEN: st = be->flatten_forward(bs, &p->shapes[nd->inputs[0]], y, x0); break;
        case NC__OP_CONCAT: {
            int64_t widths[NC__MAX_CONCAT];
            const void *xs[NC__MAX_CONCAT];
            for (int k = 0; k < nd->n_inputs; k++) {
                widths[k] = p->shapes[nd->inputs[k]].d[1];
                xs[k] = val(p, nd->inputs[k]);
            }
            st = be->concat_forward(bs, p->shapes[i].d[0], nd->n_inputs, widths, y, xs);
            break;
        }
        case NC__OP_COUNT: break;
        }
        if (st != NC_OK) nc__error_prefix(ctx, st, "%s", nd->name);
    }
    /* batch statistics went into the running statistics */
    if (training) nc__model_params_changed(p->m);
    return st;
}

nc_status nc__plan_read_output(nc__plan *p, float *out) {
    nc_context *ctx = p->m->ctx;
    int o = p->m->graph->output;
    return nc__value_download(ctx, out, val(p, o), &p->shapes[o]);
}

nc_status nc__plan_backward(nc__plan *p, const float *dlogits) {
    nc_context *ctx = p->m->ctx;
    const nc__backend *be = ctx->backend;
    void *bs = ctx->backend_state;
    const nc__graph *g = p->m->graph;
    nc_status st;
    if (!p->training) return nc__error(ctx, NC_ERR_STATE, "internal: backward on an eval plan");
    if (!p->m->grad_arena) return nc__error(ctx, NC_ERR_STATE, "internal: no gradient arena");
    st = nc__value_upload(ctx, grad(p, g->output), dlogits, &p->shapes[g->output]);
    for (int i = g->output; i >= 1 && st == NC_OK; i--) {
        if (p->run_at[i] != i) continue; /* not needed, or a fused RELU (run by its BN) */
        const nc__node *nd = &g->nodes[i];
        const nc__fusion *f = &p->fusion[i];
        const int first = p->first_write[i];
        /* gradients this node writes first and not whole: zero them */
        for (int z = p->zero_first[i]; z < p->zero_first[i + 1] && st == NC_OK; z++) {
            int v = p->zero_list[z];
            st = be->fill(bs, grad(p, v), 0.0f, floats(p, v));
        }
        if (st != NC_OK) break;
        const void *dy = grad(p, f->out);
        int in0 = nd->n_inputs > 0 ? nd->inputs[0] : 0;
        void *dx = in0 > 0 ? grad(p, in0) : NULL; /* no gradient for the graph input */
        const void *x0 = nd->n_inputs > 0 ? val(p, in0) : NULL;
        size_t count = floats(p, i);
        switch (nd->op) {
        case NC__OP_INPUT: break;
        case NC__OP_CONV2D: {
            nc__conv_desc d = conv_desc(p, i);
            d.overwrite = first & 1;
            st = be->conv2d_backward(bs, &d, dx, param_grad(p, nd, 0), nd->attr.conv.bias ? param_grad(p, nd, 1) : NULL,
                                     dy, x0, param(p, nd, 0));
            break;
        }
        case NC__OP_BATCHNORM: {
            nc__bn_desc d = bn_desc(p, i);
            d.overwrite = first & 1;
            char *save = (char *)p->arena + p->save_off[i];
            if (f->relu >= 0)
                st = be->batchnorm_relu_backward(bs, &d, dx, param_grad(p, nd, 0), param_grad(p, nd, 1), dy,
                                                 val(p, f->out), x0, param(p, nd, 0), save,
                                                 save + d.c * sizeof(float));
            else
                st = be->batchnorm_backward(bs, &d, dx, param_grad(p, nd, 0), param_grad(p, nd, 1), dy, x0,
                                            param(p, nd, 0), save, save + d.c * sizeof(float));
            break;
        }
        case NC__OP_RELU:
            if (dx) st = be->relu_backward(bs, count, dx, dy, val(p, i));
            break;
        case NC__OP_MAXPOOL:
        case NC__OP_AVGPOOL:
        case NC__OP_ADAPTIVE_AVGPOOL:
            if (dx) {
                nc__pool_desc d = pool_desc(p, i);
                d.overwrite = first & 1;
                int is_max = nd->op == NC__OP_MAXPOOL;
                st = be->pool2d_backward(bs, &d, dx, dy, is_max ? x0 : NULL, is_max ? val(p, i) : NULL);
            }
            break;
        case NC__OP_ADD:
            for (int k = 0; k < 2 && st == NC_OK; k++) {
                void *dk = nd->inputs[k] > 0 ? grad(p, nd->inputs[k]) : NULL;
                if (dk && (first >> k & 1))
                    st = be->axpby(bs, count, dk, 0.0f, dy, 1.0f); /* first write: an exact copy */
                else if (dk)
                    st = be->accumulate(bs, dk, dy, count);
            }
            break;
        case NC__OP_LINEAR: {
            nc__linear_desc d = linear_desc(p, i);
            d.overwrite = first & 1;
            st = be->linear_backward(bs, &d, dx, param_grad(p, nd, 0), nd->attr.linear.bias ? param_grad(p, nd, 1) : NULL,
                                     dy, x0, param(p, nd, 0));
            break;
        }
        case NC__OP_DROPOUT:
            if (dx) st = be->dropout_backward(bs, count, nd->attr.dropout.p, node_seed(p, i), dx, dy);
            break;
        case NC__OP_FLATTEN:
            if (dx) st = be->flatten_backward(bs, &p->shapes[in0], dx, dy);
            break;
        case NC__OP_CONCAT: {
            int64_t widths[NC__MAX_CONCAT];
            void *dxs[NC__MAX_CONCAT];
            for (int k = 0; k < nd->n_inputs; k++) {
                widths[k] = p->shapes[nd->inputs[k]].d[1];
                dxs[k] = grad(p, nd->inputs[k]);
            }
            st = be->concat_backward(bs, p->shapes[i].d[0], nd->n_inputs, widths, dxs, dy);
            break;
        }
        case NC__OP_COUNT: break;
        }
        if (st != NC_OK) nc__error_prefix(ctx, st, "%s (backward)", nd->name);
    }
    return st;
}
