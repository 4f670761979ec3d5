"""One source captured in a worker process as the loop sees it (`RemoteSource`): the `Source` surface (seq
strictly increasing, the newest frame only, never a repeat, states and events, redacted names) over its slot of
the worker's ring, filled by its `CapturePool` (capture/pool.py), so the loop, its feeds and the sinks are the
threaded ones. numpy-free: the pool does the gathering."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mgc_edge.runtime.capture.ring import DROPPED, FPS, READ, RECONNECTS, SKIPPED, STATE, STATES, H, W
from mgc_edge.runtime.sources.base import (
    FAILED,
    LIVE,
    RECONNECTING,
    STALE,
    Frame,
    Source,
    SourceOptions,
    SourceStatus,
    StreamLost,
)

if TYPE_CHECKING:
    from mgc_edge.runtime.capture.pool import CapturePool

POLL_S = 0.002  # the loop's wait between looks at the rings while no frame is new


class RemoteSource(Source):
    """One source captured in a worker process, read from its slot of the worker's ring."""

    def __init__(self, pool: CapturePool, worker: int, slot: int, text: str, options: SourceOptions) -> None:
        self.pool, self.worker, self.slot, self.options = pool, worker, slot, options
        self.name, self.kind, self.live = text, "live", True
        self.fps, self.clock, self.frame_count = 0.0, time.monotonic(), 0
        self.size: tuple[int, int] | None = None
        self.pending: Frame | None = None
        self.delivered = 0
        self.message = ""
        self.state_override: tuple[str, str] | None = None  # while its worker restarts
        self.base = [0.0, 0.0, 0.0, 0.0]  # READ, SKIPPED, DROPPED, RECONNECTS of the worker's earlier lives
        self.ring_dropped = 0  # frames overwritten in the ring before the main process took them

    def opened(self, info: dict[str, Any]) -> None:
        self.name, self.kind, self.live = info["name"], info["kind"], info["live"]
        self.fps, self.clock, self.frame_count = info["fps"], info["clock"], info["frame_count"]
        self.size = info["size"]

    def open(self) -> RemoteSource:
        return self

    @property
    def given(self) -> int:
        """The newest seq handed out (-1: none yet)."""
        return int(self.pool.given[self.worker][self.slot])

    def read(self, timeout: float = 0.1) -> Frame | None:
        deadline = time.monotonic() + timeout
        while True:
            if self.pending is None and not self.pool.fresh_gather():
                self.pool.gather()
            frame = self.pending
            if frame is not None:
                self.pending = None
                self.pool.pending[self.worker][self.slot] = False
                self.pool.given[self.worker][self.slot] = frame.seq
                self.delivered += 1
                return frame
            state = self.status().state
            if state == FAILED:
                raise StreamLost(self.message)
            if state not in (LIVE, STALE, RECONNECTING) or time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def status(self) -> SourceStatus:
        # Read every tick for every source: one list of the header row, no numpy per field.
        row = self.pool.rings[self.worker].header[self.slot].tolist()
        state, message = STATES[int(row[STATE])], self.message
        if self.state_override is not None:
            state, message = self.state_override
        base = self.base
        return SourceStatus(
            state, message, int(base[0] + row[READ]), self.delivered, int(base[1] + row[SKIPPED]),
            int(base[3] + row[RECONNECTS]), row[FPS] if state in (LIVE, STALE) else 0.0,
            (int(row[H]), int(row[W])) if row[H] else self.size, int(base[2] + row[DROPPED]) + self.ring_dropped,
        )  # fmt: skip

    def close(self) -> None:
        self.pool.close()
