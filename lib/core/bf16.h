/* bf16.h — bfloat16 storage: the upper 16 bits of an IEEE f32. Conversion to bf16
 * rounds to nearest, ties to even (as PyTorch's and oneDNN's), keeping NaN a NaN;
 * conversion back is exact. Shared by the backends and the safetensors reader. */
#ifndef NC_CORE_BF16_H
#define NC_CORE_BF16_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

typedef uint16_t nc__bf16;

static inline float nc__bf16_to_f32(nc__bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline nc__bf16 nc__f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (nc__bf16)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (nc__bf16)(u >> 16);
}

/* f32 -> the nearest bf16 value, as an f32 (what a round trip through bf16 gives). */
static inline float nc__bf16_round(float f) { return nc__bf16_to_f32(nc__f32_to_bf16(f)); }

#endif
