/* onednn.h — internals shared by the oneDNN backend's files: the state (engine,
 * stream, threads, scratch buffers from the context allocator), the per-node
 * primitive cache, the activation layout, and NC_DNNL_CHECK, which turns a
 * dnnl_status_t into NC_ERR_BACKEND naming the primitive.
 *
 * Activation layout: 4-D values with at least `block` channels live in the blocked
 * layout oneDNN's convolutions pick on this CPU (nChw8c on AVX2, nChw16c on
 * AVX-512; channels padded with zeros to a multiple of the block), found once at
 * init by asking a convolution with format_tag any. Every primitive reads and writes
 * that layout directly, so values cross the graph without reorders; only the graph's
 * input and output, flatten, and primitives that want another layout reorder. Other
 * values (2-D, few channels) are plain. A value is f32 or bf16 (backend.h, DTYPE
 * POLICY) in the same layout; the bf16-math precision instead computes convolutions
 * and inner products in bf16 on f32 values (fpmath mode). Padding channels hold zeros: the reorders and
 * primitives write them so, and elementwise.c keeps them so, also where a gradient
 * is written over garbage (backend.h, GRADIENT WRITE RULE). */
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
    int bf16;                     /* 1: conv / inner product compute in bf16 (fpmath mode):
                                     the context's NC_PRECISION_BF16_MATH */
    int isa_bf16;                 /* 1: oneDNN's effective ISA has bf16 kernels
                                     (avx512_core_bf16 or AMX): bf16 values allowed */
    int block;                    /* channel block of the activation layout; 0: plain */
    char bf16_refusal[160];       /* why bf16 values are refused here ("" when isa_bf16) */
    int conv_alg;                 /* nc_conv_algorithm: the context's choice between direct
                                     and Winograd 3x3 convolutions (ops.c, conv_alg) */
    int gconv_off;                /* 1: grouped convolutions always on oneDNN's primitives,
                                     never grouped.c's (bench_gconv compares the two); 0 */
    dnnl_engine_t engine;         /* a worker's is its parent's */
    int is_worker;                /* 1: made by worker_create (backend.h, CONCURRENCY) */
    dnnl_stream_t stream;         /* the state's own, like its scratch */
    void *scr[DN_SCR_COUNT];
    size_t scr_size[DN_SCR_COUNT];
} dn_state;

/* A copy of a parameter buffer made for a kernel (reordered, packed, transformed),
 * valid for parameter version `ver` of buffer `src` when `ready`. */
typedef struct dn_weights {
    void *buf;
    size_t bytes;
    const void *src;
    uint64_t ver;
    int ready;
} dn_weights;

/* What a node's cache slot holds: primitives for one op and one set of sizes
 * (`key`); a different key rebuilds them. Up to DN_MAX_PRIM primitives (forward,
 * backward data, backward weights, ...), created lazily. */
