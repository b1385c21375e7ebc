/* replay.c — main() for a fuzz target in the normal build (no libFuzzer): runs
 * LLVMFuzzerTestOneInput once on every file named on the command line, or in a
 * directory named there (not recursively, in name order), so that the committed
 * seeds (tests/fuzz/corpus/<target>/) and crash inputs (tests/fuzz/regress/<target>/)
 * are replayed by every test run. A crash or sanitizer report fails the test; an
 * unreadable file is an error (exit 1); an absent path is skipped (a target without
 * regression inputs has no regress/ folder). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16, size = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + size, 1, cap - size, f)) > 0) {
        size += got;
        if (size == cap) {
            unsigned char *more = realloc(buf, cap *= 2);
            if (!more) free(buf);
            buf = more;
        }
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs every regular file in dir; returns how many, or -1. */
static int run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files such as .gitkeep */
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
            if (!more) abort();
            names = more;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n]) abort();
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    int count = 0, rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (run_file(names[i]) != 0) rc = -1;
            count++;
        }
        free(names[i]);
    }
    free(names);
    return rc ? -1 : count;
}

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            if (errno != ENOENT) {
                perror(argv[i]);
                return 1;
            }
            printf("%s: absent, skipped\n", argv[i]);
            continue;
        }
        int k = S_ISDIR(sb.st_mode) ? run_dir(argv[i]) : run_file(argv[i]) == 0 ? 1 : -1;
        if (k < 0) return 1;
        printf("%s: %d input%s\n", argv[i], k, k == 1 ? "" : "s");
        total += k;
    }
    printf("%d inputs replayed without a crash\n", total);
    return 0;
}
