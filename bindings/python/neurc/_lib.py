"""Low-level ctypes layer: finds libneurc, mirrors the public structs and declares every
public C function exactly once (FUNCTIONS: name, restype, argtypes). Everything else in
the package goes through `lib` (the loaded library) and `check` (status -> exception).

The structures below mirror include/neurc.h field for field; tests/python checks their
sizes against the struct_size that the C _init functions write.
"""

import builtins
import ctypes
import ctypes.util
import os
import signal
import threading
from ctypes import (POINTER as P, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint64, c_void_p)

# The header version these bindings were written against. The library must have the same
# major version (the ABI promise) and at least this minor version (every declared
# function exists).
VERSION_MAJOR = 0
VERSION_MINOR = 1

# ------------------------------------------------------------------- status table

# Mirrors NC_STATUS_TABLE: (value, C name, description). Values are never renumbered.
STATUS_TABLE = (
    (0, "NC_OK", "success"),
    (1, "NC_ERR_INVALID_ARGUMENT", "invalid argument"),
    (2, "NC_ERR_NULL", "NULL handle or pointer"),
    (3, "NC_ERR_OUT_OF_MEMORY", "out of memory"),
    (4, "NC_ERR_SHAPE", "tensor shape mismatch"),
    (5, "NC_ERR_UNSUPPORTED", "unsupported by this build or backend"),
    (6, "NC_ERR_IO", "input/output error"),
    (7, "NC_ERR_FORMAT", "malformed or corrupt file"),
    (8, "NC_ERR_NOT_FOUND", "not found"),
    (9, "NC_ERR_NUMERIC", "non-finite value"),
    (10, "NC_ERR_BACKEND", "backend failure"),
    (11, "NC_ERR_STATE", "call not valid in the current state"),
    (12, "NC_ERR_LIMIT", "size limit exceeded"),
    (13, "NC_ERR_CANCELLED", "cancelled by the progress callback"),
    (14, "NC_ERR_TIMEOUT", "timed out waiting for other processes"),
)

OK = 0


class Error(Exception):
    """A neurc call failed. `status` is the C status value, `status_name` its C name
    (NC_ERR_...), `message` the context's message (or the status description)."""

    status = None
    status_name = None

    def __init__(self, message, status=None, function=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.function = function


class InvalidArgumentError(Error, ValueError):
    """NC_ERR_INVALID_ARGUMENT"""


class NullError(Error, ValueError):
    """NC_ERR_NULL (also: a closed handle used from Python)"""


class OutOfMemoryError(Error, MemoryError):
    """NC_ERR_OUT_OF_MEMORY"""


class ShapeError(Error, ValueError):
    """NC_ERR_SHAPE"""


class UnsupportedError(Error):
    """NC_ERR_UNSUPPORTED"""


class IOError(Error, OSError):  # noqa: A001 - deliberately mirrors NC_ERR_IO
    """NC_ERR_IO (a subclass of the built-in OSError)"""


class FormatError(Error):
    """NC_ERR_FORMAT"""


class NotFoundError(Error, LookupError):
    """NC_ERR_NOT_FOUND"""


class NumericError(Error, ArithmeticError):
    """NC_ERR_NUMERIC"""


class BackendError(Error):
    """NC_ERR_BACKEND"""


class StateError(Error):
    """NC_ERR_STATE (also: a call on a closed object)"""


class LimitError(Error):
    """NC_ERR_LIMIT"""


class CancelledError(Error):
    """NC_ERR_CANCELLED: a progress callback asked the call to stop (it stopped cleanly)."""


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 - deliberately mirrors NC_ERR_TIMEOUT
    """NC_ERR_TIMEOUT: a collective waited longer than its communicator's timeout
    (a subclass of the built-in TimeoutError)"""


ERROR_CLASSES = {
    1: InvalidArgumentError, 2: NullError, 3: OutOfMemoryError, 4: ShapeError, 5: UnsupportedError,
    6: IOError, 7: FormatError, 8: NotFoundError, 9: NumericError, 10: BackendError, 11: StateError,
    12: LimitError, 13: CancelledError, 14: TimeoutError,
}
for _value, _name, _text in STATUS_TABLE:
    if _value in ERROR_CLASSES:
        ERROR_CLASSES[_value].status = _value
        ERROR_CLASSES[_value].status_name = _name


def error_class(status):
    """The exception class for a status value (Error itself for an unknown value)."""
    return ERROR_CLASSES.get(status, Error)


# ---------------------------------------------------------------------- structs


class nc_allocator(Structure):
    _fields_ = [("alloc", c_void_p), ("free", c_void_p), ("user", c_void_p)]


class nc_context_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("backend", c_int), ("device", c_int), ("num_threads", c_int),
                ("deterministic", c_int), ("allocator", nc_allocator), ("bf16", c_int),
                ("precision", c_int), ("conv_algorithm", c_int)]


