/* loss.c — the trainer's side of the losses: label checks (made on the host before a
 * batch changes any state) and nc__loss_compute, the host entry to the reference
 * implementation (backend/ref/loss.c, which every backend's `loss` is compared with)
 * that tests check against PyTorch. The trainer itself runs the backend's `loss`. */
#include "train/loss.h"
#include "backend/ref/ref.h"
#include "core/context.h"

#include <math.h>
#include <stddef.h>

nc_status nc__check_labels(nc_context *ctx, const int32_t *labels, int64_t n, int heads, int classes) {
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < heads; h++) {
            int32_t y = labels[i * heads + h];
            if (y < 0 || y >= classes)
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                 "label %d of sample %lld (head %d) is outside [0, %d)", (int)y, (long long)i, h,
                                 classes);
        }
    return NC_OK;
}

nc_status nc__softmax_xent(nc_context *ctx, const float *logits, const int32_t *labels, int64_t n, int heads,
                           int classes, float *dlogits, double *loss, int *correct) {
    nc_status st = nc__check_labels(ctx, labels, n, heads, classes); /* no ignore label here */
    if (st != NC_OK) return st;
    const nc__loss_config plain = {.kind = NC_LOSS_CROSS_ENTROPY, .ignore_label = -1};
    /* the default CE: mean over the batch per head, summed over heads */
    return nc__loss_compute(ctx, &plain, logits, labels, n, heads, classes, dlogits, loss, correct, NULL);
}

/* ------------------------------------------------------------------ entry */

nc_status nc__loss_check_labels(nc_context *ctx, const nc__loss_config *cfg, const int32_t *labels, int64_t n,
                                int heads, int classes) {
    if (cfg->kind == NC_LOSS_BCE_WITH_LOGITS) {
        for (int64_t i = 0; i < n; i++)
            for (int h = 0; h < heads; h++)
                for (int k = 0; k < classes; k++) {
                    int32_t t = labels[((size_t)i * (size_t)heads + (size_t)h) * (size_t)classes + (size_t)k];
                    if (t != 0 && t != 1)
                        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                         "BCE target %d of sample %lld (head %d, class %d) is not 0 or 1", (int)t,
                                         (long long)i, h, k);
                }
        return NC_OK;
    }
    const int32_t ignore = cfg->ignore_label;
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < heads; h++) {
            int32_t y = labels[(size_t)i * (size_t)heads + (size_t)h];
            if (y != ignore && (y < 0 || y >= classes))
                return nc__error(ctx, NC_ERR_INVALID_ARGUMENT,
                                 "label %d of sample %lld (head %d) is outside [0, %d) and is not the ignore "
                                 "label %d",
                                 (int)y, (long long)i, h, classes, (int)ignore);
        }
    return NC_OK;
}

nc_status nc__loss_compute(nc_context *ctx, const nc__loss_config *cfg, const float *logits, const int32_t *labels,
                           int64_t n, int heads, int classes, float *dlogits, double *loss, int *correct,
                           int *counted) {
    if (!cfg || !logits || !labels || !loss) return nc__error(ctx, NC_ERR_NULL, "loss: NULL argument");
    if (n < 0 || heads < 1 || classes < 1)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "loss: bad sizes (n %lld, heads %d, classes %d)",
                         (long long)n, heads, classes);
    nc_status st = cfg->kind == NC_LOSS_CROSS_ENTROPY || cfg->kind == NC_LOSS_BCE_WITH_LOGITS
                       ? nc__loss_check_labels(ctx, cfg, labels, n, heads, classes) /* before writing anything */
                       : NC_OK;
    if (st != NC_OK) return st;
    if (cfg->kind != NC_LOSS_CROSS_ENTROPY && cfg->kind != NC_LOSS_BCE_WITH_LOGITS)
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "loss: unknown loss kind %d", (int)cfg->kind);
    if (!(cfg->label_smoothing >= 0.0f && cfg->label_smoothing <= 1.0f))
        return nc__error(ctx, NC_ERR_INVALID_ARGUMENT, "loss: label smoothing %g is outside [0, 1]",
                         (double)cfg->label_smoothing);
    const nc__loss_desc d = nc__loss_desc_of(cfg, n, heads, classes, NC__DTYPE_F32, 1.0f, cfg->class_weights,
                                             cfg->head_weights, cfg->pos_weight);
    nc__step_record rec;
    nc__ref_loss(&d, dlogits, &rec, logits, labels);
    *loss = rec.loss;
    if (correct) *correct = rec.correct;
    if (counted) *counted = rec.counted;
    return NC_OK;
}

nc__loss_desc nc__loss_desc_of(const nc__loss_config *cfg, int64_t n, int heads, int classes, nc__dtype dtype,
                               float grad_scale, const void *class_weights, const void *head_weights,
                               const void *pos_weight) {
    return (nc__loss_desc){.kind = cfg->kind, .n = n, .heads = heads, .classes = classes, .dtype = dtype,
                           .label_smoothing = cfg->label_smoothing, .ignore_label = cfg->ignore_label,
                           .class_weights = class_weights, .head_weights = head_weights,
                           .pos_weight = pos_weight, .grad_scale = grad_scale};
}
