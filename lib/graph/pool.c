/* pool.c — the model's pool of eval plans (pool.h): a mutex guards the idle list
 * and the counts only; plans are built, run and destroyed outside it. */
#include "graph/pool.h"
#include "graph/exec.h"
#include "core/context.h"

#include <string.h>

int nc__plan_pool_init(nc__plan_pool *pool) {
    *pool = (nc__plan_pool){0};
    return pthread_mutex_init(&pool->mu, NULL);
}

void nc__plan_pool_destroy(nc_context *ctx, nc__plan_pool *pool) {
    for (int i = 0; i < pool->n_idle; i++) nc__plan_destroy(pool->idle[i]);
    nc__free(ctx, pool->idle);
    pthread_mutex_destroy(&pool->mu);
    *pool = (nc__plan_pool){0};
}

static int fits(const nc__plan *p, const nc__shape *in) {
    return !p->training && p->precision == p->m->ctx->opt.precision && nc__shape_equal(&p->in_shape, in);
}

/* Removes idle[i] (mu held). */
static nc__plan *remove_idle(nc__plan_pool *pool, int i) {
    nc__plan *p = pool->idle[i];
    memmove(pool->idle + i, pool->idle + i + 1, (size_t)(pool->n_idle - i - 1) * sizeof *pool->idle);
    pool->n_idle--;
    return p;
}

/* Counts the caller as taking a plan; room for every plan the pool may keep (mu held). */
static nc_status enter(nc_context *ctx, nc__plan_pool *pool) {
    const int high = pool->busy + 1 > pool->high ? pool->busy + 1 : pool->high;
    if (high > pool->cap) {
        size_t cap = (size_t)pool->cap;
        if (nc__grow(ctx, (void **)&pool->idle, sizeof *pool->idle, &cap, (size_t)high) != 0)
            return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_model_forward: out of memory for the plan pool");
        pool->cap = (int)cap;
    }
    pool->busy++;
    pool->high = high;
    return NC_OK;
}

nc_status nc__plan_pool_take(nc_model *m, nc__plan_pool *pool, const nc__shape *in, nc__plan **out) {
    nc_status st = nc__plan_check_input(m, in);
    if (st != NC_OK) return st;
    nc__plan *victim = NULL;
    pthread_mutex_lock(&pool->mu);
    st = enter(m->ctx, pool);
    for (int i = pool->n_idle - 1; st == NC_OK && i >= 0; i--) /* the most recent first */
        if (fits(pool->idle[i], in)) {
            *out = remove_idle(pool, i);
            pthread_mutex_unlock(&pool->mu);
            return NC_OK;
        }
    if (st == NC_OK && pool->n_idle + pool->busy > pool->high) victim = remove_idle(pool, 0);
    pthread_mutex_unlock(&pool->mu);
    if (st != NC_OK) return st;
    nc__plan_destroy(victim);
    *out = NULL;
    if ((st = nc__plan_get(m, out, 0, in)) != NC_OK) {
        pthread_mutex_lock(&pool->mu);
        pool->busy--;
        pthread_mutex_unlock(&pool->mu);
    }
    return st;
}

void nc__plan_pool_give(nc__plan_pool *pool, nc__plan *p) {
    pthread_mutex_lock(&pool->mu);
    pool->idle[pool->n_idle++] = p; /* n_idle + busy <= high <= cap */
    pool->busy--;
    pthread_mutex_unlock(&pool->mu);
}

nc__plan *nc__plan_pool_last(const nc__plan_pool *pool) {
    return pool->n_idle > 0 ? pool->idle[pool->n_idle - 1] : NULL;
}

int nc__plan_pool_size(nc__plan_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    const int n = pool->n_idle + pool->busy;
    pthread_mutex_unlock(&pool->mu);
    return n;
}
