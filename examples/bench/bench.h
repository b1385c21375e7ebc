/* bench.h — shared pieces of nc-bench: timing and memory helpers, the network
 * analysis (FLOPs from the model summary), and the three benchmark modes
 * (whole models in main.c, single convolutions in layers.c, the loader in loader.c). */
#ifndef NC_BENCH_H
#define NC_BENCH_H

#include "neurc.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- timing, memory */

double bench_now_s(void);
/* Sorts t[0..n) and returns its median (mean of the middle two for even n). */
double bench_median(double *t, int n);
/* Resident set size now, and its high-water mark (VmHWM; see common.c), in MiB. */
double bench_rss_mb(void);
double bench_peak_rss_mb(void);
/* Opens FILE for a JSON result ("-" = stdout); NULL after printing why. */
FILE *bench_json_open(const char *path);
void bench_json_close(FILE *f);

/* ------------------------------------------------------------------- analysis */

/* One layer of the model summary. For Conv2d the input shape, stride, padding and
 * groups are inferred from the summary's order (see flops.c) and checked. */
typedef struct bench_layer {
    char name[128];
    char type[32];
    int ndim;                     /* of the output: 2 or 4 */
    int out_c, out_h, out_w;      /* out_h = out_w = 1 for 2-D outputs */
    int in_c, in_h, in_w;         /* Conv2d and Linear only */
    int kernel, stride, padding, groups; /* Conv2d only */
    int64_t macs;                 /* multiply-accumulates per image (Conv2d, Linear) */
} bench_layer;

typedef struct bench_net {
    bench_layer *layers;
    int n;
    int convs, linears;
    int64_t conv_macs, linear_macs; /* per image, for the h x w the analysis was made for */
} bench_net;

/* Parses nc_model_summary(model, h, w) and the weight shapes (nc_model_tensor_info)
 * into *net. Returns 0, or -1 with a message in err. */
int bench_net_analyze(nc_model *model, int h, int w, bench_net *net, char *err, size_t errsz);
void bench_net_free(bench_net *net);
/* Forward FLOPs per image: 2 x (conv + linear MACs). A training step counts 3x that. */
static inline double bench_forward_flops(const bench_net *net) {
    return 2.0 * (double)(net->conv_macs + net->linear_macs);
}

/* --------------------------------------------------------------------- modes */

typedef struct bench_common {
    nc_backend_kind backend;
    int threads, batch, size, warmup, runs;
    int do_train, do_infer;
    const char *json;
    nc_conv_algorithm conv_algorithm; /* --conv-algorithm */
} bench_common;

/* --layers: times every distinct convolution of `mo`'s architecture as a one-conv
 * model. Returns the process exit status. */
int bench_layers(const bench_common *c, const nc_model_options *mo);

typedef struct loader_args {
    const char *source, *transform, *json;
    int size, workers, prefetch, batch, batches, warmup, runs, threads;
} loader_args;

/* --loader: images/s of nc_loader_next. Returns the process exit status. */
int bench_loader(const loader_args *a);

/* --distributed (distributed.c): MPI_Init and a communicator over every rank (the
 * global batch must divide among them; ranks other than 0 print nothing); 0 or -1
 * after printing why. bench_dist_end aborts the job when `failed`, else finalises. */
int bench_dist_start(int *argc, char ***argv, nc_context *ctx, int batch, nc_comm **out);
void bench_dist_end(nc_comm *comm, int failed);

#endif
