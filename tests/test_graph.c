/* test_graph.c — the graph builder (parameter definitions, every validation error
 * with its message, sticky errors, names), shape inference with PyTorch's formulas
 * (dilation, odd sizes, too-small inputs) and the summary table. */
#include "testutil.h"

#include "neurc.h"
#include "core/context.h"
#include "core/model.h"
#include "graph/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- fixtures */

typedef struct fx {
    nc_context *ctx;
    nc_builder *b;
    nc_value in;
} fx;

static int setup3(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f || nc_context_create(NULL, &f->ctx) != NC_OK) return -1;
    if (nc_builder_create(f->ctx, 3, &f->b, &f->in) != NC_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    nc_builder_destroy(f->b);
    nc_context_destroy(f->ctx);
    free(f);
    return 0;
}

/* Status and message substring of the last call. */
static void expect_error(const fx *f, nc_status got, nc_status want, const char *substr) {
    const char *msg = nc_context_last_error(f->ctx);
    if (got != want || !strstr(msg, substr)) {
        print_error("status %d (want %d), message '%s' (want substring '%s')\n", (int)got, (int)want, msg,
                    substr);
        fail();
    }
}

static nc__graph *G(const fx *f) { return nc__builder_graph(f->b); }

static const nc__tensor_def *tensor(const fx *f, const char *name) {
    int i = nc__graph_find_tensor(G(f), name);
    if (i < 0) {
        print_error("tensor '%s' not found\n", name);
        fail();
    }
    return &G(f)->tensors[i];
}

static void expect_shape(const nc__shape *s, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    const int64_t d[4] = {d0, d1, d2, d3};
    assert_int_equal(s->ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(s->d[i], d[i]);
}

/* A 2-D value: adaptive pool 1x1 + flatten of the input. */
static nc_value flat(fx *f, nc_value x) {
    nc_value v;
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, x, 1, 1, &v), NC_OK);
    assert_int_equal(nc_builder_flatten(f->b, v, &v), NC_OK);
    return v;
}

/* ------------------------------------------------------- creation, defs */

static void test_builder_create_errors(void **state) {
    fx *f = *state;
    nc_builder *b = NULL;
    nc_value in;
    assert_int_equal(nc_builder_create(NULL, 3, &b, &in), NC_ERR_NULL);
    expect_error(f, nc_builder_create(f->ctx, 3, NULL, &in), NC_ERR_NULL, "NULL");
    expect_error(f, nc_builder_create(f->ctx, 0, &b, &in), NC_ERR_INVALID_ARGUMENT, "in_channels 0");
    assert_null(b);
}

static void test_builder_input_node(void **state) {
    fx *f = *state;
    assert_int_equal(f->in, 0);
    assert_int_equal(G(f)->n_nodes, 1);
    assert_int_equal(G(f)->nodes[0].op, NC__OP_INPUT);
    assert_int_equal(G(f)->nodes[0].rank, 4);
    assert_int_equal(G(f)->nodes[0].channels, 3);
    assert_int_equal(G(f)->in_channels, 3);
}

static void test_builder_conv_param_defs(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_conv2d(f->b, "c1", f->in, 8, 3, 1, 1, 1, 1, 1, &y), NC_OK);
    assert_int_equal(G(f)->nodes[y].channels, 8);
    assert_int_equal(G(f)->nodes[y].n_tensors, 2);
    const nc__tensor_def *w = tensor(f, "c1.weight"), *b = tensor(f, "c1.bias");
    expect_shape(&w->shape, 4, 8, 3, 3, 3);
    assert_int_equal(w->role, NC__ROLE_WEIGHT);
    assert_int_equal(w->init, NC__INIT_KAIMING_NORMAL_FAN_OUT);
    assert_int_equal(w->fan_in, 27);
    assert_int_equal(w->fan_out, 72);
    assert_true(w->trainable);
    assert_int_equal(w->node, y);
    expect_shape(&b->shape, 1, 8, 0, 0, 0);
    assert_int_equal(b->role, NC__ROLE_BIAS);
    assert_int_equal(b->init, NC__INIT_LINEAR_UNIFORM);
    assert_int_equal(b->fan_in, 27);
    assert_true(b->trainable);
    /* grouped: weight (K, C/G, k, k); PyTorch's fans: fan_in = C/G*k*k, fan_out = K*k*k */
    assert_int_equal(nc_builder_conv2d(f->b, "c2", y, 16, 3, 2, 1, 1, 4, 0, &y), NC_OK);
    w = tensor(f, "c2.weight");
    expect_shape(&w->shape, 4, 16, 2, 3, 3);
    assert_int_equal(w->fan_in, 18);
    assert_int_equal(w->fan_out, 144);
    assert_int_equal(nc__graph_find_tensor(G(f), "c2.bias"), -1);
    const nc__conv_attr *a = &G(f)->nodes[y].attr.conv;
    assert_int_equal(a->groups, 4);
    assert_int_equal(a->stride_h, 2);
    assert_int_equal(a->bias, 0);
}

