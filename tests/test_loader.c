/* test_loader.c — nc_loader over folder and IDX datasets written to a temporary
 * directory: batches bit-identical whatever the number of workers, every sample once
 * per epoch, drop_last, seeded shuffles, decode and shape errors naming the file,
 * cancelling mid-epoch (restart, destroy with blocked workers) without leaks. */
#include "testutil.h"

#include "neurc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ fixtures */

static char *g_root; /* /tmp/nc_test_<pid>_loader */

static char *path_of(const char *rel) {
    size_t n = strlen(g_root) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", g_root, rel);
    return p;
}

static void make_dir(const char *rel) {
    char *p = path_of(rel);
    mkdir(p, 0755);
    free(p);
}

/* A c x h x w PNG whose pixels encode `tag`, so samples can be told apart. */
static void write_png_depth(nc_context *ctx, const char *rel, int c, int h, int w, int tag, int depth) {
    nc_image *img;
    assert_int_equal(nc_image_create(ctx, c, h, w, &img), NC_OK);
    float *d = nc_image_data(img);
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                d[((size_t)k * h + y) * w + x] = (float)((tag * 37 + k * 71 + y * 5 + x * 3) % 256) / 255.0f;
    if (depth == 16) /* values that need all 16 bits */
        for (size_t i = 0; i < (size_t)c * h * w; i++) d[i] = (float)((i * 7919u + (size_t)tag * 31u) % 65536u) / 65535.0f;
    char *p = path_of(rel);
    assert_int_equal(nc_png_write(ctx, p, img, depth), NC_OK);
    free(p);
    nc_image_destroy(img);
}

static void write_png(nc_context *ctx, const char *rel, int c, int h, int w, int tag) {
    write_png_depth(ctx, rel, c, h, w, tag, 8);
}

