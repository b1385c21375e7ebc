#!/usr/bin/env python3
"""test_nc_train_multilabel.py — nc-train --loss bce (CheXNet-style multi-label) end to end.

usage: test_nc_train_multilabel.py NC_TRAIN NC_PREDICT

Writes 48 gray 16x16 PNGs, each with any of three findings (horizontal stripes, vertical
stripes, a bright corner), and a manifest with one 0/1 column per finding, as NIH
ChestX-ray14 users write theirs. Trains a tiny simple_cnn with sigmoid outputs and a
weighted BCE (--pos-weight auto) and checks: the per-label AUROC / precision / recall /
F1 of report.json and labels_<split>.csv, the mean AUROC (against an independent
Mann-Whitney count over nc-predict's probabilities), best-model selection by the mean
AUROC, --pos-weight auto = negatives / positives of the training split, the model's
"user.output" = "sigmoid" metadata, nc-predict's sigmoid columns and thresholds, k-fold,
evaluate, and that bad labels or flags fail clearly. Standard library only.
"""
import csv
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
from test_nc_train import png_gray  # noqa: E402 (the 8-bit gray PNG writer beside this file)

NC_TRAIN = sys.argv[1] if len(sys.argv) > 1 else None
NC_PREDICT = sys.argv[2] if len(sys.argv) > 2 else None
LABELS = ["Effusion", "Nodule", "Cardiomegaly"]  # horizontal stripes, vertical stripes, bright corner
N, SIZE = 48, 16
TMP = None

COMMON = ["--model", "simple_cnn", "--width", "4", "--threads", "1", "--workers", "0", "--batch-size", "8",
          "--val-split", "0.25", "--test-split", "0.25", "--seed", "5", "--lr", "0.05", "--log-every", "2",
          "--loss", "bce", "--label-columns", ",".join(LABELS)]


