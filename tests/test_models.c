/* test_models.c — the built-in architectures against torchvision 0.14: the full
 * state_dict key list (names, dtypes, shapes, order) and parameter counts from
 * fixtures made by fixtures/make_torchvision_keys.py, per-module output shapes,
 * the ResNeXt/head/small-input options, and option validation. Most checks work on
 * the graph (nc__arch_build) so no 88M-parameter model is allocated. */
#include "testutil.h"

#include "neurc.h"
#include "core/context.h"
#include "core/model.h"
#include "graph/graph.h"
#include "models/models.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- fixtures */

typedef struct key_line {
    char name[128];
    char dtype[16];
    nc__shape shape;
} key_line;

typedef struct key_file {
    key_line *lines;
    int count;
    int64_t num_params;
} key_file;

/* "[64,3,7,7]" -> shape; "[]" -> ndim 0. */
static int parse_shape(const char *s, nc__shape *out) {
    memset(out, 0, sizeof *out);
    if (*s++ != '[') return -1;
    while (*s && *s != ']') {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || out->ndim >= NC__MAX_DIMS) return -1;
        out->d[out->ndim++] = v;
        s = end;
        if (*s == ',') s++;
    }
    return *s == ']' ? 0 : -1;
}

static key_file load_keys(const char *name) {
    key_file kf = {NULL, 0, -1};
    char file[256];
    snprintf(file, sizeof file, "torchvision_keys/%s.txt", name);
    char *path = tu_fixture(file);
    char *text = tu_read_file(path, NULL);
    if (!text) {
        print_error("cannot read fixture %s\n", path);
        free(path);
        fail();
    }
    free(path);
    int cap = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            long long n;
            if (sscanf(line, "# num_params %lld", &n) == 1) kf.num_params = n;
            continue;
        }
        if (kf.count == cap) {
            cap = cap ? 2 * cap : 256;
            kf.lines = realloc(kf.lines, (size_t)cap * sizeof *kf.lines);
            assert_non_null(kf.lines);
        }
        key_line *k = &kf.lines[kf.count++];
        char shape[128];
        assert_int_equal(sscanf(line, "%127s %15s %127s", k->name, k->dtype, shape), 3);
        assert_int_equal(parse_shape(shape, &k->shape), 0);
    }
    free(text);
    assert_true(kf.num_params > 0);
    return kf;
}

/* ------------------------------------------------------------ building */

typedef struct fx {
    nc_context *ctx;
    nc_builder *b;
    nc_value logits;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f || nc_context_create(NULL, &f->ctx) != NC_OK) return -1;
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

static nc_model_options opts(const char *arch) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = arch;
    return o;
}

/* Builds opt's graph into f->b (replacing a previous one); returns the status. */
static nc_status build(fx *f, const nc_model_options *o) {
    nc_value in;
    nc_builder_destroy(f->b);
    f->b = NULL;
    assert_int_equal(nc_builder_create(f->ctx, o->in_channels, &f->b, &in), NC_OK);
    return nc__arch_build(f->ctx, o, f->b, &f->logits);
}

static nc__graph *G(const fx *f) { return nc__builder_graph(f->b); }

static void build_ok(fx *f, const nc_model_options *o) {
    nc_status st = build(f, o);
    if (st != NC_OK) {
        print_error("%s: status %d: %s\n", o->arch, (int)st, nc_context_last_error(f->ctx));
        fail();
    }
}

static int64_t graph_params(const nc__graph *g) {
    int64_t n = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].trainable) n += nc__shape_numel(&g->tensors[i].shape);
    return n;
}

