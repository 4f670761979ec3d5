"""What `webcam`, `predict` and `annotate` show on the terminal while the runtime works: the model's start-up
line, the live status line, the sources, the web view's address and the run's summary tables. The runtime
reports through `live.webcam.Report` and never prints; this is the CLI's side of it (rich)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from mgc_edge.runtime.live.cores import CoreBudget
from mgc_edge.runtime.live.loop import LoopSummary
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sinks.base import BaseSink


def say_classifier(clf: Classifier, first: float, console: Console, budget: CoreBudget | None = None) -> None:
    """The start-up line: model, classes, input size, the provider that really runs, threads, warm-up."""
    h, w = clf.spec.size
    threads = clf.threads
    how = ""
    if threads and clf.device == "cpu":
        how = f" ({threads} thread{'s' if threads != 1 else ''}"
        how += f"; {budget.describe()})" if budget is not None else ")"
    elif clf.binding_choice is not None:
        how = f" ({clf.binding_choice.describe()})"
    elif clf.io_bound:
        how = " (I/O bound on the device" + (", batch 1 as a CUDA graph)" if clf.graphed else ")")
    console.print(
        f"[bold]{escape(clf.path.name)}[/]: {clf.metadata.arch} {clf.metadata.precision}, {clf.num_classes} "
        f"classes, {h}x{w}, on [bold]{clf.provider}[/]{escape(how)}; warm-up {first * 1000:.0f} ms",
        highlight=False,
        soft_wrap=True,
    )
    for line in clf.advice:  # the model is the wrong precision for this device, say
        console.print(f"[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)


def open_classifier(
    model: Path, device: str, threads: int, live: bool, console: Console, notify: Callable[[str], None]
) -> Classifier:
    """The model on the device asked for, warmed up; says which provider really runs (and a fallback)."""
    from mgc_edge.runtime.model.load import load_classifier

    clf, first = load_classifier(model, device, threads, live, notify)
    say_classifier(clf, first, console)
    return clf


class ConsoleSink(BaseSink):
    """A one-line live status on the terminal (label, FPS, state): what a headless run shows meanwhile. With
    several sources, the newest label of each and the frames classified per second in all."""

    wants_image = False

    def __init__(self, console: Console) -> None:
        self._status = console.status("starting", spinner="dots")
        self._status.start()
        self._next = 0.0
        self._last: dict[int, dict[str, Any]] = {}
        self._meter_start, self._count = time.monotonic(), 0

    def frame(self, annotated_bgr: Any, event: dict[str, Any]) -> None:
        self._last[event.get("source", {}).get("index", 0)] = event
        self._count += 1
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.5
        if len(self._last) == 1:
            s, fps = event["smoothed"], event["fps"]
            self._status.update(
                f"frame {event['frame']}  [bold]{escape(s['name'])}[/] {s['prob']:.0%}  capture "
                f"{fps['capture']:.1f} fps  inference {fps['inference']:.1f} fps  latency "
                f"{event['latency_ms']['end_to_end']:.0f} ms"
            )
            return
        rate = self._count / max(now - self._meter_start, 1e-6)
        self._meter_start, self._count = now, 0
        labels = "  ".join(
            f"[{i}] [bold]{escape(e['smoothed']['name'])}[/]" for i, e in sorted(self._last.items())[:8]
        )
        self._status.update(f"{len(self._last)} sources, {rate:.1f} frames/s in all  {labels}")

    def state(self, event: dict[str, Any]) -> None:
        if event["state"] in ("stale", "reconnecting"):
            self._status.update(f"[yellow]{event['state']}[/]: {escape(event['message'])}")

    def close(self) -> None:
        self._status.stop()


def print_summary(summary: LoopSummary, console: Console) -> None:
    from rich.table import Table

    s = summary
    table = Table(title="latency per frame", title_justify="left", show_edge=False)
    table.add_column("stage")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for name, (p50, p95) in s.stages.items():
        table.add_row(name.replace("_", "-"), f"{p50:.2f}", f"{p95:.2f}")
    console.print(table)
    if len(s.sources) > 1:
        console.print(_sources_table(s.sources, s.ended_by))
    dropped = f", {s.dropped} dropped" if s.dropped else ""
    skipped = f", {s.skipped} skipped" if s.skipped else ""
    reconnects = f", {s.reconnects} reconnect{'s' if s.reconnects != 1 else ''}" if s.reconnects else ""
    batches = ""
    if len(s.sources) > 1 and s.batches:
        batches = f" in {s.batches} batches ({s.classified / s.batches:.1f} frames each)"
    console.print(
        f"{s.frames_read} frame{'s' if s.frames_read != 1 else ''} read, {s.classified} classified"
        f"{dropped}{skipped}{reconnects} in "
        f"{s.seconds:.1f} s: [bold]{s.fps:.1f} fps[/] on {s.provider}{batches}; ended by {s.ended_by}.",
        highlight=False,
        soft_wrap=True,
    )
    for path in s.outputs:
        console.print(f"Wrote {escape(path)}", highlight=False, soft_wrap=True)


def _sources_table(sources: Sequence[Any], run_ended_by: str) -> Any:
    """One row per source, readable at 80 columns: its short name (the JSONL has the full one), frames
    classified, dropped and skipped, reconnects, classified per second of its live time, end-to-end latency;
    how it ended where that differs from the run. Headers are never cut: a long name folds instead."""
    from rich.table import Table

    table = Table(
        title="per source",
        title_justify="left",
        show_edge=False,
        box=None,
        padding=(0, 1),
        collapse_padding=True,
    )
    skipped = any(src.skipped for src in sources)
    ended = any(src.ended_by != run_ended_by for src in sources)
    columns = ["#", "source", "classified", "dropped", *(["skipped"] if skipped else []), "reconnects", "fps"]
    columns += ["e2e ms", *(["ended by"] if ended else [])]
    for name in columns:
        if name == "source":
            table.add_column(name, overflow="fold", min_width=len(name))
        elif name == "ended by":
            table.add_column(name, overflow="fold", min_width=len(name))
        else:
            table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for src in sources:
        row = [
            str(src.index), escape(src.short_name or src.name), str(src.classified), str(src.dropped),
            *([str(src.skipped)] if skipped else []), str(src.reconnects), f"{src.fps:.1f}",
            f"{src.latency_ms[0]:.0f}/{src.latency_ms[1]:.0f}",
        ]  # fmt: skip
        table.add_row(*row, *([src.ended_by] if ended else []))
    return table


class TerminalReport:
    """`webcam`'s report on a rich console: every line on it, the live status line where it is a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def classifier(self, clf: Classifier, first: float, budget: CoreBudget | None) -> None:
        say_classifier(clf, first, self.console, budget)

    def line(self, text: str) -> None:
        self.console.print(escape(text), highlight=False, soft_wrap=True)

    def status_sink(self) -> BaseSink | None:
        return ConsoleSink(self.console) if self.console.is_terminal else None

    def summary(self, summary: LoopSummary) -> None:
        print_summary(summary, self.console)
