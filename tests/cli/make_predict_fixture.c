/* make_predict_fixture.c — writes the fixture that tests/cli/test_nc_predict.py runs
 * nc-predict and nc-embed on, into the folder given as argv[1]:
 *   model.ckpt          a training checkpoint (nc_trainer_save_checkpoint) of a
 *                       3-channel, 4-class simple_cnn with class names (one with a
 *                       comma, one with quotes), normalisation and the info keys
 *                       image_size 16, resize 18, temperature 1.5, threshold.class 1
 *                       and threshold.value (the median of class 1's probabilities)
 *   heads.safetensors   a 2-head model with no info keys and no normalisation
 *   img/...             PNGs: 8- and 16-bit RGB of several sizes, gray, RGBA, a
 *                       corrupt file, a name with a comma and quotes, sub/d.png
 *   manifest.csv        columns id,left,right (a gray and a gray+alpha file stacked)
 *   manifest_opt.csv    columns image,mask for --optional-column mask
 *   expected.csv        name,kind,p0..: the probabilities nc-predict must print,
 *                       computed here image by image (batch of 1) from the decoded
 *                       pixels: kind T (softmax(logits / 1.5)), raw (T = 1), tta
 *                       (mean of T-softmax of the input and of its flipped tensor),
 *                       heads (the 2-head model on the raw 16x16 pixels); and one row
 *                       "threshold,value,<t>".
 * Channel conversion and stacking are done by hand here, independently of nc-predict. */
#include "neurc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CLASSES 4
#ifndef FC_SCALE
#define FC_SCALE 10.0f
#endif

static nc_context *ctx;
static char dir[2048];

static void die(const char *what, nc_status st) {
    fprintf(stderr, "make_predict_fixture: %s: %s: %s\n", what, nc_status_str(st), nc_context_last_error(ctx));
    exit(1);
}

