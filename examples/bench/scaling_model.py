#!/usr/bin/env python3
"""scaling_model.py — data-parallel scaling on paper (docs/distributed.md, Scaling on
paper): for each built-in architecture, the bytes all-reduced per step (neurc reduces
its whole f32 gradient arena: parameters plus the batch-norm buffers' slots), the
25 MB buckets, and the expected efficiency of N ranks under the ring all-reduce cost
model t = 2 (N-1)/N * bytes / busbw + 2 (N-1) * latency, with the backward pass
(2/3 of a training step's FLOPs) hiding every bucket but the last one.

usage: scaling_model.py NC_BENCH [--tflops T] [--batch B]
  NC_BENCH  the nc-bench program (its --count gives each architecture's FLOPs)
  --tflops  sustained training FLOP/s per GPU, in TFLOP/s (an assumption; default 100)
  --batch   images per GPU per step (default 64)
Needs the neurc Python package (bindings/python) on PYTHONPATH.
"""
import argparse
import json
import subprocess
import tempfile

import neurc

ARCHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x8d", "vgg11", "vgg11_bn",
         "vgg16", "vgg16_bn"]
BUCKET = 25 << 20
LINKS = [  # name, bus bandwidth in bytes/s, latency per ring step in s (assumptions, see the doc)
    ("8 GPUs, NVLink (H100, 450 GB/s)", 8, 450e9, 5e-6),
    ("8 nodes, 100 Gb/s", 8, 100e9 / 8, 10e-6),
    ("8 nodes, 400 Gb/s", 8, 400e9 / 8, 10e-6),
]


def ring_seconds(nbytes, n, bw, lat):
    return 2 * (n - 1) / n * nbytes / bw + 2 * (n - 1) * lat


def arena_bytes(arch):
    with neurc.Model(arch, num_classes=1000, in_channels=3) as m:
        params = m.num_params
        floats = sum(t.numel for t in m.tensors() if not t.name.endswith("num_batches_tracked"))
    return params, 4 * floats


def train_flops(nc_bench, arch):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([nc_bench, "--count", "--arch", arch, "--json", f.name], capture_output=True, check=True)
        doc = json.load(open(f.name))
    return doc["results"][0]["train_flops_per_image"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nc_bench")
    ap.add_argument("--tflops", type=float, default=100.0)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    head = "| arch | parameters | MB reduced / step | buckets | step (ms) | backward (ms) |"
    head += "".join(" %s: all-reduce ms, efficiency |" % name for name, _, _, _ in LINKS)
    print(head)
    print("|" + "---|" * (6 + len(LINKS)))
    for arch in ARCHS:
        params, nbytes = arena_bytes(arch)
        step = train_flops(a.nc_bench, arch) * a.batch / (a.tflops * 1e12)
        backward = step * 2 / 3
        buckets = -(-nbytes // BUCKET)
        row = "| %s | %.1f M | %.1f | %d | %.1f | %.1f |" % (arch, params / 1e6, nbytes / 1e6, buckets, step * 1e3,
                                                              backward * 1e3)
        for _, n, bw, lat in LINKS:
            total = ring_seconds(nbytes, n, bw, lat)
            last = ring_seconds(nbytes - (buckets - 1) * BUCKET, n, bw, lat)  # the first layers' bucket
            # overlapped: the buckets before the last run under the backward pass; what
            # does not fit under it, and the last bucket, add to the step
            exposed = last + max(0.0, (total - last) - backward)
            row += " %.1f, %.0f%% |" % (total * 1e3, 100 * step / (step + exposed))
        print(row)


if __name__ == "__main__":
    main()
