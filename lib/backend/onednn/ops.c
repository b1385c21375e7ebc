/* ops.c — the oneDNN backend's primitives: convolution (grouped, strided, padded,
 * dilated; forward, backward data, backward weights + bias; inference fused with a
 * folded batch norm, a residual sum and ReLU as post-ops), batch normalisation
 * (training with saved statistics, optionally fused with ReLU; inference; backward),
 * pooling (max with workspace, avg counting padding, adaptive avg when the bins are
 * uniform) and inner product. 3x3 stride-1 convolutions run oneDNN's Winograd
 * F(4x4,3x3) where the context's conv_algorithm allows it (conv_alg, docs/backends.md
 * "Convolution algorithms"); on nChw8c (AVX2), where oneDNN has none, inference
 * runs our own F(2x2,3x3) (winograd.c) instead. Primitives are made once per node and sizes in the
 * node's cache slot. Activations are in the backend's activation layout
 * (onednn.h); a primitive that prefers another layout gets cached reorders at its
 * boundary. Weights are reordered into the forward primitive's layout once per
 * parameter version and shared with backward data. oneDNN overwrites its outputs,
 * so an activation gradient goes straight to dx when its write mode is
 * NC__WRITE_SET, else through scratch and the ref kernel's add (backend.h, GRADIENT
 * WRITE RULE); parameter gradients always go through scratch and the add. bf16
 * values (backend.h, DTYPE POLICY) run the same primitives with dnnl_bf16 data,
 * bf16 weight copies cached like the reordered f32 ones, and f32 weight gradients,
 * bias and batch-norm statistics. */
#include "backend/onednn/onednn.h"
#include "backend/onednn/grouped.h"
#include "backend/onednn/winograd.h"
#include "backend/ref/ref.h"
#include "core/bf16.h"

#include <math.h>
#include <string.h>

enum { OP_CONV = 1, OP_BN, OP_POOL, OP_LINEAR, OP_CONV_FUSED };

/* 1 when a gradient with this mode is written straight into its buffer. */
static int writes_whole(nc__write mode) { return mode == NC__WRITE_SET; }

/* Adds `count` floats of scratch `tmp` into dst (NULL dst: gradient not wanted). */
static void add_into(const dn_state *s, void *dst, const void *tmp, size_t count) {
    if (dst) nc__ref_accumulate(s->nt, count, dst, tmp);
}

/* The same for an activation gradient of `bytes` bytes and dtype dt. */
static void add_value(const dn_state *s, nc__dtype dt, void *dst, const void *tmp, size_t bytes) {
    if (dst) nc__ref_write_values(s->nt, dt, NC__WRITE_ADD, bytes / nc__dtype_size(dt), dst, tmp);
}

/* ---------------------------------------------------------------- convolution */

/* Slots of a convolution's cache: the primitives, then the reorders between the
 * activation / plain weight layouts and the ones a primitive chose. */
enum {
    CONV_FWD = 0, CONV_BWD_DATA, CONV_BWD_WEIGHTS,
    R_FWD_SRC, R_FWD_WEI, R_FWD_DST, R_FWD_RES,
    R_BD_DDST, R_BD_WEI, R_BD_DSRC,
    R_BW_SRC, R_BW_DDST, R_BW_DWEI
};

typedef struct conv_mds {
    dnnl_memory_desc_t src, dst;             /* the activation layout, the values' dtype */
    dnnl_memory_desc_t wei, bias;            /* plain f32: the parameters' layout */
    dnnl_memory_desc_t src_any, wei_any, dst_any; /* the values' dtype (weights: bf16 copies) */
    dnnl_memory_desc_t dwei_any;             /* f32: weight gradients go to the f32 masters */
    dnnl_dims_t strides, dil, pad;
} conv_mds;

/* `like`'s dims in data type dt, layout left to the primitive. */
static nc_status any_md(dn_state *s, dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like, nc__dtype dt) {
    nc_status st = NC_OK;
    NC_DNNL_CHECK("convolution layout", dnnl_memory_desc_init_by_tag(md, like->ndims, like->dims, nc__dnnl_dt(dt),
                                                                     dnnl_format_tag_any));
fail:
    return st;
}

static const dnnl_memory_desc_t *pd_md(dn_cache *c, int k, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(c->pd[k], what, 0);
}

static nc_status conv_prepare(dn_state *s, const nc__conv_desc *d, int op, int variant, dn_cache **out,
                              conv_mds *m) {
    nc_status st = NC_OK;
    const int64_t key[18] = {d->n, d->c, d->h, d->w, d->k, d->r, d->s, d->groups, d->stride_h, d->stride_w,
                             d->pad_h, d->pad_w, d->dil_h, d->dil_w, d->oh, d->ow, variant, d->dtype};
    NC_CHECK(nc__dnnl_cache_get(s, (void **)d->cache, op, key, 18, out));
    const int64_t src[4] = {d->n, d->c, d->h, d->w}, dst[4] = {d->n, d->k, d->oh, d->ow};
    const int64_t wg[5] = {d->groups, d->k / d->groups, d->c / d->groups, d->r, d->s};
    const int64_t wd[4] = {d->k, d->c, d->r, d->s}, bias[1] = {d->k};
    NC_CHECK(nc__dnnl_act_md_dt(s, &m->src, 4, src, d->dtype, "convolution source"));
    NC_CHECK(nc__dnnl_act_md_dt(s, &m->dst, 4, dst, d->dtype, "convolution destination"));
    NC_CHECK(d->groups > 1 ? nc__dnnl_md(s, &m->wei, 5, wg, "convolution weights")
                           : nc__dnnl_md(s, &m->wei, 4, wd, "convolution weights"));
    NC_CHECK(nc__dnnl_md(s, &m->bias, 1, bias, "convolution bias"));
    NC_CHECK(any_md(s, &m->src_any, &m->src, d->dtype));
    NC_CHECK(any_md(s, &m->wei_any, &m->wei, d->dtype));
    NC_CHECK(any_md(s, &m->dst_any, &m->dst, d->dtype));
    NC_CHECK(any_md(s, &m->dwei_any, &m->wei, NC__DTYPE_F32));
    m->strides[0] = d->stride_h;
    m->strides[1] = d->stride_w;
    m->dil[0] = d->dil_h - 1; /* oneDNN counts the gaps: 0 = dense */
    m->dil[1] = d->dil_w - 1;
    /* symmetric padding: oneDNN's size check floors like PyTorch's output size */
    m->pad[0] = d->pad_h;
    m->pad[1] = d->pad_w;
fail:
    return st;
}

/* The descriptor of pass k (CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS) with
 * algorithm alg, on the activation layout or (`any`) the layouts oneDNN picks. */
static dnnl_status_t conv_desc(dnnl_convolution_desc_t *od, int k, dnnl_prop_kind_t prop, dnnl_alg_kind_t alg,
                               const conv_mds *m, int has_bias, int any) {
    const dnnl_memory_desc_t *src = any ? &m->src_any : &m->src, *dst = any ? &m->dst_any : &m->dst;
    const dnnl_memory_desc_t *b = has_bias ? &m->bias : NULL;
    if (k == CONV_FWD)
        return dnnl_dilated_convolution_forward_desc_init(od, prop, alg, src, &m->wei_any, b, dst, m->strides, m->dil,
                                                          m->pad, m->pad);
    if (k == CONV_BWD_DATA)
        return dnnl_dilated_convolution_backward_data_desc_init(od, alg, src, &m->wei_any, dst, m->strides, m->dil,
                                                                m->pad, m->pad);
    return dnnl_dilated_convolution_backward_weights_desc_init(od, alg, src, &m->dwei_any, b, dst, m->strides,
                                                               m->dil, m->pad, m->pad);
}

/* Whether Winograd F(4x4,3x3) pays for convolution d (NC_CONV_ALGORITHM_AUTO), from
 * ResNet-18's 3x3 layers timed both ways (docs/performance.md, "Winograd
 * convolutions"): at batch 16 every stride-1 layer gains in every pass (1.3-2.2x),
 * 7x7 maps included; at batch 1 the 7x7 layers lose (0.6x: the transforms of 512x512
 * weights outweigh 49 output pixels), the 14x14 and larger gain. Hence at least 64
 * channels in and out, a 7x7 output, and 196 output pixels over the batch. */
