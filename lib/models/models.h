/* models.h — private interface between the architecture registry (registry.c) and
 * the builders of each family (resnet.c, vgg.c, densenet.c, simple_cnn.c) and the classifier
 * heads (heads.c). Every builder works on an nc_builder and validated options. */
#ifndef NC_MODELS_MODELS_H
#define NC_MODELS_MODELS_H

#include "neurc.h"
#include "graph/graph.h"
#include "core/model.h"

/* Builds the graph of a built-in architecture into b (registry.c); validates opt.
 * *out receives the logits value. */
nc_status nc__arch_build(nc_context *ctx, const nc_model_options *opt, nc_builder *b, nc_value *out);

/* PyTorch's BatchNorm defaults, used by every built-in architecture. */
#define NC__BN_EPS 1e-5f
#define NC__BN_MOMENTUM 0.1f

/* A ResNet-family configuration (torchvision's ResNet(block, layers, groups,
 * width_per_group)). */
typedef struct nc__resnet_cfg {
    int bottleneck;            /* 1 = Bottleneck (expansion 4), 0 = BasicBlock */
    int layers[4];             /* blocks per stage */
    int groups;                /* cardinality */
    int width_per_group;       /* base width */
} nc__resnet_cfg;

/* Builds a ResNet/ResNeXt on input x: torchvision's module names, plus the heads
 * (key "fc"). *logits receives the output value. */
nc_status nc__resnet_build(nc_builder *b, const nc_model_options *opt, const nc__resnet_cfg *cfg,
                           nc_value x, nc_value *logits);

/* Builds VGG in one of the paper's configurations 'A' (VGG-11), 'B' (13), 'C' (16
 * with 1x1 convolutions in the last three stages), 'D' (16), 'E' (19), with or without
 * batchnorm, plus the heads (key "classifier.6"); applies VGG's initialisation. */
nc_status nc__vgg_build(nc_builder *b, const nc_model_options *opt, char config, int batch_norm,
                        nc_value x, nc_value *logits);

/* A DenseNet configuration (torchvision's DenseNet(growth_rate, block_config,
 * num_init_features, bn_size)). */
typedef struct nc__densenet_cfg {
    int growth;                /* k: channels each dense layer adds */
    int layers[4];             /* dense layers per block */
    int init_features;         /* conv0's channels */
    int bn_size;               /* bottleneck width = bn_size * growth */
} nc__densenet_cfg;

/* Builds a DenseNet (densenet.c) plus the heads (key "classifier"), memory-efficient
 * in training. */
nc_status nc__densenet_build(nc_builder *b, const nc_model_options *opt, const nc__densenet_cfg *cfg,
                             nc_value x, nc_value *logits);

/* Builds the simple_cnn baseline (see simple_cnn.c) plus the heads (key "fc"). */
nc_status nc__simple_cnn_build(nc_builder *b, const nc_model_options *opt, nc_value x,
                               nc_value *logits);

/* Classifier heads on 2-D features (see heads.c for the key scheme). `key` is the
 * module path of the head ("fc", "classifier.6", "classifier"); linear_dropout > 0 puts a Dropout
 * before linear heads. */
nc_status nc__heads_build(nc_builder *b, const nc_model_options *opt, const char *key,
                          nc_value features, float linear_dropout, nc_value *logits);

/* Gives the parameterless node v the module path `name` (e.g. "features.1" for a
 * ReLU) so summaries read like PyTorch's; keeps the automatic name when `name` is
 * taken or memory is short. Never fails. */
void nc__models_name(nc_builder *b, nc_value v, const char *name);

#endif
