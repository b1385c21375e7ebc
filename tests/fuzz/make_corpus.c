/* make_corpus.c — writes the seed corpora of the fuzz targets: a handful of small
 * valid inputs per target under <root>/<target>/ (tests/fuzz/corpus/ is committed;
 * run.sh --seeds rewrites it). Files come from the library's own writers (PNG,
 * models, checkpoints, state_dicts) and from the shapes the targets expect (fuzz.h),
 * plus PNGs the library does not write (palette, low bit depths, Adam7, tRNS)
 * encoded here with zlib, so that the fuzzer starts from every decoder path.
 * Usage: fuzz_make_corpus ROOT */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "fuzz.h"
#include "core/context.h"
#include "io/safetensors.h"
#include "train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *root;
static nc_context *ctx;

static void ok(nc_status st, const char *what) { fz_ok(ctx, st, what); }

static void path_of(char *buf, size_t size, const char *target, const char *name) {
    snprintf(buf, size, "%s/%s", root, target);
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        perror(buf);
        exit(1);
    }
    snprintf(buf, size, "%s/%s/%s", root, target, name);
}

static void save(const char *target, const char *name, const void *bytes, size_t size) {
    char path[1024];
    path_of(path, sizeof path, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* Reads a file the library wrote back into memory and saves it under target/name. */
static void copy_file(const char *from, const char *target, const char *name) {
    FILE *f = fopen(from, "rb");
    if (!f) {
        perror(from);
        exit(1);
    }
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == sizeof buf) {
        fprintf(stderr, "%s: larger than a seed should be\n", from);
        exit(1);
    }
    save(target, name, buf, n);
    remove(from);
}

static const char *tmp_file(const char *name) { return fz_write(name, "", 0); }

/* ------------------------------------------------------------------ png */

static void png_from_writer(int channels, int depth, int h, int w) {
    nc_image *img = NULL;
    ok(nc_image_create(ctx, channels, h, w, &img), "image");
    float *v = nc_image_data(img);
    for (int i = 0; i < channels * h * w; i++) v[i] = (float)((i * 37) % 101) / 100.0f;
    const char *tmp = tmp_file("seed.png");
    ok(nc_png_write(ctx, tmp, img, depth), "png write");
    nc_image_destroy(img);
    char name[64];
    snprintf(name, sizeof name, "writer_c%d_d%d_%dx%d.png", channels, depth, h, w);
    copy_file(tmp, "png", name);
}

typedef struct out_buf {
    unsigned char data[8192];
    size_t n;
} out_buf;

static void put(out_buf *o, const void *p, size_t n) {
    if (o->n + n > sizeof o->data) abort();
    memcpy(o->data + o->n, p, n);
    o->n += n;
}

static void put_be32(out_buf *o, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    put(o, b, 4);
}

static void chunk(out_buf *o, const char *type, const unsigned char *p, size_t n) {
    put_be32(o, (uint32_t)n);
    size_t at = o->n;
    put(o, type, 4);
    if (n) put(o, p, n);
    put_be32(o, (uint32_t)crc32(0, o->data + at, (uInt)(n + 4)));
}

/* Packs samples (value = (x*7 + y*3 + c) mod 2^depth) of a w x h sub-image into rows
 * with filter byte 0; returns the bytes written to raw. */
static size_t pack_rows(unsigned char *raw, int w, int h, int ch, int depth, int x0, int y0, int dx, int dy) {
    size_t n = 0;
    for (int y = 0; y < h; y++) {
        raw[n++] = 0;
        int bits = 0, acc = 0;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                unsigned v = (unsigned)(((x0 + x * dx) * 7 + (y0 + y * dy) * 3 + c) % (1 << (depth > 8 ? 8 : depth)));
                if (depth == 16) {
                    raw[n++] = (unsigned char)v;
                    raw[n++] = (unsigned char)(v * 3);
                } else if (depth == 8) {
                    raw[n++] = (unsigned char)v;
                } else {
                    acc = acc << depth | (int)v;
                    bits += depth;
                    if (bits == 8) raw[n++] = (unsigned char)acc, acc = 0, bits = 0;
                }
            }
        if (bits) raw[n++] = (unsigned char)(acc << (8 - bits));
    }
    return n;
}

