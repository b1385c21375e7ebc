"""Training history, SVG figures and run reports. History is a plain Python list of
EpochRecord (it always works); writing it as CSV/JSON, the SVG figures and Report go
through the C library's reports (nc_history_*, nc_svg_*, nc_report_*)."""

import ctypes
import math
from collections import namedtuple
from ctypes import byref, c_size_t, c_void_p

from ._lib import decode, encode, lib, nc_epoch_record
from .core import _ContextObject, _ctx_of
from .metrics import Metrics, _names_array

EpochRecord = namedtuple("EpochRecord", "epoch train_loss train_acc val_loss val_acc lr seconds images_per_sec")
EpochRecord.__new__.__defaults__ = (math.nan,) * 7


class History:
    """Per-epoch records of a run (EpochRecord; NaN = not measured). history["val_acc"]
    is that column as a list."""

    def __init__(self, records=()):
        self.records = [r if isinstance(r, EpochRecord) else EpochRecord(*r) for r in records]

    def append(self, record=None, **fields):
        self.records.append(record if record is not None else EpochRecord(**fields))

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in EpochRecord._fields:
                raise KeyError("%r (columns: %s)" % (key, ", ".join(EpochRecord._fields)))
            return [getattr(r, key) for r in self.records]
        return self.records[key]

    def __repr__(self):
        return "<neurc.History %d epochs>" % len(self.records)

    def truncate(self, epoch):
        """Drops every record with epoch > `epoch`."""
        self.records = [r for r in self.records if r.epoch <= epoch]

    def to_c(self, context=None):
        """The same records in a C history (CHistory)."""
        h = CHistory(context)
        try:
            for r in self.records:
                h.add(r)
        except BaseException:
            h.close()
            raise
        return h

    def write_csv(self, path, context=None):
        """CSV as nc_history_write_csv writes it (NaN as an empty field)."""
        with self.to_c(context) as h:
            h.write_csv(path)

    def write_json(self, path, context=None):
        with self.to_c(context) as h:
            h.write_json(path)

    @classmethod
    def read_csv(cls, path, context=None):
        with CHistory.read_csv(path, context) as h:
            return cls(h.records())

    def plot(self, path=None):
        from .plots import plot_history
        return plot_history(self, path)


def _record(r):
    c = nc_epoch_record()
    lib.nc_epoch_record_init(byref(c))
    for k, v in r._asdict().items():
        setattr(c, k, v)
    return c


class CHistory(_ContextObject):
    """A C nc_history (used to write CSV/JSON and the training-curves SVG)."""

    _kind = "history"

    def __init__(self, context=None):
        ctx = _ctx_of(context)
        self.context = ctx
        h = c_void_p()
        self._check(lib.nc_history_create(ctx._h, byref(h)), "nc_history_create")
        self._own(h.value, lib.nc_history_destroy, [ctx])

    @classmethod
    def read_csv(cls, path, context=None):
        ctx = _ctx_of(context)
        self = cls.__new__(cls)
        self.context = ctx
        h = c_void_p()
        self._check(lib.nc_history_read_csv(ctx._h, encode(path, "path"), byref(h)), "nc_history_read_csv")
        self._own(h.value, lib.nc_history_destroy, [ctx])
        return self

    def add(self, record):
        c = _record(record if isinstance(record, EpochRecord) else EpochRecord(*record))
        self._check(lib.nc_history_add(self._h, byref(c)), "nc_history_add")

    def truncate(self, epoch):
        self._check(lib.nc_history_truncate(self._h, epoch), "nc_history_truncate")

    def __len__(self):
        return lib.nc_history_count(self._h)

    def get(self, i):
        c = nc_epoch_record()
        lib.nc_epoch_record_init(byref(c))
        self._check(lib.nc_history_get(self._h, i, byref(c)), "nc_history_get")
        return EpochRecord(*(getattr(c, f) for f in EpochRecord._fields))

    def records(self):
        return [self.get(i) for i in range(len(self))]

    def write_csv(self, path):
        self._check(lib.nc_history_write_csv(self._h, encode(path, "path")), "nc_history_write_csv")

    def write_json(self, path):
        self._check(lib.nc_history_write_json(self._h, encode(path, "path")), "nc_history_write_json")

    def svg_training_curves(self, path):
        self._check(lib.nc_svg_training_curves(self._h, encode(path, "path")), "nc_svg_training_curves")


def svg_training_curves(history, path, context=None):
    """Writes the training curves of a History as an SVG file (the C library's figure)."""
    with history.to_c(context) as h:
        h.svg_training_curves(path)


def svg_confusion_matrix(metrics, path, normalize=True, class_names=None):
    names = class_names if class_names is not None else metrics.class_names
    arr = _names_array(names)
    _check_names(metrics, names)
    metrics._check(lib.nc_svg_confusion_matrix(metrics.context._h, metrics._h, arr, 1 if normalize else 0,
                                               encode(path, "path")), "nc_svg_confusion_matrix")


def svg_per_class_accuracy(metrics, path, class_names=None):
    names = class_names if class_names is not None else metrics.class_names
    arr = _names_array(names)
    _check_names(metrics, names)
    metrics._check(lib.nc_svg_per_class_accuracy(metrics.context._h, metrics._h, arr, encode(path, "path")),
                   "nc_svg_per_class_accuracy")


def _check_names(metrics, names):
    # the C side reads num_classes names: a shorter list would be read past its end
    if names is not None and len(names) != metrics.num_classes:
        raise ValueError("class_names: need %d names, got %d" % (metrics.num_classes, len(names)))


class Report(_ContextObject):
    """A run report: facts, history and metrics per split/head; write(dir) writes
    report.json, summary.txt and the SVG figures; summary() is the text."""

    _kind = "report"

    def __init__(self, context=None):
        ctx = _ctx_of(context)
        self.context = ctx
        h = c_void_p()
        self._check(lib.nc_report_create(ctx._h, byref(h)), "nc_report_create")
        self._own(h.value, lib.nc_report_destroy, [ctx])

    def set(self, key, value):
        """A run fact: numbers are stored as numbers, anything else as its str()."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._check(lib.nc_report_set_number(self._h, encode(key, "key"), float(value)), "nc_report_set_number")
        else:
            self._check(lib.nc_report_set_string(self._h, encode(key, "key"), encode(str(value), "value")),
                        "nc_report_set_string")

    def set_history(self, history):
        if isinstance(history, History):
            with history.to_c(self.context) as h:
                self._check(lib.nc_report_set_history(self._h, h._h), "nc_report_set_history")
        else:
            self._check(lib.nc_report_set_history(self._h, history._h), "nc_report_set_history")

    def add_metrics(self, split, metrics, head=0, class_names=None):
        if not isinstance(metrics, Metrics):
            raise TypeError("metrics must be a neurc.Metrics")
        names = class_names if class_names is not None else metrics.class_names
        _check_names(metrics, names)
        arr = _names_array(names)
        self._check(lib.nc_report_add_metrics(self._h, encode(split, "split"), head, metrics._h, arr),
                    "nc_report_add_metrics")

    def write(self, directory):
        self._check(lib.nc_report_write(self._h, encode(directory, "directory")), "nc_report_write")

    def summary(self):
        needed = c_size_t()
        self._check(lib.nc_report_summary(self._h, None, 0, byref(needed)), "nc_report_summary")
        buf = ctypes.create_string_buffer(needed.value)
        self._check(lib.nc_report_summary(self._h, buf, needed.value, byref(needed)), "nc_report_summary")
        return decode(buf.value)
