"""`mgc-edge webcam` as a library call: the sources (one or several), the model with the threads they leave it,
the sinks (`sinks.BUILDERS`, plus notes on lost sources and the report's status line), the loop, and its
summary, returned. The CLI parses options into `WebcamOptions` and shows what `Report` is told; the runtime
never prints."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mgc_edge.errors import UserError
from mgc_edge.runtime.capture.choose import check_capture, open_captured
from mgc_edge.runtime.live import loop as live_loop
from mgc_edge.runtime.live.cores import CoreBudget, fit_threads
from mgc_edge.runtime.live.loop import LoopSummary
from mgc_edge.runtime.live.status import status
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.load import load_classifier
from mgc_edge.runtime.sinks import build_sinks, check_sinks
from mgc_edge.runtime.sinks.base import BaseSink, SinkContext, SinkOptions
from mgc_edge.runtime.sinks.web.config import parse_address
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH, parse_smooth
from mgc_edge.runtime.sources import describe
from mgc_edge.runtime.sources.base import FOREVER, Source, SourceOptions
from mgc_edge.runtime.sources.listing import SourceSpec, check_specs, command_line, read_sources_file
from mgc_edge.runtime.sources.video import quiet_opencv


class Report(Protocol):
    """What a run tells its user as it goes (the CLI shows it on the terminal; `SILENT` tells nobody)."""

    def classifier(self, clf: Classifier, first: float, budget: CoreBudget | None) -> None:
        """The model, the provider that really runs, its threads and the warm-up."""

    def line(self, text: str) -> None:
        """One plain line: a source opened, where the web view is."""

    def status_sink(self) -> BaseSink | None:
        """A live status line where nothing shows the frames (None: none)."""

    def summary(self, summary: LoopSummary) -> None:
        """The run's summary once the loop has ended."""


class _Silent:
    def classifier(self, clf: Classifier, first: float, budget: CoreBudget | None) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def status_sink(self) -> BaseSink | None:
        return None

    def summary(self, summary: LoopSummary) -> None:
        pass


SILENT: Report = _Silent()


@dataclass(frozen=True)
class WebcamOptions:
    """The options of `mgc-edge webcam` (see its --help), in one place for run_webcam and make_sinks."""

    source: str = "0"
    sources: tuple[str, ...] = ()  # several sources (--source given more than once); replace `source`
    names: tuple[str, ...] = ()  # --name: the short names of `sources`, in order
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
    reconnect: int = FOREVER
    timeout: float = 10.0
    force: bool = False
    serve: str | None = None  # [HOST:]PORT of the live web view
    token: str | None = field(default=None, repr=False)  # never shown, not even in a repr
    publish: Any = None  # --publish: sinks.mqtt.config.PublishOptions (its password is never in a repr)
    capture: str = "auto"  # threads, processes (runtime/capture/) or auto (capture/choose.py)
    workers: int = 0  # capture processes; 0: by the cores

    def source_list(self) -> list[SourceSpec]:
        """Every source of the run, in order: `sources` (named by `names`), then the lines of `sources_file`,
        else `source`; `${VAR}` expanded, a camera listed twice refused."""
        listed = command_line(self.sources, self.names)
        if self.sources_file is not None:
            listed += read_sources_file(self.sources_file)
        listed = listed or command_line([self.source])
        check_specs(listed)
        return listed


LOGGED = ("dropped", "reconnecting", "back", "failed")  # the events of a source's life that make a log line
QUIET_TRIES = 5  # reconnect tries logged one by one; after them every 10th (the JSONL and status get all)


class LifeLog(BaseSink):
    """One line per event of a source's life (dropped, reconnecting, back, failed), with the date and time and
    the source's short name: what a headless box's log keeps. The failure of the only source is the run's
    own error, said once at the end."""

    wants_image = False

    def __init__(self, line: Callable[[str], None], sources: int) -> None:
        self.line, self.sources = line, sources
        self._done: set[int] = set()
        self._tries: dict[int, int] = {}

    def frame(self, annotated_bgr: Any, event: dict[str, Any]) -> None:
        pass

    def state(self, event: dict[str, Any]) -> None:
        source, kind = event.get("source"), event.get("event")
        if source is None or kind not in (*LOGGED, "ended"):
            return
        index = source["index"]
        if kind in ("failed", "ended"):
            self._done.add(index)
        if kind == "ended" or (kind == "failed" and self.sources == 1):
            return  # the failure of the only source is the run's own error, said once at its end
        if kind == "reconnecting":
            tries = self._tries[index] = self._tries.get(index, 0) + 1
            if tries > QUIET_TRIES and tries % 10:
                return
        if kind in ("back", "dropped"):
            self._tries.pop(index, None)
        text = event["message"]
        if kind == "failed" and len(self._done) < self.sources:
            text += " The other sources go on."
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.get("time", time.time())))
        self.line(
            f"{when} {source.get('short_name') or source['name']}: {'failed: ' if kind == 'failed' else ''}{text}"
        )

    def close(self) -> None:
        pass


