/* test_checkpoint.c — trainer checkpoints: resuming from one is bit-for-bit the same
 * as never stopping (Adam + cosine + groups with a frozen phase, SGD momentum, and a
 * save between accumulated micro-batches), a checkpoint is also a model file, a writer
 * killed mid-write leaves the previous checkpoint whole, and every failure leaves the
 * trainer as it was. */
#include "testutil.h"

#include "neurc.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { B = 4, C = 1, H = 16, W = 16, CLASSES = 3, TOTAL = 7 };

static nc_context *ctx_new(void) {
    nc_context *ctx;
    assert_int_equal(nc_context_create(NULL, &ctx), NC_OK);
    return ctx;
}

static void small_options(nc_model_options *o) {
    nc_model_options_init(o);
    o->arch = "resnext";
    o->num_classes = CLASSES;
    o->in_channels = C;
    o->cardinality = 2;
    o->base_width = 4;
    o->blocks[0] = o->blocks[1] = o->blocks[2] = o->blocks[3] = 1;
    o->small_input = 1;
    o->block_dropout = 0.1f;
    o->head_dropout = 0.2f;
    o->seed = 5;
}

static nc_model *small_model(nc_context *ctx) {
    nc_model_options o;
    small_options(&o);
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    return m;
}

typedef struct run {
    nc_trainer *t;
    nc_schedule *s;
} run;

/* A trainer with two groups ("head" frozen until step 2), a cosine schedule. */
static run make_run(nc_model *m, nc_optimizer opt, int accum) {
    run r;
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.optimizer = opt;
    to.lr = opt == NC_OPTIMIZER_SGD ? 0.05f : 0.01f;
    to.momentum = 0.9f;
    to.weight_decay = 1e-4f;
    to.seed = 11;
    to.accumulation_steps = accum;
    assert_int_equal(nc_trainer_create(m, &to, &r.t), NC_OK);
    assert_int_equal(nc_trainer_add_group(r.t, "head", "fc", to.lr * 2, 0.0f), NC_OK);
    assert_int_equal(nc_trainer_freeze_group(r.t, "head", 1), NC_OK);
    nc_schedule_options so;
    nc_schedule_options_init(&so);
    so.kind = NC_SCHEDULE_COSINE;
    so.t_max = 10;
    so.warmup_steps = 2;
    assert_int_equal(nc_schedule_create(nc_model_context(m), &so, &r.s), NC_OK);
    assert_int_equal(nc_trainer_set_schedule(r.t, r.s), NC_OK);
    return r;
}

static void free_run(run *r) {
    nc_trainer_destroy(r->t);
    nc_schedule_destroy(r->s);
}

/* Training step k (its own batch); the schedule steps after every call. */
static float do_step(run *r, int k) {
    float x[B * C * H * W];
    int32_t y[B];
    tu_fill_uniform(x, sizeof x / sizeof *x, -1.0f, 1.0f, 1000u + (uint64_t)k);
    for (int i = 0; i < B; i++) y[i] = (k + i) % CLASSES;
    if (k == 2) assert_int_equal(nc_trainer_freeze_group(r->t, "head", 0), NC_OK);
    nc_step_stats s;
    assert_int_equal(nc_trainer_step(r->t, x, y, B, C, H, W, &s), NC_OK);
    assert_int_equal(nc_schedule_step(r->s, 0.0f), NC_OK);
    return s.loss;
}

/* All tensors of m, concatenated (num_batches_tracked through get_tensor as floats). */
static float *snapshot(nc_model *m, size_t *n) {
    size_t total = 0;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        total += (size_t)ti.numel;
    }
    float *v = malloc(total * sizeof *v), *cur = v;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        assert_int_equal(nc_model_get_tensor(m, ti.name, cur, ti.numel), NC_OK);
        cur += ti.numel;
    }
    *n = total;
    return v;
}

/* Runs TOTAL steps straight, then `split` steps + save + fresh objects + load + the
 * rest; the weights and the next loss must be identical. */