static int winograd_pays(const nc__conv_desc *d) {
    return d->c >= 64 && d->k >= 64 && d->oh >= 7 && d->ow >= 7 && d->n * d->oh * d->ow >= 196;
}

/* The algorithm of a convolution's passes: Winograd where the context allows it (conv_algorithm)
 * and the shape is one oneDNN's Winograd kernels take (3x3, stride 1, no dilation,
 * no groups, f32 values and math), else direct. Whether oneDNN has the kernel on
 * this CPU (AVX-512 only in 2.6) is conv_make's question, pass by pass. */
static dnnl_alg_kind_t conv_alg(const dn_state *s, const nc__conv_desc *d) {
    const int shape = d->r == 3 && d->s == 3 && d->stride_h == 1 && d->stride_w == 1 && d->dil_h == 1 &&
                      d->dil_w == 1 && d->groups == 1 && d->dtype == NC__DTYPE_F32 && !s->bf16;
    if (!shape || s->conv_alg == NC_CONV_ALGORITHM_DIRECT) return dnnl_convolution_direct;
    if (s->conv_alg == NC_CONV_ALGORITHM_WINOGRAD || winograd_pays(d)) return dnnl_convolution_winograd;
    return dnnl_convolution_direct;
}

/* Makes pass k's primitive once (backward passes hinted by the forward): Winograd
 * on the activation layout where conv_alg picks it and oneDNN has a kernel, else
 * direct on the activation layout when oneDNN has a real kernel for it, else direct
 * in the layouts it picks (reorders at the boundary). */
static nc_status conv_make(dn_state *s, dn_cache *c, const nc__conv_desc *d, const conv_mds *m, int k,
                           dnnl_prop_kind_t prop, int has_bias, const_dnnl_post_ops_t post, const char *what) {
    nc_status st = NC_OK;
    if (c->prim[k]) return NC_OK;
    const const_dnnl_primitive_desc_t hint = k == CONV_FWD ? NULL : c->pd[CONV_FWD];
    dnnl_convolution_desc_t od;
    if (conv_alg(s, d) == dnnl_convolution_winograd &&
        conv_desc(&od, k, prop, dnnl_convolution_winograd, m, has_bias, 0) == dnnl_success &&
        nc__dnnl_try_make(s, c, k, &od, hint, 1, post))
        return NC_OK;
    NC_DNNL_CHECK(what, conv_desc(&od, k, prop, dnnl_convolution_direct, m, has_bias, 0));
    if (nc__dnnl_try_make(s, c, k, &od, hint, 1, post)) return NC_OK;
    NC_DNNL_CHECK(what, conv_desc(&od, k, prop, dnnl_convolution_direct, m, has_bias, 1));
    NC_CHECK(nc__dnnl_make_post(s, c, k, &od, hint, 1, post, what));
fail:
    return st;
}

/* The forward primitive (training or inference, with post-ops or NULL). */
static nc_status conv_make_fwd(dn_state *s, dn_cache *c, const nc__conv_desc *d, const conv_mds *m, int has_bias,
                               dnnl_prop_kind_t prop, const_dnnl_post_ops_t post) {
    return conv_make(s, c, d, m, CONV_FWD, prop, has_bias, post, "convolution forward");
}

/* Narrow grouped convolutions (the widths of grouped.h) run our own kernels
 * (grouped.c) on the blocked layout instead of oneDNN's im2col + GEMM. */
static int use_gconv(const dn_state *s, const nc__conv_desc *d) {
    return !s->gconv_off && s->block > 0 && !s->bf16 && d->dtype == NC__DTYPE_F32 &&
           nc__gconv_supported(d, s->block);
}

enum { OWN_NONE = 0, OWN_GCONV, OWN_WINO };

/* Which of our own kernels runs convolution d: grouped.c's for narrow groups (every
 * pass); winograd.c's for the forward on nChw8c where conv_alg picks Winograd
 * (oneDNN 2.6 has Winograd for AVX-512 only; backward stays on oneDNN's direct
 * primitives); else none (oneDNN's primitives). */
static int own_kernel(const dn_state *s, const nc__conv_desc *d) {
    if (use_gconv(s, d)) return OWN_GCONV;
    if (conv_alg(s, d) == dnnl_convolution_winograd && nc__wino_supported(d, s->block)) return OWN_WINO;
    return OWN_NONE;
}

/* The bias the primitive reads: b, or for bf16 values b rounded to bf16 (as
 * autocast and ref), in c->bbuf (K floats; remade each call, it is small). */
static nc_status conv_bias(dn_state *s, dn_cache *c, const nc__conv_desc *d, const void *b, const void **out) {
    *out = b;
    if (!b || d->dtype == NC__DTYPE_F32) return NC_OK;
    if (!c->bbuf) c->bbuf = nc__alloc(s->ctx, (size_t)d->k * sizeof(float));
    if (!c->bbuf) return nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: out of memory for a bf16 bias");
    for (int64_t k = 0; k < d->k; k++) c->bbuf[k] = nc__bf16_round(((const float *)b)[k]);
    *out = c->bbuf;
    return NC_OK;
}

/* The cached copy the kernel `own` reads: Winograd's transform apart, since
 * backward data shares the forward's reordered or packed weights. */
static dn_weights *weights_of(dn_cache *c, int own) { return own == OWN_WINO ? &c->wino : &c->w; }

/* 1 when cw holds the weights of parameter buffer wsrc at version d->wversion. */
static int weights_current(const dn_weights *cw, const nc__conv_desc *d, const void *wsrc) {
    return cw->ready && cw->ver == d->wversion && cw->src == wsrc;
}

/* Plain weights w (already folded where fused) prepared for the kernel that runs the
 * convolution (`own`, own_kernel's answer): packed for grouped.c, transformed for
 * winograd.c, else in the forward primitive's layout. Kept in weights_of(c, own)
 * and remade when the parameters changed since (d->wversion, buffer wsrc) or when
 * `force`d. */
static nc_status conv_weights(dn_state *s, dn_cache *c, const nc__conv_desc *d, const conv_mds *m,
                              const void *w, const void *wsrc, int force, int own, void **out) {
    nc_status st = NC_OK;
    dn_weights *cw = weights_of(c, own);
    if (!force && weights_current(cw, d, wsrc)) {
        *out = cw->buf;
        return NC_OK;
    }
    cw->ready = 0;
    if (own == OWN_GCONV) {
        NC_CHECK(nc__dnnl_cache_buffer(s, &cw->buf, &cw->bytes, nc__gconv_weight_floats(d) * sizeof(float)));
        nc__gconv_pack_weights(d, s->block, cw->buf, w);
    } else if (own == OWN_WINO) {
        NC_CHECK(nc__dnnl_cache_buffer(s, &cw->buf, &cw->bytes, nc__wino_weight_floats(d) * sizeof(float)));
        nc__wino_pack_weights(s->nt, d, cw->buf, w);
    } else {
        const dnnl_memory_desc_t *wei = pd_md(c, CONV_FWD, dnnl_query_weights_md);
        NC_CHECK(nc__dnnl_cache_buffer(s, &cw->buf, &cw->bytes, dnnl_memory_desc_get_size(wei)));
        NC_CHECK(nc__dnnl_reorder_once(s, &m->wei, w, wei, cw->buf));
    }
    cw->ready = 1;
    cw->ver = d->wversion;
    cw->src = wsrc;
    *out = cw->buf;
fail:
    return st;
}

/* Our own forward kernels: grouped.c's or winograd.c's (scratch per thread). */
static nc_status own_forward(dn_state *s, const nc__conv_desc *d, int own, float *y, const float *x, const float *bw,
                             const float *bias, const float *residual, int relu) {
    nc_status st = NC_OK;
    if (own == OWN_GCONV) {
        nc__gconv_forward(s->nt, d, s->block, y, x, bw, bias, residual, relu);
    } else {
        float *scr;
        NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B0, nc__wino_scratch_floats(d, s->nt) * sizeof(float), (void **)&scr));
        nc__wino_forward(s->nt, d, y, x, bw, bias, residual, relu, scr);
    }