/* A PNG of colour type ct (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA), bit depth,
 * optional Adam7 interlace, PLTE (palette) and tRNS. */
static void png_handmade(const char *name, int w, int h, int ct, int depth, int interlace, int trns) {
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    const int ch = chans[ct];
    unsigned char raw[4096], z[4096];
    size_t nraw = 0;
    if (!interlace) {
        nraw = pack_rows(raw, w, h, ch, depth, 0, 0, 1, 1);
    } else {
        static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
        static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
        for (int p = 0; p < 7; p++) {
            int pw = (w - x0[p] + dx[p] - 1) / dx[p], ph = (h - y0[p] + dy[p] - 1) / dy[p];
            if (pw > 0 && ph > 0) nraw += pack_rows(raw + nraw, pw, ph, ch, depth, x0[p], y0[p], dx[p], dy[p]);
        }
    }
    uLongf nz = sizeof z;
    if (compress2(z, &nz, raw, (uLong)nraw, 9) != Z_OK) abort();
    out_buf o = {.n = 0};
    put(&o, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13] = {0, 0, 0, (unsigned char)w, 0, 0, 0, (unsigned char)h, (unsigned char)depth,
                              (unsigned char)ct, 0, 0, (unsigned char)interlace};
    chunk(&o, "IHDR", ihdr, 13);
    if (ct == 3) {
        unsigned char plte[3 * 16];
        for (int i = 0; i < 48; i++) plte[i] = (unsigned char)(i * 5);
        chunk(&o, "PLTE", plte, (size_t)3 << depth > 48 ? 48 : (size_t)3 << depth);
    }
    if (trns) {
        unsigned char t[6] = {0, 1, 0, 2, 0, 3};
        chunk(&o, "tRNS", t, ct == 0 ? 2 : ct == 2 ? 6 : 2);
    }
    chunk(&o, "IDAT", z, nz);
    chunk(&o, "IEND", NULL, 0);
    save("png", name, o.data, o.n);
}

static void png_seeds(void) {
    png_from_writer(1, 8, 3, 5);
    png_from_writer(2, 8, 2, 2);
    png_from_writer(3, 8, 4, 3);
    png_from_writer(4, 16, 3, 3);
    png_from_writer(1, 16, 5, 2);
    png_handmade("palette_d2_trns.png", 5, 3, 3, 2, 0, 1);
    png_handmade("palette_d4_adam7.png", 9, 9, 3, 4, 1, 0);
    png_handmade("gray_d1_adam7.png", 10, 9, 0, 1, 1, 0);
    png_handmade("gray_d4_trns.png", 6, 2, 0, 4, 0, 1);
    png_handmade("rgb_d8_trns.png", 3, 3, 2, 8, 0, 1);
    png_handmade("gray_alpha_d16_adam7.png", 3, 5, 4, 16, 1, 0);
}

/* ------------------------------------------------------------------ models */

static void save_model(nc_model *m, const char *target, const char *name) {
    const char *tmp = tmp_file("seed.safetensors");
    ok(nc_model_save(m, tmp), "model save");
    copy_file(tmp, target, name);
}

static nc_model *simple(int in, int classes, int heads, nc_head_type head) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = "simple_cnn";
    o.in_channels = in;
    o.width = 2;
    o.num_classes = classes;
    o.num_heads = heads;
    o.head = head;
    nc_model *m = NULL;
    ok(nc_model_create(ctx, &o, &m), "model");
    return m;
}

