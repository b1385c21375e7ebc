/* report.c — a run's report (nc_report): run facts, the epoch history and a copy of
 * the metrics of every evaluated split/head, written as report.json, summary.txt (in
 * the manner of scikit-learn's classification_report) and SVG figures. */
#include "eval/svg.h"
#include "eval/history.h"
#include "core/text.h"
#include "core/context.h"
#include "core/json.h"
#include "io/file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define ECE_BINS 15
#define SUMMARY_NAME_CP 30 /* class names in summary.txt are cut to this many characters */

typedef struct fact {
    char *key;
    char *str; /* NULL: a number */
    double num;
} fact;

typedef struct entry {
    char *split, *file_tag; /* file_tag: the split made safe for a file name, + _h<head> */
    int head, K;
    int64_t count;
    double top1, top5, bal, log_loss, ece;
    double prec[2], rec[2], f1[2], roc[2]; /* [0] macro, [1] weighted */
    double f05_macro;
    char **names;                     /* (K) owned copies, NULL entries when none given */
    double *cp, *cr, *cf1, *croc;     /* (K) per class */
    int64_t *support;                 /* (K) true samples per class */
    int64_t *cm;                      /* (K, K) truth row, prediction column */
} entry;

struct nc_report {
    nc_context *ctx;
    fact *facts;
    size_t nfacts, cap_facts;
    nc_history *hist; /* owned copy, NULL until set */
    entry *ent;
    size_t nent, cap_ent;
};

nc_status nc_report_create(nc_context *ctx, nc_report **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_report_create: out is NULL");
    *out = NULL;
    nc_report *r = nc__calloc(ctx, 1, sizeof *r);
    if (!r) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_report_create: out of memory");
    r->ctx = ctx;
    *out = r;
    return NC_OK;
}

static void entry_free(nc_context *ctx, entry *e) {
    if (e->names)
        for (int i = 0; i < e->K; i++) nc__free(ctx, e->names[i]);
    nc__free(ctx, e->names);
    nc__free(ctx, e->split);
    nc__free(ctx, e->file_tag);
    nc__free(ctx, e->cp);
    nc__free(ctx, e->cr);
    nc__free(ctx, e->cf1);
    nc__free(ctx, e->croc);
    nc__free(ctx, e->support);
    nc__free(ctx, e->cm);
    memset(e, 0, sizeof *e);
}

void nc_report_destroy(nc_report *r) {
    if (!r) return;
    nc_context *ctx = r->ctx;
    for (size_t i = 0; i < r->nfacts; i++) {
        nc__free(ctx, r->facts[i].key);
        nc__free(ctx, r->facts[i].str);
    }
    nc__free(ctx, r->facts);
    for (size_t i = 0; i < r->nent; i++) entry_free(ctx, &r->ent[i]);
    nc__free(ctx, r->ent);
    nc_history_destroy(r->hist);
    nc__free(ctx, r);
}

/* ------------------------------------------------------------------ facts */