static int find_node(const nc__graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

static void shape_text(const nc__shape *s, char *buf, size_t size) {
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < s->ndim && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, i ? ",%lld" : "%lld", (long long)s->d[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
}

/* The graph's tensors equal the fixture's state_dict entries, in order. */
static void expect_keys(const fx *f, const char *fixture) {
    key_file kf = load_keys(fixture);
    const nc__graph *g = G(f);
    int n = g->n_tensors < kf.count ? g->n_tensors : kf.count;
    for (int i = 0; i < n; i++) {
        const nc__tensor_def *t = &g->tensors[i];
        const key_line *k = &kf.lines[i];
        const char *dtype = t->role == NC__ROLE_NUM_BATCHES ? "int64" : "float32";
        if (strcmp(t->name, k->name) != 0 || strcmp(dtype, k->dtype) != 0 ||
            !nc__shape_equal(&t->shape, &k->shape)) {
            char a[64], b[64];
            shape_text(&t->shape, a, sizeof a);
            shape_text(&k->shape, b, sizeof b);
            print_error("%s entry %d: got '%s' %s %s, torchvision has '%s' %s %s\n", fixture, i, t->name,
                        dtype, a, k->name, k->dtype, b);
            fail();
        }
        int buffer = t->role == NC__ROLE_RUNNING_MEAN || t->role == NC__ROLE_RUNNING_VAR ||
                     t->role == NC__ROLE_NUM_BATCHES;
        assert_int_equal(t->trainable, !buffer);
    }
    if (g->n_tensors != kf.count) {
        print_error("%s: %d tensors, torchvision has %d (first extra: '%s')\n", fixture, g->n_tensors,
                    kf.count, g->n_tensors > kf.count ? g->tensors[kf.count].name : kf.lines[g->n_tensors].name);
        fail();
    }
    assert_int_equal(graph_params(g), kf.num_params);
    free(kf.lines);
}

/* Output shapes of named nodes equal PyTorch's module outputs (forward hooks). */
static void expect_shapes(const fx *f, const char *fixture) {
    char file[256];
    snprintf(file, sizeof file, "torchvision_keys/%s.shapes.txt", fixture);
    char *path = tu_fixture(file);
    char *text = tu_read_file(path, NULL);
    free(path);
    assert_non_null(text);
    const nc__graph *g = G(f);
    nc__shape *shapes = calloc((size_t)g->n_nodes, sizeof *shapes);
    nc__shape in = {0, {0}};
    int checked = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        long long n, c, h, w;
        if (sscanf(line, "# input %lld,%lld,%lld,%lld", &n, &c, &h, &w) == 4) {
            in = nc__shape4(n, c, h, w);
            nc_status st = nc__graph_infer_shapes(g, &in, shapes);
            if (st != NC_OK) {
                print_error("%s: %s\n", fixture, nc_context_last_error(f->ctx));
                fail();
            }
            continue;
        }
        char name[128], shape[128];
        nc__shape want;
        assert_int_equal(sscanf(line, "%127s %127s", name, shape), 2);
        assert_int_equal(parse_shape(shape, &want), 0);
        int i = find_node(g, name);
        if (i < 0 || !nc__shape_equal(&shapes[i], &want)) {
            char got[64] = "(no such node)";
            if (i >= 0) shape_text(&shapes[i], got, sizeof got);
            print_error("%s: module %s: got %s, PyTorch %s\n", fixture, name, got, shape);
            fail();
        }
        checked++;
    }
    assert_true(checked > 5);
    free(shapes);
    free(text);
}

/* ----------------------------------------------- torchvision architectures */

static void check_arch(void **state, const char *arch) {
    fx *f = *state;
    nc_model_options o = opts(arch);
    build_ok(f, &o);
    expect_keys(f, arch);
    assert_int_equal(G(f)->nodes[f->logits].channels, 1000);
    assert_int_equal(G(f)->nodes[f->logits].rank, 2);
}

static void test_models_keys_resnet18(void **s) { check_arch(s, "resnet18"); }
static void test_models_keys_resnet34(void **s) { check_arch(s, "resnet34"); }
static void test_models_keys_resnet50(void **s) { check_arch(s, "resnet50"); }
static void test_models_keys_resnet101(void **s) { check_arch(s, "resnet101"); }
static void test_models_keys_resnext50_32x4d(void **s) { check_arch(s, "resnext50_32x4d"); }
static void test_models_keys_resnext101_32x8d(void **s) { check_arch(s, "resnext101_32x8d"); }
static void test_models_keys_vgg11(void **s) { check_arch(s, "vgg11"); }
static void test_models_keys_vgg11_bn(void **s) { check_arch(s, "vgg11_bn"); }
static void test_models_keys_vgg16(void **s) { check_arch(s, "vgg16"); }
static void test_models_keys_vgg16_bn(void **s) { check_arch(s, "vgg16_bn"); }
static void test_models_keys_vgg13(void **s) { check_arch(s, "vgg13"); }
static void test_models_keys_vgg13_bn(void **s) { check_arch(s, "vgg13_bn"); }
static void test_models_keys_vgg19(void **s) { check_arch(s, "vgg19"); }
static void test_models_keys_vgg19_bn(void **s) { check_arch(s, "vgg19_bn"); }
/* configuration C against the torch.nn model in make_torchvision_keys.py */
static void test_models_keys_vgg16c(void **s) { check_arch(s, "vgg16c"); }
static void test_models_keys_vgg16c_bn(void **s) { check_arch(s, "vgg16c_bn"); }
static void test_models_keys_densenet121(void **s) { check_arch(s, "densenet121"); }
static void test_models_keys_densenet169(void **s) { check_arch(s, "densenet169"); }
static void test_models_keys_densenet201(void **s) { check_arch(s, "densenet201"); }

static void test_models_shapes_densenet121_odd_size(void **state) {
    fx *f = *state;
    nc_model_options o = opts("densenet121");
    build_ok(f, &o);
    expect_shapes(f, "densenet121");
}

static void test_models_shapes_vgg16c(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg16c");
    build_ok(f, &o);
    expect_shapes(f, "vgg16c");
    assert_int_equal(G(f)->nodes[find_node(G(f), "features.14")].attr.conv.kh, 1); /* conv1-256 */
}

/* CheXNet moved to 4-channel inputs: 14 outputs, conv0 (64, 4, 7, 7). */
static void test_models_densenet121_4ch_14classes(void **state) {
    fx *f = *state;
    nc_model_options o = opts("densenet121");
    o.num_classes = 14;
    o.in_channels = 4;
    build_ok(f, &o);
    expect_keys(f, "densenet121_c14_in4");
}

/* torchvision's DenseNet init: conv Kaiming normal fan_in, linear bias 0. */
static void test_models_densenet_init_kinds(void **state) {
    fx *f = *state;
    nc_model_options o = opts("densenet121");
    build_ok(f, &o);
    nc__graph *g = G(f);
    const int w = nc__graph_find_tensor(g, "features.denseblock2.denselayer3.conv2.weight");
    assert_int_equal(g->tensors[w].init, NC__INIT_KAIMING_NORMAL_FAN_IN);
    assert_int_equal(g->tensors[nc__graph_find_tensor(g, "features.conv0.weight")].init,
                     NC__INIT_KAIMING_NORMAL_FAN_IN);
    assert_int_equal(g->tensors[nc__graph_find_tensor(g, "classifier.bias")].init, NC__INIT_ZERO);
    assert_int_equal(g->tensors[nc__graph_find_tensor(g, "classifier.weight")].init, NC__INIT_LINEAR_UNIFORM);
    assert_int_equal(g->tensors[nc__graph_find_tensor(g, "features.norm5.weight")].init, NC__INIT_ONE);
}

/* The memory-efficient marks: each dense layer's concat, norm1 and relu1, never a
 * convolution; the first layer of a block reads the block input without a concat. */
static void test_models_densenet_recompute_marks(void **state) {
    fx *f = *state;
    nc_model_options o = opts("densenet121");
    build_ok(f, &o);
    const nc__graph *g = G(f);
    const nc__node *n1 = &g->nodes[find_node(g, "features.denseblock1.denselayer2.norm1")];
    const nc__node *cat = &g->nodes[n1->inputs[0]];
    assert_int_equal(cat->op, NC__OP_CONCAT);
    assert_int_equal(cat->n_inputs, 2);
    assert_int_equal(cat->channels, 64 + 32);
    assert_true(cat->recompute && n1->recompute);
    assert_true(g->nodes[find_node(g, "features.denseblock1.denselayer2.relu1")].recompute);
    const nc__node *first = &g->nodes[find_node(g, "features.denseblock1.denselayer1.norm1")];
    assert_string_equal(g->nodes[first->inputs[0]].name, "features.pool0");
    int concats = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        concats += g->nodes[i].op == NC__OP_CONCAT;
        if (g->nodes[i].op == NC__OP_CONV2D || g->nodes[i].op == NC__OP_LINEAR) assert_false(g->nodes[i].recompute);
    }
    /* 58 dense layers, 54 of them after a block's first; 3 transitions and norm5 */
    assert_int_equal(concats, 54 + 4);
}

