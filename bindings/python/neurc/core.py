"""Contexts, models, the graph builder, trainers, schedules, weight averaging and early
stopping: Python objects that own their C handles (see _lib.Cell for the lifetime
rules). Every object has close() and works as a context manager."""

import ctypes
import math
import threading
from collections import namedtuple
from ctypes import byref, c_char_p, c_float, c_int, c_int32, c_size_t, c_void_p

from . import _buffers as B
from ._lib import (PROGRESS_FN, CancelledError, Cell, StateError, call_interruptible, decode, encode, error_class, lib,
                   nc_checkpoint_info, nc_context_options, nc_epoch_stats, nc_input_desc, nc_load_report, nc_model_options,
                   nc_onnx_options, nc_pretrained_options, nc_schedule_options, nc_step_stats, nc_tensor_info,
                   nc_trainer_options, park_exception, raise_status, sigint_hit, status_str)

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


PHASES = {1: "train", 2: "evaluate", 3: "predict", 4: "save", 5: "scan"}
Progress = namedtuple("Progress", "phase done total epoch loss metric what")
Progress.__doc__ = """A progress report: phase ("train", "evaluate", "predict", "save",
"scan"), done and total units (total None when unknown), the loader epoch (None when not
a loader call), running loss and metric (NaN when not measured), the file or folder
concerned (or None)."""
STOP = "stop"


class _ProgressHook:
    """The C progress callback of a Context: stops the call on Ctrl-C (_lib.call_interruptible)
    and hands each report to the user's function, whose exceptions stop the call and are
    re-raised from it. Holds no reference to the Context (no cycle)."""

    def __init__(self):
        self.fn = None
        self.handle = None
        self.c_fn = PROGRESS_FN(self._call)

    def _call(self, p, user):
        try:
            return self._report(p.contents)
        except BaseException as e:  # noqa: B036 - handed back to the caller of the C call
            park_exception(self.handle, e)
            return 1

    def _report(self, r):
        if sigint_hit():
            return 1
        if self.fn is None:
            return 0
        pr = Progress(PHASES.get(r.phase, r.phase), r.done, r.total if r.total >= 0 else None,
                      r.epoch if r.epoch >= 0 else None, r.loss, r.metric, decode(r.what))
        answer = self.fn(pr)
        return 1 if answer is True or answer == STOP else 0


class Context(_Object):
    """Backend choice, threads, allocator and the last error message.

    backend: "auto" (default), "ref", "onednn" or "cuda"; threads: CPU threads (0 = all
    cores); deterministic: only deterministic algorithms; allocator: a TrackingAllocator
    (or None for the C library's); precision: "fp32" (default), "bf16" (mixed precision
    with PyTorch autocast's rules: bf16 activations, f32 masters, statistics and loss;
    docs/backends.md) or "bf16_math" (f32 storage, convolutions and linear layers
    computed in bfloat16: oneDNN on a CPU with AVX512_BF16 only, else
    UnsupportedError); bf16=True is the older spelling of precision="bf16_math";
    conv_algorithm: "auto" (default: Winograd for the 3x3 convolutions where the
    backend has it and it is faster, direct elsewhere), "direct" (the smallest
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
        self._progress = _ProgressHook()  # the C function must outlive the context
        self._progress.handle = h.value
        lib.nc_context_set_progress(h.value, self._progress.c_fn, None)

    def set_progress(self, fn):
        """Calls fn(Progress) from every reporting call on this context and the objects
        made from it (training epochs, evaluation and prediction over a loader, saving,
        dataset scans), on the calling thread. Returning neurc.STOP (or True) ends the
        call cleanly with CancelledError; an exception raised by fn ends it too and is
        re-raised from the call. None removes it. Ctrl-C stops such calls in any case
        (KeyboardInterrupt once the call has stopped cleanly)."""
        if fn is not None and not callable(fn):
            raise TypeError("progress must be callable or None")
        self._h  # closed contexts raise
        self._progress.fn = fn

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
EpochStats = namedtuple("EpochStats", "batches steps samples skipped loss accuracy finished")


def _sigmoid(z):
    """1 / (1 + exp(-z)) without overflow."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softmax(z, t=1.0):
    """softmax(z / t) of a list, in double."""
    mx = max(z)
    e = [math.exp((v - mx) / t) for v in z]
    s = sum(e)
    return [v / s for v in e]


