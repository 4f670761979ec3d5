"""Stage timers of the live loop: durations in ms per stage, with p50 / p95 over the whole run (bounded) and
over the most recent frames (what a live status shows). numpy only."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess", "draw")
KEEP = 100_000  # samples kept per stage for the summary's percentiles (about an hour at 30 fps), 400 kB
RECENT = 300  # samples behind the live status' percentiles


class _Ring:
    """The newest `size` samples as float32, in memory taken (and touched) once: a long run's RSS does not grow
    with its length, where a deque of Python floats took 32 bytes a sample until it was full."""

    __slots__ = ("buf", "count")

    def __init__(self, size: int) -> None:
        self.buf = np.empty(size, np.float32)
        self.buf.fill(0.0)  # the pages are resident from the start, not one by one as the run goes on
        self.count = 0

    def append(self, value: float) -> None:
        self.buf[self.count % len(self.buf)] = value
        self.count += 1

    def __len__(self) -> int:
        return min(self.count, len(self.buf))

    def values(self) -> np.ndarray:
        return self.buf[: len(self)].astype(np.float64)  # order does not matter to a percentile


class StageTimes:
    """Durations per stage in ms; percentiles over the run (bounded) and over the recent frames."""

    def __init__(self, names: Sequence[str]) -> None:
        self.all = {n: _Ring(KEEP) for n in names}
        self.recent = {n: deque(maxlen=RECENT) for n in names}

    def add(self, name: str, ms: float) -> None:
        self.all[name].append(ms)
        self.recent[name].append(ms)

    @staticmethod
    def _pct(values: np.ndarray) -> tuple[float, float]:
        if not len(values):
            return (0.0, 0.0)
        p50, p95 = np.percentile(values, [50, 95])
        return (round(float(p50), 3), round(float(p95), 3))

    def percentiles(self, recent: bool = False) -> dict[str, tuple[float, float]]:
        if recent:
            return {
                name: self._pct(np.array(list(values), np.float64)) for name, values in self.recent.items()
            }
        return {name: self._pct(ring.values()) for name, ring in self.all.items()}
