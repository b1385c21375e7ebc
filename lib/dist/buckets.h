/* buckets.h — the gradient arena averaged over the ranks in buckets, as DDP's
 * reducer: buckets of about comm->bucket_bytes (25 MB) from the end of the arena (the
 * last layers' gradients first). With overlap, the backward pass calls
 * nc__buckets_after_node after each node: a bucket starts its nonblocking all-reduce
 * as soon as every node writing a gradient in it has run its backward, and the ranks'
 * progress is polled between nodes; nc__buckets_finish starts what is left, waits
 * for all (under the communicator's DEADLINE), divides by the rank count and writes
 * the averages back. Without overlap every bucket starts in nc__buckets_finish. Both
 * paths run the same collectives on the same bytes, so their results are identical. */
#ifndef NC_DIST_BUCKETS_H
#define NC_DIST_BUCKETS_H

#include "dist/comm.h"

typedef struct nc__grad_buckets nc__grad_buckets;

/* Buckets for m's gradient arena over c (the host staging of the whole arena). */
nc_status nc__buckets_create(nc_comm *c, nc_model *m, nc__grad_buckets **out);
void nc__buckets_destroy(nc__grad_buckets *b);
/* Before a step: nothing started yet (waits for buckets a failed step left in
 * flight, under the DEADLINE). */
nc_status nc__buckets_reset(nc__grad_buckets *b);
/* The backward of node `node` has run: starts the buckets it completed, polls. */
nc_status nc__buckets_after_node(nc__grad_buckets *b, int node);
/* Starts the rest, waits, writes the mean over ranks into the gradient arena. */
nc_status nc__buckets_finish(nc__grad_buckets *b);
/* How many buckets the last pass started while backward nodes were still to run
 * (tests, reports), and how many there are. */
int nc__buckets_started_early(const nc__grad_buckets *b);
int nc__buckets_count(const nc__grad_buckets *b);

#endif