static nc_model *custom(void) {
    nc_builder *b = NULL;
    nc_value x, y, skip, v[2];
    ok(nc_builder_create(ctx, 2, &b, &x), "builder");
    nc_builder_conv2d(b, "stem", x, 4, 3, 1, 1, 1, 1, 1, &y);
    nc_builder_batchnorm(b, "bn", y, 1e-5f, 0.1f, &y);
    nc_builder_relu(b, y, &skip);
    nc_builder_conv2d(b, "branch", skip, 4, 3, 1, 1, 1, 2, 0, &y);
    nc_builder_add(b, y, skip, &y);
    nc_builder_max_pool2d(b, y, 2, 2, 0, &y);
    nc_builder_avg_pool2d(b, y, 2, 1, 1, &y);
    nc_builder_adaptive_avg_pool2d(b, y, 1, 1, &y);
    nc_builder_flatten(b, y, &y);
    nc_builder_dropout(b, y, 0.25f, &y);
    nc_builder_linear(b, "h0", y, 3, 1, &v[0]);
    nc_builder_linear(b, "h1", y, 3, 0, &v[1]);
    nc_builder_concat(b, v, 2, &y);
    nc_model *m = NULL;
    ok(nc_builder_finish(b, y, 2, 7, &m), "custom model");
    nc_builder_destroy(b);
    return m;
}

static void model_load_seeds(void) {
    nc_model *m = simple(1, 2, 1, NC_HEAD_LINEAR);
    save_model(m, "model_load", "simple_cnn.safetensors");
    nc_model_destroy(m);

    m = simple(3, 3, 1, NC_HEAD_MLP);
    const char *names[3] = {"alga", "debris", "bead \"x\""};
    const float mean[3] = {0.5f, 0.25f, 0.125f}, std[3] = {0.2f, 0.3f, 0.4f};
    ok(nc_model_set_class_names(m, names, 3), "class names");
    ok(nc_model_set_normalization(m, mean, std), "normalisation");
    ok(nc_model_set_info(m, "input_size", "32"), "info");
    ok(nc_model_set_info(m, "threshold", "0.625"), "info");
    save_model(m, "model_load", "simple_cnn_mlp_meta.safetensors");
    nc_model_destroy(m);

    m = custom();
    save_model(m, "model_load", "custom_graph.safetensors");
    nc_model_destroy(m);

    /* a checkpoint is a model file too */
    nc_model *cm;
    nc_schedule *s;
    nc_trainer *t = fz_checkpoint_trainer(ctx, 0, &cm, &s);
    const char *tmp = tmp_file("seed.ckpt");
    ok(nc_trainer_save_checkpoint(t, tmp, NULL), "checkpoint");
    copy_file(tmp, "model_load", "checkpoint.safetensors");
    nc_trainer_destroy(t);
    nc_schedule_destroy(s);
    nc_model_destroy(cm);
}

/* ------------------------------------------------------------------ weights */

/* A state_dict of m's tensors (dtype dt for floats, I64 num_batches_tracked), with the
 * first conv given 3 input channels and each head's last layer 5 classes when
 * `torchvision_like` (what nc_model_load_pretrained adapts or replaces). */
