/* json.h — JSON for the library's files (safetensors headers, model metadata,
 * checkpoints, reports) with every byte on the context's allocator hooks: a strict
 * RFC 8259 parser that builds cJSON's public node type (read it with cJSON's
 * accessors — cJSON_GetObjectItemCaseSensitive, cJSON_GetArrayItem, cJSON_Is* —
 * which never allocate), and a streaming writer on nc__sbuf. lib/ never calls a cJSON
 * function that allocates: those use cJSON's process-wide hooks (docs/design.md,
 * "Dependencies"); tests/check_symbols.sh enforces it. */
#ifndef NC_CORE_JSON_H
#define NC_CORE_JSON_H

#include "neurc.h"
#include "core/text.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays and objects either side accepts. */
#define NC__JSON_MAX_DEPTH 64

/* Parses one JSON value from text[0..len) (NUL bytes are not special) into *out,
 * freed with nc__json_delete. With end == NULL only whitespace may follow the value;
 * otherwise *end is the first byte after it. Duplicate keys are kept, in order (as
 * cJSON does). Strings are UTF-8 with escapes decoded; "\u0000", unpaired surrogates
 * and raw control characters are errors. Returns NC_ERR_FORMAT ("JSON: <what> at
 * byte <n>") or NC_ERR_OUT_OF_MEMORY, message recorded, *out NULL. */
nc_status nc__json_parse(nc_context *ctx, const char *text, size_t len, const char **end, cJSON **out);
/* Frees a tree from nc__json_parse (NULL-safe). */
void nc__json_delete(nc_context *ctx, cJSON *item);

/* A JSON text being written. Each call adds one value: `key` names it inside an
 * object and must be NULL inside an array or at the top. Out of memory is sticky and
 * reported once by nc__jw_finish, so the calls need no checks of their own. Pretty
 * output looks like cJSON_Print's: objects one member per line indented by tabs,
 * arrays on one line. */
typedef struct nc__jw {
    nc__sbuf sb;
    int pretty;
    int depth;                              /* open containers */
    int bad;                                /* misuse (too deep, unbalanced) */
    unsigned char object[NC__JSON_MAX_DEPTH]; /* container d is an object */
    unsigned char empty[NC__JSON_MAX_DEPTH];  /* container d has no value yet */
} nc__jw;

void nc__jw_init(nc__jw *w, nc_context *ctx, int pretty);
void nc__jw_object(nc__jw *w, const char *key); /* opens {, closed by nc__jw_end */
void nc__jw_array(nc__jw *w, const char *key);  /* opens [, closed by nc__jw_end */
void nc__jw_end(nc__jw *w);
/* A number, shortest text that reads back exactly; NaN and infinities become null. */
void nc__jw_num(nc__jw *w, const char *key, double v);
void nc__jw_int(nc__jw *w, const char *key, int64_t v);
void nc__jw_uint(nc__jw *w, const char *key, uint64_t v);
void nc__jw_bool(nc__jw *w, const char *key, int v);
void nc__jw_null(nc__jw *w, const char *key);
/* A string, escaped (NULL writes null). */
void nc__jw_str(nc__jw *w, const char *key, const char *s);
/* Text that is already one JSON value, copied as it is. */
void nc__jw_raw(nc__jw *w, const char *key, const char *json);
/* Ends the text: *text (NUL-terminated, nc__free it) and its length (len may be
 * NULL). NC_ERR_OUT_OF_MEMORY with a message naming `what`; the writer is freed
 * either way. */
nc_status nc__jw_finish(nc__jw *w, const char *what, char **text, size_t *len);
/* Drops the text (after a failure elsewhere). */
void nc__jw_free(nc__jw *w);

#endif
