/* test_alloc_fail.c — allocation-failure sweeps: for every k, the k-th allocation
 * through the context's hooks fails (once, and from k on), in model create + forward,
 * model load, weight load, trainer create + steps, checkpoint save and load, and the
 * data path (PNG folder + loader, gzip IDX pair), the ONNX export, raw-input forward
 * and saliency. Each attempt must return NC_OK or NC_ERR_OUT_OF_MEMORY with a message,
 * leave nothing allocated, and change nothing it did not finish (weights, checkpoint
 * file, ONNX file). Run under ASan too (docs/reliability.md). */
#include "testutil.h"

#include "neurc.h"
#include "nc_config.h"

#include <dirent.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if HAVE_ZLIB
#include <zlib.h>
#endif

#define H 28
#define CLASSES 3
#define BATCH 2

/* An operation under test: does its whole job on ctx and frees what it made. */
typedef nc_status (*op_fn)(nc_context *ctx, void *user);
/* Checked after each attempt (st is its status); may be NULL. */
typedef void (*check_fn)(nc_context *ctx, void *user, nc_status st);

typedef struct sweep_stats {
    long allocs;    /* allocations of one successful run */
    long oom;       /* attempts that failed with NC_ERR_OUT_OF_MEMORY */
    long survived;  /* one-shot attempts that succeeded anyway (a fallback) */
} sweep_stats;

/* The attempt being checked, for messages. */
static long cur_k = -1;
static int cur_once;
static char cur_msg[1024];

/* a[n] == b[n] bytes, else a failure naming the attempt. */
static void same(const void *a, const void *b, size_t n, const char *what, nc_status st) {
    if (memcmp(a, b, n) != 0)
        fail_msg("%s differ after the attempt failing allocation %ld%s (status %d: %s)", what, cur_k + 1,
                 cur_once ? " once" : " and on", (int)st, cur_msg);
}

static void attempt(tu_fx *f, op_fn op, check_fn check, void *user, const char *what, long k, int once,
                    sweep_stats *s) {
    const long base = f->cnt.live;
    f->cnt.fail_after = f->cnt.calls + k;
    f->cnt.fail_once = once;
    cur_k = k;
    cur_once = once;
    nc_status st = op(f->ctx, user);
    f->cnt.fail_after = -1;
    f->cnt.fail_once = 0;
    if (st != NC_OK && st != NC_ERR_OUT_OF_MEMORY)
        fail_msg("%s, allocation %ld fails%s: status %d (%s): %s", what, k + 1, once ? " (once)" : " (and on)",
                 (int)st, nc_status_str(st), nc_context_last_error(f->ctx));
    if (st == NC_ERR_OUT_OF_MEMORY) {
        s->oom++;
        if (nc_context_last_error(f->ctx)[0] == 0) fail_msg("%s, allocation %ld: no message", what, k + 1);
    } else if (once) {
        s->survived++;
    }
    if (f->cnt.live != base)
        fail_msg("%s, allocation %ld fails%s: %ld allocations leaked", what, k + 1, once ? " (once)" : " (and on)",
                 f->cnt.live - base);
    snprintf(cur_msg, sizeof cur_msg, "%s", nc_context_last_error(f->ctx));
    if (check) check(f->ctx, user, st);
}

/* Runs op once to count its allocations, then fails each of them in turn: once
 * (the rest succeed), and from there on (every later one fails too). */
static sweep_stats sweep(tu_fx *f, op_fn op, check_fn check, void *user, const char *what) {
    sweep_stats s = {0};
    long c0 = f->cnt.calls, base = f->cnt.live;
    nc_status st = op(f->ctx, user);
    if (st != NC_OK) fail_msg("%s: status %d: %s", what, (int)st, nc_context_last_error(f->ctx));
    assert_int_equal(f->cnt.live, base);
    s.allocs = f->cnt.calls - c0;
    cur_k = -1;
    if (check) check(f->ctx, user, st);
    assert_true(s.allocs > 0);
    for (int once = 1; once >= 0; once--)
        for (long k = 0; k < s.allocs; k++) attempt(f, op, check, user, what, k, once, &s);
    print_message("%s: %ld allocations, %ld failures gave NC_ERR_OUT_OF_MEMORY, %ld one-shot failures "
                  "were absorbed\n",
                  what, s.allocs, s.oom, s.survived);
    return s;
}

