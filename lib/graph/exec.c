/* exec.c — runs a prepared plan on the context's backend. Forward walks the nodes
 * in topological order; backward is the autodiff of the static graph: each op's
 * backward rule in reverse order, writing its input gradients with the mode the
 * plan's first writers give (exec.h), so values with several consumers (residual
 * connections) need no zeroing. Fused groups (exec.h) run as one backend call at
 * their head's position; their members are skipped. */
#include "graph/exec.h"
#include "core/context.h"
#include "core/rng.h"

#include <string.h>

#define NONE SIZE_MAX

static const nc__backend *backend(const nc__plan *p) { return p->m->ctx->backend; }
static void *state(const nc__plan *p) { return p->bstate; }
static const nc__node *node(const nc__plan *p, int i) { return &p->m->graph->nodes[i]; }

/* Value v's buffer: during backward a recomputed value's second one (exec.h). */
static void *val(const nc__plan *p, int v) {
    const size_t off = p->in_backward && p->rec_off[v] != NONE ? p->rec_off[v] : p->val_off[v];
    return off == NONE ? NULL : (char *)p->arena + off;
}
static void *grad(const nc__plan *p, int v) {
    return p->grad_off[v] == NONE ? NULL : (char *)p->arena + p->grad_off[v];
}
static void *param(const nc__plan *p, const nc__node *nd, int k) { return nc__model_tensor_ptr(p->m, nd->tensors[k]); }
static void *param_grad(const nc__plan *p, const nc__node *nd, int k) {
    return nc__model_grad_ptr(p->m, nd->tensors[k]);
}
/* A batch norm's saved mean (k = 0) or 1/sqrt(var+eps) (k = 1): C f32 each. */
static void *saved(const nc__plan *p, int i, int k) {
    const size_t c = (size_t)p->shapes[i].d[1]; /* f32 statistics (backend.h, DTYPE POLICY) */
    return (char *)p->arena + p->save_off[i] + (size_t)k * c * nc__dtype_size(NC__DTYPE_F32);
}

static uint64_t node_seed(const nc__plan *p, int i) { return nc__rng_u64(p->dropout_seed, 0x64726f70ull, (uint64_t)i); }

/* Forward calls ignore a descriptor's dx_write. */
#define FORWARD NC__WRITE_SET

/* ------------------------------------------------------------- descriptors */

nc__value_desc nc__plan_value_desc(const nc__plan *p, int v) {
    return (nc__value_desc){.shape = p->shapes[v], .dtype = p->dtype[v]};
}

nc__conv_desc nc__plan_conv_desc(const nc__plan *p, int i, nc__write dx_write) {
    const nc__shape *x = &p->shapes[node(p, i)->inputs[0]], *y = &p->shapes[i];
    const nc__conv_attr *a = &node(p, i)->attr.conv;
    return (nc__conv_desc){.n = x->d[0], .c = x->d[1], .h = x->d[2], .w = x->d[3], .k = a->out_channels,
                           .r = a->kh, .s = a->kw, .groups = a->groups, .stride_h = a->stride_h,
                           .stride_w = a->stride_w, .pad_h = a->pad_h, .pad_w = a->pad_w, .dil_h = a->dil_h,
                           .dil_w = a->dil_w, .oh = y->d[2], .ow = y->d[3], .dtype = p->dtype[i],
                           .dx_write = dx_write, .wversion = p->m->param_version, .cache = &p->cache[i]};
}

nc__bn_desc nc__plan_bn_desc(const nc__plan *p, int i, nc__write dx_write) {
    const nc__shape *x = &p->shapes[i];
    const nc__bn_attr *a = &node(p, i)->attr.bn;
    return (nc__bn_desc){.n = x->d[0], .c = x->d[1], .hw = x->ndim == 4 ? x->d[2] * x->d[3] : 1, .eps = a->eps,
                         .momentum = a->momentum, .rank = x->ndim, .dtype = p->dtype[i], .dx_write = dx_write,
                         .wversion = p->m->param_version, .cache = &p->cache[i]};
}

