/* gate.h — a model's reader/writer gate: inference calls (readers) run side by side;
 * a call that changes the model (a writer: a training step, loading or setting
 * weights, metadata setters) waits until the running readers are done and holds new
 * ones back until it has finished, so every inference sees the model whole, before
 * or after the change (docs/api.md, Thread safety). Phase-fair, so neither side
 * starves: a waiting writer stops new readers, and the readers that waited for a
 * change run before the next change. The thread that
 * holds the write side may enter either side again (a trainer's checkpoint load
 * that sets weights, an inference call from a training callback). */
#ifndef NC_CORE_GATE_H
#define NC_CORE_GATE_H

#include <pthread.h>

typedef struct nc__gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int readers;            /* inference calls running */
    int readers_waiting;
    int passes;             /* readers let in ahead of waiting writers: those that
                               waited for the last change */
    int writers_waiting;
    int writing;            /* depth of the running change (0: none) */
    pthread_t writer;       /* its thread */
} nc__gate;

/* 0 on success, else the pthread error. */
int nc__gate_init(nc__gate *g);
void nc__gate_destroy(nc__gate *g);
void nc__gate_read_enter(nc__gate *g);
void nc__gate_read_leave(nc__gate *g);
void nc__gate_write_enter(nc__gate *g);
void nc__gate_write_leave(nc__gate *g);

#endif