def sink_options(options: WebcamOptions) -> SinkOptions:
    """The options that make the sinks (the --serve address parsed here, once)."""
    return SinkOptions(
        display=options.display, save=options.save, jsonl=options.jsonl, force=options.force,
        every=options.every, serve=parse_address(options.serve) if options.serve is not None else None,
        token=options.token, publish=options.publish,
    )  # fmt: skip


def make_sinks(
    context: SinkContext, extra: Sequence[BaseSink] = (), report: Report = SILENT
) -> list[BaseSink]:
    """The outputs of one webcam run: those of `sinks.BUILDERS` (a window per source, --save, --jsonl, the web
    view), `extra` sinks, the log of every source's life (`LifeLog`), and the report's status line where no
    window shows."""
    sinks: list[BaseSink] = [*build_sinks(context), *extra, LifeLog(context.say, len(context.sources))]
    status_line = None if any(s.shows for s in sinks) else report.status_sink()
    return sinks + ([status_line] if status_line is not None else [])


def check_options(options: WebcamOptions) -> tuple[list[SourceSpec], SinkOptions]:
    """Refuse bad options and existing outputs before anything is opened (nothing is lost); the sources and
    the sinks' options."""
    if options.topk < 1:
        raise UserError(f"--topk must be at least 1, got {options.topk}.")
    if options.max_frames < 0:
        raise UserError(f"--max-frames must be 0 or more, got {options.max_frames}.")
    parse_smooth(options.smooth)
    check_capture(options.capture, options.workers)
    sources, sinks = options.source_list(), sink_options(options)
    check_sinks(sinks, len(sources))
    return sources, sinks


def source_options(options: WebcamOptions) -> SourceOptions:
    return SourceOptions(
        reconnect=options.reconnect, open_timeout=options.timeout, read_timeout=options.timeout,
        every=options.every, realtime=options.realtime,
    )  # fmt: skip


def run_webcam(
    model: Path,
    options: WebcamOptions,
    extra_sinks: Sequence[BaseSink] = (),
    report: Report = SILENT,
    notify: Callable[[str], None] = lambda _m: None,
) -> LoopSummary:
    """The body of `webcam`: the sources, the model, the sinks (plus `extra_sinks`), the loop; reports the
    summary and returns it (its `error` says which lost stream made the run fail)."""
    quiet_opencv()
    texts, sink_opts = check_options(options)
    if (note := parse_smooth(options.smooth).note) is not None:
        notify(note)  # an old per-frame --smooth, converted to seconds
    clf, first = load_classifier(model, options.device, options.threads, True, notify, min(len(texts), 64))
    with ExitStack() as stack:
        sources, pool = open_captured(
            texts, source_options(options), clf.spec, options.capture, options.workers
        )
        for src in sources:
            stack.callback(src.close)
        if pool is not None:
            n = len(pool.procs)
            report.line(
                f"Capture: {n} worker process{'es' if n != 1 else ''}, decoding on the CPU (FFmpeg through OpenCV)."
            )
        budget = None
        if not options.threads:
            clf, first, budget = fit_threads(clf, first, sources)
        report.classifier(clf, first, budget)
        context = SinkContext(sink_opts, clf, sources, notify, report.line, status, stack)
        sinks = make_sinks(context, extra_sinks, report)
        for i, src in enumerate(sources):
            label = "Source" if len(sources) == 1 else f"Source {i} [{src.short_name}]"
            report.line(f"{label}: {describe_line(src)}")
        loop = live_loop.LoopOptions(topk=options.topk, smooth=options.smooth, max_frames=options.max_frames)
        summary = live_loop.run_loop(clf, sources, loop, sinks)
        for src in sources:  # a file cut short ends like a whole one: say so (annotate says it too)
            if src.short_end:
                notify(src.short_end)
        if pool is not None and pool.restarts:
            notify(f"Capture workers were restarted {pool.restarts} time{'s' if pool.restarts != 1 else ''}.")
    report.summary(summary)
    return summary


def describe_line(source: Source) -> str:
    """`name (kind, WxH, fps, frames)` for the start-up lines."""
    info: dict[str, Any] = describe(source)
    size = source.status().size
    return (
        f"{info['source']} ({info['kind']}"
        + (f", {size[1]}x{size[0]}" if size else "")
        + (f", {info['fps']:g} fps" if info["fps"] else "")
        + (f", {info['frames']} frames" if info.get("frames") else "")
        + ")"
    )
