/* context.c — nc_context: resolves the backend and thread count, routes every host
 * allocation through the caller's allocator hooks, and keeps the last error text of
 * each calling thread (a per-context pthread key). There is no global mutable state:
 * everything hangs off the context. */
#include "core/context.h"
#include "nc_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if HAVE_OPENMP
#include <omp.h>
#endif

#define NC__ALIGN 64

static void *default_alloc(void *user, size_t size, size_t align) {
    (void)user;
    void *p = NULL;
    if (size == 0) size = 1;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0) return NULL;
    return p;
}

static void default_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

void nc_context_options_init(nc_context_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->backend = NC_BACKEND_AUTO;
}

/* ---- error text: one per calling thread */

typedef struct nc__error_slot {
    nc_context *ctx;
    struct nc__error_slot *prev, *next;
    char text[NC__ERROR_TEXT];
} nc__error_slot;

/* pthread key destructor: the thread ends, its slot goes. */
static void slot_release(void *ptr) {
    nc__error_slot *slot = ptr;
    nc_context *ctx = slot->ctx;
    pthread_mutex_lock(&ctx->error_mu);
    if (slot->prev) slot->prev->next = slot->next;
    else ctx->error_slots = slot->next;
    if (slot->next) slot->next->prev = slot->prev;
    pthread_mutex_unlock(&ctx->error_mu);
    ctx->opt.allocator.free(ctx->opt.allocator.user, slot);
}

/* The calling thread's text; `create`: make its slot if it has none (NULL when
 * memory runs out, or with create 0 when it has none). */
static char *thread_text(const nc_context *cctx, int create) {
    nc_context *ctx = (nc_context *)cctx; /* the slots are not the context's value */
    if (ctx->is_child || pthread_equal(ctx->owner, pthread_self())) return ctx->error;
    nc__error_slot *slot = pthread_getspecific(ctx->error_key);
    if (slot || !create) return slot ? slot->text : NULL;
    slot = ctx->opt.allocator.alloc(ctx->opt.allocator.user, sizeof *slot, NC__ALIGN);
    if (!slot) return NULL;
    memset(slot, 0, sizeof *slot);
    slot->ctx = ctx;
    if (pthread_setspecific(ctx->error_key, slot) != 0) {
        ctx->opt.allocator.free(ctx->opt.allocator.user, slot);
        return NULL;
    }
    pthread_mutex_lock(&ctx->error_mu);
    slot->next = ctx->error_slots;
    if (slot->next) slot->next->prev = slot;
    ctx->error_slots = slot;
    pthread_mutex_unlock(&ctx->error_mu);
    return slot->text;
}

static int errors_init(nc_context *ctx) {
    ctx->owner = pthread_self();
    if (ctx->is_child) return 0;
    if (pthread_mutex_init(&ctx->error_mu, NULL) != 0) return -1;
    if (pthread_key_create(&ctx->error_key, slot_release) != 0) {
        pthread_mutex_destroy(&ctx->error_mu);
        return -1;
    }
    return 0;
}

/* Deleting the key first: no destructor runs after it, so the list is ours. */
static void errors_destroy(nc_context *ctx) {
    if (ctx->is_child) return;
    pthread_key_delete(ctx->error_key);
    for (nc__error_slot *s = ctx->error_slots, *next; s; s = next) {
        next = s->next;
        ctx->opt.allocator.free(ctx->opt.allocator.user, s);
    }
    pthread_mutex_destroy(&ctx->error_mu);
}

void nc__error_clear(nc_context *ctx) {
    char *text = ctx ? thread_text(ctx, 0) : NULL;
    if (text) text[0] = '\0';
}

static nc_status vset_error(nc_context *ctx, nc_status status, int prefix, const char *fmt,
                            va_list ap) {
    char *error = ctx ? thread_text(ctx, 1) : NULL;
    if (!error) return status; /* NULL context, or no memory for this thread's text */
    char msg[NC__ERROR_TEXT];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (prefix && error[0]) {
        char old[NC__ERROR_TEXT];
        memcpy(old, error, sizeof old);
        size_t n = strlen(msg);
        if (n > NC__ERROR_TEXT - 3) n = NC__ERROR_TEXT - 3;
        memcpy(error, msg, n);
        memcpy(error + n, ": ", 2);
        size_t rest = NC__ERROR_TEXT - n - 3;
        size_t m = strlen(old);
        if (m > rest) m = rest;
        memcpy(error + n + 2, old, m);
        error[n + 2 + m] = 0;
    } else {
        memcpy(error, msg, sizeof msg);
    }
    return status;
}

