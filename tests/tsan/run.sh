#!/bin/sh
# tests/tsan/run.sh — the ThreadSanitizer gate for concurrent inference on one model
# (docs/reliability.md, Threads): builds the library and tests/test_concurrency.c with
# clang and -fsanitize=thread, then runs that test with one kernel thread (libgomp,
# OpenMP behind the ref kernels and oneDNN, is not instrumented: its own
# synchronisation would be reported as races). Any report fails the run (exit 66).
#   tests/tsan/run.sh [build-dir]     (default /tmp/neurc-tsan; reused when present)
# NC_CONCURRENCY_CALLS sets the forwards per thread (default here 200: TSan runs the
# code 5-15 times slower; the plain test does 1,000).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-/tmp/neurc-tsan}
cc=${CC:-clang}
if [ ! -f "$build/build.ninja" ]; then
    CC="$cc" meson setup "$build" "$src" -Db_sanitize=thread -Db_lundef=false --buildtype=debugoptimized \
        -Dexamples=false
fi
ninja -C "$build" tests/test_concurrency
export OMP_NUM_THREADS=1
export TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$src/tests/tsan/suppressions.txt"
export NC_CONCURRENCY_CALLS="${NC_CONCURRENCY_CALLS:-200}"
exec "$build/tests/test_concurrency"
