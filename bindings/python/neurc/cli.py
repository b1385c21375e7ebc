"""python -m neurc train|predict|evaluate: the Python counterparts of nc-train and
nc-predict (a subset of nc-train's options, with the same names and file outputs; the
predict CSV is column for column nc-predict's)."""

import argparse
import csv
import io
import math
import os
import sys

from . import _buffers as B
from ._lib import Error, UnsupportedError
from .core import Context, Model, Schedule, Trainer
from .data import Dataset, Loader, Transform, read_png, split_stratified
from .metrics import MACRO, WEIGHTED
from .reports import Report
from .training import evaluate, fit

PROG = "python -m neurc"


class UsageError(Exception):
    pass


# ----------------------------------------------------------------------- data


def _idx_pair(folder, prefix):
    for ext in (".gz", ""):
        imgs = os.path.join(folder, "%s-images-idx3-ubyte%s" % (prefix, ext))
        labs = os.path.join(folder, "%s-labels-idx1-ubyte%s" % (prefix, ext))
        if os.path.isfile(imgs) and os.path.isfile(labs):
            return imgs, labs
    return None


def open_dataset(path, ctx, args, test=False):
    """A class folder, a CSV manifest (*.csv) or a folder of IDX files (train pair, or the
    t10k pair when `test`)."""
    if path.lower().endswith(".csv"):
        return Dataset.csv(path, ctx, image_columns=args.image_columns or None,
                           optional_column=args.optional_column or None, label_columns=args.label_columns or None)
    if os.path.isdir(path):
        pair = _idx_pair(path, "t10k" if test else "train")
        if pair:
            return Dataset.idx(pair[0], pair[1], ctx)
        return Dataset.folder(path, ctx)
    raise UsageError("%s: not a CSV manifest or a folder" % path)


def _floats(text, what):
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError("--%s: expected comma-separated numbers, got %r" % (what, text)) from None
    return vals


def _all_labels(ds, head=0):
    return [ds.labels(i)[head] for i in range(len(ds))]


# ---------------------------------------------------------------------- train


