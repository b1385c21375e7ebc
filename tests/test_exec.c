/* test_exec.c — the executor and autodiff as a whole: finite-difference checks of
 * parameter and input gradients through small graphs using every op, the memory
 * plan's reuse (no two live buffers overlap, the arena is smaller than no reuse),
 * recomputation (a DenseNet's gradients and statistics equal with and without it,
 * in less memory), and eval vs train behaviour. */
#include "testutil.h"

#include "core/context.h"
#include "core/model.h"
#include "graph/plan_passes.h"
#include "train/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct fd_case {
    nc_model *m;
    const float *x;
    const int32_t *labels;
    int n, c, h, w;
    float *logits;
} fd_case;

/* Training-mode loss (batch statistics, dropout off) as a function of the parameters. */
static double train_loss(void *user) {
    fd_case *fc = user;
    nc_model *m = fc->m;
    nc__shape in = nc__shape4(fc->n, fc->c, fc->h, fc->w);
    assert_int_equal(nc__plan_get(m, &m->plan_train, 1, &in), NC_OK);
    assert_int_equal(nc__plan_forward(m->plan_train, fc->x, 1, 42), NC_OK);
    assert_int_equal(nc__plan_read_output(m->plan_train, fc->logits), NC_OK);
    double loss;
    assert_int_equal(nc__softmax_xent(m->ctx, fc->logits, fc->labels, fc->n, m->graph->num_heads, m->num_classes,
                                      NULL, &loss, NULL),
                     NC_OK);
    return loss;
}

/* Backward from host dlogits: written where the loss entry would write them. */
static void backward_from_host(nc__plan *p, const float *dlogits) {
    nc_context *ctx = p->m->ctx;
    const nc__value_desc d = nc__plan_value_desc(p, p->m->graph->output);
    assert_int_equal(ctx->backend->value_upload(ctx->backend_state, &d, nc__plan_output_grad(p), dlogits), NC_OK);
    assert_int_equal(nc__plan_backward(p), NC_OK);
}

/* A graph with every op: two branches joined by add, both pools, dropout p=0 so the
 * function is deterministic, flatten, two linear heads concatenated. */
static nc_model *every_op_model(nc_context *ctx, int heads) {
    nc_builder *b;
    nc_value x, y, a, c, d, hs[2];
    assert_int_equal(nc_builder_create(ctx, 2, &b, &x), NC_OK);
    nc_builder_conv2d(b, "conv1", x, 4, 3, 1, 1, 1, 1, 1, &y);
    nc_builder_batchnorm(b, "bn1", y, 1e-5f, 0.1f, &y);
    nc_builder_relu(b, y, &y);
    nc_builder_conv2d(b, "conv2", y, 4, 3, 2, 2, 2, 2, 0, &a);       /* grouped, strided, dilated */
    nc_builder_max_pool2d(b, y, 3, 2, 1, &c);
    nc_builder_add(b, a, c, &y);
    nc_builder_avg_pool2d(b, y, 2, 1, 1, &y);
    nc_builder_conv2d(b, "conv3", y, 6, 1, 1, 0, 1, 1, 0, &y);
    nc_builder_adaptive_avg_pool2d(b, y, 2, 2, &y);
    nc_builder_flatten(b, y, &y);
    nc_builder_dropout(b, y, 0.0f, &y);
    nc_builder_linear(b, "fc0", y, 8, 1, &d);
    nc_builder_batchnorm(b, "bn2", d, 1e-5f, 0.1f, &d);
    nc_builder_relu(b, d, &d);
    nc_builder_linear(b, "head.0", d, 3, 1, &hs[0]);
    nc_builder_linear(b, "head.1", d, 3, 1, &hs[1]);
    if (heads == 2)
        nc_builder_concat(b, hs, 2, &y);
    else
        y = hs[0];
    nc_model *m = NULL;
    assert_int_equal(nc_builder_finish(b, y, heads, 7, &m), NC_OK);
    nc_builder_destroy(b);
    return m;
}

