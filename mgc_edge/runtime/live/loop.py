"""The live loop: sources (one or many) -> the newest frame of each -> preprocess() -> ONE batch through ONNX
Runtime -> softmax -> per source: smoothing -> overlay -> sinks.

One thread classifies; every source captures or decodes in its own thread and wakes the loop when a frame
arrives. On a GPU (`pipeline`) a tick's inference runs in a thread of its own while the loop finishes the tick
before, and each source's thread preprocesses its frames too: the loop's thread keeps only what must happen in
order. Each tick takes the newest unclassified frame of every source that has one and classifies them
together. With one source that is one frame and no waiting for a batch to fill; when the model falls behind,
frames of several sources are waiting by the next tick and the batch grows by itself, which is when batching
pays (a batch of 4 costs far less than 4 batches of 1). Each stage is timed (capture wait, preprocess,
inference, postprocess, draw), the counters, overall and per source, are readable at any time through
`status()` (the web view polls it), and the loop ends cleanly when every source has ended or was lost, at
`max_frames` of every source, on a sink's stop request (q / Esc) or Ctrl-C, always closing the sinks and
returning a summary. numpy + OpenCV + onnxruntime only: never torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mgc_edge.runtime.capture.pool import wait_for_news
from mgc_edge.runtime.live.events import draw, frame_event
from mgc_edge.runtime.live.feeds import END_OF_SOURCE, MAX_FRAMES, STREAM_LOST, UP, Feed, SourceSummary
from mgc_edge.runtime.live.stages import Inference, Preprocessor, Tick, Waker
from mgc_edge.runtime.live.status import STATUS
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.scores import softmax
from mgc_edge.runtime.overlay import OverlayView, annotate
from mgc_edge.runtime.sinks.base import Sink, StopRequested, close_sinks, outputs_of
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH
from mgc_edge.runtime.sources.base import ENDED, FAILED, LIVE, RECONNECTING, STALE, Frame, RateMeter, Source
from mgc_edge.runtime.timing import STAGES, StageTimes

__all__ = ["STAGES", "LoopOptions", "LoopSummary", "SourceSummary", "run_loop"]


@dataclass(frozen=True)
class LoopOptions:
    """What the loop does with each frame; the sources and the sinks are chosen by the caller."""

    topk: int = 5
    smooth: str = DEFAULT_SMOOTH
    max_frames: int = 0  # per source; 0: until the source ends
    poll: float = 0.1  # seconds between state checks while no frame comes
    pipeline: bool | None = None  # overlap inference with the loop's own work; None: where it runs on a GPU


@dataclass(frozen=True)
class LoopSummary:
    """What a run of the loop did: counts and rates over all sources, per-stage latency (ms, p50 / p95), how it
    ended, and the same per source in `sources`."""

    frames_read: int
    classified: int
    dropped: int  # live sources: overwritten by a newer frame while running, never classified
    skipped: int  # left out by `every`, or overwritten while the loop started or a stream warmed up
    reconnects: int
    seconds: float
    fps: float  # classified frames per second of the loop
    capture_fps: float  # frames read per second
    stages: dict[str, tuple[float, float]]  # stage -> (p50, p95) in ms, plus "output" and "end_to_end"
    provider: str
    source: str  # the source's name, or "N sources"
    ended_by: str  # "end of source", "max frames", "quit", "interrupted" or "stream lost"
    error: str | None = None  # one sentence when a stream was lost for good
    outputs: tuple[str, ...] = field(default_factory=tuple)
    sources: tuple[SourceSummary, ...] = field(default_factory=tuple)
    batches: int = 0  # inference calls; classified / batches is the mean batch size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PIPELINED_DEVICES = ("cuda", "tensorrt")  # where a tick's inference overlaps the loop's work on the last one
PUBLISH_S = 0.05  # the live status is brought up to date at most 20 times a second

# Which state the run as a whole shows: live while any source is live.
_STATE_ORDER = (LIVE, STALE, RECONNECTING, FAILED, ENDED)


class _Run:
    """One run of the loop: the feeds, the timers and the state seen so far."""

    def __init__(
        self, classifier: Classifier, sources: Sequence[Source], options: LoopOptions, sinks: Sequence[Sink]
    ) -> None:
        self.clf, self.options, self.sinks = classifier, options, sinks
        self.feeds = [Feed(i, s, options.smooth, options.max_frames) for i, s in enumerate(sources)]
        self.many = len(self.feeds) > 1
        self.draw = any(s.wants_image for s in sinks)
        self.times = StageTimes((*STAGES, "output", "end_to_end"))
        self.meter = RateMeter()
        self.waker = Waker()
        self.preprocess = Preprocessor(classifier.spec, len(sources))
        # On a GPU the model takes about as long per frame as the loop's own work (smoothing, events, sinks), so
        # the two overlap: a tick's inference runs in this thread (ONNX Runtime releases the GIL) while the loop
        # finishes the tick before. On a CPU the model needs the cores the overlap would take: one thread.
        pipeline = (
            options.pipeline if options.pipeline is not None else classifier.device in PIPELINED_DEVICES
        )
        self.inference = Inference(classifier.logits) if pipeline else None
        # Pipelined, each source's thread also preprocesses its frames: the loop's thread, which the model no
        # longer waits for, keeps only what must be in order (the events and the sinks).
        prepare = self.clf.prepare_one if self.inference is not None else None
        for source in sources:
            source.attach(self.waker.notify, prepare)
        self.clock = min(s.clock for s in sources)
        # Sources captured in worker processes are read from shared memory in one go per tick (capture/pool.py).
        self.pools = list({id(p): p for s in sources if (p := getattr(s, "pool", None)) is not None}.values())
        self.state = LIVE
        self.classified = self.batches = 0
        self.last: dict[str, Any] | None = None  # the newest event of any source
        self.published = 0.0  # when the live status was last brought up to date

    def inputs(self, frames: list[Frame]) -> np.ndarray:
        """The batch's model input: the inputs the sources made where every frame has one, else preprocess()
        of the images here."""
        if all(frame.x is not None for frame in frames):
            if len(frames) == 1:
                return frames[0].x[None]  # type: ignore[index]
            xs = [frame.x for frame in frames]
            return np.stack(xs, out=self.clf.input_array(len(xs)))  # type: ignore[arg-type]
        return self.preprocess([frame.image for frame in frames])

    def now(self) -> float:
        """Seconds since the first source started, for state events."""
        return round(time.monotonic() - self.clock, 3)

    def collect(self, in_flight: Tick | None = None) -> list[tuple[Feed, Frame]]:
        """The newest unclassified frame of every feed that has one; changes of state go to the sinks. A feed
        whose frame in flight (`in_flight`, classified but not yet counted) is its last under max_frames
        gives none."""
        batch = []
        busy = {feed.index for feed, _ in in_flight.batch} if in_flight is not None else set()
        for pool in self.pools:
            pool.want_images(self.draw)
            pool.gather()
        for feed in self.feeds:
            if feed.done:
                continue
            if feed.max_frames and feed.classified + (feed.index in busy) >= feed.max_frames:
                continue
            frame = feed.take()
            if frame is not None:
                batch.append((feed, frame))
            records = feed.poll(frame is not None)
            if records:
                self.tell(feed, records)
        return batch

    def tell(self, feed: Feed, records: list[dict[str, Any]]) -> None:
        """Forward the events of a source's life to the sinks ({"state", "event", "message", "t", "time",
        "source"}) and the live status. The end of the only source is told once, by _close_sinks, with how the
        run ended (its failure also as it happens: the JSONL keeps it); with several, each one's end is told as
        it happens."""
        states = [f.state for f in self.feeds]
        overall = next((s for s in _STATE_ORDER if s in states), ENDED)
        changes: dict[str, Any] = {"reconnects": sum(f.reconnects for f in self.feeds)}
        changed = overall != self.state
        if changed:
            self.state = overall
            changes.update(state=overall, state_since=round(time.time(), 3))
        if changed or not self.many:
            changes.update(message=feed.message if not self.many else "")
        STATUS.update(**changes, sources=[f.entry() for f in self.feeds])
        t = self.now()
        for record in records:
            if record["state"] == ENDED and not self.many:
                continue
            event = {**record, "t": t, "time": round(record["time"], 3), "source": feed.tag}
            for sink in self.sinks:
                sink.state(event)

    def idle(self, seen: int) -> None:
        """Wait for a frame from any source; sinks with an `idle()` are called meanwhile (a window stays
        responsive)."""
        for sink in self.sinks:
            sink.idle()
        if self.pools:
            wait_for_news(self.pools, self.options.poll)
        else:
            self.waker.wait(seen, self.options.poll)

    def start(self, batch: list[tuple[Feed, Frame]], wait_start: float) -> Tick:
        """preprocess, then one inference for the whole batch: handed to the inference thread where the loop
        is pipelined (the result is read by `complete`), else run here."""
        got, got_at = time.perf_counter(), time.monotonic()
        # Every sink is asked (no short cut): a web view wants the drawn frame only while someone watches.
        self.draw = any([s.wants_image for s in self.sinks])
        x = self.inputs([frame for _, frame in batch])
        t1 = time.perf_counter()
        if self.inference is not None:
            self.inference.submit(x)
            return Tick(batch, wait_start, got, got_at, t1, None)
        return Tick(batch, wait_start, got, got_at, t1, self.clf.logits(x))

    def complete(self, tick: Tick) -> None:
        """softmax of the tick's logits; then per frame: smoothing, top-k, the event, the overlay and the
        sinks, each stage timed."""
        logits = self.inference.result() if tick.logits is None else tick.logits  # type: ignore[union-attr]
        probs = softmax(logits)
        t2 = time.perf_counter()
        self.batches += 1
        shared = {
            "capture": (tick.got - tick.wait_start) * 1000,
            "preprocess": (tick.t1 - tick.got) * 1000,
            "inference": (t2 - tick.t1) * 1000,
        }
        for (feed, frame), p in zip(tick.batch, probs):
            captured = feed.source.clock + frame.t if feed.source.live else tick.got_at
            # A frame its source preprocessed: that time, plus the batch's assembly here.
            stages = {**shared, "preprocess": shared["preprocess"] + frame.prep_ms}
            image, event = self.finish(feed, frame, p, captured, stages, len(tick.batch))
            self.output(feed, image, event)
        self.publish()

    def finish(
        self,
        feed: Feed,
        frame: Frame,
        probs: np.ndarray,
        captured: float,
        shared: dict[str, float],
        batch_size: int,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Smoothing, top-k, the event (the JSONL object) and the overlay of one classified frame."""
        t2 = time.perf_counter()
        smoothed = feed.smoother.update(probs, frame.t)
        top = self.clf.top(probs, self.options.topk)
        now = time.monotonic()
        self.meter.tick(now)
        fps = {"capture": round(feed.status.capture_fps, 2), "inference": round(feed.meter.rate(now), 2)}
        event = frame_event(feed, frame, top, self.clf.labels, smoothed, fps, batch_size)
        t3 = time.perf_counter()
        image = frame.image
        if self.draw:
            latency_ms = (time.monotonic() - captured) * 1000
            image = draw(frame, feed, top, self.clf.labels, smoothed, fps, latency_ms)
        t4 = time.perf_counter()
        stage_ms = {
            **shared,
            "postprocess": (t3 - t2) * 1000,
            "draw": (t4 - t3) * 1000,
            "end_to_end": (time.monotonic() - captured) * 1000,
        }
        for name, ms in stage_ms.items():
            self.times.add(name, ms)
        event["latency_ms"] = {k: round(stage_ms[k], 2) for k in (*STAGES, "end_to_end")}
        self.classified += 1
        self.last = event
        feed.counted(event, stage_ms["end_to_end"], now)
        return image, event

    def output(self, feed: Feed, image: np.ndarray, event: dict[str, Any]) -> None:
        start = time.perf_counter()
        for sink in self.sinks:
            sink.frame(image, event)
        self.times.add("output", (time.perf_counter() - start) * 1000)  # writing, showing, serving

    def publish(self, force: bool = False) -> None:
        """The live status after a tick (at most every PUBLISH_S, so that tens of sources cost the loop little):
        totals, rates and every source's counters."""
        now = time.monotonic()
        if not force and now < self.published + PUBLISH_S:
            return
        self.published = now
        frames = {"read": 0, "classified": 0, "dropped": 0, "skipped": 0}
        for feed in self.feeds:
            for key, value in feed.frames().items():
                frames[key] += value
        capture = sum(f.status.capture_fps for f in self.feeds if not f.done and f.state in UP)
        STATUS.update(
            frames=frames,
            fps={"capture": round(capture, 2), "inference": round(self.meter.rate(now), 2)},
            last=self.last,
            sources=[f.entry() for f in self.feeds],
        )

    def lost(self) -> str | None:
        """One sentence for the streams lost for good (None if none), however the run ended."""
        lost = [f for f in self.feeds if f.ended_by == STREAM_LOST]
        if len(lost) == 1:
            return lost[0].error
        if lost:
            names = ", ".join(f.source.name for f in lost)
            return f"{len(lost)} of {len(self.feeds)} sources dropped and did not come back: {names}."
        return None

    def ended_by(self) -> str:
        """How the run ended once every feed is done."""
        if any(f.ended_by == STREAM_LOST for f in self.feeds):
            return STREAM_LOST
        if all(f.ended_by == MAX_FRAMES for f in self.feeds):
            return MAX_FRAMES
        return END_OF_SOURCE