static void test_builder_batchnorm_param_defs(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_batchnorm(f->b, "bn", f->in, 1e-5f, 0.1f, &y), NC_OK);
    static const char *suffix[5] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
    static const nc__tensor_role role[5] = {NC__ROLE_WEIGHT, NC__ROLE_BIAS, NC__ROLE_RUNNING_MEAN,
                                            NC__ROLE_RUNNING_VAR, NC__ROLE_NUM_BATCHES};
    static const nc__init init[5] = {NC__INIT_ONE, NC__INIT_ZERO, NC__INIT_ZERO, NC__INIT_ONE, NC__INIT_ZERO};
    assert_int_equal(G(f)->nodes[y].n_tensors, 5);
    for (int i = 0; i < 5; i++) {
        const nc__tensor_def *t = &G(f)->tensors[G(f)->nodes[y].tensors[i]];
        char want[64];
        snprintf(want, sizeof want, "bn.%s", suffix[i]);
        assert_string_equal(t->name, want);
        assert_int_equal(t->role, role[i]);
        assert_int_equal(t->init, init[i]);
        assert_int_equal(t->trainable, i < 2);
        if (i < 4) expect_shape(&t->shape, 1, 3, 0, 0, 0);
        else assert_int_equal(t->shape.ndim, 0);
    }
    assert_true(fabsf(G(f)->nodes[y].attr.bn.eps - 1e-5f) < 1e-12f);
    /* BatchNorm1d on a 2-D value */
    nc_value v = flat(f, f->in);
    assert_int_equal(nc_builder_batchnorm(f->b, "bn1d", v, 1e-5f, 0.1f, &y), NC_OK);
    assert_int_equal(G(f)->nodes[y].rank, 2);
}

static void test_builder_linear_param_defs(void **state) {
    fx *f = *state;
    nc_value y, v = flat(f, f->in);
    assert_int_equal(nc_builder_linear(f->b, "fc", v, 10, 1, &y), NC_OK);
    const nc__tensor_def *w = tensor(f, "fc.weight"), *b = tensor(f, "fc.bias");
    expect_shape(&w->shape, 2, 10, 3, 0, 0);
    expect_shape(&b->shape, 1, 10, 0, 0, 0);
    assert_int_equal(w->init, NC__INIT_LINEAR_UNIFORM);
    assert_int_equal(b->init, NC__INIT_LINEAR_UNIFORM);
    assert_int_equal(w->fan_in, 3);
    assert_int_equal(b->fan_in, 3);
    assert_int_equal(G(f)->nodes[y].channels, 10);
    assert_int_equal(G(f)->nodes[y].rank, 2);
}

static void test_builder_auto_names_unique(void **state) {
    fx *f = *state;
    nc_value a, r;
    /* a user layer takes the name the next relu would get */
    assert_int_equal(nc_builder_conv2d(f->b, "relu_2", f->in, 4, 1, 1, 0, 1, 1, 0, &a), NC_OK);
    assert_int_equal(nc_builder_relu(f->b, a, &r), NC_OK);
    assert_string_equal(G(f)->nodes[r].name, "relu_2_1");
    assert_int_equal(nc_builder_max_pool2d(f->b, r, 2, 2, 0, &r), NC_OK);
    assert_string_equal(G(f)->nodes[r].name, "maxpool_3");
    assert_int_equal(nc_builder_add(f->b, r, r, &r), NC_OK);
    assert_string_equal(G(f)->nodes[r].name, "add_4");
}

/* ------------------------------------------------------- error paths */