/* ------------------------------------------------------------------ models */

static nc_status make_model(nc_context *ctx, nc_model **m) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "simple_cnn";
    o.num_classes = CLASSES;
    o.in_channels = 1;
    o.width = 4;
    return nc_model_create(ctx, &o, m);
}

static const float *input(void) {
    static float x[BATCH * H * H];
    static int done;
    if (!done) tu_fill_uniform(x, sizeof x / sizeof x[0], -1.0f, 1.0f, 7);
    done = 1;
    return x;
}

static const int32_t labels[BATCH] = {0, 2};

static nc_status op_create_forward(nc_context *ctx, void *user) {
    (void)user;
    nc_model *m = NULL;
    float logits[BATCH * CLASSES];
    nc_status st = make_model(ctx, &m);
    if (st == NC_OK) st = nc_model_forward(m, input(), BATCH, 1, H, H, logits);
    nc_model_destroy(m);
    return st;
}

static void test_alloc_model_create_forward(void **state) {
    sweep(*state, op_create_forward, NULL, NULL, "model create + forward");
}

static char *saved_model(nc_context *ctx, const char *name, uint64_t seed) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "simple_cnn";
    o.num_classes = CLASSES;
    o.in_channels = 1;
    o.width = 4;
    o.seed = seed;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    const char *names[CLASSES] = {"alpha", "beta", "gamma"};
    assert_int_equal(nc_model_set_class_names(m, names, CLASSES), NC_OK);
    char *path = tu_tmp_path(name);
    assert_int_equal(nc_model_save(m, path), NC_OK);
    nc_model_destroy(m);
    return path;
}

static nc_status op_load(nc_context *ctx, void *user) {
    nc_model *m = NULL;
    float logits[BATCH * CLASSES];
    nc_status st = nc_model_load(ctx, user, &m);
    if (st == NC_OK) st = nc_model_forward(m, input(), BATCH, 1, H, H, logits);
    nc_model_destroy(m);
    return st;
}

static void test_alloc_model_load(void **state) {
    tu_fx *f = *state;
    char *path = saved_model(f->ctx, "alloc_model.safetensors", 1);
    sweep(f, op_load, NULL, path, "model load + forward");
    unlink(path);
    free(path);
}

/* Weight load into a live model: a failed load leaves the previous weights. */
typedef struct weights_case {
    nc_model *m;
    const char *path;
    float before[BATCH * CLASSES], loaded[BATCH * CLASSES];
} weights_case;

static void logits_of(nc_model *m, float *out) {
    assert_int_equal(nc_model_forward(m, input(), BATCH, 1, H, H, out), NC_OK);
}

static nc_status op_load_weights(nc_context *ctx, void *user) {
    (void)ctx;
    weights_case *c = user;
    return nc_model_load_weights(c->m, c->path, 1, NULL);
}

static void check_weights(nc_context *ctx, void *user, nc_status st) {
    (void)ctx;
    weights_case *c = user;
    float now[BATCH * CLASSES];
    logits_of(c->m, now);
    same(now, st == NC_OK ? c->loaded : c->before, sizeof now, "logits", st);
    if (st == NC_OK) { /* back to the old weights for the next attempt */
        nc_model *fresh = NULL;
        assert_int_equal(make_model(ctx, &fresh), NC_OK);
        nc_model_destroy(c->m);
        c->m = fresh;
        logits_of(c->m, now);
        assert_memory_equal(now, c->before, sizeof now);
    }
}

static void test_alloc_model_load_weights(void **state) {
    tu_fx *f = *state;
    weights_case c = {0};
    char *path = saved_model(f->ctx, "alloc_weights.safetensors", 99);
    c.path = path;
    nc_model *other = NULL;
    assert_int_equal(nc_model_load(f->ctx, path, &other), NC_OK);
    logits_of(other, c.loaded);
    nc_model_destroy(other);
    assert_int_equal(make_model(f->ctx, &c.m), NC_OK);
    logits_of(c.m, c.before);
    assert_memory_not_equal(c.before, c.loaded, sizeof c.before);
    sweep(f, op_load_weights, check_weights, &c, "weight load");
    nc_model_destroy(c.m);
    unlink(path);
    free(path);
}

