"""plot_history / plot_confusion: matplotlib figures when matplotlib is installed (Agg
when there is no display), otherwise the C library's self-contained SVG files.
Set NEURC_NO_MATPLOTLIB=1 to get the SVG files even with matplotlib installed."""

import math
import os
import sys


def _matplotlib():
    if os.environ.get("NEURC_NO_MATPLOTLIB"):
        return None
    try:
        import matplotlib
    except ImportError:
        return None
    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if (headless and "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND")
            and "ipykernel" not in sys.modules):
        matplotlib.use("Agg")
    from matplotlib.figure import Figure
    return Figure


def _finish(fig, path):
    # a plain Figure (not registered with pyplot): no global state, nothing to close;
    # Jupyter displays a returned Figure
    if path is not None:
        fig.savefig(os.fspath(path), bbox_inches="tight")
    return fig


def plot_history(history, path=None):
    """Loss and accuracy per epoch, train vs validation. With matplotlib: returns the
    Figure (saved to `path` when given). Without: writes the SVG of
    nc_svg_training_curves to `path` (default "history.svg") and returns the path."""
    Figure = _matplotlib()
    if Figure is None:
        from .reports import svg_training_curves
        path = os.fspath(path) if path is not None else "history.svg"
        svg_training_curves(history, path)
        return path
    from matplotlib.ticker import MaxNLocator
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = history["epoch"]
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = history["%s_%s" % (split, key)]
            if any(not math.isnan(y) for y in ys):
                ax.plot(epochs, ys, style, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    return _finish(fig, path)


def plot_confusion(metrics, path=None, normalize=True, class_names=None):
    """The confusion matrix (rows: true class), coloured by row fraction when
    `normalize`, counts printed. matplotlib Figure, or the SVG of
    nc_svg_confusion_matrix at `path` (default "confusion.svg") without matplotlib."""
    names = class_names if class_names is not None else metrics.class_names
    Figure = _matplotlib()
    if Figure is None:
        from .reports import svg_confusion_matrix
        path = os.fspath(path) if path is not None else "confusion.svg"
        svg_confusion_matrix(metrics, path, normalize=normalize, class_names=names)
        return path
    k = metrics.num_classes
    counts = [[metrics.confusion(t, p) for p in range(k)] for t in range(k)]
    shown = [[c / max(sum(row), 1) for c in row] for row in counts] if normalize else counts
    fig = Figure(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    labels = list(names) if names is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(r) for r in shown) if k else 1
    for t in range(k):
        for p in range(k):
            ax.text(p, t, str(counts[t][p]), ha="center", va="center", fontsize=8,
                    color="white" if shown[t][p] > 0.6 * top else "black")
    return _finish(fig, path)
