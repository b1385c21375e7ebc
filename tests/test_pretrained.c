/* test_pretrained.c — nc_model_load_pretrained: a torchvision-style state_dict of a
 * 3-channel model imported into models with other input channels, class counts and
 * head counts. The key property: an adapted model sees what the RGB model sees
 * (4th channel zero, or a gray image replicated to RGB), so logits agree. */
#include "testutil.h"

#include "neurc.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTX(s) (((tu_fx *)*(s))->ctx)

static nc_model *make_model(nc_context *ctx, const char *arch, int classes, int in_c, int heads, uint64_t seed) {
    nc_model_options o;
    nc_model_options_init(&o);
    o.arch = arch;
    o.num_classes = classes;
    o.in_channels = in_c;
    o.num_heads = heads;
    o.seed = seed;
    if (strncmp(arch, "vgg", 3) == 0) o.small_input = 1; /* a 512-wide classifier keeps the test small */
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &o, &m), NC_OK);
    return m;
}

static int64_t numel_of(nc_model *m, const char *name) {
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        if (strcmp(ti.name, name) == 0) return ti.numel;
    }
    fail_msg("no tensor %s", name);
    return 0;
}

/* The values of tensor `name` (malloc'ed). */
static float *get(nc_model *m, const char *name) {
    int64_t n = numel_of(m, name);
    float *v = tu_zeros((size_t)n);
    assert_int_equal(nc_model_get_tensor(m, name, v, n), NC_OK);
    return v;
}

static void assert_tensor_equal(nc_model *a, const char *name_a, nc_model *b, const char *name_b) {
    int64_t n = numel_of(a, name_a);
    assert_int_equal(n, numel_of(b, name_b));
    float *va = get(a, name_a), *vb = get(b, name_b);
    assert_memory_equal(va, vb, (size_t)n * sizeof(float));
    free(va);
    free(vb);
}

/* Every tensor of the model, concatenated (malloc'ed), to check "unchanged". */
static float *snapshot(nc_model *m, size_t *count) {
    size_t total = 0;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        total += (size_t)ti.numel;
    }
    float *all = tu_zeros(total), *cur = all;
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        assert_int_equal(nc_model_get_tensor(m, ti.name, cur, ti.numel), NC_OK);
        cur += ti.numel;
    }
    *count = total;
    return all;
}

static void assert_unchanged(nc_model *m, const float *before, size_t count) {
    size_t n;
    float *now = snapshot(m, &n);
    assert_int_equal(n, count);
    assert_memory_equal(now, before, count * sizeof(float));
    free(now);
}

/* Running statistics away from their defaults (mean 0, var 1), so eval-mode
 * batchnorm does real work in the logit comparisons. */
static void perturb_buffers(nc_model *m, uint64_t seed) {
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        int mean = strstr(ti.name, "running_mean") != NULL, var = strstr(ti.name, "running_var") != NULL;
        if (!mean && !var) continue;
        float *v = tu_rand((size_t)ti.numel, mean ? -0.2f : 0.5f, mean ? 0.2f : 1.5f, seed + (uint64_t)i);
        assert_int_equal(nc_model_set_tensor(m, ti.name, v, ti.numel), NC_OK);
        free(v);
    }
}

/* Writes the model's tensors as a plain torchvision state_dict (no neurc metadata,
 * num_batches_tracked as an I64 scalar). drop: a tensor left out; reshape: a tensor
 * written as (2, numel/2); extra: a (6,) tensor the model does not have. */
