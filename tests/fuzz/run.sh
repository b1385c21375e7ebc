#!/usr/bin/env bash
# tests/fuzz/run.sh — configures the fuzz build (clang-14, libFuzzer, ASan + UBSan),
# builds the targets and runs each for a bounded time; fails when any target finds a
# crash, a leak, undefined behaviour, a timeout or runs out of memory.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, every target)
#   tests/fuzz/run.sh --seeds                            rewrite tests/fuzz/corpus/
#
# Environment: NC_FUZZ_BUILD (build directory; default ${TMPDIR:-/tmp}/neurc-fuzz),
# CC (default clang-14), NC_FUZZ_JOBS (ninja -j; default 2).
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>/) plus the
# inputs earlier runs in the same build directory found (<build>/fuzz-work/<target>/);
# a failing input is written to <build>/fuzz-artifacts/<target>/ — fix the bug, then
# commit the input under tests/fuzz/regress/<target>/ so that the test suite
# (fuzz_replay_<target>) replays it on every build. The last line of each target's log
# (<build>/fuzz-logs/<target>.log) is summarised: runs, coverage (cov, ft), corpus size.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${NC_FUZZ_BUILD:-${TMPDIR:-/tmp}/neurc-fuzz}
all_targets=(png model_load weights checkpoint idx csv config)

configure_and_build() {
    if [ ! -f "$build/build.ninja" ]; then
        CC=${CC:-clang-14} meson setup "$build" "$src" --buildtype=debugoptimized \
            -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
            -Donednn=disabled -Dtests=false -Dexamples=false >"$build.setup.log" 2>&1 ||
            { cat "$build.setup.log"; exit 1; }
    fi
    local t names=()
    for t in "$@"; do names+=("tests/fuzz/fuzz_$t"); done
    ninja -C "$build" -j"${NC_FUZZ_JOBS:-2}" "${names[@]}" tests/fuzz/fuzz_make_corpus >/dev/null
}

if [ "${1:-}" = "--seeds" ]; then
    configure_and_build
    rm -rf "$src/tests/fuzz/corpus"
    mkdir -p "$src/tests/fuzz/corpus"
    "$build/tests/fuzz/fuzz_make_corpus" "$src/tests/fuzz/corpus"
    du -sh "$src/tests/fuzz/corpus"/*
    exit 0
fi

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
configure_and_build "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
    work="$build/fuzz-work/$t" art="$build/fuzz-artifacts/$t" log="$build/fuzz-logs/$t.log"
    tmp="$build/fuzz-tmp/$t"
    mkdir -p "$work" "$art" "$(dirname "$log")" "$tmp"
    dict=()
    case $t in
        model_load | weights | checkpoint) dict=(-dict="$src/tests/fuzz/safetensors.dict") ;;
        config) dict=(-dict="$src/tests/fuzz/json.dict") ;;
    esac
    seeds=("$src/tests/fuzz/corpus/$t")
    [ -d "$src/tests/fuzz/regress/$t" ] && seeds+=("$src/tests/fuzz/regress/$t")
    # -close_fd_mask=2: the targets' own stderr (nc-train's usage messages) is dropped;
    # libFuzzer's and the sanitizers' reports still reach the log.
    rc=0
    TMPDIR=$tmp "$build/tests/fuzz/fuzz_$t" "$work" "${seeds[@]}" "${dict[@]}" \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 -close_fd_mask=2 \
        -artifact_prefix="$art/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -E 's/ +(exec|rss).*//')
    echo "fuzz_$t: ${secs}s, rc $rc: $stats"
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 8 || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing FAILED: ${failed[*]} (logs in $build/fuzz-logs/, inputs in $build/fuzz-artifacts/)"
    exit 1
fi
echo "fuzzing OK: ${targets[*]}"