static void test_models_param_counts(void **state) {
    fx *f = *state;
    /* sum(p.numel() for p in torchvision.models.<arch>().parameters()), torchvision 0.14 */
    static const struct { const char *arch; int64_t params; } want[] = {
        {"resnet18", 11689512},          {"resnet34", 21797672},   {"resnet50", 25557032},
        {"resnet101", 44549160},         {"resnext50_32x4d", 25028904},
        {"resnext101_32x8d", 88791336},  {"vgg11", 132863336},     {"vgg11_bn", 132868840},
        {"vgg16", 138357544},            {"vgg16_bn", 138365992},  {"vgg13", 133047848},
        {"vgg13_bn", 133053736},         {"vgg19", 143667240},     {"vgg19_bn", 143678248},
        {"densenet121", 7978856},        {"densenet161", 28681000}, {"densenet169", 14149480},
        {"densenet201", 20013928},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        nc_model_options o = opts(want[i].arch);
        build_ok(f, &o);
        if (graph_params(G(f)) != want[i].params) {
            print_error("%s: %lld params, torchvision %lld\n", want[i].arch, (long long)graph_params(G(f)),
                        (long long)want[i].params);
            fail();
        }
    }
}

static void test_models_resnet18_4ch_5classes(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    o.num_classes = 5;
    o.in_channels = 4;
    build_ok(f, &o);
    expect_keys(f, "resnet18_c5_in4");
}

static void test_models_resnext_free_matches_torchvision(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnext");
    o.cardinality = 4;
    o.base_width = 4;
    for (int i = 0; i < 4; i++) o.blocks[i] = 1;
    o.num_classes = 10;
    build_ok(f, &o);
    expect_keys(f, "resnext_g4_w4_b1111_c10");
    expect_shapes(f, "resnext_g4_w4_b1111_c10");
    assert_int_equal(G(f)->nodes[find_node(G(f), "layer3.0.conv2")].attr.conv.groups, 4);
}

static void test_models_resnext_defaults_are_resnext50(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnext"); /* cardinality 32, base width 4, {3,4,6,3} */
    build_ok(f, &o);
    expect_keys(f, "resnext50_32x4d");
}

static void test_models_resnext_basic_is_resnet18(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnext");
    o.bottleneck = 0;
    o.cardinality = 1;
    o.base_width = 64;
    for (int i = 0; i < 4; i++) o.blocks[i] = 2;
    build_ok(f, &o);
    expect_keys(f, "resnet18");
}

static void test_models_resnext_grouped_basic_blocks(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnext");
    o.bottleneck = 0; /* cardinality 32, base width 4: width = planes * 4/64 * 32 = 2 planes */
    o.blocks[0] = 1;  /* the other stages keep their default */
    build_ok(f, &o);
    const nc__graph *g = G(f);
    const nc__tensor_def *t = &g->tensors[nc__graph_find_tensor(g, "layer1.0.conv1.weight")];
    assert_int_equal(t->shape.d[0], 128);
    assert_int_equal(t->shape.d[1], 2);
    t = &g->tensors[nc__graph_find_tensor(g, "layer1.0.conv2.weight")];
    assert_int_equal(t->shape.d[0], 64);
    assert_int_equal(t->shape.d[1], 4);
    assert_true(nc__graph_find_tensor(g, "layer1.0.downsample.0.weight") < 0);
    assert_true(nc__graph_find_tensor(g, "layer1.1.conv1.weight") < 0);
    assert_true(nc__graph_find_tensor(g, "layer2.3.conv1.weight") >= 0);
    assert_true(nc__graph_find_tensor(g, "layer3.5.conv2.weight") >= 0);
    assert_true(nc__graph_find_tensor(g, "layer4.2.bn2.weight") >= 0);
    assert_true(nc__graph_find_tensor(g, "layer4.3.bn2.weight") < 0);
}

