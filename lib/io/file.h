/* file.h — whole-file helpers shared by every folder that reads or writes files
 * (io/, data/, eval/): an atomic write that never leaves a half-written file behind,
 * and a whole-file read with a size limit. Errors name the path. */
#ifndef NC_IO_FILE_H
#define NC_IO_FILE_H

#include "neurc.h"

#include <stddef.h>

/* Writes `size` bytes to `path` atomically (temp file, fsync, rename, fsync dir).
 * A replaced file keeps its permission bits; a new one gets 0666 & ~umask. On any
 * failure the temporary file is removed, `path` is left as it was, and the status is
 * NC_ERR_IO with the path and strerror(errno) in the message. */
nc_status nc__write_file_atomic(nc_context *ctx, const char *path, const void *data, size_t size);
/* The same, reporting NC_PHASE_SAVE progress in bytes to the context's callback (fn
 * names the public call in the message). When the callback stops it the temporary
 * file is removed, `path` is left as it was, and the status is NC_ERR_CANCELLED. */
nc_status nc__write_file_atomic_reported(nc_context *ctx, const char *path, const void *data, size_t size,
                                         const char *fn);
/* Reads the whole regular file `path` into a new NUL-terminated buffer (*data, freed
 * with nc__free; *size excludes the NUL). A file over max_bytes gives `too_large`
 * with "<path>: N bytes, over the <what> limit of M bytes"; open/stat/read failures
 * and non-regular files give NC_ERR_IO naming the path. */
nc_status nc__read_file(nc_context *ctx, const char *path, size_t max_bytes, nc_status too_large, const char *what,
                        char **data, size_t *size);

#endif
