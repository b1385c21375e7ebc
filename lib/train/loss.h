/* loss.h — the losses' semantics and configuration. The trainer runs them on the
 * backend (backend.h's `loss`, one call per step); nc__loss_compute is the host entry
 * to the reference implementation, for tests and golden checks. */
#ifndef NC_TRAIN_LOSS_H
#define NC_TRAIN_LOSS_H

#include "neurc.h"
#include "backend/backend.h"

#include <stdint.h>

/* Softmax cross-entropy per head, mean over the batch, summed over heads.
 * logits (N, H*K) head-major; labels (N, H) each in [0, K) (checked: out of range ->
 * NC_ERR_INVALID_ARGUMENT naming sample and head). dlogits (N, H*K) = (softmax -
 * onehot) / N (may be NULL). *loss in double; non-finite logits give a non-finite
 * loss. *correct counts top-1 hits (first maximum wins, as torch.argmax). */
nc_status nc__softmax_xent(nc_context *ctx, const float *logits, const int32_t *labels, int64_t n, int heads,
                           int classes, float *dlogits, double *loss, int *correct);

/* The loss of a trainer (nc_trainer_options' loss fields, arrays owned by the
 * trainer). */
typedef struct nc__loss_config {
    nc_loss_kind kind;
    float label_smoothing;       /* CE */
    const float *class_weights;  /* CE: [heads * classes] (expanded) or NULL */
    const float *head_weights;   /* [heads] or NULL */
    int32_t ignore_label;        /* CE */
    const float *pos_weight;     /* BCE: [heads * classes] or NULL */
} nc__loss_config;

/* The configured loss, PyTorch's semantics per head (CE: weighted mean over the
 * non-ignored samples of the head, label smoothing as torch 1.13's
 * cross_entropy(label_smoothing=); BCE: mean over all n*classes of the head of
 * binary_cross_entropy_with_logits(pos_weight=)), summed over heads with head
 * weights. labels: CE (n, heads) class indices (or ignore_label); BCE (n, heads,
 * classes) 0/1. dlogits (n, heads*classes) may be NULL. *correct counts CE top-1
 * hits over counted samples or BCE outputs with (logit > 0) == target; *counted the
 * samples x heads (CE, ignored excluded) or outputs (BCE). A head whose samples are
 * all ignored contributes 0 (torch gives NaN; we skip it). Errors: labels out of
 * range -> NC_ERR_INVALID_ARGUMENT naming sample and head.
 *
 * Exactly, per CE head with class weights w (1s when NULL), W = sum_i w[y_i] over the
 * counted samples, eps = label_smoothing, K = classes, lse_i = logsumexp(z_i):
 *   loss_h = [ (1-eps) sum_i w[y_i] (lse_i - z_i[y_i])
 *              + (eps/K) sum_i sum_k w[k] (lse_i - z_ik) ] / W
 * (checked against torch 1.13 by tests/fixtures/make_loss_golden.py). A CE head with
 * W == 0 (all ignored, or only zero-weight labels) contributes 0 and zero gradient,
 * its hits still counted. Per BCE output: t ? pw softplus(-x) : softplus(x).
 * cfg, logits, labels, loss NULL -> NC_ERR_NULL; n < 0, heads or classes < 1, an
 * unknown kind, label_smoothing outside [0, 1] or a BCE target other than 0/1 ->
 * NC_ERR_INVALID_ARGUMENT. Nothing is written on error. Non-finite logits: CE, a
 * NaN or +inf logit gives a non-finite loss, a -inf logit is a probability of 0 (a
 * finite loss unless it is the label's or label smoothing is on), as torch; BCE, any
 * non-finite logit gives NaN, as torch. The weights are not checked (the trainer
 * validates its options). */
nc_status nc__loss_compute(nc_context *ctx, const nc__loss_config *cfg, const float *logits, const int32_t *labels,
                           int64_t n, int heads, int classes, float *dlogits, double *loss, int *correct,
                           int *counted);

/* The backend descriptor of a configured loss; the weight arrays are given
 * separately because a backend needs them in its own memory. */
nc__loss_desc nc__loss_desc_of(const nc__loss_config *cfg, int64_t n, int heads, int classes, nc__dtype dtype,
                               float grad_scale, const void *class_weights, const void *head_weights,
                               const void *pos_weight);

/* The label check of nc__loss_compute alone (CE: each label in [0, classes) or the
 * ignore label; BCE: each target 0 or 1), so callers can reject a batch before any
 * state changes. NC_ERR_INVALID_ARGUMENT naming sample, head (and class). */
nc_status nc__loss_check_labels(nc_context *ctx, const nc__loss_config *cfg, const int32_t *labels, int64_t n,
                                int heads, int classes);

/* NC_ERR_INVALID_ARGUMENT naming the first label outside [0, classes). */
nc_status nc__check_labels(nc_context *ctx, const int32_t *labels, int64_t n, int heads, int classes);

#endif
