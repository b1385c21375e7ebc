/* winograd.h — our own Winograd F(2x2,3x3) forward convolution for the nChw8c
 * layout with AVX2 + FMA. oneDNN 2.6 has Winograd kernels for AVX-512 only, so on
 * AVX2 CPUs its 3x3 stride-1 convolutions run direct at the cores' FMA peak and the
 * only lever left is fewer multiplications: 16 per 2x2 output tile and channel pair
 * instead of 36 (2.25x fewer), paid for with input, weight and output transforms
 * (additions only, except the weights' halves).
 *
 * Used for the forward passes (conv2d_forward in training; conv2d_fused_infer, with
 * bias, residual and ReLU applied in the output transform) where the context's
 * conv_algorithm picks Winograd (ops.c, conv_alg, own_kernel). Backward data and
 * backward weights stay on oneDNN's direct primitives.
 *
 * Layouts: activations nChw8c, transformed weights as nc__wino_pack_weights writes
 * them (16 * C * K floats), bias plain (K), residual in y's layout.
 * Threads: `nt` OpenMP threads; results do not depend on nt (each output is summed
 * over the input channels in one fixed order by one thread). */
#ifndef NC_BACKEND_ONEDNN_WINOGRAD_H
#define NC_BACKEND_ONEDNN_WINOGRAD_H

#include "backend/backend.h"

#include <stddef.h>

/* 1 when d runs here on activation block `block`: block 8, groups 1, 3x3, stride 1,
 * no dilation, C % 8 == 0, K % 16 == 0, f32, and AVX2 + FMA on this CPU. */
int nc__wino_supported(const nc__conv_desc *d, int block);

/* Floats of the transformed weights (16 C K) and the transform from plain
 * (K, C, 3, 3) on `nt` threads: U = G g G^T per (k, c) in float. */
size_t nc__wino_weight_floats(const nc__conv_desc *d);
void nc__wino_pack_weights(int nt, const nc__conv_desc *d, float *u, const float *w);

/* Floats of the scratch nc__wino_forward needs with `nt` threads. */
size_t nc__wino_scratch_floats(const nc__conv_desc *d, int nt);

/* y = [relu](conv(x) + bias + residual); bias and residual may be NULL; y is
 * overwritten. Assumes nc__wino_supported(d, 8). */
void nc__wino_forward(int nt, const nc__conv_desc *d, float *y, const float *x, const float *u, const float *bias,
                      const float *residual, int relu, float *scratch);

#endif
