/* rng.h — a counter-based random number generator: every draw is a pure function
 * of (seed, stream, counter), so initialisation, dropout masks and augmentations
 * are the same whatever the thread count or the order of evaluation. */
#ifndef NC_CORE_RNG_H
#define NC_CORE_RNG_H

#include <stdint.h>

/* 64 random bits for (seed, stream, counter). */
uint64_t nc__rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float nc__rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
/* Standard normal (Box-Muller on two draws of the counter). */
float nc__rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);
/* FNV-1a hash of a string: turns parameter names into streams. */
uint64_t nc__hash_str(const char *s);

#endif