static void resume_case(nc_optimizer opt, int accum, int split, int reload_from_file) {
    char *path = tu_tmp_path("resume.safetensors");
    nc_context *ctx = ctx_new();
    /* straight */
    nc_model *a = small_model(ctx);
    run ra = make_run(a, opt, accum);
    for (int k = 0; k < TOTAL; k++) do_step(&ra, k);
    size_t na;
    float *wa = snapshot(a, &na);
    float next_a = do_step(&ra, TOTAL);
    free_run(&ra);
    nc_model_destroy(a);

    /* interrupted */
    nc_model *b = small_model(ctx);
    run rb = make_run(b, opt, accum);
    for (int k = 0; k < split; k++) do_step(&rb, k);
    nc_checkpoint_info info;
    nc_checkpoint_info_init(&info);
    info.epoch = 3;
    info.batch = split;
    info.best_metric = 0.25;
    info.best_epoch = 2;
    assert_int_equal(nc_trainer_save_checkpoint(rb.t, path, &info), NC_OK);
    free_run(&rb);
    nc_model_destroy(b);
    nc_context_destroy(ctx);

    ctx = ctx_new();
    nc_model *c;
    if (reload_from_file)
        assert_int_equal(nc_model_load(ctx, path, &c), NC_OK);
    else
        c = small_model(ctx);
    run rc = make_run(c, opt, accum);
    nc_checkpoint_info back;
    nc_checkpoint_info_init(&back);
    assert_int_equal(nc_trainer_load_checkpoint(rc.t, path, &back), NC_OK);
    assert_true(back.epoch == 3 && back.batch == split && back.best_metric == 0.25 && back.best_epoch == 2);
    assert_true(nc_trainer_num_steps(rc.t) == split);
    assert_true(nc_schedule_position(rc.s) == split);
    for (int k = split; k < TOTAL; k++) do_step(&rc, k);
    size_t nc;
    float *wc = snapshot(c, &nc);
    assert_int_equal(na, nc);
    assert_memory_equal(wa, wc, na * sizeof *wa);
    float next_c = do_step(&rc, TOTAL);
    assert_memory_equal(&next_a, &next_c, sizeof next_a);
    free_run(&rc);
    nc_model_destroy(c);
    nc_context_destroy(ctx);
    free(wa);
    free(wc);
    unlink(path);
    free(path);
}

static void test_checkpoint_resume_adam_exact(void **s) {
    (void)s;
    resume_case(NC_OPTIMIZER_ADAM, 1, 4, 0);
}

static void test_checkpoint_resume_sgd_momentum_exact(void **s) {
    (void)s;
    resume_case(NC_OPTIMIZER_SGD, 1, 1, 1); /* saved while "head" is still frozen */
}

static void test_checkpoint_resume_mid_accumulation_exact(void **s) {
    (void)s;
    resume_case(NC_OPTIMIZER_ADAMW, 2, 3, 1); /* 3 micro-batches: one update + half */
}

/* A checkpoint is a model file too: nc_model_load gives the same model, and NaN
 * metrics and NULL info survive. */
