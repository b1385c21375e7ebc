/* test_saliency.c — nc_saliency (Grad-CAM, input gradients) against PyTorch: hooks on
 * torchvision's resnet18 (default layer = layer4, and layer3) and neurc's simple_cnn on
 * 2-channel input, all weights from the golden generator (testutil.c), references in
 * float64 by tests/fixtures/make_saliency_golden.py. Also: layer names, classes and
 * heads chosen by the caller, the maps follow weight changes, and bad arguments. */
#include "testutil.h"

#include "neurc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* float32 against PyTorch's float64 (seen: cam 1.1e-6, gradient 2.3e-7 of the largest) */
#define TOL_CAM 1e-4   /* |a - b| <= TOL_CAM * max|cam| of the image */
#define TOL_GRAD 1e-4  /* |a - b| <= TOL_GRAD * max|grad| sampled; sums: * abs sum */

typedef struct gold {
    char name[64], arch[32], layer[64], key[32];
    int num_classes, in_channels, width;
    int n, c, h, w, head;
    int classes[8];
    int nrows, rows[32];
    double camv[8 * 32 * 32], camsum[8];
    double gsum[32], gabs[32];
    int ngv;
    long gidx[64];
    double gval[64];
} gold;

static int expect_word(FILE *f, const char *w) {
    char buf[64];
    return fscanf(f, "%63s", buf) == 1 && strcmp(buf, w) == 0;
}

/* Reads the next case; 0 at the end of the file. */
static int read_case(FILE *f, gold *g) {
    char word[64];
    memset(g, 0, sizeof *g);
    g->width = 32;
    int c;
    while ((c = fgetc(f)) == '#' || c == '\n')
        if (c == '#') while ((c = fgetc(f)) != '\n' && c != EOF) {}
    if (c == EOF) return 0;
    ungetc(c, f);
    assert_true(expect_word(f, "case") && fscanf(f, "%63s", g->name) == 1);
    assert_true(expect_word(f, "arch") && fscanf(f, "%31s", g->arch) == 1);
    while (fscanf(f, "%63s", word) == 1 && strcmp(word, "opt") == 0) {
        char k[32];
        int v;
        assert_int_equal(fscanf(f, "%31s %d", k, &v), 2);
        if (!strcmp(k, "num_classes")) g->num_classes = v;
        if (!strcmp(k, "in_channels")) g->in_channels = v;
        if (!strcmp(k, "width")) g->width = v;
    }
    assert_string_equal(word, "input");
    assert_int_equal(fscanf(f, "%d %d %d %d %31s", &g->n, &g->c, &g->h, &g->w, g->key), 5);
    assert_true(expect_word(f, "layer") && fscanf(f, "%63s", g->layer) == 1);
    assert_true(expect_word(f, "head") && fscanf(f, "%d", &g->head) == 1);
    int n;
    assert_true(expect_word(f, "classes") && fscanf(f, "%d", &n) == 1 && n == g->n);
    for (int i = 0; i < n; i++) assert_int_equal(fscanf(f, "%d", &g->classes[i]), 1);
    assert_true(expect_word(f, "cam") && fscanf(f, "%d", &g->nrows) == 1);
    for (int i = 0; i < g->nrows; i++) assert_int_equal(fscanf(f, "%d", &g->rows[i]), 1);
    assert_true(expect_word(f, "camv") && fscanf(f, "%d", &n) == 1 && n == g->n * g->nrows * g->nrows);
    for (int i = 0; i < n; i++) assert_int_equal(fscanf(f, "%lf", &g->camv[i]), 1);
    assert_true(expect_word(f, "camsum") && fscanf(f, "%d", &n) == 1);
    for (int i = 0; i < n; i++) assert_int_equal(fscanf(f, "%lf", &g->camsum[i]), 1);
    assert_true(expect_word(f, "grad") && fscanf(f, "%d", &n) == 1 && n == g->n * g->c);
    for (int i = 0; i < n; i++) assert_int_equal(fscanf(f, "%lf %lf", &g->gsum[i], &g->gabs[i]), 2);
    assert_true(expect_word(f, "gradv") && fscanf(f, "%d", &g->ngv) == 1);
    for (int i = 0; i < g->ngv; i++) assert_int_equal(fscanf(f, "%ld %lf", &g->gidx[i], &g->gval[i]), 2);
    assert_true(expect_word(f, "end"));
    return 1;
}