/* ---------------------------------------------------------------- training */

/* The same sweep on oneDNN: our own allocations (backend state, node caches, scratch
 * and arenas) go through the hooks; oneDNN's internal ones (primitive caches, JIT
 * code) do not and are not counted here (docs/reliability.md). */
static int onednn_setup(void **state) {
    tu_fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    f->cnt.fail_after = -1;
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_ONEDNN;
    o.num_threads = 1;
    o.allocator.alloc = tu_count_alloc;
    o.allocator.free = tu_count_free;
    o.allocator.user = &f->cnt;
    if (nc_context_create(&o, &f->ctx) != NC_OK) f->ctx = NULL; /* skipped in the case */
    f->base = f->cnt.live;
    *state = f;
    return 0;
}

static int onednn_teardown(void **state) {
    tu_fx *f = *state;
    if (!f->ctx) {
        free(f);
        return 0;
    }
    f->base = f->cnt.live; /* the backend's grown scratch: freed with the context, checked there */
    return tu_fx_teardown(state);
}

static nc_status make_trainer(nc_model *m, nc_trainer **t) {
    nc_trainer_options o;
    nc_trainer_options_init(&o);
    o.optimizer = NC_OPTIMIZER_ADAM;
    o.lr = 0.01f;
    return nc_trainer_create(m, &o, t);
}

static nc_status op_train(nc_context *ctx, void *user) {
    (void)user;
    nc_model *m = NULL;
    nc_trainer *t = NULL;
    nc_step_stats s;
    nc_status st = make_model(ctx, &m);
    if (st == NC_OK) st = make_trainer(m, &t);
    for (int i = 0; st == NC_OK && i < 2; i++) st = nc_trainer_step(t, input(), labels, BATCH, 1, H, H, &s);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    return st;
}

static void test_alloc_train_step(void **state) {
    sweep(*state, op_train, NULL, NULL, "trainer create + 2 steps");
}

/* A step on a live trainer: a failed step leaves the weights as they were. The
 * failures reach model and trainer creation too; the forward passes that measure
 * the weights run with allocation failures turned off (a kernel without scratch
 * falls back to loops that round differently). */
static nc_status op_step(nc_context *ctx, void *user) {
    tu_fx *f = user;
    nc_model *m = NULL;
    nc_trainer *t = NULL;
    nc_step_stats s;
    float before[BATCH * CLASSES], now[BATCH * CLASSES];
    nc_status st = make_model(ctx, &m);
    if (st == NC_OK) st = make_trainer(m, &t);
    if (st == NC_OK) { /* exact logits: no kernel falls back for want of scratch here */
        const long fail_after = f->cnt.fail_after;
        f->cnt.fail_after = -1;
        logits_of(m, before);
        f->cnt.fail_after = fail_after;
    }
    if (st == NC_OK) {
        st = nc_trainer_step(t, input(), labels, BATCH, 1, H, H, &s);
        f->cnt.fail_after = -1;
        logits_of(m, now);
        if (st == NC_OK && memcmp(now, before, sizeof now) == 0) fail_msg("a step that succeeded changed nothing");
        if (st != NC_OK) same(now, before, sizeof now, "logits after a failed step", st);
    }
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    return st;
}

static void test_alloc_step_keeps_weights(void **state) {
    tu_fx *f = *state;
    sweep(f, op_step, NULL, f, "model + trainer + first step");
}

static void test_alloc_onednn_train_step(void **state) {
    SKIP_WITHOUT_ONEDNN();
    tu_fx *f = *state;
    if (!f->ctx) {
        print_message("the onednn backend cannot start here: skipped\n");
        skip();
    }
    /* the backend keeps its grown scratch buffers in the context: grow them first,
     * so that the sweeps' leak checks see only what an operation must give back */
    assert_int_equal(op_train(f->ctx, NULL), NC_OK);
    sweep(f, op_create_forward, NULL, NULL, "onednn: model create + forward");
    sweep(f, op_train, NULL, NULL, "onednn: trainer create + 2 steps");
    sweep(f, op_step, NULL, f, "onednn: model + trainer + first step");
}