fail:
    return st;
}

nc_status nc__dnnl_conv2d_forward(void *state, const nc__conv_desc *d, void *y, const void *x, const void *w,
                                  const void *b) {
    dn_state *s = state;
    nc_status st;
    dn_cache *c;
    conv_mds m;
    void *bx, *bw, *by;
    NC_CHECK(conv_prepare(s, d, OP_CONV, b != NULL, &c, &m));
    const int own = own_kernel(s, d);
    if (own != OWN_NONE) {
        NC_CHECK(conv_weights(s, c, d, &m, w, w, 0, own, &bw));
        return own_forward(s, d, own, y, x, bw, b, NULL, 0);
    }
    NC_CHECK(conv_make_fwd(s, c, d, &m, b != NULL, dnnl_forward_training, NULL));
    const dnnl_memory_desc_t *src = pd_md(c, CONV_FWD, dnnl_query_src_md);
    const dnnl_memory_desc_t *wei = pd_md(c, CONV_FWD, dnnl_query_weights_md);
    const dnnl_memory_desc_t *dst = pd_md(c, CONV_FWD, dnnl_query_dst_md);
    NC_CHECK(nc__dnnl_reorder_in(s, c, R_FWD_SRC, &m.src, src, x, DN_SCR_B0, &bx));
    NC_CHECK(conv_weights(s, c, d, &m, w, w, 0, OWN_NONE, &bw));
    NC_CHECK(nc__dnnl_out_buffer(s, c, R_FWD_DST, dst, &m.dst, y, DN_SCR_B2, &by));
    const void *bb;
    NC_CHECK(conv_bias(s, c, d, b, &bb));
    const dn_arg args[] = {{DNNL_ARG_SRC, src, bx}, {DNNL_ARG_WEIGHTS, wei, bw}, {DNNL_ARG_DST, dst, by},
                           {DNNL_ARG_BIAS, &m.bias, (void *)bb}};
    NC_CHECK(nc__dnnl_exec(s, c, CONV_FWD, b ? 4 : 3, args, "convolution forward"));
    NC_CHECK(nc__dnnl_reorder_out(s, c, R_FWD_DST, dst, &m.dst, by, y));
fail:
    return st;
}

/* Runs a fused forward primitive: the sum post-op adds what the destination holds,
 * so the residual is copied there first. */
static nc_status fused_exec(dn_state *s, dn_cache *c, const conv_mds *m, void *y, const void *x, void *bw,
                            const void *bias, const void *residual) {
    nc_status st;
    void *bx, *by;
    const dnnl_memory_desc_t *src = pd_md(c, CONV_FWD, dnnl_query_src_md);
    const dnnl_memory_desc_t *wei = pd_md(c, CONV_FWD, dnnl_query_weights_md);
    const dnnl_memory_desc_t *dst = pd_md(c, CONV_FWD, dnnl_query_dst_md);
    NC_CHECK(nc__dnnl_reorder_in(s, c, R_FWD_SRC, &m->src, src, x, DN_SCR_B0, &bx));
    NC_CHECK(nc__dnnl_out_buffer(s, c, R_FWD_DST, dst, &m->dst, y, DN_SCR_B2, &by));
    if (residual) {
        if (by == y) {
            if (y != residual) memcpy(y, residual, dnnl_memory_desc_get_size(&m->dst));
        } else {
            void *br;
            NC_CHECK(nc__dnnl_reorder_in(s, c, R_FWD_RES, &m->dst, dst, residual, DN_SCR_B1, &br));
            memcpy(by, br, dnnl_memory_desc_get_size(dst));
        }
    }
    const dn_arg args[] = {{DNNL_ARG_SRC, src, bx}, {DNNL_ARG_WEIGHTS, wei, bw}, {DNNL_ARG_DST, dst, by},
                           {DNNL_ARG_BIAS, &m->bias, (void *)bias}};
    NC_CHECK(nc__dnnl_exec(s, c, CONV_FWD, bias ? 4 : 3, args, "fused convolution"));
    NC_CHECK(nc__dnnl_reorder_out(s, c, R_FWD_DST, dst, &m->dst, by, y));
fail:
    return st;
}

/* Inference: batch norm folded into the weights and bias (w' = w * g/sqrt(v+eps)
 * per output channel, b' = (b - mean) * g/sqrt(v+eps) + beta), residual sum and
 * ReLU as post-ops; the folded weights are cached per parameter version. */
nc_status nc__dnnl_conv2d_fused_infer(void *state, const nc__conv_desc *d, const nc__bn_params *bn, void *y,
                                      const void *x, const void *w, const void *b, const void *residual, int relu) {
    dn_state *s = state;
    nc_status st = NC_OK;
    dn_cache *c;
    conv_mds m;
    dnnl_post_ops_t post = NULL;
    void *bw;
    const int has_bias = b != NULL || bn != NULL;
    NC_CHECK(conv_prepare(s, d, OP_CONV_FUSED, has_bias | (bn != NULL) << 1 | (residual != NULL) << 2 | !!relu << 3,
                          &c, &m));
    const int own = own_kernel(s, d);
    if (!own && !c->prim[CONV_FWD]) {
        NC_DNNL_CHECK("convolution post-ops", dnnl_post_ops_create(&post));
        if (residual) NC_DNNL_CHECK("convolution post-ops", dnnl_post_ops_append_sum(post, 1.0f));
        if (relu)
            NC_DNNL_CHECK("convolution post-ops",
                          dnnl_post_ops_append_eltwise(post, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
        NC_CHECK(conv_make_fwd(s, c, d, &m, has_bias, dnnl_forward_inference, post));
    }
    const void *bias = b;
    if (bn) {
        const size_t K = (size_t)d->k, per = (size_t)(d->c / d->groups * d->r * d->s);
        if (!weights_current(weights_of(c, own), d, w)) {
            float *fw;
            NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DW, K * per * sizeof(float), (void **)&fw));
            if (!c->bbuf) {
                c->bbuf = nc__alloc(s->ctx, K * sizeof(float));
                if (!c->bbuf) {
                    st = nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: out of memory for a folded bias");
                    goto fail;
                }
            }
            const float *g = bn->gamma, *be = bn->beta, *mu = bn->mean, *var = bn->var, *wf = w, *bf = b;
            for (size_t k = 0; k < K; k++) {
                const double scale = (double)g[k] / sqrt((double)var[k] + (double)bn->eps);
                for (size_t i = 0; i < per; i++) fw[k * per + i] = (float)((double)wf[k * per + i] * scale);
                c->bbuf[k] = (float)(((bf ? (double)bf[k] : 0.0) - (double)mu[k]) * scale + (double)be[k]);
            }
            NC_CHECK(conv_weights(s, c, d, &m, fw, w, 1, own, &bw));
        }
        bias = c->bbuf;
    } else {
        NC_CHECK(conv_bias(s, c, d, b, &bias));
    }
    NC_CHECK(conv_weights(s, c, d, &m, w, w, 0, own, &bw)); /* with bn: the folded copy just made or cached */
    if (own != OWN_NONE)
        st = own_forward(s, d, own, y, x, bw, bias, residual, relu);
    else
        st = fused_exec(s, c, &m, y, x, bw, bias, residual);
fail:
    if (post) dnnl_post_ops_destroy(post);
    return st;
}

/* Where a backward primitive writes a gradient of activation layout `act` that must
 * end in dx: dx itself when its mode is SET and the layouts agree, else scratch
 * (then grad_finish reorders and, for ADD, adds it). */
static nc_status grad_buffer(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *prim,
                             const dnnl_memory_desc_t *act, void *dx, nc__write mode, void **out) {
    nc_status st;
    void *tmp = dx;
    if (!writes_whole(mode)) NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DX, dnnl_memory_desc_get_size(act), &tmp));
    NC_CHECK(nc__dnnl_out_buffer(s, c, k, prim, act, tmp, DN_SCR_B2, out));
fail:
    return st;
}