static void test_builder_null_builder(void **state) {
    (void)state;
    nc_value y;
    assert_int_equal(nc_builder_conv2d(NULL, "c", 0, 1, 1, 1, 0, 1, 1, 0, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_batchnorm(NULL, "b", 0, 1e-5f, 0.1f, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_relu(NULL, 0, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_max_pool2d(NULL, 0, 2, 2, 0, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_avg_pool2d(NULL, 0, 2, 2, 0, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(NULL, 0, 1, 1, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_add(NULL, 0, 0, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_linear(NULL, "l", 0, 1, 1, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_dropout(NULL, 0, 0.5f, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_flatten(NULL, 0, &y), NC_ERR_NULL);
    assert_int_equal(nc_builder_concat(NULL, &y, 1, &y), NC_ERR_NULL);
    nc_model *m;
    assert_int_equal(nc_builder_finish(NULL, 0, 1, 0, &m), NC_ERR_NULL);
    assert_null(nc__builder_graph(NULL));
}

static void test_builder_null_output(void **state) {
    fx *f = *state;
    expect_error(f, nc_builder_relu(f->b, f->in, NULL), NC_ERR_NULL, "NULL output");
}

static void test_builder_null_name(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, NULL, f->in, 4, 3, 1, 1, 1, 1, 0, &y), NC_ERR_NULL, "name");
}

static void test_builder_empty_name(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "", f->in, 4, 3, 1, 1, 1, 1, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "empty layer name");
}

static void test_builder_duplicate_name(void **state) {
    fx *f = *state;
    nc_value y, z;
    assert_int_equal(nc_builder_conv2d(f->b, "conv1", f->in, 4, 3, 1, 1, 1, 1, 0, &y), NC_OK);
    expect_error(f, nc_builder_batchnorm(f->b, "conv1", y, 1e-5f, 0.1f, &z), NC_ERR_INVALID_ARGUMENT,
                 "name 'conv1' already used");
}

static void test_builder_bad_value(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "conv1", 99, 4, 3, 1, 1, 1, 1, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "conv1: value 99 does not exist");
}

static void test_builder_negative_value(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_relu(f->b, -1, &y), NC_ERR_INVALID_ARGUMENT, "value -1 does not exist");
}

static void test_builder_conv_needs_4d(void **state) {
    fx *f = *state;
    nc_value y, v = flat(f, f->in);
    expect_error(f, nc_builder_conv2d(f->b, "c", v, 4, 3, 1, 1, 1, 1, 0, &y), NC_ERR_SHAPE,
                 "c: conv2d needs a 4-D input");
}

static void test_builder_conv_groups_not_dividing_channels(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "layer2.0.conv1", f->in, 4, 3, 1, 1, 1, 2, 0, &y), NC_ERR_SHAPE,
                 "layer2.0.conv1: input has 3 channels but groups=2 does not divide");
}

static void test_builder_conv_groups_not_dividing_out(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_conv2d(f->b, "a", f->in, 4, 1, 1, 0, 1, 1, 0, &y), NC_OK);
    expect_error(f, nc_builder_conv2d(f->b, "b", y, 5, 3, 1, 1, 1, 2, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "out_channels=5 is not divisible by groups=2");
}

static void test_builder_conv_kernel_zero(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "c", f->in, 4, 0, 1, 0, 1, 1, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "kernel=0");
}

static void test_builder_conv_stride_zero(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "c", f->in, 4, 3, 0, 0, 1, 1, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "stride=0");
}

static void test_builder_conv_negative_padding(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "c", f->in, 4, 3, 1, -1, 1, 1, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "padding=-1");
}

static void test_builder_conv_dilation_zero(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "c", f->in, 4, 3, 1, 1, 0, 1, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "dilation=0");
}

static void test_builder_conv_zero_out_channels(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "c", f->in, 0, 3, 1, 1, 1, 1, 0, &y), NC_ERR_INVALID_ARGUMENT,
                 "out_channels=0");
}

static void test_builder_conv_too_large(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_conv2d(f->b, "c", f->in, 1 << 30, 1 << 15, 1, 0, 1, 1, 0, &y),
                 NC_ERR_INVALID_ARGUMENT, "too large");
}

static void test_builder_conv_static_input_too_small(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 3, 3, &y), NC_OK);
    expect_error(f, nc_builder_conv2d(f->b, "c", y, 4, 5, 1, 0, 1, 1, 0, &y), NC_ERR_SHAPE,
                 "c: input 3x3 too small for kernel 5");
}

static void test_builder_batchnorm_bad_eps(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_batchnorm(f->b, "bn", f->in, 0.0f, 0.1f, &y), NC_ERR_INVALID_ARGUMENT,
                 "bn: batchnorm eps=0");
}

static void test_builder_batchnorm_bad_momentum(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_batchnorm(f->b, "bn", f->in, 1e-5f, 1.5f, &y), NC_ERR_INVALID_ARGUMENT,
                 "momentum=1.5");
}

static void test_builder_pool_needs_4d(void **state) {
    fx *f = *state;
    nc_value y, v = flat(f, f->in);
    expect_error(f, nc_builder_max_pool2d(f->b, v, 2, 2, 0, &y), NC_ERR_SHAPE, "needs a 4-D input");
}

static void test_builder_pool_padding_too_large(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_avg_pool2d(f->b, f->in, 3, 1, 2, &y), NC_ERR_INVALID_ARGUMENT,
                 "padding=2 must be at most half the kernel size 3");
}

static void test_builder_pool_bad_stride(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_max_pool2d(f->b, f->in, 2, 0, 0, &y), NC_ERR_INVALID_ARGUMENT, "stride=0");
}

static void test_builder_adaptive_bad_size(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_adaptive_avg_pool2d(f->b, f->in, 0, 7, &y), NC_ERR_INVALID_ARGUMENT,
                 "output size 0x7");
}

static void test_builder_add_channel_mismatch(void **state) {
    fx *f = *state;
    nc_value y, z;
    assert_int_equal(nc_builder_conv2d(f->b, "c", f->in, 8, 1, 1, 0, 1, 1, 0, &y), NC_OK);
    expect_error(f, nc_builder_add(f->b, y, f->in, &z), NC_ERR_SHAPE, "'c' has 8 channels but 'input' has 3");
}

static void test_builder_add_rank_mismatch(void **state) {
    fx *f = *state;
    nc_value z, v = flat(f, f->in);
    expect_error(f, nc_builder_add(f->b, f->in, v, &z), NC_ERR_SHAPE, "is 4-D but");
}