static char *write_state_dict(nc_context *ctx, nc_model *m, const char *file, const char *drop, const char *reshape,
                              const char *extra) {
    char *path = tu_tmp_path(file);
    nc__st_writer *w;
    assert_int_equal(nc__st_writer_create(ctx, &w), NC_OK);
    int n = nc_model_num_tensors(m);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    int64_t count = 3;
    for (int i = 0; i < n; i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        if (drop && strcmp(ti.name, drop) == 0) continue;
        if (strstr(ti.name, "num_batches_tracked")) {
            assert_int_equal(nc__st_writer_add(w, ti.name, NC__DT_I64, 0, NULL, &count), NC_OK);
            continue;
        }
        bufs[i] = get(m, ti.name);
        if (reshape && strcmp(ti.name, reshape) == 0) {
            int64_t shape[2] = {2, ti.numel / 2};
            assert_int_equal(nc__st_writer_add(w, ti.name, NC__DT_F32, 2, shape, bufs[i]), NC_OK);
            continue;
        }
        assert_int_equal(nc__st_writer_add(w, ti.name, NC__DT_F32, ti.ndim, ti.shape, bufs[i]), NC_OK);
    }
    float six[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape6[1] = {6};
    if (extra) assert_int_equal(nc__st_writer_add(w, extra, NC__DT_F32, 1, shape6, six), NC_OK);
    assert_int_equal(nc__st_write(w, path), NC_OK);
    nc__st_writer_destroy(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    return path;
}

static void remove_file(char *path) {
    unlink(path);
    free(path);
}

static int is_head(const char *name) { return strncmp(name, "fc.", 3) == 0; }

/* Logits of m for x (n, c, h, w), malloc'ed. */
static float *logits_of(nc_model *m, const float *x, int n, int c, int h, int w) {
    float *out = tu_zeros((size_t)n * (size_t)nc_model_num_outputs(m));
    assert_int_equal(nc_model_forward(m, x, n, c, h, w, out), NC_OK);
    return out;
}

/* ------------------------------------------------------------------- cases */

static void test_options_init_defaults(void **s) {
    (void)s;
    nc_pretrained_options o;
    memset(&o, 0xab, sizeof o);
    nc_pretrained_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.strict, 0);
    assert_int_equal(o.adapt, NC_ADAPT_RGB_NORMAL);
    assert_int_equal(o.keep_head, 0);
    assert_true(o.seed == 0);
    nc_pretrained_options_init(NULL); /* ignored */
}

/* ImageNet-like file (3 channels, 1000 classes) into a 4-channel, 5-class, 2-head
 * resnet18: backbone from the file, conv1 adapted, both heads fresh. */
static void test_pretrained_4ch_two_heads_adapts_conv1_keeps_heads(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "resnet18", 1000, 3, 1, 1);
    perturb_buffers(src, 100);
    char *path = write_state_dict(ctx, src, "imagenet.safetensors", NULL, NULL, NULL);
    nc_model *m = make_model(ctx, "resnet18", 5, 4, 2, 2);
    const char *head_keys[] = {"fc.0.weight", "fc.0.bias", "fc.1.weight", "fc.1.bias"};
    float *fresh[4];
    for (int i = 0; i < 4; i++) fresh[i] = get(m, head_keys[i]);

    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.seed = 42;
    nc_load_report rep = {.struct_size = sizeof rep};
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    print_message("  report: %s\n", rep.text);
    assert_int_equal(rep.loaded, nc_model_num_tensors(m) - 4);
    assert_int_equal(rep.missing, 4);
    assert_int_equal(rep.unexpected, 2);
    assert_int_equal(rep.mismatched, 0);
    assert_non_null(strstr(rep.text, "adapted conv1.weight [64,3,7,7] in file to [64,4,7,7] in model"));
    assert_non_null(strstr(rep.text, "missing fc.0.weight (head: initialisation kept)"));
    assert_non_null(strstr(rep.text, "unexpected fc.weight (replaced head)"));

    /* backbone: bit-identical to the file */
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        if (is_head(ti.name) || strcmp(ti.name, "conv1.weight") == 0 || strstr(ti.name, "num_batches_tracked"))
            continue; /* the file's counters are 3, checked below */
        assert_tensor_equal(m, ti.name, src, ti.name);
    }
    float nb;
    assert_int_equal(nc_model_get_tensor(m, "bn1.num_batches_tracked", &nb, 1), NC_OK);
    assert_true(nb == 3.0f);
    /* heads: untouched */
    for (int i = 0; i < 4; i++) {
        float *now = get(m, head_keys[i]);
        assert_memory_equal(now, fresh[i], (size_t)numel_of(m, head_keys[i]) * sizeof(float));
        free(now);
        free(fresh[i]);
    }
    /* conv1: RGB copied; channel 3 ~ N(0, 0.01^2) over 64*7*7 values */
    float *rgb = get(src, "conv1.weight"), *w4 = get(m, "conv1.weight");
    double sum = 0, sq = 0;
    const int RS = 49, K = 64;
    for (int k = 0; k < K; k++) {
        for (int c = 0; c < 3; c++)
            assert_memory_equal(w4 + (k * 4 + c) * RS, rgb + (k * 3 + c) * RS, RS * sizeof(float));
        for (int p = 0; p < RS; p++) {
            double v = w4[(k * 4 + 3) * RS + p];
            sum += v;
            sq += v * v;
        }
    }
    const double n = K * RS, mean = sum / n, sd = sqrt(sq / n - mean * mean);
    print_message("  new channel: mean %.6f std %.6f over %d values\n", mean, sd, (int)n);
    assert_true(fabs(mean) < 4 * 0.01 / sqrt(n)); /* 4 standard errors */
    assert_true(fabs(sd - 0.01) < 0.001);         /* ~8 standard errors of the std */

    /* the new channel is a function of (seed, name): same seed, same values */
    nc_model *again = make_model(ctx, "resnet18", 5, 4, 2, 3);
    assert_int_equal(nc_model_load_pretrained(again, path, &o, NULL), NC_OK);
    assert_tensor_equal(again, "conv1.weight", m, "conv1.weight");
    o.seed = 43;
    assert_int_equal(nc_model_load_pretrained(again, path, &o, NULL), NC_OK);
    float *w4b = get(again, "conv1.weight");
    assert_memory_equal(w4b, w4, 3 * RS * sizeof(float)); /* RGB part */
    assert_memory_not_equal(w4b + 3 * RS, w4 + 3 * RS, RS * sizeof(float));
    free(w4b);

    /* strict: the head keys are exempt, the backbone matches -> OK */
    o.strict = 1;
    assert_int_equal(nc_model_load_pretrained(again, path, &o, &rep), NC_OK);
    assert_int_equal(rep.loaded, nc_model_num_tensors(m) - 4);

    free(rgb);
    free(w4);
    nc_model_destroy(again);
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

