/* plan.c — prepares a graph for one input shape and mode in named passes
 * (plan_passes.h): who consumes each value, shapes, dtypes and the backend's consent
 * for every node, fused groups where the backend accepts them, buffer lifetimes and
 * their packing into one arena (buffers whose lifetimes do not overlap share
 * memory), and which backward writes each gradient first. */
#include "graph/plan_passes.h"
#include "core/context.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NC__ARENA_ALIGN 64
#define NONE SIZE_MAX

static size_t align_up(size_t bytes, size_t align) { return (bytes + align - 1) / align * align; }
static int max_int(int a, int b) { return a > b ? a : b; }

/* ---------------------------------------------------------- interval packing */

static int by_size_desc(const void *a, const void *b) {
    const nc__interval *x = *(const nc__interval *const *)a, *y = *(const nc__interval *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->first - y->first;
}

/* Without scratch memory: every interval its own place. */
static size_t pack_without_reuse(nc__interval *iv, int count, size_t align) {
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        iv[i].offset = off;
        off += align_up(iv[i].bytes, align);
    }
    return off;
}

/* The lowest offset where cur fits beside the placed intervals that overlap it in
 * time (placed is not sorted by offset: rescan after each move). */
static size_t lowest_fit(const nc__interval *cur, nc__interval *const *placed, int n_placed, size_t align) {
    const size_t need = align_up(cur->bytes, align);
    size_t off = 0;
    for (int moved = 1; moved;) {
        moved = 0;
        for (int k = 0; k < n_placed; k++) {
            const nc__interval *o = placed[k];
            if (o->last < cur->first || cur->last < o->first) continue;
            const size_t oend = o->offset + align_up(o->bytes, align);
            if (off < oend && o->offset < off + need) {
                off = oend;
                moved = 1;
            }
        }
    }
    return off;
}

size_t nc__plan_memory(nc_context *ctx, nc__interval *iv, int count, size_t align) {
    if (count <= 0) return 0;
    nc__interval **order = nc__alloc(ctx, (size_t)count * sizeof *order);
    size_t total = 0;
    if (!order) return pack_without_reuse(iv, count, align);
    for (int i = 0; i < count; i++) order[i] = &iv[i];
    qsort(order, (size_t)count, sizeof *order, by_size_desc);
    /* order[0 .. i) are the placed ones */
    for (int i = 0; i < count; i++) {
        order[i]->offset = lowest_fit(order[i], order, i, align);
        const size_t end = order[i]->offset + align_up(order[i]->bytes, align);
        if (end > total) total = end;
    }
    nc__free(ctx, order);
    return total;
}

/* ------------------------------------------------------------- plan lifetime */

void nc__plan_destroy(nc__plan *p) {
    if (!p) return;
    nc_context *ctx = p->m->ctx;
    const nc__backend *be = ctx->backend;
    if (p->cache && be->release_cache && p->bstate)
        for (int i = 0; i < p->m->graph->n_nodes; i++)
            if (p->cache[i]) be->release_cache(p->bstate, p->cache[i]);
    if (p->arena) be->free(ctx->backend_state, p->arena);
    if (p->sync_dev) be->free(ctx->backend_state, p->sync_dev);
    nc__free(ctx, p->sync_host);
    if (be->worker_create && p->bstate) be->worker_destroy(p->bstate);
    nc__free(ctx, p->shapes);
    nc__free(ctx, p->cache);
    nc__free(ctx, p->val_off);
    nc__free(ctx, p->grad_off);
    nc__free(ctx, p->save_off);
    nc__free(ctx, p->rec_off);
    nc__free(ctx, p->rec_trigger);
    nc__free(ctx, p->rec_order);
    nc__free(ctx, p->dtype);
    nc__free(ctx, p->first_writer);
    nc__free(ctx, p->run_at);
    nc__free(ctx, p->fusion);
    nc__free(ctx, p->buffers);
    nc__free(ctx, p->buffer_owner);
    nc__free(ctx, p);
}