nc_status nc__error(nc_context *ctx, nc_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_error(ctx, status, 0, fmt, ap);
    va_end(ap);
    return status;
}

nc_status nc__error_prefix(nc_context *ctx, nc_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_error(ctx, status, 1, fmt, ap);
    va_end(ap);
    return status;
}

void *nc__alloc(nc_context *ctx, size_t size) {
    return ctx->opt.allocator.alloc(ctx->opt.allocator.user, size ? size : 1, NC__ALIGN);
}

void *nc__calloc(nc_context *ctx, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = nc__alloc(ctx, count * size);
    if (p) memset(p, 0, (count * size) > 0 ? count * size : 1);
    return p;
}

void nc__free(nc_context *ctx, void *ptr) {
    if (ptr) ctx->opt.allocator.free(ctx->opt.allocator.user, ptr);
}

char *nc__strdup(nc_context *ctx, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = nc__alloc(ctx, n);
    if (p) memcpy(p, s, n);
    return p;
}

int nc__grow(nc_context *ctx, void **arr, size_t elem_size, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return -1;
        ncap *= 2;
    }
    if (elem_size && ncap > SIZE_MAX / elem_size) return -1;
    void *p = nc__alloc(ctx, ncap * elem_size);
    if (!p) return -1;
    if (*arr) {
        memcpy(p, *arr, *cap * elem_size);
        nc__free(ctx, *arr);
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

static int available_cores(void) {
#if HAVE_OPENMP
    int n = omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n > 0 ? (int)n : 1;
}

const char *nc_backend_name(nc_backend_kind kind) {
    switch (kind) {
    case NC_BACKEND_AUTO: return "auto";
    case NC_BACKEND_REF: return "ref";
    case NC_BACKEND_ONEDNN: return "onednn";
    case NC_BACKEND_CUDA: return "cuda";
    }
    return "unknown";
}

static const nc__backend *backend_of(nc_backend_kind kind) {
    switch (kind) {
    case NC_BACKEND_REF: return nc__backend_ref();
    case NC_BACKEND_ONEDNN: return nc__backend_onednn();
    case NC_BACKEND_CUDA: return nc__backend_cuda();
    case NC_BACKEND_AUTO: break;
    }
    return NULL;
}

/* Whether a started backend stores bf16 values: asked of a 3x3 convolution with its
 * backward, the op every model has. */
static int stores_bf16(const nc_context *ctx) {
    nc__conv_desc d = {.n = 2, .c = 16, .h = 8, .w = 8, .k = 16, .r = 3, .s = 3, .groups = 1, .stride_h = 1,
                       .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .oh = 8, .ow = 8,
                       .dtype = NC__DTYPE_BF16};
    nc__op_query q = {.kernel = NC__K_CONV2D, .dtype = NC__DTYPE_BF16, .training = 1, .conv = &d};
    return ctx->backend->supports(ctx->backend_state, &q);
}

/* Starts backend `be` in ctx (NULL: not built in); BF16_MATH is oneDNN's alone. */
static nc_status start_backend(nc_context *ctx, const nc__backend *be) {
    if (!be) return NC_ERR_UNSUPPORTED;
    if (ctx->opt.precision == NC_PRECISION_BF16_MATH && be->kind != NC_BACKEND_ONEDNN) return NC_ERR_UNSUPPORTED;
    ctx->backend = be;
    ctx->kind = be->kind;
    nc_status st = be->init(ctx, ctx->num_threads, &ctx->backend_state);
    if (st != NC_OK) ctx->backend = NULL;
    return st;
}

/* The fastest built backend that starts and runs the precision: cuda, onednn, ref. */
static nc_status start_auto(nc_context *ctx) {
    const nc__backend *order[] = {nc__backend_cuda(), nc__backend_onednn(), nc__backend_ref()};
    nc_status st = NC_ERR_UNSUPPORTED;
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        if (!order[i] || (ctx->opt.precision == NC_PRECISION_BF16_MATH && order[i]->kind != NC_BACKEND_ONEDNN))
            continue;
        if ((st = start_backend(ctx, order[i])) != NC_OK) continue;
        if (ctx->opt.precision != NC_PRECISION_BF16 || stores_bf16(ctx)) return NC_OK;
        order[i]->destroy(ctx->backend_state);
        ctx->backend = NULL;
        ctx->backend_state = NULL;
        st = NC_ERR_UNSUPPORTED;
    }
    return st;
}

