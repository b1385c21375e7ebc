#!/usr/bin/env python3
"""test_nc_train_dist.py — `mpirun -np 2 nc-train --distributed` end to end.

usage: test_nc_train_dist.py MPIRUN NC_TRAIN

On the generated PNG folder of test_nc_train.py: 2 ranks train 2 epochs (rank 0
alone writes files and evaluates), the run is then resumed by one process (another
number of ranks) to epoch 3, and a rank that fails makes the job end with an error
instead of hanging. Standard library only.
"""
import csv
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_nc_train as base  # noqa: E402  (the image generator and the flags)

MPIRUN, NC_TRAIN = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else (None, None)
# Under ASan (tests/gates/sanitizers.sh) no leak check in the MPI processes: Open MPI
# keeps allocations of components it unloads at exit, which LeakSanitizer can neither
# attribute nor suppress; the library's own code is leak-checked by the other tests.
ENV = dict(os.environ, OMPI_MCA_btl="self,tcp", OMPI_MCA_btl_tcp_if_include="lo",
           OMPI_MCA_oob_tcp_if_include="lo", OMP_NUM_THREADS="1", ASAN_OPTIONS="detect_leaks=0")


def mpirun(n, *args, timeout=240):
    return subprocess.run([MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", str(n), NC_TRAIN, *args],
                          capture_output=True, text=True, timeout=timeout, env=ENV)


class DistributedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base.setUpModule()  # test_nc_train.py's PNG folder, in its own temporary directory
        cls.tmp = base.TMP

    @classmethod
    def tearDownClass(cls):
        base.tearDownModule()

    def test_two_ranks_then_resume_on_one(self):
        out = os.path.join(self.tmp.name, "run")
        p = mpirun(2, "--distributed", "--data", os.path.join(self.tmp.name, "data"), "--output-dir", out,
                   "--epochs", "2", *base.COMMON)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count("report written to"), 1)  # rank 0 alone reports
        for name in ["last.safetensors", "best.safetensors", "report.json", "train_log.csv", "split.csv",
                     "config.json"]:
            self.assertTrue(os.path.isfile(os.path.join(out, name)), name)
        with open(os.path.join(out, "train_log.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["epoch"] for r in rows], ["1", "2"])
        with open(os.path.join(out, "config.json")) as f:
            self.assertNotIn("distributed", json.load(f))  # how a run is launched is not saved
        # resume in one process: another number of ranks
        p = subprocess.run([NC_TRAIN, "resume", "--output-dir", out, "--epochs", "3"], capture_output=True,
                           text=True, timeout=240, env=ENV)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(os.path.join(out, "train_log.csv"), newline="") as f:
            self.assertEqual(len(list(csv.DictReader(f))), 3)

    def test_sync_bn_and_timeout_options(self):
        # synchronised batch norm over the 2 ranks trains; a bad timeout is refused
        out = os.path.join(self.tmp.name, "syncbn")
        p = mpirun(2, "--distributed", "--sync-bn", "--dist-timeout", "60", "--data",
                   os.path.join(self.tmp.name, "data"), "--output-dir", out, "--epochs", "1", *base.COMMON)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count("report written to"), 1)
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg.get("sync-bn"), "1")  # part of the method; the timeout is not saved
        self.assertNotIn("dist-timeout", cfg)
        p = mpirun(2, "--distributed", "--dist-timeout", "0", "--data", os.path.join(self.tmp.name, "data"),
                   "--output-dir", os.path.join(self.tmp.name, "badtimeout"), "--epochs", "1", *base.COMMON)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--dist-timeout", p.stderr)

    def test_a_failing_rank_ends_the_job(self):
        # the global batch must divide among the ranks: every rank fails, none hangs
        p = mpirun(2, "--distributed", "--data", os.path.join(self.tmp.name, "data"), "--output-dir",
                   os.path.join(self.tmp.name, "odd"), "--epochs", "1",
                   *[a if a != "8" else "7" for a in base.COMMON])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("must divide among the 2 ranks", p.stderr)


if __name__ == "__main__":
    if not NC_TRAIN:
        sys.exit("usage: test_nc_train_dist.py MPIRUN NC_TRAIN")
    unittest.main(argv=sys.argv[:1], verbosity=2)