nc_status nc__plan_alloc(nc_model *m, int training, const nc__shape *in, nc__plan **out) {
    nc_context *ctx = m->ctx;
    const size_t n = (size_t)m->graph->n_nodes;
    nc__plan *p = nc__calloc(ctx, 1, sizeof *p);
    *out = NULL;
    if (!p) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
    *p = (nc__plan){.m = m, .training = training, .precision = ctx->opt.precision, .in_shape = *in};
    p->shapes = nc__calloc(ctx, n, sizeof *p->shapes);
    p->cache = nc__calloc(ctx, n, sizeof *p->cache);
    p->val_off = nc__calloc(ctx, n, sizeof *p->val_off);
    p->grad_off = nc__calloc(ctx, n, sizeof *p->grad_off);
    p->save_off = nc__calloc(ctx, n, sizeof *p->save_off);
    p->rec_off = nc__calloc(ctx, n, sizeof *p->rec_off);
    p->rec_trigger = nc__calloc(ctx, n, sizeof *p->rec_trigger);
    p->rec_order = nc__calloc(ctx, n, sizeof *p->rec_order);
    p->dtype = nc__calloc(ctx, n, sizeof *p->dtype);
    p->first_writer = nc__calloc(ctx, n, sizeof *p->first_writer);
    p->run_at = nc__calloc(ctx, n, sizeof *p->run_at);
    p->fusion = nc__calloc(ctx, n, sizeof *p->fusion);
    /* value, gradient, saved stats, recomputed value */
    p->buffers = nc__calloc(ctx, 4 * n, sizeof *p->buffers);
    p->buffer_owner = nc__calloc(ctx, 4 * n, sizeof *p->buffer_owner);
    if (!p->shapes || !p->cache || !p->val_off || !p->grad_off || !p->save_off || !p->rec_off || !p->rec_trigger ||
        !p->rec_order || !p->dtype || !p->first_writer ||
        !p->run_at || !p->fusion || !p->buffers || !p->buffer_owner) {
        nc__plan_destroy(p);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
    }
    /* its own backend worker: plans run side by side (backend.h, CONCURRENCY) */
    nc_status st = ctx->backend->worker_create ? ctx->backend->worker_create(ctx->backend_state, &p->bstate) : NC_OK;
    if (!ctx->backend->worker_create) p->bstate = ctx->backend_state;
    if (st != NC_OK) {
        nc__plan_destroy(p);
        return st;
    }
    *out = p;
    return NC_OK;
}

static const nc__node *node(const nc__plan *p, int i) { return &p->m->graph->nodes[i]; }
static int is_op(const nc__plan *p, int i, nc__op op) { return i >= 0 && node(p, i)->op == op; }

/* ------------------------------------------------------------------ (1) uses */

/* Marks the nodes the output depends on; node 0 too (the input is always uploaded). */
static void mark_needed(const nc__graph *g, char *needed) {
    memset(needed, 0, (size_t)g->n_nodes);
    needed[g->output] = 1;
    for (int i = g->output; i >= 0; i--) {
        if (!needed[i]) continue;
        for (int k = 0; k < g->nodes[i].n_inputs; k++) needed[g->nodes[i].inputs[k]] = 1;
    }
    needed[0] = 1;
}

void nc__plan_uses_free(nc_context *ctx, nc__plan_uses *u) {
    nc__free(ctx, u->needed);
    nc__free(ctx, u->first);
    nc__free(ctx, u->users);
    *u = (nc__plan_uses){0};
}

