"""Contexts, models, the graph builder, trainers, schedules, weight averaging and early
stopping: Python objects that own their C handles (see _lib.Cell for the lifetime
rules). Every object has close() and works as a context manager."""

import ctypes
import threading
from collections import namedtuple
from ctypes import byref, c_char_p, c_float, c_int, c_int32, c_size_t, c_void_p

from . import _buffers as B
from ._lib import (Cell, StateError, decode, encode, error_class, lib, status_str, nc_checkpoint_info, nc_context_options,
                   nc_load_report, nc_model_options, nc_pretrained_options, nc_schedule_options, nc_step_stats,
                   nc_tensor_info, nc_trainer_options, raise_status)

BACKENDS = {"auto": 0, "ref": 1, "onednn": 2, "cuda": 3}
PRECISIONS = {"fp32": 0, "bf16": 1, "bf16_math": 2}
CONV_ALGORITHMS = {"auto": 0, "direct": 1, "winograd": 2}


def _enum(value, table, what):
    if isinstance(value, int) and not isinstance(value, bool) and value in table.values():
        return value
    try:
        return table[str(value).lower()]
    except KeyError:
        raise ValueError("%s must be one of %s, not %r" % (what, ", ".join(sorted(table)), value)) from None


class _Object:
    """Base of every handle-owning object."""

    _kind = "object"
    _cell = None

    def _own(self, handle, destroy, parents=()):
        self._cell = Cell(handle, destroy, self._kind, [p._cell for p in parents if p is not None])

    @property
    def _h(self):
        if self._cell is None:
            raise StateError("this %s was never opened" % self._kind, 11)
        return self._cell.get()

    @property
    def closed(self):
        """True once close() ran (or the object it depends on was closed)."""
        return self._cell is None or self._cell.handle is None

    def close(self):
        """Destroys the C object (and the objects that depend on it). Idempotent."""
        cell = self._cell
        if cell is not None:
            cell.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing sensible is left to do
            pass

    def _repr_state(self):
        return "closed" if self.closed else ""


class TrackingAllocator:
    """Allocator hooks for a Context that count live allocations (to find leaks). Uses
    the C library's aligned_alloc/free; `live` and `live_bytes` are the outstanding
    allocations, `total` every allocation made. Python callbacks: slow, for tests and
    debugging, not for production training."""

    def __init__(self):
        libc = ctypes.CDLL(None)
        self._aligned_alloc = libc.aligned_alloc
        self._aligned_alloc.restype = c_void_p
        self._aligned_alloc.argtypes = [c_size_t, c_size_t]
        self._free = libc.free
        self._free.restype = None
        self._free.argtypes = [c_void_p]
        self._lock = threading.Lock()
        self._sizes = {}
        self.total = 0
        alloc_t = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_size_t, c_size_t)
        free_t = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)
        self._alloc_cb = alloc_t(self._alloc)
        self._free_cb = free_t(self._release)

    def _alloc(self, user, size, align):
        align = max(int(align), ctypes.sizeof(c_void_p))
        rounded = (max(int(size), 1) + align - 1) // align * align
        p = self._aligned_alloc(align, rounded)
        if p:
            with self._lock:
                self._sizes[p] = size
                self.total += 1
        return p

    def _release(self, user, ptr):
        if ptr:
            with self._lock:
                self._sizes.pop(ptr, None)
            self._free(ptr)

    @property
    def live(self):
        return len(self._sizes)

    @property
    def live_bytes(self):
        return sum(self._sizes.values())

    def _struct(self, s):
        s.alloc = ctypes.cast(self._alloc_cb, c_void_p)
        s.free = ctypes.cast(self._free_cb, c_void_p)
        s.user = None


