/* test_fusion.c — the plan's fusion and the executor's gradient writes,
 * independently of oneDNN. A copy of the ref backend's table says yes to both fused
 * patterns and gets the three fused entries written here as compositions of the ref
 * entries (conv, then bn inference, add, relu; bn train then relu; relu backward
 * into a temporary then bn backward), so
 * a fused plan must reproduce the plain ref context bit for bit: same kernels, same
 * order of floating-point operations (a + r and r + a are the same IEEE sum). Checked
 * on resnet18, a small resnext, vgg11_bn and a builder CNN with every chain shape:
 * eval logits, a training step (parameters and running statistics), the number of
 * fused groups (hand-counted from torchvision's structures), the arena size, the
 * memory plan's no-overlap property with fused liveness, the GRADIENT WRITE RULE
 * (backend.h) under a NaN-poisoned arena with every write logged, and the parameter
 * version. */
#include "testutil.h"

#include "core/context.h"
#include "core/model.h"
#include "graph/exec.h"
#include "train/loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the test backend */

/* Calls seen by the test tables (tests run one at a time, single-threaded cmocka). */
static struct {
    long fused_infer, bn_relu_fwd, bn_relu_bwd;
    long sets;           /* activation gradients written with NC__WRITE_SET */
} calls;

/* While on, every activation-gradient write of a backward is checked against the
 * GRADIENT WRITE RULE: the first write of a buffer sets it, later ones add. Buffers
 * are told apart by address, so only in a plan without buffer reuse (unshare). */
static struct {
    int on, n;
    const void *seen[4096];
} wlog;

static void wrote(const void *dx, nc__write mode) {
    if (!dx) return;
    calls.sets += mode == NC__WRITE_SET;
    if (!wlog.on) return;
    int seen = 0;
    for (int i = 0; i < wlog.n; i++) seen |= wlog.seen[i] == dx;
    assert_int_equal(mode, seen ? NC__WRITE_ADD : NC__WRITE_SET);
    if (seen) return;
    assert_true(wlog.n < 4096);
    wlog.seen[wlog.n++] = dx;
}

static nc__backend tables[2]; /* [0] logging, [1] logging and fused */

static void *scratch(size_t bytes) {
    void *t = calloc(bytes ? bytes : 1, 1);
    assert_non_null(t);
    return t;
}

static void swap(void **a, void **b) {
    void *t = *a;
    *a = *b;
    *b = t;
}

/* A fused call's output must not share memory with an input it reads (the memory
 * plan keeps the conv input and the residual live until the call). */
static void assert_disjoint(const void *y, size_t ny, const void *x, size_t nx) {
    const char *a = y, *b = x;
    assert_true(a + ny <= b || b + nx <= a);
}

/* The value a batch norm descriptor covers; ref's layout is plain, so (N, C, HW, 1)
 * stands for (N, C, H, W). */
static nc__value_desc bn_value(const nc__bn_desc *d) {
    const nc__shape s = d->rank == 4 ? nc__shape4(d->n, d->c, d->hw, 1) : nc__shape2(d->n, d->c);
    return (nc__value_desc){.shape = s, .dtype = d->dtype};
}

static nc_status bn_infer(void *state, const nc__conv_desc *d, const nc__bn_params *bn, void *y, const void *x) {
    const nc__backend *R = nc__backend_ref();
    void *cache = NULL;
    const nc__bn_desc bd = {.n = d->n, .c = d->k, .hw = d->oh * d->ow, .eps = bn->eps, .momentum = 0.1f, .rank = 4,
                            .dtype = d->dtype, .wversion = d->wversion, .cache = &cache};
    nc_status st = R->batchnorm_forward_infer(state, &bd, y, x, bn->gamma, bn->beta, bn->mean, bn->var);
    if (cache && R->release_cache) R->release_cache(state, cache);
    return st;
}

static nc_status t_conv2d_fused_infer(void *state, const nc__conv_desc *d, const nc__bn_params *bn, void *y,
                                      const void *x, const void *w, const void *b, const void *residual, int relu) {
    const nc__backend *R = nc__backend_ref();
    const nc__value_desc out = {.shape = nc__shape4(d->n, d->k, d->oh, d->ow), .dtype = d->dtype};
    const nc__value_desc in = {.shape = nc__shape4(d->n, d->c, d->h, d->w), .dtype = d->dtype};
    const size_t bytes = R->value_bytes(state, &out);
    void *cur = scratch(bytes), *tmp = scratch(bytes);
    calls.fused_infer++;
    assert_disjoint(y, bytes, x, R->value_bytes(state, &in));
    if (residual) assert_disjoint(y, bytes, residual, bytes);
    nc_status st = R->conv2d_forward(state, d, cur, x, w, b);
    if (st == NC_OK && bn) {
        st = bn_infer(state, d, bn, tmp, cur);
        swap(&cur, &tmp);
    }
    if (st == NC_OK && residual) {
        st = R->add_forward(state, &out, tmp, cur, residual);
        swap(&cur, &tmp);
    }
    if (st == NC_OK && relu) {
        st = R->relu_forward(state, &out, tmp, cur);
        swap(&cur, &tmp);
    }
    memcpy(y, cur, bytes);
    free(cur);
    free(tmp);
    return st;
}

