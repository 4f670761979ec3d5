"""The live loop: source -> preprocess() -> ONNX Runtime -> softmax -> smoothing -> overlay -> sinks.

One thread classifies; the source decodes or captures in its own thread, so waiting for a frame and
classifying overlap. Each stage is timed (capture wait, preprocess, inference, postprocess, draw), the
counters are readable at any time through `status()` (a web view polls it), and the loop ends cleanly
on the end of a file, `max_frames`, a sink's stop request (q / Esc), Ctrl-C or a lost stream, always
closing the sinks and returning a summary. numpy + OpenCV + onnxruntime only: never torch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mgc_edge.preprocess import preprocess
from mgc_edge.runtime.overlay import OverlayView, annotate
from mgc_edge.runtime.session import Classifier, softmax
from mgc_edge.runtime.sinks import Sink, StopRequested, wants_image
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH, Smoother
from mgc_edge.runtime.sources import (
    ENDED,
    FAILED,
    LIVE,
    RECONNECTING,
    FileSource,
    Frame,
    RateMeter,
    Source,
    SourceStatus,
    StreamLost,
)

STAGES = ("capture", "preprocess", "inference", "postprocess", "draw")
_KEEP = 100_000  # stage samples kept for the summary's percentiles (about an hour at 30 fps)
_RECENT = 300  # samples behind the live status' percentiles


@dataclass(frozen=True)
class LoopOptions:
    """What the loop does with each frame; the source and the sinks are chosen by the caller."""

    topk: int = 5
    smooth: str = DEFAULT_SMOOTH
    max_frames: int = 0  # 0: until the source ends
    poll: float = 0.1  # seconds between state checks while no frame comes


@dataclass(frozen=True)
class LoopSummary:
    """What a run of the loop did: counts, rates, per-stage latency (ms, p50 / p95) and how it ended."""

    frames_read: int
    classified: int
    dropped: int  # live sources: captured but never classified (a newer frame replaced them)
    skipped: int  # files: left out by `every`
    reconnects: int
    seconds: float
    fps: float  # classified frames per second of the loop
    capture_fps: float  # frames read per second
    stages: dict[str, tuple[float, float]]  # stage -> (p50, p95) in ms, plus "output" and "end_to_end"
    provider: str
    source: str
    ended_by: str  # "end of source", "max frames", "quit", "interrupted" or "stream lost"
    error: str | None = None  # the one sentence of a lost stream
    outputs: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StageTimes:
    """Durations per stage in ms; percentiles over the run (bounded) and over the recent frames."""

    def __init__(self, names: Sequence[str]) -> None:
        self.all = {n: deque(maxlen=_KEEP) for n in names}
        self.recent = {n: deque(maxlen=_RECENT) for n in names}

    def add(self, name: str, ms: float) -> None:
        self.all[name].append(ms)
        self.recent[name].append(ms)

    @staticmethod
    def _pct(values: Sequence[float]) -> tuple[float, float]:
        if not values:
            return (0.0, 0.0)
        p50, p95 = np.percentile(np.fromiter(values, np.float64, len(values)), [50, 95])
        return (round(float(p50), 3), round(float(p95), 3))

    def percentiles(self, recent: bool = False) -> dict[str, tuple[float, float]]:
        source = self.recent if recent else self.all
        return {name: self._pct(list(values)) for name, values in source.items()}


class _Status:
    """The live counters of the running (or last) loop, behind a lock; read with `status()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {"running": False, "state": "idle"}
        self._times: StageTimes | None = None

    def start(self, info: dict[str, Any], times: StageTimes) -> None:
        with self._lock:
            self._data = {
                "running": True,
                "state": LIVE,
                "message": "",
                "frames": {"read": 0, "classified": 0, "dropped": 0, "skipped": 0},
                "reconnects": 0,
                "fps": {"capture": 0.0, "inference": 0.0},
                "last": None,
                **info,
            }
            self._times = times

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._data.update(changes)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = dict(self._data)
            if self._times is not None:
                data["latency_ms"] = {
                    k: {"p50": v[0], "p95": v[1]} for k, v in self._times.percentiles(True).items()
                }
        return data


_STATUS = _Status()


def status() -> dict[str, Any]:
    """A snapshot of the running (or last) loop's counters, safe to call from any thread: state, frames
    read / classified / dropped / skipped, reconnects, capture and inference FPS, recent per-stage
    latency p50 / p95 (ms), provider, source, and the last event."""
    return _STATUS.snapshot()


def _dropped(source: Source, read: int, delivered: int) -> int:
    return 0 if isinstance(source, FileSource) else max(0, read - delivered)


class _Run:
    """One run of the loop: the smoother, the timers and the state seen so far."""

    def __init__(self, classifier: Classifier, source: Source, options: LoopOptions, sinks: Sequence[Sink]):
        self.clf, self.source, self.options, self.sinks = classifier, source, options, sinks
        self.smoother = Smoother(options.smooth)
        self.draw = any(wants_image(s) for s in sinks)
        self.times = StageTimes((*STAGES, "output", "end_to_end"))
        self.meter = RateMeter()
        self.state, self.reconnects, self.classified = LIVE, 0, 0

    def now(self) -> float:
        """Seconds since the source started, for state events."""
        return round(time.monotonic() - self.source.clock, 3)

    def poll_state(self) -> SourceStatus:
        """Read the source's state; forward a change to the sinks, reset the smoother after a drop."""
        st = self.source.status()
        if st.reconnects != self.reconnects or (st.state == RECONNECTING and self.state != RECONNECTING):
            self.smoother.reset()  # what came before the drop says nothing about what comes after
            self.reconnects = st.reconnects
        if st.state != self.state:
            self.state = st.state
            _STATUS.update(state=self.state, message=st.message, reconnects=self.reconnects)
            if self.state not in (ENDED, FAILED):  # the end is told once, by _close_sinks, with how it ended
                for sink in self.sinks:
                    sink.state({"state": self.state, "message": st.message, "t": self.now()})
        return st

    def next_frame(self) -> tuple[Frame | None, SourceStatus]:
        """The next frame, waiting as long as the source is alive (None at its end); sinks with an
        `idle()` are called while waiting (a window stays responsive)."""
        frame = self.source.read(self.options.poll)
        st = self.poll_state()
        while frame is None and self.state != ENDED:
            for sink in self.sinks:
                idle = getattr(sink, "idle", None)
                if idle is not None:
                    idle()
            frame = self.source.read(self.options.poll)
            st = self.poll_state()
        return frame, st

    def classify(
        self, frame: Frame, st: SourceStatus, wait_start: float
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """preprocess -> inference -> softmax -> smoothing -> top-k -> overlay: the image for the sinks
        and the event (the JSONL object), each stage timed."""
        clf, labels = self.clf, self.clf.labels
        got = time.perf_counter()
        captured = self.source.clock + frame.t if self.source.live else time.monotonic()
        x = preprocess(frame.image, clf.spec)
        t1 = time.perf_counter()
        probs = softmax(clf.logits(x))[0]
        t2 = time.perf_counter()
        smoothed = self.smoother.update(probs)
        top = clf.top(probs, self.options.topk)
        best = int(np.argmax(smoothed))
        now = time.monotonic()
        self.meter.tick(now)
        fps = {"capture": round(st.capture_fps, 2), "inference": round(self.meter.rate(now), 2)}
        event: dict[str, Any] = {
            "frame": frame.seq,
            "t": round(frame.t, 3),
            "top": [
                {"label": i, "name": n, "prob": round(p, 4)} for i, n, p in zip(top.ids, top.names, top.probs)
            ],
            "smoothed": {
                "label": labels.ids[best],
                "name": labels.display(best),
                "prob": round(float(smoothed[best]), 4),
            },
            "state": self.state,
            "fps": fps,
        }
        t3 = time.perf_counter()
        image = frame.image
        if self.draw:
            view = OverlayView(
                top=list(zip(top.names, top.probs)),
                smoothed=(labels.display(best), float(smoothed[best])),
                capture_fps=fps["capture"],
                inference_fps=fps["inference"],
                latency_ms=(time.monotonic() - captured) * 1000,
                state=self.state,
                message=st.message,
            )
            image = annotate(frame.image, view)
        t4 = time.perf_counter()
        stage_ms = {
            "capture": (got - wait_start) * 1000,
            "preprocess": (t1 - got) * 1000,
            "inference": (t2 - t1) * 1000,
            "postprocess": (t3 - t2) * 1000,
            "draw": (t4 - t3) * 1000,
            "end_to_end": (time.monotonic() - captured) * 1000,
        }
        for name, ms in stage_ms.items():
            self.times.add(name, ms)
        event["latency_ms"] = {k: round(v, 2) for k, v in stage_ms.items()}
        return image, event

    def output(self, image: np.ndarray, event: dict[str, Any], st: SourceStatus) -> None:
        start = time.perf_counter()
        for sink in self.sinks:
            sink.frame(image, event)
        self.times.add("output", (time.perf_counter() - start) * 1000)  # writing, showing, serving
        frames = {
            "read": st.read,
            "classified": self.classified,
            "dropped": _dropped(self.source, st.read, st.delivered),
            "skipped": st.skipped,
        }
        _STATUS.update(frames=frames, fps=event["fps"], last=event)


def run_loop(
    classifier: Classifier, source: Source, options: LoopOptions, sinks: Sequence[Sink]
) -> LoopSummary:
    """Classify the frames of an opened `source` until it ends, feeding every sink; closes the sinks
    (the caller closes the source). A lost stream ends the loop with `error` set, not an exception."""
    run = _Run(classifier, source, options, sinks)
    info = {"source": source.name, "provider": classifier.provider, "device": classifier.device}
    _STATUS.start(info, run.times)
    ended_by, error = "end of source", None
    if run.draw:  # the first overlay pays for font and buffer set-up: not in the first frame's timings
        annotate(np.zeros((*classifier.spec.size, 3), np.uint8), OverlayView(top=[("", 0.0)]))
    start = time.perf_counter()
    try:
        while not (options.max_frames and run.classified >= options.max_frames):
            wait_start = time.perf_counter()
            frame, st = run.next_frame()
            if frame is None:
                break
            image, event = run.classify(frame, st, wait_start)
            run.classified += 1
            run.output(image, event, st)
        else:
            ended_by = "max frames"
    except StopRequested:
        ended_by = "quit"
    except KeyboardInterrupt:
        ended_by = "interrupted"
    except StreamLost as exc:
        ended_by, error = "stream lost", str(exc)
    finally:
        seconds = time.perf_counter() - start
        _close_sinks(sinks, {"state": ENDED, "message": ended_by, "t": run.now()})
    st = source.status()
    _STATUS.update(running=False, state=ENDED, message=ended_by)
    outputs = tuple(str(p) for p in (getattr(s, "path", None) for s in sinks) if p is not None)
    return LoopSummary(
        frames_read=st.read,
        classified=run.classified,
        dropped=_dropped(source, st.read, st.delivered),
        skipped=st.skipped,
        reconnects=st.reconnects,
        seconds=round(seconds, 3),
        fps=round(run.classified / seconds, 2) if seconds > 0 else 0.0,
        capture_fps=round(st.read / seconds, 2) if seconds > 0 else 0.0,
        stages=run.times.percentiles(),
        provider=classifier.provider,
        source=source.name,
        ended_by=ended_by,
        error=error,
        outputs=outputs,
    )


def _close_sinks(sinks: Sequence[Sink], ended: dict[str, Any]) -> None:
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
