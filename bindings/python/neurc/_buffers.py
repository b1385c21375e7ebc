"""Array plumbing between Python and the C API: numpy arrays (zero-copy when they are
already C-contiguous float32 / int32), objects with the buffer protocol (array.array,
memoryview, bytearray) and nested lists. numpy is optional."""

import array
import ctypes
import math
import os

np = None
if not os.environ.get("NEURC_NO_NUMPY"):  # set to test (or force) the plain-Python paths
    try:  # numpy is optional: everything works with plain Python, numpy makes it zero-copy
        import numpy as np
    except ImportError:
        np = None

HAVE_NUMPY = np is not None


def _nested_shape(seq):
    shape = []
    x = seq
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        if not x:
            break
        x = x[0]
    return tuple(shape)


def _flatten(seq, shape, depth, out, name):
    if depth == len(shape):
        out.append(seq)
        return
    if not isinstance(seq, (list, tuple)) or len(seq) != shape[depth]:
        raise ValueError("%s: ragged nested list (expected length %d at depth %d)" % (name, shape[depth], depth))
    for item in seq:
        _flatten(item, shape, depth + 1, out, name)


class Buffer:
    """A C-contiguous buffer handed to C: `address`, element `count`, `shape` (a tuple),
    and `keep` (the object that owns the memory, kept alive while the Buffer lives)."""

    __slots__ = ("address", "count", "shape", "keep")

    def __init__(self, address, count, shape, keep):
        self.address = address
        self.count = count
        self.shape = tuple(shape)
        self.keep = keep


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _check_shape(name, shape, count, want_shape):
    if want_shape is not None:
        if _prod(want_shape) != count:
            raise ValueError("%s: %d values cannot take the shape %s" % (name, count, tuple(want_shape)))
        return tuple(want_shape)
    return tuple(shape)


_CTYPE = {"f": ctypes.c_float, "i": ctypes.c_int32, "q": ctypes.c_int64, "b": ctypes.c_int8}
_NPTYPE = {"f": "float32", "i": "int32", "q": "int64", "b": "int8"}
_ITEMSIZE = {"f": 4, "i": 4, "q": 8, "b": 1}


def _array_code(kind):
    # array.array codes with the right width for int32/int64 on this platform
    if kind in ("f", "b"):
        return kind
    want = _ITEMSIZE[kind]
    for code in ("i", "l", "q"):
        if array.array(code).itemsize == want:
            return code
    raise RuntimeError("no array.array type code of %d bytes" % want)