nc_status nc__plan_find_uses(const nc__plan *p, nc__plan_uses *u) {
    nc_context *ctx = p->m->ctx;
    const nc__graph *g = p->m->graph;
    const int n = g->n_nodes;
    size_t slots = 1;
    for (int i = 0; i < n; i++) slots += (size_t)g->nodes[i].n_inputs;
    u->needed = nc__alloc(ctx, (size_t)n);
    u->first = nc__calloc(ctx, (size_t)n + 1, sizeof *u->first);
    u->users = nc__alloc(ctx, slots * sizeof *u->users);
    int *filled = nc__calloc(ctx, (size_t)n, sizeof *filled);
    if (!u->needed || !u->first || !u->users || !filled) {
        nc__free(ctx, filled);
        nc__plan_uses_free(ctx, u);
        return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__);
    }
    mark_needed(g, u->needed);
    for (int i = 0; i < n; i++)
        for (int k = 0; u->needed[i] && k < g->nodes[i].n_inputs; k++) u->first[g->nodes[i].inputs[k] + 1]++;
    for (int v = 0; v < n; v++) u->first[v + 1] += u->first[v];
    for (int i = 0; i < n; i++)
        for (int k = 0; u->needed[i] && k < g->nodes[i].n_inputs; k++) {
            const int v = g->nodes[i].inputs[k];
            u->users[u->first[v] + filled[v]++] = i;
        }
    nc__free(ctx, filled);
    return NC_OK;
}

static int consumers(const nc__plan_uses *u, int v) { return u->first[v + 1] - u->first[v]; }

int nc__plan_sole_consumer(const nc__plan *p, const nc__plan_uses *u, int v) {
    return v != p->m->graph->output && consumers(u, v) == 1 ? u->users[u->first[v]] : -1;
}

int nc__plan_last_consumer(const nc__plan *p, const nc__plan_uses *u, int v) {
    int last = -1;
    for (int k = u->first[v]; k < u->first[v + 1]; k++) {
        const int c = u->users[k]; /* graph order: >= lets the later node win a tie */
        if (last < 0 || p->run_at[c] >= p->run_at[last]) last = c;
    }
    return last;
}

/* ---------------------------------------------------------------- (2) shapes */

/* Batch statistics of a single value per channel have no variance (PyTorch refuses
 * them too). */
static nc_status check_batch_stats(const nc__plan *p, int i) {
    const nc__shape *s = &p->shapes[i];
    const int64_t per_channel = s->d[0] * (s->ndim == 4 ? s->d[2] * s->d[3] : 1);
    if (per_channel >= 2) return NC_OK;
    return nc__error(p->m->ctx, NC_ERR_SHAPE,
                     "%s: batch normalisation in training needs more than 1 value per channel "
                     "(input %lldx%lld%s); use a larger batch or image",
                     node(p, i)->name, (long long)s->d[0], (long long)s->d[1], s->ndim == 4 ? "x1x1" : "");
}

nc_status nc__plan_infer_shapes(nc__plan *p, const nc__plan_uses *u) {
    nc_status st = nc__graph_infer_shapes(p->m->graph, &p->in_shape, p->shapes);
    for (int i = 1; i < p->m->graph->n_nodes && st == NC_OK; i++)
        if (p->training && u->needed[i] && is_op(p, i, NC__OP_BATCHNORM)) st = check_batch_stats(p, i);
    return st;
}

/* ---------------------------------------------------------------- (3) dtypes */

/* The DTYPE POLICY's rule for values, in one place so that a per-value policy
 * changes only this: today every value has the context's activation dtype. */
static nc__dtype value_dtype(const nc__plan *p, int v) {
    (void)v;
    return nc__context_act_dtype(p->m->ctx);
}

void nc__plan_assign_dtypes(nc__plan *p) {
    for (int v = 0; v < p->m->graph->n_nodes; v++) p->dtype[v] = value_dtype(p, v);
}

/* ------------------------------------------------------------ (4) capability */

/* An op query and the descriptor it points at (filled in place). */
typedef struct node_query {
    nc__op_query q;
    nc__conv_desc conv;
    nc__bn_desc bn;
    nc__pool_desc pool;
    nc__linear_desc linear;
    nc__value_desc value;
} node_query;

