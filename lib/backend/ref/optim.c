/* optim.c — the reference optimizers (torch.optim.SGD, Adam, AdamW, in torch 1.13's
 * operation order) and backend.h's table entries built on them: the global gradient
 * norm with the non-finite check, clipping, and one update over every tensor of a
 * parameter table, skipped when the step's record says a value was not finite. */
#include "backend/ref/ref.h"

#include <math.h>

void nc__ref_sgd_update(int nt, const nc__sgd_desc *d, size_t count, float *param, float *buf,
                        const float *grad) {
    // param, buf (or NULL when momentum == 0), grad (count); same op order as
    // torch.optim.SGD: g = grad + wd*param; buf = first ? g : m*buf + (1-damp)*g;
    // g = nesterov ? g + m*buf : buf; param -= lr*g
    const float lr = d->lr, mom = d->momentum, wd = d->weight_decay;
    const float keep = 1.0f - d->dampening;
    const int use_buf = mom != 0.0f && buf != NULL;
    const int first = d->first_step, nesterov = d->nesterov;
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) {
        float g = grad[i];
        if (wd != 0.0f) g = g + wd * param[i];
        if (use_buf) {
            const float b = first ? g : buf[i] * mom + keep * g;
            buf[i] = b;
            g = nesterov ? g + mom * b : b;
        }
        param[i] = param[i] - lr * g;
    }
}

void nc__ref_adam_update(int nt, const nc__adam_desc *d, size_t count, float *param, float *m, float *v,
                         const float *grad) {
    // param, m, v, grad (count); torch 1.13 _single_tensor_adam:
    // [AdamW: param *= 1 - lr*wd] [Adam: g += wd*param]; m = b1*m + (1-b1)*g;
    // v = b2*v + (1-b2)*g*g; param -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    const float lr = d->lr, b1 = d->beta1, b2 = d->beta2, eps = d->eps, wd = d->weight_decay;
    /* torch computes the bias corrections as Python floats (double) */
    const double bc1 = 1.0 - pow((double)b1, (double)d->step);
    const float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, (double)d->step));
    const float step_size = (float)((double)lr / bc1), decay = (float)(1.0 - (double)lr * (double)wd);
    const int decoupled = d->decoupled;
    PARALLEL_FOR_IF(count)
    for (size_t i = 0; i < count; i++) {
        float g = grad[i], p = param[i];
        if (wd != 0.0f) {
            if (decoupled)
                p = p * decay;
            else
                g = g + wd * p;
        }
        const float mi = m[i] * b1 + (1.0f - b1) * g;
        const float vi = v[i] * b2 + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

#define AT(base, e) ((float *)((char *)(base) + (e)->offset))

void nc__ref_grad_norm(int nt, const nc__param_entry *table, int count, nc__step_record *rec, const void *grads) {
    double total = 0.0;
    rec->bad = -1;
    for (int i = 0; i < count; i++) {
        const double ss = nc__ref_sum_squares(nt, table[i].count, AT(grads, &table[i]));
        if (!isfinite(ss) && rec->bad < 0) rec->bad = i;
        total += ss;
    }
    rec->sumsq = total;
    rec->finite = isfinite(rec->loss) && isfinite(total);
}

void nc__ref_clip_grads(int nt, const nc__param_entry *table, int count, float max_norm, void *grads,
                        const nc__step_record *rec) {
    if (!rec->finite) return;
    const double coef = (double)max_norm / (sqrt(rec->sumsq) + 1e-6); /* torch.nn.utils.clip_grad_norm_ */
    if (coef >= 1.0) return;
    for (int i = 0; i < count; i++) nc__ref_scale(nt, table[i].count, AT(grads, &table[i]), (float)coef);
}

void nc__ref_update(int nt, const nc__optim_desc *d, const nc__param_entry *table, int count, void *params,
                    void *s1, void *s2, const void *grads, const nc__step_record *rec) {
    if (rec && !rec->finite) return;
    for (int i = 0; i < count; i++) {
        const nc__param_entry *e = &table[i];
        if (d->kind == NC__OPTIM_SGD) {
            const nc__sgd_desc sd = {.lr = e->lr, .momentum = d->momentum, .dampening = d->dampening,
                                     .weight_decay = e->weight_decay, .nesterov = d->nesterov,
                                     .first_step = e->step == 1};
            nc__ref_sgd_update(nt, &sd, e->count, AT(params, e), d->momentum != 0.0f ? AT(s1, e) : NULL,
                               AT(grads, e));
        } else {
            const nc__adam_desc ad = {.lr = e->lr, .beta1 = d->beta1, .beta2 = d->beta2, .eps = d->eps,
                                      .weight_decay = e->weight_decay, .decoupled = d->kind == NC__OPTIM_ADAMW,
                                      .step = e->step};
            nc__ref_adam_update(nt, &ad, e->count, AT(params, e), AT(s1, e), AT(s2, e), AT(grads, e));
        }
    }
}