/* The case's model with every tensor from the generator. */
static nc_model *golden_model(nc_context *ctx, const gold *g) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = g->arch;
    mo.num_classes = g->num_classes;
    mo.in_channels = g->in_channels;
    mo.width = g->width;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    for (int i = 0; i < nc_model_num_tensors(m); i++) {
        nc_tensor_info ti;
        assert_int_equal(nc_model_tensor_info(m, i, &ti), NC_OK);
        float *v = tu_zeros((size_t)ti.numel);
        assert_int_equal(tu_gen_tensor(ti.name, ti.ndim, ti.shape, ti.numel, v), 0);
        assert_int_equal(nc_model_set_tensor(m, ti.name, v, ti.numel), NC_OK);
        free(v);
    }
    return m;
}

static double max_abs(const float *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

static void check_case(nc_context *ctx, const gold *g) {
    nc_model *m = golden_model(ctx, g);
    nc_saliency *s = NULL;
    assert_int_equal(nc_saliency_create(m, strcmp(g->layer, "-") ? g->layer : NULL, &s), NC_OK);
    const size_t plane = (size_t)g->h * (size_t)g->w, all = (size_t)g->n * (size_t)g->c * plane;
    float *x = tu_gen_input(g->key, all), *cam = tu_zeros((size_t)g->n * plane), *grad = tu_zeros(all);
    int32_t used[8];
    assert_int_equal(nc_saliency_compute(s, x, g->n, g->c, g->h, g->w, g->head, NULL, used, cam, grad), NC_OK);
    double worst_cam = 0.0, worst_grad = 0.0;
    for (int i = 0; i < g->n; i++) {
        assert_int_equal(used[i], g->classes[i]);
        const float *ci = cam + (size_t)i * plane;
        const double scale = max_abs(ci, plane), sum_tol = TOL_CAM * scale * (double)plane;
        for (int r = 0; r < g->nrows; r++)
            for (int q = 0; q < g->nrows; q++) {
                double want = g->camv[(i * g->nrows + r) * g->nrows + q];
                double got = ci[(size_t)g->rows[r] * (size_t)g->w + (size_t)g->rows[q]];
                double e = fabs(got - want) / scale;
                worst_cam = e > worst_cam ? e : worst_cam;
                if (e > TOL_CAM) fail_msg("%s: cam[%d][%d][%d] = %g, torch %g", g->name, i, g->rows[r], g->rows[q],
                                          got, want);
            }
        double sum = 0.0;
        for (size_t p = 0; p < plane; p++) sum += ci[p];
        if (fabs(sum - g->camsum[i]) > sum_tol) fail_msg("%s: cam sum %g, torch %g", g->name, sum, g->camsum[i]);
    }
    const double gscale = max_abs(grad, all);
    for (int k = 0; k < g->n * g->c; k++) {
        double sum = 0.0, abs_sum = 0.0;
        for (size_t p = 0; p < plane; p++) sum += grad[(size_t)k * plane + p], abs_sum += fabs(grad[(size_t)k * plane + p]);
        if (fabs(sum - g->gsum[k]) > TOL_GRAD * g->gabs[k] || fabs(abs_sum - g->gabs[k]) > TOL_GRAD * g->gabs[k])
            fail_msg("%s: gradient of plane %d: sum %g abs %g, torch %g %g", g->name, k, sum, abs_sum, g->gsum[k],
                     g->gabs[k]);
    }
    for (int k = 0; k < g->ngv; k++) {
        double e = fabs(grad[g->gidx[k]] - g->gval[k]) / gscale;
        worst_grad = e > worst_grad ? e : worst_grad;
        if (e > TOL_GRAD) fail_msg("%s: grad[%ld] = %g, torch %g", g->name, g->gidx[k], grad[g->gidx[k]], g->gval[k]);
    }
    print_message("%s (%s): worst cam error %.2e, gradient %.2e of the largest\n", g->name, nc_saliency_layer(s),
                  worst_cam, worst_grad);
    free(x);
    free(cam);
    free(grad);
    nc_saliency_destroy(s);
    nc_model_destroy(m);
}

static void test_saliency_matches_pytorch(void **state) {
    nc_context *ctx = ((tu_fx *)*state)->ctx;
    char *path = tu_fixture("saliency_golden.txt");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    gold *g = malloc(sizeof *g);
    int cases = 0;
    while (read_case(f, g)) {
        check_case(ctx, g);
        cases++;
    }
    assert_int_equal(cases, 3);
    free(g);
    fclose(f);
    free(path);
}

static nc_model *small_model(nc_context *ctx, int heads) {
    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = "resnet18";
    mo.num_classes = 3;
    mo.in_channels = 2;
    mo.num_heads = heads;
    mo.small_input = 1;
    mo.head = NC_HEAD_MLP; /* BatchNorm1d and dropout in the head */
    mo.seed = 9;
    nc_model *m = NULL;
    assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
    return m;
}

/* Layer names: exact nodes, module prefixes, the default; unknown and non-spatial ones. */
static void test_saliency_layers(void **state) {
    nc_context *ctx = ((tu_fx *)*state)->ctx;
    nc_model *m = small_model(ctx, 1);
    struct {
        const char *ask, *node_prefix;
    } ok[] = {{NULL, "relu"}, {"layer4", "relu"}, {"layer3.1", "relu"}, {"layer2.0.conv2", "layer2.0.conv2"},
              {"conv1", "conv1"}, {"bn1", "bn1"}};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        nc_saliency *s = NULL;
        assert_int_equal(nc_saliency_create(m, ok[k].ask, &s), NC_OK);
        if (strncmp(nc_saliency_layer(s), ok[k].node_prefix, strlen(ok[k].node_prefix)) != 0)
            fail_msg("%s -> %s", ok[k].ask ? ok[k].ask : "(default)", nc_saliency_layer(s));
        nc_saliency_destroy(s);
    }
    nc_saliency *s = (nc_saliency *)1;
    assert_int_equal(nc_saliency_create(m, "layer9", &s), NC_ERR_NOT_FOUND);
    assert_null(s);
    assert_non_null(strstr(nc_context_last_error(ctx), "layer9"));
    assert_int_equal(nc_saliency_create(m, "fc", &s), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "not a spatial"));
    assert_int_equal(nc_saliency_create(NULL, NULL, &s), NC_ERR_NULL);
    assert_int_equal(nc_saliency_create(m, NULL, NULL), NC_ERR_NULL);
    nc_saliency_destroy(NULL);
    assert_null(nc_saliency_layer(NULL));
    nc_model_destroy(m);
}

