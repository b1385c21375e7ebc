/* options.c — nc-train's option table: the usage text, the conversion of the
 * effective option strings into a typed cfg (strict: a bad value is a usage error),
 * and config.json, a flat JSON object of option name -> string (through cJSON) that
 * lets resume, evaluate and test reuse a run's options (flags given again override). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "train.h"
#include "../args.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPT_DEF(id, name, arg, def, persist, meta, help) {name, arg, def, persist, meta, help},
const optdef option_defs[OPT_COUNT] = {OPTION_TABLE(OPT_DEF)};
#undef OPT_DEF

int option_index(const char *name) {
    for (int i = 0; i < OPT_COUNT; i++)
        if (strcmp(option_defs[i].name, name) == 0) return i;
    return -1;
}

void print_usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " [MODE] --data PATH [options]\n"
            "Trains, resumes, evaluates or tests a CNN image classifier with neurc.\n"
            "Output (--output-dir): train_log.csv/.json, last/best.safetensors, split.csv,\n"
            "config.json, report.json, summary.txt and SVG figures. See docs/cli.md.\n\n");
    for (int i = 0; i < OPT_COUNT; i++) {
        const optdef *o = &option_defs[i];
        char left[64];
        if (o->arg == 1) snprintf(left, sizeof left, "--%s %s", o->name, o->meta);
        else if (o->arg == 2) snprintf(left, sizeof left, "--%s[=0|1]", o->name);
        else snprintf(left, sizeof left, "--%s", o->name);
        int show_def = o->arg != 0 && o->def[0] != '\0' && strcmp(o->def, "0") != 0;
        fprintf(f, "  %-30s %s%s%s%s\n", left, o->help, show_def ? " [" : "", show_def ? o->def : "",
                show_def ? "]" : "");
    }
    fprintf(f, "\nExit status: 0 success, 1 failure (message names the cause), 2 bad usage,\n"
               "130 interrupted (last.safetensors written; continue with `resume`).\n");
}

/* ------------------------------------------------------------ conversion */

static int bad(const cfg *c, int id, const char *why) {
    fprintf(stderr, PROG ": bad value '%s' for --%s: %s (try --help)\n", c->val[id], option_defs[id].name, why);
    return EXIT_USAGE;
}