#define CK(call)                                     \
    do {                                             \
        nc_status st_ = (call);                      \
        if (st_ != NC_OK) die(#call, st_);           \
    } while (0)

static char *path_of(const char *name) {
    static char buf[8][4096];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double uniform(void) { /* xorshift64*, fixed seed: the fixture is deterministic */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* Writes a random PNG and returns it as decoded (what nc-predict will see). */
static nc_image *make_png(const char *name, int c, int h, int w, int depth) {
    nc_image *img, *back;
    CK(nc_image_create(ctx, c, h, w, &img));
    float *d = nc_image_data(img);
    for (int k = 0; k < c; k++) { /* each channel its own level, so images differ in class */
        double base = 0.7 * uniform();
        for (size_t i = 0; i < (size_t)h * w; i++) d[(size_t)k * h * w + i] = (float)(base + 0.3 * uniform());
    }
    CK(nc_png_write(ctx, path_of(name), img, depth));
    nc_image_destroy(img);
    CK(nc_png_read(ctx, path_of(name), NULL, &back));
    return back;
}

/* An image of `c` channels made of planes of the given images (NULL = zero planes). */
static nc_image *stack(int c, int h, int w, nc_image *const *parts, const int *from, int n) {
    nc_image *out;
    CK(nc_image_create(ctx, c, h, w, &out));
    size_t hw = (size_t)h * w;
    for (int k = 0; k < n; k++)
        if (parts[k]) memcpy(nc_image_data(out) + k * hw, nc_image_const_data(parts[k]) + from[k] * hw, hw * 4);
    return out;
}

static void softmax(const float *z, int n, double t, double *p) {
    double mx = z[0], s = 0;
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < n; i++) s += (p[i] = exp((z[i] - mx) / t));
    for (int i = 0; i < n; i++) p[i] /= s;
}

static void row(FILE *f, const char *name, const char *kind, const double *p, int n) {
    fputc('"', f); /* RFC 4180: names hold commas and quotes */
    for (const char *s = name; *s; s++) fprintf(f, *s == '"' ? "\"\"" : "%c", *s);
    fprintf(f, "\",%s", kind);
    for (int i = 0; i < n; i++) fprintf(f, ",%.17g", p[i]);
    fputc('\n', f);
}

/* Expected rows of one 3-channel image for the checkpoint model; p1[*n1] collects the
 * class-1 probabilities (kind T) for the threshold. */
static void expect(FILE *f, nc_model *m, nc_transform *t, const char *name, const nc_image *img, double *p1,
                   int *n1) {
    nc_image *x;
    CK(nc_transform_apply(t, ctx, img, 0, 0, 0, &x));
    int h = nc_image_height(x), w = nc_image_width(x);
    float *xf = malloc((size_t)3 * h * w * sizeof *xf), z[CLASSES], zf[CLASSES];
    const float *xs = nc_image_const_data(x);
    for (int r = 0; r < 3 * h; r++)
        for (int j = 0; j < w; j++) xf[r * w + j] = xs[r * w + (w - 1 - j)];
    CK(nc_model_forward(m, xs, 1, 3, h, w, z));
    CK(nc_model_forward(m, xf, 1, 3, h, w, zf));
    double p[CLASSES], q[CLASSES], a[CLASSES];
    softmax(z, CLASSES, 1.5, p);
    row(f, name, "T", p, CLASSES);
    p1[(*n1)++] = p[1];
    softmax(zf, CLASSES, 1.5, q);
    for (int i = 0; i < CLASSES; i++) a[i] = 0.5 * (p[i] + q[i]);
    row(f, name, "tta", a, CLASSES);
    softmax(z, CLASSES, 1.0, p);
    row(f, name, "raw", p, CLASSES);
    free(xf);
    nc_image_destroy(x);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_predict_fixture DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF;
    co.num_threads = 1;
    if (nc_context_create(&co, &ctx) != NC_OK) return 1;
    mkdir(path_of("img"), 0777);
    mkdir(path_of("img/sub"), 0777);
    mkdir(path_of("m"), 0777);

    /* the checkpoint's model, with logits spread wide enough to separate the classes */
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "simple_cnn";
    mo.num_classes = CLASSES;
    mo.in_channels = 3;
    mo.width = 4;
    mo.seed = 7;
    nc_model *m;
    CK(nc_model_create(ctx, &mo, &m));
    float fc[CLASSES * 16];
    CK(nc_model_get_tensor(m, "fc.weight", fc, CLASSES * 16));
    for (int k = 0; k < CLASSES; k++) { /* rows of sum 0: logits follow the features' */
        double mean_k = 0;              /* differences between images, not their level */
        for (int i = 0; i < 16; i++) mean_k += fc[k * 16 + i] / 16.0;
        for (int i = 0; i < 16; i++) fc[k * 16 + i] = (float)((fc[k * 16 + i] - mean_k) * FC_SCALE);
    }
    CK(nc_model_set_tensor(m, "fc.weight", fc, CLASSES * 16));
    const char *names[CLASSES] = {"alpha", "beta, b", "gamma \"g\"", "delta"};
    const float mean[3] = {0.4f, 0.5f, 0.6f}, std[3] = {0.2f, 0.25f, 0.3f};
    CK(nc_model_set_class_names(m, names, CLASSES));
    CK(nc_model_set_normalization(m, mean, std));
    nc_transform *t;
    CK(nc_transform_preset_eval(ctx, 18, 16, 3, mean, std, &t));

    FILE *f = fopen(path_of("expected.csv"), "w");
    if (!f) return 1;
    double p1[16];
    int n1 = 0;
    nc_image *img, *tmp, *parts[3];
    struct { const char *file, *name; int c, h, w, depth; } rgb[] = {
        {"img/a.png", "a.png", 3, 16, 16, 8},          {"img/b.png", "b.png", 3, 20, 24, 16},
        {"img/c.png", "c.png", 3, 19, 17, 8},          {"img/sub/d.png", "d.png", 3, 16, 16, 8},
        {"img/odd, \"q\".png", "odd, \"q\".png", 3, 16, 16, 8},
    };
    for (size_t i = 0; i < sizeof rgb / sizeof rgb[0]; i++) {
        img = make_png(rgb[i].file, rgb[i].c, rgb[i].h, rgb[i].w, rgb[i].depth);
        expect(f, m, t, rgb[i].name, img, p1, &n1);
        nc_image_destroy(img);
    }
    /* gray -> replicated; RGBA (16-bit) -> alpha dropped */
    tmp = make_png("img/gray.png", 1, 16, 16, 8);
    parts[0] = parts[1] = parts[2] = tmp;
    img = stack(3, 16, 16, parts, (int[]){0, 0, 0}, 3);
    expect(f, m, t, "gray.png", img, p1, &n1);
    nc_image_destroy(img);
    nc_image_destroy(tmp);
    tmp = make_png("img/rgba.png", 4, 16, 16, 16);
    parts[0] = parts[1] = parts[2] = tmp;
    img = stack(3, 16, 16, parts, (int[]){0, 1, 2}, 3);
    expect(f, m, t, "rgba.png", img, p1, &n1);
    nc_image_destroy(img);
    nc_image_destroy(tmp);
    FILE *bad = fopen(path_of("img/corrupt.png"), "w");
    fputs("this is not a PNG file\n", bad);
    fclose(bad);

    /* manifest.csv: a gray file and a gray+alpha file stacked as 3 channels */
    nc_image *l1 = make_png("m/l1.png", 1, 16, 16, 16), *r1 = make_png("m/r1.png", 2, 16, 16, 8);
    parts[0] = l1;
    parts[1] = parts[2] = r1;
    img = stack(3, 16, 16, parts, (int[]){0, 0, 1}, 3);
    expect(f, m, t, "l1.png", img, p1, &n1);
    nc_image_destroy(img);
    FILE *mf = fopen(path_of("manifest.csv"), "w");
    fputs("id,left,right\r\n1,m/l1.png,m/r1.png\r\n2,m/missing.png,m/r1.png\r\n", mf);
    fclose(mf);
    /* manifest_opt.csv: image + optional mask + present indicator */
    nc_image *g2 = make_png("m/g2.png", 1, 16, 16, 8), *k2 = make_png("m/k2.png", 1, 16, 16, 8);
    nc_image *g3 = make_png("m/g3.png", 1, 16, 16, 8), *ones;
    CK(nc_image_create(ctx, 1, 16, 16, &ones));
    for (int i = 0; i < 256; i++) nc_image_data(ones)[i] = 1.0f;
    parts[0] = g2, parts[1] = k2, parts[2] = ones;
    img = stack(3, 16, 16, parts, (int[]){0, 0, 0}, 3);
    expect(f, m, t, "g2.png", img, p1, &n1);
    nc_image_destroy(img);
    parts[0] = g3, parts[1] = NULL, parts[2] = NULL;
    img = stack(3, 16, 16, parts, (int[]){0, 0, 0}, 3);
    expect(f, m, t, "g3.png", img, p1, &n1);
    nc_image_destroy(img);
    mf = fopen(path_of("manifest_opt.csv"), "w");
    fputs("image,mask\nm/g2.png,m/k2.png\nm/g3.png,\n", mf);
    fclose(mf);

    /* threshold: between the two middle class-1 probabilities */
    qsort(p1, (size_t)n1, sizeof *p1, cmp_double);
    double thr = 0.5 * (p1[n1 / 2 - 1] + p1[n1 / 2]);
    char v[64];
    snprintf(v, sizeof v, "%.9g", thr);
    fprintf(f, "threshold,value,%s\n", v);
    CK(nc_model_set_info(m, "image_size", "16"));
    CK(nc_model_set_info(m, "resize", "18"));
    CK(nc_model_set_info(m, "temperature", "1.5"));
    CK(nc_model_set_info(m, "threshold.class", "1"));
    CK(nc_model_set_info(m, "threshold.value", v));
    nc_trainer *tr;
    CK(nc_trainer_create(m, NULL, &tr));
    CK(nc_trainer_save_checkpoint(tr, path_of("model.ckpt"), NULL));
    nc_trainer_destroy(tr);

    /* a 2-head model without info or normalisation: raw pixels of the image's own size */
    nc_model *mh;
    mo.num_heads = 2;
    mo.seed = 11;
    CK(nc_model_create(ctx, &mo, &mh));
    CK(nc_model_save(mh, path_of("heads.safetensors")));
    CK(nc_png_read(ctx, path_of("img/a.png"), NULL, &img));
    float z[2 * CLASSES];
    double p[2 * CLASSES];
    CK(nc_model_forward(mh, nc_image_const_data(img), 1, 3, 16, 16, z));
    softmax(z, CLASSES, 1.0, p);
    softmax(z + CLASSES, CLASSES, 1.0, p + CLASSES);
    row(f, "a.png", "heads", p, 2 * CLASSES);
    nc_image_destroy(img);

    fclose(f);
    nc_image_destroy(l1);
    nc_image_destroy(r1);
    nc_image_destroy(g2);
    nc_image_destroy(k2);
    nc_image_destroy(g3);
    nc_image_destroy(ones);
    nc_transform_destroy(t);
    nc_model_destroy(mh);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    return 0;
}
