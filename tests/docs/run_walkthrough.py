#!/usr/bin/env python3
"""run_walkthrough.py — runs docs/python.md's Fashion-MNIST walkthrough as written.

usage: run_walkthrough.py [--short] DOCS_PYTHON_MD

The ```python cells between "## Walkthrough" and the next "## " heading are joined
into one script and run in a temporary directory. With --short (what the test suite
runs) two numbers are replaced, visibly, so it takes seconds: the training subset
(6,000 -> 600 images) and the epochs (3 -> 1). Without it, the walkthrough runs in
full and this prints the figures docs/python.md quotes: the time, the validation and
test accuracy, and the machine. Exit 77 (skipped) without numpy or the dataset.
"""
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

SHORT = [("x[:6000], y[:6000]", "x[:600], y[:600]"), ("epochs=3", "epochs=1")]
DATA = "/usr/share/datasets/fashion-mnist"


def cells(path):
    text = open(path, encoding="utf-8").read()
    start = text.index("## Walkthrough")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv):
    short = "--short" in argv
    args = [a for a in argv[1:] if a != "--short"]
    if len(args) != 1:
        sys.exit(__doc__)
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("numpy is not installed: skipped")
        return 77
    if not os.path.isdir(DATA):
        print(DATA + " is missing (Debian: dataset-fashion-mnist): skipped")
        return 77
    script = "\n".join(cells(args[0]))
    if short:
        for old, new in SHORT:
            if old not in script:
                sys.exit("the walkthrough no longer contains %r: update tests/docs/run_walkthrough.py" % old)
            script = script.replace(old, new)
    script = "import matplotlib\nmatplotlib.use('Agg')\n" + script if _has_matplotlib() else script
    with tempfile.TemporaryDirectory(prefix="nc_walkthrough_") as tmp:
        path = os.path.join(tmp, "walkthrough.py")
        open(path, "w").write(script)
        t0 = time.time()
        p = subprocess.run([sys.executable, path], cwd=tmp, capture_output=True, text=True)
        seconds = time.time() - t0
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        if p.returncode != 0:
            return p.returncode
        for name in ["fashion.safetensors", "test0.png", "test1.png", "test2.png"]:
            if not os.path.isfile(os.path.join(tmp, name)):
                sys.exit("the walkthrough did not write " + name)
    print("walkthrough%s: %.0f s on %s (%d cores, %s)" % (
        " (short)" if short else "", seconds, cpu_name(), os.cpu_count() or 0, platform.machine()))
    return 0


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv))
