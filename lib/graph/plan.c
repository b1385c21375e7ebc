/* plan.c — prepares a graph for one input shape and mode: infers shapes, fuses op
 * groups where the backend has fused entries, decides which values must outlive the
 * forward pass for the backward rules, and packs activations, saved batch statistics
 * and activation gradients into one arena so buffers whose lifetimes do not overlap
 * share memory. It also picks, per gradient, whether its first writer overwrites it
 * or the executor zeroes it first. */
#include "graph/exec.h"
#include "core/context.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NC__ARENA_ALIGN 64
#define NONE SIZE_MAX

/* ---------------------------------------------------------- interval packing */

static int by_size_desc(const void *a, const void *b) {
    const nc__interval *x = *(const nc__interval *const *)a, *y = *(const nc__interval *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->first - y->first;
}

size_t nc__plan_memory(nc_context *ctx, nc__interval *iv, int count, size_t align) {
    if (count <= 0) return 0;
    nc__interval **order = nc__alloc(ctx, (size_t)count * sizeof *order);
    nc__interval **placed = nc__alloc(ctx, (size_t)count * sizeof *placed);
    if (!order || !placed) { /* degrade to no reuse rather than fail */
        size_t off = 0;
        for (int i = 0; i < count; i++) {
            iv[i].offset = off;
            off += (iv[i].bytes + align - 1) / align * align;
        }
        nc__free(ctx, order);
        nc__free(ctx, placed);
        return off;
    }
    for (int i = 0; i < count; i++) order[i] = &iv[i];
    qsort(order, (size_t)count, sizeof *order, by_size_desc);
    size_t total = 0;
    int n_placed = 0;
    for (int i = 0; i < count; i++) {
        nc__interval *cur = order[i];
        size_t need = (cur->bytes + align - 1) / align * align;
        size_t off = 0;
        /* lowest offset not colliding with a time-overlapping placed interval:
         * retry after each collision (placed sorted by offset is not needed: restart) */
        for (int moved = 1; moved;) {
            moved = 0;
            for (int k = 0; k < n_placed; k++) {
                const nc__interval *o = placed[k];
                if (o->last < cur->first || cur->last < o->first) continue; /* disjoint in time */
                size_t oend = o->offset + (o->bytes + align - 1) / align * align;
                if (off < oend && o->offset < off + need) {
                    off = oend;
                    moved = 1;
                }
            }
        }
        cur->offset = off;
        placed[n_placed++] = cur;
        if (off + need > total) total = off + need;
    }
    nc__free(ctx, order);
    nc__free(ctx, placed);
    return total;
}

/* ------------------------------------------------------------ plan building */

static int needs_input_in_backward(nc__op op) {
    return op == NC__OP_CONV2D || op == NC__OP_BATCHNORM || op == NC__OP_MAXPOOL || op == NC__OP_LINEAR;
}

static int needs_output_in_backward(nc__op op) { return op == NC__OP_RELU || op == NC__OP_MAXPOOL; }

/* Backward rules that write their input's gradient whole and honour the descriptors'
 * `overwrite` flag (backend.h), so the executor need not zero that gradient first. */
static int can_overwrite(nc__op op) {
    return op == NC__OP_CONV2D || op == NC__OP_BATCHNORM || op == NC__OP_MAXPOOL || op == NC__OP_AVGPOOL ||
           op == NC__OP_ADAPTIVE_AVGPOOL || op == NC__OP_LINEAR;
}

void nc__plan_destroy(nc__plan *p) {
    if (!p) return;
    nc_context *ctx = p->m->ctx;
    const nc__backend *be = ctx->backend;
    if (p->cache && be->release_cache)
        for (int i = 0; i < p->m->graph->n_nodes; i++)
            if (p->cache[i]) be->release_cache(ctx->backend_state, p->cache[i]);
    if (p->arena) be->free(ctx->backend_state, p->arena);
    nc__free(ctx, p->shapes);
    nc__free(ctx, p->cache);
    nc__free(ctx, p->val_off);
    nc__free(ctx, p->grad_off);
    nc__free(ctx, p->save_off);
    nc__free(ctx, p->zero_first);
    nc__free(ctx, p->zero_list);
    nc__free(ctx, p->first_write);
    nc__free(ctx, p->run_at);
    nc__free(ctx, p->fusion);
    nc__free(ctx, p->buffers);
    nc__free(ctx, p->buffer_owner);
    nc__free(ctx, p);
}

/* Marks the nodes the output depends on. */
static void mark_needed(const nc__graph *g, char *needed) {
    memset(needed, 0, (size_t)g->n_nodes);
    needed[g->output] = 1;
    for (int i = g->output; i >= 0; i--) {
        if (!needed[i]) continue;
        for (int k = 0; k < g->nodes[i].n_inputs; k++) needed[g->nodes[i].inputs[k]] = 1;
    }
    needed[0] = 1;
}

/* Consumers of every value among the needed nodes: how many uses, and the last user. */
typedef struct uses {
    int *count;
    int *user;
} uses;

/* The only consumer of value v, or -1 (none, several, or v is the graph output, which
 * the caller reads). */
static int sole_consumer(const nc__graph *g, const uses *u, int v) {
    return v != g->output && u->count[v] == 1 ? u->user[v] : -1;
}

static void fuse_member(nc__plan *p, int head, int member) {
    if (member >= 0) p->run_at[member] = head;
}

/* Eval: CONV [-> BATCHNORM] [-> ADD] [-> RELU] where each intermediate value has that
 * one consumer; the ADD's other input must come before the conv, so the chain can run
 * at the conv's position. Of two chains meeting at an ADD (ResNet's downsample
 * blocks), only the later conv qualifies: the other chain ends before the ADD. */
static void fuse_conv_chains(nc__plan *p, const char *needed, const uses *u) {
    const nc__graph *g = p->m->graph;
    for (int c = 1; c < g->n_nodes; c++) {
        if (!needed[c] || g->nodes[c].op != NC__OP_CONV2D) continue;
        nc__fusion f = {-1, -1, -1, -1, c};
        int cur = c, next = sole_consumer(g, u, cur);
        if (next >= 0 && g->nodes[next].op == NC__OP_BATCHNORM && p->shapes[next].ndim == 4) {
            f.bn = cur = next;
            next = sole_consumer(g, u, cur);
        }
        if (next >= 0 && g->nodes[next].op == NC__OP_ADD) {
            const nc__node *a = &g->nodes[next];
            int other = a->inputs[0] == cur ? a->inputs[1] : a->inputs[0];
            if (other < c) {
                f.add = cur = next;
                f.residual = other;
                next = sole_consumer(g, u, cur);
            }
        }
        if (next >= 0 && g->nodes[next].op == NC__OP_RELU) f.relu = cur = next;
        if (cur == c) continue;
        f.out = cur;
        p->fusion[c] = f;
        fuse_member(p, c, f.bn);
        fuse_member(p, c, f.add);
        fuse_member(p, c, f.relu);
        p->n_conv_chains++;
    }
}

/* Training: BATCHNORM whose only consumer is a RELU runs as one call at the BN's
 * position writing the RELU's value (forward and backward). */
static void fuse_bn_relu(nc__plan *p, const char *needed, const uses *u) {
    const nc__graph *g = p->m->graph;
    for (int b = 1; b < g->n_nodes; b++) {
        if (!needed[b] || g->nodes[b].op != NC__OP_BATCHNORM) continue;
        int r = sole_consumer(g, u, b);
        if (r < 0 || g->nodes[r].op != NC__OP_RELU) continue;
        p->fusion[b].relu = p->fusion[b].out = r;
        p->run_at[r] = b;
        p->n_bn_relu++;
    }
}

/* Whether value v has a buffer: v runs (by itself or in a group) and is the value its
 * group writes; a fused group's intermediate values exist only inside the fused call. */
static int owns_value(const nc__plan *p, int v) { return p->run_at[v] >= 0 && p->fusion[p->run_at[v]].out == v; }

static nc_status build(nc_model *m, int training, const nc__shape *in, nc__plan **out) {
    nc_context *ctx = m->ctx;
    const nc__backend *be = ctx->backend;
    const nc__graph *g = m->graph;
    const int n = g->n_nodes;
    nc_status st = NC_OK;
    char *needed = NULL;
    int *last_consumer = NULL, *zero_at = NULL;
    uses u = {NULL, NULL};
    nc__interval *iv = NULL;
    int *iv_val = NULL; /* interval -> node * 3 + kind (0 value, 1 gradient, 2 saved stats) */
    nc__plan *p = nc__calloc(ctx, 1, sizeof *p);
    NC_CHECK_ALLOC(ctx, p);
    p->m = m;
    p->training = training;
    p->in_shape = *in;
    p->shapes = nc__calloc(ctx, (size_t)n, sizeof *p->shapes);
    p->cache = nc__calloc(ctx, (size_t)n, sizeof *p->cache);
    p->val_off = nc__alloc(ctx, (size_t)n * sizeof *p->val_off);
    p->grad_off = nc__alloc(ctx, (size_t)n * sizeof *p->grad_off);
    p->save_off = nc__alloc(ctx, (size_t)n * sizeof *p->save_off);
    p->zero_first = nc__calloc(ctx, (size_t)n + 1, sizeof *p->zero_first);
    p->zero_list = nc__calloc(ctx, (size_t)n + 1, sizeof *p->zero_list);
    p->first_write = nc__calloc(ctx, (size_t)n, sizeof *p->first_write);
    p->run_at = nc__alloc(ctx, (size_t)n * sizeof *p->run_at);
    p->fusion = nc__alloc(ctx, (size_t)n * sizeof *p->fusion);
    needed = nc__alloc(ctx, (size_t)n);
    last_consumer = nc__alloc(ctx, (size_t)n * sizeof *last_consumer);
    zero_at = nc__alloc(ctx, (size_t)n * sizeof *zero_at);
    u.count = nc__calloc(ctx, (size_t)n, sizeof *u.count);
    u.user = nc__alloc(ctx, (size_t)n * sizeof *u.user);
    iv = nc__calloc(ctx, (size_t)n * 3, sizeof *iv);
    iv_val = nc__alloc(ctx, (size_t)n * 3 * sizeof *iv_val);
    NC_CHECK_ALLOC(ctx, p->shapes);
    NC_CHECK_ALLOC(ctx, p->cache);
    NC_CHECK_ALLOC(ctx, p->val_off);
    NC_CHECK_ALLOC(ctx, p->grad_off);
    NC_CHECK_ALLOC(ctx, p->save_off);
    NC_CHECK_ALLOC(ctx, p->zero_first);
    NC_CHECK_ALLOC(ctx, p->zero_list);
    NC_CHECK_ALLOC(ctx, p->first_write);
    NC_CHECK_ALLOC(ctx, p->run_at);
    NC_CHECK_ALLOC(ctx, p->fusion);
    NC_CHECK_ALLOC(ctx, needed);
    NC_CHECK_ALLOC(ctx, last_consumer);
    NC_CHECK_ALLOC(ctx, zero_at);
    NC_CHECK_ALLOC(ctx, u.count);
    NC_CHECK_ALLOC(ctx, u.user);
    NC_CHECK_ALLOC(ctx, iv);
    NC_CHECK_ALLOC(ctx, iv_val);

    NC_CHECK(nc__graph_infer_shapes(g, in, p->shapes));
    mark_needed(g, needed);
    for (int i = 0; i < n; i++) {
        last_consumer[i] = -1;
        p->val_off[i] = p->grad_off[i] = p->save_off[i] = NONE;
        p->run_at[i] = needed[i] ? i : -1;
        p->fusion[i] = (nc__fusion){-1, -1, -1, -1, i};
    }
    for (int i = 0; i < n; i++) {
        if (!needed[i]) continue;
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            u.count[v]++;
            u.user[v] = i;
        }
        if (training && g->nodes[i].op == NC__OP_BATCHNORM) {
            const nc__shape *s = &p->shapes[i];
            int64_t per_channel = s->d[0] * (s->ndim == 4 ? s->d[2] * s->d[3] : 1);
            if (per_channel < 2) {
                st = nc__error(ctx, NC_ERR_SHAPE,
                               "%s: batch normalisation in training needs more than 1 value per channel "
                               "(input %lldx%lld%s); use a larger batch or image",
                               g->nodes[i].name, (long long)s->d[0], (long long)s->d[1],
                               s->ndim == 4 ? "x1x1" : "");
                goto fail;
            }
        }
    }

    /* fusion: only where the backend has the fused entries (never on ref, the oracle) */
    if (!training && be->conv2d_fused_infer) fuse_conv_chains(p, needed, &u);
    if (training && be->batchnorm_relu_forward_train && be->batchnorm_relu_backward) fuse_bn_relu(p, needed, &u);

    /* A value is consumed when its consumer runs: at the consumer's own position, or
     * at the head of the fused group it belongs to (an ADD's residual and a conv's
     * input are consumed by the fused call at the conv's position). */
    for (int i = 0; i < n; i++) {
        if (!needed[i]) continue;
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (p->run_at[i] > last_consumer[v]) last_consumer[v] = p->run_at[i];
        }
    }

    /* times: forward of the node (or group) at position i = i; output read = n;
     * backward at position i = 2n - i */
    int count = 0;
    for (int v = 0; v < n; v++) {
        if (!owns_value(p, v)) continue;
        const nc__node *node = &g->nodes[v];
        const int at = p->run_at[v];
        size_t bytes = nc__value_floats(ctx, &p->shapes[v]) * sizeof(float);
        int last = last_consumer[v] > at ? last_consumer[v] : at;
        if (v == g->output) last = n;
        if (training) {
            for (int c = v + 1; c < n; c++) {
                if (!needed[c] || !needs_input_in_backward(g->nodes[c].op)) continue;
                for (int k = 0; k < g->nodes[c].n_inputs; k++)
                    if (g->nodes[c].inputs[k] == v && 2 * n - p->run_at[c] > last) last = 2 * n - p->run_at[c];
            }
            /* a fused RELU's output is read by the fused backward at the BN's position */
            if (needs_output_in_backward(node->op) && 2 * n - at > last) last = 2 * n - at;
        }
        iv[count] = (nc__interval){bytes, at, last, 0};
        iv_val[count++] = v * 3 + 0;
        if (!training || v == 0) continue;
        /* gradient of v: written from the backward of its last consumer (or the
         * dlogits upload), read by the backward that produced v */
        if (v != g->output && last_consumer[v] < 0) continue;
        int def = v == g->output ? n : 2 * n - last_consumer[v];
        iv[count] = (nc__interval){bytes, def, 2 * n - at, 0};
        iv_val[count++] = v * 3 + 1;
    }
    if (training)
        for (int b = 1; b < n; b++)
            if (needed[b] && g->nodes[b].op == NC__OP_BATCHNORM) {
                iv[count] = (nc__interval){2 * (size_t)p->shapes[b].d[1] * sizeof(float), b, 2 * n - b, 0};
                iv_val[count++] = b * 3 + 2;
            }
    p->naive_bytes = 0;
    for (int i = 0; i < count; i++) p->naive_bytes += (iv[i].bytes + NC__ARENA_ALIGN - 1) / NC__ARENA_ALIGN * NC__ARENA_ALIGN;
    p->arena_bytes = nc__plan_memory(ctx, iv, count, NC__ARENA_ALIGN);
    for (int i = 0; i < count; i++) {
        int v = iv_val[i] / 3, kind = iv_val[i] % 3;
        size_t *dst = kind == 0 ? p->val_off : kind == 1 ? p->grad_off : p->save_off;
        dst[v] = iv[i].offset;
    }

    /* The backward at position h = last_consumer[v] writes v's gradient first. When
     * that is the input of a rule that honours `overwrite` (or an ADD, which then
     * copies with axpby a = 0: an exact copy, garbage included), it writes the
     * gradient whole; every other first writer gets it zeroed (CSR lists). */
    if (training) {
        for (int v = 1; v < n; v++) {
            zero_at[v] = -1;
            if (p->grad_off[v] == NONE || v == g->output) continue;
            const int h = last_consumer[v];
            const nc__node *hn = &g->nodes[h];
            if (can_overwrite(hn->op) && hn->inputs[0] == v) {
                p->first_write[h] |= 1;
            } else if (hn->op == NC__OP_ADD && be->axpby && hn->inputs[0] == v) {
                p->first_write[h] |= 1;
            } else if (hn->op == NC__OP_ADD && be->axpby && hn->inputs[1] == v) {
                p->first_write[h] |= 2;
            } else {
                zero_at[v] = h;
                p->zero_first[h + 1]++;
            }
        }
        for (int i = 0; i < n; i++) p->zero_first[i + 1] += p->zero_first[i];
        int *fill = u.count; /* reused as per-position fill counters */
        memset(fill, 0, (size_t)n * sizeof *fill);
        for (int v = 1; v < n; v++) {
            int c = zero_at[v];
            if (c >= 0) p->zero_list[p->zero_first[c] + fill[c]++] = v;
        }
    }
    NC_CHECK(be->alloc(ctx->backend_state, p->arena_bytes ? p->arena_bytes : NC__ARENA_ALIGN, &p->arena));
    p->buffers = iv;
    p->buffer_owner = iv_val;
    p->n_buffers = count;
    iv = NULL;
    iv_val = NULL;
    nc__free(ctx, needed);
    nc__free(ctx, last_consumer);
    nc__free(ctx, zero_at);
    nc__free(ctx, u.count);
    nc__free(ctx, u.user);
    *out = p;
    return NC_OK;
fail:
    nc__free(ctx, needed);
    nc__free(ctx, last_consumer);
    nc__free(ctx, zero_at);
    nc__free(ctx, u.count);
    nc__free(ctx, u.user);
    nc__free(ctx, iv);
    nc__free(ctx, iv_val);
    nc__plan_destroy(p);
    return st;
}

nc_status nc__plan_get(nc_model *m, nc__plan **slot, int training, const nc__shape *in) {
    nc_context *ctx = m->ctx;
    if (in->d[0] < 1 || in->d[2] < 1 || in->d[3] < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "input %lldx%lldx%lldx%lld: n, h and w must be >= 1",
                         (long long)in->d[0], (long long)in->d[1], (long long)in->d[2], (long long)in->d[3]);
    if (in->d[1] != m->graph->in_channels)
        return nc__error(ctx, NC_ERR_SHAPE, "input has %lld channels, the model expects %d", (long long)in->d[1],
                         m->graph->in_channels);
    if (*slot && (*slot)->training == training && nc__shape_equal(&(*slot)->in_shape, in)) return NC_OK;
    nc__plan_destroy(*slot);
    *slot = NULL;
    return build(m, training, in, slot);
}