def _epoch_stats(es):
    return EpochStats(es.batches, es.steps, es.samples, es.skipped, es.loss, es.accuracy, bool(es.finished))
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

    def forward_raw(self, x, layout="nchw", min_value=0.0, max_value=None, normalize=True, out=None):
        """Logits of camera frames as they come, converted and preprocessed inside the
        library (nc_model_forward_raw): x is a numpy array of uint8, uint16 or float32,
        of shape (n, c, h, w) for layout "nchw", (n, h, w, c) for "nhwc" (a 3-D array is
        one image), or for "planar" a list of c arrays (n, h, w) or (h, w), one per
        channel. Any strides (a slice of a larger frame, a flipped view) are passed as
        they are, without a copy. Values map [min_value, max_value] to [0, 1]
        (max_value None: the type's full range; 4095 for 12-bit data), then the model's
        stored mean/std apply (normalize=False: scaling only). Returns (n, num_outputs)."""
        if B.np is None:
            raise TypeError("forward_raw needs numpy arrays")
        np = B.np
        kinds = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2, np.dtype(np.float32): 3}
        lay = {"nchw": 0, "nhwc": 1, "planar": 2}.get(str(layout).lower())
        if lay is None:
            raise ValueError("layout must be 'nchw', 'nhwc' or 'planar', not %r" % (layout,))
        arrays = list(x) if lay == 2 else [x]
        for a in arrays:
            if not isinstance(a, np.ndarray) or a.dtype not in kinds or a.dtype.byteorder not in "=|":
                raise TypeError("forward_raw takes numpy arrays of native uint8, uint16 or float32")
            if a.dtype != arrays[0].dtype or a.shape != arrays[0].shape:
                raise ValueError("the planes must share one dtype and shape")
        a0 = arrays[0]
        d = nc_input_desc()
        lib.nc_input_desc_init(byref(d))
        d.type, d.layout = kinds[a0.dtype], lay
        if lay == 2:
            view = a0 if a0.ndim == 3 else a0[None] if a0.ndim == 2 else None
            if view is None:
                raise ValueError("each plane must be (n, h, w) or (h, w), got shape %s" % (a0.shape,))
            d.n, d.h, d.w, d.c = view.shape + (len(arrays),)
            d.stride_n, d.stride_h, d.stride_w = view.strides
            planes = (c_void_p * len(arrays))(*[a.__array_interface__["data"][0] for a in arrays])
            d.planes = ctypes.cast(planes, c_void_p)
        else:
            view = a0 if a0.ndim == 4 else a0[None] if a0.ndim == 3 else None
            if view is None:
                raise ValueError("x must be 4-D, or 3-D for one image, got shape %s" % (a0.shape,))
            if lay == 0:
                d.n, d.c, d.h, d.w = view.shape
                d.stride_n, d.stride_c, d.stride_h, d.stride_w = view.strides
            else:
                d.n, d.h, d.w, d.c = view.shape
                d.stride_n, d.stride_h, d.stride_w, d.stride_c = view.strides
            d.data = a0.__array_interface__["data"][0]
        # numpy's zero strides (broadcast axes) would read as "packed": refuse them
        if 0 in (d.stride_n if d.n > 1 else 1, d.stride_h if d.h > 1 else 1, d.stride_w if d.w > 1 else 1,
                 d.stride_c if (d.c > 1 and lay != 2) else 1):
            raise ValueError("forward_raw: broadcast (zero-stride) arrays are not supported; copy the array")
        for name in ("stride_n", "stride_h", "stride_w", "stride_c"):  # a size-1 axis may report any stride
            if getattr(d, name) == 0:
                setattr(d, name, 0 if (name == "stride_c" and lay == 2) else 1)
        d.min_value = float(min_value)
        d.max_value = float(max_value) if max_value is not None else (0.0 if min_value == 0 else
                                                                       {1: 255.0, 2: 65535.0, 3: 1.0}[d.type])
        d.normalize = 1 if normalize else 0
        o = B.output((d.n, self.num_outputs), "f", out, "out")
        self._check(lib.nc_model_forward_raw(self._h, byref(d), o.address), "nc_model_forward_raw")
        return B.result(o)

    def grad_cam(self, x, classes=None, head=0, layer=None):
        """Grad-CAM maps (n, h, w) of images x for `classes` (None = top-1) of `head` at
        `layer` (None = the last convolutional stage); see Saliency.compute. The
        Saliency state is kept per layer on this model."""
        return self._saliency(layer).compute(x, classes, head).cam

    def input_gradient(self, x, classes=None, head=0):
        """The gradient (n, c, h, w) of each image's class logit with respect to its
        input channels (plain saliency; take abs() to display)."""
        return self._saliency(None).compute(x, classes, head, cam=False, input_grad=True).input_grad

    def _saliency(self, layer):
        cache = self.__dict__.setdefault("_saliencies", {})
        s = cache.get(layer)
        if s is None or s.closed:
            s = cache[layer] = Saliency(self, layer)
        return s

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

    @property
    def output(self):
        """What the outputs are: "sigmoid" for a multi-label model (nc-train --loss bce
        stores info "output" = "sigmoid"), else "softmax" (classes per head)."""
        return "sigmoid" if self.get_info("output") == "sigmoid" else "softmax"

    def predict_proba(self, x, batch_size=256, temperature=None):
        """Probabilities (n, num_outputs) of any number of images: a multi-label model's
        sigmoid per label, otherwise the softmax of each head at temperature T (default:
        the model's calibrated info "temperature", else 1)."""
        z = self.predict(x, batch_size)
        rows = [[float(v) for v in row] for row in z]
        if self.output == "sigmoid":
            out = [[_sigmoid(v) for v in row] for row in rows]
        else:
            t = temperature if temperature is not None else float(self.get_info("temperature", "1"))
            if not t > 0:
                raise ValueError("temperature must be > 0, got %r" % (t,))
            k = self.num_classes
            out = [sum((_softmax(row[h * k:(h + 1) * k], t) for h in range(self.num_heads)), []) for row in rows]
        if B.np is not None:
            return B.np.asarray(out, dtype="float32").reshape(len(rows), self.num_outputs)
        return out

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
        self._check(call_interruptible(lib.nc_model_predict_loader, self._h, loader._h, epoch, logits.address,
                                       labels.address, cap, byref(count)), "nc_model_predict_loader")
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
        self._check(call_interruptible(lib.nc_model_save, self._h, encode(path, "path")), "nc_model_save")

    def export_onnx(self, path, height=None, width=None, *, opset=13, split_heads=False, normalize=False,
                    fold_batchnorm=False):
        """Writes the inference graph as an ONNX file (atomically; docs/onnx.md): input
        "input" (batch, C, height, width), output "logits" (or "logits_<h>" per head with
        split_heads). height/width default to the model's info key "image_size" (set by
        nc-train); width defaults to height. normalize puts the stored mean/std into the
        graph; fold_batchnorm folds batch norms into the convolutions before them.
        Raises NeurcError (status UNSUPPORTED when neurc was built without ONNX)."""
        if height is None:  # "N" or "HxW", as nc-export reads it
            h, _, w = (self.get_info("image_size") or "").partition("x")
            if not h.isdigit() or not (w.isdigit() or not w):
                raise ValueError("export_onnx: give height (and width): the model has no usable info key "
                                 "image_size")
            height, width = int(h), (int(w) if w else width)
        opt = nc_onnx_options()
        lib.nc_onnx_options_init(byref(opt))
        opt.height = height
        opt.width = height if width is None else width
        opt.opset = opset
        opt.split_heads = 1 if split_heads else 0
        opt.normalize = 1 if normalize else 0
        opt.fold_batchnorm = 1 if fold_batchnorm else 0
        self._check(lib.nc_model_export_onnx(self._h, encode(path, "path"), byref(opt)), "nc_model_export_onnx")

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

    def set_sync_batchnorm(self, enable=True):
        """Synchronised batch norm (torch.nn.SyncBatchNorm) over the communicator's
        ranks: statistics of the whole global batch (docs/distributed.md)."""
        self._check(lib.nc_trainer_set_sync_batchnorm(self._h, 1 if enable else 0), "nc_trainer_set_sync_batchnorm")

    def set_grad_overlap(self, enable=True):
        """Overlap of the gradient all-reduce with the backward pass (on by default;
        identical results either way)."""
        self._check(lib.nc_trainer_set_grad_overlap(self._h, 1 if enable else 0), "nc_trainer_set_grad_overlap")

    def save_checkpoint(self, path, epoch=0, batch=0, best_metric=float("nan"), best_epoch=0):
        info = nc_checkpoint_info()
        lib.nc_checkpoint_info_init(byref(info))
        info.epoch, info.batch, info.best_metric, info.best_epoch = epoch, batch, best_metric, best_epoch
        self._check(call_interruptible(lib.nc_trainer_save_checkpoint, self._h, encode(path, "path"), byref(info)),
                    "nc_trainer_save_checkpoint")

    def train_epoch(self, loader, epoch=0, start_batch=0):
        """Trains over epoch `epoch` of a Loader, one step per batch, skipping its first
        `start_batch` batches (those trained before a cancellation); returns EpochStats.
        Reports "train" progress to the context's callback after each step. When the
        callback stops it (or Ctrl-C), the model and trainer hold every step taken and
        the raised CancelledError (or KeyboardInterrupt) carries .stats: save a checkpoint
        with batch=stats.batches and call again with start_batch=stats.batches to finish
        the epoch as if uninterrupted."""
        from .data import Loader
        if not isinstance(loader, Loader):
            raise TypeError("loader must be a neurc.Loader")
        es = nc_epoch_stats()
        lib.nc_epoch_stats_init(byref(es))
        try:
            st = call_interruptible(lib.nc_trainer_train_epoch, self._h, loader._h, epoch, start_batch, byref(es))
            self._check(st, "nc_trainer_train_epoch")
        except (CancelledError, KeyboardInterrupt) as e:
            e.stats = _epoch_stats(es)
            raise
        return _epoch_stats(es)

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
    otherwise this raises StateError, and UnsupportedError in a build without MPI.
    nccl=True: NCCL between GPU ranks on CUDA device `device` (-1: the rank's index on
    its node) - untested until a GPU run, and only for a CUDA backend's trainer."""

    _kind = "comm"

    def __init__(self, context=None, nccl=False, device=-1):
        ctx = _ctx_of(context)
        self.context = ctx
        h = c_void_p()
        if nccl:
            self._check(lib.nc_comm_create_nccl(ctx._h, int(device), byref(h)), "nc_comm_create_nccl")
        else:
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

    @property
    def timeout(self):
        """Seconds any collective waits for the other ranks before it raises
        neurc.TimeoutError (default 1800; float("inf"): no limit). After a timeout the
        communicator is unusable: end the job (MPI's Abort)."""
        return lib.nc_comm_timeout(self._h)

    @timeout.setter
    def timeout(self, seconds):
        self._check(lib.nc_comm_set_timeout(self._h, float(seconds)), "nc_comm_set_timeout")

    def allreduce_sum(self, values):
        """The sums over ranks of a list of numbers (as doubles), on every rank."""
        arr = (ctypes.c_double * max(len(values), 1))(*values)
        self._check(lib.nc_comm_allreduce_sum(self._h, arr, len(values)), "nc_comm_allreduce_sum")
        return list(arr[:len(values)])