static nc_status t_bn_relu_forward_train(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                         void *save_invstd, void *running_mean, void *running_var, const void *x,
                                         const void *gamma, const void *beta) {
    const nc__backend *R = nc__backend_ref();
    const nc__value_desc v = bn_value(d);
    const size_t bytes = R->value_bytes(state, &v);
    void *tmp = scratch(bytes);
    calls.bn_relu_fwd++;
    assert_disjoint(y, bytes, x, bytes);
    nc_status st = R->batchnorm_forward_train(state, d, tmp, save_mean, save_invstd, running_mean, running_var, x,
                                              gamma, beta);
    if (st == NC_OK) st = R->relu_forward(state, &v, y, tmp);
    free(tmp);
    return st;
}

static nc_status t_bn_relu_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                    const void *dy, const void *y, const void *x, const void *gamma,
                                    const void *save_mean, const void *save_invstd) {
    const nc__backend *R = nc__backend_ref();
    const nc__value_desc v = bn_value(d);
    void *tmp = scratch(R->value_bytes(state, &v));
    calls.bn_relu_bwd++;
    wrote(dx, d->dx_write);
    nc_status st = R->relu_backward(state, &v, NC__WRITE_SET, tmp, dy, y);
    if (st == NC_OK) st = R->batchnorm_backward(state, d, dx, dgamma, dbeta, tmp, x, gamma, save_mean, save_invstd);
    free(tmp);
    return st;
}

/* The ref entries that write activation gradients, logging each write. */
static nc_status t_conv2d_backward(void *state, const nc__conv_desc *d, void *dx, void *dw, void *db, const void *dy,
                                   const void *x, const void *w) {
    wrote(dx, d->dx_write);
    return nc__backend_ref()->conv2d_backward(state, d, dx, dw, db, dy, x, w);
}
static nc_status t_bn_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta, const void *dy,
                               const void *x, const void *gamma, const void *save_mean, const void *save_invstd) {
    wrote(dx, d->dx_write);
    return nc__backend_ref()->batchnorm_backward(state, d, dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd);
}
static nc_status t_pool2d_backward(void *state, const nc__pool_desc *d, void *dx, const void *dy, const void *x,
                                   const void *y) {
    wrote(dx, d->dx_write);
    return nc__backend_ref()->pool2d_backward(state, d, dx, dy, x, y);
}
static nc_status t_linear_backward(void *state, const nc__linear_desc *d, void *dx, void *dw, void *db, const void *dy,
                                   const void *x, const void *w) {
    wrote(dx, d->dx_write);
    return nc__backend_ref()->linear_backward(state, d, dx, dw, db, dy, x, w);
}
static nc_status t_relu_backward(void *state, const nc__value_desc *v, nc__write mode, void *dx, const void *dy,
                                 const void *y) {
    wrote(dx, mode);
    return nc__backend_ref()->relu_backward(state, v, mode, dx, dy, y);
}
static nc_status t_accumulate(void *state, const nc__value_desc *v, nc__write mode, void *dst, const void *src) {
    wrote(dst, mode);
    return nc__backend_ref()->accumulate(state, v, mode, dst, src);
}
static nc_status t_dropout_backward(void *state, const nc__value_desc *v, nc__write mode, float p, uint64_t seed,
                                    void *dx, const void *dy) {
    wrote(dx, mode);
    return nc__backend_ref()->dropout_backward(state, v, mode, p, seed, dx, dy);
}
static nc_status t_flatten_backward(void *state, const nc__value_desc *in, nc__write mode, void *dx, const void *dy) {
    wrote(dx, mode);
    return nc__backend_ref()->flatten_backward(state, in, mode, dx, dy);
}
static nc_status t_concat_backward(void *state, const nc__value_desc *yv, int count, const nc__value_desc *xv,
                                   const nc__write *modes, void *const *dxs, const void *dy) {
    for (int k = 0; k < count; k++) wrote(dxs[k], modes[k]);
    return nc__backend_ref()->concat_backward(state, yv, count, xv, modes, dxs, dy);
}

/* Says yes to both fused patterns (ref, the oracle, says no). */
static int t_supports_fused(void *state, const nc__op_query *q) {
    if (q->kernel == NC__K_CONV_FUSED_INFER || q->kernel == NC__K_BN_RELU_TRAIN) return 1;
    return nc__backend_ref()->supports(state, q);
}

/* A ref context running the logging table, with the fused entries when `fused`. */
static nc_context *table_context(int fused) {
    nc__backend *t = &tables[fused];
    *t = *nc__backend_ref();
    t->conv2d_backward = t_conv2d_backward;
    t->batchnorm_backward = t_bn_backward;
    t->pool2d_backward = t_pool2d_backward;
    t->linear_backward = t_linear_backward;
    t->relu_backward = t_relu_backward;
    t->accumulate = t_accumulate;
    t->dropout_backward = t_dropout_backward;
    t->flatten_backward = t_flatten_backward;
    t->concat_backward = t_concat_backward;
    if (fused) {
        t->supports = t_supports_fused;
        t->conv2d_fused_infer = t_conv2d_fused_infer;
        t->batchnorm_relu_forward_train = t_bn_relu_forward_train;
        t->batchnorm_relu_backward = t_bn_relu_backward;
    }
    nc_context *ctx = tu_ref_context(1);
    ctx->backend = t;
    return ctx;
}

