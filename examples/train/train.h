/* train.h — nc-train's shared declarations: the option table (one X-macro drives
 * parsing, --help, config.json and the typed configuration), the data set-up shared
 * by every run, one run's results, and the functions of each file:
 *   main.c      modes, option merging (config.json, then the command line), main()
 *   options.c   the table, typed conversion, config.json reading and writing
 *   data.c      datasets, the split and split.csv, transforms, loaders
 *   run.c       one training run / evaluation of one output directory
 *   progress.c  the progress bar and log lines, timing
 *   folds.c     k-fold cross-validation and the multi-model comparison */
#ifndef NC_TRAIN_H
#define NC_TRAIN_H

#include "neurc.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#define PROG "nc-train"

/* Exit codes. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

/* X(id, name, takes a value, default, saved in config.json, metavar, help) */
#define OPTION_TABLE(X)                                                                                        \
    X(MODE, "mode", 1, "train", 0, "MODE", "train | resume | evaluate | test (also accepted as the first word)") \
    X(DATA, "data", 1, "", 1, "PATH", "class folder, CSV manifest (.csv) or folder of IDX files")            \
    X(VAL_DATA, "val-data", 1, "", 1, "PATH", "separate validation set (same kinds as --data)")               \
    X(TEST_DATA, "test-data", 1, "", 1, "PATH", "separate test set (IDX folders use their t10k pair)")        \
    X(IMAGE_COLUMNS, "image-columns", 1, "", 1, "A,B", "CSV: image columns stacked as channels (image)")       \
    X(LABEL_COLUMNS, "label-columns", 1, "", 1, "A,B", "CSV: one label column per head (label)")              \
    X(OPTIONAL_COLUMN, "optional-column", 1, "", 1, "COL", "CSV: optional image column (+ indicator channel)") \
    X(VAL_SPLIT, "val-split", 1, "0.1", 1, "F", "fraction of --data held out for validation")                 \
    X(TEST_SPLIT, "test-split", 1, "0.1", 1, "F", "fraction held out for test (0 with a separate test set)")  \
    X(IN_CHANNELS, "in-channels", 1, "0", 1, "N", "input channels; 0 = from the data (must agree)")            \
    X(IMG_SIZE, "img-size", 1, "0", 1, "N", "training/eval image size; 0 = the data's own size")               \
    X(AUGMENT, "augment", 1, "auto", 1, "KIND", "none | light | full | auto (full from 64 px, else light)")  \
    X(MEAN, "mean", 1, "", 1, "M,..", "per-channel normalisation mean (default: measured on train)")        \
    X(STD, "std", 1, "", 1, "S,..", "per-channel normalisation std (default: measured on train)")           \
    X(MODEL, "model", 1, "resnet18", 1, "A,B,..", "architecture(s); several = a comparison")                 \
    X(WIDTH, "width", 1, "32", 1, "N", "simple_cnn: channels of the first conv")                              \
    X(CARDINALITY, "cardinality", 1, "32", 1, "N", "resnext: groups")                                          \
    X(BASE_WIDTH, "base-width", 1, "4", 1, "N", "resnext: width per group")                                    \
    X(BLOCKS, "blocks", 1, "3,4,6,3", 1, "A,B,C,D", "resnext: blocks per stage")                              \
    X(BASIC, "basic", 2, "0", 1, "", "resnext: basic blocks instead of bottlenecks")                          \
    X(HEADS, "heads", 1, "0", 1, "N", "classifier heads; 0 = one per label column")                           \
    X(HEAD, "head", 1, "linear", 1, "KIND", "linear | mlp")                                                    \
    X(HEAD_DROPOUT, "head-dropout", 1, "0", 1, "P", "dropout before a linear head")                           \
    X(BLOCK_DROPOUT, "block-dropout", 1, "0", 1, "P", "resnext: dropout inside each block")                   \
    X(SMALL_INPUT, "small-input", 2, "auto", 1, "", "small-image stem: auto (below 64 px) | 1 | 0")            \
    X(PRETRAINED, "pretrained", 1, "", 1, "FILE", "torchvision state_dict (safetensors) to start from")       \
    X(ADAPT, "adapt", 1, "normal", 1, "KIND", "first conv for non-RGB input: normal | mean")                  \
    X(EPOCHS, "epochs", 1, "10", 1, "N", "total epochs (resume continues up to N)")                           \
    X(BATCH_SIZE, "batch-size", 1, "32", 1, "N", "images per step")                                            \
    X(OPTIMIZER, "optimizer", 1, "sgd", 1, "NAME", "sgd | adam | adamw")                                       \
    X(LR, "lr", 1, "auto", 1, "X", "learning rate (auto: 0.01 sgd, 0.001 adam/adamw)")                        \
    X(MOMENTUM, "momentum", 1, "0.9", 1, "X", "SGD momentum")                                                  \
    X(WEIGHT_DECAY, "weight-decay", 1, "0", 1, "X", "weight decay (all groups)")                              \
    X(NESTEROV, "nesterov", 2, "0", 1, "", "Nesterov momentum")                                                \
    X(LR_HEAD, "lr-head", 1, "", 1, "X", "learning rate of the head (fc / classifier)")                       \
    X(LR_BACKBONE, "lr-backbone", 1, "", 1, "X", "learning rate of the rest (default --lr)")                  \
    X(LR_EARLY, "lr-early", 1, "", 1, "X", "learning rate of the stem and first stage")                       \
    X(FREEZE_BACKBONE, "freeze-backbone-epochs", 1, "0", 1, "N", "train only the head for N epochs")          \
    X(SCHEDULER, "scheduler", 1, "none", 1, "KIND", "none | step | multistep | exponential | cosine | plateau") \
    X(STEP_SIZE, "step-size", 1, "30", 1, "N", "step: epochs per decay")                                      \
    X(GAMMA, "gamma", 1, "0.1", 1, "X", "step, multistep, exponential: decay factor")                         \
    X(MILESTONES, "milestones", 1, "", 1, "A,B,..", "multistep: epochs of decay")                              \
    X(T_MAX, "t-max", 1, "0", 1, "N", "cosine: epochs of the cosine; 0 = epochs - warmup")                    \
    X(ETA_MIN, "eta-min", 1, "0", 1, "X", "cosine: final learning rate")                                       \
    X(WARMUP, "warmup-epochs", 1, "0", 1, "N", "cosine: linear warm-up epochs")                                 \
    X(PLATEAU_FACTOR, "plateau-factor", 1, "0.1", 1, "X", "plateau: factor")                                   \
    X(PLATEAU_PATIENCE, "plateau-patience", 1, "10", 1, "N", "plateau: patience (epochs)")                     \
    X(MIN_LR, "min-lr", 1, "0", 1, "X", "plateau: lowest learning rate")                                        \
    X(LABEL_SMOOTHING, "label-smoothing", 1, "0", 1, "E", "cross-entropy label smoothing")                    \
    X(CLASS_WEIGHTS, "class-weights", 1, "none", 1, "W", "none | balanced | w1,w2,...")                       \
    X(LOSS, "loss", 1, "ce", 1, "KIND", "ce (softmax per head) | bce (multi-label: 0/1 label columns, sigmoid)") \
    X(POS_WEIGHT, "pos-weight", 1, "none", 1, "W", "bce: none | auto (negatives/positives) | w or w1,w2,...")  \
    X(GRAD_ACCUM, "grad-accum", 1, "1", 1, "N", "micro-batches per optimizer update")                         \
    X(CLIP_GRAD, "clip-grad", 1, "0", 1, "X", "clip the gradients' global L2 norm (0 = off)")                 \
    X(EMA, "ema", 1, "0", 1, "DECAY", "evaluate and keep an EMA of the weights (0 = off)")                    \
    X(EARLY_STOPPING, "early-stopping", 1, "0", 1, "N", "stop after N epochs without improvement (0 = off)")  \
    X(MIN_DELTA, "min-delta", 1, "0", 1, "X", "early stopping / best: least improvement")                      \
    X(MONITOR, "monitor", 1, "auto", 1, "M", "auto | val_loss | val_acc | val_f1 | val_auc (auto: val_auc for bce, else val_loss)") \
    X(FOLDS, "folds", 1, "0", 1, "K", "stratified K-fold cross-validation (K >= 2)")                          \
    X(THRESHOLD_CLASS, "threshold-class", 1, "", 1, "C", "class (index or name) given a decision threshold") \
    X(THRESHOLD_RULE, "threshold-rule", 1, "fbeta:0.5", 1, "R", "fbeta:BETA | precision:TARGET")              \
    X(SEED, "seed", 1, "1", 1, "N", "seed of split, initialisation, shuffling, augmentation, dropout")        \
    X(BACKEND, "backend", 1, "auto", 1, "NAME", "auto | ref | onednn | cuda")                                  \
    X(PRECISION, "precision", 1, "fp32", 1, "P", "fp32 | bf16 (autocast rules) | bf16-math (onednn)")          \
    X(CONV_ALGORITHM, "conv-algorithm", 1, "auto", 1, "A", "auto | direct | winograd: how 3x3 convolutions are computed") \
    X(THREADS, "threads", 1, "0", 0, "N", "CPU threads (0 = all cores)")                                       \
    X(WORKERS, "workers", 1, "2", 0, "N", "image decoding threads")                                            \
    X(OUTPUT_DIR, "output-dir", 1, "nc-train-out", 0, "DIR", "where logs, checkpoints and reports go")         \
    X(FORCE, "force", 0, "0", 0, "", "train: start over in a directory holding a checkpoint")                 \
    X(LOG_EVERY, "log-every", 1, "50", 0, "N", "batches between log lines when not on a terminal")            \
    X(QUIET, "quiet", 0, "0", 0, "", "no progress output")                                                      \
    X(DISTRIBUTED, "distributed", 0, "0", 0, "", "data parallel over the ranks of mpirun (docs/distributed.md)") \
    X(DIST_TIMEOUT, "dist-timeout", 1, "1800", 0, "S", "--distributed: seconds a rank waits for the others before it fails") \
    X(SYNC_BN, "sync-bn", 0, "0", 1, "", "--distributed: batch norm over the global batch (SyncBatchNorm)") \
    X(HELP, "help", 0, "0", 0, "", "this text")

