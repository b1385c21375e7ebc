/* csv.c — datasets from a CSV manifest: an RFC 4180 parser (quotes, "" escapes,
 * CRLF or LF, optional final newline, a UTF-8 BOM tolerated), image columns stacked
 * as channels, an optional image column with a presence channel, and one label
 * column per head. Every file named is checked at open so that a bad row is
 * reported as "manifest:line: ..." before training starts. */
#include "data/dataset.h"
#include "data/data.h"
#include "core/context.h"
#include "core/progress.h"
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAX ((size_t)1 << 30) /* 1 GiB of manifest text */
#define MAX_INT_LABEL 1000000          /* integer labels above this are names */

/* ------------------------------------------------------------ parser */

typedef struct csv {
    nc_context *ctx;
    const char *name;      /* the manifest path, for messages */
    const char *p, *end;   /* unread text */
    long line;             /* physical line of p (1-based) */
    long rec_line;         /* line where the last record started */
    char *buf;             /* the record's fields, each NUL-terminated */
    size_t len, cap;
    size_t *off;           /* (nf) start of each field in buf */
    size_t nf, off_cap;
} csv;

static int push(csv *c, char ch) {
    if (nc__grow(c->ctx, (void **)&c->buf, 1, &c->cap, c->len + 1) != 0) return -1;
    c->buf[c->len++] = ch;
    return 0;
}

static int start_field(csv *c) {
    if (nc__grow(c->ctx, (void **)&c->off, sizeof *c->off, &c->off_cap, c->nf + 1) != 0) return -1;
    c->off[c->nf++] = c->len;
    return 0;
}

static const char *field(const csv *c, size_t k) { return c->buf + c->off[k]; }

/* Consumes a line break at p ("\r\n", "\n" or "\r"); 1 if there was one. */
static int eat_newline(csv *c) {
    if (c->p < c->end && *c->p == '\r') {
        c->p++;
        if (c->p < c->end && *c->p == '\n') c->p++;
        c->line++;
        return 1;
    }
    if (c->p < c->end && *c->p == '\n') {
        c->p++;
        c->line++;
        return 1;
    }
    return 0;
}

/* Reads the next record into c->buf / c->off; *got = 0 at the end of the text.
 * Empty lines between records are skipped. */
static nc_status next_record(csv *c, int *got) {
    *got = 0;
    while (eat_newline(c)) {
    }
    if (c->p >= c->end) return NC_OK;
    c->rec_line = c->line;
    c->len = 0;
    c->nf = 0;
    if (start_field(c)) goto oom;
    for (;;) {
        if (c->p >= c->end || eat_newline(c)) break;
        char ch = *c->p;
        if (ch == '\0')
            return nc__error(c->ctx, NC_ERR_FORMAT, "%s:%ld: NUL byte in the text", c->name, c->line);
        if (ch == ',') {
            c->p++;
            if (push(c, 0) || start_field(c)) goto oom;
        } else if (ch == '"' && c->len == c->off[c->nf - 1]) {
            /* a quoted field: commas, line breaks and "" (a quote) inside */
            long open_line = c->line;
            c->p++;
            for (;;) {
                if (c->p >= c->end)
                    return nc__error(c->ctx, NC_ERR_FORMAT,
                                     "%s:%ld: quoted field never closed (no matching '\"')", c->name,
                                     open_line);
                ch = *c->p;
                if (ch == '"') {
                    if (c->p + 1 < c->end && c->p[1] == '"') {
                        if (push(c, '"')) goto oom;
                        c->p += 2;
                        continue;
                    }
                    c->p++;
                    break;
                }
                if (ch == '\0')
                    return nc__error(c->ctx, NC_ERR_FORMAT, "%s:%ld: NUL byte in the text", c->name,
                                     c->line);
                if (ch == '\n' || (ch == '\r' && !(c->p + 1 < c->end && c->p[1] == '\n'))) c->line++;
                if (push(c, ch)) goto oom;
                c->p++;
            }
            if (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r')
                return nc__error(c->ctx, NC_ERR_FORMAT,
                                 "%s:%ld: '%c' after a closing quote (expected ',' or the end of the line)",
                                 c->name, c->line, *c->p);
        } else {
            if (push(c, ch)) goto oom; /* a quote inside an unquoted field is kept as is */
            c->p++;
        }
    }
    if (push(c, 0)) goto oom;
    *got = 1;
    return NC_OK;
oom:
    return nc__error(c->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", c->name);
}

/* ------------------------------------------------------------ columns */

typedef struct cols {
    int n;
    int *index;          /* (n) header field of each name */
    const char **name;   /* (n) names, in the pool */
} cols;

/* The header's names joined by ", " for messages. */
static void header_text(size_t nf, const char **hdr, char *out, size_t size) {
    size_t used = 0;
    out[0] = 0;
    for (size_t k = 0; k < nf && used + 1 < size; k++)
        used += (size_t)snprintf(out + used, size - used, k ? ", %s" : "%s", hdr[k]);
}

/* Splits a comma-separated option (spaces around names ignored) and finds each name
 * in the header hdr[nf]. */
static nc_status find_columns(nc_dataset *ds, const char *name, const char *option, const char *what,
                              const char **hdr, size_t nf, cols *out) {
    nc_context *ctx = ds->ctx;
    out->n = 0;
    size_t cap = 0, cap2 = 0;
    const char *s = option;
    for (;;) {
        const char *e = strchr(s, ',');
        if (!e) e = s + strlen(s);
        const char *a = s, *b = e;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        if (a == b)
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: empty column name in %s \"%s\"", name,
                             what, option);
        char *col = nc__ds_strndup(ds, a, (size_t)(b - a));
        if (!col) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
        int found = -1;
        for (size_t k = 0; k < nf; k++) {
            if (strcmp(hdr[k], col) != 0) continue;
            if (found >= 0)
                return nc__error(ctx, NC_ERR_FORMAT, "%s:1: column '%s' appears twice in the header",
                                 name, col);
            found = (int)k;
        }
        if (found < 0) {
            char list[512];
            header_text(nf, hdr, list, sizeof list);
            return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: no column '%s' (columns: %s)", name,
                             col, list);
        }
        if (nc__grow(ctx, (void **)&out->index, sizeof *out->index, &cap, (size_t)out->n + 1) ||
            nc__grow(ctx, (void **)&out->name, sizeof *out->name, &cap2, (size_t)out->n + 1))
            return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
        out->index[out->n] = found;
        out->name[out->n] = col;
        out->n++;
        if (!*e) break;
        s = e + 1;
    }
    return NC_OK;
}

