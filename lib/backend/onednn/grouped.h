/* grouped.h — our own direct kernels for grouped convolutions with narrow groups
 * (2 or 4 channels per group, as ResNeXt-50 32x4d's first stage) on the nChw8c
 * activation layout, for AVX2+FMA CPUs. oneDNN 2.6 has no blocked kernel for
 * groups narrower than its 8-channel block and falls back to im2col + GEMM
 * (about 16 GFLOP/s on 2 cores); these kernels keep the blocked layout and use the
 * fact that an 8-channel block holds whole groups: every output lane needs the
 * input channels of its own group, a permutation within the block.
 *
 * Layouts: activations nChw8c (C a multiple of 8, so no padding), weights packed by
 * nc__gconv8_pack_weights, bias and parameter gradients plain. Threads: `nt`
 * OpenMP threads. */
#ifndef NC_BACKEND_ONEDNN_GROUPED_H
#define NC_BACKEND_ONEDNN_GROUPED_H

#include "backend/backend.h"

#include <stddef.h>

/* 1 when these kernels handle d on this CPU: C == K, C % 8 == 0, C/G in {2, 4},
 * AVX2 and FMA available. */
int nc__gconv8_supported(const nc__conv_desc *d);

/* Floats of the packed weights (2 K C/G R S: one copy arranged for forward, one for
 * backward data), and packing from plain (K, C/G, R, S). The kernels below assume
 * nc__gconv8_supported(d); they allocate nothing (backward weights keeps 16 KB of
 * partial sums on each thread's stack). */
size_t nc__gconv8_weight_floats(const nc__conv_desc *d);
void nc__gconv8_pack_weights(const nc__conv_desc *d, float *packed, const float *w);

/* y = [relu](conv(x) + bias + residual): bias (K) and residual (y's layout) may be
 * NULL. y is overwritten. */
void nc__gconv8_forward(int nt, const nc__conv_desc *d, float *y, const float *x, const float *packed,
                        const float *bias, const float *residual, int relu);
/* dx (=|+=) conv_transpose(dy) as `mode` says (backend.h, GRADIENT WRITE RULE). */
void nc__gconv8_backward_data(int nt, const nc__conv_desc *d, float *dx, const float *dy, const float *packed,
                              nc__write mode);
/* dw (plain (K, C/G, R, S)) += dL/dw; db (K) += sum of dy per channel when not NULL. */
void nc__gconv8_backward_weights(int nt, const nc__conv_desc *d, float *dw, float *db, const float *dy,
                                 const float *x);

#endif
