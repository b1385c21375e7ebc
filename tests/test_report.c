/* test_report.c — nc_history_*, nc_svg_* and nc_report_*: the history CSV round trip
 * and its malformed-file errors, report.json / summary.txt values of a 3-class case
 * worked by hand, the SVGs checked by tests/check_report.py (well-formed XML, counts,
 * bars and curve points equal to the data), numbers under a ',' locale, error paths
 * and out-of-memory behaviour. */
#include "testutil.h"

#include "neurc.h"

#include <cjson/cJSON.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

static nc_context *fx_ctx(void **state) { return ((tu_fx *)*state)->ctx; }

static const char *const NAMES3[3] = {"cat", "dog", "bird"};

/* The hand-worked case: 10 samples, truth cat x4, dog x3, bird x3; the predicted
 * class gets logit ln 8, the others 0, so its softmax probability is 8/10 = 0.8.
 *   confusion  cat [3 1 0]  dog [1 2 0]  bird [0 1 2]   (accuracy 7/10)
 *   precision  3/4, 2/4, 2/2          recall 3/4, 2/3, 2/3
 *   F1         0.75, 4/7, 0.8         F0.5  0.75, 10/19, 10/11
 *   ROC-AUC (Mann-Whitney, ties 1/2): cat 19/24, dog 14.5/21, bird 17.5/21
 *   log loss = -(7 ln 0.8 + 3 ln 0.1) / 10; ECE(15) = |0.7 - 0.8| = 0.1 */
static nc_metrics *hand_metrics(nc_context *ctx) {
    static const int32_t truth[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
    static const int32_t pred[10] = {0, 0, 0, 1, 1, 1, 0, 2, 2, 1};
    float logits[30] = {0};
    for (int i = 0; i < 10; i++) logits[i * 3 + pred[i]] = logf(8.0f);
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, logits, 0, truth, 0, 10, 3, -1, &m), NC_OK);
    return m;
}

static const double H_P[3] = {0.75, 0.5, 1.0}, H_R[3] = {0.75, 2.0 / 3, 2.0 / 3}, H_F1[3] = {0.75, 4.0 / 7, 0.8};
static const double H_ROC[3] = {19.0 / 24, 14.5 / 21, 17.5 / 21};
static const int64_t H_CM[9] = {3, 1, 0, 1, 2, 0, 0, 1, 2};

static nc_epoch_record rec(int64_t e, double tl, double ta, double vl, double va) {
    nc_epoch_record r;
    nc_epoch_record_init(&r);
    r.epoch = e;
    r.train_loss = tl;
    r.train_acc = ta;
    r.val_loss = vl;
    r.val_acc = va;
    r.lr = 0.1 / (double)e;
    r.seconds = 1.5 * (double)e;
    r.images_per_sec = 1000.0 / 3.0;
    return r;
}

static nc_history *make_history(nc_context *ctx, int n) {
    nc_history *h = NULL;
    assert_int_equal(nc_history_create(ctx, &h), NC_OK);
    for (int e = 1; e <= n; e++) {
        nc_epoch_record r = rec(e, 2.0 / e, 1 - 0.5 / e, 2.2 / e, 1 - 0.6 / e);
        assert_int_equal(nc_history_add(h, &r), NC_OK);
    }
    return h;
}

/* A fresh empty directory under /tmp (malloc'ed path). */
static char *tmp_dir(const char *name) {
    char *d = tu_tmp_path(name);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    return d;
}

static void rm_rf(char *d) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    free(d);
}

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int have_python(void) { return access("/usr/bin/python3", X_OK) == 0; }

/* Runs tests/check_report.py with `args`; fails the case on a non-zero exit. */
static void python_check(const char *args) {
    if (!have_python()) return; /* the C checks still ran */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/../check_report.py' %s", NC_FIXTURES, args);
    int rc = system(cmd);
    if (rc != 0) fail_msg("check_report.py failed (%d): %s", rc, cmd);
}

static cJSON *parse_file(const char *path) {
    char *text = tu_read_file(path, NULL);
    assert_non_null(text);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) fail_msg("%s is not valid JSON", path);
    return j;
}

static void near(double got, double want, double tol, const char *what) {
    if (!(fabs(got - want) <= tol)) fail_msg("%s: got %.17g, want %.17g", what, got, want);
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("JSON field \"%s\" is not a number", key);
    return v->valuedouble;
}

static void assert_contains(const char *text, const char *part) {
    if (!text) fail_msg("no text to look for \"%s\" in", part);
    else if (!strstr(text, part)) fail_msg("text does not contain \"%s\":\n%s", part, text);
}

/* ------------------------------------------------------------------ history */

static void test_history_add_get_truncate(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_history *h = make_history(ctx, 5);
    assert_int_equal(nc_history_count(h), 5);
    nc_epoch_record r;
    assert_int_equal(nc_history_get(h, 2, &r), NC_OK);
    assert_int_equal(r.epoch, 3);
    near(r.train_loss, 2.0 / 3, 0, "train_loss");
    assert_int_equal(r.struct_size, sizeof r);
    assert_int_equal(nc_history_truncate(h, 3), NC_OK);
    assert_int_equal(nc_history_count(h), 3);
    assert_int_equal(nc_history_get(h, 2, &r), NC_OK);
    assert_int_equal(r.epoch, 3);
    assert_int_equal(nc_history_get(h, 3, &r), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_history_get(h, -1, &r), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_history_truncate(h, 0), NC_OK);
    assert_int_equal(nc_history_count(h), 0);
    nc_history_destroy(h);

    nc_epoch_record_init(&r);
    assert_int_equal(r.epoch, 0);
    assert_true(isnan(r.train_loss) && isnan(r.val_acc) && isnan(r.lr) && isnan(r.images_per_sec));
    nc_epoch_record_init(NULL);
}

