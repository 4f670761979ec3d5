"""A camera or a network stream, read by a capture thread that keeps only the newest frame: FFmpeg/TCP with
open and read timeouts, reopened with exponential backoff when it drops (a stream of known length read to
its end ends instead). numpy + OpenCV only."""

from __future__ import annotations

import base64
import contextlib
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from mgc_edge.runtime.sources.base import (
    ENDED,
    FAILED,
    LIVE,
    RECONNECTING,
    STALE,
    Capture,
    Frame,
    RateMeter,
    Source,
    SourceError,
    SourceOptions,
    SourceStatus,
    StreamLost,
    valid_frame,
)
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


_REFUSALS = {401: "check the user and password", 403: "the account may not view it", 404: "check the path"}


def http_refusal(target: int | str, timeout: float) -> str | None:
    """What an HTTP(S) stream's server answered, where it refused with an error status ("HTTP 401 Unauthorized
    (check the user and password)"); None for anything else (another scheme, no answer, a 2xx). OpenCV only
    says that the stream did not open: one GET, with the URL's user and password as Basic auth, says why."""
    if not isinstance(target, str) or urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
        return None
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        hint = _REFUSALS.get(exc.code)
        return f"HTTP {exc.code} {exc.reason}" + (f" ({hint})" if hint else "")
    except (OSError, ValueError):  # no answer, a TLS problem, a malformed URL: OpenCV's sentence stands
        return None


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
    most the frame in flight and never sees a frame twice. A stream that drops is reopened up to
    `options.reconnect` times with exponential backoff (state "reconnecting"); the new frame size may
    differ. After the last failed try `read()` raises StreamLost. A stream of known length read to its end
    (`read_to_end`) simply ends. `PacedFileSource` (sources/paced_file.py) is a file played this way.
    """

    live = True

    def __init__(
        self,
        target: int | str,
        options: SourceOptions = SourceOptions(),
        opener: Callable[[], Capture] | None = None,
    ) -> None:
        self.target = target
        self.options = options
        self.name = f"camera {target}" if isinstance(target, int) else redact_url(target)
        self._opener = opener or (lambda: open_capture(self.target, options))
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
        self._seq = -1
        self._read = self._delivered = self._skipped = self._reconnects = 0
        self._state, self._message = LIVE, ""
        self._meter = RateMeter()

    def _open_error(self) -> SourceError:
        if isinstance(self.target, int):
            return SourceError(
                f"Camera {self.target} did not open or gave no frame (is it connected and free? try another "
                "index with --source)."
            )
        answer = http_refusal(self.target, min(3.0, self.options.open_timeout))
        if answer is not None:
            return SourceError(f"Stream {self.name} did not open: the server answered {answer}.")
        return SourceError(
            f"Stream {self.name} did not open or gave no frame within {self.options.open_timeout:g} s "
            "(check the URL, the network and the camera's credentials)."
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
        opened = self._try_open()
        if opened is None:
            raise self._open_error()
        self._cap, first = opened
        self.fps = file_fps(self._cap)
        self.clock = time.monotonic()
        self._store(first, 0)
        self._thread = threading.Thread(target=self._run, name="mgc-capture", daemon=True)
        self._thread.start()
        return self

    def _store(self, image: np.ndarray, file_index: int) -> None:
        now = time.monotonic()  # the capture instant, before any preprocessing
        x, ms = self._prepared(image)  # outside the lock: the consumer may take the previous frame meanwhile
        with self._cond:
            self._read += 1
            seq, t = self._stamp(file_index, now)
            self._latest = Frame(seq, t, image, x, ms)
            self._last_time = now
            self._meter.tick(now)
            self._state, self._message = LIVE, ""
            self._cond.notify_all()
        self._wake()

    def _stamp(self, file_index: int, now: float) -> tuple[int, float]:
        """`seq` and `t` of a frame captured at `now`: the capture count and the time since the start."""
        self._seq += 1
        return self._seq, now - self.clock

    def _set_state(self, state: str, message: str) -> None:
        with self._cond:
            self._state, self._message = state, message
            self._cond.notify_all()
        self._wake()

    def _run(self) -> None:
        while not self._stop.is_set():
            cap = self._cap
            assert cap is not None
            ok, image = cap.read()
            if self._stop.is_set():
                break
            if valid_frame(ok, image):
                self._store(image, 0)
                continue
            if read_to_end(cap):
                self._set_state(ENDED, f"end of {self.name}")
                return
            if not self._reconnect():
                return

    def _reconnect(self) -> bool:
        """Reopen with exponential backoff; False (state FAILED) after the last try or when closed."""
        assert self._cap is not None
        self._cap.release()
        tries = self.options.reconnect
        for attempt in range(1, tries + 1):
            delay = min(self.options.backoff * 2 ** (attempt - 1), self.options.backoff_max)
            self._set_state(RECONNECTING, f"{self.name} dropped; reconnecting, try {attempt} of {tries}")
            if self._stop.wait(delay):
                return False
            opened = self._try_open()
            if opened is not None:
                self._cap = opened[0]
                self.fps = file_fps(self._cap) or self.fps
                with self._cond:
                    self._reconnects += 1
                self._store(opened[1], 0)
                return True
            if self._stop.is_set():
                return False
        tried = f"after {tries} reconnect attempt{'s' if tries != 1 else ''}" if tries else "(--reconnect 0)"
        # A camera whose password was changed or whose path was removed meanwhile says so, as at the first open.
        answer = http_refusal(self.target, min(3.0, self.options.open_timeout))
        said = f": the server answered {answer}" if answer else ""
        self._set_state(FAILED, f"Stream {self.name} dropped and did not come back {tried}{said}.")
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
            size = self._latest.image.shape[:2] if self._latest is not None else None
            return SourceStatus(
                state,
                message,
                self._read,
                self._delivered,
                self._skipped,
                self._reconnects,
                self._meter.rate(now),
                size,
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
