#!/usr/bin/env python3
"""test_nc_predict.py — end-to-end tests of nc-predict and nc-embed (examples/).

usage: test_nc_predict.py {predict|embed} MAKE_FIXTURE NC_PREDICT NC_EMBED

MAKE_FIXTURE (tests/cli/make_predict_fixture.c) writes a checkpoint, a 2-head model,
PNGs (8/16-bit, gray, RGBA, corrupt, odd names), two manifests and expected.csv: the
probabilities computed image by image with nc_model_forward on inputs it stacks and
converts by hand. These tests run the programs on them and check the CSV's columns,
its quoting, the probabilities (against expected.csv, and summing to 1), the top-k
order, the threshold column, TTA, error reports and exit statuses. Standard library
only; run by `meson test` (suite cpu).
"""
import csv
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

MODE, MAKE_FIXTURE, NC_PREDICT, NC_EMBED = sys.argv[1:5] if len(sys.argv) >= 5 else (None,) * 4
CLASSES = ["alpha", "beta, b", 'gamma "g"', "delta"]
TOL = 2e-5  # nc-predict prints 6 significant digits

FIX = None  # the fixture folder
EXPECTED = {}  # (name, kind) -> [p...]
THRESHOLD = None


def setUpModule():
    global FIX, THRESHOLD
    FIX = tempfile.TemporaryDirectory(prefix="nc_predict_")
    subprocess.run([MAKE_FIXTURE, FIX.name], check=True)
    with open(os.path.join(FIX.name, "expected.csv"), newline="") as f:
        for row in csv.reader(f):
            if row[0] == "threshold":
                THRESHOLD = float(row[2])
            else:
                EXPECTED[(row[0], row[1])] = [float(v) for v in row[2:]]


def tearDownModule():
    FIX.cleanup()


def fx(*parts):
    return os.path.join(FIX.name, *parts)


def run(prog, *args):
    p = subprocess.run([prog, *args], capture_output=True, text=True, timeout=120)
    # under -Db_sanitize=address,undefined: any report fails the test, whatever the status
    for marker in ("Sanitizer", "runtime error:"):
        if marker in p.stderr:
            raise AssertionError("%s %s:\n%s" % (os.path.basename(prog), " ".join(args), p.stderr))
    return p


def predict(*args, checkpoint="model.ckpt"):
    return run(NC_PREDICT, "--threads", "1", "--checkpoint", fx(checkpoint), *args)


def rows_of(text):
    """The CSV as (header, list of dicts), parsed with Python's RFC 4180 reader."""
    r = list(csv.reader(io.StringIO(text, newline="")))
    return r[0], [dict(zip(r[0], row)) for row in r[1:]]


