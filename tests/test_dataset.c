/* test_dataset.c — datasets: image folders (class and file order, hidden entries,
 * errors), CSV manifests (stacked channels, the optional column and its indicator,
 * several heads, label mapping, RFC 4180 quoting, errors naming file:line), IDX files
 * (raw and gzip, one case per malformed-file rule, the real Fashion-MNIST when
 * installed), class counts/weights, channel statistics and reads from several
 * threads. Fixtures are written here into a fresh temporary folder per case; a
 * counting allocator fails any case that leaks. */
#include "testutil.h"

#include "core/context.h"
#include "data/data.h"
#include "nc_config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if HAVE_ZLIB
#include <zlib.h>
#endif

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------ fixtures */


typedef struct fx {
    tu_counting cnt;
    nc_context *ctx;
    long base;     /* live allocations right after nc_context_create */
    char dir[64];  /* this case's temporary folder */
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!(f->ctx = tu_counting_context(&f->cnt))) return -1;
    f->base = f->cnt.live;
    snprintf(f->dir, sizeof f->dir, "/tmp/nc_test_ds_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static void remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int teardown(void **state) {
    fx *f = *state;
    assert_int_equal(f->cnt.live, f->base); /* nothing leaked by the case */
    nc_context_destroy(f->ctx);
    assert_int_equal(f->cnt.live, 0);
    remove_tree(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------ helpers */

/* "<case dir>/<rel>" in a static rotating buffer (enough for one statement). */
static const char *P(fx *f, const char *rel) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, 512, "%s/%s", f->dir, rel);
    return b;
}

static void mkdir_in(fx *f, const char *rel) { assert_int_equal(mkdir(P(f, rel), 0755), 0); }

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(text, 1, strlen(text), fp);
    fclose(fp);
}

/* The test pattern: value of channel c, pixel (y, x) of image `seed` at a bit depth. */
static float pattern(int seed, int c, int y, int x, int bit_depth) {
    int maxv = bit_depth == 16 ? 65535 : 255;
    int v = (seed * 977 + c * 4099 + y * 131 + x * 17 + 3) % (maxv + 1);
    return (float)v / (float)maxv;
}

/* Writes a c x h x w PNG filled with pattern(seed). */
static void write_png(fx *f, const char *path, int c, int h, int w, int seed, int bit_depth) {
    nc_image *img;
    assert_int_equal(nc_image_create(f->ctx, c, h, w, &img), NC_OK);
    float *d = nc_image_data(img);
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) d[((size_t)k * h + y) * w + x] = pattern(seed, k, y, x, bit_depth);
    nc_status st = nc_png_write(f->ctx, path, img, bit_depth);
    if (st != NC_OK) print_error("%s\n", nc_context_last_error(f->ctx));
    assert_int_equal(st, NC_OK);
    nc_image_destroy(img);
}

/* Checks channel `ch` of img against pattern(seed, src_c). */
static void expect_plane(const nc_image *img, int ch, int seed, int src_c, int bit_depth) {
    int h = nc_image_height(img), w = nc_image_width(img);
    const float *d = nc_image_const_data(img) + (size_t)ch * h * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) assert_float_equal(d[y * w + x], pattern(seed, src_c, y, x, bit_depth), 1e-6);
}

static void expect_const_plane(const nc_image *img, int ch, float v) {
    size_t plane = (size_t)nc_image_height(img) * nc_image_width(img);
    const float *d = nc_image_const_data(img) + (size_t)ch * plane;
    for (size_t k = 0; k < plane; k++) assert_float_equal(d[k], v, 0);
}

/* Expects `st` == want with `needle` in the context's message. */
static void expect_error(fx *f, nc_status st, nc_status want, const char *needle) {
    const char *msg = nc_context_last_error(f->ctx);
    if (st != want || !strstr(msg, needle))
        print_error("got %s: \"%s\"\n  want %s with \"%s\"\n", nc_status_str(st), msg, nc_status_str(want),
                    needle);
    assert_int_equal(st, want);
    assert_non_null(strstr(msg, needle));
}

/* An IDX file: big-endian magic and dims, then `len` payload bytes (gzip when gz). */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndim,
                      const unsigned char *data, size_t len) {
    unsigned char hdr[16];
    size_t n = 0;
    for (int i = 0; i < 1 + ndim; i++) {
        uint32_t v = i == 0 ? magic : dims[i - 1];
        hdr[n++] = (unsigned char)(v >> 24), hdr[n++] = (unsigned char)(v >> 16);
        hdr[n++] = (unsigned char)(v >> 8), hdr[n++] = (unsigned char)v;
    }
    if (gz) {
#if HAVE_ZLIB
        gzFile g = gzopen(path, "wb");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, hdr, (unsigned)n), (int)n);
        if (len) assert_int_equal(gzwrite(g, data, (unsigned)len), (int)len);
        assert_int_equal(gzclose(g), Z_OK);
#else
        fail_msg("gzip without zlib");
#endif
        return;
    }
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(hdr, 1, n, fp);
    if (len) fwrite(data, 1, len, fp);
    fclose(fp);
}

/* n images of h x w (pixel (i*37 + k*11) % 256) and labels lab[n]. */
static void write_idx_pair(fx *f, const char *images, const char *labels, int gz, int n, int h, int w,
                           const unsigned char *lab) {
    size_t len = (size_t)n * h * w;
    unsigned char *px = malloc(len);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < h * w; k++) px[(size_t)i * h * w + k] = (unsigned char)((i * 37 + k * 11) % 256);
    uint32_t idim[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w}, ldim[1] = {(uint32_t)n};
    write_idx(P(f, images), gz, 0x803, idim, 3, px, len);
    write_idx(P(f, labels), gz, 0x801, ldim, 1, lab, (size_t)n);
    free(px);
}

static nc_dataset *open_csv(fx *f, const char *manifest, const nc_dataset_options *o) {
    nc_dataset *ds = NULL;
    nc_status st = nc_dataset_open_csv(f->ctx, P(f, manifest), o, &ds);
    if (st != NC_OK) print_error("%s\n", nc_context_last_error(f->ctx));
    assert_int_equal(st, NC_OK);
    return ds;
}

/* ------------------------------------------------------------ folder */