class Context(_Object):
    """Backend choice, threads, allocator and the last error message.

    backend: "auto" (default), "ref", "onednn" or "cuda"; threads: CPU threads (0 = all
    cores); deterministic: only deterministic algorithms; allocator: a TrackingAllocator
    (or None for the C library's); precision: "fp32" (default), "bf16" (mixed precision
    with PyTorch autocast's rules: bf16 activations, f32 masters, statistics and loss;
    docs/backends.md) or "bf16_math" (f32 storage, convolutions and linear layers
    computed in bfloat16: oneDNN on a CPU with AVX512_BF16 only, else
    UnsupportedError); bf16=True is the older spelling of precision="bf16_math";
    conv_algorithm: "auto" (default: Winograd F(4x4,3x3) for the 3x3 convolutions where
    the backend has it and it is faster, direct elsewhere), "direct" (the smallest
    rounding error) or "winograd" (wherever the backend has it; docs/backends.md)."""

    _kind = "context"

    def __init__(self, backend="auto", threads=0, device=0, deterministic=False, allocator=None, bf16=False,
                 precision="fp32", conv_algorithm="auto"):
        opt = nc_context_options()
        lib.nc_context_options_init(byref(opt))
        opt.backend = _enum(backend, BACKENDS, "backend")
        if not isinstance(threads, int) or threads < 0:
            raise ValueError("threads must be an integer >= 0, not %r" % (threads,))
        opt.num_threads = threads
        opt.device = int(device)
        opt.deterministic = 1 if deterministic else 0
        opt.bf16 = 1 if bf16 else 0
        opt.precision = _enum(precision, PRECISIONS, "precision")
        if bf16 and opt.precision == 0:
            opt.precision = PRECISIONS["bf16_math"]
        opt.conv_algorithm = _enum(conv_algorithm, CONV_ALGORITHMS, "conv_algorithm")
        if allocator is not None:
            allocator._struct(opt.allocator)
        self._allocator = allocator  # the callbacks must outlive the context
        h = c_void_p()
        st = lib.nc_context_create(byref(opt), byref(h))
        if st != 0:
            detail = {1: " (threads %d, backend %r)" % (threads, backend),
                      5: ": backend %r is not built into %s" % (backend, lib.path)}.get(st, "")
            raise error_class(st)("nc_context_create: %s%s" % (status_str(st), detail), st, "nc_context_create")
        self._own(h.value, lib.nc_context_destroy)

    @property
    def _ctx(self):
        return self._h

    @property
    def backend(self):
        """The backend actually chosen: "ref", "onednn" or "cuda"."""
        return decode(lib.nc_backend_name(lib.nc_context_backend(self._h)))

    @property
    def precision(self):
        """The precision policy in force: "fp32", "bf16" or "bf16_math"."""
        code = lib.nc_context_precision(self._h)
        return next(k for k, v in PRECISIONS.items() if v == code)

    @property
    def last_error(self):
        """The message of the last failed call on this context ("" if none)."""
        return decode(lib.nc_context_last_error(self._h))

    def __repr__(self):
        return "<neurc.Context %s>" % ("closed" if self.closed else self.backend)


_default_context = None
_default_lock = threading.Lock()


def default_context():
    """A shared Context (auto backend, all cores) for objects made without one."""
    global _default_context
    with _default_lock:
        if _default_context is None or _default_context.closed:
            _default_context = Context()
        return _default_context


def _ctx_of(context):
    if context is None:
        return default_context()
    if not isinstance(context, Context):
        raise TypeError("context must be a neurc.Context, not %s" % type(context).__name__)
    return context


class _ContextObject(_Object):
    """An object made from a Context: its errors carry that context's message."""

    context = None

    def _check(self, status, function):
        if status != 0:
            ctxh = self.context._cell.handle if self.context is not None and self.context._cell else None
            raise_status(status, ctxh, function)


TensorInfo = namedtuple("TensorInfo", "name shape numel trainable")
LoadReport = namedtuple("LoadReport", "loaded missing unexpected mismatched text")
HEADS = {"linear": 0, "mlp": 1}
ADAPT = {"rgb_normal": 0, "rgb_mean": 1}


def _report(r):
    return LoadReport(r.loaded, r.missing, r.unexpected, r.mismatched, decode(r.text))


