/* densenet.c — DenseNet-121/161/169/201 as torchvision 0.14 builds them
 * (features.conv0 ... features.denseblockB.denselayerL.{norm1,conv1,norm2,conv2},
 * features.transitionB.{norm,conv}, features.norm5, classifier), with its
 * initialisation, and memory-efficient training: every concat of a dense layer, the
 * batch norm and ReLU after it are marked for recomputation (graph/exec.h,
 * Recomputation), so the concatenated features are not kept per layer. */
#include "models/models.h"
#include "core/context.h"

#include <stdio.h>

/* Marks value v for recomputation in training. */
static void recompute(nc_builder *b, nc_value v) { nc__builder_graph(b)->nodes[v].recompute = 1; }

/* torch.cat(features, 1), or the single feature map itself, marked. */
static nc_status cat(nc_builder *b, const nc_value *feats, int count, nc_value *out) {
    nc_status st = NC_OK;
    if (count == 1)
        *out = feats[0];
    else if ((st = nc_builder_concat(b, feats, count, out)) == NC_OK)
        recompute(b, *out);
    return st;
}

/* "<p>.norm<s>" -> "<p>.relu<s>", both marked (the bottleneck's input side). */
static nc_status norm_relu(nc_builder *b, const char *p, const char *s, nc_value x, nc_value *out) {
    char name[192];
    nc_status st;
    snprintf(name, sizeof name, "%s.norm%s", p, s);
    if ((st = nc_builder_batchnorm(b, name, x, NC__BN_EPS, NC__BN_MOMENTUM, out)) != NC_OK) return st;
    recompute(b, *out);
    if ((st = nc_builder_relu(b, *out, out)) != NC_OK) return st;
    recompute(b, *out);
    snprintf(name, sizeof name, "%s.relu%s", p, s);
    nc__models_name(b, *out, name);
    return NC_OK;
}

/* _DenseLayer "<p>": norm1, relu1, conv1 (1x1, bn_size*growth), norm2, relu2, conv2
 * (3x3, growth) on the concat of feats; block_dropout as torchvision's drop_rate. */
