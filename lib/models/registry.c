/* registry.c — the built-in architectures by name: option defaults and validation,
 * nc_model_create (builder -> architecture -> finished model) and nc__arch_build,
 * which the model loader also uses to rebuild a saved architecture. */
#include "models/models.h"
#include "core/context.h"
#include "core/model.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef enum family { FAM_RESNET, FAM_VGG, FAM_DENSENET, FAM_SIMPLE } family;

typedef struct arch_entry {
    const char *name;
    family fam;
    nc__resnet_cfg resnet;     /* FAM_RESNET (groups 0 = from the options: "resnext") */
    char vgg_config;           /* FAM_VGG: the paper's configuration 'A' .. 'E' */
    int vgg_bn;
    nc__densenet_cfg densenet; /* FAM_DENSENET */
} arch_entry;

#define RESNET(nm, ...) {.name = nm, .fam = FAM_RESNET, .resnet = __VA_ARGS__}
#define VGG(nm, CONFIG, BN) {.name = nm, .fam = FAM_VGG, .vgg_config = CONFIG, .vgg_bn = BN}
#define DENSENET(nm, GROWTH, L1, L2, L3, L4, INIT)                                                              \
    {.name = nm, .fam = FAM_DENSENET, .densenet = {GROWTH, {L1, L2, L3, L4}, INIT, 4}}

static const arch_entry arches[] = {
    RESNET("resnet18", {0, {2, 2, 2, 2}, 1, 64}),
    RESNET("resnet34", {0, {3, 4, 6, 3}, 1, 64}),
    RESNET("resnet50", {1, {3, 4, 6, 3}, 1, 64}),
    RESNET("resnet101", {1, {3, 4, 23, 3}, 1, 64}),
    RESNET("resnext50_32x4d", {1, {3, 4, 6, 3}, 32, 4}),
    RESNET("resnext101_32x8d", {1, {3, 4, 23, 3}, 32, 8}),
    RESNET("resnext", {1, {3, 4, 6, 3}, 0, 0}),
    VGG("vgg11", 'A', 0),
    VGG("vgg11_bn", 'A', 1),
    VGG("vgg13", 'B', 0),
    VGG("vgg13_bn", 'B', 1),
    VGG("vgg16c", 'C', 0),
    VGG("vgg16c_bn", 'C', 1),
    VGG("vgg16", 'D', 0),
    VGG("vgg16_bn", 'D', 1),
    VGG("vgg19", 'E', 0),
    VGG("vgg19_bn", 'E', 1),
    /*        name           k   block layers     init */
    DENSENET("densenet121", 32, 6, 12, 24, 16, 64),
    DENSENET("densenet161", 48, 6, 12, 36, 24, 96),
    DENSENET("densenet169", 32, 6, 12, 32, 32, 64),
    DENSENET("densenet201", 32, 6, 12, 48, 32, 64),
    {.name = "simple_cnn", .fam = FAM_SIMPLE},
};
#define N_ARCHES (sizeof arches / sizeof arches[0])

/* Upper bounds that keep every derived size far from overflow. */
#define MAX_BLOCKS 1024
#define MAX_WIDTH (1 << 20)

void nc_model_options_init(nc_model_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->arch = "resnet18";
    opt->num_classes = 1000;
    opt->in_channels = 3;
    opt->num_heads = 1;
    opt->cardinality = 32;
    opt->base_width = 4;
    opt->bottleneck = 1;
    opt->block_dropout = 0.0f;
    opt->head_dropout = 0.0f;
    opt->head = NC_HEAD_LINEAR;
    opt->small_input = 0;
    opt->width = 32;
    opt->seed = 0;
}

static const arch_entry *find_arch(const char *name) {
    for (size_t i = 0; i < N_ARCHES; i++)
        if (strcmp(arches[i].name, name) == 0) return &arches[i];
    return NULL;
}