static nc__kernel kernel_of(nc__op op) {
    switch (op) {
    case NC__OP_CONV2D: return NC__K_CONV2D;
    case NC__OP_BATCHNORM: return NC__K_BATCHNORM;
    case NC__OP_RELU: return NC__K_RELU;
    case NC__OP_MAXPOOL:
    case NC__OP_AVGPOOL:
    case NC__OP_ADAPTIVE_AVGPOOL: return NC__K_POOL2D;
    case NC__OP_ADD: return NC__K_ADD;
    case NC__OP_LINEAR: return NC__K_LINEAR;
    case NC__OP_DROPOUT: return NC__K_DROPOUT;
    case NC__OP_FLATTEN: return NC__K_FLATTEN;
    case NC__OP_CONCAT: return NC__K_CONCAT;
    case NC__OP_INPUT:
    case NC__OP_COUNT: break;
    }
    return NC__K_COUNT;
}

/* The query for node i run by itself. The descriptors' dx_write is arbitrary: every
 * backward entry takes both write modes. */
static void query_node(const nc__plan *p, int i, node_query *nq) {
    *nq = (node_query){.q = {.kernel = kernel_of(node(p, i)->op), .dtype = p->dtype[i], .training = p->training}};
    switch (nq->q.kernel) {
    case NC__K_CONV2D:
        nq->conv = nc__plan_conv_desc(p, i, NC__WRITE_SET);
        nq->q.conv = &nq->conv;
        break;
    case NC__K_BATCHNORM:
        nq->bn = nc__plan_bn_desc(p, i, NC__WRITE_SET);
        nq->q.bn = &nq->bn;
        break;
    case NC__K_POOL2D:
        nq->pool = nc__plan_pool_desc(p, i, NC__WRITE_SET);
        nq->q.pool = &nq->pool;
        break;
    case NC__K_LINEAR:
        nq->linear = nc__plan_linear_desc(p, i, NC__WRITE_SET);
        nq->q.linear = &nq->linear;
        break;
    default: /* element-wise ops and concat: their value; flatten: its input */
        nq->value = nc__plan_value_desc(p, is_op(p, i, NC__OP_FLATTEN) ? node(p, i)->inputs[0] : i);
        nq->q.value = &nq->value;
        break;
    }
}

static const char *op_title(const nc__plan *p, int i) {
    if (is_op(p, i, NC__OP_BATCHNORM) && p->shapes[i].ndim == 2) return "BatchNorm1d";
    return nc__op_name(node(p, i)->op);
}

nc_status nc__plan_check_support(const nc__plan *p, const nc__plan_uses *u) {
    nc_context *ctx = p->m->ctx;
    const nc__backend *be = ctx->backend;
    for (int i = 1; i < p->m->graph->n_nodes; i++) {
        if (!u->needed[i]) continue;
        node_query nq;
        query_node(p, i, &nq);
        if (be->supports(ctx->backend_state, &nq.q)) continue;
        const char *why = be->dtype_refusal ? be->dtype_refusal(ctx->backend_state, p->dtype[i]) : NULL;
        return nc__error(ctx, NC_ERR_UNSUPPORTED, "%s: the %s backend cannot run %s on %s values (%s)%s%s",
                         node(p, i)->name, be->name, op_title(p, i), nc__dtype_name(p->dtype[i]),
                         p->training ? "training" : "inference", why ? ": " : "", why ? why : "");
    }
    return NC_OK;
}

/* ---------------------------------------------------------------- (5) fusion */

static nc__fusion alone(int i) { return (nc__fusion){.bn = -1, .add = -1, .relu = -1, .residual = -1, .out = i}; }

/* Every needed node runs by itself at its own position. */
static void reset_groups(nc__plan *p, const nc__plan_uses *u) {
    for (int i = 0; i < p->m->graph->n_nodes; i++) {
        p->run_at[i] = u->needed[i] ? i : -1;
        p->fusion[i] = alone(i);
    }
    p->n_conv_chains = p->n_bn_relu = 0;
}

/* The longest eval chain from conv c (exec.h, Fusion): each link is the previous
 * value's sole consumer, and the ADD's other input must come before c so that the
 * chain can run at c's position. */
