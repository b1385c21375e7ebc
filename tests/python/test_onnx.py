"""ONNX export (nc_model_export_onnx, Model.export_onnx; docs/onnx.md) checked by
implementations that are not neurc's: onnx.checker (Debian's python3-onnx, with full
shape inference) accepts the export of every built-in architecture, and the exported
graph evaluated by the small numpy ONNX evaluator below (float64, written from the ONNX
operator specification, one function per op the export emits) gives neurc's logits
within 1e-5 relative, on a batch size other than any seen at export (the batch
dimension is dynamic), for every architecture but the deep repeats of others (ARCHS). An op the evaluator does not know fails the test.
Skips cleanly without numpy or onnx, or when neurc was built without ONNX export."""

import json
import os
import tempfile
import unittest

import neurc
from neurc import _buffers

np = _buffers.np
try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    onnx = None

RTOL = 1e-5
FULL_CHECK_BYTES = 64 << 20


def _built_with_onnx():
    if np is None or onnx is None:
        return False
    with neurc.Context(backend="ref", threads=1) as ctx:
        m = neurc.Model("simple_cnn", num_classes=2, in_channels=1, context=ctx, width=4)
        with tempfile.TemporaryDirectory() as d:
            try:
                m.export_onnx(os.path.join(d, "probe.onnx"), 8)
            except neurc.UnsupportedError:
                return False
        m.close()
    return True


HAVE_ONNX = _built_with_onnx()

# --------------------------------------------------------------- the evaluator


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pad_nchw(x, pads, value):
    """pads = [h_begin, w_begin, h_end, w_end] (ONNX order for 2-D)."""
    return np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=value)


def _windows(x, kh, kw, sh, sw, dh=1, dw=1):
    """(N, C, OH, OW, kh, kw) view of the windows of padded x."""
    n, c, h, w = x.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c, oh, ow, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2] * dh, s[3] * dw), writeable=False)


