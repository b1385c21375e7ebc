/* onednn.c — the oneDNN backend's nc__backend table: engine and stream, what it
 * supports, host memory from the context allocator, the activation layout (chosen at
 * init, see onednn.h) with uploads and downloads as reorders, primitive caching and
 * execution with the context's thread count. Convolution, batch norm, pooling and
 * inner product run as oneDNN primitives (ops.c; narrow grouped convolutions in
 * grouped.c); element-wise work is memory-bound loops (elementwise.c). The loss, the
 * gradient norm, clipping and the optimizer work on plain host f32, so they are the
 * ref kernels with the state's thread count. */
#include "backend/onednn/onednn.h"
#include "backend/ref/ref.h"
#include "core/bf16.h"

#include <stdio.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#define S(state) ((dn_state *)(state))

const char *nc__dnnl_status_str(dnnl_status_t st) {
    switch (st) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "no implementation for these sizes and formats";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    }
    return "unknown status";
}

/* ---- threads: OpenMP's thread count is a per-thread ICV of the calling thread, so
 * setting it around a call and restoring it leaves no global state behind. */

static int threads_enter(const dn_state *s) {
#if defined(_OPENMP)
    int old = omp_get_max_threads();
    if (old != s->nt) omp_set_num_threads(s->nt);
    return old;
#else
    (void)s;
    return 1;
#endif
}

static void threads_leave(const dn_state *s, int old) {
#if defined(_OPENMP)
    if (old != s->nt) omp_set_num_threads(old);
#else
    (void)s;
    (void)old;
#endif
}

nc_status nc__dnnl_scratch(dn_state *s, int slot, size_t bytes, void **out) {
    if (bytes == 0) bytes = 64;
    if (s->scr_size[slot] < bytes) {
        nc__free(s->ctx, s->scr[slot]);
        s->scr[slot] = NULL;
        s->scr_size[slot] = 0;
        void *p = nc__alloc(s->ctx, bytes);
        if (!p)
            return nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: cannot allocate %zu bytes of scratch",
                             bytes);
        s->scr[slot] = p;
        s->scr_size[slot] = bytes;
    }
    *out = s->scr[slot];
    return NC_OK;
}

/* ---- per-node cache */

static void cache_clear(dn_state *s, dn_cache *c) {
    nc__free(s->ctx, c->w.buf);
    nc__free(s->ctx, c->wino.buf);
    nc__free(s->ctx, c->bbuf);
    nc__free(s->ctx, c->ws);
    c->w = c->wino = (dn_weights){0};
    c->ws = NULL;
    c->bbuf = NULL;
    c->ws_bytes = 0;
    for (int k = 0; k < DN_MAX_PRIM; k++) {
        if (c->prim[k]) dnnl_primitive_destroy(c->prim[k]);
        if (c->pd[k]) dnnl_primitive_desc_destroy(c->pd[k]);
        c->prim[k] = NULL;
        c->pd[k] = NULL;
        c->ident[k] = 0;
    }
}

void nc__dnnl_cache_release(void *state, void *cache) {
    if (!cache) return;
    cache_clear(S(state), cache);
    nc__free(S(state)->ctx, cache);
}

nc_status nc__dnnl_cache_get(dn_state *s, void **slot, int op, const int64_t *key, int n, dn_cache **out) {
    dn_cache *c = *slot;
    if (c && c->op == op && memcmp(c->key, key, (size_t)n * sizeof *key) == 0) {
        *out = c;
        return NC_OK;
    }
    if (!c) {
        c = nc__calloc(s->ctx, 1, sizeof *c);
        if (!c) return nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: out of memory for a node cache");
        *slot = c;
    } else {
        cache_clear(s, c);
        memset(c, 0, sizeof *c);
    }
    c->op = op;
    memcpy(c->key, key, (size_t)n * sizeof *key);
    *out = c;
    return NC_OK;
}

nc_status nc__dnnl_md(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, const char *what) {
    return nc__dnnl_md_dt(s, md, ndim, dims, NC__DTYPE_F32, what);
}

