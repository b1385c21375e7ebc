"""End-to-end test of nc-export (examples/export.c, docs/cli.md) on the checkpoint and
the 2-head model that tests/cli/make_predict_fixture.c writes: the input size from the
model's image_size or --img-size, every option, the summary line, usage errors (exit
2), load/export failures (exit 1, the output left as it was). Where python3-onnx is
importable the files also pass onnx.checker and carry the model's metadata; without
ONNX in the build the test is skipped (exit 77).
usage: test_nc_export.py MAKE_FIXTURE NC_EXPORT"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import onnx
except ImportError:
    onnx = None

MAKE_FIXTURE, NC_EXPORT = sys.argv[1], sys.argv[2]
FIX = tempfile.TemporaryDirectory()


def fx(name):
    return os.path.join(FIX.name, name)


def run(*args):
    return subprocess.run([NC_EXPORT, *args], capture_output=True, text=True, timeout=120)


def setUpModule():
    subprocess.run([MAKE_FIXTURE, FIX.name], check=True, stdout=subprocess.DEVNULL)
    p = run("--checkpoint", fx("model.ckpt"), "--output", fx("probe.onnx"))
    if p.returncode == 1 and "without ONNX" in p.stderr:
        print("nc-export: neurc was built without ONNX export; skipped", file=sys.stderr)
        sys.exit(77)


def load(path):
    """The metadata of an ONNX file (checked by onnx.checker when available)."""
    if onnx is None:
        return None
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    return m


class TestNcExport(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "m.onnx")

    def tearDown(self):
        self.tmp.cleanup()

    def write_old(self):
        with open(self.out, "w") as f:
            f.write("old")

    def assert_old(self):
        with open(self.out) as f:
            self.assertEqual(f.read(), "old")

    def test_checkpoint_with_recorded_size(self):
        p = run("--checkpoint", fx("model.ckpt"), "--output", self.out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        self.assertIn("input (batch, 3, 16, 16), output logits (batch, 4), opset 13", p.stdout)
        m = load(self.out)
        if m is not None:
            meta = {e.key: e.value for e in m.metadata_props}
            self.assertEqual(len(json.loads(meta["neurc.class_names"])), 4)
            self.assertEqual(len(json.loads(meta["neurc.norm_mean"])), 3)
            self.assertEqual(meta["user.image_size"], "16")
            self.assertEqual(meta["neurc.onnx.normalized_in_graph"], "0")
        else:
            with open(self.out, "rb") as f:
                self.assertIn(b"neurc.class_names", f.read())

    def test_options(self):
        p = run("--checkpoint", fx("model.ckpt"), "--output", self.out, "--img-size", "20x24", "--opset", "17",
                "--normalize", "--fold-batchnorm", "--quiet")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "", ""))
        m = load(self.out)
        if m is not None:
            dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
            self.assertEqual(dims, ["batch", 3, 20, 24])
            self.assertEqual(m.opset_import[0].version, 17)
            ops = {n.op_type for n in m.graph.node}
            self.assertIn("Sub", ops)
            self.assertNotIn("BatchNormalization", ops)
        p = run("--checkpoint", fx("heads.safetensors"), "--output", self.out, "--img-size", "16", "--split-heads")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("outputs logits_0..logits_1 (batch, 4) each", p.stdout)
        m = load(self.out)
        if m is not None:
            self.assertEqual([o.name for o in m.graph.output], ["logits_0", "logits_1"])

    def test_failures_leave_output(self):
        self.write_old()
        cases = [
            (["--checkpoint", fx("heads.safetensors")], "records no usable image_size"),
            (["--checkpoint", fx("heads.safetensors"), "--img-size", "16", "--normalize"], "normalization"),
            (["--checkpoint", fx("model.ckpt"), "--img-size", "1"], "1x1"),
            (["--checkpoint", fx("missing.safetensors")], "missing.safetensors"),
        ]
        for args, text in cases:
            with self.subTest(args=args):
                p = run(*args, "--output", self.out)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(text, p.stderr)
                self.assertTrue(p.stderr.startswith("nc-export: "), p.stderr)
                self.assert_old()
        p = run("--checkpoint", fx("model.ckpt"), "--output", os.path.join(self.tmp.name, "no", "m.onnx"))
        self.assertEqual(p.returncode, 1)
        self.assertIn(os.path.join(self.tmp.name, "no"), p.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["m.onnx"])  # no temporary left

    def test_usage(self):
        ck = ["--checkpoint", fx("model.ckpt")]
        for args in ([], ck, ["--output", self.out], ck + ["--output", self.out, "--opset", "12"],
                     ck + ["--output", self.out, "--img-size", "0"], ck + ["--output", self.out, "--img-size", "8x"],
                     ck + ["--output", self.out, "--bogus"], ck + ["--output", self.out, "extra"],
                     ck + ["--output"]):
            with self.subTest(args=args):
                p = run(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertTrue(p.stderr.startswith("nc-export: "), p.stderr)
                self.assertFalse(os.path.exists(self.out))
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: nc-export", p.stdout)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
