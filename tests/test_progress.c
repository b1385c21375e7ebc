/* test_progress.c — the progress callback and cancellation (nc_context_set_progress):
 * each reporting call stopped after k units returns NC_ERR_CANCELLED with its message
 * and leaves everything consistent: a cancelled training epoch, checkpointed and
 * resumed in a fresh model and trainer, ends with the weights of an uninterrupted
 * epoch bit for bit; cancelled saves leave the old file byte for byte and no temporary
 * file; cancelled predictions keep the rows written; cancelled scans leak nothing. */
#include "testutil.h"

#include "neurc.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { PER_CLASS = 8, IMG = 8, CLASSES = 2, BATCH = 4, BATCHES = 2 * PER_CLASS / BATCH };

static char *g_root; /* /tmp/nc_test_<pid>_progress */

static char *path_of(const char *rel) { return tu_path_join(g_root, rel); }

/* data/{a,b}/NN.png (8 gray 8x8 images each) and data.csv listing them 10 times. */
static int group_setup(void **state) {
    (void)state;
    g_root = tu_tmp_path("progress");
    nc_context *ctx;
    if (mkdir(g_root, 0755) != 0 || nc_context_create(NULL, &ctx) != NC_OK) return -1;
    char rel[64];
    int rc = tu_mkdir_in(g_root, "data");
    for (int c = 0; c < CLASSES; c++) {
        snprintf(rel, sizeof rel, "data/%c", 'a' + c);
        rc |= tu_mkdir_in(g_root, rel);
        for (int i = 0; i < PER_CLASS; i++) {
            snprintf(rel, sizeof rel, "data/%c/%02d.png", 'a' + c, i);
            rc |= tu_write_gray_png(ctx, g_root, rel, IMG, c * PER_CLASS + i);
        }
    }
    char *p = path_of("data.csv");
    FILE *f = fopen(p, "w");
    free(p);
    if (!f) return -1;
    fprintf(f, "image,label\n");
    for (int r = 0; r < 10; r++)
        for (int i = 0; i < 2 * PER_CLASS; i++)
            fprintf(f, "data/%c/%02d.png,%d\n", 'a' + i / PER_CLASS, i % PER_CLASS, i / PER_CLASS);
    fclose(f);
    nc_context_destroy(ctx);
    return rc;
}

static int group_teardown(void **state) {
    (void)state;
    int rc = tu_remove_tree(g_root);
    free(g_root);
    return rc;
}

/* ---------------------------------------------------------------- the callback */

typedef struct probe {
    int64_t stop_at;       /* stop at the first report with done >= stop_at; < 0 never */
    nc_phase stop_phase;   /* only reports of this phase stop (0 = any) */
    int calls;
    nc_progress last;      /* the last report seen */
    int64_t prev_done;
    int monotonic;         /* done never went down */
} probe;

static int on_progress(const nc_progress *p, void *user) {
    probe *pr = user;
    assert_true(p->struct_size >= sizeof(nc_progress));
    if (pr->calls && p->phase == pr->last.phase && p->done < pr->prev_done) pr->monotonic = 0;
    pr->calls++;
    pr->last = *p;
    pr->prev_done = p->done;
    if (pr->stop_phase && p->phase != pr->stop_phase) return NC_PROGRESS_CONTINUE;
    return pr->stop_at >= 0 && p->done >= pr->stop_at ? NC_PROGRESS_STOP : NC_PROGRESS_CONTINUE;
}

static probe probe_at(int64_t stop_at) { return (probe){.stop_at = stop_at, .monotonic = 1}; }

static nc_context *fx_ctx(void **state) { return ((tu_fx *)*state)->ctx; }

static void assert_cancelled(nc_context *ctx, nc_status st, const char *fn) {
    assert_int_equal(st, NC_ERR_CANCELLED);
    const char *msg = nc_context_last_error(ctx);
    assert_non_null(strstr(msg, fn));
    assert_non_null(strstr(msg, "cancelled by the progress callback"));
}

