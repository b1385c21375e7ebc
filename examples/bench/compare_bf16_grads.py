#!/usr/bin/env python3
"""How close are bf16 gradients to fp32's? neurc's bf16 policy against PyTorch autocast.

One training step of a ResNet on one batch, from the same weights: every parameter's
gradient under `precision="bf16"` (per backend) is compared with the same backend's
fp32 gradient, and torch.autocast("cpu", bfloat16)'s with torch's fp32 gradient. The
table gives ||g_bf16 - g_fp32|| / ||g_fp32|| per parameter and the geometric mean.
bf16 has 8 significant bits, so errors of several percent are normal; what matters
is that ours are no larger than autocast's. tests/python/test_torch.py uses this
module. Needs numpy, torch and torchvision (Debian's /usr/bin/python3).

  /usr/bin/python3 examples/bench/compare_bf16_grads.py --weights runs/x/best.safetensors
"""
import argparse
import gzip
import math
import os
import sys

import numpy as np
import torch
import torchvision

import neurc

LR = 1024.0  # SGD, no momentum: the gradient is (w0 - w1) / LR, exact to ~1e-7 relative


def torch_net(arch, weights):
    """torchvision's `arch` with neurc's small-image stem when conv1 is 3x3, loaded with
    `weights` (name -> array), in training mode."""
    w = weights["conv1.weight"]
    net = getattr(torchvision.models, arch)(num_classes=weights["fc.weight"].shape[0])
    if w.shape[-1] == 3:
        net.conv1 = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, 1, 1, bias=False)
        net.maxpool = torch.nn.Identity()
    elif w.shape[1] != 3:
        net.conv1 = torch.nn.Conv2d(w.shape[1], w.shape[0], 7, 2, 3, bias=False)
    shapes = net.state_dict()
    net.load_state_dict({k: torch.tensor(np.asarray(v, np.float32)).reshape(shapes[k].shape)
                         for k, v in weights.items()})
    net.train()
    return net


def torch_grads(arch, weights, x, y, autocast):
    """The parameters' gradients of the mean cross-entropy of torch_net(arch, weights)."""
    net = torch_net(arch, weights)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = net(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(out.float(), torch.from_numpy(y.astype(np.int64))).backward()
    return {k: p.grad.double().numpy() for k, p in net.named_parameters()}


def neurc_grads(make_model, backend, precision, x, y, shapes, threads=1, conv_algorithm="auto"):
    """One SGD step of make_model(context) on (x, y): name -> gradient (float64)."""
    ctx = neurc.Context(backend=backend, precision=precision, threads=threads, conv_algorithm=conv_algorithm)
    try:
        m = make_model(ctx)
        w0 = {k: np.array(m.get_tensor(k), np.float64) for k in shapes}
        neurc.Trainer(m, lr=LR, momentum=0.0).step(x, y)
        return {k: ((w0[k] - np.array(m.get_tensor(k), np.float64)) / LR).reshape(s) for k, s in shapes.items()}
    finally:
        ctx.close()


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30))


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(max(v, 1e-12)) for v in values) / len(values))


def compare(make_model, arch, x, y, backends, threads=1, conv_algorithm="auto"):
    """{column: {parameter: relative error}}: "<backend> fp32~torch" (our fp32 against
    torch's), "<backend> bf16" (ours against our fp32), "autocast" (against torch fp32).
    A backend without bf16 kernels on this CPU gets no bf16 column."""
    ctx = neurc.Context(backend="ref", threads=threads)
    try:
        m = make_model(ctx)
        weights = {k: np.array(v) for k, v in m.state_dict().items()}
    finally:
        ctx.close()
    t32 = torch_grads(arch, weights, x, y, False)
    tbf = torch_grads(arch, weights, x, y, True)
    shapes = {k: g.shape for k, g in t32.items()}
    cols = {"autocast": {k: rel(tbf[k], t32[k]) for k in shapes}}
    for b in backends:
        o32 = neurc_grads(make_model, b, "fp32", x, y, shapes, threads, conv_algorithm)
        cols[b + " fp32~torch"] = {k: rel(o32[k], t32[k]) for k in shapes}
        try:
            obf = neurc_grads(make_model, b, "bf16", x, y, shapes, threads, conv_algorithm)
        except neurc.UnsupportedError as e:
            print("%s: no bf16 (%s)" % (b, e), file=sys.stderr)
            continue
        cols[b + " bf16"] = {k: rel(obf[k], o32[k]) for k in shapes}
    return cols


def fashion_mnist(root, n, offset, mean=0.28433609, std=0.35238719, split="train"):
    """Images offset .. offset + n - 1 of the split ("train" or "t10k"), normalised as
    nc-train does, and their labels."""
    def idx(name):
        with gzip.open(os.path.join(root, "%s-%s-ubyte.gz" % (split, name))) as f:
            b = f.read()
        dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(b[3])]
        return np.frombuffer(b, np.uint8, offset=4 + 4 * b[3]).reshape(dims)
    x = idx("images-idx3")[offset:offset + n].astype(np.float32) / 255
    y = idx("labels-idx1")[offset:offset + n].astype(np.int32)
    return ((x - mean) / std).reshape(len(y), 1, 28, 28).astype(np.float32), y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", help="a neurc model file (default: a fresh resnet18, small-image stem, 1 channel)")
    ap.add_argument("--arch", default="resnet18", help="torchvision's name of the architecture")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST's IDX files")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--offset", type=int, default=1000, help="first training image of the batch")
    ap.add_argument("--backends", default="ref,onednn")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conv-algorithm", default="auto", help="auto, direct or winograd (our contexts)")
    a = ap.parse_args()
    if a.weights:
        def make_model(ctx):
            return neurc.Model.load(a.weights, context=ctx)
    else:
        def make_model(ctx):
            return neurc.Model(a.arch, num_classes=10, in_channels=1, small_input=True, context=ctx, seed=7)
    x, y = fashion_mnist(a.data, a.batch, a.offset)
    cols = compare(make_model, a.arch, x, y, a.backends.split(","), a.threads, a.conv_algorithm)
    names = list(cols["autocast"])
    print("relative gradient error, %s, batch %d (%s), conv algorithm %s"
          % (a.arch, a.batch, a.weights or "initial weights", a.conv_algorithm))
    print("%-30s" % "parameter" + "".join("%18s" % c for c in cols))
    for k in names:
        print("%-30s" % k + "".join("%18.3e" % cols[c][k] for c in cols))
    print("%-30s" % "geometric mean" + "".join("%18.3e" % geomean(cols[c].values()) for c in cols))


if __name__ == "__main__":
    main()