class Model(_ContextObject):
    """A network: graph, parameters, buffers and metadata.

    Model("resnet18", num_classes=10, in_channels=1, small_input=True, ...) builds a
    built-in architecture (options as nc_model_options: num_heads, cardinality,
    base_width, blocks, bottleneck, block_dropout, head_dropout, head ("linear"/"mlp"),
    small_input, width, seed). Model.load(path) reads a saved model or checkpoint."""

    _kind = "model"

    def __init__(self, arch="resnet18", num_classes=1000, in_channels=3, context=None, *, num_heads=1,
                 cardinality=None, base_width=None, blocks=None, bottleneck=None, block_dropout=0.0,
                 head_dropout=0.0, head="linear", small_input=False, width=None, seed=0):
        ctx = _ctx_of(context)
        opt = nc_model_options()
        lib.nc_model_options_init(byref(opt))
        arch_b = encode(arch, "arch")
        opt.arch = arch_b
        opt.num_classes = num_classes
        opt.in_channels = in_channels
        opt.num_heads = num_heads
        if cardinality is not None:
            opt.cardinality = cardinality
        if base_width is not None:
            opt.base_width = base_width
        if blocks is not None:
            if len(blocks) != 4:
                raise ValueError("blocks must have 4 values (blocks per stage), not %d" % len(blocks))
            for i, b in enumerate(blocks):
                opt.blocks[i] = b
        if bottleneck is not None:
            opt.bottleneck = 1 if bottleneck else 0
        opt.block_dropout = block_dropout
        opt.head_dropout = head_dropout
        opt.head = _enum(head, HEADS, "head")
        opt.small_input = 1 if small_input else 0
        if width is not None:
            opt.width = width
        opt.seed = seed
        h = c_void_p()
        self.context = ctx
        self._check(lib.nc_model_create(ctx._h, byref(opt), byref(h)), "nc_model_create")
        self._own(h.value, lib.nc_model_destroy, [ctx])

    @classmethod
    def _wrap(cls, handle, ctx):
        self = cls.__new__(cls)
        self.context = ctx
        self._own(handle, lib.nc_model_destroy, [ctx])
        return self

    @classmethod
    def load(cls, path, context=None):
        """Recreates a model from a file written by save() or a training checkpoint."""
        ctx = _ctx_of(context)
        h = c_void_p()
        st = lib.nc_model_load(ctx._h, encode(path, "path"), byref(h))
        if st != 0:
            raise_status(st, ctx._h, "nc_model_load")
        return cls._wrap(h.value, ctx)

    # ---- facts
    @property
    def num_params(self):
        return lib.nc_model_num_params(self._h)

    @property
    def num_outputs(self):
        return lib.nc_model_num_outputs(self._h)

    @property
    def in_channels(self):
        return lib.nc_model_in_channels(self._h)

    @property
    def num_heads(self):
        return lib.nc_model_num_heads(self._h)

    @property
    def num_classes(self):
        """Classes per head."""
        return self.num_outputs // self.num_heads

    def __repr__(self):
        if self.closed:
            return "<neurc.Model closed>"
        return "<neurc.Model %d params, %d in, %d heads x %d classes>" % (
            self.num_params, self.in_channels, self.num_heads, self.num_classes)

    def summary(self, height, width=None):
        """A torchsummary-like layer table for a 1 x C x height x width input."""
        width = height if width is None else width
        needed = c_size_t()
        st = _summary(self._h, height, width, None, 0, byref(needed))
        if st != 12:  # NC_ERR_LIMIT is the expected answer to the size probe
            self._check(st, "nc_model_summary")
        buf = ctypes.create_string_buffer(needed.value)
        self._check(_summary(self._h, height, width, buf, needed.value, byref(needed)), "nc_model_summary")
        return decode(buf.value)

    # ---- inference
    def forward(self, x, out=None):
        """Logits of a batch in eval mode. x: (n, c, h, w) float32 (numpy array, buffer
        or nested lists; a (c, h, w) image is a batch of one). Returns (n,
        num_outputs) logits (numpy when available; `out` is filled when given)."""
        buf = B.as_input(x, "x", "f")
        shape = buf.shape
        if len(shape) == 3:
            shape = (1,) + shape
        if len(shape) != 4:
            raise ValueError("x must be 4-D (n, c, h, w) or 3-D (c, h, w), got shape %s" % (buf.shape,))
        n, c, h, w = shape
        if n < 1:
            raise ValueError("x: empty batch")
        o = B.output((n, self.num_outputs), "f", out, "out")
        self._check(lib.nc_model_forward(self._h, buf.address, n, c, h, w, o.address), "nc_model_forward")
        return B.result(o)

    def predict(self, x, batch_size=256):
        """Logits of any number of images, `batch_size` at a time."""
        buf = B.as_input(x, "x", "f")
        if len(buf.shape) != 4:
            raise ValueError("x must be 4-D (n, c, h, w), got shape %s" % (buf.shape,))
        n, c, h, w = buf.shape
        k = self.num_outputs
        o = B.output((n, k), "f")
        per = c * h * w
        for s in range(0, n, batch_size):
            m = min(batch_size, n - s)
            self._check(lib.nc_model_forward(self._h, buf.address + 4 * s * per, m, c, h, w,
                                             o.address + 4 * s * k), "nc_model_forward")
        return B.result(o)

    def predict_loader(self, loader, epoch=0):
        """Runs the model over one epoch of a Loader: (logits (N, outputs), labels (N,
        heads)) in loader order."""
        from .data import Loader
        if not isinstance(loader, Loader):
            raise TypeError("loader must be a neurc.Loader")
        cap = loader.num_samples
        logits = B.output((cap, self.num_outputs), "f")
        labels = B.output((cap, loader.dataset.num_heads), "i")
        count = ctypes.c_int64()
        self._check(lib.nc_model_predict_loader(self._h, loader._h, epoch, logits.address, labels.address, cap,
                                                byref(count)), "nc_model_predict_loader")
        lo, la = B.result(logits), B.result(labels)
        return lo[:count.value], la[:count.value]

    # ---- tensors
    def tensors(self):
        """Every named tensor (parameters and buffers) as TensorInfo(name, shape, numel,
        trainable), in the model's order."""
        out = []
        info = nc_tensor_info()
        for i in range(lib.nc_model_num_tensors(self._h)):
            self._check(lib.nc_model_tensor_info(self._h, i, byref(info)), "nc_model_tensor_info")
            out.append(TensorInfo(decode(info.name), tuple(info.shape[:info.ndim]), info.numel, bool(info.trainable)))
        return out

    def _tensor_numel(self, name):
        for t in self.tensors():
            if t.name == name:
                return t
        return None

    def get_tensor(self, name):
        """A copy of tensor `name` (float32, torchvision order and shape)."""
        t = self._tensor_numel(name)
        numel = t.numel if t else 1  # unknown name: let the library say so
        o = B.output(t.shape if t else (1,), "f")
        self._check(lib.nc_model_get_tensor(self._h, encode(name, "name"), o.address, numel), "nc_model_get_tensor")
        return B.result(o)

    def set_tensor(self, name, values):
        """Overwrites tensor `name` with `values` (same number of elements)."""
        buf = B.as_input(values, "values", "f")
        self._check(lib.nc_model_set_tensor(self._h, encode(name, "name"), buf.address, buf.count),
                    "nc_model_set_tensor")

    def state_dict(self):
        """{name: array} of every tensor (copies)."""
        return {t.name: self.get_tensor(t.name) for t in self.tensors()}

    # ---- files
    def save(self, path):
        """Saves parameters, buffers and metadata as one safetensors file (atomically)."""
        self._check(lib.nc_model_save(self._h, encode(path, "path")), "nc_model_save")

    def load_weights(self, path, strict=True):
        """Loads a torchvision-keyed safetensors state_dict; returns a LoadReport."""
        r = nc_load_report()
        r.struct_size = ctypes.sizeof(r)
        self._check(lib.nc_model_load_weights(self._h, encode(path, "path"), 1 if strict else 0, byref(r)),
                    "nc_model_load_weights")
        return _report(r)

    def load_pretrained(self, path, strict=False, adapt="rgb_normal", keep_head=False, seed=0):
        """Imports torchvision weights with first-conv adaptation ("rgb_normal" or
        "rgb_mean") and head re-initialisation; returns a LoadReport."""
        opt = nc_pretrained_options()
        lib.nc_pretrained_options_init(byref(opt))
        opt.strict = 1 if strict else 0
        opt.adapt = _enum(adapt, ADAPT, "adapt")
        opt.keep_head = 1 if keep_head else 0
        opt.seed = seed
        r = nc_load_report()
        r.struct_size = ctypes.sizeof(r)
        self._check(lib.nc_model_load_pretrained(self._h, encode(path, "path"), byref(opt), byref(r)),
                    "nc_model_load_pretrained")
        return _report(r)

    # ---- metadata
    @property
    def class_names(self):
        """The stored class names (a list), or None."""
        k = self.num_classes
        names = [lib.nc_model_class_name(self._h, i) for i in range(k)]
        if any(n is None for n in names):
            return None
        return [decode(n) for n in names]

    @class_names.setter
    def class_names(self, names):
        if names is None:
            self._check(lib.nc_model_set_class_names(self._h, None, 0), "nc_model_set_class_names")
            return
        enc = [encode(str(n), "class name") for n in names]
        arr = (c_char_p * len(enc))(*enc)
        self._check(lib.nc_model_set_class_names(self._h, arr, len(enc)), "nc_model_set_class_names")

    @property
    def normalization(self):
        """(mean, std) lists of in_channels values stored with the model, or None."""
        c = self.in_channels
        mean, std = (c_float * c)(), (c_float * c)()
        st = lib.nc_model_get_normalization(self._h, mean, std)
        if st == 8:
            return None
        self._check(st, "nc_model_get_normalization")
        return list(mean), list(std)

    @normalization.setter
    def normalization(self, value):
        mean, std = value
        c = self.in_channels
        m, s = B.as_input(mean, "mean", "f"), B.as_input(std, "std", "f")
        if m.count != c or s.count != c:
            raise ValueError("normalization: mean and std need %d values each (the model's input channels), "
                             "got %d and %d" % (c, m.count, s.count))
        self._check(lib.nc_model_set_normalization(self._h, m.address, s.address), "nc_model_set_normalization")

    def set_info(self, key, value):
        """Stores a string under `key` in the model's metadata (None removes it)."""
        v = None if value is None else encode(str(value), "value")
        self._check(lib.nc_model_set_info(self._h, encode(key, "key"), v), "nc_model_set_info")

    def get_info(self, key, default=None):
        """The string stored under `key`, or `default`."""
        v = lib.nc_model_info(self._h, encode(key, "key"))
        return default if v is None else decode(v)

    @property
    def _ctx_handle(self):
        return lib.nc_model_context(self._h)