static nc_status check_options(nc_context *ctx, const nc_model_options *o, const arch_entry **entry) {
    if (!o->arch) return nc__error(ctx, NC_ERR_NULL, "model options: arch is NULL");
    const arch_entry *e = find_arch(o->arch);
    if (!e) {
        char known[768];
        size_t n = 0;
        known[0] = 0;
        for (size_t i = 0; i < N_ARCHES && n < sizeof known; i++)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", arches[i].name);
        return nc__error(ctx, NC_ERR_NOT_FOUND, "unknown arch '%.64s' (known: %s)", o->arch, known);
    }
    if (o->num_classes < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: num_classes %d must be >= 1",
                         o->num_classes);
    if (o->in_channels < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: in_channels %d must be >= 1",
                         o->in_channels);
    if (o->num_heads < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: num_heads %d must be >= 1",
                         o->num_heads);
    if ((int64_t)o->num_heads * o->num_classes > INT_MAX)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "model options: num_heads %d x num_classes %d outputs are too many", o->num_heads,
                         o->num_classes);
    if (o->cardinality < 1 || o->cardinality > MAX_WIDTH)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: cardinality %d must be in [1, %d]",
                         o->cardinality, MAX_WIDTH);
    if (o->base_width < 1 || o->base_width > MAX_WIDTH)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: base_width %d must be in [1, %d]",
                         o->base_width, MAX_WIDTH);
    if (o->width < 1 || o->width > MAX_WIDTH)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: width %d must be in [1, %d]",
                         o->width, MAX_WIDTH);
    for (int i = 0; i < 4; i++)
        if (o->blocks[i] < 0 || o->blocks[i] > MAX_BLOCKS)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "model options: blocks[%d] = %d must be in [0, %d] (0 = default)", i,
                             o->blocks[i], MAX_BLOCKS);
    if (!(o->block_dropout >= 0.0f && o->block_dropout < 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: block_dropout %g must be in [0, 1)",
                         (double)o->block_dropout);
    if (!(o->head_dropout >= 0.0f && o->head_dropout < 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: head_dropout %g must be in [0, 1)",
                         (double)o->head_dropout);
    if (o->head != NC_HEAD_LINEAR && o->head != NC_HEAD_MLP)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "model options: unknown head type %d", (int)o->head);
    *entry = e;
    return NC_OK;
}

void nc__models_name(nc_builder *b, nc_value v, const char *name) {
    nc__graph *g = nc__builder_graph(b);
    if (!g || v <= 0 || v >= g->n_nodes || g->nodes[v].n_tensors > 0) return;
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return;
    char *copy = nc__strdup(g->ctx, name);
    if (!copy) return;
    nc__free(g->ctx, g->nodes[v].name);
    g->nodes[v].name = copy;
}

nc_status nc__arch_build(nc_context *ctx, const nc_model_options *opt, nc_builder *b, nc_value *out) {
    nc_status st;
    const arch_entry *e = NULL;
    if (!opt || !b || !out) return nc__error(ctx, NC_ERR_NULL, "nc__arch_build: NULL argument");
    if ((st = check_options(ctx, opt, &e)) != NC_OK) return st;
    nc__graph *g = nc__builder_graph(b);
    if (g->in_channels != opt->in_channels)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc__arch_build: builder has %d input channels, options say %d", g->in_channels,
                         opt->in_channels);
    nc_value x = 0; /* the builder's input */
    switch (e->fam) {
    case FAM_RESNET: {
        nc__resnet_cfg cfg = e->resnet;
        if (cfg.groups == 0) { /* "resnext": everything from the options */
            static const int def[4] = {3, 4, 6, 3};
            cfg.bottleneck = opt->bottleneck ? 1 : 0;
            cfg.groups = opt->cardinality;
            cfg.width_per_group = opt->base_width;
            for (int i = 0; i < 4; i++) cfg.layers[i] = opt->blocks[i] > 0 ? opt->blocks[i] : def[i];
        }
        st = nc__resnet_build(b, opt, &cfg, x, out);
        break;
    }
    case FAM_VGG:
        st = nc__vgg_build(b, opt, e->vgg_config, e->vgg_bn, x, out);
        break;
    case FAM_DENSENET:
        st = nc__densenet_build(b, opt, &e->densenet, x, out);
        break;
    case FAM_SIMPLE:
    default:
        st = nc__simple_cnn_build(b, opt, x, out);
        break;
    }
    if (st != NC_OK) return nc__error_prefix(ctx, st, "%s", opt->arch);
    return NC_OK;
}

nc_status nc_model_create(nc_context *ctx, const nc_model_options *opt, nc_model **out) {
    nc_status st;
    nc_builder *b = NULL;
    nc_value input, logits;
    const arch_entry *e = NULL;
    if (!ctx) return nc__error(NULL, NC_ERR_NULL, "nc_model_create: NULL context");
    if (!opt || !out) return nc__error(ctx, NC_ERR_NULL, "nc_model_create: NULL options or output pointer");
    *out = NULL;
    /* An older caller's shorter struct: its fields over our defaults. */
    const size_t min_size = offsetof(nc_model_options, arch) + sizeof opt->arch;
    if (opt->struct_size < min_size || opt->struct_size > sizeof *opt)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_model_create: struct_size %zu is not that of nc_model_options (%zu); call "
                         "nc_model_options_init",
                         opt->struct_size, sizeof *opt);
    nc_model_options o;
    nc_model_options_init(&o);
    memcpy(&o, opt, opt->struct_size);
    o.struct_size = sizeof o;
    if ((st = check_options(ctx, &o, &e)) != NC_OK) return st;

    if ((st = nc_builder_create(ctx, o.in_channels, &b, &input)) != NC_OK) return st;
    if ((st = nc__arch_build(ctx, &o, b, &logits)) != NC_OK) goto done;
    if ((st = nc_builder_finish(b, logits, o.num_heads, o.seed, out)) != NC_OK) goto done;
    nc__model_set_arch(*out, &o);
done:
    nc_builder_destroy(b);
    return st;
}
