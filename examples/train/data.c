/* data.c — the data every nc-train run shares: the datasets (class folder, CSV
 * manifest or IDX folder, chosen from --data), the stratified train/val/test split
 * (made once by `train`, saved as split.csv and read back by the other modes so they
 * see the identical split), the normalisation and the transforms. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "train.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STATS_MAX 5000 /* normalisation statistics from at most this many training images */

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* DIR/<prefix>-images-idx3-ubyte[.gz] and its labels; 1 when both exist. */
static int idx_pair(const char *dir, const char *prefix, char *images, char *labels, size_t size) {
    static const char *const ext[2] = {".gz", ""};
    for (int e = 0; e < 2; e++) {
        snprintf(images, size, "%s/%s-images-idx3-ubyte%s", dir, prefix, ext[e]);
        snprintf(labels, size, "%s/%s-labels-idx1-ubyte%s", dir, prefix, ext[e]);
        if (file_exists(images) && file_exists(labels)) return 1;
    }
    return 0;
}

/* Opens PATH as a dataset: *.csv = manifest, a folder with IDX files = IDX (the
 * `prefix` pair: "train" for --data, "t10k" first for a separate set), else a class
 * folder. *is_idx tells which. */
static int open_path(const cfg *c, nc_context *ctx, const char *path, int separate, nc_dataset **out, int *is_idx) {
    char images[4200], labels[4200], what[4400];
    nc_status st;
    *is_idx = 0;
    if (!file_exists(path)) return fail_msg("cannot read %s: %s", path, strerror(errno));
    if (ends_with(path, ".csv") && !is_dir(path)) {
        nc_dataset_options o;
        nc_dataset_options_init(&o);
        if (c->val[OPT_IMAGE_COLUMNS][0]) o.image_columns = c->val[OPT_IMAGE_COLUMNS];
        if (c->val[OPT_LABEL_COLUMNS][0]) o.label_columns = c->val[OPT_LABEL_COLUMNS];
        if (c->val[OPT_OPTIONAL_COLUMN][0]) o.optional_column = c->val[OPT_OPTIONAL_COLUMN];
        st = nc_dataset_open_csv(ctx, path, &o, out);
        snprintf(what, sizeof what, "opening manifest %s", path);
    } else if (!is_dir(path)) {
        return fail_msg("%s is neither a folder nor a .csv manifest", path);
    } else if (idx_pair(path, separate ? "t10k" : "train", images, labels, sizeof images) ||
               (separate && idx_pair(path, "train", images, labels, sizeof images))) {
        *is_idx = 1;
        st = nc_dataset_open_idx(ctx, images, labels, out);
        snprintf(what, sizeof what, "opening IDX files in %s", path);
    } else {
        st = nc_dataset_open_folder(ctx, path, NULL, out);
        snprintf(what, sizeof what, "opening image folder %s", path);
    }
    return st == NC_OK ? 0 : fail_lib(ctx, what, st);
}

/* --loss bce: every label column of ds holds only 0 and 1 (the CSV loader makes an
 * all-integer column's classes "0".."max"; any other text makes it a column of names). */
static int check_binary_labels(const data *d, nc_dataset *ds, const char *path) {
    int32_t lab[256];
    for (int h = 0; h < d->label_width; h++) {
        const int K = nc_dataset_num_classes(ds, h);
        for (int k = 0; k < K; k++) {
            const char *name = nc_dataset_class_name(ds, h, k);
            if (name && (strcmp(name, "0") == 0 || strcmp(name, "1") == 0)) continue;
            const char *where = "?";
            for (int64_t i = 0; i < nc_dataset_size(ds); i++)
                if (nc_dataset_labels(ds, i, lab) == NC_OK && lab[h] == k) {
                    where = nc_dataset_path(ds, i);
                    break;
                }
            return fail_msg("%s: --loss bce needs label columns of 0 and 1, but column '%s' holds '%s' (the row of "
                            "%s)", path, d->class_names[h], name ? name : "?", where ? where : "?");
        }
    }
    return 0;
}

/* --loss bce: the label columns (--label-columns, default "label") name the outputs of
 * one sigmoid head; every column must be 0/1. */