static nc__pool_mode pool_mode(nc__op op) {
    return op == NC__OP_MAXPOOL ? NC__POOL_MAX : op == NC__OP_AVGPOOL ? NC__POOL_AVG : NC__POOL_ADAPTIVE_AVG;
}

nc__pool_desc nc__plan_pool_desc(const nc__plan *p, int i, nc__write dx_write) {
    const nc__shape *x = &p->shapes[node(p, i)->inputs[0]], *y = &p->shapes[i];
    const nc__pool_attr *a = &node(p, i)->attr.pool;
    return (nc__pool_desc){.mode = pool_mode(node(p, i)->op), .n = x->d[0], .c = x->d[1], .h = x->d[2],
                           .w = x->d[3], .oh = y->d[2], .ow = y->d[3], .kh = a->kh, .kw = a->kw,
                           .stride_h = a->stride_h, .stride_w = a->stride_w, .pad_h = a->pad_h, .pad_w = a->pad_w,
                           .dtype = p->dtype[i], .dx_write = dx_write, .cache = &p->cache[i]};
}

nc__linear_desc nc__plan_linear_desc(const nc__plan *p, int i, nc__write dx_write) {
    const nc__shape *x = &p->shapes[node(p, i)->inputs[0]], *y = &p->shapes[i];
    return (nc__linear_desc){.n = y->d[0], .in = x->d[1], .out = y->d[1], .dtype = p->dtype[i],
                             .dx_write = dx_write, .wversion = p->m->param_version, .cache = &p->cache[i]};
}

nc__write nc__plan_write_mode(const nc__plan *p, int i, int k) {
    const nc__node *nd = node(p, i);
    const int v = nd->inputs[k];
    if (p->first_writer[v] != i) return NC__WRITE_ADD;
    for (int j = 0; j < k; j++)
        if (nd->inputs[j] == v) return NC__WRITE_ADD; /* add(v, v): input 0 wrote it */
    return NC__WRITE_SET;
}

/* ----------------------------------------------------------------- forward */

static nc__bn_params bn_params(const nc__plan *p, int b) {
    const nc__node *nd = node(p, b);
    return (nc__bn_params){.gamma = param(p, nd, 0), .beta = param(p, nd, 1), .mean = param(p, nd, 2),
                           .var = param(p, nd, 3), .eps = nd->attr.bn.eps};
}

/* A conv by itself, or its fused eval chain: [relu]([bn](conv) [+ residual]). */
static nc_status forward_conv(nc__plan *p, int i) {
    const nc__node *nd = node(p, i);
    const nc__fusion *f = &p->fusion[i];
    const nc__conv_desc d = nc__plan_conv_desc(p, i, FORWARD);
    const void *x = val(p, nd->inputs[0]), *w = param(p, nd, 0);
    const void *b = nd->attr.conv.bias ? param(p, nd, 1) : NULL;
    if (f->out == i) return backend(p)->conv2d_forward(state(p), &d, val(p, i), x, w, b);
    const nc__bn_params bp = f->bn >= 0 ? bn_params(p, f->bn) : (nc__bn_params){0};
    return backend(p)->conv2d_fused_infer(state(p), &d, f->bn >= 0 ? &bp : NULL, val(p, f->out), x, w, b,
                                          f->residual >= 0 ? val(p, f->residual) : NULL, f->relu >= 0);
}

/* ------------------------------------------------- synchronised batch norm */
/* With hooks.sum set, a training batch norm normalises with the statistics of every
 * rank's batch (torch.nn.SyncBatchNorm): the per-channel sums the backend computes
 * are summed over the ranks (backend.h, SYNC BATCH NORM) — the count and sum first,
 * then the squares about the global mean (two passes, as the single-process kernel);
 * backward sums dy and dy*xhat over the ranks the same way. */