static void check_gradients(int heads) {
    nc_context *ctx = tu_ref_context(1);
    nc_model *m = every_op_model(ctx, heads);
    assert_int_equal(nc__model_ensure_grads(m), NC_OK);
    enum { N = 8, C = 2, H = 9, W = 7 };
    float x[N * C * H * W];
    tu_fill_uniform(x, N * C * H * W, -1, 1, 11);
    int32_t labels[N * 2];
    for (int i = 0; i < N * 2; i++) labels[i] = (i * 7 + 1) % 3;
    float logits[N * 6], dlogits[N * 6];
    fd_case fc = {m, x, labels, N, C, H, W, logits};

    /* analytic gradients */
    train_loss(&fc);
    double loss;
    assert_int_equal(nc__softmax_xent(ctx, logits, labels, N, heads, 3, dlogits, &loss, NULL), NC_OK);
    assert_int_equal(ctx->backend->fill(ctx->backend_state, m->grad_arena, 0.0f, nc__model_param_floats(m)), NC_OK);
    backward_from_host(m->plan_train, dlogits);

    /* Probes: the 4 largest analytic components of each tensor and 2 more; errors
     * are relative to the tensor's largest component so that float32 noise on
     * tiny components and ReLU kinks do not hide (or fake) a wrong backward rule;
     * below 1e-3 a difference is under the resolution of a float32 loss. */
    double worst = 0;
    for (int i = 0; i < m->graph->n_tensors; i++) {
        const nc__tensor_def *t = &m->graph->tensors[i];
        if (!t->trainable) continue;
        float *p = nc__model_tensor_ptr(m, i), *gr = nc__model_grad_ptr(m, i);
        size_t count = (size_t)m->slots[i].numel;
        double gmax = 0;
        for (size_t k = 0; k < count; k++) gmax = fmax(gmax, fabs(gr[k]));
        size_t probe[6];
        for (int q = 0; q < 6; q++) {
            size_t best = (size_t)q * 7919 % count;
            if (q < 4)
                for (size_t k = 0; k < count; k++) {
                    int used = 0;
                    for (int r = 0; r < q; r++) used |= probe[r] == k;
                    if (!used && fabs(gr[k]) > fabs(gr[best])) best = k;
                }
            probe[q] = best;
        }
        double e = 0;
        for (int q = 0; q < 6; q++) {
            float orig = p[probe[q]];
            p[probe[q]] = orig + 3e-3f;
            double lp = train_loss(&fc);
            p[probe[q]] = orig - 3e-3f;
            double lm = train_loss(&fc);
            p[probe[q]] = orig;
            double fd = (lp - lm) / 6e-3, an = gr[probe[q]];
            e = fmax(e, fabs(fd - an) / fmax(fabs(fd) + fabs(an), 0.05 * gmax + 1e-3));
        }
        print_message("  %-16s max |grad| %.2e, fd error %.2e\n", t->name, gmax, e);
        if (e > worst) worst = e;
    }
    assert_true(worst < 5e-2);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_autodiff_every_op_single_head(void **s) {
    (void)s;
    check_gradients(1);
}

static void test_autodiff_every_op_two_heads(void **s) {
    (void)s;
    check_gradients(2);
}

static void test_plan_memory_no_overlap(void **s) {
    (void)s;
    nc__interval iv[64];
    for (int i = 0; i < 64; i++) {
        int a = (int)((unsigned)(i * 37) % 50), len = 1 + (i * 13) % 20;
        iv[i] = (nc__interval){(size_t)(64 + (i * 977) % 4000), a, a + len, 0};
    }
    nc_context *ctx;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    size_t total = nc__plan_memory(ctx, iv, 64, 64), naive = 0;
    nc_context_destroy(ctx);
    for (int i = 0; i < 64; i++) {
        naive += (iv[i].bytes + 63) / 64 * 64;
        assert_true(iv[i].offset % 64 == 0);
        assert_true(iv[i].offset + iv[i].bytes <= total);
        for (int k = 0; k < i; k++) {
            int time_overlap = !(iv[i].last < iv[k].first || iv[k].last < iv[i].first);
            int mem_overlap = iv[i].offset < iv[k].offset + iv[k].bytes && iv[k].offset < iv[i].offset + iv[i].bytes;
            assert_false(time_overlap && mem_overlap);
        }
    }
    assert_true(total < naive);
}

static void test_plan_reuses_activations(void **s) {
    (void)s;
    nc_context *ctx;
    nc_context_options co; /* ref: every op its own buffer (fused plans: test_fusion) */
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF;
    assert_int_equal(nc_context_create(&co, &ctx), NC_OK);
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "resnet18";
    o.num_classes = 10;
    o.small_input = 1;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    nc__shape in = nc__shape4(2, 3, 32, 32);
    nc__plan *pe;
    assert_int_equal(nc__plan_pool_take(m, &m->eval_plans, &in, &pe), NC_OK);
    print_message("  eval arena %zu bytes, without reuse %zu\n", pe->arena_bytes, pe->naive_bytes);
    assert_true(pe->arena_bytes * 4 < pe->naive_bytes);
    nc__plan_pool_give(&m->eval_plans, pe);
    assert_int_equal(nc__plan_get(m, &m->plan_train, 1, &in), NC_OK);
    print_message("  train arena %zu bytes, without reuse %zu\n", m->plan_train->arena_bytes,
                  m->plan_train->naive_bytes);
    assert_true(m->plan_train->arena_bytes < m->plan_train->naive_bytes);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

static void test_forward_eval_is_deterministic_and_batch_independent(void **s) {
    (void)s;
    nc_context *ctx;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    nc_model *m = every_op_model(ctx, 2);
    enum { N = 4, C = 2, H = 9, W = 7, S = C * H * W };
    float x[N * S], all[N * 6], one[6];
    tu_fill_uniform(x, N * S, -1, 1, 3);
    assert_int_equal(nc_model_forward(m, x, N, C, H, W, all), NC_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(nc_model_forward(m, x + i * S, 1, C, H, W, one), NC_OK);
        assert_true(tu_norm_err(one, all + i * 6, 6) < 1e-5);
    }
    nc_model_destroy(m);
    nc_context_destroy(ctx);
}

/* ---------------------------------------------------------- recomputation */

static nc_context *backend_context(nc_backend_kind kind) {
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = kind;
    co.num_threads = 2;
    nc_context *ctx = NULL;
    return nc_context_create(&co, &ctx) == NC_OK ? ctx : NULL;
}

static nc_model *densenet(nc_context *ctx, const char *arch, int marks) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = arch;
    o.num_classes = 5;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    for (int i = 0; !marks && i < m->graph->n_nodes; i++) m->graph->nodes[i].recompute = 0;
    return m;
}

/* One training forward and backward from fixed dlogits: every tensor's gradient,
 * then every tensor (running statistics included), copied; the plan's arena size. */
static float *densenet_step(nc_context *ctx, int marks, size_t *arena, size_t *floats) {
    enum { N = 2, H = 32 };
    nc_model *m = densenet(ctx, "densenet121", marks);
    assert_int_equal(nc__model_ensure_grads(m), NC_OK);
    assert_int_equal(ctx->backend->fill(ctx->backend_state, m->grad_arena, 0.0f, nc__model_param_floats(m)), NC_OK);
    float *x = tu_rand(N * 3 * H * H, -1, 1, 5), *dl = tu_rand(N * 5, -1, 1, 6);
    const nc__shape in = nc__shape4(N, 3, H, H);
    assert_int_equal(nc__plan_get(m, &m->plan_train, 1, &in), NC_OK);
    assert_int_equal(nc__plan_forward(m->plan_train, x, 1, 42), NC_OK);
    backward_from_host(m->plan_train, dl);
    *arena = m->plan_train->arena_bytes;
    *floats = 0; /* tensor by tensor: the arenas have alignment gaps */
    for (int i = 0; i < m->graph->n_tensors; i++) *floats += (size_t)m->slots[i].numel;
    float *out = malloc(2 * *floats * sizeof *out), *o = out; /* CPU backends: host memory */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < m->graph->n_tensors; i++) {
            const size_t k = (size_t)m->slots[i].numel;
            memcpy(o, pass ? nc__model_tensor_ptr(m, i) : nc__model_grad_ptr(m, i), k * sizeof *o);
            o += k;
        }
    int64_t batches = 0;
    for (int i = 0; i < m->graph->n_tensors; i++) batches += m->num_batches[i];
    assert_int_equal(batches, 121); /* every batch norm counted once: 1 + 58*2 + 3 + 1 */
    free(x);
    free(dl);
    nc_model_destroy(m);
    return out;
}

