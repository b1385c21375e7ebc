/* args.h — strict parsing of command-line numbers for the example programs
 * (nc-train, nc-predict, nc-export, nc-bench): the whole string must be a decimal
 * number in [lo, hi]; otherwise -1 and *out is left alone. Header-only, since each
 * program is its own executable built on the public API alone. nc-quickstart keeps
 * its own two functions so that it stays one file to read. */
#ifndef NC_EXAMPLES_ARGS_H
#define NC_EXAMPLES_ARGS_H

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static inline int arg_long(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* lo and hi within int's range */
static inline int arg_int(const char *s, long lo, long hi, int *out) {
    long v;
    if (arg_long(s, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

/* finite, in [lo, hi] */
static inline int arg_float(const char *s, double lo, double hi, float *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) return -1;
    *out = (float)v;
    return 0;
}

#endif
