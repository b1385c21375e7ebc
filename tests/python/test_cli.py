"""`python -m neurc train|predict|evaluate`, and models crossing between Python and the C
programs: a model trained in Python classified by nc-predict, a model trained by
nc-train loaded and run in Python. NC_PREDICT / NC_TRAIN name the built programs (set by
meson); those tests skip without them."""

import csv
import math
import os
import random
import subprocess
import sys
import tempfile
import unittest

import neurc

NC_PREDICT = os.environ.get("NC_PREDICT", "")
NC_TRAIN = os.environ.get("NC_TRAIN", "")
HAVE_PREDICT = os.path.isfile(NC_PREDICT) and os.access(NC_PREDICT, os.X_OK)
HAVE_TRAIN = os.path.isfile(NC_TRAIN) and os.access(NC_TRAIN, os.X_OK)


def run_module(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "neurc"] + list(args), capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=240)


def make_folder(root, ctx, per_class=12, size=12):
    """Two classes (a: bright bottom half, b: bright top half) as 8-bit PNG folders."""
    r = random.Random(0)
    paths = []
    for c, cls in enumerate("ab"):
        os.makedirs(os.path.join(root, cls))
        for i in range(per_class):
            v = [[[min(1.0, r.uniform(0, 0.5) + (0.5 if (c == 1) == (y < size // 2) else 0.0)) for _ in range(size)]
                  for y in range(size)]]
            p = os.path.join(root, cls, "%02d.png" % i)
            with neurc.Image.from_array(v, ctx) as img:
                img.save_png(p)
            paths.append(p)
    return paths


def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


class TestCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ctx = neurc.Context(threads=1)
        cls.root = os.path.join(cls.tmp.name, "data")
        cls.pngs = make_folder(cls.root, cls.ctx)

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def python_model(self):
        """Trained in Python on the folder, with what nc-predict reads from a model."""
        path = self.path("py.safetensors")
        if os.path.exists(path):
            return path
        ds = neurc.Dataset.folder(self.root, self.ctx)
        mean, std = ds.channel_stats()
        tf = neurc.Transform(self.ctx).normalize(mean, std)
        m = neurc.Model("simple_cnn", 2, 1, self.ctx, width=4, seed=1)
        neurc.fit(m, neurc.Loader(ds, tf, batch_size=8, workers=0), epochs=2, lr=0.05, verbose=False)
        m.class_names = ds.class_names()
        m.normalization = (mean, std)
        m.set_info("image_size", 12)
        m.save(path)
        return path

    def predict_python(self, model, inputs):
        r = run_module("predict", "--checkpoint", model, "--threads", "1", *inputs)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    @unittest.skipUnless(HAVE_PREDICT, "nc-predict not built (NC_PREDICT)")
    def test_python_model_in_nc_predict(self):
        model = self.python_model()
        inputs = self.pngs[:3] + [os.path.join(self.root, "b")]
        c = subprocess.run([NC_PREDICT, "--checkpoint", model, "--threads", "1"] + inputs, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(self.predict_python(model, inputs), c.stdout)  # byte for byte
        rows = list(csv.DictReader(c.stdout.splitlines()))
        self.assertEqual(len(rows), 3 + 12)
        # and the probabilities are those of Model.forward in Python (independent of both CLIs)
        with neurc.Model.load(model, self.ctx) as m:
            mean, std = m.normalization
            with neurc.read_png(self.pngs[0], self.ctx) as img:
                x = [[[(v - mean[0]) / std[0] for v in row] for row in ch] for ch in
                     (img.to_array().tolist() if hasattr(img.to_array(), "tolist") else img.to_array())]
            p = softmax([float(v) for v in list(m.forward([x]))[0]])
        self.assertAlmostEqual(float(rows[0]["p_a"]), p[0], places=5)
        self.assertEqual(rows[0]["class"], "a" if p[0] >= p[1] else "b")

    @unittest.skipUnless(HAVE_TRAIN and HAVE_PREDICT, "nc-train / nc-predict not built (NC_TRAIN, NC_PREDICT)")
    def test_nc_train_model_in_python(self):
        out = self.path("nctrain")
        r = subprocess.run([NC_TRAIN, "--data", self.root, "--model", "simple_cnn", "--width", "4", "--epochs", "1",
                            "--batch-size", "8", "--output-dir", out, "--quiet", "--threads", "1", "--workers", "0"],
                           capture_output=True, text=True, timeout=240)
        self.assertEqual(r.returncode, 0, r.stderr)
        model = os.path.join(out, "last.safetensors")
        with neurc.Model.load(model, self.ctx) as m:
            self.assertEqual((m.in_channels, m.num_classes, m.class_names), (1, 2, ["a", "b"]))
            self.assertIsNotNone(m.normalization)
            with neurc.evaluate(m, neurc.Dataset.folder(self.root, self.ctx)) as met:
                self.assertEqual(met.count, 24)
        c = subprocess.run([NC_PREDICT, "--checkpoint", model, "--threads", "1"] + self.pngs[:4],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(self.predict_python(model, self.pngs[:4]), c.stdout)

    @unittest.skipUnless(HAVE_TRAIN and HAVE_PREDICT, "nc-train / nc-predict not built (NC_TRAIN, NC_PREDICT)")
    def test_nc_train_multilabel_model_in_python(self):
        """nc-train --loss bce: Model.output is "sigmoid", predict_proba is the sigmoid of
        the logits, and `python -m neurc predict` writes nc-predict's CSV byte for byte."""
        manifest = self.path("ml.csv")
        with open(manifest, "w") as f:
            f.write("image,top,bottom\n")
            for i, p in enumerate(self.pngs):
                top = 1 if "/b/" in p.replace(os.sep, "/") else 0
                f.write("%s,%d,%d\n" % (p, top, (1 - top) if i % 3 else top))
        out = self.path("ml")
        r = subprocess.run([NC_TRAIN, "--data", manifest, "--label-columns", "top,bottom", "--loss", "bce",
                            "--pos-weight", "auto", "--model", "simple_cnn", "--width", "4", "--epochs", "1",
                            "--val-split", "0.25", "--test-split", "0.25",
                            "--batch-size", "8", "--output-dir", out, "--quiet", "--threads", "1", "--workers", "0"],
                           capture_output=True, text=True, timeout=240)
        self.assertEqual(r.returncode, 0, r.stderr)
        model = os.path.join(out, "best.safetensors")
        with neurc.Model.load(model, self.ctx) as m:
            self.assertEqual((m.output, m.num_heads, m.num_classes, m.class_names), ("sigmoid", 1, 2, ["top", "bottom"]))
            mean, std = m.normalization
            with neurc.read_png(self.pngs[0], self.ctx) as img:
                a = img.to_array()
                x = [[[(v - mean[0]) / std[0] for v in row] for row in ch] for ch in
                     (a.tolist() if hasattr(a, "tolist") else a)]
            z = [float(v) for v in list(m.forward([x]))[0]]
            p = [float(v) for v in list(m.predict_proba([x]))[0]]
            for zi, pi in zip(z, p):
                self.assertAlmostEqual(pi, 1.0 / (1.0 + math.exp(-zi)), places=6)
        c = subprocess.run([NC_PREDICT, "--checkpoint", model, "--threads", "1"] + self.pngs[:4],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertTrue(c.stdout.startswith("path,labels,p_top,p_bottom\n"), c.stdout)
        self.assertEqual(self.predict_python(model, self.pngs[:4]), c.stdout)
        # label names that need CSV quoting, every label listed (--threshold 0)
        odd = self.path("ml_odd.safetensors")
        with neurc.Model.load(model, self.ctx) as m:
            m.class_names = ['top, "upper"', "bottom|low"]
            m.save(odd)
        c = subprocess.run([NC_PREDICT, "--checkpoint", odd, "--threads", "1", "--threshold=0", self.pngs[0]],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(c.returncode, 0, c.stderr)
        row = list(csv.DictReader(c.stdout.splitlines()))[0]
        self.assertEqual(row["labels"], 'top, "upper"|bottom|low')
        self.assertEqual(self.predict_python(odd, ["--threshold", "0", self.pngs[0]]), c.stdout)

    def test_train_evaluate_predict_commands(self):
        out = self.path("pytrain")
        r = run_module("train", "--data", self.root, "--model", "simple_cnn", "--width", "4", "--epochs", "2",
                       "--batch-size", "8", "--lr", "0.05", "--output-dir", out, "--threads", "1", "--workers", "0",
                       "--val-split", "0.25", "--test-split", "0.25", "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        for f in ("last.safetensors", "best.safetensors", "split.csv"):
            self.assertTrue(os.path.isfile(os.path.join(out, f)), f)
        self.assertIn("test: 6 images, accuracy", r.stdout)
        with neurc.Model.load(os.path.join(out, "last.safetensors"), self.ctx) as m:
            self.assertEqual((m.class_names, m.get_info("image_size")), (["a", "b"], "12"))
        e = run_module("evaluate", "--checkpoint", os.path.join(out, "last.safetensors"), "--data", self.root,
                       "--threads", "1", "--workers", "0")
        self.assertEqual(e.returncode, 0, e.stderr)
        self.assertRegex(e.stdout, r"evaluate: 24 images, accuracy [01]\.\d{4}")
        p = self.predict_python(os.path.join(out, "last.safetensors"), [self.pngs[0]])
        self.assertTrue(p.startswith("path,class,probability,top2_class,top2_prob,p_a,p_b\n"), p)

    def test_errors_and_usage(self):
        r = run_module("predict", "--checkpoint", self.path("missing.safetensors"), self.pngs[0])
        self.assertEqual(r.returncode, 1)
        self.assertIn("missing.safetensors", r.stderr)
        r = run_module("train")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--data", r.stderr)
        r = run_module("predict", "--checkpoint", self.python_model(), "--threads", "1", self.pngs[0],
                       self.path("nothere.png"))
        self.assertEqual(r.returncode, 1)  # the other inputs are still classified
        self.assertIn("nothere.png", r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
