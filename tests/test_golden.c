/* test_golden.c — the ref backend against golden values from PyTorch (float64):
 * eval-mode logits and one SGD training step of torchvision's resnet18, a small
 * ResNeXt, a 4-channel two-head resnet18 and densenet121; eval logits of vgg11_bn,
 * vgg16 and VGG configuration C (a torch.nn model), through the public API only.
 * Weights are not stored: they come from the generator below, which
 * tests/fixtures/make_golden.py implements identically; fixtures hold the results. */
#include "testutil.h"

#include "neurc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tolerances (keep in sync with make_golden.py, whose --check applies them to PyTorch's
 * own float32 results: worst seen 7e-5, 1.8e-6, 1.3e-6, 1.7e-4, 5.6e-4 respectively). */
#define TOL_LOGITS 1e-4      /* eval logits (ours: <= 2.6e-5): |a-b| / max(|b|, 1e-3 * max|b|) */
#define TOL_LOGITS_NORM 1e-5 /* eval logits: max|a-b| / max|b| */
#define TOL_LOSS 1e-4        /* relative */
#define TOL_ELEM 1e-3        /* after-step value: |a-b| / max(|b|, 1e-2 * mean|b|) */
#define TOL_SUM 1e-4         /* |sum - gold| <= TOL_SUM * abs_sum + 1e-6 */
#define TOL_DELTA 2e-2       /* change by the step: |a-b| / max(|b|, 0.1 * mean|b|) */
#define TOL_DSUM 2e-2        /* |dsum - gold| <= TOL_DSUM * dabs + 1e-7 */
#define MAX_REPORTED 20      /* failing comparisons printed per test */

/* The generator (tu_gen_input, tu_gen_tensor) is in testutil.c. */

/* DenseNet-121's training step is ill-conditioned in float32 at test sizes: ~10^6
 * ReLU inputs put some within 1e-6 of a channel's deviation from 0 (kink margin
 * 9.7e-7), and batch norm over 8 values per channel in block 4 spreads a kink
 * crossed by rounding over whole channels. PyTorch's own float32 step, on another
 * input (input.14), missed the strict tolerances by up to 0.13 (after-step value)
 * and 0.28 (change) relative, so a float32 step is right only up to such crossings.
 * Its step must still match loss and hits, and at least 90 % of the comparisons
 * strictly, and every element within DENSE_LOOSE. This stays as the check of the
 * public trainer path (torchvision's stem, momentum, weight decay); the strict check
 * of DenseNet's gradients, per tensor against PyTorch float64 with >= 64 values per
 * batch-norm channel, on ref and oneDNN, is tests/test_densenet_grad.c. */
#define DENSE_LOOSE 1.0
#define DENSE_FRACTION 0.10

/* ------------------------------------------------------------------- fixtures */

#define GOLD_MAX_SAMPLES 16
#define GOLD_NAME 160

typedef struct gold_tensor {
    char name[GOLD_NAME];
    int ndim;
    int64_t shape[4];
    int64_t numel;
    double sum, abs, dsum, dabs; /* after the step; change by the step */
    int k;
    int64_t idx[GOLD_MAX_SAMPLES];
    double val[GOLD_MAX_SAMPLES], dval[GOLD_MAX_SAMPLES];
} gold_tensor;

typedef struct golden {
    char model[64], arch[64], input_key[64];
    int num_classes, in_channels, num_heads, cardinality, base_width, bottleneck, blocks[4];
    int have_cardinality, have_base_width, have_bottleneck, have_blocks;
    int n, c, h, w;
    int nlabels;
    int32_t *labels;
    double lr, momentum, weight_decay;
    int nle, nlt;
    double *logits_eval, *logits_train;
    int train;
    double loss;
    int correct, total;
    int ntensors, cap;
    gold_tensor *t;
    int ended;
} golden;

typedef struct parser {
    FILE *f;
    const char *path;
    int err;
    char what[256];
} parser;