nc_status nc__dnnl_md_dt(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, nc__dtype dt,
                         const char *what) {
    static const dnnl_format_tag_t plain[6] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd,
                                               dnnl_abcde};
    nc_status st = NC_OK;
    dnnl_dims_t dd;
    for (int i = 0; i < ndim; i++) dd[i] = dims[i];
    NC_DNNL_CHECK(what, dnnl_memory_desc_init_by_tag(md, ndim, dd, nc__dnnl_dt(dt), plain[ndim]));
fail:
    return st;
}

nc_status nc__dnnl_cache_buffer(dn_state *s, void **buf, size_t *have, size_t bytes) {
    if (*buf && *have >= bytes) return NC_OK;
    nc__free(s->ctx, *buf);
    *have = 0;
    *buf = nc__alloc(s->ctx, bytes ? bytes : 64);
    if (!*buf)
        return nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: cannot allocate %zu bytes for a node",
                         bytes);
    *have = bytes;
    return NC_OK;
}

const char *nc__dnnl_impl(const dn_cache *c, int k) {
    const char *name = NULL;
    if (!c->pd[k] || dnnl_primitive_desc_query(c->pd[k], dnnl_query_impl_info_str, 0, &name) != dnnl_success ||
        !name)
        return "";
    return name;
}

nc_status nc__dnnl_make(dn_state *s, dn_cache *c, int k, const void *op_desc, const_dnnl_primitive_desc_t hint,
                        int allow_bf16, const char *what) {
    return nc__dnnl_make_post(s, c, k, op_desc, hint, allow_bf16, NULL, what);
}

/* Creates c->pd[k] and c->prim[k]; no error recorded (the caller decides). */
static dnnl_status_t make_pd(dn_state *s, dn_cache *c, int k, const void *op_desc,
                             const_dnnl_primitive_desc_t hint, int allow_bf16, const_dnnl_post_ops_t post) {
    dnnl_primitive_attr_t attr = NULL;
    int old = threads_enter(s);
    dnnl_status_t r = dnnl_primitive_attr_create(&attr);
    if (r == dnnl_success) r = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (r == dnnl_success && post) r = dnnl_primitive_attr_set_post_ops(attr, post);
    if (r == dnnl_success && allow_bf16 && s->bf16) r = dnnl_primitive_attr_set_fpmath_mode(attr, dnnl_fpmath_mode_bf16);
    if (r == dnnl_success) r = dnnl_primitive_desc_create(&c->pd[k], op_desc, attr, s->engine, hint);
    if (r == dnnl_success) r = dnnl_primitive_create(&c->prim[k], c->pd[k]);
    if (r != dnnl_success && c->pd[k]) {
        dnnl_primitive_desc_destroy(c->pd[k]);
        c->pd[k] = NULL;
    }
    if (attr) dnnl_primitive_attr_destroy(attr);
    threads_leave(s, old);
    return r;
}

nc_status nc__dnnl_make_post(dn_state *s, dn_cache *c, int k, const void *op_desc,
                             const_dnnl_primitive_desc_t hint, int allow_bf16, const_dnnl_post_ops_t post,
                             const char *what) {
    nc_status st = NC_OK;
    NC_DNNL_CHECK(what, make_pd(s, c, k, op_desc, hint, allow_bf16, post));
fail:
    return st;
}

int nc__dnnl_try_make(dn_state *s, dn_cache *c, int k, const void *op_desc, const_dnnl_primitive_desc_t hint,
                      int allow_bf16, const_dnnl_post_ops_t post) {
    if (make_pd(s, c, k, op_desc, hint, allow_bf16, post) != dnnl_success) return 0;
    if (strncmp(nc__dnnl_impl(c, k), "ref", 3) != 0) return 1;
    dnnl_primitive_destroy(c->prim[k]);
    dnnl_primitive_desc_destroy(c->pd[k]);
    c->prim[k] = NULL;
    c->pd[k] = NULL;
    return 0;
}

