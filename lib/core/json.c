/* json.c — the library's JSON reader and writer on the context's allocator (json.h).
 * The reader is a recursive-descent parser of RFC 8259 that builds cJSON nodes with
 * nc__alloc; the writer appends to an nc__sbuf. */
#include "core/json.h"
#include "core/context.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ reader */

typedef struct jparse {
    nc_context *ctx;
    const char *s, *p, *e; /* text, cursor, end */
    int depth;
    int oom;
    const char *why; /* first syntax error */
} jparse;

static cJSON *fail(jparse *j, const char *why) {
    if (!j->why && !j->oom) j->why = why;
    return NULL;
}

static void skip_ws(jparse *j) {
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static cJSON *new_node(jparse *j, int type) {
    cJSON *n = nc__calloc(j->ctx, 1, sizeof *n);
    if (!n) j->oom = 1;
    else n->type = type;
    return n;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One \uXXXX escape (and its low surrogate) at j->p (after the backslash-u); the
 * code point's UTF-8 goes to o. Returns the bytes written, 0 on a syntax error. */
static size_t unicode_escape(jparse *j, const char *q, char *o) {
    unsigned hi, lo;
    if (q - j->p < 4 || hex4(j->p, &hi) != 0) return fail(j, "bad \\u escape"), 0;
    j->p += 4;
    if (hi == 0) return fail(j, "\\u0000 in a string"), 0;
    if (hi >= 0xDC00 && hi <= 0xDFFF) return fail(j, "unpaired surrogate in a \\u escape"), 0;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (q - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) != 0 || lo < 0xDC00 ||
            lo > 0xDFFF)
            return fail(j, "unpaired surrogate in a \\u escape"), 0;
        j->p += 6;
        hi = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    }
    return put_utf8(o, hi);
}

/* A string at j->p (on its opening quote), decoded into a new NUL-terminated
 * buffer; NULL on failure. Decoded text is never longer than its source. */
static char *parse_string(jparse *j) {
    const char *q = ++j->p;
    while (q < j->e && *q != '"') q += *q == '\\' && q + 1 < j->e ? 2 : 1;
    if (q >= j->e) return fail(j, "unterminated string"), NULL;
    char *out = nc__alloc(j->ctx, (size_t)(q - j->p) + 1), *o = out;
    if (!out) {
        j->oom = 1;
        return NULL;
    }
    while (j->p < q) {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) {
            fail(j, "control character in a string");
            goto bad;
        }
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        char esc = *j->p++;
        switch (esc) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            size_t k = unicode_escape(j, q, o);
            if (k == 0) goto bad;
            o += k;
            break;
        }
        default: fail(j, "bad escape in a string"); goto bad;
        }
    }
    *o = 0;
    j->p = q + 1;
    return out;
bad:
    nc__free(j->ctx, out);
    return NULL;
}

static cJSON *parse_number(jparse *j) {
    const char *a = j->p, *p = a;
    if (p < j->e && *p == '-') p++;
    if (p < j->e && *p == '0') p++;
    else if (p < j->e && *p >= '1' && *p <= '9')
        while (p < j->e && *p >= '0' && *p <= '9') p++;
    else return fail(j, "bad number");
    if (p < j->e && *p == '.') {
        const char *d = ++p;
        while (p < j->e && *p >= '0' && *p <= '9') p++;
        if (p == d) return fail(j, "bad number");
    }
    if (p < j->e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->e && (*p == '+' || *p == '-')) p++;
        const char *d = p;
        while (p < j->e && *p >= '0' && *p <= '9') p++;
        if (p == d) return fail(j, "bad number");
    }
    double v;
    if (nc__parse_num(a, (size_t)(p - a), &v) != 0) return fail(j, "number too long");
    cJSON *n = new_node(j, cJSON_Number);
    if (!n) return NULL;
    n->valuedouble = v;
    n->valueint = v >= INT_MAX ? INT_MAX : v <= (double)INT_MIN ? INT_MIN : (int)v; /* as cJSON */
    j->p = p;
    return n;
}

