#!/usr/bin/env bash
# check_alloc_imports.sh — every host allocation of libneurc.so goes through the
# context's allocator hooks (docs/reliability.md, "Memory and allocation failures"):
# the library may import no C allocator but the default hooks' posix_memalign/free,
# no cJSON function that allocates (cJSON's hooks are process-wide; lib/core/json.c
# parses and prints instead), no gz* file API (gzopen mallocs), and libpng's structs
# only through the *_2 creators that take our memory callbacks.
#   usage: check_alloc_imports.sh LIBRARY
set -euo pipefail
lib=${1:?usage: $0 LIBRARY}
[ -f "$lib" ] || { echo "check_alloc_imports: no library at $lib" >&2; exit 1; }
command -v nm >/dev/null || { echo "check_alloc_imports: nm (binutils) is not installed" >&2; exit 1; }
export LC_ALL=C

imports=$(nm -D --undefined-only "$lib" | awk '{ print $NF }' | sed -e 's/@.*$//' | sort -u)
bad=0
for s in $imports; do
    case $s in
        # the default hooks (lib/core/context.c), nothing else of the C allocator
        posix_memalign | free) ;;
        # documented exceptions (docs/reliability.md): the C library's own state for a
        # directory listing (folder datasets), and qsort's temporary merge buffer
        opendir | fdopendir | qsort) ;;
        malloc | calloc | realloc | reallocarray | aligned_alloc | memalign | valloc | pvalloc | \
        strdup | strndup | asprintf | vasprintf | getline | getdelim | open_memstream | realpath | \
        scandir | glob | tempnam | fopen | fopen64 | fdopen | freopen | tmpfile | \
        _Znwm | _Znam)
            echo "check_alloc_imports: $lib imports $s, which allocates outside the hooks" >&2
            bad=1 ;;
        # cJSON: only its accessors, which never allocate
        cJSON_GetArrayItem | cJSON_GetArraySize | cJSON_GetObjectItemCaseSensitive | cJSON_Is*) ;;
        cJSON_*)
            echo "check_alloc_imports: $lib imports $s (cJSON allocates through process-wide hooks)" >&2
            bad=1 ;;
        gz*)
            echo "check_alloc_imports: $lib imports $s (zlib's gz* file API mallocs; use a z_stream)" >&2
            bad=1 ;;
        # protobuf-c (ONNX export): sizing and packing into our buffer only; the generated
        # unpack/free wrappers, which allocate, are dropped at link time (lib/io/meson.build)
        protobuf_c_message_get_packed_size | protobuf_c_message_pack) ;;
        protobuf_c_*)
            echo "check_alloc_imports: $lib imports $s (protobuf-c may allocate outside the hooks)" >&2
            bad=1 ;;
        png_create_read_struct | png_create_write_struct)
            echo "check_alloc_imports: $lib imports $s (use the _2 form with memory callbacks)" >&2
            bad=1 ;;
    esac
done
[ $bad -eq 0 ] && echo "check_alloc_imports: OK ($(echo "$imports" | wc -l) imports checked)"
exit $bad
