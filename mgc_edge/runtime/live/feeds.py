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
    LIVE,
    RECONNECTING,
    STALE,
    Frame,
    RateMeter,
    Source,
    SourceStatus,
    StreamLost,
)
from mgc_edge.runtime.timing import StageTimes

END_OF_SOURCE, MAX_FRAMES, STREAM_LOST = "end of source", "max frames", "stream lost"
UP = (LIVE, STALE)  # states in which a source is connected: its live time runs


@dataclass(frozen=True)
class SourceSummary:
    """What one source did in a run: counts, rates, end-to-end latency (ms, p50 / p95) and how it ended."""

    index: int
    name: str  # URLs redacted
    frames_read: int
    classified: int
    dropped: int  # live sources: overwritten by a newer frame while running, never classified
    skipped: int  # left out by `every`, or overwritten while the loop started or the stream warmed up
    reconnects: int
    fps: float  # classified frames per second of the time the source was live
    capture_fps: float  # frames read per second of the time the source was live
    latency_ms: tuple[float, float]  # end to end (capture to classified): p50, p95
    ended_by: str  # "end of source", "stream lost", "max frames", or how the run ended while it was live
    error: str | None = None  # the one sentence of a lost stream
    short_name: str = ""  # short and unique in the run (the table's name)
    live_seconds: float = 0.0  # the time the source was live (connected) during the run


class Feed:
    """One source of the loop: hands out its newest unclassified frame, follows its state (a reconnect resets
    the smoother; each event of the source's life becomes a record for the sinks), and counts what was
    classified, how late, and for how long the source was live."""

    def __init__(self, index: int, source: Source, smooth: str, max_frames: int = 0) -> None:
        self.index, self.source, self.max_frames = index, source, max_frames
        short = source.short_name or source.name
        self.tag = {"index": index, "name": source.name, "short_name": short}  # every event's `source`
        self.smoother = Smoother(smooth)
        self.times = StageTimes(("end_to_end",))
        self.meter = RateMeter()
        self.status: SourceStatus = source.status()
        self.state, self.message = self.status.state, self.status.message
        self.state_since = time.time()  # wall clock (epoch s) when the current state began
        self.live_seconds = 0.0
        self._up_since: float | None = time.monotonic() if self.state in UP else None
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

    def poll(self, had_frame: bool) -> list[dict[str, Any]]:
        """Read the source's state and its events; the records of what happened since the last poll (each
        {"event", "state", "message", "time"}), oldest first. A reconnect resets the smoother (what came before
        the drop says nothing about what comes after); the end of the source, seen in a tick that gave no
        frame (so that its last frame is never lost), marks the feed done."""
        events = self.source.events()
        st = self.status = self.source.status()
        events += self.source.events()  # a state the status shows has its event recorded by now
        if st.reconnects != self.reconnects or (st.state == RECONNECTING and self.state != RECONNECTING):
            self.smoother.reset()
            self.reconnects = st.reconnects
        records = [{"event": e.kind, "state": e.state, "message": e.message, "time": e.wall} for e in events]
        state = records[-1]["state"] if records else self.state
        if st.state == STALE and state in UP:
            state = STALE  # stale is no event of the source's: its status computes it
        elif st.state == LIVE and state == STALE:
            state = LIVE
        elif not records and st.state != state:  # a kind of source that records no events
            state = st.state
        if state != (records[-1]["state"] if records else self.state):
            records.append({"event": state, "state": state, "message": st.message, "time": time.time()})
        for record in records:
            self._enter(record["state"], record["time"])
        self.message = st.message if state == st.state else records[-1]["message"]
        if not had_frame and not self.done:
            if st.state == ENDED:
                self.ended_by = END_OF_SOURCE
            elif st.state == FAILED:
                self.ended_by, self.error = STREAM_LOST, st.message
        return records

    def _enter(self, state: str, wall: float) -> None:
        """Follow a change of state: since when, and the live time."""
        if state == self.state:
            return
        now = time.monotonic()
        if self._up_since is not None and state not in UP:
            self.live_seconds += now - self._up_since
            self._up_since = None
        elif self._up_since is None and state in UP:
            self._up_since = now
        self.state, self.state_since = state, wall

    def live_time(self) -> float:
        """Seconds the source was live (connected) so far."""
        up = time.monotonic() - self._up_since if self._up_since is not None else 0.0
        return self.live_seconds + up

    def counted(self, event: dict[str, Any], end_to_end_ms: float, now: float) -> None:
        """Record one classified frame; a feed that reached `max_frames` is done."""
        self.classified += 1
        self.last = event
        self.meter.tick(now)
        self.times.add("end_to_end", end_to_end_ms)
        if self.max_frames and self.classified >= self.max_frames and not self.done:
            self.ended_by = MAX_FRAMES

    def dropped(self, st: SourceStatus | None = None) -> int:
        return (st or self.status).dropped

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
        up = self.state in UP
        smoothed = self.last["smoothed"] if self.last and self.state == LIVE else None
        fps = {"capture": round(st.capture_fps, 2), "inference": round(self.meter.rate(now), 2)}
        return {
            **self.tag,
            "kind": self.source.kind,
            "state": self.state,
            "message": self.message,
            "state_since": round(self.state_since, 3),
            "frames": self.frames(),
            "reconnects": self.reconnects,
            "fps": fps if up else {"capture": 0.0, "inference": 0.0},  # what is true now: 0 while down
            "smoothed": smoothed,
        }

    def summary(self, seconds: float, run_ended_by: str) -> SourceSummary:
        st = self.status = self.source.status()
        p50, p95 = self.times.percentiles()["end_to_end"]
        live = min(self.live_time(), seconds)
        return SourceSummary(
            index=self.index,
            name=self.source.name,
            frames_read=st.read,
            classified=self.classified,
            dropped=self.dropped(st),
            skipped=st.skipped,
            reconnects=st.reconnects,
            fps=round(self.classified / live, 2) if live > 0 else 0.0,
            capture_fps=round(st.read / live, 2) if live > 0 else 0.0,
            latency_ms=(p50, p95),
            ended_by=self.ended_by or run_ended_by,
            error=self.error,
            short_name=self.tag["short_name"],
            live_seconds=round(live, 3),
        )