def findings(i):
    """Sample i's 0/1 labels: every combination, six times over, a few shuffled."""
    k = (i * 5 + i // 8) % 8
    return [k & 1, (k >> 1) & 1, (k >> 2) & 1]


def image(i, y3):
    rows = []
    for y in range(SIZE):
        row = []
        for x in range(SIZE):
            v = 60 + (x * 7 + y * 13 + i * 29) % 30
            if y3[0] and (y + i) % 4 < 2:
                v += 70
            if y3[1] and (x + i) % 4 < 2:
                v += 70
            if y3[2] and x < 6 and y < 6:
                v += 90
            row.append(min(255, v))
        rows.append(row)
    return rows


def write_manifest(path, rows, header=("image",) + tuple(LABELS)):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def setUpModule():
    global TMP
    TMP = tempfile.TemporaryDirectory(prefix="nc_multilabel_")
    os.makedirs(os.path.join(TMP.name, "img"))
    rows = []
    for i in range(N):
        y3 = findings(i)
        png_gray(os.path.join(TMP.name, "img", "%02d.png" % i), image(i, y3))
        rows.append(["img/%02d.png" % i] + y3)
    write_manifest(tmp("cxr.csv"), rows)


def tearDownModule():
    TMP.cleanup()


def tmp(*parts):
    return os.path.join(TMP.name, *parts)


def run(prog, *args, timeout=120):
    p = subprocess.run([prog, *args], capture_output=True, text=True, timeout=timeout)
    for marker in ("Sanitizer", "runtime error:"):
        if marker in p.stderr:
            raise AssertionError("%s %s:\n%s" % (prog, " ".join(args), p.stderr))
    return p


def ok(test, p):
    test.assertEqual(p.returncode, 0, "stdout:\n%s\nstderr:\n%s" % (p.stdout, p.stderr))


def auc_pairs(scores, truth):
    """ROC-AUC by definition: P(positive outscores negative), ties 1/2; NaN if undefined.
    Also the number of tied (positive, negative) pairs."""
    pos = [s for s, t in zip(scores, truth) if t]
    neg = [s for s, t in zip(scores, truth) if not t]
    if not pos or not neg:
        return math.nan, 0
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    ties = sum(1 for p in pos for q in neg if p == q)
    return wins / (len(pos) * len(neg)), ties / (len(pos) * len(neg))


def safetensors_metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def split_rows(out):
    with open(os.path.join(out, "split.csv"), newline="") as f:
        return list(csv.DictReader(f))


class MultilabelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tmp("run")
        cls.p = run(NC_TRAIN, "--data", tmp("cxr.csv"), "--output-dir", cls.out, "--epochs", "3",
                    "--pos-weight", "auto", *COMMON)

    def test_1_train_reports_per_label_metrics(self):
        ok(self, self.p)
        self.assertIn("AUROC", self.p.stdout)
        with open(os.path.join(self.out, "report.json")) as f:
            run_facts = json.load(f)["run"]
        self.assertEqual(run_facts["loss"], "bce_with_logits (multi-label, sigmoid)")
        for split in ("val", "test"):
            with open(os.path.join(self.out, "labels_%s.csv" % split), newline="") as f:
                rows = list(csv.DictReader(f))
            self.assertEqual([r["label"] for r in rows], LABELS + ["mean"])
            aucs = [float(r["auroc"]) for r in rows[:3] if r["auroc"]]
            self.assertAlmostEqual(float(rows[3]["auroc"]), sum(aucs) / len(aucs), places=12)
            self.assertAlmostEqual(run_facts["%s.mean_auroc" % split], sum(aucs) / len(aucs), places=12)
            for r in rows[:3]:
                tp, fp, fn = int(r["tp"]), int(r["fp"]), int(r["fn"])
                self.assertEqual(int(r["positives"]), tp + fn)
                prec = tp / (tp + fp) if tp + fp else 0.0
                rec = tp / (tp + fn) if tp + fn else 0.0
                f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
                self.assertAlmostEqual(float(r["precision"]), prec, places=12)
                self.assertAlmostEqual(float(r["recall"]), rec, places=12)
                self.assertAlmostEqual(float(r["f1"]), f1, places=12)
                self.assertAlmostEqual(run_facts["%s.f1.%s" % (split, r["label"])], f1, places=12)
                if r["auroc"]:
                    self.assertAlmostEqual(run_facts["%s.auroc.%s" % (split, r["label"])], float(r["auroc"]),
                                           places=12)
        self.assertIn("test: per label", self.p.stdout)

    def test_2_best_model_is_chosen_by_mean_auroc(self):
        ok(self, self.p)
        epochs = re.findall(r"^epoch (\d+)/3 .* AUROC ([0-9.na]+)(.*)$", self.p.stdout, re.M)
        self.assertEqual(len(epochs), 3, self.p.stdout)
        best = None
        for _, auc, rest in epochs:
            auc = float(auc)
            improved = not math.isnan(auc) and (best is None or auc > best)
            self.assertEqual("*best" in rest, improved, self.p.stdout)
            if improved:
                best = auc

    def test_3_pos_weight_auto_is_negatives_over_positives(self):
        ok(self, self.p)
        train = [int(r["index"]) for r in split_rows(self.out) if r["split"] == "train"]
        want = []
        for k in range(3):
            pos = sum(findings(i)[k] for i in train)
            want.append((len(train) - pos) / pos if pos else 1.0)
        with open(os.path.join(self.out, "report.json")) as f:
            got = [float(v) for v in json.load(f)["run"]["pos_weight"].split(",")]
        for g, w in zip(got, want):
            self.assertAlmostEqual(g, w, delta=1e-5 * max(1.0, w))

    def test_4_model_records_sigmoid_outputs(self):
        ok(self, self.p)
        meta = safetensors_metadata(os.path.join(self.out, "best.safetensors"))
        self.assertEqual(meta.get("user.output"), "sigmoid", meta)

    def test_5_nc_predict_writes_sigmoid_probabilities(self):
        ok(self, self.p)
        model = os.path.join(self.out, "best.safetensors")
        test_rows = [r for r in split_rows(self.out) if r["split"] == "test"]
        paths = [r["path"] for r in test_rows]
        p = run(NC_PREDICT, "--checkpoint", model, "--threads", "1", *paths)
        ok(self, p)
        rows = list(csv.DictReader(p.stdout.splitlines()))
        self.assertEqual(list(rows[0].keys()), ["path", "labels"] + ["p_" + n for n in LABELS])
        for r in rows:
            probs = [float(r["p_" + n]) for n in LABELS]
            self.assertTrue(all(0.0 <= v <= 1.0 for v in probs), r)
            listed = r["labels"].split("|") if r["labels"] else []
            for n, v in zip(LABELS, probs):  # %.6g: a printed 0.5 may be just below it
                if abs(v - 0.5) > 1e-6:
                    self.assertEqual(n in listed, v >= 0.5, r)
        # the mean AUROC over nc-predict's probabilities = nc-train's test number
        with open(os.path.join(self.out, "labels_test.csv"), newline="") as f:
            table = {r["label"]: r for r in csv.DictReader(f)}
        for k, name in enumerate(LABELS):
            truth = [findings(int(r["index"]))[k] for r in test_rows]
            auc, ties = auc_pairs([float(r["p_" + name]) for r in rows], truth)
            if math.isnan(auc):
                self.assertEqual(table[name]["auroc"], "")
            else:  # printed probabilities (%.6g) may tie where the logits do not
                self.assertLessEqual(abs(auc - float(table[name]["auroc"])), 0.5 * ties + 1e-9, name)
        every = run(NC_PREDICT, "--checkpoint", model, "--threads", "1", "--threshold=0", paths[0])
        ok(self, every)
        self.assertEqual(list(csv.DictReader(every.stdout.splitlines()))[0]["labels"], "|".join(LABELS))
        none = run(NC_PREDICT, "--checkpoint", model, "--threads", "1", "--threshold=1", paths[0])
        ok(self, none)
        self.assertEqual(list(csv.DictReader(none.stdout.splitlines()))[0]["labels"], "")
        topk = run(NC_PREDICT, "--checkpoint", model, "--top-k", "2", paths[0])
        self.assertEqual(topk.returncode, 2)
        self.assertIn("multi-label (sigmoid)", topk.stderr)

    def test_5b_tta_and_output_file(self):
        ok(self, self.p)
        model = os.path.join(self.out, "best.safetensors")
        path = [r["path"] for r in split_rows(self.out)][0]
        plain = run(NC_PREDICT, "--checkpoint", model, "--threads", "1", path)
        tta = run(NC_PREDICT, "--checkpoint", model, "--threads", "1", "--tta", "flip", "--output", tmp("tta.csv"),
                  path)
        ok(self, plain)
        ok(self, tta)
        with open(tmp("tta.csv"), newline="") as f:
            row = list(csv.DictReader(f))[0]
        self.assertEqual(list(row.keys()), ["path", "labels"] + ["p_" + n for n in LABELS])
        self.assertTrue(all(0.0 <= float(row["p_" + n]) <= 1.0 for n in LABELS))

    def test_6_evaluate_writes_the_tables_again(self):
        ok(self, self.p)
        e = run(NC_TRAIN, "evaluate", "--output-dir", self.out, "--threads", "1", "--workers", "0")
        ok(self, e)
        with open(os.path.join(self.out, "labels_val.csv")) as a, \
                open(os.path.join(self.out, "evaluate", "labels_val.csv")) as b:
            self.assertEqual(a.read(), b.read())


class MultilabelOptionsTest(unittest.TestCase):
    def test_kfold_and_explicit_pos_weight(self):
        out = tmp("folds")
        p = run(NC_TRAIN, "--data", tmp("cxr.csv"), "--output-dir", out, "--epochs", "1", "--folds", "2",
                "--pos-weight", "2", *COMMON)
        ok(self, p)
        self.assertIn("val_AUROC", p.stdout)
        with open(os.path.join(out, "folds.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["fold"] for r in rows], ["0", "1", "mean", "std"])
        self.assertIn("val_auroc", rows[0])
        with open(os.path.join(out, "fold-0", "report.json")) as f:
            self.assertEqual(json.load(f)["run"]["pos_weight"], "2,2,2")

    def bad_manifest(self, name, column, values):
        rows = []
        for i in range(N):
            y3 = findings(i)
            y3[1] = values(i, y3[1])
            rows.append(["img/%02d.png" % i] + y3)
        write_manifest(tmp(name), rows, ("image", LABELS[0], column, LABELS[2]))
        return tmp(name)

    def expect_fail(self, code, needle, *args):
        p = run(NC_TRAIN, "--output-dir", tmp("bad"), "--force", "--epochs", "1", *COMMON, *args)
        self.assertEqual(p.returncode, code, p.stdout + p.stderr)
        self.assertIn(needle, p.stderr)
        self.assertFalse(os.path.exists(tmp("bad", "config.json")))
        return p

    def test_a_label_of_2_is_refused(self):
        data = self.bad_manifest("two.csv", LABELS[1], lambda i, v: 2 if i == 7 else v)
        p = self.expect_fail(1, "column 'Nodule' holds '2' (the row of ", "--data", data)
        self.assertIn("07.png", p.stderr)

    def test_a_non_numeric_label_is_refused(self):
        data = self.bad_manifest("yes.csv", LABELS[1], lambda i, v: "yes" if v else "0")
        self.expect_fail(1, "column 'Nodule' holds 'yes'", "--data", data)

    def test_a_missing_column_is_refused(self):
        data = self.bad_manifest("renamed.csv", "Mass", lambda i, v: v)
        self.expect_fail(1, "Nodule", "--data", data)

    def test_bad_flags(self):
        self.expect_fail(2, "--pos-weight", "--data", tmp("cxr.csv"), "--pos-weight", "x")
        self.expect_fail(1, "--pos-weight gives 2 weights; the data has 3 label columns", "--data", tmp("cxr.csv"),
                         "--pos-weight", "1,2")
        self.expect_fail(2, "needs --loss bce", "--data", tmp("cxr.csv"), "--loss", "ce", "--pos-weight", "auto")
        self.expect_fail(2, "--class-weights", "--data", tmp("cxr.csv"), "--class-weights", "balanced")
        self.expect_fail(2, "--threshold-class", "--data", tmp("cxr.csv"), "--threshold-class", "1")
        self.expect_fail(2, "val_auc (mean per-label AUROC) needs --loss bce", "--data", tmp("cxr.csv"), "--loss",
                         "ce", "--monitor", "val_auc")
        self.expect_fail(1, "is not a .csv file", "--data", tmp("img"))

    def test_an_undefined_validation_auroc_is_refused(self):
        write_manifest(tmp("val_zero.csv"), [["img/00.png", 0, 0, 0], ["img/01.png", 0, 0, 0]])
        self.expect_fail(1, "no label has both positive and negative images among the 2 validation images",
                         "--data", tmp("cxr.csv"), "--val-data", tmp("val_zero.csv"))


if __name__ == "__main__":
    if not NC_TRAIN or not NC_PREDICT:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    unittest.main(argv=sys.argv[:1], verbosity=2)