static void test_folder_class_and_file_order(void **state) {
    fx *f = *state;
    /* torchvision ImageFolder order: classes by strcmp ("C" < "a" < "b"), files by name */
    mkdir_in(f, "a");
    mkdir_in(f, "b");
    mkdir_in(f, "C");
    write_png(f, P(f, "a/2.png"), 1, 3, 4, 1, 8);
    write_png(f, P(f, "a/10.png"), 1, 3, 4, 2, 8);
    write_png(f, P(f, "a/x.PNG"), 1, 3, 4, 3, 8);
    write_png(f, P(f, "b/z.png"), 1, 5, 2, 4, 16);
    write_png(f, P(f, "C/m.png"), 1, 3, 4, 5, 8);
    assert_int_equal(symlink(P(f, "C/m.png"), P(f, "b/y.png")), 0); /* symlinks followed */
    write_text(P(f, "a/notes.txt"), "not an image");
    write_png(f, P(f, "top.png"), 1, 3, 4, 6, 8); /* a file at the root is no class */

    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_folder(f->ctx, f->dir, NULL, &ds), NC_OK);
    assert_int_equal(nc_dataset_size(ds), 6);
    assert_int_equal(nc_dataset_num_heads(ds), 1);
    assert_int_equal(nc_dataset_num_classes(ds, 0), 3);
    assert_int_equal(nc_dataset_channels(ds), 1);
    assert_string_equal(nc_dataset_class_name(ds, 0, 0), "C");
    assert_string_equal(nc_dataset_class_name(ds, 0, 1), "a");
    assert_string_equal(nc_dataset_class_name(ds, 0, 2), "b");
    const char *want[6] = {"C/m.png", "a/10.png", "a/2.png", "a/x.PNG", "b/y.png", "b/z.png"};
    const int32_t want_label[6] = {0, 1, 1, 1, 2, 2};
    const int seed[6] = {5, 2, 1, 3, 5, 4};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(nc_dataset_path(ds, i), P(f, want[i]));
        int32_t lab = -1;
        assert_int_equal(nc_dataset_labels(ds, i, &lab), NC_OK);
        assert_int_equal(lab, want_label[i]);
        nc_image *img = NULL;
        assert_int_equal(nc_dataset_get(ds, i, &img), NC_OK);
        assert_int_equal(nc_image_channels(img), 1);
        expect_plane(img, 0, seed[i], 0, i == 5 ? 16 : 8);
        assert_int_equal(nc_image_bit_depth(img), i == 5 ? 16 : 8);
        nc_image_destroy(img);
    }
    assert_null(nc_dataset_path(ds, 6));
    assert_null(nc_dataset_path(ds, -1));
    nc_dataset_destroy(ds);
}

static void test_folder_hidden_entries_skipped(void **state) {
    fx *f = *state;
    mkdir_in(f, "cat");
    mkdir_in(f, ".cache");
    write_png(f, P(f, "cat/1.png"), 3, 2, 2, 1, 8);
    write_png(f, P(f, "cat/.thumb.png"), 3, 2, 2, 2, 8);
    write_png(f, P(f, ".cache/1.png"), 3, 2, 2, 3, 8);
    mkdir_in(f, "cat/sub.png"); /* a folder named like an image is not one */
    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_folder(f->ctx, f->dir, NULL, &ds), NC_OK);
    assert_int_equal(nc_dataset_size(ds), 1);
    assert_int_equal(nc_dataset_num_classes(ds, 0), 1);
    assert_string_equal(nc_dataset_class_name(ds, 0, 0), "cat");
    assert_int_equal(nc_dataset_channels(ds), 3);
    nc_dataset_destroy(ds);
}

static void test_folder_keeps_empty_class(void **state) {
    fx *f = *state;
    mkdir_in(f, "a");
    mkdir_in(f, "b");
    write_png(f, P(f, "b/1.png"), 1, 2, 2, 1, 8);
    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_folder(f->ctx, f->dir, NULL, &ds), NC_OK);
    assert_int_equal(nc_dataset_num_classes(ds, 0), 2);
    int64_t counts[2];
    assert_int_equal(nc_dataset_class_counts(ds, 0, counts), NC_OK);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 1);
    nc_dataset_destroy(ds);
}

static void test_folder_missing_root_is_io_error(void **state) {
    fx *f = *state;
    nc_dataset *ds = (nc_dataset *)1;
    nc_status st = nc_dataset_open_folder(f->ctx, P(f, "nope"), NULL, &ds);
    expect_error(f, st, NC_ERR_IO, "nope: No such file or directory");
    assert_null(ds);
    write_text(P(f, "file"), "x");
    st = nc_dataset_open_folder(f->ctx, P(f, "file"), NULL, &ds);
    expect_error(f, st, NC_ERR_IO, "not a directory");
}

static void test_folder_empty_is_not_found(void **state) {
    fx *f = *state;
    nc_dataset *ds = (nc_dataset *)1;
    nc_status st = nc_dataset_open_folder(f->ctx, f->dir, NULL, &ds);
    expect_error(f, st, NC_ERR_NOT_FOUND, "no class folders");
    assert_null(ds);
    mkdir_in(f, "a");
    mkdir_in(f, "b");
    write_text(P(f, "a/readme.txt"), "x");
    st = nc_dataset_open_folder(f->ctx, f->dir, NULL, &ds);
    expect_error(f, st, NC_ERR_NOT_FOUND, "no .png files in its 2 class folders");
}

static void test_folder_channel_mismatch_at_read(void **state) {
    fx *f = *state;
    mkdir_in(f, "a");
    write_png(f, P(f, "a/1.png"), 1, 2, 2, 1, 8);
    write_png(f, P(f, "a/2.png"), 3, 2, 2, 1, 8);
    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_folder(f->ctx, f->dir, NULL, &ds), NC_OK);
    assert_int_equal(nc_dataset_channels(ds), 1);
    nc_image *img = (nc_image *)1;
    nc_status st = nc_dataset_get(ds, 1, &img);
    expect_error(f, st, NC_ERR_SHAPE, "a/2.png: 3 channels");
    assert_null(img);
    assert_int_equal(nc_dataset_get(ds, 0, &img), NC_OK);
    nc_image_destroy(img);
    /* a corrupt file is named in the message */
    write_text(P(f, "a/1.png"), "not a png at all");
    st = nc_dataset_get(ds, 0, &img);
    assert_int_equal(st, NC_ERR_FORMAT);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "a/1.png"));
    nc_dataset_destroy(ds);
}

/* ------------------------------------------------------------ csv */

