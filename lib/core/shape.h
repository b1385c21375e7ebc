/* shape.h — logical tensor shapes (NCHW for 4-D activations, NC for 2-D, OIHW for
 * conv weights). The logical shape is what the graph reasons about; the physical
 * layout of the bytes belongs to the backend. */
#ifndef NC_CORE_SHAPE_H
#define NC_CORE_SHAPE_H

#include <stdint.h>
#include <stddef.h>

#define NC__MAX_DIMS 4

typedef struct nc__shape {
    int ndim;                  /* 0..4 */
    int64_t d[NC__MAX_DIMS];
} nc__shape;

static inline int64_t nc__shape_numel(const nc__shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

static inline nc__shape nc__shape4(int64_t n, int64_t c, int64_t h, int64_t w) {
    nc__shape s = {4, {n, c, h, w}};
    return s;
}
static inline nc__shape nc__shape2(int64_t n, int64_t c) {
    nc__shape s = {2, {n, c, 1, 1}};
    return s;
}
static inline nc__shape nc__shape1(int64_t n) {
    nc__shape s = {1, {n, 1, 1, 1}};
    return s;
}

static inline int nc__shape_equal(const nc__shape *a, const nc__shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

/* Writes "[2,3,4,5]" into buf; returns buf. */
char *nc__shape_str(const nc__shape *s, char *buf, size_t size);

#endif
