#!/usr/bin/env bash
# quickstart_figures.sh — prints the figures README.md quotes for its first command:
# the nc-train command is taken from README.md itself, run into a fresh directory and
# timed; then the wall time, the test and validation accuracy and macro F1 from
# report.json, the backend, and the machine (CPU model, cores, bf16 / AMX / AVX-512
# features). About 10 minutes on 2 cores; not part of the test suite.
#   usage: tests/docs/quickstart_figures.sh [BUILD_DIR] [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} out=${2:-runs/quickstart-figures}
cmd=$(grep -o '\./build/examples/nc-train --data /usr/share/datasets/fashion-mnist[^`]*' README.md | head -n 1)
[ -n "$cmd" ] || { echo "quickstart_figures: no nc-train command in README.md" >&2; exit 1; }
cmd=${cmd/.\/build\//$build/}
cmd=${cmd/--output-dir runs\/fashion-mnist/--output-dir $out}
rm -rf "$out"
echo "command: $cmd"
start=$(date +%s)
$cmd --quiet
end=$(date +%s)
python3 - "$out/report.json" $((end - start)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ev = {e["split"]: e for e in r["evaluations"] if e["head"] == 0}
s = int(sys.argv[2])
print("time: %d min %d s" % (s // 60, s % 60))
print("test accuracy %.2f%%, validation %.2f%%, test macro F1 %.3f" % (
    100 * ev["test"]["top1"], 100 * ev["val"]["top1"], ev["test"]["f1_macro"]))
print("backend %s, precision %s, %d parameters" % (r["run"]["backend"], r["run"]["precision"], r["run"]["parameters"]))
PY
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
     "features: $(grep -o -m1 -wE 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "date: $(date -u +%Y-%m-%d)"