static void test_history_csv_round_trip_exact(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_history *h = NULL;
    assert_int_equal(nc_history_create(ctx, &h), NC_OK);
    float u[7 * 40];
    tu_fill_uniform(u, 7 * 40, -1, 1, 7);
    for (int e = 1; e <= 40; e++) {
        nc_epoch_record r;
        nc_epoch_record_init(&r);
        r.epoch = e * 2; /* gaps are fine */
        double *f = &r.train_loss;
        for (int k = 0; k < 7; k++) {
            double x = (double)u[(e - 1) * 7 + k];
            f[k] = x * pow(10.0, (e % 9) - 4) / 3.0 + (k == 0 ? 1e-300 : 0); /* full double digits */
        }
        if (e % 5 == 0) r.val_loss = r.val_acc = NAN; /* not measured */
        if (e == 7) r.train_loss = INFINITY;
        if (e == 8) r.train_loss = -INFINITY;
        if (e == 9) r.lr = 0.1; /* the short form */
        if (e == 10) r.seconds = -0.0;
        assert_int_equal(nc_history_add(h, &r), NC_OK);
    }
    char *path = tu_tmp_path("hist.csv");
    assert_int_equal(nc_history_write_csv(h, path), NC_OK);
    nc_history *back = NULL;
    assert_int_equal(nc_history_read_csv(ctx, path, &back), NC_OK);
    assert_int_equal(nc_history_count(back), 40);
    for (int i = 0; i < 40; i++) {
        nc_epoch_record a, b;
        assert_int_equal(nc_history_get(h, i, &a), NC_OK);
        assert_int_equal(nc_history_get(back, i, &b), NC_OK);
        assert_int_equal(a.epoch, b.epoch);
        const double *fa = &a.train_loss, *fb = &b.train_loss;
        for (int k = 0; k < 7; k++) {
            if (isnan(fa[k])) {
                assert_true(isnan(fb[k]));
                continue;
            }
            if (memcmp(&fa[k], &fb[k], sizeof(double)) != 0 && !(fa[k] == 0 && fb[k] == 0))
                fail_msg("epoch %lld field %d: wrote %.17g, read %.17g", (long long)a.epoch, k, fa[k], fb[k]);
        }
    }
    /* the text itself: header, NaN as an empty field, the short form of 0.1 */
    char *text = tu_read_file(path, NULL);
    assert_non_null(text);
    static const char hdr[] = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_sec\n";
    assert_true(strncmp(text, hdr, strlen(hdr)) == 0);
    assert_non_null(strstr(text, ",0.1,"));
    assert_non_null(strstr(text, "\n10,"));
    char *l10 = strstr(text, "\n10,");
    int commas = 0;
    for (char *p = l10 + 1; *p && *p != '\n'; p++) commas += *p == ',';
    assert_int_equal(commas, 7);
    free(text);

    /* a resumed run continues the read history; writing it again gives the same file */
    assert_int_equal(nc_history_write_csv(back, path), NC_OK);
    nc_history *again = NULL;
    assert_int_equal(nc_history_read_csv(ctx, path, &again), NC_OK);
    assert_int_equal(nc_history_count(again), 40);
    nc_history_destroy(again);
    unlink(path);
    free(path);
    nc_history_destroy(back);
    nc_history_destroy(h);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_history_read_csv_rejects_malformed(void **state) {
    nc_context *ctx = fx_ctx(state);
    static const char hdr[] = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_sec\n";
    static const struct {
        const char *body, *where, *why;
    } bad[] = {
        {"", ":1:", "empty file"},
        {"epoch,loss\n1,2\n", ":1:", "header"},
        {"1,0.5,0.5,0.5,0.5,0.1,1,100\n2,0.5,0.5\n", ":3:", "3 fields"},
        {"1,0.5,0.5,0.5,0.5,0.1,1,100,7\n", ":2:", "more than 8"},
        {"1,0.5,abc,0.5,0.5,0.1,1,100\n", ":2:", "train_acc"},
        {"1,0.5,0x10,0.5,0.5,0.1,1,100\n", ":2:", "not a number"},
        {"1,0.5,1e,0.5,0.5,0.1,1,100\n", ":2:", "not a number"},
        {"1,0.5,nan,0.5,0.5,0.1,1,100\n", ":2:", "not a number"},
        {"1.5,0.5,0.5,0.5,0.5,0.1,1,100\n", ":2:", "epoch"},
        {",0.5,0.5,0.5,0.5,0.1,1,100\n", ":2:", "epoch"},
        {"-1,0.5,0.5,0.5,0.5,0.1,1,100\n", ":2:", "epoch"},
        {"2,0.5,0.5,0.5,0.5,0.1,1,100\n2,0.5,0.5,0.5,0.5,0.1,1,100\n", ":3:", "does not follow"},
        {"1,0.5,0.5,0.5,0.5,0.1,1,100\n\n2,0.5,0.5,0.5,0.5,0.1,1,100\n", ":3:", "empty line"},
        {"1,0.5,0.5,0.5,0.5,0.1,1,100\n2,0.5, 0.5,0.5,0.5,0.1,1,100\n", ":3:", "not a number"},
    };
    char *path = tu_tmp_path("bad.csv");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", i < 2 ? "" : hdr, bad[i].body);
        write_text(path, text);
        nc_history *h = (nc_history *)(uintptr_t)1;
        nc_status st = nc_history_read_csv(ctx, path, &h);
        if (st != NC_ERR_FORMAT) fail_msg("case %zu: status %d, expected NC_ERR_FORMAT", i, (int)st);
        assert_null(h);
        const char *msg = nc_context_last_error(ctx);
        char where[600];
        snprintf(where, sizeof where, "%s%s", path, bad[i].where);
        if (!strstr(msg, where) || !strstr(msg, bad[i].why))
            fail_msg("case %zu: message \"%s\" lacks \"%s\" or \"%s\"", i, msg, where, bad[i].why);
    }
    /* accepted: CRLF line ends, trailing blank lines, a header-only file, inf */
    write_text(path, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_sec\r\n"
                     "1,0.5,,inf,-inf,1e-3,1,100\r\n\r\n\n");
    nc_history *h = NULL;
    assert_int_equal(nc_history_read_csv(ctx, path, &h), NC_OK);
    assert_int_equal(nc_history_count(h), 1);
    nc_epoch_record r;
    assert_int_equal(nc_history_get(h, 0, &r), NC_OK);
    assert_true(isnan(r.train_acc) && isinf(r.val_loss) && r.val_acc < 0);
    near(r.lr, 1e-3, 0, "lr");
    nc_history_destroy(h);
    write_text(path, hdr);
    assert_int_equal(nc_history_read_csv(ctx, path, &h), NC_OK);
    assert_int_equal(nc_history_count(h), 0);
    nc_history_destroy(h);
    unlink(path);
    /* missing file, a directory */
    assert_int_equal(nc_history_read_csv(ctx, path, &h), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), path));
    assert_int_equal(nc_history_read_csv(ctx, "/tmp", &h), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), "/tmp"));
    free(path);
}