static nc_status grad_finish(dn_state *s, dn_cache *c, int k, const dnnl_memory_desc_t *prim,
                             const dnnl_memory_desc_t *act, const void *buf, void *dx, nc__write mode) {
    nc_status st;
    void *tmp = dx;
    if (!writes_whole(mode)) tmp = s->scr[DN_SCR_DX];
    NC_CHECK(nc__dnnl_reorder_out(s, c, k, prim, act, buf, tmp));
    if (!writes_whole(mode)) add_value(s, act->data_type == dnnl_bf16 ? NC__DTYPE_BF16 : NC__DTYPE_F32, dx, tmp,
                                       dnnl_memory_desc_get_size(act));
fail:
    return st;
}

nc_status nc__dnnl_conv2d_backward(void *state, const nc__conv_desc *d, void *dx, void *dw, void *db,
                                   const void *dy, const void *x, const void *w) {
    dn_state *s = state;
    nc_status st;
    dn_cache *c;
    conv_mds m;
    const int has_bias = db != NULL;
    NC_CHECK(conv_prepare(s, d, OP_CONV, has_bias, &c, &m));
    if (use_gconv(s, d)) {
        if (dx) {
            void *bw; /* the forward's packed weights (backward follows its forward) */
            if (c->w.ready && c->w.src == w)
                bw = c->w.buf;
            else
                NC_CHECK(conv_weights(s, c, d, &m, w, w, 1, OWN_GCONV, &bw));
            nc__gconv_backward_data(s->nt, d, s->block, dx, dy, bw, d->dx_write);
        }
        if (dw || db) {
            float *tw = dw;
            if (!tw) /* bias gradient only: the weights' goes to scratch */
                NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DW, (size_t)(d->k * (d->c / d->groups) * d->r * d->s) * sizeof(float),
                                          (void **)&tw));
            nc__gconv_backward_weights(s->nt, d, s->block, tw, db, dy, x);
        }
        return NC_OK;
    }
    NC_CHECK(conv_make_fwd(s, c, d, &m, has_bias, dnnl_forward_training, NULL));
    if (dx) {
        NC_CHECK(conv_make(s, c, d, &m, CONV_BWD_DATA, dnnl_backward_data, 0, NULL, "convolution backward data"));
        const dnnl_memory_desc_t *ddst = pd_md(c, CONV_BWD_DATA, dnnl_query_diff_dst_md);
        const dnnl_memory_desc_t *wei = pd_md(c, CONV_BWD_DATA, dnnl_query_weights_md);
        const dnnl_memory_desc_t *dsrc = pd_md(c, CONV_BWD_DATA, dnnl_query_diff_src_md);
        void *bdy, *bw, *bdx;
        NC_CHECK(nc__dnnl_reorder_in(s, c, R_BD_DDST, &m.dst, ddst, dy, DN_SCR_B0, &bdy));
        /* the forward's reordered weights when the layouts agree (made here, once
         * per parameter version, when the forward ran winograd.c) */
        if (dnnl_memory_desc_equal(wei, pd_md(c, CONV_FWD, dnnl_query_weights_md)))
            NC_CHECK(conv_weights(s, c, d, &m, w, w, 0, OWN_NONE, &bw));
        else
            NC_CHECK(nc__dnnl_reorder_in(s, c, R_BD_WEI, &m.wei, wei, w, DN_SCR_B1, &bw));
        NC_CHECK(grad_buffer(s, c, R_BD_DSRC, dsrc, &m.src, dx, d->dx_write, &bdx));
        const dn_arg args[] = {{DNNL_ARG_DIFF_DST, ddst, bdy}, {DNNL_ARG_WEIGHTS, wei, bw},
                               {DNNL_ARG_DIFF_SRC, dsrc, bdx}};
        NC_CHECK(nc__dnnl_exec(s, c, CONV_BWD_DATA, 3, args, "convolution backward data"));
        NC_CHECK(grad_finish(s, c, R_BD_DSRC, dsrc, &m.src, bdx, dx, d->dx_write));
    }
    if (dw || db) {
        NC_CHECK(conv_make(s, c, d, &m, CONV_BWD_WEIGHTS, dnnl_backward_weights, has_bias, NULL,
                           "convolution backward weights"));
        const dnnl_memory_desc_t *src = pd_md(c, CONV_BWD_WEIGHTS, dnnl_query_src_md);
        const dnnl_memory_desc_t *ddst = pd_md(c, CONV_BWD_WEIGHTS, dnnl_query_diff_dst_md);
        const dnnl_memory_desc_t *dwei = pd_md(c, CONV_BWD_WEIGHTS, dnnl_query_diff_weights_md);
        const size_t wcount = (size_t)(d->k * (d->c / d->groups) * d->r * d->s);
        void *tw, *tb = NULL, *bx, *bdy, *bdw;
        NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DW, wcount * sizeof(float), &tw));
        if (has_bias) NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DB, (size_t)d->k * sizeof(float), &tb));
        NC_CHECK(nc__dnnl_reorder_in(s, c, R_BW_SRC, &m.src, src, x, DN_SCR_B0, &bx));
        NC_CHECK(nc__dnnl_reorder_in(s, c, R_BW_DDST, &m.dst, ddst, dy, DN_SCR_B2, &bdy));
        NC_CHECK(nc__dnnl_out_buffer(s, c, R_BW_DWEI, dwei, &m.wei, tw, DN_SCR_B1, &bdw));
        const dn_arg args[] = {{DNNL_ARG_SRC, src, bx}, {DNNL_ARG_DIFF_DST, ddst, bdy},
                               {DNNL_ARG_DIFF_WEIGHTS, dwei, bdw}, {DNNL_ARG_DIFF_BIAS, &m.bias, tb}};
        NC_CHECK(nc__dnnl_exec(s, c, CONV_BWD_WEIGHTS, has_bias ? 4 : 3, args, "convolution backward weights"));
        NC_CHECK(nc__dnnl_reorder_out(s, c, R_BW_DWEI, dwei, &m.wei, bdw, tw));
        add_into(s, dw, tw, wcount);
        if (has_bias) add_into(s, db, tb, (size_t)d->k);
    }
fail:
    return st;
}

/* ------------------------------------------------------- batch normalisation */

enum { BN_FWD_TRAIN = 0, BN_BWD, BN_FWD_INFER };
#define BN_FLAGS ((unsigned)dnnl_use_scale | (unsigned)dnnl_use_shift)

/* data: (N, C, HW, 1) in the activation layout (the same memory as (N, C, H, W))
 * for BatchNorm2d, plain (N, C, 1, 1) for BatchNorm1d. */
static nc_status bn_prepare(dn_state *s, const nc__bn_desc *d, int relu, dn_cache **out, dnnl_memory_desc_t *data,
                            dnnl_memory_desc_t *chan) {
    nc_status st;
    int64_t eps_bits = 0;
    memcpy(&eps_bits, &d->eps, sizeof d->eps);
    const int64_t key[7] = {d->n, d->c, d->hw, eps_bits, d->rank, relu, d->dtype};
    NC_CHECK(nc__dnnl_cache_get(s, (void **)d->cache, OP_BN, key, 7, out));
    const int64_t dims[4] = {d->n, d->c, d->hw, 1}, cd[1] = {d->c};
    NC_CHECK(d->rank == 4 ? nc__dnnl_act_md_dt(s, data, 4, dims, d->dtype, "batch norm data")
                          : nc__dnnl_md_dt(s, data, 4, dims, d->dtype, "batch norm data"));
    NC_CHECK(nc__dnnl_md(s, chan, 1, cd, "batch norm statistics"));
fail:
    return st;
}

static unsigned bn_flags(int relu) { return BN_FLAGS | (relu ? (unsigned)dnnl_fuse_norm_relu : 0u); }

static nc_status bn_make_train(dn_state *s, dn_cache *c, const dnnl_memory_desc_t *data, float eps, int relu) {
    nc_status st = NC_OK;
    if (c->prim[BN_FWD_TRAIN]) return NC_OK;
    dnnl_batch_normalization_desc_t od;
    NC_DNNL_CHECK("batch norm forward",
                  dnnl_batch_normalization_forward_desc_init(&od, dnnl_forward_training, data, eps, bn_flags(relu)));
    NC_CHECK(nc__dnnl_make(s, c, BN_FWD_TRAIN, &od, NULL, 0, "batch norm forward"));
fail:
    return st;
}

