/* testutil.c — see testutil.h. */
#include "testutil.h"

#include "core/rng.h"
#include "neurc.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * nc__rng_uniform(seed, 77, i);
}

float *tu_zeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

double *tu_dzeros(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

float *tu_rand(size_t n, float lo, float hi, uint64_t seed) {
    float *p = tu_zeros(n);
    tu_fill_uniform(p, n, lo, hi, seed);
    return p;
}

double tu_norm_err(const float *a, const float *b, size_t n) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d; /* NaN-propagating */
        if (fabs((double)b[i]) > mx) mx = fabs((double)b[i]);
    }
    return md / (mx > 1e-30 ? mx : 1e-30);
}

double tu_max_rel_err(const float *a, const float *b, size_t n, double floor) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double den = fabs((double)b[i]);
        if (den < floor) den = floor;
        double e = fabs((double)a[i] - (double)b[i]) / den;
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

char *tu_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[len] = 0;
        if (size) *size = (size_t)len;
    }
    return buf;
}

char *tu_fixture(const char *name) {
    size_t n = strlen(NC_FIXTURES) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", NC_FIXTURES, name);
    return p;
}

char *tu_tmp_path(const char *name) {
    size_t n = strlen(name) + 64;
    char *p = malloc(n);
    snprintf(p, n, "/tmp/nc_test_%ld_%s", (long)getpid(), name);
    return p;
}

double tu_grad_check(float *x, const float *grad, size_t n, tu_loss_fn loss, void *user, float eps,
                     int probes) {
    double worst = 0;
    for (int p = 0; p < probes; p++) {
        size_t i = (size_t)(nc__rng_u64(1234, 5, (uint64_t)p) % n);
        if (probes >= (int)n) i = (size_t)p;
        if (i >= n) break;
        float orig = x[i];
        x[i] = orig + eps;
        double lp = loss(user);
        x[i] = orig - eps;
        double lm = loss(user);
        x[i] = orig;
        double fd = (lp - lm) / (2.0 * eps);
        double e = fabs(fd - grad[i]) / fmax(fabs(fd) + fabs(grad[i]), 1e-3);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

void *tu_count_alloc(void *user, size_t size, size_t align) {
    tu_counting *c = user;
    long call = __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED);
    size_t seen = __atomic_load_n(&c->largest, __ATOMIC_RELAXED);
    while (size > seen && !__atomic_compare_exchange_n(&c->largest, &seen, size, 0, __ATOMIC_RELAXED,
                                                       __ATOMIC_RELAXED)) {
    }
    long fail_after = __atomic_load_n(&c->fail_after, __ATOMIC_RELAXED);
    int once = __atomic_load_n(&c->fail_once, __ATOMIC_RELAXED);
    if (fail_after >= 0 && (once ? call == fail_after : call >= fail_after)) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1) != 0) return NULL;
    __atomic_add_fetch(&c->live, 1, __ATOMIC_RELAXED);
    return p;
}

void tu_count_free(void *user, void *ptr) {
    tu_counting *c = user;
    if (ptr) __atomic_sub_fetch(&c->live, 1, __ATOMIC_RELAXED);
    free(ptr);
}

nc_context *tu_ref_context(int threads) {
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = threads;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    return ctx;
}

nc_context *tu_counting_context(tu_counting *c) {
    c->fail_after = -1;
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = 1;
    o.allocator.alloc = tu_count_alloc;
    o.allocator.free = tu_count_free;
    o.allocator.user = c;
    nc_context *ctx = NULL;
    return nc_context_create(&o, &ctx) == NC_OK ? ctx : NULL;
}

nc_context *tu_kctx;

int tu_kctx_setup(void **state) {
    (void)state;
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = 1;
    return nc_context_create(&o, &tu_kctx) == NC_OK ? 0 : -1;
}

int tu_kctx_teardown(void **state) {
    (void)state;
    nc_context_destroy(tu_kctx);
    tu_kctx = NULL;
    return 0;
}

int tu_fx_setup(void **state) {
    tu_fx *f = calloc(1, sizeof *f);
    if (!f || !(f->ctx = tu_counting_context(&f->cnt))) {
        free(f);
        return -1;
    }
    f->base = f->cnt.live;
    *state = f;
    return 0;
}