static void write_bytes(const char *rel, const void *data, size_t size) {
    char *p = path_of(rel);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
    free(p);
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

enum { IDX_N = 50, IDX_H = 8, IDX_W = 8, RGB_N = 15 };

/* An uncompressed IDX pair: IDX_N images of IDX_H x IDX_W, labels i % 10. */
static void write_idx(void) {
    size_t isz = 16 + (size_t)IDX_N * IDX_H * IDX_W;
    unsigned char *img = malloc(isz), lab[8 + IDX_N];
    put_be32(img, 0x00000803);
    put_be32(img + 4, IDX_N);
    put_be32(img + 8, IDX_H);
    put_be32(img + 12, IDX_W);
    for (size_t i = 0; i < (size_t)IDX_N * IDX_H * IDX_W; i++) img[16 + i] = (unsigned char)((i * 13) % 251);
    put_be32(lab, 0x00000801);
    put_be32(lab + 4, IDX_N);
    for (int i = 0; i < IDX_N; i++) lab[8 + i] = (unsigned char)(i % 10);
    write_bytes("images.idx", img, isz);
    write_bytes("labels.idx", lab, sizeof lab);
    free(img);
}

static int group_setup(void **state) {
    (void)state;
    g_root = tu_tmp_path("loader");
    nc_context *ctx;
    if (mkdir(g_root, 0755) != 0 || nc_context_create(NULL, &ctx) != NC_OK) return -1;
    char rel[256];
    /* rgb: 3 classes of 7, 5, 3 RGB images, 20 x 24 */
    const int per[3] = {7, 5, 3};
    const char *cls[3] = {"a", "b", "c"};
    make_dir("rgb");
    for (int c = 0, tag = 0; c < 3; c++) {
        snprintf(rel, sizeof rel, "rgb/%s", cls[c]);
        make_dir(rel);
        for (int i = 0; i < per[c]; i++, tag++) {
            snprintf(rel, sizeof rel, "rgb/%s/%02d.png", cls[c], i);
            write_png(ctx, rel, 3, 20, 24, tag);
        }
    }
    /* deep: 2 classes of 3 16-bit RGB images, 21 x 19 */
    make_dir("deep");
    make_dir("deep/a");
    make_dir("deep/b");
    for (int i = 0; i < 6; i++) {
        snprintf(rel, sizeof rel, "deep/%s/%02d.png", i < 3 ? "a" : "b", i);
        write_png_depth(ctx, rel, 3, 21, 19, i, 16);
    }
    /* mixed: a/ 3 images 20 x 24, b/ 2 images 16 x 16 */
    make_dir("mixed");
    make_dir("mixed/a");
    make_dir("mixed/b");
    for (int i = 0; i < 3; i++) {
        snprintf(rel, sizeof rel, "mixed/a/%02d.png", i);
        write_png(ctx, rel, 3, 20, 24, i);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(rel, sizeof rel, "mixed/b/%02d.png", i);
        write_png(ctx, rel, 3, 16, 16, 10 + i);
    }
    /* corrupt: 4 + 2 good gray images and b/zz_bad.png, a truncated PNG (index 6) */
    make_dir("corrupt");
    make_dir("corrupt/a");
    make_dir("corrupt/b");
    for (int i = 0; i < 6; i++) {
        snprintf(rel, sizeof rel, "corrupt/%s/%02d.png", i < 4 ? "a" : "b", i);
        write_png(ctx, rel, 1, 16, 16, i);
    }
    write_png(ctx, "corrupt/b/zz_bad.png", 1, 16, 16, 99);
    char *bad = path_of("corrupt/b/zz_bad.png");
    size_t size;
    char *bytes = tu_read_file(bad, &size);
    if (!bytes) return -1;
    write_bytes("corrupt/b/zz_bad.png", bytes, size / 2);
    free(bytes);
    free(bad);
    write_idx();
    nc_context_destroy(ctx);
    return 0;
}

static void remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *child = malloc(n);
            snprintf(child, n, "%s/%s", path, e->d_name);
            remove_tree(child);
            free(child);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int group_teardown(void **state) {
    (void)state;
    remove_tree(g_root);
    free(g_root);
    return 0;
}

/* ---------------------------------------------- contexts that count allocations */


typedef struct fixture {
    tu_counting cnt;
    nc_context *ctx;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (!(f->ctx = tu_counting_context(&f->cnt))) return -1;
    *state = f;
    return 0;
}

/* Fails when anything allocated through the context is still live. */
static int teardown(void **state) {
    fixture *f = *state;
    nc_context_destroy(f->ctx);
    long live = __atomic_load_n(&f->cnt.live, __ATOMIC_RELAXED);
    free(f);
    if (live != 0) {
        print_error("%ld allocations still live after the test\n", live);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------- helpers */

static nc_dataset *open_folder(nc_context *ctx, const char *rel) {
    char *p = path_of(rel);
    nc_dataset *ds;
    nc_status st = nc_dataset_open_folder(ctx, p, NULL, &ds);
    if (st != NC_OK) fail_msg("open %s: %s", p, nc_context_last_error(ctx));
    free(p);
    return ds;
}

static nc_dataset *open_idx(nc_context *ctx) {
    char *im = path_of("images.idx"), *lb = path_of("labels.idx");
    nc_dataset *ds;
    nc_status st = nc_dataset_open_idx(ctx, im, lb, &ds);
    if (st != NC_OK) fail_msg("open idx: %s", nc_context_last_error(ctx));
    free(im);
    free(lb);
    return ds;
}

static nc_loader *make_loader(nc_dataset *ds, const nc_transform *t, int batch, int workers, int prefetch,
                              int shuffle, int drop_last, uint64_t seed) {
    nc_loader_options o;
    nc_loader_options_init(&o);
    o.batch_size = batch;
    o.workers = workers;
    o.prefetch = prefetch;
    o.shuffle = shuffle;
    o.drop_last = drop_last;
    o.seed = seed;
    nc_loader *l;
    assert_int_equal(nc_loader_create(ds, t, &o, &l), NC_OK);
    return l;
}

/* Everything one epoch produced, batch after batch. */
typedef struct run {
    float *x;
    int32_t *labels;
    int64_t *idx;
    size_t n, nx;
    int sizes[256];
    int nbatches, c, h, w, heads;
} run;

static void run_append(run *r, const nc_batch *b) {
    size_t chw = (size_t)b->c * b->h * b->w;
    if (r->nbatches == 0) {
        r->c = b->c;
        r->h = b->h;
        r->w = b->w;
        r->heads = b->heads;
    }
    assert_true(b->c == r->c && b->h == r->h && b->w == r->w && b->heads == r->heads);
    assert_true(r->nbatches < 256);
    r->sizes[r->nbatches++] = b->n;
    r->x = realloc(r->x, sizeof(float) * (r->nx + (size_t)b->n * chw));
    r->labels = realloc(r->labels, sizeof(int32_t) * (r->n + (size_t)b->n) * (size_t)b->heads);
    r->idx = realloc(r->idx, sizeof(int64_t) * (r->n + (size_t)b->n));
    memcpy(r->x + r->nx, b->x, sizeof(float) * (size_t)b->n * chw);
    memcpy(r->labels + r->n * (size_t)b->heads, b->labels, sizeof(int32_t) * (size_t)b->n * (size_t)b->heads);
    memcpy(r->idx + r->n, b->indices, sizeof(int64_t) * (size_t)b->n);
    r->nx += (size_t)b->n * chw;
    r->n += (size_t)b->n;
}

/* Runs the rest of the current epoch (after start_epoch(epoch) when epoch >= 0). */
static void run_epoch(nc_context *ctx, nc_loader *l, int64_t epoch, run *r) {
    memset(r, 0, sizeof *r);
    if (epoch >= 0) assert_int_equal(nc_loader_start_epoch(l, epoch), NC_OK);
    for (;;) {
        nc_batch b;
        nc_status st = nc_loader_next(l, &b);
        if (st != NC_OK) fail_msg("nc_loader_next: %s: %s", nc_status_str(st), nc_context_last_error(ctx));
        if (b.n == 0) break;
        run_append(r, &b);
    }
    nc_batch b;
    assert_int_equal(nc_loader_next(l, &b), NC_OK); /* the end stays the end */
    assert_int_equal(b.n, 0);
}

static void run_free(run *r) {
    free(r->x);
    free(r->labels);
    free(r->idx);
    memset(r, 0, sizeof *r);
}

static void assert_same_run(const run *a, const run *b) {
    assert_int_equal(a->nbatches, b->nbatches);
    assert_memory_equal(a->sizes, b->sizes, sizeof(int) * (size_t)a->nbatches);
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->nx, b->nx);
    assert_true(a->c == b->c && a->h == b->h && a->w == b->w && a->heads == b->heads);
    assert_memory_equal(a->idx, b->idx, sizeof(int64_t) * a->n);
    assert_memory_equal(a->labels, b->labels, sizeof(int32_t) * a->n * (size_t)a->heads);
    assert_memory_equal(a->x, b->x, sizeof(float) * a->nx);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --------------------------------------------------------------------- tests */

/* Same batches (pixels, labels, indices) for workers 0, 1, 4 and 8 with a random
 * augmentation: randomness comes from (seed, epoch, sample), not threads. */
static void check_workers_agree(nc_context *ctx, nc_dataset *ds, const nc_transform *t, int batch) {
    const int workers[] = {0, 1, 4, 8};
    const int prefetch[] = {2, 2, 2, 1};
    run ref[2];
    for (size_t k = 0; k < sizeof workers / sizeof *workers; k++) {
        nc_loader *l = make_loader(ds, t, batch, workers[k], prefetch[k], 1, 0, 7);
        for (int e = 0; e < 2; e++) {
            run r;
            run_epoch(ctx, l, e, &r);
            if (k == 0) {
                ref[e] = r;
            } else {
                assert_same_run(&ref[e], &r);
                run_free(&r);
            }
        }
        nc_loader_destroy(l);
    }
    /* the augmentation and the order differ between epochs */
    assert_memory_not_equal(ref[0].idx, ref[1].idx, sizeof(int64_t) * ref[0].n);
    assert_memory_not_equal(ref[0].x, ref[1].x, sizeof(float) * ref[0].nx);
    run_free(&ref[0]);
    run_free(&ref[1]);
}

static void test_loader_same_batches_any_worker_count(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_folder(ctx, "rgb");
    nc_transform *t;
    assert_int_equal(nc_transform_preset_train(ctx, 16, 3, NULL, NULL, &t), NC_OK);
    check_workers_agree(ctx, ds, t, 4);
    nc_loader *l = make_loader(ds, t, 4, 2, 2, 1, 0, 7);
    run r;
    run_epoch(ctx, l, 0, &r);
    assert_int_equal(r.nbatches, 4);
    assert_int_equal(r.sizes[3], 3);
    assert_true(r.c == 3 && r.h == 16 && r.w == 16 && r.heads == 1);
    run_free(&r);
    nc_loader_destroy(l);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);

    ds = open_idx(ctx);
    assert_int_equal(nc_transform_preset_train(ctx, 8, 1, NULL, NULL, &t), NC_OK);
    check_workers_agree(ctx, ds, t, 3);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
}

/* Every sample of a batch is exactly nc_transform_apply of nc_dataset_get's image with
 * the loader's seed: the loader's fast path (samples transformed straight from the
 * decoder's 8/16-bit samples into the batch) changes nothing, in the fused and in the
 * exact mode. */
static void check_batches_are_apply(nc_context *ctx, nc_dataset *ds, nc_transform *t, int workers) {
    for (int exact = 0; exact <= 1; exact++) {
        assert_int_equal(nc_transform_set_exact(t, exact), NC_OK);
        nc_loader *l = make_loader(ds, t, 4, workers, 2, 1, 0, 11);
        run r;
        run_epoch(ctx, l, 3, &r);
        size_t chw = (size_t)r.c * r.h * r.w;
        for (size_t i = 0; i < r.n; i++) {
            nc_image *img = NULL, *out = NULL;
            assert_int_equal(nc_dataset_get(ds, r.idx[i], &img), NC_OK);
            assert_int_equal(nc_transform_apply(t, ctx, img, 11, 3, (uint64_t)r.idx[i], &out), NC_OK);
            assert_int_equal((size_t)nc_image_channels(out) * nc_image_height(out) * nc_image_width(out), chw);
            assert_memory_equal(r.x + i * chw, nc_image_const_data(out), chw * sizeof(float));
            nc_image_destroy(out);
            nc_image_destroy(img);
        }
        run_free(&r);
        nc_loader_destroy(l);
    }
    assert_int_equal(nc_transform_set_exact(t, 0), NC_OK);
}

static void test_loader_batches_equal_transform_apply(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    const char *folders[] = {"rgb", "deep"};
    for (int k = 0; k < 2; k++) {
        nc_dataset *ds = open_folder(ctx, folders[k]);
        nc_transform *t;
        assert_int_equal(nc_transform_preset_train(ctx, 16, 3, NULL, NULL, &t), NC_OK);
        check_batches_are_apply(ctx, ds, t, k);
        nc_transform_destroy(t);
        /* no transform: the decoded values themselves */
        nc_loader *l = make_loader(ds, NULL, 3, 1, 2, 0, 0, 0);
        run r;
        run_epoch(ctx, l, 0, &r);
        for (size_t i = 0; i < r.n; i++) {
            nc_image *img = NULL;
            assert_int_equal(nc_dataset_get(ds, r.idx[i], &img), NC_OK);
            size_t chw = (size_t)r.c * r.h * r.w;
            assert_memory_equal(r.x + i * chw, nc_image_const_data(img), chw * sizeof(float));
            nc_image_destroy(img);
        }
        run_free(&r);
        nc_loader_destroy(l);
        nc_dataset_destroy(ds);
    }
    nc_dataset *ds = open_idx(ctx);
    nc_transform *t;
    assert_int_equal(nc_transform_preset_train(ctx, 8, 1, NULL, NULL, &t), NC_OK);
    check_batches_are_apply(ctx, ds, t, 2);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
}

static void test_loader_every_sample_once_with_its_data(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_idx(ctx);
    for (int workers = 0; workers <= 3; workers += 3) {
        nc_loader *l = make_loader(ds, NULL, 8, workers, 2, 1, 0, 1);
        assert_int_equal(nc_loader_num_batches(l), 7);
        run r;
        run_epoch(ctx, l, 0, &r);
        assert_int_equal(r.nbatches, 7);
        for (int b = 0; b < 6; b++) assert_int_equal(r.sizes[b], 8);
        assert_int_equal(r.sizes[6], 2);
        assert_int_equal(r.n, IDX_N);
        assert_true(r.c == 1 && r.h == IDX_H && r.w == IDX_W);
        int seen[IDX_N] = {0};
        for (size_t i = 0; i < r.n; i++) {
            int64_t s = r.idx[i];
            assert_true(s >= 0 && s < IDX_N);
            seen[s]++;
            assert_int_equal(r.labels[i], s % 10);
            nc_image *img;
            assert_int_equal(nc_dataset_get(ds, s, &img), NC_OK);
            assert_memory_equal(r.x + i * IDX_H * IDX_W, nc_image_const_data(img), sizeof(float) * IDX_H * IDX_W);
            nc_image_destroy(img);
        }
        for (int s = 0; s < IDX_N; s++) assert_int_equal(seen[s], 1);
        run_free(&r);
        nc_loader_destroy(l);
    }
    nc_dataset_destroy(ds);

    /* folder labels: a (0..6) -> 0, b (7..11) -> 1, c (12..14) -> 2 */
    ds = open_folder(ctx, "rgb");
    nc_loader *l = make_loader(ds, NULL, 4, 2, 1, 1, 0, 9);
    run r;
    run_epoch(ctx, l, 3, &r);
    assert_int_equal(r.n, RGB_N);
    assert_true(r.c == 3 && r.h == 20 && r.w == 24);
    int seen[RGB_N] = {0};
    for (size_t i = 0; i < r.n; i++) {
        seen[r.idx[i]]++;
        assert_int_equal(r.labels[i], r.idx[i] < 7 ? 0 : r.idx[i] < 12 ? 1 : 2);
    }
    for (int s = 0; s < RGB_N; s++) assert_int_equal(seen[s], 1);
    run_free(&r);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

static void test_loader_drop_last_drops_the_tail(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_idx(ctx);
    for (int workers = 0; workers <= 2; workers += 2) {
        nc_loader *l = make_loader(ds, NULL, 8, workers, 2, 1, 1, 4);
        assert_int_equal(nc_loader_num_batches(l), 6);
        run r;
        run_epoch(ctx, l, 0, &r);
        assert_int_equal(r.nbatches, 6);
        assert_int_equal(r.n, 48);
        int seen[IDX_N] = {0};
        for (size_t i = 0; i < r.n; i++) assert_int_equal(++seen[r.idx[i]], 1);
        run_free(&r);
        nc_loader_destroy(l);
    }
    /* a batch larger than the data: one partial batch, or none with drop_last */
    nc_loader *l = make_loader(ds, NULL, 64, 2, 2, 1, 0, 4);
    run r;
    run_epoch(ctx, l, 0, &r);
    assert_int_equal(r.nbatches, 1);
    assert_int_equal(r.sizes[0], IDX_N);
    run_free(&r);
    nc_loader_destroy(l);
    l = make_loader(ds, NULL, 64, 2, 2, 1, 1, 4);
    assert_int_equal(nc_loader_num_batches(l), 0);
    run_epoch(ctx, l, 0, &r);
    assert_int_equal(r.nbatches, 0);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

static void test_loader_shuffle_per_epoch_reproducible(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_idx(ctx);
    nc_loader *a = make_loader(ds, NULL, 10, 2, 2, 1, 0, 3);
    nc_loader *b = make_loader(ds, NULL, 10, 0, 2, 1, 0, 3);
    nc_loader *c = make_loader(ds, NULL, 10, 2, 2, 1, 0, 4);
    run a0, a1, b5, b0, c0, a5;
    run_epoch(ctx, a, 0, &a0);
    run_epoch(ctx, a, 1, &a1);
    run_epoch(ctx, b, 5, &b5); /* epoch 5 directly */
    run_epoch(ctx, b, 0, &b0);
    run_epoch(ctx, c, 0, &c0);
    run_epoch(ctx, a, 5, &a5);
    assert_memory_not_equal(a0.idx, a1.idx, sizeof(int64_t) * IDX_N);
    assert_memory_not_equal(a0.idx, c0.idx, sizeof(int64_t) * IDX_N);
    assert_same_run(&a0, &b0);
    assert_same_run(&a5, &b5);
    int64_t identity[IDX_N];
    for (int i = 0; i < IDX_N; i++) identity[i] = i;
    assert_memory_not_equal(a0.idx, identity, sizeof identity);
    run r[] = {a0, a1, b5, b0, c0, a5};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) run_free(&r[i]);
    nc_loader_destroy(a);
    nc_loader_destroy(b);
    nc_loader_destroy(c);

    /* shuffle off: dataset order in every epoch */
    nc_loader *l = make_loader(ds, NULL, 10, 2, 2, 0, 0, 3);
    for (int e = 0; e < 2; e++) {
        run s;
        run_epoch(ctx, l, e, &s);
        assert_memory_equal(s.idx, identity, sizeof identity);
        run_free(&s);
    }
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

static void test_loader_num_batches(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_idx(ctx);
    int64_t all[IDX_N];
    for (int i = 0; i < IDX_N; i++) all[i] = IDX_N - 1 - i;
    for (int64_t n = 0; n <= 20; n++)
        for (int bs = 1; bs <= 7; bs++)
            for (int drop = 0; drop <= 1; drop++) {
                nc_loader_options o;
                nc_loader_options_init(&o);
                o.batch_size = bs;
                o.drop_last = drop;
                o.workers = (int)(n % 3);
                o.indices = all;
                o.num_indices = n;
                nc_loader *l;
                assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_OK);
                int64_t expect = drop ? n / bs : (n + bs - 1) / bs;
                assert_int_equal(nc_loader_num_batches(l), expect);
                if (bs == 3) {
                    run r;
                    run_epoch(ctx, l, 1, &r);
                    assert_int_equal(r.nbatches, expect);
                    assert_int_equal(r.n, drop ? expect * bs : n);
                    run_free(&r);
                }
                nc_loader_destroy(l);
            }
    assert_int_equal(nc_loader_num_batches(NULL), 0);
    nc_dataset_destroy(ds);
}

/* Good batches until the one holding the truncated PNG, then NC_ERR_FORMAT naming
 * it, again on the next call, and again in the next epoch. Returns the good batches. */
static int run_until_error(nc_context *ctx, nc_loader *l, int64_t epoch, nc_status expect, const char *file) {
    assert_int_equal(nc_loader_start_epoch(l, epoch), NC_OK);
    int good = 0;
    for (;;) {
        nc_batch b;
        nc_status st = nc_loader_next(l, &b);
        if (st == NC_OK) {
            if (b.n == 0) fail_msg("epoch ended without the expected error");
            good++;
            continue;
        }
        assert_int_equal(st, expect);
        assert_int_equal(b.n, 0);
        if (!strstr(nc_context_last_error(ctx), file))
            fail_msg("message '%s' does not name %s", nc_context_last_error(ctx), file);
        /* sticky until the next start_epoch */
        assert_int_equal(nc_loader_next(l, &b), expect);
        assert_non_null(strstr(nc_context_last_error(ctx), file));
        return good;
    }
}

static void test_loader_corrupt_png_reports_file(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_folder(ctx, "corrupt");
    assert_int_equal(nc_dataset_size(ds), 7);
    for (int workers = 0; workers <= 3; workers++) {
        nc_loader *l = make_loader(ds, NULL, 2, workers, 1, 0, 0, 5);
        assert_int_equal(run_until_error(ctx, l, 0, NC_ERR_FORMAT, "zz_bad.png"), 3);
        assert_int_equal(run_until_error(ctx, l, 1, NC_ERR_FORMAT, "zz_bad.png"), 3);
        nc_loader_destroy(l);
    }
    /* shuffled: the failing batch is where the bad file lands, whatever the workers */
    for (uint64_t seed = 0; seed < 4; seed++) {
        nc_loader *l0 = make_loader(ds, NULL, 2, 0, 1, 1, 0, seed);
        nc_loader *l3 = make_loader(ds, NULL, 2, 3, 2, 1, 0, seed);
        assert_int_equal(run_until_error(ctx, l0, 2, NC_ERR_FORMAT, "zz_bad.png"),
                         run_until_error(ctx, l3, 2, NC_ERR_FORMAT, "zz_bad.png"));
        nc_loader_destroy(l0);
        nc_loader_destroy(l3);
    }
    nc_dataset_destroy(ds);
}

static void test_loader_mixed_sizes_shape_error(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_folder(ctx, "mixed");
    for (int workers = 0; workers <= 2; workers++) {
        nc_loader *l = make_loader(ds, NULL, 2, workers, 2, 0, 0, 0);
        /* batch 0: a/00, a/01 (20 x 24); batch 1: a/02, b/00 (16 x 16) */
        assert_int_equal(run_until_error(ctx, l, 0, NC_ERR_SHAPE, "b/00.png"), 1);
        nc_loader_destroy(l);
        l = make_loader(ds, NULL, 2, workers, 2, 1, 0, 1);
        (void)run_until_error(ctx, l, 0, NC_ERR_SHAPE, ".png");
        nc_loader_destroy(l);
    }
    /* a fixed-size resize makes them one shape */
    nc_transform *t;
    assert_int_equal(nc_transform_create(ctx, &t), NC_OK);
    assert_int_equal(nc_transform_add_resize(t, 12, 10), NC_OK);
    nc_loader *l = make_loader(ds, t, 2, 2, 2, 1, 0, 1);
    run r;
    run_epoch(ctx, l, 0, &r);
    assert_int_equal(r.n, 5);
    assert_true(r.c == 3 && r.h == 12 && r.w == 10);
    run_free(&r);
    nc_loader_destroy(l);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
}

static void test_loader_destroy_mid_epoch_is_prompt(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_idx(ctx);
    nc_transform *t;
    assert_int_equal(nc_transform_preset_train(ctx, 8, 1, NULL, NULL, &t), NC_OK);
    for (int round = 0; round < 4; round++) {
        nc_loader *l = make_loader(ds, t, 2, 4, 2, 1, 0, (uint64_t)round);
        nc_batch b;
        if (round >= 1) assert_int_equal(nc_loader_start_epoch(l, 0), NC_OK);
        if (round >= 2) assert_int_equal(nc_loader_next(l, &b), NC_OK);
        if (round >= 3) sleep_ms(50); /* the ring fills and the workers block */
        double t0 = now_s();
        nc_loader_destroy(l);
        double dt = now_s() - t0;
        if (dt > 1.0) fail_msg("destroy took %.3f s", dt);
    }
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);

    /* PNG decoding in progress when destroyed */
    ds = open_folder(ctx, "rgb");
    assert_int_equal(nc_transform_preset_train(ctx, 16, 3, NULL, NULL, &t), NC_OK);
    for (int round = 0; round < 10; round++) {
        nc_loader *l = make_loader(ds, t, 1, 4, 1, 1, 0, (uint64_t)round);
        assert_int_equal(nc_loader_start_epoch(l, round), NC_OK);
        nc_loader_destroy(l);
    }
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
}

static void test_loader_restart_mid_epoch(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_folder(ctx, "rgb");
    nc_transform *t;
    assert_int_equal(nc_transform_preset_train(ctx, 16, 3, NULL, NULL, &t), NC_OK);
    run ref0, ref1;
    nc_loader *l = make_loader(ds, t, 3, 0, 2, 1, 0, 11);
    run_epoch(ctx, l, 0, &ref0);
    run_epoch(ctx, l, 1, &ref1);
    nc_loader_destroy(l);
    for (int workers = 0; workers <= 3; workers += 3) {
        l = make_loader(ds, t, 3, workers, 1, 1, 0, 11);
        nc_batch b;
        assert_int_equal(nc_loader_start_epoch(l, 0), NC_OK);
        assert_int_equal(nc_loader_next(l, &b), NC_OK);
        assert_int_equal(nc_loader_next(l, &b), NC_OK);
        run r;
        run_epoch(ctx, l, 1, &r);
        assert_same_run(&ref1, &r);
        run_free(&r);
        assert_int_equal(nc_loader_start_epoch(l, 0), NC_OK);
        assert_int_equal(nc_loader_next(l, &b), NC_OK);
        assert_int_equal(nc_loader_start_epoch(l, 0), NC_OK); /* twice in a row */
        run_epoch(ctx, l, 0, &r);
        assert_same_run(&ref0, &r);
        run_free(&r);
        nc_loader_destroy(l);
    }
    run_free(&ref0);
    run_free(&ref1);
    nc_transform_destroy(t);
    nc_dataset_destroy(ds);
}

static void test_loader_next_without_start_epoch_runs_epoch_0(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_idx(ctx);
    nc_loader *a = make_loader(ds, NULL, 7, 2, 2, 1, 0, 8), *b = make_loader(ds, NULL, 7, 2, 2, 1, 0, 8);
    run ra, rb;
    run_epoch(ctx, a, -1, &ra);
    run_epoch(ctx, b, 0, &rb);
    assert_same_run(&ra, &rb);
    run_free(&ra);
    run_free(&rb);
    nc_loader_destroy(a);
    nc_loader_destroy(b);
    nc_dataset_destroy(ds);
}

static void test_loader_subset_indices(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_folder(ctx, "rgb");
    int64_t sub[5] = {5, 3, 9, 0, 14};
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        nc_loader_options o;
        nc_loader_options_init(&o);
        o.batch_size = 2;
        o.shuffle = shuffle;
        o.indices = sub;
        o.num_indices = 5;
        nc_loader *l;
        assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_OK);
        int64_t saved[5];
        memcpy(saved, sub, sizeof sub);
        sub[0] = 1; /* copied at create: later changes do not matter */
        assert_int_equal(nc_loader_num_batches(l), 3);
        run r;
        run_epoch(ctx, l, 0, &r);
        assert_int_equal(r.n, 5);
        if (!shuffle) assert_memory_equal(r.idx, saved, sizeof saved);
        for (int i = 0; i < 5; i++) {
            int hits = 0;
            for (int j = 0; j < 5; j++) hits += r.idx[j] == saved[i];
            assert_int_equal(hits, 1);
        }
        memcpy(sub, saved, sizeof sub);
        run_free(&r);
        nc_loader_destroy(l);
    }
    nc_loader_options o;
    nc_loader_options_init(&o);
    o.indices = sub;
    o.num_indices = 5;
    nc_loader *l = (nc_loader *)&o;
    sub[2] = RGB_N;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_ERR_INVALID_ARGUMENT);
    assert_null(l);
    assert_non_null(strstr(nc_context_last_error(ctx), "indices[2]"));
    sub[2] = -1;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_ERR_INVALID_ARGUMENT);
    sub[2] = 9;
    o.num_indices = -1;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_ERR_INVALID_ARGUMENT);
    o.num_indices = 0; /* empty subset: no batches */
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_OK);
    assert_int_equal(nc_loader_num_batches(l), 0);
    run r;
    run_epoch(ctx, l, 0, &r);
    assert_int_equal(r.nbatches, 0);
    nc_loader_destroy(l);
    nc_dataset_destroy(ds);
}