static void check_recompute(nc_backend_kind kind) {
    nc_context *ctx = backend_context(kind);
    if (!ctx) skip();
    size_t arena_rec, arena_all, n_rec, n_all;
    float *rec = densenet_step(ctx, 1, &arena_rec, &n_rec);
    float *all = densenet_step(ctx, 0, &arena_all, &n_all);
    assert_int_equal(n_rec, n_all);
    const double eg = tu_norm_err(rec, all, n_rec), ep = tu_norm_err(rec + n_rec, all + n_rec, n_rec);
    print_message("  %s: gradients differ by %.2g, parameters and statistics by %.2g; arena %zu bytes "
                  "recomputing, %zu keeping every concat\n",
                  ctx->backend->name, eg, ep, arena_rec, arena_all);
    assert_true(eg < 1e-6);
    assert_true(ep < 1e-7);
    assert_true(arena_rec < arena_all);
    free(rec);
    free(all);
    nc_context_destroy(ctx);
}

static void test_recompute_densenet_ref(void **s) {
    (void)s;
    check_recompute(NC_BACKEND_REF);
}

/* oneDNN fuses norm1 + relu1 in training: the recomputed group is the fused call. */
static void test_recompute_densenet_onednn(void **s) {
    (void)s;
    check_recompute(NC_BACKEND_ONEDNN);
}