/* amplitude and phase required, mask optional: 1 + 1 + 1 + indicator = 4 channels. */
static void test_csv_stacked_channels_with_optional_mask(void **state) {
    fx *f = *state;
    mkdir_in(f, "img");
    for (int r = 0; r < 4; r++) {
        char a[64], p[64];
        snprintf(a, sizeof a, "img/a%d.png", r);
        snprintf(p, sizeof p, "img/p%d.png", r);
        write_png(f, P(f, a), 1, 3, 5, 10 + r, 16);
        write_png(f, P(f, p), 1, 3, 5, 20 + r, 16);
    }
    write_png(f, P(f, "img/m1.png"), 1, 3, 5, 31, 16);
    write_png(f, P(f, "img/m3.png"), 1, 3, 5, 33, 16);
    /* row 0: empty mask, row 2: a mask file that does not exist */
    write_text(P(f, "manifest.csv"), "amplitude,phase,mask,label\n"
                                     "img/a0.png,img/p0.png,,chlorella\n"
                                     "img/a1.png,img/p1.png,img/m1.png,debris\n"
                                     "img/a2.png,img/p2.png,img/gone.png,debris\n"
                                     "img/a3.png,img/p3.png,img/m3.png,chlorella\n");
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.image_columns = "amplitude, phase";
    o.optional_column = "mask";
    nc_dataset *ds = open_csv(f, "manifest.csv", &o);
    assert_int_equal(nc_dataset_size(ds), 4);
    assert_int_equal(nc_dataset_channels(ds), 4);
    assert_int_equal(nc_dataset_num_classes(ds, 0), 2);
    assert_string_equal(nc_dataset_class_name(ds, 0, 0), "chlorella");
    assert_string_equal(nc_dataset_class_name(ds, 0, 1), "debris");
    assert_string_equal(nc_dataset_path(ds, 2), P(f, "img/a2.png"));
    const int present[4] = {0, 1, 0, 1};
    const int32_t want_label[4] = {0, 1, 1, 0};
    for (int r = 0; r < 4; r++) {
        nc_image *img = NULL;
        nc_status st = nc_dataset_get(ds, r, &img);
        if (st != NC_OK) print_error("%s\n", nc_context_last_error(f->ctx));
        assert_int_equal(st, NC_OK);
        assert_int_equal(nc_image_channels(img), 4);
        assert_int_equal(nc_image_height(img), 3);
        assert_int_equal(nc_image_width(img), 5);
        assert_int_equal(nc_image_bit_depth(img), 16);
        expect_plane(img, 0, 10 + r, 0, 16);
        expect_plane(img, 1, 20 + r, 0, 16);
        if (present[r])
            expect_plane(img, 2, 30 + r, 0, 16);
        else
            expect_const_plane(img, 2, 0.0f);
        expect_const_plane(img, 3, present[r] ? 1.0f : 0.0f);
        assert_int_equal(nc__dataset_labels_ptr(ds, r)[0], want_label[r]);
        nc_image_destroy(img);
    }
    nc_dataset_destroy(ds);
}

static void test_csv_optional_multichannel_and_three_required(void **state) {
    fx *f = *state;
    /* three 1-channel files + an optional RGB file: 1+1+1+3+1 = 7 channels */
    write_png(f, P(f, "a.png"), 1, 2, 2, 1, 8);
    write_png(f, P(f, "b.png"), 1, 2, 2, 2, 8);
    write_png(f, P(f, "c.png"), 1, 2, 2, 3, 8);
    write_png(f, P(f, "rgb.png"), 3, 2, 2, 4, 8);
    write_text(P(f, "m.csv"), "x,y,z,extra,label\na.png,b.png,c.png,,0\na.png,b.png,c.png,rgb.png,1\n");
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.image_columns = "x,y,z";
    o.optional_column = "extra";
    nc_dataset *ds = open_csv(f, "m.csv", &o);
    assert_int_equal(nc_dataset_channels(ds), 7);
    nc_image *img;
    assert_int_equal(nc_dataset_get(ds, 0, &img), NC_OK);
    expect_plane(img, 2, 3, 0, 8);
    for (int c = 3; c < 7; c++) expect_const_plane(img, c, 0.0f);
    nc_image_destroy(img);
    assert_int_equal(nc_dataset_get(ds, 1, &img), NC_OK);
    for (int c = 0; c < 3; c++) expect_plane(img, 3 + c, 4, c, 8);
    expect_const_plane(img, 6, 1.0f);
    nc_image_destroy(img);
    nc_dataset_destroy(ds);
}

static void test_csv_six_heads(void **state) {
    fx *f = *state;
    write_png(f, P(f, "x.png"), 1, 2, 2, 1, 8);
    write_text(P(f, "zones.csv"), "image,z1,z2,z3,z4,z5,z6\n"
                                  "x.png,0,1,2,3,4,0\n"
                                  "x.png,4,3,2,1,0,1\n"
                                  "x.png,2,2,2,2,2,low\n");
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.label_columns = "z1,z2,z3,z4,z5,z6";
    nc_dataset *ds = open_csv(f, "zones.csv", &o);
    assert_int_equal(nc_dataset_num_heads(ds), 6);
    const int want_classes[5] = {5, 4, 3, 4, 5}; /* max + 1 of each integer column */
    for (int h = 0; h < 5; h++) assert_int_equal(nc_dataset_num_classes(ds, h), want_classes[h]);
    assert_int_equal(nc_dataset_num_classes(ds, 5), 3); /* "0" "1" "low" as strings */
    assert_string_equal(nc_dataset_class_name(ds, 5, 2), "low");
    int32_t lab[6];
    assert_int_equal(nc_dataset_labels(ds, 1, lab), NC_OK);
    const int32_t want[6] = {4, 3, 2, 1, 0, 1};
    for (int h = 0; h < 6; h++) assert_int_equal(lab[h], want[h]);
    assert_int_equal(nc_dataset_num_classes(ds, 6), 0);
    assert_null(nc_dataset_class_name(ds, 6, 0));
    nc_dataset_destroy(ds);
}

static void test_csv_integer_and_string_labels(void **state) {
    fx *f = *state;
    write_png(f, P(f, "x.png"), 1, 2, 2, 1, 8);
    write_text(P(f, "m.csv"), "image,n,s,neg,big\n"
                              "x.png,0,dog,1,5\n"
                              "x.png,3,cat,-1,1000001\n"
                              "x.png,1,ant,2,7\n"
                              "x.png,3,cat,1,5\n");
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.label_columns = "n,s,neg,big";
    nc_dataset *ds = open_csv(f, "m.csv", &o);
    /* all non-negative integers: classes 0..max, class 2 absent but named */
    assert_int_equal(nc_dataset_num_classes(ds, 0), 4);
    assert_string_equal(nc_dataset_class_name(ds, 0, 2), "2");
    /* strings: sorted distinct */
    assert_int_equal(nc_dataset_num_classes(ds, 1), 3);
    assert_string_equal(nc_dataset_class_name(ds, 1, 0), "ant");
    assert_string_equal(nc_dataset_class_name(ds, 1, 2), "dog");
    /* a negative number or one over 10^6 makes the column strings */
    assert_int_equal(nc_dataset_num_classes(ds, 2), 3);
    assert_string_equal(nc_dataset_class_name(ds, 2, 0), "-1");
    assert_int_equal(nc_dataset_num_classes(ds, 3), 3);
    assert_string_equal(nc_dataset_class_name(ds, 3, 0), "1000001");
    int32_t lab[4];
    assert_int_equal(nc_dataset_labels(ds, 1, lab), NC_OK);
    assert_int_equal(lab[0], 3);
    assert_int_equal(lab[1], 1);
    assert_int_equal(lab[2], 0);
    assert_int_equal(lab[3], 0);
    assert_int_equal(nc_dataset_labels(ds, 0, lab), NC_OK);
    assert_int_equal(lab[3], 1); /* "5" < "7" */
    nc_dataset_destroy(ds);
}