class nc_model_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("arch", c_char_p), ("num_classes", c_int), ("in_channels", c_int),
                ("num_heads", c_int), ("cardinality", c_int), ("base_width", c_int), ("blocks", c_int * 4),
                ("bottleneck", c_int), ("block_dropout", c_float), ("head_dropout", c_float), ("head", c_int),
                ("small_input", c_int), ("width", c_int), ("seed", c_uint64)]


class nc_tensor_info(Structure):
    _fields_ = [("name", c_char_p), ("ndim", c_int), ("shape", c_int64 * 4), ("numel", c_int64),
                ("trainable", c_int)]


class nc_load_report(Structure):
    _fields_ = [("struct_size", c_size_t), ("loaded", c_int), ("missing", c_int), ("unexpected", c_int),
                ("mismatched", c_int), ("text", c_char * 1024)]


class nc_onnx_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("height", c_int), ("width", c_int), ("opset", c_int),
                ("split_heads", c_int), ("normalize", c_int), ("fold_batchnorm", c_int)]


class nc_pretrained_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("strict", c_int), ("adapt", c_int), ("keep_head", c_int),
                ("seed", c_uint64)]


class nc_trainer_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("lr", c_float), ("momentum", c_float), ("dampening", c_float),
                ("weight_decay", c_float), ("nesterov", c_int), ("seed", c_uint64),
                ("optimizer", c_int), ("beta1", c_float), ("beta2", c_float), ("eps", c_float),
                ("no_decay_norm_bias", c_int),
                ("loss", c_int), ("label_smoothing", c_float), ("class_weights", c_void_p),
                ("num_class_weights", c_int), ("head_weights", c_void_p), ("ignore_label", c_int32),
                ("pos_weight", c_void_p),
                ("accumulation_steps", c_int), ("clip_grad_norm", c_float), ("max_nonfinite", c_int)]


class nc_step_stats(Structure):
    _fields_ = [("loss", c_float), ("correct", c_int), ("total", c_int), ("skipped", c_int), ("updated", c_int),
                ("grad_norm", c_float), ("lr", c_float)]


class nc_schedule_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("kind", c_int), ("step_size", c_int), ("gamma", c_float),
                ("milestones", c_void_p), ("num_milestones", c_int), ("t_max", c_int), ("eta_min", c_float),
                ("warmup_steps", c_int), ("warmup_start_factor", c_float), ("mode_max", c_int),
                ("factor", c_float), ("patience", c_int), ("threshold", c_float), ("threshold_abs", c_int),
                ("cooldown", c_int), ("min_lr", c_float), ("plateau_eps", c_float)]


class nc_checkpoint_info(Structure):
    _fields_ = [("struct_size", c_size_t), ("epoch", c_int64), ("batch", c_int64), ("best_metric", c_double),
                ("best_epoch", c_int64)]


class nc_binary_stats(Structure):
    _fields_ = [("tp", c_int64), ("fp", c_int64), ("tn", c_int64), ("fn", c_int64), ("precision", c_double),
                ("recall", c_double), ("fbeta", c_double)]


class nc_epoch_record(Structure):
    _fields_ = [("struct_size", c_size_t), ("epoch", c_int64), ("train_loss", c_double), ("train_acc", c_double),
                ("val_loss", c_double), ("val_acc", c_double), ("lr", c_double), ("seconds", c_double),
                ("images_per_sec", c_double)]


class nc_png_limits(Structure):
    _fields_ = [("struct_size", c_size_t), ("max_width", c_int64), ("max_height", c_int64),
                ("max_pixels", c_int64)]


class nc_dataset_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("limits", nc_png_limits), ("image_columns", c_char_p),
                ("optional_column", c_char_p), ("label_columns", c_char_p), ("base_dir", c_char_p)]


class nc_loader_options(Structure):
    _fields_ = [("struct_size", c_size_t), ("batch_size", c_int), ("shuffle", c_int), ("drop_last", c_int),
                ("workers", c_int), ("prefetch", c_int), ("seed", c_uint64), ("indices", c_void_p),
                ("num_indices", c_int64), ("shard_rank", c_int), ("shard_count", c_int)]


class nc_progress(Structure):
    _fields_ = [("struct_size", c_size_t), ("phase", c_int), ("done", c_int64), ("total", c_int64),
                ("epoch", c_int64), ("loss", c_double), ("metric", c_double), ("what", c_char_p)]


