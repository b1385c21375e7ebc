#!/usr/bin/env python3
"""test_nc_train.py — end-to-end tests of nc-train (examples/train/).

usage: test_nc_train.py NC_TRAIN

Writes a small PNG class folder (3 classes x 14 gray 16x16 images with class-specific
stripes, PNGs made with zlib + struct) and runs nc-train on it with a tiny simple_cnn
on one thread: train (2 epochs) -> files, JSON and the numbers in them -> resume to 3
epochs (the first 2 log rows unchanged, and all 3 rows equal to a fresh 3-epoch run)
-> evaluate -> test; k-fold bookkeeping (K = 3); Ctrl-C and resume; bad flags (exit
2), a missing data path, a corrupt PNG and resume without a checkpoint (exit 1 with a
clear message, never a crash). Standard library only; run by `meson test` (suite cpu).
"""
import csv
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

NC_TRAIN = sys.argv[1] if len(sys.argv) > 1 else None
CLASSES = ["horizontal", "plain", "vertical"]
PER_CLASS = 14
SIZE = 16

TMP = None


def png_gray(path, rows):
    """An 8-bit grayscale PNG from a list of rows of ints in 0..255."""
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(r) for r in rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def image(cls, i):
    """Class 0: horizontal stripes, 1: flat, 2: vertical stripes; with a per-image jitter."""
    rows = []
    for y in range(SIZE):
        row = []
        for x in range(SIZE):
            noise = (x * 7 + y * 13 + i * 29) % 40
            if cls == 0:
                v = 200 if (y + i) % 4 < 2 else 40
            elif cls == 1:
                v = 120
            else:
                v = 200 if (x + i) % 4 < 2 else 40
            row.append(min(255, v + noise))
        rows.append(row)
    return rows


def setUpModule():
    global TMP
    TMP = tempfile.TemporaryDirectory(prefix="nc_train_")
    for k, name in enumerate(CLASSES):
        os.makedirs(os.path.join(TMP.name, "data", name))
        for i in range(PER_CLASS):
            png_gray(os.path.join(TMP.name, "data", name, "%02d.png" % i), image(k, i))


def tearDownModule():
    TMP.cleanup()


def tmp(*parts):
    return os.path.join(TMP.name, *parts)


COMMON = ["--model", "simple_cnn", "--width", "4", "--threads", "1", "--workers", "0", "--batch-size", "8",
          "--val-split", "0.3", "--test-split", "0.2", "--seed", "3", "--lr", "0.05", "--log-every", "2"]


def run(*args, timeout=120):
    p = subprocess.run([NC_TRAIN, *args], capture_output=True, text=True, timeout=timeout)
    check_no_sanitizer(p.stderr, args)
    return p


def check_no_sanitizer(stderr, args):
    # under -Db_sanitize=address,undefined: any report fails the test, whatever the status
    for marker in ("Sanitizer", "runtime error:"):
        if marker in stderr:
            raise AssertionError("nc-train %s:\n%s" % (" ".join(args), stderr))


def ok(test, p):
    test.assertEqual(p.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (p.stdout, p.stderr))


def log_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def split_counts(out):
    counts = {"train": 0, "val": 0, "test": 0}
    with open(os.path.join(out, "split.csv"), newline="") as f:
        for row in csv.DictReader(f):
            counts[row["split"]] += 1
    return counts


def find_counts(obj, split):
    """Every 'count' of a metrics entry for `split` anywhere in report.json."""
    found = []
    if isinstance(obj, dict):
        if obj.get("split") == split and "count" in obj:
            found.append(obj["count"])
        for key, value in obj.items():
            if key == split and isinstance(value, (dict, list)):
                found += find_counts_any(value)
            found += find_counts(value, split)
    elif isinstance(obj, list):
        for value in obj:
            found += find_counts(value, split)
    return found


def find_counts_any(obj):
    if isinstance(obj, dict):
        return ([obj["count"]] if "count" in obj else []) + [c for v in obj.values() for c in find_counts_any(v)]
    if isinstance(obj, list):
        return [c for v in obj for c in find_counts_any(v)]
    return []


def safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


TRAIN_COLS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]


