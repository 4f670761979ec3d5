"""What a sink of the live loop is: the whole `Sink` protocol (every member the loop calls), `BaseSink` with
its defaults, `PerSource` (one sink per source), the stop request and the one existing-output rule.

Every sink gets each classified frame with its event (the JSONL object), and every change of a source's
state. A sink that wants the loop to stop (a window's q / Esc) raises StopRequested. Files are written under a
temporary name and moved into place by `close()`, so a crash never leaves half a file where a whole one is
expected, and an existing file is never replaced without `force`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from mgc_edge.runtime.model.classifier import Classifier
    from mgc_edge.runtime.sources.base import Source

log = logging.getLogger(__name__)
Notify = Callable[[str], None]


@runtime_checkable
class Sink(Protocol):
    """An output of the live loop.

    `frame()` is called for each classified frame with the annotated BGR image and the event: the JSONL
    object (source, frame, t, top, smoothed, latency_ms) plus "state", "fps" {"capture", "inference"} and
    "batch". `state()` is called for each event of a source's life: {"state": "live" | "stale" | "reconnecting" |
    "failed" | "ended", "event": "dropped" | "reconnecting" | "back" | "failed" | "ended" | "stale" | "live",
    "message": str, "t": float, "time": epoch seconds, "source": {"index", "name", "short_name"}}, and once at
    the end of the run without "source" nor "event". `idle()` is called while the loop waits for frames (a window keeps answering).
    `outputs` lists the files it writes (the summary names them). `close()` finishes the output.
    `wants_image` False: it ignores the image (the loop skips drawing for it; a property is asked again before
    every batch). A sink may raise StopRequested from `frame()` or `state()` to end the loop cleanly.
    """

    @property
    def wants_image(self) -> bool: ...

    @property
    def outputs(self) -> Sequence[Path]: ...

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None: ...

    def state(self, event: dict[str, Any]) -> None: ...

    def idle(self) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """The defaults of a `Sink`: it wants the image, writes no file, ignores states and idle time."""

    wants_image: bool = True
    shows: bool = False  # whether it shows the frames on this machine's screen (then no terminal status line)

    @property
    def outputs(self) -> Sequence[Path]:
        return ()

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def state(self, event: dict[str, Any]) -> None:
        pass

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass


class StopRequested(Exception):
    """Raised by a sink to end the loop cleanly (the user pressed q or Esc)."""


class PerSource(BaseSink):
    """One sink per source (a window, an mp4 file): each frame and state goes to the sink of its event's
    source; the run's own end (an event without a source) goes to all of them."""

    def __init__(self, sinks: Sequence[Any]) -> None:  # Sequence[BaseSink]
        self.sinks = list(sinks)
        self.wants_image = any(s.wants_image for s in self.sinks)
        self.shows = any(s.shows for s in self.sinks)

    @property
    def outputs(self) -> Sequence[Path]:
        """The files the sinks write, in source order."""
        return [path for s in self.sinks for path in s.outputs]

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        self.sinks[event["source"]["index"]].frame(annotated_bgr, event)

    def state(self, event: dict[str, Any]) -> None:
        source = event.get("source")
        for sink in [self.sinks[source["index"]]] if source else self.sinks:
            sink.state(event)

    def idle(self) -> None:
        for sink in self.sinks:
            sink.idle()

    def close(self) -> None:
        """Close every sink, even when one fails; then report the first failure."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


def per_source(sinks: Sequence[BaseSink]) -> BaseSink:
    """The one sink of a single source, else a `PerSource` over one sink per source."""
    return sinks[0] if len(sinks) == 1 else PerSource(sinks)


@dataclass(frozen=True)
class SinkOptions:
    """What a run asks of its outputs (the `webcam` options that make sinks)."""

    display: str = "auto"
    save: Path | None = None
    jsonl: Path | None = None
    force: bool = False
    every: int = 1  # files' --every: an annotated video of a file plays at its rate over `every`
    serve: tuple[str, int] | None = None  # the web view's (host, port), parsed from --serve
    token: str | None = field(default=None, repr=False)
    publish: Any = None  # sinks.mqtt.config.PublishOptions of --publish (parsed by the CLI), or None


@dataclass(frozen=True)
class SinkContext:
    """What a sink builder may use: the options, the model, the opened sources, where to say things (`notify`
    for warnings, `say` for plain lines on the terminal), the loop's live status and the run's ExitStack."""

    options: SinkOptions
    classifier: Classifier
    sources: Sequence[Source]
    notify: Notify
    say: Notify
    status: Callable[[], Mapping[str, Any]]
    stack: ExitStack

    @property
    def model_name(self) -> str:
        return self.classifier.path.name


def outputs_of(sinks: Sequence[Sink]) -> tuple[str, ...]:
    """The files the sinks wrote, as each lists them in `outputs`."""
    return tuple(str(path) for sink in sinks for path in sink.outputs)


def close_sinks(sinks: Sequence[Sink], ended: dict[str, Any]) -> None:
    """Tell every sink the loop ended and close them all, even when one of them fails; a second Ctrl-C
    during this does not leave a half-written file behind."""
    failure: BaseException | None = None
    for step in ("state", "close"):
        for sink in sinks:
            try:
                if step == "state":
                    sink.state(ended)
                else:
                    sink.close()
            except StopRequested:
                pass
            except KeyboardInterrupt:
                continue
            except Exception as exc:  # keep closing the others, then report the first failure
                failure = failure or exc
    if failure is not None:
        raise failure


def state_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """A source's life event as every sink writes or sends it (`--jsonl`, `--publish`): the event marked
    `"type": "state"`, which frame events lack, so one schema serves both."""
    return {"type": "state", **event}
