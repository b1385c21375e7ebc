/* plan.c — prepares a graph for one input shape and mode: infers shapes, decides
 * which values must outlive the forward pass for the backward rules, and packs
 * activations, saved batch statistics and activation gradients into one arena so
 * buffers whose lifetimes do not overlap share memory. */
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

static nc_status build(nc_model *m, int training, const nc__shape *in, nc__plan **out) {
    nc_context *ctx = m->ctx;
    const nc__graph *g = m->graph;
    const int n = g->n_nodes;
    nc_status st = NC_OK;
    char *needed = NULL;
    int *last_consumer = NULL;
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
    needed = nc__alloc(ctx, (size_t)n);
    last_consumer = nc__alloc(ctx, (size_t)n * sizeof *last_consumer);
    iv = nc__calloc(ctx, (size_t)n * 3, sizeof *iv);
    NC_CHECK_ALLOC(ctx, p->shapes);
    NC_CHECK_ALLOC(ctx, p->cache);
    NC_CHECK_ALLOC(ctx, p->val_off);
    NC_CHECK_ALLOC(ctx, p->grad_off);
    NC_CHECK_ALLOC(ctx, p->save_off);
    NC_CHECK_ALLOC(ctx, p->zero_first);
    NC_CHECK_ALLOC(ctx, p->zero_list);
    NC_CHECK_ALLOC(ctx, needed);
    NC_CHECK_ALLOC(ctx, last_consumer);
    NC_CHECK_ALLOC(ctx, iv);

    NC_CHECK(nc__graph_infer_shapes(g, in, p->shapes));
    mark_needed(g, needed);
    for (int i = 0; i < n; i++) {
        last_consumer[i] = -1;
        p->val_off[i] = p->grad_off[i] = p->save_off[i] = NONE;
    }
    for (int i = 0; i < n; i++) {
        if (!needed[i]) continue;
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (i > last_consumer[v]) last_consumer[v] = i;
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

    /* times: forward of node i = i; output read = n; backward of node i = 2n - i */
    int count = 0;
    iv_val = nc__alloc(ctx, (size_t)n * 3 * sizeof *iv_val);
    NC_CHECK_ALLOC(ctx, iv_val);
    for (int v = 0; v < n; v++) {
        if (!needed[v]) continue;
        const nc__node *node = &g->nodes[v];
        size_t bytes = nc__value_floats(ctx, &p->shapes[v]) * sizeof(float);
        int last = last_consumer[v] > v ? last_consumer[v] : v;
        if (v == g->output) last = n;
        if (training) {
            for (int c = v + 1; c < n; c++) {
                if (!needed[c] || !needs_input_in_backward(g->nodes[c].op)) continue;
                for (int k = 0; k < g->nodes[c].n_inputs; k++)
                    if (g->nodes[c].inputs[k] == v && 2 * n - c > last) last = 2 * n - c;
            }
            if (needs_output_in_backward(node->op) && 2 * n - v > last) last = 2 * n - v;
        }
        iv[count] = (nc__interval){bytes, v, last, 0};
        iv_val[count++] = v * 3 + 0;
        if (!training || v == 0) continue;
        /* gradient of v: written from the backward of its last consumer (or the
         * dlogits upload), read by v's own backward */
        int def = v == g->output ? n : 2 * n - last_consumer[v];
        if (v != g->output && last_consumer[v] < 0) continue;
        iv[count] = (nc__interval){bytes, def, 2 * n - v, 0};
        iv_val[count++] = v * 3 + 1;
        if (node->op == NC__OP_BATCHNORM) {
            iv[count] = (nc__interval){2 * (size_t)p->shapes[v].d[1] * sizeof(float), v, 2 * n - v, 0};
            iv_val[count++] = v * 3 + 2;
        }
    }
    p->naive_bytes = 0;
    for (int i = 0; i < count; i++) p->naive_bytes += (iv[i].bytes + NC__ARENA_ALIGN - 1) / NC__ARENA_ALIGN * NC__ARENA_ALIGN;
    p->arena_bytes = nc__plan_memory(ctx, iv, count, NC__ARENA_ALIGN);
    for (int i = 0; i < count; i++) {
        int v = iv_val[i] / 3, kind = iv_val[i] % 3;
        size_t *dst = kind == 0 ? p->val_off : kind == 1 ? p->grad_off : p->save_off;
        dst[v] = iv[i].offset;
    }

    /* gradients to zero before the backward of their last consumer (CSR lists) */
    if (training) {
        for (int v = 1; v < n; v++)
            if (p->grad_off[v] != NONE && v != g->output) p->zero_first[last_consumer[v] + 1]++;
        for (int i = 0; i < n; i++) p->zero_first[i + 1] += p->zero_first[i];
        int *fill = nc__calloc(ctx, (size_t)n, sizeof *fill);
        NC_CHECK_ALLOC(ctx, fill);
        for (int v = 1; v < n; v++) {
            if (p->grad_off[v] == NONE || v == g->output) continue;
            int c = last_consumer[v];
            p->zero_list[p->zero_first[c] + fill[c]++] = v;
        }
        nc__free(ctx, fill);
    }
    NC_CHECK(ctx->backend->alloc(ctx->backend_state, p->arena_bytes ? p->arena_bytes : NC__ARENA_ALIGN,
                                 &p->arena));
    nc__free(ctx, needed);
    nc__free(ctx, last_consumer);
    nc__free(ctx, iv);
    nc__free(ctx, iv_val);
    *out = p;
    return NC_OK;
fail:
    nc__free(ctx, needed);
    nc__free(ctx, last_consumer);
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
