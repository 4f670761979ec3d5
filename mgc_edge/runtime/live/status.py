"""The live counters of the running (or last) loop, readable from any thread (`status()`: the web view polls
it). The loop writes them through `STATUS`."""

from __future__ import annotations

import threading
import time
from typing import Any

from mgc_edge.runtime.live.feeds import Feed
from mgc_edge.runtime.sources.base import LIVE
from mgc_edge.runtime.timing import StageTimes


class _Status:
    """The live counters of the running (or last) loop, behind a lock; read with `status()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {"running": False, "state": "idle"}
        self._times: StageTimes | None = None
        self._feeds: list[Feed] = []

    def start(self, info: dict[str, Any], times: StageTimes, feeds: list[Feed]) -> None:
        with self._lock:
            self._data = {
                "running": True,
                "state": LIVE,
                "message": "",
                "state_since": round(time.time(), 3),
                "frames": {"read": 0, "classified": 0, "dropped": 0, "skipped": 0},
                "reconnects": 0,
                "fps": {"capture": 0.0, "inference": 0.0},
                "last": None,
                **info,
                "sources": [feed.entry() for feed in feeds],
            }
            self._times, self._feeds = times, feeds

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._data.update(changes)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = dict(self._data)
            if self._times is not None:
                data["latency_ms"] = _as_dict(self._times.percentiles(True))
            # The per-source end-to-end latency of the recent frames; the deques are only appended to by
            # the loop thread, and percentiles() copies them first.
            data["sources"] = [
                {**entry, "latency_ms": _as_dict(feed.times.percentiles(True))}
                for entry, feed in zip(data.get("sources", []), self._feeds)
            ]
        return data


def _as_dict(percentiles: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    return {k: {"p50": v[0], "p95": v[1]} for k, v in percentiles.items()}


STATUS = _Status()


def status() -> dict[str, Any]:
    """A snapshot of the running (or last) loop's counters, safe to call from any thread: state, its message and
    `state_since` (epoch seconds), frames read / classified / dropped / skipped, reconnects, capture and
    inference FPS over the last seconds (0 while every source is down), recent per-stage latency p50 / p95
    (ms), provider, source, the last event, and `sources`: the same per source (index, name, short_name, kind,
    state, message, state_since, frames, reconnects, fps (0 while down), end-to-end latency, and the smoothed
    label, None while the source is not live)."""
    return STATUS.snapshot()