/* The planned training arena (no run, no allocation) with and without the marks. */
static size_t train_arena(nc_model *m, const nc__shape *in) {
    nc__plan *p = NULL;
    nc__plan_uses u = {0};
    assert_int_equal(nc__plan_alloc(m, 1, in, &p), NC_OK);
    assert_int_equal(nc__plan_find_uses(p, &u), NC_OK);
    assert_int_equal(nc__plan_infer_shapes(p, &u), NC_OK);
    nc__plan_assign_dtypes(p);
    nc__plan_fuse(p, &u);
    nc__plan_choose_recompute(p, &u);
    nc__plan_liveness(p, &u);
    nc__plan_pack(p);
    const size_t bytes = p->arena_bytes;
    nc__plan_uses_free(m->ctx, &u);
    nc__plan_destroy(p);
    return bytes;
}

/* ImageNet-sized batches: the saving grows with the depth (Pleiss et al.). */
static void test_recompute_densenet_memory(void **s) {
    (void)s;
    static const char *const arches[] = {"densenet121", "densenet201"};
    nc_context *ctx = tu_ref_context(1);
    for (int a = 0; a < 2; a++) {
        const nc__shape in = nc__shape4(32, 3, 224, 224);
        nc_model *m = densenet(ctx, arches[a], 1);
        const size_t rec = train_arena(m, &in);
        for (int i = 0; i < m->graph->n_nodes; i++) m->graph->nodes[i].recompute = 0;
        const size_t all = train_arena(m, &in);
        print_message("  %s, batch 32 at 224x224: training arena %.2f GiB recomputing, %.2f GiB keeping every "
                      "concat (%.0f%%)\n",
                      arches[a], rec / 1073741824.0, all / 1073741824.0, 100.0 * rec / all);
        assert_true(rec * 10 < all * 5);
        nc_model_destroy(m);
    }
    nc_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_autodiff_every_op_single_head),
        cmocka_unit_test(test_autodiff_every_op_two_heads),
        cmocka_unit_test(test_plan_memory_no_overlap),
        cmocka_unit_test(test_plan_reuses_activations),
        cmocka_unit_test(test_forward_eval_is_deterministic_and_batch_independent),
        cmocka_unit_test(test_recompute_densenet_ref),
        cmocka_unit_test(test_recompute_densenet_onednn),
        cmocka_unit_test(test_recompute_densenet_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