/* shard_rank/shard_count: rank r of K gets positions r, r + K, ... of the epoch's
 * order of all samples (the same on every rank), wrapping around at the end as
 * DistributedSampler pads. */
static void test_loader_shards_as_distributed_sampler(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_folder(ctx, "rgb");
    int64_t sub[5] = {5, 3, 9, 0, 14};
    nc_loader_options o;
    nc_loader_options_init(&o);
    assert_int_equal(o.shard_rank, 0);
    assert_int_equal(o.shard_count, 1);
    o.batch_size = 2;
    o.workers = 0;
    o.seed = 11;
    o.indices = sub;
    o.num_indices = 5;
    nc_loader *whole;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &whole), NC_OK);
    run all;
    run_epoch(ctx, whole, 3, &all);
    for (int count = 2; count <= 3; count++)
        for (int rank = 0; rank < count; rank++) {
            o.shard_rank = rank;
            o.shard_count = count;
            nc_loader *l;
            assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_OK);
            const int per = (5 + count - 1) / count;
            assert_int_equal(nc_loader_num_batches(l), (per + 1) / 2);
            run r;
            run_epoch(ctx, l, 3, &r);
            assert_int_equal(r.n, per);
            for (int k = 0; k < per; k++) assert_int_equal(r.idx[k], all.idx[(rank + k * count) % 5]);
            run_free(&r);
            nc_loader_destroy(l);
        }
    run_free(&all);
    nc_loader_destroy(whole);
    nc_loader *l = NULL;
    o.shard_rank = 2;
    o.shard_count = 2;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "shard_rank 2 of shard_count 2"));
    o.shard_rank = 0;
    o.shard_count = 0;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_ERR_INVALID_ARGUMENT);
    assert_null(l);
    nc_dataset_destroy(ds);
}