static void test_csv_quoting_bom_crlf_and_base_dir(void **state) {
    fx *f = *state;
    mkdir_in(f, "data");
    mkdir_in(f, "lists");
    write_png(f, P(f, "data/a,b.png"), 1, 2, 2, 1, 8);
    write_png(f, P(f, "data/say \"hi\".png"), 1, 2, 2, 2, 8);
    write_png(f, P(f, "data/plain.png"), 1, 2, 2, 3, 8);
    /* BOM, CRLF, a quoted label with a comma and a line break, a blank line, no final newline */
    write_text(P(f, "lists/m.csv"), "\xEF\xBB\xBF\"image\",label\r\n"
                                    "\"a,b.png\",\"x, y\"\r\n"
                                    "\r\n"
                                    "\"say \"\"hi\"\".png\",\"two\r\nlines\"\r\n"
                                    "plain.png,x");
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.base_dir = P(f, "data/");
    nc_dataset *ds = open_csv(f, "lists/m.csv", &o);
    assert_int_equal(nc_dataset_size(ds), 3);
    assert_string_equal(nc_dataset_path(ds, 0), P(f, "data/a,b.png"));
    assert_string_equal(nc_dataset_path(ds, 1), P(f, "data/say \"hi\".png"));
    assert_int_equal(nc_dataset_num_classes(ds, 0), 3);
    assert_string_equal(nc_dataset_class_name(ds, 0, 0), "two\r\nlines");
    assert_string_equal(nc_dataset_class_name(ds, 0, 1), "x");
    assert_string_equal(nc_dataset_class_name(ds, 0, 2), "x, y");
    int32_t lab;
    assert_int_equal(nc_dataset_labels(ds, 0, &lab), NC_OK);
    assert_int_equal(lab, 2);
    nc_image *img;
    assert_int_equal(nc_dataset_get(ds, 1, &img), NC_OK);
    expect_plane(img, 0, 2, 0, 8);
    nc_image_destroy(img);
    nc_dataset_destroy(ds);
}

static void test_csv_relative_to_manifest_dir(void **state) {
    fx *f = *state;
    mkdir_in(f, "set");
    mkdir_in(f, "set/img");
    write_png(f, P(f, "set/img/1.png"), 1, 2, 2, 1, 8);
    write_png(f, P(f, "abs.png"), 1, 2, 2, 2, 8);
    char text[1024];
    snprintf(text, sizeof text, "image,label\nimg/1.png,0\n%s,1\n", P(f, "abs.png"));
    write_text(P(f, "set/m.csv"), text);
    nc_dataset *ds = open_csv(f, "set/m.csv", NULL);
    assert_string_equal(nc_dataset_path(ds, 0), P(f, "set/img/1.png"));
    assert_string_equal(nc_dataset_path(ds, 1), P(f, "abs.png"));
    nc_dataset_destroy(ds);
}

/* Opens manifest text (options o may be NULL) and expects an error. */
static void expect_csv_error(fx *f, const char *text, const nc_dataset_options *o, nc_status want,
                             const char *needle) {
    write_text(P(f, "manifest.csv"), text);
    nc_dataset *ds = (nc_dataset *)1;
    nc_status st = nc_dataset_open_csv(f->ctx, P(f, "manifest.csv"), o, &ds);
    expect_error(f, st, want, needle);
    assert_null(ds);
    assert_non_null(strstr(nc_context_last_error(f->ctx), "manifest.csv"));
    assert_int_equal(f->cnt.live, f->base);
}

static void test_csv_errors_name_file_and_line(void **state) {
    fx *f = *state;
    mkdir_in(f, "a");
    write_png(f, P(f, "a/ok.png"), 1, 2, 2, 1, 8);
    /* a multi-line quoted field counts its lines */
    expect_csv_error(f, "image,label\na/ok.png,\"x\ny\"\na/ok.png,1\na/b.png,2\n", NULL, NC_ERR_NOT_FOUND,
                     "manifest.csv:5: missing file 'a/b.png'");
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.image_columns = "amplitude,phase";
    expect_csv_error(f, "amplitude,label\na/ok.png,1\n", &o, NC_ERR_INVALID_ARGUMENT,
                     "manifest.csv: no column 'phase' (columns: amplitude, label)");
    expect_csv_error(f, "image,label\na/ok.png,1\na/ok.png,1,extra\n", NULL, NC_ERR_FORMAT,
                     "manifest.csv:3: 3 fields, but the header has 2");
    expect_csv_error(f, "image,label\na/ok.png\n", NULL, NC_ERR_FORMAT, "manifest.csv:2: 1 field, but");
    expect_csv_error(f, "image,label\na/ok.png,\n", NULL, NC_ERR_FORMAT,
                     "manifest.csv:2: empty label in column 'label'");
    expect_csv_error(f, "image,label\n,1\n", NULL, NC_ERR_FORMAT, "manifest.csv:2: empty path in column 'image'");
    expect_csv_error(f, "image,label\n\"a/ok.png,1\n", NULL, NC_ERR_FORMAT, "manifest.csv:2: quoted field never closed");
    expect_csv_error(f, "image,label\n\"a/ok.png\"x,1\n", NULL, NC_ERR_FORMAT, "manifest.csv:2: 'x' after a closing quote");
    expect_csv_error(f, "image,label\n", NULL, NC_ERR_NOT_FOUND, "no samples");
    expect_csv_error(f, "", NULL, NC_ERR_FORMAT, "empty manifest");
    expect_csv_error(f, "image,image,label\na/ok.png,a/ok.png,1\n", NULL, NC_ERR_FORMAT, "appears twice");
    o.image_columns = "image";
    o.optional_column = "mask";
    expect_csv_error(f, "image,mask,label\na/ok.png,,1\na/ok.png,a/none.png,1\n", &o, NC_ERR_NOT_FOUND,
                     "optional column 'mask' names an existing file in no row");
    o.optional_column = "image";
    expect_csv_error(f, "image,label\na/ok.png,1\n", &o, NC_ERR_INVALID_ARGUMENT,
                     "both an image column and the optional column");
    o.optional_column = NULL;
    o.label_columns = "label,";
    expect_csv_error(f, "image,label\na/ok.png,1\n", &o, NC_ERR_INVALID_ARGUMENT, "empty column name");
    o.label_columns = NULL;
    o.struct_size = 3;
    write_text(P(f, "manifest.csv"), "image,label\na/ok.png,1\n");
    nc_dataset *ds = NULL;
    expect_error(f, nc_dataset_open_csv(f->ctx, P(f, "manifest.csv"), &o, &ds), NC_ERR_INVALID_ARGUMENT,
                 "struct_size");
    expect_error(f, nc_dataset_open_csv(f->ctx, P(f, "nope.csv"), NULL, &ds), NC_ERR_IO,
                 "nope.csv: No such file or directory");
}

static void test_csv_size_mismatch_at_read(void **state) {
    fx *f = *state;
    write_png(f, P(f, "amp.png"), 1, 4, 4, 1, 16);
    write_png(f, P(f, "pha.png"), 1, 4, 5, 2, 16);
    write_png(f, P(f, "rgb.png"), 3, 4, 4, 2, 8);
    write_text(P(f, "m.csv"), "amplitude,phase,label\namp.png,amp.png,0\namp.png,pha.png,1\namp.png,rgb.png,1\n");
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.image_columns = "amplitude,phase";
    nc_dataset *ds = open_csv(f, "m.csv", &o);
    assert_int_equal(nc_dataset_channels(ds), 2);
    nc_image *img = (nc_image *)1;
    char want[1024];
    snprintf(want, sizeof want, "%s is 5x4 (width x height) but %s is 4x4", P(f, "pha.png"), P(f, "amp.png"));
    expect_error(f, nc_dataset_get(ds, 1, &img), NC_ERR_SHAPE, want);
    assert_null(img);
    snprintf(want, sizeof want, "%s: 3 channels, but '%s' has 1", P(f, "rgb.png"), P(f, "amp.png"));
    expect_error(f, nc_dataset_get(ds, 2, &img), NC_ERR_SHAPE, want);
    /* a file deleted after open */
    unlink(P(f, "amp.png"));
    expect_error(f, nc_dataset_get(ds, 0, &img), NC_ERR_IO, "amp.png");
    nc_dataset_destroy(ds);
}

