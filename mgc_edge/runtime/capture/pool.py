"""Capture in worker processes: `CapturePool` starts the workers (capture/worker.py), each with a group of the
sources and a shared-memory ring (capture/ring.py), restarts a worker that died or hangs, and gathers the newest
unclassified frame of every source once per tick, with numpy over the rings' header rows, for its sources
(capture/remote.py `RemoteSource`) to hand out.
numpy + the standard library only."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.config import PreprocessSpec
from mgc_edge.runtime.capture.remote import POLL_S, RemoteSource
from mgc_edge.runtime.capture.ring import (
    BEAT,
    CLOCK,
    DROPPED,
    FPS,
    GEN,
    HAS_IMAGE,
    PREP_MS,
    READ,
    READY,
    RECONNECTS,
    SENT,
    SEQ,
    SKIPPED,
    TAKEN,
    WANT_IMAGE,
    H,
    Ring,
    T,
    W,
    segment_name,
    sweep_orphans,
)
from mgc_edge.runtime.capture.worker import WorkerConfig, run_worker
from mgc_edge.runtime.sources import kind_of
from mgc_edge.runtime.sources.base import (
    LIVE,
    RECONNECTING,
    Frame,
    SourceError,
    SourceOptions,
)

IMAGE_BYTES = 1920 * 1080 * 3  # a slot's image area (virtual: only the pages written take memory)
CHECK_S = 0.2  # how often the workers' health is looked at
HANG_S = 5.0  # a worker whose loop did not beat for this long is stuck (a decoder that hangs): restarted
TICK_S = 0.008  # the shortest time between two ticks of the loop (a fifth of a 25 fps frame interval)


class CapturePool:
    """Worker processes capturing `texts` (each with its options), `workers` of them, each source's frames
    preprocessed with `spec`. `open()` starts them and returns the sources once every one opened (the first
    that did not is a SourceError); `close()` ends the workers and removes the rings."""

    def __init__(
        self,
        texts: Sequence[str],
        options: Sequence[SourceOptions],
        spec: PreprocessSpec,
        workers: int,
        image_bytes: int = IMAGE_BYTES,
        start_method: str = "spawn",
        hang_after: float = HANG_S,
    ) -> None:
        self.texts, self.spec, self.image_bytes, self.hang_after = list(texts), spec, image_bytes, hang_after
        self.context = mp.get_context(start_method)
        n = max(1, min(workers, len(self.texts)))
        self.groups = [list(range(len(self.texts)))[w::n] for w in range(n)]
        self.tag = uuid.uuid4().hex[:8]
        self.parent = os.getpid()
        self.rings: list[Ring] = []
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self.started: list[float] = []
        self.sources: list[list[RemoteSource]] = []
        self.pending: list[
            np.ndarray
        ] = []  # per worker: which of its sources has a frame gathered, not taken
        self.given: list[np.ndarray] = []  # per worker: the newest seq each of its sources handed out
        self.images = False
        self.restarts = 0
        self.received: list[float] = []  # per worker: messages read from its pipe
        self._gathered = 0.0
        self.closed = False
        self._checked = 0.0
        self._options = list(options)

    def open(self, timeout: float = 30.0) -> list[RemoteSource]:
        sweep_orphans()
        try:
            for w, group in enumerate(self.groups):
                name = segment_name(self.parent, w, self.tag)
                self.rings.append(Ring.create(name, len(group), self.spec.size, self.image_bytes))
                self.sources.append(
                    [RemoteSource(self, w, k, self.texts[i], self._options[i]) for k, i in enumerate(group)]
                )
                self.pending.append(np.zeros(len(group), bool))
                self.given.append(np.full(len(group), -1.0))
                self.received.append(0.0)
                self.procs.append(None)
                self.conns.append(None)
                self.started.append(0.0)
                self._start(w, first=True)
            self._wait_open(timeout)
        except BaseException:
            self.close()
            raise
        by_index: dict[int, RemoteSource] = {}
        for group, sources in zip(self.groups, self.sources):
            by_index.update(zip(group, sources))
        return [by_index[i] for i in range(len(self.texts))]

    def _start(self, w: int, first: bool) -> None:
        group, ring = self.groups[w], self.rings[w]
        header = ring.header
        header[:-1, GEN] += header[:-1, GEN] % 2  # a worker killed while writing left its slot odd
        header[-1, READY], header[-1, BEAT] = 0, time.monotonic()
        seq_base = tuple(
            0 if src.kind == "file" else int(max(src.given, header[k, SEQ]) + 1)
            for k, src in enumerate(self.sources[w])
        )
        cfg = WorkerConfig(
            w, ring.shm.name, self.spec.size, self.image_bytes, self.spec,
            tuple(self.texts[i] for i in group), tuple(self._options[i] for i in group), seq_base, first,
            self.parent,
        )  # fmt: skip
        receive, send = self.context.Pipe(duplex=False)
        proc = self.context.Process(target=run_worker, args=(cfg, send), name=f"mgc-capture-{w}", daemon=True)
        proc.start()
        send.close()
        self.procs[w], self.conns[w], self.started[w] = proc, receive, time.monotonic()

    def _wait_open(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout + max(o.open_timeout for o in self._options)
        waiting = {(w, k) for w, g in enumerate(self.groups) for k in range(len(g))}
        while waiting:
            for w, conn in enumerate(self.conns):
                while conn.poll():
                    message = conn.recv()
                    self.received[w] += 1
                    if message[0] == "open_failed":
                        raise SourceError(message[2])
                    self._handle(w, message)
                    if message[0] == "opened":
                        waiting.discard((w, message[1]))
                if self.procs[w].exitcode is not None and any(p[0] == w for p in waiting) and not conn.poll():
                    raise SourceError(f"A capture worker stopped (exit code {self.procs[w].exitcode}).")
            if time.monotonic() > deadline:
                raise SourceError(
                    f"{len(waiting)} sources did not open within {timeout:g} s in their workers."
                )
            time.sleep(0.01)

    def _handle(self, w: int, message: tuple[Any, ...]) -> None:
        kind, k = message[0], message[1]
        src = self.sources[w][k]
        if kind == "opened":
            restarted = src.state_override is not None
            src.opened(message[2])
            if restarted:
                src.state_override = None
                src._emit("back", LIVE, f"back (capture worker {w} restarted)")
        elif kind == "event":
            src._emit(message[2], message[3], message[4], message[5])
        elif kind == "status":
            src.message = message[3]
            src.short_end = message[4]

    def gather(self) -> None:
        """Every source's newest frame not handed out yet into its `pending`: per ring, the slots with a newer
        seq are found and copied in one go, and a slot written meanwhile (its generation moved) waits for the
        next tick."""
        now = time.monotonic()
        if now >= self._checked + CHECK_S:
            self._checked = now
            self._check(now)
        self._gathered = now
        for w, ring in enumerate(self.rings):
            self._messages(w)
            header = ring.header[:-1]
            fresh = np.flatnonzero(
                (header[:, SEQ] > self.given[w]) & (header[:, GEN] % 2 == 0) & ~self.pending[w]
            )
            if fresh.size == 0:
                continue
            before = header[fresh].copy()
            xs = ring.x[fresh]
            ok = header[fresh, GEN] == before[:, GEN]
            for row, k, x in zip(before[ok], fresh[ok], xs[ok]):
                self._pend(w, int(k), row, x)

    def fresh_gather(self) -> bool:
        """Whether the rings were gathered less than POLL_S ago (the loop gathers once per tick: a source read
        right after need not gather again)."""
        return time.monotonic() - self._gathered < POLL_S

    def _messages(self, w: int) -> None:
        """What worker `w` sent down its pipe, read only when its count in the ring moved (no system call per
        tick)."""
        conn = self.conns[w]
        while conn is not None and self.rings[w].header[-1, SENT] > self.received[w]:
            try:
                if not conn.poll():
                    return
                message = conn.recv()
            except (EOFError, OSError):
                return
            self.received[w] += 1
            self._handle(w, message)

    def _pend(self, w: int, k: int, row: np.ndarray, x: np.ndarray) -> None:
        src, ring = self.sources[w][k], self.rings[w]
        h, wd = int(row[H]), int(row[W])
        image = ring.image_view(k, h, wd) if row[HAS_IMAGE] and self.images else None
        image = (
            image.copy() if image is not None else np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (h, wd, 3))
        )
        if ring.header[k, GEN] != row[GEN]:  # the image was overwritten while copied: the next tick
            return
        seq = int(row[SEQ])
        if src.kind != "file" and src.given >= 0:
            src.ring_dropped += max(0, seq - src.given - 1 - (0 if src.pending is None else 1))
        src.clock = float(row[CLOCK]) or src.clock
        src.pending = Frame(seq, float(row[T]), image, x, float(row[PREP_MS]))
        self.pending[w][k] = True
        ring.header[k, TAKEN] = seq

    def news(self) -> bool:
        """Whether a source has a frame not gathered yet or a worker said something (a state, an event): one
        numpy test per worker, no Python per source. Worker health is checked here too."""
        now = time.monotonic()
        if now >= self._checked + CHECK_S:
            self._checked = now
            self._check(now)
        for w, ring in enumerate(self.rings):
            if np.any((ring.header[:-1, SEQ] > self.given[w]) & ~self.pending[w]):
                return True
            if ring.header[-1, SENT] > self.received[w]:
                return True
        return False

    def want_images(self, wanted: bool) -> None:
        """Whether the workers copy each frame's BGR image into the ring too (a sink shows or saves frames)."""
        if wanted != self.images:
            self.images = wanted
            for ring in self.rings:
                ring.header[:-1, WANT_IMAGE] = float(wanted)

    def _check(self, now: float) -> None:
        """Restart a worker that exited or whose loop stopped beating (stuck in a decoder)."""
        for w, proc in enumerate(self.procs):
            header = self.rings[w].header
            ready = header[-1, READY] > 0
            since = header[-1, BEAT] if ready else self.started[w]
            grace = self.hang_after if ready else self.hang_after + max(o.open_timeout for o in self._options)
            if proc.exitcode is not None:
                why = f"stopped (exit code {proc.exitcode})"
            elif now - since > grace:
                why = f"did not answer for {now - since:.1f} s"
            else:
                continue
            self._restart(w, why)

    def _restart(self, w: int, why: str) -> None:
        proc = self.procs[w]
        if proc.exitcode is None:
            proc.kill()
        proc.join(2.0)
        self.conns[w].close()
        self.restarts += 1
        header = self.rings[w].header
        header[-1, SENT] = self.received[w] = 0
        for k, src in enumerate(self.sources[w]):
            row = header[k]
            src.base = [b + float(row[c]) for b, c in zip(src.base, (READ, SKIPPED, DROPPED, RECONNECTS))]
            src.base[3] += 1
            row[[READ, SKIPPED, DROPPED, RECONNECTS, FPS]] = 0
            message = f"capture worker {w} {why}; restarting"
            src.state_override = (RECONNECTING, message)
            src._emit("dropped", RECONNECTING, f"dropped ({message})")
        self._start(w, first=False)

    def cpu_time(self) -> float:
        """CPU seconds the living workers used so far (Linux; 0 elsewhere)."""
        total, tick = 0.0, os.sysconf("SC_CLK_TCK")
        for proc in self.procs:
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, AttributeError, IndexError):
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return total

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for proc in self.procs:
            if proc is not None and proc.exitcode is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                proc.join(3.0)
                if proc.exitcode is None:
                    proc.kill()
                    proc.join(1.0)
        for conn in self.conns:
            if conn is not None:
                conn.close()
        for group in self.sources:
            for src in group:
                src.pending = None
        for ring in self.rings:
            ring.close(unlink=True)


def source_options(texts: Sequence[str], options: SourceOptions) -> list[SourceOptions]:
    """Each source's options as `open_sources` gives them: `every` and `realtime` apply to files only."""
    takes = [kind_of(t, options).file_options for t in texts]
    if (options.every != 1 or options.realtime) and any(takes):
        live = replace(options, every=1, realtime=False)
        return [options if file else live for file in takes]
    return [options] * len(texts)


def wait_for_news(pools: Sequence[CapturePool], timeout: float) -> None:
    """Wait up to `timeout` until one of `pools` has news (`CapturePool.news`): the loop's idle wait, which
    looks at the rings every POLL_S instead of walking every source's feed."""
    now = time.monotonic()
    deadline = now + timeout
    # Ticks at most every TICK_S: frames of several sources arrive by then and share one walk over the feeds.
    settle = max(pool._gathered for pool in pools) + TICK_S - now
    if settle > 0:
        time.sleep(min(settle, timeout))
    while not any(pool.news() for pool in pools) and time.monotonic() < deadline:
        time.sleep(POLL_S)
