/* schedule.h — nc_schedule internals for the trainer and for checkpoints: the whole
 * mutable state of a schedule as a few plain numbers (save it, create a schedule from
 * the same options, set it back), the resolved options, and the owning context. */
#ifndef NC_TRAIN_SCHEDULE_H
#define NC_TRAIN_SCHEDULE_H

#include "neurc.h"

#include <stdint.h>

/* Everything a schedule changes as it steps; the options fix the rest. A schedule's
 * learning rates are a pure function of (options, state): per-base PLATEAU rates are
 * recomputed from `reductions`, so no per-group table needs saving. */
typedef struct nc__schedule_state {
    int64_t position;         /* nc_schedule_step calls that succeeded (torch's last_epoch;
                                 SequentialLR's for COSINE with warmup) */
    int64_t reductions;       /* PLATEAU: reduction events so far; 0 for other kinds */
    int64_t num_bad_epochs;   /* PLATEAU: in [0, patience]; 0 for other kinds */
    int64_t cooldown_counter; /* PLATEAU: in [0, cooldown]; 0 for other kinds */
    double best;              /* PLATEAU: best metric so far, +inf (mode min) / -inf (mode
                                 max) before the first step; 0 for other kinds */
} nc__schedule_state;

/* Copies the state out. s and out must not be NULL. */
void nc__schedule_state_get(const nc_schedule *s, nc__schedule_state *out);

/* Replaces the state (e.g. from a checkpoint) after checking it against the options:
 * position >= 0; for PLATEAU 0 <= reductions <= position, num_bad_epochs in
 * [0, patience], cooldown_counter in [0, cooldown], best finite or the mode's
 * starting infinity; for other kinds the PLATEAU fields must be 0. Returns NC_OK,
 * NC_ERR_NULL, NC_ERR_INVALID_ARGUMENT (field named; the schedule is unchanged). */
nc_status nc__schedule_state_set(nc_schedule *s, const nc__schedule_state *st);

/* The options the schedule was created with, defaults filled in and struct_size =
 * sizeof(nc_schedule_options). out->milestones is borrowed from the schedule (valid
 * until nc_schedule_destroy); NULL when num_milestones is 0. */
void nc__schedule_options_get(const nc_schedule *s, nc_schedule_options *out);

/* The context the schedule was created with (its allocator and error slot). */
nc_context *nc__schedule_context(const nc_schedule *s);

#endif