/* The key property: with its 4th channel zero, the adapted model computes what the
 * RGB model computes (heads match here, so they load too). */
static void test_pretrained_4ch_zero_channel_matches_rgb_logits(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "resnet18", 5, 3, 1, 11);
    perturb_buffers(src, 200);
    char *path = write_state_dict(ctx, src, "rgb5.safetensors", NULL, NULL, NULL);
    nc_model *m = make_model(ctx, "resnet18", 5, 4, 1, 12);
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.strict = 1;
    nc_load_report rep = {.struct_size = 0};
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    assert_int_equal(rep.loaded, nc_model_num_tensors(m));
    assert_int_equal(rep.missing + rep.unexpected + rep.mismatched, 0);
    assert_tensor_equal(m, "fc.weight", src, "fc.weight");

    enum { N = 2, H = 32, W = 32 };
    float *x3 = tu_rand((size_t)N * 3 * H * W, -2, 2, 5), *x4 = tu_zeros((size_t)N * 4 * H * W);
    for (int i = 0; i < N; i++) memcpy(x4 + (size_t)i * 4 * H * W, x3 + (size_t)i * 3 * H * W, 3 * H * W * sizeof(float));
    float *l3 = logits_of(src, x3, N, 3, H, W), *l4 = logits_of(m, x4, N, 4, H, W);
    double err = tu_norm_err(l4, l3, N * 5);
    print_message("  4ch (zero 4th) vs RGB logits: normalized error %.3g\n", err);
    assert_true(err < 1e-5);
    free(x3);
    free(x4);
    free(l3);
    free(l4);
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