static void test_models_resnext_cardinality_must_divide(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnext");
    o.bottleneck = 0;
    o.cardinality = 3; /* the 64 stem channels are not divisible by 3 */
    assert_int_equal(build(f, &o), NC_ERR_SHAPE);
    const char *msg = nc_context_last_error(f->ctx);
    assert_non_null(strstr(msg, "resnext: layer1.0.conv1"));
    assert_non_null(strstr(msg, "groups=3"));
}

static void test_models_block_dropout(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnext");
    o.cardinality = 4;
    o.base_width = 4;
    for (int i = 0; i < 4; i++) o.blocks[i] = 1;
    o.num_classes = 10;
    o.block_dropout = 0.2f;
    build_ok(f, &o);
    expect_keys(f, "resnext_g4_w4_b1111_c10"); /* dropout has no parameters */
    const nc__graph *g = G(f);
    int drops = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op != NC__OP_DROPOUT) continue;
        drops++;
        assert_true(g->nodes[i].attr.dropout.p == 0.2f);
        /* its only user is the block's last convolution, conv3 */
        int users = 0;
        for (int j = 0; j < g->n_nodes; j++)
            for (int k = 0; k < g->nodes[j].n_inputs; k++)
                if (g->nodes[j].inputs[k] == i) {
                    users++;
                    const char *nm = g->nodes[j].name;
                    assert_int_equal(g->nodes[j].op, NC__OP_CONV2D);
                    assert_string_equal(nm + strlen(nm) - 6, ".conv3");
                }
        assert_int_equal(users, 1);
    }
    assert_int_equal(drops, 4);
    /* basic blocks: before conv2 */
    o.bottleneck = 0;
    o.cardinality = 1;
    o.base_width = 64;
    build_ok(f, &o);
    g = G(f);
    drops = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == NC__OP_DROPOUT) {
            drops++;
            const char *nm = g->nodes[i + 1].name;
            assert_string_equal(nm + strlen(nm) - 6, ".conv2");
            assert_int_equal(g->nodes[i + 1].inputs[0], i);
        }
    assert_int_equal(drops, 4);
}

/* ------------------------------------------------------------------ heads */

static void test_models_head_dropout_keeps_fc_key(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    o.head_dropout = 0.25f;
    build_ok(f, &o);
    expect_keys(f, "resnet18");
    const nc__graph *g = G(f);
    int fc = find_node(g, "fc");
    assert_int_equal(fc, f->logits);
    const nc__node *d = &g->nodes[g->nodes[fc].inputs[0]];
    assert_int_equal(d->op, NC__OP_DROPOUT);
    assert_true(d->attr.dropout.p == 0.25f);
}

static void test_models_mlp_head(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet50");
    o.head = NC_HEAD_MLP;
    o.num_classes = 7;
    build_ok(f, &o);
    expect_keys(f, "resnet50_mlp_c7");
    const nc__graph *g = G(f);
    assert_int_equal(g->nodes[f->logits].channels, 7);
    /* Dropout 0.3 -> Linear -> ReLU -> BatchNorm1d -> Dropout 0.5 -> Linear */
    static const nc__op ops[6] = {NC__OP_DROPOUT, NC__OP_LINEAR, NC__OP_RELU,
                                  NC__OP_BATCHNORM, NC__OP_DROPOUT, NC__OP_LINEAR};
    int v = f->logits;
    for (int i = 5; i >= 0; i--) {
        char name[16];
        snprintf(name, sizeof name, "fc.%d", i);
        assert_int_equal(g->nodes[v].op, ops[i]);
        assert_string_equal(g->nodes[v].name, name);
        if (i == 0) assert_true(g->nodes[v].attr.dropout.p == 0.3f);
        if (i == 4) assert_true(g->nodes[v].attr.dropout.p == 0.5f);
        v = g->nodes[v].inputs[0];
    }
    assert_string_equal(g->nodes[v].name, "flatten");
}

static void test_models_multi_head_linear(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    o.num_heads = 3;
    o.num_classes = 5;
    build_ok(f, &o);
    expect_keys(f, "resnet18_heads3_c5");
    const nc__node *out = &G(f)->nodes[f->logits];
    assert_int_equal(out->op, NC__OP_CONCAT);
    assert_int_equal(out->channels, 15);
    assert_int_equal(out->n_inputs, 3);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "fc.%d", i);
        assert_string_equal(G(f)->nodes[out->inputs[i]].name, name); /* head order */
    }
}

static void test_models_multi_head_mlp(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    o.num_heads = 2;
    o.num_classes = 4;
    o.head = NC_HEAD_MLP;
    build_ok(f, &o);
    expect_keys(f, "resnet18_mlp_heads2_c4");
    assert_int_equal(G(f)->nodes[f->logits].channels, 8);
}

