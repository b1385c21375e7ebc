/* run.c — one nc-train output directory: build the model and trainer from the
 * options, train (or resume from last.safetensors) epoch by epoch with validation,
 * best/last checkpoints and the per-epoch logs, then evaluate the best weights
 * (temperature, optional decision threshold) and write the report. `evaluate` and
 * `test` only load best.safetensors and evaluate it on the validation / test split. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void result_init(result *r) {
    memset(r, 0, sizeof *r);
    r->val_loss = r->val_acc = r->val_f1 = r->val_fb = r->val_auc = NAN;
    r->test_loss = r->test_acc = r->test_f1 = r->test_fb = r->test_auc = NAN;
}

typedef struct rs {
    const cfg *c;
    nc_context *ctx;
    data *d;
    const job *j;
    nc_model *m;
    nc_trainer *t;
    nc_schedule *s;
    nc_ema *ema;
    nc_transform *ttrain, *teval;
    nc_loader *ltrain, *lval, *ltest;
    nc_history *hist;
    float *logits;   /* (cap, outputs) */
    int32_t *labels; /* (cap, label_width) */
    const char *report_dir; /* final evaluation: where labels_<split>.csv goes (--loss bce) */
    float pos_weight[256];  /* --loss bce with --pos-weight: one per label */
    int64_t cap;
    int has_head_group, has_early_group;
    int thr_class; /* -1 = none */
    int committed; /* this job has written its first file (commit) */
    char last[4200], best[4200], ema_path[4200], csv[4200], json[4200];
} rs;

/* The numbers of one split: sums / means over heads (--loss bce: over labels; auc is
 * the mean per-label AUROC, NaN for softmax heads). */
typedef struct split_numbers {
    double loss, acc, f1, fb, auc;
} split_numbers;

static const char *const monitor_names[4] = {"val_loss", "val_acc", "val_f1", "val_auc"};

/* ----------------------------------------------------------------- set-up */

static int make_model(rs *r) {
    const cfg *c = r->c;
    const data *d = r->d;
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = r->j->model;
    mo.num_classes = d->classes;
    mo.in_channels = d->channels;
    mo.num_heads = d->heads;
    mo.cardinality = c->cardinality;
    mo.base_width = c->base_width;
    memcpy(mo.blocks, c->blocks, sizeof mo.blocks);
    mo.bottleneck = !c->basic;
    mo.block_dropout = c->block_dropout;
    mo.head_dropout = c->head_dropout;
    mo.head = c->head ? NC_HEAD_MLP : NC_HEAD_LINEAR;
    mo.small_input = c->small_input >= 0 ? c->small_input : d->size < 64;
    mo.width = c->width;
    mo.seed = c->seed;
    nc_status st = nc_model_create(r->ctx, &mo, &r->m);
    if (st != NC_OK) return fail_lib(r->ctx, "creating the model", st);
    return 0;
}

/* Class names, normalisation and what nc-predict needs to rebuild the eval transform. */
static int store_metadata(rs *r, nc_model *m) {
    const data *d = r->d;
    char buf[64];
    nc_status st = nc_model_set_class_names(m, d->class_names, d->classes);
    if (st == NC_OK) st = nc_model_set_normalization(m, d->mean, d->std);
    snprintf(buf, sizeof buf, "%d", d->size);
    if (st == NC_OK) st = nc_model_set_info(m, "image_size", buf);
    snprintf(buf, sizeof buf, "%d", d->size >= 64 ? d->size * 256 / 224 : d->size);
    if (st == NC_OK) st = nc_model_set_info(m, "resize", buf);
    /* nc-predict and the Python bindings turn sigmoid outputs into per-label probabilities */
    if (st == NC_OK && d->multilabel) st = nc_model_set_info(m, "output", "sigmoid");
    return st == NC_OK ? 0 : fail_lib(r->ctx, "storing the model's metadata", st);
}

/* Parameter groups: head = "fc" (VGG, DenseNet: "classifier"), early = stem + first
 * stage, backbone = everything else ("default"). */
static int add_groups(rs *r) {
    const cfg *c = r->c;
    const char *arch = r->j->model;
    int vgg = strncmp(arch, "vgg", 3) == 0, simple = strcmp(arch, "simple_cnn") == 0;
    int dense = strncmp(arch, "densenet", 8) == 0;
    const char *head = vgg || dense ? "classifier" : "fc";
    const char *early = vgg     ? (strstr(arch, "_bn") ? "features.0,features.1" : "features.0")
                        : dense ? "features.conv0,features.norm0,features.denseblock1"
                        : simple ? "conv1,bn1"
                                 : "conv1,bn1,layer1";
    nc_status st = NC_OK;
    if (c->lr_head >= 0.0f || c->freeze_epochs > 0) {
        st = nc_trainer_add_group(r->t, "head", head, c->lr_head >= 0.0f ? c->lr_head : c->lr, c->weight_decay);
        r->has_head_group = st == NC_OK;
    }
    if (st == NC_OK && c->lr_early >= 0.0f) {
        st = nc_trainer_add_group(r->t, "early", early, c->lr_early, c->weight_decay);
        r->has_early_group = st == NC_OK;
    }
    return st == NC_OK ? 0 : fail_lib(r->ctx, "adding parameter groups", st);
}

/* --pos-weight (--loss bce): auto = negatives / positives of each label over this
 * job's training part (the weight torch advises for BCEWithLogitsLoss; CheXNet's
 * weighted loss up to a per-label factor), 1 for a label without positives; or the
 * given weight, one for all labels or one per label. w: d->classes values. */
static int pos_weights(rs *r, float *w) {
    const cfg *c = r->c;
    const data *d = r->d;
    const int L = d->classes;
    if (c->pos_weight == 2) {
        if (c->num_pos_weights != 1 && c->num_pos_weights != L)
            return fail_msg("--pos-weight gives %d weights; the data has %d label columns", c->num_pos_weights, L);
        for (int k = 0; k < L; k++) w[k] = c->pos_weights[c->num_pos_weights == 1 ? 0 : k];
        return 0;
    }
    int64_t pos[256] = {0};
    int32_t lab[256];
    for (int64_t i = 0; i < r->j->n_train; i++) {
        nc_status st = nc_dataset_labels(d->ds, r->j->train_idx[i], lab);
        if (st != NC_OK) return fail_lib(r->ctx, "reading labels", st);
        for (int k = 0; k < L; k++) pos[k] += lab[k];
    }
    for (int k = 0; k < L; k++)
        w[k] = pos[k] ? (float)((double)(r->j->n_train - pos[k]) / (double)pos[k]) : 1.0f;
    return 0;
}