static cJSON *parse_literal(jparse *j) {
    static const struct {
        const char *text;
        int type;
    } lits[] = {{"true", cJSON_True}, {"false", cJSON_False}, {"null", cJSON_NULL}};
    for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
        size_t n = strlen(lits[i].text);
        if ((size_t)(j->e - j->p) >= n && memcmp(j->p, lits[i].text, n) == 0) {
            cJSON *v = new_node(j, lits[i].type);
            if (v) {
                v->valueint = lits[i].type == cJSON_True;
                j->p += n;
            }
            return v;
        }
    }
    return fail(j, "unexpected character");
}

static cJSON *parse_value(jparse *j);

/* Appends item to container c (cJSON's convention: child->prev is the last item). */
static void append(cJSON *c, cJSON *item) {
    if (!c->child) {
        c->child = item;
    } else {
        item->prev = c->child->prev;
        c->child->prev->next = item;
    }
    c->child->prev = item;
}

/* An array or object at j->p (on its opening bracket). */
static cJSON *parse_container(jparse *j, int object) {
    const char close = object ? '}' : ']';
    if (++j->depth > NC__JSON_MAX_DEPTH) return fail(j, "nesting too deep");
    cJSON *c = new_node(j, object ? cJSON_Object : cJSON_Array);
    if (!c) return NULL;
    j->p++;
    skip_ws(j);
    if (j->p < j->e && *j->p == close) {
        j->p++;
        j->depth--;
        return c;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(j);
        if (object) {
            if (j->p >= j->e || *j->p != '"') {
                fail(j, "expected a member name");
                goto bad;
            }
            if (!(key = parse_string(j))) goto bad;
            skip_ws(j);
            if (j->p >= j->e || *j->p != ':') {
                nc__free(j->ctx, key);
                fail(j, "expected ':'");
                goto bad;
            }
            j->p++;
        }
        cJSON *item = parse_value(j);
        if (!item) {
            nc__free(j->ctx, key);
            goto bad;
        }
        item->string = key;
        append(c, item);
        skip_ws(j);
        if (j->p < j->e && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->e && *j->p == close) break;
        fail(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto bad;
    }
    j->p++;
    j->depth--;
    return c;
bad:
    nc__json_delete(j->ctx, c);
    return NULL;
}

static cJSON *parse_value(jparse *j) {
    skip_ws(j);
    if (j->p >= j->e) return fail(j, "unexpected end of text");
    switch (*j->p) {
    case '{': return parse_container(j, 1);
    case '[': return parse_container(j, 0);
    case '"': {
        char *s = parse_string(j);
        cJSON *v = s ? new_node(j, cJSON_String) : NULL;
        if (!v) nc__free(j->ctx, s);
        else v->valuestring = s;
        return v;
    }
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return parse_number(j);
    default: return parse_literal(j);
    }
}

nc_status nc__json_parse(nc_context *ctx, const char *text, size_t len, const char **end, cJSON **out) {
    jparse j = {.ctx = ctx, .s = text, .p = text, .e = text + len};
    *out = NULL;
    cJSON *root = parse_value(&j);
    if (root) {
        skip_ws(&j);
        if (end) *end = j.p;
        else if (j.p < j.e) root = (nc__json_delete(ctx, root), fail(&j, "text after the value"));
    }
    if (j.oom) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "JSON: out of memory");
    if (!root)
        return nc__error(ctx, NC_ERR_FORMAT, "JSON: %s at byte %zu", j.why ? j.why : "syntax error",
                         (size_t)(j.p - j.s));
    *out = root;
    return NC_OK;
}

void nc__json_delete(nc_context *ctx, cJSON *item) {
    while (item) {
        cJSON *next = item->next;
        nc__json_delete(ctx, item->child);
        nc__free(ctx, item->valuestring);
        nc__free(ctx, item->string);
        nc__free(ctx, item);
        item = next;
    }
}

/* ------------------------------------------------------------------ writer */

void nc__jw_init(nc__jw *w, nc_context *ctx, int pretty) {
    memset(w, 0, sizeof *w);
    nc__sbuf_init(&w->sb, ctx);
    w->pretty = pretty;
}

static void indent(nc__jw *w, int depth) {
    for (int i = 0; i < depth; i++) nc__sbuf_put(&w->sb, "\t", 1);
}