/* Room for 4*c sums in backend memory and 4*c + 1 on the host. */
static nc_status sync_room(nc__plan *p, const nc__bn_desc *d) {
    nc_context *ctx = p->m->ctx;
    const nc__backend *be = backend(p);
    const nc__op_query q = {.kernel = NC__K_BN_SYNC, .dtype = d->dtype, .training = 1, .bn = d};
    if (!be->batchnorm_sync_sums || !be->supports(ctx->backend_state, &q))
        return nc__error(ctx, NC_ERR_UNSUPPORTED, "synchronised batch norm: the %s backend cannot run it on %s values",
                         be->name, nc__dtype_name(d->dtype));
    if (d->c <= p->sync_c) return NC_OK;
    if (p->sync_dev) be->free(ctx->backend_state, p->sync_dev);
    nc__free(ctx, p->sync_host);
    p->sync_dev = NULL;
    p->sync_c = 0;
    const size_t c = (size_t)d->c;
    nc_status st = be->alloc(ctx->backend_state, 4 * c * sizeof(double), (void **)&p->sync_dev);
    if (st != NC_OK) return st;
    if (!(p->sync_host = nc__alloc(ctx, (4 * c + 1) * sizeof(double))))
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "synchronised batch norm: out of memory");
    p->sync_c = d->c;
    return NC_OK;
}

/* host[0..n) = dev[0..n) summed over the ranks, and *extra with them. */
static nc_status sync_reduce(nc__plan *p, const double *dev, size_t n, double *host, double *extra) {
    nc_context *ctx = p->m->ctx;
    nc_status st = backend(p)->read(ctx->backend_state, host, dev, n * sizeof *host);
    host[n] = *extra;
    if (st == NC_OK) st = p->hooks.sum(p->hooks.user, host, n + 1);
    *extra = host[n];
    return st;
}

static nc_status sync_write(nc__plan *p, double *dev, const double *host, size_t n) {
    return backend(p)->write(p->m->ctx->backend_state, dev, host, n * sizeof *host);
}

/* dev = mean (C), biased variance (C) of every rank's x; *count their values per channel. */
static nc_status sync_stats(nc__plan *p, const nc__bn_desc *d, const void *x, double *count) {
    const nc__backend *be = backend(p);
    const size_t C = (size_t)d->c;
    double *dev = p->sync_dev, *host = p->sync_host, unused = 0.0;
    *count = (double)d->n * (double)d->hw;
    nc_status st = be->batchnorm_sync_sums(state(p), d, dev, x, NULL);
    if (st == NC_OK) st = sync_reduce(p, dev, C, host, count);
    for (size_t c = 0; c < C; c++) host[c] /= *count;
    if (st == NC_OK) st = sync_write(p, dev, host, C);
    if (st == NC_OK) st = be->batchnorm_sync_sums(state(p), d, dev + C, x, dev);
    if (st == NC_OK) st = sync_reduce(p, dev + C, C, host + C, &unused);
    for (size_t c = 0; c < C; c++) host[C + c] /= *count;
    return st == NC_OK ? sync_write(p, dev, host, 2 * C) : st;
}

static nc_status forward_bn_sync(nc__plan *p, int i, const nc__bn_desc *d, const void *x, void *rmean, void *rvar) {
    const nc__node *nd = node(p, i);
    const nc__fusion *f = &p->fusion[i];
    double count = 0.0;
    nc_status st = sync_room(p, d);
    if (st == NC_OK) st = sync_stats(p, d, x, &count);
    if (st != NC_OK) return st;
    return backend(p)->batchnorm_sync_forward(state(p), d, f->relu >= 0, val(p, f->out), saved(p, i, 0),
                                              saved(p, i, 1), rmean, rvar, x, param(p, nd, 0), param(p, nd, 1),
                                              p->sync_dev, count);
}

/* dev = this rank's sum dy, sum dy*xhat (2C), then every rank's (2C); *count the
 * values per channel over the ranks. y: the fused ReLU's output, or NULL. */