#define INT_OPT(id, field, lo, hi)                                                                   \
    do {                                                                                             \
        long v_;                                                                                     \
        if (arg_long(c->val[OPT_##id], lo, hi, &v_)) return bad(c, OPT_##id, "expected an integer in " #lo ".." #hi); \
        c->field = (int)v_;                                                                          \
    } while (0)
#define FLOAT_OPT(id, field, lo, hi)                                                                   \
    do {                                                                                               \
        if (arg_float(c->val[OPT_##id], lo, hi, &c->field)) return bad(c, OPT_##id, "expected a number in " #lo ".." #hi); \
    } while (0)

/* "a,b,c" -> floats; returns the count or -1. */
static int float_list(const char *s, float *out, int max, double lo, double hi) {
    int n = 0;
    char buf[1024];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n >= max || arg_float(tok, lo, hi, &out[n])) return -1;
        n++;
    }
    return n;
}

static int int_list(const char *s, int *out, int max, long lo, long hi) {
    int n = 0;
    char buf[1024];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (n >= max || arg_long(tok, lo, hi, &v)) return -1;
        out[n++] = (int)v;
    }
    return n;
}

static int pick(const char *s, const char *const *names, int count) {
    for (int i = 0; i < count; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static const char *opt_str(const cfg *c, int id) { return c->val[id][0] ? c->val[id] : NULL; }

/* --loss bce: --pos-weight none | auto | one weight or one per label; the softmax-only
 * options are refused. Without bce, --pos-weight must stay none. 0, or 2 after printing. */
static int resolve_pos_weight(cfg *c) {
    static const char *const kinds[] = {"none", "auto"};
    int k = pick(c->val[OPT_POS_WEIGHT], kinds, 2);
    c->num_pos_weights = 0;
    if (k >= 0) {
        c->pos_weight = k;
    } else {
        c->num_pos_weights = float_list(c->val[OPT_POS_WEIGHT], c->pos_weights, 256, 0.0, 1e6);
        if (c->num_pos_weights < 1)
            return bad(c, OPT_POS_WEIGHT, "expected none, auto, or one non-negative weight (or one per label)");
        c->pos_weight = 2;
    }
    if (!c->loss && c->pos_weight) return bad(c, OPT_POS_WEIGHT, "needs --loss bce");
    if (c->loss && c->class_weights)
        return bad(c, OPT_CLASS_WEIGHTS, "softmax class weights; with --loss bce weigh the positives with --pos-weight");
    if (c->loss && c->label_smoothing > 0.0f) return bad(c, OPT_LABEL_SMOOTHING, "applies to --loss ce only");
    return 0;
}

int cfg_resolve(cfg *c) {
    static const char *const modes[] = {"train", "resume", "evaluate", "test"};
    static const char *const augments[] = {"auto", "none", "light", "full"};
    static const char *const heads[] = {"linear", "mlp"};
    static const char *const adapts[] = {"normal", "mean"};
    static const char *const optimizers[] = {"sgd", "adam", "adamw"};
    static const char *const schedulers[] = {"none", "step", "multistep", "exponential", "cosine", "plateau"};
    static const char *const weights[] = {"none", "balanced"};
    static const char *const monitors[] = {"val_loss", "val_acc", "val_f1", "val_auc"};
    static const char *const losses[] = {"ce", "bce"};
    static const char *const backends[] = {"auto", "ref", "onednn", "cuda"};
    static const char *const bools[] = {"0", "1"};
    int k;

    if ((k = pick(c->val[OPT_MODE], modes, 4)) < 0) return bad(c, OPT_MODE, "expected train, resume, evaluate or test");
    c->mode = (mode)k;
    c->data = opt_str(c, OPT_DATA);
    c->val_data = opt_str(c, OPT_VAL_DATA);
    c->test_data = opt_str(c, OPT_TEST_DATA);
    c->out = c->val[OPT_OUTPUT_DIR];
    if (!c->out[0]) return bad(c, OPT_OUTPUT_DIR, "empty");
    FLOAT_OPT(VAL_SPLIT, val_split, 0.0, 0.9);
    FLOAT_OPT(TEST_SPLIT, test_split, 0.0, 0.9);
    INT_OPT(IN_CHANNELS, in_channels, 0, 16);
    INT_OPT(IMG_SIZE, img_size, 0, 4096);
    if ((k = pick(c->val[OPT_AUGMENT], augments, 4)) < 0) return bad(c, OPT_AUGMENT, "expected auto, none, light or full");
    c->augment = k - 1;
    c->has_norm = 0;
    if (opt_str(c, OPT_MEAN) || opt_str(c, OPT_STD)) {
        int nm = float_list(c->val[OPT_MEAN], c->mean, 16, -1e6, 1e6);
        int ns = float_list(c->val[OPT_STD], c->std, 16, 1e-12, 1e6);
        if (nm < 1) return bad(c, OPT_MEAN, "expected 1..16 comma-separated numbers (and --std as many)");
        if (ns != nm) return bad(c, OPT_STD, "expected as many positive numbers as --mean");
        c->has_norm = 1;
        c->norm_count = nm;
    }
    /* models */
    {
        char buf[1024];
        if (strlen(c->val[OPT_MODEL]) >= sizeof buf) return bad(c, OPT_MODEL, "too long");
        strcpy(buf, c->val[OPT_MODEL]);
        c->num_models = 0;
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (c->num_models >= 16 || strlen(tok) >= sizeof c->models[0]) return bad(c, OPT_MODEL, "at most 16 names");
            for (int i = 0; i < c->num_models; i++)
                if (strcmp(c->models[i], tok) == 0) return bad(c, OPT_MODEL, "a model is named twice");
            strcpy(c->models[c->num_models++], tok);
        }
        if (c->num_models == 0) return bad(c, OPT_MODEL, "no architecture named");
    }
    INT_OPT(WIDTH, width, 1, 4096);
    INT_OPT(CARDINALITY, cardinality, 1, 1024);
    INT_OPT(BASE_WIDTH, base_width, 1, 4096);
    if (int_list(c->val[OPT_BLOCKS], c->blocks, 4, 1, 64) != 4) return bad(c, OPT_BLOCKS, "expected four counts 1..64");
    if ((k = pick(c->val[OPT_BASIC], bools, 2)) < 0) return bad(c, OPT_BASIC, "expected 0 or 1");
    c->basic = k;
    INT_OPT(HEADS, heads, 0, 256);
    if ((k = pick(c->val[OPT_HEAD], heads, 2)) < 0) return bad(c, OPT_HEAD, "expected linear or mlp");
    c->head = k;
    FLOAT_OPT(HEAD_DROPOUT, head_dropout, 0.0, 0.99);
    FLOAT_OPT(BLOCK_DROPOUT, block_dropout, 0.0, 0.99);
    if (strcmp(c->val[OPT_SMALL_INPUT], "auto") == 0) c->small_input = -1;
    else if ((k = pick(c->val[OPT_SMALL_INPUT], bools, 2)) >= 0) c->small_input = k;
    else return bad(c, OPT_SMALL_INPUT, "expected auto, 0 or 1");
    if ((k = pick(c->val[OPT_ADAPT], adapts, 2)) < 0) return bad(c, OPT_ADAPT, "expected normal or mean");
    c->adapt = k;

    INT_OPT(EPOCHS, epochs, 1, 100000);
    INT_OPT(BATCH_SIZE, batch_size, 1, 65536);
    if ((k = pick(c->val[OPT_OPTIMIZER], optimizers, 3)) < 0) return bad(c, OPT_OPTIMIZER, "expected sgd, adam or adamw");
    c->optimizer = k;
    if (strcmp(c->val[OPT_LR], "auto") == 0) c->lr = c->optimizer == 0 ? 0.01f : 0.001f;
    else FLOAT_OPT(LR, lr, 0.0, 100.0);
    FLOAT_OPT(MOMENTUM, momentum, 0.0, 0.9999);
    FLOAT_OPT(WEIGHT_DECAY, weight_decay, 0.0, 10.0);
    if ((k = pick(c->val[OPT_NESTEROV], bools, 2)) < 0) return bad(c, OPT_NESTEROV, "expected 0 or 1");
    c->nesterov = k;
    if (c->nesterov && (c->optimizer != 0 || c->momentum <= 0.0f))
        return bad(c, OPT_NESTEROV, "needs --optimizer sgd with --momentum > 0");
    c->lr_head = c->lr_backbone = c->lr_early = -1.0f;
    if (opt_str(c, OPT_LR_HEAD)) FLOAT_OPT(LR_HEAD, lr_head, 0.0, 100.0);
    if (opt_str(c, OPT_LR_BACKBONE)) FLOAT_OPT(LR_BACKBONE, lr_backbone, 0.0, 100.0);
    if (opt_str(c, OPT_LR_EARLY)) FLOAT_OPT(LR_EARLY, lr_early, 0.0, 100.0);
    INT_OPT(FREEZE_BACKBONE, freeze_epochs, 0, 100000);
    if ((k = pick(c->val[OPT_SCHEDULER], schedulers, 6)) < 0)
        return bad(c, OPT_SCHEDULER, "expected none, step, multistep, exponential, cosine or plateau");
    c->scheduler = k - 1; /* -1 none, 0 step.. 4 plateau; +1 = nc_schedule_kind */
    INT_OPT(STEP_SIZE, step_size, 1, 100000);
    FLOAT_OPT(GAMMA, gamma, 0.0, 10.0);
    c->num_milestones = 0;
    if (opt_str(c, OPT_MILESTONES)) {
        c->num_milestones = int_list(c->val[OPT_MILESTONES], c->milestones, 32, 1, 100000);
        if (c->num_milestones < 1) return bad(c, OPT_MILESTONES, "expected increasing epochs");
        for (int i = 1; i < c->num_milestones; i++)
            if (c->milestones[i] <= c->milestones[i - 1]) return bad(c, OPT_MILESTONES, "not increasing");
    }
    if (c->scheduler == 1 && c->num_milestones == 0)
        return bad(c, OPT_SCHEDULER, "multistep needs --milestones");
    INT_OPT(T_MAX, t_max, 0, 100000);
    FLOAT_OPT(ETA_MIN, eta_min, 0.0, 100.0);
    INT_OPT(WARMUP, warmup, 0, 100000);
    FLOAT_OPT(PLATEAU_FACTOR, plateau_factor, 0.0, 0.9999);
    INT_OPT(PLATEAU_PATIENCE, plateau_patience, 0, 100000);
    FLOAT_OPT(MIN_LR, min_lr, 0.0, 100.0);
    FLOAT_OPT(LABEL_SMOOTHING, label_smoothing, 0.0, 0.99);
    if ((k = pick(c->val[OPT_CLASS_WEIGHTS], weights, 2)) >= 0) {
        c->class_weights = k;
        c->num_weights = 0;
    } else {
        c->num_weights = float_list(c->val[OPT_CLASS_WEIGHTS], c->weights, 256, 0.0, 1e6);
        if (c->num_weights < 2) return bad(c, OPT_CLASS_WEIGHTS, "expected none, balanced or one weight per class");
        c->class_weights = 2;
    }
    INT_OPT(GRAD_ACCUM, grad_accum, 1, 4096);
    FLOAT_OPT(CLIP_GRAD, clip_grad, 0.0, 1e6);
    FLOAT_OPT(EMA, ema, 0.0, 0.999999);
    INT_OPT(EARLY_STOPPING, early_stopping, 0, 100000);
    FLOAT_OPT(MIN_DELTA, min_delta, 0.0, 1e6);
    if ((k = pick(c->val[OPT_LOSS], losses, 2)) < 0) return bad(c, OPT_LOSS, "expected ce or bce");
    c->loss = k;
    if (resolve_pos_weight(c)) return EXIT_USAGE;
    if (strcmp(c->val[OPT_MONITOR], "auto") == 0) c->monitor = c->loss ? 3 : 0;
    else if ((k = pick(c->val[OPT_MONITOR], monitors, 4)) < 0)
        return bad(c, OPT_MONITOR, "expected auto, val_loss, val_acc, val_f1 or val_auc");
    else c->monitor = k;
    if (c->monitor == 3 && !c->loss) return bad(c, OPT_MONITOR, "val_auc (mean per-label AUROC) needs --loss bce");
    INT_OPT(FOLDS, folds, 0, 100);
    if (c->folds == 1) return bad(c, OPT_FOLDS, "k-fold needs K >= 2");
    c->threshold_class = opt_str(c, OPT_THRESHOLD_CLASS);
    if (c->loss && c->threshold_class)
        return bad(c, OPT_THRESHOLD_CLASS, "a softmax class threshold; --loss bce thresholds every label at 0.5");
    {
        const char *r = c->val[OPT_THRESHOLD_RULE];
        float v;
        if (strncmp(r, "fbeta:", 6) == 0 && arg_float(r + 6, 0.0, 1e6, &v) == 0) c->threshold_precision = 0;
        else if (strncmp(r, "precision:", 10) == 0 && arg_float(r + 10, 0.0, 1.0, &v) == 0) c->threshold_precision = 1;
        else return bad(c, OPT_THRESHOLD_RULE, "expected fbeta:BETA or precision:TARGET");
        c->threshold_value = v;
    }
    {
        const char *s = c->val[OPT_SEED];
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (s[0] == '-' || errno || end == s || *end) return bad(c, OPT_SEED, "expected a non-negative integer");
        c->seed = (uint64_t)v;
    }
    if ((k = pick(c->val[OPT_BACKEND], backends, 4)) < 0) return bad(c, OPT_BACKEND, "expected auto, ref, onednn or cuda");
    c->backend = (nc_backend_kind)k;
    static const char *const precisions[] = {"fp32", "bf16", "bf16-math"};
    if ((k = pick(c->val[OPT_PRECISION], precisions, 3)) < 0) return bad(c, OPT_PRECISION, "expected fp32, bf16 or bf16-math");
    c->precision = (nc_precision)k;
    static const char *const algorithms[] = {"auto", "direct", "winograd"};
    if ((k = pick(c->val[OPT_CONV_ALGORITHM], algorithms, 3)) < 0)
        return bad(c, OPT_CONV_ALGORITHM, "expected auto, direct or winograd");
    c->conv_algorithm = (nc_conv_algorithm)k;
    INT_OPT(THREADS, threads, 0, 4096);
    INT_OPT(WORKERS, workers, 0, 256);
    c->force = strcmp(c->val[OPT_FORCE], "1") == 0;
    INT_OPT(LOG_EVERY, log_every, 1, 100000000);
    c->quiet = strcmp(c->val[OPT_QUIET], "1") == 0;
    c->distributed = strcmp(c->val[OPT_DISTRIBUTED], "1") == 0;
    FLOAT_OPT(DIST_TIMEOUT, dist_timeout, 1.0, 1e9);
    c->sync_bn = strcmp(c->val[OPT_SYNC_BN], "1") == 0;
    c->rank = 0;
    c->ranks = 1;
    return 0;
}

/* ------------------------------------------------------------ config.json */

/* A config.json larger than this is not one nc-train wrote. */
#define CONFIG_MAX_BYTES ((size_t)1 << 20)

/* {"neurc": version, then each persisted option: its string value}. */
static cJSON *config_json(const cfg *c) {
    cJSON *root = cJSON_CreateObject();
    if (!root || !cJSON_AddStringToObject(root, "neurc", nc_version_string())) goto fail;
    for (int i = 0; i < OPT_COUNT; i++)
        if (option_defs[i].persist && !cJSON_AddStringToObject(root, option_defs[i].name, c->val[i])) goto fail;
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

/* Writes text and a newline to "<path>.tmp", then renames that over path. */
static int write_replacing(const char *path, const char *text, char *err, size_t errsize) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errsize, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "%s\n", text);
    int bad_write = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    if (fclose(f) != 0 || bad_write || rename(tmp, path) != 0) {
        snprintf(err, errsize, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

int config_write(const cfg *c, const char *path, char *err, size_t errsize) {
    cJSON *root = config_json(c);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errsize, "cannot write %s: out of memory", path);
        return -1;
    }
    int rc = write_replacing(path, text, err, errsize);
    cJSON_free(text);
    return rc;
}

/* The whole of path as a new string: 0, -1 when it cannot be opened, -2 when it is
 * over CONFIG_MAX_BYTES or memory runs out; err says why. */
static int read_text(const char *path, char **text, char *err, size_t errsize) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsize, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    size_t len = buf ? fread(buf, 1, CONFIG_MAX_BYTES + 1, f) : 0;
    int read_failed = ferror(f);
    fclose(f);
    if (!buf || read_failed || len > CONFIG_MAX_BYTES) {
        if (!buf) snprintf(err, errsize, "out of memory reading %s", path);
        else snprintf(err, errsize, "%s is not a config.json written by " PROG, path);
        free(buf);
        return -2;
    }
    buf[len] = '\0';
    *text = buf;
    return 0;
}

/* Copies the members of obj, which must all be strings, into new arrays; -1 when
 * one is not a string or memory runs out. */
static int string_members(const cJSON *obj, char ***keys, char ***vals, int *count) {
    int n = cJSON_GetArraySize(obj), i = 0;
    char **k = calloc((size_t)n + 1, sizeof *k), **v = calloc((size_t)n + 1, sizeof *v);
    const cJSON *item;
    if (!k || !v) goto fail;
    cJSON_ArrayForEach(item, obj) {
        if (!cJSON_IsString(item) || !(k[i] = strdup(item->string)) || !(v[i] = strdup(item->valuestring)))
            goto fail;
        i++;
    }
    *keys = k;
    *vals = v;
    *count = i;
    return 0;
fail:
    config_free(k, v, i + 1);
    return -1;
}

int config_parse(const char *text, const char *path, char ***keys, char ***vals, int *count, char *err,
                 size_t errsize) {
    *keys = *vals = NULL;
    *count = 0;
    int rc = 0;
    cJSON *root = cJSON_Parse(text);
    if (!cJSON_IsObject(root) || string_members(root, keys, vals, count) != 0) {
        snprintf(err, errsize, "%s is not a config.json written by " PROG, path);
        rc = -2;
    }
    cJSON_Delete(root);
    return rc;
}

int config_read(const char *path, char ***keys, char ***vals, int *count, char *err, size_t errsize) {
    *keys = *vals = NULL;
    *count = 0;
    char *text = NULL;
    int rc = read_text(path, &text, err, errsize);
    if (rc != 0) return rc;
    rc = config_parse(text, path, keys, vals, count, err, errsize);
    free(text);
    return rc;
}

void cfg_fill(cfg *c, const char *const *cl, char **keys, char **vals, int nkeys) {
    for (int i = 0; i < OPT_COUNT; i++) {
        c->val[i] = option_defs[i].def;
        for (int k = 0; k < nkeys; k++)
            if (option_defs[i].persist && strcmp(keys[k], option_defs[i].name) == 0) c->val[i] = vals[k];
        if (cl[i]) c->val[i] = cl[i];
    }
}

void config_free(char **keys, char **vals, int count) {
    for (int i = 0; keys && vals && i < count; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    free(keys);
    free(vals);
}