static nc_context *fused_context(void) {
    memset(&calls, 0, sizeof calls);
    return table_context(1);
}

/* Backward from host dlogits: written where the loss entry would write them. */
static void backward_from_host(nc__plan *p, const float *dlogits) {
    nc_context *ctx = p->m->ctx;
    const nc__value_desc d = nc__plan_value_desc(p, p->m->graph->output);
    assert_int_equal(ctx->backend->value_upload(ctx->backend_state, &d, nc__plan_output_grad(p), dlogits), NC_OK);
    assert_int_equal(nc__plan_backward(p), NC_OK);
}

/* ------------------------------------------------------------------------ models */

typedef struct model_case {
    const char *name;
    int n, c, h, w, classes;
    int eval_chains, train_pairs; /* expected fused groups */
} model_case;

/* Eval chains and train bn+relu pairs, counted by hand:
 *  resnet18: stem conv1+bn1+relu (1); each of the 8 BasicBlocks conv1+bn1+relu and
 *    conv2+bn2, the latter with +add+relu in the 5 blocks without downsample (16); in
 *    the 3 downsample blocks (layer2-4.0) the downsample conv, built after conv2,
 *    takes the add: downsample.0+downsample.1+add+relu (3) -> 20. Train: bn1 of the
 *    stem and of each block feed a ReLU (9); bn2 feeds the add.
 *  resnext blocks 1,1,1,1 (bottleneck): stem (1); each block conv1+bn1+relu,
 *    conv2+bn2+relu, conv3+bn3, downsample+add+relu (every block downsamples) -> 17.
 *    Train: stem bn1 + bn1, bn2 of 4 blocks -> 9.
 *  vgg11_bn: 8 x conv+bn+relu, no BN in the classifier -> 8 and 8.
 *  builder CNN (custom_model): 5 and 3, see there. */
static const model_case cases[] = {
    {"resnet18", 2, 3, 32, 32, 10, 20, 9},
    {"resnext", 2, 3, 32, 32, 10, 17, 9},
    {"vgg11_bn", 2, 3, 32, 32, 10, 8, 8},
    {"custom", 2, 3, 12, 12, 3, 5, 3},
};

/* Every chain shape, and the cases that must not fuse:
 *   c1 -> bn1 -> relu                      chain conv+bn+relu;   train: bn1+relu
 *   c2 (bias) -> relu                      chain conv+relu
 *   c3 -> bn3 -> add(., a) -> relu         chain conv+bn+add+relu, residual a < c3
 *   c4 -> d, d used by a relu and an add   not fused (two consumers)
 *   c5 (bias) -> add(., d)                 chain conv+add, residual d < c5
 *   bn6 -> relu                            eval: no conv in front; train: bn6+relu
 *   c7 -> bn7, bn7 used by relu and add    chain conv+bn (out bn7); train: not fused
 *   pool, flatten, fc1 -> bn8 (1d) -> relu train: bn8+relu (rank 2); then fc2. */
static nc_model *custom_model(nc_context *ctx) {
    nc_builder *b;
    nc_value x, a, v, d, e, f, h, r;
    assert_int_equal(nc_builder_create(ctx, 3, &b, &x), NC_OK);
    nc_builder_conv2d(b, "c1", x, 8, 3, 1, 1, 1, 1, 0, &v);
    nc_builder_batchnorm(b, "bn1", v, 1e-5f, 0.1f, &v);
    nc_builder_relu(b, v, &a);
    nc_builder_conv2d(b, "c2", a, 8, 3, 1, 1, 1, 2, 1, &v);
    nc_builder_relu(b, v, &v);
    nc_builder_conv2d(b, "c3", v, 8, 3, 1, 1, 1, 1, 0, &v);
    nc_builder_batchnorm(b, "bn3", v, 1e-5f, 0.1f, &v);
    nc_builder_add(b, v, a, &v);
    nc_builder_relu(b, v, &v);
    nc_builder_conv2d(b, "c4", v, 8, 3, 2, 1, 1, 1, 0, &d);
    nc_builder_relu(b, d, &e);
    nc_builder_conv2d(b, "c5", e, 8, 3, 1, 1, 1, 1, 1, &v);
    nc_builder_add(b, d, v, &f); /* the chain value as the ADD's second input */
    nc_builder_batchnorm(b, "bn6", f, 1e-5f, 0.1f, &v);
    nc_builder_relu(b, v, &v);
    nc_builder_conv2d(b, "c7", v, 8, 1, 1, 0, 1, 1, 0, &v);
    nc_builder_batchnorm(b, "bn7", v, 1e-5f, 0.1f, &h);
    nc_builder_relu(b, h, &r);
    nc_builder_add(b, r, h, &v);
    nc_builder_max_pool2d(b, v, 2, 2, 0, &v);
    nc_builder_adaptive_avg_pool2d(b, v, 2, 2, &v);
    nc_builder_flatten(b, v, &v);
    nc_builder_linear(b, "fc1", v, 16, 1, &v);
    nc_builder_batchnorm(b, "bn8", v, 1e-5f, 0.1f, &v);
    nc_builder_relu(b, v, &v);
    nc_builder_linear(b, "fc2", v, 3, 1, &v);
    nc_model *m = NULL;
    assert_int_equal(nc_builder_finish(b, v, 1, 5, &m), NC_OK);
    nc_builder_destroy(b);
    return m;
}

