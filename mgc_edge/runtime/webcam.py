"""`mgc-edge webcam` as a library call: the sources (one or several), the model with the threads they leave it,
the sinks (windows, videos, JSONL, the web view, a terminal status line), the loop and its summary. The CLI only
parses options into `WebcamOptions`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from mgc_edge.errors import UserError
from mgc_edge.runtime.sinks.base import BaseSink
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH

if TYPE_CHECKING:
    from mgc_edge.runtime.sinks.base import SinkContext, SinkOptions


@dataclass(frozen=True)
class WebcamOptions:
    """The options of `mgc-edge webcam` (see its --help), in one place for run_webcam and make_sinks."""

    source: str = "0"
    sources: tuple[str, ...] = ()  # several sources (--source given more than once); replace `source`
    sources_file: Path | None = None  # --sources FILE: one source per line, after `sources`
    device: str = "auto"
    threads: int = 0
    topk: int = 5
    smooth: str = DEFAULT_SMOOTH
    display: str = "auto"
    save: Path | None = None
    jsonl: Path | None = None
    max_frames: int = 0
    every: int = 1
    realtime: bool = False
    reconnect: int = 5
    timeout: float = 10.0
    force: bool = False
    serve: str | None = None  # [HOST:]PORT of the live web view
    token: str | None = field(default=None, repr=False)  # never shown, not even in a repr

    def source_list(self) -> list[str]:
        """Every source of the run, in order: `sources`, then the lines of `sources_file`, else `source`."""
        from mgc_edge.runtime.sources import read_sources_file

        listed = list(self.sources)
        if self.sources_file is not None:
            listed += read_sources_file(self.sources_file)
        return listed or [self.source]


def quiet_opencv() -> None:
    """OpenCV's and FFmpeg's own log lines (every camera backend probed, each stream hiccup) would bury
    our one-sentence messages, which say what failed; OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL bring them
    back for debugging."""
    import os

    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def fit_threads(clf: Any, first: float, sources: Sequence[Any]) -> tuple[Any, float, Any]:
    """Measure the cores the opened `sources` keep busy (runtime/cores.py) and give the model the rest: the
    session is made again where that is fewer threads than it has (the old one is dropped first)."""
    from mgc_edge.runtime import cores
    from mgc_edge.runtime.model.classifier import Classifier

    if clf.device != "cpu":  # a GPU runs the model; its CPU threads hardly matter
        return clf, first, None
    batch = max(1, min(len(sources), 64))  # a tick where every source has a frame
    x = np.zeros((batch, 3, *clf.spec.size), np.float32)
    budget = cores.measure(sources, lambda: clf.logits(x))
    if budget.threads != clf.threads:
        model = clf.path
        clf = None
        clf = Classifier(model, device="cpu", threads=budget.threads, spinning=False)
        first = clf.warmup(batch_size=batch)
    return clf, first, budget


def say_classifier(clf: Any, first: float, console: Console, budget: Any = None) -> None:
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
) -> Any:
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


class LostSourceNotes(BaseSink):
    """With several sources: says, as it happens, that one was lost for good (and whether others go on)."""

    wants_image = False

    def __init__(self, notify: Callable[[str], None], sources: int) -> None:
        self.notify, self.sources = notify, sources
        self._done: set[int] = set()

    def frame(self, annotated_bgr: Any, event: dict[str, Any]) -> None:
        pass

    def state(self, event: dict[str, Any]) -> None:
        source = event.get("source")
        if source is None or event["state"] not in ("failed", "ended"):
            return
        self._done.add(source["index"])
        if event["state"] == "failed":
            others = " The other sources go on." if len(self._done) < self.sources else ""
            self.notify(f"{event['message']}{others}")

    def close(self) -> None:
        pass


def sink_options(options: WebcamOptions) -> SinkOptions:
    """The options that make the sinks."""
    from mgc_edge.runtime.sinks.base import SinkOptions

    return SinkOptions(
        display=options.display, save=options.save, jsonl=options.jsonl, force=options.force,
        every=options.every, serve=options.serve, token=options.token,
    )  # fmt: skip


def make_sinks(context: SinkContext, extra: Sequence[Any] = (), console: Console | None = None) -> list[Any]:
    """The outputs of one webcam run: those of `sinks.BUILDERS` (a window per source, --save, --jsonl, the web
    view), `extra` sinks, notes on lost sources, and a status line on a terminal where no window shows."""
    from mgc_edge.runtime.sinks import build_sinks

    sinks: list[Any] = [*build_sinks(context), *extra]
    if len(context.sources) > 1:
        sinks.append(LostSourceNotes(context.notify, len(context.sources)))
    if console is not None and console.is_terminal and not any(s.shows for s in sinks):
        sinks.append(ConsoleSink(console))
    return sinks


def print_summary(summary: Any, console: Console) -> None:
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
    skipped = f", {s.skipped} skipped (--every)" if s.skipped else ""
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
    """One row per source: frames read, classified and dropped, reconnects, classified per second, end-to-end
    latency; how it ended where that differs from the run."""
    from rich.table import Table

    table = Table(title="per source", title_justify="left", show_edge=False, box=None, padding=(0, 1))
    columns = ["#", "source", "read", "classified", "dropped", "reconnects", "fps", "e2e p50/p95 ms"]
    ended = any(src.ended_by != run_ended_by for src in sources)
    for name in columns + (["ended by"] if ended else []):
        table.add_column(name, justify="left" if name in ("source", "ended by") else "right")
    for src in sources:
        row = [
            str(src.index), escape(src.name), str(src.frames_read), str(src.classified), str(src.dropped),
            str(src.reconnects), f"{src.fps:.1f}", f"{src.latency_ms[0]:.0f} / {src.latency_ms[1]:.0f}",
        ]  # fmt: skip
        table.add_row(*row, *([src.ended_by] if ended else []))
    return table


def check_options(options: WebcamOptions) -> list[str]:
    """Refuse bad options and existing outputs before anything is opened (nothing is lost); the sources."""
    from mgc_edge.runtime.sinks import check_sinks
    from mgc_edge.runtime.smoothing import parse_smooth

    if options.topk < 1:
        raise UserError(f"--topk must be at least 1, got {options.topk}.")
    if options.max_frames < 0:
        raise UserError(f"--max-frames must be 0 or more, got {options.max_frames}.")
    parse_smooth(options.smooth)
    sources = options.source_list()
    check_sinks(sink_options(options), len(sources))
    return sources


def run_webcam(
    model: Path,
    options: WebcamOptions,
    extra_sinks: Sequence[Any] = (),
    console: Console | None = None,
    notify: Callable[[str], None] = lambda _m: None,
) -> Any:
    """The body of `webcam`: the sources, the model, web view (--serve), sinks (plus `extra_sinks`), the loop;
    prints the summary and returns it (its `error` says which lost stream made the run fail)."""
    from mgc_edge.runtime import loop as live_loop
    from mgc_edge.runtime.model.load import load_classifier
    from mgc_edge.runtime.sinks.base import SinkContext
    from mgc_edge.runtime.sources import open_sources
    from mgc_edge.runtime.sources.base import SourceOptions

    console = console or Console(stderr=True)
    quiet_opencv()
    texts = check_options(options)
    source_options = SourceOptions(
        reconnect=options.reconnect,
        open_timeout=options.timeout,
        read_timeout=options.timeout,
        every=options.every,
        realtime=options.realtime,
    )
    clf, first = load_classifier(model, options.device, options.threads, True, notify, min(len(texts), 64))
    with ExitStack() as stack:
        sources = open_sources(texts, source_options)
        for src in sources:
            stack.callback(src.close)
        budget = None
        if not options.threads:
            clf, first, budget = fit_threads(clf, first, sources)
        say_classifier(clf, first, console, budget)
        say = lambda line: console.print(escape(line), highlight=False, soft_wrap=True)  # noqa: E731
        context = SinkContext(sink_options(options), clf, sources, notify, say, live_loop.status, stack)
        sinks = make_sinks(context, extra_sinks, console)
        for i, src in enumerate(sources):
            label = "Source" if len(sources) == 1 else f"Source {i}"
            console.print(f"{label}: {_describe(src)}", highlight=False, soft_wrap=True)
        loop = live_loop.LoopOptions(topk=options.topk, smooth=options.smooth, max_frames=options.max_frames)
        summary = live_loop.run_loop(clf, sources, loop, sinks)
        for src in sources:  # a file cut short ends like a whole one: say so (annotate says it too)
            if src.short_end:
                notify(src.short_end)
    print_summary(summary, console)
    return summary


def _describe(source: Any) -> str:
    """`name (kind, WxH, fps, frames)` for the start-up lines."""
    from mgc_edge.runtime.sources import describe

    info = describe(source)
    size = source.status().size
    return escape(
        f"{info['source']} ({info['kind']}"
        + (f", {size[1]}x{size[0]}" if size else "")
        + (f", {info['fps']:g} fps" if info["fps"] else "")
        + (f", {info['frames']} frames" if info.get("frames") else "")
        + ")"
    )
