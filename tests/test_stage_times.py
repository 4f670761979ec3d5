"""The loop's stage timers keep a long run's memory flat: their run-wide samples live in memory taken once, so
an unattended box's RSS does not climb with every frame (the soak benchmark's target), and their percentiles
stay right."""

from __future__ import annotations

import tracemalloc

import numpy as np

from mgc_edge.runtime import timing
from mgc_edge.runtime.timing import KEEP, StageTimes


def test_adding_samples_takes_no_memory_after_the_start() -> None:
    # Only what timing.py and this file allocate: threads left by earlier tests allocate too, meanwhile.
    mine = [tracemalloc.Filter(True, timing.__file__), tracemalloc.Filter(True, __file__)]
    tracemalloc.start()
    try:
        times = StageTimes(("capture", "inference", "end_to_end"))
        before = tracemalloc.take_snapshot().filter_traces(mine)
        for i in range(60_000):  # 40 minutes of one 25 fps camera
            for name in ("capture", "inference", "end_to_end"):
                times.add(name, float(i % 50))
        after = tracemalloc.take_snapshot().filter_traces(mine)
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 200_000  # the recent-frames deques only; a deque of floats took 5.8 MB here


def test_percentiles_over_the_run_and_the_recent_frames() -> None:
    times = StageTimes(("a",))
    assert times.percentiles() == {"a": (0.0, 0.0)}
    values = np.random.default_rng(0).uniform(0, 40, 5000)
    for v in values:
        times.add("a", float(v))
    p50, p95 = times.percentiles()["a"]
    assert abs(p50 - np.percentile(values, 50)) < 1e-3 and abs(p95 - np.percentile(values, 95)) < 1e-3
    recent = times.percentiles(recent=True)["a"]
    assert abs(recent[1] - np.percentile(values[-300:], 95)) < 1e-3
    for _ in range(KEEP):  # the run's samples are the newest KEEP
        times.add("a", 100.0)
    assert times.percentiles()["a"] == (100.0, 100.0)
