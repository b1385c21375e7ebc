#!/usr/bin/env bash
# check_abi.sh — the ABI gate beside the symbol list (check_symbols.sh): libabigail's
# abidiff compares libneurc.so with the committed baseline tests/abi/libneurc.abi
# (types from the debug info, so the build needs -g: meson's debug / debugoptimized).
#   usage: check_abi.sh LIBRARY BASELINE SUPPRESSIONS
# Fails when a public function or variable is removed or changed, or a public type
# (an options or stats struct, an enum) changes; added functions pass. Opaque handles
# are suppressed (tests/abi/suppressions.txt). After a deliberate change, such as an
# options struct growing at its end (struct_size versioning keeps that compatible),
# regenerate the baseline in the same commit, where review sees it:
#   abidw --no-corpus-path --no-show-locs build/lib/libneurc.so > tests/abi/libneurc.abi
# Exit 77 (skipped) without abidiff or without debug info.
set -uo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 LIBRARY BASELINE SUPPRESSIONS" >&2
    exit 2
fi
lib=$1 baseline=$2 supp=$3
command -v abidiff >/dev/null || { echo "check_abi: abidiff (abigail-tools) is not installed: skipped"; exit 77; }
sections=$(readelf -S "$lib" 2>/dev/null)
if [[ "$sections" != *.debug_info* ]]; then
    echo "check_abi: $lib has no debug info (build with -g): skipped"
    exit 77
fi
report=$(abidiff --suppressions "$supp" "$baseline" "$lib")
rc=$?
echo "$report"
# abidiff's status bits: 1 error, 2 usage error, 4 ABI change, 8 incompatible change
if (( rc & 3 )); then
    echo "check_abi: abidiff failed (status $rc)" >&2
    exit 1
fi
if (( rc & 8 )); then
    echo "check_abi: incompatible ABI change (see above)" >&2
    exit 1
fi
if echo "$report" | grep -Eq 'summary: [1-9][0-9]* Removed|[1-9][0-9]* Changed'; then
    echo "check_abi: public functions, variables or types changed (see above); if on purpose, regenerate $baseline" >&2
    exit 1
fi
echo "check_abi: no removed or changed public interface"
exit 0
