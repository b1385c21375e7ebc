/* history.c — the per-epoch history of a training run (nc_history): records kept in
 * order, written as CSV or JSON (atomically), and read back from CSV exactly, so that
 * a resumed run continues its history. Numbers never depend on the C locale. */
#include "eval/history.h"
#include "core/text.h"
#include "core/json.h"
#include "core/context.h"
#include "io/file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct nc_history {
    nc_context *ctx;
    nc_epoch_record *rec; /* (count) in the order added */
    size_t count, cap;
};

#define NC__HISTORY_COLUMNS 8
static const char csv_header[] = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_sec";
static const char *const col_names[NC__HISTORY_COLUMNS] = {
    "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_sec"};
/* A CSV larger than this is not a history (64 bytes * 2^22 epochs). */
#define NC__HISTORY_MAX_FILE ((size_t)1 << 28)

static double *field_of(nc_epoch_record *r, int col) {
    switch (col) {
    case 1: return &r->train_loss;
    case 2: return &r->train_acc;
    case 3: return &r->val_loss;
    case 4: return &r->val_acc;
    case 5: return &r->lr;
    case 6: return &r->seconds;
    default: return &r->images_per_sec;
    }
}

void nc_epoch_record_init(nc_epoch_record *r) {
    if (!r) return;
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
    r->epoch = 0;
    r->train_loss = r->train_acc = r->val_loss = r->val_acc = NAN;
    r->lr = r->seconds = r->images_per_sec = NAN;
}

nc_status nc_history_create(nc_context *ctx, nc_history **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!out) return nc__error(ctx, NC_ERR_NULL, "nc_history_create: out is NULL");
    *out = NULL;
    nc_history *h = nc__calloc(ctx, 1, sizeof *h);
    if (!h) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "nc_history_create: out of memory");
    h->ctx = ctx;
    *out = h;
    return NC_OK;
}

void nc_history_destroy(nc_history *h) {
    if (!h) return;
    nc__free(h->ctx, h->rec);
    nc__free(h->ctx, h);
}

nc_status nc_history_add(nc_history *h, const nc_epoch_record *r) {
    if (!h) return NC_ERR_NULL;
    if (!r) return nc__error(h->ctx, NC_ERR_NULL, "nc_history_add: record is NULL");
    if (r->struct_size != sizeof *r)
        return nc__error(h->ctx, NC_ERR_INVALID_ARGUMENT,
                         "nc_history_add: record struct_size %zu, expected %zu (use nc_epoch_record_init)",
                         r->struct_size, sizeof *r);
    if (nc__grow(h->ctx, (void **)&h->rec, sizeof *h->rec, &h->cap, h->count + 1) != 0)
        return nc__error(h->ctx, NC_ERR_OUT_OF_MEMORY, "nc_history_add: out of memory");
    h->rec[h->count++] = *r;
    return NC_OK;
}

nc_status nc_history_truncate(nc_history *h, int64_t epoch) {
    if (!h) return NC_ERR_NULL;
    size_t kept = 0;
    for (size_t i = 0; i < h->count; i++)
        if (h->rec[i].epoch <= epoch) h->rec[kept++] = h->rec[i];
    h->count = kept;
    return NC_OK;
}

int64_t nc_history_count(const nc_history *h) { return h ? (int64_t)h->count : 0; }

nc_status nc_history_get(const nc_history *h, int64_t i, nc_epoch_record *r) {
    if (!h) return NC_ERR_NULL;
    if (!r) return nc__error(h->ctx, NC_ERR_NULL, "nc_history_get: record is NULL");
    if (i < 0 || (uint64_t)i >= h->count)
        return nc__error(h->ctx, NC_ERR_INVALID_ARGUMENT, "nc_history_get: index %lld outside [0, %zu)",
                         (long long)i, h->count);
    *r = h->rec[i];
    return NC_OK;
}