static nc_status set_fact(nc_report *r, const char *fn, const char *key, const char *str, double num) {
    if (!r) return NC_ERR_NULL;
    if (!key) return nc__error(r->ctx, NC_ERR_NULL, "%s: key is NULL", fn);
    if (key[0] == 0) return nc__error(r->ctx, NC_ERR_INVALID_ARGUMENT, "%s: the key is empty", fn);
    char *copy = NULL;
    if (str) {
        copy = nc__strdup(r->ctx, str);
        if (!copy) return nc__error(r->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    for (size_t i = 0; i < r->nfacts; i++)
        if (strcmp(r->facts[i].key, key) == 0) {
            nc__free(r->ctx, r->facts[i].str);
            r->facts[i].str = copy;
            r->facts[i].num = num;
            return NC_OK;
        }
    char *k = nc__strdup(r->ctx, key);
    if (!k || nc__grow(r->ctx, (void **)&r->facts, sizeof *r->facts, &r->cap_facts, r->nfacts + 1) != 0) {
        nc__free(r->ctx, k);
        nc__free(r->ctx, copy);
        return nc__error(r->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    r->facts[r->nfacts++] = (fact){k, copy, num};
    return NC_OK;
}

nc_status nc_report_set_string(nc_report *r, const char *key, const char *value) {
    if (r && !value) return nc__error(r->ctx, NC_ERR_NULL, "nc_report_set_string: value of \"%s\" is NULL",
                                      key ? key : "(null)");
    return set_fact(r, "nc_report_set_string", key, value, 0);
}

nc_status nc_report_set_number(nc_report *r, const char *key, double value) {
    return set_fact(r, "nc_report_set_number", key, NULL, value);
}

nc_status nc_report_set_history(nc_report *r, const nc_history *h) {
    if (!r) return NC_ERR_NULL;
    if (!h) return nc__error(r->ctx, NC_ERR_NULL, "nc_report_set_history: history is NULL");
    int64_t n;
    const nc_epoch_record *rec = nc__history_records(h, &n);
    nc_history *copy = NULL;
    nc_status st = nc__history_from(r->ctx, rec, n, &copy);
    if (st != NC_OK) return st;
    nc_history_destroy(r->hist);
    r->hist = copy;
    return NC_OK;
}

/* ---------------------------------------------------------------- metrics */

/* The split name with every byte outside [A-Za-z0-9._-] replaced by '_', plus
 * "_h<head>" for heads other than 0. */
static char *file_tag(nc_context *ctx, const char *split, int head) {
    size_t n = strlen(split);
    char *t = nc__alloc(ctx, n + 16);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = split[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 (c == '.' && i > 0);
        t[i] = ok ? c : '_';
    }
    t[n] = 0;
    if (head != 0) snprintf(t + n, 16, "_h%d", head);
    return t;
}

nc_status nc_report_add_metrics(nc_report *r, const char *split, int head, const nc_metrics *m,
                                const char *const *class_names) {
    if (!r) return NC_ERR_NULL;
    nc_context *ctx = r->ctx;
    if (!split || !m)
        return nc__error(ctx, NC_ERR_NULL, "nc_report_add_metrics: %s is NULL", split ? "metrics" : "split");
    if (split[0] == 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_report_add_metrics: the split name is empty");
    if (head < 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_report_add_metrics: head %d < 0", head);
    int K = nc_metrics_num_classes(m);
    if (K < 2) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_report_add_metrics: the metrics have %d classes", K);
    for (size_t i = 0; i < r->nent; i++)
        if (r->ent[i].head == head && strcmp(r->ent[i].split, split) == 0)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                             "nc_report_add_metrics: split \"%s\" head %d was already added", split, head);

    nc_status st = NC_OK;
    entry e;
    memset(&e, 0, sizeof e);
    e.K = K;
    e.head = head;
    e.split = nc__strdup(ctx, split);
    e.file_tag = file_tag(ctx, split, head);
    e.names = nc__calloc(ctx, (size_t)K, sizeof *e.names);
    e.cp = nc__alloc(ctx, (size_t)K * sizeof *e.cp);
    e.cr = nc__alloc(ctx, (size_t)K * sizeof *e.cr);
    e.cf1 = nc__alloc(ctx, (size_t)K * sizeof *e.cf1);
    e.croc = nc__alloc(ctx, (size_t)K * sizeof *e.croc);
    e.support = nc__alloc(ctx, (size_t)K * sizeof *e.support);
    e.cm = nc__alloc(ctx, (size_t)K * (size_t)K * sizeof *e.cm);
    if (!e.split || !e.file_tag || !e.names || !e.cp || !e.cr || !e.cf1 || !e.croc || !e.support || !e.cm) goto oom;
    for (size_t i = 0; i < r->nent; i++)
        if (strcmp(r->ent[i].file_tag, e.file_tag) == 0) {
            st = nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                           "nc_report_add_metrics: split \"%s\" head %d would share the file names of split \"%s\" "
                           "head %d (\"%s\")",
                           split, head, r->ent[i].split, r->ent[i].head, e.file_tag);
            goto fail;
        }
    if (class_names)
        for (int i = 0; i < K; i++)
            if (class_names[i] && !(e.names[i] = nc__strdup(ctx, class_names[i]))) goto oom;

    e.count = nc_metrics_count(m);
    int64_t hits = 0;
    for (int t = 0; t < K; t++) {
        int64_t row = 0;
        for (int p = 0; p < K; p++) {
            int64_t c = nc_metrics_confusion(m, t, p);
            e.cm[(size_t)t * K + p] = c;
            row += c;
        }
        hits += e.cm[(size_t)t * K + t];
        e.support[t] = row;
        e.cp[t] = nc_metrics_precision(m, t);
        e.cr[t] = nc_metrics_recall(m, t);
        e.cf1[t] = nc_metrics_fbeta(m, t, 1.0);
        e.croc[t] = nc_metrics_roc_auc(m, t);
    }
    e.top1 = e.count > 0 ? (double)hits / (double)e.count : NAN;
    e.top5 = K > 5 ? nc_metrics_top_k(m, 5) : NAN;
    const int avg[2] = {NC_METRICS_MACRO, NC_METRICS_WEIGHTED};
    for (int a = 0; a < 2; a++) {
        e.prec[a] = e.count > 0 ? nc_metrics_precision(m, avg[a]) : NAN;
        e.rec[a] = e.count > 0 ? nc_metrics_recall(m, avg[a]) : NAN;
        e.f1[a] = e.count > 0 ? nc_metrics_fbeta(m, avg[a], 1.0) : NAN;
        e.roc[a] = nc_metrics_roc_auc(m, avg[a]);
    }
    e.f05_macro = e.count > 0 ? nc_metrics_fbeta(m, NC_METRICS_MACRO, 0.5) : NAN;
    e.bal = nc_metrics_balanced_accuracy(m);
    e.log_loss = nc_metrics_log_loss(m);
    e.ece = nc_metrics_ece(m, ECE_BINS);

    if (nc__grow(ctx, (void **)&r->ent, sizeof *r->ent, &r->cap_ent, r->nent + 1) != 0) goto oom;
    r->ent[r->nent++] = e;
    return NC_OK;
oom:
    st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_report_add_metrics: out of memory");
fail:
    entry_free(ctx, &e);
    return st;
}

/* ------------------------------------------------------------------- JSON */

static void entry_json(nc__jw *w, const entry *e) {
    nc__jw_object(w, NULL);
    nc__jw_str(w, "split", e->split);
    const struct {
        const char *key;
        double v;
    } nums[] = {{"head", e->head},
                {"classes", e->K},
                {"count", (double)e->count},
                {"top1", e->top1},
                {"top5", e->top5},
                {"precision_macro", e->prec[0]},
                {"recall_macro", e->rec[0]},
                {"f1_macro", e->f1[0]},
                {"precision_weighted", e->prec[1]},
                {"recall_weighted", e->rec[1]},
                {"f1_weighted", e->f1[1]},
                {"f0_5_macro", e->f05_macro},
                {"balanced_accuracy", e->bal},
                {"roc_auc_macro", e->roc[0]},
                {"roc_auc_weighted", e->roc[1]},
                {"log_loss", e->log_loss},
                {"ece", e->ece},
                {"ece_bins", ECE_BINS}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) nc__jw_num(w, nums[i].key, nums[i].v);
    nc__jw_object(w, "files");
    for (int f = 0; f < 2; f++) {
        nc__sbuf name;
        nc__sbuf_init(&name, w->sb.ctx);
        nc__sbuf_printf(&name, "%s%s.svg", f == 0 ? "confusion_" : "per_class_", e->file_tag);
        if (name.oom) w->sb.oom = 1;
        nc__jw_str(w, f == 0 ? "confusion" : "per_class", name.oom ? "" : name.p);
        nc__sbuf_free(&name);
    }
    nc__jw_end(w);
    nc__jw_array(w, "per_class");
    for (int i = 0; i < e->K; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%d", i);
        nc__jw_object(w, NULL);
        nc__jw_num(w, "index", i);
        nc__jw_str(w, "name", e->names[i] ? e->names[i] : idx);
        nc__jw_num(w, "precision", e->cp[i]);
        nc__jw_num(w, "recall", e->cr[i]);
        nc__jw_num(w, "f1", e->cf1[i]);
        nc__jw_num(w, "support", (double)e->support[i]);
        nc__jw_num(w, "roc_auc", e->croc[i]);
        nc__jw_end(w);
    }
    nc__jw_end(w);
    nc__jw_array(w, "confusion");
    for (int t = 0; t < e->K; t++) {
        nc__jw_array(w, NULL);
        for (int p = 0; p < e->K; p++) nc__jw_num(w, NULL, (double)e->cm[(size_t)t * e->K + p]);
        nc__jw_end(w);
    }
    nc__jw_end(w);
    nc__jw_end(w);
}

/* report.json's text into w (pretty). */
static void report_json(nc__jw *w, const nc_report *r) {
    nc__jw_object(w, NULL);
    nc__jw_str(w, "format", "neurc-report");
    nc__jw_num(w, "format_version", 1);
    nc__jw_object(w, "run");
    for (size_t i = 0; i < r->nfacts; i++) {
        const fact *f = &r->facts[i];
        if (f->str) nc__jw_str(w, f->key, f->str);
        else nc__jw_num(w, f->key, f->num);
    }
    nc__jw_end(w);
    int64_t n = 0;
    const nc_epoch_record *rec = nc__history_records(r->hist, &n);
    nc__history_json(w, "history", rec, n);
    nc__jw_array(w, "evaluations");
    for (size_t i = 0; i < r->nent; i++) entry_json(w, &r->ent[i]);
    nc__jw_end(w);
    nc__jw_end(w);
}

/* ---------------------------------------------------------------- summary */

/* s padded with spaces to `width` code points (cut to it with a '~' when longer). */
static void put_cell(nc__sbuf *sb, const char *s, size_t width, int right) {
    size_t n = nc__utf8_len(s);
    if (n > width) {
        nc__sbuf_put(sb, s, nc__utf8_prefix(s, width - 1));
        nc__sbuf_puts(sb, "~");
        return;
    }
    if (!right) nc__sbuf_puts(sb, s);
    for (size_t i = n; i < width; i++) nc__sbuf_puts(sb, " ");
    if (right) nc__sbuf_puts(sb, s);
}

static void put_rate(nc__sbuf *sb, double v, size_t width) {
    char b[64];
    put_cell(sb, isnan(v) ? "n/a" : nc__fmt_num(b, sizeof b, v, 4, 'f'), width, 1);
}

static void put_fact_value(nc__sbuf *sb, const fact *f) {
    char b[64];
    if (f->str) {
        nc__sbuf_puts(sb, f->str);
    } else if (isfinite(f->num) && f->num == floor(f->num) && fabs(f->num) < 1e15) {
        nc__sbuf_puts(sb, nc__fmt_num(b, sizeof b, f->num, 0, 'f'));
    } else {
        nc__sbuf_puts(sb, nc__fmt_num(b, sizeof b, f->num, 6, 'g'));
    }
}

static const char *entry_name(const entry *e, int i, char idx[24]) {
    if (e->names[i]) return e->names[i];
    snprintf(idx, 24, "%d", i);
    return idx;
}

static void summary_entry(nc__sbuf *sb, const entry *e) {
    char b[64], idx[24];
    nc__sbuf_printf(sb, "\n%s (head %d): %lld samples, %d classes\n", e->split, e->head, (long long)e->count, e->K);
    const struct {
        const char *label;
        double v;
    } agg[] = {{"accuracy (top-1)", e->top1},        {"top-5 accuracy", e->top5},
               {"balanced accuracy", e->bal},        {"macro precision", e->prec[0]},
               {"macro recall", e->rec[0]},          {"macro F1", e->f1[0]},
               {"macro F0.5", e->f05_macro},         {"weighted F1", e->f1[1]},
               {"macro ROC-AUC", e->roc[0]},         {"log loss", e->log_loss},
               {"ECE (15 bins)", e->ece}};
    for (size_t i = 0; i < sizeof agg / sizeof agg[0]; i++) {
        if (i == 1 && e->K <= 5) continue; /* top-5 is 1 with 5 classes or fewer */
        nc__sbuf_puts(sb, "  ");
        put_cell(sb, agg[i].label, 20, 0);
        put_rate(sb, agg[i].v, 8);
        nc__sbuf_puts(sb, "\n");
    }

    /* classification_report */
    size_t w = 12; /* "weighted avg" */
    for (int i = 0; i < e->K; i++) {
        size_t l = nc__utf8_len(entry_name(e, i, idx));
        if (l > w) w = l;
    }
    if (w > SUMMARY_NAME_CP) w = SUMMARY_NAME_CP;
    nc__sbuf_puts(sb, "\n  ");
    put_cell(sb, "", w, 1);
    nc__sbuf_puts(sb, "  precision     recall   f1-score    support    roc-auc\n\n");
    for (int i = 0; i < e->K; i++) {
        nc__sbuf_puts(sb, "  ");
        put_cell(sb, entry_name(e, i, idx), w, 1);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->cp[i], 10);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->cr[i], 10);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->cf1[i], 10);
        snprintf(b, sizeof b, "%lld", (long long)e->support[i]);
        nc__sbuf_puts(sb, " ");
        put_cell(sb, b, 10, 1);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->croc[i], 10);
        nc__sbuf_puts(sb, "\n");
    }
    nc__sbuf_puts(sb, "\n  ");
    put_cell(sb, "accuracy", w, 1);
    nc__sbuf_puts(sb, "                       ");
    put_rate(sb, e->top1, 10);
    snprintf(b, sizeof b, "%lld", (long long)e->count);
    nc__sbuf_puts(sb, " ");
    put_cell(sb, b, 10, 1);
    nc__sbuf_puts(sb, "\n");
    for (int a = 0; a < 2; a++) {
        nc__sbuf_puts(sb, "  ");
        put_cell(sb, a == 0 ? "macro avg" : "weighted avg", w, 1);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->prec[a], 10);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->rec[a], 10);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->f1[a], 10);
        nc__sbuf_puts(sb, " ");
        put_cell(sb, b, 10, 1);
        nc__sbuf_puts(sb, " ");
        put_rate(sb, e->roc[a], 10);
        nc__sbuf_puts(sb, "\n");
    }

    /* confusion matrix: rows true (full names up to w), columns predicted (names cut
     * to the column width) */
    int64_t maxc = 0;
    size_t maxname = 1;
    for (size_t i = 0; i < (size_t)e->K * (size_t)e->K; i++)
        if (e->cm[i] > maxc) maxc = e->cm[i];
    for (int i = 0; i < e->K; i++) {
        size_t l = nc__utf8_len(entry_name(e, i, idx));
        if (l > maxname) maxname = l;
    }
    size_t cw = (size_t)snprintf(b, sizeof b, "%lld", (long long)maxc);
    size_t nw = maxname < 10 ? maxname : 10;
    if (nw > cw) cw = nw;
    size_t rw = maxname > SUMMARY_NAME_CP ? SUMMARY_NAME_CP : maxname;
    if (rw < 9) rw = 9; /* "true\pred" */
    nc__sbuf_puts(sb, "\n  confusion matrix (rows: true class, columns: predicted class)\n  ");
    put_cell(sb, "true\\pred", rw, 0);
    for (int p = 0; p < e->K; p++) {
        nc__sbuf_puts(sb, "  ");
        put_cell(sb, entry_name(e, p, idx), cw, 1);
    }
    nc__sbuf_puts(sb, "\n");
    for (int t = 0; t < e->K; t++) {
        nc__sbuf_puts(sb, "  ");
        put_cell(sb, entry_name(e, t, idx), rw, 0);
        for (int p = 0; p < e->K; p++) {
            snprintf(b, sizeof b, "%lld", (long long)e->cm[(size_t)t * e->K + p]);
            nc__sbuf_puts(sb, "  ");
            put_cell(sb, b, cw, 1);
        }
        nc__sbuf_puts(sb, "\n");
    }
}

