/* test_plan.c — the planner's passes (graph/plan_passes.h), each on its own: uses
 * (needed nodes, consumers), the batch-norm shape check, dtypes under both precision
 * policies, the capability check naming the refused node, fusion only where a spy
 * backend's `supports` accepts (prefixes when it refuses the residual), liveness
 * checked against the rules re-derived here (times, bytes, no overlap) and the first
 * writer of every gradient. The executor's use of the write modes is in
 * test_fusion.c, its numerics in test_exec.c. */
#include "testutil.h"

#include "core/context.h"
#include "core/model.h"
#include "graph/plan_passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the spy backend */

enum { NEVER = 0, ALWAYS = 1, WITHOUT_RESIDUAL = 2 };

static struct {
    nc__kernel refuse;        /* a kernel refused by itself (NC__K_COUNT: none) */
    int refuse_training_only;
    int fused_infer;          /* NC__K_CONV_FUSED_INFER: NEVER, ALWAYS, WITHOUT_RESIDUAL */
    int bn_relu;              /* NC__K_BN_RELU_TRAIN: NEVER, ALWAYS */
    long asked[NC__K_COUNT];
} spy;

static nc__backend spy_table;

/* A query carries the descriptor of its kernel, of its dtype, and no other. */
static void check_query(const nc__op_query *q) {
    const int conv = q->kernel == NC__K_CONV2D || q->kernel == NC__K_CONV_FUSED_INFER;
    const int bn = q->kernel == NC__K_BATCHNORM || q->kernel == NC__K_BN_RELU_TRAIN;
    const int pool = q->kernel == NC__K_POOL2D, linear = q->kernel == NC__K_LINEAR;
    assert_true(q->kernel < NC__K_COUNT && q->kernel != NC__K_LOSS);
    assert_int_equal(q->conv != NULL, conv);
    assert_int_equal(q->bn != NULL, bn);
    assert_int_equal(q->pool != NULL, pool);
    assert_int_equal(q->linear != NULL, linear);
    assert_int_equal(q->value != NULL, !conv && !bn && !pool && !linear);
    if (conv) assert_int_equal(q->conv->dtype, q->dtype);
    if (bn) assert_int_equal(q->bn->dtype, q->dtype);
    if (pool) assert_int_equal(q->pool->dtype, q->dtype);
    if (linear) assert_int_equal(q->linear->dtype, q->dtype);
    if (q->value) assert_int_equal(q->value->dtype, q->dtype);
    const int flags = q->fused_bn || q->fused_residual || q->fused_relu;
    assert_int_equal(flags, q->kernel == NC__K_CONV_FUSED_INFER);
    if (q->kernel == NC__K_CONV_FUSED_INFER) assert_false(q->training);
    if (q->kernel == NC__K_BN_RELU_TRAIN) assert_true(q->training);
}

static int spy_supports(void *state, const nc__op_query *q) {
    check_query(q);
    spy.asked[q->kernel]++;
    if (q->kernel == NC__K_CONV_FUSED_INFER)
        return spy.fused_infer == ALWAYS || (spy.fused_infer == WITHOUT_RESIDUAL && !q->fused_residual);
    if (q->kernel == NC__K_BN_RELU_TRAIN) return spy.bn_relu == ALWAYS;
    if (q->kernel == spy.refuse && (q->training || !spy.refuse_training_only)) return 0;
    return nc__backend_ref()->supports(state, q);
}

/* Present but never to be called: these tests only plan. The planner must decide by
 * `supports`, not by whether an entry exists. */
static nc_status never_fused_infer(void *state, const nc__conv_desc *d, const nc__bn_params *bn, void *y,
                                   const void *x, const void *w, const void *b, const void *residual, int relu) {
    fail_msg("conv2d_fused_infer called");
    return NC_ERR_BACKEND;
}
static nc_status never_bn_relu_forward(void *state, const nc__bn_desc *d, void *y, void *save_mean,
                                       void *save_invstd, void *running_mean, void *running_var, const void *x,
                                       const void *gamma, const void *beta) {
    fail_msg("batchnorm_relu_forward_train called");
    return NC_ERR_BACKEND;
}
static nc_status never_bn_relu_backward(void *state, const nc__bn_desc *d, void *dx, void *dgamma, void *dbeta,
                                        const void *dy, const void *y, const void *x, const void *gamma,
                                        const void *save_mean, const void *save_invstd) {
    fail_msg("batchnorm_relu_backward called");
    return NC_ERR_BACKEND;
}