/* --monitor val_auc needs a validation split on which some label has both positive and
 * negative images; otherwise the mean AUROC is undefined every epoch and no best model
 * could ever be chosen. 0, or 1 after saying so. */
static int check_val_auroc(rs *r) {
    const data *d = r->d;
    const job *j = r->j;
    if (r->c->monitor != 3 || j->n_val < 1) return 0;
    nc_dataset *vds = j->val_idx ? d->ds : d->val_ds;
    int64_t pos[256] = {0};
    int32_t lab[256];
    for (int64_t i = 0; i < j->n_val; i++) {
        nc_status st = nc_dataset_labels(vds, j->val_idx ? j->val_idx[i] : i, lab);
        if (st != NC_OK) return fail_lib(r->ctx, "reading labels", st);
        for (int k = 0; k < d->classes; k++) pos[k] += lab[k];
    }
    for (int k = 0; k < d->classes; k++)
        if (pos[k] > 0 && pos[k] < j->n_val) return 0;
    return fail_msg("--monitor val_auc: no label has both positive and negative images among the %lld validation "
                    "images, so the mean AUROC is undefined; enlarge the validation split (--val-split, --val-data) "
                    "or use --monitor val_loss", (long long)j->n_val);
}

static int make_trainer(rs *r) {
    const cfg *c = r->c;
    const data *d = r->d;
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.optimizer = (nc_optimizer)c->optimizer;
    to.lr = c->lr_backbone >= 0.0f ? c->lr_backbone : c->lr;
    to.momentum = c->optimizer == 0 ? c->momentum : 0.9f;
    to.weight_decay = c->weight_decay;
    to.nesterov = c->nesterov;
    to.seed = c->seed + 1; /* dropout stream, distinct from the initialisation's */
    to.label_smoothing = c->label_smoothing;
    to.accumulation_steps = c->grad_accum;
    to.clip_grad_norm = c->clip_grad;
    float *w = NULL;
    if (c->loss) {
        to.loss = NC_LOSS_BCE_WITH_LOGITS;
        if (c->pos_weight && pos_weights(r, r->pos_weight)) return EXIT_FAIL;
        if (c->pos_weight) to.pos_weight = r->pos_weight;
    }
    if (c->class_weights == 1) { /* balanced on the training part: n / (K * count) */
        w = calloc((size_t)d->heads * (size_t)d->classes, sizeof *w);
        int64_t *counts = calloc((size_t)d->heads * (size_t)d->classes, sizeof *counts);
        int32_t lab[256];
        if (!w || !counts) {
            free(w);
            free(counts);
            return fail_msg("out of memory");
        }
        for (int64_t i = 0; i < r->j->n_train; i++) {
            nc_dataset_labels(d->ds, r->j->train_idx[i], lab);
            for (int h = 0; h < d->heads; h++)
                if (lab[h] >= 0 && lab[h] < d->classes) counts[h * d->classes + lab[h]]++;
        }
        for (int h = 0; h < d->heads; h++) {
            int present = 0;
            for (int k = 0; k < d->classes; k++) present += counts[h * d->classes + k] > 0;
            for (int k = 0; k < d->classes; k++) {
                int64_t n = counts[h * d->classes + k];
                w[h * d->classes + k] = n ? (float)((double)r->j->n_train / ((double)present * (double)n)) : 0.0f;
            }
        }
        free(counts);
        to.class_weights = w;
        to.num_class_weights = d->heads * d->classes;
    } else if (c->class_weights == 2) {
        if (c->num_weights != d->classes && c->num_weights != d->heads * d->classes) {
            return fail_msg("--class-weights gives %d weights; the data has %d classes (x %d heads)", c->num_weights,
                            d->classes, d->heads);
        }
        to.class_weights = c->weights;
        to.num_class_weights = c->num_weights;
    }
    nc_status st = nc_trainer_create(r->m, &to, &r->t);
    free(w);
    if (st != NC_OK) return fail_lib(r->ctx, "creating the trainer", st);
    if (add_groups(r)) return EXIT_FAIL;

    if (c->scheduler >= 0) {
        nc_schedule_options so;
        nc_schedule_options_init(&so);
        so.kind = (nc_schedule_kind)(c->scheduler + 1);
        so.step_size = c->step_size;
        so.gamma = c->gamma;
        so.milestones = c->milestones;
        so.num_milestones = c->num_milestones;
        so.t_max = c->t_max ? c->t_max : (c->epochs - c->warmup > 1 ? c->epochs - c->warmup : 1);
        so.eta_min = c->eta_min;
        so.warmup_steps = c->warmup;
        so.mode_max = c->monitor != 0;
        so.factor = c->plateau_factor;
        so.patience = c->plateau_patience;
        so.min_lr = c->min_lr;
        if ((st = nc_schedule_create(r->ctx, &so, &r->s)) != NC_OK) return fail_lib(r->ctx, "creating the schedule", st);
        if ((st = nc_trainer_set_schedule(r->t, r->s)) != NC_OK) return fail_lib(r->ctx, "attaching the schedule", st);
    }
    if (c->comm && (st = nc_trainer_set_comm(r->t, c->comm)) != NC_OK)
        return fail_lib(r->ctx, "--distributed: sharing rank 0's model", st);
    if (c->comm && (st = nc_trainer_set_sync_batchnorm(r->t, c->sync_bn)) != NC_OK)
        return fail_lib(r->ctx, "--sync-bn", st);
    if (c->ema > 0.0f && (st = nc_ema_create(r->m, c->ema, &r->ema)) != NC_OK)
        return fail_lib(r->ctx, "creating the weight average", st);
    return 0;
}

static int make_loaders(rs *r, int train, int val, int test) {
    const cfg *c = r->c;
    data *d = r->d;
    const job *j = r->j;
    if (data_transforms(c, r->ctx, d, &r->ttrain, &r->teval)) return EXIT_FAIL;
    if (train && data_loader(c, r->ctx, d->ds, r->ttrain, j->train_idx, j->n_train, 1, &r->ltrain)) return EXIT_FAIL;
    int64_t need = 0;
    if (val && j->n_val > 0) {
        nc_dataset *vds = j->val_idx ? d->ds : d->val_ds;
        if (data_loader(c, r->ctx, vds, r->teval, j->val_idx, j->n_val, 0, &r->lval)) return EXIT_FAIL;
        need = j->n_val;
    }
    if (test && d->n_test > 0) {
        nc_dataset *tds = d->test_ds ? d->test_ds : d->ds;
        if (data_loader(c, r->ctx, tds, r->teval, d->test_ds ? NULL : d->test_idx, d->n_test, 0, &r->ltest))
            return EXIT_FAIL;
        if (d->n_test > need) need = d->n_test;
    }
    r->cap = need;
    if (need > 0) {
        r->logits = malloc((size_t)need * (size_t)d->heads * (size_t)d->classes * sizeof *r->logits);
        r->labels = malloc((size_t)need * (size_t)d->label_width * sizeof *r->labels);
        if (!r->logits || !r->labels) return fail_msg("out of memory for %lld evaluation rows", (long long)need);
    }
    return 0;
}

