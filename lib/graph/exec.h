/* exec.h — execution plans: a graph prepared for one input shape and mode (eval or
 * train): value shapes and dtypes, backend descriptors with their primitive caches,
 * and a memory plan that packs every activation, saved statistic and gradient into
 * one arena by liveness. Forward runs nodes in topological order; backward
 * (autodiff) runs each op's backward rule in reverse order. plan.c builds a plan in
 * named passes (plan_passes.h); exec.c runs it.
 *
 * Time. Plan time steps order every buffer use: the forward of the node (or fused
 * group) at position i runs at nc__plan_fwd_time(i) = i; the loss reads the output
 * and writes its gradient at nc__plan_loss_time(n) = n; the backward at position i
 * runs at nc__plan_bwd_time(n, i) = 2n - i.
 *
 * Fusion. Where the backend's `supports` accepts a fused pattern (backend.h; never
 * ref, the oracle), the plan groups nodes and runs each group as one call at the
 * position of its first node, the head (run_at[member] = head):
 *  - eval, NC__K_CONV_FUSED_INFER: CONV [-> BATCHNORM2d] [-> ADD] [-> RELU], at least
 *    one op after the conv, every intermediate value consumed only by the next op and
 *    not the graph output; the ADD's other input (the residual) is a value computed
 *    before the conv. Of the two branches meeting at a ResNet downsample block's ADD,
 *    the one whose conv comes later takes the ADD, the other branch's value is its
 *    residual.
 *  - train, NC__K_BN_RELU_TRAIN: a BATCHNORM whose only consumer is a RELU; its
 *    backward runs at the BN's backward position with dy = the RELU value's gradient
 *    and y = the RELU's value; the RELU's backward is skipped.
 * A group writes only the value of its last node (fusion[head].out); intermediate
 * values have no buffer (val_off/grad_off SIZE_MAX). For liveness, a value is
 * consumed when the group containing its consumer runs. Graph nodes are untouched:
 * code walking the graph (summary, parameter lists) sees every node.
 *
 * Recomputation (Pleiss et al., "Memory-Efficient Implementation of DenseNets";
 * torchvision's memory_efficient=True). In training, a group (a node, or a fused
 * bn+relu) whose members all carry the graph's `recompute` mark and are concat,
 * batchnorm or relu keeps its value only until its last forward reader. Its trigger
 * is the latest unmarked node reading it, directly or through other marked groups
 * (rec_trigger). Just before the trigger's backward, the marked groups with that
 * trigger run their forward again, in graph order, into a second buffer (rec_off)
 * that lives until the last backward reading it; backward reads that buffer. The
 * unmarked values such a group reads stay alive until then. A recomputed batch norm
 * normalises with the same batch again (same statistics, written over the saved
 * ones) and updates scratch copies of the running statistics, never the model's.
 * A DenseNet layer's concat -> norm1 -> relu1 is such a chain: per dense block the
 * concatenated features of all layers then share one buffer of the block's widest
 * concat instead of one kept per layer (quadratic in the layer count).
 *
 * Gradient writes follow backend.h's GRADIENT WRITE RULE: the backward of
 * first_writer[v] (v's last consumer, whose backward runs first) writes v's gradient
 * with NC__WRITE_SET, every later one with NC__WRITE_ADD; nothing is zeroed. */
#ifndef NC_GRAPH_EXEC_H
#define NC_GRAPH_EXEC_H

#include "core/model.h"
#include "backend/backend.h"

/* One buffer request of the memory planner: `bytes` live during [first, last]
 * (inclusive, in plan time steps). */
typedef struct nc__interval {
    size_t bytes;
    int first, last;
    size_t offset;          /* result */
} nc__interval;

/* Assigns offsets so that intervals overlapping in time never overlap in memory
 * (greedy by decreasing size, lowest fitting offset). Returns the arena size.
 * Scratch comes from ctx; without memory it degrades to no reuse. */
size_t nc__plan_memory(nc_context *ctx, nc__interval *iv, int count, size_t align);

/* A fused group, indexed by its head node; members -1 when absent. */
typedef struct nc__fusion {
    int bn, add, relu;      /* eval conv chain: bn, add, relu after the conv;
                               train bn+relu: relu only */
    int residual;           /* the ADD's other input (-1: none) */
    int out;                /* node whose value the group writes (the head itself
                               when the node is not fused) */
} nc__fusion;

/* What a buffer of the memory plan holds. */
typedef enum nc__buffer_kind {
    NC__BUFFER_VALUE = 0,   /* a node's value */
    NC__BUFFER_GRAD = 1,    /* its gradient (training) */
    NC__BUFFER_SAVED = 2,   /* a batch norm's saved mean and invstd, 2*C f32 (training);
                               4*C when recomputed: then scratch running mean and var */
    NC__BUFFER_RECOMPUTED = 3, /* a recomputed value's second life (training) */
} nc__buffer_kind;

typedef struct nc__buffer_owner {
    int node;
    nc__buffer_kind kind;
} nc__buffer_owner;

/* What a training plan's caller (the data-parallel trainer) hooks into a step. */
typedef struct nc__plan_hooks {
    /* Synchronised batch norm (backend.h, SYNC BATCH NORM): buf[i] = the sum over
     * ranks of buf[i], in place. NULL: batch norm on this process's batch alone. */
    nc_status (*sum)(void *user, double *buf, size_t n);
    /* Called after the backward of each node that ran (dist/buckets.h's overlap). */
    nc_status (*after_backward)(void *user, int node);
    void *user;
} nc__plan_hooks;