class PredictTest(unittest.TestCase):
    def check_rows(self, rows, kind, names, threshold=None):
        """Every row: probabilities as expected, sum 1, class/top-k consistent."""
        self.assertEqual([os.path.basename(r["path"]) for r in rows], names)
        for r in rows:
            want = EXPECTED[(os.path.basename(r["path"]), kind)]
            got = [float(r["p_" + c]) for c in CLASSES]
            for g, w in zip(got, want):
                self.assertAlmostEqual(g, w, delta=TOL, msg=r["path"])
            self.assertAlmostEqual(sum(got), 1.0, delta=1e-5)
            order = sorted(range(4), key=lambda k: (-want[k], k))
            self.assertEqual(r["class"], CLASSES[order[0]])
            self.assertAlmostEqual(float(r["probability"]), want[order[0]], delta=TOL)
            for k in range(2, 5):
                self.assertEqual(r["top%d_class" % k], CLASSES[order[k - 1]])
                self.assertAlmostEqual(float(r["top%d_prob" % k]), want[order[k - 1]], delta=TOL)
            if threshold is not None:
                self.assertEqual(r["beta, b_positive"], "1" if want[1] >= threshold else "0")

    def test_predict_files_threshold_and_corrupt(self):
        out = fx("out1.csv")
        files = ["a.png", "b.png", "c.png", "corrupt.png", 'odd, "q".png', "gray.png"]
        p = predict("--output", out, "--threshold", *[fx("img", n) for n in files])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("nc-predict: %s:" % fx("img", "corrupt.png"), p.stderr)
        self.assertIn("nc-predict: %s: 1 channel, but the model expects 3" % fx("img", "gray.png"), p.stderr)
        self.assertEqual(p.stdout, "")
        with open(out, newline="") as f:
            text = f.read()
        header, rows = rows_of(text)
        self.assertEqual(header, ["path", "class", "probability", "top2_class", "top2_prob", "top3_class",
                                  "top3_prob", "top4_class", "top4_prob"] + ["p_" + c for c in CLASSES] +
                         ["beta, b_positive"])
        self.assertIn('"p_gamma ""g"""', text.splitlines()[0])  # RFC 4180 quoting
        self.check_rows(rows, "T", ["a.png", "b.png", "c.png", 'odd, "q".png'], THRESHOLD)
        positives = {r["beta, b_positive"] for r in rows}
        self.assertEqual(len([f for f in os.listdir(fx()) if ".tmp." in f]), 0)  # temp file renamed
        self.assertTrue(positives <= {"0", "1"})

    def test_predict_folder_tta_convert_stdout(self):
        p = predict("--tta", "flip", "--convert", "--batch-size", "2", fx("img"))
        self.assertEqual(p.returncode, 1, p.stderr)  # corrupt.png
        self.assertIn(fx("img", "corrupt.png"), p.stderr)
        header, rows = rows_of(p.stdout)
        self.check_rows(rows, "tta", ["a.png", "b.png", "c.png", "gray.png", 'odd, "q".png', "rgba.png"])

    def test_predict_batch_size_invariant(self):
        # Batches of other sizes may take other kernels (oneDNN chooses by shape), so
        # the rows agree to rounding: same classes, probabilities within 1e-5.
        outs = [rows_of(predict("--convert", "--batch-size", b, fx("img")).stdout) for b in ("1", "3", "16")]
        header, want = outs[0]
        for h, rows in outs[1:]:
            self.assertEqual(h, header)
            self.assertEqual(len(rows), len(want))
            for r, w in zip(rows, want):
                for k in header:
                    try:
                        self.assertAlmostEqual(float(r[k]), float(w[k]), delta=1e-5)
                    except ValueError:  # path and class columns
                        self.assertEqual(r[k], w[k])

    def test_predict_recursive_top_k(self):
        p = predict("--recursive", "--top-k", "2", "--output", fx("out2.csv"), fx("img", "sub"))
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(fx("out2.csv"), newline="") as f:
            header, rows = rows_of(f.read())
        self.assertEqual(header[:5], ["path", "class", "probability", "top2_class", "top2_prob"])
        self.assertNotIn("top3_class", header)
        self.assertEqual([os.path.basename(r["path"]) for r in rows], ["d.png"])
        p = predict(fx("img"))  # not recursive: sub/d.png is not classified
        self.assertNotIn("d.png", p.stdout)

    def test_predict_no_temperature_and_threshold_override(self):
        p = predict("--no-temperature", "--threshold=0.999", fx("img", "a.png"), fx("img", "c.png"))
        self.assertEqual(p.returncode, 0, p.stderr)
        header, rows = rows_of(p.stdout)
        self.check_rows(rows, "raw", ["a.png", "c.png"], 0.999)
        p = predict("--threshold", "0.0", fx("img", "a.png"))  # separate word: a value, not a PATH
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(rows_of(p.stdout)[1][0]["beta, b_positive"], "1")

    def test_predict_manifest_stacks_columns(self):
        p = predict("--image-columns", "left,right", fx("manifest.csv"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("nc-predict: %s:" % fx("m", "missing.png"), p.stderr)
        header, rows = rows_of(p.stdout)
        self.check_rows(rows, "T", ["l1.png"])

    def test_predict_manifest_optional_column(self):
        p = predict("--optional-column", "mask", fx("manifest_opt.csv"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check_rows(rows_of(p.stdout)[1], "T", ["g2.png", "g3.png"])

    def test_predict_manifest_bad_rows(self):
        m = fx("bad_rows.csv")
        with open(m, "wb") as f:  # BOM, CRLF, a short row, a quoted path, then an unclosed quote
            f.write(b'\xef\xbb\xbfimage,x\r\nimg/a.png,1\r\nimg/b.png\r\n"img/c.png",2\r\n\r\n"img/a.png,3\r\n')
        p = predict(m)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nc-predict: %s:3: 1 field, but the header has 2" % m, p.stderr)
        self.assertIn("nc-predict: %s:6: a quoted field is not closed" % m, p.stderr)
        self.check_rows(rows_of(p.stdout)[1], "T", ["a.png", "c.png"])

    def test_predict_manifest_unknown_column(self):
        p = predict("--image-columns", "nope", fx("manifest.csv"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("no image column 'nope' (columns: id, left, right)", p.stderr)

    def test_predict_heads_model_without_info(self):
        p = predict(fx("img", "a.png"), fx("img", "b.png"), checkpoint="heads.safetensors")
        self.assertEqual(p.returncode, 1, p.stderr)  # b.png differs in size from a.png
        self.assertIn("give --img-size", p.stderr)
        header, rows = rows_of(p.stdout)
        self.assertEqual(header[:3], ["path", "head0_class", "head0_probability"])
        self.assertIn("head1_p_3", header)
        self.assertEqual(len(rows), 1)
        want = EXPECTED[("a.png", "heads")]
        for h in range(2):
            got = [float(rows[0]["head%d_p_%d" % (h, k)]) for k in range(4)]
            for g, w in zip(got, want[4 * h:4 * h + 4]):
                self.assertAlmostEqual(g, w, delta=TOL)
            best = max(range(4), key=lambda k: (want[4 * h + k], -k))
            self.assertEqual(rows[0]["head%d_class" % h], str(best))

    def test_predict_threshold_needs_stored_class(self):
        p = predict("--threshold", fx("img", "a.png"), checkpoint="heads.safetensors")
        self.assertEqual(p.returncode, 1)
        self.assertIn("threshold.class", p.stderr)

    def test_predict_missing_checkpoint(self):
        p = predict(fx("img", "a.png"), checkpoint="nope.ckpt")
        self.assertEqual(p.returncode, 1)
        self.assertIn(fx("nope.ckpt"), p.stderr)
        self.assertEqual(p.stdout, "")

    def test_predict_missing_path_and_unwritable_output(self):
        p = predict(fx("img", "a.png"), fx("nothing_here.png"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("nc-predict: %s: No such file or directory" % fx("nothing_here.png"), p.stderr)
        self.assertEqual(len(rows_of(p.stdout)[1]), 1)
        p = predict("--output", fx("no_dir", "out.csv"), fx("img", "a.png"))
        self.assertEqual(p.returncode, 1)
        self.assertIn(fx("no_dir", "out.csv"), p.stderr)

    def test_predict_that_classifies_nothing_keeps_the_output(self):
        out = fx("kept.csv")
        with open(out, "w") as f:
            f.write("an earlier result\n")
        p = predict("--output", out, fx("img", "corrupt.png"), fx("nothing_here.png"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("no image classified", p.stderr)
        with open(out) as f:
            self.assertEqual(f.read(), "an earlier result\n")
        self.assertEqual([f for f in os.listdir(fx()) if ".tmp." in f], [])

    def test_predict_killed_leaves_the_old_or_the_whole_output(self):
        out = fx("killed.csv")
        whole = predict("--batch-size", "1", fx("img")).stdout
        for delay in [0.0, 0.02, 0.05, 0.1, 0.2]:
            with open(out, "w") as f:
                f.write("an earlier result\n")
            q = subprocess.Popen([NC_PREDICT, "--threads", "1", "--checkpoint", fx("model.ckpt"), "--batch-size",
                                  "1", "--output", out, fx("img")], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(delay)
            q.kill()
            q.wait()
            with open(out) as f:
                self.assertIn(f.read(), ["an earlier result\n", whole])
            for f in os.listdir(fx()):  # a killed writer may leave its temporary file
                if f.startswith("killed.csv.tmp."):
                    os.remove(fx(f))

    def test_predict_sigint_writes_the_rows_so_far(self):
        man, out = fx("many.csv"), fx("interrupted.csv")
        with open(man, "w") as f:
            f.write("image\n" + "img/a.png\n" * 40000)
        with open(out, "w") as f:
            f.write("an earlier result\n")
        q = subprocess.Popen([NC_PREDICT, "--threads", "1", "--checkpoint", fx("model.ckpt"), "--batch-size", "4",
                              "--output", out, man], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        q.send_signal(signal.SIGINT)
        _, err = q.communicate(timeout=120)
        if q.returncode == 0:
            self.skipTest("nc-predict finished before the signal")
        self.assertEqual(q.returncode, 130, err)
        self.assertIn("interrupted after", err)
        with open(out, newline="") as f:
            header, rows = rows_of(f.read())
        self.assertTrue(0 < len(rows) < 40000, len(rows))
        self.assertTrue(all(r == dict(rows[0]) for r in rows))
        self.assertEqual([f for f in os.listdir(fx()) if f.startswith("interrupted.csv.tmp.")], [])

    def test_predict_cam_writes_overlays(self):
        import struct as st
        for ckpt, heads in (("model.ckpt", 1), ("heads.safetensors", 2)):
            out = fx("cam_" + ckpt.split(".")[0])
            p = predict("--cam", out, fx("img", "a.png"), checkpoint=ckpt)
            self.assertEqual(p.returncode, 0, p.stderr)
            want = ["00000_a.png"] if heads == 1 else ["00000_a_h0.png", "00000_a_h1.png"]
            self.assertEqual(sorted(os.listdir(out)), want)
            for name in want:
                with open(os.path.join(out, name), "rb") as f:
                    head = f.read(26)
                self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
                w, h, depth, color = st.unpack(">IIBB", head[16:26])
                self.assertEqual((depth, color), (8, 2))  # 8-bit RGB
                self.assertGreater(w * h, 0)
        p = predict("--cam", fx("img", "a.png", "no_dir_here"), fx("img", "a.png"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("--cam", p.stderr)

    def test_predict_bad_usage_exits_2(self):
        a = fx("img", "a.png")
        for args in (["--top-k", "0", a], ["--tta", "mirror", a], ["--bogus", a], ["--batch-size", "x", a],
                     ["--backend", "gpu9", a], [], ["--threshold=1.5", a], ["--top-k", "9", a]):
            p = predict(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertTrue(p.stderr.startswith("nc-predict: "), p.stderr)
        p = run(NC_PREDICT, a)  # no --checkpoint
        self.assertEqual(p.returncode, 2)
        p = run(NC_PREDICT, "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--checkpoint FILE", p.stdout)


class EmbedTest(unittest.TestCase):
    def test_embed_prints_top_class(self):
        for name in ("a.png", "b.png"):
            p = run(NC_EMBED, fx("model.ckpt"), fx("img", name))
            self.assertEqual(p.returncode, 0, p.stderr)
            want = EXPECTED[(name, "T")]
            best = max(range(4), key=lambda k: (want[k], -k))
            cls, prob = p.stdout.strip().rsplit(" ", 1)
            self.assertEqual(cls, CLASSES[best])
            self.assertAlmostEqual(float(prob), want[best], delta=2e-6)

    def test_embed_errors(self):
        self.assertEqual(run(NC_EMBED).returncode, 2)
        p = run(NC_EMBED, fx("model.ckpt"), fx("img", "corrupt.png"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("corrupt.png", p.stderr)
        p = run(NC_EMBED, fx("nope.ckpt"), fx("img", "a.png"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope.ckpt", p.stderr)


if __name__ == "__main__":
    if MODE not in ("predict", "embed"):
        sys.exit(__doc__)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(PredictTest if MODE == "predict" else EmbedTest)
    sys.exit(0 if unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful() else 1)
