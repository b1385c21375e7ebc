/* model.h — nc_model internals: the graph, the parameter/buffer arena in backend
 * memory, gradients, metadata (architecture options, class names, normalisation)
 * cached execution plans, and the gate between inference and changes.
 * The one place where core/ sees graph/: a model owns its graph, whose tensor
 * definitions (graph/graph.h) size and initialise the arena, and owns its cached
 * plans, which model.c destroys (graph/exec.h). Building, planning and running
 * belong to graph/; the eval-mode forward is eval/predict.c. */
#ifndef NC_CORE_MODEL_H
#define NC_CORE_MODEL_H

#include "neurc.h"
#include "core/gate.h"
#include "graph/graph.h"
#include "graph/pool.h"

#include <stdint.h>
#include <stddef.h>

struct nc__plan; /* graph/exec.h */

typedef struct nc__tensor_slot {
    size_t offset;              /* byte offset into the arena (64-byte aligned) */
    size_t bytes;
    int64_t numel;
} nc__tensor_slot;

struct nc_model {
    nc_context *ctx;
    nc__graph *graph;           /* owned */
    /* One backend buffer for all parameters and float buffers, carved after a sizing
     * pass; gradients in a second arena with the same offsets (allocated on demand). */
    void *arena;
    size_t arena_bytes;
    void *grad_arena;           /* NULL until a trainer needs it */
    nc__tensor_slot *slots;     /* [graph->n_tensors] */
    int64_t *num_batches;       /* [graph->n_tensors]: host counters of NUM_BATCHES slots */
    int64_t num_params;
    /* Bumped (nc__model_params_changed) by everything that writes parameters or
     * buffers, or swaps the arena: backends cache prepared weights by it. */
    uint64_t param_version;
    /* metadata */
    nc_model_options opt;       /* arch options (opt.arch points at arch_name) */
    char arch_name[64];         /* "" for builder-made models ("custom") */
    int has_arch;               /* 1 if made by nc_model_create (reloadable by options) */
    char **class_names;         /* [num_classes] or NULL */
    float *norm_mean, *norm_std;/* [in_channels] or NULL */
    int num_classes;            /* per head */
    char **info_keys;           /* [n_info] free-form metadata (nc_model_set_info), sorted by key */
    char **info_values;
    int n_info;
    /* execution plans: eval plans in a pool, one per inference call running at once
     * (graph/pool.h); the training plan, rebuilt when the input shape changes */
    nc__plan_pool eval_plans;
    struct nc__plan *plan_train;
    /* inference calls read the model side by side; calls that change it wait for
     * them and hold new ones back (core/gate.h, docs/api.md Thread safety) */
    nc__gate gate;
};

/* Creates a model from a finished graph (takes ownership of g on success and on
 * failure): sizes and allocates the arena, initialises parameters from seed. */
nc_status nc__model_create_from_graph(nc_context *ctx, nc__graph *g, int num_heads, uint64_t seed,
                                      nc_model **out);
/* Re-initialises every tensor from seed with its initialiser. */
nc_status nc__model_init_params(nc_model *m, uint64_t seed);
/* Records the architecture options (for save/load); copies arch. */
void nc__model_set_arch(nc_model *m, const nc_model_options *opt);
/* Backend pointer of tensor i inside the arena / gradient arena. */
void *nc__model_tensor_ptr(const nc_model *m, int i);
void *nc__model_grad_ptr(const nc_model *m, int i);
nc_status nc__model_ensure_grads(nc_model *m);
/* Elements of the parameter arena (and of the gradient and optimizer arenas with
 * its offsets): f32 masters (backend.h, DTYPE POLICY). */
static inline size_t nc__model_param_floats(const nc_model *m) { return m->arena_bytes / sizeof(float); }
/* Records that parameters may have changed (invalidates backend weight caches). */
static inline void nc__model_params_changed(nc_model *m) { m->param_version++; }
/* Brackets of the public calls (core/gate.h): inference and other reads of the
 * weights, and calls that change the model. */
static inline void nc__model_read_begin(nc_model *m) { nc__gate_read_enter(&m->gate); }
static inline void nc__model_read_end(nc_model *m) { nc__gate_read_leave(&m->gate); }
static inline void nc__model_write_begin(nc_model *m) { nc__gate_write_enter(&m->gate); }
static inline void nc__model_write_end(nc_model *m) { nc__gate_write_leave(&m->gate); }
/* The graph inside a builder (graph/builder.c). */
nc__graph *nc__builder_graph(nc_builder *b);

#endif
