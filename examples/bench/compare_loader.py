#!/usr/bin/python3
"""compare_loader.py — the training loader against torchvision on the same files, in
one invocation: images/s of seed 001's train augmentation at 224x224 on one core.

It writes 64 RGB 256x256 PNGs (deterministic, natural-ish content: smooth gradients,
overlapping shapes, texture and sensor-like noise, so they compress like photos, not
like flat test patterns) into DIR/{a,b}/ unless they exist, then times
  - torchvision + PIL: ImageFolder with PIL decoding and RandomResizedCrop(224,
    scale (0.7, 1)), RandomHorizontalFlip, RandomRotation(20), ColorJitter(0.2, 0.2,
    0.2, 0.05), RandomAffine(0, translate (0.1, 0.1), scale (0.9, 1.1)), ToTensor,
    Normalize(ImageNet), RandomErasing(0.2), batched by a DataLoader with
    num_workers=0 (the work on this one thread), torch.set_num_threads(1);
  - torchvision tensors: the same steps on uint8 tensors from torchvision.io.read_image
    (its libpng decoder), ConvertImageDtype and Normalize at the end;
  - nc-bench --loader folder:DIR --transform train --workers 1 (one decoding thread;
    the main thread only waits) for nc_transform_preset_train;
alternating them --rounds times, and prints each one's best and median images/s and
the ratios, with the machine's CPU.

  /usr/bin/python3 examples/bench/compare_loader.py --nc-bench BUILD/examples/nc-bench
      [--dir /tmp/nc-loader-bench] [--rounds 3] [--epochs 4] [--json out.json]
      [--baseline OLD_BUILD/examples/nc-bench]     # before/after in the same run
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIZE = 224


# ------------------------------------------------------------------ the files

def make_image(rng, np, side):
    """One natural-ish RGB image: a smooth colour gradient, a dozen soft-edged shapes
    with their own textures, low-frequency shading and per-pixel noise."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    img = c0 * (1 - t) + c1 * t
    for _ in range(12):
        cy, cx = rng.uniform(0, 1, 2)
        ry, rx = rng.uniform(0.05, 0.35, 2)
        d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        if rng.uniform() < 0.5:  # rectangles
            d = np.maximum(np.abs(yy - cy) / ry, np.abs(xx - cx) / rx) ** 2
        mask = np.clip((1.0 - d) * 8.0, 0, 1)[..., None]
        colour = rng.uniform(0, 255, 3)
        freq = rng.uniform(4, 40)
        texture = 20.0 * np.sin(freq * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)))[..., None]
        img = img * (1 - mask) + (colour + texture) * mask
    shade = 1.0 + 0.25 * np.sin(3 * xx + rng.uniform(0, 6))[..., None] * np.cos(2 * yy + rng.uniform(0, 6))[..., None]
    img = img * shade + rng.normal(0, 3.0, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def make_files(root, count=64, side=256):
    marker = os.path.join(root, ".complete")
    if os.path.exists(marker):
        return
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(1)
    for k in range(count):
        cls = "ab"[k % 2]
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        Image.fromarray(make_image(rng, np, side), "RGB").save(os.path.join(root, cls, "%03d.png" % k))
    open(marker, "w").close()


def folder_bytes(root):
    total = n = 0
    for cls in "ab":
        for name in os.listdir(os.path.join(root, cls)):
            total += os.path.getsize(os.path.join(root, cls, name))
            n += 1
    return n, total


# ------------------------------------------------------------------ the peers

def torch_rate(root, kind, epochs, batch):
    """Best and median images/s over `epochs` passes (after one warm-up pass)."""
    import torch
    import torchvision
    import torchvision.transforms as T
    torch.set_num_threads(1)
    torch.manual_seed(1)
    geometric = [
        T.RandomResizedCrop(SIZE, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3)),
        T.RandomHorizontalFlip(),
        T.RandomRotation(20),
        T.ColorJitter(0.2, 0.2, 0.2, 0.05),
        T.RandomAffine(0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
    ]
    tail = [T.Normalize(MEAN, STD), T.RandomErasing(p=0.2)]
    if kind == "pil":
        tf = T.Compose(geometric + [T.ToTensor()] + tail)
        ds = torchvision.datasets.ImageFolder(root, transform=tf)
    else:
        from torchvision.io import ImageReadMode, read_image
        tf = T.Compose(geometric + [T.ConvertImageDtype(torch.float32)] + tail)
        ds = torchvision.datasets.ImageFolder(root, transform=tf,
                                              loader=lambda p: read_image(p, ImageReadMode.RGB))
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0)
    rates = []
    for e in range(epochs + 1):
        t0 = time.perf_counter()
        n = 0
        for x, _ in dl:
            n += x.shape[0]
        if e > 0:
            rates.append(n / (time.perf_counter() - t0))
    return rates