nc_status nc__dnnl_exec(dn_state *s, dn_cache *c, int k, int nargs, const dn_arg *args, const char *what) {
    nc_status st = NC_OK;
    dnnl_exec_arg_t ea[12];
    dnnl_memory_t mem[12];
    int nm = 0;
    int old = threads_enter(s);
    const dnnl_memory_desc_t *pad_md = dnnl_primitive_desc_query_md(c->pd[k], dnnl_query_scratchpad_md, 0);
    size_t pad_bytes = pad_md ? dnnl_memory_desc_get_size(pad_md) : 0;
    for (int i = 0; i < nargs && i < 11; i++) {
        NC_DNNL_CHECK(what, dnnl_memory_create(&mem[nm], args[i].md, s->engine, args[i].ptr));
        ea[nm].arg = args[i].arg;
        ea[nm].memory = mem[nm];
        nm++;
    }
    if (pad_bytes) {
        void *pad;
        NC_CHECK(nc__dnnl_scratch(s, DN_SCR_PAD, pad_bytes, &pad));
        NC_DNNL_CHECK(what, dnnl_memory_create(&mem[nm], pad_md, s->engine, pad));
        ea[nm].arg = DNNL_ARG_SCRATCHPAD;
        ea[nm].memory = mem[nm];
        nm++;
    }
    NC_DNNL_CHECK(what, dnnl_primitive_execute(c->prim[k], s->stream, nm, ea));
    NC_DNNL_CHECK(what, dnnl_stream_wait(s->stream));
fail:
    for (int i = 0; i < nm; i++) dnnl_memory_destroy(mem[i]);
    threads_leave(s, old);
    return st;
}

static nc_status make_reorder(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to);

/* ---- the activation layout */

static int act_blocked(const dn_state *s, int ndim, const int64_t *dims) {
    return ndim == 4 && s->block > 0 && dims[1] >= s->block;
}

int nc__dnnl_act_block(const dn_state *s, int ndim, const int64_t *dims) {
    return act_blocked(s, ndim, dims) ? s->block : 1;
}

nc_status nc__dnnl_act_md(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, const char *what) {
    return nc__dnnl_act_md_dt(s, md, ndim, dims, NC__DTYPE_F32, what);
}

nc_status nc__dnnl_act_md_dt(dn_state *s, dnnl_memory_desc_t *md, int ndim, const int64_t *dims, nc__dtype dt,
                             const char *what) {
    if (!act_blocked(s, ndim, dims)) return nc__dnnl_md_dt(s, md, ndim, dims, dt, what);
    nc_status st = NC_OK;
    dnnl_dims_t dd = {dims[0], dims[1], dims[2], dims[3]};
    NC_DNNL_CHECK(what, dnnl_memory_desc_init_by_tag(md, 4, dd, nc__dnnl_dt(dt),
                                                     s->block == 16 ? dnnl_nChw16c : dnnl_nChw8c));
fail:
    return st;
}

size_t nc__dnnl_act_floats(const dn_state *s, int ndim, const int64_t *dims) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        int64_t d = dims[i];
        if (i == 1 && act_blocked(s, ndim, dims)) d = (d + s->block - 1) / s->block * s->block;
        n *= (size_t)d;
    }
    return n;
}

nc_status nc__dnnl_reorder_once(dn_state *s, const dnnl_memory_desc_t *from, const void *src,
                                const dnnl_memory_desc_t *to, void *dst) {
    nc_status st = NC_OK;
    dn_cache c;
    memset(&c, 0, sizeof c);
    NC_CHECK(make_reorder(s, &c, 0, from, to));
    if (c.ident[0] == 1) {
        if (dst != src) memcpy(dst, src, dnnl_memory_desc_get_size(to));
    } else {
        const dn_arg args[] = {{DNNL_ARG_FROM, from, (void *)src}, {DNNL_ARG_TO, to, dst}};
        st = nc__dnnl_exec(s, &c, 0, 2, args, "reorder");
    }
fail:
    cache_clear(s, &c);
    return st;
}