def run_loop(
    classifier: Classifier,
    sources: Source | Sequence[Source],
    options: LoopOptions,
    sinks: Sequence[Sink],
) -> LoopSummary:
    """Classify the frames of the opened `sources` (one source or several, batched) until every one has ended
    or was lost, feeding every sink; closes the sinks (the caller closes the sources). A lost stream does not
    raise: it ends its own feed (the others go on) and the summary's `error` says which."""
    sources = [sources] if isinstance(sources, Source) else list(sources)
    if not sources:
        raise ValueError("run_loop needs at least one source")
    run = _Run(classifier, sources, options, sinks)
    name = sources[0].name if len(sources) == 1 else f"{len(sources)} sources"
    info = {"source": name, "provider": classifier.provider, "device": classifier.device}
    STATUS.start(info, run.times, run.feeds)
    ended_by = END_OF_SOURCE
    if run.draw:  # the first overlay pays for font and buffer set-up: not in the first frame's timings
        annotate(np.zeros((*classifier.spec.size, 3), np.uint8), OverlayView(top=[("", 0.0)]))
    start = time.perf_counter()
    try:
        ended_by = _drive(run)
    except StopRequested:
        ended_by = "quit"
    except KeyboardInterrupt:
        ended_by = "interrupted"
    finally:
        seconds = time.perf_counter() - start
        run.preprocess.close()
        if run.inference is not None:
            run.inference.close()
        for source in sources:
            source.attach(_nothing)  # the sources outlive the run: no more wake-ups or preprocessing
        close_sinks(sinks, {"state": ENDED, "message": ended_by, "t": run.now()})
    summaries = tuple(feed.summary(seconds, ended_by) for feed in run.feeds)
    run.publish(force=True)
    STATUS.update(running=False, state=ENDED, message=ended_by, state_since=round(time.time(), 3))
    return _summary(run, name, seconds, ended_by, summaries)


