"""Tests of the neurc Python package (bindings/python) against the built libneurc.

Run by meson (`meson test -C build --suite python`) with NEURC_LIBRARY and PYTHONPATH set,
or by hand: NEURC_LIBRARY=build/lib/libneurc.so PYTHONPATH=bindings/python python3
tests/python/test_neurc.py. Uses only unittest; tests that need numpy or matplotlib skip
when those are missing (NEURC_NO_NUMPY=1 runs the plain-Python paths)."""

import array
import ctypes
import gc
import io
import itertools
import math
import os
import re
import tempfile
import time
import unittest

import neurc
from neurc import _buffers, _lib

np = _buffers.np
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "neurc.h")
FMNIST = "/usr/share/datasets/fashion-mnist"
HAVE_FMNIST = os.path.isfile(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"))

# ---- every public function must be called at least once by this module: count calls
CALLED = set()


def _counting(name, fn):
    def call(*args):
        CALLED.add(name)
        return fn(*args)
    call.__name__ = name
    return call


for _name, _, _ in _lib.FUNCTIONS:
    setattr(_lib.lib, _name, _counting(_name, getattr(_lib.lib, _name)))


def need(*names):
    """Skips a test when this libneurc lacks one of the functions."""
    missing = [n for n in names if n in _lib.lib.missing]
    return unittest.skipIf(missing, "libneurc lacks %s" % ", ".join(missing))


def header_text():
    with open(HEADER) as f:
        return f.read()


def to_list(a):
    """Nested lists of an array result (numpy or lists)."""
    return a.tolist() if hasattr(a, "tolist") else a


def flat(a):
    a = to_list(a)
    out = []

    def walk(x):
        if isinstance(x, list):
            for y in x:
                walk(y)
        else:
            out.append(x)
    walk(a)
    return out


def images(n, c, h, w, seed=0):
    """Deterministic pseudo-random images as nested lists (no numpy needed)."""
    import random
    r = random.Random(seed)
    return [[[[r.uniform(-1, 1) for _ in range(w)] for _ in range(h)] for _ in range(c)] for _ in range(n)]


def toy_data(n=64, seed=0):
    """Two classes told apart by the brightness of the top half: (x nested lists, y)."""
    import random
    r = random.Random(seed)
    xs, ys = [], []
    for i in range(n):
        y = i % 2
        img = [[[r.uniform(0, 0.5) + (0.5 if (y == 1) == (row < 4) else 0.0) for _ in range(8)]
                for row in range(8)]]
        xs.append(img)
        ys.append(y)
    return xs, ys


def small_model(ctx, classes=2, channels=1, **kw):
    return neurc.Model("simple_cnn", num_classes=classes, in_channels=channels, context=ctx, width=4, **kw)


class TestLibrary(unittest.TestCase):
    def test_table_matches_header(self):
        text = re.sub(r"/\*.*?\*/", "", header_text(), flags=re.S)
        declared = re.findall(r"NC_API[^;(]*?\b(nc_[A-Za-z0-9_]+)\s*\(", text)
        table = [name for name, _, _ in _lib.FUNCTIONS]
        self.assertEqual(len(table), len(set(table)), "a function is declared twice in the table")
        self.assertEqual(sorted(set(declared)), sorted(table),
                         "header functions missing from the table: %s; table functions not in the header: %s"
                         % (sorted(set(declared) - set(table)), sorted(set(table) - set(declared))))

    def test_table_argument_counts_match_header(self):
        text = re.sub(r"/\*.*?\*/|//[^\n]*", "", header_text(), flags=re.S)
        for m in re.finditer(r"NC_API[^;(]*?\b(nc_[A-Za-z0-9_]+)\s*\(([^)]*)\)", text):
            name, args = m.group(1), m.group(2).strip()
            n = 0 if args in ("", "void") else args.count(",") + 1
            argtypes = [a for nm, _, a in _lib.FUNCTIONS if nm == name][0]
            self.assertEqual(len(argtypes), n, name)

    def test_library_exports_every_function(self):
        if _lib.lib.missing:
            self.skipTest("this libneurc does not export %s" % ", ".join(_lib.lib.missing))

    def test_missing_function_raises_unsupported(self):
        stub = _lib._Missing("nc_nothing", "libx.so")
        with self.assertRaises(neurc.UnsupportedError) as cm:
            stub(1, 2)
        self.assertIn("nc_nothing", str(cm.exception))

    def test_version_matches_header(self):
        text = header_text()
        v = [int(re.search(r"#define NC_VERSION_%s (\d+)" % k, text).group(1)) for k in ("MAJOR", "MINOR", "PATCH")]
        self.assertEqual(neurc.version(), "%d.%d.%d" % tuple(v))
        self.assertEqual(neurc.__version__, neurc.version())
        self.assertEqual(_lib.lib.nc_version(), v[0] * 10000 + v[1] * 100 + v[2])

    def test_status_table_matches_header_and_library(self):
        rows = re.findall(r'X\((NC_[A-Z_]+), (\d+), "([^"]*)"\)', header_text())
        self.assertEqual([(int(v), n, t) for n, v, t in rows], list(neurc.STATUS_TABLE))
        for value, name, text in neurc.STATUS_TABLE:
            self.assertEqual(neurc.status_str(value), text)
            self.assertEqual(neurc.status_name(value), name)
            if value:
                cls = neurc.error_class(value)
                self.assertTrue(issubclass(cls, neurc.Error))
                self.assertEqual((cls.status, cls.status_name), (value, name))
        self.assertEqual(neurc.status_str(999), "unknown status")
        self.assertIs(neurc.error_class(999), neurc.Error)
        self.assertEqual(len({neurc.error_class(v) for v, _, _ in neurc.STATUS_TABLE[1:]}), len(neurc.STATUS_TABLE) - 1)

    def test_struct_sizes_match_c(self):
        for struct, init in _lib.STRUCT_INITS.items():
            if init in _lib.lib.missing:
                continue
            s = struct()
            getattr(_lib.lib, init)(ctypes.byref(s))
            self.assertEqual(s.struct_size, ctypes.sizeof(struct), struct.__name__)
            getattr(_lib.lib, init)(None)  # NULL is ignored

    def test_struct_layout_defaults(self):
        # the last fields of each struct get their documented defaults: the offsets agree
        L = _lib.lib
        o = _lib.nc_model_options(); L.nc_model_options_init(ctypes.byref(o))
        self.assertEqual((o.arch, o.num_classes, o.in_channels, o.num_heads, o.cardinality, o.base_width,
                          o.bottleneck, o.width, o.seed), (b"resnet18", 1000, 3, 1, 32, 4, 1, 32, 0))
        t = _lib.nc_trainer_options(); L.nc_trainer_options_init(ctypes.byref(t))
        self.assertAlmostEqual(t.lr, 0.01, places=6)
        self.assertAlmostEqual(t.beta2, 0.999, places=6)
        self.assertAlmostEqual(t.eps, 1e-8, places=12)
        self.assertEqual((t.ignore_label, t.accumulation_steps, t.max_nonfinite), (-100, 1, 5))
        s = _lib.nc_schedule_options(); L.nc_schedule_options_init(ctypes.byref(s))
        self.assertEqual((s.step_size, s.t_max, s.patience), (30, 100, 10))
        self.assertAlmostEqual(s.warmup_start_factor, 1 / 3, places=6)
        self.assertAlmostEqual(s.plateau_eps, 1e-8, places=12)
        lo = _lib.nc_loader_options(); L.nc_loader_options_init(ctypes.byref(lo))
        self.assertEqual((lo.batch_size, lo.shuffle, lo.workers, lo.prefetch, lo.num_indices), (32, 1, 2, 2, 0))
        p = _lib.nc_png_limits(); L.nc_png_limits_init(ctypes.byref(p))
        self.assertEqual((p.max_width, p.max_height, p.max_pixels), (32768, 32768, 1 << 28))
        d = _lib.nc_dataset_options(); L.nc_dataset_options_init(ctypes.byref(d))
        self.assertEqual(d.limits.max_pixels, 1 << 28)
        c = _lib.nc_checkpoint_info(); L.nc_checkpoint_info_init(ctypes.byref(c))
        self.assertTrue(math.isnan(c.best_metric))
        pr = _lib.nc_pretrained_options(); L.nc_pretrained_options_init(ctypes.byref(pr))
        self.assertEqual((pr.strict, pr.keep_head), (0, 0))
        co = _lib.nc_context_options(); L.nc_context_options_init(ctypes.byref(co))
        self.assertEqual((co.backend, co.num_threads, co.allocator.alloc), (0, 0, None))

    @need("nc_epoch_record_init")
    def test_epoch_record_defaults(self):
        r = _lib.nc_epoch_record()
        _lib.lib.nc_epoch_record_init(ctypes.byref(r))
        self.assertEqual(r.epoch, 0)
        self.assertTrue(math.isnan(r.images_per_sec))

    def test_load_report_size_matches_c(self):
        with neurc.Context(threads=1) as ctx, tempfile.TemporaryDirectory() as d:
            m = small_model(ctx)
            path = os.path.join(d, "m.safetensors")
            m.save(path)
            r = _lib.nc_load_report()
            r.struct_size = 0
            _lib.check(_lib.lib.nc_model_load_weights(m._h, path.encode(), 1, ctypes.byref(r)), ctx._h, "lw")
            self.assertEqual(r.struct_size, ctypes.sizeof(_lib.nc_load_report))
            self.assertEqual(r.loaded, len(m.tensors()))


class TestErrors(unittest.TestCase):
    def setUp(self):
        self.ctx = neurc.Context(threads=1)

    def tearDown(self):
        self.ctx.close()

    def test_missing_file_is_io_error_with_path(self):
        with self.assertRaises(neurc.IOError) as cm:
            neurc.Model.load("/nonexistent/dir/model.safetensors", self.ctx)
        e = cm.exception
        self.assertIsInstance(e, OSError)
        self.assertEqual((e.status, e.status_name), (6, "NC_ERR_IO"))
        self.assertIn("/nonexistent/dir/model.safetensors", str(e))
        self.assertEqual(e.message, self.ctx.last_error)

    def test_unknown_arch_is_not_found(self):
        with self.assertRaises(neurc.NotFoundError) as cm:
            neurc.Model("resnet7", 10, 3, self.ctx)
        self.assertIn("resnet7", str(cm.exception))
        self.assertIn("resnet18", str(cm.exception))  # the known ones are listed

    def test_bad_options_are_invalid_argument(self):
        with self.assertRaises(neurc.InvalidArgumentError) as cm:
            neurc.Model("simple_cnn", 0, 1, self.ctx)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertTrue(cm.exception.message)
        with self.assertRaises(ValueError):
            neurc.Model("simple_cnn", 10, 1, self.ctx, head="conv")

    def test_wrong_channels_is_shape_error(self):
        m = small_model(self.ctx, channels=1)
        with self.assertRaises(neurc.ShapeError) as cm:
            m.forward(images(1, 3, 8, 8))
        self.assertIn("channel", str(cm.exception))

    def test_corrupt_file_is_format_error(self):
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
            f.flush()
            with self.assertRaises(neurc.FormatError):
                neurc.Model.load(f.name, self.ctx)

    def test_closed_handle_is_state_error(self):
        m = small_model(self.ctx)
        m.close()
        m.close()  # idempotent
        self.assertTrue(m.closed)
        with self.assertRaises(neurc.StateError):
            m.forward(images(1, 1, 8, 8))
        with self.assertRaises(neurc.StateError):
            neurc.Trainer(m)

    def test_context_errors(self):
        with self.assertRaises(ValueError):
            neurc.Context(threads=-1)
        with self.assertRaises(ValueError):
            neurc.Context(backend="gpu")
        if self.ctx.backend != "cuda":
            with self.assertRaises(neurc.UnsupportedError) as cm:
                neurc.Context(backend="cuda")
            self.assertIn("cuda", str(cm.exception))
        self.assertEqual(self.ctx.backend, "ref" if self.ctx.backend == "ref" else self.ctx.backend)
        self.assertIn(repr(self.ctx), ("<neurc.Context ref>", "<neurc.Context onednn>", "<neurc.Context cuda>"))

    def test_early_stopping_errors(self):
        m = small_model(self.ctx)
        with neurc.EarlyStopping(m, "max", patience=1) as es:
            with self.assertRaises(neurc.StateError):
                es.restore_best()
            with self.assertRaises(neurc.NumericError):
                es.update(float("nan"))
        with self.assertRaises(ValueError):
            neurc.EarlyStopping(m, "up")

    def test_png_limit_is_limit_error(self):
        with tempfile.TemporaryDirectory() as d:
            img = neurc.Image(1, 20, 30, self.ctx)
            path = os.path.join(d, "a.png")
            img.save_png(path)
            with self.assertRaises(neurc.LimitError):
                neurc.read_png(path, self.ctx, max_width=10)
            with self.assertRaises(neurc.FormatError):
                neurc.read_png_bytes(b"not a png at all", self.ctx)

    def test_buffer_errors(self):
        m = small_model(self.ctx)
        t = neurc.Trainer(m)
        with self.assertRaises(TypeError):
            m.forward("abc")
        with self.assertRaises(ValueError):
            m.forward([[1.0, 2.0], [3.0]])  # ragged
        with self.assertRaises(ValueError):
            m.forward([1.0, 2.0])  # not 4-D
        x = images(2, 1, 8, 8)
        with self.assertRaises(ValueError):
            t.step(x, [0])  # one label for two samples: caught before C reads past the end
        with self.assertRaises(TypeError):
            t.step(x, [0.5, 1.0])
        with self.assertRaises(ValueError):
            t.step(x, [0, 2 ** 40])
        with self.assertRaises(neurc.InvalidArgumentError):
            t.step(x, [0, 7])  # label out of range: the library's check
        out = array.array("d", [0.0] * 4)
        with self.assertRaises(TypeError):
            m.forward(x, out=out)
        with self.assertRaises(ValueError):
            m.forward(x, out=array.array("f", [0.0] * 3))

    @unittest.skipUnless(np is not None, "numpy not available")
    def test_numpy_dtype_errors(self):
        m = small_model(self.ctx)
        with self.assertRaises(TypeError):
            m.forward(np.zeros((1, 1, 8, 8), dtype=object))
        with self.assertRaises(TypeError):
            m.forward(np.zeros((1, 1, 8, 8), dtype=np.float32), out=np.zeros((1, 2), dtype=np.float64))
        with self.assertRaises(ValueError):
            m.forward(np.zeros((1, 1, 8, 8), dtype=np.float32), out=np.zeros((2, 2), dtype=np.float32)[:, :1])
        t = neurc.Trainer(m)
        with self.assertRaises(TypeError):
            t.step(np.zeros((2, 1, 8, 8), np.float32), np.array([0.5, 1.0]))


class TestLifetimes(unittest.TestCase):
    def test_close_parent_closes_children(self):
        ctx = neurc.Context(threads=1)
        m = small_model(ctx)
        t = neurc.Trainer(m)
        ema = neurc.EMA(m, 0.9)
        ctx.close()
        self.assertTrue(m.closed and t.closed and ema.closed)
        with self.assertRaises(neurc.StateError):
            t.step(images(1, 1, 8, 8), [0])
        t.close(); m.close(); ctx.close()

    def test_any_destroy_order_frees_everything(self):
        for order in itertools.permutations(range(5)):
            alloc = neurc.TrackingAllocator()
            ctx = neurc.Context(threads=1, allocator=alloc)
            m = small_model(ctx)
            objs = [ctx, m, neurc.Trainer(m), neurc.EMA(m, 0.5), neurc.EarlyStopping(m)]
            for i in order:
                objs[i].close()
            self.assertEqual(alloc.live, 0, order)

    def test_garbage_collection_in_any_order(self):
        alloc = neurc.TrackingAllocator()
        ctx = neurc.Context(threads=1, allocator=alloc)
        m = small_model(ctx)
        t = neurc.Trainer(m)
        sch = neurc.Schedule("step", ctx, step_size=1)
        t.set_schedule(sch)
        ds_dir = tempfile.mkdtemp()
        try:
            for k in range(2):
                os.makedirs(os.path.join(ds_dir, "c%d" % k))
                neurc.Image(1, 8, 8, ctx).save_png(os.path.join(ds_dir, "c%d" % k, "a.png"))
            ds = neurc.Dataset.folder(ds_dir, ctx)
            tf = neurc.Transform(ctx)
            ld = neurc.Loader(ds, tf, batch_size=1, workers=1)
            # a reference cycle through every object: only the cycle collector frees it
            cycle = [ctx, m, t, sch, ds, tf, ld]
            cycle.append(cycle)
            for o in cycle[:-1]:
                o.cycle = cycle
            del ctx, m, t, sch, ds, tf, ld, o, cycle
            gc.collect()
            self.assertEqual(alloc.live, 0)
        finally:
            import shutil
            shutil.rmtree(ds_dir)

    def test_schedule_closed_before_trainer(self):
        ctx = neurc.Context(threads=1)
        m = small_model(ctx)
        t = neurc.Trainer(m)
        s = neurc.Schedule("constant", ctx)
        t.set_schedule(s)
        s.close()  # the trainer used it: it is closed first
        self.assertTrue(t.closed)
        t2 = neurc.Trainer(m)
        s2 = neurc.Schedule("constant", ctx)
        t2.set_schedule(s2)
        t2.set_schedule(None)  # detached: closing the schedule leaves the trainer alone
        s2.close()
        self.assertFalse(t2.closed)
        s3, s4 = neurc.Schedule("constant", ctx), neurc.Schedule("constant", ctx)
        t2.set_schedule(s3)
        t2.set_schedule(s4)  # replaces s3
        s3.close()
        self.assertFalse(t2.closed)
        s4.close()
        self.assertTrue(t2.closed)
        with self.assertRaises(TypeError):
            neurc.Trainer(m).set_schedule("cosine")
        ctx.close()

    def test_thousand_create_destroy_cycles_leak_nothing(self):
        alloc = neurc.TrackingAllocator()
        t0 = time.perf_counter()
        with neurc.Context(threads=1, allocator=alloc) as ctx:
            base = alloc.live
            logits = [[0.0, 1.0], [1.0, 0.0]]
            for i in range(1000):
                with small_model(ctx) as m, neurc.Trainer(m), neurc.Metrics(logits, [1, 0], context=ctx):
                    pass
                b = neurc.Builder(1, ctx)
                b.close()
                neurc.Image(1, 2, 2, ctx).close()
                if i in (0, 999):
                    self.assertEqual(alloc.live, base, "allocations left after cycle %d" % i)
            self.assertGreater(alloc.total, 3000)
        self.assertEqual(alloc.live, 0)
        self.assertEqual(alloc.live_bytes, 0)
        self.assertLess(time.perf_counter() - t0, 60)

    def test_default_context(self):
        m = neurc.Model("simple_cnn", 3, 1, width=4)
        self.assertIs(m.context, neurc.default_context())
        m.close()


class TestModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctx = neurc.Context(threads=1)
        cls.model = neurc.Model("simple_cnn", num_classes=3, in_channels=2, context=cls.ctx, width=4, seed=7)
        cls.x = images(3, 2, 10, 10, seed=1)

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()

    def raw_forward(self, x_flat, n, c, h, w):
        """The C API called directly through ctypes, no package code in between."""
        xs = (ctypes.c_float * len(x_flat))(*x_flat)
        out = (ctypes.c_float * (n * 3))()
        st = _lib.lib.nc_model_forward(self.model._h, xs, n, c, h, w, out)
        self.assertEqual(st, 0)
        return bytes(out)

    def test_logits_identical_to_c_api(self):
        got = self.model.forward(self.x)
        want = self.raw_forward(flat(self.x), 3, 2, 10, 10)
        self.assertEqual(array.array("f", flat(got)).tobytes(), want)
        self.assertEqual(len(to_list(got)), 3)
        self.assertEqual(len(to_list(got)[0]), 3)

    def test_threads_share_one_model(self):
        """Python threads run forward on one model at once (ctypes drops the GIL in the
        call): each result equals the serial one, and each thread's exception carries
        its own message (docs/api.md, Thread safety)."""
        import threading
        xs = [images(1 + k % 3, 2, 10, 10, seed=10 + k) for k in range(4)]
        want = [array.array("f", flat(self.model.forward(x))).tobytes() for x in xs]
        problems = []

        def work(k):
            for i in range(30):
                if k % 2 and i % 3 == 0:  # odd threads also fail, each with its own channel count
                    try:
                        self.model.forward(images(1, 2 + k, 10, 10))
                        problems.append("thread %d: no error" % k)
                    except neurc.ShapeError as e:
                        if "has %d channels" % (2 + k) not in str(e):
                            problems.append("thread %d got: %s" % (k, e))
                got = array.array("f", flat(self.model.forward(xs[(k + i) % 4]))).tobytes()
                if got != want[(k + i) % 4]:
                    problems.append("thread %d call %d differs" % (k, i))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(problems, [])

    def test_bf16_precision_close_to_fp32(self):
        """The bf16 policy (ref stores bf16 activations) stays within bf16 rounding of
        fp32, and the context reports its policy."""
        ctx = neurc.Context(backend="ref", threads=1, precision="bf16")
        self.assertEqual(ctx.precision, "bf16")
        self.assertEqual(neurc.Context(backend="ref", threads=1).precision, "fp32")
        with self.assertRaises(ValueError):
            neurc.Context(precision="fp8")
        m32 = neurc.Model("simple_cnn", num_classes=3, in_channels=2, context=neurc.Context(backend="ref", threads=1),
                          width=4, seed=7)
        m16 = neurc.Model("simple_cnn", num_classes=3, in_channels=2, context=ctx, width=4, seed=7)
        a, b = flat(m32.forward(self.x)), flat(m16.forward(self.x))
        scale = max(abs(v) for v in a)
        self.assertTrue(all(abs(p - q) <= 0.05 * scale for p, q in zip(a, b)), (a, b))
        self.assertNotEqual(a, b)

    def test_conv_algorithm_choices(self):
        """conv_algorithm reaches the C options: direct and winograd logits agree within
        Winograd's rounding (a 64-channel 3x3 layer, where oneDNN on AVX-512 runs it;
        elsewhere both are direct), and an unknown name is refused."""
        x = [[[[((i * 7 + j * 3 + c) % 11) / 5.0 - 1 for j in range(12)] for i in range(12)] for c in range(3)]]
        out = {}
        for alg in ("direct", "winograd", "auto"):
            ctx = neurc.Context(threads=1, conv_algorithm=alg)
            m = neurc.Model("resnet18", num_classes=4, in_channels=3, context=ctx, small_input=True, seed=3)
            out[alg] = flat(m.forward(x))
        scale = max(abs(v) for v in out["direct"])
        for alg in ("winograd", "auto"):
            self.assertTrue(all(abs(p - q) <= 1e-4 * scale for p, q in zip(out["direct"], out[alg])), out)
        with self.assertRaises(ValueError):
            neurc.Context(conv_algorithm="fft")

    def test_buffer_and_list_inputs_agree(self):
        ref = array.array("f", flat(self.model.forward(self.x))).tobytes()
        a = array.array("f", flat(self.x))
        mv = memoryview(a).cast("B").cast("f", (3, 2, 10, 10))
        self.assertEqual(array.array("f", flat(self.model.forward(mv))).tobytes(), ref)
        out = array.array("f", [0.0] * 9)
        self.assertIs(self.model.forward(mv, out=out), out)
        self.assertEqual(out.tobytes(), ref)
        ro = bytes(a)  # read-only buffer: copied, never written
        mv2 = memoryview(ro).cast("f", (3, 2, 10, 10))
        self.assertEqual(array.array("f", flat(self.model.forward(mv2))).tobytes(), ref)
        dbl = array.array("d", flat(self.x))  # float64 buffer: converted
        mv3 = memoryview(dbl).cast("B").cast("d", (3, 2, 10, 10))
        self.assertEqual(array.array("f", flat(self.model.forward(mv3))).tobytes(), ref)
        # A batch of one and batches of two may take other kernels (oneDNN picks by
        # shape), so they agree to rounding, not bit for bit.
        want = array.array("f", ref)
        single = self.model.forward(self.x[0])  # (c, h, w) = a batch of one
        for g, w in zip(flat(single), want[:3]):
            self.assertAlmostEqual(g, w, delta=1e-5 * max(1.0, abs(w)))
        got = flat(self.model.predict(self.x, batch_size=2))
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertAlmostEqual(g, w, delta=1e-5 * max(1.0, abs(w)))

    @unittest.skipUnless(np is not None, "numpy not available")
    def test_numpy_zero_copy_and_conversion(self):
        x = np.array(self.x, dtype=np.float32)
        ref = self.model.forward(x)
        self.assertIsInstance(ref, np.ndarray)
        self.assertEqual((ref.shape, ref.dtype), ((3, 3), np.float32))
        buf = _buffers.as_input(x, "x")
        self.assertEqual(buf.address, x.ctypes.data)  # zero-copy
        out = np.full((3, 3), np.nan, dtype=np.float32)
        self.assertIs(self.model.forward(x, out=out), out)
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(self.model.forward(x.astype(np.float64)), ref)  # converted
        xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # not C-contiguous
        self.assertFalse(xt.flags.c_contiguous)
        np.testing.assert_array_equal(self.model.forward(xt), ref)
        np.testing.assert_allclose(self.model.predict(x, batch_size=1), ref, rtol=1e-5, atol=1e-6)  # other batch size: other kernels
        labels = _buffers.as_input(np.array([1, 2], dtype=np.int64), "labels", "i")
        self.assertEqual(labels.keep.dtype, np.int32)

    def test_facts_and_summary(self):
        m = self.model
        self.assertEqual((m.num_outputs, m.in_channels, m.num_heads, m.num_classes), (3, 2, 1, 3))
        self.assertEqual(m.num_params, sum(t.numel for t in m.tensors() if t.trainable))
        text = m.summary(10)
        self.assertIn("conv", text.lower())
        self.assertIn(str(m.num_params), text.replace(",", ""))
        self.assertIn("neurc.Model", repr(m))
        self.assertEqual(m._ctx_handle, self.ctx._h)  # nc_model_context

    def test_tensors_roundtrip(self):
        m = neurc.Model("simple_cnn", 3, 2, self.ctx, width=4)
        infos = m.tensors()
        first = infos[0]
        self.assertEqual(len(first.shape), 4)
        self.assertEqual(first.shape[1], 2)  # (out, in_channels, k, k)
        self.assertEqual(first.numel, first.shape[0] * first.shape[1] * first.shape[2] * first.shape[3])
        w = m.get_tensor(first.name)
        self.assertEqual(len(flat(w)), first.numel)
        new = [0.5] * first.numel
        m.set_tensor(first.name, new)
        self.assertEqual(flat(m.get_tensor(first.name)), new)
        sd = m.state_dict()
        self.assertEqual(set(sd), {t.name for t in infos})
        with self.assertRaises(neurc.NotFoundError):
            m.get_tensor("no.such.tensor")
        with self.assertRaises(neurc.ShapeError):
            m.set_tensor(first.name, [1.0, 2.0])
        m.close()

    def test_export_onnx(self):
        """The binding's defaults and errors; the exported graph itself is checked by
        tests/python/test_onnx.py (onnx.checker and an independent evaluator)."""
        m = self.model
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.onnx")
            with self.assertRaises(ValueError):
                m.export_onnx(path)  # no size given and no image_size recorded
            m.set_info("image_size", 10)
            try:
                m.export_onnx(path, split_heads=True, fold_batchnorm=True)  # 10x10 from the info key
            except neurc.UnsupportedError as e:
                self.assertIn("without ONNX", str(e))
                self.assertFalse(os.path.exists(path))
            else:
                with open(path, "rb") as f:
                    self.assertIn(b"neurc.class_names" if m.class_names else b"neurc.num_classes", f.read())
                with self.assertRaises(neurc.InvalidArgumentError):
                    m.export_onnx(path, 10, 10, opset=18)
                with self.assertRaises(TypeError):
                    m.export_onnx(path, 10.5)
            finally:
                m.set_info("image_size", None)

    def test_save_load_metadata_and_weights(self):
        m = self.model
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            m.class_names = ["a", "b", "c,d"]
            m.normalization = ([0.5, 0.25], [2.0, 4.0])
            m.set_info("image_size", 10)
            with self.assertRaises(ValueError):
                m.normalization = ([0.5], [2.0])
            m.save(path)
            with neurc.Model.load(path, self.ctx) as m2:
                self.assertEqual(m2.class_names, ["a", "b", "c,d"])
                self.assertEqual(m2.normalization, ([0.5, 0.25], [2.0, 4.0]))
                self.assertEqual(m2.get_info("image_size"), "10")
                self.assertIsNone(m2.get_info("nothing"))
                self.assertEqual(flat(m2.forward(self.x)), flat(m.forward(self.x)))
                m2.set_info("image_size", None)
                self.assertEqual(m2.get_info("image_size", "gone"), "gone")
                m2.class_names = None
                self.assertIsNone(m2.class_names)
            with neurc.Model("simple_cnn", 3, 2, self.ctx, width=4, seed=99) as m3:
                rep = m3.load_weights(path, strict=True)
                self.assertEqual((rep.loaded, rep.missing, rep.unexpected, rep.mismatched),
                                 (len(m3.tensors()), 0, 0, 0))
                self.assertEqual(flat(m3.forward(self.x)), flat(m.forward(self.x)))
            with neurc.Model("simple_cnn", 5, 2, self.ctx, width=4) as m4:
                rep = m4.load_pretrained(path, adapt="rgb_mean", seed=1)
                self.assertGreater(rep.loaded, 0)
                with self.assertRaises(neurc.ShapeError):
                    m4.load_weights(path, strict=True)
        self.assertIsNone(m.get_info("no_such_key"))

    def test_builder_graph(self):
        b = neurc.Builder(2, self.ctx)
        x = b.input
        y = b.conv2d("conv1", x, 4, 3, padding=1, bias=False)
        y = b.batchnorm("bn1", y)
        y = b.relu(y)
        z = b.conv2d("conv2", y, 4, 3, padding=1, groups=2)
        y = b.add(y, z)
        y = b.max_pool2d(y, 2)
        y = b.avg_pool2d(y, 2, stride=1, padding=1)
        y = b.adaptive_avg_pool2d(y, 1)
        y = b.flatten(y)
        y = b.dropout(y, 0.1)
        h1 = b.linear("fc1", y, 3)
        h2 = b.linear("fc2", y, 3)
        out = b.concat([h1, h2])
        with self.assertRaises(neurc.InvalidArgumentError):
            b.linear("fc1", y, 3)  # name already used
        b2 = neurc.Builder(2, self.ctx)
        with self.assertRaises(neurc.ShapeError):
            b2.linear("fc", b2.input, 3)  # linear needs a 2-D input
        b2.close()
        b.close()
        b = neurc.Builder(2, self.ctx)
        x = b.input
        y = b.flatten(b.adaptive_avg_pool2d(b.relu(b.conv2d("c", x, 4, 3)), 1))
        out = b.concat([b.linear("h0", y, 3), b.linear("h1", y, 3)])
        m = b.finish(out, num_heads=2, seed=3)
        b.close()
        self.assertEqual((m.num_heads, m.num_classes, m.num_outputs), (2, 3, 6))
        self.assertEqual(len(to_list(m.forward(self.x))[0]), 6)
        m.close()


class TestTraining(unittest.TestCase):
    def setUp(self):
        self.ctx = neurc.Context(threads=1)

    def tearDown(self):
        self.ctx.close()

    def test_loss_falls_from_lists(self):
        x, y = toy_data(64)
        m = small_model(self.ctx, seed=1)
        t = neurc.Trainer(m, lr=0.05, momentum=0.9)
        losses = []
        for epoch in range(6):
            for s in range(0, 64, 16):
                st = t.step(x[s:s + 16], y[s:s + 16])
                losses.append(st.loss)
                self.assertEqual((st.total, st.updated, st.skipped), (16, 1, 0))
                self.assertGreater(st.grad_norm, 0)
        self.assertEqual(t.num_steps, 24)
        self.assertLess(sum(losses[-4:]) / 4, 0.5 * sum(losses[:4]) / 4)

    @unittest.skipUnless(np is not None, "numpy not available")
    def test_fit_numpy_loss_falls_and_history(self):
        x, y = toy_data(128)
        x, y = np.array(x, dtype=np.float32), np.array(y, dtype=np.int64)
        m = small_model(self.ctx, seed=2)
        log = io.StringIO()
        h = neurc.fit(m, (x, y), val=(x[:32], y[:32]), epochs=4, batch_size=16, lr=0.05, stream=log)
        self.assertEqual(h["epoch"], [1, 2, 3, 4])
        self.assertLess(h["train_loss"][-1], 0.5 * h["train_loss"][0])
        self.assertGreater(h["val_acc"][-1], 0.9)
        self.assertTrue(all(r.images_per_sec > 0 and r.seconds > 0 for r in h))
        self.assertAlmostEqual(h["lr"][0], 0.05, places=6)
        lines = log.getvalue().splitlines()
        self.assertEqual(len(lines), 4)  # not a terminal: one plain line per epoch
        self.assertTrue(lines[0].startswith("epoch 1/4: train loss"))
        with neurc.evaluate(m, (x, y)) as met:
            self.assertEqual(met.count, 128)
            self.assertAlmostEqual(met.accuracy, h["val_acc"][-1], delta=0.1)

    def test_fit_plain_lists_progress_bar(self):
        x, y = toy_data(32)
        m = small_model(self.ctx, seed=3)
        log = io.StringIO()
        h = neurc.fit(m, (x, y), epochs=2, batch_size=8, stream=log, progress=True, optimizer="adam", lr=0.01)
        self.assertEqual(len(h), 2)
        self.assertIn("\repoch 1/2 [", log.getvalue())
        self.assertTrue(math.isnan(h[0].val_loss))
        with self.assertRaises(TypeError):
            neurc.fit(m, "data")
        quiet = io.StringIO()
        h = neurc.fit(m, (x, y), epochs=1, verbose=False, stream=quiet, history=h)
        self.assertEqual((len(h), h[-1].epoch, quiet.getvalue()), (3, 3, ""))

    def test_fit_with_schedule_and_early_stopping(self):
        x, y = toy_data(32)
        m = small_model(self.ctx, seed=4)
        t = neurc.Trainer(m, lr=0.1)
        s = neurc.Schedule("step", self.ctx, step_size=1, gamma=0.5)
        es = neurc.EarlyStopping(m, "max", patience=1, min_delta=2.0)  # never improves by 2: stops
        h = neurc.fit(m, (x, y), val=(x, y), epochs=5, trainer=t, schedule=s, early_stopping=es, verbose=False)
        self.assertEqual(len(h), 2)
        self.assertAlmostEqual(h[0].lr, 0.1, places=6)
        self.assertAlmostEqual(h[1].lr, 0.05, places=6)
        self.assertFalse(t.closed)  # a trainer passed in stays open
        with self.assertRaises(TypeError):
            neurc.fit(m, (x, y), trainer=t, lr=0.1)

    def test_trainer_groups_and_lr(self):
        m = small_model(self.ctx)
        names = [ti.name for ti in m.tensors()]
        t = neurc.Trainer(m, lr=0.1, weight_decay=1e-4, nesterov=True, no_decay_norm_bias=True)
        last = names[-1].split(".")[0]
        t.add_group("head", [last], 0.01, 0.0)
        t.freeze_group("default", True)
        t.set_group_lr("head", 0.02)
        self.assertAlmostEqual(t.group_lr("head"), 0.02, places=6)
        with self.assertRaises(neurc.NotFoundError):
            t.freeze_group("nope")
        with self.assertRaises(neurc.NotFoundError):
            t.add_group("x", "no_such_prefix", 0.1)
        first = names[0]
        before = flat(m.get_tensor(first))
        x, y = toy_data(8)
        t.step(x, y)
        self.assertEqual(flat(m.get_tensor(first)), before)  # frozen: unchanged
        t.freeze_group("default", False)
        t.set_lr(0.2)
        self.assertAlmostEqual(t.group_lr(), 0.2, places=6)
        with self.assertRaises(neurc.StateError):
            t.add_group("late", [first.split(".")[0]], 0.1)

    def test_loss_options(self):
        m = small_model(self.ctx, classes=3)
        x, _ = toy_data(4)
        t = neurc.Trainer(m, loss="bce_with_logits", pos_weight=[1.0] * 3, accumulation_steps=2,
                          clip_grad_norm=1.0)
        st = t.step(x, [0, 1, 0] * 4)  # BCE: n x classes 0/1 labels
        self.assertEqual(st.updated, 0)  # first of two micro-batches
        self.assertEqual(t.step(x, [1, 0, 0] * 4).updated, 1)
        with self.assertRaises(ValueError):
            t.step(x, [0, 1, 2, 0])  # BCE wants 12 labels
        t2 = neurc.Trainer(m, class_weights=[1.0, 2.0, 3.0], head_weights=[1.0], label_smoothing=0.1,
                           ignore_label=-1, optimizer="adamw")
        self.assertEqual(t2.step(x, [0, -1, 2, 1]).total, 3)  # the ignored sample is not counted
        with self.assertRaises(ValueError):
            neurc.Trainer(m, class_weights=[1.0, 2.0])
        with self.assertRaises(ValueError):
            neurc.Trainer(m, optimizer="lbfgs")

    def test_schedule_values(self):
        s = neurc.Schedule("step", self.ctx, step_size=2, gamma=0.1)
        lrs = []
        for _ in range(5):
            lrs.append(s.lr(1.0))
            s.step()
        self.assertEqual(s.position, 5)
        for got, want in zip(lrs, [1.0, 1.0, 0.1, 0.1, 0.01]):
            self.assertAlmostEqual(got, want, places=6)
        ms = neurc.Schedule("multistep", self.ctx, milestones=[1, 3], gamma=0.5)
        ms.step()
        self.assertAlmostEqual(ms.lr(1.0), 0.5, places=6)
        p = neurc.Schedule("plateau", self.ctx, mode="max", patience=0, factor=0.5)
        p.step(1.0)
        p.step(0.5)
        self.assertAlmostEqual(p.lr(1.0), 0.5, places=6)
        with self.assertRaises(neurc.NumericError):
            p.step(float("nan"))
        with self.assertRaises(TypeError):
            neurc.Schedule("step", self.ctx, steps=3)
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.Schedule("multistep", self.ctx, milestones=[3, 1])

    def test_ema_and_early_stopping(self):
        m = small_model(self.ctx)
        name = m.tensors()[0].name
        w0 = flat(m.get_tensor(name))
        ema = neurc.EMA(m, 0.5)
        t = neurc.Trainer(m, lr=0.5)
        x, y = toy_data(8)
        t.step(x, y)
        w1 = flat(m.get_tensor(name))
        ema.update()
        ema.swap()
        self.assertTrue(ema.swapped)
        avg = flat(m.get_tensor(name))
        for a, b, c in zip(avg[:10], w0, w1):
            self.assertAlmostEqual(a, 0.5 * b + 0.5 * c, places=5)
        with self.assertRaises(neurc.StateError):
            ema.update()
        ema.close()  # swaps back first
        self.assertEqual(flat(m.get_tensor(name)), w1)
        es = neurc.EarlyStopping(m, "max", patience=2)
        self.assertTrue(math.isnan(es.best))
        self.assertEqual(es.update(0.5), (True, False))
        t.step(x, y)
        self.assertEqual(es.update(0.4), (False, False))
        self.assertEqual(es.update(0.3), (False, True))
        es.restore_best()
        self.assertEqual(flat(m.get_tensor(name)), w1)
        self.assertAlmostEqual(es.best, 0.5, places=6)

    def test_checkpoint_roundtrip(self):
        m = small_model(self.ctx)
        t = neurc.Trainer(m)
        x, y = toy_data(8)
        t.step(x, y)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ck.safetensors")
            t.save_checkpoint(path, epoch=3, batch=1, best_metric=0.75, best_epoch=2)
            m2 = small_model(self.ctx, seed=5)
            t2 = neurc.Trainer(m2)
            info = t2.load_checkpoint(path)
            self.assertEqual(info, neurc.CheckpointInfo(3, 1, 0.75, 2))
            self.assertEqual(t2.num_steps, 1)
            self.assertEqual(flat(m2.forward(x)), flat(m.forward(x)))
            with neurc.Model.load(path, self.ctx) as m3:  # a checkpoint loads as a model
                self.assertEqual(flat(m3.forward(x)), flat(m.forward(x)))
            with self.assertRaises(neurc.IOError):
                t2.load_checkpoint(os.path.join(d, "missing"))


class TestData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctx = neurc.Context(threads=1)
        cls.dir = tempfile.TemporaryDirectory()
        root = os.path.join(cls.dir.name, "folder")
        cls.root = root
        k = 0
        for cname, count in (("cat", 3), ("dog", 5)):
            os.makedirs(os.path.join(root, cname))
            for i in range(count):
                vals = [[[((k * 7 + r * 3 + c) % 16) / 15.0 for c in range(12)] for r in range(10)]]
                with neurc.Image.from_array(vals, cls.ctx) as img:
                    img.save_png(os.path.join(root, cname, "%02d.png" % i))
                k += 1
        cls.csv = os.path.join(cls.dir.name, "manifest.csv")
        with open(cls.csv, "w") as f:
            f.write("image,label\n")
            for cname in ("cat", "dog"):
                for fn in sorted(os.listdir(os.path.join(root, cname))):
                    f.write("folder/%s/%s,%s\n" % (cname, fn, cname))

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()
        cls.dir.cleanup()

    def test_image_png_roundtrip(self):
        vals = [[[0.0, 0.5, 1.0], [0.25, 0.75, 1.0]]] * 3
        img = neurc.Image.from_array(vals, self.ctx)
        self.assertEqual((img.shape, img.bit_depth), ((3, 2, 3), 0))
        self.assertEqual((img.channels, img.height, img.width), (3, 2, 3))
        self.assertIn("3x2x3", repr(img))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.png")
            img.save_png(p, bit_depth=16)
            back = neurc.read_png(p, self.ctx)
            self.assertEqual(back.bit_depth, 16)
            for a, b in zip(flat(back.to_array()), flat(vals)):
                self.assertAlmostEqual(a, b, delta=1 / 65535)
            with open(p, "rb") as f:
                mem = neurc.read_png_bytes(f.read(), self.ctx)
            self.assertEqual(flat(mem.to_array()), flat(back.to_array()))
            with self.assertRaises(neurc.InvalidArgumentError):
                img.save_png(p, bit_depth=12)
        zero = neurc.Image(1, 2, 2, self.ctx)
        self.assertEqual(flat(zero.to_array()), [0.0] * 4)
        self.assertEqual(_lib.lib.nc_image_data(zero._h), _lib.lib.nc_image_const_data(zero._h))

    def test_folder_dataset(self):
        ds = neurc.Dataset.folder(self.root, self.ctx)
        self.assertEqual((len(ds), ds.num_heads, ds.num_classes(), ds.channels), (8, 1, 2, 1))
        self.assertEqual(ds.class_names(), ["cat", "dog"])
        self.assertEqual(ds.labels(0), [0])
        self.assertEqual(ds.labels(7), [1])
        self.assertTrue(ds.path(0).endswith(os.path.join("cat", "00.png")))
        with self.assertRaises(IndexError):
            ds.path(8)
        self.assertEqual(ds.class_counts(), [3, 5])
        w = ds.class_weights()
        self.assertAlmostEqual(w[0], 8 / (2 * 3), places=5)
        self.assertAlmostEqual(w[1], 8 / (2 * 5), places=5)
        x, lab = ds[0]
        self.assertEqual((len(x), len(x[0]), len(x[0][0]), lab), (1, 10, 12, [0]))
        self.assertAlmostEqual(flat(x)[1], 1 / 15, places=2)
        mean, std = ds.channel_stats()
        allv = [v for i in range(len(ds)) for v in flat(ds[i][0])]
        mu = sum(allv) / len(allv)
        self.assertAlmostEqual(mean[0], mu, places=3)
        self.assertAlmostEqual(std[0], math.sqrt(sum((v - mu) ** 2 for v in allv) / len(allv)), delta=0.01)
        m2, _ = ds.channel_stats([0], neurc.Transform(self.ctx).center_crop(4))
        self.assertEqual(len(m2), 1)
        with self.assertRaises(neurc.InvalidArgumentError):
            ds.labels(100)
        with self.assertRaises(neurc.IOError):
            neurc.Dataset.folder(os.path.join(self.dir.name, "nope"), self.ctx)
        with self.assertRaises(TypeError):
            neurc.Dataset()

    def test_csv_dataset(self):
        ds = neurc.Dataset.csv(self.csv, self.ctx, image_columns=["image"], label_columns="label")
        self.assertEqual((len(ds), ds.class_names()), (8, ["cat", "dog"]))
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.Dataset.csv(self.csv, self.ctx, label_columns="nope")

    @unittest.skipUnless(HAVE_FMNIST, "Fashion-MNIST not installed")
    def test_idx_dataset(self):
        ds = neurc.Dataset.idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"),
                               os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"), self.ctx)
        self.assertEqual((len(ds), ds.num_classes(), ds.channels), (10000, 10, 1))
        self.assertEqual(ds.labels(0), [9])  # the first test image is an ankle boot
        with self.assertRaises(neurc.IOError):
            neurc.Dataset.idx("/nonexistent-images", "/nonexistent-labels", self.ctx)

    def test_transforms(self):
        t = (neurc.Transform(self.ctx).resize(8).center_crop(6).random_resized_crop(6, scale=(0.5, 1.0))
             .hflip(0.5).vflip(0.5).rotation(10).affine((0.1, 0.1), (0.9, 1.1)).color_jitter(0.2, 0.2)
             .random_erasing(0.5).normalize([0.5], [0.25]))
        self.assertEqual(t.output_size(10, 12), (6, 6))
        img = neurc.Image.from_array([[[0.5] * 12] * 10], self.ctx)
        out = t.apply(img, seed=1, epoch=0, index=3)
        self.assertEqual(out.shape, (1, 6, 6))
        again = t.apply(img, seed=1, epoch=0, index=3)
        self.assertEqual(flat(again.to_array()), flat(out.to_array()))  # deterministic
        exact = t.exact().apply(img, seed=1, epoch=0, index=3)  # torchvision's step-by-step path
        self.assertEqual(exact.shape, (1, 6, 6))
        self.assertEqual(flat(t.exact(False).apply(img, seed=1, epoch=0, index=3).to_array()), flat(out.to_array()))
        n = neurc.Transform(self.ctx).normalize([0.5], [0.25]).apply([[[1.0, 0.0]]])
        self.assertEqual(flat(n.to_array()), [2.0, -2.0])
        tr = neurc.Transform.train_preset(8, 1, context=self.ctx)
        self.assertEqual(tr.output_size(10, 12), (8, 8))
        ev = neurc.Transform.eval_preset(10, 8, 1, [0.5], [0.5], context=self.ctx)
        self.assertEqual(ev.output_size(10, 12), (8, 8))
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.Transform(self.ctx).hflip(2.0)
        with self.assertRaises(ValueError):
            neurc.Transform.eval_preset(10, 8, 1, [0.5], None, context=self.ctx)

    def test_splits(self):
        labels = [0] * 10 + [1] * 20
        assign = flat(neurc.split_stratified(labels, 0.6, 0.2, 0.2, seed=3, context=self.ctx))
        for cls, n in ((0, 10), (1, 20)):
            got = [assign[i] for i in range(30) if labels[i] == cls]
            self.assertEqual([got.count(k) for k in (0, 1, 2)], [int(0.6 * n), int(0.2 * n), int(0.2 * n)])
        folds = flat(neurc.split_kfold(labels, k=5, seed=3, context=self.ctx))
        self.assertEqual(sorted(folds.count(k) for k in range(5)), [6] * 5)
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.split_stratified(labels, 0.5, 0.2, 0.2, context=self.ctx)
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.split_kfold(labels, k=1, context=self.ctx)

    def test_loader_and_predict_loader(self):
        ds = neurc.Dataset.folder(self.root, self.ctx)
        ld = neurc.Loader(ds, neurc.Transform(self.ctx).center_crop(8), batch_size=3, shuffle=False, workers=1)
        self.assertEqual((len(ld), ld.num_batches), (3, 3))
        batches = list(ld.epoch(0))
        self.assertEqual([len(flat(b.indices)) for b in batches], [3, 3, 2])
        self.assertEqual(flat(batches[0].indices), [0, 1, 2])
        self.assertEqual(flat(batches[2].labels), [1, 1])
        self.assertEqual(len(flat(batches[0].x)), 3 * 64)
        ld.start_epoch(1)
        self.assertIsNotNone(ld.next())
        self.assertEqual(sum(1 for _ in ld), 3)
        sub = neurc.Loader(ds, neurc.Transform(self.ctx).center_crop(8), batch_size=4, indices=[7, 0], workers=0)
        self.assertEqual(sorted(flat(sub.next().indices)), [0, 7])
        m = neurc.Model("simple_cnn", 2, 1, self.ctx, width=4)
        logits, labels = m.predict_loader(ld)
        self.assertEqual(flat(labels), [0, 0, 0, 1, 1, 1, 1, 1])
        x = [to_list(ds[i][0]) for i in range(8)]
        crop = [[[row[2:10] for row in ch[1:9]] for ch in img] for img in x]
        self.assertEqual(array.array("f", flat(logits)).tobytes(), array.array("f", flat(m.forward(crop))).tobytes())
        with neurc.evaluate(m, ld) as met:
            self.assertEqual((met.count, met.class_names), (8, ["cat", "dog"]))
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.Loader(ds, batch_size=0)
        with self.assertRaises(TypeError):
            neurc.Loader("ds")
        # training from a Dataset: fit makes the loader itself
        h = neurc.fit(m, neurc.Loader(ds, neurc.Transform(self.ctx).center_crop(8), batch_size=4, workers=1),
                      epochs=1, verbose=False)
        self.assertEqual(len(h), 1)


class TestMetrics(unittest.TestCase):
    # 6 samples, 3 classes; top-1 predictions 0,1,2,1,2,0 against labels 0,1,2,0,1,2
    LOGITS = [[2, 1, 0], [0, 2, 1], [0, 1, 2], [1, 2, 0], [0, 0, 3], [3, 0, 0]]
    LABELS = [0, 1, 2, 0, 1, 2]

    def setUp(self):
        self.ctx = neurc.Context(threads=1)

    def tearDown(self):
        self.ctx.close()

    def test_hand_worked_values(self):
        with neurc.Metrics(self.LOGITS, self.LABELS, context=self.ctx, class_names=["a", "b", "c"]) as m:
            self.assertEqual((m.count, m.num_classes), (6, 3))
            self.assertEqual(to_list(m.confusion_matrix()), [[1, 1, 0], [0, 1, 1], [1, 0, 1]])
            self.assertEqual(m.confusion(2, 0), 1)
            self.assertAlmostEqual(m.accuracy, 0.5)
            self.assertAlmostEqual(m.top_k(1), 0.5)
            self.assertAlmostEqual(m.top_k(2), 1.0)
            for c in (0, 1, 2, neurc.MACRO, "weighted"):
                self.assertAlmostEqual(m.precision(c), 0.5)
                self.assertAlmostEqual(m.recall(c), 0.5)
                self.assertAlmostEqual(m.f1(c), 0.5)
                self.assertAlmostEqual(m.fbeta(c, 2.0), 0.5)
            self.assertAlmostEqual(m.balanced_accuracy, 0.5)
            # log loss and one-vs-rest AUC worked out here from the softmax
            probs = []
            for z in self.LOGITS:
                e = [math.exp(v) for v in z]
                probs.append([v / sum(e) for v in e])
            ll = -sum(math.log(p[y]) for p, y in zip(probs, self.LABELS)) / 6
            self.assertAlmostEqual(m.log_loss, ll, places=6)
            pos = [probs[i][0] for i in range(6) if self.LABELS[i] == 0]
            neg = [probs[i][0] for i in range(6) if self.LABELS[i] != 0]
            auc = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
            self.assertAlmostEqual(m.roc_auc(0), auc, places=6)
            conf = [max(p) for p in probs]
            correct = [self.LABELS[i] == [0, 1, 2, 1, 2, 0][i] for i in range(6)]
            self.assertAlmostEqual(m.ece(1), abs(sum(correct) / 6 - sum(conf) / 6), places=6)
            self.assertTrue(math.isnan(m.top_k(0)))
            self.assertEqual([r[0] for r in m.per_class()], ["a", "b", "c"])
            self.assertEqual(m.per_class()[0][4], 2)
            d = m.as_dict()
            self.assertAlmostEqual(d["macro_f1"], 0.5)
            self.assertIn("accuracy=0.5000", repr(m))

    def test_heads_and_ignore(self):
        # two heads of 2 classes: head 1's logits are columns 2..3
        logits = [[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 1, 0]]
        labels = [[0, 1], [1, 0], [1, -100]]
        with neurc.Metrics(logits, labels, head=1, num_heads=2, context=self.ctx) as m:
            self.assertEqual(m.count, 2)
            self.assertAlmostEqual(m.accuracy, 1.0)
        with neurc.Metrics(logits, labels, head=0, num_heads=2, context=self.ctx) as m:
            self.assertAlmostEqual(m.accuracy, 2 / 3)
        with self.assertRaises(ValueError):
            neurc.Metrics(logits, [0, 1], num_heads=2, context=self.ctx)
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.Metrics([[1, 0]], [5], context=self.ctx)
        with self.assertRaises(neurc.NumericError):
            neurc.Metrics([[float("nan"), 0]], [0], context=self.ctx)
        with neurc.Metrics([[1, 0]], [-100], context=self.ctx) as empty:
            self.assertEqual(empty.count, 0)
            self.assertTrue(math.isnan(empty.accuracy))

    def test_calibrate_temperature_scales(self):
        t1 = neurc.calibrate_temperature(self.LOGITS, self.LABELS, context=self.ctx)
        t2 = neurc.calibrate_temperature([[2 * v for v in r] for r in self.LOGITS], self.LABELS, context=self.ctx)
        self.assertGreater(t1, 0)
        self.assertAlmostEqual(t2 / t1, 2.0, places=3)  # T(2z) = 2 T(z)
        with self.assertRaises(neurc.NumericError):
            neurc.calibrate_temperature([[float("inf"), 0]], [0], context=self.ctx)

    def test_multilabel_roc_auc(self):
        # label 0: scores (1, 1, 2, 0) vs truth (1, 0, 1, 0): 3.5 of 4 pairs; label 1 has
        # no positive (NaN, left out of the mean); label 2 is ranked backwards (0)
        logits = [[1, 5, 0], [1, -1, 3], [2, 0, 1], [0, 2, 2]]
        labels = [[1, 0, 1], [0, 0, 0], [1, 0, 1], [0, 0, 0]]
        auc, mean = neurc.multilabel_roc_auc(logits, labels, context=self.ctx)
        self.assertAlmostEqual(auc[0], 0.875, places=12)
        self.assertTrue(math.isnan(auc[1]))
        self.assertEqual(auc[2], 0.0)
        self.assertAlmostEqual(mean, 0.4375, places=12)
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.multilabel_roc_auc([[0.5]], [[2]], context=self.ctx)
        with self.assertRaises(ValueError):
            neurc.multilabel_roc_auc(logits, [[1, 0]], context=self.ctx)

    def test_thresholds(self):
        scores = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2]
        positive = [1, 1, 0, 1, 0, 0]
        thr, st = neurc.threshold_select(scores, positive, "max_fbeta", 1.0, context=self.ctx)
        self.assertAlmostEqual(thr, 0.6, places=6)
        self.assertEqual((st.tp, st.fp, st.tn, st.fn), (3, 1, 2, 0))
        self.assertAlmostEqual(st.fbeta, 2 * 0.75 / 1.75, places=6)
        thr, st = neurc.threshold_select(scores, positive, "target_precision", 1.0, context=self.ctx)
        self.assertAlmostEqual(thr, 0.8, places=6)
        self.assertEqual((st.tp, st.fp), (2, 0))
        st = neurc.threshold_apply(scores, positive, 0.7, context=self.ctx)
        self.assertEqual((st.tp, st.fp, st.tn, st.fn), (2, 1, 2, 1))
        with self.assertRaises(neurc.InvalidArgumentError):
            neurc.threshold_apply(scores, [1, 2, 0, 0, 0, 0], 0.5, context=self.ctx)
        with self.assertRaises(ValueError):
            neurc.threshold_apply(scores, [1], 0.5, context=self.ctx)


