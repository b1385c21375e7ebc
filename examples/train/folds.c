/* folds.c — the runs one nc-train call makes: one per model of --model a,b,c (each in
 * <out>/<model>/ when there are several) and, with --folds K, one per fold
 * (<dir>/fold-<i>/, validated on fold i of the stratified k-fold over the train+val
 * part). Prints the per-fold table with mean ± sample std (ddof = 1) and the model
 * comparison, and writes folds.json/csv and comparison.json/csv. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Mean and sample standard deviation (ddof = 1) of the finite values; NaN when none
 * (std: NaN with fewer than two). */
static void mean_std(const double *v, int n, double *mean, double *std) {
    double s = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            s += v[i];
            k++;
        }
    *mean = k ? s / k : NAN;
    double q = 0.0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) q += (v[i] - *mean) * (v[i] - *mean);
    *std = k > 1 ? sqrt(q / (k - 1)) : NAN;
}

static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fprintf(f, "null");
}

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.17g", v);
}

/* The columns shared by the fold and comparison files (the AUROC columns, mean
 * per-label AUROC of --loss bce, came later: last, empty for softmax runs). */
#define N_COLS 11
static const char *const col_names[N_COLS] = {"val_loss",  "val_acc",  "val_f1",     "val_fbeta",
                                              "test_loss", "test_acc", "test_f1",    "test_fbeta",
                                              "seconds",   "val_auroc", "test_auroc"};
static void cols(const result *r, double *v) {
    v[0] = r->val_loss;
    v[1] = r->val_acc;
    v[2] = r->val_f1;
    v[3] = r->val_fb;
    v[4] = r->test_loss;
    v[5] = r->test_acc;
    v[6] = r->test_f1;
    v[7] = r->test_fb;
    v[8] = r->seconds;
    v[9] = r->val_auc;
    v[10] = r->test_auc;
}