static void summary_text(const nc_report *r, nc__sbuf *sb) {
    char b[64];
    nc__sbuf_puts(sb, "neurc run report\n");
    if (r->nfacts > 0) {
        size_t kw = 0;
        for (size_t i = 0; i < r->nfacts; i++) {
            size_t l = nc__utf8_len(r->facts[i].key);
            if (l > kw) kw = l;
        }
        if (kw > 40) kw = 40;
        nc__sbuf_puts(sb, "\nrun\n");
        for (size_t i = 0; i < r->nfacts; i++) {
            nc__sbuf_puts(sb, "  ");
            put_cell(sb, r->facts[i].key, kw, 0);
            nc__sbuf_puts(sb, "  ");
            put_fact_value(sb, &r->facts[i]);
            nc__sbuf_puts(sb, "\n");
        }
    }
    int64_t n = 0;
    const nc_epoch_record *rec = nc__history_records(r->hist, &n);
    if (n > 0) {
        const nc_epoch_record *l = &rec[n - 1];
        nc__sbuf_printf(sb, "\nlast epoch: %lld (%lld recorded)\n", (long long)l->epoch, (long long)n);
        const struct {
            const char *label;
            double v;
            int prec;
            char conv;
        } col[] = {{"train loss", l->train_loss, 4, 'f'}, {"train accuracy", l->train_acc, 4, 'f'},
                   {"val loss", l->val_loss, 4, 'f'},     {"val accuracy", l->val_acc, 4, 'f'},
                   {"learning rate", l->lr, 4, 'g'},      {"seconds", l->seconds, 1, 'f'},
                   {"images/s", l->images_per_sec, 1, 'f'}};
        for (size_t i = 0; i < sizeof col / sizeof col[0]; i++) {
            if (isnan(col[i].v)) continue;
            nc__sbuf_puts(sb, "  ");
            put_cell(sb, col[i].label, 20, 0);
            nc__sbuf_puts(sb, nc__fmt_num(b, sizeof b, col[i].v, col[i].prec, col[i].conv));
            nc__sbuf_puts(sb, "\n");
        }
    }
    for (size_t i = 0; i < r->nent; i++) summary_entry(sb, &r->ent[i]);
}

