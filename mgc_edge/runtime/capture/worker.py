"""A capture worker: a process of its own that opens a group of sources (the same `Source` classes as the
threaded loop, so reconnects, backoff, states and redaction are one implementation), preprocesses each new frame
with the one `preprocess()` straight into its slot of the shared-memory ring, and tells the main process the
events of each source's life over a pipe. It ends when the main process closes it (SIGTERM) or is gone (then it
also removes the ring, which nobody else would). numpy + OpenCV only."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from mgc_edge.config import PreprocessSpec
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime.capture.ring import (
    BEAT,
    CLOCK,
    DROPPED,
    FPS,
    HAS_IMAGE,
    PREP_MS,
    READ,
    READY,
    RECONNECTS,
    SENT,
    SEQ,
    SKIPPED,
    STATE,
    STATES,
    TAKEN,
    WANT_IMAGE,
    H,
    Ring,
    T,
    W,
)
from mgc_edge.runtime.sources import open_source
from mgc_edge.runtime.sources.base import (
    RECONNECTING,
    Source,
    SourceError,
    SourceOptions,
    StreamLost,
    backoff_delay,
)
from mgc_edge.runtime.sources.urls import redact_url

STATUS_S = 0.1  # how often each source's counters and state go into its slot
IDLE_S = 0.005  # the longest a worker sleeps while none of its sources has a frame
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerConfig:
    """What one worker needs (pickled to the new process): its ring, its sources with their options, and the
    number each source's `seq` starts from (after a restart, above every seq already handed out)."""

    index: int
    segment: str
    size: tuple[int, int]
    image_bytes: int
    spec: PreprocessSpec
    texts: tuple[str, ...]
    options: tuple[SourceOptions, ...]
    seq_base: tuple[int, ...]
    first: bool  # the run's first start: a source that does not open is an error, not a reconnect
    parent: int


def _die_with_parent() -> None:
    """SIGTERM when the parent dies (Linux); the loop also watches getppid() where this is not available. The
    signal follows the parent's thread that started the worker: the pool is started from the loop's thread."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _terminate(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


class _Slot:
    def __init__(self, index: int, text: str, options: SourceOptions, seq_base: int) -> None:
        self.index, self.text, self.options, self.seq_base = index, text, options, seq_base
        self.source: Source | None = None
        self.said: tuple[str, str] | None = None
        self.opening: threading.Thread | None = None


def run_worker(cfg: WorkerConfig, conn: Connection) -> None:
    """The worker process's body."""
    _die_with_parent()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends us
    ring = Ring.attach(cfg.segment, len(cfg.texts), cfg.size, cfg.image_bytes)
    slots = [_Slot(i, t, o, b) for i, (t, o, b) in enumerate(zip(cfg.texts, cfg.options, cfg.seq_base))]
    wake = threading.Event()
    lock = threading.Lock()  # the pipe is written by the loop and by threads reopening sources
    stop = threading.Event()

    def send(*message: Any) -> None:
        with lock:
            conn.send(message)
            ring.header[-1, SENT] += 1  # after the send: the parent reads the pipe only when this moved

    try:
        if cfg.first:
            _open_all(slots, send, wake)
            if any(slot.source is None for slot in slots):
                return
        else:
            for slot in slots:
                _reopen(slot, send, wake, stop)
        ring.header[-1, READY] = 1
        _loop(cfg, ring, slots, send, wake)
    except (SystemExit, BrokenPipeError, EOFError):
        pass
    finally:
        stop.set()
        for slot in slots:
            if slot.source is not None:
                with contextlib.suppress(Exception):
                    slot.source.close()
        orphan = os.getppid() != cfg.parent
        ring.close(unlink=orphan)
        with contextlib.suppress(Exception):
            conn.close()


def _info(source: Source) -> dict[str, Any]:
    return {
        "name": source.name, "kind": source.kind, "live": source.live, "fps": source.fps, "clock": source.clock,
        "frame_count": source.frame_count, "size": source.status().size,
    }  # fmt: skip


