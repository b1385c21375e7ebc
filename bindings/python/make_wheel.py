#!/usr/bin/env python3
"""make_wheel.py — builds the neurc wheel from this build's libneurc, offline.

usage: make_wheel.py OUT_WHEEL VERSION LIBRARY SONAME PACKAGE_FILE...

The wheel holds the pure-Python package `neurc` plus LIBRARY stored as
neurc/SONAME, which the package loads before looking anywhere else
(neurc/_lib.py). It is a plain zip with the metadata of PEP 427 / PEP 376, written
with the standard library only, so building it needs no `wheel`, setuptools or
network. The tag is py3-none-<platform>: any Python 3, no compiled extension, one
machine architecture (the library's). libneurc's own dependencies (oneDNN, libpng,
zlib, cJSON, libgomp) come from the system, as for the C library.
"""
import base64
import hashlib
import os
import sys
import zipfile

SUMMARY = "Train, evaluate and run CNN image classifiers through the neurc C library (ctypes)"


def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def dist_info(version, tag):
    metadata = (
        "Metadata-Version: 2.1\n"
        "Name: neurc\n"
        "Version: %s\n"
        "Summary: %s\n"
        "License: MIT\n"
        "Requires-Python: >=3.8\n"
        "Provides-Extra: numpy\n"
        "Requires-Dist: numpy; extra == \"numpy\"\n" % (version, SUMMARY)
    )
    wheel = "Wheel-Version: 1.0\nGenerator: neurc make_wheel.py\nRoot-Is-Purelib: false\nTag: %s\n" % tag
    entry_points = "[console_scripts]\nneurc = neurc.cli:main\n"
    return {"METADATA": metadata, "WHEEL": wheel, "entry_points.txt": entry_points}


def main(argv):
    if len(argv) < 6:
        sys.exit(__doc__)
    out, version, library, soname, sources = argv[1], argv[2], argv[3], argv[4], argv[5:]
    tag = os.path.basename(out)[:-len(".whl")].split("-", 2)[2]
    files = {}
    for path in sources:
        with open(path, "rb") as f:
            files["neurc/" + os.path.basename(path)] = f.read()
    with open(library, "rb") as f:
        files["neurc/" + soname] = f.read()
    info = "neurc-%s.dist-info/" % version
    for name, text in dist_info(version, tag).items():
        files[info + name] = text.encode()
    record = "".join("%s,%s,%d\n" % (name, digest(data), len(data)) for name, data in sorted(files.items()))
    record += info + "RECORD,,\n"
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(files.items()):
            mode = 0o755 if name.endswith(soname) else 0o644
            entry = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, data)
        z.writestr(zipfile.ZipInfo(info + "RECORD", date_time=(2020, 1, 1, 0, 0, 0)), record)
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv)
