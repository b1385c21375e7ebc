/* context.h — the nc_context internals: chosen backend, threads, allocator and the
 * last error text of each calling thread, plus the NC_CHECK / nc__error helpers every
 * module uses. */
#ifndef NC_CORE_CONTEXT_H
#define NC_CORE_CONTEXT_H

#include "neurc.h"
#include "backend/backend.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#define NC__ERROR_TEXT 1024

struct nc_context {
    nc_context_options opt;        /* as given, defaults filled in */
    nc_backend_kind kind;          /* never NC_BACKEND_AUTO */
    const nc__backend *backend;    /* function table of `kind` */
    void *backend_state;           /* owned, from backend->init */
    int num_threads;               /* resolved (>= 1) */
    int is_child;                  /* worker context: no backend state of its own */
    /* Error text, one per calling thread (docs/api.md, Thread safety): `error` is the
     * text of the thread that created the context (a worker context's only thread);
     * every other thread gets its own slot through `error_key` on its first message,
     * freed when that thread ends or with the context. */
    char error[NC__ERROR_TEXT];
    pthread_t owner;               /* the thread `error` belongs to */
    pthread_key_t error_key;       /* user contexts only (not is_child) */
    pthread_mutex_t error_mu;      /* guards error_slots */
    struct nc__error_slot *error_slots; /* every other thread's slot */
    nc_progress_fn progress;       /* nc_context_set_progress; NULL = none (core/progress.h) */
    void *progress_user;
};

/* Records a printf-style message in ctx (NULL-safe) and returns `status`. */
nc_status nc__error(nc_context *ctx, nc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Appends ": <more>" style context to the existing message (prefix form). */
nc_status nc__error_prefix(nc_context *ctx, nc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Empties the calling thread's error text (ctx may be NULL). */
void nc__error_clear(nc_context *ctx);

/* Host allocations through the context's hooks (ctx may not be NULL).
 * nc__alloc returns 64-byte aligned memory or NULL; nc__calloc zeroes it. */
void *nc__alloc(nc_context *ctx, size_t size);
void *nc__calloc(nc_context *ctx, size_t count, size_t size);
void nc__free(nc_context *ctx, void *ptr);
char *nc__strdup(nc_context *ctx, const char *s);
/* Grows *arr (elem_size each, *cap elements) to hold at least `need`; 0 on success. */
int nc__grow(nc_context *ctx, void **arr, size_t elem_size, size_t *cap, size_t need);

/* The dtype activation values get under the context's precision policy (backend.h,
 * DTYPE POLICY): bf16 under NC_PRECISION_BF16, else f32. */
nc__dtype nc__context_act_dtype(const nc_context *ctx);

/* A context for a worker thread: shares parent's allocator, has no backend and its
 * own error text. Destroy with nc_context_destroy. */
nc_status nc__context_create_child(nc_context *parent, nc_context **out);

/* `status st` must be declared and a `fail:` label exist. */
#define NC_CHECK(expr)                                                                  \
    do {                                                                                \
        st = (expr);                                                                    \
        if (st != NC_OK) goto fail;                                                     \
    } while (0)

/* Fails with NC_ERR_OUT_OF_MEMORY when ptr is NULL. */
#define NC_CHECK_ALLOC(ctx, ptr)                                                        \
    do {                                                                                \
        if ((ptr) == NULL) {                                                            \
            st = nc__error((ctx), NC_ERR_OUT_OF_MEMORY, "%s: out of memory", __func__); \
            goto fail;                                                                  \
        }                                                                               \
    } while (0)

#endif
