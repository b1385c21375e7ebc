#!/usr/bin/env bash
# check_wheel.sh — the Python package as a lab installs it: a fresh virtual environment
# (Debian's python3 -m venv, pip from ensurepip), the wheel that `ninja -C build wheel`
# made installed with no index (offline), then `import neurc` from another directory
# with no NEURC_LIBRARY, PYTHONPATH or LD_LIBRARY_PATH, and a forward pass.
#   usage: check_wheel.sh PYTHON WHEEL
# Exit 77 (skipped) where PYTHON has no venv module (Debian: python3-venv).
set -euo pipefail
python=$1 wheel=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$python" -m venv "$tmp/venv" >"$tmp/venv.log" 2>&1; then
    cat "$tmp/venv.log"
    echo "check_wheel: $python -m venv is unavailable (Debian: apt-get install python3-venv): skipped"
    exit 77
fi
env -u NEURC_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH PIP_NO_INDEX=1 \
    "$tmp/venv/bin/pip" install --quiet --no-index --disable-pip-version-check "$wheel"
cd "$tmp"
env -u NEURC_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH OMP_NUM_THREADS=1 "$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import os, sys
import neurc
from neurc._lib import lib
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(lib.path)
assert where.startswith(venv), "libneurc loaded from %s, not from the wheel in %s" % (where, venv)
m = neurc.Model("simple_cnn", num_classes=3, in_channels=1)
x = [[[[0.25 * ((i + j + k) % 4) for j in range(8)] for i in range(8)]] for k in range(2)]  # (2, 1, 8, 8)
logits = m.forward(x)
assert len(logits) == 2 and all(len(row) == 3 for row in logits), logits
print("wheel: neurc imported from %s, libneurc from %s; forward gave %d x %d logits"
      % (os.path.dirname(neurc.__file__), where, len(logits), len(logits[0])))
PY
"$tmp/venv/bin/neurc" --help >/dev/null
echo "check_wheel: installed offline into a fresh venv, imported, ran"