PROGRESS_FN = ctypes.CFUNCTYPE(c_int, P(nc_progress), c_void_p)


class nc_input_desc(Structure):
    _fields_ = [("struct_size", c_size_t), ("type", c_int), ("layout", c_int), ("n", c_int), ("c", c_int),
                ("h", c_int), ("w", c_int), ("data", c_void_p), ("planes", c_void_p), ("stride_n", c_int64),
                ("stride_c", c_int64), ("stride_h", c_int64), ("stride_w", c_int64), ("min_value", c_double),
                ("max_value", c_double), ("normalize", c_int)]


class nc_epoch_stats(Structure):
    _fields_ = [("struct_size", c_size_t), ("batches", c_int64), ("steps", c_int64), ("samples", c_int64),
                ("skipped", c_int64), ("loss", c_double), ("accuracy", c_double), ("finished", c_int)]


class nc_batch(Structure):
    _fields_ = [("x", c_void_p), ("labels", c_void_p), ("indices", c_void_p), ("n", c_int), ("c", c_int),
                ("h", c_int), ("w", c_int), ("heads", c_int)]


# Options structs and the _init function that sets their struct_size (checked by tests).
STRUCT_INITS = {
    nc_context_options: "nc_context_options_init",
    nc_model_options: "nc_model_options_init",
    nc_pretrained_options: "nc_pretrained_options_init",
    nc_onnx_options: "nc_onnx_options_init",
    nc_trainer_options: "nc_trainer_options_init",
    nc_schedule_options: "nc_schedule_options_init",
    nc_checkpoint_info: "nc_checkpoint_info_init",
    nc_epoch_record: "nc_epoch_record_init",
    nc_png_limits: "nc_png_limits_init",
    nc_dataset_options: "nc_dataset_options_init",
    nc_loader_options: "nc_loader_options_init",
    nc_epoch_stats: "nc_epoch_stats_init",
    nc_input_desc: "nc_input_desc_init",
}

# ------------------------------------------------------------------- functions

STATUS = c_int  # restype of the functions returning nc_status