/* ------------------------------------------------------------- shared set-up */

static nc_dataset *open_data(nc_context *ctx) {
    nc_dataset *ds = NULL;
    char *p = path_of("data");
    assert_int_equal(nc_dataset_open_folder(ctx, p, NULL, &ds), NC_OK);
    free(p);
    return ds;
}

static nc_loader *make_loader(nc_dataset *ds, int workers) {
    nc_loader_options lo;
    nc_loader_options_init(&lo);
    lo.batch_size = BATCH;
    lo.workers = workers;
    lo.seed = 5;
    nc_loader *l = NULL;
    assert_int_equal(nc_loader_create(ds, NULL, &lo, &l), NC_OK);
    return l;
}

static nc_model *make_model(nc_context *ctx) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.width = 4;
    mo.num_classes = CLASSES;
    mo.in_channels = 1;
    mo.seed = 11;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    return m;
}

static nc_trainer *make_trainer(nc_model *m) {
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.lr = 0.05f;
    to.optimizer = NC_OPTIMIZER_ADAM;
    nc_trainer *t = NULL;
    assert_int_equal(nc_trainer_create(m, &to, &t), NC_OK);
    return t;
}

/* Every tensor of m, concatenated (malloc'ed); *n gets the count. */
static float *all_tensors(nc_model *m, size_t *n) {
    size_t total = 0;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        total += (size_t)ti.numel;
    }
    float *v = tu_zeros(total), *cur = v;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        nc_model_tensor_info(m, i, &ti);
        assert_int_equal(nc_model_get_tensor(m, ti.name, cur, ti.numel), NC_OK);
        cur += ti.numel;
    }
    *n = total;
    return v;
}

/* ---------------------------------------------------------------------- cases */

static void test_progress_status_text(void **state) {
    (void)state;
    assert_int_equal(NC_ERR_CANCELLED, 13);
    assert_string_equal(nc_status_str(NC_ERR_CANCELLED), "cancelled by the progress callback");
    assert_int_equal(nc_context_set_progress(NULL, on_progress, NULL), NC_ERR_NULL);
}