class TrainResumeEvaluateTest(unittest.TestCase):
    """One run through every mode, in order."""

    @classmethod
    def setUpClass(cls):
        cls.out = tmp("run")
        cls.first = run("train", "--data", tmp("data"), "--output-dir", cls.out, "--epochs", "2",
                        "--threshold-class", "plain", *COMMON)

    def test_1_train_writes_everything(self):
        ok(self, self.first)
        for name in ["train_log.csv", "train_log.json", "last.safetensors", "best.safetensors", "split.csv",
                     "config.json", "report.json", "summary.txt", "curves.svg"]:
            self.assertTrue(os.path.isfile(os.path.join(self.out, name)), name)
        rows = log_rows(os.path.join(self.out, "train_log.csv"))
        self.assertEqual([r["epoch"] for r in rows], ["1", "2"])
        for r in rows:
            self.assertTrue(math.isfinite(float(r["train_loss"])) and float(r["train_loss"]) > 0)
            self.assertTrue(0.0 <= float(r["val_acc"]) <= 1.0)
        with open(os.path.join(self.out, "train_log.json")) as f:
            hist = json.load(f)
        self.assertEqual(len(hist), 2)
        self.assertAlmostEqual(hist[1]["train_loss"], float(rows[1]["train_loss"]), places=5)
        counts = split_counts(self.out)
        self.assertEqual(sum(counts.values()), 3 * PER_CLASS)
        self.assertEqual(counts["test"], round(0.2 * PER_CLASS) * 3)
        with open(os.path.join(self.out, "report.json")) as f:
            report = json.load(f)
        self.assertIn(counts["test"], find_counts(report, "test"))
        self.assertIn(counts["val"], find_counts(report, "val"))
        with open(os.path.join(self.out, "config.json")) as f:
            config = json.load(f)
        self.assertEqual(config["model"], "simple_cnn")
        self.assertEqual(config["epochs"], "2")
        self.assertEqual(config["conv-algorithm"], "auto")
        self.assertEqual(len(config["mean"].split(",")), 1)  # measured, one gray channel
        header = safetensors_header(os.path.join(self.out, "best.safetensors"))
        self.assertIn("fc.weight", header)
        meta = header.get("__metadata__", {})
        self.assertEqual(meta.get("user.image_size"), "16")
        self.assertIn("user.temperature", meta)
        self.assertEqual(meta.get("user.threshold.class"), "1")  # "plain"
        self.assertTrue(0.0 <= float(meta["user.threshold.value"]) <= 1.0)
        self.assertIn("threshold.test_precision", report["run"])
        self.assertIn("horizontal", json.dumps(meta))  # class names stored
        self.assertIn("test", self.first.stdout)

    def test_2_train_again_refuses_without_force(self):
        p = run("train", "--data", tmp("data"), "--output-dir", self.out, "--epochs", "2", *COMMON)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--force", p.stderr)
        self.assertIn("resume", p.stderr)

    def test_3_resume_continues_and_equals_a_straight_run(self):
        before = log_rows(os.path.join(self.out, "train_log.csv"))
        p = run("resume", "--output-dir", self.out, "--epochs", "3", "--threads", "1", "--workers", "0")
        ok(self, p)
        after = log_rows(os.path.join(self.out, "train_log.csv"))
        self.assertEqual(len(after), 3)
        for a, b in zip(before, after[:2]):
            self.assertEqual({k: a[k] for k in TRAIN_COLS}, {k: b[k] for k in TRAIN_COLS})
        with open(os.path.join(self.out, "config.json")) as f:
            self.assertEqual(json.load(f)["epochs"], "3")
        straight = tmp("straight")
        ok(self, run("train", "--data", tmp("data"), "--output-dir", straight, "--epochs", "3", *COMMON))
        rows = log_rows(os.path.join(straight, "train_log.csv"))
        for a, b in zip(rows, after):
            self.assertEqual({k: a[k] for k in TRAIN_COLS}, {k: b[k] for k in TRAIN_COLS})

    def test_4_evaluate_and_test(self):
        counts = split_counts(self.out)
        for mode, split in (("evaluate", "val"), ("test", "test")):
            p = run(mode, "--output-dir", self.out, "--threads", "1")
            ok(self, p)
            path = os.path.join(self.out, mode, "report.json")
            with open(path) as f:
                report = json.load(f)
            self.assertIn(counts[split], find_counts(report, split), path)
            other = "test" if split == "val" else "val"
            self.assertEqual(find_counts(report, other), [], path)