static nc_status bn_forward_train(dn_state *s, const nc__bn_desc *d, int relu, void *y, void *save_mean,
                                  void *save_invstd, void *running_mean, void *running_var, const void *x,
                                  const void *gamma, const void *beta) {
    // y, x (N, C, HW); save_mean, save_invstd, running_mean, running_var, gamma, beta (C)
    nc_status st;
    dn_cache *c;
    dnnl_memory_desc_t data, chan;
    NC_CHECK(bn_prepare(s, d, relu, &c, &data, &chan));
    NC_CHECK(bn_make_train(s, c, &data, d->eps, relu));
    const size_t C = (size_t)d->c;
    float *stat; /* (C) batch mean, (C) biased variance */
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_STAT, 2 * C * sizeof(float), (void **)&stat));
    float *mean = stat, *var = stat + C;
    const dnnl_memory_desc_t *ws_md = pd_md(c, BN_FWD_TRAIN, dnnl_query_workspace_md);
    const int has_ws = relu && ws_md && dnnl_memory_desc_get_size(ws_md) > 0;
    if (has_ws) NC_CHECK(nc__dnnl_cache_buffer(s, &c->ws, &c->ws_bytes, dnnl_memory_desc_get_size(ws_md)));
    const dn_arg args[] = {{DNNL_ARG_SRC, &data, (void *)x},        {DNNL_ARG_DST, &data, y},
                           {DNNL_ARG_SCALE, &chan, (void *)gamma},  {DNNL_ARG_SHIFT, &chan, (void *)beta},
                           {DNNL_ARG_MEAN, &chan, mean},            {DNNL_ARG_VARIANCE, &chan, var},
                           {DNNL_ARG_WORKSPACE, ws_md, c->ws}};
    NC_CHECK(nc__dnnl_exec(s, c, BN_FWD_TRAIN, has_ws ? 7 : 6, args, "batch norm forward"));
    /* PyTorch's bookkeeping: saved mean and 1/sqrt(var+eps); running stats with the
     * unbiased variance, as the ref kernel */
    const double count = (double)d->n * (double)d->hw, m = (double)d->momentum;
    float *sm = save_mean, *si = save_invstd, *rm = running_mean, *rv = running_var;
    for (size_t ch = 0; ch < C; ch++) {
        const double mu = mean[ch], v = var[ch];
        if (sm) sm[ch] = (float)mu;
        if (si) si[ch] = (float)(1.0 / sqrt(v + (double)d->eps));
        if (rm) rm[ch] = (float)((1.0 - m) * rm[ch] + m * mu);
        if (rv) {
            const double unbiased = count > 1 ? v * count / (count - 1.0) : v;
            rv[ch] = (float)((1.0 - m) * rv[ch] + m * unbiased);
        }
    }
fail:
    return st;
}

nc_status nc__dnnl_bn_forward_train(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                    void *save_invstd, void *running_mean, void *running_var, const void *x,
                                    const void *gamma, const void *beta) {
    return bn_forward_train(state, d, 0, y, save_mean, save_invstd, running_mean, running_var, x, gamma, beta);
}

nc_status nc__dnnl_bn_relu_forward_train(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                         void *save_invstd, void *running_mean, void *running_var, const void *x,
                                         const void *gamma, const void *beta) {
    return bn_forward_train(state, d, 1, y, save_mean, save_invstd, running_mean, running_var, x, gamma, beta);
}

nc_status nc__dnnl_bn_forward_infer(void *state, const nc__bn_desc *d, void *y, const void *x,
                                    const void *gamma, const void *beta, const void *running_mean,
                                    const void *running_var) {
    dn_state *s = state;
    nc_status st;
    dn_cache *c;
    dnnl_memory_desc_t data, chan;
    NC_CHECK(bn_prepare(s, d, 0, &c, &data, &chan));
    if (!c->prim[BN_FWD_INFER]) {
        dnnl_batch_normalization_desc_t od;
        NC_DNNL_CHECK("batch norm inference",
                      dnnl_batch_normalization_forward_desc_init(&od, dnnl_forward_inference, &data, d->eps,
                                                                 BN_FLAGS | (unsigned)dnnl_use_global_stats));
        NC_CHECK(nc__dnnl_make(s, c, BN_FWD_INFER, &od, NULL, 0, "batch norm inference"));
    }
    const dn_arg args[] = {{DNNL_ARG_SRC, &data, (void *)x}, {DNNL_ARG_DST, &data, y},
                           {DNNL_ARG_SCALE, &chan, (void *)gamma}, {DNNL_ARG_SHIFT, &chan, (void *)beta},
                           {DNNL_ARG_MEAN, &chan, (void *)running_mean},
                           {DNNL_ARG_VARIANCE, &chan, (void *)running_var}};
    NC_CHECK(nc__dnnl_exec(s, c, BN_FWD_INFER, 6, args, "batch norm inference"));
fail:
    return st;
}

static nc_status bn_backward(dn_state *s, const nc__bn_desc *d, int relu, void *dx, void *dgamma, void *dbeta,
                             const void *dy, const void *x, const void *gamma, const void *save_mean,
                             const void *save_invstd) {
    // dx (N, C, HW) or NULL, dgamma, dbeta (C) accumulated; dy, x (N, C, HW)
    nc_status st;
    dn_cache *c;
    dnnl_memory_desc_t data, chan;
    NC_CHECK(bn_prepare(s, d, relu, &c, &data, &chan));
    NC_CHECK(bn_make_train(s, c, &data, d->eps, relu));
    if (!c->prim[BN_BWD]) {
        dnnl_batch_normalization_desc_t od;
        NC_DNNL_CHECK("batch norm backward",
                      dnnl_batch_normalization_backward_desc_init(&od, dnnl_backward, &data, &data, d->eps,
                                                                  bn_flags(relu)));
        NC_CHECK(nc__dnnl_make(s, c, BN_BWD, &od, c->pd[BN_FWD_TRAIN], 0, "batch norm backward"));
    }
    const dnnl_memory_desc_t *ws_md = pd_md(c, BN_BWD, dnnl_query_workspace_md);
    const int has_ws = relu && ws_md && dnnl_memory_desc_get_size(ws_md) > 0;
    if (has_ws && !c->ws)
        return nc__error(s->ctx, NC_ERR_STATE, "internal: batch norm + ReLU backward without its forward");
    const size_t C = (size_t)d->c, bytes = dnnl_memory_desc_get_size(&data);
    float *stat, *tdx = dx; /* stat: (C) variance, (C) dgamma, (C) dbeta, (C) zeros */
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_STAT, 4 * C * sizeof(float), (void **)&stat));
    /* oneDNN 2.6 counts SHIFT among backward's inputs when use_shift is set, though
     * the gradients do not depend on it: zeros */
    memset(stat + 3 * C, 0, C * sizeof(float));
    if (!dx || !writes_whole(d->dx_write)) NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DX, bytes, (void **)&tdx));
    const float *invstd = save_invstd;
    for (size_t ch = 0; ch < C; ch++) /* the variance the forward normalised with */
        stat[ch] = (float)(1.0 / ((double)invstd[ch] * (double)invstd[ch]) - (double)d->eps);
    const dn_arg args[] = {{DNNL_ARG_SRC, &data, (void *)x},           {DNNL_ARG_DIFF_DST, &data, (void *)dy},
                           {DNNL_ARG_MEAN, &chan, (void *)save_mean},  {DNNL_ARG_VARIANCE, &chan, stat},
                           {DNNL_ARG_SCALE, &chan, (void *)gamma},     {DNNL_ARG_DIFF_SRC, &data, tdx},
                           {DNNL_ARG_DIFF_SCALE, &chan, stat + C},     {DNNL_ARG_DIFF_SHIFT, &chan, stat + 2 * C},
                           {DNNL_ARG_SHIFT, &chan, stat + 3 * C},      {DNNL_ARG_WORKSPACE, ws_md, c->ws}};
    NC_CHECK(nc__dnnl_exec(s, c, BN_BWD, has_ws ? 10 : 9, args, "batch norm backward"));
    if (dx && tdx != dx) add_value(s, d->dtype, dx, tdx, bytes);
    add_into(s, dgamma, stat + C, C);
    add_into(s, dbeta, stat + 2 * C, C);