/* --threshold-class as an index or a class name of head 0; -1 when not given. */
static int threshold_class(rs *r) {
    const char *s = r->c->threshold_class;
    r->thr_class = -1;
    if (!s) return 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end != s && *end == '\0' && v >= 0 && v < r->d->classes) {
        r->thr_class = (int)v;
        return 0;
    }
    for (int k = 0; k < r->d->classes; k++)
        if (strcmp(r->d->class_names[k], s) == 0) r->thr_class = k;
    if (r->thr_class < 0) return fail_msg("--threshold-class '%s' is neither a class index nor a class name", s);
    return 0;
}

/* ------------------------------------------------------------- evaluation */

/* One label's numbers: AUROC and the decision "sigmoid >= 0.5". */
typedef struct label_numbers {
    double auc;
    nc_binary_stats at;
} label_numbers;

static double softplus(double x) { return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* labels_<split>.csv in the report directory: one row per label, then the means
 * (AUROC over the labels where it is defined, the others over all labels). */
static int write_label_csv(rs *r, const char *split, const label_numbers *ln, const split_numbers *mean) {
    const data *d = r->d;
    char name[64], path[4400], tmp[4500];
    snprintf(name, sizeof name, "labels_%s.csv", split);
    if (make_dirs(r->report_dir) != 0) return fail_msg("cannot create %s: %s", r->report_dir, strerror(errno));
    if (path_join(path, sizeof path, r->report_dir, name)) return EXIT_FAIL;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fail_msg("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "label,positives,negatives,auroc,precision,recall,f1,tp,fp,fn,tn\n");
    double p = 0.0, rc = 0.0;
    for (int k = 0; k < d->classes; k++) {
        const nc_binary_stats *b = &ln[k].at;
        fputc('"', f);
        for (const char *q = d->class_names[k]; *q; q++) {
            if (*q == '"') fputc('"', f);
            fputc(*q, f);
        }
        fprintf(f, "\",%lld,%lld,", (long long)(b->tp + b->fn), (long long)(b->fp + b->tn));
        if (isfinite(ln[k].auc)) fprintf(f, "%.17g", ln[k].auc);
        fprintf(f, ",%.17g,%.17g,%.17g,%lld,%lld,%lld,%lld\n", b->precision, b->recall, b->fbeta, (long long)b->tp,
                (long long)b->fp, (long long)b->fn, (long long)b->tn);
        p += b->precision / d->classes;
        rc += b->recall / d->classes;
    }
    fprintf(f, "mean,,,");
    if (isfinite(mean->auc)) fprintf(f, "%.17g", mean->auc);
    fprintf(f, ",%.17g,%.17g,%.17g,,,,\n", p, rc, mean->f1); /* tp..tn empty */
    return close_atomic(f, tmp, path);
}

/* The per-label numbers into the report ("<split>.auroc.<label>", ...), the table on
 * stdout and labels_<split>.csv. */
static int report_labels(rs *r, const char *split, nc_report *rep, const label_numbers *ln, const split_numbers *sn) {
    const data *d = r->d;
    char key[320];
    static const char *const what[4] = {"auroc", "precision", "recall", "f1"};
    snprintf(key, sizeof key, "%s.mean_auroc", split);
    nc_report_set_number(rep, key, sn->auc);
    snprintf(key, sizeof key, "%s.macro_f1", split);
    nc_report_set_number(rep, key, sn->f1);
    for (int k = 0; k < d->classes; k++) {
        const double v[4] = {ln[k].auc, ln[k].at.precision, ln[k].at.recall, ln[k].at.fbeta};
        for (int q = 0; q < 4; q++) {
            snprintf(key, sizeof key, "%s.%s.%s", split, what[q], d->class_names[k]);
            nc_status st = nc_report_set_number(rep, key, v[q]);
            if (st != NC_OK) return fail_lib(r->ctx, "adding to the report", st);
        }
    }
    if (!r->c->quiet) {
        printf("%s: per label (threshold 0.5 on the sigmoid)\n  %-24s %9s %8s %9s %8s %8s\n", split, "label",
               "positives", "AUROC", "precision", "recall", "F1");
        for (int k = 0; k < d->classes; k++)
            printf("  %-24s %9lld %8.4f %9.4f %8.4f %8.4f\n", d->class_names[k],
                   (long long)(ln[k].at.tp + ln[k].at.fn), ln[k].auc, ln[k].at.precision, ln[k].at.recall,
                   ln[k].at.fbeta);
        printf("  %-24s %9s %8.4f %9s %8s %8.4f  (mean AUROC over the labels where it is defined)\n", "mean", "",
               sn->auc, "", "", sn->f1);
    }
    return write_label_csv(r, split, ln, sn);
}

/* --loss bce: over the n rows now in r->logits / r->labels (n x L each): loss = mean
 * BCE over all outputs (no pos_weight), acc = fraction of outputs on the right side of
 * 0.5, f1 = mean per-label F1 at 0.5, auc = mean per-label AUROC; per label into ln. */
static int multilabel_numbers(rs *r, int64_t n, split_numbers *out, label_numbers *ln) {
    const int L = r->d->classes;
    double *auc = malloc((size_t)L * sizeof *auc);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    int32_t *t = malloc((size_t)(n ? n : 1) * sizeof *t);
    if (!auc || !p || !t) {
        free(auc);
        free(p);
        free(t);
        return fail_msg("out of memory");
    }
    nc_status st = nc_multilabel_roc_auc(r->ctx, r->logits, r->labels, n, L, auc, &out->auc);
    double bce = 0.0;
    int64_t hits = 0;
    out->f1 = 0.0;
    for (int k = 0; st == NC_OK && k < L; k++) {
        for (int64_t i = 0; i < n; i++) {
            const double z = r->logits[(size_t)i * (size_t)L + (size_t)k];
            t[i] = r->labels[(size_t)i * (size_t)L + (size_t)k];
            p[i] = (float)(1.0 / (1.0 + exp(-z)));
            bce += softplus(t[i] ? -z : z);
            hits += (z >= 0.0) == (t[i] != 0);
        }
        ln[k].auc = auc[k];
        st = nc_threshold_apply(r->ctx, p, t, n, 0.5f, 1.0, &ln[k].at);
        out->f1 += ln[k].at.fbeta / L;
    }
    free(auc);
    free(p);
    free(t);
    if (st != NC_OK) return fail_lib(r->ctx, "computing the per-label metrics", st);
    const double outputs = (double)n * (double)L;
    out->loss = n ? bce / outputs : NAN;
    out->acc = n ? (double)hits / outputs : NAN;
    out->fb = NAN;
    if (!n) out->f1 = NAN;
    return 0;
}

/* Runs m over loader l; fills the per-head metrics into *out (mean over heads, loss
 * summed as the training loss is) and, when rep is given, adds them to the report. */
static int eval_split(rs *r, nc_model *m, nc_loader *l, const char *split, nc_report *rep, split_numbers *out,
                      int64_t *rows) {
    const data *d = r->d;
    const int H = d->heads, K = d->classes;
    int64_t n = 0;
    nc_status st = nc_model_predict_loader(m, l, 0, r->logits, r->labels, r->cap, &n);
    char what[128];
    snprintf(what, sizeof what, "evaluating on the %s split", split);
    if (st != NC_OK) return fail_lib(r->ctx, what, st);
    for (int64_t i = 0; i < n * H * K; i++)
        if (!isfinite(r->logits[i]))
            return fail_msg("%s: the model's outputs are not finite (sample %lld): training has diverged, or "
                            "the inputs are out of range. Try a lower --lr, --clip-grad 1 or --warmup, and check "
                            "--mean/--std; %s",
                            what, (long long)(i / (H * K)), r->committed ? "the last good state is in the run's "
                            "checkpoints" : "no file of the output directory was changed");
    *rows = n;
    if (d->multilabel) {
        label_numbers *ln = malloc((size_t)K * sizeof *ln);
        int rc = ln ? multilabel_numbers(r, n, out, ln) : fail_msg("out of memory");
        if (rc == 0 && rep) rc = report_labels(r, split, rep, ln, out);
        free(ln);
        return rc;
    }
    out->loss = 0.0;
    out->acc = out->f1 = out->fb = 0.0;
    out->auc = NAN;
    for (int h = 0; h < H; h++) {
        nc_metrics *mt = NULL;
        if ((st = nc_metrics_compute(r->ctx, r->logits + (size_t)h * K, H * K, r->labels + h, H, n, K, -100, &mt)) != NC_OK)
            return fail_lib(r->ctx, what, st);
        out->loss += nc_metrics_log_loss(mt);
        out->acc += nc_metrics_top_k(mt, 1) / H;
        out->f1 += nc_metrics_fbeta(mt, NC_METRICS_MACRO, 1.0) / H;
        if (h == 0) out->fb = r->thr_class >= 0 ? nc_metrics_fbeta(mt, r->thr_class, 0.5) : NAN;
        if (rep && (st = nc_report_add_metrics(rep, split, h, mt, h == 0 ? d->class_names : NULL)) != NC_OK) {
            nc_metrics_destroy(mt);
            return fail_lib(r->ctx, "adding metrics to the report", st);
        }
        nc_metrics_destroy(mt);
    }
    return 0;
}

/* Softmax probability of class k of head 0 at temperature T, for every row. */
static void class_scores(const rs *r, int64_t n, int k, float T, float *scores, int32_t *positive) {
    const int H = r->d->heads, K = r->d->classes;
    for (int64_t i = 0; i < n; i++) {
        const float *z = r->logits + (size_t)i * (size_t)H * (size_t)K;
        double mx = z[0], sum = 0.0;
        for (int j = 1; j < K; j++)
            if (z[j] > mx) mx = z[j];
        for (int j = 0; j < K; j++) sum += exp(((double)z[j] - mx) / T);
        scores[i] = (float)(exp(((double)z[k] - mx) / T) / sum);
        positive[i] = r->labels[(size_t)i * (size_t)H] == k;
    }
}

/* Calibration and the decision threshold from the validation logits now in r->logits. */
static int calibrate(rs *r, nc_model *m, int64_t n, nc_report *rep, float *T_out, float *thr_out) {
    const int H = r->d->heads, K = r->d->classes;
    float T = 1.0f;
    char buf[64];
    nc_status st = nc_calibrate_temperature(r->ctx, r->logits, H * K, r->labels, H, n, K, -100, &T);
    if (st != NC_OK) return fail_lib(r->ctx, "calibrating the temperature", st);
    snprintf(buf, sizeof buf, "%.6g", (double)T);
    if ((st = nc_model_set_info(m, "temperature", buf)) != NC_OK) return fail_lib(r->ctx, "storing the temperature", st);
    nc_report_set_number(rep, "temperature", T);
    *T_out = T;
    *thr_out = NAN;
    if (r->thr_class < 0) return 0;
    float *scores = malloc((size_t)(n ? n : 1) * sizeof *scores);
    int32_t *pos = malloc((size_t)(n ? n : 1) * sizeof *pos);
    if (!scores || !pos) {
        free(scores);
        free(pos);
        return fail_msg("out of memory");
    }
    class_scores(r, n, r->thr_class, T, scores, pos);
    float thr = 0.0f;
    nc_binary_stats at;
    st = nc_threshold_select(r->ctx, scores, pos, n,
                             r->c->threshold_precision ? NC_THRESHOLD_TARGET_PRECISION : NC_THRESHOLD_MAX_FBETA,
                             r->c->threshold_value, &thr, &at);
    free(scores);
    free(pos);
    if (st == NC_ERR_NOT_FOUND) {
        fprintf(stderr, PROG ": warning: %s\n", nc_context_last_error(r->ctx));
        return 0;
    }
    if (st != NC_OK) return fail_lib(r->ctx, "choosing the decision threshold", st);
    snprintf(buf, sizeof buf, "%d", r->thr_class);
    if ((st = nc_model_set_info(m, "threshold.class", buf)) == NC_OK) {
        snprintf(buf, sizeof buf, "%.9g", (double)thr);
        st = nc_model_set_info(m, "threshold.value", buf);
    }
    if (st != NC_OK) return fail_lib(r->ctx, "storing the threshold", st);
    nc_report_set_string(rep, "threshold.class", r->d->class_names[r->thr_class]);
    nc_report_set_string(rep, "threshold.rule", r->c->val[OPT_THRESHOLD_RULE]);
    nc_report_set_number(rep, "threshold.value", thr);
    nc_report_set_number(rep, "threshold.val_precision", at.precision);
    nc_report_set_number(rep, "threshold.val_recall", at.recall);
    *thr_out = thr;
    return 0;
}

/* The threshold's held-out numbers on the rows now in r->logits. */
static int threshold_report(rs *r, int64_t n, float T, float thr, const char *split, nc_report *rep) {
    if (r->thr_class < 0 || !isfinite(thr) || n < 1) return 0;
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!scores || !pos) {
        free(scores);
        free(pos);
        return fail_msg("out of memory");
    }
    class_scores(r, n, r->thr_class, T, scores, pos);
    double beta = r->c->threshold_precision ? 0.5 : r->c->threshold_value;
    nc_binary_stats bs;
    nc_status st = nc_threshold_apply(r->ctx, scores, pos, n, thr, beta, &bs);
    free(scores);
    free(pos);
    if (st != NC_OK) return fail_lib(r->ctx, "applying the threshold", st);
    char key[64];
    snprintf(key, sizeof key, "threshold.%s_precision", split);
    nc_report_set_number(rep, key, bs.precision);
    snprintf(key, sizeof key, "threshold.%s_recall", split);
    nc_report_set_number(rep, key, bs.recall);
    snprintf(key, sizeof key, "threshold.%s_fbeta", split);
    nc_report_set_number(rep, key, bs.fbeta);
    if (!r->c->quiet)
        printf("threshold %.4f on class '%s' (%s): %s precision %.4f recall %.4f F%g %.4f\n", (double)thr,
               r->d->class_names[r->thr_class], r->c->val[OPT_THRESHOLD_RULE], split, bs.precision, bs.recall, beta,
               bs.fbeta);
    return 0;
}

static void report_facts(rs *r, nc_report *rep, nc_model *m) {
    const cfg *c = r->c;
    nc_report_set_string(rep, "model", r->j->model);
    nc_report_set_number(rep, "parameters", (double)nc_model_num_params(m));
    nc_report_set_string(rep, "dataset", c->data);
    nc_report_set_number(rep, "classes", r->d->classes);
    nc_report_set_number(rep, "heads", r->d->heads);
    nc_report_set_number(rep, "channels", r->d->channels);
    nc_report_set_number(rep, "image_size", r->d->size);
    nc_report_set_number(rep, "train_images", (double)r->j->n_train);
    nc_report_set_number(rep, "val_images", (double)r->j->n_val);
    nc_report_set_number(rep, "test_images", (double)r->d->n_test);
    if (r->j->fold >= 0) nc_report_set_number(rep, "fold", r->j->fold);
    nc_report_set_string(rep, "loss", r->d->multilabel ? "bce_with_logits (multi-label, sigmoid)" : "cross_entropy");
    if (r->d->multilabel && c->pos_weight && r->t) { /* the weights of this training */
        char buf[4096];
        size_t used = 0;
        buf[0] = '\0';
        for (int k = 0; k < r->d->classes && used < sizeof buf; k++)
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%.6g", k ? "," : "", (double)r->pos_weight[k]);
        nc_report_set_string(rep, "pos_weight", buf);
    }
    nc_report_set_string(rep, "optimizer", c->val[OPT_OPTIMIZER]);
    nc_report_set_number(rep, "lr", c->lr);
    nc_report_set_string(rep, "scheduler", c->val[OPT_SCHEDULER]);
    nc_report_set_number(rep, "epochs", c->epochs);
    nc_report_set_number(rep, "batch_size", c->batch_size);
    nc_report_set_number(rep, "seed", (double)c->seed);
    nc_report_set_string(rep, "backend", nc_backend_name(nc_context_backend(r->ctx)));
    nc_report_set_string(rep, "precision", c->val[OPT_PRECISION]);
    nc_report_set_string(rep, "neurc", nc_version_string());
}

/* Loads best.safetensors and evaluates it: after training (val + test, calibration,
 * threshold; the model file is re-saved with them) or for evaluate/test (one split). */
static int final_eval(rs *r, result *res, const char *report_dir) {
    const cfg *c = r->c;
    nc_model *m = NULL;
    nc_report *rep = NULL;
    nc_history *hist = r->hist;
    int rc = EXIT_FAIL, erc;
    nc_status st;
    if (!file_exists(r->best)) return fail_msg("no %s: nothing trained in %s yet", r->best, r->j->dir);
    if ((st = nc_model_load(r->ctx, r->best, &m)) != NC_OK) return fail_lib(r->ctx, "loading the best model", st);
    if (nc_model_num_outputs(m) != r->d->heads * r->d->classes || nc_model_in_channels(m) != r->d->channels) {
        nc_model_destroy(m);
        return fail_msg("%s has %d outputs and %d input channels; the data needs %d and %d", r->best,
                        nc_model_num_outputs(m), nc_model_in_channels(m), r->d->heads * r->d->classes, r->d->channels);
    }
    const char *kind = nc_model_info(m, "output");
    const int sigmoid = kind && strcmp(kind, "sigmoid") == 0;
    if (sigmoid != r->d->multilabel) {
        nc_model_destroy(m);
        return fail_msg("%s has %s outputs, but this run's --loss is %s", r->best, sigmoid ? "sigmoid (multi-label)" : "softmax",
                        c->val[OPT_LOSS]);
    }
    r->report_dir = report_dir;
    if ((st = nc_report_create(r->ctx, &rep)) != NC_OK) {
        rc = fail_lib(r->ctx, "creating the report", st);
        goto out;
    }
    report_facts(r, rep, m);
    nc_report_set_string(rep, "mode", c->val[OPT_MODE]);
    if (!hist) {
        char csv[4300];
        if (path_join(csv, sizeof csv, r->j->dir, "train_log.csv") == 0 && file_exists(csv) && nc_history_read_csv(r->ctx, csv, &hist) != NC_OK) hist = NULL;
    }
    if (hist && nc_history_count(hist) > 0 && (st = nc_report_set_history(rep, hist)) != NC_OK) {
        rc = fail_lib(r->ctx, "adding the history to the report", st);
        goto out;
    }
    res->params = nc_model_num_params(m);
    split_numbers sn;
    int64_t n = 0;
    float T = 1.0f, thr = NAN;
    const char *tinfo = nc_model_info(m, "temperature"), *thinfo = nc_model_info(m, "threshold.value");
    if (tinfo) T = strtof(tinfo, NULL);
    if (thinfo) thr = strtof(thinfo, NULL);
    int do_val = r->lval && (c->mode != MODE_TEST), do_test = r->ltest && (c->mode != MODE_EVALUATE);
    if (do_val) {
        if ((erc = eval_split(r, m, r->lval, "val", rep, &sn, &n)) != 0) {
            rc = erc;
            goto out;
        }
        res->val_loss = sn.loss;
        res->val_acc = sn.acc;
        res->val_f1 = sn.f1;
        res->val_fb = sn.fb;
        res->val_auc = sn.auc;
        if ((c->mode == MODE_TRAIN || c->mode == MODE_RESUME) && !r->d->multilabel) {
            if (calibrate(r, m, n, rep, &T, &thr)) goto out;
            if ((st = nc_model_save(m, r->best)) != NC_OK) {
                rc = fail_lib(r->ctx, "saving the calibrated model", st);
                goto out;
            }
        } else if (threshold_report(r, n, T, thr, "val", rep)) {
            goto out;
        }
    }
    if (do_test) {
        if ((erc = eval_split(r, m, r->ltest, "test", rep, &sn, &n)) != 0) {
            rc = erc;
            goto out;
        }
        res->test_loss = sn.loss;
        res->test_acc = sn.acc;
        res->test_f1 = sn.f1;
        res->test_fb = sn.fb;
        res->test_auc = sn.auc;
        if (threshold_report(r, n, T, thr, "test", rep)) goto out;
    }
    if (!do_val && !do_test) {
        rc = fail_msg("no %s images to evaluate on (see --val-split, --test-split, --val-data, --test-data)",
                      c->mode == MODE_TEST ? "test" : c->mode == MODE_EVALUATE ? "validation" : "validation or test");
        goto out;
    }
    if ((st = nc_report_write(rep, report_dir)) != NC_OK) {
        rc = fail_lib(r->ctx, "writing the report", st);
        goto out;
    }
    if (!c->quiet) {
        size_t need = 0;
        nc_report_summary(rep, NULL, 0, &need);
        char *text = need ? malloc(need) : NULL;
        if (text && nc_report_summary(rep, text, need, NULL) == NC_OK) fputs(text, stdout);
        free(text);
        printf("report written to %s\n", report_dir);
    }
    rc = 0;
out:
    if (hist != r->hist) nc_history_destroy(hist);
    nc_report_destroy(rep);
    nc_model_destroy(m);
    return rc;
}

/* --------------------------------------------------------------- training */

/* Called before the job's first write: the run's config.json and split.csv, and for
 * `train` (with --force) the previous run's best and average models go, so a stale
 * best cannot survive. Until then a failing run has changed no file. */
static int commit(rs *r) {
    if (r->committed) return 0;
    if (data_commit(r->c, r->d)) return EXIT_FAIL;
    if (r->c->mode == MODE_TRAIN && r->c->rank == 0) {
        remove(r->best);
        remove(r->ema_path);
    }
    r->committed = 1;
    return 0;
}

static int save_last(rs *r, int64_t epoch, int64_t batch, double best, int64_t best_epoch) {
    if (commit(r)) return EXIT_FAIL;
    if (r->c->rank != 0) return 0; /* --distributed: rank 0 writes */
    nc_checkpoint_info info;
    nc_checkpoint_info_init(&info);
    info.epoch = epoch;
    info.batch = batch;
    info.best_metric = best;
    info.best_epoch = best_epoch;
    nc_status st = nc_trainer_save_checkpoint(r->t, r->last, &info);
    if (st != NC_OK) return fail_lib(r->ctx, "saving last.safetensors", st);
    if (r->ema) { /* the average is not part of the trainer's state: its own file */
        nc_ema_swap(r->ema);
        st = nc_model_save(r->m, r->ema_path);
        nc_ema_swap(r->ema);
        if (st != NC_OK) return fail_lib(r->ctx, "saving ema.safetensors", st);
    }
    return 0;
}

/* resume: the checkpoint brings back each group's rate; the rates of this run's
 * options (the saved ones, or --lr, --lr-head, ... given again) replace them, as
 * base rates when a schedule is attached (it keeps its position). */
static int apply_rates(rs *r) {
    const cfg *c = r->c;
    nc_status st = nc_trainer_set_group_lr(r->t, "default", c->lr_backbone >= 0.0f ? c->lr_backbone : c->lr);
    if (st == NC_OK && r->has_head_group)
        st = nc_trainer_set_group_lr(r->t, "head", c->lr_head >= 0.0f ? c->lr_head : c->lr);
    if (st == NC_OK && r->has_early_group) st = nc_trainer_set_group_lr(r->t, "early", c->lr_early);
    return st == NC_OK ? 0 : fail_lib(r->ctx, "setting the learning rates", st);
}

static int set_frozen(rs *r, int frozen) {
    nc_status st = nc_trainer_freeze_group(r->t, "default", frozen);
    if (st == NC_OK && r->has_early_group) st = nc_trainer_freeze_group(r->t, "early", frozen);
    return st == NC_OK ? 0 : fail_lib(r->ctx, "freezing the backbone", st);
}

static int better(int monitor, double v, double best, double min_delta) {
    if (isnan(best)) return 1;
    return monitor == 0 ? v < best - min_delta : v > best + min_delta;
}

static int train_loop(rs *r) {
    const cfg *c = r->c;
    nc_status st;
    int64_t epoch0 = 0, skip = 0, best_epoch = 0;
    double best = NAN;
    if (c->mode == MODE_RESUME) {
        nc_checkpoint_info info;
        nc_checkpoint_info_init(&info);
        if ((st = nc_trainer_load_checkpoint(r->t, r->last, &info)) != NC_OK)
            return fail_lib(r->ctx, "resuming from last.safetensors", st);
        if (apply_rates(r)) return EXIT_FAIL;
        epoch0 = info.epoch;
        skip = info.batch;
        best = info.best_metric;
        best_epoch = info.best_epoch;
        if (r->ema && file_exists(r->ema_path)) {
            nc_ema_swap(r->ema); /* the model's storage is now the average's: load into it */
            st = nc_model_load_weights(r->m, r->ema_path, 1, NULL);
            nc_ema_swap(r->ema);
            if (st != NC_OK) return fail_lib(r->ctx, "loading ema.safetensors", st);
        } else if (r->ema) { /* --ema added on resume: start the average from the loaded weights */
            nc_ema_destroy(r->ema);
            r->ema = NULL;
            if ((st = nc_ema_create(r->m, c->ema, &r->ema)) != NC_OK)
                return fail_lib(r->ctx, "creating the weight average", st);
        }
        if (file_exists(r->csv)) {
            if ((st = nc_history_read_csv(r->ctx, r->csv, &r->hist)) != NC_OK)
                return fail_lib(r->ctx, "reading train_log.csv", st);
            if ((st = nc_history_truncate(r->hist, epoch0)) != NC_OK) return fail_lib(r->ctx, "train_log.csv", st);
        }
        if (!c->quiet)
            printf("%s: resuming after epoch %lld%s (best %s %.4f at epoch %lld)\n", r->j->dir, (long long)epoch0,
                   skip ? " (part-way)" : "", monitor_names[c->monitor], best, (long long)best_epoch);
    }
    if (!r->hist && (st = nc_history_create(r->ctx, &r->hist)) != NC_OK) return fail_lib(r->ctx, "history", st);

    progress p = {.tty = isatty(2), .quiet = c->quiet, .log_every = c->log_every};
    const int64_t nb = nc_loader_num_batches(r->ltrain);
    for (int64_t e = epoch0 + 1; e <= c->epochs; e++) {
        if (c->freeze_epochs > 0 && set_frozen(r, e <= c->freeze_epochs)) return EXIT_FAIL;
        if ((st = nc_loader_start_epoch(r->ltrain, e - 1)) != NC_OK) return fail_lib(r->ctx, "loading images", st);
        double t0 = now_seconds(), loss_sum = 0.0;
        int64_t correct = 0, total = 0, images = 0, counted = 0, skipped = 0;
        progress_start_epoch(&p, e, c->epochs, nb);
        for (int64_t b = 0;; b++) {
            nc_batch batch;
            if ((st = nc_loader_next(r->ltrain, &batch)) != NC_OK) {
                progress_end_epoch(&p);
                return fail_lib(r->ctx, "loading images", st);
            }
            if (batch.n == 0) break;
            if (b < skip) continue; /* already trained before the interruption */
            nc_step_stats s;
            st = nc_trainer_step(r->t, batch.x, batch.labels, batch.n, batch.c, batch.h, batch.w, &s);
            if (st != NC_OK) {
                progress_end_epoch(&p);
                if (st == NC_ERR_NUMERIC)
                    return fail_msg("training stopped in epoch %lld, its loss or gradients are not finite (%s): "
                                    "it diverged, or the inputs are out of range. Try a lower --lr, --clip-grad 1 "
                                    "or --warmup, and check --mean/--std; %s", (long long)e,
                                    nc_context_last_error(r->ctx),
                                    r->committed ? "the checkpoints of the last finished epoch are kept"
                                                 : "no file of the output directory was changed");
                return fail_lib(r->ctx, "training step", st);
            }
            if (s.skipped) skipped++;
            else {
                loss_sum += (double)s.loss * batch.n;
                correct += s.correct;
                total += s.total;
                counted += batch.n;
            }
            images += batch.n;
            if (r->ema && s.updated && (st = nc_ema_update(r->ema)) != NC_OK)
                return fail_lib(r->ctx, "updating the weight average", st);
            progress_batch(&p, b + 1, counted ? loss_sum / (double)counted : NAN,
                           total ? (double)correct / (double)total : NAN, images);
            const int stop = dist_any(c, r->ctx, g_interrupted); /* --distributed: all stop at one batch */
            if (stop < 0) return EXIT_FAIL;
            if (stop) {
                progress_end_epoch(&p);
                if (save_last(r, e - 1, b + 1, best, best_epoch)) return EXIT_FAIL;
                fprintf(stderr, PROG ": interrupted in epoch %lld after batch %lld; saved %s (continue with `"
                                PROG " resume --output-dir %s`)\n",
                        (long long)e, (long long)b + 1, r->last, c->out);
                return EXIT_INTERRUPTED;
            }
        }
        skip = 0;
        progress_end_epoch(&p);
        double secs = now_seconds() - t0;
        if (skipped) fprintf(stderr, PROG ": warning: %lld updates skipped for non-finite values in epoch %lld\n",
                             (long long)skipped, (long long)e);

        nc_epoch_record rec;
        nc_epoch_record_init(&rec);
        rec.epoch = e;
        rec.train_loss = counted ? loss_sum / (double)counted : NAN;
        rec.train_acc = total ? (double)correct / (double)total : NAN;
        rec.seconds = secs;
        rec.images_per_sec = secs > 0 ? (double)images * c->ranks / secs : NAN;
        float lr = 0.0f;
        nc_trainer_group_lr(r->t, "default", &lr);
        rec.lr = lr;
        double f1 = NAN, auc = NAN;
        if (r->lval) { /* --distributed: rank 0 evaluates the whole split and shares the numbers */
            split_numbers sn = {NAN, NAN, NAN, NAN, NAN};
            int64_t n;
            if (r->ema) nc_ema_swap(r->ema);
            int bad = c->rank == 0 ? eval_split(r, r->m, r->lval, "val", NULL, &sn, &n) : 0;
            if (r->ema) nc_ema_swap(r->ema);
            if (bad == EXIT_INTERRUPTED) { /* Ctrl-C during validation: keep the trained epoch */
                if (save_last(r, e - 1, nb, best, best_epoch)) return EXIT_FAIL;
                fprintf(stderr, PROG ": epoch %lld was trained, not yet validated; saved %s (continue with `" PROG
                                " resume --output-dir %s`)\n",
                        (long long)e, r->last, c->out);
                return EXIT_INTERRUPTED;
            }
            double v[4] = {sn.loss, sn.acc, sn.f1, sn.auc};
            if (bad || dist_share(c, r->ctx, v, 4)) return EXIT_FAIL;
            rec.val_loss = v[0];
            rec.val_acc = v[1];
            f1 = v[2];
            auc = v[3];
        }
        const double monitored[4] = {rec.val_loss, rec.val_acc, f1, auc};
        double metric = !r->lval ? rec.train_loss : monitored[c->monitor];
        int mon = r->lval ? c->monitor : 0;
        int improved = isfinite(metric) && better(mon, metric, best, c->min_delta);
        if (improved) {
            best = metric;
            best_epoch = e;
            if (commit(r)) return EXIT_FAIL;
            if (r->ema) nc_ema_swap(r->ema);
            st = c->rank == 0 ? nc_model_save(r->m, r->best) : NC_OK;
            if (r->ema) nc_ema_swap(r->ema);
            if (st != NC_OK) return fail_lib(r->ctx, "saving best.safetensors", st);
        }
        if (r->s && (st = nc_schedule_step(r->s, isfinite(metric) ? (float)metric : 0.0f)) != NC_OK)
            return fail_lib(r->ctx, "stepping the schedule", st);
        if ((st = nc_history_add(r->hist, &rec)) != NC_OK) return fail_lib(r->ctx, "history", st);
        if (save_last(r, e, 0, best, best_epoch)) return EXIT_FAIL;
        if (c->rank == 0 && ((st = nc_history_write_csv(r->hist, r->csv)) != NC_OK ||
                             (st = nc_history_write_json(r->hist, r->json)) != NC_OK))
            return fail_lib(r->ctx, "writing the training log", st);
        if (!c->quiet) {
            printf("epoch %lld/%lld  train loss %.4f acc %.4f", (long long)e, (long long)c->epochs, rec.train_loss,
                   rec.train_acc);
            if (r->lval && r->d->multilabel)
                printf("  val loss %.4f acc %.4f F1 %.4f AUROC %.4f", rec.val_loss, rec.val_acc, f1, auc);
            else if (r->lval) printf("  val loss %.4f acc %.4f F1 %.4f", rec.val_loss, rec.val_acc, f1);
            printf("  lr %.3g  %.1f s  %.0f img/s%s\n", rec.lr, secs, rec.images_per_sec, improved ? "  *best" : "");
            fflush(stdout);
        }
        if (c->early_stopping > 0 && e - best_epoch >= c->early_stopping) {
            if (!c->quiet)
                printf("early stopping: no improvement of %s for %d epochs (best %.4f at epoch %lld)\n",
                       r->lval ? monitor_names[c->monitor] : "train_loss", c->early_stopping, best, (long long)best_epoch);
            break;
        }
        const int stop = dist_any(c, r->ctx, g_interrupted);
        if (stop < 0) return EXIT_FAIL;
        if (stop) {
            fprintf(stderr, PROG ": interrupted after epoch %lld; continue with `" PROG " resume --output-dir %s`\n",
                    (long long)e, c->out);
            return EXIT_INTERRUPTED;
        }
    }
    return 0;
}

static void rs_free(rs *r) {
    nc_loader_destroy(r->ltrain);
    nc_loader_destroy(r->lval);
    nc_loader_destroy(r->ltest);
    nc_transform_destroy(r->ttrain);
    nc_transform_destroy(r->teval);
    nc_ema_destroy(r->ema);
    nc_trainer_destroy(r->t);
    nc_schedule_destroy(r->s);
    nc_model_destroy(r->m);
    nc_history_destroy(r->hist);
    free(r->logits);
    free(r->labels);
}

int run_job(const cfg *c, nc_context *ctx, data *d, const job *j, result *res) {
    rs r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.ctx = ctx;
    r.d = d;
    r.j = j;
    snprintf(res->model, sizeof res->model, "%s", j->model);
    if (path_join(r.last, sizeof r.last, j->dir, "last.safetensors")) return EXIT_FAIL;
    if (path_join(r.best, sizeof r.best, j->dir, "best.safetensors")) return EXIT_FAIL;
    if (path_join(r.ema_path, sizeof r.ema_path, j->dir, "ema.safetensors")) return EXIT_FAIL;
    if (path_join(r.csv, sizeof r.csv, j->dir, "train_log.csv")) return EXIT_FAIL;
    if (path_join(r.json, sizeof r.json, j->dir, "train_log.json")) return EXIT_FAIL;
    int rc = EXIT_FAIL;
    if (threshold_class(&r)) goto out;
    if (c->mode == MODE_TRAIN || c->mode == MODE_RESUME) {
        if (c->mode == MODE_TRAIN && file_exists(r.last) && !c->force) {
            rc = fail_msg("%s already holds a checkpoint; continue it with `resume`, or start over with --force",
                          j->dir);
            goto out;
        }
        if (c->mode == MODE_RESUME && !file_exists(r.last) && !file_exists(j->dir) &&
            (j->fold >= 0 || c->num_models > 1)) {
            /* a fold or model the interrupted run never reached: start it now */
            cfg fresh = *c;
            fresh.mode = MODE_TRAIN;
            if (!c->quiet) printf("%s: not started before; training it from scratch\n", j->dir);
            rc = run_job(&fresh, ctx, d, j, res);
            goto out;
        }
        if (c->mode == MODE_RESUME && !file_exists(r.last)) {
            rc = fail_msg("no checkpoint to resume: %s does not exist (start with `" PROG " train`)", r.last);
            goto out;
        }
        if (make_dirs(j->dir) != 0) {
            rc = fail_msg("cannot create %s: %s", j->dir, strerror(errno));
            goto out;
        }
        if (make_model(&r) || store_metadata(&r, r.m)) goto out;
        if (c->mode == MODE_TRAIN && c->val[OPT_PRETRAINED][0]) {
            nc_pretrained_options po;
            nc_pretrained_options_init(&po);
            po.adapt = c->adapt ? NC_ADAPT_RGB_MEAN : NC_ADAPT_RGB_NORMAL;
            po.seed = c->seed;
            nc_load_report lr;
            memset(&lr, 0, sizeof lr);
            lr.struct_size = sizeof lr;
            nc_status st = nc_model_load_pretrained(r.m, c->val[OPT_PRETRAINED], &po, &lr);
            if (st != NC_OK) {
                rc = fail_lib(ctx, "loading --pretrained", st);
                goto out;
            }
            if (!c->quiet)
                printf("pretrained: %d tensors loaded, %d kept fresh (%s)\n", lr.loaded, lr.missing + lr.mismatched,
                       lr.text[0] ? lr.text : "all matched");
        }
        if (check_val_auroc(&r) || make_trainer(&r) || make_loaders(&r, 1, 1, 1)) goto out;
        res->params = nc_model_num_params(r.m);
        if (!c->quiet)
            printf("%s: %s, %lld parameters, %lld train / %lld val / %lld test images of %dx%d, %lld batches/epoch, "
                   "backend %s\n",
                   j->dir, j->model, (long long)res->params, (long long)j->n_train, (long long)j->n_val,
                   (long long)d->n_test, d->size, d->size, (long long)nc_loader_num_batches(r.ltrain),
                   nc_backend_name(nc_context_backend(ctx)));
        double t0 = now_seconds();
        rc = train_loop(&r);
        res->seconds = now_seconds() - t0;
        res->epochs_done = nc_history_count(r.hist);
        if (rc != 0) goto out;
        rc = c->rank == 0 ? final_eval(&r, res, j->dir) : 0; /* --distributed: rank 0 evaluates */
    } else {
        if (make_loaders(&r, 0, c->mode == MODE_EVALUATE, c->mode == MODE_TEST)) goto out;
        char dir[4300];
        if (path_join(dir, sizeof dir, j->dir, c->mode == MODE_TEST ? "test" : "evaluate")) goto out;
        rc = c->rank == 0 ? final_eval(&r, res, dir) : 0;
    }
out:
    rs_free(&r);
    return rc;
}