const nc_epoch_record *nc__history_records(const nc_history *h, int64_t *count) {
    *count = h ? (int64_t)h->count : 0;
    return h ? h->rec : NULL;
}

nc_context *nc__history_context(const nc_history *h) { return h ? h->ctx : NULL; }

nc_status nc__history_from(nc_context *ctx, const nc_epoch_record *records, int64_t n, nc_history **out) {
    nc_history *h = NULL;
    nc_status st = nc_history_create(ctx, &h);
    if (st != NC_OK) return st;
    if (n > 0) {
        if (nc__grow(ctx, (void **)&h->rec, sizeof *h->rec, &h->cap, (size_t)n) != 0) {
            nc_history_destroy(h);
            return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "history: out of memory");
        }
        memcpy(h->rec, records, (size_t)n * sizeof *records);
        h->count = (size_t)n;
    }
    *out = h;
    return NC_OK;
}

/* ---------------------------------------------------------------- writers */

nc_status nc_history_write_csv(const nc_history *h, const char *path) {
    if (!h) return NC_ERR_NULL;
    if (!path) return nc__error(h->ctx, NC_ERR_NULL, "nc_history_write_csv: path is NULL");
    nc__sbuf sb;
    nc__sbuf_init(&sb, h->ctx);
    nc__sbuf_puts(&sb, csv_header);
    nc__sbuf_puts(&sb, "\n");
    for (size_t i = 0; i < h->count; i++) {
        nc_epoch_record r = h->rec[i];
        nc__sbuf_printf(&sb, "%lld", (long long)r.epoch);
        for (int c = 1; c < NC__HISTORY_COLUMNS; c++) {
            double v = *field_of(&r, c);
            char num[40];
            nc__sbuf_puts(&sb, ",");
            /* NaN (not measured) is an empty field; infinities are kept as text */
            if (!isnan(v)) nc__sbuf_puts(&sb, nc__fmt_exact(num, sizeof num, v));
        }
        nc__sbuf_puts(&sb, "\n");
    }
    nc_status st = nc__sbuf_check(&sb, path);
    if (st == NC_OK) st = nc__write_file_atomic(h->ctx, path, sb.p, sb.len);
    nc__sbuf_free(&sb);
    return st;
}

void nc__history_json(nc__jw *w, const char *key, const nc_epoch_record *rec, int64_t n) {
    nc__jw_array(w, key);
    for (int64_t i = 0; i < n; i++) {
        nc_epoch_record r = rec[i];
        nc__jw_object(w, NULL);
        nc__jw_num(w, "epoch", (double)r.epoch);
        for (int c = 1; c < NC__HISTORY_COLUMNS; c++) nc__jw_num(w, col_names[c], *field_of(&r, c));
        nc__jw_end(w);
    }
    nc__jw_end(w);
}

nc_status nc_history_write_json(const nc_history *h, const char *path) {
    if (!h) return NC_ERR_NULL;
    if (!path) return nc__error(h->ctx, NC_ERR_NULL, "nc_history_write_json: path is NULL");
    nc__jw w;
    nc__jw_init(&w, h->ctx, 1);
    nc__history_json(&w, NULL, h->rec, (int64_t)h->count);
    nc__sbuf_put(&w.sb, "\n", 1); /* a trailing newline, as text files have */
    char *text = NULL;
    size_t len = 0;
    nc_status st = nc__jw_finish(&w, path, &text, &len);
    if (st == NC_OK) st = nc__write_file_atomic(h->ctx, path, text, len);
    nc__free(h->ctx, text);
    return st;
}

/* ----------------------------------------------------------------- reader */