static nc__fusion longest_chain(const nc__plan *p, const nc__plan_uses *u, int c) {
    nc__fusion f = alone(c);
    int next = nc__plan_sole_consumer(p, u, c);
    if (is_op(p, next, NC__OP_BATCHNORM) && p->shapes[next].ndim == 4) {
        f.bn = f.out = next;
        next = nc__plan_sole_consumer(p, u, next);
    }
    if (is_op(p, next, NC__OP_ADD)) {
        const nc__node *a = node(p, next);
        const int other = a->inputs[0] == f.out ? a->inputs[1] : a->inputs[0];
        if (other < c) {
            f.add = f.out = next;
            f.residual = other;
            next = nc__plan_sole_consumer(p, u, next);
        }
    }
    if (is_op(p, next, NC__OP_RELU)) f.relu = f.out = next;
    return f;
}

static int chain_length(const nc__fusion *f) { return (f->bn >= 0) + (f->add >= 0) + (f->relu >= 0); }

/* Chain f of conv c cut to its first len members (in bn, add, relu order). */
static nc__fusion chain_prefix(nc__fusion f, int c, int len) {
    int *members[3] = {&f.bn, &f.add, &f.relu};
    f.out = c;
    for (int k = 0; k < 3; k++) {
        if (*members[k] < 0) continue;
        if (len-- > 0)
            f.out = *members[k];
        else
            *members[k] = -1;
    }
    if (f.add < 0) f.residual = -1;
    return f;
}

static int chain_supported(const nc__plan *p, int c, const nc__fusion *f) {
    nc_context *ctx = p->m->ctx;
    const nc__conv_desc d = nc__plan_conv_desc(p, c, NC__WRITE_SET);
    const nc__op_query q = {.kernel = NC__K_CONV_FUSED_INFER, .dtype = p->dtype[c], .training = 0, .conv = &d,
                            .fused_bn = f->bn >= 0, .fused_residual = f->add >= 0, .fused_relu = f->relu >= 0};
    return ctx->backend->supports(ctx->backend_state, &q);
}

/* Eval: per conv, the longest chain the backend accepts; shorter prefixes when it
 * refuses (a backend without a residual epilogue still fuses conv+bn). */
static void fuse_conv_chains(nc__plan *p, const nc__plan_uses *u) {
    for (int c = 1; c < p->m->graph->n_nodes; c++) {
        if (p->run_at[c] != c || !is_op(p, c, NC__OP_CONV2D)) continue;
        const nc__fusion longest = longest_chain(p, u, c);
        for (int len = chain_length(&longest); len > 0; len--) {
            const nc__fusion f = chain_prefix(longest, c, len);
            if (!chain_supported(p, c, &f)) continue;
            const int members[3] = {f.bn, f.add, f.relu};
            for (int k = 0; k < 3; k++)
                if (members[k] >= 0) p->run_at[members[k]] = c;
            p->fusion[c] = f;
            p->n_conv_chains++;
            break;
        }
    }
}

static int bn_relu_supported(const nc__plan *p, int b) {
    nc_context *ctx = p->m->ctx;
    const nc__bn_desc d = nc__plan_bn_desc(p, b, NC__WRITE_SET);
    const nc__op_query q = {.kernel = NC__K_BN_RELU_TRAIN, .dtype = p->dtype[b], .training = 1, .bn = &d};
    return ctx->backend->supports(ctx->backend_state, &q);
}

/* Training: a batch norm whose sole consumer is a RELU, where the backend accepts it. */
static void fuse_bn_relu(nc__plan *p, const nc__plan_uses *u) {
    for (int b = 1; b < p->m->graph->n_nodes; b++) {
        if (p->run_at[b] != b || !is_op(p, b, NC__OP_BATCHNORM)) continue;
        const int r = nc__plan_sole_consumer(p, u, b);
        if (!is_op(p, r, NC__OP_RELU) || !bn_relu_supported(p, b)) continue;
        p->fusion[b].relu = p->fusion[b].out = r;
        p->run_at[r] = b;
        p->n_bn_relu++;
    }
}