static void test_models_multi_head_output_count(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg11_bn");
    o.num_heads = 6; /* 6 lung zones x 5 classes */
    o.num_classes = 5;
    o.small_input = 1;
    build_ok(f, &o);
    assert_int_equal(G(f)->nodes[f->logits].channels, 30);
    assert_true(nc__graph_find_tensor(G(f), "classifier.6.5.weight") >= 0);
    nc__shape in = nc__shape4(2, 3, 32, 32), *s = calloc((size_t)G(f)->n_nodes, sizeof *s);
    assert_int_equal(nc__graph_infer_shapes(G(f), &in, s), NC_OK);
    assert_int_equal(s[f->logits].d[0], 2);
    assert_int_equal(s[f->logits].d[1], 30);
    free(s);
}

static void test_models_vgg_mlp_head(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg16");
    o.head = NC_HEAD_MLP;
    o.num_classes = 3;
    build_ok(f, &o);
    expect_keys(f, "vgg16_mlp_c3");
}

/* ------------------------------------------------------- small inputs, shapes */

static void test_models_shapes_resnet18(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    build_ok(f, &o);
    expect_shapes(f, "resnet18");
}

static void test_models_shapes_resnet50_odd_size(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet50");
    build_ok(f, &o);
    expect_shapes(f, "resnet50"); /* 2 x 3 x 97 x 131 */
}

static void test_models_shapes_vgg11_bn_odd_size(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg11_bn");
    build_ok(f, &o);
    expect_shapes(f, "vgg11_bn"); /* 67 x 45 */
}

static void test_models_small_input_resnet(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    o.small_input = 1;
    o.num_classes = 10;
    build_ok(f, &o);
    expect_keys(f, "resnet18_small_c10");
    expect_shapes(f, "resnet18_small_c10"); /* 32x32: layer4 is 4x4 */
    assert_int_equal(find_node(G(f), "maxpool"), -1);
}

static void test_models_small_input_vgg(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg11_bn");
    o.small_input = 1;
    o.num_classes = 10;
    build_ok(f, &o);
    expect_keys(f, "vgg11_bn_small_c10");
    expect_shapes(f, "vgg11_bn_small_c10");
}

static void test_models_vgg_too_small_image(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg11");
    build_ok(f, &o);
    nc__shape in = nc__shape4(1, 3, 16, 16), *s = calloc((size_t)G(f)->n_nodes, sizeof *s);
    assert_int_equal(nc__graph_infer_shapes(G(f), &in, s), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "features.20: input 1x1 too small"));
    free(s);
}

static void test_models_simple_cnn(void **state) {
    fx *f = *state;
    nc_model_options o = opts("simple_cnn");
    o.width = 16;
    o.num_classes = 10;
    o.in_channels = 1;
    build_ok(f, &o);
    expect_keys(f, "simple_cnn_w16_c10_in1");
    expect_shapes(f, "simple_cnn_w16_c10_in1");
}

/* --------------------------------------------------------- initialisation */

static const nc__tensor_def *tdef(const fx *f, const char *name) {
    int i = nc__graph_find_tensor(G(f), name);
    if (i < 0) {
        print_error("no tensor %s\n", name);
        fail();
    }
    return &G(f)->tensors[i];
}

static void test_models_resnet_init_kinds(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet50");
    build_ok(f, &o);
    assert_int_equal(tdef(f, "conv1.weight")->init, NC__INIT_KAIMING_NORMAL_FAN_OUT);
    assert_int_equal(tdef(f, "conv1.weight")->fan_out, 64 * 49);
    assert_int_equal(tdef(f, "layer1.0.bn3.weight")->init, NC__INIT_ONE);
    assert_int_equal(tdef(f, "layer1.0.bn3.bias")->init, NC__INIT_ZERO);
    assert_int_equal(tdef(f, "layer1.0.bn3.running_var")->init, NC__INIT_ONE);
    assert_int_equal(tdef(f, "fc.weight")->init, NC__INIT_LINEAR_UNIFORM);
    assert_int_equal(tdef(f, "fc.weight")->fan_in, 2048);
    assert_int_equal(tdef(f, "fc.bias")->init, NC__INIT_LINEAR_UNIFORM);
}

static void test_models_vgg_init_kinds(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg16_bn");
    build_ok(f, &o);
    assert_int_equal(tdef(f, "features.0.weight")->init, NC__INIT_KAIMING_NORMAL_FAN_OUT);
    assert_int_equal(tdef(f, "features.0.bias")->init, NC__INIT_ZERO);
    assert_int_equal(tdef(f, "features.1.weight")->init, NC__INIT_ONE);
    assert_int_equal(tdef(f, "classifier.0.weight")->init, NC__INIT_NORMAL_001);
    assert_int_equal(tdef(f, "classifier.0.bias")->init, NC__INIT_ZERO);
    assert_int_equal(tdef(f, "classifier.6.weight")->init, NC__INIT_NORMAL_001);
}

static void test_models_vgg_classifier_dropouts(void **state) {
    fx *f = *state;
    nc_model_options o = opts("vgg11");
    build_ok(f, &o);
    assert_true(G(f)->nodes[find_node(G(f), "classifier.2")].attr.dropout.p == 0.5f);
    assert_true(G(f)->nodes[find_node(G(f), "classifier.5")].attr.dropout.p == 0.5f);
    o.head_dropout = 0.2f; /* replaces the dropout right before the head */
    build_ok(f, &o);
    assert_true(G(f)->nodes[find_node(G(f), "classifier.2")].attr.dropout.p == 0.5f);
    assert_true(G(f)->nodes[find_node(G(f), "classifier.5")].attr.dropout.p == 0.2f);
    expect_keys(f, "vgg11");
}

