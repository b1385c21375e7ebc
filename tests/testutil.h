/* testutil.h — helpers shared by the cmocka tests: seeded random fills, error
 * measures, a central finite-difference gradient checker, fixture paths. */
#ifndef NC_TESTS_TESTUTIL_H
#define NC_TESTS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* Uniform values in [lo, hi) from a counter-based stream (seed). */
void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
/* calloc'ed (zeroed) arrays that fail the test when memory runs out; free() them. */
float *tu_zeros(size_t n);
double *tu_dzeros(size_t n);
/* tu_zeros + tu_fill_uniform. */
float *tu_rand(size_t n, float lo, float hi, uint64_t seed);
/* max_i |a-b| / max(max_i |b|, tiny): the normalized error used to compare backends. */
double tu_norm_err(const float *a, const float *b, size_t n);
/* calloc'ed (zeroed) arrays that fail the test when memory runs out; free() them. */
float *tu_zeros(size_t n);
double *tu_dzeros(size_t n);
/* tu_zeros + tu_fill_uniform. */
float *tu_rand(size_t n, float lo, float hi, uint64_t seed);
/* max_i |a-b| / max(|b_i|, floor) : element-wise relative error with an absolute floor. */
double tu_max_rel_err(const float *a, const float *b, size_t n, double floor);
/* Reads a whole file into a malloc'ed buffer (NUL-terminated); NULL on failure. */
char *tu_read_file(const char *path, size_t *size);
/* Path under tests/fixtures (static buffer per call site is fine: returns malloc'ed). */
char *tu_fixture(const char *name);
/* Temporary path unique to this process: "/tmp/nc_test_<pid>_<name>" (malloc'ed). */
char *tu_tmp_path(const char *name);
/* Sets LC_NUMERIC to a locale whose decimal point is ',' (German or French; built with
 * localedef into `locdir`, an existing directory, when none is installed, then
 * LOCPATH points there). Returns its name, or NULL when none could be set up.
 * tu_c_locale() goes back to "C" and unsets LOCPATH. */
const char *tu_comma_locale(const char *locdir);
void tu_c_locale(void);

/* An allocator that counts (thread-safe) and can fail on purpose, for leak and
 * out-of-memory tests. calls counts every allocation attempt; once fail_after >= 0,
 * every attempt with calls >= fail_after fails (only calls == fail_after with
 * fail_once). */
typedef struct tu_counting {
    long live;        /* allocations not yet freed */
    long calls;       /* allocations attempted */
    long fail_after;  /* < 0: never fail */
    size_t largest;   /* the largest size requested */
    int fail_once;    /* 1: only the attempt with calls == fail_after fails */
} tu_counting;
void *tu_count_alloc(void *user, size_t size, size_t align);
void tu_count_free(void *user, void *ptr);
/* A reference-backend context with `threads` threads (0 = all cores); fails the
 * test when it cannot be made. */
struct nc_context *tu_ref_context(int threads);
/* A reference-backend, one-thread context whose allocations count into *c
 * (fail_after set to -1); NULL on failure. */
struct nc_context *tu_counting_context(tu_counting *c);

/* A reference-backend context for the tests that call the kernels directly (their
 * packing scratch comes from a context's hooks). Made by tu_kctx_setup, destroyed by
 * tu_kctx_teardown: use them as the cmocka group setup/teardown. */
extern struct nc_context *tu_kctx;
int tu_kctx_setup(void **state);
int tu_kctx_teardown(void **state);

/* The common fixture: a counting context; teardown fails the case when anything the
 * case allocated through it is still live. Use as cmocka setup/teardown. */
typedef struct tu_fx {
    tu_counting cnt;
    struct nc_context *ctx;
    long base; /* live allocations right after the context was created */
} tu_fx;
int tu_fx_setup(void **state);
int tu_fx_teardown(void **state);

/* Finite-difference check: f(x) -> scalar loss computed by `loss`, analytic gradient
 * `grad` (n values). Checks `probes` coordinates chosen deterministically; returns the
 * worst |fd - analytic| / max(|fd| + |analytic|, 1e-3). eps ~1e-2 in f32 with double
 * accumulation in loss. */
typedef double (*tu_loss_fn)(void *user);
double tu_grad_check(float *x, const float *grad, size_t n, tu_loss_fn loss, void *user, float eps,
                     int probes);

/* Skips a cmocka test when the build has no oneDNN backend (the test file includes
 * nc_config.h for HAVE_ONEDNN). */
#define SKIP_WITHOUT_ONEDNN()                                                     \
    do {                                                                          \
        if (!HAVE_ONEDNN) {                                                       \
            print_message("oneDNN backend not built in (meson -Donednn): skipped\n"); \
            skip();                                                               \
        }                                                                         \
    } while (0)

/* The golden tests' deterministic values (tests/fixtures/make_golden.py implements the
 * same): the input x[i] = u(key, i) (malloc'ed; NULL without memory), and every
 * element of tensor `name` by its kind. tu_gen_tensor returns 0, or -1 for a name no
 * rule covers. */
uint64_t tu_fnv1a64(const char *s);
uint64_t tu_splitmix64(uint64_t z);
float *tu_gen_input(const char *key, size_t n);
int tu_gen_tensor(const char *name, int ndim, const int64_t *shape, int64_t numel, float *out);

/* Temporary folders of test images: "<dir>/<rel>" (malloc'ed), mkdir of it (0 or -1),
 * a gray size x size 8-bit PNG whose pixels depend on `tag` (0 or -1), rm -rf. */
char *tu_path_join(const char *dir, const char *rel);
int tu_mkdir_in(const char *dir, const char *rel);
int tu_write_gray_png(struct nc_context *ctx, const char *dir, const char *rel, int size, int tag);
int tu_remove_tree(const char *dir);

#endif