SaliencyMaps = namedtuple("SaliencyMaps", "classes cam input_grad")


class Saliency(_ContextObject):
    """Grad-CAM and input-gradient saliency of a model (nc_saliency). layer: a module
    path ("layer3", "layer4.1.conv2", "features") or None for the last convolutional
    stage. The weights are followed when the model changes."""

    _kind = "saliency"

    def __init__(self, model, layer=None):
        self.model, self.context = model, model.context
        h = c_void_p()
        self._check(lib.nc_saliency_create(model._h, encode(layer, "layer"), byref(h)), "nc_saliency_create")
        self._own(h.value, lib.nc_saliency_destroy, [model])

    @property
    def layer(self):
        """The node whose output the maps use."""
        return decode(lib.nc_saliency_layer(self._h))

    def compute(self, x, classes=None, head=0, cam=True, input_grad=False):
        """SaliencyMaps(classes, cam, input_grad) for images x (n, c, h, w) float32 as
        for Model.forward: classes (n,) explained (None = each image's top-1 of `head`);
        cam (n, h, w) Grad-CAM, not normalised; input_grad (n, c, h, w) the gradient of
        the class logit per input channel (None when not asked for)."""
        buf = B.as_input(x, "x", "f")
        shape = (1,) + tuple(buf.shape) if len(buf.shape) == 3 else tuple(buf.shape)
        if len(shape) != 4 or shape[0] < 1:
            raise ValueError("x must be 4-D (n, c, h, w) or 3-D (c, h, w), got shape %s" % (buf.shape,))
        n, c, h, w = shape
        cls = B.as_input(classes, "classes", "i") if classes is not None else None
        if cls is not None and cls.count != n:
            raise ValueError("classes: need %d values, got %d" % (n, cls.count))
        used = B.output((n,), "i")
        cm = B.output((n, h, w), "f") if cam else None
        gr = B.output((n, c, h, w), "f") if input_grad else None
        self._check(lib.nc_saliency_compute(self._h, buf.address, n, c, h, w, head, cls.address if cls else None,
                                            used.address, cm.address if cm else None, gr.address if gr else None),
                    "nc_saliency_compute")
        return SaliencyMaps(B.result(used), B.result(cm) if cm else None, B.result(gr) if gr else None)


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
