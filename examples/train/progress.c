/* progress.c — what nc-train shows while it trains: on a terminal (stderr is a TTY)
 * one line redrawn with \r at most 10 times a second (epoch, batch i/n, running loss
 * and accuracy, images/s, ETA); otherwise a plain line every --log-every batches.
 * Also the small shared helpers: timing, error printing, directories. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "train.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void format_eta(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%02ld:%02ld", t / 60, t % 60);
}

void progress_start_epoch(progress *p, int64_t epoch, int64_t epochs, int64_t batches) {
    p->epoch = epoch;
    p->epochs = epochs;
    p->batches = batches;
    p->t0 = now_seconds();
    p->last_draw = 0.0;
    p->drawn = 0;
}

void progress_batch(progress *p, int64_t batch, double loss, double acc, int64_t images) {
    if (p->quiet) return;
    double t = now_seconds(), el = t - p->t0;
    int last = batch == p->batches;
    if (p->tty) {
        if (!last && t - p->last_draw < 0.1) return;
        p->last_draw = t;
        char eta[32];
        format_eta(batch > 0 ? el / (double)batch * (double)(p->batches - batch) : -1.0, eta, sizeof eta);
        int width = 24, fill = p->batches > 0 ? (int)(width * batch / p->batches) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\repoch %lld/%lld [%s] %lld/%lld  loss %.4f  acc %5.1f%%  %6.0f img/s  ETA %s \x1b[K",
                (long long)p->epoch, (long long)p->epochs, bar, (long long)batch, (long long)p->batches, loss,
                100.0 * acc, el > 0 ? (double)images / el : 0.0, eta);
        fflush(stderr);
        p->drawn = 1;
    } else if (batch % p->log_every == 0 || last) {
        char eta[32];
        format_eta(batch > 0 ? el / (double)batch * (double)(p->batches - batch) : -1.0, eta, sizeof eta);
        printf("epoch %lld/%lld batch %lld/%lld loss %.4f acc %.4f %.1f img/s eta %s\n", (long long)p->epoch,
               (long long)p->epochs, (long long)batch, (long long)p->batches, loss, acc,
               el > 0 ? (double)images / el : 0.0, eta);
        fflush(stdout);
    }
}

void progress_end_epoch(progress *p) {
    if (p->tty && p->drawn) {
        fprintf(stderr, "\r\x1b[K");
        fflush(stderr);
    }
    p->drawn = 0;
}

int fail_lib(nc_context *ctx, const char *what, nc_status st) {
    if (st == NC_ERR_CANCELLED) { /* Ctrl-C reached a library call (main.c, stop_on_sigint) */
        fprintf(stderr, PROG ": interrupted while %s\n", what);
        return EXIT_INTERRUPTED;
    }
    const char *msg = nc_context_last_error(ctx);
    fprintf(stderr, PROG ": %s: %s\n", what, msg && msg[0] ? msg : nc_status_str(st));
    return EXIT_FAIL;
}

int fail_msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

/* mkdir -p; 0 on success, -1 with errno set. */
int make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char keep = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        struct stat sb;
        if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        buf[i] = keep;
    }
    return 0;
}

int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* buf = "<dir>/<name>"; 0, or -1 (message printed) when it does not fit. */
int path_join(char *buf, size_t size, const char *dir, const char *name) {
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, PROG ": path too long: %s/%s\n", dir, name);
        return -1;
    }
    return 0;
}

/* Finishes a file written to `tmp`: flushed, synced, closed and renamed over `path`,
 * so `path` holds the old file or the whole new one. 0, or EXIT_FAIL (message
 * printed, `tmp` removed). */
int close_atomic(FILE *f, const char *tmp, const char *path) {
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    bad = fclose(f) != 0 || bad;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return fail_msg("cannot write %s: %s", path, strerror(e));
    }
    return 0;
}