static void test_builder_add_static_size_mismatch(void **state) {
    fx *f = *state;
    nc_value a, c, z;
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 2, 2, &a), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 3, 3, &c), NC_OK);
    expect_error(f, nc_builder_add(f->b, a, c, &z), NC_ERR_SHAPE, "is 2x2 but");
}

static void test_builder_linear_needs_2d(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_linear(f->b, "fc", f->in, 10, 1, &y), NC_ERR_SHAPE,
                 "fc: linear needs a 2-D input, but 'input' is 4-D");
}

static void test_builder_linear_bad_out(void **state) {
    fx *f = *state;
    nc_value y, v = flat(f, f->in);
    expect_error(f, nc_builder_linear(f->b, "fc", v, 0, 1, &y), NC_ERR_INVALID_ARGUMENT, "out_features=0");
}

static void test_builder_dropout_p_one(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_dropout(f->b, f->in, 1.0f, &y), NC_ERR_INVALID_ARGUMENT,
                 "dropout probability 1 must be in [0, 1)");
}

static void test_builder_dropout_p_negative(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_dropout(f->b, f->in, -0.1f, &y), NC_ERR_INVALID_ARGUMENT, "must be in [0, 1)");
}

static void test_builder_dropout_p_nan(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_dropout(f->b, f->in, NAN, &y), NC_ERR_INVALID_ARGUMENT, "must be in [0, 1)");
}

static void test_builder_flatten_dynamic_spatial(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_flatten(f->b, f->in, &y), NC_ERR_SHAPE, "adaptive average pool");
}

static void test_builder_flatten_needs_4d(void **state) {
    fx *f = *state;
    nc_value y, v = flat(f, f->in);
    expect_error(f, nc_builder_flatten(f->b, v, &y), NC_ERR_SHAPE, "flatten needs a 4-D input");
}

static void test_builder_flatten_features(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 7, 5, &y), NC_OK);
    assert_int_equal(nc_builder_relu(f->b, y, &y), NC_OK); /* static size survives */
    assert_int_equal(nc_builder_flatten(f->b, y, &y), NC_OK);
    assert_int_equal(G(f)->nodes[y].rank, 2);
    assert_int_equal(G(f)->nodes[y].channels, 3 * 7 * 5);
}

static void test_builder_concat_null_list(void **state) {
    fx *f = *state;
    nc_value y;
    expect_error(f, nc_builder_concat(f->b, NULL, 2, &y), NC_ERR_NULL, "NULL value list");
}

static void test_builder_concat_zero_count(void **state) {
    fx *f = *state;
    nc_value y, xs[1] = {0};
    expect_error(f, nc_builder_concat(f->b, xs, 0, &y), NC_ERR_INVALID_ARGUMENT, "count 0");
}

static void test_builder_concat_too_many(void **state) {
    fx *f = *state;
    nc_value y, xs[257] = {0};
    expect_error(f, nc_builder_concat(f->b, xs, 257, &y), NC_ERR_INVALID_ARGUMENT, "count 257");
}

static void test_builder_concat_mixed_ranks(void **state) {
    fx *f = *state;
    nc_value y, xs[2];
    xs[0] = flat(f, f->in);
    xs[1] = f->in;
    expect_error(f, nc_builder_concat(f->b, xs, 2, &y), NC_ERR_SHAPE, "concat inputs must have one rank");
}

static void test_builder_concat_channels(void **state) {
    fx *f = *state;
    nc_value y, xs[3];
    assert_int_equal(nc_builder_conv2d(f->b, "a", f->in, 5, 3, 1, 1, 1, 1, 0, &xs[0]), NC_OK);
    assert_int_equal(nc_builder_conv2d(f->b, "b", f->in, 7, 1, 1, 0, 1, 1, 0, &xs[1]), NC_OK);
    xs[2] = f->in;
    assert_int_equal(nc_builder_concat(f->b, xs, 3, &y), NC_OK);
    assert_int_equal(G(f)->nodes[y].rank, 4);
    assert_int_equal(G(f)->nodes[y].channels, 5 + 7 + 3);
    nc__shape shapes[8];
    const nc__shape in = nc__shape4(2, 3, 6, 5);
    assert_int_equal(nc__graph_infer_shapes(G(f), &in, shapes), NC_OK);
    assert_true(nc__shape_equal(&shapes[y], &(nc__shape){4, {2, 15, 6, 5}}));
}

static void test_builder_concat_fixed_sizes_differ(void **state) {
    fx *f = *state;
    nc_value y, xs[2];
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 2, 2, &xs[0]), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 3, 2, &xs[1]), NC_OK);
    expect_error(f, nc_builder_concat(f->b, xs, 2, &y), NC_ERR_SHAPE, "is 2x2 but");
}

static void test_shapes_concat_spatial_mismatch(void **state) {
    fx *f = *state;
    nc_value y, xs[2];
    assert_int_equal(nc_builder_conv2d(f->b, "s2", f->in, 4, 3, 2, 1, 1, 1, 0, &xs[0]), NC_OK);
    xs[1] = f->in; /* full size: the sizes differ only for a concrete input */
    assert_int_equal(nc_builder_concat(f->b, xs, 2, &y), NC_OK);
    nc__shape shapes[4];
    const nc__shape in = nc__shape4(1, 3, 8, 8);
    assert_int_equal(nc__graph_infer_shapes(G(f), &in, shapes), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "input 1 is"));
}

