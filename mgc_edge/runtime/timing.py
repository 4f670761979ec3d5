"""Stage timers of the live loop: durations in ms per stage, with p50 / p95 over the whole run (bounded) and
over the most recent frames (what a live status shows). numpy only."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess", "draw")
KEEP = 100_000  # samples kept for the summary's percentiles (about an hour at 30 fps)
RECENT = 300  # samples behind the live status' percentiles


class StageTimes:
    """Durations per stage in ms; percentiles over the run (bounded) and over the recent frames."""

    def __init__(self, names: Sequence[str]) -> None:
        self.all = {n: deque(maxlen=KEEP) for n in names}
        self.recent = {n: deque(maxlen=RECENT) for n in names}

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