static nc_status sync_grad_sums(nc__plan *p, const nc__bn_desc *d, const void *dy, const void *y, const void *x,
                                int i, double *count) {
    const size_t C = (size_t)d->c;
    double *dev = p->sync_dev, *host = p->sync_host;
    *count = (double)d->n * (double)d->hw;
    nc_status st = backend(p)->batchnorm_sync_backward_sums(state(p), d, dev, dy, y, x, saved(p, i, 0),
                                                            saved(p, i, 1));
    if (st == NC_OK) st = backend(p)->read(p->m->ctx->backend_state, host, dev, 2 * C * sizeof *host);
    if (st == NC_OK) st = sync_reduce(p, dev, 2 * C, host + 2 * C, count);
    return st == NC_OK ? sync_write(p, dev, host, 4 * C) : st;
}

static nc_status backward_bn_sync(nc__plan *p, int i, const nc__bn_desc *d, const void *dy, const void *y) {
    const nc__node *nd = node(p, i);
    const int in = nd->inputs[0];
    double count = 0.0;
    nc_status st = sync_room(p, d);
    if (st == NC_OK) st = sync_grad_sums(p, d, dy, y, val(p, in), i, &count);
    if (st != NC_OK) return st;
    return backend(p)->batchnorm_sync_backward(state(p), d, grad(p, in), param_grad(p, nd, 0), param_grad(p, nd, 1),
                                               dy, y, val(p, in), param(p, nd, 0), saved(p, i, 0), saved(p, i, 1),
                                               p->sync_dev, count);
}

/* Training: batch statistics (every rank's with synchronised batch norm),
 * running-statistics update, saved statistics for backward, the RELU too when fused;
 * eval: running statistics. A recomputation (exec.h) updates the scratch statistics
 * after the saved ones instead. */
static nc_status forward_bn(nc__plan *p, int i) {
    const nc__backend *be = backend(p);
    const nc__node *nd = node(p, i);
    const nc__fusion *f = &p->fusion[i];
    const nc__bn_desc d = nc__plan_bn_desc(p, i, FORWARD);
    const void *x = val(p, nd->inputs[0]);
    if (!p->training)
        return be->batchnorm_forward_infer(state(p), &d, val(p, i), x, param(p, nd, 0), param(p, nd, 1),
                                           param(p, nd, 2), param(p, nd, 3));
    const int again = p->in_backward;
    void *rmean = again ? saved(p, i, 2) : param(p, nd, 2), *rvar = again ? saved(p, i, 3) : param(p, nd, 3);
    nc_status st = p->hooks.sum ? forward_bn_sync(p, i, &d, x, rmean, rvar)
                                : (f->relu >= 0 ? be->batchnorm_relu_forward_train : be->batchnorm_forward_train)(
                                      state(p), &d, val(p, f->out), saved(p, i, 0), saved(p, i, 1), rmean, rvar, x,
                                      param(p, nd, 0), param(p, nd, 1));
    if (!again) p->m->num_batches[nd->tensors[4]]++;
    return st;
}

static nc_status forward_linear(nc__plan *p, int i) {
    const nc__node *nd = node(p, i);
    const nc__linear_desc d = nc__plan_linear_desc(p, i, FORWARD);
    return backend(p)->linear_forward(state(p), &d, val(p, i), val(p, nd->inputs[0]), param(p, nd, 0),
                                      nd->attr.linear.bias ? param(p, nd, 1) : NULL);
}

static nc_status forward_concat(nc__plan *p, int i) {
    const nc__node *nd = node(p, i);
    nc__value_desc xv[NC__MAX_CONCAT];
    const void *xs[NC__MAX_CONCAT];
    for (int k = 0; k < nd->n_inputs; k++) {
        xv[k] = nc__plan_value_desc(p, nd->inputs[k]);
        xs[k] = val(p, nd->inputs[k]);
    }
    const nc__value_desc yv = nc__plan_value_desc(p, i);
    return backend(p)->concat_forward(state(p), &yv, nd->n_inputs, xv, val(p, i), xs);
}