static nc_model *make_model(nc_context *ctx, const model_case *mc) {
    if (strcmp(mc->name, "custom") == 0) return custom_model(ctx);
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = mc->name;
    o.num_classes = mc->classes;
    o.in_channels = mc->c;
    o.seed = 3;
    if (strcmp(mc->name, "resnext") == 0) {
        for (int s = 0; s < 4; s++) o.blocks[s] = 1;
        o.cardinality = 4;
        o.base_width = 4;
    }
    if (strcmp(mc->name, "vgg11_bn") == 0) o.small_input = 1; /* 512-wide classifier */
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    return m;
}

static size_t numel(const model_case *mc) { return (size_t)mc->n * mc->c * mc->h * mc->w; }

/* All float tensors of a model (parameters and running statistics) to host. */
static float *all_tensors(nc_model *m, size_t *count) {
    size_t total = 0;
    for (int i = 0; i < m->graph->n_tensors; i++) total += (size_t)m->slots[i].numel;
    float *out = tu_zeros(total), *o = out;
    for (int i = 0; i < m->graph->n_tensors; i++) {
        const char *name = m->graph->tensors[i].name;
        assert_int_equal(nc_model_get_tensor(m, name, o, m->slots[i].numel), NC_OK);
        o += m->slots[i].numel;
    }
    *count = total;
    return out;
}

/* ---------------------------------------------------------------- plan checks */

/* No two buffers live at the same time share memory; fused intermediates have none. */
static void check_plan(const nc__plan *p) {
    for (int i = 0; i < p->n_buffers; i++) {
        const nc__interval *a = &p->buffers[i];
        assert_true(a->first <= a->last);
        assert_true(a->offset + a->bytes <= p->arena_bytes);
        for (int k = 0; k < i; k++) {
            const nc__interval *b = &p->buffers[k];
            int time = !(a->last < b->first || b->last < a->first);
            int mem = a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes;
            assert_false(time && mem);
        }
    }
    const nc__graph *g = p->m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        int h = p->run_at[i];
        if (h < 0) continue;
        if (h == i && p->fusion[i].out != i) { /* a head that writes a later value */
            assert_int_equal(p->val_off[i], SIZE_MAX);
            assert_int_equal(p->grad_off[i], SIZE_MAX);
        } else if (h != i) {                  /* a member */
            assert_true(h < i);
            if (p->fusion[h].out == i)
                assert_int_not_equal(p->val_off[i], SIZE_MAX);
            else
                assert_int_equal(p->val_off[i], SIZE_MAX);
        } else {
            assert_int_not_equal(p->val_off[i], SIZE_MAX);
        }
    }
}

static void forward_eval(nc_model *m, const model_case *mc, const float *x, float *logits) {
    assert_int_equal(nc_model_forward(m, x, mc->n, mc->c, mc->h, mc->w, logits), NC_OK);
}

/* (a) eval logits bit-identical, (c) chain count, (d) arena smaller. */
static void eval_case(const model_case *mc) {
    nc_context *plain = tu_ref_context(1), *fused = fused_context();
    nc_model *mp = make_model(plain, mc), *mf = make_model(fused, mc);
    float *x = tu_rand(numel(mc), -1, 1, 17);
    const size_t outs = (size_t)mc->n * mc->classes;
    float *lp = tu_zeros(outs), *lf = tu_zeros(outs);
    forward_eval(mp, mc, x, lp);
    forward_eval(mf, mc, x, lf);
    assert_memory_equal(lp, lf, outs * sizeof(float));
    const nc__plan *pp = nc__plan_pool_last(&mp->eval_plans), *pf = nc__plan_pool_last(&mf->eval_plans);
    print_message("  %-8s eval: %d chains (fused calls %ld), arena %zu -> %zu bytes\n", mc->name, pf->n_conv_chains,
                  calls.fused_infer, pp->arena_bytes, pf->arena_bytes);
    assert_int_equal(pp->n_conv_chains, 0);
    assert_int_equal(pf->n_conv_chains, mc->eval_chains);
    assert_int_equal(calls.fused_infer, mc->eval_chains);
    assert_int_equal(pf->n_bn_relu, 0);
    /* fewer buffers at the peak, except in the builder CNN, whose peak (three 12x12
     * values around c3) fusion does not change */
    if (strcmp(mc->name, "custom") == 0)
        assert_true(pf->arena_bytes <= pp->arena_bytes);
    else
        assert_true(pf->arena_bytes < pp->arena_bytes);
    check_plan(pp);
    check_plan(pf);
    /* a second run on the same plan (reused buffers) gives the same logits */
    forward_eval(mf, mc, x, lf);
    assert_memory_equal(lp, lf, outs * sizeof(float));
    free(x);
    free(lp);
    free(lf);
    nc_model_destroy(mp);
    nc_model_destroy(mf);
    nc_context_destroy(plain);
    nc_context_destroy(fused);
}

