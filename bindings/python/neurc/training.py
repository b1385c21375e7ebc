"""fit() and evaluate(): a training loop over numpy arrays, plain Python buffers/lists,
a Dataset or a Loader, with a progress bar, per-epoch history and validation metrics
from the metrics API. The hot path (one nc_trainer_step per batch) runs in C with the
GIL released; Python only gathers batch rows and keeps score."""

import ctypes
import math
import random
import sys
import time
from ctypes import byref

from . import _buffers as B
from ._lib import lib, nc_batch, nc_step_stats
from .core import STOP, Model, Progress, Trainer
from .data import Dataset, Loader
from .metrics import Metrics
from .reports import EpochRecord, History


class _Arrays:
    """(x, y) arrays as one source of batches: x (N, C, H, W) float32 converted once
    (zero-copy for a C-contiguous float32 numpy array), labels (N,) or (N, heads)."""

    def __init__(self, x, y, per_sample, what):
        self.x = B.as_input(x, what + " x", "f")
        if len(self.x.shape) != 4:
            raise ValueError("%s x must be 4-D (n, c, h, w), got shape %s" % (what, self.x.shape))
        self.n = self.x.shape[0]
        self.y = B.as_input(y, what + " labels", "i")
        if self.y.count != self.n * per_sample:
            raise ValueError("%s labels: need %d values (%d samples x %d), got %d"
                             % (what, self.n * per_sample, self.n, per_sample, self.y.count))
        self.per_sample = per_sample
        self.sample = self.x.shape[1] * self.x.shape[2] * self.x.shape[3]

    def batches(self, batch_size, shuffle, seed, epoch):
        order = list(range(self.n))
        if shuffle:
            random.Random((seed * 1000003) ^ epoch).shuffle(order)
        c, h, w = self.x.shape[1:]
        xb = (ctypes.c_float * (batch_size * self.sample))()
        yb = (ctypes.c_int32 * (batch_size * self.per_sample))()
        xs, ys = 4 * self.sample, 4 * self.per_sample
        xa, ya = ctypes.addressof(xb), ctypes.addressof(yb)
        for s in range(0, self.n, batch_size):
            idx = order[s:s + batch_size]
            for j, i in enumerate(idx):
                ctypes.memmove(xa + j * xs, self.x.address + i * xs, xs)
                ctypes.memmove(ya + j * ys, self.y.address + i * ys, ys)
            yield xa, ya, len(idx), c, h, w


class _LoaderSource:
    def __init__(self, loader):
        self.loader = loader
        self.n = loader.num_samples

    def batches(self, batch_size, shuffle, seed, epoch):
        self.loader.start_epoch(epoch)
        b = nc_batch()
        while True:
            self.loader._check(lib.nc_loader_next(self.loader._h, byref(b)), "nc_loader_next")
            if b.n == 0:
                return
            yield b.x, b.labels, b.n, b.c, b.h, b.w


def _source(data, model, loss_kind, batch_size, shuffle, seed, what, workers):
    per = model.num_outputs if loss_kind == 1 else model.num_heads
    if isinstance(data, Loader):
        return _LoaderSource(data), None
    if isinstance(data, Dataset):
        loader = Loader(data, batch_size=batch_size, shuffle=shuffle, seed=seed, workers=workers)
        return _LoaderSource(loader), loader
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _Arrays(data[0], data[1], per, what), None
    raise TypeError("%s data must be (x, labels), a neurc.Dataset or a neurc.Loader, not %s"
                    % (what, type(data).__name__))


class _Progress:
    """A one-line progress bar on a terminal; plain per-epoch lines otherwise."""

    def __init__(self, stream, mode):
        self.stream = stream
        tty = hasattr(stream, "isatty") and stream.isatty()
        self.bar = tty if mode is None else bool(mode)
        self.last = 0.0

    def update(self, epoch, epochs, done, total, loss, acc, ips, force=False):
        if not self.bar:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        width = 24
        fill = int(width * done / total) if total else width
        self.stream.write("\repoch %d/%d [%s%s] %d/%d loss %.4f acc %.4f %.0f img/s" % (
            epoch, epochs, "#" * fill, "." * (width - fill), done, total, loss, acc, ips))
        self.stream.flush()

    def end_epoch(self, rec, epochs):
        line = "epoch %d/%d: train loss %.4f acc %.4f" % (rec.epoch, epochs, rec.train_loss, rec.train_acc)
        if not math.isnan(rec.val_loss):
            line += " | val loss %.4f acc %.4f" % (rec.val_loss, rec.val_acc)
        line += " | lr %.4g | %.1f s, %.0f img/s" % (rec.lr, rec.seconds, rec.images_per_sec)
        self.stream.write(("\r" + line + " " * 8 + "\n") if self.bar else line + "\n")
        self.stream.flush()