/* Node i, or the group it heads; x is the host input (node 0). */
static nc_status forward_node(nc__plan *p, int i, const float *x) {
    const nc__backend *be = backend(p);
    void *bs = state(p);
    const nc__node *nd = node(p, i);
    const nc__value_desc v = nc__plan_value_desc(p, i);
    void *y = val(p, i);
    const void *x0 = nd->n_inputs > 0 ? val(p, nd->inputs[0]) : NULL;
    switch (nd->op) {
    case NC__OP_INPUT: return be->value_upload(bs, &v, y, x);
    case NC__OP_CONV2D: return forward_conv(p, i);
    case NC__OP_BATCHNORM: return forward_bn(p, i);
    case NC__OP_RELU: return be->relu_forward(bs, &v, y, x0);
    case NC__OP_MAXPOOL:
    case NC__OP_AVGPOOL:
    case NC__OP_ADAPTIVE_AVGPOOL: {
        const nc__pool_desc d = nc__plan_pool_desc(p, i, FORWARD);
        return be->pool2d_forward(bs, &d, y, x0);
    }
    case NC__OP_ADD: return be->add_forward(bs, &v, y, x0, val(p, nd->inputs[1]));
    case NC__OP_LINEAR: return forward_linear(p, i);
    case NC__OP_DROPOUT:
        return be->dropout_forward(bs, &v, p->training ? nd->attr.dropout.p : 0.0f, node_seed(p, i), y, x0);
    case NC__OP_FLATTEN: {
        const nc__value_desc in = nc__plan_value_desc(p, nd->inputs[0]);
        return be->flatten_forward(bs, &in, y, x0);
    }
    case NC__OP_CONCAT: return forward_concat(p, i);
    case NC__OP_COUNT: break;
    }
    return NC_OK;
}

/* Copies value (grad = 0) or gradient (grad = 1) of node v to host. */
static nc_status download_node(nc__plan *p, int v, int want_grad, float *host) {
    const nc__value_desc d = nc__plan_value_desc(p, v);
    const void *src = want_grad ? grad(p, v) : val(p, v);
    if (!src || p->run_at[v] != v)
        return nc__error(p->m->ctx, NC_ERR_STATE, "internal: %s of node %s is not kept by the plan",
                         want_grad ? "gradient" : "value", p->m->graph->nodes[v].name);
    return backend(p)->value_download(state(p), &d, host, src);
}

nc_status nc__plan_forward(nc__plan *p, const float *x, int training, uint64_t dropout_seed) {
    return nc__plan_forward_tap(p, x, training, dropout_seed, -1, NULL);
}

nc_status nc__plan_forward_tap(nc__plan *p, const float *x, int training, uint64_t dropout_seed, int tap,
                               float *tap_host) {
    nc_context *ctx = p->m->ctx;
    const nc__graph *g = p->m->graph;
    nc_status st = NC_OK;
    if (training != p->training)
        return nc__error(ctx, NC_ERR_STATE, "internal: plan prepared for %s, run for %s",
                         p->training ? "training" : "eval", training ? "training" : "eval");
    p->dropout_seed = dropout_seed;
    for (int i = 0; i < g->n_nodes && st == NC_OK; i++) {
        if (p->run_at[i] != i) continue; /* not needed for the output, or run by its group */
        st = forward_node(p, i, x);
        if (st != NC_OK) nc__error_prefix(ctx, st, "%s", g->nodes[i].name);
        if (st == NC_OK && i == tap) st = download_node(p, i, 0, tap_host);
    }
    /* batch statistics went into the running statistics */
    if (training) nc__model_params_changed(p->m);
    return st;
}

void *nc__plan_output(const nc__plan *p) { return val(p, p->m->graph->output); }
void *nc__plan_output_grad(const nc__plan *p) { return grad(p, p->m->graph->output); }

