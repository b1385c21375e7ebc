#!/usr/bin/python3
"""compare_pytorch.py — runs the same workloads in nc-bench and in PyTorch, in one
invocation, and prints the ratio table (docs/performance.md).

Every workload runs in its own process (nc-bench, and PyTorch once in NCHW and once
in channels_last), with the same thread count (--threads, OMP_NUM_THREADS and
torch.set_num_threads), a warm-up, then the median of --runs timed steps; the peak
resident set (VmHWM) is that process's. A training step is forward,
softmax cross-entropy, backward and an SGD step with momentum 0.9 on both sides;
inference is eval mode under torch.no_grad(). With --precision bf16, PyTorch runs the
forward pass and the loss under torch.autocast("cpu", dtype=torch.bfloat16) (backward
and the SGD step follow autocast's rules: f32 master weights) and nc-bench gets
--precision bf16 (NC_PRECISION_BF16, the same autocast rules). FLOPs: 2 x the multiply-accumulates
of convolutions and linear layers (counted here by forward hooks, independently of
nc-bench's count from the model summary, and compared with it); a training step
counts 3 x the forward FLOPs.

  /usr/bin/python3 examples/bench/compare_pytorch.py --nc-bench BUILD/examples/nc-bench
      --threads 2 --json results.json             # the three targets + resnet18 inference
  ... --quick                                     # small sizes, one run: checks the plumbing
  ... --precision fp32,bf16                       # each workload in fp32 and in bf16 mixed precision
  ... --layers                                    # ResNeXt-50 convolutions one by one
  ... --peak                                      # SGEMM GFLOP/s of torch.mm and nc-bench
  ... --check-flops                               # MAC counts only; exit 1 on a mismatch
"""
import argparse
import concurrent.futures
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# (arch, mode, batch, size): the three targets, then resnet18 inference.
DEFAULT_WORKLOADS = [
    ("resnet18", "train", 16, 224),
    ("resnext50_32x4d", "train", 16, 224),
    ("resnext50_32x4d", "infer", 1, 224),
    ("resnet18", "infer", 16, 224),
]
QUICK_WORKLOADS = [
    ("resnet18", "train", 2, 64),
    ("resnet18", "infer", 2, 64),
    ("resnext50_32x4d", "train", 2, 64),
    ("resnext50_32x4d", "infer", 1, 64),
]
FLOP_CHECKS = [("resnet18", 224), ("resnext50_32x4d", 224), ("vgg11_bn", 64),
               ("resnet18", 97), ("resnext50_32x4d", 64)]


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    """VmHWM: this process image's resident high-water mark. ru_maxrss is only the
    fallback, as Linux carries it across execve (a child would report its parent's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def thread_env(threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    return env


# --------------------------------------------------------------- PyTorch side

def torch_setup(threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return torch


def count_macs(torch, model, x):
    """fvcore-style MACs per image of Conv2d and Linear layers, by forward hooks."""
    total = {"conv": 0, "linear": 0}

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total["conv"] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        total["linear"] += out.numel() // out.shape[0] * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(x[:1])
    for h in hooks:
        h.remove()
    return total["conv"], total["linear"]


def torch_model(torch, arch, classes):
    import torchvision
    if not hasattr(torchvision.models, arch):
        raise SystemExit(f"torchvision has no architecture '{arch}'")
    return getattr(torchvision.models, arch)(weights=None, num_classes=classes)


def time_steps(step, warmup, runs):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def torch_workload(spec):
    """One workload in this process; spec: arch, mode, batch, size, layout, precision, threads, warmup, runs."""
    torch = torch_setup(spec["threads"])
    import contextlib
    import torch.nn.functional as F
    rss_start = rss_mb()
    n, s, classes = spec["batch"], spec["size"], 1000
    model = torch_model(torch, spec["arch"], classes)
    x = torch.randn(n, 3, s, s)
    y = torch.arange(n) % classes
    conv_macs, linear_macs = count_macs(torch, model, x)
    cl = spec["layout"] == "channels_last"
    if cl:
        model = model.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if cl else torch.contiguous_format
    bf16 = spec.get("precision", "fp32") == "bf16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    if spec["mode"] == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(model(x.contiguous(memory_format=fmt)), y)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                model(x.contiguous(memory_format=fmt))
    rss_setup = rss_mb()
    times = time_steps(step, spec["warmup"], spec["runs"])
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "runs": len(times), "conv_macs_per_image": conv_macs, "linear_macs_per_image": linear_macs,
            "rss_start_mb": rss_start, "rss_setup_mb": rss_setup, "peak_rss_mb": peak_rss_mb(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "precision": "bf16" if bf16 else "fp32"}


def torch_layers(spec):
    """Every layer of an nc-bench --layers result, as ReLU -> Conv2d -> global average pool."""
    torch = torch_setup(spec["threads"])
    import torch.nn.functional as F
    out = []
    n = spec["batch"]
    for L in spec["layers"]:
        row = {}
        for layout in ("nchw", "channels_last"):
            conv = torch.nn.Conv2d(L["in_c"], L["out_c"], L["kernel"], L["stride"], L["padding"],
                                   groups=L["groups"], bias=False)
            model = torch.nn.Sequential(torch.nn.ReLU(), conv, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            model = model.to(memory_format=fmt)
            # requires_grad: autograd then computes the convolution's input gradient,
            # as inside a network and as nc-bench's ReLU -> conv does (without it
            # PyTorch would skip the backward-data convolution)
            x = torch.randn(n, L["in_c"], L["in_h"], L["in_w"], requires_grad=True)
            y = torch.arange(n) % L["out_c"]
            opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
            model.eval()

            def fwd():
                with torch.no_grad():
                    model(x.contiguous(memory_format=fmt))

            def train():
                opt.zero_grad(set_to_none=True)
                x.grad = None
                F.cross_entropy(model(x.contiguous(memory_format=fmt)), y).backward()
                opt.step()
            tf = time_steps(fwd, spec["warmup"], spec["runs"])
            model.train()
            tt = time_steps(train, spec["warmup"], spec["runs"])
            row[layout] = {"fwd_median_s": statistics.median(tf), "train_median_s": statistics.median(tt)}
        out.append(row)
    return out


def torch_peak(spec):
    torch = torch_setup(spec["threads"])
    n = spec["n"]
    a, b = torch.randn(n, n), torch.randn(n, n)
    f = 2.0 * n ** 3
    times = time_steps(lambda: torch.mm(a, b), 1, min(spec["runs"], 3))  # netlib: slow, informational
    res = {"n": n, "median_s": statistics.median(times), "gflops": f / statistics.median(times) * 1e-9,
           "best_gflops": f / min(times) * 1e-9}
    # torch.mm goes to whatever libblas.so.3 is installed (Debian's default is the
    # unoptimised netlib one); a 1x1 convolution goes to oneDNN (mkldnn), so the same
    # n x n x n product as a convolution over n pixels is torch's optimised SGEMM.
    if n % 32 == 0:
        x = torch.randn(1, n, 32, n // 32)
        w = torch.randn(n, n, 1, 1)
        with torch.no_grad():
            times = time_steps(lambda: torch.nn.functional.conv2d(x, w), spec["warmup"], spec["runs"])
        res["conv1x1"] = {"median_s": statistics.median(times), "gflops": f / statistics.median(times) * 1e-9,
                          "best_gflops": f / min(times) * 1e-9}
    return res


def torch_flops(spec):
    torch = torch_setup(spec["threads"])
    res = []
    for arch, size in spec["checks"]:
        # shapes only: the meta device runs no arithmetic
        model = torch_model(torch, arch, 1000).to("meta")
        conv, linear = count_macs(torch, model, torch.empty(1, 3, size, size, device="meta"))
        res.append({"arch": arch, "size": size, "conv_macs_per_image": conv, "linear_macs_per_image": linear})
    return res


WORKERS = {"workload": torch_workload, "layers": torch_layers, "peak": torch_peak, "flops": torch_flops}


def run_torch(kind, spec, threads):
    """Runs one PyTorch job in a fresh interpreter; returns its JSON answer."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"kind": kind, "spec": spec}, f)
        path = f.name
    try:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--torch-worker", path],
                           env=thread_env(threads), capture_output=True, text=True)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        raise RuntimeError(f"PyTorch {kind} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- neurc side

def run_nc(args, extra):
    """Runs nc-bench with --json into a temporary file; returns the parsed JSON."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [args.nc_bench, "--threads", str(args.threads), "--json", path] + extra
    if args.conv_algorithm and "--gemm" not in extra:
        cmd += ["--conv-algorithm", args.conv_algorithm]
    try:
        p = subprocess.run(cmd, env=thread_env(args.threads), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
        with open(path) as f:
            return json.load(f)
    finally:
        os.unlink(path)


# ------------------------------------------------------------------- reports

def parse_workload(text):
    parts = text.split(":")
    if len(parts) != 4 or parts[1] not in ("train", "infer"):
        raise argparse.ArgumentTypeError(f"workload '{text}' is not ARCH:train|infer:BATCH:SIZE")
    return (parts[0], parts[1], int(parts[2]), int(parts[3]))


def parse_precisions(text):
    precs = text.split(",")
    for p in precs:
        if p not in ("fp32", "bf16"):
            raise argparse.ArgumentTypeError(f"precision '{p}' is not fp32 or bf16")
    return precs


def machine():
    info = {"cpu": "unknown", "cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = line.split(":", 1)[1].split()
                info["isa"] = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
    except OSError:
        pass
    info["loadavg"] = os.getloadavg()
    return info


def measured_peak(report):
    """The best median SGEMM GFLOP/s measured by --peak (oneDNN in torch, or ours); None without --peak."""
    p = report.get("peak")
    if not p:
        return None
    cands = [p["torch_mm"]["gflops"]] + ([p["torch_mm"]["conv1x1"]["gflops"]] if "conv1x1" in p["torch_mm"] else [])
    cands += [o["gflops"] for o in p["ours"].values() if "gflops" in o]
    return max(cands)


def compare_workloads(args, workloads, report):
    rows = []
    for (arch, mode, batch, size), prec in [(w, p) for w in workloads for p in args.precision]:
        name = f"{arch} {mode} b{batch} {size}² {prec}"
        print(f"running {name} ...", file=sys.stderr, flush=True)
        entry = {"arch": arch, "mode": mode, "batch": batch, "size": size, "precision": prec, "ours": {},
                 "torch": {}}
        for backend in args.backends:
            try:
                r = run_nc(args, ["--arch", arch, "--mode", mode, "--batch", str(batch), "--size", str(size),
                                  "--backend", backend, "--warmup", str(args.warmup), "--runs", str(args.runs),
                                  "--precision", prec])
            except RuntimeError as err:  # one failing backend must not hide the others' numbers
                print(err, file=sys.stderr)
                entry["ours"][backend] = {"error": str(err)}
                continue
            res = r["results"][0]
            res["backend"] = r["backend"]
            res["rss_start_mb"] = r["rss_start_mb"]
            entry["ours"][backend] = res
        for layout in ("nchw", "channels_last"):
            spec = {"arch": arch, "mode": mode, "batch": batch, "size": size, "layout": layout,
                    "precision": prec, "threads": args.threads, "warmup": args.warmup, "runs": args.runs}
            entry["torch"][layout] = run_torch("workload", spec, args.threads)
        rows.append(entry)
        ours = ", ".join(f"{b} {1e3 * o['median_s']:.1f} ms" for b, o in entry["ours"].items() if "median_s" in o)
        print(f"  done {name}: ours {ours or 'failed'}; torch NCHW {1e3 * entry['torch']['nchw']['median_s']:.1f} ms, "
              f"channels_last {1e3 * entry['torch']['channels_last']['median_s']:.1f} ms", file=sys.stderr, flush=True)
    report["workloads"] = rows

    peak = measured_peak(report)
    print()
    print("| workload | ours (backend) ms | torch NCHW ms | torch CL ms | best torch ms | speed ratio "
          "(torch/ours) | ours GFLOP/s | of SGEMM peak | GFLOP/step | MACs vs torch | peak MB ours | "
          "peak MB torch NCHW / CL |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for e in rows:
        tn, tc = e["torch"]["nchw"], e["torch"]["channels_last"]
        best = min(tn["median_s"], tc["median_s"])
        torch_macs = tn["conv_macs_per_image"] + tn["linear_macs_per_image"]
        for backend, o in e["ours"].items():
            if "error" in o:
                ok = False
                print(f"| {e['arch']} {e['mode']} b{e['batch']} {e['size']}² {e['precision']} | failed ({backend}) | "
                      f"{1e3 * tn['median_s']:.1f} | {1e3 * tc['median_s']:.1f} | {1e3 * best:.1f} | | | | | | | "
                      f"{tn['peak_rss_mb']:.0f} / {tc['peak_rss_mb']:.0f} |")
                continue
            our_macs = o["conv_macs_per_image"] + o["linear_macs_per_image"]
            same = our_macs == torch_macs
            ok &= same
            o["speed_ratio"] = best / o["median_s"]
            o["fraction_of_peak"] = o["gflops"] / peak if peak else None
            frac = f"{100 * o['fraction_of_peak']:.0f} %" if peak else "(no --peak)"
            print(f"| {e['arch']} {e['mode']} b{e['batch']} {e['size']}² {e['precision']} | {1e3 * o['median_s']:.1f} "
                  f"({o['backend']}) | {1e3 * tn['median_s']:.1f} | {1e3 * tc['median_s']:.1f} | "
                  f"{1e3 * best:.1f} | {o['speed_ratio']:.2f}× | {o['gflops']:.1f} | {frac} | "
                  f"{o['flops_per_step'] * 1e-9:.2f} | {'same' if same else f'{our_macs} vs {torch_macs}'} | "
                  f"{o['peak_rss_mb']:.0f} | {tn['peak_rss_mb']:.0f} / {tc['peak_rss_mb']:.0f} |")
    if len(args.precision) > 1:
        precision_summary(rows)
    print()
    print("Memory detail (MiB): resident at start (after library/interpreter load), before the first step "
          "(model, optimizer, input), peak.")
    for e in rows:
        for backend, o in e["ours"].items():
            if "error" in o:
                continue
            print(f"  {e['arch']} {e['mode']} b{e['batch']} {e['size']}² {e['precision']} ours/{o['backend']}: "
                  f"{o['rss_start_mb']:.0f} / {o['rss_setup_mb']:.0f} / {o['peak_rss_mb']:.0f}")
        for layout, t in e["torch"].items():
            print(f"  {e['arch']} {e['mode']} b{e['batch']} {e['size']}² {e['precision']} torch/{layout}: "
                  f"{t['rss_start_mb']:.0f} / {t['rss_setup_mb']:.0f} / {t['peak_rss_mb']:.0f}")
    return ok


def precision_summary(rows):
    """One line per workload and backend: each precision's times side by side."""
    precs = list(dict.fromkeys(e["precision"] for e in rows))
    print()
    print("| workload | backend | " + " | ".join(f"{p}: ours ms | {p}: best torch ms | {p}: ratio" for p in precs)
          + " | " + " | ".join(f"ours {p} speed-up ({precs[0]} ms / {p} ms)" for p in precs[1:])
          + " | " + " | ".join(f"torch {p} speed-up" for p in precs[1:]) + " |")
    print("|---|---|" + "---|" * (3 * len(precs) + 2 * (len(precs) - 1)))
    by = {}
    for e in rows:
        by.setdefault((e["arch"], e["mode"], e["batch"], e["size"]), {})[e["precision"]] = e
    for (arch, mode, batch, size), per in by.items():
        backends = list(dict.fromkeys(b for e in per.values() for b in e["ours"]))
        for backend in backends:
            cells, ours, best = [], {}, {}
            for p in precs:
                e = per.get(p)
                o = e["ours"].get(backend, {}) if e else {}
                if not e or "error" in o:
                    cells.append("failed | | ")
                    continue
                best[p] = min(t["median_s"] for t in e["torch"].values())
                ours[p] = o["median_s"]
                cells.append(f"{1e3 * ours[p]:.1f} | {1e3 * best[p]:.1f} | {best[p] / ours[p]:.2f}×")
            speed = [f"{ours[precs[0]] / ours[p]:.2f}×" if p in ours and precs[0] in ours else ""
                     for p in precs[1:]]
            tspeed = [f"{best[precs[0]] / best[p]:.2f}×" if p in best and precs[0] in best else ""
                      for p in precs[1:]]
            print(f"| {arch} {mode} b{batch} {size}² | {backend} | " + " | ".join(cells + speed + tspeed) + " |")


def compare_layers(args, report):
    arch, ok = "resnext50_32x4d", True
    for backend in args.backends:
        print(f"running {arch} layers on {backend} ...", file=sys.stderr, flush=True)
        try:
            ours = run_nc(args, ["--layers", "--arch", arch, "--batch", str(args.layer_batch), "--size",
                                 str(args.layer_size), "--backend", backend, "--warmup", str(args.warmup),
                                 "--runs", str(args.runs)])
        except RuntimeError as err:
            print(err, file=sys.stderr)
            report.setdefault("layers", {})[backend] = {"error": str(err)}
            ok = False
            continue
        spec = {"threads": args.threads, "batch": args.layer_batch, "warmup": args.warmup, "runs": args.runs,
                "layers": ours["layers"]}
        torch_rows = run_torch("layers", spec, args.threads)
        report.setdefault("layers", {})[backend] = {"ours": ours, "torch": torch_rows}
        print()
        print(f"{arch} convolutions, batch {args.layer_batch}, {args.layer_size}², {ours['backend']} vs PyTorch "
              "(best of NCHW and channels_last); ratio = torch time / ours")
        print("| layer | count | C→K | in | k/s/g | MMAC/img | fwd ms ours | fwd ms torch | fwd ratio | "
              "fwd GFLOP/s ours | train ms ours | train ms torch | train ratio | train GFLOP/s ours |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for L, t in zip(ours["layers"], torch_rows):
            tf = min(t["nchw"]["fwd_median_s"], t["channels_last"]["fwd_median_s"])
            tt = min(t["nchw"]["train_median_s"], t["channels_last"]["train_median_s"])
            print(f"| {L['name']} | {L['count']} | {L['in_c']}→{L['out_c']} | {L['in_h']}² | "
                  f"{L['kernel']}/{L['stride']}/{L['groups']} | {L['macs_per_image'] * 1e-6:.1f} | "
                  f"{1e3 * L['fwd_median_s']:.2f} | {1e3 * tf:.2f} | {tf / L['fwd_median_s']:.2f}× | "
                  f"{L['fwd_gflops']:.1f} | {1e3 * L['train_median_s']:.2f} | {1e3 * tt:.2f} | "
                  f"{tt / L['train_median_s']:.2f}× | {L['train_gflops']:.1f} |")
    return ok


def measure_peak(args, report):
    n = args.peak_n
    print(f"running SGEMM {n}³ ...", file=sys.stderr, flush=True)
    t = run_torch("peak", {"threads": args.threads, "n": n, "warmup": 2, "runs": args.runs}, args.threads)
    report["peak"] = {"torch_mm": t, "ours": {}}
    print()
    print(f"SGEMM {n}x{n}x{n}, {args.threads} threads: torch.mm {t['gflops']:.1f} GFLOP/s "
          f"(best run {t['best_gflops']:.1f})")
    if "conv1x1" in t:
        c = t["conv1x1"]
        print(f"  torch 1x1 conv (oneDNN) as the same product: {c['gflops']:.1f} GFLOP/s "
              f"(best run {c['best_gflops']:.1f})")
    for backend in args.backends:
        try:
            o = run_nc(args, ["--gemm", str(n), "--backend", backend, "--warmup", "2", "--runs", str(args.runs)])
        except RuntimeError as err:
            print(err, file=sys.stderr)
            report["peak"]["ours"][backend] = {"error": str(err)}
            continue
        report["peak"]["ours"][backend] = o
        print(f"  nc-bench --gemm ({o['backend']}): {o['gflops']:.1f} GFLOP/s (best run {o['best_gflops']:.1f})")


def check_flops(args, report):
    """nc-bench --count against forward hooks in torchvision's models; True when all agree."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # PyTorch counts while nc-bench does
        job = pool.submit(run_torch, "flops", {"threads": 1, "checks": FLOP_CHECKS}, 1)
        ours = [run_nc(args, ["--count", "--arch", arch, "--size", str(size)])["results"][0]
                for arch, size in FLOP_CHECKS]
        t = job.result()
    ok = True
    rows = []
    for (arch, size), tr, o in zip(FLOP_CHECKS, t, ours):
        same = (o["conv_macs_per_image"], o["linear_macs_per_image"]) == \
            (tr["conv_macs_per_image"], tr["linear_macs_per_image"])
        ok &= same
        rows.append({"arch": arch, "size": size, "ours": o, "torch": tr, "same": same})
        print(f"{arch:18s} {size:4d}²  conv MACs ours {o['conv_macs_per_image']:>13,d} torch "
              f"{tr['conv_macs_per_image']:>13,d}  linear ours {o['linear_macs_per_image']:>11,d} torch "
              f"{tr['linear_macs_per_image']:>11,d}  {'ok' if same else 'MISMATCH'}")
    report["flop_check"] = rows
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nc-bench", help="path of the nc-bench program (BUILD/examples/nc-bench)")
    ap.add_argument("--backends", default="auto", help="comma-separated nc-bench backends (default auto)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conv-algorithm", choices=("auto", "direct", "winograd"),
                    help="nc-bench's --conv-algorithm (default: not passed, the library's auto)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workload", action="append", type=parse_workload, metavar="ARCH:train|infer:BATCH:SIZE",
                    help="replaces the default list (repeatable)")
    ap.add_argument("--precision", default="fp32", type=parse_precisions, metavar="fp32,bf16",
                    help="precisions to run each workload in (comma-separated; default fp32): bf16 is "
                         "torch.autocast(\"cpu\", dtype=torch.bfloat16) against nc-bench --precision bf16")
    ap.add_argument("--quick", action="store_true", help="small workloads, 1 warm-up, 1 run (a plumbing check)")
    ap.add_argument("--no-workloads", action="store_true", help="skip the whole-model table")
    ap.add_argument("--layers", action="store_true", help="also time resnext50_32x4d's convolutions one by one")
    ap.add_argument("--layer-batch", type=int, default=16)
    ap.add_argument("--layer-size", type=int, default=224)
    ap.add_argument("--peak", action="store_true", help="also measure SGEMM GFLOP/s (torch.mm, nc-bench --gemm)")
    ap.add_argument("--peak-n", type=int, default=2048)
    ap.add_argument("--check-flops", action="store_true", help="only compare MAC counts with torch; exit 1 if any differ")
    ap.add_argument("--json", help="write everything measured to this file")
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.torch_worker:
        with open(args.torch_worker) as f:
            job = json.load(f)
        print(json.dumps(WORKERS[job["kind"]](job["spec"])))
        return 0
    missing = [m for m in ("torch", "torchvision") if importlib.util.find_spec(m) is None]
    if missing:  # only the worker processes import them
        print(f"compare_pytorch.py: {' and '.join(missing)} not installed", file=sys.stderr)
        return 77  # meson's "skipped"
    if not args.nc_bench or not os.access(args.nc_bench, os.X_OK):
        ap.error("--nc-bench must name the nc-bench executable")
    args.backends = args.backends.split(",")
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "threads": args.threads,
              "warmup": args.warmup, "runs": args.runs}
    ok = True
    if args.check_flops:
        ok = check_flops(args, report)
    else:
        if args.quick:
            args.warmup, args.runs = 1, 1
            args.layer_batch, args.layer_size, args.peak_n = 2, 32, 512
            report.update(warmup=1, runs=1)
        print(f"# {report['date']}, {report['machine']['cpu']} ({' '.join(report['machine'].get('isa', []))}), "
              f"{args.threads} threads, "
              f"load average {report['machine']['loadavg'][0]:.2f}, warm-up {args.warmup}, median of {args.runs}")
        if args.peak:
            measure_peak(args, report)
        if not args.no_workloads:
            workloads = args.workload or (QUICK_WORKLOADS if args.quick else DEFAULT_WORKLOADS)
            ok = compare_workloads(args, workloads, report)
        if args.layers:
            ok &= compare_layers(args, report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if not ok:
        print("compare_pytorch.py: a run failed or nc-bench's FLOP count differs from PyTorch's", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