nc_status nc_history_read_csv(nc_context *ctx, const char *path, nc_history **out) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || !out) return nc__error(ctx, NC_ERR_NULL, "nc_history_read_csv: %s is NULL", path ? "out" : "path");
    *out = NULL;
    char *data = NULL;
    size_t size = 0;
    nc_history *h = NULL;
    nc_status st = nc__read_file(ctx, path, NC__HISTORY_MAX_FILE, NC_ERR_FORMAT, "history CSV", &data, &size);
    if (st != NC_OK) return st;
    NC_CHECK(nc_history_create(ctx, &h));

    size_t pos = 0;
    long line = 0;
    int64_t last_epoch = INT64_MIN;
    while (pos < size) {
        size_t end = pos;
        while (end < size && data[end] != '\n') end++;
        size_t next = end < size ? end + 1 : end;
        if (end > pos && data[end - 1] == '\r') end--;
        line++;
        const char *s = data + pos;
        size_t n = end - pos;
        pos = next;
        if (memchr(s, 0, n)) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: NUL byte in a text file", path, line);
            goto fail;
        }
        if (line == 1) {
            if (n != sizeof csv_header - 1 || memcmp(s, csv_header, n) != 0) {
                st = nc__error(ctx, NC_ERR_FORMAT, "%s:1: not a history CSV: the header must be \"%s\"", path,
                               csv_header);
                goto fail;
            }
            continue;
        }
        if (n == 0) {
            /* only trailing empty lines are allowed */
            size_t k = pos;
            while (k < size && (data[k] == '\n' || data[k] == '\r')) k++;
            if (k == size) break;
            st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: empty line", path, line);
            goto fail;
        }
        nc_epoch_record r;
        nc_epoch_record_init(&r);
        int col = 0;
        size_t a = 0;
        for (;;) {
            size_t b = a;
            while (b < n && s[b] != ',') b++;
            if (col >= NC__HISTORY_COLUMNS) {
                st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: more than %d fields", path, line, NC__HISTORY_COLUMNS);
                goto fail;
            }
            double v = NAN;
            size_t fl = b - a;
            if ((fl == 3 && memcmp(s + a, "inf", 3) == 0) || (fl == 4 && memcmp(s + a, "+inf", 4) == 0))
                v = INFINITY;
            else if (fl == 4 && memcmp(s + a, "-inf", 4) == 0)
                v = -INFINITY;
            else if (fl > 0 && nc__parse_num(s + a, fl, &v) != 0) {
                st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: field %d (%s) \"%.*s\" is not a number", path, line,
                               col + 1, col_names[col], (int)(b - a > 40 ? 40 : b - a), s + a);
                goto fail;
            }
            if (col == 0) {
                if (b == a || !(v >= 0 && v <= 9.0e15) || v != floor(v)) {
                    st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: epoch \"%.*s\" is not a non-negative integer", path,
                                   line, (int)(b - a > 40 ? 40 : b - a), s + a);
                    goto fail;
                }
                r.epoch = (int64_t)v;
            } else {
                *field_of(&r, col) = v;
            }
            col++;
            if (b >= n) break;
            a = b + 1;
        }
        if (col != NC__HISTORY_COLUMNS) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: %d fields, expected %d", path, line, col,
                           NC__HISTORY_COLUMNS);
            goto fail;
        }
        if (r.epoch <= last_epoch) {
            st = nc__error(ctx, NC_ERR_FORMAT, "%s:%ld: epoch %lld does not follow epoch %lld", path, line,
                           (long long)r.epoch, (long long)last_epoch);
            goto fail;
        }
        last_epoch = r.epoch;
        if (nc__grow(ctx, (void **)&h->rec, sizeof *h->rec, &h->cap, h->count + 1) != 0) {
            st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            goto fail;
        }
        h->rec[h->count++] = r;
    }
    if (line == 0) {
        st = nc__error(ctx, NC_ERR_FORMAT, "%s:1: empty file, expected the header \"%s\"", path, csv_header);
        goto fail;
    }
    nc__free(ctx, data);
    *out = h;
    return NC_OK;
fail:
    nc__free(ctx, data);
    nc_history_destroy(h);
    return st;
}