nc_status nc__plan_read_output(nc__plan *p, float *out) {
    const nc__value_desc d = nc__plan_value_desc(p, p->m->graph->output);
    return backend(p)->value_download(state(p), &d, out, nc__plan_output(p));
}

/* ---------------------------------------------------------------- backward */

static nc_status backward_conv(nc__plan *p, int i) {
    const nc__node *nd = node(p, i);
    const int in = nd->inputs[0];
    const nc__conv_desc d = nc__plan_conv_desc(p, i, nc__plan_write_mode(p, i, 0));
    return backend(p)->conv2d_backward(state(p), &d, grad(p, in), param_grad(p, nd, 0),
                                       nd->attr.conv.bias ? param_grad(p, nd, 1) : NULL, grad(p, i), val(p, in),
                                       param(p, nd, 0));
}

/* A fused bn+relu gets dy and y of the RELU's value. */
static nc_status backward_bn(nc__plan *p, int i) {
    const nc__backend *be = backend(p);
    const nc__node *nd = node(p, i);
    const int in = nd->inputs[0], out = p->fusion[i].out;
    const nc__bn_desc d = nc__plan_bn_desc(p, i, nc__plan_write_mode(p, i, 0));
    void *dx = grad(p, in), *dgamma = param_grad(p, nd, 0), *dbeta = param_grad(p, nd, 1);
    const void *x = val(p, in), *gamma = param(p, nd, 0);
    if (p->hooks.sum) return backward_bn_sync(p, i, &d, grad(p, out), out != i ? val(p, out) : NULL);
    if (out != i)
        return be->batchnorm_relu_backward(state(p), &d, dx, dgamma, dbeta, grad(p, out), val(p, out), x, gamma,
                                           saved(p, i, 0), saved(p, i, 1));
    return be->batchnorm_backward(state(p), &d, dx, dgamma, dbeta, grad(p, i), x, gamma, saved(p, i, 0),
                                  saved(p, i, 1));
}

static nc_status backward_pool(nc__plan *p, int i) {
    const int in = node(p, i)->inputs[0], is_max = node(p, i)->op == NC__OP_MAXPOOL;
    const nc__pool_desc d = nc__plan_pool_desc(p, i, nc__plan_write_mode(p, i, 0));
    return backend(p)->pool2d_backward(state(p), &d, grad(p, in), grad(p, i), is_max ? val(p, in) : NULL,
                                       is_max ? val(p, i) : NULL);
}

static nc_status backward_add(nc__plan *p, int i) {
    const nc__value_desc v = nc__plan_value_desc(p, i);
    nc_status st = NC_OK;
    for (int k = 0; k < 2 && st == NC_OK; k++) {
        void *dk = grad(p, node(p, i)->inputs[k]);
        if (dk) st = backend(p)->accumulate(state(p), &v, nc__plan_write_mode(p, i, k), dk, grad(p, i));
    }
    return st;
}

static nc_status backward_linear(nc__plan *p, int i) {
    const nc__node *nd = node(p, i);
    const int in = nd->inputs[0];
    const nc__linear_desc d = nc__plan_linear_desc(p, i, nc__plan_write_mode(p, i, 0));
    return backend(p)->linear_backward(state(p), &d, grad(p, in), param_grad(p, nd, 0),
                                       nd->attr.linear.bias ? param_grad(p, nd, 1) : NULL, grad(p, i), val(p, in),
                                       param(p, nd, 0));
}

static nc_status backward_concat(nc__plan *p, int i) {
    const nc__node *nd = node(p, i);
    nc__value_desc xv[NC__MAX_CONCAT];
    void *dxs[NC__MAX_CONCAT];
    nc__write modes[NC__MAX_CONCAT];
    for (int k = 0; k < nd->n_inputs; k++) {
        xv[k] = nc__plan_value_desc(p, nd->inputs[k]);
        dxs[k] = grad(p, nd->inputs[k]);
        modes[k] = nc__plan_write_mode(p, i, k);
    }
    const nc__value_desc yv = nc__plan_value_desc(p, i);
    return backend(p)->concat_backward(state(p), &yv, nd->n_inputs, xv, modes, dxs, grad(p, i));
}

