#!/usr/bin/env python3
"""Does bf16 training drift from fp32 more in neurc than under PyTorch autocast?

From the same initial weights and on the same batches of Fashion-MNIST, four runs of
`--steps` SGD steps (momentum, weight decay, constant rate, no augmentation): torch
fp32, torch under torch.autocast("cpu", bfloat16), and neurc's backend in fp32 and
with precision="bf16". The table gives each run's mean training loss per window of
steps and its test accuracy at the end (each run evaluates in its own precision);
the last lines give bf16 minus fp32 for both libraries. One step's gradients are
compared by compare_bf16_grads.py; this shows what the rounding does over many.
Needs numpy, torch and torchvision (Debian's /usr/bin/python3).

  /usr/bin/python3 examples/bench/compare_bf16_training.py --steps 600 --threads 2
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_bf16_grads as grads  # noqa: E402
import neurc  # noqa: E402


def batches(n_train, batch, steps, seed):
    """The batches' image indices: a fresh permutation of the training set per epoch."""
    rng = np.random.default_rng(seed)
    order = []
    while len(order) < steps * batch:
        order.extend(rng.permutation(n_train))
    return [np.array(order[i * batch:(i + 1) * batch]) for i in range(steps)]


def train_torch(arch, weights, data, plan, opt, autocast):
    """(losses per step, test accuracy) of torch's net trained on plan's batches."""
    x, y, xt, yt = data
    net = grads.torch_net(arch, weights)
    sgd = torch.optim.SGD(net.parameters(), lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    losses = []
    for idx in plan:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = net(torch.from_numpy(x[idx]))
        loss = torch.nn.functional.cross_entropy(out.float(), torch.from_numpy(y[idx].astype(np.int64)))
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        losses.append(float(loss))
    net.eval()
    correct = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for s in range(0, len(yt), 500):
            out = net(torch.from_numpy(xt[s:s + 500]))
            correct += int((out.float().argmax(1).numpy() == yt[s:s + 500]).sum())
    return losses, correct / len(yt)


def train_neurc(make_model, backend, precision, data, plan, opt):
    """(losses per step, test accuracy) of neurc's model trained on plan's batches."""
    x, y, xt, yt = data
    ctx = neurc.Context(backend=backend, precision=precision, threads=opt.threads,
                        conv_algorithm=opt.conv_algorithm)
    try:
        m = make_model(ctx)
        tr = neurc.Trainer(m, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
        losses = [tr.step(np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx])).loss for idx in plan]
        acc = float((m.predict(xt).argmax(1) == yt).mean())
        return losses, acc
    finally:
        ctx.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet18", help="torchvision's name of the architecture")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST's IDX files")
    ap.add_argument("--backend", default="onednn", help="neurc's backend (ref or onednn)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--window", type=int, default=100, help="steps per mean-loss column")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=7, help="initial weights and batch order")
    ap.add_argument("--test-images", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conv-algorithm", default="auto", help="auto, direct or winograd (our contexts)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    def make_model(ctx):
        return neurc.Model(a.arch, num_classes=10, in_channels=1, small_input=True, context=ctx, seed=a.seed)

    x, y = grads.fashion_mnist(a.data, 60000, 0)
    xt, yt = grads.fashion_mnist(a.data, a.test_images, 0, split="t10k")
    data = (x, y, xt, yt)
    plan = batches(len(y), a.batch, a.steps, a.seed)
    ctx = neurc.Context(backend="ref")
    try:
        weights = {k: np.array(v) for k, v in make_model(ctx).state_dict().items()}
    finally:
        ctx.close()
    runs = {}
    for name, fn in (("torch fp32", lambda: train_torch(a.arch, weights, data, plan, a, False)),
                     ("torch autocast", lambda: train_torch(a.arch, weights, data, plan, a, True)),
                     ("neurc fp32", lambda: train_neurc(make_model, a.backend, "fp32", data, plan, a)),
                     ("neurc bf16", lambda: train_neurc(make_model, a.backend, "bf16", data, plan, a))):
        t0 = time.time()
        runs[name] = fn()
        print("%s: %.0f s" % (name, time.time() - t0), file=sys.stderr, flush=True)
    windows = [(s, min(s + a.window, a.steps)) for s in range(0, a.steps, a.window)]
    print("%s, batch %d, lr %g, momentum %g, weight decay %g, seed %d, backend %s, %d test images"
          % (a.arch, a.batch, a.lr, a.momentum, a.weight_decay, a.seed, a.backend, len(yt)))
    print("%-16s" % "mean loss, steps" + "".join("%10s" % ("%d-%d" % (s + 1, e)) for s, e in windows)
          + "%10s" % "test acc")
    mean = {k: [float(np.mean(v[0][s:e])) for s, e in windows] for k, v in runs.items()}
    for k, v in runs.items():
        print("%-16s" % k + "".join("%10.4f" % m for m in mean[k]) + "%9.2f%%" % (100 * v[1]))
    for lib_ in ("torch", "neurc"):
        lo, hi = lib_ + (" autocast" if lib_ == "torch" else " bf16"), lib_ + " fp32"
        print("%-16s" % (lib_ + " bf16-fp32") + "".join("%+10.4f" % (p - q) for p, q in zip(mean[lo], mean[hi]))
              + "%+9.2f" % (100 * (runs[lo][1] - runs[hi][1])))


if __name__ == "__main__":
    main()