/* A whole epoch reports start + one per step, done 0..BATCHES, with the running loss. */
static void test_train_epoch_reports_every_step(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_data(ctx);
    nc_loader *l = make_loader(ds, 2);
    nc_model *m = make_model(ctx);
    nc_trainer *t = make_trainer(m);
    probe pr = probe_at(-1);
    assert_int_equal(nc_context_set_progress(ctx, on_progress, &pr), NC_OK);
    nc_epoch_stats es;
    nc_epoch_stats_init(&es);
    assert_int_equal(nc_trainer_train_epoch(t, l, 0, 0, &es), NC_OK);
    assert_int_equal(pr.calls, 1 + BATCHES);
    assert_true(pr.monotonic);
    assert_int_equal(pr.last.phase, NC_PHASE_TRAIN);
    assert_int_equal(pr.last.done, BATCHES);
    assert_int_equal(pr.last.total, BATCHES);
    assert_int_equal(pr.last.epoch, 0);
    assert_true(isfinite(pr.last.loss) && pr.last.metric >= 0.0 && pr.last.metric <= 1.0);
    assert_int_equal(es.batches, BATCHES);
    assert_int_equal(es.steps, BATCHES);
    assert_int_equal(es.samples, 2 * PER_CLASS);
    assert_int_equal(es.finished, 1);
    assert_float_equal(es.loss, pr.last.loss, 0.0);
    assert_int_equal(nc_trainer_num_steps(t), BATCHES);
    nc_context_set_progress(ctx, NULL, NULL);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

/* Stopped after k steps, checkpointed, resumed by a fresh model + trainer from the
 * file with start_batch = the batches consumed: the weights equal those of one
 * uninterrupted epoch, bit for bit. Then epoch 1 continues normally. */
static void test_train_epoch_cancel_and_resume(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_data(ctx);
    nc_loader *l = make_loader(ds, 2);
    for (int k = 0; k <= 3; k++) {
        nc_model *ma = make_model(ctx);
        nc_trainer *ta = make_trainer(ma);
        assert_int_equal(nc_trainer_train_epoch(ta, l, 0, 0, NULL), NC_OK);
        size_t n, n2;
        float *want = all_tensors(ma, &n);

        nc_model *mb = make_model(ctx);
        nc_trainer *tb = make_trainer(mb);
        probe pr = probe_at(k);
        nc_context_set_progress(ctx, on_progress, &pr);
        nc_epoch_stats es;
        nc_epoch_stats_init(&es);
        assert_cancelled(ctx, nc_trainer_train_epoch(tb, l, 0, 0, &es), "nc_trainer_train_epoch");
        nc_context_set_progress(ctx, NULL, NULL);
        assert_int_equal(es.batches, k);
        assert_int_equal(es.steps, k);
        assert_int_equal(es.finished, 0);
        assert_int_equal(nc_trainer_num_steps(tb), k);
        char *ck = tu_tmp_path("progress_ck.safetensors");
        nc_checkpoint_info info;
        nc_checkpoint_info_init(&info);
        info.epoch = 0;
        info.batch = es.batches;
        assert_int_equal(nc_trainer_save_checkpoint(tb, ck, &info), NC_OK);

        nc_model *mc = make_model(ctx);
        nc_trainer *tc = make_trainer(mc);
        nc_checkpoint_info back;
        nc_checkpoint_info_init(&back);
        assert_int_equal(nc_trainer_load_checkpoint(tc, ck, &back), NC_OK);
        assert_int_equal(back.batch, k);
        assert_int_equal(nc_trainer_train_epoch(tc, l, back.epoch, back.batch, &es), NC_OK);
        assert_int_equal(es.steps, BATCHES - k);
        assert_int_equal(es.batches, BATCHES);
        assert_int_equal(es.finished, 1);
        float *got = all_tensors(mc, &n2);
        assert_int_equal(n, n2);
        assert_memory_equal(got, want, n * sizeof *got);
        /* the next epoch goes on from there like the uninterrupted run's */
        assert_int_equal(nc_trainer_train_epoch(ta, l, 1, 0, NULL), NC_OK);
        assert_int_equal(nc_trainer_train_epoch(tc, l, 1, 0, NULL), NC_OK);
        free(want);
        free(got);
        want = all_tensors(ma, &n);
        got = all_tensors(mc, &n2);
        assert_memory_equal(got, want, n * sizeof *got);
        free(want);
        free(got);
        remove(ck);
        free(ck);
        nc_trainer_destroy(ta);
        nc_trainer_destroy(tb);
        nc_trainer_destroy(tc);
        nc_model_destroy(ma);
        nc_model_destroy(mb);
        nc_model_destroy(mc);
    }
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

static void test_train_epoch_bad_arguments(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_data(ctx);
    nc_loader *l = make_loader(ds, 0);
    nc_model *m = make_model(ctx);
    nc_trainer *t = make_trainer(m);
    nc_epoch_stats es;
    nc_epoch_stats_init(&es);
    assert_int_equal(nc_trainer_train_epoch(NULL, l, 0, 0, &es), NC_ERR_NULL);
    assert_int_equal(nc_trainer_train_epoch(t, NULL, 0, 0, &es), NC_ERR_NULL);
    assert_int_equal(nc_trainer_train_epoch(t, l, -1, 0, &es), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_trainer_train_epoch(t, l, 0, -2, &es), NC_ERR_INVALID_ARGUMENT);
    es.struct_size = 3;
    assert_int_equal(nc_trainer_train_epoch(t, l, 0, 0, &es), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "struct_size"));
    /* a start past the end trains nothing */
    nc_epoch_stats_init(&es);
    assert_int_equal(nc_trainer_train_epoch(t, l, 0, 99, &es), NC_OK);
    assert_int_equal(es.steps, 0);
    assert_int_equal(nc_trainer_num_steps(t), 0);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

/* Stopped after 2 batches: the 2 * BATCH rows written equal an uncancelled run's;
 * EVALUATE with labels (running accuracy), PREDICT without. */
static void test_predict_loader_cancel_keeps_rows(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_dataset *ds = open_data(ctx);
    nc_loader *l = make_loader(ds, 2);
    nc_model *m = make_model(ctx);
    const int K = nc_model_num_outputs(m);
    float *want = tu_zeros(2 * PER_CLASS * (size_t)K), *got = tu_zeros(2 * PER_CLASS * (size_t)K);
    int32_t labels[2 * PER_CLASS];
    int64_t count = -1;
    assert_int_equal(nc_model_predict_loader(m, l, 0, want, NULL, 2 * PER_CLASS, &count), NC_OK);
    probe pr = probe_at(2);
    nc_context_set_progress(ctx, on_progress, &pr);
    assert_cancelled(ctx, nc_model_predict_loader(m, l, 0, got, labels, 2 * PER_CLASS, &count),
                     "nc_model_predict_loader");
    assert_int_equal(count, 2 * BATCH);
    assert_int_equal(pr.last.phase, NC_PHASE_EVALUATE);
    assert_int_equal(pr.last.total, BATCHES);
    assert_true(pr.last.metric >= 0.0 && pr.last.metric <= 1.0);
    assert_memory_equal(got, want, (size_t)count * (size_t)K * sizeof *got);
    pr = probe_at(1);
    assert_cancelled(ctx, nc_model_predict_loader(m, l, 0, got, NULL, 2 * PER_CLASS, &count),
                     "nc_model_predict_loader");
    assert_int_equal(count, BATCH);
    assert_int_equal(pr.last.phase, NC_PHASE_PREDICT);
    assert_true(isnan(pr.last.metric));
    /* the loader starts afresh afterwards */
    pr = probe_at(-1);
    assert_int_equal(nc_model_predict_loader(m, l, 0, got, NULL, 2 * PER_CLASS, &count), NC_OK);
    assert_memory_equal(got, want, 2 * PER_CLASS * (size_t)K * sizeof *got);
    nc_context_set_progress(ctx, NULL, NULL);
    free(want);
    free(got);
    nc_model_destroy(m);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

/* Number of entries of dir whose name contains `part`. */
static int count_entries(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

/* A save stopped after its bytes were written (before the rename), and one stopped
 * before any byte: the earlier file is unchanged and no temporary file is left. */
static void test_save_cancel_keeps_old_file(void **state) {
    nc_context *ctx = fx_ctx(state);
    nc_model *m = make_model(ctx);
    nc_trainer *t = make_trainer(m);
    char *dir = path_of("save");
    mkdir(dir, 0755);
    char *mpath = path_of("save/model.safetensors"), *cpath = path_of("save/last.safetensors");
    assert_int_equal(nc_model_save(m, mpath), NC_OK);
    assert_int_equal(nc_trainer_save_checkpoint(t, cpath, NULL), NC_OK);
    size_t msize, csize, n;
    char *mold = tu_read_file(mpath, &msize), *cold = tu_read_file(cpath, &csize);
    float one = 1.0f;
    assert_int_equal(nc_model_set_tensor(m, "fc.bias", (float[]){one, one}, 2), NC_OK);
    for (int when = 0; when <= 1; when++) {
        probe pr = probe_at(when);
        nc_context_set_progress(ctx, on_progress, &pr);
        assert_cancelled(ctx, nc_model_save(m, mpath), "nc_model_save");
        assert_int_equal(pr.last.phase, NC_PHASE_SAVE);
        assert_string_equal(pr.last.what, mpath);
        assert_true(pr.last.total > 0);
        assert_cancelled(ctx, nc_trainer_save_checkpoint(t, cpath, NULL), "nc_trainer_save_checkpoint");
        nc_context_set_progress(ctx, NULL, NULL);
        char *now = tu_read_file(mpath, &n);
        assert_int_equal(n, msize);
        assert_memory_equal(now, mold, n);
        free(now);
        now = tu_read_file(cpath, &n);
        assert_int_equal(n, csize);
        assert_memory_equal(now, cold, n);
        free(now);
        assert_int_equal(count_entries(dir, ".tmp."), 0);
    }
    /* with a callback that lets it run, the save happens and reports done == total */
    probe pr = probe_at(-1);
    nc_context_set_progress(ctx, on_progress, &pr);
    assert_int_equal(nc_model_save(m, mpath), NC_OK);
    nc_context_set_progress(ctx, NULL, NULL);
    assert_int_equal(pr.last.done, pr.last.total);
    nc_model *back = NULL;
    assert_int_equal(nc_model_load(ctx, mpath, &back), NC_OK);
    nc_model_destroy(back);
    free(mold);
    free(cold);
    free(mpath);
    free(cpath);
    free(dir);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
}

/* Folder and CSV opens and the channel statistics stop cleanly (the fixture checks
 * that nothing leaks) and say how far they got. */
static void test_scans_cancel(void **state) {
    nc_context *ctx = fx_ctx(state);
    char *root = path_of("data"), *csv = path_of("data.csv");
    nc_dataset *ds = (nc_dataset *)1;
    probe pr = probe_at(1);
    nc_context_set_progress(ctx, on_progress, &pr);
    assert_cancelled(ctx, nc_dataset_open_folder(ctx, root, NULL, &ds), "nc_dataset_open_folder");
    assert_null(ds);
    assert_int_equal(pr.last.phase, NC_PHASE_SCAN);
    assert_int_equal(pr.last.total, CLASSES);
    assert_non_null(strstr(nc_context_last_error(ctx), "after 1 of 2 class folders"));
    pr = probe_at(64);
    ds = (nc_dataset *)1;
    assert_cancelled(ctx, nc_dataset_open_csv(ctx, csv, NULL, &ds), "nc_dataset_open_csv");
    assert_null(ds);
    assert_int_equal(pr.last.total, -1);
    assert_non_null(strstr(nc_context_last_error(ctx), "after 64 rows"));
    pr = probe_at(-1);
    assert_int_equal(nc_dataset_open_csv(ctx, csv, NULL, &ds), NC_OK);
    assert_int_equal(nc_dataset_size(ds), 10 * 2 * PER_CLASS);
    nc_dataset_destroy(ds);

    ds = open_data(ctx);
    float mean[1] = {-1.0f}, sd[1] = {-1.0f};
    pr = probe_at(3);
    assert_cancelled(ctx, nc_dataset_channel_stats(ds, NULL, 0, NULL, mean, sd), "nc_dataset_channel_stats");
    assert_true(mean[0] == -1.0f && sd[0] == -1.0f);
    assert_int_equal(pr.last.total, 2 * PER_CLASS);
    pr = probe_at(-1);
    assert_int_equal(nc_dataset_channel_stats(ds, NULL, 0, NULL, mean, sd), NC_OK);
    assert_int_equal(pr.last.done, 2 * PER_CLASS);
    nc_context_set_progress(ctx, NULL, NULL);
    nc_dataset_destroy(ds);
    free(root);
    free(csv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_status_text),
        cmocka_unit_test_setup_teardown(test_train_epoch_reports_every_step, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_train_epoch_cancel_and_resume, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_train_epoch_bad_arguments, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_predict_loader_cancel_keeps_rows, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_save_cancel_keeps_old_file, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_scans_cancel, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