# Every NC_API function of include/neurc.h: (name, restype, argtypes). Handles and data
# buffers are c_void_p (buffers are passed as addresses after their dtype, size and
# contiguity were checked by the caller); handle outputs are POINTER(c_void_p).
FUNCTIONS = (
    ('nc_status_str', c_char_p, [c_int]),
    ('nc_version_string', c_char_p, []),
    ('nc_version', c_int, []),
    ('nc_context_options_init', None, [P(nc_context_options)]),
    ('nc_context_create', STATUS, [P(nc_context_options), P(c_void_p)]),
    ('nc_context_destroy', None, [c_void_p]),
    ('nc_context_last_error', c_char_p, [c_void_p]),
    ('nc_context_backend', c_int, [c_void_p]),
    ('nc_context_precision', c_int, [c_void_p]),
    ('nc_context_set_progress', STATUS, [c_void_p, PROGRESS_FN, c_void_p]),
    ('nc_backend_name', c_char_p, [c_int]),
    ('nc_model_options_init', None, [P(nc_model_options)]),
    ('nc_model_create', STATUS, [c_void_p, P(nc_model_options), P(c_void_p)]),
    ('nc_model_destroy', None, [c_void_p]),
    ('nc_model_forward', STATUS, [c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_void_p]),
    ('nc_model_num_params', c_int64, [c_void_p]),
    ('nc_model_num_outputs', c_int, [c_void_p]),
    ('nc_model_in_channels', c_int, [c_void_p]),
    ('nc_model_num_heads', c_int, [c_void_p]),
    ('nc_model_summary', STATUS, [c_void_p, c_int, c_int, c_char_p, c_size_t, c_void_p]),
    ('nc_model_num_tensors', c_int, [c_void_p]),
    ('nc_model_tensor_info', STATUS, [c_void_p, c_int, P(nc_tensor_info)]),
    ('nc_model_get_tensor', STATUS, [c_void_p, c_char_p, c_void_p, c_int64]),
    ('nc_model_set_tensor', STATUS, [c_void_p, c_char_p, c_void_p, c_int64]),
    ('nc_model_save', STATUS, [c_void_p, c_char_p]),
    ('nc_onnx_options_init', None, [P(nc_onnx_options)]),
    ('nc_model_export_onnx', STATUS, [c_void_p, c_char_p, P(nc_onnx_options)]),
    ('nc_model_load', STATUS, [c_void_p, c_char_p, P(c_void_p)]),
    ('nc_model_load_weights', STATUS, [c_void_p, c_char_p, c_int, P(nc_load_report)]),
    ('nc_pretrained_options_init', None, [P(nc_pretrained_options)]),
    ('nc_model_load_pretrained', STATUS, [c_void_p, c_char_p, P(nc_pretrained_options), P(nc_load_report)]),
    ('nc_model_set_class_names', STATUS, [c_void_p, P(c_char_p), c_int]),
    ('nc_model_class_name', c_char_p, [c_void_p, c_int]),
    ('nc_model_set_normalization', STATUS, [c_void_p, c_void_p, c_void_p]),
    ('nc_model_get_normalization', STATUS, [c_void_p, c_void_p, c_void_p]),
    ('nc_model_set_info', STATUS, [c_void_p, c_char_p, c_char_p]),
    ('nc_model_info', c_char_p, [c_void_p, c_char_p]),
    ('nc_model_context', c_void_p, [c_void_p]),
    ('nc_builder_create', STATUS, [c_void_p, c_int, P(c_void_p), P(c_int32)]),
    ('nc_builder_destroy', None, [c_void_p]),
    ('nc_builder_conv2d', STATUS, [c_void_p, c_char_p, c_int32, c_int, c_int, c_int, c_int, c_int, c_int, c_int, P(c_int32)]),
    ('nc_builder_batchnorm', STATUS, [c_void_p, c_char_p, c_int32, c_float, c_float, P(c_int32)]),
    ('nc_builder_relu', STATUS, [c_void_p, c_int32, P(c_int32)]),
    ('nc_builder_max_pool2d', STATUS, [c_void_p, c_int32, c_int, c_int, c_int, P(c_int32)]),
    ('nc_builder_avg_pool2d', STATUS, [c_void_p, c_int32, c_int, c_int, c_int, P(c_int32)]),
    ('nc_builder_adaptive_avg_pool2d', STATUS, [c_void_p, c_int32, c_int, c_int, P(c_int32)]),
    ('nc_builder_add', STATUS, [c_void_p, c_int32, c_int32, P(c_int32)]),
    ('nc_builder_linear', STATUS, [c_void_p, c_char_p, c_int32, c_int, c_int, P(c_int32)]),
    ('nc_builder_dropout', STATUS, [c_void_p, c_int32, c_float, P(c_int32)]),
    ('nc_builder_flatten', STATUS, [c_void_p, c_int32, P(c_int32)]),
    ('nc_builder_concat', STATUS, [c_void_p, P(c_int32), c_int, P(c_int32)]),
    ('nc_builder_finish', STATUS, [c_void_p, c_int32, c_int, c_uint64, P(c_void_p)]),
    ('nc_trainer_options_init', None, [P(nc_trainer_options)]),
    ('nc_trainer_create', STATUS, [c_void_p, P(nc_trainer_options), P(c_void_p)]),
    ('nc_trainer_destroy', None, [c_void_p]),
    ('nc_trainer_step', STATUS, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_int, c_int, P(nc_step_stats)]),
    ('nc_trainer_set_lr', STATUS, [c_void_p, c_float]),
    ('nc_trainer_num_steps', c_int64, [c_void_p]),
    ('nc_input_desc_init', None, [P(nc_input_desc)]),
    ('nc_model_forward_raw', STATUS, [c_void_p, P(nc_input_desc), c_void_p]),
    ('nc_saliency_create', STATUS, [c_void_p, c_char_p, P(c_void_p)]),
    ('nc_saliency_destroy', None, [c_void_p]),
    ('nc_saliency_layer', c_char_p, [c_void_p]),
    ('nc_saliency_compute', STATUS, [c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_int, c_void_p, c_void_p,
                                     c_void_p, c_void_p]),
    ('nc_epoch_stats_init', None, [P(nc_epoch_stats)]),
    ('nc_trainer_train_epoch', STATUS, [c_void_p, c_void_p, c_int64, c_int64, P(nc_epoch_stats)]),
    ('nc_trainer_add_group', STATUS, [c_void_p, c_char_p, c_char_p, c_float, c_float]),
    ('nc_trainer_freeze_group', STATUS, [c_void_p, c_char_p, c_int]),
    ('nc_trainer_set_group_lr', STATUS, [c_void_p, c_char_p, c_float]),
    ('nc_trainer_group_lr', STATUS, [c_void_p, c_char_p, c_void_p]),
    ('nc_ema_create', STATUS, [c_void_p, c_float, P(c_void_p)]),
    ('nc_ema_destroy', None, [c_void_p]),
    ('nc_ema_update', STATUS, [c_void_p]),
    ('nc_ema_swap', STATUS, [c_void_p]),
    ('nc_ema_swapped', c_int, [c_void_p]),
    ('nc_early_stopping_create', STATUS, [c_void_p, c_int, c_int, c_float, P(c_void_p)]),
    ('nc_early_stopping_destroy', None, [c_void_p]),
    ('nc_early_stopping_update', STATUS, [c_void_p, c_float, c_void_p, c_void_p]),
    ('nc_early_stopping_restore_best', STATUS, [c_void_p]),
    ('nc_early_stopping_best', c_float, [c_void_p]),
    ('nc_schedule_options_init', None, [P(nc_schedule_options)]),
    ('nc_schedule_create', STATUS, [c_void_p, P(nc_schedule_options), P(c_void_p)]),
    ('nc_schedule_destroy', None, [c_void_p]),
    ('nc_schedule_step', STATUS, [c_void_p, c_float]),
    ('nc_schedule_lr', c_float, [c_void_p, c_float]),
    ('nc_schedule_position', c_int64, [c_void_p]),
    ('nc_trainer_set_schedule', STATUS, [c_void_p, c_void_p]),
    # data parallel (docs/distributed.md): MPI must be initialised by the program
    ('nc_comm_create_mpi', STATUS, [c_void_p, P(c_void_p)]),
    ('nc_comm_create_nccl', STATUS, [c_void_p, c_int, P(c_void_p)]),
    ('nc_comm_destroy', None, [c_void_p]),
    ('nc_comm_rank', c_int, [c_void_p]),
    ('nc_comm_size', c_int, [c_void_p]),
    ('nc_comm_barrier', STATUS, [c_void_p]),
    ('nc_comm_allreduce_sum', STATUS, [c_void_p, c_void_p, c_int64]),
    ('nc_comm_set_timeout', STATUS, [c_void_p, c_double]),
    ('nc_comm_timeout', c_double, [c_void_p]),
    ('nc_trainer_set_comm', STATUS, [c_void_p, c_void_p]),
    ('nc_trainer_set_sync_batchnorm', STATUS, [c_void_p, c_int]),
    ('nc_trainer_set_grad_overlap', STATUS, [c_void_p, c_int]),
    ('nc_checkpoint_info_init', None, [P(nc_checkpoint_info)]),
    ('nc_trainer_save_checkpoint', STATUS, [c_void_p, c_char_p, P(nc_checkpoint_info)]),
    ('nc_trainer_load_checkpoint', STATUS, [c_void_p, c_char_p, P(nc_checkpoint_info)]),
    ('nc_metrics_compute', STATUS, [c_void_p, c_void_p, c_int, c_void_p, c_int, c_int64, c_int, c_int32, P(c_void_p)]),
    ('nc_metrics_destroy', None, [c_void_p]),
    ('nc_metrics_count', c_int64, [c_void_p]),
    ('nc_metrics_num_classes', c_int, [c_void_p]),
    ('nc_metrics_confusion', c_int64, [c_void_p, c_int, c_int]),
    ('nc_metrics_top_k', c_double, [c_void_p, c_int]),
    ('nc_metrics_precision', c_double, [c_void_p, c_int]),
    ('nc_metrics_recall', c_double, [c_void_p, c_int]),
    ('nc_metrics_fbeta', c_double, [c_void_p, c_int, c_double]),
    ('nc_metrics_balanced_accuracy', c_double, [c_void_p]),
    ('nc_metrics_roc_auc', c_double, [c_void_p, c_int]),
    ('nc_metrics_log_loss', c_double, [c_void_p]),
    ('nc_metrics_ece', c_double, [c_void_p, c_int]),
    ('nc_calibrate_temperature', STATUS, [c_void_p, c_void_p, c_int, c_void_p, c_int, c_int64, c_int, c_int32, c_void_p]),
    ('nc_threshold_select', STATUS, [c_void_p, c_void_p, c_void_p, c_int64, c_int, c_double, c_void_p, P(nc_binary_stats)]),
    ('nc_threshold_apply', STATUS, [c_void_p, c_void_p, c_void_p, c_int64, c_float, c_double, P(nc_binary_stats)]),
    ('nc_multilabel_roc_auc', STATUS, [c_void_p, c_void_p, c_void_p, c_int64, c_int, c_void_p, c_void_p]),
    ('nc_model_predict_loader', STATUS, [c_void_p, c_void_p, c_int64, c_void_p, c_void_p, c_int64, c_void_p]),
    ('nc_epoch_record_init', None, [P(nc_epoch_record)]),
    ('nc_history_create', STATUS, [c_void_p, P(c_void_p)]),
    ('nc_history_destroy', None, [c_void_p]),
    ('nc_history_add', STATUS, [c_void_p, P(nc_epoch_record)]),
    ('nc_history_truncate', STATUS, [c_void_p, c_int64]),
    ('nc_history_count', c_int64, [c_void_p]),
    ('nc_history_get', STATUS, [c_void_p, c_int64, P(nc_epoch_record)]),
    ('nc_history_write_csv', STATUS, [c_void_p, c_char_p]),
    ('nc_history_write_json', STATUS, [c_void_p, c_char_p]),
    ('nc_history_read_csv', STATUS, [c_void_p, c_char_p, P(c_void_p)]),
    ('nc_svg_training_curves', STATUS, [c_void_p, c_char_p]),
    ('nc_svg_confusion_matrix', STATUS, [c_void_p, c_void_p, P(c_char_p), c_int, c_char_p]),
    ('nc_svg_per_class_accuracy', STATUS, [c_void_p, c_void_p, P(c_char_p), c_char_p]),
    ('nc_report_create', STATUS, [c_void_p, P(c_void_p)]),
    ('nc_report_destroy', None, [c_void_p]),
    ('nc_report_set_string', STATUS, [c_void_p, c_char_p, c_char_p]),
    ('nc_report_set_number', STATUS, [c_void_p, c_char_p, c_double]),
    ('nc_report_set_history', STATUS, [c_void_p, c_void_p]),
    ('nc_report_add_metrics', STATUS, [c_void_p, c_char_p, c_int, c_void_p, P(c_char_p)]),
    ('nc_report_write', STATUS, [c_void_p, c_char_p]),
    ('nc_report_summary', STATUS, [c_void_p, c_char_p, c_size_t, c_void_p]),
    ('nc_image_create', STATUS, [c_void_p, c_int, c_int, c_int, P(c_void_p)]),
    ('nc_image_destroy', None, [c_void_p]),
    ('nc_image_width', c_int, [c_void_p]),
    ('nc_image_height', c_int, [c_void_p]),
    ('nc_image_channels', c_int, [c_void_p]),
    ('nc_image_bit_depth', c_int, [c_void_p]),
    ('nc_image_data', c_void_p, [c_void_p]),
    ('nc_image_const_data', c_void_p, [c_void_p]),
    ('nc_png_limits_init', None, [P(nc_png_limits)]),
    ('nc_png_read', STATUS, [c_void_p, c_char_p, P(nc_png_limits), P(c_void_p)]),
    ('nc_png_read_memory', STATUS, [c_void_p, c_void_p, c_size_t, P(nc_png_limits), P(c_void_p)]),
    ('nc_png_write', STATUS, [c_void_p, c_char_p, c_void_p, c_int]),
    ('nc_dataset_options_init', None, [P(nc_dataset_options)]),
    ('nc_dataset_open_folder', STATUS, [c_void_p, c_char_p, P(nc_dataset_options), P(c_void_p)]),
    ('nc_dataset_open_csv', STATUS, [c_void_p, c_char_p, P(nc_dataset_options), P(c_void_p)]),
    ('nc_dataset_open_idx', STATUS, [c_void_p, c_char_p, c_char_p, P(c_void_p)]),
    ('nc_dataset_destroy', None, [c_void_p]),
    ('nc_dataset_size', c_int64, [c_void_p]),
    ('nc_dataset_num_heads', c_int, [c_void_p]),
    ('nc_dataset_num_classes', c_int, [c_void_p, c_int]),
    ('nc_dataset_class_name', c_char_p, [c_void_p, c_int, c_int]),
    ('nc_dataset_channels', c_int, [c_void_p]),
    ('nc_dataset_path', c_char_p, [c_void_p, c_int64]),
    ('nc_dataset_labels', STATUS, [c_void_p, c_int64, c_void_p]),
    ('nc_dataset_get', STATUS, [c_void_p, c_int64, P(c_void_p)]),
    ('nc_dataset_class_counts', STATUS, [c_void_p, c_int, c_void_p]),
    ('nc_dataset_class_weights', STATUS, [c_void_p, c_int, c_void_p]),
    ('nc_transform_create', STATUS, [c_void_p, P(c_void_p)]),
    ('nc_transform_destroy', None, [c_void_p]),
    ('nc_transform_add_resize', STATUS, [c_void_p, c_int, c_int]),
    ('nc_transform_add_center_crop', STATUS, [c_void_p, c_int, c_int]),
    ('nc_transform_add_random_resized_crop', STATUS, [c_void_p, c_int, c_int, c_float, c_float, c_float, c_float]),
    ('nc_transform_add_hflip', STATUS, [c_void_p, c_float]),
    ('nc_transform_add_vflip', STATUS, [c_void_p, c_float]),
    ('nc_transform_add_rotation', STATUS, [c_void_p, c_float]),
    ('nc_transform_add_affine', STATUS, [c_void_p, c_float, c_float, c_float, c_float]),
    ('nc_transform_add_color_jitter', STATUS, [c_void_p, c_float, c_float, c_float, c_float]),
    ('nc_transform_add_random_erasing', STATUS, [c_void_p, c_float, c_float, c_float, c_float, c_float, c_float]),
    ('nc_transform_add_normalize', STATUS, [c_void_p, c_void_p, c_void_p, c_int]),
    ('nc_transform_set_exact', STATUS, [c_void_p, c_int]),
    ('nc_transform_output_size', STATUS, [c_void_p, c_int, c_int, c_void_p, c_void_p]),
    ('nc_transform_apply', STATUS, [c_void_p, c_void_p, c_void_p, c_uint64, c_uint64, c_uint64, P(c_void_p)]),
    ('nc_transform_preset_train', STATUS, [c_void_p, c_int, c_int, c_void_p, c_void_p, P(c_void_p)]),
    ('nc_transform_preset_eval', STATUS, [c_void_p, c_int, c_int, c_int, c_void_p, c_void_p, P(c_void_p)]),
    ('nc_dataset_channel_stats', STATUS, [c_void_p, c_void_p, c_int64, c_void_p, c_void_p, c_void_p]),
    ('nc_split_stratified', STATUS, [c_void_p, c_void_p, c_int64, c_float, c_float, c_float, c_uint64, c_void_p]),
    ('nc_split_kfold', STATUS, [c_void_p, c_void_p, c_int64, c_int, c_uint64, c_void_p]),
    ('nc_loader_options_init', None, [P(nc_loader_options)]),
    ('nc_loader_create', STATUS, [c_void_p, c_void_p, P(nc_loader_options), P(c_void_p)]),
    ('nc_loader_start_epoch', STATUS, [c_void_p, c_int64]),
    ('nc_loader_next', STATUS, [c_void_p, P(nc_batch)]),
    ('nc_loader_num_batches', c_int64, [c_void_p]),
    ('nc_loader_destroy', None, [c_void_p]),
)