def fit(model, train, val=None, epochs=1, batch_size=64, trainer=None, schedule=None, schedule_per="epoch",
        early_stopping=None, shuffle=True, seed=0, progress=None, verbose=True, stream=None, workers=2,
        history=None, callback=None, **trainer_options):
    """Trains `model` for `epochs` epochs and returns its History.

    train / val: (x, labels) arrays (numpy, buffers or nested lists; x (n, c, h, w)
    float32, labels (n,) or (n, heads)), a Dataset (a Loader with batch_size, shuffle and
    seed is made for it) or a Loader. trainer: a Trainer, or None to make one from
    trainer_options (lr, momentum, optimizer, ...). schedule: a Schedule attached to the
    trainer and stepped once per "epoch" (with the validation loss, for plateau) or per
    "batch". early_stopping: an EarlyStopping fed the validation accuracy each epoch
    (best weights restored when it stops). progress: None = a bar on a terminal, plain
    lines otherwise; verbose=False prints nothing. Each epoch appends an EpochRecord to
    the history (a new one unless `history` is given).

    callback: fn(neurc.Progress) after every training step (phase "train", done/total
    batches of the epoch, running loss and accuracy); returning neurc.STOP ends fit
    cleanly after that step and returns the history of the finished epochs. Ctrl-C
    (KeyboardInterrupt) also stops at a step boundary, or stops the validation through
    the library's progress callback; the exception carries .history (the finished
    epochs), and model and trainer hold every step taken."""
    if not isinstance(model, Model):
        raise TypeError("model must be a neurc.Model")
    if schedule_per not in ("epoch", "batch"):
        raise ValueError("schedule_per must be 'epoch' or 'batch'")
    own_trainer = trainer is None
    if own_trainer:
        trainer = Trainer(model, seed=seed, **trainer_options)
    elif trainer_options:
        raise TypeError("trainer options (%s) given with a trainer" % ", ".join(sorted(trainer_options)))
    if trainer.model is not model:
        raise ValueError("trainer belongs to another model")
    if schedule is not None:
        trainer.set_schedule(schedule)
    src, own_loader = _source(train, model, trainer.loss, batch_size, shuffle, seed, "train", workers)
    history = History() if history is None else history
    stream = sys.stderr if stream is None else stream
    prog = _Progress(stream, progress) if verbose else None
    start_epoch = (history.records[-1].epoch if len(history) else 0)
    stats = nc_step_stats()
    try:
        for e in range(start_epoch, start_epoch + epochs):
            t0 = time.perf_counter()
            loss_sum, correct, total, seen = 0.0, 0, 0, 0
            nb = math.ceil(src.n / batch_size) if isinstance(src, _Arrays) else len(src.loader)
            done = 0
            for xa, ya, n, c, h, w in src.batches(batch_size, shuffle, seed, e):
                trainer._check(lib.nc_trainer_step(trainer._h, xa, ya, n, c, h, w, byref(stats)), "nc_trainer_step")
                if schedule is not None and schedule_per == "batch":
                    schedule.step()
                if not stats.skipped:
                    loss_sum += stats.loss * n
                    correct += stats.correct
                    total += stats.total
                    seen += n
                done += 1
                if prog:
                    dt = time.perf_counter() - t0
                    prog.update(e + 1, start_epoch + epochs, done, nb, loss_sum / max(seen, 1),
                                correct / max(total, 1), seen / dt if dt > 0 else 0.0)
                if callback is not None and _stop(callback, Progress(
                        "train", done, nb, e, loss_sum / seen if seen else math.nan,
                        correct / total if total else math.nan, None)):
                    return history
            secs = time.perf_counter() - t0
            val_loss = val_acc = math.nan
            if val is not None:
                with evaluate(model, val, batch_size=max(batch_size, 256), workers=workers) as m:
                    val_loss, val_acc = m.log_loss, m.accuracy
            rec = EpochRecord(e + 1, loss_sum / seen if seen else math.nan, correct / total if total else math.nan,
                              val_loss, val_acc, trainer.group_lr("default"), secs, seen / secs if secs > 0 else 0.0)
            history.append(rec)
            if prog:
                prog.end_epoch(rec, start_epoch + epochs)
            if schedule is not None and schedule_per == "epoch":
                schedule.step(val_loss if not math.isnan(val_loss) else rec.train_loss)
            if early_stopping is not None:
                metric = val_acc if not math.isnan(val_acc) else rec.train_acc
                _, stop = early_stopping.update(metric)
                if stop:
                    early_stopping.restore_best()
                    break
    except KeyboardInterrupt as e:
        e.history = history
        raise
    finally:
        if own_loader is not None:
            own_loader.close()
        if own_trainer:
            trainer.close()
    return history


def _stop(callback, report):
    answer = callback(report)
    return answer is True or answer == STOP


def evaluate(model, data, batch_size=256, head=0, class_names=None, workers=2, ignore_label=-100):
    """Metrics of head `head` of `model` on data ((x, labels) arrays, a Dataset or a
    Loader), as a neurc.Metrics (close it, or use it in a with block, when done)."""
    if not isinstance(model, Model):
        raise TypeError("model must be a neurc.Model")
    heads = model.num_heads
    if class_names is None:
        class_names = model.class_names
    own = None
    if isinstance(data, Dataset):
        own = data = Loader(data, batch_size=batch_size, shuffle=False, workers=workers)
    try:
        if isinstance(data, Loader):
            logits, labels = model.predict_loader(data)
            if class_names is None:
                names = data.dataset.class_names(head)
                class_names = names if len(names) == model.num_classes else None
        elif isinstance(data, (tuple, list)) and len(data) == 2:
            logits, labels = model.predict(data[0], batch_size), data[1]
        else:
            raise TypeError("data must be (x, labels), a neurc.Dataset or a neurc.Loader")
        return Metrics(logits, labels, num_classes=model.num_classes, head=head, num_heads=heads,
                       ignore_label=ignore_label, class_names=class_names, context=model.context)
    finally:
        if own is not None:
            own.close()