nc_status nc_context_create(const nc_context_options *opt, nc_context **out) {
    if (!out) return NC_ERR_NULL;
    *out = NULL;
    nc_context_options o;
    nc_context_options_init(&o);
    if (opt) {
        if (opt->struct_size < offsetof(nc_context_options, allocator) ||
            opt->struct_size > sizeof o)
            return NC_ERR_INVALID_ARGUMENT;
        memcpy(&o, opt, opt->struct_size);
        o.struct_size = sizeof o;
    }
    if ((o.allocator.alloc == NULL) != (o.allocator.free == NULL)) return NC_ERR_INVALID_ARGUMENT;
    if (!o.allocator.alloc) {
        o.allocator.alloc = default_alloc;
        o.allocator.free = default_free;
        o.allocator.user = NULL;
    }
    if (o.num_threads < 0 || o.num_threads > 4096) return NC_ERR_INVALID_ARGUMENT;
    if ((unsigned)o.backend > NC_BACKEND_CUDA) return NC_ERR_INVALID_ARGUMENT;

    if (o.bf16 != 0 && o.bf16 != 1) return NC_ERR_INVALID_ARGUMENT;
    if ((unsigned)o.precision > NC_PRECISION_BF16_MATH) return NC_ERR_INVALID_ARGUMENT;
    if ((unsigned)o.conv_algorithm > NC_CONV_ALGORITHM_WINOGRAD) return NC_ERR_INVALID_ARGUMENT;
    if (o.bf16 && o.precision == NC_PRECISION_FP32) o.precision = NC_PRECISION_BF16_MATH; /* the 0.1 field */
    if (o.bf16 && o.precision != NC_PRECISION_BF16_MATH) return NC_ERR_INVALID_ARGUMENT;
    o.bf16 = o.precision == NC_PRECISION_BF16_MATH;

    nc_context *ctx = o.allocator.alloc(o.allocator.user, sizeof *ctx, NC__ALIGN);
    if (!ctx) return NC_ERR_OUT_OF_MEMORY;
    memset(ctx, 0, sizeof *ctx);
    ctx->opt = o;
    ctx->num_threads = o.num_threads ? o.num_threads : available_cores();
    if (errors_init(ctx) != 0) { /* out of pthread keys (PTHREAD_KEYS_MAX contexts alive) */
        o.allocator.free(o.allocator.user, ctx);
        return NC_ERR_LIMIT;
    }
    nc_status st = o.backend == NC_BACKEND_AUTO ? start_auto(ctx) : start_backend(ctx, backend_of(o.backend));
    if (st != NC_OK) {
        errors_destroy(ctx);
        o.allocator.free(o.allocator.user, ctx);
        return st;
    }
    *out = ctx;
    return NC_OK;
}

nc_status nc__context_create_child(nc_context *parent, nc_context **out) {
    nc_context *ctx = parent->opt.allocator.alloc(parent->opt.allocator.user, sizeof *ctx, NC__ALIGN);
    if (!ctx) return nc__error(parent, NC_ERR_OUT_OF_MEMORY, "worker context: out of memory");
    memset(ctx, 0, sizeof *ctx);
    ctx->opt = parent->opt;
    ctx->kind = parent->kind;
    ctx->num_threads = 1;
    ctx->is_child = 1;
    errors_init(ctx); /* a worker context cannot fail: its one thread uses `error` */
    *out = ctx;
    return NC_OK;
}

void nc_context_destroy(nc_context *ctx) {
    if (!ctx) return;
    if (!ctx->is_child && ctx->backend && ctx->backend->destroy) ctx->backend->destroy(ctx->backend_state);
    errors_destroy(ctx);
    ctx->opt.allocator.free(ctx->opt.allocator.user, ctx);
}

const char *nc_context_last_error(const nc_context *ctx) {
    if (!ctx) return "NULL context";
    const char *text = thread_text(ctx, 0);
    return text ? text : ""; /* a thread without a message yet */
}

nc_backend_kind nc_context_backend(const nc_context *ctx) {
    return ctx ? ctx->kind : NC_BACKEND_REF;
}

nc_precision nc_context_precision(const nc_context *ctx) { return ctx ? ctx->opt.precision : NC_PRECISION_FP32; }

nc__dtype nc__context_act_dtype(const nc_context *ctx) {
    return ctx->opt.precision == NC_PRECISION_BF16 ? NC__DTYPE_BF16 : NC__DTYPE_F32;
}