static void perr(parser *p, const char *what) {
    if (!p->err) snprintf(p->what, sizeof p->what, "%s", what);
    p->err = 1;
}

/* Next whitespace-separated token; '#' starts a comment running to the end of line. */
static int next_tok(parser *p, char *buf, size_t size) {
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%zus", size - 1);
    for (;;) {
        if (fscanf(p->f, fmt, buf) != 1) return 0;
        if (buf[0] != '#') return 1;
        int ch;
        while ((ch = fgetc(p->f)) != EOF && ch != '\n') {
        }
    }
}

static double next_double(parser *p) {
    char tok[64], *end;
    if (!next_tok(p, tok, sizeof tok)) {
        perr(p, "unexpected end of file (number expected)");
        return 0;
    }
    errno = 0;
    double v = strtod(tok, &end);
    if (*end || end == tok) perr(p, "bad number");
    return v;
}

static int64_t next_int(parser *p, int64_t lo, int64_t hi) {
    char tok[64], *end;
    if (!next_tok(p, tok, sizeof tok)) {
        perr(p, "unexpected end of file (integer expected)");
        return lo;
    }
    errno = 0;
    long long v = strtoll(tok, &end, 10);
    if (*end || end == tok || errno || v < lo || v > hi) {
        perr(p, "bad or out-of-range integer");
        return lo;
    }
    return (int64_t)v;
}

static double *next_doubles(parser *p, int *count) {
    *count = (int)next_int(p, 1, 1 << 20);
    if (p->err) return NULL;
    double *v = malloc((size_t)*count * sizeof *v);
    if (!v) {
        perr(p, "out of memory");
        return NULL;
    }
    for (int i = 0; i < *count; i++) v[i] = next_double(p);
    return v;
}

static void golden_free(golden *g) {
    free(g->labels);
    free(g->logits_eval);
    free(g->logits_train);
    free(g->t);
    memset(g, 0, sizeof *g);
}

static void parse_tensor(parser *p, golden *g) {
    if (g->ntensors == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        gold_tensor *t = realloc(g->t, (size_t)cap * sizeof *t);
        if (!t) {
            perr(p, "out of memory");
            return;
        }
        g->t = t;
        g->cap = cap;
    }
    gold_tensor *t = &g->t[g->ntensors];
    memset(t, 0, sizeof *t);
    if (!next_tok(p, t->name, sizeof t->name)) {
        perr(p, "tensor: name expected");
        return;
    }
    t->ndim = (int)next_int(p, 0, 4);
    for (int d = 0; d < t->ndim; d++) t->shape[d] = next_int(p, 1, INT64_C(1) << 40);
    t->numel = next_int(p, 1, INT64_C(1) << 40);
    t->sum = next_double(p);
    t->abs = next_double(p);
    t->dsum = next_double(p);
    t->dabs = next_double(p);
    t->k = (int)next_int(p, 0, GOLD_MAX_SAMPLES);
    for (int j = 0; j < t->k && !p->err; j++) {
        t->idx[j] = next_int(p, 0, t->numel - 1);
        t->val[j] = next_double(p);
        t->dval[j] = next_double(p);
    }
    int64_t prod = 1;
    for (int d = 0; d < t->ndim; d++) prod *= t->shape[d];
    if (prod != t->numel) perr(p, "tensor: numel is not the product of the shape");
    g->ntensors++;
}