#define OPT_ENUM(id, name, arg, def, persist, meta, help) OPT_##id,
enum { OPTION_TABLE(OPT_ENUM) OPT_COUNT };
#undef OPT_ENUM

typedef struct optdef {
    const char *name;
    int arg;          /* 0 flag, 1 value, 2 optional value (--name = 1, --name=V) */
    const char *def;
    int persist;      /* 1 = written to / read from config.json */
    const char *meta, *help;
} optdef;
extern const optdef option_defs[OPT_COUNT];

typedef enum mode { MODE_TRAIN, MODE_RESUME, MODE_EVALUATE, MODE_TEST } mode;

/* The typed configuration resolved from the option strings. */
typedef struct cfg {
    const char *val[OPT_COUNT]; /* effective strings (borrowed from argv / config / defaults) */
    mode mode;
    const char *data, *val_data, *test_data, *out;
    float val_split, test_split;
    int in_channels, img_size, augment; /* augment: -1 auto, 0 none, 1 light, 2 full */
    int has_norm;
    float mean[16], std[16];
    int norm_count;
    char models[16][64];
    int num_models;
    int width, cardinality, base_width, blocks[4], basic, heads, head, small_input; /* -1 auto */
    float head_dropout, block_dropout;
    int adapt;
    int epochs, batch_size, optimizer;
    float lr, momentum, weight_decay;
    int nesterov;
    float lr_head, lr_backbone, lr_early; /* < 0: not given */
    int freeze_epochs;
    int scheduler; /* -1 none, else nc_schedule_kind */
    int step_size, t_max, warmup, plateau_patience;
    float gamma, eta_min, plateau_factor, min_lr;
    int milestones[32], num_milestones;
    float label_smoothing;
    int class_weights; /* 0 none, 1 balanced, 2 explicit */
    float weights[256];
    int num_weights;
    int loss;                 /* 0 cross-entropy, 1 BCE with logits (multi-label) */
    int pos_weight;           /* bce: 0 none, 1 auto, 2 explicit */
    float pos_weights[256];
    int num_pos_weights;
    int grad_accum;
    float clip_grad, ema, min_delta;
    int early_stopping, monitor; /* monitor: 0 val_loss, 1 val_acc, 2 val_f1, 3 val_auc (auto resolved) */
    int folds;
    const char *threshold_class; /* NULL = none */
    int threshold_precision;     /* 0 = fbeta rule, 1 = target precision */
    double threshold_value;
    uint64_t seed;
    nc_backend_kind backend;
    nc_precision precision;
    nc_conv_algorithm conv_algorithm;
    int threads, workers, force, log_every, quiet;
    int distributed;  /* --distributed: this process is rank `rank` of `ranks` over comm
                         (set up in main.c); otherwise 0 of 1 */
    int rank, ranks;
    float dist_timeout; /* --dist-timeout seconds */
    int sync_bn;        /* --sync-bn */
    nc_comm *comm;
} cfg;