fail:
    return st;
}

nc_status nc__dnnl_bn_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                               const void *dy, const void *x, const void *gamma, const void *save_mean,
                               const void *save_invstd) {
    return bn_backward(state, d, 0, dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd);
}

nc_status nc__dnnl_bn_relu_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                    const void *dy, const void *y, const void *x, const void *gamma,
                                    const void *save_mean, const void *save_invstd) {
    (void)y; /* oneDNN keeps the ReLU mask from the forward (workspace) */
    return bn_backward(state, d, 1, dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd);
}

/* --------------------------------------------- synchronised batch norm (f32) */

/* The ref kernels on this backend's layout (blocked for 4-D values with enough
 * channels): f32 only (dn_supports). Padding channels of y and of a SET dx are 0. */
static int bn_block(const dn_state *s, const nc__bn_desc *d, size_t *floats) {
    const int64_t dims[4] = {d->n, d->c, d->hw, 1};
    const int block = d->rank == 4 ? nc__dnnl_act_block(s, 4, dims) : 1;
    const size_t B = (size_t)block, cp = ((size_t)d->c + B - 1) / B * B;
    *floats = (size_t)d->n * cp * (size_t)d->hw;
    return block;
}

nc_status nc__dnnl_bn_sync_sums(void *state, const nc__bn_desc *d, double *sums, const void *x, const double *mean) {
    size_t floats;
    const int block = bn_block((const dn_state *)state, d, &floats);
    nc__ref_bn_sync_sums(((dn_state *)state)->nt, d, block, sums, x, mean);
    return NC_OK;
}

nc_status nc__dnnl_bn_sync_forward(void *state, const nc__bn_desc *d, int relu, void *y, void *save_mean,
                                   void *save_invstd, void *running_mean, void *running_var, const void *x,
                                   const void *gamma, const void *beta, const double *stats, double count) {
    size_t floats;
    const int block = bn_block((const dn_state *)state, d, &floats);
    if (d->c % block) memset(y, 0, floats * sizeof(float));
    nc__ref_bn_sync_forward(((dn_state *)state)->nt, d, block, relu, y, save_mean, save_invstd, running_mean, running_var, x,
                            gamma, beta, stats, count);
    return NC_OK;
}

nc_status nc__dnnl_bn_sync_backward_sums(void *state, const nc__bn_desc *d, double *sums, const void *dy,
                                         const void *y, const void *x, const void *save_mean,
                                         const void *save_invstd) {
    size_t floats;
    const int block = bn_block((const dn_state *)state, d, &floats);
    nc__ref_bn_sync_backward_sums(((dn_state *)state)->nt, d, block, sums, dy, y, x, save_mean, save_invstd);
    return NC_OK;
}

nc_status nc__dnnl_bn_sync_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                    const void *dy, const void *y, const void *x, const void *gamma,
                                    const void *save_mean, const void *save_invstd, const double *sums,
                                    double count) {
    size_t floats;
    const int block = bn_block((const dn_state *)state, d, &floats);
    if (dx && writes_whole(d->dx_write)) memset(dx, 0, floats * sizeof(float));
    nc__ref_bn_sync_backward(((dn_state *)state)->nt, d, block, dx, dgamma, dbeta, dy, y, x, gamma, save_mean, save_invstd,
                             sums, count);
    return NC_OK;
}

/* -------------------------------------------------------------------- pooling */

/* Slots: the primitives on the values' dtype; for bf16 backward that would round
 * twice (bf16_sums_twice), f32 twins on widened copies and their reorders. */
enum { POOL_FWD_INFER = 0, POOL_FWD_TRAIN, POOL_BWD, POOL_FWD_TRAIN32, POOL_BWD32, R_POOL_DY32,
       R_POOL_DX32, R_POOL_DX_OUT };

typedef struct pool_mds {
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t strides, kernel, dil, pad;
    dnnl_alg_kind_t alg;
} pool_mds;

static nc_status pool_prepare(dn_state *s, const nc__pool_desc *d, dn_cache **out, pool_mds *m) {
    nc_status st;
    const int64_t key[14] = {d->mode, d->n,  d->c,        d->h,        d->w,     d->oh,   d->ow,
                             d->kh,   d->kw, d->stride_h, d->stride_w, d->pad_h, d->pad_w, d->dtype};
    NC_CHECK(nc__dnnl_cache_get(s, (void **)d->cache, OP_POOL, key, 14, out));
    const int64_t src[4] = {d->n, d->c, d->h, d->w}, dst[4] = {d->n, d->c, d->oh, d->ow};
    NC_CHECK(nc__dnnl_act_md_dt(s, &m->src, 4, src, d->dtype, "pooling source"));
    NC_CHECK(nc__dnnl_act_md_dt(s, &m->dst, 4, dst, d->dtype, "pooling destination"));
    m->dil[0] = m->dil[1] = 0;
    if (d->mode == NC__POOL_ADAPTIVE_AVG) {
        /* uniform bins (H % OH == 0) are an ordinary average pooling */
        if (d->h % d->oh || d->w % d->ow) {
            (*out)->fallback = 1;
            return NC_OK;
        }
        m->kernel[0] = m->strides[0] = d->h / d->oh;
        m->kernel[1] = m->strides[1] = d->w / d->ow;
        m->pad[0] = m->pad[1] = 0;
        m->alg = dnnl_pooling_avg_exclude_padding;
    } else {
        m->kernel[0] = d->kh;
        m->kernel[1] = d->kw;
        m->strides[0] = d->stride_h;
        m->strides[1] = d->stride_w;
        m->pad[0] = d->pad_h;
        m->pad[1] = d->pad_w;
        /* PyTorch counts padding in the divisor and, in floor mode, never lets a window
         * pass the padded edge: always kh*kw, oneDNN's include_padding */
        m->alg = d->mode == NC__POOL_MAX ? dnnl_pooling_max : dnnl_pooling_avg_include_padding;
    }
fail:
    return st;
}

static nc_status pool_make_fwd(dn_state *s, dn_cache *c, const pool_mds *m, int k) {
    nc_status st = NC_OK;
    if (c->prim[k]) return NC_OK;
    dnnl_pooling_v2_desc_t od;
    NC_DNNL_CHECK("pooling forward",
                  dnnl_pooling_v2_forward_desc_init(&od, k == POOL_FWD_INFER ? dnnl_forward_inference
                                                                             : dnnl_forward_training,
                                                    m->alg, &m->src, &m->dst, m->strides, m->kernel, m->dil,
                                                    m->pad, m->pad));
    NC_CHECK(nc__dnnl_make(s, c, k, &od, NULL, 0, "pooling forward"));
fail:
    return st;
}

/* The ref kernels on plain f32 copies (the reorders widen bf16 values and round the
 * result): adaptive pooling with non-uniform bins, which oneDNN cannot express
 * (rare: a head on an odd-sized map). */
static nc_status pool_fallback_forward(dn_state *s, const nc__pool_desc *d, const pool_mds *m, void *y,
                                       const void *x) {
    nc_status st;
    void *px, *py;
    dnnl_memory_desc_t plain_x, plain_y;
    const int64_t src[4] = {d->n, d->c, d->h, d->w}, dst[4] = {d->n, d->c, d->oh, d->ow};
    NC_CHECK(nc__dnnl_md(s, &plain_x, 4, src, "pooling source"));
    NC_CHECK(nc__dnnl_md(s, &plain_y, 4, dst, "pooling destination"));
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B0, dnnl_memory_desc_get_size(&plain_x), &px));
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B1, dnnl_memory_desc_get_size(&plain_y), &py));
    NC_CHECK(nc__dnnl_reorder_once(s, &m->src, x, &plain_x, px));
    nc__ref_pool2d_forward(s->nt, d, py, px);
    NC_CHECK(nc__dnnl_reorder_once(s, &plain_y, py, &m->dst, y));
fail:
    return st;
}