/* ---- layout changes at a primitive's boundary */

static nc_status make_reorder(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to) {
    nc_status st = NC_OK;
    if (c->ident[k]) return NC_OK;
    if (dnnl_memory_desc_equal(from, to)) {
        c->ident[k] = 1;
        return NC_OK;
    }
    dnnl_primitive_attr_t attr = NULL;
    int old = threads_enter(s); /* a reorder fixes its thread count when created */
    NC_DNNL_CHECK("reorder", dnnl_primitive_attr_create(&attr));
    NC_DNNL_CHECK("reorder", dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    NC_DNNL_CHECK("reorder", dnnl_reorder_primitive_desc_create(&c->pd[k], from, s->engine, to, s->engine, attr));
    NC_DNNL_CHECK("reorder", dnnl_primitive_create(&c->prim[k], c->pd[k]));
    c->ident[k] = 2;
fail:
    if (st != NC_OK && c->pd[k]) {
        dnnl_primitive_desc_destroy(c->pd[k]);
        c->pd[k] = NULL;
    }
    if (attr) dnnl_primitive_attr_destroy(attr);
    threads_leave(s, old);
    return st;
}

nc_status nc__dnnl_reorder_in(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, const void *ptr, int slot, void **out) {
    nc_status st;
    NC_CHECK(make_reorder(s, c, k, from, to));
    if (c->ident[k] == 1) {
        *out = (void *)ptr;
        return NC_OK;
    }
    NC_CHECK(nc__dnnl_scratch(s, slot, dnnl_memory_desc_get_size(to), out));
    const dn_arg args[] = {{DNNL_ARG_FROM, from, (void *)ptr}, {DNNL_ARG_TO, to, *out}};
    NC_CHECK(nc__dnnl_exec(s, c, k, 2, args, "reorder"));
fail:
    return st;
}

nc_status nc__dnnl_out_buffer(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, void *dst, int slot, void **out) {
    nc_status st;
    NC_CHECK(make_reorder(s, c, k, from, to));
    if (c->ident[k] == 1) {
        *out = dst;
        return NC_OK;
    }
    NC_CHECK(nc__dnnl_scratch(s, slot, dnnl_memory_desc_get_size(from), out));
fail:
    return st;
}

nc_status nc__dnnl_reorder_to(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                              const dnnl_memory_desc_t *to, const void *src, void *dst) {
    nc_status st;
    NC_CHECK(make_reorder(s, c, k, from, to));
    if (c->ident[k] == 1) {
        if (dst != src) memcpy(dst, src, dnnl_memory_desc_get_size(to));
        return NC_OK;
    }
    NC_CHECK(nc__dnnl_reorder_out(s, c, k, from, to, src, dst));
fail:
    return st;
}

nc_status nc__dnnl_reorder_out(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *from,
                               const dnnl_memory_desc_t *to, const void *src, void *dst) {
    if (c->ident[k] == 1) return NC_OK;
    const dn_arg args[] = {{DNNL_ARG_FROM, from, (void *)src}, {DNNL_ARG_TO, to, dst}};
    return nc__dnnl_exec(s, c, k, 2, args, "reorder");
}

/* ---- state and memory */

/* The activation layout: the destination layout oneDNN picks (format_tag any) for a
 * typical 3x3 convolution of a ResNet's middle stages. A channel-blocked nChw{8,16}c
 * becomes the layout of every wide activation; anything else (channels-last, plain)
 * leaves activations plain. */
static nc_status detect_block(dn_state *s) {
    nc_status st = NC_OK;
    dn_cache c;
    memset(&c, 0, sizeof c);
    dnnl_memory_desc_t src, wei, dst;
    dnnl_dims_t sd = {2, 64, 28, 28}, wd = {64, 64, 3, 3}, strides = {1, 1}, pad = {1, 1};
    dnnl_convolution_desc_t od;
    s->block = 0;
    NC_DNNL_CHECK("layout probe", dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_format_tag_any));
    NC_DNNL_CHECK("layout probe", dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any));
    NC_DNNL_CHECK("layout probe", dnnl_memory_desc_init_by_tag(&dst, 4, sd, dnnl_f32, dnnl_format_tag_any));
    NC_DNNL_CHECK("layout probe", dnnl_convolution_forward_desc_init(&od, dnnl_forward_training,
                                                                     dnnl_convolution_direct, &src, &wei, NULL,
                                                                     &dst, strides, pad, pad));
    NC_CHECK(nc__dnnl_make(s, &c, 0, &od, NULL, 0, "layout probe"));
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(c.pd[0], dnnl_query_dst_md, 0);
    if (md && md->format_kind == dnnl_blocked && md->format_desc.blocking.inner_nblks == 1 &&
        md->format_desc.blocking.inner_idxs[0] == 1 &&
        (md->format_desc.blocking.inner_blks[0] == 8 || md->format_desc.blocking.inner_blks[0] == 16)) {
        dnnl_memory_desc_t want;
        const int64_t dims[4] = {2, 64, 28, 28};
        s->block = (int)md->format_desc.blocking.inner_blks[0];
        NC_CHECK(nc__dnnl_act_md(s, &want, 4, dims, "layout probe"));
        if (!dnnl_memory_desc_equal(&want, md)) s->block = 0; /* some other blocking: stay plain */
    }
