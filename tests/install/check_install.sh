#!/usr/bin/env bash
# check_install.sh — an installed neurc, used as a user would: `meson install` into a
# stage directory (DESTDIR), the Debian-style layout checked (header, pkg-config file,
# soname and its links, the Python package), then the README's C example and
# examples/embed.c compiled against the stage through pkg-config with
# PKG_CONFIG_SYSROOT_DIR, and run.
#   usage: check_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
fail() { echo "check_install: $*" >&2; exit 1; }

meson install -C "$build" --destdir "$stage" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions | python3 -c \
    'import json,sys; o={x["name"]: x["value"] for x in json.load(sys.stdin)}; print(o["prefix"]); print(o["libdir"])')
libdir=$(echo "$prefix" | sed -n 2p)
prefix=$(echo "$prefix" | sed -n 1p)
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac

# layout
[ -f "$stage$prefix/include/neurc.h" ] || fail "no $prefix/include/neurc.h"
[ -f "$stage$libdir/pkgconfig/neurc.pc" ] || fail "no $libdir/pkgconfig/neurc.pc"
real=$(readlink -f "$stage$libdir/libneurc.so")
[ "$(readlink "$stage$libdir/libneurc.so")" = libneurc.so.0 ] || fail "libneurc.so does not link to libneurc.so.0"
[ -f "$real" ] || fail "libneurc.so leads to no file"
soname=$(readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libneurc.so.0 ] || fail "soname is '$soname', not libneurc.so.0"
pkgdir=$(find "$stage" -path '*-packages/neurc/__init__.py' -printf '%h\n' | head -n 1)
[ -n "$pkgdir" ] || fail "the Python package neurc is not installed"
grep -q "$libdir" "$pkgdir/_install_config.py" || fail "_install_config.py does not name $libdir"
echo "layout: $prefix/include/neurc.h, $libdir/{libneurc.so -> $soname -> $(basename "$real"), pkgconfig/neurc.pc}, ${pkgdir#$stage}"

# compile against the stage through pkg-config, then run
export PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_LIBDIR=$stage$libdir/pkgconfig
flags=$(pkg-config --cflags --libs neurc)
case $flags in *"-I$stage"*) ;; *) fail "pkg-config --cflags does not point into the stage: $flags" ;; esac
work=$stage/work
mkdir -p "$work"
python3 - "$src/README.md" "$work/readme.c" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"```c\n(.*?)```", text, re.S)
if not blocks:
    sys.exit("no ```c block in README.md")
open(sys.argv[2], "w").write(blocks[0])
PY
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror -o "$work/readme" "$work/readme.c" $flags -lm
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror -o "$work/embed" "$src/examples/embed.c" $flags -lm
export LD_LIBRARY_PATH=$stage$libdir
(cd "$work" && OMP_NUM_THREADS=1 ./readme) || fail "the README's C example failed"
[ -s "$work/model.safetensors" ] || fail "the README's C example saved no model"
echo "README C example: built against the stage, ran, saved model.safetensors"
python3 - "$work/digit.png" <<'PY'
import struct, sys, zlib
rows = b"".join(b"\x00" + bytes((x * 9 + y * 5) % 256 for x in range(28)) for y in range(28))
chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data +
                            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
out=$(OMP_NUM_THREADS=1 "$work/embed" "$work/model.safetensors" "$work/digit.png") || fail "nc-embed failed: $out"
echo "$out" | grep -Eq '^[^ ]+ [01]\.[0-9]+$' || fail "embed printed '$out', not '<class> <probability>'"
echo "examples/embed.c: built against the stage, classified a PNG with that model: $out"