STATUS_FUNCTIONS = frozenset(name for name, restype, _ in FUNCTIONS if restype is STATUS)

# ------------------------------------------------------------- finding the library

_SONAME = "libneurc.so.%d" % VERSION_MAJOR


def _candidates():
    """Paths (or loader names) to try, in order, with where each came from."""
    env = os.environ.get("NEURC_LIBRARY")
    if env:
        # Explicit: only this one, so a wrong path is an error and not silently replaced.
        yield env, "NEURC_LIBRARY"
        return
    # A wheel built by `ninja -C build wheel` carries the library inside the package.
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), _SONAME)
    if os.path.isfile(bundled):
        yield bundled, "the library inside the package"
    try:  # written by `meson install` next to the package (see bindings/python/meson.build)
        from . import _install_config
        yield os.path.join(_install_config.LIBDIR, _SONAME), "the installed library directory"
    except ImportError:
        pass
    # The build tree: the package lives in <source>/bindings/python/neurc; meson build
    # directories are usually <source>/build* (libneurc.so in their lib/ folder).
    source = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if os.path.isfile(os.path.join(source, "include", "neurc.h")):
        try:
            names = sorted(os.listdir(source))
        except OSError:
            names = []
        for name in names:
            path = os.path.join(source, name, "lib", "libneurc.so")
            if name.startswith("build") and os.path.isfile(path):
                yield path, "the build tree"
    found = ctypes.util.find_library("neurc")
    if found:
        yield found, "the system loader"
    yield _SONAME, "the system loader"


