/* history.h — what the report writers (report.c, svg.c) read of an nc_history
 * (history.c): its records and context, its JSON form, and a copy from records. */
#ifndef NC_EVAL_HISTORY_H
#define NC_EVAL_HISTORY_H

#include "neurc.h"

#include <stdint.h>

/* The records of a history (borrowed) and its context. */
const nc_epoch_record *nc__history_records(const nc_history *h, int64_t *count);
nc_context *nc__history_context(const nc_history *h);
/* The records as a JSON array (named `key` inside an object) of objects, NaN as null. */
struct nc__jw;
void nc__history_json(struct nc__jw *w, const char *key, const nc_epoch_record *rec, int64_t n);
/* A new history holding copies of records[0..n). */
nc_status nc__history_from(nc_context *ctx, const nc_epoch_record *records, int64_t n, nc_history **out);

#endif
