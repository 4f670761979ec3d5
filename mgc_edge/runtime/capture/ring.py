"""The shared-memory ring one capture worker writes and the main process reads: one slot per source holding its
newest frame, already in the model's input layout ([3, H, W] float32), its BGR image when asked for, and a
header row of numbers (seq, t, state, counters). A seqlock per slot (`GEN`, odd while the worker writes) lets a
reader copy a slot without a lock and without ever keeping a torn frame. One extra header row is the worker's
own (its heartbeat). numpy + the standard library only.

Segments are named `mgc-cap-<parent pid>-...`, so that a later run can remove what a killed run left behind
(`sweep_orphans`)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import numpy as np

from mgc_edge.runtime.sources.base import ENDED, FAILED, LIVE, RECONNECTING, STALE

PREFIX = "mgc-cap-"
SHM_DIR = Path("/dev/shm")
STATES = (LIVE, STALE, RECONNECTING, ENDED, FAILED)  # a slot's STATE is an index into this

# Header columns (float64: a seq stays exact up to 2**53).
(GEN, SEQ, T, STATE, H, W, READ, SKIPPED, DROPPED, RECONNECTS, FPS, CLOCK, PREP_MS, HAS_IMAGE, TAKEN, WANT_IMAGE,
 NCOL) = range(17)  # fmt: skip
# The worker's row (the last one): its heartbeat, whether its sources opened, messages sent down its pipe.
BEAT, READY, SENT = 0, 1, 2

ALIGN = 64


def _round(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Ring:
    """The slots of one worker's sources in one shared-memory segment; `create` in the parent, `attach` in the
    worker. `x` is [n, 3, H, W] float32, `images` [n, image_bytes] uint8 (only pages written cost memory)."""

    def __init__(
        self, shm: shared_memory.SharedMemory, n: int, size: tuple[int, int], image_bytes: int
    ) -> None:
        self.shm, self.n, self.size, self.image_bytes = shm, n, size, image_bytes
        buf = shm.buf
        head = _round((n + 1) * NCOL * 8)
        xbytes = _round(n * 3 * size[0] * size[1] * 4)
        self.header = np.ndarray((n + 1, NCOL), np.float64, buf, 0)
        self.x = np.ndarray((n, 3, *size), np.float32, buf, head)
        self.images = np.ndarray((n, image_bytes), np.uint8, buf, head + xbytes)

    @staticmethod
    def nbytes(n: int, size: tuple[int, int], image_bytes: int) -> int:
        return _round((n + 1) * NCOL * 8) + _round(n * 3 * size[0] * size[1] * 4) + n * image_bytes

    @classmethod
    def create(cls, name: str, n: int, size: tuple[int, int], image_bytes: int) -> Ring:
        with _untracked():
            shm = shared_memory.SharedMemory(name, create=True, size=cls.nbytes(n, size, image_bytes))
        ring = cls(shm, n, size, image_bytes)
        ring.header[:] = 0
        ring.header[:n, SEQ] = ring.header[:n, TAKEN] = -1
        ring.header[:n, STATE] = STATES.index(LIVE)
        return ring

    @classmethod
    def attach(cls, name: str, n: int, size: tuple[int, int], image_bytes: int) -> Ring:
        with _untracked():
            shm = shared_memory.SharedMemory(name)
        return cls(shm, n, size, image_bytes)

    def close(self, unlink: bool = False) -> None:
        """Unmap (views into the segment must be gone first) and, with `unlink`, remove the segment."""
        self.header = self.x = self.images = None  # type: ignore[assignment]
        with contextlib.suppress(BufferError):
            self.shm.close()
        if unlink:
            with contextlib.suppress(FileNotFoundError), _untracked():
                self.shm.unlink()

    # The worker's side.
    def begin(self, i: int) -> None:
        self.header[i, GEN] += 1  # odd: the slot is being written

    def end(self, i: int) -> None:
        self.header[i, GEN] += 1

    def image_view(self, i: int, h: int, w: int) -> np.ndarray | None:
        """Slot `i`'s image area as an [h, w, 3] array, None where the frame does not fit."""
        if h * w * 3 > self.image_bytes:
            return None
        return self.images[i, : h * w * 3].reshape(h, w, 3)


@contextlib.contextmanager
def _untracked() -> Iterator[None]:
    """The pool removes its segments itself (and its workers do when the parent is gone). Python 3.11's resource
    tracker would also track every process's attach, remove the segment when the first of them ends, and warn."""
    register, unregister = resource_tracker.register, resource_tracker.unregister
    resource_tracker.register = resource_tracker.unregister = lambda *_args, **_kw: None
    try:
        yield
    finally:
        resource_tracker.register, resource_tracker.unregister = register, unregister


def segment_name(parent: int, worker: int, tag: str) -> str:
    return f"{PREFIX}{parent}-{tag}-{worker}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphans(shm_dir: Path = SHM_DIR) -> list[str]:
    """Remove the segments of runs whose parent process is gone (a run killed with SIGKILL, whose workers were
    killed too); the names removed."""
    removed = []
    if not shm_dir.is_dir():
        return removed
    for path in shm_dir.glob(f"{PREFIX}*"):
        match = re.match(rf"{re.escape(PREFIX)}(\d+)-", path.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.name)
    return removed
