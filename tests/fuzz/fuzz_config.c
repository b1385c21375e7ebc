/* fuzz_config.c — nc-train's config.json (examples/train/options.c): the JSON read
 * by config_parse, merged over the defaults by cfg_fill as `resume` does, then every
 * option converted by cfg_resolve (a bad value prints a usage message to stderr). */
#include "fuzz.h"
#include "train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, bytes, size);
    text[size] = '\0';
    char **keys, **vals, err[512];
    int n;
    int parsed = config_parse(text, "config.json", &keys, &vals, &n, err, sizeof err);
    if (getenv("NC_FUZZ_VERBOSE")) fprintf(stderr, "config_parse: %d %s\n", parsed, parsed ? err : "");
    if (parsed == 0) {
        const char *cl[OPT_COUNT] = {0};
        cl[OPT_MODE] = "resume";
        cfg c;
        memset(&c, 0, sizeof c);
        cfg_fill(&c, cl, keys, vals, n);
        int rc = cfg_resolve(&c);
        if (getenv("NC_FUZZ_VERBOSE")) fprintf(stderr, "cfg_resolve: %d\n", rc);
        config_free(keys, vals, n);
    }
    free(text);
    return 0;
}