/* ------------------------------------------------------------ idx */

static void check_small_idx(fx *f, const char *images, const char *labels) {
    nc_dataset *ds = NULL;
    nc_status st = nc_dataset_open_idx(f->ctx, P(f, images), P(f, labels), &ds);
    if (st != NC_OK) print_error("%s\n", nc_context_last_error(f->ctx));
    assert_int_equal(st, NC_OK);
    assert_int_equal(nc_dataset_size(ds), 5);
    assert_int_equal(nc_dataset_channels(ds), 1);
    assert_int_equal(nc_dataset_num_classes(ds, 0), 4);
    assert_string_equal(nc_dataset_class_name(ds, 0, 3), "3");
    char want[600];
    snprintf(want, sizeof want, "%s:4", P(f, images));
    assert_string_equal(nc_dataset_path(ds, 4), want);
    for (int i = 0; i < 5; i++) {
        nc_image *img = NULL;
        assert_int_equal(nc_dataset_get(ds, i, &img), NC_OK);
        assert_int_equal(nc_image_height(img), 3);
        assert_int_equal(nc_image_width(img), 2);
        assert_int_equal(nc_image_bit_depth(img), 8);
        for (int k = 0; k < 6; k++)
            assert_float_equal(nc_image_const_data(img)[k], (float)((i * 37 + k * 11) % 256) / 255.0f, 0);
        nc_image_destroy(img);
    }
    int64_t counts[4];
    float w[4];
    assert_int_equal(nc_dataset_class_counts(ds, 0, counts), NC_OK);
    assert_int_equal(nc_dataset_class_weights(ds, 0, w), NC_OK);
    const int64_t want_counts[4] = {3, 1, 0, 1};
    const float want_w[4] = {5.0f / 12.0f, 5.0f / 4.0f, 0.0f, 5.0f / 4.0f};
    for (int c = 0; c < 4; c++) {
        assert_int_equal(counts[c], want_counts[c]);
        assert_float_equal(w[c], want_w[c], 1e-7);
    }
    nc_dataset_destroy(ds);
}

static const unsigned char small_labels[5] = {0, 1, 0, 3, 0};

static void test_idx_reads_raw_and_gzip(void **state) {
    fx *f = *state;
    write_idx_pair(f, "img", "lab", 0, 5, 3, 2, small_labels);
    check_small_idx(f, "img", "lab");
#if HAVE_ZLIB
    write_idx_pair(f, "img.gz", "lab.gz", 1, 5, 3, 2, small_labels);
    check_small_idx(f, "img.gz", "lab.gz");
#endif
}

static void expect_idx_error(fx *f, nc_status want, const char *needle) {
    nc_dataset *ds = (nc_dataset *)1;
    nc_status st = nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), &ds);
    expect_error(f, st, want, needle);
    assert_null(ds);
    assert_int_equal(f->cnt.live, f->base);
}

/* A short file whose header claims just under 2 GiB of pixels is "truncated" without
 * the library asking for that much memory (tests/fuzz/regress/idx/ has the input the
 * fuzzer found: before, it allocated the whole claimed size first). */
static void test_idx_short_file_claiming_2gib_allocates_little(void **state) {
    fx *f = *state;
    unsigned char px[64] = {0};
    uint32_t dims[3] = {30000, 256, 256}, ldim[1] = {30000};
    write_idx(P(f, "lab"), 0, 0x801, ldim, 1, NULL, 0);
    for (int gz = 0; gz <= HAVE_ZLIB; gz++) {
        write_idx(P(f, "img"), gz, 0x803, dims, 3, px, sizeof px);
        f->cnt.largest = 0;
        expect_idx_error(f, NC_ERR_FORMAT, "truncated: expected 1966080000 bytes of pixel data, got 64");
        assert_true(f->cnt.largest <= ((size_t)4 << 20));
    }
    /* a file that really holds its payload still loads when it outgrows the first buffer */
    uint32_t big[3] = {40, 256, 256}, lbig[1] = {40};
    unsigned char *many = calloc((size_t)40 * 256 * 256, 1);
    assert_non_null(many);
    many[(size_t)40 * 256 * 256 - 1] = 255;
    write_idx(P(f, "img"), 0, 0x803, big, 3, many, (size_t)40 * 256 * 256);
    write_idx(P(f, "lab"), 0, 0x801, lbig, 1, many, 40);
    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), &ds), NC_OK);
    nc_image *img = NULL;
    assert_int_equal(nc_dataset_get(ds, 39, &img), NC_OK);
    assert_true(nc_image_data(img)[256 * 256 - 1] == 1.0f);
    nc_image_destroy(img);
    nc_dataset_destroy(ds);
    free(many);
}