static void test_history_json_nan_is_null(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_history *h = make_history(ctx, 3);
    nc_epoch_record r = rec(4, 0.25, 0.9, NAN, NAN);
    assert_int_equal(nc_history_add(h, &r), NC_OK);
    char *path = tu_tmp_path("hist.json");
    assert_int_equal(nc_history_write_json(h, path), NC_OK);
    cJSON *j = parse_file(path);
    assert_true(cJSON_IsArray(j));
    assert_int_equal(cJSON_GetArraySize(j), 4);
    cJSON *last = cJSON_GetArrayItem(j, 3);
    near(jnum(last, "epoch"), 4, 0, "epoch");
    near(jnum(last, "train_loss"), 0.25, 0, "train_loss");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(last, "val_loss")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(last, "val_acc")));
    near(jnum(cJSON_GetArrayItem(j, 1), "lr"), 0.05, 1e-15, "lr");
    near(jnum(cJSON_GetArrayItem(j, 0), "images_per_sec"), 1000.0 / 3.0, 1e-12, "images_per_sec");
    cJSON_Delete(j);
    unlink(path);
    free(path);
    nc_history_destroy(h);
}

static void test_history_errors(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_history *h = NULL;
    assert_int_equal(nc_history_create(NULL, &h), NC_ERR_NULL);
    assert_int_equal(nc_history_create(ctx, NULL), NC_ERR_NULL);
    assert_int_equal(nc_history_create(ctx, &h), NC_OK);
    nc_epoch_record r;
    nc_epoch_record_init(&r);
    assert_int_equal(nc_history_add(NULL, &r), NC_ERR_NULL);
    assert_int_equal(nc_history_add(h, NULL), NC_ERR_NULL);
    r.struct_size = 8;
    assert_int_equal(nc_history_add(h, &r), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "struct_size"));
    assert_int_equal(nc_history_get(NULL, 0, &r), NC_ERR_NULL);
    assert_int_equal(nc_history_get(h, 0, NULL), NC_ERR_NULL);
    assert_int_equal(nc_history_truncate(NULL, 1), NC_ERR_NULL);
    assert_int_equal(nc_history_count(NULL), 0);
    assert_int_equal(nc_history_write_csv(NULL, "/tmp/x"), NC_ERR_NULL);
    assert_int_equal(nc_history_write_csv(h, NULL), NC_ERR_NULL);
    assert_int_equal(nc_history_write_json(NULL, "/tmp/x"), NC_ERR_NULL);
    assert_int_equal(nc_history_write_json(h, NULL), NC_ERR_NULL);
    assert_int_equal(nc_history_read_csv(NULL, "/tmp/x", &h), NC_ERR_NULL);
    assert_int_equal(nc_history_read_csv(ctx, NULL, &h), NC_ERR_NULL);
    assert_int_equal(nc_history_read_csv(ctx, "/tmp/x", NULL), NC_ERR_NULL);
    /* unwritable directory: NC_ERR_IO naming the path */
    const char *bad = "/nonexistent-dir-nc/hist.csv";
    assert_int_equal(nc_history_write_csv(h, bad), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), bad));
    assert_int_equal(nc_history_write_json(h, bad), NC_ERR_IO);
    /* an empty history has no curves */
    char *svg = tu_tmp_path("empty.svg");
    assert_int_equal(nc_svg_training_curves(h, svg), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "empty"));
    assert_int_equal(access(svg, F_OK), -1);
    free(svg);
    assert_int_equal(nc_svg_training_curves(NULL, "/tmp/x.svg"), NC_ERR_NULL);
    assert_int_equal(nc_svg_training_curves(h, NULL), NC_ERR_NULL);
    nc_history_destroy(h);
    nc_history_destroy(NULL);
}

/* ---------------------------------------------------------------------- SVG */

static int count_of(const char *text, const char *part) {
    int n = 0;
    for (const char *p = strstr(text, part); p; p = strstr(p + 1, part)) n++;
    return n;
}