/* Backward by the ref kernel on plain f32 copies, accumulating into the widened dx
 * under NC__WRITE_ADD (zeros under SET) and writing it back once (one rounding for
 * bf16, as ref): the fallback above. */
static nc_status pool_ref_backward(dn_state *s, const nc__pool_desc *d, const pool_mds *m, void *dx,
                                   const void *dy, const void *x) {
    nc_status st;
    void *pdy, *pdx, *px = NULL;
    dnnl_memory_desc_t plain_x, plain_y;
    const int64_t src[4] = {d->n, d->c, d->h, d->w}, dst[4] = {d->n, d->c, d->oh, d->ow};
    NC_CHECK(nc__dnnl_md(s, &plain_x, 4, src, "pooling source"));
    NC_CHECK(nc__dnnl_md(s, &plain_y, 4, dst, "pooling destination"));
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B0, dnnl_memory_desc_get_size(&plain_y), &pdy));
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B1, dnnl_memory_desc_get_size(&plain_x), &pdx));
    NC_CHECK(nc__dnnl_reorder_once(s, &m->dst, dy, &plain_y, pdy));
    if (d->mode == NC__POOL_MAX) {
        NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DW, dnnl_memory_desc_get_size(&plain_x), &px));
        NC_CHECK(nc__dnnl_reorder_once(s, &m->src, x, &plain_x, px));
    }
    if (writes_whole(d->dx_write))
        memset(pdx, 0, dnnl_memory_desc_get_size(&plain_x));
    else
        NC_CHECK(nc__dnnl_reorder_once(s, &m->src, dx, &plain_x, pdx));
    nc__ref_pool2d_backward(s->nt, d, pdx, pdy, px, NULL);
    NC_CHECK(nc__dnnl_reorder_once(s, &plain_x, pdx, &m->src, dx));
fail:
    return st;
}

/* 1 when a bf16 primitive would round a dx element more than once where ref rounds
 * once: a gradient added into (ADD), or overlapping windows, whose contributions
 * oneDNN 2.6's bf16 kernels sum in bf16 on the blocked layout. Those run
 * pool_bf16_backward (bf16 max pooling has its own kernel, maxpool_bf16.c). */
static int bf16_sums_twice(const nc__pool_desc *d, const pool_mds *m) {
    return !writes_whole(d->dx_write) || m->kernel[0] > m->strides[0] || m->kernel[1] > m->strides[1];
}

nc_status nc__dnnl_pool2d_forward(void *state, const nc__pool_desc *d, void *y, const void *x) {
    dn_state *s = state;
    nc_status st;
    dn_cache *c;
    pool_mds m;
    NC_CHECK(pool_prepare(s, d, &c, &m));
    if (c->fallback) return pool_fallback_forward(s, d, &m, y, x);
    NC_CHECK(pool_make_fwd(s, c, &m, POOL_FWD_INFER));
    const dn_arg args[] = {{DNNL_ARG_SRC, &m.src, (void *)x}, {DNNL_ARG_DST, &m.dst, y}};
    NC_CHECK(nc__dnnl_exec(s, c, POOL_FWD_INFER, 2, args, "pooling forward"));
fail:
    return st;
}

/* Backward with primitives k_fwd / k_bwd on m's layouts and dtype, diff_src written
 * whole into out; max pooling recomputes its workspace from x. */
static nc_status pool_prim_backward(dn_state *s, const nc__pool_desc *d, dn_cache *c, const pool_mds *m,
                                    int k_fwd, int k_bwd, void *out, const void *dy, const void *x) {
    nc_status st;
    NC_CHECK(pool_make_fwd(s, c, m, k_fwd));
    if (!c->prim[k_bwd]) {
        dnnl_pooling_v2_desc_t od;
        NC_DNNL_CHECK("pooling backward",
                      dnnl_pooling_v2_backward_desc_init(&od, m->alg, &m->src, &m->dst, m->strides, m->kernel,
                                                         m->dil, m->pad, m->pad));
        NC_CHECK(nc__dnnl_make(s, c, k_bwd, &od, c->pd[k_fwd], 0, "pooling backward"));
    }
    void *ws = NULL;
    const dnnl_memory_desc_t *ws_md = dnnl_primitive_desc_query_md(c->pd[k_fwd], dnnl_query_workspace_md, 0);
    const int has_ws = d->mode == NC__POOL_MAX && ws_md && dnnl_memory_desc_get_size(ws_md) > 0;
    if (has_ws) {
        /* The max positions: recomputed here (one cheap forward) rather than kept from
         * the forward pass, so backward never depends on a stale workspace. */
        void *ty;
        NC_CHECK(nc__dnnl_scratch(s, DN_SCR_WS, dnnl_memory_desc_get_size(ws_md), &ws));
        NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DW, dnnl_memory_desc_get_size(&m->dst), &ty));
        const dn_arg fa[] = {{DNNL_ARG_SRC, &m->src, (void *)x}, {DNNL_ARG_DST, &m->dst, ty},
                             {DNNL_ARG_WORKSPACE, ws_md, ws}};
        NC_CHECK(nc__dnnl_exec(s, c, k_fwd, 3, fa, "pooling forward (workspace)"));
    }
    const dn_arg args[] = {{DNNL_ARG_DIFF_DST, &m->dst, (void *)dy}, {DNNL_ARG_DIFF_SRC, &m->src, out},
                           {DNNL_ARG_WORKSPACE, ws_md, ws}};
    NC_CHECK(nc__dnnl_exec(s, c, k_bwd, has_ws ? 3 : 2, args, "pooling backward"));
fail:
    return st;
}

/* bf16 average-pooling backward that a bf16 primitive would round twice: f32
 * primitives on widened dy, the f32 gradient added to the widened dx under ADD,
 * rounded once (bf16 max pooling has maxpool_bf16.c). */
static nc_status pool_bf16_backward(dn_state *s, const nc__pool_desc *d, dn_cache *c, const pool_mds *m,
                                    void *dx, const void *dy) {
    nc_status st;
    pool_mds m32 = *m;
    void *dy32, *dx32, *acc;
    const int64_t src[4] = {d->n, d->c, d->h, d->w}, dst[4] = {d->n, d->c, d->oh, d->ow};
    NC_CHECK(nc__dnnl_act_md(s, &m32.src, 4, src, "pooling source"));
    NC_CHECK(nc__dnnl_act_md(s, &m32.dst, 4, dst, "pooling destination"));
    NC_CHECK(nc__dnnl_reorder_in(s, c, R_POOL_DY32, &m->dst, &m32.dst, dy, DN_SCR_B1, &dy32));
    const size_t bytes = dnnl_memory_desc_get_size(&m32.src);
    NC_CHECK(nc__dnnl_scratch(s, DN_SCR_B2, bytes, &dx32));
    NC_CHECK(pool_prim_backward(s, d, c, &m32, POOL_FWD_TRAIN32, POOL_BWD32, dx32, dy32, NULL));
    acc = dx32;
    if (!writes_whole(d->dx_write)) {
        NC_CHECK(nc__dnnl_reorder_in(s, c, R_POOL_DX32, &m->src, &m32.src, dx, DN_SCR_DX, &acc));
        add_into(s, acc, dx32, bytes / sizeof(float));
    }
    NC_CHECK(nc__dnnl_reorder_to(s, c, R_POOL_DX_OUT, &m32.src, &m->src, acc, dx));
fail:
    return st;
}

nc_status nc__dnnl_pool2d_backward(void *state, const nc__pool_desc *d, void *dx, const void *dy, const void *x,
                                   const void *y) {
    // dx (N, C, H, W) accumulated; dy (N, C, OH, OW); x only for max
    dn_state *s = state;
    nc_status st;
    dn_cache *c;
    pool_mds m;
    (void)y;
    NC_CHECK(pool_prepare(s, d, &c, &m));
    if (c->fallback) return pool_ref_backward(s, d, &m, dx, dy, x);
    if (nc__dnnl_maxpool_bf16_fits(s, d)) return dx ? nc__dnnl_maxpool_bf16_backward(s, d, dx, dy, x) : NC_OK;
    if (d->dtype == NC__DTYPE_BF16 && bf16_sums_twice(d, &m)) return pool_bf16_backward(s, d, c, &m, dx, dy);
    const size_t bytes = dnnl_memory_desc_get_size(&m.src);
    void *tdx = dx;
    if (!writes_whole(d->dx_write)) NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DX, bytes, &tdx));
    NC_CHECK(pool_prim_backward(s, d, c, &m, POOL_FWD_TRAIN, POOL_BWD, tdx, dy, x));
    if (tdx != dx) add_value(s, d->dtype, dx, tdx, bytes);