/* 1 channel, RGB summed: a gray image g gives the logits the RGB model gives (g,g,g). */
static void test_pretrained_gray_sum_matches_replicated_rgb(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "resnet18", 5, 3, 1, 21);
    perturb_buffers(src, 300);
    char *path = write_state_dict(ctx, src, "rgb_gray.safetensors", NULL, NULL, NULL);
    nc_model *m = make_model(ctx, "resnet18", 5, 1, 1, 22);
    nc_load_report rep = {.struct_size = sizeof rep};
    assert_int_equal(nc_model_load_pretrained(m, path, NULL, &rep), NC_OK);
    assert_non_null(strstr(rep.text, "R+G+B"));

    enum { N = 2, H = 32, W = 32 };
    float *g = tu_rand((size_t)N * H * W, 0, 1, 6), *x3 = tu_zeros((size_t)N * 3 * H * W);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < 3; c++) memcpy(x3 + ((size_t)i * 3 + c) * H * W, g + (size_t)i * H * W, H * W * sizeof(float));
    float *l3 = logits_of(src, x3, N, 3, H, W), *l1 = logits_of(m, g, N, 1, H, W);
    double err = tu_norm_err(l1, l3, N * 5);
    print_message("  gray vs replicated RGB logits: normalized error %.3g\n", err);
    assert_true(err < 1e-5);
    free(g);
    free(x3);
    free(l3);
    free(l1);
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

/* NC_ADAPT_RGB_MEAN: every channel = (R+G+B)/c; NC_ADAPT_RGB_NORMAL with 2 channels: R, G. */
static void test_pretrained_rgb_mean_and_two_channel_values(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "resnet18", 5, 3, 1, 31);
    char *path = write_state_dict(ctx, src, "rgb_mean.safetensors", NULL, NULL, NULL);
    float *rgb = get(src, "conv1.weight");
    const int K = 64, RS = 49;
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.adapt = NC_ADAPT_RGB_MEAN;
    const int channels[] = {1, 2, 4, 5};
    for (size_t t = 0; t < sizeof channels / sizeof *channels; t++) {
        int c = channels[t];
        nc_model *m = make_model(ctx, "resnet18", 5, c, 1, 32);
        nc_load_report rep = {.struct_size = sizeof rep};
        assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
        assert_non_null(strstr(rep.text, "rgb_mean"));
        float *w = get(m, "conv1.weight");
        for (int k = 0; k < K; k++)
            for (int ch = 0; ch < c; ch++)
                for (int p = 0; p < RS; p++) {
                    const float *q = rgb + k * 3 * RS + p;
                    double want = ((double)q[0] + q[RS] + q[2 * RS]) / c;
                    assert_true(fabs(w[(k * c + ch) * RS + p] - want) <= 1e-7 * (fabs(want) + 1e-3));
                }
        free(w);
        nc_model_destroy(m);
    }
    /* rgb_normal, 2 channels: R and G */
    o.adapt = NC_ADAPT_RGB_NORMAL;
    nc_model *m = make_model(ctx, "resnet18", 5, 2, 1, 33);
    assert_int_equal(nc_model_load_pretrained(m, path, &o, NULL), NC_OK);
    float *w = get(m, "conv1.weight");
    for (int k = 0; k < K; k++)
        assert_memory_equal(w + k * 2 * RS, rgb + k * 3 * RS, 2 * RS * sizeof(float));
    free(w);
    nc_model_destroy(m);
    /* 3 channels: no adaptation, a plain load */
    m = make_model(ctx, "resnet18", 5, 3, 1, 34);
    nc_load_report rep = {.struct_size = sizeof rep};
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    assert_null(strstr(rep.text, "adapted"));
    assert_tensor_equal(m, "conv1.weight", src, "conv1.weight");
    nc_model_destroy(m);
    free(rgb);
    nc_model_destroy(src);
    remove_file(path);
}

/* strict: an unexpected, missing or mismatched backbone key fails and changes
 * nothing; non-strict loads the rest. */
