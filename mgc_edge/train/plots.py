"""Training curves and confusion-matrix figures, written atomically as PNG.

Uses matplotlib's object-oriented API with the Agg canvas directly: no pyplot, so no global backend switch,
no figure registry to leak, and it works on a headless box. Imported only by training code (`[train]` extra).
matplotlib itself is imported when a figure is drawn: its first import on a machine scans every system font
into a cache (15 s on a fresh 16-core GPU box, longer than the demo's whole training), which
`warm_font_cache()` starts in a background process while training runs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mgc_edge.fileio import atomic_path
from mgc_edge.labels import Labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_confusion", "plot_curves", "warm_font_cache"]
FONT_CACHE_WAIT_S = 120  # the longest a plot waits for the background font scan before scanning itself
_font_scan: subprocess.Popen[bytes] | None = None


def _font_cache_exists() -> bool:
    import matplotlib  # cheap: the font scan happens in matplotlib.font_manager

    return any(Path(matplotlib.get_cachedir()).glob("fontlist-v*.json"))


def warm_font_cache() -> None:
    """Build matplotlib's font cache in a background process, once per machine, so that the plots at the
    end of a run find it ready."""
    global _font_scan
    if _font_scan is not None or _font_cache_exists():
        return
    _font_scan = subprocess.Popen(
        [sys.executable, "-c", "import matplotlib.font_manager"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


def _figure(**kwargs: Any) -> Figure:
    """A new Agg figure, once the background font scan (if any) is done."""
    global _font_scan
    if _font_scan is not None:
        try:
            _font_scan.wait(timeout=FONT_CACHE_WAIT_S)
        except subprocess.TimeoutExpired:  # matplotlib scans by itself (and locks its cache file)
            _font_scan.kill()
        _font_scan = None
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _as_float(value: Any) -> float:
    """A metrics.csv cell as float: missing, empty or unparsable cells become NaN (e.g. no validation)."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _save(fig: Figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly; never depends on the pyplot backend
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)


def plot_curves(rows: Sequence[Mapping[str, Any]], path: Path, baseline_acc: float | None = None) -> None:
    """Plot loss and accuracy per epoch (train and val) side by side, to spot under- and overfitting.

    `rows` are metrics.csv rows (numbers or the strings csv.DictReader gives); `val_*` may be missing or NaN.
    `baseline_acc`, if given, is drawn as the majority-class accuracy so a flat curve is seen for what it is.
    """
    if not rows:
        raise ValueError("plot_curves needs at least one metrics row.")
    epochs = np.array([_as_float(r.get("epoch", i + 1)) for i, r in enumerate(rows)])
    if np.isnan(epochs).any():
        epochs = np.arange(1, len(rows) + 1, dtype=float)

    def series(key: str) -> np.ndarray:
        return np.array([_as_float(r.get(key)) for r in rows])

    fig = _figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric, title in ((ax_loss, "loss", "Loss"), (ax_acc, "acc", "Accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = series(f"{split}_{metric}")
            if np.isfinite(values).any():
                ax.plot(epochs, values, style, markersize=3, label=split)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric if metric == "loss" else "accuracy")
        ax.grid(True, alpha=0.3)
    if baseline_acc is not None and math.isfinite(baseline_acc):
        ax_acc.axhline(baseline_acc, color="grey", linestyle="--", linewidth=1, label="majority baseline")
    for ax in (ax_loss, ax_acc):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    _save(fig, Path(path))


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Labels, path: Path, title: str = "") -> None:
    """Plot the confusion matrix twice: raw counts and row-normalised (recall per true class).

    Counts show where the mass is; row-normalised shows how rare classes fare, which counts hide when one class
    holds a quarter of the frames. Tick labels are label ids so 32 classes stay readable.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    num_classes = len(labels)
    if cm.shape != (num_classes, num_classes):
        raise ValueError(
            f"confusion must be {num_classes}x{num_classes} for {num_classes} labels; got {cm.shape}."
        )
    row_sums = cm.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(row_sums > 0, cm / row_sums, 0.0)

    side = max(4.0, 0.22 * num_classes + 2.0)
    fig = _figure(figsize=(2 * side + 1.5, side + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    tick_size = 8 if num_classes <= 16 else 6
    annotate = num_classes <= 12  # numbers in cells only where they fit
    panels = (
        (axes[0], cm, "counts", "Blues", None),
        (axes[1], norm, "row-normalised (recall)", "Blues", 1.0),
    )
    for ax, data, name, cmap, vmax in panels:
        image = ax.imshow(data, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set_title(name, fontsize=10)
        ticks = np.arange(num_classes)
        ax.set_xticks(ticks, labels=list(labels.ids), fontsize=tick_size, rotation=90)
        ax.set_yticks(ticks, labels=list(labels.ids), fontsize=tick_size)
        ax.set_xlabel("predicted", fontsize=9)
        ax.set_ylabel("true", fontsize=9)
        if annotate:
            top = data.max() if data.size else 0.0
            for (r, c), v in np.ndenumerate(data):
                text = f"{int(v)}" if vmax is None else f"{v:.2f}"
                ax.text(
                    c,
                    r,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > top / 2 else "black",
                )
    if title:
        fig.suptitle(title)
    _save(fig, Path(path))