fail:
    cache_clear(s, &c);
    return st;
}

/* oneDNN's name of an effective ISA (dnnl_cpu_isa_t; ONEDNN_MAX_CPU_ISA caps it). */
static const char *isa_name(unsigned isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "SSE41";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2_VNNI";
    case dnnl_cpu_isa_avx512_core: return "AVX512_CORE";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX512_CORE_VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX512_CORE_BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AVX512_CORE_AMX";
    }
    return "another";
}

/* bf16 kernels: oneDNN's effective ISA includes AVX512_BF16 (AMX's includes it too;
 * nothing here caps the ISA, so oneDNN picks AMX kernels where the CPU has AMX). */
static void detect_bf16(dn_state *s) {
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa(), want = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    s->isa_bf16 = (isa & want) == want;
    s->bf16_refusal[0] = '\0';
    if (!s->isa_bf16)
        snprintf(s->bf16_refusal, sizeof s->bf16_refusal,
                 "bf16 needs a CPU with AVX512_BF16 or AMX, and oneDNN finds neither here (its ISA: %s)",
                 isa_name(isa));
}

static const char *dn_dtype_refusal(void *state, nc__dtype dt) {
    const dn_state *s = state;
    return dt == NC__DTYPE_BF16 && !s->isa_bf16 ? s->bf16_refusal : NULL;
}

static nc_status dn_init(nc_context *ctx, int num_threads, void **state) {
    nc_status st = NC_OK;
    dn_state *s = nc__calloc(ctx, 1, sizeof *s);
    if (!s) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: out of memory for its state");
    s->ctx = ctx;
    s->nt = num_threads >= 1 ? num_threads : 1;
    s->bf16 = ctx->opt.precision == NC_PRECISION_BF16_MATH;
    s->conv_alg = (int)ctx->opt.conv_algorithm;
    detect_bf16(s); /* both bf16 policies need its kernels */
    if (s->bf16 && !s->isa_bf16) {
        st = nc__error(ctx, NC_ERR_UNSUPPORTED, "onednn backend: %s", s->bf16_refusal);
        goto fail;
    }
    NC_DNNL_CHECK("engine", dnnl_engine_create(&s->engine, dnnl_cpu, 0));
    NC_DNNL_CHECK("stream", dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags));
    NC_CHECK(detect_block(s));
    *state = s;
    return NC_OK;
fail:
    if (s->engine) dnnl_engine_destroy(s->engine);
    nc__free(ctx, s);
    return st;
}