def as_input(x, name, kind="f", shape=None):
    """Converts x to a C-contiguous buffer of float32 (kind 'f'), int32 ('i') or int64
    ('q'). numpy arrays of exactly that dtype and C-contiguous are used in place; other
    numeric numpy arrays are converted (integers to integer kinds only when every value
    fits). `shape` (optional) reshapes a flat input. Raises TypeError/ValueError with
    the argument's name otherwise."""
    if np is not None and (isinstance(x, np.ndarray) or hasattr(x, "__array_interface__")):
        a = np.asarray(x)
        want = np.dtype(_NPTYPE[kind])
        if a.dtype != want:
            if a.dtype.kind not in "biuf":
                raise TypeError("%s: dtype %s is not numeric (want %s)" % (name, a.dtype, want))
            if kind != "f":
                if a.dtype.kind == "f":
                    if not np.all(np.isfinite(a)) or not np.array_equal(a, np.floor(a)):
                        raise TypeError("%s: dtype %s has non-integer values (want %s)" % (name, a.dtype, want))
                info = np.iinfo(want)
                if a.size and (a.min() < info.min or a.max() > info.max):
                    raise ValueError("%s: values outside the range of %s" % (name, want))
            a = a.astype(want)
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        return Buffer(a.ctypes.data if a.size else 0, a.size, _check_shape(name, a.shape, a.size, shape), a)
    if isinstance(x, (list, tuple)) and np is not None:
        try:
            a = np.asarray(x, dtype="float64" if kind == "f" else None)
        except (ValueError, TypeError) as e:
            raise ValueError("%s: not a rectangular list of numbers (%s)" % (name, e)) from None
        if a.dtype.kind not in "biuf":
            raise TypeError("%s: values must be numbers, not %s" % (name, a.dtype))
        return as_input(a, name, kind, shape)
    if isinstance(x, (list, tuple)):
        nshape = _nested_shape(x)
        flat = []
        _flatten(x, nshape, 0, flat, name)
        return _from_values(flat, name, kind, nshape, shape)
    try:
        mv = memoryview(x)
    except TypeError:
        raise TypeError("%s: expected a numpy array, a buffer (array.array, memoryview) or a list, not %s"
                        % (name, type(x).__name__)) from None
    fmt = mv.format.lstrip("@=<")
    code = _array_code(kind)
    same = (fmt == code or (kind == "f" and fmt == "f")
            or (fmt in "ilqILQ" and kind != "f" and mv.itemsize == _ITEMSIZE[kind] and fmt.islower()))
    if same and mv.c_contiguous:
        count = mv.nbytes // mv.itemsize
        if mv.readonly:
            c = (_CTYPE[kind] * count).from_buffer_copy(mv)
        else:
            c = (_CTYPE[kind] * count).from_buffer(mv)
        return Buffer(ctypes.addressof(c) if count else 0, count, _check_shape(name, mv.shape, count, shape),
                      (c, x))
    if fmt in ("f", "d", "e", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q"):
        return _from_values(mv.cast("B").cast(fmt).tolist(), name, kind, mv.shape, shape)
    raise TypeError("%s: buffer format %r is not numeric" % (name, mv.format))


def _from_values(flat, name, kind, nshape, shape):
    if kind == "f":
        try:
            c = (ctypes.c_float * len(flat))(*flat)
        except TypeError:
            raise TypeError("%s: values must be numbers" % name) from None
    else:
        for v in flat:
            if isinstance(v, float):
                if not (math.isfinite(v) and v == int(v)):
                    raise TypeError("%s: %r is not an integer" % (name, v))
            elif not isinstance(v, int):
                raise TypeError("%s: values must be integers, got %s" % (name, type(v).__name__))
        lim = 2 ** (8 * _ITEMSIZE[kind] - 1)
        if any(not -lim <= int(v) < lim for v in flat):
            raise ValueError("%s: values outside the range of %s" % (name, _NPTYPE[kind]))
        c = (_CTYPE[kind] * len(flat))(*[int(v) for v in flat])
    return Buffer(ctypes.addressof(c) if flat else 0, len(flat), _check_shape(name, nshape, len(flat), shape), c)


def output(shape, kind="f", out=None, name="out"):
    """A writable C-contiguous buffer of `shape` for C to fill: `out` when given (it must
    be exactly right: a numpy array of that dtype, C-contiguous and writable, or a
    writable buffer of that format and size), else a new numpy array (or a ctypes array
    without numpy)."""
    count = _prod(shape)
    if out is not None:
        if np is not None and isinstance(out, np.ndarray):
            want = np.dtype(_NPTYPE[kind])
            if out.dtype != want:
                raise TypeError("%s: dtype %s, want %s (no silent conversion for an output)" % (name, out.dtype, want))
            if not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError("%s: must be C-contiguous and writable" % name)
            if out.size != count:
                raise ValueError("%s: has %d elements, want %d (shape %s)" % (name, out.size, count, tuple(shape)))
            return Buffer(out.ctypes.data if count else 0, count, shape, out)
        mv = memoryview(out)
        if mv.readonly or not mv.c_contiguous or mv.itemsize != _ITEMSIZE[kind] \
                or mv.format.lstrip("@=<") not in ((_array_code(kind),) if kind != "f" else ("f",)):
            raise TypeError("%s: must be a writable contiguous %s buffer" % (name, _NPTYPE[kind]))
        if mv.nbytes // mv.itemsize != count:
            raise ValueError("%s: has %d elements, want %d" % (name, mv.nbytes // mv.itemsize, count))
        c = (_CTYPE[kind] * count).from_buffer(mv)
        return Buffer(ctypes.addressof(c) if count else 0, count, shape, (c, out))
    if np is not None:
        a = np.empty(shape, dtype=_NPTYPE[kind])
        return Buffer(a.ctypes.data if count else 0, count, shape, a)
    c = (_CTYPE[kind] * count)()
    return Buffer(ctypes.addressof(c) if count else 0, count, shape, c)


def result(buf):
    """What a filled output buffer is returned as: the numpy array (shaped), the caller's
    own `out` object, or without numpy nested lists in the buffer's shape."""
    keep = buf.keep
    if isinstance(keep, tuple):  # the caller's own buffer
        return keep[1]
    if np is not None and isinstance(keep, np.ndarray):
        return keep
    return nest(list(keep), buf.shape)


def nest(flat, shape):
    """Flat list -> nested lists of `shape`."""
    if len(shape) <= 1:
        return list(flat)
    step = _prod(shape[1:])
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def from_address(address, count, kind="f", shape=None, copy=True):
    """A copy (numpy array or nested lists) of `count` values at a C address."""
    shape = tuple(shape) if shape is not None else (count,)
    if count == 0:
        return np.zeros(shape, dtype=_NPTYPE[kind]) if np is not None else nest([], shape)
    c = (_CTYPE[kind] * count).from_address(address)
    if np is not None:
        a = np.frombuffer(c, dtype=_NPTYPE[kind], count=count).reshape(shape)
        return a.copy() if copy else a
    return nest(list(c), shape)