/* options.c */
int option_index(const char *name);
void print_usage(FILE *f);
/* Converts the effective strings into c (c->val must be filled); 0, or 2 after
 * printing the reason. */
int cfg_resolve(cfg *c);
/* config.json: a flat JSON object of option name -> string. */
int config_write(const cfg *c, const char *path, char *err, size_t errsize);
/* Reads path into owned strings (*keys, *vals, *count); 0 ok, -1 missing, -2 malformed. */
int config_read(const char *path, char ***keys, char ***vals, int *count, char *err, size_t errsize);
/* The same from the NUL-terminated text of the file (path names it in err); 0 or -2.
 * tests/fuzz/fuzz_config.c feeds it arbitrary text. */
int config_parse(const char *text, const char *path, char ***keys, char ***vals, int *count, char *err,
                 size_t errsize);
/* The effective strings: each option's default, replaced by a persisted option's value
 * among keys/vals (config.json), replaced by the command line's cl[id] when given. */
void cfg_fill(cfg *c, const char *const *cl, char **keys, char **vals, int nkeys);
void config_free(char **keys, char **vals, int count);

/* progress.c */
double now_seconds(void);
typedef struct progress {
    int tty, quiet, log_every;
    int64_t epoch, epochs, batches;
    double t0, last_draw;
    int drawn;
} progress;
void progress_start_epoch(progress *p, int64_t epoch, int64_t epochs, int64_t batches);
void progress_batch(progress *p, int64_t batch, double loss, double acc, int64_t images);
void progress_end_epoch(progress *p);
/* Prints "nc-train: what: <library message>" and returns EXIT_FAIL; for
 * NC_ERR_CANCELLED (Ctrl-C) "nc-train: interrupted while what" and EXIT_INTERRUPTED. */
