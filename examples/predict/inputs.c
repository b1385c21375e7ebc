/* inputs.c — nc-predict's inputs: the PNG files named on the command line, the *.png
 * files of folders (sorted; recursive on request) and the rows of CSV manifests
 * (RFC 4180, as docs/data.md describes for nc_dataset_open_csv: several image columns
 * stacked as channels, an optional column, paths relative to the manifest). A
 * manifest is read here rather than with nc_dataset_open_csv so that a missing file
 * fails only its row, and no label column is needed. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "predict.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_DEPTH 64 /* --recursive: deeper folders (or symbolic link loops) are an error */

/* ------------------------------------------------------------------ reports */

/* "nc-predict: PATH: reason" on stderr. */
void predict_report(const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": %s: ", path);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The library's message for a failed call about `path`, which most messages already
 * start with ("a.png: corrupt PNG file: ..."). */
void predict_report_lib(nc_context *ctx, const char *path, nc_status st) {
    const char *msg = nc_context_last_error(ctx);
    size_t n = strlen(path);
    if (!msg || !msg[0])
        predict_report(path, "%s", nc_status_str(st));
    else if (strncmp(msg, path, n) == 0 && msg[n] == ':')
        fprintf(stderr, PROG ": %s\n", msg);
    else
        predict_report(path, "%s", msg);
}

/* ------------------------------------------------------------------- inputs */

char *predict_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void input_free(input *in) {
    for (int i = 0; i < in->nfiles; i++) free(in->files[i]);
    free(in->files);
    free(in->optional);
}

/* Appends an input that takes ownership of files[nfiles] and optional; 0 or -1 (OOM,
 * and then everything passed is freed). */
static int list_add(input_list *l, char **files, int nfiles, int has_optional, char *optional) {
    input in = {files, nfiles, has_optional, optional};
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        input *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            input_free(&in);
            l->oom = 1;
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = in;
    return 0;
}