static void put_string(nc__sbuf *sb, const char *s) {
    static const char hex[] = "0123456789abcdef";
    nc__sbuf_put(sb, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
        if (!esc && c >= 0x20) continue;
        nc__sbuf_put(sb, run, (size_t)(s - run));
        run = s + 1;
        if (esc) {
            nc__sbuf_puts(sb, esc);
        } else {
            char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            nc__sbuf_puts(sb, u);
        }
    }
    nc__sbuf_put(sb, run, (size_t)(s - run));
    nc__sbuf_put(sb, "\"", 1);
}

/* The separator, indentation and key before a value. */
static void begin_value(nc__jw *w, const char *key) {
    if (w->depth == 0) {
        if (key || w->sb.len) w->bad = 1;
        return;
    }
    const int d = w->depth - 1, in_object = w->object[d];
    if (in_object != (key != NULL)) w->bad = 1;
    if (!w->empty[d]) nc__sbuf_puts(&w->sb, in_object ? "," : w->pretty ? ", " : ",");
    w->empty[d] = 0;
    if (!in_object) return;
    if (w->pretty) {
        nc__sbuf_put(&w->sb, "\n", 1);
        indent(w, w->depth);
    }
    put_string(&w->sb, key);
    nc__sbuf_puts(&w->sb, w->pretty ? ":\t" : ":");
}

static void open_container(nc__jw *w, const char *key, int object) {
    begin_value(w, key);
    if (w->depth >= NC__JSON_MAX_DEPTH) {
        w->bad = 1;
        return;
    }
    w->object[w->depth] = (unsigned char)object;
    w->empty[w->depth] = 1;
    w->depth++;
    nc__sbuf_put(&w->sb, object ? "{" : "[", 1);
}

void nc__jw_object(nc__jw *w, const char *key) { open_container(w, key, 1); }
void nc__jw_array(nc__jw *w, const char *key) { open_container(w, key, 0); }

void nc__jw_end(nc__jw *w) {
    if (w->depth == 0) {
        w->bad = 1;
        return;
    }
    const int d = --w->depth;
    if (w->object[d] && w->pretty && !w->empty[d]) {
        nc__sbuf_put(&w->sb, "\n", 1);
        indent(w, d);
    }
    nc__sbuf_put(&w->sb, w->object[d] ? "}" : "]", 1);
}

void nc__jw_num(nc__jw *w, const char *key, double v) {
    char buf[40];
    begin_value(w, key);
    nc__sbuf_puts(&w->sb, isfinite(v) ? nc__fmt_exact(buf, sizeof buf, v) : "null");
}

void nc__jw_int(nc__jw *w, const char *key, int64_t v) {
    begin_value(w, key);
    nc__sbuf_printf(&w->sb, "%lld", (long long)v);
}

void nc__jw_uint(nc__jw *w, const char *key, uint64_t v) {
    begin_value(w, key);
    nc__sbuf_printf(&w->sb, "%llu", (unsigned long long)v);
}

void nc__jw_bool(nc__jw *w, const char *key, int v) {
    begin_value(w, key);
    nc__sbuf_puts(&w->sb, v ? "true" : "false");
}

void nc__jw_null(nc__jw *w, const char *key) {
    begin_value(w, key);
    nc__sbuf_puts(&w->sb, "null");
}

void nc__jw_str(nc__jw *w, const char *key, const char *s) {
    begin_value(w, key);
    if (s) put_string(&w->sb, s);
    else nc__sbuf_puts(&w->sb, "null");
}

void nc__jw_raw(nc__jw *w, const char *key, const char *json) {
    begin_value(w, key);
    nc__sbuf_puts(&w->sb, json);
}

nc_status nc__jw_finish(nc__jw *w, const char *what, char **text, size_t *len) {
    *text = NULL;
    if (w->depth != 0 || w->bad || (!w->sb.oom && !w->sb.p)) {
        nc__jw_free(w);
        return nc__error(w->sb.ctx, NC_ERR_STATE, "%s: internal error: malformed JSON writer calls", what);
    }
    nc_status st = nc__sbuf_check(&w->sb, what);
    if (st != NC_OK) {
        nc__jw_free(w);
        return st;
    }
    *text = w->sb.p;
    if (len) *len = w->sb.len;
    w->sb.p = NULL;
    nc__jw_free(w);
    return NC_OK;
}

void nc__jw_free(nc__jw *w) {
    nc__sbuf_free(&w->sb);
    w->depth = 0;
}