def nc_rate(nc_bench, root, epochs, batch, workers):
    out = subprocess.run([nc_bench, "--loader", "folder:" + root, "--transform", "train", "--size", str(SIZE),
                          "--workers", str(workers), "--batch", str(batch), "--runs", str(epochs),
                          "--warmup", "1", "--threads", "1", "--json", "-"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("nc-bench failed: " + out.stderr)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            images = r["batches"] * r["batch"]
            return [images / r["min_s"], images / r["median_s"]]
    sys.exit("nc-bench printed no JSON:\n" + out.stdout)


def cpu_name():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nc-bench", required=True, help="path of the nc-bench program")
    ap.add_argument("--dir", default="/tmp/nc-loader-bench", help="the 64 PNGs (written if absent)")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the peers")
    ap.add_argument("--epochs", type=int, default=4, help="timed passes over the 64 files per round")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1, help="nc-bench --workers (default 1)")
    ap.add_argument("--no-tensor", action="store_true", help="skip torchvision's tensor pipeline")
    ap.add_argument("--baseline", help="another nc-bench (e.g. an older build) timed as a fourth peer")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    make_files(args.dir)
    n, size = folder_bytes(args.dir)
    peers = ["pil"] + ([] if args.no_tensor else ["tensor"]) + (["baseline"] if args.baseline else []) + ["neurc"]
    rates = {p: [] for p in peers}
    for _ in range(args.rounds):
        for p in peers:
            if p in ("neurc", "baseline"):
                prog = args.nc_bench if p == "neurc" else args.baseline
                rates[p] += nc_rate(prog, args.dir, args.epochs, args.batch, args.workers)
            else:
                # a fresh process per round, like nc-bench: no state carried over
                code = ("import sys; sys.path.insert(0, %r); import compare_loader as c; "
                        "print(c.torch_rate(%r, %r, %d, %d))" % (os.path.dirname(os.path.abspath(__file__)),
                                                                 args.dir, p, args.epochs, args.batch))
                env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    sys.exit("torchvision (%s) failed: %s" % (p, out.stderr))
                rates[p] += json.loads(out.stdout.strip().splitlines()[-1])
    names = {"pil": "torchvision + PIL", "tensor": "torchvision tensors (uint8)", "neurc": "neurc nc-bench --loader",
             "baseline": "neurc --baseline build"}
    print("# %s, %d cores; %d RGB 256x256 PNGs, %.0f KiB each; train augmentation to %dx%d, one core"
          % (cpu_name(), os.cpu_count(), n, size / n / 1024, SIZE, SIZE))
    # PIL's rate moves with the random crop's area from epoch to epoch (ours does not),
    # so the steadier comparison is of medians; bests are given as well.
    print("%-30s %12s %14s %16s %14s" % ("pipeline", "best img/s", "median img/s", "vs PIL (median)",
                                         "vs PIL (best)"))
    best_pil, med_pil = max(rates["pil"]), statistics.median(rates["pil"])
    report = {"cpu": cpu_name(), "files": n, "bytes_per_file": size / n, "rounds": args.rounds, "peers": {}}
    for p in peers:
        best, med = max(rates[p]), statistics.median(rates[p])
        print("%-30s %12.1f %14.1f %15.2fx %13.2fx" % (names[p], best, med, med / med_pil, best / best_pil))
        report["peers"][p] = {"best": best, "median": med, "all": rates[p]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