static int multilabel_setup(const cfg *c, data *d) {
    static const char *names[256];
    const char *cols = c->val[OPT_LABEL_COLUMNS][0] ? c->val[OPT_LABEL_COLUMNS] : "label";
    if (!(d->label_buf = strdup(cols))) return fail_msg("out of memory");
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(d->label_buf, ",", &save); tok && n < 256;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        for (char *e = tok + strlen(tok); e > tok && e[-1] == ' ';) *--e = '\0';
        names[n++] = tok;
    }
    if (n != d->label_width) return fail_msg("--label-columns names %d columns, %s has %d", n, c->data, d->label_width);
    if (c->heads > 1)
        return fail_msg("--heads %d: --loss bce trains one sigmoid head over the label columns", c->heads);
    d->heads = 1;
    d->classes = n;
    d->class_names = names;
    d->multilabel = 1;
    return check_binary_labels(d, d->ds, c->data);
}

/* A separate val/test set must have the main set's heads, channels and classes. */
static int check_compatible(const data *d, nc_dataset *other, const char *flag) {
    if (nc_dataset_num_heads(other) != d->label_width || nc_dataset_channels(other) != d->channels)
        return fail_msg("%s has %d label columns and %d channels, --data has %d and %d", flag,
                        nc_dataset_num_heads(other), nc_dataset_channels(other), d->label_width, d->channels);
    if (d->multilabel) return check_binary_labels(d, other, flag);
    for (int h = 0; h < d->heads; h++)
        if (nc_dataset_num_classes(other, h) > d->classes)
            return fail_msg("%s has %d classes in head %d, more than the %d of --data", flag,
                            nc_dataset_num_classes(other, h), h, d->classes);
    return 0;
}

static int write_split(const char *dir, const data *d) {
    char tmp[4300], path[4300];
    if (path_join(tmp, sizeof tmp, dir, "split.csv.tmp") || path_join(path, sizeof path, dir, "split.csv"))
        return EXIT_FAIL;
    FILE *f = fopen(tmp, "w");
    if (!f) return fail_msg("cannot write %s: %s", tmp, strerror(errno));
    static const char *const names[3] = {"train", "val", "test"};
    fprintf(f, "index,split,label,path\n");
    int64_t n = nc_dataset_size(d->ds);
    for (int64_t i = 0; i < n; i++) {
        const char *p = nc_dataset_path(d->ds, i);
        fprintf(f, "%lld,%s,%d,\"", (long long)i, names[d->assign[i]], (int)d->labels0[i]);
        for (; p && *p; p++) {
            if (*p == '"') fputc('"', f);
            fputc(*p, f);
        }
        fprintf(f, "\"\n");
    }
    return close_atomic(f, tmp, path);
}

int data_commit(const cfg *c, data *d) {
    if (d->committed || (c->mode != MODE_TRAIN && c->mode != MODE_RESUME)) return 0;
    if (c->rank != 0) { /* --distributed: rank 0 writes the run's files */
        d->committed = 1;
        return 0;
    }
    char path[4200], err[4400];
    if (make_dirs(c->out) != 0) return fail_msg("cannot create %s: %s", c->out, strerror(errno));
    if (d->split_new && write_split(c->out, d)) return EXIT_FAIL;
    if (path_join(path, sizeof path, c->out, "config.json")) return EXIT_FAIL;
    if (config_write(c, path, err, sizeof err) != 0) return fail_msg("%s", err);
    d->committed = 1;
    return 0;
}