static void test_svg_training_curves(void **state) {
    nc_context *ctx = fx_ctx(state);
    char *dir = tmp_dir("curves");
    assert_int_equal(mkdir(dir, 0755), 0);
    char *p1 = path_in(dir, "one.svg"), *p2 = path_in(dir, "gaps.svg"), *p3 = path_in(dir, "noval.svg");
    char *p4 = path_in(dir, "long.svg");
    /* one epoch: markers only */
    nc_history *h = make_history(ctx, 1);
    assert_int_equal(nc_svg_training_curves(h, p1), NC_OK);
    char *t = tu_read_file(p1, NULL);
    assert_int_equal(count_of(t, "<polyline"), 0);
    assert_int_equal(count_of(t, "<circle"), 4);
    free(t);
    nc_history_destroy(h);
    /* 12 epochs, val missing at epoch 4 (breaks the line) and epoch 6 isolated */
    h = make_history(ctx, 12);
    nc_history_truncate(h, 0);
    for (int e = 1; e <= 12; e++) {
        int gap = e == 4 || e == 5 || e == 7;
        nc_epoch_record r = rec(e, 1.0 / e, 0.5 + e / 30.0, gap ? NAN : 1.2 / e, gap ? NAN : 0.45 + e / 30.0);
        assert_int_equal(nc_history_add(h, &r), NC_OK);
    }
    assert_int_equal(nc_svg_training_curves(h, p2), NC_OK);
    t = tu_read_file(p2, NULL);
    /* train: one line per panel; val: epochs 1-3 and 8-12 per panel, 6 alone */
    assert_int_equal(count_of(t, "<polyline class=\"train\""), 2);
    assert_int_equal(count_of(t, "<polyline class=\"val\""), 4);
    /* points per line, in order: loss train 12, val 3 and 5; accuracy the same */
    static const int want_pts[6] = {12, 3, 5, 12, 3, 5};
    int li = 0;
    for (const char *p = strstr(t, "<polyline"); p; p = strstr(p + 1, "<polyline"), li++) {
        const char *q = strstr(p, "points=\"");
        assert_non_null(q);
        int pts = 1;
        for (q += 8; *q != '"'; q++) pts += *q == ' ';
        assert_true(li < 6);
        assert_int_equal(pts, want_pts[li]);
    }
    assert_int_equal(li, 6);
    assert_int_equal(count_of(t, "<circle"), 4 * 12 - 6); /* a marker per measured value */
    assert_non_null(strstr(t, "<title>Training curves (12 epochs)</title>"));
    free(t);
    nc_history_destroy(h);
    /* no validation at all: no val series, no val legend */
    h = NULL;
    assert_int_equal(nc_history_create(ctx, &h), NC_OK);
    for (int e = 1; e <= 3; e++) {
        nc_epoch_record r = rec(e, 1.0 / e, 0.5, NAN, NAN);
        assert_int_equal(nc_history_add(h, &r), NC_OK);
    }
    assert_int_equal(nc_svg_training_curves(h, p3), NC_OK);
    t = tu_read_file(p3, NULL);
    assert_int_equal(count_of(t, "class=\"val\""), 0);
    assert_int_equal(count_of(t, ">val<"), 0);
    assert_int_equal(count_of(t, "<polyline class=\"train\""), 2);
    free(t);
    nc_history_destroy(h);
    /* many epochs: lines without markers */
    h = make_history(ctx, 200);
    assert_int_equal(nc_svg_training_curves(h, p4), NC_OK);
    nc_history_destroy(h);
    char args[1024];
    snprintf(args, sizeof args, "--svg '%s' '%s' '%s' '%s'", p1, p2, p3, p4);
    python_check(args);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    rm_rf(dir);
}

static void test_svg_confusion_and_bars(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_metrics *m = hand_metrics(ctx);
    char *dir = tmp_dir("svgcm");
    assert_int_equal(mkdir(dir, 0755), 0);
    char *p1 = path_in(dir, "cm.svg"), *p2 = path_in(dir, "cmcount.svg"), *p3 = path_in(dir, "bars.svg");
    /* names that need escaping, a long one and non-ASCII */
    const char *names[3] = {"a<b & \"c\"", "Chlorella vulgaris \xC3\xA9t\xC3\xA9 (very long class name)", NULL};
    assert_int_equal(nc_svg_confusion_matrix(ctx, m, names, 1, p1), NC_OK);
    assert_int_equal(nc_svg_confusion_matrix(ctx, m, NULL, 0, p2), NC_OK);
    assert_int_equal(nc_svg_per_class_accuracy(ctx, m, names, p3), NC_OK);
    char *t = tu_read_file(p1, NULL);
    assert_non_null(strstr(t, "a&lt;b &amp; &quot;c&quot;"));
    assert_null(strstr(t, "a<b"));
    assert_int_equal(count_of(t, "class=\"cell\""), 9);
    assert_int_equal(count_of(t, "class=\"count\""), 9);
    for (int i = 0; i < 9; i++) {
        char cell[64];
        snprintf(cell, sizeof cell, "data-true=\"%d\" data-pred=\"%d\" data-count=\"%lld\"", i / 3, i % 3,
                 (long long)H_CM[i]);
        assert_non_null(strstr(t, cell));
    }
    free(t);
    t = tu_read_file(p3, NULL);
    assert_int_equal(count_of(t, "class=\"bar\""), 3);
    assert_non_null(strstr(t, "data-class=\"1\" data-value=\"0.666667\""));
    assert_non_null(strstr(t, ">0.750 (n=4)<"));
    free(t);
    char args[1024];
    snprintf(args, sizeof args, "--svg '%s' '%s' '%s'", p1, p2, p3);
    python_check(args);
    free(p1);
    free(p2);
    free(p3);
    rm_rf(dir);
    nc_metrics_destroy(m);
}