static void test_checkpoint_loads_as_model(void **s) {
    (void)s;
    char *path = tu_tmp_path("as_model.safetensors");
    nc_context *ctx = ctx_new();
    nc_model *m = small_model(ctx);
    run r = make_run(m, NC_OPTIMIZER_ADAM, 1);
    do_step(&r, 0);
    assert_int_equal(nc_trainer_save_checkpoint(r.t, path, NULL), NC_OK);
    nc_model *l;
    assert_int_equal(nc_model_load(ctx, path, &l), NC_OK);
    size_t n1, n2;
    float *v1 = snapshot(m, &n1), *v2 = snapshot(l, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(v1, v2, n1 * sizeof *v1);
    nc_checkpoint_info info;
    nc_checkpoint_info_init(&info);
    info.epoch = 99;
    assert_int_equal(nc_trainer_load_checkpoint(r.t, path, &info), NC_OK);
    assert_true(info.epoch == 0 && info.batch == 0 && isnan(info.best_metric));
    assert_int_equal(nc_trainer_load_checkpoint(r.t, path, NULL), NC_OK);
    free(v1);
    free(v2);
    nc_model_destroy(l);
    free_run(&r);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    unlink(path);
    free(path);
}

/* A program embedding the library may set LC_NUMERIC to a locale with a decimal
 * comma: the checkpoint's numbers (the best metric, the schedule's state) must still
 * be written with '.' and read back exactly. */
static void test_checkpoint_locale_independent(void **s) {
    (void)s;
    char *path = tu_tmp_path("locale.safetensors"), *locdir = tu_tmp_path("locale-defs");
    if (!tu_comma_locale(locdir)) {
        free(path);
        free(locdir);
        skip();
    }
    nc_context *ctx = ctx_new();
    nc_model *m = small_model(ctx);
    run r = make_run(m, NC_OPTIMIZER_ADAM, 1);
    do_step(&r, 0);
    nc_checkpoint_info info, back;
    nc_checkpoint_info_init(&info);
    info.epoch = 3;
    info.best_metric = 0.123456789012345;
    assert_int_equal(nc_trainer_save_checkpoint(r.t, path, &info), NC_OK);
    nc_checkpoint_info_init(&back);
    nc_status st = nc_trainer_load_checkpoint(r.t, path, &back);
    tu_c_locale();
    if (st != NC_OK) fail_msg("%s", nc_context_last_error(ctx));
    assert_true(back.epoch == 3 && back.best_metric == info.best_metric);
    size_t size;
    char *text = tu_read_file(path, &size);
    int found = 0; /* the header is text; the tensors after it may hold NULs */
    for (size_t i = 0; i + 17 <= size && !found; i++) found = memcmp(text + i, "0.123456789012345", 17) == 0;
    assert_true(found);
    free(text);
    free_run(&r);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    unlink(path);
    free(path);
    free(locdir);
}

/* Removes "<path>.tmp.*" files a killed writer left behind. */
static int remove_temps(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[512], prefix[512];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
    DIR *d = opendir(dir);
    int removed = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char full[1024];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            removed += unlink(full) == 0;
        }
    if (d) closedir(d);
    return removed;
}

static nc_model *big_model(nc_context *ctx) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "vgg11";
    o.num_classes = 10;
    o.in_channels = 3;
    o.small_input = 1;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    return m;
}

/* SIGKILL a child that rewrites a checkpoint in a loop, `rounds` times: the path
 * always holds a whole, loadable checkpoint. */