static void test_pretrained_strict_backbone_failures_leave_model_unchanged(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "resnet18", 1000, 3, 1, 41);
    perturb_buffers(src, 400);
    nc_model *m = make_model(ctx, "resnet18", 5, 4, 2, 42);
    size_t count;
    float *before = snapshot(m, &count);
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.strict = 1;
    const struct {
        const char *drop, *reshape, *extra;
        nc_status want;
        const char *named;
    } cases[] = {
        {NULL, NULL, "layer5.weight", NC_ERR_NOT_FOUND, "unexpected layer5.weight"},
        {"layer2.0.conv1.weight", NULL, NULL, NC_ERR_NOT_FOUND, "missing layer2.0.conv1.weight"},
        {NULL, "layer1.0.bn1.weight", NULL, NC_ERR_SHAPE, "mismatched layer1.0.bn1.weight F32 [2,32]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *path = write_state_dict(ctx, src, "strict.safetensors", cases[i].drop, cases[i].reshape, cases[i].extra);
        nc_load_report rep = {.struct_size = sizeof rep};
        o.strict = 1;
        assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), cases[i].want);
        print_message("  %s\n", nc_context_last_error(ctx));
        assert_non_null(strstr(rep.text, cases[i].named));
        assert_non_null(strstr(nc_context_last_error(ctx), "outside the head"));
        assert_int_equal(rep.loaded, 0);
        assert_unchanged(m, before, count);
        /* non-strict: everything else loads */
        o.strict = 0;
        assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
        int skipped = (cases[i].drop || cases[i].reshape) ? 1 : 0;
        assert_int_equal(rep.loaded, nc_model_num_tensors(m) - 4 - skipped);
        assert_tensor_equal(m, "layer4.1.bn2.running_var", src, "layer4.1.bn2.running_var");
        free(before);
        before = snapshot(m, &count);
        remove_file(path);
    }
    free(before);
    nc_model_destroy(m);
    nc_model_destroy(src);
}

/* keep_head = 1: the head must come from the file. */
static void test_pretrained_keep_head_mismatch_is_shape_error(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "resnet18", 1000, 3, 1, 51);
    char *path = write_state_dict(ctx, src, "keep_head.safetensors", NULL, NULL, NULL);
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.keep_head = 1;
    nc_model *m = make_model(ctx, "resnet18", 5, 3, 1, 52);
    size_t count;
    float *before = snapshot(m, &count);
    nc_load_report rep = {.struct_size = sizeof rep};
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_ERR_SHAPE);
    assert_non_null(strstr(nc_context_last_error(ctx), "keep_head"));
    assert_non_null(strstr(rep.text, "mismatched fc.weight F32 [1000,512] in file vs [5,512] in model"));
    assert_unchanged(m, before, count);
    free(before);
    nc_model_destroy(m);
    /* a 2-head model has no head in the file to keep */
    m = make_model(ctx, "resnet18", 1000, 3, 2, 53);
    assert_int_equal(nc_model_load_pretrained(m, path, &o, NULL), NC_ERR_NOT_FOUND);
    nc_model_destroy(m);
    /* a matching head loads */
    m = make_model(ctx, "resnet18", 1000, 4, 1, 54);
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    assert_int_equal(rep.loaded, nc_model_num_tensors(m));
    assert_tensor_equal(m, "fc.weight", src, "fc.weight");
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

/* VGG: the first conv is features.0, the head classifier.6 (here an MLP head). */
static void test_pretrained_vgg_features0_and_classifier6_head(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "vgg11", 10, 3, 1, 61);
    char *path = write_state_dict(ctx, src, "vgg.safetensors", NULL, NULL, NULL);
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "vgg11";
    mo.num_classes = 3;
    mo.in_channels = 1;
    mo.head = NC_HEAD_MLP;
    mo.small_input = 1;
    mo.seed = 62;
    nc_model *m;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    float *mlp = get(m, "classifier.6.5.weight");
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.strict = 1;
    nc_load_report rep = {.struct_size = sizeof rep};
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    print_message("  report: %s\n", rep.text);
    assert_non_null(strstr(rep.text, "adapted features.0.weight [64,3,3,3] in file to [64,1,3,3]"));
    assert_int_equal(rep.unexpected, 2); /* classifier.6.weight, .bias */
    assert_int_equal(rep.missing, 9);    /* classifier.6.{1,5}.{weight,bias}, classifier.6.3.* (5) */
    assert_tensor_equal(m, "classifier.3.weight", src, "classifier.3.weight");
    float *now = get(m, "classifier.6.5.weight");
    assert_memory_equal(now, mlp, (size_t)numel_of(m, "classifier.6.5.weight") * sizeof(float));
    free(now);
    free(mlp);
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