def _open_all(slots: list[_Slot], send: Any, wake: threading.Event) -> None:
    def one(slot: _Slot) -> None:
        try:
            slot.source = open_source(slot.text, slot.options)
        except SourceError as exc:
            send("open_failed", slot.index, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 (said in one sentence by the parent)
            send("open_failed", slot.index, redact_url(f"{slot.text}: {type(exc).__name__}: {exc}"))
            return
        slot.source.attach(wake.set)
        send("opened", slot.index, _info(slot.source))

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(slots)))) as pool:
        list(pool.map(one, slots))


def _reopen(slot: _Slot, send: Any, wake: threading.Event, stop: threading.Event) -> None:
    """After a restart: open the source in a thread of its own, with the source's backoff between tries, so that
    a camera still away keeps the worker's loop (and its heartbeat) going."""

    def run() -> None:
        attempt = 0
        while not stop.is_set():
            try:
                source = open_source(slot.text, slot.options)
            except Exception as exc:  # noqa: BLE001 (a camera away: try again)
                attempt += 1
                delay = backoff_delay(attempt, slot.options)
                why = redact_url(str(exc))
                send("event", slot.index, "reconnecting", RECONNECTING,
                     f"reconnecting (try {attempt}, next in {delay:.1f} s; the last try: {why})", time.time())  # fmt: skip
                if stop.wait(delay):
                    return
                continue
            source.attach(wake.set)
            send("opened", slot.index, _info(source))
            slot.source = source
            wake.set()
            return

    slot.opening = threading.Thread(target=run, name="mgc-reopen", daemon=True)
    slot.opening.start()


def _loop(cfg: WorkerConfig, ring: Ring, slots: list[_Slot], send: Any, wake: threading.Event) -> None:
    header = ring.header
    next_status = 0.0
    while True:
        now = time.monotonic()
        header[-1, BEAT] = now
        if os.getppid() != cfg.parent:
            return
        wake.clear()
        wrote = False
        for slot in slots:
            source = slot.source
            if source is None:
                continue
            i = slot.index
            # A file gives every frame: its next one waits until the main process took this one.
            if source.kind == "file" and header[i, TAKEN] < header[i, SEQ]:
                continue
            try:
                frame = source.read(0)
            except StreamLost:
                frame = None
            if frame is not None:
                _write(ring, i, frame.image, slot.seq_base + frame.seq, frame.t, source.clock, cfg.spec)
                wrote = True
        if now >= next_status:
            next_status = now + STATUS_S
            for slot in slots:
                if slot.source is not None:
                    _status(ring, slot, send)
        if not wrote:
            wake.wait(IDLE_S)


def _write(ring: Ring, i: int, image: Any, seq: int, t: float, clock: float, spec: PreprocessSpec) -> None:
    """One frame into slot `i`, inside the slot's seqlock: its model input, its image where asked, its numbers."""
    header = ring.header
    ring.begin(i)
    start = time.perf_counter()
    preprocess(image, spec, out=ring.x[i : i + 1])
    prep_ms = (time.perf_counter() - start) * 1000
    h, w = image.shape[:2]
    view = ring.image_view(i, h, w) if header[i, WANT_IMAGE] > 0 and image.ndim == 3 else None
    if view is not None:
        view[...] = image
    header[i, SEQ], header[i, T], header[i, CLOCK], header[i, PREP_MS] = seq, t, clock, prep_ms
    header[i, H], header[i, W], header[i, HAS_IMAGE] = h, w, float(view is not None)
    ring.end(i)


def _status(ring: Ring, slot: _Slot, send: Any) -> None:
    """A source's counters and state into its slot; its events, a new state message and the end of a file cut
    short down the pipe."""
    source = slot.source
    assert source is not None
    for event in source.events():
        send("event", slot.index, event.kind, event.state, event.message, event.wall)
    st = source.status()
    row = ring.header[slot.index]
    row[STATE], row[READ], row[SKIPPED] = STATES.index(st.state), st.read, st.skipped
    row[DROPPED], row[RECONNECTS], row[FPS] = st.dropped, st.reconnects, st.capture_fps
    if (st.state, st.message) != slot.said:
        slot.said = (st.state, st.message)
        send("status", slot.index, st.state, st.message, source.short_end)
