/* status.c — status strings from the header's one table, version queries, and the
 * small shape formatting helper every error message uses. */
#include "neurc.h"
#include "nc_config.h"
#include "core/shape.h"

#include <stdio.h>

const char *nc_status_str(nc_status status) {
    switch (status) {
#define NC__STATUS_CASE(name, value, text) \
    case name:                             \
        return text;
        NC_STATUS_TABLE(NC__STATUS_CASE)
#undef NC__STATUS_CASE
    }
    return "unknown status";
}

const char *nc_version_string(void) { return NC_VERSION_STRING; }

int nc_version(void) { return NC_VERSION; }

char *nc__shape_str(const nc__shape *s, char *buf, size_t size) {
    size_t used = 0;
    if (size == 0) return buf;
    buf[0] = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < s->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)s->d[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}