class LibraryNotFound(ImportError):
    """libneurc could not be loaded (the message lists every place tried)."""


def _load():
    tried = []
    for path, origin in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s): %s" % (path, origin, e))
    raise LibraryNotFound("cannot load libneurc; set NEURC_LIBRARY to the path of libneurc.so. Tried:\n  "
                          + "\n  ".join(tried))


class _Missing:
    """Stands in for a function this libneurc does not export: calling it raises."""

    def __init__(self, name, path):
        self.__name__ = name
        self._path = path

    def __call__(self, *args):
        raise UnsupportedError("%s: not exported by %s (a library older than these bindings?)"
                               % (self.__name__, self._path), 5, self.__name__)


class _Lib:
    """The loaded library: one attribute per function of FUNCTIONS."""

    def __init__(self, cdll, path):
        self._cdll = cdll
        self.path = path
        self.missing = []
        for name, restype, argtypes in FUNCTIONS:
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                self.missing.append(name)
                setattr(self, name, _Missing(name, path))
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)


lib = _Lib(*_load())

version = lib.nc_version()
version_string = lib.nc_version_string().decode()
if version // 10000 != VERSION_MAJOR or (version // 100) % 100 < VERSION_MINOR:
    raise ImportError("%s is version %s; these bindings need %d.%d or a later %d.x"
                      % (lib.path, version_string, VERSION_MAJOR, VERSION_MINOR, VERSION_MAJOR))

