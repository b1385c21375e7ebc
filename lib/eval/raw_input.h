/* raw_input.h — described raw input buffers (nc_input_desc: uint8/uint16/float32,
 * NCHW/NHWC/per-channel planes, byte strides, value range) checked and converted to
 * the float NCHW batch a forward pass takes, with the model's normalisation applied on
 * the way (nc_model_forward_raw, predict.c). */
#ifndef NC_EVAL_RAW_INPUT_H
#define NC_EVAL_RAW_INPUT_H

#include "neurc.h"

#include <stdint.h>

/* A checked descriptor: every default resolved. */
typedef struct nc__raw {
    nc_input_desc d;          /* strides resolved (never 0), max_value resolved */
    int64_t elem;             /* bytes per element */
    float lo, range;          /* x = ((float)v - lo) / range */
} nc__raw;

/* Checks `desc` for a model with `in_channels` input channels and resolves it into
 * *out; errors name `fn`. Statuses as nc_model_forward_raw's argument checks. */
nc_status nc__raw_check(nc_context *ctx, const char *fn, const nc_input_desc *desc, int in_channels, nc__raw *out);

/* x (n, c, h, w) = the scaled values, then (x - mean[ch]) / std[ch] when mean is not
 * NULL, in float, row by row. */
void nc__raw_convert(const nc__raw *r, const float *mean, const float *std, float *x);

#endif
