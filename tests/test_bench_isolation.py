"""The inference benchmark times each engine on an idle process: `quiet_start` waits out the threads the engine
before left spinning, and `time_engines` starts every engine's round with it (or, asked, straight away)."""

from __future__ import annotations

import threading
import time

import numpy as np

from benchmarks.bench_infer import InferBench, time_engines
from benchmarks.common import quiet_start

# Windows long enough that a spinning thread shows in each even on a loaded machine.
WINDOW_S = 0.05


def wait() -> float:
    return quiet_start(window_s=WINDOW_S)


class Spinner:
    """A thread that burns CPU until `deadline` (perf_counter seconds), as an idle spinning pool does."""

    def __init__(self) -> None:
        self.deadline = 0.0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            if time.perf_counter() < self.deadline:
                continue  # busy: CPU time accrues
            time.sleep(0.001)

    def spin_for(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    @property
    def spinning(self) -> bool:
        return time.perf_counter() < self.deadline

    def close(self) -> None:
        self.stop = True
        self.thread.join()


def test_quiet_start_waits_until_the_spinning_thread_stops() -> None:
    spinner = Spinner()
    try:
        spinner.spin_for(0.3)
        waited = wait()
        assert not spinner.spinning
        assert waited >= 0.25
    finally:
        spinner.close()


def test_quiet_start_returns_before_its_limit_on_an_idle_process() -> None:
    assert quiet_start(max_s=0.5) < 0.5


def test_quiet_start_gives_up_at_its_limit() -> None:
    spinner = Spinner()
    try:
        spinner.spin_for(10.0)
        waited = quiet_start(window_s=WINDOW_S, max_s=0.1)
        assert 0.1 <= waited < 5.0
        assert spinner.spinning
    finally:
        spinner.close()


def _engines(spinner: Spinner) -> tuple[dict[str, tuple], list[bool]]:
    """`spins`: leaves a thread spinning for 0.2 s after every call; `victim`: records, at each call, whether
    that thread was spinning."""
    seen: list[bool] = []

    def spins(x: np.ndarray) -> None:
        spinner.spin_for(0.2)

    def victim(x: np.ndarray) -> None:
        seen.append(spinner.spinning)

    sync = lambda: None  # noqa: E731
    return {"spins": (spins, sync), "victim": (victim, sync)}, seen


def test_every_round_starts_after_the_engine_before_fell_idle() -> None:
    spinner = Spinner()
    try:
        engines, seen = _engines(spinner)
        x = np.zeros((1, 3, 4, 4), np.float32)
        b = InferBench(size=4, b1_iters=4, b32_iters=2, rounds=2, quiet=True)
        b1, b32, waits = time_engines(engines, x, x, b, wait)
        assert seen and not any(seen)
        assert len(b1["victim"]) == 4 and len(b32["victim"]) == 2
        assert len(waits["victim"]) == 2 and min(waits["victim"]) >= 0.15  # it waited for the spinner
    finally:
        spinner.close()


def test_without_the_quiet_start_the_next_engine_runs_beside_the_spinning_one() -> None:
    spinner = Spinner()
    try:
        engines, seen = _engines(spinner)
        x = np.zeros((1, 3, 4, 4), np.float32)
        b = InferBench(size=4, b1_iters=4, b32_iters=2, rounds=2, quiet=False)
        _, _, waits = time_engines(engines, x, x, b, wait)
        assert any(seen)
        assert not any(waits.values())
    finally:
        spinner.close()