int tu_fx_teardown(void **state) {
    tu_fx *f = *state;
    assert_int_equal(f->cnt.live, f->base); /* nothing leaked by the case */
    nc_context_destroy(f->ctx);
    assert_int_equal(f->cnt.live, 0);
    free(f);
    return 0;
}

const char *tu_comma_locale(const char *locdir) {
    static const char *const cands[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++)
        if (setlocale(LC_NUMERIC, cands[i])) return cands[i];
    if (access("/usr/bin/localedef", X_OK) != 0) return NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1", locdir, locdir);
    if (system(cmd) != 0 && access(locdir, F_OK) != 0) return NULL;
    setenv("LOCPATH", locdir, 1);
    if (setlocale(LC_NUMERIC, "de_DE.UTF-8")) return "de_DE.UTF-8";
    unsetenv("LOCPATH");
    return NULL;
}

void tu_c_locale(void) {
    setlocale(LC_NUMERIC, "C");
    unsetenv("LOCPATH");
}

/* ---- the deterministic weights of the golden tests (rules: tests/fixtures/make_golden.py) */

uint64_t tu_fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (uint64_t)(unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t tu_splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* u(key, i) in [-1, 1), exact in double: 24 random bits. */
static double gen_u(uint64_t base, uint64_t i) {
    return (double)(tu_splitmix64(base + i) >> 40) * (1.0 / 8388608.0) - 1.0;
}

/* The input x: u(key, i). */
float *tu_gen_input(const char *key, size_t n) {
    float *x = malloc(n * sizeof *x);
    if (!x) return NULL;
    uint64_t base = tu_fnv1a64(key);
    for (size_t i = 0; i < n; i++) x[i] = (float)gen_u(base, i);
    return x;
}

/* Fills out[numel] with the deterministic value of every element of tensor `name`
 * (rules in make_golden.py). Returns 0, or -1 for a name no rule covers. */
int tu_gen_tensor(const char *name, int ndim, const int64_t *shape, int64_t numel,
                      float *out) {
    const char *dot = strrchr(name, '.');
    const char *last = dot ? dot + 1 : name;
    uint64_t base = tu_fnv1a64(name);
    if (strcmp(last, "num_batches_tracked") == 0) {
        for (int64_t i = 0; i < numel; i++) out[i] = 0.0f;
    } else if (strcmp(last, "weight") == 0 && ndim >= 2) {
        double scale = sqrt(6.0 / (double)(numel / shape[0]));
        for (int64_t i = 0; i < numel; i++) out[i] = (float)(scale * gen_u(base, (uint64_t)i));
    } else if (strcmp(last, "weight") == 0) {
        for (int64_t i = 0; i < numel; i++) out[i] = (float)(1.0 + 0.1 * gen_u(base, (uint64_t)i));
    } else if (strcmp(last, "bias") == 0 || strcmp(last, "running_mean") == 0) {
        for (int64_t i = 0; i < numel; i++) out[i] = (float)(0.1 * gen_u(base, (uint64_t)i));
    } else if (strcmp(last, "running_var") == 0) {
        for (int64_t i = 0; i < numel; i++)
            out[i] = (float)(1.0 + 0.125 * (gen_u(base, (uint64_t)i) + 1.0));
    } else {
        return -1;
    }
    return 0;
}


/* ---- temporary folders of PNG files */

char *tu_path_join(const char *dir, const char *rel) {
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

int tu_mkdir_in(const char *dir, const char *rel) {
    char *p = tu_path_join(dir, rel);
    int rc = p ? mkdir(p, 0755) : -1;
    free(p);
    return rc;
}

int tu_write_gray_png(struct nc_context *ctx, const char *dir, const char *rel, int size, int tag) {
    nc_image *img;
    if (nc_image_create(ctx, 1, size, size, &img) != NC_OK) return -1;
    float *d = nc_image_data(img);
    for (int i = 0; i < size * size; i++) d[i] = (float)((tag * 53 + i * 7) % 256) / 255.0f;
    char *p = tu_path_join(dir, rel);
    nc_status st = p ? nc_png_write(ctx, p, img, 8) : NC_ERR_OUT_OF_MEMORY;
    free(p);
    nc_image_destroy(img);
    return st == NC_OK ? 0 : -1;
}

int tu_remove_tree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}