/* ----------------------------------------------------------- options */

static void test_models_options_defaults(void **state) {
    (void)state;
    nc_model_options o;
    memset(&o, 0x5a, sizeof o);
    nc_model_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_string_equal(o.arch, "resnet18");
    assert_int_equal(o.num_classes, 1000);
    assert_int_equal(o.in_channels, 3);
    assert_int_equal(o.num_heads, 1);
    assert_int_equal(o.cardinality, 32);
    assert_int_equal(o.base_width, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(o.blocks[i], 0);
    assert_int_equal(o.bottleneck, 1);
    assert_true(o.block_dropout == 0.0f && o.head_dropout == 0.0f);
    assert_int_equal(o.head, NC_HEAD_LINEAR);
    assert_int_equal(o.small_input, 0);
    assert_int_equal(o.width, 32);
    assert_int_equal(o.seed, 0);
    nc_model_options_init(NULL);
}

/* nc_model_create must fail with `want` and a message containing `substr`. */
static void expect_create_error(fx *f, const nc_model_options *o, nc_status want, const char *substr) {
    nc_model *m = (nc_model *)&m;
    nc_status st = nc_model_create(f->ctx, o, &m);
    const char *msg = nc_context_last_error(f->ctx);
    if (st != want || !strstr(msg, substr)) {
        print_error("status %d (want %d), message '%s' (want '%s')\n", (int)st, (int)want, msg, substr);
        fail();
    }
    assert_null(m);
    /* nc__arch_build validates the same way */
    if (o && o->struct_size == sizeof *o && o->in_channels >= 1) {
        nc_builder *b;
        nc_value in, out;
        assert_int_equal(nc_builder_create(f->ctx, o->in_channels, &b, &in), NC_OK);
        assert_int_equal(nc__arch_build(f->ctx, o, b, &out), want);
        nc_builder_destroy(b);
    }
}

static void test_models_unknown_arch(void **state) {
    nc_model_options o = opts("resnet19");
    expect_create_error(*state, &o, NC_ERR_NOT_FOUND, "unknown arch 'resnet19' (known: resnet18, resnet34");
    expect_create_error(*state, &o, NC_ERR_NOT_FOUND, "densenet201, simple_cnn)");
}

static void test_models_null_arch(void **state) {
    nc_model_options o = opts(NULL);
    expect_create_error(*state, &o, NC_ERR_NULL, "arch is NULL");
}

static void test_models_null_args(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    nc_model *m;
    assert_int_equal(nc_model_create(NULL, &o, &m), NC_ERR_NULL);
    assert_int_equal(nc_model_create(f->ctx, NULL, &m), NC_ERR_NULL);
    assert_int_equal(nc_model_create(f->ctx, &o, NULL), NC_ERR_NULL);
    nc_value out;
    assert_int_equal(nc__arch_build(f->ctx, &o, NULL, &out), NC_ERR_NULL);
}

static void test_models_bad_struct_size(void **state) {
    nc_model_options o = opts("resnet18");
    o.struct_size = 0;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "struct_size 0");
    o.struct_size = sizeof o + 8;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "nc_model_options_init");
}

static void test_models_bad_num_classes(void **state) {
    nc_model_options o = opts("resnet18");
    o.num_classes = 0;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "num_classes 0");
}

static void test_models_bad_in_channels(void **state) {
    nc_model_options o = opts("resnet18");
    o.in_channels = -3;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "in_channels -3");
}

static void test_models_bad_num_heads(void **state) {
    nc_model_options o = opts("resnet18");
    o.num_heads = 0;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "num_heads 0");
}

static void test_models_too_many_outputs(void **state) {
    nc_model_options o = opts("resnet18");
    o.num_heads = 1 << 16;
    o.num_classes = 1 << 16;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "too many");
}

static void test_models_bad_cardinality(void **state) {
    nc_model_options o = opts("resnext");
    o.cardinality = 0;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "cardinality 0");
}

static void test_models_bad_base_width(void **state) {
    nc_model_options o = opts("resnext");
    o.base_width = -1;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "base_width -1");
}

static void test_models_bad_width(void **state) {
    nc_model_options o = opts("simple_cnn");
    o.width = 0;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "width 0");
}

static void test_models_block_width_overflow(void **state) {
    nc_model_options o = opts("resnext");
    o.cardinality = 1 << 20;
    o.base_width = 1 << 20;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "block width 1099511627776");
}

static void test_models_bad_blocks(void **state) {
    nc_model_options o = opts("resnext");
    o.blocks[2] = -1;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "blocks[2] = -1");
}

static void test_models_bad_block_dropout(void **state) {
    nc_model_options o = opts("resnext");
    o.block_dropout = 1.0f;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "block_dropout 1");
}

static void test_models_bad_head_dropout(void **state) {
    nc_model_options o = opts("resnet18");
    o.head_dropout = -0.5f;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "head_dropout -0.5");
}

static void test_models_bad_head_type(void **state) {
    nc_model_options o = opts("resnet18");
    o.head = (nc_head_type)7;
    expect_create_error(*state, &o, NC_ERR_INVALID_ARGUMENT, "unknown head type 7");
}