static void state_dict(nc_model *m, nc__st_dtype dt, int torchvision_like, const char *name) {
    nc__st_writer *w = NULL;
    ok(nc__st_writer_create(ctx, &w), "writer");
    int n = nc_model_num_tensors(m);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n; i++) {
        nc_tensor_info ti;
        ok(nc_model_tensor_info(m, i, &ti), "tensor info");
        float *f = malloc((size_t)ti.numel * sizeof *f);
        ok(nc_model_get_tensor(m, ti.name, f, ti.numel), "get tensor");
        int64_t shape[4];
        memcpy(shape, ti.shape, sizeof shape);
        if (torchvision_like && strcmp(ti.name, "conv1.weight") == 0) shape[1] = 3;
        int64_t numel = 1;
        for (int d = 0; d < ti.ndim; d++) numel *= shape[d];
        nc__st_dtype t = strstr(ti.name, "num_batches_tracked") ? NC__DT_I64 : dt;
        unsigned char *vals = calloc((size_t)numel, 8);
        for (int64_t k = 0; k < numel; k++) {
            float v = f[k % ti.numel];
            if (t == NC__DT_I64) {
                int64_t q = (int64_t)v;
                memcpy(vals + 8 * k, &q, 8);
            } else if (t == NC__DT_F64) {
                double q = v;
                memcpy(vals + 8 * k, &q, 8);
            } else if (t == NC__DT_BF16 || t == NC__DT_F16) {
                uint32_t bits;
                memcpy(&bits, &v, 4);
                uint16_t q = (uint16_t)(bits >> 16); /* bf16; as F16 it reads as other numbers */
                memcpy(vals + 2 * k, &q, 2);
            } else {
                memcpy(vals + 4 * k, &v, 4);
            }
        }
        ok(nc__st_writer_add(w, ti.name, t, ti.ndim, shape, vals), "writer add");
        bufs[i] = vals;
        free(f);
    }
    if (torchvision_like) {
        static const float extra[2] = {1.0f, 2.0f};
        const int64_t shape[1] = {2};
        ok(nc__st_writer_add(w, "aux.bias", NC__DT_F32, 1, shape, extra), "writer add");
    }
    void *blob;
    size_t size;
    ok(nc__st_serialize(w, &blob, &size), "serialize");
    save("weights", name, blob, size);
    nc__free(ctx, blob);
    nc__st_writer_destroy(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
}

static void weights_seeds(void) {
    nc_model *m = fz_weights_model(ctx);
    save_model(m, "weights", "model.safetensors");
    state_dict(m, NC__DT_F32, 0, "state_dict_f32.safetensors");
    state_dict(m, NC__DT_BF16, 1, "torchvision_like_bf16.safetensors");
    state_dict(m, NC__DT_F16, 1, "torchvision_like_f16.safetensors");
    state_dict(m, NC__DT_F64, 0, "state_dict_f64.safetensors");
    nc_model_destroy(m);
}

/* ------------------------------------------------------------------ checkpoints */

static void checkpoint_after(int kind, int steps, const char *name) {
    nc_model *m;
    nc_schedule *s;
    nc_trainer *t = fz_checkpoint_trainer(ctx, kind, &m, &s);
    float x[2 * 8 * 8];
    const int32_t labels[2] = {0, 2};
    for (int i = 0; i < 2 * 8 * 8; i++) x[i] = (float)((i * 13) % 17) / 17.0f;
    for (int k = 0; k < steps; k++) {
        ok(nc_trainer_step(t, x, labels, 2, 1, 8, 8, NULL), "step");
        if (s) ok(nc_schedule_step(s, 0.0f), "schedule step");
    }
    nc_checkpoint_info info;
    nc_checkpoint_info_init(&info);
    info.epoch = steps;
    info.batch = 1;
    info.best_metric = 0.5;
    info.best_epoch = 0;
    const char *tmp = tmp_file("seed.ckpt");
    ok(nc_trainer_save_checkpoint(t, tmp, &info), "checkpoint");
    copy_file(tmp, "checkpoint", name);
    nc_trainer_destroy(t);
    nc_schedule_destroy(s);
    nc_model_destroy(m);
}

static void checkpoint_seeds(void) {
    checkpoint_after(0, 0, "adam_cosine_0.safetensors");
    checkpoint_after(0, 3, "adam_cosine_3.safetensors");
    checkpoint_after(1, 1, "sgd_accum_mid.safetensors"); /* holds gradients */
    checkpoint_after(1, 2, "sgd_accum_2.safetensors");
}

/* ------------------------------------------------------------------ idx */

static size_t idx_file(unsigned char *p, int ndim, const uint32_t *dims, int salt) {
    size_t n = 0, total = 1;
    p[n++] = 0, p[n++] = 0, p[n++] = 8, p[n++] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) {
        for (int k = 3; k >= 0; k--) p[n++] = (unsigned char)(dims[d] >> (8 * k));
        total *= dims[d];
    }
    for (size_t i = 0; i < total; i++) p[n++] = (unsigned char)(ndim == 1 ? (i * 3 + (size_t)salt) % 10 : i * 29 + (size_t)salt);
    return n;
}

