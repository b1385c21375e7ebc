/* trainer.h — nc_trainer internals, shared by trainer.c (the steps) and checkpoint.c
 * (saving and restoring the whole training state): groups, the tensor->group map,
 * optimizer moments in backend buffers with the model arena's offsets, counters. */
#ifndef NC_TRAIN_TRAINER_H
#define NC_TRAIN_TRAINER_H

#include "neurc.h"
#include "train/loss.h"

#include <stddef.h>
#include <stdint.h>

#define NC__GROUP_NAME 64

typedef struct nc__group {
    char name[NC__GROUP_NAME];
    float lr;            /* current (set_group_lr, or from the schedule) */
    float base_lr;       /* initial: what a schedule scales */
    float weight_decay;
    int frozen;
} nc__group;

struct nc_trainer {
    nc_model *m;
    nc_trainer_options opt;
    nc__group *groups;         /* [0] = "default" */
    int n_groups;
    size_t cap_groups;
    int *tensor_group;         /* [n_tensors]: group of a trainable tensor, -1 for buffers */
    int64_t *tensor_updates;   /* [n_tensors]: updates applied (torch's per-parameter state) */
    void *state1, *state2;     /* backend buffers with the arena's offsets: SGD momentum or
                                  Adam's first moment; Adam's second moment (NULL for SGD) */
    nc__loss_config loss;
    float *class_weights, *head_weights, *pos_weight; /* owned copies, expanded */
    nc_schedule *schedule;     /* borrowed */
    const void *warm_plan;     /* m->plan_train once a step ran through it (UNDO, trainer.c) */
    int64_t steps;             /* calls of nc_trainer_step that ran a forward (the dropout
                                  RNG is counter-based: this is its whole state) */
    int64_t updates;           /* optimizer updates applied */
    int accum_count;           /* micro-batches in the gradient arena */
    int nonfinite_run;         /* skipped updates in a row */
    /* backend memory (backend.h, TRANSFER BUDGET): the step's labels (grown to the
       largest batch), its record, and the loss weights uploaded once */
    void *labels_dev;
    size_t labels_cap;         /* bytes */
    void *record_dev;
    void *class_weights_dev, *head_weights_dev, *pos_weight_dev;
    /* the parameter table of an update, rebuilt on the host per update */
    nc__param_entry *table;    /* [n_tensors] */
    int *table_tensor;         /* [n_tensors]: graph tensor of each entry */
    /* data parallel (nc_trainer_set_comm): the communicator (borrowed), the gradient
       buckets (dist/buckets.h), synchronised batch norm and overlap switches */
    nc_comm *comm;
    struct nc__grad_buckets *buckets;
    int sync_bn;               /* nc_trainer_set_sync_batchnorm */
    int no_overlap;            /* nc_trainer_set_grad_overlap(t, 0) */
};

/* nc_trainer_load_checkpoint on an already parsed file f (nc__st_read, or from memory
 * with nc__st_parse: tests/fuzz/ uses this); `path` labels the messages; info's
 * struct_size already checked (or info NULL). Same statuses; f stays the caller's. */
struct nc__st_file;
nc_status nc__trainer_load_checkpoint_st(nc_trainer *t, const struct nc__st_file *f, const char *path,
                                         nc_checkpoint_info *info);

#endif
