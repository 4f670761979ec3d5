"""`mgc-edge webcam` as a library call: the model, the source, the sinks (window, video, JSONL, the web view,
a terminal status line), the loop and its summary. The CLI only parses options into `WebcamOptions`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from mgc_edge.errors import UserError
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH


class StreamLostError(UserError):
    """A live source was lost for good after its reconnect attempts; the message is one sentence."""


@dataclass(frozen=True)
class WebcamOptions:
    """The options of `mgc-edge webcam` (see its --help), in one place for run_webcam and make_sinks."""

    source: str = "0"
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


def quiet_opencv() -> None:
    """OpenCV's and FFmpeg's own log lines (every camera backend probed, each stream hiccup) would bury
    our one-sentence messages, which say what failed; OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL bring them
    back for debugging."""
    import os

    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def open_classifier(
    model: Path, device: str, threads: int, live: bool, console: Console, notify: Callable[[str], None]
) -> Any:
    """The model on the device asked for, warmed up; says which provider really runs (and a fallback)."""
    from mgc_edge.runtime.session import Classifier, live_threads

    threads = threads or (live_threads() if live else 0)
    clf = Classifier(model, device=device, threads=threads, spinning=not live, notify=notify)
    first = clf.warmup()
    h, w = clf.spec.size
    how = ""
    if threads and clf.device == "cpu":
        how = f" ({threads} thread{'s' if threads != 1 else ''})"
    elif clf.io_bound:
        how = " (I/O bound on the device" + (", batch 1 as a CUDA graph)" if clf.graphed else ")")
    console.print(
        f"[bold]{escape(model.name)}[/]: {clf.metadata.arch} {clf.metadata.precision}, {clf.num_classes} classes, "
        f"{h}x{w}, on [bold]{clf.provider}[/]{how}; warm-up {first * 1000:.0f} ms",
        highlight=False,
        soft_wrap=True,
    )
    for line in clf.advice:
        notify(line)
    return clf


class ConsoleSink:
    """A one-line live status on the terminal (label, FPS, state): what a headless run shows meanwhile."""

    wants_image = False

    def __init__(self, console: Console) -> None:
        self._status = console.status("starting", spinner="dots")
        self._status.start()
        self._next = 0.0

    def frame(self, annotated_bgr: Any, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.5
        s, fps = event["smoothed"], event["fps"]
        self._status.update(
            f"frame {event['frame']}  [bold]{escape(s['name'])}[/] {s['prob']:.0%}  capture {fps['capture']:.1f} fps  "
            f"inference {fps['inference']:.1f} fps  latency {event['latency_ms']['end_to_end']:.0f} ms"
        )

    def state(self, event: dict[str, Any]) -> None:
        if event["state"] in ("stale", "reconnecting"):
            self._status.update(f"[yellow]{event['state']}[/]: {escape(event['message'])}")

    def close(self) -> None:
        self._status.stop()


def make_sinks(
    clf: Any,
    options: WebcamOptions,
    fps: float,
    extra: Sequence[Any] = (),
    console: Console | None = None,
    notify: Callable[[str], None] = lambda _m: None,
) -> list[Any]:
    """The outputs of one webcam run: a window (per --display), --save, --jsonl, `extra` sinks (e.g. a web
    view, which gets `clf` for the model's metadata), and a status line when headless on a terminal."""
    from mgc_edge.runtime.sinks import DisplayError, JsonlSink, VideoSink, WindowSink, display_problem

    sinks: list[Any] = []
    if options.display != "off":
        problem = display_problem()
        if problem is None:
            sinks.append(WindowSink(f"mgc-edge: {clf.path.name}", notify=notify))
        elif options.display == "on":
            raise DisplayError(f"--display on needs a window, but {problem}; use --display off or auto.")
        else:
            notify(f"No window: {problem}; running headless.")
    if options.save is not None:
        sinks.append(VideoSink(options.save, fps, force=options.force, notify=notify))
    if options.jsonl is not None:
        sinks.append(JsonlSink(options.jsonl, force=options.force))
    sinks.extend(extra)
    if console is not None and console.is_terminal and not any(isinstance(s, WindowSink) for s in sinks):
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
    dropped = f", {s.dropped} dropped" if s.dropped else ""
    skipped = f", {s.skipped} skipped (--every)" if s.skipped else ""
    reconnects = f", {s.reconnects} reconnect{'s' if s.reconnects != 1 else ''}" if s.reconnects else ""
    console.print(
        f"{s.frames_read} frames read, {s.classified} classified{dropped}{skipped}{reconnects} in "
        f"{s.seconds:.1f} s: [bold]{s.fps:.1f} fps[/] on {s.provider}; ended by {s.ended_by}.",
        highlight=False,
        soft_wrap=True,
    )
    for path in s.outputs:
        console.print(f"Wrote {escape(path)}", highlight=False, soft_wrap=True)


def check_options(options: WebcamOptions) -> None:
    """Refuse bad options and existing outputs before anything is opened: nothing is lost."""
    from mgc_edge.runtime.serve import parse_address
    from mgc_edge.runtime.sinks import refuse_existing
    from mgc_edge.runtime.smoothing import parse_smooth

    if options.display not in ("auto", "on", "off"):
        raise UserError(f"--display must be auto, on or off, got {options.display!r}.")
    if options.topk < 1:
        raise UserError(f"--topk must be at least 1, got {options.topk}.")
    if options.max_frames < 0:
        raise UserError(f"--max-frames must be 0 or more, got {options.max_frames}.")
    parse_smooth(options.smooth)
    if options.serve is not None:
        parse_address(options.serve)
    for path, option in ((options.save, "--save"), (options.jsonl, "--jsonl")):
        if path is not None:
            refuse_existing(path, options.force, option)


def run_webcam(
    model: Path,
    options: WebcamOptions,
    extra_sinks: Sequence[Any] = (),
    console: Console | None = None,
    notify: Callable[[str], None] = lambda _m: None,
) -> Any:
    """The body of `webcam`: model, web view (--serve), source, sinks (plus `extra_sinks`), the loop; prints
    the summary and returns it (its `error` says why a lost stream ended the run)."""
    from mgc_edge.runtime import loop as live_loop
    from mgc_edge.runtime.sources import SourceOptions, describe, open_source

    console = console or Console(stderr=True)
    quiet_opencv()
    check_options(options)
    source_options = SourceOptions(
        reconnect=options.reconnect,
        open_timeout=options.timeout,
        read_timeout=options.timeout,
        every=options.every,
        realtime=options.realtime,
    )
    clf = open_classifier(model, options.device, options.threads, True, console, notify)
    with ExitStack() as stack:
        extra = list(extra_sinks)
        if options.serve is not None:
            extra.append(stack.enter_context(_start_view(clf, options, console)))
        src = stack.enter_context(closing(open_source(options.source, source_options)))
        info = describe(src)
        size = src.status().size
        console.print(
            f"Source: {escape(info['source'])} ({info['kind']}"
            + (f", {size[1]}x{size[0]}" if size else "")
            + (f", {info['fps']:g} fps" if info["fps"] else "")
            + (f", {info['frames']} frames" if info.get("frames") else "")
            + ")",
            highlight=False,
            soft_wrap=True,
        )
        out_fps = (src.fps or 25.0) / options.every  # --every applies to files only
        sinks = make_sinks(clf, options, out_fps, extra, console, notify)
        loop = live_loop.LoopOptions(topk=options.topk, smooth=options.smooth, max_frames=options.max_frames)
        summary = live_loop.run_loop(clf, src, loop, sinks)
    print_summary(summary, console)
    return summary


def _start_view(clf: Any, options: WebcamOptions, console: Console) -> Any:
    """The live web view on --serve [HOST:]PORT, fed by the loop as one more sink; says where to open it."""
    from mgc_edge.runtime import loop as live_loop
    from mgc_edge.runtime.serve import ServeConfig, model_info, parse_address, start_server

    host, port = parse_address(options.serve or "")
    server = start_server(
        ServeConfig(host=host, port=port, token=options.token or None), model_info(clf), live_loop.status
    )
    for line in server.banner():
        console.print(escape(line), highlight=False, soft_wrap=True)
    return server