static void test_fusion_eval_resnet18(void **s) { (void)s; eval_case(&cases[0]); }
static void test_fusion_eval_resnext(void **s) { (void)s; eval_case(&cases[1]); }
static void test_fusion_eval_vgg11_bn(void **s) { (void)s; eval_case(&cases[2]); }
static void test_fusion_eval_custom_cnn(void **s) { (void)s; eval_case(&cases[3]); }

/* (b) two SGD steps give bit-identical parameters, running statistics and losses;
 * (c) the train pair count; every fused pair ran forward and backward. */
static void train_case(const model_case *mc) {
    nc_context *plain = tu_ref_context(1), *fused = fused_context();
    nc_model *mp = make_model(plain, mc), *mf = make_model(fused, mc);
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.lr = 0.05f;
    nc_trainer *tp, *tf;
    assert_int_equal(nc_trainer_create(mp, &to, &tp), NC_OK);
    assert_int_equal(nc_trainer_create(mf, &to, &tf), NC_OK);
    float *x = tu_rand(numel(mc), -1, 1, 23);
    int32_t labels[8];
    for (int i = 0; i < mc->n; i++) labels[i] = (i * 5 + 1) % mc->classes;
    for (int step = 0; step < 2; step++) {
        nc_step_stats sp, sf;
        assert_int_equal(nc_trainer_step(tp, x, labels, mc->n, mc->c, mc->h, mc->w, &sp), NC_OK);
        assert_int_equal(nc_trainer_step(tf, x, labels, mc->n, mc->c, mc->h, mc->w, &sf), NC_OK);
        assert_true(sp.loss == sf.loss);
    }
    size_t np, nf;
    float *vp = all_tensors(mp, &np), *vf = all_tensors(mf, &nf);
    assert_int_equal(np, nf);
    assert_memory_equal(vp, vf, np * sizeof(float));
    const nc__plan *pp = mp->plan_train, *pf = mf->plan_train;
    print_message("  %-8s train: %d bn+relu pairs, arena %zu -> %zu bytes\n", mc->name, pf->n_bn_relu,
                  pp->arena_bytes, pf->arena_bytes);
    assert_int_equal(pp->n_bn_relu, 0);
    assert_int_equal(pf->n_bn_relu, mc->train_pairs);
    assert_int_equal(pf->n_conv_chains, 0);
    assert_int_equal(calls.bn_relu_fwd, 2 * mc->train_pairs);
    assert_int_equal(calls.bn_relu_bwd, 2 * mc->train_pairs);
    assert_int_equal(calls.fused_infer, 0);
    assert_true(calls.sets > 0);
    check_plan(pp);
    check_plan(pf);
    free(x);
    free(vp);
    free(vf);
    nc_trainer_destroy(tp);
    nc_trainer_destroy(tf);
    nc_model_destroy(mp);
    nc_model_destroy(mf);
    nc_context_destroy(plain);
    nc_context_destroy(fused);
}

static void test_fusion_train_resnet18(void **s) { (void)s; train_case(&cases[0]); }
static void test_fusion_train_resnext(void **s) { (void)s; train_case(&cases[1]); }
static void test_fusion_train_vgg11_bn(void **s) { (void)s; train_case(&cases[2]); }
static void test_fusion_train_custom_cnn(void **s) { (void)s; train_case(&cases[3]); }

/* The builder CNN's groups, node by node (by name where the node has one). */
static int node_named(const nc__graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    fail_msg("no node %s", name);
    return -1;
}

