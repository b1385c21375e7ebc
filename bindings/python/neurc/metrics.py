"""Classification metrics (one head), temperature scaling, decision thresholds and the
per-label ROC-AUC of multi-label (sigmoid) outputs."""

import math
from collections import namedtuple
from ctypes import byref, c_double, c_float, c_void_p

from . import _buffers as B
from ._lib import encode, lib, nc_binary_stats
from .core import _ContextObject, _ctx_of

MACRO = -1     # class argument: unweighted mean over classes
WEIGHTED = -2  # class argument: mean weighted by class support


def _logits_labels(logits, labels, num_classes, head, num_heads):
    lo = B.as_input(logits, "logits", "f")
    la = B.as_input(labels, "labels", "i")
    if len(lo.shape) == 2:
        rows, width = lo.shape
    elif len(lo.shape) == 1 and num_classes:
        rows, width = lo.count // max(num_heads * num_classes, 1), num_heads * num_classes
    else:
        raise ValueError("logits must be 2-D (n, heads * classes), got shape %s" % (lo.shape,))
    if num_heads < 1:
        raise ValueError("num_heads must be >= 1")
    if num_classes is None:
        if width % num_heads:
            raise ValueError("logits width %d is not a multiple of num_heads %d" % (width, num_heads))
        num_classes = width // num_heads
    if width != num_heads * num_classes:
        raise ValueError("logits width %d != num_heads %d x num_classes %d" % (width, num_heads, num_classes))
    if not 0 <= head < num_heads:
        raise ValueError("head %d out of range (%d heads)" % (head, num_heads))
    if la.count != rows * num_heads:
        raise ValueError("labels: need %d values (%d samples x %d heads), got %d"
                         % (rows * num_heads, rows, num_heads, la.count))
    return lo, la, rows, num_classes


class Metrics(_ContextObject):
    """Metrics of one head computed from logits (n, heads * classes) and labels (n or
    (n, heads)). Accessors mirror the C API: accuracy, top_k(k), precision(cls),
    recall(cls), fbeta(cls, beta), f1(cls), balanced_accuracy, roc_auc(cls), log_loss,
    ece(bins), confusion(truth, pred), confusion_matrix(). cls may be an index or
    MACRO / WEIGHTED (or the strings "macro" / "weighted")."""

    _kind = "metrics"

    def __init__(self, logits, labels, num_classes=None, head=0, num_heads=1, ignore_label=-100,
                 class_names=None, context=None):
        ctx = _ctx_of(context)
        self.context = ctx
        lo, la, rows, k = _logits_labels(logits, labels, num_classes, head, num_heads)
        h = c_void_p()
        stride = num_heads * k
        self._check(lib.nc_metrics_compute(ctx._h, (lo.address + 4 * head * k) if rows else None, stride,
                                           (la.address + 4 * head) if rows else None, num_heads, rows, k,
                                           ignore_label, byref(h)), "nc_metrics_compute")
        self._own(h.value, lib.nc_metrics_destroy, [ctx])
        self.class_names = list(class_names) if class_names is not None else None

    @staticmethod
    def _cls(cls):
        return {"macro": MACRO, "weighted": WEIGHTED}.get(cls, cls)

    @property
    def count(self):
        return lib.nc_metrics_count(self._h)

    @property
    def num_classes(self):
        return lib.nc_metrics_num_classes(self._h)

    def confusion(self, truth, pred):
        return lib.nc_metrics_confusion(self._h, truth, pred)

    def confusion_matrix(self):
        """Rows: true class, columns: predicted class (nested lists or numpy int64)."""
        k = self.num_classes
        rows = [[self.confusion(t, p) for p in range(k)] for t in range(k)]
        if B.HAVE_NUMPY:
            return B.np.array(rows, dtype="int64").reshape(k, k)
        return rows

    def top_k(self, k=1):
        return lib.nc_metrics_top_k(self._h, k)

    @property
    def accuracy(self):
        """Top-1 accuracy from the confusion matrix (first maximum logit)."""
        n = self.count
        if n == 0:
            return math.nan
        return sum(self.confusion(i, i) for i in range(self.num_classes)) / n

    def precision(self, cls=MACRO):
        return lib.nc_metrics_precision(self._h, self._cls(cls))

    def recall(self, cls=MACRO):
        return lib.nc_metrics_recall(self._h, self._cls(cls))

    def fbeta(self, cls=MACRO, beta=1.0):
        return lib.nc_metrics_fbeta(self._h, self._cls(cls), beta)

    def f1(self, cls=MACRO):
        return self.fbeta(cls, 1.0)

    @property
    def balanced_accuracy(self):
        return lib.nc_metrics_balanced_accuracy(self._h)

    def roc_auc(self, cls=MACRO):
        return lib.nc_metrics_roc_auc(self._h, self._cls(cls))

    @property
    def log_loss(self):
        return lib.nc_metrics_log_loss(self._h)

    def ece(self, bins=15):
        return lib.nc_metrics_ece(self._h, bins)

    def as_dict(self):
        """The aggregates as a dict (for history tables and JSON)."""
        return {"count": self.count, "accuracy": self.accuracy, "top5": self.top_k(5),
                "balanced_accuracy": self.balanced_accuracy, "macro_precision": self.precision(MACRO),
                "macro_recall": self.recall(MACRO), "macro_f1": self.f1(MACRO), "weighted_f1": self.f1(WEIGHTED),
                "roc_auc": self.roc_auc(MACRO), "log_loss": self.log_loss, "ece": self.ece(15)}

    def per_class(self):
        """[(name, precision, recall, f1, support)] for every class."""
        k = self.num_classes
        names = self.class_names or [str(i) for i in range(k)]
        return [(names[c], self.precision(c), self.recall(c), self.f1(c),
                 sum(self.confusion(c, p) for p in range(k))) for c in range(k)]

    def __repr__(self):
        if self.closed:
            return "<neurc.Metrics closed>"
        return "<neurc.Metrics n=%d accuracy=%.4f macro_f1=%.4f>" % (self.count, self.accuracy, self.f1())

    def plot_confusion(self, path=None, normalize=True, class_names=None):
        from .plots import plot_confusion
        return plot_confusion(self, path, normalize=normalize, class_names=class_names)


