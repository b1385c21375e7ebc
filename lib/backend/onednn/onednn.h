/* onednn.h — internals shared by the oneDNN backend's files: the state (engine,
 * stream, threads, scratch buffers from the context allocator), the per-node
 * primitive cache, and NC_DNNL_CHECK, which turns a dnnl_status_t into
 * NC_ERR_BACKEND naming the primitive. Tensors are plain NCHW f32 in host memory
 * from the context allocator, so element-wise work reuses the ref kernels. */
#ifndef NC_BACKEND_ONEDNN_ONEDNN_H
#define NC_BACKEND_ONEDNN_ONEDNN_H

#include "backend/backend.h"
#include "core/context.h"

#include <oneapi/dnnl/dnnl.h>

/* Scratch slots: each grows on demand and lives as long as the backend state. */
enum { DN_SCR_DX = 0, DN_SCR_DW, DN_SCR_DB, DN_SCR_PAD, DN_SCR_WS, DN_SCR_STAT, DN_SCR_B0, DN_SCR_B1, DN_SCR_B2,
       DN_SCR_COUNT };

typedef struct dn_state {
    nc_context *ctx;
    int nt;                       /* threads for every primitive and ref kernel */
    int bf16;                     /* 1: conv / inner product compute in bf16 (fpmath mode) */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    void *scr[DN_SCR_COUNT];
    size_t scr_size[DN_SCR_COUNT];
} dn_state;

/* What a node's cache slot holds: primitives for one op and one set of sizes
 * (`key`); a different key rebuilds them. Up to DN_MAX_PRIM primitives (forward,
 * backward data, backward weights, ...), created lazily. */
#define DN_MAX_PRIM 12
#define DN_MAX_KEY 20
typedef struct dn_cache {
    int op;                       /* which op family filled the slot */
    int64_t key[DN_MAX_KEY];
    dnnl_primitive_desc_t pd[DN_MAX_PRIM];
    dnnl_primitive_t prim[DN_MAX_PRIM];
    int fallback;                 /* 1: oneDNN cannot express this case; the ref kernel runs */
    int ident[DN_MAX_PRIM];       /* reorder slots: 0 not made, 1 layouts equal (none), 2 made */
} dn_cache;

/* Turns a failed dnnl call into NC_ERR_BACKEND ("oneDNN <what>: <status>"); needs
 * `nc_status st`, a `fail:` label and `s` (dn_state *) in scope. */
#define NC_DNNL_CHECK(what, expr)                                                        \
    do {                                                                                 \
        dnnl_status_t dn_st_ = (expr);                                                   \
        if (dn_st_ != dnnl_success) {                                                    \
            st = nc__error(s->ctx, NC_ERR_BACKEND, "oneDNN %s: %s", (what),               \
                           nc__dnnl_status_str(dn_st_));                                 \
            goto fail;                                                                   \
        }                                                                                \
    } while (0)

const char *nc__dnnl_status_str(dnnl_status_t st);

/* Scratch slot `slot` with at least `bytes` (contents not kept when it grows). */
nc_status nc__dnnl_scratch(dn_state *s, int slot, size_t bytes, void **out);

/* The node's cache for op `op` and sizes `key` (n values): *out is the existing
 * entry when they match, else a fresh zeroed one (the old one released). */
nc_status nc__dnnl_cache_get(dn_state *s, void **slot, int op, const int64_t *key, int n, dn_cache **out);
void nc__dnnl_cache_release(void *state, void *cache);

/* Creates a primitive descriptor (with the state's attributes: user scratchpad,
 * bf16 fpmath where `allow_bf16`) and its primitive into c->pd[k], c->prim[k]. */
nc_status nc__dnnl_make(dn_state *s, dn_cache *c, int k, const void *op_desc, const_dnnl_primitive_desc_t hint,
                        int allow_bf16, const char *what);

/* Data of `ptr` (layout `from`) in layout `to`: ptr itself when they are equal,
 * else reordered (cached reorder c->prim[k]) into scratch `slot`; *out the result. */
nc_status nc__dnnl_reorder_in(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, const void *ptr, int slot, void **out);
/* Where a primitive writes an output of layout `from` that must end in `dst`
 * (layout `to`): dst itself when equal, else scratch `slot` (*out); then
 * nc__dnnl_reorder_out copies it over with reorder c->prim[k]. */
nc_status nc__dnnl_out_buffer(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, void *dst, int slot, void **out);
nc_status nc__dnnl_reorder_out(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                               const dnnl_memory_desc_t *to, const void *src, void *dst);

/* One execution argument: DNNL_ARG_*, the memory descriptor, the buffer. */
typedef struct dn_arg {
    int arg;
    const dnnl_memory_desc_t *md;
    void *ptr;
} dn_arg;

/* Runs c->prim[k] on `args` with the state's thread count, adding the scratchpad. */
nc_status nc__dnnl_exec(dn_state *s, dn_cache *c, int k, int nargs, const dn_arg *args, const char *what);

/* Plain memory descriptor for dims (ndim <= 5) in the row-major (abcd...) layout. */
nc_status nc__dnnl_md(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, const char *what);

/* The op entries (ops.c). */
nc_status nc__dnnl_conv2d_forward(void *state, const nc__conv_desc *d, void *y, const void *x, const void *w,
                                  const void *b);
nc_status nc__dnnl_conv2d_backward(void *state, const nc__conv_desc *d, void *dx, void *dw, void *db,
                                   const void *dy, const void *x, const void *w);
nc_status nc__dnnl_bn_forward_train(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                    void *save_invstd, void *running_mean, void *running_var, const void *x,
                                    const void *gamma, const void *beta);
nc_status nc__dnnl_bn_forward_infer(void *state, const nc__bn_desc *d, void *y, const void *x,
                                    const void *gamma, const void *beta, const void *running_mean,
                                    const void *running_var);
nc_status nc__dnnl_bn_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                               const void *dy, const void *x, const void *gamma, const void *save_mean,
                               const void *save_invstd);
nc_status nc__dnnl_pool2d_forward(void *state, const nc__pool_desc *d, void *y, const void *x);
nc_status nc__dnnl_pool2d_backward(void *state, const nc__pool_desc *d, void *dx, const void *dy,
                                   const void *x, const void *y);
nc_status nc__dnnl_linear_forward(void *state, const nc__linear_desc *d, void *y, const void *x,
                                  const void *w, const void *b);
nc_status nc__dnnl_linear_backward(void *state, const nc__linear_desc *d, void *dx, void *dw, void *db,
                                   const void *dy, const void *x, const void *w);

#endif