/* A ref context running the spy table; every answer ref's own until a case says. */
static nc_context *spy_context(nc_precision precision) {
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = 1;
    o.precision = precision;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    spy_table = *nc__backend_ref();
    spy_table.supports = spy_supports;
    spy_table.conv2d_fused_infer = never_fused_infer;
    spy_table.batchnorm_relu_forward_train = never_bn_relu_forward;
    spy_table.batchnorm_relu_backward = never_bn_relu_backward;
    ctx->backend = &spy_table;
    memset(&spy, 0, sizeof spy);
    spy.refuse = NC__K_COUNT;
    return ctx;
}

/* ------------------------------------------------------------------ the models */

/* A residual block, a node the output does not need, and a BatchNorm1d head:
 *   x -> c1 -> bn1 -> a (relu);  a -> c2 -> bn2 -> add(bn2, a) -> r (relu)
 *   dead = relu(a), unused
 *   r -> pool (adaptive 2x2) -> flat -> fc1 -> bn3 (1d) -> relu3 -> fc2 (output) */
typedef struct block {
    nc_model *m;
    nc_value x, c1, bn1, a, c2, bn2, add, r, dead, pool, flat, fc1, bn3, relu3, fc2;
} block;

static block block_model(nc_context *ctx) {
    block k;
    nc_builder *b;
    assert_int_equal(nc_builder_create(ctx, 3, &b, &k.x), NC_OK);
    nc_builder_conv2d(b, "c1", k.x, 8, 3, 1, 1, 1, 1, 0, &k.c1);
    nc_builder_batchnorm(b, "bn1", k.c1, 1e-5f, 0.1f, &k.bn1);
    nc_builder_relu(b, k.bn1, &k.a);
    nc_builder_conv2d(b, "c2", k.a, 8, 3, 1, 1, 1, 1, 0, &k.c2);
    nc_builder_batchnorm(b, "bn2", k.c2, 1e-5f, 0.1f, &k.bn2);
    nc_builder_add(b, k.bn2, k.a, &k.add);
    nc_builder_relu(b, k.add, &k.r);
    nc_builder_relu(b, k.a, &k.dead);
    nc_builder_adaptive_avg_pool2d(b, k.r, 2, 2, &k.pool);
    nc_builder_flatten(b, k.pool, &k.flat);
    nc_builder_linear(b, "fc1", k.flat, 16, 1, &k.fc1);
    nc_builder_batchnorm(b, "bn3", k.fc1, 1e-5f, 0.1f, &k.bn3);
    nc_builder_relu(b, k.bn3, &k.relu3);
    nc_builder_linear(b, "fc2", k.relu3, 3, 1, &k.fc2);
    assert_int_equal(nc_builder_finish(b, k.fc2, 1, 5, &k.m), NC_OK);
    nc_builder_destroy(b);
    return k;
}

/* One value read twice by the same node: add(r, r) and concat(f, f). */
typedef struct twice {
    nc_model *m;
    nc_value x, c, r, add, pool, flat, f, cat;
} twice;

static twice twice_model(nc_context *ctx) {
    twice t;
    nc_builder *b;
    assert_int_equal(nc_builder_create(ctx, 2, &b, &t.x), NC_OK);
    nc_builder_conv2d(b, "c", t.x, 4, 3, 1, 1, 1, 1, 1, &t.c);
    nc_builder_relu(b, t.c, &t.r);
    nc_builder_add(b, t.r, t.r, &t.add);
    nc_builder_adaptive_avg_pool2d(b, t.add, 1, 1, &t.pool);
    nc_builder_flatten(b, t.pool, &t.flat);
    nc_builder_linear(b, "f", t.flat, 3, 1, &t.f);
    const nc_value both[2] = {t.f, t.f};
    nc_builder_concat(b, both, 2, &t.cat);
    assert_int_equal(nc_builder_finish(b, t.cat, 1, 5, &t.m), NC_OK);
    nc_builder_destroy(b);
    return t;
}

static nc_model *resnet18(nc_context *ctx) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "resnet18";
    o.num_classes = 10;
    o.small_input = 1;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    return m;
}

/* ---------------------------------------------------------- running the passes */

enum { USES = 1, SHAPES, DTYPES, SUPPORT, FUSE, LIVENESS, PACK, WRITERS };