void nc__plan_fuse(nc__plan *p, const nc__plan_uses *u) {
    reset_groups(p, u);
    if (p->training)
        fuse_bn_relu(p, u);
    else
        fuse_conv_chains(p, u);
}

/* -------------------------------------------------------- (5b) recomputation */

static int can_recompute(const nc__plan *p, int v) {
    const nc__node *nd = node(p, v);
    return nd->recompute && v != p->m->graph->output && p->shapes[v].ndim == 4 &&
           (nd->op == NC__OP_CONCAT || nd->op == NC__OP_BATCHNORM || nd->op == NC__OP_RELU);
}

/* Whether the group headed by h is recomputed: every member marked. */
static int group_marked(const nc__plan *p, int h) {
    return p->run_at[h] == h && can_recompute(p, h) && can_recompute(p, p->fusion[h].out);
}

/* The trigger of the group v belongs to; 0 when v is not recomputed. */
static int rec_of(const nc__plan *p, int v) { return p->run_at[v] >= 0 ? p->rec_trigger[p->run_at[v]] : 0; }

/* Whether head a is recomputed after head b: by decreasing trigger, then graph order. */
static int rec_after(const nc__plan *p, int a, int b) {
    const int ta = p->rec_trigger[a], tb = p->rec_trigger[b];
    return ta != tb ? ta < tb : a > b;
}

void nc__plan_choose_recompute(nc__plan *p, const nc__plan_uses *u) {
    const int n = p->m->graph->n_nodes;
    memset(p->rec_trigger, 0, (size_t)n * sizeof *p->rec_trigger);
    p->n_rec = 0;
    if (!p->training) return;
    /* reverse graph order: a consumer's trigger is known before its producer's */
    for (int h = n - 1; h >= 1; h--) {
        if (!group_marked(p, h)) continue;
        const int out = p->fusion[h].out;
        int t = 0;
        for (int k = u->first[out]; k < u->first[out + 1]; k++) {
            const int c = p->run_at[u->users[k]], tc = p->rec_trigger[c] ? p->rec_trigger[c] : c;
            t = max_int(t, tc);
        }
        p->rec_trigger[h] = t; /* 0: no reader, nothing to recompute */
        if (t) p->rec_order[p->n_rec++] = h;
    }
    /* insertion sort: the list is nearly ordered already */
    for (int i = 1; i < p->n_rec; i++)
        for (int j = i; j > 0 && rec_after(p, p->rec_order[j - 1], p->rec_order[j]); j--) {
            const int t = p->rec_order[j];
            p->rec_order[j] = p->rec_order[j - 1];
            p->rec_order[j - 1] = t;
        }
}

/* -------------------------------------------------------------- (6) liveness */

static int reads_input_in_backward(nc__op op) {
    return op == NC__OP_CONV2D || op == NC__OP_BATCHNORM || op == NC__OP_MAXPOOL || op == NC__OP_LINEAR;
}

static int reads_output_in_backward(nc__op op) { return op == NC__OP_RELU || op == NC__OP_MAXPOOL; }

/* Whether value v has a buffer: v runs and is the value its group writes (a fused
 * group's intermediate values exist only inside the fused call). */
static int owns_value(const nc__plan *p, int v) { return p->run_at[v] >= 0 && p->fusion[p->run_at[v]].out == v; }

/* Training: the output's gradient (the loss writes it) and that of every other
 * value with a buffer and consumers; the graph input has none. */
static int has_gradient(const nc__plan *p, const nc__plan_uses *u, int v) {
    return p->training && v > 0 && owns_value(p, v) && (v == p->m->graph->output || consumers(u, v) > 0);
}

/* The last time value v is read: by a consumer's forward (when its group runs), the
 * loss (the output), or a backward rule that reads it (training), or by the
 * recomputation of a consumer. A recomputed value's forward buffer serves forward
 * readers only (its backward readers get the second buffer, recomputed_life). */