class TestReports(unittest.TestCase):
    def setUp(self):
        self.ctx = neurc.Context(threads=1)
        self.dir = tempfile.TemporaryDirectory()
        self.hist = neurc.History([neurc.EpochRecord(1, 1.0, 0.5, 1.1, 0.45, 0.1, 2.0, 100.0),
                                   neurc.EpochRecord(2, 0.5, 0.8)])

    def tearDown(self):
        self.ctx.close()
        self.dir.cleanup()

    def p(self, name):
        return os.path.join(self.dir.name, name)

    def test_python_history(self):
        h = neurc.History()
        h.append(epoch=1, train_loss=0.5)
        h.append(neurc.EpochRecord(2, 0.25))
        self.assertEqual(h["train_loss"], [0.5, 0.25])
        self.assertTrue(math.isnan(h[0].val_acc))
        h.truncate(1)
        self.assertEqual(len(h), 1)
        with self.assertRaises(KeyError):
            h["nope"]

    @need("nc_history_create", "nc_history_write_csv", "nc_history_read_csv", "nc_history_write_json")
    def test_history_files(self):
        self.hist.write_csv(self.p("h.csv"), self.ctx)
        self.hist.write_json(self.p("h.json"), self.ctx)
        back = neurc.History.read_csv(self.p("h.csv"), self.ctx)
        self.assertEqual(back[0], self.hist[0])
        self.assertTrue(math.isnan(back[1].val_loss))
        import json
        with open(self.p("h.json")) as f:
            self.assertEqual(json.load(f)[1]["val_loss"], None)
        with neurc.CHistory(self.ctx) as ch:
            ch.add(self.hist[0])
            ch.add(self.hist[1])
            self.assertEqual(len(ch), 2)
            ch.truncate(1)
            self.assertEqual(ch.records(), [self.hist[0]])
        with self.assertRaises(neurc.IOError):
            neurc.History.read_csv(self.p("missing.csv"), self.ctx)

    @need("nc_svg_training_curves", "nc_svg_confusion_matrix", "nc_svg_per_class_accuracy")
    def test_svg_figures(self):
        neurc.svg_training_curves(self.hist, self.p("c.svg"), self.ctx)
        with neurc.Metrics(TestMetrics.LOGITS, TestMetrics.LABELS, context=self.ctx) as m:
            neurc.svg_confusion_matrix(m, self.p("m.svg"), class_names=["x", "y", "z"])
            neurc.svg_per_class_accuracy(m, self.p("a.svg"))
            with self.assertRaises(ValueError):
                neurc.svg_per_class_accuracy(m, self.p("b.svg"), class_names=["x"])
        for f in ("c.svg", "m.svg", "a.svg"):
            with open(self.p(f)) as fh:
                self.assertIn("<svg", fh.read(400))

    @need("nc_report_create", "nc_report_write", "nc_report_summary")
    def test_report(self):
        with neurc.Report(self.ctx) as r, neurc.Metrics(TestMetrics.LOGITS, TestMetrics.LABELS,
                                                        context=self.ctx) as m:
            r.set("model", "simple_cnn")
            r.set("epochs", 2)
            r.set_history(self.hist)
            r.add_metrics("test", m, class_names=["x", "y", "z"])
            with self.assertRaises(neurc.InvalidArgumentError):
                r.add_metrics("test", m)
            text = r.summary()
            self.assertIn("simple_cnn", text)
            r.write(self.p("rep"))
            self.assertTrue(os.path.isfile(self.p(os.path.join("rep", "report.json"))))

    @unittest.skipUnless(_lib.lib.missing == [] or "nc_svg_training_curves" not in _lib.lib.missing,
                         "libneurc lacks the SVG figures")
    def test_plots_without_matplotlib_write_svg(self):
        os.environ["NEURC_NO_MATPLOTLIB"] = "1"
        try:
            self.assertEqual(neurc.plot_history(self.hist, self.p("h.svg")), self.p("h.svg"))
            with neurc.Metrics(TestMetrics.LOGITS, TestMetrics.LABELS, context=self.ctx) as m:
                self.assertEqual(m.plot_confusion(self.p("c.svg")), self.p("c.svg"))
            self.assertTrue(os.path.getsize(self.p("h.svg")) > 0)
        finally:
            del os.environ["NEURC_NO_MATPLOTLIB"]

    def test_plots_with_matplotlib(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("matplotlib not available")
        fig = neurc.plot_history(self.hist, self.p("h.png"))
        self.assertEqual(len(fig.axes), 2)
        with open(self.p("h.png"), "rb") as f:
            self.assertEqual(f.read(4), b"\x89PNG")
        with neurc.Metrics(TestMetrics.LOGITS, TestMetrics.LABELS, context=self.ctx) as m:
            fig = neurc.plot_confusion(m, self.p("c.png"), class_names=["x", "y", "z"])
            self.assertEqual([t.get_text() for t in fig.axes[0].get_xticklabels()], ["x", "y", "z"])
        self.assertGreater(os.path.getsize(self.p("c.png")), 1000)


class TestComm(unittest.TestCase):
    """Without MPI initialised (tests/test_dist.c runs the real thing under mpirun)."""

    def test_comm_needs_mpi_initialised(self):
        with self.assertRaises((neurc.StateError, neurc.UnsupportedError)) as e:
            neurc.Comm()
        self.assertIn("MPI", str(e.exception))
        self.assertEqual(_lib.lib.nc_comm_rank(None), -1)
        self.assertEqual(_lib.lib.nc_comm_size(None), 0)
        self.assertEqual(_lib.lib.nc_comm_barrier(None), 2)  # NC_ERR_NULL
        self.assertEqual(_lib.lib.nc_comm_allreduce_sum(None, None, 0), 2)
        _lib.lib.nc_comm_destroy(None)
        self.assertEqual(_lib.lib.nc_comm_set_timeout(None, 1.0), 2)
        self.assertEqual(_lib.lib.nc_comm_create_nccl(None, -1, None), 2)
        with self.assertRaises((neurc.StateError, neurc.UnsupportedError)):  # no MPI / GPU here
            neurc.Comm(nccl=True)
        self.assertEqual(_lib.lib.nc_comm_timeout(None), 0.0)
        self.assertTrue(issubclass(neurc.TimeoutError, TimeoutError))
        self.assertIs(neurc.error_class(14), neurc.TimeoutError)
        with neurc.Model("simple_cnn", num_classes=2, in_channels=1, width=4) as m:
            t = neurc.Trainer(m)
            t.set_sync_batchnorm(True)  # without a communicator: no effect (one process)
            t.set_grad_overlap(False)
            t.step(*toy_data(4))
            t.set_comm(None)  # detaching a trainer that has none is fine
            with self.assertRaises(TypeError):
                t.set_comm("not a comm")
            t.close()


class TestProgress(unittest.TestCase):
    """Progress callbacks, cancellation and Ctrl-C (docs/python.md)."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = neurc.Context(backend="ref", threads=1)
        cls.dir = tempfile.TemporaryDirectory()
        cls.root = os.path.join(cls.dir.name, "folder")
        for k, cname in enumerate(("a", "b")):
            os.makedirs(os.path.join(cls.root, cname))
            for i in range(8):
                vals = [[[((k * 5 + i * 3 + r * 7 + c) % 16) / 15.0 for c in range(8)] for r in range(8)]]
                with neurc.Image.from_array(vals, cls.ctx) as img:
                    img.save_png(os.path.join(cls.root, cname, "%02d.png" % i))
        cls.ds = neurc.Dataset.folder(cls.root, context=cls.ctx)

    @classmethod
    def tearDownClass(cls):
        cls.ds.close()
        cls.ctx.close()
        cls.dir.cleanup()

    def tearDown(self):
        self.ctx.set_progress(None)

    def make(self):
        m = neurc.Model("simple_cnn", num_classes=2, in_channels=1, context=self.ctx, width=4, seed=3)
        return m, neurc.Trainer(m, lr=0.05, optimizer="adam")

    def loader(self):
        return neurc.Loader(self.ds, batch_size=4, workers=0, seed=1)

    def test_status_and_error_class(self):
        self.assertEqual(neurc.status_str(13), "cancelled by the progress callback")
        self.assertIs(neurc.error_class(13), neurc.CancelledError)
        with self.assertRaises(TypeError):
            self.ctx.set_progress(42)

    def test_train_epoch_stop_checkpoint_resume_equals_straight(self):
        with self.loader() as ld:
            ma, ta = self.make()
            full = ta.train_epoch(ld, epoch=0)
            self.assertEqual((full.batches, full.steps, full.finished), (4, 4, True))
            mb, tb = self.make()
            seen = []
            self.ctx.set_progress(lambda p: seen.append(p) or (neurc.STOP if p.done >= 2 else None))
            with self.assertRaises(neurc.CancelledError) as cm:
                tb.train_epoch(ld, epoch=0)
            self.ctx.set_progress(None)
            st = cm.exception.stats
            self.assertEqual((st.batches, st.steps, st.finished), (2, 2, False))
            self.assertIn("cancelled by the progress callback after 2 of 4 batches", str(cm.exception))
            self.assertEqual([p.done for p in seen], [0, 1, 2])
            self.assertEqual(seen[-1].phase, "train")
            self.assertEqual((seen[-1].total, seen[-1].epoch), (4, 0))
            path = os.path.join(self.dir.name, "ck.safetensors")
            tb.save_checkpoint(path, epoch=0, batch=st.batches)
            mc, tc = self.make()
            info = tc.load_checkpoint(path)
            rest = tc.train_epoch(ld, epoch=info.epoch, start_batch=info.batch)
            self.assertEqual((rest.steps, rest.batches), (2, 4))
            for name in ("conv1.weight", "fc.weight", "bn1.running_var"):
                self.assertEqual(to_list(mc.get_tensor(name)), to_list(ma.get_tensor(name)), name)
            for o in (ta, tb, tc, ma, mb, mc):
                o.close()

    def test_callback_exception_stops_the_call_and_is_reraised(self):
        m, t = self.make()
        with self.loader() as ld:
            def boom(p):
                if p.done == 1:
                    raise KeyboardInterrupt
            self.ctx.set_progress(boom)
            with self.assertRaises(KeyboardInterrupt) as cm:
                t.train_epoch(ld)
            self.assertEqual(cm.exception.stats.steps, 1)
            self.assertEqual(t.num_steps, 1)
            self.ctx.set_progress(lambda p: 1 / 0)
            with self.assertRaises(ZeroDivisionError):
                m.predict_loader(ld)
            self.ctx.set_progress(None)
            logits, _ = m.predict_loader(ld)  # nothing left over from the cancelled calls
            self.assertEqual(len(logits), 16)
        t.close()
        m.close()

    def test_real_sigint_during_a_c_call_is_keyboard_interrupt(self):
        import signal
        m, t = self.make()
        with self.loader() as ld:
            reports = []

            def press_ctrl_c(p):  # a Ctrl-C that lands while the C call runs
                reports.append(p.done)
                if p.done == 1:
                    os.kill(os.getpid(), signal.SIGINT)
            self.ctx.set_progress(press_ctrl_c)
            with self.assertRaises(KeyboardInterrupt) as cm:
                m.predict_loader(ld)
            self.assertLessEqual(max(reports), 2)
            with self.assertRaises(KeyboardInterrupt) as cm:
                t.train_epoch(ld)
            self.assertLessEqual(cm.exception.stats.steps, 2)
            self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
        t.close()
        m.close()

    def test_save_and_scan_cancel(self):
        m, t = self.make()
        path = os.path.join(self.dir.name, "m.safetensors")
        m.save(path)
        with open(path, "rb") as f:
            before = f.read()
        m.set_tensor("fc.bias", [1.0, 2.0])
        self.ctx.set_progress(lambda p: p.phase == "save" and p.done > 0)
        with self.assertRaises(neurc.CancelledError):
            m.save(path)
        with self.assertRaises(neurc.CancelledError):
            t.save_checkpoint(path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual([f for f in os.listdir(self.dir.name) if ".tmp." in f], [])
        self.ctx.set_progress(lambda p: neurc.STOP if p.phase == "scan" and p.done >= 1 else None)
        with self.assertRaises(neurc.CancelledError):
            neurc.Dataset.folder(self.root, context=self.ctx)
        with self.assertRaises(neurc.CancelledError):
            self.ds.channel_stats()
        t.close()
        m.close()

    def test_fit_callback_stop_and_keyboard_interrupt(self):
        m = neurc.Model("simple_cnn", num_classes=2, in_channels=1, context=self.ctx, width=4, seed=3)
        h = neurc.fit(m, self.ds, epochs=3, batch_size=4, verbose=False, workers=0,
                      callback=lambda p: neurc.STOP if (p.epoch, p.done) == (1, 2) else None)
        self.assertEqual(len(h), 1)  # epoch 1 finished, epoch 2 stopped after 2 steps

        def interrupt(p):
            if p.epoch == 1 and p.done == 1:
                raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt) as cm:
            neurc.fit(m, self.ds, epochs=3, batch_size=4, verbose=False, workers=0, callback=interrupt)
        self.assertEqual(len(cm.exception.history), 1)
        m.close()


class TestRawInputCtypes(unittest.TestCase):
    def test_descriptor_through_ctypes_without_numpy(self):
        """nc_model_forward_raw on a plain ctypes buffer equals forward() on its floats."""
        ctx = neurc.Context(backend="ref", threads=1)
        m = neurc.Model("simple_cnn", num_classes=2, in_channels=1, context=ctx, width=4, seed=1)
        frame = (ctypes.c_uint16 * 100)(*[(i * 37) % 4096 for i in range(100)])
        d = _lib.nc_input_desc()
        _lib.lib.nc_input_desc_init(ctypes.byref(d))
        d.type, d.layout, d.n, d.c, d.h, d.w = 2, 0, 1, 1, 10, 10
        d.data, d.max_value, d.normalize = ctypes.addressof(frame), 4095.0, 0
        out = (ctypes.c_float * 2)()
        self.assertEqual(_lib.lib.nc_model_forward_raw(m._h, ctypes.byref(d), out), 0)
        want = m.forward([[[[v / 4095.0 for v in frame[r * 10:r * 10 + 10]] for r in range(10)]]])
        self.assertEqual([round(v, 5) for v in out], [round(v, 5) for v in to_list(want)[0]])
        m.close()
        ctx.close()


@unittest.skipIf(np is None, "needs numpy")
class TestRawInput(unittest.TestCase):
    """Model.forward_raw: numpy views of camera frames, any strides, equal to forward()
    on the documented float conversion, bit for bit."""

    def test_types_layouts_and_views_equal_the_float_path(self):
        ctx = neurc.Context(backend="ref", threads=1)
        m = neurc.Model("simple_cnn", num_classes=3, in_channels=2, context=ctx, width=4, seed=1)
        mean, std = [0.3, 0.6], [0.2, 0.25]
        m.normalization = (mean, std)
        rng = np.random.default_rng(0)
        frames = {np.uint8: rng.integers(0, 256, (3, 14, 13, 2)).astype(np.uint8),
                  np.uint16: rng.integers(0, 4096, (3, 14, 13, 2)).astype(np.uint16),
                  np.float32: rng.standard_normal((3, 14, 13, 2)).astype(np.float32)}
        for dt, big in frames.items():
            hi = {np.uint8: None, np.uint16: 4095.0, np.float32: None}[dt]
            full = {np.uint8: 255.0, np.uint16: 4095.0, np.float32: 1.0}[dt]
            for view in (big[:2, 1:11, 2:12], big[:2, ::-1, :10]):  # an ROI, a flipped one
                nhwc = view
                x = ((nhwc.astype(np.float32) - np.float32(0)) / np.float32(full)).transpose(0, 3, 1, 2)
                x = ((x - np.array(mean, np.float32)[None, :, None, None])
                     / np.array(std, np.float32)[None, :, None, None]).astype(np.float32)
                want = m.forward(np.ascontiguousarray(x))
                got = m.forward_raw(nhwc, layout="nhwc", max_value=hi)
                self.assertTrue(np.array_equal(got, want), (dt, "nhwc"))
                got = m.forward_raw(nhwc.transpose(0, 3, 1, 2), layout="nchw", max_value=hi)
                self.assertTrue(np.array_equal(got, want), (dt, "nchw"))
                got = m.forward_raw([nhwc[..., 0], nhwc[..., 1]], layout="planar", max_value=hi)
                self.assertTrue(np.array_equal(got, want), (dt, "planar"))
        with self.assertRaises(TypeError):
            m.forward_raw(np.zeros((1, 2, 9, 9), np.int32))
        with self.assertRaises(ValueError):
            m.forward_raw(np.zeros((1, 2, 9, 9), np.uint8), layout="hwcn")
        with self.assertRaises(neurc.ShapeError):
            m.forward_raw(np.zeros((1, 3, 9, 9), np.uint8))
        m.close()
        ctx.close()


class TestSaliency(unittest.TestCase):
    def test_grad_cam_and_input_gradient(self):
        ctx = neurc.Context(backend="ref", threads=1)
        m = neurc.Model("simple_cnn", num_classes=3, in_channels=2, context=ctx, width=4, seed=2)
        x = [[[[((i * 7 + k * 3 + r * 5 + q) % 11) / 10.0 for q in range(16)] for r in range(16)]
              for k in range(2)] for i in range(2)]
        s = neurc.Saliency(m)
        self.assertEqual(s.layer, "pool3")
        r = s.compute(x, classes=[1, 2], input_grad=True)
        self.assertEqual(to_list(r.classes), [1, 2])
        cam, grad = to_list(r.cam), to_list(r.input_grad)
        self.assertEqual((len(cam), len(cam[0]), len(cam[0][0])), (2, 16, 16))
        self.assertEqual((len(grad), len(grad[0])), (2, 2))
        self.assertTrue(all(v >= 0 for img in cam for row in img for v in row))
        self.assertEqual(to_list(m.grad_cam(x, classes=[1, 2])), cam)
        self.assertEqual(to_list(m.input_gradient(x, classes=[1, 2])), grad)
        self.assertEqual(len(to_list(m.grad_cam(x, layer="conv2"))), 2)
        with self.assertRaises(neurc.NotFoundError):
            neurc.Saliency(m, "nothing")
        with self.assertRaises(neurc.InvalidArgumentError):
            s.compute(x, classes=[0, 7])
        with self.assertRaises(ValueError):
            s.compute(x, classes=[0])
        s.close()
        m.close()
        ctx.close()


class TestZCoverage(unittest.TestCase):
    """Runs last (classes run in name order): every table function was called."""

    @unittest.skipUnless(os.environ.get("NEURC_COVERAGE_CHECK"), "set NEURC_COVERAGE_CHECK=1 with the whole module")
    def test_every_function_called(self):
        gc.collect()
        names = {n for n, _, _ in _lib.FUNCTIONS} - set(_lib.lib.missing)
        self.assertEqual(sorted(names - CALLED), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
