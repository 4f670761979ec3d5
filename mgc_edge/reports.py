"""Render an `evaluate_predictions` report in the terminal with rich: every number beside its baseline.

`render_report` is longer than 60 lines: it draws the report's tables one after the other, in the order
they are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from mgc_edge.metrics import MIN_CLIPS_TO_JUDGE

__all__ = ["render_report"]


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100.0 * float(value):.1f}%"


def _int(value: Any) -> str:
    return "-" if value is None else str(int(value))


def _label_and_name(label: str, name: str | None) -> str:
    return label if not name or name == label else f"{label} ({name})"


def render_report(report: Mapping[str, Any], console: Console, title: str = "Evaluation") -> None:
    """Print the summary (frame vs majority baseline, clip vs frame), the per-class table and small classes."""
    base = report["baseline"]
    clip = report.get("clip")
    source = "train majority" if base.get("source") == "train" else "eval-set majority"

    summary = Table(
        title=f"{title}: {report['n']} frames, {report['num_classes']} classes", title_justify="left"
    )
    summary.add_column("metric")
    summary.add_column("frame", justify="right")
    summary.add_column(f"baseline (always {base['label']}, {source})", justify="right")
    if clip is not None:
        summary.add_column(f"clip ({clip['n_clips']} clips)", justify="right")
    top5_name = f"top-{report.get('top5_k', 5)}"
    rows = (
        ("top-1", "top1", "top1"),
        (top5_name, "top5", "top5"),
        ("balanced acc", "balanced_accuracy", "balanced_accuracy"),
        ("macro-F1", "macro_f1", "macro_f1"),
    )
    for name, key, base_key in rows:
        cells = [name, _pct(report[key]), _pct(base.get(base_key))]
        if clip is not None:
            cells.append(_pct(clip.get(key)))
        summary.add_row(*cells)
    if clip is not None:
        summary.add_row("majority baseline top-1, clips", "", "", _pct(base.get("clip_top1")))
    console.print(summary)
    if clip is not None and clip.get("mixed_label_clips"):
        console.print(
            f"[yellow]{clip['mixed_label_clips']} clip(s) mix frames of different labels; "
            "each is scored by its majority label.[/yellow]"
        )

    per_class = Table(title="Per class", title_justify="left", show_edge=False, pad_edge=False)
    for col, justify in (
        ("label", "right"),
        ("name", "left"),
        ("support", "right"),
        ("clips", "right"),
        ("precision", "right"),
        ("recall", "right"),
        ("F1", "right"),
    ):
        # At 80 columns (a pipe, a log) only the name gives way, wrapping onto a second line: the numbers
        # and the headers stay whole (rich narrows the wrappable columns first).
        is_name = col == "name"
        per_class.add_column(
            col,
            justify=justify,
            overflow="fold" if is_name else "ellipsis",
            no_wrap=not is_name,
            max_width=40 if is_name else None,
        )
    too_small = set(report.get("too_small_to_judge", []))
    for row in report["per_class"]:
        style = "dim" if row["label"] in too_small else None
        per_class.add_row(
            str(row["label"]),
            str(row["name"]),
            _int(row["support"]),
            _int(row.get("clips")),
            _pct(row["precision"]),
            _pct(row["recall"]),
            _pct(row["f1"]),
            style=style,
        )
    console.print(per_class)

    unit = report.get("judged_on", "clips")
    threshold = report.get("min_clips_to_judge", MIN_CLIPS_TO_JUDGE)
    if too_small:
        shown = {str(r["label"]): str(r["name"]) for r in report["per_class"]}
        names = ", ".join(
            _label_and_name(str(label), shown.get(str(label))) for label in report["too_small_to_judge"]
        )
        console.print(f"Too small to judge (fewer than {threshold} {unit} here): {names}.")
    else:
        console.print(f"Every class has at least {threshold} {unit} here.")
