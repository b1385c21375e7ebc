/* common.c — timing, median and memory helpers of nc-bench. Memory is the process's
 * resident set: the current size from /proc/self/statm and the high-water mark
 * (VmHWM). Both cover the whole process, which is why nc-bench should run one
 * workload per process. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

double bench_rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f) return 0.0;
    int ok = fscanf(f, "%ld %ld", &pages, &resident) == 2;
    fclose(f);
    return ok ? (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0) : 0.0;
}

/* VmHWM of /proc/self/status: the resident high-water mark of this process image.
 * getrusage's ru_maxrss is the fallback only: Linux carries it across execve, so a
 * program started by a large process (a Python interpreter with PyTorch loaded)
 * would report its parent's peak. */
double bench_peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && kib < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0 && sscanf(line + 6, "%ld", &kib) != 1) kib = -1;
    if (f) fclose(f);
    if (kib >= 0) return (double)kib / 1024.0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

FILE *bench_json_open(const char *path) {
    if (strcmp(path, "-") == 0) return stdout;
    FILE *f = fopen(path, "w");
    if (!f) perror(path);
    return f;
}

void bench_json_close(FILE *f) {
    if (f && f != stdout) fclose(f);
}
