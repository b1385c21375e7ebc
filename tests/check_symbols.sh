#!/usr/bin/env bash
# check_symbols.sh — the ABI guard: the dynamic symbols that libneurc.so exports must
# be exactly the committed list (one name a line, sorted) and all carry the public
# `nc_` prefix (internal `nc__` names must stay hidden).
#   usage: check_symbols.sh LIBRARY SYMBOLS_TXT
# When the public API changes on purpose, regenerate the list from the header:
#   grep -E '^\s*NC_API' include/neurc.h | sed -E 's/\(.*//' \
#     | grep -oE '[A-Za-z_][A-Za-z0-9_]*$' | LC_ALL=C sort -u > tests/symbols.txt
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 LIBRARY SYMBOLS_TXT" >&2
    exit 2
fi
lib=$1
expected=$2
[ -f "$lib" ] || { echo "check_symbols: no library at $lib" >&2; exit 1; }
[ -f "$expected" ] || { echo "check_symbols: no symbol list at $expected" >&2; exit 1; }
command -v nm >/dev/null || { echo "check_symbols: nm (binutils) is not installed" >&2; exit 1; }

export LC_ALL=C
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "ADDRESS TYPE NAME[@VERSION]": keep code and data symbols (not absolute ones such
# as version nodes), drop the linker's own markers, strip symbol versions.
nm -D --defined-only "$lib" >"$tmp/nm"
awk 'NF >= 3 && $2 != "A" && $2 != "a" { print $3 }' "$tmp/nm" |
    sed -e 's/@.*$//' |
    grep -Ev '^(_init|_fini|_edata|_end|__bss_start|__end__|__bss_end__|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$' |
    sort -u >"$tmp/actual"
grep -Ev '^[[:space:]]*(#|$)' "$expected" | sort -u >"$tmp/expected"

status=0
bad=$(grep -Ev '^nc_[a-z0-9]' "$tmp/actual" || true)
if [ -n "$bad" ]; then
    echo "check_symbols: exported symbols without the public nc_ prefix (or internal nc__):"
    printf '  %s\n' $bad
    status=1
fi
if ! diff -u "$tmp/expected" "$tmp/actual" >"$tmp/diff"; then
    echo "check_symbols: exported symbols of $lib differ from $expected"
    echo "  (- listed but not exported, + exported but not listed)"
    cat "$tmp/diff"
    status=1
fi
if [ $status -eq 0 ]; then
    echo "check_symbols: $(wc -l <"$tmp/actual") exported symbols match $expected"
fi
exit $status