def _drive(run: _Run) -> str:
    """Tick until every feed is done: collect, start the batch, complete the one before (pipelined) or this
    one; wait for frames when none came. Returns how the run ended."""
    wait_start = time.perf_counter()
    pending: Tick | None = None  # a pipelined tick whose inference is running
    while True:
        active = not all(feed.done for feed in run.feeds)
        if not active and pending is None:
            break
        seen = run.waker.count
        batch = run.collect(pending) if active else []
        if batch:
            tick = run.start(batch, wait_start)
            if pending is not None:
                run.complete(pending)  # while `tick` runs in the inference thread
            pending = tick
            if run.inference is None:
                run.complete(tick)
                pending = None
            wait_start = time.perf_counter()
        elif pending is not None:  # nothing new yet: the last tick's frames go out now, not later
            run.complete(pending)
            pending = None
        elif active:
            run.publish()  # while every source is down too: the live status says so
            run.idle(seen)
    return run.ended_by()


def _summary(
    run: _Run, name: str, seconds: float, ended_by: str, summaries: tuple[SourceSummary, ...]
) -> LoopSummary:
    read = sum(s.frames_read for s in summaries)
    return LoopSummary(
        frames_read=read,
        classified=run.classified,
        dropped=sum(s.dropped for s in summaries),
        skipped=sum(s.skipped for s in summaries),
        reconnects=sum(s.reconnects for s in summaries),
        seconds=round(seconds, 3),
        fps=round(run.classified / seconds, 2) if seconds > 0 else 0.0,
        capture_fps=round(read / seconds, 2) if seconds > 0 else 0.0,
        stages=run.times.percentiles(),
        provider=run.clf.provider,
        source=name,
        ended_by=ended_by,
        error=run.lost(),  # a stream lost before a quit or Ctrl-C still fails the run
        outputs=outputs_of(run.sinks),
        sources=summaries,
        batches=run.batches,
    )


def _nothing() -> None:
    pass
