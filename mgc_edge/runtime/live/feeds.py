"""One source inside the live loop (a `Feed`): its newest unclassified frame, its smoother, state, counters and
end-to-end latencies, and what it did (`SourceSummary`).

The loop takes a frame from every feed that has one and classifies them in one batch; everything before the
model (capture, decoding) and after it (smoothing, the event, the overlay) belongs to one feed, so a source
that drops, reconnects or ends changes nothing for the others. numpy + OpenCV only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mgc_edge.runtime.smoothing import Smoother
from mgc_edge.runtime.sources.base import (
    ENDED,
    FAILED,
    RECONNECTING,
    Frame,
    RateMeter,
    Source,
    SourceStatus,
    StreamLost,
)
from mgc_edge.runtime.timing import StageTimes

END_OF_SOURCE, MAX_FRAMES, STREAM_LOST = "end of source", "max frames", "stream lost"


@dataclass(frozen=True)
class SourceSummary:
    """What one source did in a run: counts, rates, end-to-end latency (ms, p50 / p95) and how it ended."""

    index: int
    name: str  # URLs redacted
    frames_read: int
    classified: int
    dropped: int  # live sources: captured but never classified (a newer frame replaced it)
    skipped: int  # files: left out by `every`
    reconnects: int
    fps: float  # classified frames per second of the run
    capture_fps: float  # frames read per second of the run
    latency_ms: tuple[float, float]  # end to end (capture to classified): p50, p95
    ended_by: str  # "end of source", "stream lost", "max frames", or how the run ended while it was live
    error: str | None = None  # the one sentence of a lost stream


class Feed:
    """One source of the loop: hands out its newest unclassified frame, follows its state (a reconnect resets
    the smoother) and counts what was classified and how late."""

    def __init__(self, index: int, source: Source, smooth: str, max_frames: int = 0) -> None:
        self.index, self.source, self.max_frames = index, source, max_frames
        self.tag = {"index": index, "name": source.name}  # the `source` object of every event
        self.smoother = Smoother(smooth)
        self.times = StageTimes(("end_to_end",))
        self.meter = RateMeter()
        self.status: SourceStatus = source.status()
        self.state, self.message = self.status.state, self.status.message
        self.reconnects = self.classified = 0
        self.ended_by: str | None = None  # set once the feed has nothing more to give
        self.error: str | None = None
        self.last: dict[str, Any] | None = None  # the newest event

    @property
    def done(self) -> bool:
        return self.ended_by is not None

    def take(self) -> Frame | None:
        """The newest frame not classified yet, without waiting; None when there is none (a lost stream marks
        the feed done, with its sentence in `error`)."""
        if self.done:
            return None
        try:
            return self.source.read(0)
        except StreamLost as exc:
            self.ended_by, self.error = STREAM_LOST, str(exc)
            return None

    def poll(self, had_frame: bool) -> bool:
        """Read the source's state and say whether it changed. A reconnect resets the smoother (what came
        before the drop says nothing about what comes after); the end of the source, seen in a tick that gave
        no frame (so that its last frame is never lost), marks the feed done."""
        st = self.status = self.source.status()
        if st.reconnects != self.reconnects or (st.state == RECONNECTING and self.state != RECONNECTING):
            self.smoother.reset()
            self.reconnects = st.reconnects
        changed = st.state != self.state
        self.state, self.message = st.state, st.message
        if not had_frame and not self.done:
            if st.state == ENDED:
                self.ended_by = END_OF_SOURCE
            elif st.state == FAILED:
                self.ended_by, self.error = STREAM_LOST, st.message
        return changed

    def counted(self, event: dict[str, Any], end_to_end_ms: float, now: float) -> None:
        """Record one classified frame; a feed that reached `max_frames` is done."""
        self.classified += 1
        self.last = event
        self.meter.tick(now)
        self.times.add("end_to_end", end_to_end_ms)
        if self.max_frames and self.classified >= self.max_frames and not self.done:
            self.ended_by = MAX_FRAMES

    def dropped(self, st: SourceStatus | None = None) -> int:
        st = st or self.status
        return 0 if self.source.kind == "file" else max(0, st.read - st.delivered)

    def frames(self) -> dict[str, int]:
        st = self.status
        return {
            "read": st.read,
            "classified": self.classified,
            "dropped": self.dropped(),
            "skipped": st.skipped,
        }

    def entry(self) -> dict[str, Any]:
        """This source in the loop's live status (`/api/status`); latency is added by the status itself."""
        st, now = self.status, time.monotonic()
        smoothed = self.last["smoothed"] if self.last else None
        return {
            **self.tag,
            "kind": self.source.kind,
            "state": self.state,
            "message": self.message,
            "frames": self.frames(),
            "reconnects": self.reconnects,
            "fps": {"capture": round(st.capture_fps, 2), "inference": round(self.meter.rate(now), 2)},
            "smoothed": smoothed,
        }

    def summary(self, seconds: float, run_ended_by: str) -> SourceSummary:
        st = self.status = self.source.status()
        p50, p95 = self.times.percentiles()["end_to_end"]
        return SourceSummary(
            index=self.index,
            name=self.source.name,
            frames_read=st.read,
            classified=self.classified,
            dropped=self.dropped(st),
            skipped=st.skipped,
            reconnects=st.reconnects,
            fps=round(self.classified / seconds, 2) if seconds > 0 else 0.0,
            capture_fps=round(st.read / seconds, 2) if seconds > 0 else 0.0,
            latency_ms=(p50, p95),
            ended_by=self.ended_by or run_ended_by,
            error=self.error,
        )
