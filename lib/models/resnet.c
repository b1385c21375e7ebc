/* resnet.c — ResNet and ResNeXt exactly as torchvision 0.14 builds them (v1.5:
 * the stride sits on the 3x3 convolution of a bottleneck), so parameter names and
 * shapes equal torchvision's state_dict keys. Extras: small-image stem, dropout
 * inside blocks, and a grouped variant of the basic block for "resnext". */
#include "models/models.h"
#include "core/context.h"

#include <stdio.h>

/* conv (no bias) -> batchnorm [-> relu], named "<p>.conv<i>" / "<p>.bn<i>" style by
 * the caller. */
static nc_status conv_bn(nc_builder *b, const char *conv_name, const char *bn_name, nc_value x, int k,
                         int kernel, int stride, int padding, int groups, int relu, nc_value *out) {
    nc_status st;
    nc_value v;
    if ((st = nc_builder_conv2d(b, conv_name, x, k, kernel, stride, padding, 1, groups, 0, &v)) != NC_OK)
        return st;
    if ((st = nc_builder_batchnorm(b, bn_name, v, NC__BN_EPS, NC__BN_MOMENTUM, &v)) != NC_OK) return st;
    if (relu && (st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
    *out = v;
    return NC_OK;
}

/* One residual block "<p>" (e.g. "layer2.0"). torchvision registers conv1, bn1,
 * conv2, bn2, [conv3, bn3], downsample in that order; building in the same order
 * gives the same state_dict order. */
static nc_status block(nc_builder *b, const nc_model_options *opt, const nc__resnet_cfg *cfg,
                       const char *p, nc_value x, int inplanes, int planes, int stride, nc_value *out) {
    char n1[192], n2[192];
    nc_status st;
    nc_value v;
    const int expansion = cfg->bottleneck ? 4 : 1;
    /* torchvision: int(planes * (base_width / 64.)) * groups */
    const int64_t width64 = ((int64_t)planes * cfg->width_per_group) / 64 * cfg->groups;
    if (width64 > (1 << 24))
        return nc__error(nc__builder_graph(b)->ctx, NC_ERR_INVALID_ARGUMENT,
                         "%s: block width %lld (planes %d x base_width %d / 64 x cardinality %d) is too large", p,
                         (long long)width64, planes, cfg->width_per_group, cfg->groups);
    const int width = (int)width64;
    const int outplanes = planes * expansion;
    const float pdrop = opt->block_dropout;

    if (cfg->bottleneck) {
        snprintf(n1, sizeof n1, "%s.conv1", p);
        snprintf(n2, sizeof n2, "%s.bn1", p);
        if ((st = conv_bn(b, n1, n2, x, width, 1, 1, 0, 1, 1, &v)) != NC_OK) return st;
        snprintf(n1, sizeof n1, "%s.conv2", p);
        snprintf(n2, sizeof n2, "%s.bn2", p);
        if ((st = conv_bn(b, n1, n2, v, width, 3, stride, 1, cfg->groups, 1, &v)) != NC_OK) return st;
        if (pdrop > 0.0f && (st = nc_builder_dropout(b, v, pdrop, &v)) != NC_OK) return st;
        snprintf(n1, sizeof n1, "%s.conv3", p);
        snprintf(n2, sizeof n2, "%s.bn3", p);
        if ((st = conv_bn(b, n1, n2, v, outplanes, 1, 1, 0, 1, 0, &v)) != NC_OK) return st;
    } else {
        /* BasicBlock. With groups = 1 and base width 64 (every named arch) this is
         * torchvision's; otherwise both 3x3 convs are grouped, with `width` channels
         * between them (torchvision refuses that case). */
        snprintf(n1, sizeof n1, "%s.conv1", p);
        snprintf(n2, sizeof n2, "%s.bn1", p);
        if ((st = conv_bn(b, n1, n2, x, width, 3, stride, 1, cfg->groups, 1, &v)) != NC_OK) return st;
        if (pdrop > 0.0f && (st = nc_builder_dropout(b, v, pdrop, &v)) != NC_OK) return st;
        snprintf(n1, sizeof n1, "%s.conv2", p);
        snprintf(n2, sizeof n2, "%s.bn2", p);
        if ((st = conv_bn(b, n1, n2, v, outplanes, 3, 1, 1, cfg->groups, 0, &v)) != NC_OK) return st;
    }
    nc_value identity = x;
    if (stride != 1 || inplanes != outplanes) {
        snprintf(n1, sizeof n1, "%s.downsample.0", p);
        snprintf(n2, sizeof n2, "%s.downsample.1", p);
        if ((st = conv_bn(b, n1, n2, x, outplanes, 1, stride, 0, 1, 0, &identity)) != NC_OK) return st;
    }
    if ((st = nc_builder_add(b, v, identity, &v)) != NC_OK) return st;
    return nc_builder_relu(b, v, out);
}

nc_status nc__resnet_build(nc_builder *b, const nc_model_options *opt, const nc__resnet_cfg *cfg,
                           nc_value x, nc_value *logits) {
    char p[64];
    nc_status st;
    nc_value v;
    /* Stem: conv1 7x7/2 + maxpool 3x3/2, or 3x3/1 without pool for small images. */
    if (opt->small_input) {
        if ((st = conv_bn(b, "conv1", "bn1", x, 64, 3, 1, 1, 1, 1, &v)) != NC_OK) return st;
    } else {
        if ((st = conv_bn(b, "conv1", "bn1", x, 64, 7, 2, 3, 1, 1, &v)) != NC_OK) return st;
        if ((st = nc_builder_max_pool2d(b, v, 3, 2, 1, &v)) != NC_OK) return st;
        nc__models_name(b, v, "maxpool");
    }
    int inplanes = 64;
    const int expansion = cfg->bottleneck ? 4 : 1;
    for (int s = 0; s < 4; s++) {
        int planes = 64 << s;
        for (int i = 0; i < cfg->layers[s]; i++) {
            snprintf(p, sizeof p, "layer%d.%d", s + 1, i);
            int stride = (s > 0 && i == 0) ? 2 : 1;
            if ((st = block(b, opt, cfg, p, v, inplanes, planes, stride, &v)) != NC_OK) return st;
            inplanes = planes * expansion;
        }
    }
    if ((st = nc_builder_adaptive_avg_pool2d(b, v, 1, 1, &v)) != NC_OK) return st;
    nc__models_name(b, v, "avgpool");
    if ((st = nc_builder_flatten(b, v, &v)) != NC_OK) return st;
    nc__models_name(b, v, "flatten");
    return nc__heads_build(b, opt, "fc", v, opt->head_dropout, logits);
}
