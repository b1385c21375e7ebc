/* pool.h — a model's pool of eval plans, so that several threads run inference on
 * one model at once: each call takes a plan (its activation arena, backend caches
 * and worker state: exec.h, backend.h CONCURRENCY) for its own, and gives it back.
 * An idle plan of the same input shape is reused; otherwise a new one is built.
 * The pool keeps at most as many plans as calls ever ran at once on the model (its
 * high-water mark): serial use keeps one plan, rebuilt when the shape changes; with
 * k threads it grows to k plans and stays there, trading memory for no rebuilds.
 * When a new plan must be made and the pool is full, the idle plan given back
 * longest ago goes first. */
#ifndef NC_GRAPH_POOL_H
#define NC_GRAPH_POOL_H

#include "neurc.h"
#include "core/shape.h"

#include <pthread.h>

struct nc__plan;

typedef struct nc__plan_pool {
    pthread_mutex_t mu;
    struct nc__plan **idle;     /* [n_idle] idle plans, given back longest ago first */
    int n_idle, cap;
    int busy;                   /* plans taken now */
    int high;                   /* the most taken at once: the pool's size limit */
} nc__plan_pool;

/* 0 on success, else the pthread error. */
int nc__plan_pool_init(nc__plan_pool *pool);
/* Destroys the idle plans (none may be taken). */
void nc__plan_pool_destroy(nc_context *ctx, nc__plan_pool *pool);
/* An eval plan of model m for input `in`, for the caller alone until given back. */
nc_status nc__plan_pool_take(nc_model *m, nc__plan_pool *pool, const nc__shape *in, struct nc__plan **out);
void nc__plan_pool_give(nc__plan_pool *pool, struct nc__plan *p);
/* The idle plan given back last, NULL when none (tests and diagnostics; no call may
 * run on the model meanwhile). */
struct nc__plan *nc__plan_pool_last(const nc__plan_pool *pool);
/* Plans the pool holds now, idle and taken. */
int nc__plan_pool_size(nc__plan_pool *pool);

#endif