nc_status nc_report_summary(const nc_report *r, char *buf, size_t size, size_t *needed) {
    if (!r) return NC_ERR_NULL;
    if (!buf && size > 0) return nc__error(r->ctx, NC_ERR_NULL, "nc_report_summary: buf is NULL but size is %zu", size);
    nc__sbuf sb;
    nc__sbuf_init(&sb, r->ctx);
    summary_text(r, &sb);
    nc_status st = nc__sbuf_check(&sb, "nc_report_summary");
    if (st == NC_OK) {
        if (needed) *needed = sb.len + 1;
        if (size > 0) {
            size_t k = sb.len < size - 1 ? sb.len : size - 1;
            memcpy(buf, sb.p, k);
            buf[k] = 0;
        }
    }
    nc__sbuf_free(&sb);
    return st;
}

/* ------------------------------------------------------------------ write */

/* mkdir -p: creates `dir` and missing parents. */
static nc_status make_dirs(nc_context *ctx, const char *dir) {
    size_t n = strlen(dir);
    char *p = nc__alloc(ctx, n + 1);
    if (!p) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    memcpy(p, dir, n + 1);
    nc_status st = NC_OK;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char saved = p[i];
        p[i] = 0;
        struct stat sb;
        if (stat(p, &sb) != 0) {
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                st = nc__error(ctx, NC_ERR_IO, "%s: cannot create directory '%s': %s", dir, p, strerror(errno));
                break;
            }
        } else if (!S_ISDIR(sb.st_mode)) {
            st = nc__error(ctx, NC_ERR_IO, "%s: '%s' exists and is not a directory", dir, p);
            break;
        }
        p[i] = saved;
    }
    nc__free(ctx, p);
    return st;
}