static void dn_destroy(void *state) {
    if (!state) return;
    dn_state *s = state;
    for (int i = 0; i < DN_SCR_COUNT; i++) nc__free(s->ctx, s->scr[i]);
    if (s->stream) dnnl_stream_destroy(s->stream);
    if (s->engine && !s->is_worker) dnnl_engine_destroy(s->engine);
    nc__free(s->ctx, s);
}

/* A worker (backend.h, CONCURRENCY): the parent's engine, layout and settings, its
 * own stream and scratch. */
static nc_status dn_worker_create(void *state, void **worker) {
    const dn_state *parent = state;
    dn_state *s = nc__calloc(parent->ctx, 1, sizeof *s);
    if (!s) return nc__error(parent->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: out of memory for a worker");
    *s = (dn_state){.ctx = parent->ctx, .nt = parent->nt, .bf16 = parent->bf16, .isa_bf16 = parent->isa_bf16,
                    .block = parent->block, .conv_alg = parent->conv_alg, .gconv_off = parent->gconv_off, .engine = parent->engine,
                    .is_worker = 1};
    memcpy(s->bf16_refusal, parent->bf16_refusal, sizeof s->bf16_refusal);
    nc_status st = NC_OK;
    NC_DNNL_CHECK("stream", dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags));
    *worker = s;
    return NC_OK;
fail:
    nc__free(parent->ctx, s);
    return st;
}

static nc_status dn_alloc(void *state, size_t bytes, void **out) {
    dn_state *s = state;
    void *p = nc__alloc(s->ctx, bytes ? bytes : 1);
    if (!p) return nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: cannot allocate %zu bytes", bytes);
    *out = p;
    return NC_OK;
}

static void dn_free(void *state, void *ptr) {
    if (ptr) nc__free(S(state)->ctx, ptr);
}

/* Raw copies: backend memory is host memory. */
static nc_status dn_copy_bytes(void *state, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return NC_OK;
}

/* Parameters and their gradients: plain host NCHW f32. */
static nc_status dn_upload(void *state, void *dst, const float *src, const nc__shape *shape) {
    return dn_copy_bytes(state, dst, src, (size_t)nc__shape_numel(shape) * sizeof(float));
}

static nc_status dn_download(void *state, float *dst, const void *src, const nc__shape *shape) {
    return dn_copy_bytes(state, dst, src, (size_t)nc__shape_numel(shape) * sizeof(float));
}

static nc_status dn_fill(void *state, void *dst, float value, size_t count) {
    // dst (count)
    float *d = dst;
    if (value == 0.0f) {
        if (count) memset(d, 0, count * sizeof(float));
        return NC_OK;
    }
    for (size_t i = 0; i < count; i++) d[i] = value;
    return NC_OK;
}

static nc_status dn_axpby(void *state, size_t count, void *y, float a, const void *x, float b) {
    nc__ref_axpby(S(state)->nt, count, y, a, x, b);
    return NC_OK;
}

/* ---- activation values: the activation layout, in the value's dtype */

static size_t dn_value_bytes(void *state, const nc__value_desc *v) {
    return nc__dnnl_act_floats(S(state), v->shape.ndim, v->shape.d) * nc__dtype_size(v->dtype);
}

/* Plain NCHW of dtype plain_dt <-> the value v in the activation layout (to_act:
 * into the value, else out of it); the reorder converts between the dtypes
 * (to bf16: round to nearest even). */
static nc_status value_transfer(dn_state *s, const nc__value_desc *v, nc__dtype plain_dt, const void *src,
                                void *dst, int to_act) {
    nc_status st;
    dnnl_memory_desc_t plain, act;
    const nc__shape *shape = &v->shape;
    const char *what = to_act ? "upload" : "download";
    NC_CHECK(nc__dnnl_md_dt(s, &plain, shape->ndim, shape->d, plain_dt, what));
    NC_CHECK(nc__dnnl_act_md_dt(s, &act, shape->ndim, shape->d, v->dtype, what));
    NC_CHECK(to_act ? nc__dnnl_reorder_once(s, &plain, src, &act, dst) : nc__dnnl_reorder_once(s, &act, src, &plain, dst));
fail:
    return st;
}