static void parse_opt(parser *p, golden *g) {
    char key[64];
    if (!next_tok(p, key, sizeof key)) {
        perr(p, "opt: key expected");
        return;
    }
    if (strcmp(key, "num_classes") == 0) {
        g->num_classes = (int)next_int(p, 1, 1 << 20);
    } else if (strcmp(key, "in_channels") == 0) {
        g->in_channels = (int)next_int(p, 1, 1 << 16);
    } else if (strcmp(key, "num_heads") == 0) {
        g->num_heads = (int)next_int(p, 1, 1 << 16);
    } else if (strcmp(key, "cardinality") == 0) {
        g->cardinality = (int)next_int(p, 1, 1 << 16);
        g->have_cardinality = 1;
    } else if (strcmp(key, "base_width") == 0) {
        g->base_width = (int)next_int(p, 1, 1 << 16);
        g->have_base_width = 1;
    } else if (strcmp(key, "bottleneck") == 0) {
        g->bottleneck = (int)next_int(p, 0, 1);
        g->have_bottleneck = 1;
    } else if (strcmp(key, "blocks") == 0) {
        for (int i = 0; i < 4; i++) g->blocks[i] = (int)next_int(p, 1, 1 << 10);
        g->have_blocks = 1;
    } else {
        perr(p, "opt: unknown option (extend test_golden.c)");
    }
}