static void test_models_arch_build_channel_mismatch(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnet18");
    nc_value in, out;
    assert_int_equal(nc_builder_create(f->ctx, 1, &f->b, &in), NC_OK);
    assert_int_equal(nc__arch_build(f->ctx, &o, f->b, &out), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "builder has 1 input channels"));
}

/* ------------------------------------------------------- out of memory */

typedef struct failing { size_t calls, fail_at, live; } failing;
static void *failing_alloc(void *user, size_t size, size_t align) {
    failing *a = user;
    if (++a->calls == a->fail_at) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : 1) != 0) return NULL;
    a->live++;
    return p;
}
static void failing_free(void *user, void *ptr) {
    failing *a = user;
    a->live--;
    free(ptr);
}

/* Every allocation of building an architecture (with MLP heads) and cloning its
 * graph fails once in turn: the status is NC_ERR_OUT_OF_MEMORY and nothing leaks. */
static void test_models_out_of_memory_everywhere(void **state) {
    (void)state;
    failing a = {0, 0, 0};
    nc_context_options co;
    nc_context_options_init(&co);
    co.allocator.alloc = failing_alloc;
    co.allocator.free = failing_free;
    co.allocator.user = &a;
    nc_context *ctx;
    assert_int_equal(nc_context_create(&co, &ctx), NC_OK);
    nc_model_options o = opts("resnext");
    o.cardinality = 2;
    o.base_width = 8;
    for (int i = 0; i < 4; i++) o.blocks[i] = 1;
    o.num_heads = 2;
    o.head = NC_HEAD_MLP;
    o.block_dropout = 0.1f;
    size_t total = 0, ooms = 0;
    for (size_t k = 0;; k++) {
        size_t base_live = a.live;
        a.calls = 0;
        a.fail_at = k == 0 ? 0 : k; /* k = 0: count the allocations of a clean run */
        nc_builder *b = NULL;
        nc__graph *c = NULL;
        nc_value in, out;
        nc_status st = nc_builder_create(ctx, 3, &b, &in);
        if (st == NC_OK) st = nc__arch_build(ctx, &o, b, &out);
        if (st == NC_OK) st = nc__graph_clone(nc__builder_graph(b), &c);
        nc__graph_destroy(c);
        nc_builder_destroy(b);
        assert_int_equal(a.live, base_live);
        if (k == 0) {
            assert_int_equal(st, NC_OK);
            total = a.calls;
            assert_true(total > 100);
        } else if (st == NC_ERR_OUT_OF_MEMORY) {
            ooms++;
        } else {
            /* only a renaming (nc__models_name keeps the automatic name) may fail quietly */
            assert_int_equal(st, NC_OK);
        }
        if (k == total) break;
    }
    assert_true(ooms > total / 2);
    nc_context_destroy(ctx);
}

/* ------------------------------------------------ through the public API */

static void check_public(fx *f, const char *arch, int64_t params) {
    nc_model_options o = opts(arch);
    nc_model *m = NULL;
    nc_status st = nc_model_create(f->ctx, &o, &m);
    if (st != NC_OK) {
        print_error("%s: %s\n", arch, nc_context_last_error(f->ctx));
        fail();
    }
    assert_int_equal(nc_model_num_params(m), params);
    assert_int_equal(nc_model_num_outputs(m), 1000);
    assert_int_equal(nc_model_in_channels(m), 3);
    assert_int_equal(nc_model_num_heads(m), 1);
    key_file kf = load_keys(arch);
    assert_int_equal(nc_model_num_tensors(m), kf.count);
    for (int i = 0; i < kf.count; i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        assert_string_equal(ti.name, kf.lines[i].name);
        assert_int_equal(ti.ndim, kf.lines[i].shape.ndim);
        for (int d = 0; d < ti.ndim; d++) assert_int_equal(ti.shape[d], kf.lines[i].shape.d[d]);
    }
    free(kf.lines);
    nc_model_destroy(m);
}

static void test_models_public_resnet18(void **state) { check_public(*state, "resnet18", 11689512); }
static void test_models_public_vgg11_bn(void **state) { check_public(*state, "vgg11_bn", 132868840); }

static void test_models_public_options_and_summary(void **state) {
    fx *f = *state;
    nc_model_options o = opts("resnext");
    o.cardinality = 4;
    o.base_width = 4;
    for (int i = 0; i < 4; i++) o.blocks[i] = 1;
    o.num_classes = 5;
    o.num_heads = 6;
    o.in_channels = 4;
    o.head = NC_HEAD_MLP;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(f->ctx, &o, &m), NC_OK);
    assert_int_equal(nc_model_num_outputs(m), 30);
    assert_int_equal(nc_model_num_heads(m), 6);
    assert_int_equal(nc_model_in_channels(m), 4);
    size_t need = 0;
    assert_int_equal(nc_model_summary(m, 64, 64, NULL, 0, &need), NC_ERR_LIMIT);
    char *text = malloc(need);
    assert_int_equal(nc_model_summary(m, 64, 64, text, need, NULL), NC_OK);
    assert_non_null(strstr(text, "layer4.0.conv2 (Conv2d)"));
    assert_non_null(strstr(text, "fc.5.3 (BatchNorm1d)"));
    assert_non_null(strstr(text, "[-1, 30]"));
    free(text);
    nc_model_destroy(m);
    /* an older caller's shorter struct: fields past struct_size take defaults */
    o = opts("simple_cnn");
    o.num_classes = 3;
    o.struct_size = offsetof(nc_model_options, num_heads);
    o.num_heads = 99;
    o.width = -5;
    assert_int_equal(nc_model_create(f->ctx, &o, &m), NC_OK);
    assert_int_equal(nc_model_num_outputs(m), 3);
    assert_int_equal(nc_model_num_params(m),
                     (int64_t)(32 * 27 + 64 * 32 * 9 + 128 * 64 * 9) + 2 * (32 + 64 + 128) + 128 * 3 + 3);
    nc_model_destroy(m);
}