static void test_builder_concat_features(void **state) {
    fx *f = *state;
    nc_value y, xs[3];
    nc_value v = flat(f, f->in);
    assert_int_equal(nc_builder_linear(f->b, "a", v, 5, 1, &xs[0]), NC_OK);
    assert_int_equal(nc_builder_linear(f->b, "b", v, 7, 1, &xs[1]), NC_OK);
    xs[2] = xs[0];
    assert_int_equal(nc_builder_concat(f->b, xs, 3, &y), NC_OK);
    assert_int_equal(G(f)->nodes[y].channels, 17);
    assert_int_equal(G(f)->nodes[y].n_inputs, 3);
    assert_int_equal(G(f)->nodes[y].inputs[1], xs[1]);
}

static void test_builder_sticky_error(void **state) {
    fx *f = *state;
    nc_value y = 123;
    expect_error(f, nc_builder_conv2d(f->b, "bad", f->in, 4, 3, 1, 1, 1, 2, 0, &y), NC_ERR_SHAPE,
                 "groups=2");
    int nodes = G(f)->n_nodes, tensors = G(f)->n_tensors;
    /* another failure elsewhere on the context overwrites the message ... */
    nc__error(f->ctx, NC_ERR_IO, "something else");
    /* ... a valid call returns the first error again, with its message, and adds nothing */
    expect_error(f, nc_builder_relu(f->b, f->in, &y), NC_ERR_SHAPE, "bad: input has 3 channels");
    expect_error(f, nc_builder_conv2d(f->b, "ok", f->in, 3, 3, 1, 1, 1, 1, 0, &y), NC_ERR_SHAPE, "groups=2");
    assert_int_equal(y, 123);
    assert_int_equal(G(f)->n_nodes, nodes);
    assert_int_equal(G(f)->n_tensors, tensors);
    nc_model *m = (nc_model *)&m;
    expect_error(f, nc_builder_finish(f->b, 0, 1, 0, &m), NC_ERR_SHAPE, "groups=2");
}

static void test_builder_finish_output_not_2d(void **state) {
    fx *f = *state;
    nc_model *m = (nc_model *)&m;
    expect_error(f, nc_builder_finish(f->b, f->in, 1, 0, &m), NC_ERR_INVALID_ARGUMENT, "logits must be 2-D");
    assert_null(m);
}

static void test_builder_finish_heads_do_not_divide(void **state) {
    fx *f = *state;
    nc_value y, v = flat(f, f->in);
    assert_int_equal(nc_builder_linear(f->b, "fc", v, 10, 1, &y), NC_OK);
    nc_model *m;
    expect_error(f, nc_builder_finish(f->b, y, 3, 0, &m), NC_ERR_INVALID_ARGUMENT,
                 "num_heads=3 must be >= 1 and divide the 10 outputs");
}

static void test_builder_finish_bad_value(void **state) {
    fx *f = *state;
    nc_model *m;
    expect_error(f, nc_builder_finish(f->b, 42, 1, 0, &m), NC_ERR_INVALID_ARGUMENT, "value 42 does not exist");
}

static void test_graph_clone_is_deep(void **state) {
    fx *f = *state;
    nc_value y, v;
    assert_int_equal(nc_builder_conv2d(f->b, "c", f->in, 4, 3, 1, 1, 1, 1, 1, &y), NC_OK);
    v = flat(f, y);
    nc_value xs[2] = {v, v};
    assert_int_equal(nc_builder_concat(f->b, xs, 2, &y), NC_OK);
    nc__graph *c = NULL;
    assert_int_equal(nc__graph_clone(G(f), &c), NC_OK);
    nc_builder_destroy(f->b); /* the clone must not share anything */
    f->b = NULL;
    assert_int_equal(c->n_nodes, 5);
    assert_int_equal(c->n_tensors, 2);
    assert_string_equal(c->nodes[1].name, "c");
    assert_string_equal(c->tensors[1].name, "c.bias");
    assert_int_equal(c->nodes[4].n_inputs, 2);
    assert_int_equal(c->nodes[4].channels, 8);
    assert_int_equal(nc__graph_find_tensor(c, "c.weight"), 0);
    assert_int_equal(nc__graph_find_tensor(c, "nope"), -1);
    nc__graph_destroy(c);
    nc__graph_destroy(NULL);
}

/* ------------------------------------------------------ shape inference */

/* Infers shapes of the builder's graph for (n, c, h, w); returns the status. */
static nc_status infer(fx *f, int64_t n, int64_t c, int64_t h, int64_t w, nc__shape *shapes) {
    nc__shape in = nc__shape4(n, c, h, w);
    return nc__graph_infer_shapes(G(f), &in, shapes);
}

typedef struct conv_case { int64_t h, w; int k, s, p, d; int64_t oh, ow; } conv_case;