def _summary(h, height, width, buf, size, needed):
    return lib.nc_model_summary(h, height, width, buf, size, needed)


class Builder(_ContextObject):
    """Builds a custom graph. Values are ints; `input` is the graph's input. Layer
    calls raise at the first error (the C builder is sticky as well)."""

    _kind = "builder"

    def __init__(self, in_channels, context=None):
        ctx = _ctx_of(context)
        self.context = ctx
        h = c_void_p()
        v = c_int32()
        self._check(lib.nc_builder_create(ctx._h, in_channels, byref(h), byref(v)), "nc_builder_create")
        self._own(h.value, lib.nc_builder_destroy, [ctx])
        self.input = v.value

    def _call(self, fn, name, *args):
        v = c_int32()
        self._check(getattr(lib, fn)(self._h, *args, byref(v)), fn)
        return v.value

    def conv2d(self, name, x, out_channels, kernel, stride=1, padding=0, dilation=1, groups=1, bias=True):
        return self._call("nc_builder_conv2d", name, encode(name, "name"), x, out_channels, kernel, stride, padding,
                          dilation, groups, 1 if bias else 0)

    def batchnorm(self, name, x, eps=1e-5, momentum=0.1):
        return self._call("nc_builder_batchnorm", name, encode(name, "name"), x, eps, momentum)

    def relu(self, x):
        return self._call("nc_builder_relu", None, x)

    def max_pool2d(self, x, kernel, stride=None, padding=0):
        return self._call("nc_builder_max_pool2d", None, x, kernel, kernel if stride is None else stride, padding)

    def avg_pool2d(self, x, kernel, stride=None, padding=0):
        return self._call("nc_builder_avg_pool2d", None, x, kernel, kernel if stride is None else stride, padding)

    def adaptive_avg_pool2d(self, x, out_h=1, out_w=None):
        return self._call("nc_builder_adaptive_avg_pool2d", None, x, out_h, out_h if out_w is None else out_w)

    def add(self, a, b):
        return self._call("nc_builder_add", None, a, b)

    def linear(self, name, x, out_features, bias=True):
        return self._call("nc_builder_linear", name, encode(name, "name"), x, out_features, 1 if bias else 0)

    def dropout(self, x, p):
        return self._call("nc_builder_dropout", None, x, p)

    def flatten(self, x):
        return self._call("nc_builder_flatten", None, x)

    def concat(self, xs):
        xs = list(xs)
        arr = (c_int32 * max(len(xs), 1))(*xs)
        return self._call("nc_builder_concat", None, arr, len(xs))

    def finish(self, output, num_heads=1, seed=0):
        """The model whose logits are `output` (the builder stays usable)."""
        h = c_void_p()
        self._check(lib.nc_builder_finish(self._h, output, num_heads, seed, byref(h)), "nc_builder_finish")
        return Model._wrap(h.value, self.context)