/* CheXNet moved to 4-channel images: torchvision densenet121 weights into a
 * 4-channel, 14-output model; conv0 adapted, the classifier left as initialised. */
static void test_pretrained_densenet_conv0_and_classifier_head(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = make_model(ctx, "densenet121", 1000, 3, 1, 71);
    char *path = write_state_dict(ctx, src, "densenet.safetensors", NULL, NULL, NULL);
    nc_model *m = make_model(ctx, "densenet121", 14, 4, 1, 72);
    float *head = get(m, "classifier.weight");
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.strict = 1;
    nc_load_report rep = {.struct_size = sizeof rep};
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    print_message("  report: %s\n", rep.text);
    assert_non_null(strstr(rep.text, "adapted features.conv0.weight [64,3,7,7] in file to [64,4,7,7]"));
    assert_non_null(strstr(rep.text, "classifier.weight"));
    assert_tensor_equal(m, "features.denseblock4.denselayer16.conv2.weight", src,
                        "features.denseblock4.denselayer16.conv2.weight");
    assert_tensor_equal(m, "features.norm5.running_var", src, "features.norm5.running_var");
    float *now = get(m, "classifier.weight");
    assert_memory_equal(now, head, (size_t)numel_of(m, "classifier.weight") * sizeof(float));
    free(now);
    free(head);
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

/* A builder-made model: the head is the Linear layers at the output ("cls.0",
 * "cls.1", and their ModuleList "cls"), the first conv the one reading the input. */
static nc_model *custom_model(nc_context *ctx, int in_c, int heads, int classes, uint64_t seed) {
    nc_builder *b;
    nc_value x, y, outs[2];
    assert_int_equal(nc_builder_create(ctx, in_c, &b, &x), NC_OK);
    assert_int_equal(nc_builder_conv2d(b, "stem", x, 8, 3, 1, 1, 1, 1, 0, &y), NC_OK);
    assert_int_equal(nc_builder_batchnorm(b, "stem_bn", y, 1e-5f, 0.1f, &y), NC_OK);
    assert_int_equal(nc_builder_relu(b, y, &y), NC_OK);
    assert_int_equal(nc_builder_adaptive_avg_pool2d(b, y, 1, 1, &y), NC_OK);
    assert_int_equal(nc_builder_flatten(b, y, &y), NC_OK);
    assert_int_equal(nc_builder_dropout(b, y, 0.1f, &y), NC_OK);
    if (heads == 1) {
        assert_int_equal(nc_builder_linear(b, "cls", y, classes, 1, &y), NC_OK);
    } else {
        assert_int_equal(nc_builder_linear(b, "cls.0", y, classes, 1, &outs[0]), NC_OK);
        assert_int_equal(nc_builder_linear(b, "cls.1", y, classes, 1, &outs[1]), NC_OK);
        assert_int_equal(nc_builder_concat(b, outs, 2, &y), NC_OK);
    }
    nc_model *m;
    assert_int_equal(nc_builder_finish(b, y, heads, seed, &m), NC_OK);
    nc_builder_destroy(b);
    return m;
}

static void test_pretrained_builder_model_heads_from_graph(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = custom_model(ctx, 3, 1, 7, 71);
    char *path = write_state_dict(ctx, src, "custom.safetensors", NULL, NULL, NULL);
    nc_model *m = custom_model(ctx, 2, 2, 4, 72);
    float *cls0 = get(m, "cls.0.weight");
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    o.strict = 1;
    nc_load_report rep = {.struct_size = sizeof rep};
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    print_message("  report: %s\n", rep.text);
    assert_non_null(strstr(rep.text, "adapted stem.weight [8,3,3,3] in file to [8,2,3,3] in model (rgb_normal: R, G)"));
    assert_int_equal(rep.missing, 4);
    assert_int_equal(rep.unexpected, 2);
    assert_tensor_equal(m, "stem_bn.weight", src, "stem_bn.weight");
    float *now = get(m, "cls.0.weight");
    assert_memory_equal(now, cls0, 8 * 4 * sizeof(float));
    free(now);
    free(cls0);
    nc_model_destroy(m);
    /* a single-head model with another class count: mismatched head, re-initialised */
    m = custom_model(ctx, 3, 1, 2, 73);
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_OK);
    assert_int_equal(rep.mismatched, 2);
    assert_non_null(strstr(rep.text, "mismatched cls.weight F32 [7,8] in file vs [2,8] in model (head"));
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_pretrained_bad_files_and_arguments(void **s) {
    nc_context *ctx = CTX(s);
    nc_model *src = custom_model(ctx, 3, 1, 7, 81);
    char *path = write_state_dict(ctx, src, "args.safetensors", NULL, NULL, NULL);
    nc_model *m = custom_model(ctx, 1, 1, 7, 82);
    size_t count;
    float *before = snapshot(m, &count);
    nc_load_report rep = {.struct_size = sizeof rep};

    assert_int_equal(nc_model_load_pretrained(m, "/nonexistent/dir/w.safetensors", NULL, &rep), NC_ERR_IO);
    assert_non_null(strstr(nc_context_last_error(ctx), "/nonexistent/dir/w.safetensors"));
    /* truncated and corrupt copies */
    size_t size;
    char *bytes = tu_read_file(path, &size);
    assert_non_null(bytes);
    char *bad = tu_tmp_path("args_bad.safetensors");
    size_t cuts[] = {0, 7, 20, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(bad, bytes, cuts[i]);
        nc_status st = nc_model_load_pretrained(m, bad, NULL, &rep);
        assert_true(st == NC_ERR_FORMAT || st == NC_ERR_LIMIT);
        assert_non_null(strstr(nc_context_last_error(ctx), bad));
    }
    bytes[9] = '#';
    write_bytes(bad, bytes, size);
    assert_int_equal(nc_model_load_pretrained(m, bad, NULL, &rep), NC_ERR_FORMAT);
    assert_unchanged(m, before, count);

    /* arguments */
    nc_pretrained_options o;
    nc_pretrained_options_init(&o);
    assert_int_equal(nc_model_load_pretrained(NULL, path, &o, &rep), NC_ERR_NULL);
    assert_int_equal(nc_model_load_pretrained(m, NULL, &o, &rep), NC_ERR_NULL);
    o.struct_size = 3;
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_ERR_INVALID_ARGUMENT);
    nc_pretrained_options_init(&o);
    o.adapt = (nc_first_conv_adapt)7;
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_ERR_INVALID_ARGUMENT);
    nc_pretrained_options_init(&o);
    rep.struct_size = 8;
    assert_int_equal(nc_model_load_pretrained(m, path, &o, &rep), NC_ERR_INVALID_ARGUMENT);
    assert_unchanged(m, before, count);
    /* opt and report NULL: defaults */
    assert_int_equal(nc_model_load_pretrained(m, path, NULL, NULL), NC_OK);
    assert_tensor_equal(m, "stem_bn.running_var", src, "stem_bn.running_var");

    unlink(bad);
    free(bad);
    free(bytes);
    free(before);
    nc_model_destroy(m);
    nc_model_destroy(src);
    remove_file(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init_defaults),
        cmocka_unit_test_setup_teardown(test_pretrained_4ch_two_heads_adapts_conv1_keeps_heads, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_4ch_zero_channel_matches_rgb_logits, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_gray_sum_matches_replicated_rgb, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_rgb_mean_and_two_channel_values, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_strict_backbone_failures_leave_model_unchanged, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_keep_head_mismatch_is_shape_error, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_vgg_features0_and_classifier6_head, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_densenet_conv0_and_classifier_head, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_builder_model_heads_from_graph, tu_fx_setup,
                                        tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pretrained_bad_files_and_arguments, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
