/* svg.h — private helpers shared by the report writers (history.c, svg.c, report.c):
 * a growable text buffer on the context allocator, locale-independent number
 * formatting and parsing, XML escaping, and the SVG renderers working on plain
 * arrays so that a report can draw figures from the metrics it copied. */
#ifndef NC_EVAL_SVG_H
#define NC_EVAL_SVG_H

#include "neurc.h"

#include <stddef.h>
#include <stdint.h>

/* A growing NUL-terminated string. Appends after a failed allocation do nothing and
 * leave `oom` set; check it once at the end. */
typedef struct nc__sbuf {
    nc_context *ctx;
    char *p;     /* NUL-terminated once anything was appended (NULL before) */
    size_t len;  /* bytes without the NUL */
    size_t cap;
    int oom;
} nc__sbuf;

void nc__sbuf_init(nc__sbuf *sb, nc_context *ctx);
void nc__sbuf_free(nc__sbuf *sb);
void nc__sbuf_put(nc__sbuf *sb, const char *s, size_t n);
void nc__sbuf_puts(nc__sbuf *sb, const char *s);
/* printf-style append; never pass floating-point conversions (they follow the
 * locale): format numbers with nc__sbuf_num. */
void nc__sbuf_printf(nc__sbuf *sb, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* `v` as printf "%.<prec><conv>" (conv 'g' or 'f') with a '.' decimal point whatever
 * the locale; NaN gives "nan", infinities "inf" / "-inf". */
void nc__sbuf_num(nc__sbuf *sb, double v, int prec, char conv);
/* `s` with & < > " ' escaped for XML text and attribute values. */
void nc__sbuf_xml(nc__sbuf *sb, const char *s);
/* Fails with NC_ERR_OUT_OF_MEMORY (message naming `what`) when sb->oom is set. */
nc_status nc__sbuf_check(nc__sbuf *sb, const char *what);

/* nc__sbuf_num into a fixed buffer (always NUL-terminated); returns out. */
char *nc__fmt_num(char *out, size_t size, double v, int prec, char conv);
/* Shortest of "%.15g" / "%.17g" that reads back as exactly v (locale-independent). */
char *nc__fmt_exact(char *out, size_t size, double v);
/* Parses s[0..n) as a decimal number with a '.' decimal point (optional sign,
 * digits, fraction, exponent; no hex, inf or nan), whatever the locale, correctly
 * rounded. Returns 0 on success, -1 when the text is not such a number. */
int nc__parse_num(const char *s, size_t n, double *out);

/* Display helpers: the number of UTF-8 code points of s, and the longest prefix of s
 * (in bytes) holding at most `max` code points. */
size_t nc__utf8_len(const char *s);
size_t nc__utf8_prefix(const char *s, size_t max);

/* The records of a history (borrowed) and its context. */
const nc_epoch_record *nc__history_records(const nc_history *h, int64_t *count);
nc_context *nc__history_context(const nc_history *h);
/* The records as a cJSON array of objects, NaN as null (NULL when out of memory). */
struct cJSON;
struct cJSON *nc__history_json(const nc_epoch_record *rec, int64_t n);
/* A new history holding copies of records[0..n). */
nc_status nc__history_from(nc_context *ctx, const nc_epoch_record *records, int64_t n, nc_history **out);

/* Renderers: append a whole SVG document to sb (check sb->oom afterwards).
 * names may be NULL or hold NULL entries (the class index is used). */
void nc__svg_curves(nc__sbuf *sb, const nc_epoch_record *rec, int64_t n);
/* confusion: (K, K) row = true class, column = prediction. */
void nc__svg_confusion(nc__sbuf *sb, int K, const int64_t *confusion, const char *const *names, int normalize);
/* recall[K] (per-class accuracy), support[K] (true samples of each class). */
void nc__svg_per_class(nc__sbuf *sb, int K, const double *recall, const int64_t *support,
                       const char *const *names);

#endif
