/* loss.h — losses computed on the host from downloaded logits (they are small:
 * batch x outputs), returning the gradient that backward uploads. */
#ifndef NC_TRAIN_LOSS_H
#define NC_TRAIN_LOSS_H

#include "neurc.h"

#include <stdint.h>

/* Softmax cross-entropy per head, mean over the batch, summed over heads.
 * logits (N, H*K) head-major; labels (N, H) each in [0, K) (checked: out of range ->
 * NC_ERR_INVALID_ARGUMENT naming sample and head). dlogits (N, H*K) = (softmax -
 * onehot) / N (may be NULL). *loss in double; non-finite logits give a non-finite
 * loss. *correct counts top-1 hits (first maximum wins, as torch.argmax). */
nc_status nc__softmax_xent(nc_context *ctx, const float *logits, const int32_t *labels, int64_t n, int heads,
                           int classes, float *dlogits, double *loss, int *correct);

/* NC_ERR_INVALID_ARGUMENT naming the first label outside [0, classes). */
nc_status nc__check_labels(nc_context *ctx, const int32_t *labels, int64_t n, int heads, int classes);

#endif