StepStats = namedtuple("StepStats", "loss correct total skipped updated grad_norm lr")
CheckpointInfo = namedtuple("CheckpointInfo", "epoch batch best_metric best_epoch")
OPTIMIZERS = {"sgd": 0, "adam": 1, "adamw": 2}
LOSSES = {"cross_entropy": 0, "bce_with_logits": 1, "bce": 1}


class Trainer(_ContextObject):
    """Loss + optimizer state for a model; step() runs one training step.

    Keyword options mirror nc_trainer_options: lr, momentum, dampening, weight_decay,
    nesterov, seed, optimizer ("sgd", "adam", "adamw"), beta1, beta2, eps,
    no_decay_norm_bias, loss ("cross_entropy", "bce_with_logits"), label_smoothing,
    class_weights, head_weights, ignore_label, pos_weight, accumulation_steps,
    clip_grad_norm, max_nonfinite."""

    _kind = "trainer"

    def __init__(self, model, lr=0.01, momentum=0.9, *, dampening=0.0, weight_decay=0.0, nesterov=False, seed=0,
                 optimizer="sgd", beta1=0.9, beta2=0.999, eps=1e-8, no_decay_norm_bias=False,
                 loss="cross_entropy", label_smoothing=0.0, class_weights=None, head_weights=None,
                 ignore_label=-100, pos_weight=None, accumulation_steps=1, clip_grad_norm=0.0, max_nonfinite=5):
        if not isinstance(model, Model):
            raise TypeError("model must be a neurc.Model, not %s" % type(model).__name__)
        self.model = model
        self.context = model.context
        opt = nc_trainer_options()
        lib.nc_trainer_options_init(byref(opt))
        opt.lr, opt.momentum, opt.dampening, opt.weight_decay = lr, momentum, dampening, weight_decay
        opt.nesterov = 1 if nesterov else 0
        opt.seed = seed
        opt.optimizer = _enum(optimizer, OPTIMIZERS, "optimizer")
        opt.beta1, opt.beta2, opt.eps = beta1, beta2, eps
        opt.no_decay_norm_bias = 1 if no_decay_norm_bias else 0
        opt.loss = _enum(loss, LOSSES, "loss")
        self.loss = opt.loss
        opt.label_smoothing = label_smoothing
        keep = []  # the arrays are copied by nc_trainer_create
        outputs, heads = model.num_outputs, model.num_heads
        if class_weights is not None:
            b = B.as_input(class_weights, "class_weights", "f")
            if b.count not in (outputs // heads, outputs):
                raise ValueError("class_weights: need %d (per class) or %d (per head and class) values, got %d"
                                 % (outputs // heads, outputs, b.count))
            keep.append(b)
            opt.class_weights, opt.num_class_weights = b.address, b.count
        if head_weights is not None:
            b = B.as_input(head_weights, "head_weights", "f")
            if b.count != heads:
                raise ValueError("head_weights: need %d values (one per head), got %d" % (heads, b.count))
            keep.append(b)
            opt.head_weights = b.address
        opt.ignore_label = ignore_label
        if pos_weight is not None:
            b = B.as_input(pos_weight, "pos_weight", "f")
            if b.count != outputs:
                raise ValueError("pos_weight: need %d values (heads x classes), got %d" % (outputs, b.count))
            keep.append(b)
            opt.pos_weight = b.address
        opt.accumulation_steps = accumulation_steps
        opt.clip_grad_norm = clip_grad_norm
        opt.max_nonfinite = max_nonfinite
        h = c_void_p()
        self._check(lib.nc_trainer_create(model._h, byref(opt), byref(h)), "nc_trainer_create")
        self._own(h.value, lib.nc_trainer_destroy, [model])
        self.schedule = None

    def step(self, x, labels):
        """One training step on a batch x (n, c, h, w) with labels (n * heads class
        indices; n * heads * classes 0/1 values for BCE). Returns StepStats. A skipped
        non-finite step raises NumericError once max_nonfinite is exceeded."""
        buf = B.as_input(x, "x", "f")
        if len(buf.shape) != 4:
            raise ValueError("x must be 4-D (n, c, h, w), got shape %s" % (buf.shape,))
        n, c, h, w = buf.shape
        lab = B.as_input(labels, "labels", "i")
        per = self.model.num_outputs if self.loss == 1 else self.model.num_heads
        if lab.count != n * per:
            raise ValueError("labels: need %d values for %d samples (%d each), got %d" % (n * per, n, per, lab.count))
        s = nc_step_stats()
        self._check(lib.nc_trainer_step(self._h, buf.address, lab.address, n, c, h, w, byref(s)), "nc_trainer_step")
        return StepStats(s.loss, s.correct, s.total, s.skipped, s.updated, s.grad_norm, s.lr)

    def set_lr(self, lr):
        self._check(lib.nc_trainer_set_lr(self._h, lr), "nc_trainer_set_lr")

    @property
    def num_steps(self):
        return lib.nc_trainer_num_steps(self._h)

    def add_group(self, name, prefixes, lr, weight_decay=0.0):
        """A parameter group of the tensors whose names start with one of `prefixes`
        (a list or a comma-separated string)."""
        if not isinstance(prefixes, (str, bytes)):
            prefixes = ",".join(prefixes)
        self._check(lib.nc_trainer_add_group(self._h, encode(name, "name"), encode(prefixes, "prefixes"), lr,
                                             weight_decay), "nc_trainer_add_group")

    def freeze_group(self, name, frozen=True):
        self._check(lib.nc_trainer_freeze_group(self._h, encode(name, "name"), 1 if frozen else 0),
                    "nc_trainer_freeze_group")

    def set_group_lr(self, name, lr):
        self._check(lib.nc_trainer_set_group_lr(self._h, encode(name, "name"), lr), "nc_trainer_set_group_lr")

    def group_lr(self, name="default"):
        v = c_float()
        self._check(lib.nc_trainer_group_lr(self._h, encode(name, "name"), byref(v)), "nc_trainer_group_lr")
        return v.value

    def set_schedule(self, schedule):
        """Takes every group's lr from `schedule` before each update (None detaches).
        The trainer keeps the schedule alive; closing the schedule closes the trainer."""
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError("schedule must be a neurc.Schedule or None")
        self._check(lib.nc_trainer_set_schedule(self._h, schedule._h if schedule is not None else None),
                    "nc_trainer_set_schedule")
        old = self.schedule
        if old is not None:  # detached: closing it no longer concerns this trainer
            old._cell.dependents.pop(id(self._cell), None)
            if old._cell in self._cell.parents:
                self._cell.parents.remove(old._cell)
        self.schedule = schedule
        if schedule is None:
            return
        # the C schedule must outlive the trainer: make the trainer depend on it
        schedule._cell.dependents[id(self._cell)] = self._cell
        self._cell.parents.append(schedule._cell)

    def set_comm(self, comm):
        """Makes this trainer data-parallel over `comm` (a neurc.Comm; None detaches):
        rank 0's weights are copied to every rank now, and every update averages the
        gradients over the ranks (docs/distributed.md). The trainer keeps the
        communicator alive; closing it closes the trainer."""
        if comm is not None and not isinstance(comm, Comm):
            raise TypeError("comm must be a neurc.Comm or None")
        self._check(lib.nc_trainer_set_comm(self._h, comm._h if comm is not None else None), "nc_trainer_set_comm")
        if comm is not None:
            comm._cell.dependents[id(self._cell)] = self._cell
            self._cell.parents.append(comm._cell)
        self.comm = comm

    def save_checkpoint(self, path, epoch=0, batch=0, best_metric=float("nan"), best_epoch=0):
        info = nc_checkpoint_info()
        lib.nc_checkpoint_info_init(byref(info))
        info.epoch, info.batch, info.best_metric, info.best_epoch = epoch, batch, best_metric, best_epoch
        self._check(lib.nc_trainer_save_checkpoint(self._h, encode(path, "path"), byref(info)),
                    "nc_trainer_save_checkpoint")

    def load_checkpoint(self, path):
        """Restores the training state; returns CheckpointInfo."""
        info = nc_checkpoint_info()
        lib.nc_checkpoint_info_init(byref(info))
        self._check(lib.nc_trainer_load_checkpoint(self._h, encode(path, "path"), byref(info)),
                    "nc_trainer_load_checkpoint")
        return CheckpointInfo(info.epoch, info.batch, info.best_metric, info.best_epoch)


SCHEDULES = {"constant": 0, "step": 1, "multistep": 2, "exponential": 3, "cosine": 4, "plateau": 5}


class Schedule(_ContextObject):
    """A learning-rate schedule, e.g. Schedule("cosine", t_max=100, warmup_steps=5) or
    Schedule("plateau", mode="max", patience=3). Fields as nc_schedule_options
    (milestones a list; mode "min"/"max" for plateau)."""

    _kind = "schedule"

    def __init__(self, kind="constant", context=None, *, milestones=None, mode=None, **fields):
        ctx = _ctx_of(context)
        self.context = ctx
        opt = nc_schedule_options()
        lib.nc_schedule_options_init(byref(opt))
        opt.kind = _enum(kind, SCHEDULES, "kind")
        names = {f[0] for f in nc_schedule_options._fields_} - {"struct_size", "kind", "milestones",
                                                                 "num_milestones", "mode_max"}
        for k, v in fields.items():
            if k not in names:
                raise TypeError("Schedule: unknown option %r (known: %s)" % (k, ", ".join(sorted(names))))
            setattr(opt, k, int(v) if isinstance(v, bool) else v)
        if mode is not None:
            opt.mode_max = _enum(mode, {"min": 0, "max": 1}, "mode")
        keep = None
        if milestones is not None:
            keep = (ctypes.c_int * max(len(milestones), 1))(*milestones)
            opt.milestones, opt.num_milestones = ctypes.addressof(keep), len(milestones)
        h = c_void_p()
        self._check(lib.nc_schedule_create(ctx._h, byref(opt), byref(h)), "nc_schedule_create")
        self._own(h.value, lib.nc_schedule_destroy, [ctx])

    def step(self, metric=float("nan")):
        self._check(lib.nc_schedule_step(self._h, metric), "nc_schedule_step")

    def lr(self, base_lr):
        return lib.nc_schedule_lr(self._h, base_lr)

    @property
    def position(self):
        return lib.nc_schedule_position(self._h)


class Comm(_ContextObject):
    """A communicator between the ranks of an MPI program (docs/distributed.md). The
    program must have initialised MPI first (for example by importing mpi4py);
    otherwise this raises StateError, and UnsupportedError in a build without MPI."""

    _kind = "comm"

    def __init__(self, context=None):
        ctx = _ctx_of(context)
        self.context = ctx
        h = c_void_p()
        self._check(lib.nc_comm_create_mpi(ctx._h, byref(h)), "nc_comm_create_mpi")
        self._own(h.value, lib.nc_comm_destroy, [ctx])

    @property
    def rank(self):
        return lib.nc_comm_rank(self._h)

    @property
    def size(self):
        return lib.nc_comm_size(self._h)

    def barrier(self):
        self._check(lib.nc_comm_barrier(self._h), "nc_comm_barrier")

    def allreduce_sum(self, values):
        """The sums over ranks of a list of numbers (as doubles), on every rank."""
        arr = (ctypes.c_double * max(len(values), 1))(*values)
        self._check(lib.nc_comm_allreduce_sum(self._h, arr, len(values)), "nc_comm_allreduce_sum")
        return list(arr[:len(values)])


class EMA(_ContextObject):
    """An exponential moving average of a model's weights."""

    _kind = "ema"

    def __init__(self, model, decay=0.999):
        self.model, self.context = model, model.context
        h = c_void_p()
        self._check(lib.nc_ema_create(model._h, decay, byref(h)), "nc_ema_create")
        self._own(h.value, lib.nc_ema_destroy, [model])

    def update(self):
        self._check(lib.nc_ema_update(self._h), "nc_ema_update")

    def swap(self):
        self._check(lib.nc_ema_swap(self._h), "nc_ema_swap")

    @property
    def swapped(self):
        return bool(lib.nc_ema_swapped(self._h))

    def close(self):
        # swap back first so the model keeps its own weights (the C contract)
        cell = self._cell
        if cell is not None and cell.handle is not None and lib.nc_ema_swapped(cell.handle):
            lib.nc_ema_swap(cell.handle)
        super().close()


class EarlyStopping(_ContextObject):
    """Early stopping on a metric with best-weight restore. mode "max" or "min"."""

    _kind = "early_stopping"

    def __init__(self, model, mode="max", patience=5, min_delta=0.0):
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max', not %r" % (mode,))
        self.model, self.context = model, model.context
        h = c_void_p()
        self._check(lib.nc_early_stopping_create(model._h, 1 if mode == "max" else 0, patience, min_delta,
                                                 byref(h)), "nc_early_stopping_create")
        self._own(h.value, lib.nc_early_stopping_destroy, [model])

    def update(self, metric):
        """Reports an epoch's metric; returns (improved, stop)."""
        imp, stop = c_int(), c_int()
        self._check(lib.nc_early_stopping_update(self._h, metric, byref(imp), byref(stop)),
                    "nc_early_stopping_update")
        return bool(imp.value), bool(stop.value)

    def restore_best(self):
        self._check(lib.nc_early_stopping_restore_best(self._h), "nc_early_stopping_restore_best")

    @property
    def best(self):
        return lib.nc_early_stopping_best(self._h)


def version():
    """The library's version string."""
    return decode(lib.nc_version_string())


def status_name(status):
    """"NC_ERR_SHAPE" for 4 etc."""
    from ._lib import STATUS_TABLE
    for v, n, _ in STATUS_TABLE:
        if v == status:
            return n
    return None


__all__ = ["Context", "Model", "Builder", "Trainer", "Schedule", "EMA", "EarlyStopping", "TrackingAllocator",
           "TensorInfo", "LoadReport", "StepStats", "CheckpointInfo", "default_context", "version"]