static nc_status dense_layer(nc_builder *b, const nc_model_options *opt, const char *p, const nc__densenet_cfg *cfg,
                             const nc_value *feats, int count, nc_value *out) {
    char name[192];
    nc_status st;
    nc_value v;
    if ((st = cat(b, feats, count, &v)) != NC_OK) return st;
    if ((st = norm_relu(b, p, "1", v, &v)) != NC_OK) return st;
    snprintf(name, sizeof name, "%s.conv1", p);
    if ((st = nc_builder_conv2d(b, name, v, cfg->bn_size * cfg->growth, 1, 1, 0, 1, 1, 0, &v)) != NC_OK) return st;
    snprintf(name, sizeof name, "%s.norm2", p);
    if ((st = nc_builder_batchnorm(b, name, v, NC__BN_EPS, NC__BN_MOMENTUM, &v)) != NC_OK) return st;
    if ((st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
    snprintf(name, sizeof name, "%s.relu2", p);
    nc__models_name(b, v, name);
    snprintf(name, sizeof name, "%s.conv2", p);
    if ((st = nc_builder_conv2d(b, name, v, cfg->growth, 3, 1, 1, 1, 1, 0, &v)) != NC_OK) return st;
    if (opt->block_dropout > 0.0f && (st = nc_builder_dropout(b, v, opt->block_dropout, &v)) != NC_OK) return st;
    *out = v;
    return NC_OK;
}

/* _DenseBlock "features.denseblock<i>": appends its layers' outputs to feats[0 ..
 * *count) (room for `layers` more); the caller concatenates them for the transition
 * or norm5. */
static nc_status dense_block(nc_builder *b, const nc_model_options *opt, int i, int layers,
                             const nc__densenet_cfg *cfg, nc_value *feats, int *count) {
    char p[128];
    nc_status st;
    for (int l = 0; l < layers; l++) {
        snprintf(p, sizeof p, "features.denseblock%d.denselayer%d", i, l + 1);
        if ((st = dense_layer(b, opt, p, cfg, feats, *count, &feats[*count])) != NC_OK) return st;
        (*count)++;
    }
    return NC_OK;
}

/* _Transition "features.transition<i>": norm, relu, conv 1x1 to `out_ch`, avg pool 2. */
static nc_status transition(nc_builder *b, int i, nc_value x, int out_ch, nc_value *out) {
    char p[64], name[96];
    nc_status st;
    nc_value v;
    snprintf(p, sizeof p, "features.transition%d", i);
    snprintf(name, sizeof name, "%s.norm", p);
    if ((st = nc_builder_batchnorm(b, name, x, NC__BN_EPS, NC__BN_MOMENTUM, &v)) != NC_OK) return st;
    recompute(b, v);
    if ((st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
    recompute(b, v);
    snprintf(name, sizeof name, "%s.relu", p);
    nc__models_name(b, v, name);
    snprintf(name, sizeof name, "%s.conv", p);
    if ((st = nc_builder_conv2d(b, name, v, out_ch, 1, 1, 0, 1, 1, 0, &v)) != NC_OK) return st;
    if ((st = nc_builder_avg_pool2d(b, v, 2, 2, 0, &v)) != NC_OK) return st;
    snprintf(name, sizeof name, "%s.pool", p);
    nc__models_name(b, v, name);
    *out = v;
    return NC_OK;
}

/* torchvision DenseNet.__init__'s loop: conv weights Kaiming normal (fan_in), batch
 * norm 1 and 0, linear bias 0 (its weight keeps nn.Linear's default). */
static void densenet_init(nc_builder *b) {
    nc__graph *g = nc__builder_graph(b);
    for (int i = 0; i < g->n_tensors; i++) {
        nc__tensor_def *t = &g->tensors[i];
        const nc__op op = g->nodes[t->node].op;
        if (op == NC__OP_CONV2D && t->role == NC__ROLE_WEIGHT) t->init = NC__INIT_KAIMING_NORMAL_FAN_IN;
        if (op == NC__OP_LINEAR && t->role == NC__ROLE_BIAS) t->init = NC__INIT_ZERO;
    }
}

/* Stem: conv0 7x7/2, norm0, relu0, pool0 3x3/2; small_input: conv0 3x3/1, no pool. */
static nc_status stem(nc_builder *b, const nc_model_options *opt, int init, nc_value x, nc_value *out) {
    nc_status st;
    nc_value v;
    const int k = opt->small_input ? 3 : 7, stride = opt->small_input ? 1 : 2;
    if ((st = nc_builder_conv2d(b, "features.conv0", x, init, k, stride, k / 2, 1, 1, 0, &v)) != NC_OK) return st;
    if ((st = nc_builder_batchnorm(b, "features.norm0", v, NC__BN_EPS, NC__BN_MOMENTUM, &v)) != NC_OK) return st;
    if ((st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
    nc__models_name(b, v, "features.relu0");
    if (!opt->small_input) {
        if ((st = nc_builder_max_pool2d(b, v, 3, 2, 1, &v)) != NC_OK) return st;
        nc__models_name(b, v, "features.pool0");
    }
    *out = v;
    return NC_OK;
}

nc_status nc__densenet_build(nc_builder *b, const nc_model_options *opt, const nc__densenet_cfg *cfg, nc_value x,
                             nc_value *logits) {
    nc_context *ctx = nc__builder_graph(b)->ctx;
    int most = 0;
    for (int i = 0; i < 4; i++) most = cfg->layers[i] > most ? cfg->layers[i] : most;
    if (most + 1 > NC__MAX_CONCAT)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "densenet: %d layers in a block, at most %d", most,
                         NC__MAX_CONCAT - 1);
    nc_value *feats = nc__alloc(ctx, (size_t)(most + 1) * sizeof *feats);
    if (!feats) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "densenet: out of memory");
    nc_status st = stem(b, opt, cfg->init_features, x, &feats[0]);
    int ch = cfg->init_features;
    nc_value v = feats[0];
    for (int i = 0; i < 4 && st == NC_OK; i++) {
        int count = 1;
        feats[0] = v;
        st = dense_block(b, opt, i + 1, cfg->layers[i], cfg, feats, &count);
        ch += cfg->layers[i] * cfg->growth;
        if (st == NC_OK) st = cat(b, feats, count, &v);
        if (st == NC_OK && i < 3) {
            st = transition(b, i + 1, v, ch / 2, &v);
            ch /= 2;
        }
    }
    nc__free(ctx, feats);
    if (st != NC_OK) return st;
    /* norm5, then forward()'s F.relu, adaptive average pool (1, 1) and flatten */
    if ((st = nc_builder_batchnorm(b, "features.norm5", v, NC__BN_EPS, NC__BN_MOMENTUM, &v)) != NC_OK) return st;
    recompute(b, v);
    if ((st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
    recompute(b, v);
    nc__models_name(b, v, "relu");
    if ((st = nc_builder_adaptive_avg_pool2d(b, v, 1, 1, &v)) != NC_OK) return st;
    nc__models_name(b, v, "avgpool");
    if ((st = nc_builder_flatten(b, v, &v)) != NC_OK) return st;
    nc__models_name(b, v, "flatten");
    if ((st = nc__heads_build(b, opt, "classifier", v, opt->head_dropout, logits)) != NC_OK) return st;
    densenet_init(b);
    return NC_OK;
}