static void test_shapes_conv_formula(void **state) {
    fx *f = *state;
    /* PyTorch: floor((H + 2p - d(k-1) - 1) / s) + 1; expected sizes printed by
     * torch.nn.Conv2d(2, 6, k, s, p, d, groups=2)(torch.zeros(3, 2, h, w)).shape */
    static const conv_case cases[] = {
        {224, 224, 7, 2, 3, 1, 112, 112}, /* resnet stem */
        {15, 16, 3, 2, 1, 1, 8, 8},       /* odd sizes */
        {10, 11, 3, 1, 0, 2, 6, 7},       /* dilation */
        {9, 9, 3, 3, 0, 3, 1, 1},         /* dilated window exactly fits */
        {5, 6, 3, 2, 1, 2, 2, 2},
        {1, 1, 3, 2, 1, 1, 1, 1},         /* 1x1 survives with padding */
        {13, 17, 1, 2, 0, 1, 7, 9},       /* 1x1 stride 2 (downsample) */
        {7, 7, 5, 1, 0, 1, 3, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i];
        nc_builder *b;
        nc_value in, y;
        assert_int_equal(nc_builder_create(f->ctx, 2, &b, &in), NC_OK);
        assert_int_equal(nc_builder_conv2d(b, "c", in, 6, c->k, c->s, c->p, c->d, 2, 0, &y), NC_OK);
        nc__shape shapes[2], x = nc__shape4(3, 2, c->h, c->w);
        assert_int_equal(nc__graph_infer_shapes(nc__builder_graph(b), &x, shapes), NC_OK);
        if (shapes[1].d[2] != c->oh || shapes[1].d[3] != c->ow) {
            print_error("case %zu: got %lldx%lld want %lldx%lld\n", i, (long long)shapes[1].d[2],
                        (long long)shapes[1].d[3], (long long)c->oh, (long long)c->ow);
            fail();
        }
        expect_shape(&shapes[1], 4, 3, 6, c->oh, c->ow);
        nc_builder_destroy(b);
    }
}

static void test_shapes_pools(void **state) {
    fx *f = *state;
    nc_value mp, ap, aa, a2;
    assert_int_equal(nc_builder_max_pool2d(f->b, f->in, 3, 2, 1, &mp), NC_OK);
    assert_int_equal(nc_builder_avg_pool2d(f->b, f->in, 2, 2, 0, &ap), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 7, 7, &aa), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 2, 3, &a2), NC_OK);
    nc__shape s[5];
    assert_int_equal(infer(f, 2, 3, 112, 7, s), NC_OK);
    expect_shape(&s[mp], 4, 2, 3, 56, 4);  /* floor((112+2-3)/2)+1, floor((7+2-3)/2)+1 */
    expect_shape(&s[ap], 4, 2, 3, 56, 3);  /* floor mode: 7 -> 3 */
    expect_shape(&s[aa], 4, 2, 3, 7, 7);
    expect_shape(&s[a2], 4, 2, 3, 2, 3);
    assert_int_equal(infer(f, 1, 3, 3, 5, s), NC_OK);
    expect_shape(&s[mp], 4, 1, 3, 2, 3);
    expect_shape(&s[aa], 4, 1, 3, 7, 7);   /* adaptive pooling may upsample */
}

static void test_shapes_2d_ops(void **state) {
    fx *f = *state;
    nc_value v, l, c, d, bn, xs[2];
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, f->in, 2, 2, &v), NC_OK);
    assert_int_equal(nc_builder_flatten(f->b, v, &v), NC_OK);
    assert_int_equal(nc_builder_linear(f->b, "fc", v, 5, 0, &l), NC_OK);
    assert_int_equal(nc_builder_dropout(f->b, l, 0.5f, &d), NC_OK);
    assert_int_equal(nc_builder_batchnorm(f->b, "bn", d, 1e-5f, 0.1f, &bn), NC_OK);
    xs[0] = v;
    xs[1] = bn;
    assert_int_equal(nc_builder_concat(f->b, xs, 2, &c), NC_OK);
    nc__shape s[8];
    assert_int_equal(infer(f, 4, 3, 9, 9, s), NC_OK);
    expect_shape(&s[v], 2, 4, 12, 0, 0);
    expect_shape(&s[l], 2, 4, 5, 0, 0);
    expect_shape(&s[bn], 2, 4, 5, 0, 0);
    expect_shape(&s[c], 2, 4, 17, 0, 0);
}

static void test_shapes_too_small(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_conv2d(f->b, "layer4.0.conv1", f->in, 4, 3, 2, 0, 1, 1, 0, &y), NC_OK);
    nc__shape s[2];
    expect_error(f, infer(f, 1, 3, 2, 9, s), NC_ERR_SHAPE,
                 "layer4.0.conv1: input 2x9 too small for kernel 3 stride 2 padding 0 dilation 1");
    assert_int_equal(infer(f, 1, 3, 3, 3, s), NC_OK);
    expect_shape(&s[1], 4, 1, 4, 1, 1);
}