static void test_svg_many_classes_and_bad_text(void **state) {
    nc_context *ctx = fx_ctx(state);
    enum { K = 120, N = 2400 };
    float *logits = tu_rand((size_t)N * K, -2, 2, 11);
    int32_t *labels = malloc(N * sizeof *labels);
    assert_non_null(labels);
    for (int i = 0; i < N; i++) {
        labels[i] = (i * 7) % K;
        if (i % 3) logits[(size_t)i * K + labels[i]] += 5; /* two thirds right */
    }
    labels[5] = 0; /* class 5 gets no sample */
    for (int i = 0; i < N; i++)
        if (labels[i] == 5) labels[i] = 6;
    nc_metrics *m = NULL;
    assert_int_equal(nc_metrics_compute(ctx, logits, 0, labels, 0, N, K, -1, &m), NC_OK);
    char **names = malloc(K * sizeof *names);
    assert_non_null(names);
    for (int k = 0; k < K; k++) {
        names[k] = malloc(64);
        assert_non_null(names[k]);
        snprintf(names[k], 64, "class-%03d%s", k, k % 10 == 0 ? " with a rather long descriptive name" : "");
    }
    /* bytes that are not UTF-8 and a control character must still give valid XML */
    snprintf(names[3], 64, "bad\xFF\xC3 byte\x01");
    char *dir = tmp_dir("many");
    assert_int_equal(mkdir(dir, 0755), 0);
    char *p1 = path_in(dir, "cm.svg"), *p2 = path_in(dir, "bars.svg");
    assert_int_equal(nc_svg_confusion_matrix(ctx, m, (const char *const *)names, 1, p1), NC_OK);
    assert_int_equal(nc_svg_per_class_accuracy(ctx, m, (const char *const *)names, p2), NC_OK);
    char *t = tu_read_file(p2, NULL);
    assert_int_equal(count_of(t, "class=\"bar\""), K);
    assert_non_null(strstr(t, "data-class=\"5\" data-value=\"nan\""));
    free(t);
    char args[1024];
    snprintf(args, sizeof args, "--svg '%s' '%s'", p1, p2);
    python_check(args);
    for (int k = 0; k < K; k++) free(names[k]);
    free(names);
    free(p1);
    free(p2);
    rm_rf(dir);
    nc_metrics_destroy(m);
    free(labels);
    free(logits);
}

static void test_svg_errors(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_metrics *m = hand_metrics(ctx), *empty = NULL;
    float z[3] = {0};
    int32_t y = -1;
    assert_int_equal(nc_metrics_compute(ctx, z, 0, &y, 0, 1, 3, -1, &empty), NC_OK);
    assert_int_equal(nc_svg_confusion_matrix(NULL, m, NULL, 1, "/tmp/x.svg"), NC_ERR_NULL);
    assert_int_equal(nc_svg_confusion_matrix(ctx, NULL, NULL, 1, "/tmp/x.svg"), NC_ERR_NULL);
    assert_int_equal(nc_svg_confusion_matrix(ctx, m, NULL, 1, NULL), NC_ERR_NULL);
    assert_int_equal(nc_svg_per_class_accuracy(NULL, m, NULL, "/tmp/x.svg"), NC_ERR_NULL);
    assert_int_equal(nc_svg_per_class_accuracy(ctx, NULL, NULL, "/tmp/x.svg"), NC_ERR_NULL);
    assert_int_equal(nc_svg_per_class_accuracy(ctx, m, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_svg_confusion_matrix(ctx, empty, NULL, 1, "/tmp/x.svg"), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_svg_per_class_accuracy(ctx, empty, NULL, "/tmp/x.svg"), NC_ERR_INVALID_ARGUMENT);
    const char *bad = "/nonexistent-dir-nc/cm.svg";
    assert_int_equal(nc_svg_confusion_matrix(ctx, m, NULL, 1, bad), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), bad));
    assert_int_equal(nc_svg_per_class_accuracy(ctx, m, NULL, bad), NC_ERR_IO);
    nc_metrics_destroy(empty);
    nc_metrics_destroy(m);
}

/* ------------------------------------------------------------------- report */

static nc_report *hand_report(nc_context *ctx, nc_metrics *m) {
    nc_report *r = NULL;
    assert_int_equal(nc_report_create(ctx, &r), NC_OK);
    assert_int_equal(nc_report_set_string(r, "model", "resnet18"), NC_OK);
    assert_int_equal(nc_report_set_number(r, "parameters", 11689512), NC_OK);
    assert_int_equal(nc_report_set_string(r, "dataset", "/data/pets"), NC_OK);
    assert_int_equal(nc_report_set_number(r, "lr", 0.05), NC_OK);
    assert_int_equal(nc_report_set_string(r, "model", "resnet34"), NC_OK); /* replaces, keeps the place */
    nc_history *h = make_history(ctx, 4);
    assert_int_equal(nc_report_set_history(r, h), NC_OK);
    nc_history_destroy(h); /* the report keeps a copy */
    assert_int_equal(nc_report_add_metrics(r, "val", 0, m, NAMES3), NC_OK);
    return r;
}