/* A plan of m after the passes of plan.c's build up to and including `last`. */
static nc__plan *plan_upto(nc_model *m, int training, nc__shape in, int last, nc__plan_uses *u) {
    nc__plan *p = NULL;
    assert_int_equal(nc__plan_alloc(m, training, &in, &p), NC_OK);
    *u = (nc__plan_uses){0};
    assert_int_equal(nc__plan_find_uses(p, u), NC_OK);
    if (last >= SHAPES) assert_int_equal(nc__plan_infer_shapes(p, u), NC_OK);
    if (last >= DTYPES) nc__plan_assign_dtypes(p);
    if (last >= SUPPORT) assert_int_equal(nc__plan_check_support(p, u), NC_OK);
    if (last >= FUSE) nc__plan_fuse(p, u);
    if (last >= LIVENESS) nc__plan_liveness(p, u);
    if (last >= PACK) nc__plan_pack(p);
    if (last >= WRITERS) nc__plan_assign_writers(p, u);
    return p;
}

static void plan_free(nc__plan *p, nc__plan_uses *u) {
    nc__plan_uses_free(p->m->ctx, u);
    nc__plan_destroy(p);
}

static const nc__shape block_in = {4, {2, 3, 8, 8}};

/* ------------------------------------------------------------------------ uses */

static void test_uses_needed_and_consumers(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 1, block_in, USES, &u);
    for (int i = 0; i < k.m->graph->n_nodes; i++) assert_int_equal(u.needed[i], i != k.dead);
    /* a feeds c2, the add and the unneeded relu: only the first two count */
    assert_int_equal(u.first[k.a + 1] - u.first[k.a], 2);
    assert_int_equal(u.users[u.first[k.a]], k.c2);
    assert_int_equal(u.users[u.first[k.a] + 1], k.add);
    assert_int_equal(nc__plan_sole_consumer(p, &u, k.a), -1);
    assert_int_equal(nc__plan_sole_consumer(p, &u, k.c1), k.bn1);
    assert_int_equal(nc__plan_sole_consumer(p, &u, k.bn2), k.add);
    assert_int_equal(nc__plan_sole_consumer(p, &u, k.fc2), -1); /* the output: the caller reads it */
    assert_int_equal(u.first[k.fc2 + 1] - u.first[k.fc2], 0);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

static void test_uses_same_value_twice_counts_twice(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    twice t = twice_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(t.m, 1, nc__shape4(2, 2, 5, 5), USES, &u);
    assert_int_equal(u.first[t.r + 1] - u.first[t.r], 2);
    assert_int_equal(nc__plan_sole_consumer(p, &u, t.r), -1);
    assert_int_equal(u.first[t.f + 1] - u.first[t.f], 2);
    plan_free(p, &u);
    nc_model_destroy(t.m);
    nc_context_destroy(ctx);
}

/* ---------------------------------------------------------------------- shapes */

static void test_shapes_batchnorm_needs_two_values_per_channel(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan *p = NULL;
    nc__shape one_pixel = nc__shape4(1, 3, 1, 1), one_sample = nc__shape4(1, 3, 8, 8);
    assert_int_equal(nc__plan_get(k.m, &p, 1, &one_pixel), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(ctx), "bn1: batch normalisation in training needs more than 1"));
    /* bn1 and bn2 see 64 values per channel, the BatchNorm1d bn3 one */
    assert_int_equal(nc__plan_get(k.m, &p, 1, &one_sample), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(ctx), "bn3: "));
    assert_null(p);
    /* eval uses the running statistics */
    assert_int_equal(nc__plan_get(k.m, &p, 0, &one_pixel), NC_OK);
    nc__plan_destroy(p);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* ---------------------------------------------------------------------- dtypes */

static void dtypes_case(nc_precision precision, nc__dtype want) {
    nc_context *ctx = spy_context(precision);
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 1, block_in, PACK, &u);
    for (int v = 0; v < k.m->graph->n_nodes; v++) assert_int_equal(p->dtype[v], want);
    for (int i = 0; i < p->n_buffers; i++) {
        const nc__buffer_owner o = p->buffer_owner[i];
        const size_t bytes = p->buffers[i].bytes, numel = (size_t)nc__shape_numel(&p->shapes[o.node]);
        if (o.kind == NC__BUFFER_SAVED)
            assert_int_equal(bytes, 2 * (size_t)p->shapes[o.node].d[1] * sizeof(float)); /* f32 always */
        else
            assert_true(bytes >= numel * nc__dtype_size(want));
    }
    print_message("  %s: arena %zu bytes\n", nc__dtype_name(want), p->arena_bytes);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

