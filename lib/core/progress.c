/* progress.c — the context's progress callback: setting it, and the one helper every
 * reporting call uses to call it and turn "stop" into NC_ERR_CANCELLED. */
#include "core/progress.h"
#include "core/context.h"

#include <math.h>

nc_status nc_context_set_progress(nc_context *ctx, nc_progress_fn fn, void *user) {
    if (!ctx) return NC_ERR_NULL;
    ctx->progress = fn;
    ctx->progress_user = fn ? user : NULL;
    return NC_OK;
}

nc_progress nc__progress_begin(nc_phase phase, int64_t total, const char *what) {
    return (nc_progress){.struct_size = sizeof(nc_progress),
                         .phase = phase,
                         .done = 0,
                         .total = total,
                         .epoch = -1,
                         .loss = NAN,
                         .metric = NAN,
                         .what = what};
}

int nc__progress_wanted(const nc_context *ctx) { return ctx && ctx->progress; }

nc_status nc__progress(nc_context *ctx, const nc_progress *p, const char *fn, const char *unit) {
    if (!ctx || !ctx->progress) return NC_OK;
    if (ctx->progress(p, ctx->progress_user) == NC_PROGRESS_CONTINUE) return NC_OK;
    if (p->total >= 0)
        return nc__error(ctx, NC_ERR_CANCELLED, "%s: cancelled by the progress callback after %lld of %lld %s", fn,
                         (long long)p->done, (long long)p->total, unit);
    return nc__error(ctx, NC_ERR_CANCELLED, "%s: cancelled by the progress callback after %lld %s", fn,
                     (long long)p->done, unit);
}