nc_status nc__dnnl_value_upload(void *state, const nc__value_desc *v, void *dst, const float *src) {
    return value_transfer(state, v, NC__DTYPE_F32, src, dst, 1);
}

nc_status nc__dnnl_value_download(void *state, const nc__value_desc *v, float *dst, const void *src) {
    return value_transfer(state, v, NC__DTYPE_F32, src, dst, 0);
}

nc_status nc__dnnl_value_to_plain(dn_state *s, const nc__value_desc *v, void *dst, const void *src) {
    return value_transfer(s, v, v->dtype, src, dst, 0);
}

nc_status nc__dnnl_value_from_plain(dn_state *s, const nc__value_desc *v, void *dst, const void *src) {
    return value_transfer(s, v, v->dtype, src, dst, 1);
}

/* ---- capabilities */

/* 1 when the query and every descriptor it carries name values of dtype t. */
static int all_dtype(const nc__op_query *q, nc__dtype t) {
    return q->dtype == t && (!q->conv || q->conv->dtype == t) && (!q->bn || q->bn->dtype == t) &&
           (!q->pool || q->pool->dtype == t) && (!q->linear || q->linear->dtype == t) &&
           (!q->value || q->value->dtype == t);
}

/* Every single op; the fused entries wherever their ops run: conv_fused_infer
 * covers every convolution (oneDNN's implementations, reference ones included, take
 * the sum and ReLU post-ops; grouped.c's kernels take bias, residual and ReLU; batch
 * norm is folded into the weights either way), but only for inference; batchnorm +
 * ReLU runs oneDNN's fused batch norm on either layout, its backward reading the
 * ReLU mask the forward kept in the node's cache. All of it on f32 values, and on
 * bf16 values (backend.h, DTYPE POLICY) where oneDNN's effective ISA has bf16
 * kernels (s->isa_bf16); grouped.c's kernels are f32-only, so bf16 grouped
 * convolutions run oneDNN's primitives. */
static int dn_supports(void *state, const nc__op_query *q) {
    const dn_state *s = state;
    if (!all_dtype(q, NC__DTYPE_F32) && !(s->isa_bf16 && all_dtype(q, NC__DTYPE_BF16))) return 0;
    switch (q->kernel) {
    case NC__K_CONV2D: case NC__K_BATCHNORM: case NC__K_RELU: case NC__K_ADD: case NC__K_POOL2D:
    case NC__K_LINEAR: case NC__K_DROPOUT: case NC__K_FLATTEN: case NC__K_CONCAT: case NC__K_LOSS:
    case NC__K_BN_RELU_TRAIN:
        return 1;
    case NC__K_CONV_FUSED_INFER:
        return !q->training;
    case NC__K_BN_SYNC: /* the ref kernels on this layout (ops.c) */
        return all_dtype(q, NC__DTYPE_F32);
    case NC__K_COUNT:
        break;
    }
    return 0;
}

/* ---- the training step's loss, norm, clipping and update: host f32 */

/* bf16 logits: widened into f32 scratch, the f32 loss, dlogits rounded to bf16
 * (backend.h, DTYPE POLICY); the logits are plain 2-D values. */
static nc_status dn_loss(void *state, const nc__loss_desc *d, void *dlogits, void *record, const void *logits,
                         const void *labels) {
    dn_state *s = state;
    nc_status st;
    if (d->dtype == NC__DTYPE_F32) {
        nc__ref_loss(d, dlogits, record, logits, labels);
        return NC_OK;
    }
    // logits, dlogits (N, heads*classes) bf16; scratch: their f32 copies
    const size_t count = (size_t)d->n * (size_t)d->heads * (size_t)d->classes;
    float *zf, *df = NULL;
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B0, count * sizeof(float), (void **)&zf));
    if (dlogits) NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B1, count * sizeof(float), (void **)&df));
    const nc__bf16 *z = logits;
    for (size_t i = 0; i < count; i++) zf[i] = nc__bf16_to_f32(z[i]);
    nc__loss_desc f = *d;
    f.dtype = NC__DTYPE_F32;
    nc__ref_loss(&f, df, record, zf, labels);
    nc__bf16 *dz = dlogits;
    for (size_t i = 0; dlogits && i < count; i++) dz[i] = nc__f32_to_bf16(df[i]);
