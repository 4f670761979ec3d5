"""The stages a tick's frames go through besides the model's own: the waker every source's thread signals, the
preprocessing of frames the sources did not prepare, the inference thread of a pipelined loop, and `Tick`, one
batch in flight. numpy + OpenCV + onnxruntime only."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mgc_edge.preprocess import preprocess
from mgc_edge.runtime import host
from mgc_edge.runtime.live.feeds import Feed
from mgc_edge.runtime.sources.base import Frame


class Waker:
    """One signal for every source's capture thread: the loop waits on it instead of polling each source.
    A counter, not a flag, so that a frame arriving between the loop's last look and its wait is not missed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def notify(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.count != seen, timeout)


class Preprocessor:
    """preprocess() of a tick's frames where the sources did not (the loop is not pipelined, or a frame came
    before the loop attached). With many sources on a machine with cores to spare, a large batch is split over a
    few threads (OpenCV's resize and numpy's arithmetic release the GIL); the result is the same array as one
    call gives."""

    SPLIT_FROM = 8  # frames in a batch before splitting pays for the hand-over

    def __init__(self, spec: Any, sources: int) -> None:
        self.spec = spec
        self.workers = min(4, host.usable_cores() // 2) if sources >= self.SPLIT_FROM else 1
        self.pool = None
        if self.workers > 1:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mgc-preprocess")

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if self.pool is None or len(images) < self.SPLIT_FROM:
            return preprocess(images, self.spec)
        step = -(-len(images) // self.workers)
        chunks = [images[i : i + step] for i in range(0, len(images), step)]
        return np.concatenate(list(self.pool.map(lambda chunk: preprocess(chunk, self.spec), chunks)))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class Inference:
    """The pipelined loop's inference thread: batches in, logits out, in the order they came, one at a time.
    One SimpleQueue each way (C code that releases the GIL while it waits): an executor's futures, conditions
    and semaphores cost the GIL tens of µs a frame, which on a GPU is a tenth of a frame's model time."""

    def __init__(self, logits: Callable[[np.ndarray], np.ndarray]) -> None:
        self._jobs: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[np.ndarray | None, BaseException | None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(logits,), name="mgc-inference", daemon=True)
        self._thread.start()

    def _run(self, logits: Callable[[np.ndarray], np.ndarray]) -> None:
        while (x := self._jobs.get()) is not None:
            try:
                self._results.put((logits(x), None))
            except BaseException as exc:  # noqa: BLE001 (raised again in the loop's thread by result())
                self._results.put((None, exc))

    def submit(self, x: np.ndarray) -> None:
        self._jobs.put(x)

    def result(self) -> np.ndarray:
        """The logits of the oldest batch submitted and not yet taken (waits for them)."""
        logits, error = self._results.get()
        if error is not None:
            raise error
        return logits  # type: ignore[return-value]

    def close(self) -> None:
        """Let the batches submitted finish, then end the thread."""
        self._jobs.put(None)
        self._thread.join()


@dataclass
class Tick:
    """One batch in flight: its frames, when it was collected and preprocessed, and its logits (None while the
    inference thread runs them)."""

    batch: list[tuple[Feed, Frame]]
    wait_start: float
    got: float
    got_at: float
    t1: float
    logits: np.ndarray | None