def cmd_train(args):
    ctx = Context(backend=args.backend, threads=args.threads)
    ds = open_dataset(args.data, ctx, args)
    if ds.num_heads != 1:
        raise UsageError("this command trains single-head models; use nc-train for several label columns")
    labels = _all_labels(ds)
    n = len(ds)
    val_ds = open_dataset(args.val_data, ctx, args) if args.val_data else None
    test_ds = open_dataset(args.test_data, ctx, args, test=True) if args.test_data else None
    vs = 0.0 if args.val_data else args.val_split
    ts = 0.0 if args.test_data else args.test_split
    if vs > 0 or ts > 0:
        assign = split_stratified(labels, 1.0 - vs - ts, vs, ts, seed=args.seed, context=ctx)
        train_idx = [i for i in range(n) if assign[i] == 0]
        val_idx = [i for i in range(n) if assign[i] == 1]
        test_idx = [i for i in range(n) if assign[i] == 2]
    else:
        train_idx, val_idx, test_idx = list(range(n)), None, []
    if args.limit:
        train_idx = train_idx[:args.limit]
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "split.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "path", "label", "split"])
        names = {0: "train", 1: "val", 2: "test"}
        tr, va, te = set(train_idx), set(val_idx or []), set(test_idx)
        for i in range(n):
            sp = 0 if i in tr else 1 if i in va else 2 if i in te else -1
            if sp >= 0:
                w.writerow([i, ds.path(i), labels[i], names[sp]])

    channels = ds.channels
    if args.in_channels and args.in_channels != channels:
        raise UsageError("--in-channels %d, but the data has %d channels" % (args.in_channels, channels))
    size = args.img_size
    if not size:
        with ds.get(train_idx[0]) as img:
            if img.height == img.width:
                size = img.height
    sized = Transform(ctx)
    if args.img_size:
        sized.resize(size).center_crop(size)
    if args.mean or args.std:
        if not (args.mean and args.std):
            raise UsageError("give --mean and --std together")
        mean, std = _floats(args.mean, "mean"), _floats(args.std, "std")
        if len(mean) != channels or len(std) != channels:
            raise UsageError("--mean/--std need %d values (the data's channels)" % channels)
    else:
        sample = train_idx[:: max(1, len(train_idx) // 2000)]
        mean, std = ds.channel_stats(sample, sized)
        std = [s if s > 0 else 1.0 for s in std]
    sized.close()

    def eval_transform():
        if args.img_size:
            return Transform.eval_preset(size, size, channels, mean, std, context=ctx)
        return Transform(ctx).normalize(mean, std)

    augment = args.augment
    if augment == "auto":
        augment = "full" if size and size >= 64 else "none"
    train_tf = Transform.train_preset(size, channels, mean, std, context=ctx) if augment == "full" \
        else eval_transform()
    eval_tf = eval_transform()
    small = {"auto": bool(size) and size < 64, "1": True, "0": False}[args.small_input]
    model = Model(args.model, num_classes=ds.num_classes(0), in_channels=channels, context=ctx,
                  width=args.width, head=args.head, head_dropout=args.head_dropout, small_input=small,
                  seed=args.seed)
    if args.pretrained:
        rep = model.load_pretrained(args.pretrained, seed=args.seed)
        print("pretrained: loaded %d tensors (%s)" % (rep.loaded, rep.text or "all matched"), file=sys.stderr)
    model.class_names = ds.class_names(0)
    model.normalization = (mean, std)
    if size:
        model.set_info("image_size", size)
        model.set_info("resize", size)
    lr = args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 0.001)
    trainer = Trainer(model, lr=lr, momentum=args.momentum, weight_decay=args.weight_decay,
                      optimizer=args.optimizer, label_smoothing=args.label_smoothing, seed=args.seed)
    schedule = None
    if args.scheduler == "cosine":
        schedule = Schedule("cosine", ctx, t_max=max(args.epochs, 1))
    elif args.scheduler == "step":
        schedule = Schedule("step", ctx, step_size=args.step_size, gamma=args.gamma)
    elif args.scheduler == "plateau":
        schedule = Schedule("plateau", ctx)
    train_loader = Loader(ds, train_tf, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                          workers=args.workers, indices=train_idx)
    val_loader = None
    if val_ds is not None:
        val_loader = Loader(val_ds, eval_tf, batch_size=max(args.batch_size, 64), shuffle=False,
                            workers=args.workers)
    elif val_idx:
        val_loader = Loader(ds, eval_tf, batch_size=max(args.batch_size, 64), shuffle=False, workers=args.workers,
                            indices=val_idx)
    best = -math.inf
    history = None
    for epoch in range(args.epochs):
        history = fit(model, train_loader, val=val_loader, epochs=1, trainer=trainer, schedule=schedule,
                      history=history, verbose=not args.quiet, workers=args.workers)
        model.save(os.path.join(args.output_dir, "last.safetensors"))
        rec = history[-1]
        score = rec.val_acc if not math.isnan(rec.val_acc) else rec.train_acc
        if score > best:
            best = score
            model.save(os.path.join(args.output_dir, "best.safetensors"))
    _write_logs(history, args.output_dir, ctx)
    test_loader = None
    if test_ds is not None:
        test_loader = Loader(test_ds, eval_tf, batch_size=max(args.batch_size, 64), shuffle=False,
                             workers=args.workers)
    elif test_idx:
        test_loader = Loader(ds, eval_tf, batch_size=max(args.batch_size, 64), shuffle=False, workers=args.workers,
                             indices=test_idx)
    if test_loader is not None:
        with evaluate(model, test_loader) as m:
            _print_metrics("test", m, sys.stdout)
            _write_report(args.output_dir, ctx, history, {"test": m}, args.model, args.data)
    print("saved %s" % os.path.join(args.output_dir, "last.safetensors"), file=sys.stderr)
    return 0


def _write_logs(history, out, ctx):
    try:
        history.write_csv(os.path.join(out, "train_log.csv"), ctx)
        history.write_json(os.path.join(out, "train_log.json"), ctx)
    except UnsupportedError as e:
        print("%s: train_log not written: %s" % (PROG, e), file=sys.stderr)


def _write_report(out, ctx, history, metrics, model_name, data):
    try:
        with Report(ctx) as r:
            r.set("model", model_name)
            r.set("dataset", data)
            if history is not None and len(history):
                r.set("epochs", len(history))
                r.set_history(history)
            for split, m in metrics.items():
                r.add_metrics(split, m)
            r.write(os.path.join(out, "report"))
    except UnsupportedError as e:
        print("%s: report not written: %s" % (PROG, e), file=sys.stderr)


def _print_metrics(split, m, f):
    f.write("%s: %d images, accuracy %.4f, balanced accuracy %.4f, macro F1 %.4f, weighted F1 %.4f, "
            "log loss %.4f\n" % (split, m.count, m.accuracy, m.balanced_accuracy, m.f1(MACRO), m.f1(WEIGHTED),
                                 m.log_loss))
    f.write("%-20s %9s %9s %9s %8s\n" % ("class", "precision", "recall", "f1", "support"))
    for name, p, r, f1, sup in m.per_class():
        f.write("%-20s %9.4f %9.4f %9.4f %8d\n" % (name[:20], p, r, f1, sup))


# ------------------------------------------------------------------- evaluate


def _model_transform(model, ctx, img_size=0, resize=0):
    c = model.in_channels
    size = img_size or int(model.get_info("image_size", "0") or 0)
    rs = resize or (int(model.get_info("resize", "0") or 0) if not img_size else 0) or size
    norm = model.normalization
    if size and norm:
        return Transform.eval_preset(rs, size, c, norm[0], norm[1], context=ctx), size
    t = Transform(ctx)
    if size:
        t.resize(rs).center_crop(size)
    if norm:
        t.normalize(*norm)
    return t, size


def cmd_evaluate(args):
    ctx = Context(backend=args.backend, threads=args.threads)
    model = Model.load(args.checkpoint, ctx)
    ds = open_dataset(args.data, ctx, args, test=True)
    tf, _ = _model_transform(model, ctx, args.img_size)
    loader = Loader(ds, tf, batch_size=args.batch_size, shuffle=False, workers=args.workers)
    with evaluate(model, loader) as m:
        _print_metrics("evaluate", m, sys.stdout)
        if args.output_dir:
            os.makedirs(args.output_dir, exist_ok=True)
            _write_report(args.output_dir, ctx, None, {"test": m}, args.checkpoint, args.data)
    return 0


# -------------------------------------------------------------------- predict


def _inputs(paths):
    """(path, kind) of every input: PNG files, the *.png of folders (sorted), CSV rows."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(os.path.join(p, f) for f in sorted(os.listdir(p)) if f.lower().endswith(".png"))
        elif p.lower().endswith(".csv"):
            base = os.path.dirname(p)
            with open(p, newline="") as f:
                for row in csv.DictReader(f):
                    v = row.get("image")
                    if v:
                        out.append(v if os.path.isabs(v) else os.path.join(base, v))
        else:
            out.append(p)
    return out


def _field(s):
    if any(ch in s for ch in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def _softmax(z, t):
    mx = max(z)
    e = [math.exp((v - mx) / t) for v in z]
    s = sum(e)
    return [v / s for v in e]


def _sigmoid_header(heads, names):
    """path,labels,p_<label>... (prefixed headN_ per head when there are several)."""
    hdr = ["path"]
    for hd in range(heads):
        p = "head%d_" % hd if heads > 1 else ""
        hdr += ["%slabels" % p] + [_field("%sp_%s" % (p, nm)) for nm in names]
    return hdr


def _sigmoid_cells(z, heads, names, threshold):
    """Per head: the labels whose sigmoid probability is >= threshold (compared in
    float32, as nc-predict does), joined by '|', then every label's probability."""
    from ctypes import c_float
    from .core import _sigmoid
    k, line, t = len(names), [], c_float(threshold).value
    for hd in range(heads):
        p = [_sigmoid(v) for v in z[hd * k:(hd + 1) * k]]
        line.append(_field("|".join(nm for nm, v in zip(names, p) if c_float(v).value >= t)))
        line += ["%.6g" % v for v in p]
    return line


def cmd_predict(args):
    ctx = Context(backend=args.backend, threads=args.threads)
    model = Model.load(args.checkpoint, ctx)
    heads, classes, c = model.num_heads, model.num_classes, model.in_channels
    names = model.class_names or [str(k) for k in range(classes)]
    sigmoid = model.output == "sigmoid"
    if sigmoid and args.top_k:
        raise UsageError("--top-k ranks softmax classes; %s is a multi-label (sigmoid) model" % args.checkpoint)
    if args.threshold is not None and not (0.0 <= args.threshold <= 1.0):
        raise UsageError("--threshold %g is not a probability in [0, 1]" % args.threshold)
    top_k = args.top_k or min(5, classes)
    if top_k > classes:
        raise UsageError("--top-k %d is more than the model's %d classes" % (top_k, classes))
    temp = 1.0
    if model.get_info("temperature") and not args.no_temperature:
        temp = float(model.get_info("temperature"))
    tf, size = _model_transform(model, ctx, args.img_size, args.resize)
    out = io.StringIO()
    hdr = ["path"]
    for hd in range(heads):
        p = "head%d_" % hd if heads > 1 else ""
        hdr += ["%sclass" % p, "%sprobability" % p]
        for k in range(2, top_k + 1):
            hdr += ["%stop%d_class" % (p, k), "%stop%d_prob" % (p, k)]
        hdr += [_field("%sp_%s" % (p, nm)) for nm in names]
    if sigmoid:
        hdr = _sigmoid_header(heads, names)
    out.write(",".join(hdr) + "\n")
    failures = 0
    batch, rows = [], []
    shape = None

    def flush():
        if not batch:
            return
        logits = model.forward(_stack(batch, shape))
        for path, z in zip(rows, logits):
            z = [float(v) for v in z]
            line = [_field(path)]
            if sigmoid:
                thr = 0.5 if args.threshold is None else args.threshold
                out.write(",".join(line + _sigmoid_cells(z, heads, names, thr)) + "\n")
                continue
            for hd in range(heads):
                p = _softmax(z[hd * classes:(hd + 1) * classes], temp)
                order = sorted(range(classes), key=lambda k: (-p[k], k))[:top_k]
                for k in order:
                    line += [_field(names[k]), "%.6g" % p[k]]
                line += ["%.6g" % v for v in p]
            out.write(",".join(line) + "\n")
        batch.clear()
        rows.clear()

    for path in _inputs(args.paths):
        try:
            with read_png(path, ctx) as img:
                if img.channels != c:
                    raise Error("%d channel%s, but the model expects %d" % (img.channels, "" if img.channels == 1
                                                                             else "s", c))
                with tf.apply(img) as t:
                    if shape is None:
                        shape = t.shape
                    elif t.shape != shape:
                        raise Error("is %dx%d (width x height), but the model input is %dx%d; give --img-size"
                                    % (t.width, t.height, shape[2], shape[1]))
                    batch.append(t.to_array())
                    rows.append(path)
        except Error as e:
            print("%s: %s: %s" % (PROG, path, e), file=sys.stderr)
            failures += 1
            continue
        if len(batch) == args.batch_size:
            flush()
    flush()
    text = out.getvalue()
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(text)
    return 1 if failures else 0


def _stack(images, shape):
    if B.HAVE_NUMPY:
        return B.np.stack(images)
    return images  # nested lists: (n, c, h, w)


# ----------------------------------------------------------------------- main


def _parser():
    p = argparse.ArgumentParser(prog=PROG, description="Train, evaluate and run neurc image classifiers.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--backend", default="auto", help="auto, ref, onednn or cuda (default auto)")
        sp.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")

    def data_opts(sp):
        sp.add_argument("--image-columns", default="", help="CSV: image columns stacked as channels")
        sp.add_argument("--label-columns", default="", help="CSV: label column")
        sp.add_argument("--optional-column", default="", help="CSV: optional image column")
        sp.add_argument("--workers", type=int, default=2, help="image decoding threads")

    t = sub.add_parser("train", help="train a model (as nc-train)")
    t.add_argument("--data", required=True, help="class folder, CSV manifest or folder of IDX files")
    t.add_argument("--val-data", default="")
    t.add_argument("--test-data", default="", help="separate test set (IDX folders use their t10k pair)")
    t.add_argument("--val-split", type=float, default=0.1)
    t.add_argument("--test-split", type=float, default=0.1)
    t.add_argument("--limit", type=int, default=0, help="train on at most N images (0 = all)")
    t.add_argument("--in-channels", type=int, default=0)
    t.add_argument("--img-size", type=int, default=0)
    t.add_argument("--augment", choices=["none", "full", "auto"], default="auto",
                   help="full = the library's training preset; auto = full from 64 px, else none")
    t.add_argument("--mean", default="")
    t.add_argument("--std", default="")
    t.add_argument("--model", default="resnet18")
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--head", choices=["linear", "mlp"], default="linear")
    t.add_argument("--head-dropout", type=float, default=0.0)
    t.add_argument("--small-input", choices=["auto", "0", "1"], default="auto")
    t.add_argument("--pretrained", default="")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd")
    t.add_argument("--lr", type=float, default=None, help="default 0.01 (sgd), 0.001 (adam/adamw)")
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--scheduler", choices=["none", "cosine", "step", "plateau"], default="none")
    t.add_argument("--step-size", type=int, default=30)
    t.add_argument("--gamma", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--output-dir", default="nc-train-out")
    t.add_argument("--quiet", action="store_true")
    common(t)
    data_opts(t)

    e = sub.add_parser("evaluate", help="metrics of a saved model on a data set")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True, help="class folder, CSV manifest or IDX folder (its t10k pair)")
    e.add_argument("--img-size", type=int, default=0)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--output-dir", default="", help="write report.json, summary.txt and SVGs there")
    common(e)
    data_opts(e)

    r = sub.add_parser("predict", help="classify PNG files (as nc-predict)")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--output", default="", help="CSV file (default stdout)")
    r.add_argument("--top-k", type=int, default=0)
    r.add_argument("--no-temperature", action="store_true")
    r.add_argument("--threshold", type=float, default=None,
                   help="multi-label (sigmoid) models: list the labels whose probability is >= this [0.5]")
    r.add_argument("--img-size", type=int, default=0)
    r.add_argument("--resize", type=int, default=0)
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("paths", nargs="+", metavar="PATH", help="PNG file, folder of PNGs or CSV manifest")
    common(r)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}[args.command](args)
    except UsageError as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 2
    except Error as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