/* Given classes of head 1 of a two-head MLP model: the input gradient of image i is that
 * of its logit alone (checked against a central difference of nc_model_forward),
 * images are independent of each other, and the maps follow a weight change. */
static void test_saliency_heads_classes_and_changes(void **state) {
    nc_context *ctx = ((tu_fx *)*state)->ctx;
    nc_model *m = small_model(ctx, 2);
    enum { N = 2, C = 2, H = 12, W = 12, K = 3 };
    float *x = tu_rand(N * C * H * W, -1.0f, 1.0f, 3);
    float cam[N * H * W], grad[N * C * H * W], grad1[C * H * W], logits[N * 2 * K], lp[N * 2 * K], lm[N * 2 * K];
    const int32_t classes[N] = {2, 0};
    int32_t used[N];
    nc_saliency *s = NULL;
    assert_int_equal(nc_saliency_create(m, NULL, &s), NC_OK);
    assert_int_equal(nc_saliency_compute(s, x, N, C, H, W, 1, classes, used, cam, grad), NC_OK);
    assert_memory_equal(used, classes, sizeof used);
    /* image 1 alone gives the same gradient */
    assert_int_equal(nc_saliency_compute(s, x + C * H * W, 1, C, H, W, 1, classes + 1, NULL, NULL, grad1), NC_OK);
    for (int k = 0; k < C * H * W; k++) assert_float_equal(grad1[k], grad[C * H * W + k], 1e-6);
    /* central differences of the explained logit at a few pixels */
    assert_int_equal(nc_model_forward(m, x, N, C, H, W, logits), NC_OK);
    const int probes[4] = {0, 17, 150, 287};
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 4; k++) {
            size_t at = (size_t)i * C * H * W + (size_t)probes[k];
            float keep = x[at], eps = 1e-2f;
            x[at] = keep + eps;
            nc_model_forward(m, x, N, C, H, W, lp);
            x[at] = keep - eps;
            nc_model_forward(m, x, N, C, H, W, lm);
            x[at] = keep;
            const int o = i * 2 * K + K + classes[i];
            double fd = ((double)lp[o] - lm[o]) / (2.0 * eps);
            if (fabs(fd - grad[at]) > 0.05 * fabs(fd) + 2e-3) /* float32 differences: ~1e-3 noise */ fail_msg("d logit / dx[%zu]: %g vs fd %g", at, grad[at], fd);
        }
    /* a change of the weights shows in the next maps */
    float before[N * H * W];
    memcpy(before, cam, sizeof cam);
    float *fc = tu_zeros(3 * 512);
    assert_int_equal(nc_model_set_tensor(m, "fc.1.5.weight", fc, 3 * 512), NC_OK); /* head 1 outputs constant */
    assert_int_equal(nc_saliency_compute(s, x, N, C, H, W, 1, classes, NULL, cam, NULL), NC_OK);
    for (int k = 0; k < N * H * W; k++) assert_float_equal(cam[k], 0.0f, 0.0);
    (void)before;
    free(fc);
    /* bad arguments */
    assert_int_equal(nc_saliency_compute(NULL, x, N, C, H, W, 0, NULL, NULL, cam, NULL), NC_ERR_NULL);
    assert_int_equal(nc_saliency_compute(s, NULL, N, C, H, W, 0, NULL, NULL, cam, NULL), NC_ERR_NULL);
    assert_int_equal(nc_saliency_compute(s, x, N, C, H, W, 2, NULL, NULL, cam, NULL), NC_ERR_INVALID_ARGUMENT);
    const int32_t bad[N] = {0, 3};
    assert_int_equal(nc_saliency_compute(s, x, N, C, H, W, 0, bad, NULL, cam, NULL), NC_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(nc_context_last_error(ctx), "classes[1] = 3"));
    assert_int_equal(nc_saliency_compute(s, x, N, 3, H, W, 0, NULL, NULL, cam, NULL), NC_ERR_SHAPE);
    nc_saliency_destroy(s);
    free(x);
    nc_model_destroy(m);
}

