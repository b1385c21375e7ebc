/* text.h — text helpers for any folder that writes text (today eval/'s history.c,
 * report.c and svg.c): a growable buffer on the context allocator, locale-independent
 * number formatting and parsing, UTF-8 measuring and XML escaping. In core/ so that
 * every layer can use them; numbers never follow LC_NUMERIC. */
#ifndef NC_CORE_TEXT_H
#define NC_CORE_TEXT_H

#include "neurc.h"

#include <stddef.h>

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
/* s[0..n) with & < > " ' (and tab, newline, CR) escaped for XML text and attribute
 * values; control characters and bytes that are not valid UTF-8 become U+FFFD. */
void nc__sbuf_xml(nc__sbuf *sb, const char *s, size_t n);
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

#endif
