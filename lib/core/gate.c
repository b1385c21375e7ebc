/* gate.c — the model's reader/writer gate (gate.h): a mutex and one condition
 * variable; phase-fair, re-entrant for the writing thread. */
#include "core/gate.h"

int nc__gate_init(nc__gate *g) {
    *g = (nc__gate){0};
    int r = pthread_mutex_init(&g->mu, NULL);
    if (r != 0) return r;
    if ((r = pthread_cond_init(&g->cv, NULL)) != 0) pthread_mutex_destroy(&g->mu);
    return r;
}

void nc__gate_destroy(nc__gate *g) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* The calling thread is making the change now (mu held). */
static int own_write(const nc__gate *g) { return g->writing > 0 && pthread_equal(g->writer, pthread_self()); }

void nc__gate_read_enter(nc__gate *g) {
    pthread_mutex_lock(&g->mu);
    if (!own_write(g)) {
        g->readers_waiting++;
        while (g->writing > 0 || (g->writers_waiting > 0 && g->passes == 0)) pthread_cond_wait(&g->cv, &g->mu);
        g->readers_waiting--;
        if (g->passes > 0) g->passes--;
    }
    g->readers++;
    pthread_mutex_unlock(&g->mu);
}

void nc__gate_read_leave(nc__gate *g) {
    pthread_mutex_lock(&g->mu);
    if (--g->readers == 0) pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void nc__gate_write_enter(nc__gate *g) {
    pthread_mutex_lock(&g->mu);
    if (own_write(g)) {
        g->writing++;
    } else {
        g->writers_waiting++;
        while (g->writing > 0 || g->readers > 0 || g->passes > 0) pthread_cond_wait(&g->cv, &g->mu);
        g->writers_waiting--;
        g->writing = 1;
        g->writer = pthread_self();
    }
    pthread_mutex_unlock(&g->mu);
}

/* The readers that waited for this change go before the next one. */
void nc__gate_write_leave(nc__gate *g) {
    pthread_mutex_lock(&g->mu);
    if (--g->writing == 0) {
        g->passes = g->readers_waiting;
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
}
