/* simple_cnn.c — a small baseline CNN for quick experiments and tests: three
 * conv3x3-BN-ReLU-maxpool2 blocks of widths w, 2w, 4w (w = opt->width), a global
 * average pool and the usual heads ("fc"). Inputs must be at least 8x8. In PyTorch:
 *   conv1 = Conv2d(in, w, 3, padding=1, bias=False); bn1 = BatchNorm2d(w)
 *   conv2 = Conv2d(w, 2w, 3, padding=1, bias=False); bn2 = BatchNorm2d(2w)
 *   conv3 = Conv2d(2w, 4w, 3, padding=1, bias=False); bn3 = BatchNorm2d(4w)
 *   x = pool_i(relu(bn_i(conv_i(x)))) for i = 1..3 (MaxPool2d(2)); avgpool 1x1;
 *   flatten; fc
 * (tests/fixtures/make_torchvision_keys.py holds the same module as SimpleCNN). */
#include "models/models.h"

#include <stdio.h>

nc_status nc__simple_cnn_build(nc_builder *b, const nc_model_options *opt, nc_value x,
                               nc_value *logits) {
    char conv[32], bn[32], pool[32];
    nc_status st;
    nc_value v = x;
    for (int i = 1; i <= 3; i++) {
        int k = opt->width << (i - 1);
        snprintf(conv, sizeof conv, "conv%d", i);
        snprintf(bn, sizeof bn, "bn%d", i);
        snprintf(pool, sizeof pool, "pool%d", i);
        if ((st = nc_builder_conv2d(b, conv, v, k, 3, 1, 1, 1, 1, 0, &v)) != NC_OK) return st;
        if ((st = nc_builder_batchnorm(b, bn, v, NC__BN_EPS, NC__BN_MOMENTUM, &v)) != NC_OK) return st;
        if ((st = nc_builder_relu(b, v, &v)) != NC_OK) return st;
        if ((st = nc_builder_max_pool2d(b, v, 2, 2, 0, &v)) != NC_OK) return st;
        nc__models_name(b, v, pool);
    }
    if ((st = nc_builder_adaptive_avg_pool2d(b, v, 1, 1, &v)) != NC_OK) return st;
    nc__models_name(b, v, "avgpool");
    if ((st = nc_builder_flatten(b, v, &v)) != NC_OK) return st;
    nc__models_name(b, v, "flatten");
    return nc__heads_build(b, opt, "fc", v, opt->head_dropout, logits);
}