static void test_idx_malformed_files(void **state) {
    fx *f = *state;
    unsigned char px[64] = {0};
    uint32_t dims[3] = {2, 2, 3};
    uint32_t ldim[1] = {2};
    write_idx(P(f, "lab"), 0, 0x801, ldim, 1, small_labels, 2);
    for (int gz = 0; gz <= HAVE_ZLIB; gz++) {
        write_idx(P(f, "img"), gz, 0x802, dims, 3, px, 12);
        expect_idx_error(f, NC_ERR_FORMAT, "bad magic 0x00000802 (expected 0x00000803");
        write_idx(P(f, "img"), gz, 0x0d03, dims, 3, px, 12); /* floats: unsupported type */
        expect_idx_error(f, NC_ERR_FORMAT, "bad magic 0x00000d03");
        write_idx(P(f, "img"), gz, 0x803, dims, 3, px, 11);
        expect_idx_error(f, NC_ERR_FORMAT, "truncated: expected 12 bytes of pixel data, got 11");
        write_idx(P(f, "img"), gz, 0x803, dims, 3, px, 15);
        expect_idx_error(f, NC_ERR_FORMAT, "3 trailing bytes after the 12 bytes of pixel data");
        write_idx(P(f, "img"), gz, 0x803, dims, 2, NULL, 0);
        expect_idx_error(f, NC_ERR_FORMAT, "header ends inside the dimensions");
        write_idx(P(f, "img"), gz, 0x803, NULL, 0, NULL, 0);
        expect_idx_error(f, NC_ERR_FORMAT, "header ends inside the dimensions");
        uint32_t zero[3] = {2, 0, 3};
        write_idx(P(f, "img"), gz, 0x803, zero, 3, px, 0);
        expect_idx_error(f, NC_ERR_FORMAT, "dimension 2 of 3 is 0");
        uint32_t huge[3] = {60000, 65536, 65536};
        write_idx(P(f, "img"), gz, 0x803, huge, 3, px, 64);
        expect_idx_error(f, NC_ERR_LIMIT, "60000 x 65536 x 65536 are over the limit");
        uint32_t three[3] = {3, 2, 3};
        write_idx(P(f, "img"), gz, 0x803, three, 3, px, 18);
        char want[1024];
        snprintf(want, sizeof want, "%s has 3 images but %s has 2 labels", P(f, "img"), P(f, "lab"));
        expect_idx_error(f, NC_ERR_FORMAT, want);
    }
    write_text(P(f, "img"), "ab");
    expect_idx_error(f, NC_ERR_FORMAT, "too short for an IDX header");
    write_idx(P(f, "img"), 0, 0x803, dims, 3, px, 12);
    write_idx(P(f, "lab"), 0, 0x803, dims, 3, px, 12);
    expect_idx_error(f, NC_ERR_FORMAT, "bad magic 0x00000803 (expected 0x00000801");
    uint32_t lzero[1] = {0};
    write_idx(P(f, "lab"), 0, 0x801, lzero, 1, NULL, 0);
    expect_idx_error(f, NC_ERR_FORMAT, "dimension 1 of 1 is 0");
    unlink(P(f, "lab"));
    expect_idx_error(f, NC_ERR_IO, "lab: No such file or directory");
    mkdir_in(f, "lab");
    expect_idx_error(f, NC_ERR_IO, "lab: Is a directory");
#if HAVE_ZLIB
    /* a damaged gzip stream */
    rmdir(P(f, "lab"));
    write_idx(P(f, "lab"), 0, 0x801, ldim, 1, small_labels, 2);
    write_idx(P(f, "img"), 1, 0x803, dims, 3, px, 12);
    size_t size;
    char *gz = tu_read_file(P(f, "img"), &size);
    for (size_t k = 12; k + 8 < size; k++) gz[k] ^= 0x5a;
    FILE *fp = fopen(P(f, "img"), "wb");
    fwrite(gz, 1, size, fp);
    fclose(fp);
    free(gz);
    nc_dataset *ds = NULL;
    nc_status st = nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), &ds);
    assert_int_equal(st, NC_ERR_FORMAT);
    assert_null(ds);
#endif
}

static void test_idx_fashion_mnist(void **state) {
    fx *f = *state;
    struct stat sb;
    if (stat(FASHION_DIR, &sb) != 0) {
        skip();
        return;
    }
    nc_dataset *ds = NULL;
    nc_status st = nc_dataset_open_idx(f->ctx, FASHION_DIR "/train-images-idx3-ubyte.gz",
                                       FASHION_DIR "/train-labels-idx1-ubyte.gz", &ds);
    if (st != NC_OK) print_error("%s\n", nc_context_last_error(f->ctx));
    assert_int_equal(st, NC_OK);
    assert_int_equal(nc_dataset_size(ds), 60000);
    assert_int_equal(nc_dataset_num_classes(ds, 0), 10);
    assert_int_equal(nc_dataset_channels(ds), 1);
    int32_t lab;
    assert_int_equal(nc_dataset_labels(ds, 0, &lab), NC_OK);
    assert_int_equal(lab, 9); /* ankle boot */
    int64_t counts[10];
    float w[10];
    assert_int_equal(nc_dataset_class_counts(ds, 0, counts), NC_OK);
    assert_int_equal(nc_dataset_class_weights(ds, 0, w), NC_OK);
    for (int c = 0; c < 10; c++) {
        assert_int_equal(counts[c], 6000);
        assert_float_equal(w[c], 1.0f, 0);
    }
    nc_image *img;
    assert_int_equal(nc_dataset_get(ds, 0, &img), NC_OK);
    assert_int_equal(nc_image_height(img), 28);
    assert_int_equal(nc_image_width(img), 28);
    nc_image_destroy(img);
    /* the commonly quoted statistics of the training set: mean 0.2860, std 0.3530 */
    float mean, std;
    assert_int_equal(nc_dataset_channel_stats(ds, NULL, 0, NULL, &mean, &std), NC_OK);
    assert_float_equal(mean, 0.2860f, 1e-4);
    assert_float_equal(std, 0.3530f, 1e-4);
    nc_dataset_destroy(ds);
    st = nc_dataset_open_idx(f->ctx, FASHION_DIR "/t10k-images-idx3-ubyte.gz",
                             FASHION_DIR "/t10k-labels-idx1-ubyte.gz", &ds);
    assert_int_equal(st, NC_OK);
    assert_int_equal(nc_dataset_size(ds), 10000);
    nc_dataset_destroy(ds);
    st = nc_dataset_open_idx(f->ctx, FASHION_DIR "/train-images-idx3-ubyte.gz",
                             FASHION_DIR "/t10k-labels-idx1-ubyte.gz", &ds);
    expect_error(f, st, NC_ERR_FORMAT, "has 60000 images but");
}

/* ------------------------------------------------------------ statistics */

static void test_channel_stats_match_hand_computation(void **state) {
    fx *f = *state;
    write_idx_pair(f, "img", "lab", 0, 5, 3, 2, small_labels);
    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), &ds), NC_OK);
    const int64_t idx[3] = {4, 1, 2};
    double s = 0, q = 0;
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < 6; k++) {
            double v = (float)((idx[j] * 37 + k * 11) % 256) / 255.0f;
            s += v;
            q += v * v;
        }
    double m = s / 18, sd = sqrt(q / 18 - m * m);
    float mean, std;
    assert_int_equal(nc_dataset_channel_stats(ds, idx, 3, NULL, &mean, &std), NC_OK);
    assert_float_equal(mean, m, 1e-6);
    assert_float_equal(std, sd, 1e-6);

    /* after a transform: normalize by (0.25, 0.5) */
    nc_transform *t = NULL;
    assert_int_equal(nc_transform_create(f->ctx, &t), NC_OK);
    const float tm = 0.25f, ts = 0.5f;
    assert_int_equal(nc_transform_add_normalize(t, &tm, &ts, 1), NC_OK);
    assert_int_equal(nc_dataset_channel_stats(ds, idx, 3, t, &mean, &std), NC_OK);
    assert_float_equal(mean, (m - 0.25) / 0.5, 1e-6);
    assert_float_equal(std, sd / 0.5, 1e-6);
    nc_transform_destroy(t);

    const int64_t bad[2] = {0, 5};
    expect_error(f, nc_dataset_channel_stats(ds, bad, 2, NULL, &mean, &std), NC_ERR_INVALID_ARGUMENT,
                 "indices[1] = 5 out of range");
    expect_error(f, nc_dataset_channel_stats(ds, idx, 0, NULL, &mean, &std), NC_ERR_INVALID_ARGUMENT,
                 "count 0");
    nc_dataset_destroy(ds);
}