static int write_folds(const char *dir, const result *res, int k) {
    char path[4300], tmp[4400];
    double v[N_COLS], m[N_COLS], s[N_COLS], *col = malloc((size_t)k * sizeof *col);
    if (!col) return fail_msg("out of memory");
    for (int c = 0; c < N_COLS; c++) {
        for (int i = 0; i < k; i++) {
            cols(&res[i], v);
            col[i] = v[c];
        }
        mean_std(col, k, &m[c], &s[c]);
    }
    free(col);
    if (path_join(path, sizeof path, dir, "folds.csv") || path_join(tmp, sizeof tmp, dir, "folds.csv.tmp")) return EXIT_FAIL;
    FILE *f = fopen(tmp, "w");
    if (!f) return fail_msg("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "fold,epochs");
    for (int c = 0; c < N_COLS; c++) fprintf(f, ",%s", col_names[c]);
    fprintf(f, "\n");
    for (int i = 0; i < k; i++) {
        cols(&res[i], v);
        fprintf(f, "%d,%lld", i, (long long)res[i].epochs_done);
        for (int c = 0; c < N_COLS; c++) {
            fputc(',', f);
            csv_num(f, v[c]);
        }
        fprintf(f, "\n");
    }
    const char *agg[2] = {"mean", "std"};
    for (int a = 0; a < 2; a++) {
        fprintf(f, "%s,", agg[a]);
        for (int c = 0; c < N_COLS; c++) {
            fputc(',', f);
            csv_num(f, a ? s[c] : m[c]);
        }
        fprintf(f, "\n");
    }
    if (close_atomic(f, tmp, path)) return EXIT_FAIL;

    if (path_join(path, sizeof path, dir, "folds.json") || path_join(tmp, sizeof tmp, dir, "folds.json.tmp")) return EXIT_FAIL;
    if (!(f = fopen(tmp, "w"))) return fail_msg("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "{\n  \"k\": %d,\n  \"std\": \"sample standard deviation (ddof = 1)\",\n  \"folds\": [\n", k);
    for (int i = 0; i < k; i++) {
        cols(&res[i], v);
        fprintf(f, "    {\"fold\": %d, \"epochs\": %lld", i, (long long)res[i].epochs_done);
        for (int c = 0; c < N_COLS; c++) {
            fprintf(f, ", \"%s\": ", col_names[c]);
            json_num(f, v[c]);
        }
        fprintf(f, "}%s\n", i + 1 < k ? "," : "");
    }
    fprintf(f, "  ],\n");
    for (int a = 0; a < 2; a++) {
        fprintf(f, "  \"%s\": {", agg[a]);
        for (int c = 0; c < N_COLS; c++) {
            fprintf(f, "%s\"%s\": ", c ? ", " : "", col_names[c]);
            json_num(f, a ? s[c] : m[c]);
        }
        fprintf(f, "}%s\n", a ? "" : ",");
    }
    fprintf(f, "}\n");
    return close_atomic(f, tmp, path);
}

static void print_pm(const double *v, int n) {
    double m, s;
    mean_std(v, n, &m, &s);
    if (isfinite(s)) printf("  %.4f ± %.4f", m, s);
    else printf("  %.4f", m);
}

static void print_folds(const result *res, int k, int fbeta, int auroc) {
    printf("\n%-6s %6s %9s %9s %9s%s%s %9s %9s\n", "fold", "epochs", "val_loss", "val_acc", "val_F1",
           fbeta ? "   val_F0.5" : "", auroc ? " val_AUROC" : "", "test_acc", "seconds");
    double *col = malloc((size_t)k * 5 * sizeof *col);
    for (int i = 0; i < k; i++) {
        printf("%-6d %6lld %9.4f %9.4f %9.4f", i, (long long)res[i].epochs_done, res[i].val_loss, res[i].val_acc,
               res[i].val_f1);
        if (fbeta) printf(" %10.4f", res[i].val_fb);
        if (auroc) printf(" %9.4f", res[i].val_auc);
        printf(" %9.4f %9.1f\n", res[i].test_acc, res[i].seconds);
        if (col) {
            col[i] = res[i].val_acc;
            col[k + i] = res[i].val_loss;
            col[2 * k + i] = res[i].val_f1;
            col[3 * k + i] = res[i].val_fb;
            col[4 * k + i] = res[i].val_auc;
        }
    }
    if (!col) return;
    printf("mean ± std over %d folds (sample std, ddof = 1):\n  val_acc", k);
    print_pm(col, k);
    printf("\n  val_loss");
    print_pm(col + k, k);
    printf("\n  val_F1");
    print_pm(col + 2 * k, k);
    if (fbeta) {
        printf("\n  val_F0.5");
        print_pm(col + 3 * k, k);
    }
    if (auroc) {
        printf("\n  val_AUROC (mean over labels)");
        print_pm(col + 4 * k, k);
    }
    printf("\n");
    free(col);
}

/* One model: a single run or K folds; *out gets the run's (or the folds' mean) numbers. */
static int run_model(const cfg *c, nc_context *ctx, data *d, const char *model, const char *dir, result *out) {
    result_init(out);
    snprintf(out->model, sizeof out->model, "%s", model);
    if (c->folds < 2) {
        job j = {.dir = dir, .model = model, .train_idx = d->train_idx, .n_train = d->n_train,
                 .val_idx = d->val_ds ? NULL : d->val_idx, .n_val = d->n_val, .fold = -1};
        return run_job(c, ctx, d, &j, out);
    }
    const int K = c->folds;
    const int64_t n = d->n_trainval;
    int32_t *labels = malloc((size_t)n * sizeof *labels), *fold = malloc((size_t)n * sizeof *fold);
    int64_t *tr = malloc((size_t)n * sizeof *tr), *va = malloc((size_t)n * sizeof *va);
    result *res = calloc((size_t)K, sizeof *res);
    int rc = EXIT_FAIL;
    if (!labels || !fold || !tr || !va || !res) {
        rc = fail_msg("out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n; i++) labels[i] = d->labels0[d->trainval_idx[i]];
    nc_status st = nc_split_kfold(ctx, labels, n, K, c->seed, fold);
    if (st != NC_OK) {
        rc = fail_lib(ctx, "making the folds", st);
        goto out;
    }
    for (int f = 0; f < K; f++) {
        int64_t nt = 0, nv = 0;
        for (int64_t i = 0; i < n; i++) {
            if (fold[i] == f) va[nv++] = d->trainval_idx[i];
            else tr[nt++] = d->trainval_idx[i];
        }
        char fdir[4300], name[32];
        snprintf(name, sizeof name, "fold-%d", f);
        if (path_join(fdir, sizeof fdir, dir, name)) goto out;
        if (!c->quiet) printf("\n== %s fold %d/%d: %lld train, %lld val ==\n", model, f + 1, K, (long long)nt, (long long)nv);
        job j = {.dir = fdir, .model = model, .train_idx = tr, .n_train = nt, .val_idx = va, .n_val = nv, .fold = f};
        result_init(&res[f]);
        if ((rc = run_job(c, ctx, d, &j, &res[f])) != 0) goto out;
    }
    print_folds(res, K, c->threshold_class != NULL, c->loss);
    if ((c->mode == MODE_TRAIN || c->mode == MODE_RESUME) && (rc = write_folds(dir, res, K)) != 0) goto out;
    /* the model's numbers for a comparison: the means over folds */
    double v[N_COLS], m[N_COLS], s, *col = malloc((size_t)K * sizeof *col);
    if (!col) {
        rc = fail_msg("out of memory");
        goto out;
    }
    for (int cc = 0; cc < N_COLS; cc++) {
        for (int i = 0; i < K; i++) {
            cols(&res[i], v);
            col[i] = v[cc];
        }
        mean_std(col, K, &m[cc], &s);
    }
    free(col);
    out->val_loss = m[0];
    out->val_acc = m[1];
    out->val_f1 = m[2];
    out->val_fb = m[3];
    out->test_loss = m[4];
    out->test_acc = m[5];
    out->test_f1 = m[6];
    out->test_fb = m[7];
    out->val_auc = m[9];
    out->test_auc = m[10];
    for (int i = 0; i < K; i++) out->seconds += res[i].seconds;
    out->params = res[0].params;
    rc = 0;
out:
    free(labels);
    free(fold);
    free(tr);
    free(va);
    free(res);
    return rc;
}

static int write_comparison(const char *dir, const result *res, int n) {
    char path[4300], tmp[4400];
    double v[N_COLS];
    if (path_join(path, sizeof path, dir, "comparison.csv") || path_join(tmp, sizeof tmp, dir, "comparison.csv.tmp")) return EXIT_FAIL;
    FILE *f = fopen(tmp, "w");
    if (!f) return fail_msg("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "model,parameters");
    for (int c = 0; c < N_COLS; c++) fprintf(f, ",%s", col_names[c]);
    fprintf(f, "\n");
    for (int i = 0; i < n; i++) {
        cols(&res[i], v);
        fprintf(f, "%s,%lld", res[i].model, (long long)res[i].params);
        for (int c = 0; c < N_COLS; c++) {
            fputc(',', f);
            csv_num(f, v[c]);
        }
        fprintf(f, "\n");
    }
    if (close_atomic(f, tmp, path)) return EXIT_FAIL;
    if (path_join(path, sizeof path, dir, "comparison.json") || path_join(tmp, sizeof tmp, dir, "comparison.json.tmp")) return EXIT_FAIL;
    if (!(f = fopen(tmp, "w"))) return fail_msg("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "[\n");
    for (int i = 0; i < n; i++) {
        cols(&res[i], v);
        fprintf(f, "  {\"model\": \"%s\", \"parameters\": %lld", res[i].model, (long long)res[i].params);
        for (int c = 0; c < N_COLS; c++) {
            fprintf(f, ", \"%s\": ", col_names[c]);
            json_num(f, v[c]);
        }
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "]\n");
    return close_atomic(f, tmp, path);
}

int run_all(const cfg *c, nc_context *ctx, data *d) {
    result res[16];
    int rc = 0;
    for (int i = 0; i < c->num_models; i++) {
        char dir[4300];
        if (c->num_models > 1) {
            if (path_join(dir, sizeof dir, c->out, c->models[i])) return EXIT_FAIL;
        } else {
            snprintf(dir, sizeof dir, "%s", c->out);
        }
        if (c->num_models > 1 && !c->quiet) printf("\n==== model %d/%d: %s ====\n", i + 1, c->num_models, c->models[i]);
        if ((rc = run_model(c, ctx, d, c->models[i], dir, &res[i])) != 0) return rc;
    }
    if (c->num_models < 2) return 0;
    printf("\n%-20s %12s %9s %9s %9s %9s %9s %9s %10s%s\n", "model", "parameters", "val_loss", "val_acc", "val_F1",
           "test_loss", "test_acc", "test_F1", "seconds", c->loss ? "  val_AUROC test_AUROC" : "");
    for (int i = 0; i < c->num_models; i++) {
        const result *r = &res[i];
        printf("%-20s %12lld %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %10.1f", r->model, (long long)r->params,
               r->val_loss, r->val_acc, r->val_f1, r->test_loss, r->test_acc, r->test_f1, r->seconds);
        if (c->loss) printf("  %9.4f %10.4f", r->val_auc, r->test_auc);
        printf("\n");
    }
    printf(c->loss ? "(--loss bce: F1 and AUROC are means over the labels, F1 at 0.5)\n"
                   : "(F1: macro average over classes, mean over heads)\n");
    if (c->folds >= 2) printf("(val/test numbers are means over %d folds)\n", c->folds);
    if (c->mode != MODE_TRAIN && c->mode != MODE_RESUME) return 0; /* keep the training's files */
    return write_comparison(c->out, res, c->num_models);
}
