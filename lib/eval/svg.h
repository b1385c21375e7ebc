/* svg.h — the SVG renderers behind nc_svg_* and the report's figures. They work on
 * plain arrays, so that a report can draw figures from the metrics it copied, and
 * append a whole SVG document to a text buffer (core/text.h). */
#ifndef NC_EVAL_SVG_H
#define NC_EVAL_SVG_H

#include "neurc.h"
#include "core/text.h"

#include <stdint.h>

/* Renderers: append a whole SVG document to sb (check sb->oom afterwards).
 * names may be NULL or hold NULL entries (the class index is used). */
void nc__svg_curves(nc__sbuf *sb, const nc_epoch_record *rec, int64_t n);
/* confusion: (K, K) row = true class, column = prediction. */
void nc__svg_confusion(nc__sbuf *sb, int K, const int64_t *confusion, const char *const *names, int normalize);
/* recall[K] (per-class accuracy), support[K] (true samples of each class). */
void nc__svg_per_class(nc__sbuf *sb, int K, const double *recall, const int64_t *support,
                       const char *const *names);

#endif
