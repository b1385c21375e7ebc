/* rng.c — counter-based random numbers: a splitmix64-style finaliser over a mixed
 * (seed, stream, counter) triple. No state is carried, so any element of any
 * stream can be drawn independently and in parallel. */
#include "core/rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t nc__rng_u64(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint64_t k = mix64(seed + 0x9e3779b97f4a7c15ull);
    k = mix64(k ^ (stream * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
    return mix64(k + counter * 0x9e3779b97f4a7c15ull);
}

float nc__rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    return (float)(nc__rng_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

float nc__rng_normal(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint64_t r = nc__rng_u64(seed, stream, counter);
    /* two 32-bit uniforms; u1 in (0, 1] so log is finite */
    double u1 = ((double)(r >> 32) + 1.0) / 4294967296.0;
    double u2 = (double)(r & 0xffffffffu) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t nc__hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}