/* With several kernel threads the hooks are still only called from the thread that
 * called the library (the loader's workers aside): custom hooks need no locking for
 * training and inference from one thread. */
typedef struct thread_hooks {
    pthread_t owner;
    long calls, foreign;
} thread_hooks;

static void *owner_alloc(void *user, size_t size, size_t align) {
    thread_hooks *h = user;
    h->calls++;
    if (!pthread_equal(pthread_self(), h->owner)) __atomic_add_fetch(&h->foreign, 1, __ATOMIC_RELAXED);
    void *p = NULL;
    return posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1) == 0 ? p : NULL;
}

static void owner_free(void *user, void *ptr) {
    thread_hooks *h = user;
    if (!pthread_equal(pthread_self(), h->owner)) __atomic_add_fetch(&h->foreign, 1, __ATOMIC_RELAXED);
    free(ptr);
}

static void test_alloc_hooks_on_calling_thread(void **state) {
    (void)state;
    thread_hooks h = {pthread_self(), 0, 0};
    nc_context_options o;
    nc_context_options_init(&o);
    o.backend = NC_BACKEND_REF;
    o.num_threads = 4;
    o.allocator.alloc = owner_alloc;
    o.allocator.free = owner_free;
    o.allocator.user = &h;
    nc_context *ctx = NULL;
    assert_int_equal(nc_context_create(&o, &ctx), NC_OK);
    enum { N = 16 }; /* enough images for the convolutions to use worker threads */
    float *x = tu_rand((size_t)N * H * H, -1.0f, 1.0f, 3);
    int32_t lab[N] = {0};
    nc_model *m = NULL;
    nc_trainer *t = NULL;
    nc_step_stats s;
    assert_int_equal(make_model(ctx, &m), NC_OK);
    assert_int_equal(make_trainer(m, &t), NC_OK);
    assert_int_equal(nc_trainer_step(t, x, lab, N, 1, H, H, &s), NC_OK);
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    free(x);
    assert_true(h.calls > 0);
    assert_int_equal(h.foreign, 0);
}

/* Checkpoint save over an earlier checkpoint: a failed save leaves it as it was and
 * no temporary file behind. */
typedef struct ckpt_case {
    nc_model *m;
    nc_trainer *t;
    char *path;
    char *old;         /* the earlier file's bytes */
    size_t old_size;
} ckpt_case;

static nc_status op_save(nc_context *ctx, void *user) {
    (void)ctx;
    ckpt_case *c = user;
    nc_checkpoint_info info;
    nc_checkpoint_info_init(&info);
    info.epoch = 3;
    return nc_trainer_save_checkpoint(c->t, c->path, &info);
}

