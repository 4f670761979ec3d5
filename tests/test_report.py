"""The rich report shows every headline number beside the majority baseline, and names small classes."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from mgc_edge.labels import Labels, attach_names
from mgc_edge.metrics import evaluate_predictions
from mgc_edge.reports import render_report

LABELS3 = Labels(("1", "2", "3"), ("Turtle neck", "Bulging face", "Touching hat"))
Y = np.array([0, 0, 0, 1, 1, 2])
P = np.array(
    [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.5, 0.4], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6]]
)


def _render(report, title="Validation"):
    console = Console(record=True, width=120, color_system=None)
    render_report(report, console, title=title)
    return console.export_text()


def test_report_shows_baseline_clip_and_names():
    report = evaluate_predictions(
        Y, P, LABELS3, groups=["a", "a", "a", "b", "c", "d"], train_counts=[1, 10, 2], min_clips_to_judge=2
    )
    text = _render(report)
    assert "Validation: 6 frames, 3 classes" in text
    assert "baseline (always 2, train majority)" in text
    assert "33.3%" in text  # baseline top-1: 2 of 6 frames are class "2"
    assert "66.7%" in text  # frame top-1
    assert "clip (4 clips)" in text
    for name in ("Turtle neck", "Bulging face", "Touching hat"):
        assert name in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("Too small to judge (fewer than 2 clips here)")
    assert "1 (Turtle neck)" in last and "3 (Touching hat)" in last and "Bulging" not in last


def test_report_without_groups_has_no_clip_column():
    text = _render(evaluate_predictions(Y, P, LABELS3, min_clips_to_judge=1))
    assert "clip (" not in text
    assert "baseline (always 1, eval-set majority)" in text
    assert text.strip().splitlines()[-1] == "Every class has at least 1 samples here."


def test_report_at_32_imigue_classes_fits_120_columns():
    rng = np.random.default_rng(1)
    labels = attach_names([str(i) for i in range(1, 33)], "imigue")
    y = rng.integers(0, 32, size=300)
    logits = rng.normal(size=(300, 32))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    text = _render(evaluate_predictions(y, probs, labels, groups=[str(i // 3) for i in range(300)]))
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "Illustrative body language" in text