def calibrate_temperature(logits, labels, num_classes=None, head=0, num_heads=1, ignore_label=-100, context=None):
    """The temperature T minimising the cross-entropy of logits / T (a float)."""
    ctx = _ctx_of(context)
    lo, la, rows, k = _logits_labels(logits, labels, num_classes, head, num_heads)
    t = c_float()
    from .data import _raise
    _raise(lib.nc_calibrate_temperature(ctx._h, (lo.address + 4 * head * k) if rows else None, num_heads * k,
                                        (la.address + 4 * head) if rows else None, num_heads, rows, k,
                                        ignore_label, byref(t)), ctx, "nc_calibrate_temperature")
    return t.value


BinaryStats = namedtuple("BinaryStats", "tp fp tn fn precision recall fbeta")
RULES = {"max_fbeta": 0, "target_precision": 1}


def _scores(scores, positive):
    s = B.as_input(scores, "scores", "f")
    p = B.as_input(positive, "positive", "i")
    if s.count != p.count:
        raise ValueError("scores and positive differ in length (%d, %d)" % (s.count, p.count))
    return s, p


def threshold_select(scores, positive, rule="max_fbeta", value=1.0, context=None):
    """Chooses a threshold for one class: rule "max_fbeta" (value = beta) or
    "target_precision" (value = the precision to reach). Returns (threshold,
    BinaryStats on this data)."""
    from .core import _enum
    from .data import _raise
    ctx = _ctx_of(context)
    s, p = _scores(scores, positive)
    thr = c_float()
    st = nc_binary_stats()
    _raise(lib.nc_threshold_select(ctx._h, s.address, p.address, s.count, _enum(rule, RULES, "rule"), value,
                                   byref(thr), byref(st)), ctx, "nc_threshold_select")
    return thr.value, BinaryStats(st.tp, st.fp, st.tn, st.fn, st.precision, st.recall, st.fbeta)


def threshold_apply(scores, positive, threshold, beta=1.0, context=None):
    """BinaryStats of "score >= threshold"."""
    from .data import _raise
    ctx = _ctx_of(context)
    s, p = _scores(scores, positive)
    st = nc_binary_stats()
    _raise(lib.nc_threshold_apply(ctx._h, s.address, p.address, s.count, threshold, beta, byref(st)), ctx,
           "nc_threshold_apply")
    return BinaryStats(st.tp, st.fp, st.tn, st.fn, st.precision, st.recall, st.fbeta)


def _names_array(names):
    if names is None:
        return None
    from ctypes import c_char_p
    enc = [encode(str(n), "class name") for n in names]
    return (c_char_p * len(enc))(*enc)


def multilabel_roc_auc(logits, labels, context=None):
    """Per-label ROC-AUC of a multi-label (sigmoid) model, the CheXNet metric
    (nc_multilabel_roc_auc): logits (n, L) and labels (n, L) of 0/1. Returns (auc,
    mean_auc): auc a list of L floats, sklearn's roc_auc_score of each column (ties get
    the mean rank), NaN where a label has no positive or no negative sample; mean_auc
    their mean over the labels where it is defined (NaN when none is)."""
    from .data import _raise
    ctx = _ctx_of(context)
    lo = B.as_input(logits, "logits", "f")
    la = B.as_input(labels, "labels", "i")
    if len(lo.shape) != 2 or lo.shape[1] < 1:
        raise ValueError("logits must be 2-D (n, labels), got shape %s" % (lo.shape,))
    n, k = lo.shape
    if la.count != n * k:
        raise ValueError("labels: need %d values (%d samples x %d labels), got %d" % (n * k, n, k, la.count))
    auc = (c_double * k)()
    mean = c_double()
    _raise(lib.nc_multilabel_roc_auc(ctx._h, lo.address or None, la.address or None, n, k, auc, byref(mean)), ctx,
           "nc_multilabel_roc_auc")
    return list(auc), mean.value