static void test_channel_stats_multichannel_images_of_different_sizes(void **state) {
    fx *f = *state;
    mkdir_in(f, "k");
    write_png(f, P(f, "k/1.png"), 3, 2, 3, 1, 16);
    write_png(f, P(f, "k/2.png"), 3, 4, 1, 2, 16);
    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_folder(f->ctx, f->dir, NULL, &ds), NC_OK);
    float mean[3], std[3];
    assert_int_equal(nc_dataset_channel_stats(ds, NULL, 0, NULL, mean, std), NC_OK);
    for (int c = 0; c < 3; c++) {
        double s = 0, q = 0;
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++) s += pattern(1, c, y, x, 16), q += (double)pattern(1, c, y, x, 16) * pattern(1, c, y, x, 16);
        for (int y = 0; y < 4; y++) s += pattern(2, c, y, 0, 16), q += (double)pattern(2, c, y, 0, 16) * pattern(2, c, y, 0, 16);
        double m = s / 10;
        assert_float_equal(mean[c], m, 1e-6);
        assert_float_equal(std[c], sqrt(q / 10 - m * m), 1e-6);
    }
    nc_dataset_destroy(ds);
}

/* ------------------------------------------------------------ threads */

typedef struct reader_job {
    nc_dataset *ds;
    nc_context *ctx;   /* a child context per thread */
    float **serial;    /* (n) the serial reads */
    size_t *sizes;     /* (n) values per image */
    int64_t n;
    int mismatches;
    int failures;
} reader_job;

static void *reader_main(void *arg) {
    reader_job *j = arg;
    for (int rep = 0; rep < 3; rep++)
        for (int64_t i = 0; i < j->n; i++) {
            nc_image *img = NULL;
            if (nc__dataset_read(j->ds, j->ctx, (i * 7 + rep) % j->n, &img) != NC_OK) {
                j->failures++;
                continue;
            }
            int64_t k = (i * 7 + rep) % j->n;
            size_t sz = (size_t)img->channels * img->height * img->width;
            if (sz != j->sizes[k] || memcmp(img->data, j->serial[k], sz * sizeof(float)) != 0) j->mismatches++;
            nc_image_destroy(img);
        }
    return NULL;
}

static void read_from_threads(fx *f, nc_dataset *ds) {
    int64_t n = nc_dataset_size(ds);
    float **serial = calloc((size_t)n, sizeof *serial);
    size_t *sizes = calloc((size_t)n, sizeof *sizes);
    for (int64_t i = 0; i < n; i++) {
        nc_image *img;
        assert_int_equal(nc_dataset_get(ds, i, &img), NC_OK);
        sizes[i] = (size_t)img->channels * img->height * img->width;
        serial[i] = malloc(sizes[i] * sizeof(float));
        memcpy(serial[i], img->data, sizes[i] * sizeof(float));
        nc_image_destroy(img);
    }
    pthread_t th[4];
    reader_job jobs[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (reader_job){.ds = ds, .serial = serial, .sizes = sizes, .n = n};
        assert_int_equal(nc__context_create_child(f->ctx, &jobs[t].ctx), NC_OK);
        assert_int_equal(pthread_create(&th[t], NULL, reader_main, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(jobs[t].failures, 0);
        assert_int_equal(jobs[t].mismatches, 0);
        nc_context_destroy(jobs[t].ctx);
    }
    for (int64_t i = 0; i < n; i++) free(serial[i]);
    free(serial);
    free(sizes);
}

static void test_read_from_four_threads_matches_serial(void **state) {
    fx *f = *state;
    /* a CSV dataset of stacked PNGs with the optional column, and an IDX dataset */
    char text[16384] = "a,b,m,label\n";
    for (int r = 0; r < 24; r++) {
        char a[64], b[64], m[64], line[256];
        snprintf(a, sizeof a, "a%d.png", r);
        snprintf(b, sizeof b, "b%d.png", r);
        snprintf(m, sizeof m, "m%d.png", r);
        write_png(f, P(f, a), 1, 6, 5, r, 16);
        write_png(f, P(f, b), 2, 6, 5, 100 + r, 8);
        if (r % 3) write_png(f, P(f, m), 1, 6, 5, 200 + r, 16);
        snprintf(line, sizeof line, "%s,%s,%s,%d\n", a, b, r % 3 ? m : "", r % 4);
        strcat(text, line);
    }
    write_text(P(f, "m.csv"), text);
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.image_columns = "a,b";
    o.optional_column = "m";
    nc_dataset *ds = open_csv(f, "m.csv", &o);
    assert_int_equal(nc_dataset_channels(ds), 5);
    read_from_threads(f, ds);
    nc_dataset_destroy(ds);

    unsigned char lab[40];
    for (int i = 0; i < 40; i++) lab[i] = (unsigned char)(i % 10);
    write_idx_pair(f, "img", "lab", HAVE_ZLIB, 40, 7, 9, lab);
    assert_int_equal(nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), &ds), NC_OK);
    read_from_threads(f, ds);
    nc_dataset_destroy(ds);
}

/* ------------------------------------------------------------ robustness */

typedef enum { OPEN_FOLDER, OPEN_CSV, OPEN_IDX } open_kind;

static nc_status open_kind_run(fx *f, open_kind k, const nc_dataset_options *o, nc_dataset **ds) {
    switch (k) {
    case OPEN_FOLDER: return nc_dataset_open_folder(f->ctx, P(f, "tree"), o, ds);
    case OPEN_CSV: return nc_dataset_open_csv(f->ctx, P(f, "m.csv"), o, ds);
    default: return nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), ds);
    }
}

/* Every allocation failing in turn: NC_ERR_OUT_OF_MEMORY, nothing leaked, until an
 * open succeeds; then every allocation of a read fails in turn. */
static void test_dataset_out_of_memory_at_every_allocation(void **state) {
    fx *f = *state;
    mkdir_in(f, "tree");
    mkdir_in(f, "tree/a");
    mkdir_in(f, "tree/b");
    write_png(f, P(f, "tree/a/1.png"), 1, 3, 3, 1, 16);
    write_png(f, P(f, "tree/b/2.png"), 1, 3, 3, 2, 16);
    write_png(f, P(f, "tree/b/3.png"), 1, 3, 3, 3, 16);
    write_text(P(f, "m.csv"), "amp,pha,mask,label,zone\n"
                              "tree/a/1.png,tree/b/2.png,,cat,0\n"
                              "tree/a/1.png,tree/b/2.png,tree/b/3.png,dog,2\n");
    write_idx_pair(f, "img", "lab", HAVE_ZLIB, 5, 3, 2, small_labels);
    nc_dataset_options o;
    nc_dataset_options_init(&o);
    o.image_columns = "amp,pha";
    o.optional_column = "mask";
    o.label_columns = "label,zone";
    for (int k = OPEN_FOLDER; k <= OPEN_IDX; k++) {
        nc_dataset *ds = NULL;
        long limit;
        nc_status st = NC_ERR_OUT_OF_MEMORY;
        for (limit = 0; limit < 10000 && st != NC_OK; limit++) {
            f->cnt.calls = 0;
            f->cnt.fail_after = limit;
            ds = (nc_dataset *)1;
            st = open_kind_run(f, (open_kind)k, &o, &ds);
            f->cnt.fail_after = -1;
            if (st != NC_OK) {
                if (st != NC_ERR_OUT_OF_MEMORY) print_error("kind %d limit %ld: %s\n", k, limit, nc_context_last_error(f->ctx));
                assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
                assert_null(ds);
                assert_int_equal(f->cnt.live, f->base);
            }
        }
        assert_int_equal(st, NC_OK);
        for (int64_t i = 0; i < nc_dataset_size(ds); i++) {
            nc_image *img = NULL;
            for (limit = 0, st = NC_ERR_OUT_OF_MEMORY; st != NC_OK; limit++) {
                long live = f->cnt.live;
                f->cnt.calls = 0;
                f->cnt.fail_after = limit;
                st = nc_dataset_get(ds, i, &img);
                f->cnt.fail_after = -1;
                if (st != NC_OK) {
                    assert_int_equal(st, NC_ERR_OUT_OF_MEMORY);
                    assert_int_equal(f->cnt.live, live);
                }
            }
            nc_image_destroy(img);
        }
        nc_dataset_destroy(ds);
    }
}