fail:
    return st;
}

static nc_status dn_grad_norm(void *state, const nc__param_entry *table, int count, void *record,
                              const void *grads) {
    nc__ref_grad_norm(S(state)->nt, table, count, record, grads);
    return NC_OK;
}

static nc_status dn_clip_grads(void *state, const nc__param_entry *table, int count, float max_norm, void *grads,
                               const void *record) {
    nc__ref_clip_grads(S(state)->nt, table, count, max_norm, grads, record);
    return NC_OK;
}

static nc_status dn_update(void *state, const nc__optim_desc *d, const nc__param_entry *table, int count,
                           void *params, void *s1, void *s2, const void *grads, const void *record) {
    nc__ref_update(S(state)->nt, d, table, count, params, s1, s2, grads, record);
    return NC_OK;
}

static const nc__backend onednn_backend = {
    .name = "onednn",
    .kind = NC_BACKEND_ONEDNN,
    .init = dn_init,
    .destroy = dn_destroy,
    .worker_create = dn_worker_create,
    .worker_destroy = dn_destroy,
    .supports = dn_supports,
    .dtype_refusal = dn_dtype_refusal,
    .alloc = dn_alloc,
    .free = dn_free,
    .write = dn_copy_bytes,
    .read = dn_copy_bytes,
    .upload = dn_upload,
    .download = dn_download,
    .fill = dn_fill,
    .release_cache = nc__dnnl_cache_release,
    .value_bytes = dn_value_bytes,
    .value_upload = nc__dnnl_value_upload,
    .value_download = nc__dnnl_value_download,
    .accumulate = nc__dnnl_accumulate,
    .conv2d_forward = nc__dnnl_conv2d_forward,
    .conv2d_backward = nc__dnnl_conv2d_backward,
    .batchnorm_forward_train = nc__dnnl_bn_forward_train,
    .batchnorm_forward_infer = nc__dnnl_bn_forward_infer,
    .batchnorm_backward = nc__dnnl_bn_backward,
    .relu_forward = nc__dnnl_relu_forward,
    .relu_backward = nc__dnnl_relu_backward,
    .add_forward = nc__dnnl_add_forward,
    .dropout_forward = nc__dnnl_dropout_forward,
    .dropout_backward = nc__dnnl_dropout_backward,
    .pool2d_forward = nc__dnnl_pool2d_forward,
    .pool2d_backward = nc__dnnl_pool2d_backward,
    .flatten_forward = nc__dnnl_flatten_forward,
    .flatten_backward = nc__dnnl_flatten_backward,
    .concat_forward = nc__dnnl_concat_forward,
    .concat_backward = nc__dnnl_concat_backward,
    .conv2d_fused_infer = nc__dnnl_conv2d_fused_infer,
    .batchnorm_relu_forward_train = nc__dnnl_bn_relu_forward_train,
    .batchnorm_relu_backward = nc__dnnl_bn_relu_backward,
    .batchnorm_sync_sums = nc__dnnl_bn_sync_sums,
    .batchnorm_sync_forward = nc__dnnl_bn_sync_forward,
    .batchnorm_sync_backward_sums = nc__dnnl_bn_sync_backward_sums,
    .batchnorm_sync_backward = nc__dnnl_bn_sync_backward,
    .linear_forward = nc__dnnl_linear_forward,
    .linear_backward = nc__dnnl_linear_backward,
    .loss = dn_loss,
    .grad_norm = dn_grad_norm,
    .clip_grads = dn_clip_grads,
    .update = dn_update,
    .axpby = dn_axpby,
};

const nc__backend *nc__backend_onednn(void) { return &onednn_backend; }
