/* text.c — shared text helpers: a growing buffer on the context allocator, numbers
 * formatted and parsed with a '.' decimal point whatever the locale, UTF-8 measuring
 * and XML escaping. */
#include "core/text.h"
#include "core/context.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ text buffer */

void nc__sbuf_init(nc__sbuf *sb, nc_context *ctx) {
    memset(sb, 0, sizeof *sb);
    sb->ctx = ctx;
}

void nc__sbuf_free(nc__sbuf *sb) {
    nc__free(sb->ctx, sb->p);
    sb->p = NULL;
    sb->len = sb->cap = 0;
}

void nc__sbuf_put(nc__sbuf *sb, const char *s, size_t n) {
    if (sb->oom) return;
    if (n >= SIZE_MAX - sb->len - 1 || nc__grow(sb->ctx, (void **)&sb->p, 1, &sb->cap, sb->len + n + 1) != 0) {
        sb->oom = 1;
        return;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = 0;
}

void nc__sbuf_puts(nc__sbuf *sb, const char *s) { nc__sbuf_put(sb, s, strlen(s)); }

void nc__sbuf_printf(nc__sbuf *sb, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        nc__sbuf_put(sb, small, (size_t)n);
        return;
    }
    if (sb->oom) return;
    if (nc__grow(sb->ctx, (void **)&sb->p, 1, &sb->cap, sb->len + (size_t)n + 1) != 0) {
        sb->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

nc_status nc__sbuf_check(nc__sbuf *sb, const char *what) {
    if (!sb->oom) {
        if (!sb->p) nc__sbuf_put(sb, "", 0); /* an empty text is still a string */
        if (!sb->oom) return NC_OK;
    }
    return nc__error(sb->ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
}

/* ---------------------------------------------------------------- numbers */

char *nc__fmt_num(char *out, size_t size, double v, int prec, char conv) {
    if (size == 0) return out;
    if (isnan(v)) {
        snprintf(out, size, "nan");
        return out;
    }
    if (isinf(v)) {
        snprintf(out, size, v < 0 ? "-inf" : "inf");
        return out;
    }
    char tmp[400];
    if (conv == 'f') {
        snprintf(tmp, sizeof tmp, "%.*f", prec, v);
    } else {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    }
    /* printf writes [-]digits[<decimal point>digits][e<sign>digits]; the decimal
     * point is whatever LC_NUMERIC says (maybe several bytes): turn any run of other
     * characters into '.' */
    size_t j = 0;
    for (size_t i = 0; tmp[i] && j + 1 < size;) {
        char c = tmp[i];
        if ((c >= '0' && c <= '9') || c == 'e' || c == '-' || c == '+') {
            out[j++] = c;
            i++;
        } else {
            out[j++] = '.';
            while (tmp[i] && !((tmp[i] >= '0' && tmp[i] <= '9') || tmp[i] == 'e' || tmp[i] == '-' || tmp[i] == '+'))
                i++;
        }
    }
    out[j] = 0;
    /* "-0" reads badly in a figure or a table */
    if (strcmp(out, "-0") == 0 || (out[0] == '-' && strspn(out + 1, "0.") == strlen(out + 1)))
        memmove(out, out + 1, strlen(out));
    return out;
}

void nc__sbuf_num(nc__sbuf *sb, double v, int prec, char conv) {
    char b[64];
    nc__sbuf_puts(sb, nc__fmt_num(b, sizeof b, v, prec, conv));
}

int nc__parse_num(const char *s, size_t n, double *out) {
    /* grammar check first: [+-] digits [. digits] [(e|E) [+-] digits], some digit */
    size_t i = 0, digits = 0;
    if (n == 0 || n > 300) return -1;
    if (s[i] == '+' || s[i] == '-') i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    size_t dot = SIZE_MAX;
    if (i < n && s[i] == '.') {
        dot = i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    }
    if (digits == 0) return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t ed = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++, ed++;
        if (ed == 0) return -1;
    }
    if (i != n) return -1;
    /* strtod rounds correctly but reads the locale's decimal point: learn it from
     * printf (the same locale) and put it in place of '.' */
    char point[16];
    {
        char probe[32];
        snprintf(probe, sizeof probe, "%.1f", 0.5);
        size_t a = 1, b = strlen(probe) - 1; /* between "0" and "5" */
        size_t pl = b > a && b - a < sizeof point ? b - a : 0;
        if (pl == 0) {
            point[0] = '.';
            point[1] = 0;
        } else {
            memcpy(point, probe + a, pl);
            point[pl] = 0;
        }
    }
    char buf[340];
    size_t pl = strlen(point), j = 0;
    for (size_t k = 0; k < n; k++) {
        if (k == dot) {
            memcpy(buf + j, point, pl);
            j += pl;
        } else {
            buf[j++] = s[k];
        }
    }
    buf[j] = 0;
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + j) return -1;
    *out = v;
    return 0;
}

char *nc__fmt_exact(char *out, size_t size, double v) {
    nc__fmt_num(out, size, v, 15, 'g');
    double back;
    if (isfinite(v) && (nc__parse_num(out, strlen(out), &back) != 0 || back != v)) nc__fmt_num(out, size, v, 17, 'g');
    return out;
}

/* ------------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned min;
    if ((c & 0xE0) == 0xC0) n = 2, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, min = 0x800;
    else if ((c & 0xF8) == 0xF0) n = 4, min = 0x10000;
    else return 0;
    unsigned cp = c & (0x3Fu >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    if (cp == 0xFFFE || cp == 0xFFFF) return 0; /* not allowed in XML */
    return n;
}

size_t nc__utf8_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t k = utf8_seq(p);
        p += k ? k : 1;
        n++;
    }
    return n;
}

size_t nc__utf8_prefix(const char *s, size_t max) {
    const unsigned char *p = (const unsigned char *)s;
    size_t cps = 0;
    while (*p && cps < max) {
        size_t k = utf8_seq(p);
        p += k ? k : 1;
        cps++;
    }
    return (size_t)(p - (const unsigned char *)s);
}

/* Control characters and bytes that are not valid UTF-8 would make the document
 * ill-formed: they become U+FFFD. */
void nc__sbuf_xml(nc__sbuf *sb, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p;
        size_t k = utf8_seq(p);
        if (k == 0 || p + k > e || (c < 0x20 && c != '\t' && c != '\n' && c != '\r')) {
            nc__sbuf_puts(sb, "\xEF\xBF\xBD");
            p++;
            continue;
        }
        switch (c) {
        case '&': nc__sbuf_puts(sb, "&amp;"); break;
        case '<': nc__sbuf_puts(sb, "&lt;"); break;
        case '>': nc__sbuf_puts(sb, "&gt;"); break;
        case '"': nc__sbuf_puts(sb, "&quot;"); break;
        case '\'': nc__sbuf_puts(sb, "&apos;"); break;
        case '\t': nc__sbuf_puts(sb, "&#9;"); break;
        case '\n': nc__sbuf_puts(sb, "&#10;"); break;
        case '\r': nc__sbuf_puts(sb, "&#13;"); break;
        default: nc__sbuf_put(sb, (const char *)p, k);
        }
        p += k;
    }
}