class FoldsTest(unittest.TestCase):
    def test_kfold_bookkeeping(self):
        out = tmp("folds")
        p = run("--data", tmp("data"), "--output-dir", out, "--epochs", "1", "--folds", "3", *COMMON)
        ok(self, p)
        self.assertIn("±", p.stdout)
        for f in range(3):
            self.assertTrue(os.path.isfile(os.path.join(out, "fold-%d" % f, "best.safetensors")))
            self.assertTrue(os.path.isfile(os.path.join(out, "fold-%d" % f, "report.json")))
        with open(os.path.join(out, "folds.json")) as f:
            folds = json.load(f)
        self.assertEqual(folds["k"], 3)
        accs = [r["val_acc"] for r in folds["folds"]]
        self.assertEqual(len(accs), 3)
        mean = sum(accs) / 3
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / 2)
        self.assertAlmostEqual(folds["mean"]["val_acc"], mean, places=12)
        self.assertAlmostEqual(folds["std"]["val_acc"], std, places=12)
        # the train+val part (80%) dealt over 3 folds: sizes within one per class
        counts = split_counts(out)
        trainval = counts["train"] + counts["val"]
        with open(os.path.join(out, "fold-0", "report.json")) as f:
            val0 = find_counts(json.load(f), "val")
        self.assertTrue(any(abs(c - trainval / 3) <= 3 for c in val0), val0)
        with open(os.path.join(out, "folds.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["fold"] for r in rows], ["0", "1", "2", "mean", "std"])


class InterruptTest(unittest.TestCase):
    def test_sigint_saves_and_resume_continues(self):
        out = tmp("interrupt")
        args = [NC_TRAIN, "train", "--data", tmp("data"), "--output-dir", out, "--epochs", "400", *COMMON]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        log = os.path.join(out, "train_log.csv")
        deadline = time.time() + 60
        while not os.path.exists(log) and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
        check_no_sanitizer(stderr, args)
        self.assertEqual(p.returncode, 130, stderr)
        self.assertIn("resume", stderr)
        self.assertTrue(os.path.isfile(os.path.join(out, "last.safetensors")))
        done = len(log_rows(log))
        ok(self, run("resume", "--output-dir", out, "--epochs", str(done + 1), "--threads", "1", "--quiet"))
        self.assertEqual(len(log_rows(log)), done + 1)


    def test_sigint_at_any_moment_leaves_a_resumable_run(self):
        """Ctrl-C at several moments (scanning the channel statistics, training, validating
        through the library's progress callback, saving): exit 130 with a message, or 0 when
        the run was done; every file present is whole, and `resume` finishes the run."""
        for k, delay in enumerate([0.05, 0.15, 0.3, 0.5]):
            out = tmp("interrupt_any_%d" % k)
            args = [NC_TRAIN, "train", "--data", tmp("data"), "--output-dir", out, "--epochs", "3", "--img-size",
                    "48", *COMMON]
            args[args.index("--val-split") + 1] = "0.6"
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            _, stderr = p.communicate(timeout=120)
            check_no_sanitizer(stderr, args)
            if p.returncode == -signal.SIGINT:  # before nc-train installed its handler
                self.assertFalse(os.path.exists(out) and os.listdir(out), out)
                continue
            self.assertIn(p.returncode, (0, 130), stderr)
            if p.returncode == 130:
                self.assertIn("interrupted", stderr)
            if not os.path.exists(os.path.join(out, "last.safetensors")):
                self.assertFalse(os.path.exists(os.path.join(out, "train_log.csv")))
                continue  # stopped before the first checkpoint: nothing to resume
            ok(self, run("resume", "--output-dir", out, "--threads", "1", "--quiet"))
            rows = log_rows(os.path.join(out, "train_log.csv"))
            self.assertEqual([r["epoch"] for r in rows], ["1", "2", "3"])
            self.assertEqual([f for f in os.listdir(out) if ".tmp." in f], [])


class BadInputTest(unittest.TestCase):
    def test_bad_flags_exit_2(self):
        cases = [
            (["--epochs", "abc", "--data", tmp("data")], "bad value 'abc' for --epochs"),
            (["--bogus"], "unknown option '--bogus'"),
            (["--lr"], "needs a value"),
            (["fly", "--data", tmp("data")], "unknown mode 'fly'"),
            (["--optimizer", "rmsprop", "--data", tmp("data")], "--optimizer"),
            (["--data", tmp("data"), "extra"], "unexpected argument 'extra'"),
            (["--scheduler", "multistep", "--data", tmp("data")], "--milestones"),
            (["--conv-algorithm", "fft", "--data", tmp("data")], "expected auto, direct or winograd"),
        ]
        for args, message in cases:
            # the mode word must come first; a value-less --lr must come last
            mode = args[:1] if not args[0].startswith("-") else []
            p = run(*mode, "--output-dir", tmp("never"), *args[len(mode):])
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(message, p.stderr)
            self.assertIn("--help", p.stderr)
        self.assertFalse(os.path.exists(tmp("never")))

    def test_help_exits_0(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        for flag in ["--lr-head", "--folds", "--threshold-rule", "--early-stopping", "--pretrained"]:
            self.assertIn(flag, p.stdout)

    def test_missing_data_path(self):
        p = run("--data", tmp("nowhere"), "--output-dir", tmp("missing"), *COMMON)
        self.assertEqual(p.returncode, 1)
        self.assertIn(tmp("nowhere"), p.stderr)
        self.assertTrue(p.stderr.startswith("nc-train: "))

    def test_corrupt_png_names_the_file(self):
        data = tmp("corrupt_data")
        shutil.copytree(tmp("data"), data)
        bad = os.path.join(data, "plain", "07.png")
        with open(bad, "r+b") as f:  # keep the signature and IHDR, cut the image data
            f.truncate(40)
        p = run("--data", data, "--output-dir", tmp("corrupt_out"), "--epochs", "1", *COMMON)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(bad, p.stderr)

    def test_resume_without_checkpoint(self):
        empty = tmp("empty")
        os.makedirs(empty)
        p = run("resume", "--output-dir", empty)
        self.assertEqual(p.returncode, 1)
        self.assertIn("config.json", p.stderr)
        # a run directory whose checkpoint is gone
        out = tmp("no_ckpt")
        ok(self, run("--data", tmp("data"), "--output-dir", out, "--epochs", "1", *COMMON))
        os.remove(os.path.join(out, "last.safetensors"))
        p = run("resume", "--output-dir", out, "--epochs", "2")
        self.assertEqual(p.returncode, 1)
        self.assertIn("last.safetensors", p.stderr)

    def test_evaluate_before_training(self):
        p = run("evaluate", "--output-dir", tmp("nothing_here"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("config.json", p.stderr)


def snapshot(out):
    """Every file of a run directory (recursively) -> its bytes."""
    files = {}
    for root, _, names in os.walk(out):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, out)] = f.read()
    return files


def scale_weights(src, dst, factor):
    """Copies a safetensors file with every F32 weight and bias multiplied by factor."""
    import array
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header_bytes = f.read(n)
        data = bytearray(f.read())
    header = json.loads(header_bytes)
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32" or not name.endswith(("weight", "bias")):
            continue
        a, b = t["data_offsets"]
        values = array.array("f", bytes(data[a:b]))
        data[a:b] = array.array("f", [v * factor for v in values]).tobytes()
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", n) + header_bytes + bytes(data))


class KeepFilesTest(unittest.TestCase):
    """A run that fails leaves what earlier runs saved as it was (issue 15): every
    phase of a failing `train --force` or `resume` before its first save."""

    @classmethod
    def setUpClass(cls):
        cls.out = tmp("keep")
        ok(unittest.TestCase(), run("--data", tmp("data"), "--output-dir", cls.out, "--epochs", "1", *COMMON))
        cls.before = snapshot(cls.out)

    def setUp(self):  # each case starts from the first run's files, whatever an earlier case did
        shutil.rmtree(self.out)
        for name, data in self.before.items():
            os.makedirs(os.path.dirname(os.path.join(self.out, name)), exist_ok=True)
            with open(os.path.join(self.out, name), "wb") as f:
                f.write(data)

    def assert_unchanged(self, p, message):
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(message, p.stderr)
        after = snapshot(self.out)
        self.assertEqual(sorted(after), sorted(self.before))
        for name, data in self.before.items():
            self.assertEqual(after[name], data, name)

    def test_force_with_a_bad_pretrained_file(self):
        text = tmp("not-a-checkpoint.txt")
        with open(text, "w") as f:
            f.write("this is not a checkpoint\n" * 8)
        p = run("--data", tmp("data"), "--output-dir", self.out, "--epochs", "1", "--force",
                "--pretrained", text, *COMMON)
        self.assert_unchanged(p, "--pretrained")

    def test_force_whose_loss_is_not_finite(self):
        # starting weights scaled by 1e30 overflow the forward pass: every loss is NaN
        blown = tmp("blown.safetensors")
        scale_weights(os.path.join(self.out, "best.safetensors"), blown, 1e30)
        args = [a if a != "8" else "2" for a in COMMON]  # more batches than updates skipped in a row
        p = run("--data", tmp("data"), "--output-dir", self.out, "--epochs", "1", "--force",
                "--pretrained", blown, *args)
        self.assert_unchanged(p, "not finite")
        self.assertIn("--lr", p.stderr)

    def test_force_with_a_bad_image(self):
        data = tmp("keep_bad_data")
        shutil.copytree(tmp("data"), data)
        with open(os.path.join(data, "plain", "03.png"), "r+b") as f:
            f.truncate(40)
        p = run("--data", data, "--output-dir", self.out, "--epochs", "1", "--force", "--seed", "5", *COMMON)
        self.assert_unchanged(p, "03.png")

    def test_resume_that_fails(self):
        # an image of the run's data is damaged since: resume fails while training
        data = tmp("keep_moved_data")
        shutil.copytree(tmp("data"), data)
        for name in os.listdir(os.path.join(data, "plain")):
            with open(os.path.join(tmp("data"), "plain", name), "r+b") as f:
                f.truncate(40)
        try:
            p = run("resume", "--output-dir", self.out, "--epochs", "2", "--lr", "0.01")
        finally:
            shutil.rmtree(tmp("data"))
            shutil.copytree(data, tmp("data"))
        self.assert_unchanged(p, ".png")


class ResumeOverridesTest(unittest.TestCase):
    def test_resume_lr_is_used(self):
        out = tmp("resume_lr")
        ok(self, run("--data", tmp("data"), "--output-dir", out, "--epochs", "1", *COMMON))
        ok(self, run("resume", "--output-dir", out, "--epochs", "2", "--lr", "0.01"))
        rows = log_rows(os.path.join(out, "train_log.csv"))
        self.assertEqual(len(rows), 2)
        self.assertAlmostEqual(float(rows[0]["lr"]), 0.05, places=6)
        self.assertAlmostEqual(float(rows[1]["lr"]), 0.01, places=6)
        with open(os.path.join(out, "config.json")) as f:
            self.assertEqual(json.load(f)["lr"], "0.01")

    def test_resume_lr_with_a_schedule_scales_the_new_base(self):
        out = tmp("resume_lr_step")
        ok(self, run("--data", tmp("data"), "--output-dir", out, "--epochs", "1", "--scheduler", "step",
                     "--step-size", "1", "--gamma", "0.5", *COMMON))
        ok(self, run("resume", "--output-dir", out, "--epochs", "2", "--lr", "0.02"))
        rows = log_rows(os.path.join(out, "train_log.csv"))
        self.assertAlmostEqual(float(rows[1]["lr"]), 0.01, places=6)  # 0.02 after one step of gamma 0.5


if __name__ == "__main__":
    if not NC_TRAIN:
        sys.exit("usage: test_nc_train.py NC_TRAIN")
    unittest.main(argv=sys.argv[:1], verbosity=2)