static size_t gzip(unsigned char *out, size_t cap, const unsigned char *in, size_t n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    size_t got = z.total_out;
    deflateEnd(&z);
    return got;
}

/* The target's input: 2-byte length of the images file, images, labels. */
static void idx_pair(const char *name, uint32_t n, uint32_t h, uint32_t w, int gz) {
    unsigned char img[4096], lab[512], zi[4096], zl[1024], out[8192];
    const uint32_t idim[3] = {n, h, w}, ldim[1] = {n};
    size_t ni = idx_file(img, 3, idim, 1), nl = idx_file(lab, 1, ldim, (int)n);
    const unsigned char *pi = img, *pl = lab;
    if (gz) {
        ni = gzip(zi, sizeof zi, img, ni);
        nl = gzip(zl, sizeof zl, lab, nl);
        pi = zi;
        pl = zl;
    }
    out[0] = (unsigned char)ni;
    out[1] = (unsigned char)(ni >> 8);
    memcpy(out + 2, pi, ni);
    memcpy(out + 2 + ni, pl, nl);
    save("idx", name, out, 2 + ni + nl);
}

static void idx_seeds(void) {
    idx_pair("plain_3x4x4.bin", 3, 4, 4, 0);
    idx_pair("plain_1x2x3.bin", 1, 2, 3, 0);
    idx_pair("gzip_5x3x3.bin", 5, 3, 3, 1);
}

/* ------------------------------------------------------------------ csv */

static void text_seed(const char *target, const char *name, const char *text) { save(target, name, text, strlen(text)); }

static void csv_seeds(void) {
    text_seed("csv", "names.csv", "image,label\na.png,cat\nc.png,dog\n./a.png,cat\n");
    text_seed("csv", "ints_crlf_bom.csv", "\xEF\xBB\xBFlabel,image\r\n3,a.png\r\n0,c.png\r\n\r\n1,a.png");
    text_seed("csv", "quoted.csv", "\"image\",\"label\",note\n\"a.png\",\"x, \"\"y\"\"\",\"two\nlines\"\nc.png,z,\n");
    text_seed("csv", "multi.csv",
              "image,mask,opt,label,zone\na.png,c.png,,0,left\nc.png,a.png,b.png,1,right\na.png,a.png,missing.png,0,left\n");
}

/* ------------------------------------------------------------------ config */

static void config_seed(const char *name, const char *const *kv) {
    cfg c;
    memset(&c, 0, sizeof c);
    const char *cl[OPT_COUNT] = {0};
    for (int i = 0; kv[i]; i += 2) cl[option_index(kv[i])] = kv[i + 1];
    cfg_fill(&c, cl, NULL, NULL, 0);
    char err[512];
    const char *tmp = tmp_file("config.json");
    if (config_write(&c, tmp, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    copy_file(tmp, "config", name);
}

static void config_seeds(void) {
    const char *const defaults[] = {"data", "images/", NULL};
    const char *const multistep[] = {"data", "m.csv", "scheduler", "multistep", "milestones", "3,6,9",
                                     "class-weights", "1,2.5,0.5", "mean", "0.5,0.4", "std", "0.2,0.3",
                                     "optimizer", "adamw", "lr", "0.003", NULL};
    const char *const folds[] = {"data", "d", "folds", "5", "model", "simple_cnn,resnext", "blocks", "1,1,2,1",
                                 "threshold-rule", "precision:0.9", "threshold-class", "alga",
                                 "monitor", "val_f1", "precision", "bf16", NULL};
    config_seed("defaults.json", defaults);
    config_seed("multistep.json", multistep);
    config_seed("folds.json", folds);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ROOT (writes ROOT/<target>/...)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    ctx = fz_context();
    png_seeds();
    model_load_seeds();
    weights_seeds();
    checkpoint_seeds();
    idx_seeds();
    csv_seeds();
    config_seeds();
    nc_context_destroy(ctx);
    return 0;
}
