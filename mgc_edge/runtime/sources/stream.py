"""A camera or a network stream, read by a capture thread that keeps only the newest frame: FFmpeg/TCP with
open and read timeouts, reopened with capped exponential backoff and jitter when it drops, for ever unless
`reconnect` bounds it (a stream of known length read to its end ends instead). Every event of its life is
recorded (`Source.events`); an exception in its thread fails it with one sentence. numpy + OpenCV only."""

from __future__ import annotations

import contextlib
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from mgc_edge.runtime.sources.base import (
    ENDED,
    FAILED,
    LIVE,
    REAL_CLOCK,
    RECONNECTING,
    STALE,
    Capture,
    Clock,
    Frame,
    RateMeter,
    Source,
    SourceError,
    SourceOptions,
    SourceStatus,
    StreamLost,
    backoff_delay,
    valid_frame,
)
from mgc_edge.runtime.sources.probe import why_not_open
from mgc_edge.runtime.sources.urls import redact_url
from mgc_edge.runtime.sources.video import COMPLETE_SHARE, file_fps


def open_capture(target: int | str, options: SourceOptions) -> cv2.VideoCapture:
    """cv2.VideoCapture for a camera index or URL: URLs through FFmpeg with the open / read timeouts passed
    at open time (so a dead stream never blocks forever), RTSP over TCP (UDP loses packets and smears frames)."""
    if isinstance(target, int):
        cap = cv2.VideoCapture(target)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where the backend honours it: less queued latency
        return cap
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(options.open_timeout * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(options.read_timeout * 1000),
    ]
    with _ffmpeg_options("rtsp_transport;tcp" if target.lower().startswith("rtsp") else None):
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)


def read_to_end(cap: Capture) -> bool:
    """Whether a stream of known length (a video file over HTTP, a recorded RTSP session) was read to its end.
    Such a stream ends; reopening it would play it again from the start, for ever. Live streams and cameras
    announce no length (0 or negative), so they are reconnected instead. Container lengths of some formats are
    estimates (duration x fps), hence COMPLETE_SHARE."""
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    if not (math.isfinite(count) and count > 0):
        return False
    position = cap.get(cv2.CAP_PROP_POS_FRAMES)
    return math.isfinite(position) and position >= COMPLETE_SHARE * count


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _ffmpeg_options(value: str | None) -> Iterator[None]:
    """OpenCV reads FFmpeg's options from OPENCV_FFMPEG_CAPTURE_OPTIONS at open time; set it for one open
    unless the user set it."""
    if value is None or "OPENCV_FFMPEG_CAPTURE_OPTIONS" in os.environ:
        yield
        return
    with _ENV_LOCK:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = value
        try:
            yield
        finally:
            os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)