static int value_last_use(const nc__plan *p, const nc__plan_uses *u, int v) {
    const int n = p->m->graph->n_nodes, at = p->run_at[v], rec = rec_of(p, v) != 0;
    int last = v == p->m->graph->output ? nc__plan_loss_time(n) : nc__plan_fwd_time(at);
    for (int k = u->first[v]; k < u->first[v + 1]; k++) {
        const int c = u->users[k];
        last = max_int(last, nc__plan_fwd_time(p->run_at[c]));
        if (rec) continue;
        if (p->training && reads_input_in_backward(node(p, c)->op))
            last = max_int(last, nc__plan_bwd_time(n, p->run_at[c]));
        if (rec_of(p, c)) last = max_int(last, nc__plan_bwd_time(n, rec_of(p, c)));
    }
    /* a fused RELU's value is read by its group's backward, at the head's position */
    if (!rec && p->training && reads_output_in_backward(node(p, v)->op))
        last = max_int(last, nc__plan_bwd_time(n, at));
    return last;
}

/* A recomputed value's second buffer: from its recomputation, just before its
 * trigger's backward, to the last backward or recomputation reading it. */
static nc__interval recomputed_life(const nc__plan *p, const nc__plan_uses *u, int v) {
    const int n = p->m->graph->n_nodes, first = nc__plan_bwd_time(n, rec_of(p, v));
    int last = first;
    for (int k = u->first[v]; k < u->first[v + 1]; k++) {
        const int c = u->users[k];
        if (reads_input_in_backward(node(p, c)->op)) last = max_int(last, nc__plan_bwd_time(n, p->run_at[c]));
        if (rec_of(p, c)) last = max_int(last, nc__plan_bwd_time(n, rec_of(p, c)));
    }
    if (reads_output_in_backward(node(p, v)->op)) last = max_int(last, nc__plan_bwd_time(n, p->run_at[v]));
    return (nc__interval){.first = first, .last = last};
}

/* When v's gradient is first written: by the loss, or by the backward of v's
 * consumer that runs last; it is last read by the backward that produced v. */
static nc__interval gradient_life(const nc__plan *p, const nc__plan_uses *u, int v) {
    const int n = p->m->graph->n_nodes;
    const int first = v == p->m->graph->output ? nc__plan_loss_time(n)
                                                : nc__plan_bwd_time(n, p->run_at[nc__plan_last_consumer(p, u, v)]);
    return (nc__interval){.first = first, .last = nc__plan_bwd_time(n, p->run_at[v])};
}

static void add_buffer(nc__plan *p, int v, nc__buffer_kind kind, size_t bytes, int first, int last) {
    p->buffers[p->n_buffers] = (nc__interval){.bytes = bytes, .first = first, .last = last};
    p->buffer_owner[p->n_buffers++] = (nc__buffer_owner){.node = v, .kind = kind};
}

void nc__plan_liveness(nc__plan *p, const nc__plan_uses *u) {
    nc_context *ctx = p->m->ctx;
    const int n = p->m->graph->n_nodes;
    p->n_buffers = 0;
    for (int v = 0; v < n; v++) {
        const int at = p->run_at[v];
        if (owns_value(p, v)) {
            const nc__value_desc d = nc__plan_value_desc(p, v);
            const size_t bytes = ctx->backend->value_bytes(ctx->backend_state, &d);
            add_buffer(p, v, NC__BUFFER_VALUE, bytes, nc__plan_fwd_time(at), value_last_use(p, u, v));
            if (has_gradient(p, u, v)) {
                const nc__interval g = gradient_life(p, u, v);
                add_buffer(p, v, NC__BUFFER_GRAD, bytes, g.first, g.last);
            }
            if (rec_of(p, v)) {
                const nc__interval r = recomputed_life(p, u, v);
                add_buffer(p, v, NC__BUFFER_RECOMPUTED, bytes, r.first, r.last);
            }
        }
        if (p->training && at >= 0 && is_op(p, v, NC__OP_BATCHNORM))
            add_buffer(p, v, NC__BUFFER_SAVED,
                       (rec_of(p, v) ? 4 : 2) * (size_t)p->shapes[v].d[1] * nc__dtype_size(NC__DTYPE_F32),
                       nc__plan_fwd_time(at), nc__plan_bwd_time(n, at));
    }
}