/* Reads split.csv back: one row per sample in order, index and label must agree. */
static int read_split(const char *path, data *d) {
    FILE *f = fopen(path, "r");
    if (!f)
        return fail_msg("cannot open %s: %s (run `" PROG " train` into this directory first)", path, strerror(errno));
    char line[8192];
    int64_t n = nc_dataset_size(d->ds), row = 0;
    int rc = 0;
    if (!fgets(line, sizeof line, f) || strncmp(line, "index,split,label", 17) != 0) {
        rc = fail_msg("%s:1: not a split file written by " PROG, path);
        goto out;
    }
    while (fgets(line, sizeof line, f)) {
        long long idx;
        char split[8];
        int label;
        if (sscanf(line, "%lld,%7[a-z],%d,", &idx, split, &label) != 3 || idx != row || row >= n) {
            rc = fail_msg("%s:%lld: malformed row, or more rows than the %lld samples of the data", path,
                          (long long)row + 2, (long long)n);
            goto out;
        }
        int a = strcmp(split, "train") == 0 ? 0 : strcmp(split, "val") == 0 ? 1 : strcmp(split, "test") == 0 ? 2 : -1;
        if (a < 0 || label != d->labels0[row]) {
            rc = fail_msg("%s:%lld: %s; the data changed since the split was made", path, (long long)row + 2,
                          a < 0 ? "unknown split name" : "label differs from the data's");
            goto out;
        }
        d->assign[row++] = (int8_t)a;
    }
    if (row != n) rc = fail_msg("%s has %lld rows but the data has %lld samples", path, (long long)row, (long long)n);
out:
    fclose(f);
    return rc;
}

static int64_t *collect(const int8_t *assign, int64_t n, int which, int64_t *count) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += (which < 0 ? assign[i] != 2 : assign[i] == which);
    int64_t *out = malloc((size_t)(k ? k : 1) * sizeof *out);
    if (!out) return NULL;
    k = 0;
    for (int64_t i = 0; i < n; i++)
        if (which < 0 ? assign[i] != 2 : assign[i] == which) out[k++] = i;
    *count = k;
    return out;
}

