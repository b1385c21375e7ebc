/* vgg.c — VGG in the paper's configurations A-E (Simonyan & Zisserman, Table 1),
 * with and without batchnorm, as torchvision 0.14 builds A, B, D and E (vgg11, 13,
 * 16, 19 and their _bn): "features.N" numbered like its nn.Sequential,
 * AdaptiveAvgPool2d(7, 7), and the classifier Linear/ReLU/Dropout stack at
 * classifier.0..6. Configuration C, which torchvision lacks, is numbered the same
 * way (its 1x1 convolutions are features.N like the others). Also torchvision's VGG
 * initialisation (conv: Kaiming normal fan_out, bias 0; linear: N(0, 0.01), bias 0). */
#include "models/models.h"

#include <stdio.h>
#include <string.h>

/* A configuration: convolutions by output channels, M a max pool; a 3x3 convolution
 * unless ONE marks it 1x1 (ONE + channels). */
#define M (-1)
#define ONE 100000
static const int cfg_a[] = {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
static const int cfg_b[] = {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
static const int cfg_c[] = {64, 64, M, 128, 128, M, 256, 256, ONE + 256, M, 512, 512, ONE + 512, M,
                            512, 512, ONE + 512, M};
static const int cfg_d[] = {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
static const int cfg_e[] = {64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M,
                            512, 512, 512, 512, M};

typedef struct vgg_cfg {
    const int *items;
    size_t count;
} vgg_cfg;

#define CFG(a) {a, sizeof a / sizeof a[0]}
static vgg_cfg config_items(char config) {
    switch (config) {
    case 'A': return (vgg_cfg)CFG(cfg_a);
    case 'B': return (vgg_cfg)CFG(cfg_b);
    case 'C': return (vgg_cfg)CFG(cfg_c);
    case 'E': return (vgg_cfg)CFG(cfg_e);
    default: return (vgg_cfg)CFG(cfg_d);
    }
}
#undef CFG

/* torchvision VGG._initialize_weights over every conv and linear of the model. */
static void vgg_init(nc_builder *b) {
    nc__graph *g = nc__builder_graph(b);
    for (int i = 0; i < g->n_tensors; i++) {
        nc__tensor_def *t = &g->tensors[i];
        nc__op op = g->nodes[t->node].op;
        if (op == NC__OP_CONV2D) {
            if (t->role == NC__ROLE_WEIGHT) t->init = NC__INIT_KAIMING_NORMAL_FAN_OUT;
            if (t->role == NC__ROLE_BIAS) t->init = NC__INIT_ZERO;
        } else if (op == NC__OP_LINEAR) {
            if (t->role == NC__ROLE_WEIGHT) t->init = NC__INIT_NORMAL_001;
            if (t->role == NC__ROLE_BIAS) t->init = NC__INIT_ZERO;
        }
    }
}

/* features.N: conv (k x k, padding k/2) [-> batchnorm] -> relu, numbered from *idx. */
static nc_status conv_layer(nc_builder *b, int *idx, nc_value *v, int channels, int k, int batch_norm) {
    char name[64];
    nc_status st;
    snprintf(name, sizeof name, "features.%d", (*idx)++);
    if ((st = nc_builder_conv2d(b, name, *v, channels, k, 1, k / 2, 1, 1, 1, v)) != NC_OK) return st;
    if (batch_norm) {
        snprintf(name, sizeof name, "features.%d", (*idx)++);
        if ((st = nc_builder_batchnorm(b, name, *v, NC__BN_EPS, NC__BN_MOMENTUM, v)) != NC_OK) return st;
    }
    if ((st = nc_builder_relu(b, *v, v)) != NC_OK) return st;
    snprintf(name, sizeof name, "features.%d", (*idx)++);
    nc__models_name(b, *v, name);
    return NC_OK;
}

nc_status nc__vgg_build(nc_builder *b, const nc_model_options *opt, char config, int batch_norm,
                        nc_value x, nc_value *logits) {
    const vgg_cfg cfg = config_items(config);
    char name[64];
    nc_status st;
    nc_value v = x;
    int idx = 0;
    for (size_t i = 0; i < cfg.count; i++) {
        const int item = cfg.items[i];
        if (item == M) {
            if ((st = nc_builder_max_pool2d(b, v, 2, 2, 0, &v)) != NC_OK) return st;
            snprintf(name, sizeof name, "features.%d", idx++);
            nc__models_name(b, v, name);
        } else if ((st = conv_layer(b, &idx, &v, item % ONE, item >= ONE ? 1 : 3, batch_norm)) != NC_OK) {
            return st;
        }
    }
    /* small_input: 1x1 pooled features and a 512-wide classifier. */
    const int pool = opt->small_input ? 1 : 7;
    const int hidden = opt->small_input ? 512 : 4096;
    if ((st = nc_builder_adaptive_avg_pool2d(b, v, pool, pool, &v)) != NC_OK) return st;
    nc__models_name(b, v, "avgpool");
    if ((st = nc_builder_flatten(b, v, &v)) != NC_OK) return st;
    nc__models_name(b, v, "flatten");
    for (int layer = 0; layer < 2; layer++) {
        snprintf(name, sizeof name, "classifier.%d", 3 * layer);
        if ((st = nc_builder_linear(b, name, v, hidden, 1, &v)) != NC_OK) return st;
        if ((st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
        snprintf(name, sizeof name, "classifier.%d", 3 * layer + 1);
        nc__models_name(b, v, name);
        /* classifier.5 is the dropout right before the head: head_dropout > 0
         * replaces its p (torchvision: 0.5). */
        float p = (layer == 1 && opt->head_dropout > 0.0f) ? opt->head_dropout : 0.5f;
        if ((st = nc_builder_dropout(b, v, p, &v)) != NC_OK) return st;
        snprintf(name, sizeof name, "classifier.%d", 3 * layer + 2);
        nc__models_name(b, v, name);
    }
    if ((st = nc__heads_build(b, opt, "classifier.6", v, 0.0f, logits)) != NC_OK) return st;
    vgg_init(b);
    return NC_OK;
}