/* --------------------------------------------------------------- (7) packing */

void nc__plan_pack(nc__plan *p) {
    for (int v = 0; v < p->m->graph->n_nodes; v++)
        p->val_off[v] = p->grad_off[v] = p->save_off[v] = p->rec_off[v] = NONE;
    p->naive_bytes = 0;
    for (int i = 0; i < p->n_buffers; i++) p->naive_bytes += align_up(p->buffers[i].bytes, NC__ARENA_ALIGN);
    p->arena_bytes = nc__plan_memory(p->m->ctx, p->buffers, p->n_buffers, NC__ARENA_ALIGN);
    for (int i = 0; i < p->n_buffers; i++) {
        const nc__buffer_owner o = p->buffer_owner[i];
        size_t *off = o.kind == NC__BUFFER_VALUE   ? p->val_off
                      : o.kind == NC__BUFFER_GRAD  ? p->grad_off
                      : o.kind == NC__BUFFER_SAVED ? p->save_off
                                                   : p->rec_off;
        off[o.node] = p->buffers[i].offset;
    }
}

/* ------------------------------------------------------- (8) gradient writes */

void nc__plan_assign_writers(nc__plan *p, const nc__plan_uses *u) {
    for (int v = 0; v < p->m->graph->n_nodes; v++)
        p->first_writer[v] = has_gradient(p, u, v) ? nc__plan_last_consumer(p, u, v) : -1;
}

/* ------------------------------------------------------------------ building */

static nc_status build(nc_model *m, int training, const nc__shape *in, nc__plan **out) {
    nc_context *ctx = m->ctx;
    nc__plan_uses u = {0};
    nc__plan *p = NULL;
    nc_status st;
    NC_CHECK(nc__plan_alloc(m, training, in, &p));
    NC_CHECK(nc__plan_find_uses(p, &u));
    NC_CHECK(nc__plan_infer_shapes(p, &u));
    nc__plan_assign_dtypes(p);
    NC_CHECK(nc__plan_check_support(p, &u));
    nc__plan_fuse(p, &u);
    nc__plan_choose_recompute(p, &u);
    nc__plan_liveness(p, &u);
    nc__plan_pack(p);
    nc__plan_assign_writers(p, &u);
    NC_CHECK(ctx->backend->alloc(ctx->backend_state, p->arena_bytes ? p->arena_bytes : NC__ARENA_ALIGN, &p->arena));
    nc__plan_uses_free(ctx, &u);
    *out = p;
    return NC_OK;
fail:
    nc__plan_uses_free(ctx, &u);
    nc__plan_destroy(p);
    return st;
}

nc_status nc__plan_check_input(const nc_model *m, const nc__shape *in) {
    nc_context *ctx = m->ctx;
    if (in->d[0] < 1 || in->d[2] < 1 || in->d[3] < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "input %lldx%lldx%lldx%lld: n, h and w must be >= 1",
                         (long long)in->d[0], (long long)in->d[1], (long long)in->d[2], (long long)in->d[3]);
    if (in->d[1] != m->graph->in_channels)
        return nc__error(ctx, NC_ERR_SHAPE, "input has %lld channels, the model expects %d", (long long)in->d[1],
                         m->graph->in_channels);
    return NC_OK;
}

nc_status nc__plan_get(nc_model *m, nc__plan **slot, int training, const nc__shape *in) {
    nc_context *ctx = m->ctx;
    nc_status st = nc__plan_check_input(m, in);
    if (st != NC_OK) return st;
    const nc__plan *p = *slot;
    if (p && p->training == training && p->precision == ctx->opt.precision && nc__shape_equal(&p->in_shape, in))
        return NC_OK;
    nc__plan_destroy(*slot);
    *slot = NULL;
    return build(m, training, in, slot);
}