static void test_loader_null_and_bad_arguments(void **state) {
    nc_context *ctx = ((fixture *)*state)->ctx;
    nc_dataset *ds = open_idx(ctx);
    nc_loader_options_init(NULL);
    nc_loader_options o;
    nc_loader_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.batch_size, 32);
    assert_int_equal(o.shuffle, 1);
    assert_int_equal(o.drop_last, 0);
    assert_int_equal(o.workers, 2);
    assert_int_equal(o.prefetch, 2);
    assert_null(o.indices);
    nc_loader *l;
    assert_int_equal(nc_loader_create(NULL, NULL, &o, &l), NC_ERR_NULL);
    assert_null(l);
    assert_int_equal(nc_loader_create(ds, NULL, &o, NULL), NC_ERR_NULL);
    const struct {
        int batch, workers, prefetch;
        nc_status st;
    } cases[] = {{0, 2, 2, NC_ERR_INVALID_ARGUMENT},   {-3, 0, 0, NC_ERR_INVALID_ARGUMENT},
                 {4, -1, 2, NC_ERR_INVALID_ARGUMENT},  {4, 100000, 2, NC_ERR_INVALID_ARGUMENT},
                 {4, 2, 0, NC_ERR_INVALID_ARGUMENT},   {4, 2, -1, NC_ERR_INVALID_ARGUMENT},
                 {4, 2, 1 << 20, NC_ERR_INVALID_ARGUMENT}, {4, 0, 0, NC_OK}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nc_loader_options_init(&o);
        o.batch_size = cases[i].batch;
        o.workers = cases[i].workers;
        o.prefetch = cases[i].prefetch;
        assert_int_equal(nc_loader_create(ds, NULL, &o, &l), cases[i].st);
        nc_loader_destroy(l);
    }
    nc_loader_options_init(&o);
    o.struct_size = 8;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_ERR_INVALID_ARGUMENT);
    o.struct_size = sizeof o + 8;
    assert_int_equal(nc_loader_create(ds, NULL, &o, &l), NC_ERR_INVALID_ARGUMENT);
    /* NULL options: the defaults */
    assert_int_equal(nc_loader_create(ds, NULL, NULL, &l), NC_OK);
    assert_int_equal(nc_loader_num_batches(l), 2);
    nc_batch b;
    assert_int_equal(nc_loader_next(NULL, &b), NC_ERR_NULL);
    assert_int_equal(b.n, 0);
    assert_int_equal(nc_loader_next(l, NULL), NC_ERR_NULL);
    assert_int_equal(nc_loader_start_epoch(NULL, 0), NC_ERR_NULL);
    assert_int_equal(nc_loader_start_epoch(l, -1), NC_ERR_INVALID_ARGUMENT);
    assert_int_equal(nc_loader_next(l, &b), NC_OK);
    assert_int_equal(b.n, 32);
    nc_loader_destroy(l);
    nc_loader_destroy(NULL);
    nc_dataset_destroy(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loader_same_batches_any_worker_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_every_sample_once_with_its_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_drop_last_drops_the_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_shuffle_per_epoch_reproducible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_num_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_corrupt_png_reports_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_mixed_sizes_shape_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_destroy_mid_epoch_is_prompt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_restart_mid_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_next_without_start_epoch_runs_epoch_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_subset_indices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_shards_as_distributed_sampler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_batches_equal_transform_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_null_and_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