static void test_models_public_builder_finish(void **state) {
    fx *f = *state;
    nc_value x, y, heads[2];
    assert_int_equal(nc_builder_create(f->ctx, 2, &f->b, &x), NC_OK);
    assert_int_equal(nc_builder_conv2d(f->b, "c", x, 4, 3, 1, 1, 1, 1, 1, &y), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(f->b, y, 1, 1, &y), NC_OK);
    assert_int_equal(nc_builder_flatten(f->b, y, &y), NC_OK);
    assert_int_equal(nc_builder_linear(f->b, "h0", y, 3, 1, &heads[0]), NC_OK);
    assert_int_equal(nc_builder_linear(f->b, "h1", y, 3, 1, &heads[1]), NC_OK);
    assert_int_equal(nc_builder_concat(f->b, heads, 2, &y), NC_OK);
    nc_model *m1 = NULL, *m2 = NULL;
    assert_int_equal(nc_builder_finish(f->b, y, 2, 7, &m1), NC_OK);
    assert_int_equal(nc_builder_finish(f->b, y, 1, 7, &m2), NC_OK); /* the builder stays usable */
    nc_builder_destroy(f->b);
    f->b = NULL;
    assert_int_equal(nc_model_num_outputs(m1), 6);
    assert_int_equal(nc_model_num_heads(m1), 2);
    assert_int_equal(nc_model_num_heads(m2), 1);
    assert_int_equal(nc_model_num_params(m1), 4 * 2 * 9 + 4 + 2 * (3 * 4 + 3));
    nc_model_destroy(m1);
    nc_model_destroy(m2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_models_keys_resnet18),
        T(test_models_keys_resnet34),
        T(test_models_keys_resnet50),
        T(test_models_keys_resnet101),
        T(test_models_keys_resnext50_32x4d),
        T(test_models_keys_resnext101_32x8d),
        T(test_models_keys_vgg11),
        T(test_models_keys_vgg11_bn),
        T(test_models_keys_vgg16),
        T(test_models_keys_vgg16_bn),
        T(test_models_keys_vgg13),
        T(test_models_keys_vgg13_bn),
        T(test_models_keys_vgg19),
        T(test_models_keys_vgg19_bn),
        T(test_models_keys_vgg16c),
        T(test_models_keys_vgg16c_bn),
        T(test_models_keys_densenet121),
        T(test_models_keys_densenet169),
        T(test_models_keys_densenet201),
        T(test_models_shapes_densenet121_odd_size),
        T(test_models_shapes_vgg16c),
        T(test_models_densenet121_4ch_14classes),
        T(test_models_densenet_init_kinds),
        T(test_models_densenet_recompute_marks),
        T(test_models_param_counts),
        T(test_models_resnet18_4ch_5classes),
        T(test_models_resnext_free_matches_torchvision),
        T(test_models_resnext_defaults_are_resnext50),
        T(test_models_resnext_basic_is_resnet18),
        T(test_models_resnext_grouped_basic_blocks),
        T(test_models_resnext_cardinality_must_divide),
        T(test_models_block_dropout),
        T(test_models_head_dropout_keeps_fc_key),
        T(test_models_mlp_head),
        T(test_models_multi_head_linear),
        T(test_models_multi_head_mlp),
        T(test_models_multi_head_output_count),
        T(test_models_vgg_mlp_head),
        T(test_models_shapes_resnet18),
        T(test_models_shapes_resnet50_odd_size),
        T(test_models_shapes_vgg11_bn_odd_size),
        T(test_models_small_input_resnet),
        T(test_models_small_input_vgg),
        T(test_models_vgg_too_small_image),
        T(test_models_simple_cnn),
        T(test_models_resnet_init_kinds),
        T(test_models_vgg_init_kinds),
        T(test_models_vgg_classifier_dropouts),
        cmocka_unit_test(test_models_options_defaults),
        T(test_models_unknown_arch),
        T(test_models_null_arch),
        T(test_models_null_args),
        T(test_models_bad_struct_size),
        T(test_models_bad_num_classes),
        T(test_models_bad_in_channels),
        T(test_models_bad_num_heads),
        T(test_models_too_many_outputs),
        T(test_models_bad_cardinality),
        T(test_models_bad_base_width),
        T(test_models_bad_width),
        T(test_models_block_width_overflow),
        T(test_models_bad_blocks),
        T(test_models_bad_block_dropout),
        T(test_models_bad_head_dropout),
        T(test_models_bad_head_type),
        T(test_models_arch_build_channel_mismatch),
        T(test_models_out_of_memory_everywhere),
        T(test_models_public_resnet18),
        T(test_models_public_vgg11_bn),
        T(test_models_public_options_and_summary),
        T(test_models_public_builder_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