/* ------------------------------------------------------------ labels */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Value of a label of digits only, up to MAX_INT_LABEL; -1 otherwise. */
static long int_label(const char *s) {
    long v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (*s - '0');
        if (v > MAX_INT_LABEL) return -1;
    }
    return v;
}

/* Maps the label strings str[i * heads + h] of head h to classes (see the header). */
static nc_status map_labels(nc_dataset *ds, const char *const *str, int h) {
    nc_context *ctx = ds->ctx;
    const int64_t n = ds->n;
    const size_t H = (size_t)ds->heads;
    long max = -1;
    int all_int = 1;
    for (int64_t i = 0; i < n && all_int; i++) {
        long v = int_label(str[(size_t)i * H + (size_t)h]);
        if (v < 0) all_int = 0;
        if (v > max) max = v;
    }
    if (all_int) {
        for (int64_t i = 0; i < n; i++)
            ds->labels[(size_t)i * H + (size_t)h] = (int32_t)int_label(str[(size_t)i * H + (size_t)h]);
        return nc__ds_int_classes(ds, h, (int)max + 1);
    }
    const char **sorted = nc__alloc(ctx, (size_t)n * sizeof *sorted);
    if (!sorted) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "dataset labels: out of memory");
    for (int64_t i = 0; i < n; i++) sorted[i] = str[(size_t)i * H + (size_t)h];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    size_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (k == 0 || strcmp(sorted[k - 1], sorted[i]) != 0) sorted[k++] = sorted[i];
    if (k > INT32_MAX) {
        nc__free(ctx, sorted);
        return nc__error(ctx, NC_ERR_LIMIT, "dataset labels: too many classes");
    }
    ds->head[h].num_classes = (int)k;
    ds->head[h].names = sorted; /* the distinct names (in the pool), sorted */
    for (int64_t i = 0; i < n; i++) {
        const char *s = str[(size_t)i * H + (size_t)h];
        const char **hit = bsearch(&s, sorted, k, sizeof *sorted, cmp_str);
        ds->labels[(size_t)i * H + (size_t)h] = (int32_t)(hit - sorted);
    }
    return NC_OK;
}

/* ------------------------------------------------------------ loading */