static int temp_files_left(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[512], prefix[256];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

static void check_save(nc_context *ctx, void *user, nc_status st) {
    ckpt_case *c = user;
    size_t size = 0;
    char *now = tu_read_file(c->path, &size);
    assert_non_null(now);
    assert_int_equal(temp_files_left(c->path), 0);
    if (st != NC_OK) {
        assert_int_equal(size, c->old_size);
        same(now, c->old, size, "checkpoint file bytes", st);
    } else { /* a whole checkpoint; the earlier one again for the next attempt */
        nc_model *m = NULL;
        assert_int_equal(nc_model_load(ctx, c->path, &m), NC_OK);
        nc_model_destroy(m);
        FILE *fp = fopen(c->path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(c->old, 1, c->old_size, fp), c->old_size);
        fclose(fp);
    }
    free(now);
}

static void ckpt_setup(tu_fx *f, ckpt_case *c) {
    nc_step_stats s;
    assert_int_equal(make_model(f->ctx, &c->m), NC_OK);
    assert_int_equal(make_trainer(c->m, &c->t), NC_OK);
    assert_int_equal(nc_trainer_step(c->t, input(), labels, BATCH, 1, H, H, &s), NC_OK);
    c->path = tu_tmp_path("alloc_ckpt.safetensors");
    assert_int_equal(nc_trainer_save_checkpoint(c->t, c->path, NULL), NC_OK);
    c->old = tu_read_file(c->path, &c->old_size);
    assert_non_null(c->old);
    assert_int_equal(nc_trainer_step(c->t, input(), labels, BATCH, 1, H, H, &s), NC_OK); /* now differs */
}

static void ckpt_teardown(ckpt_case *c) {
    nc_trainer_destroy(c->t);
    nc_model_destroy(c->m);
    unlink(c->path);
    free(c->path);
    free(c->old);
}

static void test_alloc_checkpoint_save(void **state) {
    tu_fx *f = *state;
    ckpt_case c = {0};
    ckpt_setup(f, &c);
    sweep(f, op_save, check_save, &c, "checkpoint save");
    ckpt_teardown(&c);
}

/* Checkpoint load into a trainer: a failed load changes nothing (weights, and the
 * result of the next step). */
typedef struct load_case {
    nc_model *m;
    nc_trainer *t;
    const char *path;
    float before[BATCH * CLASSES], loaded[BATCH * CLASSES];
} load_case;

static nc_status op_ckpt_load(nc_context *ctx, void *user) {
    (void)ctx;
    load_case *c = user;
    nc_checkpoint_info info;
    nc_checkpoint_info_init(&info);
    nc_status st = nc_trainer_load_checkpoint(c->t, c->path, &info);
    if (st == NC_OK) assert_int_equal(info.epoch, 3);
    return st;
}

static void fresh_trainer(nc_context *ctx, load_case *c) {
    nc_trainer_destroy(c->t);
    nc_model_destroy(c->m);
    c->t = NULL;
    c->m = NULL;
    assert_int_equal(make_model(ctx, &c->m), NC_OK);
    assert_int_equal(make_trainer(c->m, &c->t), NC_OK);
}

static void check_ckpt_load(nc_context *ctx, void *user, nc_status st) {
    load_case *c = user;
    float now[BATCH * CLASSES];
    logits_of(c->m, now);
    same(now, st == NC_OK ? c->loaded : c->before, sizeof now, "logits", st);
    if (st == NC_OK) fresh_trainer(ctx, c);
}

static void test_alloc_checkpoint_load(void **state) {
    tu_fx *f = *state;
    ckpt_case save = {0};
    ckpt_setup(f, &save);
    nc_checkpoint_info info;
    nc_checkpoint_info_init(&info);
    info.epoch = 3;
    assert_int_equal(nc_trainer_save_checkpoint(save.t, save.path, &info), NC_OK);
    load_case c = {0};
    c.path = save.path;
    logits_of(save.m, c.loaded);
    fresh_trainer(f->ctx, &c);
    logits_of(c.m, c.before);
    sweep(f, op_ckpt_load, check_ckpt_load, &c, "checkpoint load");
    nc_trainer_destroy(c.t);
    nc_model_destroy(c.m);
    ckpt_teardown(&save);
}

/* -------------------------------------------------------------------- data */

/* root/<class>/<i>.png, 2 classes x 3 gray 28x28 images (written with a plain
 * context). Returns root (free it; remove with rm_folder). */
static char *png_folder(void) {
    char *root = tu_tmp_path("alloc_pngs");
    nc_context *ctx = tu_ref_context(1);
    char path[600];
    mkdir(root, 0700);
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/class%d", root, c);
        mkdir(path, 0700);
        for (int i = 0; i < 3; i++) {
            nc_image *img = NULL;
            assert_int_equal(nc_image_create(ctx, 1, H, H, &img), NC_OK);
            tu_fill_uniform(nc_image_data(img), H * H, 0.0f, 1.0f, (uint64_t)(10 * c + i));
            snprintf(path, sizeof path, "%s/class%d/%d.png", root, c, i);
            assert_int_equal(nc_png_write(ctx, path, img, i == 2 ? 16 : 8), NC_OK);
            nc_image_destroy(img);
        }
    }
    nc_context_destroy(ctx);
    return root;
}