int fail_lib(nc_context *ctx, const char *what, nc_status st);
/* Prints "nc-train: <message>" (printf-style) and returns EXIT_FAIL. */
int fail_msg(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
int make_dirs(const char *path);
int path_join(char *buf, size_t size, const char *dir, const char *name);
int file_exists(const char *path);
int close_atomic(FILE *f, const char *tmp, const char *path);

/* data.c: everything about the data that every run shares. */
typedef struct data {
    nc_dataset *ds, *val_ds, *test_ds; /* val_ds/test_ds NULL unless separate */
    int heads, classes, channels, native_h, native_w, size;
    int multilabel;       /* --loss bce: one head of `classes` sigmoid outputs, one per label column */
    int label_width;      /* labels per sample in the dataset (its label columns) */
    char *label_buf;      /* --loss bce: the label column names (class_names point into it) */
    int8_t *assign;       /* (size of ds): 0 train, 1 val, 2 test */
    int64_t *train_idx, *val_idx, *test_idx;
    int64_t n_train, n_val, n_test; /* n_val/n_test: of ds, or the separate sets' sizes */
    int64_t *trainval_idx, n_trainval; /* train + val part of ds (k-fold) */
    int32_t *labels0;     /* (size of ds) head-0 labels */
    float mean[16], std[16];
    const char *const *class_names; /* (classes) of head 0 */
    int split_new;        /* train: the split was drawn now, split.csv is still to write */
    int committed;        /* config.json and split.csv written for this run (data_commit) */
} data;
int data_open(const cfg *c, nc_context *ctx, data *d);
/* Writes what a train / resume run records before its first own file (split.csv
 * for train, config.json for both), once. Runs call it just before they first save
 * anything, so a run that fails earlier leaves the output directory as it was. */
int data_commit(const cfg *c, data *d);
void data_close(data *d);
/* The train / eval transforms (normalisation and size from cfg and d). */
int data_transforms(const cfg *c, nc_context *ctx, const data *d, nc_transform **train, nc_transform **eval);
int data_loader(const cfg *c, nc_context *ctx, nc_dataset *ds, const nc_transform *t, const int64_t *idx,
                int64_t n, int train, nc_loader **out);

/* One run's numbers (NaN = not measured). */
typedef struct result {
    char model[64];
    int64_t params;
    double val_loss, val_acc, val_f1, val_fb, val_auc; /* auc: mean per-label AUROC (--loss bce) */
    double test_loss, test_acc, test_f1, test_fb, test_auc;
    double seconds;
    int64_t epochs_done;
} result;
void result_init(result *r);

/* run.c: one output directory: train / resume / evaluate / test. The index lists
 * are of d->ds unless the separate val/test datasets exist. */
typedef struct job {
    const char *dir;
    const char *model;
    const int64_t *train_idx, *val_idx;
    int64_t n_train, n_val;
    int fold;  /* -1 = no folds */
} job;
int run_job(const cfg *c, nc_context *ctx, data *d, const job *j, result *r);

/* folds.c */
int run_all(const cfg *c, nc_context *ctx, data *d);

/* distributed.c: --distributed over MPI (no-ops otherwise). dist_start initialises
 * MPI and the communicator and sets c->rank, c->ranks; dist_stop finalises (or
 * aborts every rank when rc says this one failed); dist_any is 1 when flag is set
 * on any rank (-1, with the message printed, when the ranks cannot agree: a rank
 * died or hangs); dist_share gives every rank rank 0's v[0..n). */
int dist_start(cfg *c, nc_context *ctx, int *argc, char ***argv);
void dist_stop(cfg *c, int rc);
int dist_any(const cfg *c, nc_context *ctx, int flag);
int dist_share(const cfg *c, nc_context *ctx, double *v, int n);

/* main.c: set by SIGINT; runs finish the current batch, save and exit 130. */
extern volatile sig_atomic_t g_interrupted;

#endif