/* `value` resolved against base ("" = as is) into the pool. */
static const char *resolve(nc_dataset *ds, const char *base, const char *value) {
    size_t b = strlen(base), v = strlen(value);
    if (value[0] == '/' || b == 0) return nc__ds_strndup(ds, value, v);
    while (b > 1 && base[b - 1] == '/') b--;
    char *tmp = nc__alloc(ds->ctx, b + v + 2);
    if (!tmp) return NULL;
    memcpy(tmp, base, b);
    size_t k = b;
    if (!(b == 1 && base[0] == '/')) tmp[k++] = '/';
    memcpy(tmp + k, value, v);
    const char *p = nc__ds_strndup(ds, tmp, k + v);
    nc__free(ds->ctx, tmp);
    return p;
}

/* Checks that `path` (written `value` on `line`) is an existing file. *present = 0
 * for an optional file that does not exist. */
static nc_status check_file(nc_dataset *ds, const csv *c, const char *value, const char *path,
                            int optional, int *present) {
    struct stat sb;
    *present = 1;
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) {
            *present = 0;
            if (optional) return NC_OK;
            if (strcmp(value, path) != 0)
                return nc__error(ds->ctx, NC_ERR_NOT_FOUND, "%s:%ld: missing file '%s' (looked for '%s')",
                                 c->name, c->rec_line, value, path);
            return nc__error(ds->ctx, NC_ERR_NOT_FOUND, "%s:%ld: missing file '%s'", c->name,
                             c->rec_line, value);
        }
        return nc__error(ds->ctx, NC_ERR_IO, "%s:%ld: '%s': %s", c->name, c->rec_line, path,
                         strerror(e));
    }
    if (S_ISDIR(sb.st_mode))
        return nc__error(ds->ctx, NC_ERR_IO, "%s:%ld: '%s' is a directory, not an image file",
                         c->name, c->rec_line, path);
    return NC_OK;
}