static void check_hand_entry(const cJSON *ev) {
    near(jnum(ev, "count"), 10, 0, "count");
    near(jnum(ev, "classes"), 3, 0, "classes");
    near(jnum(ev, "top1"), 0.7, 1e-12, "top1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ev, "top5")));
    near(jnum(ev, "precision_macro"), 0.75, 1e-12, "precision_macro");
    near(jnum(ev, "recall_macro"), (0.75 + 4.0 / 3) / 3, 1e-12, "recall_macro");
    near(jnum(ev, "f1_macro"), (0.75 + 4.0 / 7 + 0.8) / 3, 1e-12, "f1_macro");
    near(jnum(ev, "precision_weighted"), (4 * 0.75 + 3 * 0.5 + 3 * 1.0) / 10, 1e-12, "precision_weighted");
    near(jnum(ev, "recall_weighted"), 0.7, 1e-12, "recall_weighted");
    near(jnum(ev, "f1_weighted"), (4 * 0.75 + 3 * 4.0 / 7 + 3 * 0.8) / 10, 1e-12, "f1_weighted");
    near(jnum(ev, "f0_5_macro"), (0.75 + 10.0 / 19 + 10.0 / 11) / 3, 1e-12, "f0_5_macro");
    near(jnum(ev, "balanced_accuracy"), (0.75 + 4.0 / 3) / 3, 1e-12, "balanced_accuracy");
    near(jnum(ev, "roc_auc_macro"), (H_ROC[0] + H_ROC[1] + H_ROC[2]) / 3, 1e-12, "roc_auc_macro");
    near(jnum(ev, "log_loss"), -(7 * log(0.8) + 3 * log(0.1)) / 10, 1e-6, "log_loss");
    near(jnum(ev, "ece"), 0.1, 1e-6, "ece");
    near(jnum(ev, "ece_bins"), 15, 0, "ece_bins");
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(ev, "per_class");
    assert_int_equal(cJSON_GetArraySize(pc), 3);
    for (int k = 0; k < 3; k++) {
        const cJSON *c = cJSON_GetArrayItem(pc, k);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring, NAMES3[k]);
        near(jnum(c, "precision"), H_P[k], 1e-12, "precision");
        near(jnum(c, "recall"), H_R[k], 1e-12, "recall");
        near(jnum(c, "f1"), H_F1[k], 1e-12, "f1");
        near(jnum(c, "support"), k == 0 ? 4 : 3, 0, "support");
        near(jnum(c, "roc_auc"), H_ROC[k], 1e-12, "roc_auc");
    }
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(ev, "confusion");
    assert_int_equal(cJSON_GetArraySize(cm), 3);
    for (int t = 0; t < 3; t++) {
        const cJSON *row = cJSON_GetArrayItem(cm, t);
        assert_int_equal(cJSON_GetArraySize(row), 3);
        for (int p = 0; p < 3; p++) near(cJSON_GetArrayItem(row, p)->valuedouble, (double)H_CM[t * 3 + p], 0, "cm");
    }
}

static void test_report_json_hand_worked(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_metrics *m = hand_metrics(ctx);
    nc_report *r = hand_report(ctx, m);
    /* a 7-class second head: top-5 is reported, no class names */
    enum { K = 7, N = 50 };
    float *z = tu_rand((size_t)N * K, -1, 1, 3);
    int32_t lab[N];
    for (int i = 0; i < N; i++) lab[i] = i % K;
    nc_metrics *m7 = NULL;
    assert_int_equal(nc_metrics_compute(ctx, z, 0, lab, 0, N, K, -1, &m7), NC_OK);
    assert_int_equal(nc_report_add_metrics(r, "val", 1, m7, NULL), NC_OK);
    char *dir = tmp_dir("report");
    assert_int_equal(nc_report_write(r, dir), NC_OK);
    char *jp = path_in(dir, "report.json");
    cJSON *j = parse_file(jp);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "format")->valuestring, "neurc-report");
    /* run facts in order of first setting */
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
    const char *order[4] = {"model", "parameters", "dataset", "lr"};
    int i = 0;
    for (const cJSON *it = run->child; it; it = it->next, i++) assert_string_equal(it->string, order[i]);
    assert_int_equal(i, 4);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(run, "model")->valuestring, "resnet34");
    near(jnum(run, "parameters"), 11689512, 0, "parameters");
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(j, "history");
    assert_int_equal(cJSON_GetArraySize(hist), 4);
    near(jnum(cJSON_GetArrayItem(hist, 3), "val_loss"), 2.2 / 4, 1e-15, "val_loss");
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(j, "evaluations");
    assert_int_equal(cJSON_GetArraySize(evs), 2);
    check_hand_entry(cJSON_GetArrayItem(evs, 0));
    const cJSON *e7 = cJSON_GetArrayItem(evs, 1);
    near(jnum(e7, "head"), 1, 0, "head");
    near(jnum(e7, "top5"), nc_metrics_top_k(m7, 5), 1e-12, "top5");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e7,
                                                                                                          "per_class"),
                                                                              6),
                                                          "name")
                            ->valuestring,
                        "6");
    cJSON_Delete(j);
    /* every file named in the header is there */
    const char *files[] = {"summary.txt", "curves.svg", "confusion_val.svg", "per_class_val.svg",
                           "confusion_val_h1.svg", "per_class_val_h1.svg"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char *p = path_in(dir, files[f]);
        if (access(p, R_OK) != 0) fail_msg("%s was not written", p);
        free(p);
    }
    char args[600];
    snprintf(args, sizeof args, "'%s'", dir);
    python_check(args);
    free(jp);
    rm_rf(dir);
    nc_report_destroy(r);
    nc_metrics_destroy(m7);
    nc_metrics_destroy(m);
    free(z);
}