class LiveSource(Source):
    """A camera index or a stream URL, read by a capture thread that keeps only the newest frame.

    `read()` hands out the newest frame the consumer has not had yet, so the consumer lags the camera by at
    most the frame in flight and never sees a frame twice. A stream that drops is reopened with capped
    exponential backoff and jitter (state "reconnecting"), for ever by default, else `options.reconnect` times
    (then state "failed" and `read()` raises StreamLost); the new frame size may differ. A stream of known
    length read to its end (`read_to_end`) simply ends. A frame overwritten before the consumer took it is
    `skipped` before the first read or within `options.warmup` of a (re)open, else `dropped`.
    `PacedFileSource` (sources/paced_file.py) is a file played this way.
    """

    live = True

    def __init__(
        self,
        target: int | str,
        options: SourceOptions = SourceOptions(),
        opener: Callable[[], Capture] | None = None,
        clock: Clock = REAL_CLOCK,
        probe: Callable[[int | str, float], str | None] = why_not_open,
    ) -> None:
        self.target = target
        self.options = options
        self.name = f"camera {target}" if isinstance(target, int) else redact_url(target)
        self._opener = opener or (lambda: open_capture(self.target, options))
        self._clock, self._probe = clock, probe  # tests pass a fake clock and probe
        self._rng = random.Random()
        self.fps = 0.0
        self.clock = time.monotonic()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reading = threading.Event()  # set by the first read()
        self._thread: threading.Thread | None = None
        self._cap: Capture | None = None
        self._latest: Frame | None = None
        self._last_given = -1
        self._last_time = 0.0  # monotonic time of the newest frame
        self._opened_at = 0.0  # monotonic time of the last (re)open: the warm-up starts there
        self._seq = -1
        self._read = self._delivered = self._skipped = self._dropped = self._reconnects = 0
        self._state, self._message = LIVE, ""
        self._meter = RateMeter()

    def _what(self) -> str:
        return f"Camera {self.target}" if isinstance(self.target, int) else f"Stream {self.name}"

    def _open_error(self, waited: float) -> SourceError:
        if isinstance(self.target, int):
            return SourceError(
                f"Camera {self.target} did not open or gave no frame (is it connected and free? try another "
                "index with --source)."
            )
        answer = self._probe(self.target, min(3.0, self.options.open_timeout))
        if answer is not None:
            return SourceError(f"Stream {self.name} did not open: {answer}.")
        return SourceError(
            f"Stream {self.name} did not open or gave no frame (it gave up after {waited:.1f} s of the "
            f"{self.options.open_timeout:g} s allowed; check the URL, the network and the camera's credentials)."
        )

    def _try_open(self) -> tuple[Capture, np.ndarray] | None:
        """Open the target and read one frame; None when either fails."""
        cap = self._opener()
        if not cap.isOpened():
            cap.release()
            return None
        ok, image = cap.read()
        if not valid_frame(ok, image):
            cap.release()
            return None
        return cap, image

    def open(self) -> LiveSource:
        """Open the target, read its first frame and start the capture thread; a second call does nothing."""
        if self._thread is not None:
            return self
        start = time.monotonic()
        opened = self._try_open()
        if opened is None:
            raise self._open_error(time.monotonic() - start)
        self._cap, first = opened
        self.fps = file_fps(self._cap)
        self.clock = self._opened_at = time.monotonic()
        self._store(first, 0)
        self._thread = threading.Thread(target=self._capture, name="mgc-capture", daemon=True)
        self._thread.start()
        return self

    def _capture(self) -> None:
        """The capture thread: `_run`, and whatever it raises becomes the failed state, in one sentence."""
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 (a dead thread must never leave the loop waiting)
            why = redact_url(f"{type(exc).__name__}: {exc}".rstrip(": "))
            self._set_state(
                FAILED, f"{self._what()} failed: its capture stopped on an error ({why}).", "failed"
            )

    def _store(self, image: np.ndarray, file_index: int, back: str | None = None) -> None:
        """Keep a new frame as the newest; `back` (a message) records the "back" event with it, atomically."""
        now = time.monotonic()  # the capture instant, before any preprocessing
        x, ms = self._prepared(image)  # outside the lock: the consumer may take the previous frame meanwhile
        with self._cond:
            self._read += 1
            if self._latest is not None and self._latest.seq > self._last_given:  # overwritten, never taken
                warming = not self._reading.is_set() or now - self._opened_at < self.options.warmup
                if warming:
                    self._skipped += 1
                else:
                    self._dropped += 1
            seq, t = self._stamp(file_index, now)
            self._latest = Frame(seq, t, image, x, ms)
            self._last_time = now
            self._meter.tick(now)
            self._state, self._message = LIVE, back or ""
            if back is not None:
                self._emit("back", LIVE, back, self._clock.wall())
            self._cond.notify_all()
        self._wake()

    def _stamp(self, file_index: int, now: float) -> tuple[int, float]:
        """`seq` and `t` of a frame captured at `now`: the capture count and the time since the start."""
        self._seq += 1
        return self._seq, now - self.clock

    def _set_state(self, state: str, message: str, event: str | None = None) -> None:
        """Change the state; with `event`, also record it as an event of the source's life."""
        with self._cond:
            self._state, self._message = state, message
            if event is not None:
                self._emit(event, state, message, self._clock.wall())
            self._cond.notify_all()
        self._wake()

    def _run(self) -> None:
        while not self._stop.is_set():
            cap = self._cap
            assert cap is not None
            start = time.monotonic()
            ok, image = cap.read()
            if self._stop.is_set():
                break
            if valid_frame(ok, image):
                self._store(image, 0)
                continue
            if read_to_end(cap):
                self._set_state(ENDED, f"end of {self.name}", "ended")
                return
            silent = time.monotonic() - start
            why = (
                f"no frame for {silent:.1f} s"
                if silent >= 0.8 * self.options.read_timeout
                else "stream stopped"
            )
            if not self._reconnect(why):
                return

    def _reconnect(self, why: str) -> bool:
        """Reopen with capped exponential backoff and jitter, for ever or `options.reconnect` times; False
        (state FAILED) after the last try, or when closed."""
        assert self._cap is not None
        self._cap.release()
        tries, down_at = self.options.reconnect, self._clock.now()
        self._set_state(RECONNECTING, f"dropped ({why})", "dropped")
        attempt, why_not = 0, None
        while tries < 0 or attempt < tries:
            attempt += 1
            delay = backoff_delay(attempt, self.options, self._rng)
            of = f" of {tries}" if tries > 0 else ""
            # What the last try met, so that a log of tries for ever says why (a password changed meanwhile).
            said = f"; the last try: {why_not}" if why_not else ""
            self._set_state(
                RECONNECTING, f"reconnecting (try {attempt}{of}, next in {delay:.1f} s{said})", "reconnecting"
            )
            if self._clock.sleep(self._stop, delay):
                return False
            opened = self._try_open()
            if opened is not None:
                self._cap = opened[0]
                self.fps = file_fps(self._cap) or self.fps
                self._opened_at = time.monotonic()
                with self._cond:
                    self._reconnects += 1
                away = self._clock.now() - down_at
                self._store(opened[1], 0, back=f"back (after {away:.1f} s, try {attempt})")
                return True
            if self._stop.is_set():
                return False
            why_not = self._probe(self.target, min(3.0, self.options.open_timeout))
        tried = f"after {tries} reconnect attempt{'s' if tries != 1 else ''}" if tries else "(--reconnect 0)"
        # A camera whose password was changed or whose path was removed meanwhile says so, as at the first open.
        answer = why_not if tries else self._probe(self.target, min(3.0, self.options.open_timeout))
        said = f": {answer}" if answer else ""
        self._set_state(FAILED, f"Stream {self.name} dropped and did not come back {tried}{said}.", "failed")
        return False

    def read(self, timeout: float = 0.1) -> Frame | None:
        """The newest frame not handed out yet, waiting up to `timeout`; None if none came (see `status()`
        for why). Raises StreamLost once the stream is given up."""
        deadline = time.monotonic() + timeout
        self._reading.set()
        with self._cond:
            while True:
                latest = self._latest
                if latest is not None and latest.seq > self._last_given:
                    self._last_given = latest.seq
                    self._delivered += 1
                    return latest
                if self._state == FAILED:
                    raise StreamLost(self._message)
                if self._state == ENDED:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def status(self) -> SourceStatus:
        now = time.monotonic()
        with self._cond:
            state, message = self._state, self._message
            if (
                state == LIVE
                and self._latest is not None
                and self._may_be_stale()
                and now - self._last_time > self.options.stale_after
            ):
                state, message = STALE, f"no new frame for {now - self._last_time:.1f} s"
            thread = self._thread
            if (
                state in (LIVE, STALE, RECONNECTING)
                and thread is not None
                and not thread.is_alive()
                and not self._stop.is_set()
            ):
                state, message = (
                    FAILED,
                    f"{self._what()} failed: its capture thread stopped.",
                )  # never waited on
            size = self._latest.image.shape[:2] if self._latest is not None else None
            return SourceStatus(
                state,
                message,
                self._read,
                self._delivered,
                self._skipped,
                self._reconnects,
                self._meter.rate(now) if state in (LIVE, STALE) else 0.0,
                size,
                self._dropped,
            )

    def _may_be_stale(self) -> bool:
        return True

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            # A read blocked on a silent stream returns within the read timeout; Ctrl-C should not wait
            # that long, and the thread is a daemon, so it is left to finish on its own.
            self._thread.join(timeout=min(self.options.read_timeout + 1, 3.0))
        if self._cap is not None and (self._thread is None or not self._thread.is_alive()):
            self._cap.release()
        self._cap = None