nc_status nc__csv_load(nc_dataset *ds, const char *manifest, const nc_dataset_options *opt) {
    nc_context *ctx = ds->ctx;
    csv c = {.ctx = ctx, .name = manifest, .line = 1};
    char *text = NULL, *base = NULL;
    const char **hdr = NULL, **lab = NULL;
    cols img = {0}, opt_col = {0}, labc = {0};
    size_t text_size = 0, nhdr = 0, path_cap = 0, lab_cap = 0;
    int64_t n = 0, first_opt = -1;
    int got;
    nc_status st;

    NC_CHECK(nc__read_file(ctx, manifest, MANIFEST_MAX, NC_ERR_LIMIT, "manifest", &text, &text_size));
    c.p = text;
    c.end = text + text_size;
    if (text_size >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) c.p += 3; /* UTF-8 BOM */

    /* header row */
    NC_CHECK(next_record(&c, &got));
    if (!got) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s: empty manifest (a header row naming the columns is required)",
                       manifest);
        goto fail;
    }
    nhdr = c.nf;
    hdr = nc__alloc(ctx, nhdr * sizeof *hdr);
    NC_CHECK_ALLOC(ctx, hdr);
    for (size_t k = 0; k < nhdr; k++) {
        hdr[k] = nc__ds_strndup(ds, field(&c, k), strlen(field(&c, k)));
        NC_CHECK_ALLOC(ctx, hdr[k]);
    }
    const char *image_opt = opt->image_columns ? opt->image_columns : "image";
    const char *label_opt = opt->label_columns ? opt->label_columns : "label";
    NC_CHECK(find_columns(ds, manifest, image_opt, "image_columns", hdr, nhdr, &img));
    NC_CHECK(find_columns(ds, manifest, label_opt, "label_columns", hdr, nhdr, &labc));
    const int has_opt = opt->optional_column && opt->optional_column[0];
    if (has_opt) {
        NC_CHECK(find_columns(ds, manifest, opt->optional_column, "optional_column", hdr, nhdr, &opt_col));
        if (opt_col.n != 1) {
            st = nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "%s: optional_column names %d columns; one is allowed",
                           manifest, opt_col.n);
            goto fail;
        }
        for (int j = 0; j < img.n; j++)
            if (img.index[j] == opt_col.index[0]) {
                st = nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                               "%s: column '%s' is both an image column and the optional column", manifest,
                               img.name[j]);
                goto fail;
            }
    }
    const int nfiles = img.n + has_opt, heads = labc.n;
    NC_CHECK(nc__ds_alloc_files(ds, nfiles));
    ds->has_optional = has_opt;

    /* base directory of relative paths */
    if (opt->base_dir) {
        base = nc__strdup(ctx, opt->base_dir);
    } else {
        const char *slash = strrchr(manifest, '/');
        size_t len = slash ? (size_t)(slash - manifest) : 0;
        if (slash == manifest) len = 1; /* "/manifest.csv" */
        base = nc__alloc(ctx, len + 1);
        if (base) memcpy(base, manifest, len), base[len] = 0;
    }
    NC_CHECK_ALLOC(ctx, base);

    /* rows */
    nc_progress pr = nc__progress_begin(NC_PHASE_SCAN, -1, manifest);
    for (;;) {
        pr.done = n;
        if (n % 64 == 0) NC_CHECK(nc__progress(ctx, &pr, "nc_dataset_open_csv", "rows"));
        NC_CHECK(next_record(&c, &got));
        if (!got) break;
        if (c.nf != nhdr) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: %zu field%s, but the header has %zu", manifest,
                           c.rec_line, c.nf, c.nf == 1 ? "" : "s", nhdr);
            goto fail;
        }
        if (nc__grow(ctx, (void **)&ds->paths, sizeof *ds->paths, &path_cap, (size_t)(n + 1) * (size_t)nfiles) ||
            nc__grow(ctx, (void **)&lab, sizeof *lab, &lab_cap, (size_t)(n + 1) * (size_t)heads)) {
            st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", manifest);
            goto fail;
        }
        const char **row = ds->paths + (size_t)n * (size_t)nfiles;
        for (int j = 0; j < nfiles; j++) {
            int optional = j == img.n;
            const char *value = field(&c, (size_t)(optional ? opt_col.index[0] : img.index[j]));
            row[j] = NULL;
            if (!value[0]) {
                if (optional) continue;
                st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: empty path in column '%s'", manifest,
                               c.rec_line, img.name[j]);
                goto fail;
            }
            const char *path = resolve(ds, base, value);
            NC_CHECK_ALLOC(ctx, path);
            int present;
            NC_CHECK(check_file(ds, &c, value, path, optional, &present));
            if (present) row[j] = path;
            if (optional && present && first_opt < 0) first_opt = n;
        }
        for (int h = 0; h < heads; h++) {
            const char *value = field(&c, (size_t)labc.index[h]);
            if (!value[0]) {
                st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: empty label in column '%s'", manifest,
                               c.rec_line, labc.name[h]);
                goto fail;
            }
            lab[(size_t)n * (size_t)heads + (size_t)h] = nc__ds_strndup(ds, value, strlen(value));
            NC_CHECK_ALLOC(ctx, lab[(size_t)n * (size_t)heads + (size_t)h]);
        }
        n++;
    }
    if (n == 0) {
        st = nc__error(ctx, NC_ERR_NOT_FOUND, "%s: no samples (only a header row)", manifest);
        goto fail;
    }
    if (has_opt && first_opt < 0) {
        st = nc__error(ctx, NC_ERR_NOT_FOUND,
                       "%s: optional column '%s' names an existing file in no row, so its channel "
                       "count is unknown",
                       manifest, opt_col.name[0]);
        goto fail;
    }

    /* labels */
    NC_CHECK(nc__ds_alloc_labels(ds, n, heads));
    for (int h = 0; h < heads; h++) NC_CHECK(map_labels(ds, lab, h));

    /* channels: learnt from the first row (the optional file: the first row having it) */
    int total = 0;
    for (int j = 0; j < nfiles; j++) {
        int64_t r = j == img.n ? first_opt : 0;
        ds->ref_path[j] = ds->paths[(size_t)r * (size_t)nfiles + (size_t)j];
        NC_CHECK(nc__ds_probe_channels(ds, ds->ref_path[j], &ds->file_channels[j]));
        ds->file_offset[j] = total;
        total += ds->file_channels[j];
    }
    ds->channels = total + has_opt;
    st = NC_OK;
fail:
    nc__free(ctx, c.buf);
    nc__free(ctx, c.off);
    nc__free(ctx, text);
    nc__free(ctx, base);
    nc__free(ctx, (void *)hdr);
    nc__free(ctx, (void *)lab);
    nc__free(ctx, img.index);
    nc__free(ctx, (void *)img.name);
    nc__free(ctx, opt_col.index);
    nc__free(ctx, (void *)opt_col.name);
    nc__free(ctx, labc.index);
    nc__free(ctx, (void *)labc.name);
    return st; /* on failure the caller destroys ds */
}
