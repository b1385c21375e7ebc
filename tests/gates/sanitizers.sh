#!/usr/bin/env bash
# sanitizers.sh — the ASan + UBSan gate: the whole test suite in a build with
# -Db_sanitize=address,undefined (gcc). Any sanitizer report fails it, even one in a
# test that passed: UBSan stops at the first report (halt_on_error), LeakSanitizer
# runs at every exit, and the test log is searched for reports as well.
#   usage: tests/gates/sanitizers.sh [BUILD_DIR]      (default build-sanitize)
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build-sanitize}
rm -rf "$dir"
meson setup "$dir" --buildtype=debugoptimized -Db_sanitize=address,undefined >/dev/null || exit 1
ninja -C "$dir" >/dev/null || exit 1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
rc=0
meson test -C "$dir" --print-errorlogs --timeout-multiplier 4 || rc=1
if grep -E 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer' "$dir/meson-logs/testlog.txt"; then
    echo "sanitizers: reports in $dir/meson-logs/testlog.txt (above)" >&2
    rc=1
fi
[ $rc -eq 0 ] && echo "sanitizers: whole suite clean under ASan + UBSan"
exit $rc