/* Every family of built-in architecture: the default layer, finite non-negative maps,
 * and the input gradient against central differences of nc_model_forward. */
static void test_saliency_every_architecture_family(void **state) {
    nc_context *ctx = ((tu_fx *)*state)->ctx;
    static const struct {
        const char *arch, *layer;
        int small, blocks, cardinality;
    } archs[] = {{"vgg11_bn", "features.28", 1, 0, 0}, {"vgg11", "features.20", 1, 0, 0},
                 {"resnext", "relu", 1, 1, 4}, {"simple_cnn", "pool3", 0, 0, 0}};
    enum { C = 3, H = 32, W = 32 };
    float *x = tu_rand(C * H * W, -1.0f, 1.0f, 11), cam[H * W], grad[C * H * W], lp[4], lm[4];
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        nc_model_options mo;
        nc_model_options_init(&mo);
        mo.arch = archs[a].arch;
        mo.num_classes = 4;
        mo.in_channels = C;
        mo.small_input = archs[a].small;
        mo.width = 8;
        mo.seed = 4;
        if (archs[a].blocks) {
            for (int k = 0; k < 4; k++) mo.blocks[k] = 1;
            mo.cardinality = archs[a].cardinality;
        }
        nc_model *m = NULL;
        assert_int_equal(nc_model_create(ctx, &mo, &m), NC_OK);
        nc_saliency *s = NULL;
        assert_int_equal(nc_saliency_create(m, NULL, &s), NC_OK);
        if (strncmp(nc_saliency_layer(s), archs[a].layer, strlen(archs[a].layer)) != 0)
            fail_msg("%s: default layer %s", archs[a].arch, nc_saliency_layer(s));
        const int32_t cls = 1;
        assert_int_equal(nc_saliency_compute(s, x, 1, C, H, W, 0, &cls, NULL, cam, grad), NC_OK);
        for (int p = 0; p < H * W; p++) assert_true(isfinite(cam[p]) && cam[p] >= 0.0f);
        for (int k = 0; k < 3; k++) {
            size_t at = (size_t)(k * 1100 + 37);
            float keep = x[at], eps = 1e-2f;
            x[at] = keep + eps;
            nc_model_forward(m, x, 1, C, H, W, lp);
            x[at] = keep - eps;
            nc_model_forward(m, x, 1, C, H, W, lm);
            x[at] = keep;
            double fd = ((double)lp[cls] - lm[cls]) / (2.0 * eps);
            if (fabs(fd - grad[at]) > 0.05 * fabs(fd) + 2e-3)
                fail_msg("%s: d logit / dx[%zu] = %g, finite difference %g", archs[a].arch, at, grad[at], fd);
        }
        nc_saliency_destroy(s);
        nc_model_destroy(m);
    }
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_saliency_matches_pytorch, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_saliency_layers, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_saliency_heads_classes_and_changes, tu_fx_setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_saliency_every_architecture_family, tu_fx_setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
