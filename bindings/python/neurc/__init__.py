"""neurc: train, evaluate and run CNN image classifiers from Python, through ctypes over
the C library libneurc (no compiler, no PyTorch). numpy is optional: with it, arrays go
in and out zero-copy where their dtype and layout allow.

    import neurc
    model = neurc.Model("simple_cnn", num_classes=10, in_channels=1)
    history = neurc.fit(model, (x_train, y_train), val=(x_val, y_val), epochs=2, lr=0.05)
    metrics = neurc.evaluate(model, (x_test, y_test))
    print(metrics.accuracy, metrics.f1("macro"))
    model.save("model.safetensors")

The library is found through NEURC_LIBRARY (a path to libneurc.so), the directory it was
installed to, a meson build directory of the source tree, or the system loader. See
docs/python.md.
"""

from ._lib import (STATUS_TABLE, BackendError, CancelledError, Error, FormatError, InvalidArgumentError, IOError,
                   LibraryNotFound, LimitError, NotFoundError, NullError, NumericError, OutOfMemoryError, ShapeError,
                   StateError, TimeoutError, UnsupportedError, error_class, status_str)
from ._lib import lib as _lib_handle
from ._buffers import HAVE_NUMPY
from .core import (EMA, STOP, Builder, CheckpointInfo, Comm, Context, EarlyStopping, EpochStats, LoadReport, Model,
                   Progress, Saliency, SaliencyMaps, Schedule, StepStats, TensorInfo, TrackingAllocator, Trainer,
                   default_context, status_name, version)
from .data import Batch, Dataset, Image, Loader, Transform, read_png, read_png_bytes, split_kfold, split_stratified
from .metrics import (MACRO, WEIGHTED, BinaryStats, Metrics, calibrate_temperature, multilabel_roc_auc, threshold_apply,
                      threshold_select)
from .reports import (CHistory, EpochRecord, History, Report, svg_confusion_matrix, svg_per_class_accuracy,
                      svg_training_curves)
from .plots import plot_confusion, plot_history
from .training import evaluate, fit

__version__ = version()
library_path = _lib_handle.path

__all__ = [
    "Error", "InvalidArgumentError", "NullError", "OutOfMemoryError", "ShapeError", "UnsupportedError", "IOError",
    "FormatError", "NotFoundError", "NumericError", "BackendError", "StateError", "LimitError", "CancelledError",
    "TimeoutError",
    "LibraryNotFound",
    "STATUS_TABLE", "error_class", "status_str", "status_name", "version", "HAVE_NUMPY", "library_path",
    "Context", "Model", "Builder", "Trainer", "Schedule", "Comm", "EMA", "EarlyStopping", "TrackingAllocator",
    "TensorInfo", "LoadReport", "StepStats", "CheckpointInfo", "default_context", "Progress", "STOP", "EpochStats",
    "Saliency", "SaliencyMaps",
    "Image", "Dataset", "Transform", "Loader", "Batch", "read_png", "read_png_bytes", "split_stratified",
    "split_kfold",
    "Metrics", "MACRO", "WEIGHTED", "BinaryStats", "calibrate_temperature", "threshold_select", "threshold_apply",
    "multilabel_roc_auc",
    "History", "EpochRecord", "CHistory", "Report", "svg_training_curves", "svg_confusion_matrix",
    "svg_per_class_accuracy", "plot_history", "plot_confusion", "fit", "evaluate",
]
