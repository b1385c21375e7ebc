/* plan_passes.h — the planner's passes, private to graph/ and its tests. plan.c's
 * `build` runs them in this order on a plan from nc__plan_alloc; each fills the plan
 * fields named in its comment and reads only what earlier passes filled, so a test
 * can run the passes up to the one it checks, or change a field in between. */
#ifndef NC_GRAPH_PLAN_PASSES_H
#define NC_GRAPH_PLAN_PASSES_H

#include "graph/exec.h"

/* Who consumes each value, among the nodes the output needs. Planning scratch. */
typedef struct nc__plan_uses {
    char *needed;           /* [n_nodes] the output depends on the node (node 0 always) */
    int *first;             /* [n_nodes + 1] consumers of value v: users[first[v] .. first[v+1]) */
    int *users;             /* consumer nodes in graph order, once per input slot */
} nc__plan_uses;

/* A plan with every array allocated and nothing decided: no shapes, no groups, no
 * buffers, no arena. NC_ERR_OUT_OF_MEMORY. */
nc_status nc__plan_alloc(nc_model *m, int training, const nc__shape *in, nc__plan **out);

/* (1) uses: fills u (free with nc__plan_uses_free). NC_ERR_OUT_OF_MEMORY. */
nc_status nc__plan_find_uses(const nc__plan *p, nc__plan_uses *u);
void nc__plan_uses_free(nc_context *ctx, nc__plan_uses *u);
/* The only consumer of v, or -1 (none, several, or v is the graph output, which
 * the caller reads). */
int nc__plan_sole_consumer(const nc__plan *p, const nc__plan_uses *u, int v);
/* v's consumer that runs last (largest run_at; the later node on a tie), or -1. */
int nc__plan_last_consumer(const nc__plan *p, const nc__plan_uses *u, int v);

/* (2) shapes: p->shapes; in training, a batch norm with a single value per channel
 * is NC_ERR_SHAPE. Shape errors name the node. */
nc_status nc__plan_infer_shapes(nc__plan *p, const nc__plan_uses *u);
/* (3) dtypes: p->dtype, one rule (backend.h, DTYPE POLICY). */
void nc__plan_assign_dtypes(nc__plan *p);
/* (4) capability: the backend's `supports` for every needed node; a refusal is
 * NC_ERR_UNSUPPORTED naming the node, the op and the dtype. */
nc_status nc__plan_check_support(const nc__plan *p, const nc__plan_uses *u);
/* (5) fusion: p->run_at, p->fusion, n_conv_chains, n_bn_relu (exec.h, Fusion), groups
 * only where `supports` accepts them. */
void nc__plan_fuse(nc__plan *p, const nc__plan_uses *u);
/* (5b) recomputation: p->rec_trigger, rec_order, n_rec (exec.h, Recomputation), in
 * training, from the nodes' `recompute` marks. */
void nc__plan_choose_recompute(nc__plan *p, const nc__plan_uses *u);
/* (6) liveness: p->buffers, p->buffer_owner, p->n_buffers: every value a group
 * writes, in training its gradient and a batch norm's saved statistics, with their
 * bytes (the backend's value_bytes) and plan-time intervals; the second life of
 * each recomputed value. */
void nc__plan_liveness(nc__plan *p, const nc__plan_uses *u);
/* (7) packing: offsets of the buffers (nc__plan_memory), p->val_off, grad_off,
 * save_off, rec_off, arena_bytes, naive_bytes. The arena itself is allocated by build. */
void nc__plan_pack(nc__plan *p);
/* (8) gradient writes: p->first_writer (exec.h). */
void nc__plan_assign_writers(nc__plan *p, const nc__plan_uses *u);

#endif
