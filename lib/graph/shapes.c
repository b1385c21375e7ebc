/* shapes.c — shape inference for a concrete input (N, C, H, W) with PyTorch's
 * output-size formulas (floor mode everywhere), and the op display names. Errors
 * name the node and the sizes involved, so "image too small" is actionable. */
#include "graph/graph.h"
#include "core/context.h"

#include <stdio.h>

const char *nc__op_name(nc__op op) {
    switch (op) {
    case NC__OP_INPUT: return "Input";
    case NC__OP_CONV2D: return "Conv2d";
    case NC__OP_BATCHNORM: return "BatchNorm2d";
    case NC__OP_RELU: return "ReLU";
    case NC__OP_MAXPOOL: return "MaxPool2d";
    case NC__OP_AVGPOOL: return "AvgPool2d";
    case NC__OP_ADAPTIVE_AVGPOOL: return "AdaptiveAvgPool2d";
    case NC__OP_ADD: return "Add";
    case NC__OP_LINEAR: return "Linear";
    case NC__OP_DROPOUT: return "Dropout";
    case NC__OP_FLATTEN: return "Flatten";
    case NC__OP_CONCAT: return "Concat";
    case NC__OP_COUNT: break;
    }
    return "Unknown";
}

/* floor((in + 2p - d(k-1) - 1) / s) + 1, or 0 when the window does not fit. */
static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    int64_t num = in + 2 * p - d * (k - 1) - 1;
    if (num < 0) return 0;
    return num / s + 1;
}

static nc_status need_rank(nc_context *ctx, const nc__node *n, const nc__shape *in, int rank) {
    if (in->ndim != rank)
        return nc__error(ctx, NC_ERR_SHAPE, "%s: expects a %d-D input, got %d-D", n->name, rank, in->ndim);
    return NC_OK;
}

