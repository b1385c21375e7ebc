/* heads.c — classifier heads shared by every architecture: one linear layer, or an
 * MLP, optionally repeated as several parallel heads over one backbone.
 *
 * Key scheme (state_dict names), with K = the head's module path: "fc" for ResNet,
 * ResNeXt and simple_cnn, "classifier.6" for VGG (the last Linear of its classifier):
 *
 *   NC_HEAD_LINEAR, one head:   K.weight, K.bias
 *       head_dropout > 0 adds a parameterless Dropout before it (ResNet, simple_cnn),
 *       so torchvision checkpoints still load ("fc.weight"). For VGG the dropout
 *       before the head is classifier.5 (see vgg.c).
 *   NC_HEAD_LINEAR, H heads:    K.0.weight ... K.{H-1}.weight (an nn.ModuleList of
 *       Linear); one shared Dropout (if any) precedes them all.
 *   NC_HEAD_MLP, one head:      an nn.Sequential at K:
 *       K.0 Dropout(0.3), K.1 Linear(F, 512), K.2 ReLU, K.3 BatchNorm1d(512),
 *       K.4 Dropout(0.5), K.5 Linear(512, classes)
 *       -> keys K.1.weight/.bias, K.3.{weight,bias,running_mean,running_var,
 *          num_batches_tracked}, K.5.weight/.bias.
 *       For VGG this replaces classifier.6 (classifier.6.1 ... classifier.6.5), as
 *       `vgg.classifier[6] = nn.Sequential(...)` would in PyTorch.
 *   NC_HEAD_MLP, H heads:       K.i.1, K.i.3, K.i.5 for i = 0..H-1 (a ModuleList of
 *       those Sequentials), each with its own dropouts.
 *
 * With H > 1 the head outputs are concatenated in head order: logits (N, H*classes),
 * head-major per sample as nc_model_options documents.
 */
#include "models/models.h"
#include "core/context.h"

#include <stdio.h>

static nc_status mlp(nc_builder *b, const nc_model_options *opt, const char *key, nc_value x,
                     nc_value *out) {
    char name[256];
    nc_status st;
    nc_value v;
    if ((st = nc_builder_dropout(b, x, 0.3f, &v)) != NC_OK) return st;
    snprintf(name, sizeof name, "%s.0", key);
    nc__models_name(b, v, name);
    snprintf(name, sizeof name, "%s.1", key);
    if ((st = nc_builder_linear(b, name, v, 512, 1, &v)) != NC_OK) return st;
    if ((st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
    snprintf(name, sizeof name, "%s.2", key);
    nc__models_name(b, v, name);
    snprintf(name, sizeof name, "%s.3", key);
    if ((st = nc_builder_batchnorm(b, name, v, NC__BN_EPS, NC__BN_MOMENTUM, &v)) != NC_OK) return st;
    if ((st = nc_builder_dropout(b, v, 0.5f, &v)) != NC_OK) return st;
    snprintf(name, sizeof name, "%s.4", key);
    nc__models_name(b, v, name);
    snprintf(name, sizeof name, "%s.5", key);
    return nc_builder_linear(b, name, v, opt->num_classes, 1, out);
}

nc_status nc__heads_build(nc_builder *b, const nc_model_options *opt, const char *key,
                          nc_value features, float linear_dropout, nc_value *logits) {
    char name[256];
    nc_status st;
    int nh = opt->num_heads;
    nc_value x = features;
    nc_value one;
    nc_value *outs = &one;

    if (opt->head == NC_HEAD_LINEAR && linear_dropout > 0.0f) {
        if ((st = nc_builder_dropout(b, x, linear_dropout, &x)) != NC_OK) return st;
        snprintf(name, sizeof name, "%s_dropout", key);
        nc__models_name(b, x, name);
    }
    if (nh == 1) {
        if (opt->head == NC_HEAD_MLP) return mlp(b, opt, key, x, logits);
        return nc_builder_linear(b, key, x, opt->num_classes, 1, logits);
    }

    nc_context *ctx = nc__builder_graph(b)->ctx;
    outs = nc__alloc(ctx, (size_t)nh * sizeof *outs);
    if (!outs) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory for %d heads", key, nh);
    st = NC_OK;
    for (int i = 0; i < nh && st == NC_OK; i++) {
        snprintf(name, sizeof name, "%s.%d", key, i);
        if (opt->head == NC_HEAD_MLP)
            st = mlp(b, opt, name, x, &outs[i]);
        else
            st = nc_builder_linear(b, name, x, opt->num_classes, 1, &outs[i]);
    }
    if (st == NC_OK) {
        st = nc_builder_concat(b, outs, nh, logits);
        if (st == NC_OK) {
            snprintf(name, sizeof name, "%s_concat", key);
            nc__models_name(b, *logits, name);
        }
    }
    nc__free(ctx, outs);
    return st;
}