fail:
    return st;
}

/* ------------------------------------------------------------- inner product */

enum { IP_FWD = 0, IP_BWD_DATA, IP_BWD_WEIGHTS };

/* src, dst: the values' dtype; wei: the weights as the primitives read them (bf16
 * for bf16 values), master: the f32 weights and their gradient; bias f32. */
typedef struct ip_mds {
    dnnl_memory_desc_t src, wei, master, bias, dst;
} ip_mds;

static nc_status ip_prepare(dn_state *s, const nc__linear_desc *d, int has_bias, dn_cache **out, ip_mds *m) {
    nc_status st = NC_OK;
    const int64_t key[5] = {d->n, d->in, d->out, has_bias, d->dtype};
    NC_CHECK(nc__dnnl_cache_get(s, (void **)d->cache, OP_LINEAR, key, 5, out));
    const int64_t src[2] = {d->n, d->in}, wei[2] = {d->out, d->in}, dst[2] = {d->n, d->out}, b[1] = {d->out};
    NC_CHECK(nc__dnnl_md_dt(s, &m->src, 2, src, d->dtype, "inner product source"));
    NC_CHECK(nc__dnnl_md_dt(s, &m->wei, 2, wei, d->dtype, "inner product weights"));
    NC_CHECK(nc__dnnl_md(s, &m->master, 2, wei, "inner product weights"));
    NC_CHECK(nc__dnnl_md_dt(s, &m->dst, 2, dst, d->dtype, "inner product destination"));
    NC_CHECK(nc__dnnl_md(s, &m->bias, 1, b, "inner product bias"));
    if (!(*out)->prim[IP_FWD]) {
        dnnl_inner_product_desc_t od;
        NC_DNNL_CHECK("inner product forward",
                      dnnl_inner_product_forward_desc_init(&od, dnnl_forward_training, &m->src, &m->wei,
                                                           has_bias ? &m->bias : NULL, &m->dst));
        NC_CHECK(nc__dnnl_make(s, *out, IP_FWD, &od, NULL, 1, "inner product forward"));
    }
fail:
    return st;
}

/* The weights (and bias) the primitives read: the f32 masters themselves, or for
 * bf16 values their bf16 copy (and the bias rounded to bf16, as autocast and ref do),
 * made by reorder and kept in the cache while the parameter version and buffer stay
 * (backend.h, DTYPE POLICY). */
static nc_status ip_weights(dn_state *s, dn_cache *c, const nc__linear_desc *d, const ip_mds *m, const void *w,
                            const void *b, const void **wout, const void **bout) {
    nc_status st = NC_OK;
    *wout = w;
    *bout = b;
    if (d->dtype == NC__DTYPE_F32) return NC_OK;
    if (!(c->w.ready && c->w.ver == d->wversion && c->w.src == w)) {
        c->w.ready = 0;
        NC_CHECK(nc__dnnl_cache_buffer(s, &c->w.buf, &c->w.bytes, dnnl_memory_desc_get_size(&m->wei)));
        NC_CHECK(nc__dnnl_reorder_once(s, &m->master, w, &m->wei, c->w.buf));
        if (b) {
            if (!c->bbuf) c->bbuf = nc__alloc(s->ctx, (size_t)d->out * sizeof(float));
            if (!c->bbuf)
                return nc__error(s->ctx, NC_ERR_OUT_OF_MEMORY, "onednn backend: out of memory for a bf16 bias");
            for (int64_t k = 0; k < d->out; k++) c->bbuf[k] = nc__bf16_round(((const float *)b)[k]);
        }
        c->w.ready = 1;
        c->w.ver = d->wversion;
        c->w.src = w;
    }
    *wout = c->w.buf;
    if (b) *bout = c->bbuf;
fail:
    return st;
}

nc_status nc__dnnl_linear_forward(void *state, const nc__linear_desc *d, void *y, const void *x, const void *w,
                                  const void *b) {
    dn_state *s = state;
    nc_status st;
    dn_cache *c;
    ip_mds m;
    const void *bw, *bb;
    NC_CHECK(ip_prepare(s, d, b != NULL, &c, &m));
    NC_CHECK(ip_weights(s, c, d, &m, w, b, &bw, &bb));
    const dn_arg args[] = {{DNNL_ARG_SRC, &m.src, (void *)x}, {DNNL_ARG_WEIGHTS, &m.wei, (void *)bw},
                           {DNNL_ARG_DST, &m.dst, y}, {DNNL_ARG_BIAS, &m.bias, (void *)bb}};
    NC_CHECK(nc__dnnl_exec(s, c, IP_FWD, b ? 4 : 3, args, "inner product forward"));
fail:
    return st;
}

nc_status nc__dnnl_linear_backward(void *state, const nc__linear_desc *d, void *dx, void *dw, void *db,
                                   const void *dy, const void *x, const void *w) {
    dn_state *s = state;
    nc_status st;
    dn_cache *c;
    ip_mds m;
    const int has_bias = db != NULL;
    NC_CHECK(ip_prepare(s, d, has_bias, &c, &m));
    if (dx) {
        if (!c->prim[IP_BWD_DATA]) {
            dnnl_inner_product_desc_t od;
            NC_DNNL_CHECK("inner product backward data",
                          dnnl_inner_product_backward_data_desc_init(&od, &m.src, &m.wei, &m.dst));
            NC_CHECK(nc__dnnl_make(s, c, IP_BWD_DATA, &od, c->pd[IP_FWD], 1, "inner product backward data"));
        }
        const void *bw, *bb;
        NC_CHECK(ip_weights(s, c, d, &m, w, NULL, &bw, &bb));
        const size_t bytes = dnnl_memory_desc_get_size(&m.src);
        void *tmp = dx;
        if (!writes_whole(d->dx_write)) NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DX, bytes, &tmp));
        const dn_arg args[] = {{DNNL_ARG_DIFF_DST, &m.dst, (void *)dy}, {DNNL_ARG_WEIGHTS, &m.wei, (void *)bw},
                               {DNNL_ARG_DIFF_SRC, &m.src, tmp}};
        NC_CHECK(nc__dnnl_exec(s, c, IP_BWD_DATA, 3, args, "inner product backward data"));
        if (tmp != dx) add_value(s, d->dtype, dx, tmp, bytes);
    }
    if (dw || db) {
        if (!c->prim[IP_BWD_WEIGHTS]) {
            dnnl_inner_product_desc_t od;
            NC_DNNL_CHECK("inner product backward weights",
                          dnnl_inner_product_backward_weights_desc_init(&od, &m.src, &m.master,
                                                                        has_bias ? &m.bias : NULL, &m.dst));
            NC_CHECK(nc__dnnl_make(s, c, IP_BWD_WEIGHTS, &od, c->pd[IP_FWD], 1, "inner product backward weights"));
        }
        const size_t wcount = (size_t)(d->out * d->in);
        void *tw, *tb = NULL;
        NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DW, wcount * sizeof(float), &tw));
        if (has_bias) NC_CHECK(nc__dnnl_scratch(s, DN_SCR_DB, (size_t)d->out * sizeof(float), &tb));
        const dn_arg args[] = {{DNNL_ARG_SRC, &m.src, (void *)x}, {DNNL_ARG_DIFF_DST, &m.dst, (void *)dy},
                               {DNNL_ARG_DIFF_WEIGHTS, &m.master, tw}, {DNNL_ARG_DIFF_BIAS, &m.bias, tb}};
        NC_CHECK(nc__dnnl_exec(s, c, IP_BWD_WEIGHTS, has_bias ? 4 : 3, args, "inner product backward weights"));
        add_into(s, dw, tw, wcount);
        if (has_bias) add_into(s, db, tb, (size_t)d->out);
    }
fail:
    return st;
}