static void killed_writer_case(int big, int rounds) {
    char *path = tu_tmp_path("killed.safetensors");
    nc_context *ctx = ctx_new();
    nc_model *m = big ? big_model(ctx) : small_model(ctx);
    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.optimizer = NC_OPTIMIZER_ADAM;
    nc_trainer *t;
    assert_int_equal(nc_trainer_create(m, &to, &t), NC_OK);
    assert_int_equal(nc_trainer_save_checkpoint(t, path, NULL), NC_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(nc_trainer_save_checkpoint(t, path, NULL), NC_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double save_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    srand((unsigned)getpid());
    for (int round = 0; round < rounds; round++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            nc_checkpoint_info info;
            nc_checkpoint_info_init(&info);
            for (int64_t e = 0;; e++) {
                info.epoch = e;
                if (nc_trainer_save_checkpoint(t, path, &info) != NC_OK) _exit(3);
            }
        }
        /* somewhere inside the first few writes */
        double delay = save_s * (0.3 + 2.5 * (double)rand() / RAND_MAX);
        struct timespec ts = {(time_t)delay, (long)((delay - floor(delay)) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        nc_checkpoint_info info;
        nc_checkpoint_info_init(&info);
        assert_int_equal(nc_trainer_load_checkpoint(t, path, &info), NC_OK);
        assert_true(info.epoch >= 0);
    }
    remove_temps(path); /* debris of the killed writers: never read, safe to delete */
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    unlink(path);
    free(path);
}

static void test_checkpoint_killed_writer_keeps_old_file(void **s) {
    (void)s;
    killed_writer_case(1, 4); /* a 9M-parameter VGG: long writes */
}

/* The issue-15 goal: 100 kills at random points of the save, 100 loadable files. */
static void test_checkpoint_killed_writer_100_trials(void **s) {
    (void)s;
    killed_writer_case(0, 100);
}

/* Every tensor and the next step's loss, to show a failed load changed nothing. */
static void assert_unchanged(run *r, nc_model *m, const float *before, size_t n, float next_loss, int k) {
    size_t n2;
    float *now = snapshot(m, &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(before, now, n * sizeof *now);
    free(now);
    float loss = do_step(r, k);
    assert_memory_equal(&loss, &next_loss, sizeof loss);
}

static void test_checkpoint_load_errors(void **s) {
    (void)s;
    char *ck = tu_tmp_path("err_ck.safetensors"), *plain = tu_tmp_path("err_plain.safetensors");
    char *trunc = tu_tmp_path("err_trunc.safetensors"), *other = tu_tmp_path("err_other.safetensors");
    nc_context *ctx = ctx_new();

    /* a reference: the same training from a twin, to know the next loss */
    nc_model *twin = small_model(ctx);
    run rt = make_run(twin, NC_OPTIMIZER_ADAM, 1);
    for (int k = 0; k < 3; k++) do_step(&rt, k);
    assert_int_equal(nc_trainer_save_checkpoint(rt.t, ck, NULL), NC_OK);
    float next_loss = do_step(&rt, 3);
    free_run(&rt);
    nc_model_destroy(twin);

    nc_model *m = small_model(ctx);
    run r = make_run(m, NC_OPTIMIZER_ADAM, 1);
    for (int k = 0; k < 3; k++) do_step(&r, k);
    size_t n;
    float *before = snapshot(m, &n);
    assert_int_equal(nc_model_save(m, plain), NC_OK);

    /* missing file */
    assert_int_equal(nc_trainer_load_checkpoint(r.t, "/nonexistent/dir/ck.safetensors", NULL), NC_ERR_IO);
    /* a plain model file */
    assert_int_equal(nc_trainer_load_checkpoint(r.t, plain, NULL), NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(ctx), "not a checkpoint"));
    /* truncated */
    size_t size;
    char *bytes = tu_read_file(ck, &size);
    assert_non_null(bytes);
    FILE *f = fopen(trunc, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size / 2, f), size / 2);
    fclose(f);
    free(bytes);
    assert_int_equal(nc_trainer_load_checkpoint(r.t, trunc, NULL), NC_ERR_FORMAT);
    /* NULLs */
    assert_int_equal(nc_trainer_load_checkpoint(NULL, ck, NULL), NC_ERR_NULL);
    assert_int_equal(nc_trainer_load_checkpoint(r.t, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_trainer_save_checkpoint(NULL, ck, NULL), NC_ERR_NULL);
    assert_int_equal(nc_trainer_save_checkpoint(r.t, NULL, NULL), NC_ERR_NULL);
    nc_checkpoint_info bad;
    nc_checkpoint_info_init(&bad);
    bad.struct_size = 3;
    assert_int_equal(nc_trainer_load_checkpoint(r.t, ck, &bad), NC_ERR_INVALID_ARGUMENT);

    /* a different optimizer */
    {
        nc_model *o = small_model(ctx);
        run ro = make_run(o, NC_OPTIMIZER_SGD, 1);
        assert_int_equal(nc_trainer_save_checkpoint(ro.t, other, NULL), NC_OK);
        free_run(&ro);
        nc_model_destroy(o);
        assert_int_equal(nc_trainer_load_checkpoint(r.t, other, NULL), NC_ERR_FORMAT);
        assert_non_null(strstr(nc_context_last_error(ctx), "optimizer"));
    }
    /* different groups */
    {
        nc_model *o = small_model(ctx);
        nc_trainer_options to;
        nc_trainer_options_init(&to);
        to.optimizer = NC_OPTIMIZER_ADAM;
        nc_trainer *t;
        assert_int_equal(nc_trainer_create(o, &to, &t), NC_OK);
        assert_int_equal(nc_trainer_add_group(t, "head", "layer4", 0.1f, 0.0f), NC_OK);
        assert_int_equal(nc_trainer_save_checkpoint(t, other, NULL), NC_OK);
        nc_trainer_destroy(t);
        nc_model_destroy(o);
        assert_int_equal(nc_trainer_load_checkpoint(r.t, other, NULL), NC_ERR_FORMAT);
        assert_non_null(strstr(nc_context_last_error(ctx), "group"));
    }
    /* a different architecture: same arch name, other widths */
    {
        nc_model_options mo;
        small_options(&mo);
        mo.base_width = 8;
        nc_model *o;
        assert_int_equal(nc_model_create(ctx, &mo, &o), NC_OK);
        run ro = make_run(o, NC_OPTIMIZER_ADAM, 1);
        assert_int_equal(nc_trainer_save_checkpoint(ro.t, other, NULL), NC_OK);
        free_run(&ro);
        nc_model_destroy(o);
        nc_status st = nc_trainer_load_checkpoint(r.t, other, NULL);
        assert_true(st == NC_ERR_FORMAT || st == NC_ERR_SHAPE);
    }
    /* and another architecture altogether */
    {
        nc_model_options mo;
        nc_model_options_init(&mo);
        mo.arch = "simple_cnn";
        mo.num_classes = CLASSES;
        mo.in_channels = C;
        mo.width = 8;
        nc_model *o;
        assert_int_equal(nc_model_create(ctx, &mo, &o), NC_OK);
        nc_trainer_options to;
        nc_trainer_options_init(&to);
        to.optimizer = NC_OPTIMIZER_ADAM;
        nc_trainer *t;
        assert_int_equal(nc_trainer_create(o, &to, &t), NC_OK);
        assert_int_equal(nc_trainer_save_checkpoint(t, other, NULL), NC_OK);
        nc_trainer_destroy(t);
        nc_model_destroy(o);
        assert_int_equal(nc_trainer_load_checkpoint(r.t, other, NULL), NC_ERR_FORMAT);
        assert_non_null(strstr(nc_context_last_error(ctx), "architecture"));
    }
    /* after all that the trainer continues exactly as its twin did */
    assert_unchanged(&r, m, before, n, next_loss, 3);
    /* and the good checkpoint loads (into a trainer one step ahead: it goes back) */
    assert_int_equal(nc_trainer_load_checkpoint(r.t, ck, NULL), NC_OK);
    assert_true(nc_trainer_num_steps(r.t) == 3);

    free(before);
    free_run(&r);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    unlink(ck);
    unlink(plain);
    unlink(trunc);
    unlink(other);
    free(ck);
    free(plain);
    free(trunc);
    free(other);
}

int main(void) {
    /* NC_TEST_FILTER=test_checkpoint_locale* runs only the matching tests (the kill
     * trials take minutes) */
    if (getenv("NC_TEST_FILTER")) cmocka_set_test_filter(getenv("NC_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_resume_adam_exact),
        cmocka_unit_test(test_checkpoint_resume_sgd_momentum_exact),
        cmocka_unit_test(test_checkpoint_resume_mid_accumulation_exact),
        cmocka_unit_test(test_checkpoint_loads_as_model),
        cmocka_unit_test(test_checkpoint_locale_independent),
        cmocka_unit_test(test_checkpoint_killed_writer_keeps_old_file),
        cmocka_unit_test(test_checkpoint_killed_writer_100_trials),
        cmocka_unit_test(test_checkpoint_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