int data_open(const cfg *c, nc_context *ctx, data *d) {
    int is_idx = 0, sep_idx = 0;
    nc_status st;
    memset(d, 0, sizeof *d);
    if (!c->data) {
        fprintf(stderr, PROG ": --data is required (try --help)\n");
        return EXIT_USAGE;
    }
    for (int k = 0; c->loss && k < 3; k++) {
        const char *p = k == 0 ? c->data : k == 1 ? c->val_data : c->test_data;
        if (p && (!ends_with(p, ".csv") || is_dir(p)))
            return fail_msg("--loss bce reads 0/1 label columns of a CSV manifest; %s is not a .csv file", p);
    }
    if (open_path(c, ctx, c->data, 0, &d->ds, &is_idx)) return EXIT_FAIL;
    d->heads = d->label_width = nc_dataset_num_heads(d->ds);
    d->channels = nc_dataset_channels(d->ds);
    if (d->label_width > 256) return fail_msg("%s has %d label columns; nc-train supports at most 256", c->data,
                                              d->label_width);
    if (c->loss && multilabel_setup(c, d)) return EXIT_FAIL;
    for (int h = 0; !d->multilabel && h < d->heads; h++)
        if (nc_dataset_num_classes(d->ds, h) > d->classes) d->classes = nc_dataset_num_classes(d->ds, h);
    if (d->classes < (d->multilabel ? 1 : 2))
        return fail_msg("%s has %d class; a classifier needs at least 2", c->data, d->classes);
    if (c->in_channels && c->in_channels != d->channels)
        return fail_msg("--in-channels %d, but the images of %s have %d channels", c->in_channels, c->data,
                        d->channels);
    if (!d->multilabel && c->heads && c->heads != d->heads)
        return fail_msg("--heads %d, but %s has %d label column(s)", c->heads, c->data, d->heads);

    const char *test_path = c->test_data;
    if (c->val_data && open_path(c, ctx, c->val_data, 1, &d->val_ds, &sep_idx)) return EXIT_FAIL;
    if (d->val_ds && check_compatible(d, d->val_ds, "--val-data")) return EXIT_FAIL;
    if (!test_path && is_idx) {
        char images[4200], labels[4200];
        if (idx_pair(c->data, "t10k", images, labels, sizeof images)) test_path = c->data;
    }
    if (test_path && open_path(c, ctx, test_path, 1, &d->test_ds, &sep_idx)) return EXIT_FAIL;
    if (d->test_ds && check_compatible(d, d->test_ds, "--test-data")) return EXIT_FAIL;

    /* class names of head 0: the dataset's, Fashion-MNIST's for its IDX files (bce:
     * the label columns') */
    static const char *names[256];
    if (d->classes > 256) return fail_msg("%d classes: nc-train supports at most 256", d->classes);
    int fashion = is_idx && d->classes == 10 && strstr(c->data, "fashion") != NULL;
    for (int k = 0; !d->multilabel && k < d->classes; k++) {
        const char *s = fashion ? fashion_names[k] : nc_dataset_class_name(d->ds, 0, k);
        names[k] = s ? s : "?";
    }
    if (!d->multilabel) d->class_names = names;

    nc_image *first = NULL;
    if ((st = nc_dataset_get(d->ds, 0, &first)) != NC_OK) return fail_lib(ctx, "reading the first image", st);
    d->native_h = nc_image_height(first);
    d->native_w = nc_image_width(first);
    nc_image_destroy(first);

    int64_t n = nc_dataset_size(d->ds);
    d->labels0 = malloc((size_t)n * sizeof *d->labels0);
    d->assign = malloc((size_t)n);
    int32_t lab[256];
    if (!d->labels0 || !d->assign) return fail_msg("out of memory for %lld labels", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if ((st = nc_dataset_labels(d->ds, i, lab)) != NC_OK) return fail_lib(ctx, "reading labels", st);
        d->labels0[i] = lab[0];
    }
    char split_path[4200];
    if (path_join(split_path, sizeof split_path, c->out, "split.csv")) return EXIT_FAIL;
    if (c->mode == MODE_TRAIN) {
        float val = d->val_ds ? 0.0f : c->val_split, test = d->test_ds ? 0.0f : c->test_split;
        if (val + test > 0.95f) {
            fprintf(stderr, PROG ": --val-split %g and --test-split %g leave less than 5%% for training (try --help)\n",
                    (double)val, (double)test);
            return EXIT_USAGE;
        }
        if ((st = nc_split_stratified(ctx, d->labels0, n, 1.0f - val - test, val, test, c->seed, d->assign)) != NC_OK)
            return fail_lib(ctx, "splitting the data", st);
        d->split_new = 1; /* split.csv is written by data_commit, when the run has something to save */
    } else if (read_split(split_path, d)) {
        return EXIT_FAIL;
    }
    d->train_idx = collect(d->assign, n, 0, &d->n_train);
    d->val_idx = collect(d->assign, n, 1, &d->n_val);
    d->test_idx = collect(d->assign, n, 2, &d->n_test);
    d->trainval_idx = collect(d->assign, n, -1, &d->n_trainval);
    if (!d->train_idx || !d->val_idx || !d->test_idx || !d->trainval_idx) return fail_msg("out of memory");
    if (d->val_ds) d->n_val = nc_dataset_size(d->val_ds);
    if (d->test_ds) d->n_test = nc_dataset_size(d->test_ds);
    if (d->n_train < 1) return fail_msg("no training images left after the split (see --val-split, --test-split)");

    /* image size */
    d->size = c->img_size ? c->img_size : (d->native_h < d->native_w ? d->native_h : d->native_w);

    /* normalisation: given, or measured on (at most STATS_MAX evenly spaced) training images */
    if (c->has_norm) {
        if (c->norm_count != d->channels && c->norm_count != 1)
            return fail_msg("--mean/--std give %d values, the images have %d channels", c->norm_count, d->channels);
        for (int k = 0; k < d->channels; k++) {
            d->mean[k] = c->mean[c->norm_count == 1 ? 0 : k];
            d->std[k] = c->std[c->norm_count == 1 ? 0 : k];
        }
    } else {
        int64_t m = d->n_train < STATS_MAX ? d->n_train : STATS_MAX;
        int64_t *pick = malloc((size_t)m * sizeof *pick);
        if (!pick) return fail_msg("out of memory");
        for (int64_t i = 0; i < m; i++) pick[i] = d->train_idx[i * d->n_train / m];
        st = nc_dataset_channel_stats(d->ds, pick, m, NULL, d->mean, d->std);
        free(pick);
        if (st != NC_OK) return fail_lib(ctx, "measuring the channel statistics", st);
        for (int k = 0; k < d->channels; k++)
            if (!(d->std[k] > 1e-6f)) d->std[k] = 1.0f; /* a constant channel (e.g. an all-zero mask) */
    }
    return 0;
}