# ------------------------------------------------------------------------ errors


def status_str(status):
    return lib.nc_status_str(status).decode()


# Exceptions raised inside a progress callback (KeyboardInterrupt from Ctrl-C included),
# keyed by (context handle, thread): the callback asks the C call to stop, and the call's
# NC_ERR_CANCELLED then re-raises the exception instead of CancelledError.
_pending = {}


def park_exception(ctx, exc):
    _pending[(ctx, threading.get_ident())] = exc


# Ctrl-C during a long C call (docs/python.md, "Progress and cancellation"). Python runs
# its SIGINT handler only between bytecodes, and an exception raised at the entry of a
# ctypes callback is lost; so around a reporting call made on the main thread the
# handler is swapped for one that only sets this flag, the context's progress callback
# returns "stop" once it is set, and KeyboardInterrupt is raised after the call returns.
_sigint = {"armed": 0, "hit": False}


def sigint_hit():
    return _sigint["hit"]


def _on_sigint(sig, frame):
    _sigint["hit"] = True


def call_interruptible(fn, *args):
    """fn(*args) (a C call that reports progress) with Ctrl-C turned into "stop"; raises
    KeyboardInterrupt after it returns when Ctrl-C was pressed meanwhile."""
    if (threading.current_thread() is not threading.main_thread() or _sigint["armed"]
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return fn(*args)
    _sigint["armed"], _sigint["hit"] = 1, False
    old = signal.signal(signal.SIGINT, _on_sigint)
    try:
        st = fn(*args)
    finally:
        signal.signal(signal.SIGINT, old)
        _sigint["armed"] = 0
    if _sigint["hit"]:
        _sigint["hit"] = False
        raise KeyboardInterrupt
    return st


def raise_status(status, ctx, function):
    """Raises the exception of a non-OK `status` with the context's last message (or the
    exception a progress callback raised, when it stopped the call)."""
    if ctx and status == 13:
        exc = _pending.pop((ctx, threading.get_ident()), None)
        if exc is not None:
            raise exc
    msg = ""
    if ctx:
        raw = lib.nc_context_last_error(ctx)
        msg = raw.decode("utf-8", "replace") if raw else ""
    if not msg:
        msg = "%s: %s" % (function, status_str(status))
    raise error_class(status)(msg, status, function)


def check(status, ctx, function):
    """Returns None for NC_OK, raises otherwise (ctx: raw context handle or None)."""
    if status != OK:
        raise_status(status, ctx, function)


def encode(s, what="string"):
    """str/bytes/os.PathLike -> bytes for a const char * argument (None stays None)."""
    if s is None:
        return None
    if isinstance(s, bytes):
        b = s
    elif isinstance(s, str):
        b = s.encode("utf-8")
    elif hasattr(s, "__fspath__"):
        b = os.fsencode(s)
    else:
        raise TypeError("%s must be str, bytes or a path, not %s" % (what, type(s).__name__))
    if b"\0" in b:
        raise ValueError("%s contains a NUL character" % what)
    return b


def decode(b):
    return None if b is None else b.decode("utf-8", "replace")


# ------------------------------------------------------------------------- handles


class Cell:
    """Owns one raw C handle. Cells form a dependency graph: a cell's dependents (a
    model's trainers, a dataset's loaders, ...) are destroyed before it. Cells have no
    __del__ and never refer to the Python wrapper objects, so whatever order the garbage
    collector finalises wrappers in, every handle is destroyed exactly once, dependents
    first."""

    __slots__ = ("handle", "destroy", "dependents", "parents", "kind", "__weakref__")

    def __init__(self, handle, destroy, kind, parents=()):
        self.handle = handle
        self.destroy = destroy
        self.kind = kind
        self.dependents = {}  # id -> Cell, insertion-ordered
        self.parents = [p for p in parents if p is not None]
        for p in self.parents:
            if p.handle is None:
                raise StateError("cannot make a %s from a closed %s" % (kind, p.kind), 11)
            p.dependents[id(self)] = self

    def close(self):
        h = self.handle
        if h is None:
            return
        for dep in reversed(list(self.dependents.values())):
            dep.close()
        self.handle = None
        for p in self.parents:
            p.dependents.pop(id(self), None)
        self.parents = []
        self.destroy(h)

    def get(self):
        h = self.handle
        if h is None:
            raise StateError("this %s is closed" % self.kind, 11)
        return h
