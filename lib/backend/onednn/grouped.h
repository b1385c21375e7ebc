/* grouped.h — our own direct kernels for grouped convolutions with narrow groups
 * (2 to 16 channels per group, as ResNeXt's stages) on the blocked activation
 * layouts: nChw8c with AVX2+FMA, nChw16c with AVX-512. oneDNN 2.6 has no blocked
 * kernel for groups narrower than its channel block and falls back to im2col + GEMM
 * or its reference kernel; these kernels keep the blocked layout and use the fact
 * that a channel block holds whole groups: every output lane needs the input
 * channels of its own group, a permutation within the block.
 *
 * Which widths run here (nc__gconv_supported) follows measurements against oneDNN
 * on ResNeXt shapes (docs/performance.md, "Grouped convolutions"): block 8: 2 and 4
 * channels per group; block 16: 2, 4 and 8.
 *
 * Layouts: activations nChw<block>c (C a multiple of the block, so no padding),
 * weights packed by nc__gconv_pack_weights, bias and parameter gradients plain.
 * Threads: `nt` OpenMP threads. */
#ifndef NC_BACKEND_ONEDNN_GROUPED_H
#define NC_BACKEND_ONEDNN_GROUPED_H

#include "backend/backend.h"

#include <stddef.h>

/* 1 when these kernels handle d on activation block `block` (8 or 16) on this CPU:
 * C == K, C % block == 0, C/G one of the widths above, and the block's ISA (AVX2 and
 * FMA for 8, AVX512F for 16) available. */
int nc__gconv_supported(const nc__conv_desc *d, int block);

/* Floats of the packed weights (2 K C/G R S: one copy arranged for forward, one for
 * backward data), and packing from plain (K, C/G, R, S) for `block`. The kernels
 * below assume nc__gconv_supported(d, block); they allocate nothing (backward
 * weights keeps 16 KB of partial sums on each thread's stack). */
size_t nc__gconv_weight_floats(const nc__conv_desc *d);
void nc__gconv_pack_weights(const nc__conv_desc *d, int block, float *packed, const float *w);

/* y = [relu](conv(x) + bias + residual): bias (K) and residual (y's layout) may be
 * NULL. y is overwritten. */
void nc__gconv_forward(int nt, const nc__conv_desc *d, int block, float *y, const float *x, const float *packed,
                       const float *bias, const float *residual, int relu);
/* dx (=|+=) conv_transpose(dy) as `mode` says (backend.h, GRADIENT WRITE RULE). */
void nc__gconv_backward_data(int nt, const nc__conv_desc *d, int block, float *dx, const float *dy,
                             const float *packed, nc__write mode);
/* dw (plain (K, C/G, R, S)) += dL/dw; db (K) += sum of dy per channel when not NULL. */
void nc__gconv_backward_weights(int nt, const nc__conv_desc *d, int block, float *dw, float *db, const float *dy,
                                const float *x);

#endif