/* Writes sb (then frees it) to dir/name. */
static nc_status write_file(nc_context *ctx, const char *dir, const char *name, const char *tag, nc__sbuf *sb) {
    nc__sbuf path;
    nc__sbuf_init(&path, ctx);
    nc__sbuf_puts(&path, dir);
    if (path.len > 0 && path.p[path.len - 1] != '/') nc__sbuf_puts(&path, "/");
    nc__sbuf_puts(&path, name);
    if (tag) {
        nc__sbuf_puts(&path, tag);
        nc__sbuf_puts(&path, ".svg");
    }
    nc_status st = nc__sbuf_check(&path, dir);
    if (st == NC_OK) st = nc__sbuf_check(sb, path.p);
    if (st == NC_OK) st = nc__write_file_atomic(ctx, path.p, sb->p, sb->len);
    nc__sbuf_free(&path);
    nc__sbuf_free(sb);
    return st;
}

nc_status nc_report_write(nc_report *r, const char *dir) {
    if (!r) return NC_ERR_NULL;
    nc_context *ctx = r->ctx;
    if (!dir) return nc__error(ctx, NC_ERR_NULL, "nc_report_write: dir is NULL");
    if (dir[0] == 0) return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "nc_report_write: the directory name is empty");
    nc_status st = make_dirs(ctx, dir);
    if (st != NC_OK) return st;
    nc__sbuf sb;

    nc__jw w;
    nc__jw_init(&w, ctx, 1);
    report_json(&w, r);
    nc__sbuf_puts(&w.sb, "\n");
    if ((st = write_file(ctx, dir, "report.json", NULL, &w.sb)) != NC_OK) return st;

    nc__sbuf_init(&sb, ctx);
    summary_text(r, &sb);
    if ((st = write_file(ctx, dir, "summary.txt", NULL, &sb)) != NC_OK) return st;

    int64_t n = 0;
    const nc_epoch_record *rec = nc__history_records(r->hist, &n);
    if (n > 0) {
        nc__sbuf_init(&sb, ctx);
        nc__svg_curves(&sb, rec, n);
        if ((st = write_file(ctx, dir, "curves", "", &sb)) != NC_OK) return st;
    }
    for (size_t i = 0; i < r->nent; i++) {
        const entry *e = &r->ent[i];
        nc__sbuf_init(&sb, ctx);
        nc__svg_confusion(&sb, e->K, e->cm, (const char *const *)e->names, 1);
        if ((st = write_file(ctx, dir, "confusion_", e->file_tag, &sb)) != NC_OK) return st;
        nc__sbuf_init(&sb, ctx);
        nc__svg_per_class(&sb, e->K, e->cr, e->support, (const char *const *)e->names);
        if ((st = write_file(ctx, dir, "per_class_", e->file_tag, &sb)) != NC_OK) return st;
    }
    return NC_OK;
}