/* Random manifests made of CSV-significant pieces: any status, never a crash or leak. */
static void test_csv_random_text_never_crashes(void **state) {
    fx *f = *state;
    write_png(f, P(f, "x.png"), 1, 2, 2, 1, 8);
    static const char *const piece[] = {",", "\"", "\"\"", "\n", "\r\n", "\r", "x.png", "image", "label",
                                        "1", "a", " ", "\xEF\xBB\xBF", "\"x.png\"", "y.png", ""};
    const int npiece = (int)(sizeof piece / sizeof *piece);
    float r[64];
    int ok = 0;
    for (int iter = 0; iter < 400; iter++) {
        char text[1024];
        strcpy(text, iter % 2 ? "image,label\n" : "");
        tu_fill_uniform(r, 64, 0, 1, (uint64_t)iter);
        int len = 1 + (int)(r[0] * 40);
        for (int k = 1; k <= len; k++) strcat(text, piece[(int)(r[k] * npiece) % npiece]);
        write_text(P(f, "m.csv"), text);
        nc_dataset *ds = NULL;
        nc_status st = nc_dataset_open_csv(f->ctx, P(f, "m.csv"), NULL, &ds);
        assert_true(st == NC_OK || st == NC_ERR_FORMAT || st == NC_ERR_NOT_FOUND ||
                    st == NC_ERR_INVALID_ARGUMENT || st == NC_ERR_IO);
        if (st == NC_OK) {
            ok++;
            for (int64_t i = 0; i < nc_dataset_size(ds); i++) {
                nc_image *img = NULL;
                if (nc_dataset_get(ds, i, &img) == NC_OK) nc_image_destroy(img);
            }
        } else {
            assert_null(ds);
        }
        nc_dataset_destroy(ds);
        assert_int_equal(f->cnt.live, f->base);
    }
    assert_true(ok > 0);
}

/* An IDX pair cut at every length: an error naming the file, never a crash. */
static void test_idx_cut_at_every_length(void **state) {
    fx *f = *state;
    write_idx_pair(f, "img", "lab", 0, 5, 3, 2, small_labels);
    size_t size;
    char *full = tu_read_file(P(f, "img"), &size);
    for (size_t cut = 0; cut < size; cut++) {
        FILE *fp = fopen(P(f, "img"), "wb");
        fwrite(full, 1, cut, fp);
        fclose(fp);
        nc_dataset *ds = (nc_dataset *)1;
        nc_status st = nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), &ds);
        assert_int_equal(st, NC_ERR_FORMAT);
        assert_null(ds);
        assert_non_null(strstr(nc_context_last_error(f->ctx), "truncated"));
        assert_int_equal(f->cnt.live, f->base);
    }
    free(full);
}

/* ------------------------------------------------------------ arguments */

static void test_dataset_null_and_range_arguments(void **state) {
    fx *f = *state;
    nc_dataset *ds = NULL;
    assert_int_equal(nc_dataset_open_folder(f->ctx, NULL, NULL, &ds), NC_ERR_NULL);
    assert_int_equal(nc_dataset_open_folder(f->ctx, f->dir, NULL, NULL), NC_ERR_NULL);
    assert_int_equal(nc_dataset_open_csv(f->ctx, NULL, NULL, &ds), NC_ERR_NULL);
    assert_int_equal(nc_dataset_open_idx(f->ctx, "x", NULL, &ds), NC_ERR_NULL);
    assert_int_equal(nc_dataset_open_idx(NULL, "x", "y", &ds), NC_ERR_NULL);
    nc_dataset_destroy(NULL);
    assert_int_equal(nc_dataset_size(NULL), 0);
    assert_int_equal(nc_dataset_num_heads(NULL), 0);
    assert_int_equal(nc_dataset_num_classes(NULL, 0), 0);
    assert_int_equal(nc_dataset_channels(NULL), 0);
    assert_null(nc_dataset_class_name(NULL, 0, 0));
    assert_null(nc_dataset_path(NULL, 0));
    nc_image *img = NULL;
    assert_int_equal(nc_dataset_get(NULL, 0, &img), NC_ERR_NULL);
    nc_dataset_options_init(NULL);

    write_idx_pair(f, "img", "lab", 0, 5, 3, 2, small_labels);
    assert_int_equal(nc_dataset_open_idx(f->ctx, P(f, "img"), P(f, "lab"), &ds), NC_OK);
    int32_t lab;
    expect_error(f, nc_dataset_labels(ds, 5, &lab), NC_ERR_INVALID_ARGUMENT, "sample 5 out of range [0, 5)");
    assert_int_equal(nc_dataset_labels(ds, 0, NULL), NC_ERR_NULL);
    expect_error(f, nc_dataset_get(ds, -1, &img), NC_ERR_INVALID_ARGUMENT, "sample -1 out of range");
    assert_null(img);
    int64_t counts[4];
    expect_error(f, nc_dataset_class_counts(ds, 1, counts), NC_ERR_INVALID_ARGUMENT, "head 1 out of range");
    assert_int_equal(nc_dataset_class_weights(ds, 0, NULL), NC_ERR_NULL);
    assert_null(nc_dataset_class_name(ds, 0, 4));
    assert_null(nc_dataset_class_name(ds, 0, -1));
    assert_ptr_equal(nc__dataset_context(ds), f->ctx);
    nc_dataset_destroy(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_folder_class_and_file_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_hidden_entries_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_keeps_empty_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_missing_root_is_io_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_empty_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_channel_mismatch_at_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_stacked_channels_with_optional_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_optional_multichannel_and_three_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_six_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_integer_and_string_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_quoting_bom_crlf_and_base_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_relative_to_manifest_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_errors_name_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_size_mismatch_at_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_reads_raw_and_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_malformed_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_short_file_claiming_2gib_allocates_little, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_fashion_mnist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_stats_match_hand_computation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_stats_multichannel_images_of_different_sizes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_from_four_threads_matches_serial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_out_of_memory_at_every_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_random_text_never_crashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_cut_at_every_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_null_and_range_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