static void test_dtypes_f32_policy(void **s) {
    (void)s;
    dtypes_case(NC_PRECISION_FP32, NC__DTYPE_F32);
}

static void test_dtypes_bf16_policy(void **s) {
    (void)s;
    dtypes_case(NC_PRECISION_BF16, NC__DTYPE_BF16);
}

/* A cached plan is rebuilt when the context's precision is not the one it was made
 * under. */
static void test_plan_get_rebuilds_for_precision(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan *p = NULL;
    assert_int_equal(nc__plan_get(k.m, &p, 0, &block_in), NC_OK);
    const nc__plan *first = p;
    assert_int_equal(nc__plan_get(k.m, &p, 0, &block_in), NC_OK);
    assert_ptr_equal(p, first);
    ctx->opt.precision = NC_PRECISION_BF16;
    assert_int_equal(nc__plan_get(k.m, &p, 0, &block_in), NC_OK);
    assert_int_equal(p->dtype[k.c1], NC__DTYPE_BF16);
    nc__plan_destroy(p);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* ------------------------------------------------------------------ capability */

static void test_support_refusal_names_node_op_dtype(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan *p = NULL;
    spy.refuse = NC__K_CONV2D;
    spy.refuse_training_only = 1;
    assert_int_equal(nc__plan_get(k.m, &p, 1, &block_in), NC_ERR_UNSUPPORTED);
    assert_string_equal(nc_context_last_error(ctx), "c1: the ref backend cannot run Conv2d on f32 values (training)");
    assert_null(p);
    assert_int_equal(nc__plan_get(k.m, &p, 0, &block_in), NC_OK); /* inference is fine */
    nc__plan_destroy(p);
    p = NULL;
    spy.refuse = NC__K_BATCHNORM;
    spy.refuse_training_only = 0;
    ctx->opt.precision = NC_PRECISION_BF16;
    assert_int_equal(nc__plan_get(k.m, &p, 0, &block_in), NC_ERR_UNSUPPORTED);
    assert_string_equal(nc_context_last_error(ctx),
                        "bn1: the ref backend cannot run BatchNorm2d on bf16 values (inference)");
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* The public entry fails the same way, naming the node (an auto-named ReLU). */
static void test_support_refusal_through_model_forward(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    spy.refuse = NC__K_RELU;
    float x[2 * 3 * 8 * 8] = {0}, logits[2 * 3];
    assert_int_equal(nc_model_forward(k.m, x, 2, 3, 8, 8, logits), NC_ERR_UNSUPPORTED);
    char want[128];
    snprintf(want, sizeof want, "%s: the ref backend cannot run ReLU on f32 values (inference)",
             k.m->graph->nodes[k.a].name);
    assert_string_equal(nc_context_last_error(ctx), want);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* Every needed node is asked once, by its own kernel; the unneeded one is not. */
static void test_support_asks_every_needed_node(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 1, block_in, SUPPORT, &u);
    assert_int_equal(spy.asked[NC__K_CONV2D], 2);
    assert_int_equal(spy.asked[NC__K_BATCHNORM], 3);
    assert_int_equal(spy.asked[NC__K_RELU], 3); /* a, r, relu3; not dead */
    assert_int_equal(spy.asked[NC__K_ADD], 1);
    assert_int_equal(spy.asked[NC__K_POOL2D], 1);
    assert_int_equal(spy.asked[NC__K_FLATTEN], 1);
    assert_int_equal(spy.asked[NC__K_LINEAR], 2);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* ---------------------------------------------------------------------- fusion */

static void assert_unfused(const nc__plan *p) {
    for (int i = 0; i < p->m->graph->n_nodes; i++) {
        if (p->run_at[i] < 0) continue;
        assert_int_equal(p->run_at[i], i);
        assert_int_equal(p->fusion[i].out, i);
    }
    assert_int_equal(p->n_conv_chains, 0);
    assert_int_equal(p->n_bn_relu, 0);
}

/* The fused entries exist, `supports` refuses: nothing is grouped. */
static void test_fusion_refused_by_supports(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 0, block_in, FUSE, &u);
    assert_true(spy.asked[NC__K_CONV_FUSED_INFER] >= 2);
    assert_unfused(p);
    assert_int_equal(p->run_at[k.dead], -1);
    plan_free(p, &u);
    p = plan_upto(k.m, 1, block_in, FUSE, &u);
    assert_int_equal(spy.asked[NC__K_BN_RELU_TRAIN], 2); /* bn1 and bn3; bn2 feeds the add */
    assert_unfused(p);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

static void test_fusion_where_supported(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    spy.fused_infer = ALWAYS;
    spy.bn_relu = ALWAYS;
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 0, block_in, FUSE, &u);
    assert_int_equal(p->n_conv_chains, 2);
    assert_true(p->fusion[k.c1].bn == k.bn1 && p->fusion[k.c1].relu == k.a && p->fusion[k.c1].out == k.a);
    assert_int_equal(p->fusion[k.c1].add, -1);
    const nc__fusion *f = &p->fusion[k.c2];
    assert_true(f->bn == k.bn2 && f->add == k.add && f->residual == k.a && f->relu == k.r && f->out == k.r);
    assert_true(p->run_at[k.bn2] == k.c2 && p->run_at[k.add] == k.c2 && p->run_at[k.r] == k.c2);
    plan_free(p, &u);
    p = plan_upto(k.m, 1, block_in, FUSE, &u);
    assert_int_equal(p->n_bn_relu, 2);
    assert_int_equal(p->n_conv_chains, 0);
    assert_true(p->fusion[k.bn1].out == k.a && p->run_at[k.a] == k.bn1);
    assert_true(p->fusion[k.bn3].out == k.relu3 && p->run_at[k.relu3] == k.bn3); /* BatchNorm1d too */
    assert_int_equal(p->fusion[k.bn2].out, k.bn2);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* A backend without a residual epilogue: c2's chain falls back to conv+bn, and the
 * add and its relu run by themselves. */
static void test_fusion_prefix_when_residual_refused(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    spy.fused_infer = WITHOUT_RESIDUAL;
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 0, block_in, FUSE, &u);
    assert_int_equal(p->n_conv_chains, 2);
    assert_int_equal(p->fusion[k.c1].out, k.a);
    const nc__fusion *f = &p->fusion[k.c2];
    assert_true(f->bn == k.bn2 && f->add == -1 && f->residual == -1 && f->relu == -1 && f->out == k.bn2);
    assert_int_equal(p->run_at[k.add], k.add);
    assert_int_equal(p->run_at[k.r], k.r);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* -------------------------------------------------------------------- liveness */

static int reads_input(nc__op op) {
    return op == NC__OP_CONV2D || op == NC__OP_BATCHNORM || op == NC__OP_MAXPOOL || op == NC__OP_LINEAR;
}
static int reads_output(nc__op op) { return op == NC__OP_RELU || op == NC__OP_MAXPOOL; }

/* The value of v is written when its group runs and read until its last reader. */
static void check_value_life(const nc__plan *p, int v, const nc__interval *b) {
    const nc__graph *g = p->m->graph;
    const int n = g->n_nodes;
    assert_int_equal(b->first, nc__plan_fwd_time(p->run_at[v]));
    if (v == g->output) assert_true(b->last >= nc__plan_loss_time(n));
    if (p->training && reads_output(g->nodes[v].op)) assert_true(b->last >= nc__plan_bwd_time(n, p->run_at[v]));
    for (int c = v + 1; c < n; c++)
        for (int k = 0; p->run_at[c] >= 0 && k < g->nodes[c].n_inputs; k++) {
            if (g->nodes[c].inputs[k] != v) continue;
            assert_true(b->last >= nc__plan_fwd_time(p->run_at[c]));
            if (p->training && reads_input(g->nodes[c].op))
                assert_true(b->last >= nc__plan_bwd_time(n, p->run_at[c]));
        }
}

/* v's gradient: from its first writer (the loss for the output) to v's own backward,
 * and every consumer's backward writes it inside that interval. */
static void check_gradient_life(const nc__plan *p, int v, const nc__interval *b) {
    const nc__graph *g = p->m->graph;
    const int n = g->n_nodes;
    const int first = v == g->output ? nc__plan_loss_time(n) : nc__plan_bwd_time(n, p->run_at[p->first_writer[v]]);
    assert_int_equal(b->first, first);
    assert_int_equal(b->last, nc__plan_bwd_time(n, p->run_at[v]));
    for (int c = v + 1; c < n; c++)
        for (int k = 0; p->run_at[c] >= 0 && k < g->nodes[c].n_inputs; k++)
            if (g->nodes[c].inputs[k] == v) {
                const int t = nc__plan_bwd_time(n, p->run_at[c]);
                assert_true(first <= t && t <= b->last);
            }
}

static void check_buffer(const nc__plan *p, int i) {
    nc_context *ctx = p->m->ctx;
    const nc__interval *b = &p->buffers[i];
    const nc__buffer_owner o = p->buffer_owner[i];
    const int v = o.node, n = p->m->graph->n_nodes;
    assert_true(b->first <= b->last);
    assert_true(b->offset + b->bytes <= p->arena_bytes);
    if (o.kind == NC__BUFFER_SAVED) {
        assert_int_equal(b->bytes, 2 * (size_t)p->shapes[v].d[1] * sizeof(float));
        assert_int_equal(b->first, nc__plan_fwd_time(p->run_at[v]));
        assert_int_equal(b->last, nc__plan_bwd_time(n, p->run_at[v]));
        assert_int_equal(p->save_off[v], b->offset);
        return;
    }
    const nc__value_desc d = nc__plan_value_desc(p, v);
    assert_int_equal(b->bytes, ctx->backend->value_bytes(ctx->backend_state, &d));
    if (o.kind == NC__BUFFER_VALUE) {
        assert_int_equal(p->val_off[v], b->offset);
        check_value_life(p, v, b);
    } else {
        assert_int_equal(p->grad_off[v], b->offset);
        check_gradient_life(p, v, b);
    }
}

/* Every buffer follows the rules above; none shares memory with one live at the
 * same time; fused intermediates have none. */
static void check_liveness(const nc__plan *p) {
    size_t naive = 0;
    for (int i = 0; i < p->n_buffers; i++) {
        check_buffer(p, i);
        naive += (p->buffers[i].bytes + 63) / 64 * 64;
        const nc__interval *a = &p->buffers[i];
        for (int k = 0; k < i; k++) {
            const nc__interval *b = &p->buffers[k];
            const int time = !(a->last < b->first || b->last < a->first);
            const int mem = a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes;
            assert_false(time && mem);
        }
    }
    assert_int_equal(naive, p->naive_bytes);
    for (int v = 0; v < p->m->graph->n_nodes; v++) {
        const int owned = p->run_at[v] >= 0 && p->fusion[p->run_at[v]].out == v;
        assert_int_equal(p->val_off[v] != SIZE_MAX, owned);
        if (!owned) assert_int_equal(p->grad_off[v], SIZE_MAX);
    }
}

static void liveness_case(nc_model *m, nc__shape in, int fused) {
    spy.fused_infer = spy.bn_relu = fused ? ALWAYS : NEVER;
    for (int training = 0; training < 2; training++) {
        nc__plan_uses u;
        nc__plan *p = plan_upto(m, training, in, WRITERS, &u);
        check_liveness(p);
        print_message("  %s%s: %d buffers, arena %zu of %zu bytes\n", training ? "train" : "eval",
                      fused ? " fused" : "", p->n_buffers, p->arena_bytes, p->naive_bytes);
        assert_true(p->arena_bytes < p->naive_bytes);
        plan_free(p, &u);
    }
}

static void test_liveness_block(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    liveness_case(k.m, block_in, 0);
    liveness_case(k.m, block_in, 1);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

static void test_liveness_resnet18(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    nc_model *m = resnet18(ctx);
    liveness_case(m, nc__shape4(2, 3, 32, 32), 0);
    liveness_case(m, nc__shape4(2, 3, 32, 32), 1);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_liveness_bf16_bytes(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_BF16);
    nc_model *m = resnet18(ctx);
    liveness_case(m, nc__shape4(2, 3, 32, 32), 0);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* ------------------------------------------------------------- gradient writes */

/* Each gradient's first writer is the consumer whose backward runs first. */
static void check_writers(const nc__plan *p) {
    const nc__graph *g = p->m->graph;
    for (int v = 0; v < g->n_nodes; v++) {
        const int w = p->first_writer[v];
        if (p->grad_off[v] == SIZE_MAX || v == g->output) {
            assert_int_equal(w, -1);
            continue;
        }
        assert_true(w > v);
        int reads = 0;
        for (int c = v + 1; c < g->n_nodes; c++)
            for (int k = 0; p->run_at[c] >= 0 && k < g->nodes[c].n_inputs; k++)
                if (g->nodes[c].inputs[k] == v) {
                    reads += c == w;
                    assert_true(p->run_at[c] <= p->run_at[w]);
                }
        assert_true(reads > 0);
    }
}

static void test_writers_block(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 1, block_in, WRITERS, &u);
    check_writers(p);
    assert_int_equal(p->first_writer[k.a], k.add); /* c2 reads it earlier; dead does not count */
    assert_int_equal(p->first_writer[k.c1], k.bn1);
    assert_int_equal(p->first_writer[k.x], -1);
    assert_int_equal(p->first_writer[k.fc2], -1); /* the loss writes it */
    assert_int_equal(p->first_writer[k.dead], -1);
    plan_free(p, &u);
    spy.bn_relu = ALWAYS; /* the fused BN's own value has no gradient; its input's writer is the head */
    p = plan_upto(k.m, 1, block_in, WRITERS, &u);
    check_writers(p);
    assert_int_equal(p->first_writer[k.bn1], -1);
    assert_int_equal(p->first_writer[k.c1], k.bn1);
    assert_int_equal(p->first_writer[k.a], k.add);
    plan_free(p, &u);
    p = plan_upto(k.m, 0, block_in, WRITERS, &u); /* eval: no gradients */
    for (int v = 0; v < k.m->graph->n_nodes; v++) assert_int_equal(p->first_writer[v], -1);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* "Last" is by run position, the later node on a tie. */
static void test_last_consumer_by_run_position(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    block k = block_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(k.m, 1, block_in, FUSE, &u);
    assert_int_equal(nc__plan_last_consumer(p, &u, k.a), k.add);
    p->run_at[k.c2] = k.add + 1;
    assert_int_equal(nc__plan_last_consumer(p, &u, k.a), k.c2);
    p->run_at[k.c2] = k.add;
    assert_int_equal(nc__plan_last_consumer(p, &u, k.a), k.add);
    assert_int_equal(nc__plan_last_consumer(p, &u, k.fc2), -1);
    plan_free(p, &u);
    nc_model_destroy(k.m);
    nc_context_destroy(ctx);
}

/* add(r, r) and concat(f, f): input 0 sets, input 1 adds. */
static void test_write_mode_same_value_twice(void **s) {
    (void)s;
    nc_context *ctx = spy_context(NC_PRECISION_FP32);
    twice t = twice_model(ctx);
    nc__plan_uses u;
    nc__plan *p = plan_upto(t.m, 1, nc__shape4(2, 2, 5, 5), WRITERS, &u);
    check_writers(p);
    assert_int_equal(p->first_writer[t.r], t.add);
    assert_int_equal(nc__plan_write_mode(p, t.add, 0), NC__WRITE_SET);
    assert_int_equal(nc__plan_write_mode(p, t.add, 1), NC__WRITE_ADD);
    assert_int_equal(nc__plan_write_mode(p, t.cat, 0), NC__WRITE_SET);
    assert_int_equal(nc__plan_write_mode(p, t.cat, 1), NC__WRITE_ADD);
    assert_int_equal(nc__plan_write_mode(p, t.r, 0), NC__WRITE_SET);
    assert_int_equal(nc__plan_write_mode(p, t.c, 0), NC__WRITE_ADD); /* the graph input: no gradient */
    plan_free(p, &u);
    nc_model_destroy(t.m);
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uses_needed_and_consumers),
        cmocka_unit_test(test_uses_same_value_twice_counts_twice),
        cmocka_unit_test(test_shapes_batchnorm_needs_two_values_per_channel),
        cmocka_unit_test(test_dtypes_f32_policy),
        cmocka_unit_test(test_dtypes_bf16_policy),
        cmocka_unit_test(test_plan_get_rebuilds_for_precision),
        cmocka_unit_test(test_support_refusal_names_node_op_dtype),
        cmocka_unit_test(test_support_refusal_through_model_forward),
        cmocka_unit_test(test_support_asks_every_needed_node),
        cmocka_unit_test(test_fusion_refused_by_supports),
        cmocka_unit_test(test_fusion_where_supported),
        cmocka_unit_test(test_fusion_prefix_when_residual_refused),
        cmocka_unit_test(test_liveness_block),
        cmocka_unit_test(test_liveness_resnet18),
        cmocka_unit_test(test_liveness_bf16_bytes),
        cmocka_unit_test(test_writers_block),
        cmocka_unit_test(test_last_consumer_by_run_position),
        cmocka_unit_test(test_write_mode_same_value_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