static void test_shapes_pool_too_small(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_max_pool2d(f->b, f->in, 2, 2, 0, &y), NC_OK);
    assert_int_equal(nc_builder_max_pool2d(f->b, y, 2, 2, 0, &y), NC_OK);
    nc__shape s[3];
    expect_error(f, infer(f, 1, 3, 3, 3, s), NC_ERR_SHAPE, "input 1x1 too small for kernel 2 stride 2");
    assert_non_null(strstr(nc_context_last_error(f->ctx), "image 3x3"));
}

static void test_shapes_wrong_channels(void **state) {
    fx *f = *state;
    nc__shape s[1];
    expect_error(f, infer(f, 1, 4, 8, 8, s), NC_ERR_SHAPE, "input has 4 channels, model expects 3");
}

static void test_shapes_bad_sizes(void **state) {
    fx *f = *state;
    nc__shape s[1];
    expect_error(f, infer(f, 0, 3, 8, 8, s), NC_ERR_INVALID_ARGUMENT, "n=0");
    expect_error(f, infer(f, 1, 3, 8, 0, s), NC_ERR_INVALID_ARGUMENT, "w=0");
    nc__shape two = nc__shape2(1, 3);
    expect_error(f, nc__graph_infer_shapes(G(f), &two, s), NC_ERR_SHAPE, "4-D");
    assert_int_equal(nc__graph_infer_shapes(G(f), NULL, s), NC_ERR_NULL);
}

static void test_shapes_add_mismatch(void **state) {
    fx *f = *state;
    nc_value a, c, z;
    assert_int_equal(nc_builder_conv2d(f->b, "a", f->in, 4, 3, 1, 1, 1, 1, 0, &a), NC_OK);
    assert_int_equal(nc_builder_conv2d(f->b, "b", f->in, 4, 3, 2, 1, 1, 1, 0, &c), NC_OK);
    assert_int_equal(nc_builder_add(f->b, a, c, &z), NC_OK); /* H, W are dynamic at build time */
    nc__shape s[4];
    expect_error(f, infer(f, 1, 3, 8, 8, s), NC_ERR_SHAPE, "[1,4,8,8] ('a') and [1,4,4,4] ('b') differ");
    assert_int_equal(infer(f, 1, 3, 1, 1, s), NC_OK); /* both 1x1 */
}

static void test_op_names(void **state) {
    (void)state;
    assert_string_equal(nc__op_name(NC__OP_CONV2D), "Conv2d");
    assert_string_equal(nc__op_name(NC__OP_BATCHNORM), "BatchNorm2d");
    assert_string_equal(nc__op_name(NC__OP_ADAPTIVE_AVGPOOL), "AdaptiveAvgPool2d");
    assert_string_equal(nc__op_name(NC__OP_CONCAT), "Concat");
    assert_string_equal(nc__op_name(NC__OP_COUNT), "Unknown");
}

/* -------------------------------------------------------------- summary */

/* A model shell around the builder's graph: the summary reads only ctx and graph. */
static nc_model shell(fx *f) {
    nc_model m;
    memset(&m, 0, sizeof m);
    m.ctx = f->ctx;
    m.graph = G(f);
    return m;
}

static void build_small(fx *f) {
    nc_value y;
    assert_int_equal(nc_builder_conv2d(f->b, "conv1", f->in, 8, 3, 2, 1, 1, 1, 0, &y), NC_OK);
    assert_int_equal(nc_builder_batchnorm(f->b, "bn1", y, 1e-5f, 0.1f, &y), NC_OK);
    assert_int_equal(nc_builder_relu(f->b, y, &y), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, y, 1, 1, &y), NC_OK);
    assert_int_equal(nc_builder_flatten(f->b, y, &y), NC_OK);
    assert_int_equal(nc_builder_linear(f->b, "fc1", y, 1000, 1, &y), NC_OK);
    assert_int_equal(nc_builder_batchnorm(f->b, "bn2", y, 1e-5f, 0.1f, &y), NC_OK);
    assert_int_equal(nc_builder_linear(f->b, "fc2", y, 1000, 1, &y), NC_OK);
}

static void test_summary_table_contents(void **state) {
    fx *f = *state;
    build_small(f);
    nc_model m = shell(f);
    size_t need = 0;
    char *buf = malloc(8192);
    assert_int_equal(nc_model_summary(&m, 32, 30, buf, 8192, &need), NC_OK);
    assert_int_equal(need, strlen(buf) + 1);
    static const char *want[] = {
        "Layer (type)", "Output Shape", "Param #",
        "conv1 (Conv2d)", "[-1, 8, 16, 15]", "216",
        "bn1 (BatchNorm2d)", "relu_3 (ReLU)", "adaptive_avgpool_4 (AdaptiveAvgPool2d)", "[-1, 8, 1, 1]",
        "flatten_5 (Flatten)", "[-1, 8]", "fc1 (Linear)", "[-1, 1000]", "9,000",
        "bn2 (BatchNorm1d)", "2,000", "fc2 (Linear)", "1,001,000",
        "Total params: 1,012,232", "Trainable params: 1,012,232", "Non-trainable params: 0",
        "Buffers (running statistics): 2,016", "Input size (MB): 0.01",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(buf, want[i])) {
            print_error("missing '%s' in\n%s\n", want[i], buf);
            fail();
        }
    assert_null(strstr(buf, "input (Input)"));
    free(buf);
}