static void test_report_summary_text(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_metrics *m = hand_metrics(ctx);
    nc_report *r = hand_report(ctx, m);
    size_t need = 0;
    assert_int_equal(nc_report_summary(r, NULL, 0, &need), NC_OK);
    assert_true(need > 100);
    char *buf = malloc(need);
    assert_non_null(buf);
    size_t need2 = 0;
    assert_int_equal(nc_report_summary(r, buf, need, &need2), NC_OK);
    assert_int_equal(need2, need);
    assert_int_equal(strlen(buf), need - 1);
    assert_true(strncmp(buf, "neurc run report\n", 17) == 0);
    /* facts first, in order; numbers as written by a person */
    char *model = strstr(buf, "model"), *params = strstr(buf, "parameters"), *lr = strstr(buf, "lr   ");
    assert_true(model && params && lr && model < params && params < lr);
    assert_contains(buf, "parameters  11689512\n");
    assert_contains(buf, "0.05\n");
    assert_contains(buf, "resnet34");
    assert_contains(buf, "last epoch: 4 (4 recorded)");
    assert_contains(buf, "val loss            0.5500");
    /* the aggregates and the classification_report rows, worked by hand */
    assert_contains(buf, "val (head 0): 10 samples, 3 classes");
    assert_contains(buf, "accuracy (top-1)      0.7000");
    assert_contains(buf, "balanced accuracy     0.6944");
    assert_contains(buf, "macro F1              0.7071");
    assert_contains(buf, "macro F0.5            0.7285");
    assert_contains(buf, "weighted F1           0.7114");
    assert_contains(buf, "macro ROC-AUC         0.7718");
    assert_contains(buf, "log loss              0.8470");
    assert_contains(buf, "ECE (15 bins)         0.1000");
    assert_null(strstr(buf, "top-5"));
    assert_contains(buf, "                precision     recall   f1-score    support    roc-auc\n");
    assert_contains(buf, "           cat     0.7500     0.7500     0.7500          4     0.7917\n");
    assert_contains(buf, "           dog     0.5000     0.6667     0.5714          3     0.6905\n");
    assert_contains(buf, "          bird     1.0000     0.6667     0.8000          3     0.8333\n");
    assert_contains(buf, "      accuracy                           0.7000         10\n");
    assert_contains(buf, "     macro avg     0.7500     0.6944     0.7071         10     0.7718\n");
    assert_contains(buf, "  weighted avg     0.7500     0.7000     0.7114         10");
    /* the confusion matrix with class names, columns aligned */
    assert_contains(buf, "  true\\pred   cat   dog  bird\n");
    assert_contains(buf, "  cat           3     1     0\n");
    assert_contains(buf, "  dog           1     2     0\n");
    assert_contains(buf, "  bird          0     1     2\n");
    /* truncation: size-1 bytes and a NUL */
    char small[8];
    assert_int_equal(nc_report_summary(r, small, sizeof small, NULL), NC_OK);
    assert_string_equal(small, "neurc r");
    /* summary.txt holds the same text */
    char *dir = tmp_dir("summary");
    assert_int_equal(nc_report_write(r, dir), NC_OK);
    char *sp = path_in(dir, "summary.txt");
    char *file = tu_read_file(sp, NULL);
    assert_non_null(file);
    assert_string_equal(file, buf);
    free(file);
    free(sp);
    rm_rf(dir);
    free(buf);
    nc_report_destroy(r);
    nc_metrics_destroy(m);
}

static void test_report_long_names_aligned(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_metrics *m = hand_metrics(ctx);
    nc_report *r = NULL;
    assert_int_equal(nc_report_create(ctx, &r), NC_OK);
    const char *names[3] = {"Chlorella vulgaris (healthy cells, day 3)", "d\xC3\xA9" "bris", "x"};
    assert_int_equal(nc_report_add_metrics(r, "test", 0, m, names), NC_OK);
    size_t need = 0;
    assert_int_equal(nc_report_summary(r, NULL, 0, &need), NC_OK);
    char *buf = malloc(need);
    assert_non_null(buf);
    assert_int_equal(nc_report_summary(r, buf, need, NULL), NC_OK);
    /* names cut to 30 characters with '~'; a 2-byte character counts as one column */
    assert_contains(buf, "  Chlorella vulgaris (healthy c~     0.7500");
    assert_contains(buf, "                         d\xC3\xA9" "bris     0.5000");
    assert_contains(buf, "Chlorella~      d\xC3\xA9" "bris           x\n");
    assert_null(strstr(buf, "last epoch")); /* no history set */
    free(buf);
    nc_report_destroy(r);
    nc_metrics_destroy(m);
}