void data_close(data *d) {
    nc_dataset_destroy(d->ds);
    nc_dataset_destroy(d->val_ds);
    nc_dataset_destroy(d->test_ds);
    free(d->assign);
    free(d->labels0);
    free(d->train_idx);
    free(d->val_idx);
    free(d->test_idx);
    free(d->trainval_idx);
    free(d->label_buf);
    memset(d, 0, sizeof *d);
}

/* Sizes: from 64 px the seeds' presets (train: RandomResizedCrop + flips + rotation +
 * jitter + affine + erasing; eval: resize to size*256/224, center crop). Below 64 px:
 * resize the shorter side to size and center crop (skipped when every image already
 * has that size), light augmentation = horizontal flip + small affine. */
int data_transforms(const cfg *c, nc_context *ctx, const data *d, nc_transform **train, nc_transform **eval) {
    nc_status st = NC_OK;
    const int S = d->size, big = S >= 64;
    const int augment = c->augment >= 0 ? c->augment : (big ? 2 : 1);
    const int same = d->native_h == S && d->native_w == S;
    *train = *eval = NULL;
    if (big) {
        st = nc_transform_preset_eval(ctx, S * 256 / 224, S, d->channels, d->mean, d->std, eval);
    } else if ((st = nc_transform_create(ctx, eval)) == NC_OK && !same) {
        if ((st = nc_transform_add_resize(*eval, S, 0)) == NC_OK) st = nc_transform_add_center_crop(*eval, S, S);
    }
    if (st == NC_OK && !big) st = nc_transform_add_normalize(*eval, d->mean, d->std, d->channels);
    if (st != NC_OK) return fail_lib(ctx, "building the eval transform", st);

    if (augment == 2) {
        st = nc_transform_preset_train(ctx, S, d->channels, d->mean, d->std, train);
    } else {
        if (big) st = nc_transform_create(ctx, train);
        if (st == NC_OK && big) st = nc_transform_add_resize(*train, S * 256 / 224, 0);
        if (st == NC_OK && big) st = nc_transform_add_center_crop(*train, S, S);
        if (st == NC_OK && !big) st = nc_transform_create(ctx, train);
        if (st == NC_OK && !big && !same) st = nc_transform_add_resize(*train, S, 0);
        if (st == NC_OK && !big && !same) st = nc_transform_add_center_crop(*train, S, S);
        if (st == NC_OK && augment == 1) st = nc_transform_add_hflip(*train, 0.5f);
        if (st == NC_OK && augment == 1) st = nc_transform_add_affine(*train, 0.1f, 0.1f, 0.9f, 1.1f);
        if (st == NC_OK) st = nc_transform_add_normalize(*train, d->mean, d->std, d->channels);
    }
    if (st != NC_OK) return fail_lib(ctx, "building the training transform", st);
    return 0;
}

int data_loader(const cfg *c, nc_context *ctx, nc_dataset *ds, const nc_transform *t, const int64_t *idx,
                int64_t n, int train, nc_loader **out) {
    nc_loader_options lo;
    nc_loader_options_init(&lo);
    lo.batch_size = c->batch_size;
    lo.shuffle = train;
    lo.drop_last = train && n > c->batch_size; /* equal steps; batch norm never sees a batch of 1 */
    if (train && c->ranks > 1) { /* --distributed: this rank's shard, its part of each global batch */
        lo.batch_size = c->batch_size / c->ranks;
        lo.drop_last = (n + c->ranks - 1) / c->ranks > lo.batch_size;
        lo.shard_rank = c->rank;
        lo.shard_count = c->ranks;
    }
    lo.workers = c->workers;
    lo.prefetch = c->workers > 0 ? 2 : 0;
    lo.seed = c->seed;
    lo.indices = idx;
    lo.num_indices = idx ? n : 0;
    nc_status st = nc_loader_create(ds, t, &lo, out);
    return st == NC_OK ? 0 : fail_lib(ctx, "creating a loader", st);
}
