"""Plots write readable PNGs atomically, accept metrics.csv strings, and never import pyplot."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from mgc_edge.labels import Labels  # noqa: E402
from mgc_edge.train.plots import plot_confusion, plot_curves  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert float(image[..., :3].std()) > 0.01  # something was drawn, not a blank canvas
    return image


def test_plot_curves_writes_two_panel_png(tmp_path):
    # As csv.DictReader gives them: strings, an empty val cell, and a row without val keys at all.
    rows = [
        {"epoch": "1", "train_loss": "2.9", "train_acc": "0.20", "val_loss": "", "val_acc": ""},
        {"epoch": "2", "train_loss": "2.1", "train_acc": "0.35", "val_loss": "2.4", "val_acc": "0.30"},
        {"epoch": 3, "train_loss": 1.7, "train_acc": 0.45, "val_loss": float("nan"), "val_acc": 0.33},
        {"epoch": 4, "train_loss": 1.5, "train_acc": 0.50},
    ]
    path = tmp_path / "sub" / "curves.png"
    plot_curves(rows, path, baseline_acc=0.273)
    image = _read_png(path)
    assert image.shape[1] > 2 * image.shape[0]  # two panels side by side: wide
    assert sorted(p.name for p in path.parent.iterdir()) == ["curves.png"]  # no temp file left behind


def test_plot_curves_rejects_no_rows(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plot_curves([], tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_plot_confusion_32_classes(tmp_path):
    rng = np.random.default_rng(0)
    labels = Labels(tuple(str(i) for i in range(1, 33)))
    cm = rng.integers(0, 50, size=(32, 32))
    cm[:, 5] = 0  # a class never predicted and, below, one never present: must not divide by zero
    cm[7, :] = 0
    path = tmp_path / "confusion.png"
    plot_confusion(cm.tolist(), labels, path, title="val, epoch 3")
    image = _read_png(path)
    assert image.shape[0] >= 500 and image.shape[1] > image.shape[0]


def test_plot_confusion_small_and_bad_shape(tmp_path):
    labels = Labels(("1", "2", "3"), ("a", "b", "c"))
    plot_confusion([[2, 1, 0], [0, 1, 1], [0, 0, 1]], labels, tmp_path / "c.png")
    _read_png(tmp_path / "c.png")
    with pytest.raises(ValueError, match="3x3"):
        plot_confusion([[1, 0], [0, 1]], labels, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_importing_plots_leaves_pyplot_alone():
    code = "import sys, mgc_edge.train.plots; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_font_cache_is_built_in_the_background_once_per_machine(tmp_path):
    """A machine without matplotlib's font cache gets it from a background process started when training
    starts; the first plot waits for it, and a machine that has it starts nothing."""
    script = (
        "import sys, pathlib; from mgc_edge.train import plots; plots.warm_font_cache(); "
        "started = plots._font_scan is not None; "
        "plots.plot_curves([{'epoch': 1, 'train_loss': 1.0, 'train_acc': 0.5}], pathlib.Path(sys.argv[1])); "
        "print(started)"
    )
    env = {**__import__("os").environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"curves{i}.png")],
            env=env, capture_output=True, text=True, check=True, timeout=300,
        ).stdout.split()[-1]
        for i in range(2)
    ]  # fmt: skip
    assert runs == ["True", "False"]
    assert list((tmp_path / "mpl").glob("fontlist-v*.json"))
    _read_png(tmp_path / "curves0.png")