typedef struct nc__plan {
    nc_model *m;
    int training;
    nc_precision precision;     /* the context's policy the dtypes were chosen under */
    nc__shape in_shape;
    nc__shape *shapes;          /* [n_nodes] */
    void **cache;               /* [n_nodes] backend primitive slots */
    /* memory plan, byte offsets into `arena`; SIZE_MAX = none */
    size_t *val_off;            /* [n_nodes] */
    size_t *grad_off;           /* [n_nodes] (training) */
    size_t *save_off;           /* [n_nodes] bn saved mean, then invstd (training) */
    size_t *rec_off;            /* [n_nodes] a recomputed value's backward buffer */
    /* recomputation (see above): rec_trigger[h] is the trigger of the marked group
     * headed by h, 0 when h is not recomputed (node 0 is never a trigger);
     * rec_order[0 .. n_rec) those heads by decreasing trigger, then increasing h:
     * the order backward recomputes them in */
    int *rec_trigger;           /* [n_nodes] */
    int *rec_order;             /* [n_nodes] */
    int n_rec;
    int in_backward;            /* set while backward runs: reads use rec_off */
    nc__dtype *dtype;           /* [n_nodes] storage dtype of each value and its gradient */
    int *first_writer;          /* [n_nodes] node whose backward writes v's gradient first
                                   (NC__WRITE_SET); -1 when v has no gradient or, for
                                   the output, when the loss writes it */
    /* fusion (see above) */
    int *run_at;                /* [n_nodes] position node i runs at: i, its group's head,
                                   or -1 when the output does not need it */
    nc__fusion *fusion;         /* [n_nodes], meaningful for nodes with run_at[i] == i */
    int n_conv_chains;          /* fused eval conv chains */
    int n_bn_relu;              /* fused train bn+relu pairs */
    /* the memory plan's requests (kept for diagnostics and tests) and whose each is */
    nc__interval *buffers;
    nc__buffer_owner *buffer_owner;
    int n_buffers;
    size_t arena_bytes;         /* planned size */
    size_t naive_bytes;         /* sum of all buffers without reuse (for reports) */
    void *arena;
    uint64_t dropout_seed;      /* of the last forward */
    /* the backend state every call of this plan runs on: a worker of its own
     * (backend.h, CONCURRENCY), or the context's when the backend has none */
    void *bstate;
    nc__plan_hooks hooks;       /* (training) set by the caller before each step */
    /* synchronised batch norm's per-channel sums (4*sync_c f64), in backend memory
     * and on the host; allocated by the first synchronised forward */
    double *sync_dev, *sync_host;
    int64_t sync_c;
} nc__plan;

static inline int nc__plan_fwd_time(int pos) { return pos; }
static inline int nc__plan_loss_time(int n_nodes) { return n_nodes; }
static inline int nc__plan_bwd_time(int n_nodes, int pos) { return 2 * n_nodes - pos; }

/* Returns a plan for (mode, input shape) in *slot, reusing it when the shape and the
 * context's precision match. Fails naming the node the backend does not support. */
nc_status nc__plan_get(nc_model *m, nc__plan **slot, int training, const nc__shape *in);
/* NC_OK when `in` is an input the model takes (n, h, w >= 1, its channel count). */
nc_status nc__plan_check_input(const nc_model *m, const nc__shape *in);
void nc__plan_destroy(nc__plan *p);
/* The backend state the plan runs on (the loss of a training step runs there too). */
static inline void *nc__plan_backend_state(const nc__plan *p) { return p->bstate; }
/* Uploads x (host NCHW f32: one value_upload) and runs every node. training: batch
 * statistics, running-stat updates, dropout with masks drawn from dropout_seed. */
nc_status nc__plan_forward(nc__plan *p, const float *x, int training, uint64_t dropout_seed);
/* nc__plan_forward that also copies the value of node `tap` to host (tap_host, its
 * shape's floats) right after the node ran, before later nodes may reuse its memory;
 * tap -1 = none. Fails (NC_ERR_STATE) for a node the plan does not run by itself. */
nc_status nc__plan_forward_tap(nc__plan *p, const float *x, int training, uint64_t dropout_seed, int tap,
                               float *tap_host);
/* Copies the output value (N x outputs) to host. */
nc_status nc__plan_read_output(nc__plan *p, float *out);
/* The output value and its gradient in backend memory, and their descriptor (the
 * loss reads the first and writes the second). */
void *nc__plan_output(const nc__plan *p);
void *nc__plan_output_grad(const nc__plan *p);
nc__value_desc nc__plan_value_desc(const nc__plan *p, int v);
/* How node i's backward writes the gradient of its input k (GRADIENT WRITE RULE):
 * NC__WRITE_SET when i is that value's first writer and no earlier input of i is the
 * same value, else NC__WRITE_ADD. */
nc__write nc__plan_write_mode(const nc__plan *p, int i, int k);
/* Node i's backend descriptors (the planner's capability queries use them too);
 * dx_write: how the backward writes the gradient of the node's input. */
nc__conv_desc nc__plan_conv_desc(const nc__plan *p, int i, nc__write dx_write);
nc__bn_desc nc__plan_bn_desc(const nc__plan *p, int i, nc__write dx_write);
nc__pool_desc nc__plan_pool_desc(const nc__plan *p, int i, nc__write dx_write);
nc__linear_desc nc__plan_linear_desc(const nc__plan *p, int i, nc__write dx_write);
/* Backward from the output gradient the loss wrote: accumulates into the model's
 * gradient arena (which the caller zeroes). Needs a training forward just before. */
nc_status nc__plan_backward(nc__plan *p);
/* The backward, copying the gradient of each node taps[k] to hosts[k] once it is whole
 * (every consumer's backward ran, the node's own not yet), and stopping below the
 * lowest tap (n_taps 0: the whole backward). Saliency maps use it (eval/saliency.c). */
nc_status nc__plan_backward_taps(nc__plan *p, const int *taps, float *const *hosts, int n_taps);

#endif