static void test_fusion_custom_cnn_groups(void **s) {
    (void)s;
    const model_case *mc = &cases[3];
    nc_context *ctx = fused_context();
    nc_model *m = custom_model(ctx);
    const nc__graph *g = m->graph;
    nc__shape in = nc__shape4(mc->n, mc->c, mc->h, mc->w);
    nc__plan *taken;
    assert_int_equal(nc__plan_pool_take(m, &m->eval_plans, &in, &taken), NC_OK);
    nc__plan_pool_give(&m->eval_plans, taken); /* the pool keeps it; no other call runs */
    const nc__plan *p = taken;
    const int c1 = node_named(g, "c1"), c2 = node_named(g, "c2"), c3 = node_named(g, "c3"), c4 = node_named(g, "c4");
    const int c5 = node_named(g, "c5"), c7 = node_named(g, "c7"), bn6 = node_named(g, "bn6");
    /* c1: conv+bn+relu; its relu (a) is c3's residual */
    assert_int_equal(p->fusion[c1].bn, node_named(g, "bn1"));
    assert_int_equal(p->fusion[c1].add, -1);
    const int a = p->fusion[c1].relu;
    assert_true(a > 0 && g->nodes[a].op == NC__OP_RELU && p->fusion[c1].out == a);
    /* c2: conv+relu */
    assert_int_equal(p->fusion[c2].bn, -1);
    assert_true(p->fusion[c2].relu > 0 && p->fusion[c2].add == -1);
    /* c3: conv+bn+add+relu with residual a */
    assert_int_equal(p->fusion[c3].bn, node_named(g, "bn3"));
    assert_int_equal(p->fusion[c3].residual, a);
    assert_int_equal(p->fusion[c3].out, p->fusion[c3].relu);
    assert_int_equal(p->run_at[p->fusion[c3].add], c3);
    /* c4: two consumers, runs alone */
    assert_int_equal(p->fusion[c4].out, c4);
    /* c5: conv+add with residual d = c4 (second ADD input is the chain) */
    assert_int_equal(p->fusion[c5].residual, c4);
    assert_int_equal(p->fusion[c5].out, p->fusion[c5].add);
    assert_int_equal(p->fusion[c5].relu, -1);
    /* bn6 runs alone in eval; c7 stops at bn7 (two consumers) */
    assert_int_equal(p->run_at[bn6], bn6);
    assert_int_equal(p->fusion[c7].out, node_named(g, "bn7"));
    /* the residuals are consumed at the conv: still allocated, and live there */
    for (int i = 0; i < p->n_buffers; i++)
        if (p->buffer_owner[i].node == a && p->buffer_owner[i].kind == NC__BUFFER_VALUE)
            assert_true(p->buffers[i].last >= nc__plan_fwd_time(c3));

    /* train: bn1, bn6, bn8 (1d) fused with their relus; bn3, bn7 not */
    assert_int_equal(nc__plan_get(m, &m->plan_train, 1, &in), NC_OK);
    p = m->plan_train;
    const int bn1 = node_named(g, "bn1"), bn8 = node_named(g, "bn8");
    assert_int_equal(p->fusion[bn1].out, a);
    assert_int_equal(p->run_at[a], bn1);
    assert_true(p->fusion[bn6].relu > 0);
    assert_true(p->fusion[bn8].relu > 0);
    assert_int_equal(p->shapes[bn8].ndim, 2);
    assert_int_equal(p->fusion[node_named(g, "bn3")].relu, -1);
    assert_int_equal(p->fusion[node_named(g, "bn7")].relu, -1);
    /* the fused relu's value lives until the BN's backward */
    const int n = g->n_nodes;
    int seen = 0;
    for (int i = 0; i < p->n_buffers; i++)
        if (p->buffer_owner[i].node == a && p->buffer_owner[i].kind == NC__BUFFER_VALUE) {
            assert_int_equal(p->buffers[i].first, nc__plan_fwd_time(bn1));
            assert_true(p->buffers[i].last >= nc__plan_bwd_time(n, bn1));
            seen = 1;
        }
    assert_true(seen);
    check_plan(p);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* ------------------------------------------------------------- gradient writes */

/* Every byte of the arena outside the buffers live when the loss runs (when
 * backward starts) := 0xFF, a NaN in f32 and bf16. A gradient buffer read before it is set would
 * spread it. */
static void poison(nc__plan *p) {
    const int n = nc__plan_loss_time(p->m->graph->n_nodes);
    unsigned char *live = calloc(p->arena_bytes ? p->arena_bytes : 1, 1), *a = p->arena;
    assert_non_null(live);
    for (int i = 0; i < p->n_buffers; i++) {
        const nc__interval *b = &p->buffers[i];
        if (b->first <= n && n <= b->last) memset(live + b->offset, 1, b->bytes);
    }
    size_t poisoned = 0;
    for (size_t i = 0; i < p->arena_bytes; i++)
        if (!live[i]) {
            a[i] = 0xFF;
            poisoned++;
        }
    print_message("    poisoned %zu of %zu bytes\n", poisoned, p->arena_bytes);
    assert_true(poisoned > 0);
    free(live);
}

/* Re-lays the plan's buffers out without any reuse (each at its own offset, fresh
 * arena), so that a gradient buffer holds nothing but what backward writes into it. */
static void unshare(nc__plan *p) {
    nc_context *ctx = p->m->ctx;
    size_t off = 0;
    for (int i = 0; i < p->n_buffers; i++) {
        p->buffers[i].offset = off;
        off += (p->buffers[i].bytes + 63) / 64 * 64;
        const nc__buffer_owner o = p->buffer_owner[i];
        (o.kind == NC__BUFFER_VALUE ? p->val_off : o.kind == NC__BUFFER_GRAD ? p->grad_off : p->save_off)[o.node] =
            p->buffers[i].offset;
    }
    ctx->backend->free(ctx->backend_state, p->arena);
    p->arena = NULL;
    assert_int_equal(ctx->backend->alloc(ctx->backend_state, off, &p->arena), NC_OK);
    p->arena_bytes = off;
}

/* Activation gradients that a backward writes: all but the output's (the loss's). */
static int written_gradients(const nc__plan *p) {
    int count = 0;
    for (int v = 0; v < p->m->graph->n_nodes; v++) count += p->grad_off[v] != SIZE_MAX && v != p->m->graph->output;
    return count;
}

/* Every activation gradient buffer but the output's := NaN (an unshared plan). */
static void poison_gradients(nc__plan *p) {
    nc_context *ctx = p->m->ctx;
    size_t poisoned = 0;
    for (int v = 0; v < p->m->graph->n_nodes; v++) {
        if (p->grad_off[v] == SIZE_MAX || v == p->m->graph->output) continue;
        const nc__value_desc d = nc__plan_value_desc(p, v);
        const size_t bytes = ctx->backend->value_bytes(ctx->backend_state, &d);
        memset((char *)p->arena + p->grad_off[v], 0xFF, bytes);
        poisoned += bytes;
    }
    print_message("    poisoned %zu gradient bytes\n", poisoned);
    assert_true(poisoned > 0);
}

enum { CLEAN = 0, POISON_ARENA = 1, POISON_UNSHARED = 2 };

/* Parameter gradients of one training forward/backward; mode: CLEAN, or with the
 * arena outside live buffers NaN (POISON_ARENA), or without buffer reuse and every
 * activation gradient NaN before backward (POISON_UNSHARED; the writes are then
 * checked against the GRADIENT WRITE RULE as they happen, on the logging tables). */
static float *grads_with_poison(nc_model *m, const model_case *mc, const float *x, int mode) {
    nc_context *ctx = m->ctx;
    nc__shape in = nc__shape4(mc->n, mc->c, mc->h, mc->w);
    assert_int_equal(nc__model_ensure_grads(m), NC_OK);
    assert_int_equal(ctx->backend->fill(ctx->backend_state, m->grad_arena, 0.0f, nc__model_param_floats(m)), NC_OK);
    nc__plan_destroy(m->plan_train);
    m->plan_train = NULL;
    assert_int_equal(nc__plan_get(m, &m->plan_train, 1, &in), NC_OK);
    nc__plan *p = m->plan_train;
    if (mode == POISON_UNSHARED) unshare(p);
    assert_int_equal(nc__plan_forward(p, x, 1, 9), NC_OK);
    const size_t outs = (size_t)mc->n * mc->classes;
    float *logits = tu_zeros(outs), *dlogits = tu_zeros(outs);
    int32_t labels[8];
    for (int i = 0; i < mc->n; i++) labels[i] = i % mc->classes;
    assert_int_equal(nc__plan_read_output(p, logits), NC_OK);
    double loss;
    assert_int_equal(nc__softmax_xent(ctx, logits, labels, mc->n, 1, mc->classes, dlogits, &loss, NULL), NC_OK);
    if (mode == POISON_ARENA) poison(p);
    if (mode == POISON_UNSHARED) poison_gradients(p);
    wlog.on = mode == POISON_UNSHARED;
    wlog.n = 0;
    backward_from_host(p, dlogits);
    if (wlog.on && ctx->backend != nc__backend_ref()) assert_int_equal(wlog.n, written_gradients(p));
    wlog.on = 0;
    float *g = tu_zeros(nc__model_param_floats(m));
    memcpy(g, m->grad_arena, m->arena_bytes);
    free(logits);
    free(dlogits);
    return g;
}

/* NaN where a first writer would read garbage: gradients stay finite and equal the
 * clean run's, on plain ref, on the logging table (whose writes are checked) and on
 * the fused one, both with the arena poisoned around the live buffers and with every
 * activation gradient poisoned in a plan without buffer reuse. So every gradient's
 * first write set it whole, and nothing read it before. */
static void gradient_writes_case(const model_case *mc) {
    nc_context *plain = tu_ref_context(1), *logged = table_context(0), *fused = fused_context();
    nc_model *mp = make_model(plain, mc), *ml = make_model(logged, mc), *mf = make_model(fused, mc);
    float *x = tu_rand(numel(mc), -1, 1, 29);
    float *g[7];
    g[0] = grads_with_poison(mp, mc, x, CLEAN);
    g[1] = grads_with_poison(mp, mc, x, POISON_ARENA);
    g[2] = grads_with_poison(mp, mc, x, POISON_UNSHARED);
    g[3] = grads_with_poison(ml, mc, x, POISON_ARENA);
    g[4] = grads_with_poison(ml, mc, x, POISON_UNSHARED);
    calls.sets = 0;
    g[5] = grads_with_poison(mf, mc, x, POISON_ARENA);
    g[6] = grads_with_poison(mf, mc, x, POISON_UNSHARED);
    const size_t count = nc__model_param_floats(mp);
    for (int k = 1; k < 7; k++) {
        for (size_t i = 0; i < count; i++) assert_true(isfinite(g[k][i]));
        assert_memory_equal(g[0], g[k], count * sizeof(float));
    }
    print_message("  %-8s %d gradients written, %ld set-writes in 2 fused backwards\n", mc->name,
                  written_gradients(mf->plan_train), calls.sets);
    assert_int_equal(calls.sets, 2 * written_gradients(mf->plan_train));
    free(x);
    for (int k = 0; k < 7; k++) free(g[k]);
    nc_model_destroy(mp);
    nc_model_destroy(ml);
    nc_model_destroy(mf);
    nc_context_destroy(plain);
    nc_context_destroy(logged);
    nc_context_destroy(fused);
}

static void test_gradient_writes_resnet18(void **s) { (void)s; gradient_writes_case(&cases[0]); }
static void test_gradient_writes_custom_cnn(void **s) { (void)s; gradient_writes_case(&cases[3]); }

/* The plan's first writers on resnet18 (ref: no fusion): each activation gradient
 * but the output's has one, the consumer last in graph order. */
static void test_first_writers_resnet18(void **s) {
    (void)s;
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = make_model(ctx, &cases[0]);
    nc__shape in = nc__shape4(2, 3, 32, 32);
    assert_int_equal(nc__plan_get(m, &m->plan_train, 1, &in), NC_OK);
    const nc__plan *p = m->plan_train;
    const nc__graph *g = m->graph;
    int by_op[NC__OP_COUNT] = {0}, total = 0;
    for (int v = 0; v < g->n_nodes; v++) {
        const int w = p->first_writer[v];
        if (w < 0) continue;
        for (int c = w + 1; c < g->n_nodes; c++)
            for (int k = 0; k < g->nodes[c].n_inputs; k++) assert_int_not_equal(g->nodes[c].inputs[k], v);
        by_op[g->nodes[w].op]++;
        total++;
    }
    print_message("  resnet18 train: %d first writers\n", total);
    /* By hand: the 20 BNs write their conv's output; the maxpool the stem relu's; the
     * 8 blocks' conv2 their relu's and the downsample convs of layer2-4.0 (built after
     * conv1) the block input: 11 convs; the adaptive pool the last relu's, the
     * flatten the pool's, fc the flatten's; each of the 8 ADDs both inputs (bn2; the
     * identity, whose other reader conv1 comes earlier, or the downsample bn): 16;
     * the 17 ReLUs their input (stem bn1, 8 block bn1, 8 ADDs). 68 = 70 nodes less
     * the input and the output. */
    assert_int_equal(by_op[NC__OP_BATCHNORM], 20);
    assert_int_equal(by_op[NC__OP_MAXPOOL], 1);
    assert_int_equal(by_op[NC__OP_CONV2D], 11);
    assert_int_equal(by_op[NC__OP_ADAPTIVE_AVGPOOL], 1);
    assert_int_equal(by_op[NC__OP_FLATTEN], 1);
    assert_int_equal(by_op[NC__OP_LINEAR], 1);
    assert_int_equal(by_op[NC__OP_ADD], 16);
    assert_int_equal(by_op[NC__OP_RELU], 17);
    assert_int_equal(total, 68);
    assert_int_equal(g->n_nodes, 70);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* --------------------------------------------------------------- param_version */

static void test_param_version_changes(void **s) {
    (void)s;
    nc_context *ctx = tu_ref_context(1);
    const model_case *mc = &cases[3];
    nc_model *m = custom_model(ctx);
    float *x = tu_rand(numel(mc), -1, 1, 31);
    float logits[6];
    uint64_t v = m->param_version;
    assert_true(v > 0); /* initialisation */
    forward_eval(m, mc, x, logits);
    assert_true(m->param_version == v); /* eval reads only */

    float w[8 * 3 * 3 * 3];
    assert_int_equal(nc_model_get_tensor(m, "c1.weight", w, 216), NC_OK);
    assert_int_equal(nc_model_set_tensor(m, "c1.weight", w, 216), NC_OK);
    assert_true(m->param_version > v);
    v = m->param_version;

    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, NULL, &t), NC_OK);
    int32_t labels[2] = {0, 2};
    uint64_t before = m->param_version;
    nc__shape in = nc__shape4(mc->n, mc->c, mc->h, mc->w);
    assert_int_equal(nc__plan_get(m, &m->plan_train, 1, &in), NC_OK);
    assert_int_equal(nc__plan_forward(m->plan_train, x, 1, 1), NC_OK); /* running stats move */
    assert_true(m->param_version > before);
    v = m->param_version;
    assert_int_equal(nc_trainer_step(t, x, labels, mc->n, mc->c, mc->h, mc->w, NULL), NC_OK);
    assert_true(m->param_version > v + 1); /* forward and update */
    v = m->param_version;

    char *path = tu_tmp_path("fusion_version.safetensors");
    assert_int_equal(nc_model_save(m, path), NC_OK);
    assert_true(m->param_version == v); /* saving reads only */
    assert_int_equal(nc_model_load_weights(m, path, 1, NULL), NC_OK);
    assert_true(m->param_version > v);
    v = m->param_version;

    nc_ema *e;
    assert_int_equal(nc_ema_create(m, 0.5f, &e), NC_OK);
    assert_int_equal(nc_ema_swap(e), NC_OK);
    assert_true(m->param_version > v);
    v = m->param_version;
    assert_int_equal(nc_ema_swap(e), NC_OK);
    assert_true(m->param_version > v);
    nc_ema_destroy(e);

    nc_early_stopping *es;
    assert_int_equal(nc_early_stopping_create(m, 1, 2, 0.0f, &es), NC_OK);
    assert_int_equal(nc_early_stopping_update(es, 0.5f, NULL, NULL), NC_OK);
    v = m->param_version;
    assert_int_equal(nc_early_stopping_restore_best(es), NC_OK);
    assert_true(m->param_version > v);
    nc_early_stopping_destroy(es);

    remove(path);
    free(path);
    free(x);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fusion_eval_resnet18),
        cmocka_unit_test(test_fusion_eval_resnext),
        cmocka_unit_test(test_fusion_eval_vgg11_bn),
        cmocka_unit_test(test_fusion_eval_custom_cnn),
        cmocka_unit_test(test_fusion_train_resnet18),
        cmocka_unit_test(test_fusion_train_resnext),
        cmocka_unit_test(test_fusion_train_vgg11_bn),
        cmocka_unit_test(test_fusion_train_custom_cnn),
        cmocka_unit_test(test_fusion_custom_cnn_groups),
        cmocka_unit_test(test_gradient_writes_resnet18),
        cmocka_unit_test(test_gradient_writes_custom_cnn),
        cmocka_unit_test(test_first_writers_resnet18),
        cmocka_unit_test(test_param_version_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