static void rm_folder(char *root) {
    char path[600];
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/class%d/%d.png", root, c, i);
            unlink(path);
        }
        snprintf(path, sizeof path, "%s/class%d", root, c);
        rmdir(path);
    }
    rmdir(root);
    free(root);
}

typedef struct loader_case {
    const char *root;
    int workers;
} loader_case;

static nc_status op_loader(nc_context *ctx, void *user) {
    loader_case *c = user;
    nc_dataset *ds = NULL;
    nc_transform *t = NULL;
    nc_loader *l = NULL;
    nc_loader_options lo;
    nc_loader_options_init(&lo);
    lo.batch_size = 4;
    lo.workers = c->workers;
    lo.prefetch = 1;
    nc_status st = nc_dataset_open_folder(ctx, c->root, NULL, &ds);
    if (st == NC_OK) st = nc_transform_create(ctx, &t);
    if (st == NC_OK) st = nc_transform_add_hflip(t, 0.5f);
    if (st == NC_OK) st = nc_loader_create(ds, t, &lo, &l);
    int64_t seen = 0;
    nc_batch b;
    while (st == NC_OK && (st = nc_loader_next(l, &b)) == NC_OK && b.n > 0) seen += b.n;
    if (st == NC_OK) assert_int_equal(seen, 6);
    nc_loader_destroy(l);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
    return st;
}

static void test_alloc_loader_png_folder(void **state) {
    char *root = png_folder();
    loader_case c = {root, 0};
    sweep(*state, op_loader, NULL, &c, "PNG folder + loader (no workers)");
    rm_folder(root);
}

/* With worker threads the allocation order varies from run to run; each failure
 * must still come back as a status and nothing may leak. */
static void test_alloc_loader_workers(void **state) {
    char *root = png_folder();
    loader_case c = {root, 2};
    sweep(*state, op_loader, NULL, &c, "PNG folder + loader (2 workers)");
    rm_folder(root);
}

#if HAVE_ZLIB
static void write_gz(const char *path, const unsigned char *p, size_t n) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}
#endif

typedef struct idx_case {
    char *images, *labels;
} idx_case;

static nc_status op_idx(nc_context *ctx, void *user) {
    idx_case *c = user;
    nc_dataset *ds = NULL;
    nc_image *img = NULL;
    nc_status st = nc_dataset_open_idx(ctx, c->images, c->labels, &ds);
    if (st == NC_OK) assert_int_equal(nc_dataset_size(ds), 5);
    if (st == NC_OK) st = nc_dataset_get(ds, 4, &img);
    if (st == NC_OK) assert_float_equal(nc_image_data(img)[3], 7.0f / 255.0f, 1e-7);
    nc_image_destroy(img);
    nc_dataset_destroy(ds);
    return st;
}

static void test_alloc_idx_gz(void **state) {
#if HAVE_ZLIB
    unsigned char img[16 + 5 * 4 * 4], lab[8 + 5];
    const unsigned char ih[16] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 4};
    const unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, 5};
    memcpy(img, ih, 16);
    memcpy(lab, lh, 8);
    for (int i = 0; i < 5 * 16; i++) img[16 + i] = (unsigned char)(i % 16 + i / 16);
    for (int i = 0; i < 5; i++) lab[8 + i] = (unsigned char)(i % 2);
    idx_case c = {tu_tmp_path("alloc-images-idx3-ubyte.gz"), tu_tmp_path("alloc-labels-idx1-ubyte.gz")};
    write_gz(c.images, img, sizeof img);
    write_gz(c.labels, lab, sizeof lab);
    sweep(*state, op_idx, NULL, &c, "gzip IDX pair");
    unlink(c.images);
    unlink(c.labels);
    free(c.images);
    free(c.labels);
#else
    (void)state;
    skip();
#endif
}

/* ------------------------------------------------------------- ONNX export */

/* ONNX export (with BN folding, heads split, normalisation in the graph and metadata):
 * a failed export leaves the existing file as it was. */