nc_status nc__graph_infer_shapes(const nc__graph *g, const nc__shape *input, nc__shape *shapes) {
    if (!g || !input || !shapes)
        return nc__error(g ? g->ctx : NULL, NC_ERR_NULL, "nc__graph_infer_shapes: NULL argument");
    nc_context *ctx = g->ctx;
    nc_status st;
    if (input->ndim != 4)
        return nc__error(ctx, NC_ERR_SHAPE, "input must be 4-D (N, C, H, W), got %d-D", input->ndim);
    if (input->d[0] < 1 || input->d[2] < 1 || input->d[3] < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "input size n=%lld h=%lld w=%lld must be >= 1",
                         (long long)input->d[0], (long long)input->d[2], (long long)input->d[3]);
    if (input->d[1] != g->in_channels)
        return nc__error(ctx, NC_ERR_SHAPE, "input has %lld channels, model expects %d",
                         (long long)input->d[1], g->in_channels);
    const int64_t ih = input->d[2], iw = input->d[3];

    for (int i = 0; i < g->n_nodes; i++) {
        const nc__node *n = &g->nodes[i];
        if (n->op == NC__OP_INPUT) {
            shapes[i] = *input;
            continue;
        }
        for (int j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] < 0 || n->inputs[j] >= i)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: input %d is not an earlier node",
                                 n->name, n->inputs[j]);
        const nc__shape *x = n->n_inputs > 0 ? &shapes[n->inputs[0]] : NULL;
        nc__shape y;
        switch (n->op) {
        case NC__OP_CONV2D: {
            const nc__conv_attr *a = &n->attr.conv;
            if ((st = need_rank(ctx, n, x, 4)) != NC_OK) return st;
            const nc__shape *ws = &g->tensors[n->tensors[0]].shape; /* (K, C/G, R, S) */
            if (x->d[1] != ws->d[1] * a->groups)
                return nc__error(ctx, NC_ERR_SHAPE, "%s: input has %lld channels, weight expects %lld",
                                 n->name, (long long)x->d[1], (long long)(ws->d[1] * a->groups));
            int64_t oh = window_out(x->d[2], a->kh, a->stride_h, a->pad_h, a->dil_h);
            int64_t ow = window_out(x->d[3], a->kw, a->stride_w, a->pad_w, a->dil_w);
            if (oh < 1 || ow < 1)
                return nc__error(ctx, NC_ERR_SHAPE,
                                 "%s: input %lldx%lld too small for kernel %lld stride %lld padding %lld "
                                 "dilation %lld (image %lldx%lld)",
                                 n->name, (long long)x->d[2], (long long)x->d[3], (long long)a->kh,
                                 (long long)a->stride_h, (long long)a->pad_h, (long long)a->dil_h,
                                 (long long)ih, (long long)iw);
            y = nc__shape4(x->d[0], a->out_channels, oh, ow);
            break;
        }
        case NC__OP_MAXPOOL:
        case NC__OP_AVGPOOL: {
            const nc__pool_attr *a = &n->attr.pool;
            if ((st = need_rank(ctx, n, x, 4)) != NC_OK) return st;
            int64_t oh = window_out(x->d[2], a->kh, a->stride_h, a->pad_h, 1);
            int64_t ow = window_out(x->d[3], a->kw, a->stride_w, a->pad_w, 1);
            if (oh < 1 || ow < 1)
                return nc__error(ctx, NC_ERR_SHAPE,
                                 "%s: input %lldx%lld too small for kernel %lld stride %lld padding %lld "
                                 "(image %lldx%lld)",
                                 n->name, (long long)x->d[2], (long long)x->d[3], (long long)a->kh,
                                 (long long)a->stride_h, (long long)a->pad_h, (long long)ih, (long long)iw);
            y = nc__shape4(x->d[0], x->d[1], oh, ow);
            break;
        }
        case NC__OP_ADAPTIVE_AVGPOOL:
            if ((st = need_rank(ctx, n, x, 4)) != NC_OK) return st;
            y = nc__shape4(x->d[0], x->d[1], n->attr.pool.out_h, n->attr.pool.out_w);
            break;
        case NC__OP_BATCHNORM:
            if (x->ndim != 4 && x->ndim != 2)
                return nc__error(ctx, NC_ERR_SHAPE, "%s: expects a 2-D or 4-D input, got %d-D", n->name,
                                 x->ndim);
            if (x->d[1] != g->tensors[n->tensors[0]].shape.d[0])
                return nc__error(ctx, NC_ERR_SHAPE, "%s: input has %lld channels, weight expects %lld",
                                 n->name, (long long)x->d[1],
                                 (long long)g->tensors[n->tensors[0]].shape.d[0]);
            y = *x;
            break;
        case NC__OP_RELU:
        case NC__OP_DROPOUT:
            y = *x;
            break;
        case NC__OP_ADD: {
            const nc__shape *x2 = &shapes[n->inputs[1]];
            if (!nc__shape_equal(x, x2)) {
                char s1[64], s2[64];
                return nc__error(ctx, NC_ERR_SHAPE, "%s: shapes %s ('%s') and %s ('%s') differ", n->name,
                                 nc__shape_str(x, s1, sizeof s1), g->nodes[n->inputs[0]].name,
                                 nc__shape_str(x2, s2, sizeof s2), g->nodes[n->inputs[1]].name);
            }
            y = *x;
            break;
        }
        case NC__OP_LINEAR: {
            if ((st = need_rank(ctx, n, x, 2)) != NC_OK) return st;
            const nc__shape *ws = &g->tensors[n->tensors[0]].shape; /* (out, in) */
            if (x->d[1] != ws->d[1])
                return nc__error(ctx, NC_ERR_SHAPE, "%s: input has %lld features, weight expects %lld",
                                 n->name, (long long)x->d[1], (long long)ws->d[1]);
            y = nc__shape2(x->d[0], n->attr.linear.out_features);
            break;
        }
        case NC__OP_FLATTEN:
            if ((st = need_rank(ctx, n, x, 4)) != NC_OK) return st;
            y = nc__shape2(x->d[0], x->d[1] * x->d[2] * x->d[3]);
            break;
        case NC__OP_CONCAT: {
            /* 2-D: features side by side; 4-D: channels, the other sizes equal */
            int64_t f = 0;
            for (int j = 0; j < n->n_inputs; j++) {
                const nc__shape *xj = &shapes[n->inputs[j]];
                int same = xj->ndim == x->ndim && (x->ndim == 2 || x->ndim == 4) && xj->d[0] == x->d[0];
                for (int k = 2; same && k < x->ndim; k++) same = xj->d[k] == x->d[k];
                if (!same) {
                    char s1[64], s2[64];
                    return nc__error(ctx, NC_ERR_SHAPE,
                                     "%s: input %d is %s ('%s') but input 0 is %s; concat joins 2-D values or "
                                     "4-D values of one batch and spatial size along dimension 1",
                                     n->name, j, nc__shape_str(xj, s1, sizeof s1), g->nodes[n->inputs[j]].name,
                                     nc__shape_str(x, s2, sizeof s2));
                }
                f += xj->d[1];
            }
            y = *x;
            y.d[1] = f;
            break;
        }
        default:
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: unknown op %d", n->name, (int)n->op);
        }
        shapes[i] = y;
    }
    return NC_OK;
}