/* The backward of node i, or of the group it heads. Element-wise rules without
 * parameters do nothing when their input (the graph input) has no gradient. */
static nc_status backward_node(nc__plan *p, int i) {
    const nc__backend *be = backend(p);
    void *bs = state(p);
    const nc__node *nd = node(p, i);
    const nc__value_desc v = nc__plan_value_desc(p, i);
    void *dx = grad(p, nd->inputs[0]);
    const void *dy = grad(p, i);
    switch (nd->op) {
    case NC__OP_CONV2D: return backward_conv(p, i);
    case NC__OP_BATCHNORM: return backward_bn(p, i);
    case NC__OP_RELU: return dx ? be->relu_backward(bs, &v, nc__plan_write_mode(p, i, 0), dx, dy, val(p, i)) : NC_OK;
    case NC__OP_MAXPOOL:
    case NC__OP_AVGPOOL:
    case NC__OP_ADAPTIVE_AVGPOOL: return dx ? backward_pool(p, i) : NC_OK;
    case NC__OP_ADD: return backward_add(p, i);
    case NC__OP_LINEAR: return backward_linear(p, i);
    case NC__OP_DROPOUT:
        return dx ? be->dropout_backward(bs, &v, nc__plan_write_mode(p, i, 0), nd->attr.dropout.p, node_seed(p, i),
                                         dx, dy)
                  : NC_OK;
    case NC__OP_FLATTEN: {
        const nc__value_desc in = nc__plan_value_desc(p, nd->inputs[0]);
        return dx ? be->flatten_backward(bs, &in, nc__plan_write_mode(p, i, 0), dx, dy) : NC_OK;
    }
    case NC__OP_CONCAT: return backward_concat(p, i);
    case NC__OP_INPUT:
    case NC__OP_COUNT: break;
    }
    return NC_OK;
}

nc_status nc__plan_backward(nc__plan *p) { return nc__plan_backward_taps(p, NULL, NULL, 0); }

nc_status nc__plan_backward_taps(nc__plan *p, const int *taps, float *const *hosts, int n_taps) {
    nc_context *ctx = p->m->ctx;
    const nc__graph *g = p->m->graph;
    nc_status st = NC_OK;
    if (!p->training) return nc__error(ctx, NC_ERR_STATE, "internal: backward on an eval plan");
    if (!p->m->grad_arena) return nc__error(ctx, NC_ERR_STATE, "internal: no gradient arena");
    int lowest = g->output;
    for (int k = 0; k < n_taps; k++) lowest = taps[k] < lowest ? taps[k] : lowest;
    p->in_backward = 1;
    int next_rec = 0; /* into rec_order */
    for (int i = g->output; i >= 1 && st == NC_OK; i--) {
        /* every consumer of node i ran its backward: its gradient is whole */
        for (int k = 0; k < n_taps && st == NC_OK; k++)
            if (taps[k] == i) st = download_node(p, i, 1, hosts[k]);
        if (st != NC_OK || (n_taps > 0 && i == lowest)) break; /* nothing below is wanted */
        if (p->run_at[i] != i) continue; /* not needed, or a fused RELU (run by its BN) */
        for (; st == NC_OK && next_rec < p->n_rec && p->rec_trigger[p->rec_order[next_rec]] == i; next_rec++) {
            const int h = p->rec_order[next_rec];
            st = forward_node(p, h, NULL);
            if (st != NC_OK) nc__error_prefix(ctx, st, "%s (recomputed)", g->nodes[h].name);
        }
        if (st != NC_OK) break;
        st = backward_node(p, i);
        if (st != NC_OK) nc__error_prefix(ctx, st, "%s (backward)", g->nodes[i].name);
        if (st == NC_OK && p->hooks.after_backward) st = p->hooks.after_backward(p->hooks.user, i);
    }
    p->in_backward = 0;
    return st;
}