typedef struct onnx_case {
    nc_model *m;
    char *path;
} onnx_case;

static nc_status op_onnx_export(nc_context *ctx, void *user) {
    (void)ctx;
    onnx_case *c = user;
    nc_onnx_options o;
    nc_onnx_options_init(&o);
    o.height = o.width = H;
    o.split_heads = o.normalize = o.fold_batchnorm = 1;
    return nc_model_export_onnx(c->m, c->path, &o);
}

static void write_old(const char *path) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
}

static void check_onnx_export(nc_context *ctx, void *user, nc_status st) {
    (void)ctx;
    onnx_case *c = user;
    size_t size = 0;
    char *data = tu_read_file(c->path, &size);
    assert_non_null(data);
    if (st != NC_OK) same(data, "old", 4, "the ONNX file", st);
    free(data);
    write_old(c->path); /* for the next attempt */
}

static void test_alloc_onnx_export(void **state) {
#if HAVE_ONNX
    tu_fx *f = *state;
    onnx_case c = {0};
    const char *names[CLASSES] = {"a", "b", "c"};
    const float mean[1] = {0.5f}, std[1] = {0.25f};
    assert_int_equal(make_model(f->ctx, &c.m), NC_OK);
    assert_int_equal(nc_model_set_class_names(c.m, names, CLASSES), NC_OK);
    assert_int_equal(nc_model_set_normalization(c.m, mean, std), NC_OK);
    c.path = tu_tmp_path("alloc_fail.onnx");
    write_old(c.path);
    sweep(f, op_onnx_export, check_onnx_export, &c, "ONNX export");
    unlink(c.path);
    free(c.path);
    nc_model_destroy(c.m);
#else
    (void)state;
    skip();
#endif
}
/* nc_model_forward_raw (u16, NHWC, 12-bit, normalised) on a fresh model. */
static nc_status op_forward_raw(nc_context *ctx, void *user) {
    (void)user;
    static uint16_t frame[BATCH * H * H];
    for (int i = 0; i < BATCH * H * H; i++) frame[i] = (uint16_t)(i * 37 % 4096);
    const float mean = 0.5f, sd = 0.25f;
    nc_model *m = NULL;
    float logits[BATCH * CLASSES];
    nc_status st = make_model(ctx, &m);
    if (st == NC_OK) st = nc_model_set_normalization(m, &mean, &sd);
    nc_input_desc d;
    nc_input_desc_init(&d);
    d.type = NC_ELEM_U16, d.layout = NC_LAYOUT_NHWC, d.max_value = 4095;
    d.n = BATCH, d.c = 1, d.h = H, d.w = H, d.data = frame;
    if (st == NC_OK) st = nc_model_forward_raw(m, &d, logits);
    nc_model_destroy(m);
    return st;
}

static void test_alloc_forward_raw(void **state) { sweep(*state, op_forward_raw, NULL, NULL, "forward_raw"); }

/* A saliency object made and used (Grad-CAM and input gradient). */
static nc_status op_saliency(nc_context *ctx, void *user) {
    (void)user;
    nc_model *m = NULL;
    nc_saliency *s = NULL;
    static float cam[BATCH * H * H], grad[BATCH * H * H];
    nc_status st = make_model(ctx, &m);
    if (st == NC_OK) st = nc_saliency_create(m, NULL, &s);
    if (st == NC_OK) st = nc_saliency_compute(s, input(), BATCH, 1, H, H, 0, NULL, NULL, cam, grad);
    nc_saliency_destroy(s);
    nc_model_destroy(m);
    return st;
}

static void test_alloc_saliency(void **state) { sweep(*state, op_saliency, NULL, NULL, "saliency"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_alloc_model_create_forward, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_model_load, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_model_load_weights, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_train_step, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_step_keeps_weights, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test(test_alloc_hooks_on_calling_thread),
        cmocka_unit_test_setup_teardown(test_alloc_onednn_train_step, onednn_setup, onednn_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_checkpoint_save, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_checkpoint_load, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_loader_png_folder, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_loader_workers, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_idx_gz, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_onnx_export, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_forward_raw, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_alloc_saliency, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