#define DN_MAX_PRIM 16
#define DN_MAX_KEY 20
typedef struct dn_cache {
    int op;                       /* which op family filled the slot */
    int64_t key[DN_MAX_KEY];
    dnnl_primitive_desc_t pd[DN_MAX_PRIM];
    dnnl_primitive_t prim[DN_MAX_PRIM];
    int fallback;                 /* 1: oneDNN cannot express this case; the ref kernel runs */
    int ident[DN_MAX_PRIM];       /* reorder slots: 0 not made, 1 layouts equal (none), 2 made */
    /* convolution weights in the forward primitive's layout or packed for grouped.c
     * (folded with batch norm for fused inference; inner product: the bf16 copy) */
    dn_weights w;
    dn_weights wino;              /* transformed for winograd.c (forward only) */
    float *bbuf;                  /* folded bias (K) */
    /* batch norm + ReLU: the ReLU mask from the training forward, for backward */
    void *ws;
    size_t ws_bytes;
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
/* The same with post-ops (NULL: none). */
nc_status nc__dnnl_make_post(dn_state *s, dn_cache *c, int k, const void *op_desc,
                             const_dnnl_primitive_desc_t hint, int allow_bf16, const_dnnl_post_ops_t post,
                             const char *what);
/* Tries to make c->pd[k] / c->prim[k]: 1 when oneDNN has a non-reference
 * implementation for the descriptor, else 0 with nothing made and no error set. */
int nc__dnnl_try_make(dn_state *s, dn_cache *c, int k, const void *op_desc, const_dnnl_primitive_desc_t hint,
                      int allow_bf16, const_dnnl_post_ops_t post);
/* Name of the implementation oneDNN chose for c->pd[k] ("jit:avx2", "ref:any"...). */
const char *nc__dnnl_impl(const dn_cache *c, int k);

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

/* src (layout `from`) into dst (layout `to`) with the cached reorder c->prim[k]. */
nc_status nc__dnnl_reorder_to(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, const void *src, void *dst);

/* One execution argument: DNNL_ARG_*, the memory descriptor, the buffer. */
typedef struct dn_arg {
    int arg;
    const dnnl_memory_desc_t *md;
    void *ptr;
} dn_arg;

/* Runs c->prim[k] on `args` with the state's thread count, adding the scratchpad. */
nc_status nc__dnnl_exec(dn_state *s, dn_cache *c, int k, int nargs, const dn_arg *args, const char *what);

/* oneDNN's data type for a value dtype. */
static inline dnnl_data_type_t nc__dnnl_dt(nc__dtype t) { return t == NC__DTYPE_BF16 ? dnnl_bf16 : dnnl_f32; }

/* Plain memory descriptor for dims (ndim <= 5) in the row-major (abcd...) layout:
 * f32, or of dtype dt (_dt). */
nc_status nc__dnnl_md(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, const char *what);
nc_status nc__dnnl_md_dt(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, nc__dtype dt,
                         const char *what);
/* Memory descriptor of an activation value with these dims in the activation
 * layout (blocked for 4-D values with >= block channels, else plain): f32, or of
 * dtype dt (_dt; the same layout, only the element type differs). */
nc_status nc__dnnl_act_md(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, const char *what);
nc_status nc__dnnl_act_md_dt(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, nc__dtype dt,
                             const char *what);
/* Floats such a value occupies (channels padded to the block). */
size_t nc__dnnl_act_floats(const dn_state *s, int ndim, const int64_t *dims);
/* The channel block of such a value's layout: s->block when blocked, else 1 (plain
 * NCHW is the blocked layout with one channel per block). */
int nc__dnnl_act_block(const dn_state *s, int ndim, const int64_t *dims);

/* maxpool_bf16.c: max-pooling backward on bf16 activations, each gradient summed in
 * f32 and rounded once (as ref); _fits says whether d is such a pooling. */
int nc__dnnl_maxpool_bf16_fits(const dn_state *s, const nc__pool_desc *d);
nc_status nc__dnnl_maxpool_bf16_backward(dn_state *s, const nc__pool_desc *d, void *dx, const void *dy,
                                         const void *x);
/* One-off reorder (a primitive made, run and destroyed): for the graph's boundary. */
nc_status nc__dnnl_reorder_once(dn_state *s, const dnnl_memory_desc_t *from, const void *src,
                                const dnnl_memory_desc_t *to, void *dst);
/* Cache-owned buffer of at least `bytes` (contents kept only if it does not grow). */
nc_status nc__dnnl_cache_buffer(dn_state *s, void **buf, size_t *have, size_t bytes);

/* Host NCHW f32 <-> an activation value (reorders, converting to or from the value's
 * dtype; the destination is written whole, padding included). */
nc_status nc__dnnl_value_upload(void *state, const nc__value_desc *v, void *dst, const float *src);
nc_status nc__dnnl_value_download(void *state, const nc__value_desc *v, float *dst, const void *src);
/* A value <-> the same value in plain NCHW order and the same dtype (flatten). */
nc_status nc__dnnl_value_to_plain(dn_state *s, const nc__value_desc *v, void *dst, const void *src);
nc_status nc__dnnl_value_from_plain(dn_state *s, const nc__value_desc *v, void *dst, const void *src);

/* The element-wise, reshaping and concat entries on activation values (elementwise.c). */
nc_status nc__dnnl_accumulate(void *state, const nc__value_desc *v, nc__write mode, void *dst, const void *src);
nc_status nc__dnnl_relu_forward(void *state, const nc__value_desc *v, void *y, const void *x);
nc_status nc__dnnl_relu_backward(void *state, const nc__value_desc *v, nc__write mode, void *dx, const void *dy,
                                 const void *y);
nc_status nc__dnnl_add_forward(void *state, const nc__value_desc *v, void *y, const void *a, const void *b);
nc_status nc__dnnl_dropout_forward(void *state, const nc__value_desc *v, float p, uint64_t seed, void *y,
                                   const void *x);
nc_status nc__dnnl_dropout_backward(void *state, const nc__value_desc *v, nc__write mode, float p, uint64_t seed,
                                    void *dx, const void *dy);
nc_status nc__dnnl_flatten_forward(void *state, const nc__value_desc *in, void *y, const void *x);
nc_status nc__dnnl_flatten_backward(void *state, const nc__value_desc *in, nc__write mode, void *dx,
                                    const void *dy);
nc_status nc__dnnl_concat_forward(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                  void *y, const void *const *xs);
nc_status nc__dnnl_concat_backward(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                   const nc__write *modes, void *const *dxs, const void *dy);

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
nc_status nc__dnnl_conv2d_fused_infer(void *state, const nc__conv_desc *d, const nc__bn_params *bn, void *y,
                                      const void *x, const void *w, const void *b, const void *residual, int relu);
nc_status nc__dnnl_bn_relu_forward_train(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                         void *save_invstd, void *running_mean, void *running_var, const void *x,
                                         const void *gamma, const void *beta);
nc_status nc__dnnl_bn_relu_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                    const void *dy, const void *y, const void *x, const void *gamma,
                                    const void *save_mean, const void *save_invstd);
/* synchronised batch norm (backend.h, SYNC BATCH NORM): the ref kernels on this layout */
nc_status nc__dnnl_bn_sync_sums(void *state, const nc__bn_desc *d, double *sums, const void *x, const double *mean);
nc_status nc__dnnl_bn_sync_forward(void *state, const nc__bn_desc *d, int relu, void *y, void *save_mean,
                                   void *save_invstd, void *running_mean, void *running_var, const void *x,
                                   const void *gamma, const void *beta, const double *stats, double count);
nc_status nc__dnnl_bn_sync_backward_sums(void *state, const nc__bn_desc *d, double *sums, const void *dy,
                                         const void *y, const void *x, const void *save_mean,
                                         const void *save_invstd);
nc_status nc__dnnl_bn_sync_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                    const void *dy, const void *y, const void *x, const void *gamma,
                                    const void *save_mean, const void *save_invstd, const double *sums,
                                    double count);

#endif