def op_conv(node, x, w, b=None):
    a = _attrs(node)
    g = a.get("group", 1)
    kh, kw = w.shape[2:]
    assert list(a.get("kernel_shape", [kh, kw])) == [kh, kw]
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    win = _windows(_pad_nchw(x, a.get("pads", [0, 0, 0, 0]), 0.0), kh, kw, sh, sw, dh, dw)
    n, c, oh, ow = win.shape[:4]
    k = w.shape[0]
    win = win.reshape(n, g, c // g, oh, ow, kh, kw)
    wg = w.reshape(g, k // g, c // g, kh, kw)
    y = np.concatenate([np.tensordot(win[:, i], wg[i], axes=([1, 4, 5], [1, 2, 3])) for i in range(g)], axis=-1)
    y = y.transpose(0, 3, 1, 2)  # (N, OH, OW, K) -> (N, K, OH, OW)
    return y + b.reshape(1, -1, 1, 1) if b is not None else y


def op_batchnormalization(node, x, scale, bias, mean, var):
    eps = _attrs(node).get("epsilon", 1e-5)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(shape)


def _pool(node, x, reduce, pad_value):
    a = _attrs(node)
    assert a.get("ceil_mode", 0) == 0
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    return reduce(_windows(_pad_nchw(x, a.get("pads", [0, 0, 0, 0]), pad_value), kh, kw, sh, sw), axis=(4, 5))


def op_maxpool(node, x):
    return _pool(node, x, np.max, -np.inf)


def op_averagepool(node, x):
    assert _attrs(node).get("count_include_pad", 0) == 1 or not any(_attrs(node).get("pads", [0]))
    return _pool(node, x, np.mean, 0.0)


def op_globalaveragepool(node, x):
    return x.mean(axis=(2, 3), keepdims=True)


def op_gemm(node, a, b, c=None):
    at = _attrs(node)
    a = a.T if at.get("transA", 0) else a
    b = b.T if at.get("transB", 0) else b
    y = at.get("alpha", 1.0) * (a @ b)
    return y + at.get("beta", 1.0) * c if c is not None else y


def op_flatten(node, x):
    axis = _attrs(node).get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def op_reshape(node, x, shape):
    assert _attrs(node).get("allowzero", 0) == 0
    shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
    return x.reshape(shape)


def op_split(node, x, split):
    axis = _attrs(node).get("axis", 0)
    return tuple(np.split(x, np.cumsum(split)[:-1], axis=axis))


OPS = {
    "Conv": op_conv, "BatchNormalization": op_batchnormalization, "Relu": lambda n, x: np.maximum(x, 0.0),
    "MaxPool": op_maxpool, "AveragePool": op_averagepool, "GlobalAveragePool": op_globalaveragepool,
    "Add": lambda n, a, b: a + b, "Sub": lambda n, a, b: a - b, "Div": lambda n, a, b: a / b,
    "Gemm": op_gemm, "MatMul": lambda n, a, b: a @ b, "Flatten": op_flatten,
    "Concat": lambda n, *xs: np.concatenate(xs, axis=_attrs(n)["axis"]), "Reshape": op_reshape, "Split": op_split,
}


def evaluate(model, x):
    """Runs an ONNX ModelProto on x in float64; {output name: array}."""
    env = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    env = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in env.items()}
    env[model.graph.input[0].name] = x.astype(np.float64)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
            raise AssertionError("the evaluator has no op %s (node %s)" % (node.op_type, node.name))
        args = [env[i] if i else None for i in node.input]
        while args and args[-1] is None:
            args.pop()
        out = OPS[node.op_type](node, *args)
        for name, value in zip(node.output, out if isinstance(out, tuple) else (out,)):
            env[name] = value
    return {o.name: env[o.name] for o in model.graph.output}


# -------------------------------------------------------------------- tests


def _randomise_buffers(model, rng):
    """Non-trivial batch-norm statistics and affine parameters (fresh ones are 0/1)."""
    tensors = model.tensors()
    bns = {t.name[:-len(".running_mean")] for t in tensors if t.name.endswith(".running_mean")}
    for t in tensors:
        n = int(np.prod(t.shape))
        prefix, _, leaf = t.name.rpartition(".")
        if prefix not in bns or leaf == "num_batches_tracked":
            continue
        if leaf == "running_var":
            model.set_tensor(t.name, rng.uniform(0.5, 2.0, n).astype(np.float32))
        elif leaf == "weight":
            model.set_tensor(t.name, rng.uniform(0.5, 1.5, n).astype(np.float32))
        else:  # running_mean, bias
            model.set_tensor(t.name, rng.normal(0, 0.2, n).astype(np.float32))


# (arch, model options, input side, evaluated): every built-in architecture at a small
# input. The deeper variants repeat the blocks of resnet18/50 and resnext50 (same ops,
# more of them) and are 85-350 MB: onnx.checker reads their files, but the evaluator,
# which would add seconds each, runs on the others.
ARCHS = [
    ("simple_cnn", dict(width=8), 16, True),
    ("resnet18", dict(), 32, True),
    ("resnet34", dict(small_input=1), 8, False),
    ("resnet50", dict(), 32, True),
    ("resnet101", dict(small_input=1), 8, False),
    ("resnext50_32x4d", dict(), 32, True),
    ("resnext101_32x8d", dict(small_input=1), 8, False),
    ("resnext", dict(cardinality=8, base_width=2, blocks=(1, 1, 1, 1)), 32, True),
    ("vgg11", dict(small_input=1), 32, True),
    ("vgg11_bn", dict(small_input=1), 32, True),
    ("vgg16", dict(small_input=1), 32, True),
    ("vgg16_bn", dict(small_input=1), 32, True),
    ("vgg16c_bn", dict(small_input=1), 32, True),
    ("densenet121", dict(small_input=1), 32, True),
]


@unittest.skipUnless(HAVE_ONNX, "needs numpy, python3-onnx and neurc built with ONNX export")
class TestOnnxExport(unittest.TestCase):
    def setUp(self):
        self.ctx = neurc.Context(backend="ref", threads=1)
        self.tmp = tempfile.TemporaryDirectory()
        self.rng = np.random.default_rng(7)

    def tearDown(self):
        self.ctx.close()
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def export_and_compare(self, model, side, c, batch=3, raw_input=False, **kw):
        """Exports, checks with onnx.checker, evaluates with numpy; returns the ModelProto."""
        path = self.path("m.onnx")
        model.export_onnx(path, side, **kw)
        proto = onnx.load(path)
        # full_check adds ONNX's shape inference, which copies the whole model (seconds
        # per 100 MB on a loaded machine): the big ResNets get the structural check
        onnx.checker.check_model(proto, full_check=os.path.getsize(path) < FULL_CHECK_BYTES)
        x = self.rng.normal(0, 1, (batch, c, side, side)).astype(np.float32)
        outs = evaluate(proto, x)
        if raw_input:  # the graph normalises; neurc's forward takes normalised input
            mean, std = model.normalization
            x = ((x - np.array(mean, np.float32).reshape(1, -1, 1, 1)) / np.array(std, np.float32).reshape(1, -1, 1, 1))
        want = np.asarray(model.forward(x), dtype=np.float64)
        got = np.concatenate(list(outs.values()), axis=1)
        self.assertEqual(got.shape, want.shape)
        err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
        self.assertLessEqual(err, RTOL, "max |onnx - neurc| / max |neurc| = %.3g" % err)
        return proto

    def test_every_builtin_architecture(self):
        for arch, extra, side, evaluated in ARCHS:
            with self.subTest(arch=arch):
                m = neurc.Model(arch, num_classes=4, in_channels=3, context=self.ctx, **extra)
                if not evaluated:  # the checker reads the file itself (no copy in Python)
                    m.export_onnx(self.path("m.onnx"), side)
                    onnx.checker.check_model(self.path("m.onnx"))
                    m.close()
                    continue
                _randomise_buffers(m, self.rng)
                proto = self.export_and_compare(m, side, 3)
                ops = {n.op_type for n in proto.graph.node}
                if arch.startswith("resnext"):
                    groups = [a.i for n in proto.graph.node for a in n.attribute if a.name == "group"]
                    self.assertGreater(max(groups), 1)
                if arch.startswith("res"):
                    self.assertIn("Add", ops)
                m.close()

    def test_interface_batch_dynamic_opset_and_metadata(self):
        m = neurc.Model("resnet18", num_classes=3, in_channels=4, context=self.ctx, small_input=1)
        m.class_names = ["chlorella", "debris", "other"]
        m.normalization = ([0.5, 0.1, 0.2, 0.3], [0.25, 1.0, 2.0, 0.5])
        m.set_info("image_size", "12")
        m.export_onnx(self.path("r.onnx"), opset=17)  # size from the info key
        proto = onnx.load(self.path("r.onnx"))
        onnx.checker.check_model(proto, full_check=True)
        self.assertEqual([(o.domain, o.version) for o in proto.opset_import], [("", 17)])
        self.assertEqual(proto.producer_name, "neurc")
        inp, out = proto.graph.input[0], proto.graph.output[0]
        self.assertEqual([d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim], ["batch", 4, 12, 12])
        self.assertEqual([d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim], ["batch", 3])
        self.assertEqual((inp.name, out.name), ("input", "logits"))
        meta = {p.key: p.value for p in proto.metadata_props}
        self.assertEqual(json.loads(meta["neurc.class_names"]), ["chlorella", "debris", "other"])
        np.testing.assert_allclose(json.loads(meta["neurc.norm_mean"]), [0.5, 0.1, 0.2, 0.3], rtol=1e-7)
        np.testing.assert_allclose(json.loads(meta["neurc.norm_std"]), [0.25, 1.0, 2.0, 0.5], rtol=1e-7)
        self.assertEqual(meta["neurc.arch"], "resnet18")
        self.assertEqual(meta["neurc.num_classes"], "3")
        self.assertEqual(meta["neurc.onnx.input_size"], "12x12")
        self.assertEqual(meta["neurc.onnx.normalized_in_graph"], "0")
        self.assertEqual(meta["user.image_size"], "12")
        for batch in (1, 5):  # any batch size runs
            self.assertEqual(evaluate(proto, np.zeros((batch, 4, 12, 12), np.float32))["logits"].shape, (batch, 3))
        # the normalisation inside the graph: raw input in, the same logits out
        proto = self.export_and_compare(m, 12, 4, raw_input=True, normalize=True, opset=13)
        self.assertEqual({p.key: p.value for p in proto.metadata_props}["neurc.onnx.normalized_in_graph"], "1")
        self.assertEqual(proto.opset_import[0].version, 13)
        m.close()

    def test_multi_head_mlp_split_and_folded_batchnorm(self):
        m = neurc.Model("resnext", num_classes=5, in_channels=2, context=self.ctx, num_heads=3, head="mlp",
                        cardinality=4, base_width=4, blocks=(1, 1, 1, 1), head_dropout=0.2, small_input=1)
        _randomise_buffers(m, self.rng)
        proto = self.export_and_compare(m, 8, 2)  # one output (N, 15), head-major
        self.assertEqual([o.name for o in proto.graph.output], ["logits"])
        self.assertIn("BatchNormalization", {n.op_type for n in proto.graph.node})
        proto = self.export_and_compare(m, 8, 2, split_heads=True, fold_batchnorm=True)
        self.assertEqual([o.name for o in proto.graph.output], ["logits_0", "logits_1", "logits_2"])
        # folded: the only batch norms left are the heads' BatchNorm1d (after a Gemm)
        bns = [n.name for n in proto.graph.node if n.op_type == "BatchNormalization"]
        self.assertEqual(sorted(bns), ["fc.0.3", "fc.1.3", "fc.2.3"])
        m.close()

    def test_builder_graph_every_op(self):
        """Dilation, padding and no-bias convolutions, padded max and average pools
        (padding counted in the divisor), adaptive pools with uneven and overlapping
        windows (5x5 -> 3x3, 2x2 -> 3x3), a bias-free linear layer, concat, add and a
        dropout at the output."""
        b = neurc.Builder(3, self.ctx)
        y = b.conv2d("c1", b.input, 6, 3, stride=2, padding=2, dilation=2, bias=False)
        y = b.relu(b.batchnorm("bn1", y))
        p = b.max_pool2d(y, 3, stride=1, padding=1)
        q = b.avg_pool2d(y, 3, stride=1, padding=1)
        y = b.add(p, q)
        y = b.conv2d("c2", y, 6, 3, padding=1, groups=3)
        u = b.flatten(b.adaptive_avg_pool2d(y, 3))          # 5x5 -> 3x3
        v = b.flatten(b.adaptive_avg_pool2d(b.avg_pool2d(y, 2), 3))  # 2x2 -> 3x3
        y = b.concat([u, v])
        y = b.linear("fc1", y, 7, bias=False)
        y = b.dropout(b.linear("fc2", b.relu(y), 4), 0.5)
        m = b.finish(y, num_heads=2, seed=3)
        b.close()
        _randomise_buffers(m, self.rng)
        proto = self.export_and_compare(m, 10, 3, fold_batchnorm=True)
        ops = [n.op_type for n in proto.graph.node]
        self.assertIn("MatMul", ops)  # the uneven adaptive pools
        self.assertNotIn("BatchNormalization", ops)
        self.export_and_compare(m, 10, 3, split_heads=True)
        m.close()

    def test_errors_leave_files_alone(self):
        m = neurc.Model("simple_cnn", num_classes=2, in_channels=1, context=self.ctx, width=4)
        path = self.path("keep.onnx")
        with open(path, "wb") as f:
            f.write(b"old contents")
        with self.assertRaises(neurc.ShapeError):
            m.export_onnx(path, 1)  # too small for the network
        with self.assertRaises(neurc.InvalidArgumentError):
            m.export_onnx(path, 16, opset=12)
        with self.assertRaises(neurc.StateError):
            m.export_onnx(path, 16, normalize=True)  # no normalisation stored
        with self.assertRaises(ValueError):
            m.export_onnx(path)  # no size given, none recorded
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"old contents")
        with self.assertRaises(neurc.IOError) as e:
            m.export_onnx(self.path("missing/dir/m.onnx"), 16)
        self.assertIn("missing/dir", str(e.exception))
        m.set_info("image_size", "16x12")
        m.export_onnx(path, split_heads=True)  # replaces the file, leaves no temporary behind
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["keep.onnx"])
        proto = onnx.load(path)
        onnx.checker.check_model(proto, full_check=True)
        self.assertEqual([o.name for o in proto.graph.output], ["logits_0"])  # split, one head
        self.assertEqual([d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim],
                         ["batch", 1, 16, 12])
        m.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