static void test_report_errors(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_metrics *m = hand_metrics(ctx);
    nc_report *r = NULL;
    assert_int_equal(nc_report_create(NULL, &r), NC_ERR_NULL);
    assert_int_equal(nc_report_create(ctx, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_create(ctx, &r), NC_OK);
    assert_int_equal(nc_report_set_string(NULL, "k", "v"), NC_ERR_NULL);
    assert_int_equal(nc_report_set_string(r, NULL, "v"), NC_ERR_NULL);
    assert_int_equal(nc_report_set_string(r, "k", NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_set_number(NULL, "k", 1), NC_ERR_NULL);
    assert_int_equal(nc_report_set_number(r, NULL, 1), NC_ERR_NULL);
    assert_int_equal(nc_report_set_number(r, "", 1), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_report_set_history(NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_set_history(r, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_add_metrics(NULL, "val", 0, m, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_add_metrics(r, NULL, 0, m, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_add_metrics(r, "val", 0, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_add_metrics(r, "", 0, m, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_report_add_metrics(r, "val", -1, m, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_report_add_metrics(r, "val", 0, m, NULL), NC_OK);
    assert_int_equal(nc_report_add_metrics(r, "val", 0, m, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "already"));
    assert_int_equal(nc_report_add_metrics(r, "val", 1, m, NULL), NC_OK);
    /* "v/l" and "v_l" would write the same files */
    assert_int_equal(nc_report_add_metrics(r, "v/l", 0, m, NULL), NC_OK);
    assert_int_equal(nc_report_add_metrics(r, "v_l", 0, m, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_report_summary(NULL, NULL, 0, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_summary(r, NULL, 5, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_write(NULL, "/tmp"), NC_ERR_NULL);
    assert_int_equal(nc_report_write(r, NULL), NC_ERR_NULL);
    assert_int_equal(nc_report_write(r, ""), NC_ERR_INVALID_ARGUMENT);
    /* a directory that cannot be made, and one that is a file */
    assert_int_equal(nc_report_write(r, "/proc/nc-report-test"), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), "/proc/nc-report-test"));
    char *f = tu_tmp_path("notadir");
    write_text(f, "x");
    assert_int_equal(nc_report_write(r, f), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), "not a directory"));
    unlink(f);
    free(f);
    /* read-only directory (root can write anywhere, so only when not root) */
    if (geteuid() != 0) {
        char *d = tmp_dir("readonly");
        assert_int_equal(mkdir(d, 0555), 0);
        assert_int_equal(nc_report_write(r, d), NC_ERR_IO);
        assert_non_null(strstr(nc_context_last_error(ctx), d));
        rm_rf(d);
    }
    /* nested directories are created; the split name cannot escape the directory */
    char *d = tmp_dir("nested");
    char *inner = path_in(d, "a/b");
    assert_int_equal(nc_report_write(r, inner), NC_OK);
    char *p = path_in(inner, "confusion_v_l.svg");
    assert_int_equal(access(p, R_OK), 0);
    free(p);
    p = path_in(inner, "per_class_val_h1.svg");
    assert_int_equal(access(p, R_OK), 0);
    free(p);
    p = path_in(inner, "curves.svg"); /* no history: no curves */
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    char args[600];
    snprintf(args, sizeof args, "'%s'", inner);
    python_check(args);
    free(inner);
    rm_rf(d);
    nc_report_destroy(r);
    nc_report_destroy(NULL);
    nc_metrics_destroy(m);
}

/* With LC_NUMERIC using ',' as the decimal point, every file still uses '.'. A German
 * locale is built with localedef into a temporary LOCPATH when none is installed. */
static void test_report_locale_independent(void **state) {
    nc_context *ctx = fx_ctx(state);
    char *locdir = tmp_dir("locale");
    const char *loc = tu_comma_locale(locdir);
    if (!loc) {
        rm_rf(locdir);
        skip();
    }
    char probe[16];
    snprintf(probe, sizeof probe, "%.1f", 0.5);
    assert_string_equal(probe, "0,5"); /* the locale is in effect */

    nc_metrics *m = hand_metrics(ctx);
    nc_report *r = hand_report(ctx, m);
    char *dir = tmp_dir("report-de");
    assert_int_equal(nc_report_write(r, dir), NC_OK);
    nc_history *h = make_history(ctx, 3);
    char *csv = path_in(dir, "h.csv");
    assert_int_equal(nc_history_write_csv(h, csv), NC_OK);
    nc_history *back = NULL;
    assert_int_equal(nc_history_read_csv(ctx, csv, &back), NC_OK);
    nc_epoch_record a, b;
    assert_int_equal(nc_history_get(h, 2, &a), NC_OK);
    assert_int_equal(nc_history_get(back, 2, &b), NC_OK);
    assert_true(a.train_loss == b.train_loss && a.images_per_sec == b.images_per_sec);
    tu_c_locale();

    char *text = tu_read_file(csv, NULL);
    assert_non_null(strstr(text, "\n3,0.66666666666666663,"));
    free(text);
    char *sp = path_in(dir, "summary.txt");
    text = tu_read_file(sp, NULL);
    assert_contains(text, "accuracy (top-1)      0.7000");
    assert_contains(text, "  lr          0.05\n");
    free(text);
    free(sp);
    char *cv = path_in(dir, "curves.svg");
    text = tu_read_file(cv, NULL);
    assert_null(strstr(text, "0,5"));
    free(text);
    free(cv);
    char *jp = path_in(dir, "report.json");
    cJSON *j = parse_file(jp);
    check_hand_entry(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "evaluations"), 0));
    cJSON_Delete(j);
    free(jp);
    char args[600];
    snprintf(args, sizeof args, "'%s'", dir);
    python_check(args);
    free(csv);
    nc_history_destroy(back);
    nc_history_destroy(h);
    rm_rf(dir);
    rm_rf(locdir);
    nc_report_destroy(r);
    nc_metrics_destroy(m);
}

static void test_report_out_of_memory(void **state) {
    tu_fx *fx = *state;
    nc_metrics *m = hand_metrics(fx->ctx);
    char *dir = tmp_dir("oom");
    int ok = 0;
    for (long f = 0; f < 400 && !ok; f++) {
        fx->cnt.calls = 0;
        fx->cnt.fail_after = f;
        nc_report *r = NULL;
        nc_history *h = NULL;
        nc_status st = nc_report_create(fx->ctx, &r);
        if (st == NC_OK) st = nc_report_set_string(r, "model", "resnet18");
        if (st == NC_OK) st = nc_report_set_number(r, "epochs", 3);
        if (st == NC_OK) st = nc_history_create(fx->ctx, &h);
        for (int e = 1; e <= 3 && st == NC_OK; e++) {
            nc_epoch_record rr = rec(e, 1, 0.5, 1, 0.5);
            st = nc_history_add(h, &rr);
        }
        if (st == NC_OK) st = nc_report_set_history(r, h);
        if (st == NC_OK) st = nc_report_add_metrics(r, "val", 0, m, NAMES3);
        if (st == NC_OK) st = nc_report_write(r, dir);
        size_t need;
        if (st == NC_OK) st = nc_report_summary(r, NULL, 0, &need);
        if (st == NC_OK) {
            ok = 1;
        } else if (st != NC_ERR_OUT_OF_MEMORY && st != NC_ERR_IO) {
            fail_msg("fail_after %ld: status %d (%s)", f, (int)st, nc_context_last_error(fx->ctx));
        }
        nc_history_destroy(h);
        nc_report_destroy(r);
    }
    fx->cnt.fail_after = -1;
    assert_true(ok);
    rm_rf(dir);
    nc_metrics_destroy(m);
}

#define FX(t) cmocka_unit_test_setup_teardown(t, tu_fx_setup, tu_fx_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        FX(test_history_add_get_truncate),
        FX(test_history_csv_round_trip_exact),
        FX(test_history_read_csv_rejects_malformed),
        FX(test_history_json_nan_is_null),
        FX(test_history_errors),
        FX(test_svg_training_curves),
        FX(test_svg_confusion_and_bars),
        FX(test_svg_many_classes_and_bad_text),
        FX(test_svg_errors),
        FX(test_report_json_hand_worked),
        FX(test_report_summary_text),
        FX(test_report_long_names_aligned),
        FX(test_report_errors),
        FX(test_report_locale_independent),
        FX(test_report_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
