/* file.c — whole-file writes that never leave a half-written file behind: the data
 * goes to "<path>.tmp.XXXXXX" in the same directory, is fsync'ed, then renamed over
 * `path` and the directory fsync'ed. Readers see the old file or the new one. Also the
 * matching whole-file read with a size limit (nc__read_file). */
#include "io/file.h"
#include "core/context.h"
#include "core/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The process umask, read without changing it (umask() itself would race with other
 * threads); 022 when /proc is not there. */
static mode_t current_umask(void) {
    mode_t mask = 022;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC); /* no FILE: it would malloc */
    if (fd < 0) return mask;
    char text[4096]; /* "Umask:" is the second line */
    ssize_t n;
    do n = read(fd, text, sizeof text - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    text[n > 0 ? n : 0] = 0;
    const char *line = strstr(text, "\nUmask:");
    unsigned v;
    if (line && sscanf(line + 1, "Umask: %o", &v) == 1) mask = (mode_t)(v & 0777);
    return mask;
}

/* Progress of a file being written (NC_PHASE_SAVE, in bytes), or none. */
typedef struct write_report {
    nc_context *ctx;
    nc_progress p;
    const char *fn;
} write_report;

#define WRITE_CANCELLED (-2)

/* 0, -1 with errno set, or WRITE_CANCELLED (the callback asked to stop; message set).
 * With a report the bytes go out in 4 MiB pieces, each reported. */
static int write_all(int fd, const unsigned char *p, size_t size, write_report *rep) {
    const size_t piece = rep ? ((size_t)4 << 20) : ((size_t)1 << 30);
    if (rep && nc__progress(rep->ctx, &rep->p, rep->fn, "bytes") != NC_OK) return WRITE_CANCELLED;
    while (size > 0) {
        size_t chunk = size > piece ? piece : size;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        size -= (size_t)k;
        if (rep) {
            rep->p.done += k;
            if (nc__progress(rep->ctx, &rep->p, rep->fn, "bytes") != NC_OK) return WRITE_CANCELLED;
        }
    }
    return 0;
}

/* fsync of the directory holding `path`, so that the rename itself is durable.
 * Cuts `path` (a copy the caller no longer needs) at its last '/': no allocation, so
 * nothing can fail for memory once the file is in place. */
static int sync_parent_dir(char *path) {
    char *slash = strrchr(path, '/');
    const char *dir = ".";
    if (slash) {
        slash[slash == path ? 1 : 0] = 0; /* "/x" -> "/" */
        dir = path;
    }
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -1;
    } else {
        /* some file systems cannot sync a directory; that is not a failed write */
        while ((rc = fsync(fd)) != 0 && errno == EINTR) {
        }
        if (rc != 0 && (errno == EINVAL || errno == ENOTSUP)) rc = 0;
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

nc_status nc__write_file_atomic(nc_context *ctx, const char *path, const void *data, size_t size) {
    return nc__write_file_atomic_reported(ctx, path, data, size, NULL);
}

nc_status nc__write_file_atomic_reported(nc_context *ctx, const char *path, const void *data, size_t size,
                                         const char *fn) {
    if (!ctx) return NC_ERR_NULL;
    if (!path || (!data && size > 0))
        return nc__error(ctx, NC_ERR_NULL, "nc__write_file_atomic: NULL %s",
                         path ? "data" : "path");
    if (path[0] == 0)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "cannot write to an empty path");

    static const char suffix[] = ".tmp.XXXXXX";
    size_t n = strlen(path);
    char *tmp = nc__alloc(ctx, n + sizeof suffix);
    if (!tmp) return nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, suffix, sizeof suffix);

    const char *what;
    int e;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        e = errno;
        nc_status st = nc__error(ctx, NC_ERR_IO, "%s: cannot create temporary file: %s", path,
                                 strerror(e));
        nc__free(ctx, tmp);
        return st;
    }
    /* mkstemp makes the file 0600: give it the mode of the file it replaces, or the
     * mode a plain fopen would have given a new file */
    struct stat sb;
    mode_t mode = (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) ? (sb.st_mode & 0777)
                                                                 : (0666 & ~current_umask());
    what = "cannot set the mode";
    if (fchmod(fd, mode) != 0) goto fail_open;
    what = "cannot write";
    write_report rep = {ctx, nc__progress_begin(NC_PHASE_SAVE, (int64_t)size, path), fn};
    int wrote = write_all(fd, data, size, fn && nc__progress_wanted(ctx) ? &rep : NULL);
    if (wrote == WRITE_CANCELLED) {
        close(fd);
        unlink(tmp);
        nc__free(ctx, tmp);
        return NC_ERR_CANCELLED;
    }
    if (wrote != 0) goto fail_open;
    what = "cannot sync";
    for (;;) {
        if (fsync(fd) == 0) break;
        if (errno != EINTR) goto fail_open;
    }
    what = "cannot close";
    if (close(fd) != 0) {
        fd = -1;
        goto fail_closed;
    }
    fd = -1;
    what = "cannot rename into place";
    if (rename(tmp, path) != 0) goto fail_closed;
    int synced = sync_parent_dir(tmp) == 0;
    e = errno;
    nc__free(ctx, tmp);
    if (!synced)
        return nc__error(ctx, NC_ERR_IO, "%s: written, but cannot sync its directory: %s", path, strerror(e));
    return NC_OK;

fail_open:
    e = errno;
    close(fd);
    errno = e;
fail_closed:
    e = errno;
    unlink(tmp);
    nc_status st = nc__error(ctx, NC_ERR_IO, "%s: %s (temporary file '%s'): %s", path, what, tmp,
                             strerror(e));
    nc__free(ctx, tmp);
    return st;
}

nc_status nc__read_file(nc_context *ctx, const char *path, size_t max_bytes, nc_status too_large, const char *what,
                        char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) return nc__error(ctx, NC_ERR_IO, "%s: %s", path, strerror(errno));
    nc_status st = NC_OK;
    char *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = nc__error(ctx, NC_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = nc__error(ctx, NC_ERR_IO, "%s: not a regular file%s", path, S_ISDIR(sb.st_mode) ? " (a directory)" : "");
        goto done;
    }
    if (sb.st_size < 0 || (uintmax_t)sb.st_size > max_bytes) {
        st = nc__error(ctx, too_large, "%s: %jd bytes, over the %s limit of %zu bytes", path, (intmax_t)sb.st_size,
                       what, max_bytes);
        goto done;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    buf = nc__alloc(ctx, n + 1);
    if (!buf) {
        st = nc__error(ctx, NC_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
    }
    while (got < n) { /* a file that shrank meanwhile ends early: its bytes are what was read */
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = nc__error(ctx, NC_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    buf[got] = 0;
    *data = buf;
    *size = got;
    buf = NULL;
done:
    nc__free(ctx, buf);
    close(fd);
    return st;
}
