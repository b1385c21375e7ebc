#!/usr/bin/env python3
"""test_dist_failure.py — a rank that dies or hangs ends the others with a clear error
in bounded time (docs/distributed.md, Failure), never a hang.

usage: test_dist_failure.py MPIRUN TEST_DIST NC_TRAIN

- test_dist hang / die (tests/test_dist.c): rank 1 stops taking part, or kills
  itself, after 2 training steps; rank 0 (timeout 3 s) must report NC_ERR_TIMEOUT
  naming the collective within the timeout, and then NC_ERR_STATE.
- nc-train --distributed --dist-timeout 4: rank 1 is SIGKILLed after rank 0 wrote
  last.safetensors; rank 0 must print the timeout error and exit non-zero within
  60 s, and the checkpoint must still load (a one-process `resume` continues it).
`mpirun --enable-recovery` keeps mpirun from killing rank 0 itself when rank 1
dies, so the test sees what the surviving rank does (mpirun's own exit status is
then 0 even after MPI_Abort with Open MPI 4.1, so it is not checked; without the
flag mpirun ends the whole job as soon as a process dies). Standard library only.
"""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_nc_train as base  # noqa: E402  (the image generator and the flags)

MPIRUN, TEST_DIST, NC_TRAIN = sys.argv[1:4] if len(sys.argv) > 3 else (None, None, None)
ENV = dict(os.environ, OMPI_MCA_btl="self,tcp", OMPI_MCA_btl_tcp_if_include="lo",
           OMPI_MCA_oob_tcp_if_include="lo", OMP_NUM_THREADS="1", ASAN_OPTIONS="detect_leaks=0")
LAUNCH = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "--enable-recovery", "-np", "2"]


def rank_pid(mpirun_pid, rank):
    """The pid of `rank` among mpirun's children (single node: mpirun forks them)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != mpirun_pid:
                continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if ("OMPI_COMM_WORLD_RANK=%d" % rank).encode() in env:
            return int(pid)
    return None


def mpirun_crashed(out, attempt):
    """True (with a note) when mpirun itself crashed in Open MPI's pmix logging
    before the surviving rank could report (see FailureTest.run_scenario)."""
    if "pmix_server_log" not in out:
        return False
    sys.stderr.write("note: mpirun crashed in Open MPI's pmix logging (attempt %d); again\n" % (attempt + 1))
    return True


class FailureTest(unittest.TestCase):
    def run_scenario(self, mode):
        """One mpirun of test_dist MODE: (seconds, output). Open MPI 4.1's mpirun
        itself sometimes segfaults while it logs the death of a rank under
        --enable-recovery (orte_rml_oob_send_buffer_nb in pmix_server_log, seen
        once in a few dozen runs); then rank 0 never reports, through no fault of
        ours, and the run is repeated (at most twice more) with a note."""
        for attempt in range(3):
            t0 = time.monotonic()
            p = subprocess.run(LAUNCH + [TEST_DIST, mode], capture_output=True, text=True, timeout=60, env=ENV)
            took, out = time.monotonic() - t0, p.stdout + p.stderr
            if "rank 0: step after the other rank stopped" in out or not mpirun_crashed(out, attempt):
                break
        return took, out

    def scenario(self, mode):
        took, out = self.run_scenario(mode)
        m = re.search(r"rank 0: step after the other rank stopped: .*\((NC_ERR_\w+)\) after ([\d.]+) s: (.*)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.group(1), "NC_ERR_TIMEOUT", out)
        self.assertLessEqual(float(m.group(2)), 3.0 + 5.0)  # the 3 s timeout, a loaded machine
        self.assertRegex(m.group(3), r"MPI_I\w+ \(.*\) timed out on rank 0 of 2 after 3 s")
        self.assertIn("rank 0: then nc_comm_barrier: NC_ERR_STATE", out)
        self.assertLess(took, 60.0)

    def test_a_hanging_rank_times_out(self):
        self.scenario("hang")

    def test_a_killed_rank_times_out(self):
        self.scenario("die")

    def test_nc_train_rank_killed_mid_training(self):
        for attempt in range(3):  # mpirun's own crash (see run_scenario): again
            if self.nc_train_rank_killed(attempt) or attempt == 2:
                break

    def nc_train_rank_killed(self, attempt):
        """One run; False when mpirun itself crashed before rank 0 could report."""
        base.setUpModule()
        try:
            tmp = base.TMP.name
            out = os.path.join(tmp, "run")
            last = os.path.join(out, "last.safetensors")
            p = subprocess.Popen(LAUNCH + [NC_TRAIN, "--distributed", "--dist-timeout", "4", "--data",
                                           os.path.join(tmp, "data"), "--output-dir", out, "--epochs", "500",
                                           *base.COMMON], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=ENV)
            deadline = time.monotonic() + 120
            while not os.path.exists(last) and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.2)
            self.assertTrue(os.path.exists(last), "no checkpoint written")
            victim = rank_pid(p.pid, 1)
            self.assertIsNotNone(victim)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            try:
                stdout, stderr = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                self.fail("the surviving rank did not end within 60 s of the kill")
            took = time.monotonic() - killed
            if "timed out" not in stderr and mpirun_crashed(stderr + stdout, attempt):
                return False
            self.assertRegex(stderr, r"nc-train: .*: MPI_I\w+ \(.*\) timed out on rank 0 of 2 after 4 s", stderr)
            self.assertLess(took, 60.0)
            print("\nrank 1 killed: rank 0 ended after %.1f s with: %s" %
                  (took, [l for l in stderr.splitlines() if "timed out" in l][0]))
            # the checkpoint rank 0 wrote before is intact: one process resumes from it
            with open(os.path.join(out, "train_log.csv")) as f:
                done = len(f.read().strip().splitlines()) - 1
            r = subprocess.run([NC_TRAIN, "resume", "--output-dir", out, "--epochs", str(done + 1)],
                               capture_output=True, text=True, timeout=120, env=ENV)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            return True
        finally:
            base.tearDownModule()


if __name__ == "__main__":
    if not NC_TRAIN:
        sys.exit("usage: test_dist_failure.py MPIRUN TEST_DIST NC_TRAIN")
    unittest.main(argv=sys.argv[:1], verbosity=2)