static int add_file(input_list *l, const char *path) {
    char **files = malloc(sizeof *files);
    char *p = predict_strdup(path);
    if (!files || !p) {
        free(files);
        free(p);
        l->oom = 1;
        return -1;
    }
    files[0] = p;
    return list_add(l, files, 1, 0, NULL);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

typedef struct str_vec {
    char **v;
    size_t n, cap;
} str_vec;

static int vec_push(str_vec *s, char *p) {
    if (!p) return -1;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(p);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return 0;
}

/* Collects the *.png files of `dir` (and of its subfolders with --recursive). Returns
 * 0, or -1 after reporting (unreadable folder, too deep) / on OOM (*oom set). */
static int scan_folder(const char *dir, int recursive, int depth, str_vec *out, int *oom) {
    if (depth > MAX_DEPTH) {
        predict_report(dir, "folders nested deeper than %d levels (a symbolic link loop?)", MAX_DEPTH);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        predict_report(dir, "cannot open folder: %s", strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = join_path(dir, e->d_name);
        if (!p) {
            *oom = 1;
            rc = -1;
            break;
        }
        struct stat sb;
        if (stat(p, &sb) != 0) { /* e.g. a dangling link: it names no image */
            if (ends_with(p, ".png")) {
                predict_report(p, "%s", strerror(errno));
                rc = -1;
            }
            free(p);
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            if (recursive && scan_folder(p, recursive, depth + 1, out, oom) != 0) rc = -1;
            free(p);
            if (*oom) break;
        } else if (ends_with(p, ".png")) {
            if (vec_push(out, p) != 0) {
                *oom = 1;
                rc = -1;
                break;
            }
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_folder(input_list *l, const char *dir, int recursive) {
    str_vec files = {0};
    int oom = 0;
    if (scan_folder(dir, recursive, 0, &files, &oom) != 0) l->failures++;
    if (oom) l->oom = 1;
    if (files.n > 1) qsort(files.v, files.n, sizeof *files.v, cmp_str);
    size_t i = 0;
    for (; i < files.n && !l->oom; i++)
        if (add_file(l, files.v[i]) != 0) break;
    for (size_t j = 0; j < files.n; j++) free(files.v[j]);
    free(files.v);
    if (files.n == 0 && !oom) {
        predict_report(dir, "no *.png files%s", recursive ? "" : " (subfolders are searched with --recursive)");
        l->failures++;
    }
}

/* ---------------------------------------------------------------- manifests */

/* One RFC 4180 record: fields (owned) and the physical line it starts on. */
typedef struct record {
    str_vec f;
    long line;
} record;

static void record_clear(record *r) {
    for (size_t i = 0; i < r->f.n; i++) free(r->f.v[i]);
    r->f.n = 0;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static int buf_put(buf *b, char c) {
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = c;
    b->p[b->n] = '\0';
    return 0;
}

/* Reads the next record of text[0..len) from *pos (empty lines skipped). Returns 1 with
 * a record, 0 at the end, -1 on a syntax error (message in err), -2 on OOM. */
static int next_record(const char *text, size_t len, size_t *pos, long *line, record *r, char *err,
                       size_t errlen) {
    record_clear(r);
    for (;;) { /* skip empty lines */
        if (*pos >= len) return 0;
        if (text[*pos] == '\n') {
            (*pos)++;
            (*line)++;
        } else if (text[*pos] == '\r') {
            (*pos)++;
            if (*pos < len && text[*pos] == '\n') (*pos)++;
            (*line)++;
        } else {
            break;
        }
    }
    r->line = *line;
    for (;;) { /* one field per pass */
        buf b = {0};
        if (buf_put(&b, '\0') != 0) return -2;
        b.n = 0;
        size_t i = *pos;
        if (i < len && text[i] == '"') {
            for (i++;; i++) {
                if (i >= len) {
                    free(b.p);
                    snprintf(err, errlen, "%ld: a quoted field is not closed", r->line);
                    return -1;
                }
                char c = text[i];
                if (c == '"') {
                    if (i + 1 < len && text[i + 1] == '"') {
                        i++;
                    } else {
                        i++;
                        break;
                    }
                } else if (c == '\n' || (c == '\r' && !(i + 1 < len && text[i + 1] == '\n'))) {
                    (*line)++;
                } else if (c == '\0') {
                    free(b.p);
                    snprintf(err, errlen, "%ld: NUL byte", *line);
                    return -1;
                }
                if (buf_put(&b, c) != 0) {
                    free(b.p);
                    return -2;
                }
            }
            if (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                free(b.p);
                snprintf(err, errlen, "%ld: text after a closing quote", *line);
                return -1;
            }
        } else {
            for (; i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r'; i++) {
                if (text[i] == '\0') {
                    free(b.p);
                    snprintf(err, errlen, "%ld: NUL byte", *line);
                    return -1;
                }
                if (buf_put(&b, text[i]) != 0) {
                    free(b.p);
                    return -2;
                }
            }
        }
        if (vec_push(&r->f, b.p) != 0) return -2;
        *pos = i;
        if (i >= len) return 1;
        if (text[i] == ',') {
            (*pos)++;
            continue;
        }
        /* end of the record */
        (*pos)++;
        if (text[i] == '\r' && *pos < len && text[*pos] == '\n') (*pos)++;
        (*line)++;
        return 1;
    }
}

/* Index of column `name` (spaces around it ignored) in the header, or -1. */
static int find_column(const record *hdr, const char *name, size_t n) {
    while (n > 0 && *name == ' ') name++, n--;
    while (n > 0 && name[n - 1] == ' ') n--;
    for (size_t i = 0; i < hdr->f.n; i++)
        if (strlen(hdr->f.v[i]) == n && strncmp(hdr->f.v[i], name, n) == 0) return (int)i;
    return -1;
}

static void report_columns(const char *manifest, const record *hdr, const char *what, const char *name,
                           size_t n) {
    fprintf(stderr, PROG ": %s: no %s column '%.*s' (columns:", manifest, what, (int)n, name);
    for (size_t i = 0; i < hdr->f.n; i++) fprintf(stderr, "%s %s", i ? "," : "", hdr->f.v[i]);
    fprintf(stderr, ")\n");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        predict_report(path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    buf b = {0};
    char chunk[65536];
    size_t got;
    int oom = 0;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && !oom) {
        if (b.n + got + 1 > b.cap) {
            size_t cap = b.cap ? b.cap : 65536;
            while (cap < b.n + got + 1) cap *= 2;
            char *p = realloc(b.p, cap);
            if (!p) {
                oom = 1;
                break;
            }
            b.p = p;
            b.cap = cap;
        }
        memcpy(b.p + b.n, chunk, got);
        b.n += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || oom) {
        predict_report(path, "%s", bad ? "read error" : "out of memory");
        free(b.p);
        return NULL;
    }
    if (!b.p) b.p = predict_strdup("");
    *len = b.n;
    return b.p;
}

/* A manifest path: absolute as written, relative to the manifest's folder otherwise. */
static char *resolve(const char *manifest, const char *p) {
    if (p[0] == '/') return predict_strdup(p);
    const char *slash = strrchr(manifest, '/');
    if (!slash) return predict_strdup(p);
    size_t n = (size_t)(slash - manifest) + 1;
    char *r = malloc(n + strlen(p) + 1);
    if (!r) return NULL;
    memcpy(r, manifest, n);
    strcpy(r + n, p);
    return r;
}

static void add_manifest(input_list *l, const char *manifest, const options *o) {
    size_t len = 0, pos = 0;
    char *text = read_file(manifest, &len);
    if (!text) {
        l->failures++;
        return;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 BOM */
    record hdr = {0}, row = {0};
    int *cols = NULL, ncols = 0, opt_col = -1;
    long line = 1;
    char err[256];
    int rc = next_record(text, len, &pos, &line, &hdr, err, sizeof err);
    if (rc <= 0) {
        if (rc == -2) l->oom = 1;
        else if (rc == 0) predict_report(manifest, "empty manifest (no header row)");
        else fprintf(stderr, PROG ": %s:%s\n", manifest, err);
        l->failures++;
        goto done;
    }
    /* the image columns, in order */
    for (const char *s = o->image_columns;;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        int k = find_column(&hdr, s, n);
        if (k < 0) {
            report_columns(manifest, &hdr, "image", s, n);
            l->failures++;
            goto done;
        }
        int *c = realloc(cols, (size_t)(ncols + 1) * sizeof *c);
        if (!c) {
            l->oom = 1;
            goto done;
        }
        cols = c;
        cols[ncols++] = k;
        if (!e) break;
        s = e + 1;
    }
    if (o->optional_column) {
        opt_col = find_column(&hdr, o->optional_column, strlen(o->optional_column));
        if (opt_col < 0) {
            report_columns(manifest, &hdr, "optional", o->optional_column, strlen(o->optional_column));
            l->failures++;
            goto done;
        }
    }
    int rows = 0;
    while ((rc = next_record(text, len, &pos, &line, &row, err, sizeof err)) == 1) {
        rows++;
        if (row.f.n != hdr.f.n) {
            fprintf(stderr, PROG ": %s:%ld: %zu field%s, but the header has %zu\n", manifest, row.line, row.f.n,
                    row.f.n == 1 ? "" : "s", hdr.f.n);
            l->failures++;
            continue;
        }
        char **files = calloc((size_t)ncols, sizeof *files);
        char *opt = NULL;
        int ok = files != NULL, empty = 0;
        for (int k = 0; ok && k < ncols; k++) {
            const char *p = row.f.v[cols[k]];
            if (!p[0]) empty = 1;
            ok = (files[k] = resolve(manifest, p[0] ? p : ".")) != NULL;
        }
        if (ok && opt_col >= 0 && row.f.v[opt_col][0]) ok = (opt = resolve(manifest, row.f.v[opt_col])) != NULL;
        if (!ok) {
            l->oom = 1;
        } else if (empty) {
            fprintf(stderr, PROG ": %s:%ld: empty image path\n", manifest, row.line);
            l->failures++;
        } else {
            list_add(l, files, ncols, opt_col >= 0, opt);
            continue;
        }
        for (int k = 0; files && k < ncols; k++) free(files[k]);
        free(files);
        free(opt);
        if (l->oom) goto done;
    }
    if (rc == -2) {
        l->oom = 1;
    } else if (rc == -1) {
        fprintf(stderr, PROG ": %s:%s (the rows after it are not read)\n", manifest, err);
        l->failures++;
    } else if (rows == 0) {
        predict_report(manifest, "no rows");
        l->failures++;
    }
done:
    record_clear(&hdr);
    record_clear(&row);
    free(hdr.f.v);
    free(row.f.v);
    free(cols);
    free(text);
}

void predict_add_path(input_list *l, const char *path, const options *o) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        predict_report(path, "%s", strerror(errno));
        l->failures++;
    } else if (S_ISDIR(sb.st_mode)) {
        add_folder(l, path, o->recursive);
    } else if (ends_with(path, ".csv")) {
        add_manifest(l, path, o);
    } else {
        add_file(l, path); /* decoding tells whether it is a PNG */
    }
}

void predict_inputs_free(input_list *l) {
    for (size_t i = 0; i < l->n; i++) input_free(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}