static void test_summary_buffer_too_small(void **state) {
    fx *f = *state;
    build_small(f);
    nc_model m = shell(f);
    size_t need = 0, need2 = 0;
    expect_error(f, nc_model_summary(&m, 32, 32, NULL, 0, &need), NC_ERR_LIMIT, "needs");
    assert_true(need > 100);
    char small[20];
    memset(small, 'x', sizeof small);
    expect_error(f, nc_model_summary(&m, 32, 32, small, sizeof small, &need2), NC_ERR_LIMIT, "buffer has 20");
    assert_int_equal(need2, need);
    assert_int_equal(strlen(small), sizeof small - 1);
    char *full = malloc(need);
    assert_int_equal(nc_model_summary(&m, 32, 32, full, need, NULL), NC_OK);
    assert_int_equal(strlen(full), need - 1);
    assert_memory_equal(full, small, sizeof small - 1);
    free(full);
}

static void test_summary_image_too_small(void **state) {
    fx *f = *state;
    nc_value y;
    assert_int_equal(nc_builder_conv2d(f->b, "c", f->in, 2, 5, 1, 0, 1, 1, 1, &y), NC_OK);
    nc_model m = shell(f);
    char buf[64];
    expect_error(f, nc_model_summary(&m, 3, 3, buf, sizeof buf, NULL), NC_ERR_SHAPE, "c: input 3x3 too small");
    expect_error(f, nc_model_summary(&m, 0, 8, buf, sizeof buf, NULL), NC_ERR_SHAPE, "0x8");
}

static void test_summary_null_args(void **state) {
    fx *f = *state;
    nc_model m = shell(f);
    assert_int_equal(nc_model_summary(NULL, 8, 8, NULL, 0, NULL), NC_ERR_NULL);
    expect_error(f, nc_model_summary(&m, 8, 8, NULL, 10, NULL), NC_ERR_NULL, "NULL buffer");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup3, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_builder_create_errors),
        T(test_builder_input_node),
        T(test_builder_conv_param_defs),
        T(test_builder_batchnorm_param_defs),
        T(test_builder_linear_param_defs),
        T(test_builder_auto_names_unique),
        cmocka_unit_test(test_builder_null_builder),
        T(test_builder_null_output),
        T(test_builder_null_name),
        T(test_builder_empty_name),
        T(test_builder_duplicate_name),
        T(test_builder_bad_value),
        T(test_builder_negative_value),
        T(test_builder_conv_needs_4d),
        T(test_builder_conv_groups_not_dividing_channels),
        T(test_builder_conv_groups_not_dividing_out),
        T(test_builder_conv_kernel_zero),
        T(test_builder_conv_stride_zero),
        T(test_builder_conv_negative_padding),
        T(test_builder_conv_dilation_zero),
        T(test_builder_conv_zero_out_channels),
        T(test_builder_conv_too_large),
        T(test_builder_conv_static_input_too_small),
        T(test_builder_batchnorm_bad_eps),
        T(test_builder_batchnorm_bad_momentum),
        T(test_builder_pool_needs_4d),
        T(test_builder_pool_padding_too_large),
        T(test_builder_pool_bad_stride),
        T(test_builder_adaptive_bad_size),
        T(test_builder_add_channel_mismatch),
        T(test_builder_add_rank_mismatch),
        T(test_builder_add_static_size_mismatch),
        T(test_builder_linear_needs_2d),
        T(test_builder_linear_bad_out),
        T(test_builder_dropout_p_one),
        T(test_builder_dropout_p_negative),
        T(test_builder_dropout_p_nan),
        T(test_builder_flatten_dynamic_spatial),
        T(test_builder_flatten_needs_4d),
        T(test_builder_flatten_features),
        T(test_builder_concat_null_list),
        T(test_builder_concat_zero_count),
        T(test_builder_concat_too_many),
        T(test_builder_concat_mixed_ranks),
        T(test_builder_concat_channels),
        T(test_builder_concat_fixed_sizes_differ),
        T(test_shapes_concat_spatial_mismatch),
        T(test_builder_concat_features),
        T(test_builder_sticky_error),
        T(test_builder_finish_output_not_2d),
        T(test_builder_finish_heads_do_not_divide),
        T(test_builder_finish_bad_value),
        T(test_graph_clone_is_deep),
        T(test_shapes_conv_formula),
        T(test_shapes_pools),
        T(test_shapes_2d_ops),
        T(test_shapes_too_small),
        T(test_shapes_pool_too_small),
        T(test_shapes_wrong_channels),
        T(test_shapes_bad_sizes),
        T(test_shapes_add_mismatch),
        cmocka_unit_test(test_op_names),
        T(test_summary_table_contents),
        T(test_summary_buffer_too_small),
        T(test_summary_image_too_small),
        T(test_summary_null_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
