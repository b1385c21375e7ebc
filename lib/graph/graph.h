/* graph.h — the static graph: a DAG of a small fixed op set, each node producing
 * one value, parameters and buffers named like torchvision's state_dict keys.
 * Built by the public nc_builder_* calls (graph/builder.c); shapes are inferred
 * for a concrete input shape by nc__graph_infer_shapes (graph/shapes.c). */
#ifndef NC_GRAPH_GRAPH_H
#define NC_GRAPH_GRAPH_H

#include "neurc.h"
#include "core/shape.h"
#include "backend/backend.h"

#include <stdint.h>
#include <stddef.h>

typedef enum nc__op {
    NC__OP_INPUT = 0,
    NC__OP_CONV2D,
    NC__OP_BATCHNORM,
    NC__OP_RELU,
    NC__OP_MAXPOOL,
    NC__OP_AVGPOOL,
    NC__OP_ADAPTIVE_AVGPOOL,
    NC__OP_ADD,
    NC__OP_LINEAR,
    NC__OP_DROPOUT,
    NC__OP_FLATTEN,
    NC__OP_CONCAT,
    NC__OP_COUNT
} nc__op;

/* Which kind of named tensor a parameter slot is. */
typedef enum nc__tensor_role {
    NC__ROLE_WEIGHT = 0,        /* trainable */
    NC__ROLE_BIAS,              /* trainable */
    NC__ROLE_RUNNING_MEAN,      /* buffer */
    NC__ROLE_RUNNING_VAR,       /* buffer */
    NC__ROLE_NUM_BATCHES,       /* buffer, int64 scalar kept on the host */
} nc__tensor_role;

typedef enum nc__init {
    NC__INIT_ZERO = 0,
    NC__INIT_ONE,
    NC__INIT_KAIMING_NORMAL_FAN_OUT, /* conv weight: N(0, 2/fan_out) */
    NC__INIT_LINEAR_UNIFORM,         /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    NC__INIT_NORMAL_001,             /* N(0, 0.01^2) (VGG classifier) */
    NC__INIT_KAIMING_NORMAL_FAN_IN,  /* conv weight: N(0, 2/fan_in) (DenseNet) */
} nc__init;

typedef struct nc__tensor_def {
    char *name;                 /* "layer1.0.conv1.weight" */
    nc__shape shape;
    nc__tensor_role role;
    nc__init init;
    int64_t fan_in;             /* for the initialisers */
    int64_t fan_out;
    int trainable;
    int node;                   /* owning node */
} nc__tensor_def;

typedef struct nc__conv_attr {
    int64_t out_channels, kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
    int bias;
} nc__conv_attr;
typedef struct nc__bn_attr { float eps, momentum; } nc__bn_attr;
typedef struct nc__pool_attr { int64_t kh, kw, stride_h, stride_w, pad_h, pad_w, out_h, out_w; } nc__pool_attr;
typedef struct nc__linear_attr { int64_t out_features; int bias; } nc__linear_attr;
typedef struct nc__dropout_attr { float p; } nc__dropout_attr;

#define NC__MAX_NODE_TENSORS 5
/* NC__MAX_CONCAT, the most inputs of one concat node: backend/backend.h */

typedef struct nc__node {
    nc__op op;
    char *name;                 /* module path ("layer1.0.conv1") or auto ("relu_12") */
    int *inputs;                /* node indices (values), n_inputs of them */
    int n_inputs;
    int tensors[NC__MAX_NODE_TENSORS]; /* indices into graph->tensors, role order:
                                          conv/linear: weight, [bias];
                                          bn: weight, bias, running_mean, running_var,
                                          num_batches_tracked */
    int n_tensors;
    union {
        nc__conv_attr conv;
        nc__bn_attr bn;
        nc__pool_attr pool;
        nc__linear_attr linear;
        nc__dropout_attr dropout;
    } attr;
    /* Static facts tracked by the builder (graph/builder.c); H and W of activations
     * are otherwise dynamic (known only for a concrete input, nc__graph_infer_shapes). */
    int rank;                   /* 4 = (N, C, H, W), 2 = (N, F) */
    int64_t channels;           /* C for rank 4, F for rank 2 */
    int64_t static_h, static_w; /* spatial size when fixed by an adaptive pool, else 0 */
    int recompute;              /* 1: in training, keep the value only through the forward
                                   pass and compute it again in backward (exec.h,
                                   Recomputation); concat, batchnorm and relu honour it */
} nc__node;

typedef struct nc__graph {
    nc_context *ctx;
    nc__node *nodes;            /* topological order: inputs precede users; node 0 = input */
    int n_nodes;
    size_t cap_nodes;
    nc__tensor_def *tensors;
    int n_tensors;
    size_t cap_tensors;
    int in_channels;
    int output;                 /* node whose value is the logits */
    int num_heads;
} nc__graph;

/* Creates an empty graph with its input node. */
nc_status nc__graph_create(nc_context *ctx, int in_channels, nc__graph **out);
void nc__graph_destroy(nc__graph *g);
/* Deep copy (a model keeps its own graph). */
nc_status nc__graph_clone(const nc__graph *g, nc__graph **out);
int nc__graph_find_tensor(const nc__graph *g, const char *name);   /* -1 if absent */

/* Shapes of every value for input (n, c, h, w); shapes[n_nodes]. Precise errors
 * ("layer2.0.conv1: input has 3 channels, weight expects 4"). */
nc_status nc__graph_infer_shapes(const nc__graph *g, const nc__shape *input, nc__shape *shapes);

const char *nc__op_name(nc__op op);        /* "Conv2d", "BatchNorm2d"/"1d" by caller */

#endif
