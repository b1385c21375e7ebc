/* progress.h — how a long call reports progress to the context's callback and learns
 * that it should stop (nc_context_set_progress; docs/api.md, "Progress and
 * cancellation"). A call fills an nc_progress once with nc__progress_begin, then
 * updates `done` (and loss/metric) and calls nc__progress after each unit of work. */
#ifndef NC_CORE_PROGRESS_H
#define NC_CORE_PROGRESS_H

#include "neurc.h"

/* A report of `phase` over `total` units (-1 = unknown), done 0, epoch -1, loss and
 * metric NaN. */
nc_progress nc__progress_begin(nc_phase phase, int64_t total, const char *what);

/* Hands p to ctx's callback (none set: NC_OK). When the callback asks to stop, records
 * "<fn>: cancelled by the progress callback after <done> of <total> <unit>" and
 * returns NC_ERR_CANCELLED; the caller then leaves everything consistent. */
nc_status nc__progress(nc_context *ctx, const nc_progress *p, const char *fn, const char *unit);

/* 1 when ctx has a callback (so a call can skip preparing reports). */
int nc__progress_wanted(const nc_context *ctx);

#endif