/* Reads tests/fixtures/golden_<model>.txt. Returns 0, or -1 with a message in msg. */
static int golden_load(const char *model, golden *g, char *msg, size_t msgsize) {
    memset(g, 0, sizeof *g);
    g->num_heads = 1;
    g->in_channels = 3;
    char file[128];
    snprintf(file, sizeof file, "golden_%s.txt", model);
    char *path = tu_fixture(file);
    parser p = {.f = fopen(path, "r"), .path = path};
    if (!p.f) {
        snprintf(msg, msgsize, "cannot open fixture %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    char kw[64];
    while (!p.err && !g->ended && next_tok(&p, kw, sizeof kw)) {
        if (strcmp(kw, "model") == 0) {
            if (!next_tok(&p, g->model, sizeof g->model)) perr(&p, "model: name expected");
        } else if (strcmp(kw, "arch") == 0) {
            if (!next_tok(&p, g->arch, sizeof g->arch)) perr(&p, "arch: name expected");
        } else if (strcmp(kw, "opt") == 0) {
            parse_opt(&p, g);
        } else if (strcmp(kw, "input") == 0) {
            g->n = (int)next_int(&p, 1, 1 << 16);
            g->c = (int)next_int(&p, 1, 1 << 16);
            g->h = (int)next_int(&p, 1, 1 << 16);
            g->w = (int)next_int(&p, 1, 1 << 16);
            if (!next_tok(&p, g->input_key, sizeof g->input_key)) perr(&p, "input: key expected");
        } else if (strcmp(kw, "labels") == 0) {
            g->nlabels = (int)next_int(&p, 1, 1 << 20);
            g->labels = p.err ? NULL : malloc((size_t)g->nlabels * sizeof *g->labels);
            if (!p.err && !g->labels) perr(&p, "out of memory");
            for (int i = 0; i < g->nlabels && !p.err; i++)
                g->labels[i] = (int32_t)next_int(&p, 0, 1 << 20);
        } else if (strcmp(kw, "sgd") == 0) {
            g->lr = next_double(&p);
            g->momentum = next_double(&p);
            g->weight_decay = next_double(&p);
        } else if (strcmp(kw, "logits_eval") == 0) {
            g->logits_eval = next_doubles(&p, &g->nle);
        } else if (strcmp(kw, "logits_train") == 0) {
            g->logits_train = next_doubles(&p, &g->nlt);
        } else if (strcmp(kw, "train") == 0) {
            g->train = (int)next_int(&p, 0, 1);
        } else if (strcmp(kw, "loss") == 0) {
            g->loss = next_double(&p);
        } else if (strcmp(kw, "correct") == 0) {
            g->correct = (int)next_int(&p, 0, 1 << 20);
            g->total = (int)next_int(&p, 0, 1 << 20);
        } else if (strcmp(kw, "tensor") == 0) {
            parse_tensor(&p, g);
        } else if (strcmp(kw, "end") == 0) {
            g->ended = 1;
        } else {
            perr(&p, "unknown record");
        }
    }
    fclose(p.f);
    if (!p.err && !g->ended) perr(&p, "no 'end' record (truncated file?)");
    if (!p.err && (!g->arch[0] || !g->n || !g->logits_eval || !g->ntensors || !g->num_classes))
        perr(&p, "a required record (arch, input, logits_eval, tensor, num_classes) is missing");
    if (!p.err && g->nlabels != g->n * g->num_heads) perr(&p, "labels: count != n * num_heads");
    if (!p.err && g->train && (!g->logits_train || !g->total)) perr(&p, "train records missing");
    if (p.err) {
        snprintf(msg, msgsize, "%s: %s (near record '%s')", path, p.what, kw);
        golden_free(g);
        free(path);
        return -1;
    }
    free(path);
    return 0;
}

/* ---------------------------------------------------------------------- model */

static const gold_tensor *gold_find(const golden *g, const char *name) {
    for (int i = 0; i < g->ntensors; i++)
        if (strcmp(g->t[i].name, name) == 0) return &g->t[i];
    return NULL;
}

static int is_buffer(const char *name) {
    const char *dot = strrchr(name, '.');
    const char *last = dot ? dot + 1 : name;
    return strcmp(last, "running_mean") == 0 || strcmp(last, "running_var") == 0 ||
           strcmp(last, "num_batches_tracked") == 0;
}

/* Loads the fixture, creates a ref-backend model of its architecture and sets every
 * tensor from the generator, after checking that the model's tensors are exactly the
 * fixture's (torchvision's state_dict: same names, shapes, parameter/buffer kind). */
static void setup(const char *model, golden *g, nc_context **ctx, nc_model **m) {
    char msg[512];
    if (golden_load(model, g, msg, sizeof msg) != 0) fail_msg("%s", msg);

    nc_context_options co;
    nc_context_options_init(&co);
    co.backend = NC_BACKEND_REF;
    nc_status st = nc_context_create(&co, ctx);
    if (st != NC_OK) fail_msg("nc_context_create: %s", nc_status_str(st));

    nc_model_options mo;
    nc_model_options_init(&mo);
    mo.arch = g->arch;
    mo.num_classes = g->num_classes;
    mo.in_channels = g->in_channels;
    mo.num_heads = g->num_heads;
    if (g->have_cardinality) mo.cardinality = g->cardinality;
    if (g->have_base_width) mo.base_width = g->base_width;
    if (g->have_bottleneck) mo.bottleneck = g->bottleneck;
    if (g->have_blocks)
        for (int i = 0; i < 4; i++) mo.blocks[i] = g->blocks[i];
    st = nc_model_create(*ctx, &mo, m);
    if (st != NC_OK)
        fail_msg("%s: nc_model_create(%s): %s: %s", model, g->arch, nc_status_str(st),
                 nc_context_last_error(*ctx));
    assert_int_equal(nc_model_num_outputs(*m), g->num_heads * g->num_classes);
    assert_int_equal(nc_model_in_channels(*m), g->c);

    int count = nc_model_num_tensors(*m);
    int bad = 0;
    for (int i = 0; i < count; i++) {
        nc_tensor_info info;
        st = nc_model_tensor_info(*m, i, &info);
        if (st != NC_OK) fail_msg("nc_model_tensor_info(%d): %s", i, nc_status_str(st));
        const gold_tensor *t = gold_find(g, info.name);
        if (!t) {
            if (bad++ < MAX_REPORTED) print_message("%s: model tensor %s not in torch's state_dict\n", model, info.name);
            continue;
        }
        int same = info.ndim == t->ndim && info.numel == t->numel;
        for (int d = 0; same && d < t->ndim; d++) same = info.shape[d] == t->shape[d];
        if (!same) {
            if (bad++ < MAX_REPORTED) print_message("%s: %s: shape differs from torch's\n", model, info.name);
            continue;
        }
        if (info.trainable != !is_buffer(info.name)) {
            if (bad++ < MAX_REPORTED)
                print_message("%s: %s: trainable = %d, torch says %s\n", model, info.name,
                              info.trainable, is_buffer(info.name) ? "buffer" : "parameter");
            continue;
        }
        float *v = malloc((size_t)info.numel * sizeof *v);
        assert_non_null(v);
        if (tu_gen_tensor(info.name, info.ndim, info.shape, info.numel, v) != 0)
            fail_msg("%s: no generator rule for tensor %s", model, info.name);
        st = nc_model_set_tensor(*m, info.name, v, info.numel);
        free(v);
        if (st != NC_OK)
            fail_msg("%s: nc_model_set_tensor(%s): %s: %s", model, info.name, nc_status_str(st),
                     nc_context_last_error(*ctx));
    }
    if (count != g->ntensors) {
        print_message("%s: model has %d tensors, torch's state_dict %d\n", model, count,
                      g->ntensors);
        for (int j = 0; j < g->ntensors; j++) {
            float one;
            nc_status s2 = nc_model_get_tensor(*m, g->t[j].name, &one, 0);
            if (s2 == NC_ERR_NOT_FOUND && bad++ < MAX_REPORTED)
                print_message("%s: torch tensor %s missing from the model\n", model, g->t[j].name);
        }
        bad++;
    }
    if (bad) fail_msg("%s: %d tensor(s) disagree with torchvision's state_dict", model, bad);
}

static void teardown(golden *g, nc_context *ctx, nc_model *m, nc_trainer *t) {
    nc_trainer_destroy(t);
    nc_model_destroy(m);
    nc_context_destroy(ctx);
    golden_free(g);
}

/* ----------------------------------------------------------------------- cases */

static void check_eval(const char *model) {
    golden g;
    nc_context *ctx = NULL;
    nc_model *m = NULL;
    setup(model, &g, &ctx, &m);

    size_t nx = (size_t)g.n * g.c * g.h * g.w;
    float *x = tu_gen_input(g.input_key, nx);
    float *logits = malloc((size_t)g.nle * sizeof *logits);
    assert_non_null(x);
    assert_non_null(logits);
    assert_int_equal(g.nle, g.n * nc_model_num_outputs(m));
    nc_status st = nc_model_forward(m, x, g.n, g.c, g.h, g.w, logits);
    if (st != NC_OK)
        fail_msg("%s: nc_model_forward: %s: %s", model, nc_status_str(st),
                 nc_context_last_error(ctx));

    double maxg = 0, maxd = 0, rel = 0;
    for (int i = 0; i < g.nle; i++) maxg = fmax(maxg, fabs(g.logits_eval[i]));
    for (int i = 0; i < g.nle; i++) {
        double d = fabs((double)logits[i] - g.logits_eval[i]);
        double e = d / fmax(fabs(g.logits_eval[i]), 1e-3 * maxg);
        if (!(d <= maxd)) maxd = d; /* NaN-propagating */
        if (!(e <= rel)) rel = e;
    }
    double norm = maxd / maxg;
    print_message("golden %s eval logits (%d values, max|gold| %.3g): max relative error %.3g "
                  "(floor 1e-3*max|gold|, tol %g), max abs error / max|gold| %.3g (tol %g)\n",
                  model, g.nle, maxg, rel, TOL_LOGITS, norm, TOL_LOGITS_NORM);
    if (!(rel < TOL_LOGITS) || !(norm < TOL_LOGITS_NORM)) {
        for (int i = 0; i < g.nle; i++)
            print_message("  logit %2d: got %.8g, want %.8g\n", i, logits[i], g.logits_eval[i]);
        fail_msg("%s: eval logits differ from PyTorch", model);
    }
    free(x);
    free(logits);
    teardown(&g, ctx, m, NULL);
}

typedef struct worst {
    double e;
    char where[GOLD_NAME + 32];
} worst;

static void note(worst *w, double e, const char *name, int64_t idx) {
    if (!(e <= w->e)) { /* NaN counts as worst */
        w->e = e;
        if (idx >= 0)
            snprintf(w->where, sizeof w->where, "%s[%lld]", name, (long long)idx);
        else
            snprintf(w->where, sizeof w->where, "%s", name);
    }
}

/* allowed: the fraction of after-step comparisons that may miss the strict
 * tolerances (each still within DENSE_LOOSE); 0 for every well-conditioned model. */
static void check_train(const char *model, double allowed) {
    golden g;
    nc_context *ctx = NULL;
    nc_model *m = NULL;
    nc_trainer *t = NULL;
    setup(model, &g, &ctx, &m);
    if (!g.train) fail_msg("%s: the fixture has no training step", model);

    nc_trainer_options to;
    nc_trainer_options_init(&to);
    to.lr = (float)g.lr;
    to.momentum = (float)g.momentum;
    to.weight_decay = (float)g.weight_decay;
    to.dampening = 0.0f;
    to.nesterov = 0;
    nc_status st = nc_trainer_create(m, &to, &t);
    if (st != NC_OK)
        fail_msg("%s: nc_trainer_create: %s: %s", model, nc_status_str(st),
                 nc_context_last_error(ctx));

    size_t nx = (size_t)g.n * g.c * g.h * g.w;
    float *x = tu_gen_input(g.input_key, nx);
    assert_non_null(x);
    nc_step_stats s;
    memset(&s, 0, sizeof s);
    st = nc_trainer_step(t, x, g.labels, g.n, g.c, g.h, g.w, &s);
    if (st != NC_OK)
        fail_msg("%s: nc_trainer_step: %s: %s", model, nc_status_str(st),
                 nc_context_last_error(ctx));
    assert_int_equal(s.skipped, 0);
    assert_int_equal(nc_trainer_num_steps(t), 1);

    int failures = 0, compared = 0, hard = 0;
    double loss_err = fabs((double)s.loss - g.loss) / fabs(g.loss);
    if (!(loss_err < TOL_LOSS)) {
        print_message("  loss: got %.8g, want %.8g\n", s.loss, g.loss);
        failures++;
    }
    if (s.correct != g.correct || s.total != g.total) {
        print_message("  correct/total: got %d/%d, want %d/%d\n", s.correct, s.total, g.correct,
                      g.total);
        failures++;
    }

    worst we = {0, ""}, ws = {0, ""}, wd = {0, ""}, wds = {0, ""};
    for (int j = 0; j < g.ntensors; j++) {
        const gold_tensor *gt = &g.t[j];
        float *after = malloc((size_t)gt->numel * sizeof *after);
        float *before = malloc((size_t)gt->numel * sizeof *before);
        assert_non_null(after);
        assert_non_null(before);
        st = nc_model_get_tensor(m, gt->name, after, gt->numel);
        if (st != NC_OK)
            fail_msg("%s: nc_model_get_tensor(%s): %s", model, gt->name, nc_status_str(st));
        assert_int_equal(tu_gen_tensor(gt->name, gt->ndim, gt->shape, gt->numel, before), 0);

        double sum = 0, dsum = 0;
        for (int64_t i = 0; i < gt->numel; i++) {
            sum += after[i];
            dsum += (double)after[i] - (double)before[i];
        }
        /* errors are expressed in units of the tolerance's own measure */
        double es = fabs(sum - gt->sum) / (TOL_SUM * gt->abs + 1e-6) * TOL_SUM;
        double eds = fabs(dsum - gt->dsum) / (TOL_DSUM * gt->dabs + 1e-7) * TOL_DSUM;
        note(&ws, es, gt->name, -1);
        note(&wds, eds, gt->name, -1);
        compared += 2;
        if (!(es < TOL_SUM) && failures++ < MAX_REPORTED)
            print_message("  %s: sum %.10g, want %.10g (sum|.| %.6g)\n", gt->name, sum, gt->sum,
                          gt->abs);
        if (!(eds < TOL_DSUM) && failures++ < MAX_REPORTED)
            print_message("  %s: sum of the change %.10g, want %.10g (sum|change| %.6g)\n",
                          gt->name, dsum, gt->dsum, gt->dabs);

        double floor_v = fmax(1e-2 * gt->abs / (double)gt->numel, 1e-30);
        double floor_d = fmax(0.1 * gt->dabs / (double)gt->numel, 1e-30);
        for (int k = 0; k < gt->k; k++) {
            int64_t i = gt->idx[k];
            double v = after[i], d = (double)after[i] - (double)before[i];
            double e = fabs(v - gt->val[k]) / fmax(fabs(gt->val[k]), floor_v);
            double ed = fabs(d - gt->dval[k]) / fmax(fabs(gt->dval[k]), floor_d);
            note(&we, e, gt->name, i);
            note(&wd, ed, gt->name, i);
            compared += 2;
            hard += !(e < DENSE_LOOSE) + !(ed < DENSE_LOOSE);
            if (!(e < TOL_ELEM) && failures++ < MAX_REPORTED)
                print_message("  %s[%lld]: %.8g after the step, want %.8g\n", gt->name,
                              (long long)i, v, gt->val[k]);
            if (!(ed < TOL_DELTA) && failures++ < MAX_REPORTED)
                print_message("  %s[%lld]: changed by %.8g, want %.8g\n", gt->name, (long long)i,
                              d, gt->dval[k]);
        }
        free(after);
        free(before);
    }

    print_message("golden %s train step: loss %.7g (want %.7g) rel err %.3g (tol %g); "
                  "correct %d/%d\n",
                  model, s.loss, g.loss, loss_err, TOL_LOSS, s.correct, s.total);
    print_message("  after-step values: max rel err %.3g at %s (tol %g); sums %.3g at %s (tol %g)\n",
                  we.e, we.where, TOL_ELEM, ws.e, ws.where, TOL_SUM);
    print_message("  changes by the step: max rel err %.3g at %s (tol %g); sums %.3g at %s (tol %g)\n",
                  wd.e, wd.where, TOL_DELTA, wds.e, wds.where, TOL_DSUM);
    print_message("  %d of %d comparisons outside the tolerances (%.1f %% allowed)\n", failures, compared,
                  100.0 * allowed);
    const int bad = failures > (int)(allowed * compared) || hard || !(loss_err < TOL_LOSS) || s.correct != g.correct;
    free(x);
    teardown(&g, ctx, m, t);
    if (bad) fail_msg("%s: %d comparison(s) with PyTorch's training step failed", model, failures);
}

static void test_golden_resnet18_eval_logits(void **state) {
    (void)state;
    check_eval("resnet18");
}
static void test_golden_resnet18_train_step(void **state) {
    (void)state;
    check_train("resnet18", 0.0);
}
static void test_golden_resnext_eval_logits(void **state) {
    (void)state;
    check_eval("resnext");
}
static void test_golden_resnext_train_step(void **state) {
    (void)state;
    check_train("resnext", 0.0);
}
static void test_golden_resnet18_4ch_2heads_eval_logits(void **state) {
    (void)state;
    check_eval("resnet18_4ch_2heads");
}
static void test_golden_resnet18_4ch_2heads_train_step(void **state) {
    (void)state;
    check_train("resnet18_4ch_2heads", 0.0);
}
static void test_golden_vgg11_bn_eval_logits(void **state) {
    (void)state;
    check_eval("vgg11_bn");
}

/* The generator itself: values computed by make_golden.py's numpy version (as hex
 * floats), so a drift between the two shows up here and not as a wrong network. */
static void test_golden_generator_matches_python(void **state) {
    (void)state;
    static const struct {
        const char *name;
        int ndim;
        int64_t shape[4];
        float want[3];
    } cases[] = {
        {"conv1.weight", 4, {64, 3, 7, 7}, {0x1.2a66f8p-6f, -0x1.5fd918p-3f, 0x1.7cac66p-3f}},
        {"bn1.weight", 1, {64}, {0x1.f1af54p-1f, 0x1.fbeec4p-1f, 0x1.e99fecp-1f}},
        {"bn1.running_var", 1, {64}, {0x1.291b92p+0f, 0x1.1f0712p+0f, 0x1.05b2fep+0f}},
        {"fc.bias", 1, {10}, {-0x1.24edccp-8f, -0x1.c1dea6p-5f, -0x1.416666p-16f}},
        {"layer1.0.bn1.running_mean", 1, {64}, {-0x1.6fac1p-4f, 0x1.78558cp-5f, 0x1.530c9ap-4f}},
        {"layer1.0.bn1.num_batches_tracked", 0, {0}, {0.0f}},
    };
    assert_true(tu_fnv1a64("conv1.weight") == 0x69a29a2cee47d254ULL);
    assert_true(tu_splitmix64(0) == 0xe220a8397b1dcdafULL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t numel = 1;
        for (int d = 0; d < cases[c].ndim; d++) numel *= cases[c].shape[d];
        float *v = malloc((size_t)numel * sizeof *v);
        assert_non_null(v);
        assert_int_equal(tu_gen_tensor(cases[c].name, cases[c].ndim, cases[c].shape, numel, v), 0);
        for (int i = 0; i < 3 && i < numel; i++) {
            if (v[i] != cases[c].want[i])
                fail_msg("%s[%d] = %a, python says %a", cases[c].name, i, v[i], cases[c].want[i]);
        }
        free(v);
    }
    float x[3];
    float *in = tu_gen_input("input.4", 3);
    assert_non_null(in);
    memcpy(x, in, sizeof x);
    free(in);
    assert_true(x[0] == -0x1.a61b7p-2f && x[1] == 0x1.3860dp-3f && x[2] == 0x1.671d2p-2f);
    assert_int_equal(tu_gen_tensor("conv1.bogus", 1, cases[0].shape, 1, x), -1);
}

static void test_golden_densenet121_eval_logits(void **state) {
    (void)state;
    check_eval("densenet121");
}
/* memory-efficient (recomputing) training, checked against torchvision's plain one */
static void test_golden_densenet121_train_step(void **state) {
    (void)state;
    check_train("densenet121", DENSE_FRACTION);
}
static void test_golden_vgg16_eval_logits(void **state) {
    (void)state;
    check_eval("vgg16");
}
/* configuration C against the torch.nn model in make_golden.py */
static void test_golden_vgg16c_eval_logits(void **state) {
    (void)state;
    check_eval("vgg16c");
}

/* Two groups, each its own meson test so that each stays short: the default one, and
 * "densenet_vgg". */
int main(int argc, char **argv) {
    const struct CMUnitTest densenet_vgg[] = {
        cmocka_unit_test(test_golden_densenet121_eval_logits),
        cmocka_unit_test(test_golden_densenet121_train_step),
        cmocka_unit_test(test_golden_vgg16_eval_logits),
        cmocka_unit_test(test_golden_vgg16c_eval_logits),
    };
    if (argc > 1 && strcmp(argv[1], "densenet_vgg") == 0) return cmocka_run_group_tests(densenet_vgg, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_generator_matches_python),
        cmocka_unit_test(test_golden_resnet18_eval_logits),
        cmocka_unit_test(test_golden_resnet18_train_step),
        cmocka_unit_test(test_golden_resnext_eval_logits),
        cmocka_unit_test(test_golden_resnext_train_step),
        cmocka_unit_test(test_golden_resnet18_4ch_2heads_eval_logits),
        cmocka_unit_test(test_golden_resnet18_4ch_2heads_train_step),
        cmocka_unit_test(test_golden_vgg11_bn_eval_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
