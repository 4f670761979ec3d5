"""Where frames come from: a video file, a camera, a network stream; numpy + OpenCV only.

Every source yields `Frame(seq, t, image)` with `seq` strictly increasing and never repeated. A file gives
every frame (decoded one step ahead in a thread, so decoding overlaps inference). A live source (camera,
URL, or a file paced with `realtime`) is read by a capture thread that keeps only the newest frame: a slow
consumer gets the newest frame, never a queue of old ones, never the same frame twice, never a placeholder.
A live stream that drops is reopened with exponential backoff a bounded number of times. This module
holds the frame and option types, the file source and `open_source`; the live source is in `live.py`.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.runtime import host

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
# A video or stream of known length that stops before this share of its announced frames was cut short
# (damaged, truncated); above it, container frame counts are often estimates (duration x fps), not an error.
COMPLETE_SHARE = 0.9
# States a source reports (and the loop forwards to the sinks).
LIVE, STALE, RECONNECTING, ENDED, FAILED = "live", "stale", "reconnecting", "ended", "failed"


class SourceError(UserError):
    """A source cannot be opened or decoded (camera, file, URL); the message is one sentence."""


class StreamLost(RuntimeError):
    """A live source dropped and did not come back within the allowed reconnects; one sentence."""


@dataclass(frozen=True)
class Frame:
    """One frame: `seq` is the file's frame index or the capture sequence number, `t` seconds since the
    source started (the file's timestamp or the capture time), `image` BGR uint8. `x` is the model input
    [3, H, W] when the consumer asked the source to preprocess (`Source.attach`), made in `prep_ms`."""

    seq: int
    t: float
    image: np.ndarray
    x: np.ndarray | None = None
    prep_ms: float = 0.0


@dataclass(frozen=True)
class SourceOptions:
    """How sources are opened and kept alive; times in seconds."""

    reconnect: int = 5  # reopen attempts after a live stream drops (0: give up at once)
    open_timeout: float = 10.0  # a network stream that does not answer within this is an error
    read_timeout: float = 10.0  # a network stream silent for this long counts as dropped
    backoff: float = 0.5  # first wait before reopening, doubled at each attempt...
    backoff_max: float = 8.0  # ...up to this
    stale_after: float = 2.0  # a live source without a new frame for this long is "stale"
    every: int = 1  # files: deliver every Nth frame
    realtime: bool = False  # files: pace at the file's frame rate, dropping what the consumer misses
    prefetch: int = 4  # files: frames decoded ahead

    def __post_init__(self) -> None:
        if self.reconnect < 0:
            raise SourceError(f"--reconnect must be 0 or more, got {self.reconnect}.")
        if self.every < 1:
            raise SourceError(f"--every must be 1 or more, got {self.every}.")
        if not (self.open_timeout > 0 and self.read_timeout > 0):
            raise SourceError("Stream timeouts must be positive numbers of seconds.")


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's counters: frames read (decoded or captured), frames the consumer
    got, frames skipped by `every`, reconnects so far, and the measured capture rate."""

    state: str
    message: str
    read: int
    delivered: int
    skipped: int
    reconnects: int
    capture_fps: float
    size: tuple[int, int] | None  # (H, W) of the latest frame


class Capture(Protocol):
    """The part of cv2.VideoCapture the sources use (tests pass fakes)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def grab(self) -> bool: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


# The password runs to the LAST @ before the path, as FFmpeg reads it: a password may hold @ and :.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^/?#\s]*)@")
# Query parameters named like a secret, also with a prefix: access_token, api_key, X-Amz-Signature.
_SECRET_QUERY = re.compile(
    r"(?i)([?&][\w.-]*(?:password|passwd|pwd|pw|pass|token|key|secret|auth|signature|sig|credential)=)[^&#\s]*"
)


def redact_url(text: str) -> str:
    """`text` with the password of every URL in it masked (`rtsp://user:***@host`), and secret-looking
    query parameters too; use it on every message that may hold a stream URL."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    return _SECRET_QUERY.sub(r"\1***", text)


def is_url(source: str) -> bool:
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def valid_frame(ok: bool, image: np.ndarray | None) -> bool:
    return bool(ok) and image is not None and image.size > 0


class RateMeter:
    """Events per second over the last `window` seconds (not thread-safe: callers hold their lock)."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        """Events per second; 0 until two events fell in the window, decaying when events stop."""
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0


def _nothing() -> None:
    pass


Prepare = Callable[[np.ndarray], np.ndarray]  # one BGR frame -> its model input [3, H, W]


class Source:
    """Common surface of every source: `open()`, `read(timeout)` -> the next Frame or None, `status()`,
    `close()`, and iteration over frames until the end (a lost stream raises StreamLost)."""

    name: str  # for messages; URLs are redacted
    live: bool  # True where frames can be missed (camera, URL, realtime file)
    fps: float  # nominal frame rate, 0 when unknown
    clock: float  # time.monotonic() at the start: frame.t + clock is the capture instant (live sources)
    _wake: Callable[[], None] = staticmethod(_nothing)
    _prepare: Prepare | None = None

    def attach(self, wake: Callable[[], None], prepare: Prepare | None = None) -> None:
        """Call `wake()` (from the reading thread) whenever a frame or a change of state arrives: a loop
        that reads several sources waits on one signal instead of polling each of them. With `prepare`,
        the reading thread also preprocesses every frame it delivers (`Frame.x`), off the loop's thread."""
        self._wake = wake
        self._prepare = prepare

    def _prepared(self, image: np.ndarray) -> tuple[np.ndarray | None, float]:
        """`prepare(image)` and its duration in ms; (None, 0) without `prepare` or where it fails (the loop
        then preprocesses the frame itself and reports the error in its own thread)."""
        if self._prepare is None:
            return None, 0.0
        start = time.perf_counter()
        try:
            x = self._prepare(image)
        except Exception:  # noqa: BLE001 (the loop's own preprocess raises it again, with its sentence)
            return None, 0.0
        return x, (time.perf_counter() - start) * 1000

    def open(self) -> Source:
        """Open the source (errors are one sentence) and start reading; idempotent."""
        raise NotImplementedError

    def read(self, timeout: float = 0.1) -> Frame | None:
        raise NotImplementedError

    def status(self) -> SourceStatus:
        raise NotImplementedError

    @property
    def ended(self) -> bool:
        return self.status().state == ENDED

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read(0.25)
            if frame is not None:
                yield frame
            elif self.ended:
                return


# A small video decodes faster in one FFmpeg thread on a machine of few cores, where its frame threads cost more
# in hand-overs than they save and take the cores that preprocessing wants; with many cores they win.
# benchmarks/bench_decode.py, one thread against FFmpeg's default. On 2 cores: 320x180 1.45x the frames a second
# for 0.6x the CPU, and annotate's decode pipeline 1.42x; 640x360 0.85x alone but 1.26x in that pipeline;
# 1280x720 0.81x. On 16 cores (the H200 box), 320x180: 0.27x alone and 0.55x in annotate's pipeline; the live
# loop's rate was the same either way (its CPU side is the limit there), at 0.75-0.8x the CPU a frame with
# one thread. Between 2 and 16 cores it is unmeasured: FFmpeg's default.
SMALL_FRAME = 640 * 360
FEW_CORES = 2


def open_video(path: str) -> cv2.VideoCapture:
    """A video file opened for decoding (not yet decoded); a small one in a single decoder thread where the
    machine has few cores."""
    cap = cv2.VideoCapture(path)
    if host.usable_cores() > FEW_CORES:
        return cap
    area = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if not (cap.isOpened() and 0 < area <= SMALL_FRAME and cap.getBackendName() == "FFMPEG"):
        return cap
    single = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not single.isOpened():
        single.release()
        return cap
    cap.release()
    return single


def file_fps(cap: Capture) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0.5 <= fps <= 1000 else 0.0


class FileSource(Source):
    """Every frame of a video file (every Nth with `every`), decoded one step ahead in a thread.

    `seq` is the frame's index in the file, `t` its timestamp (index / fps). The end of the file ends the
    source; a file that cannot be decoded at all is a SourceError, one that stops decoding well before the
    frames its container announces sets `short_end` (one sentence).
    """

    live = False

    def __init__(
        self,
        path: str | Path,
        options: SourceOptions = SourceOptions(),
        opener: Callable[[str], Capture] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.options = options
        self._opener = opener or open_video
        self.fps = 0.0
        self.frame_count = 0
        self.clock = time.monotonic()
        self._queue: queue.Queue[Frame | None] = queue.Queue(maxsize=max(1, options.prefetch))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._read = self._delivered = self._skipped = 0
        self._size: tuple[int, int] | None = None
        self._state, self._message = LIVE, ""
        self._meter = RateMeter()
        self._cap: Capture | None = None
        self._first: np.ndarray | None = None
        self.short_end: str | None = None  # set at the end of a file cut short

    def open(self) -> FileSource:
        """Open the file and start decoding; a second call does nothing."""
        if self._thread is not None:
            return self
        if not self.path.exists():
            raise SourceError(f"Video file {self.path} does not exist.")
        if not self.path.is_file():
            raise SourceError(f"Source {self.path} is not a file.")
        cap = self._opener(str(self.path))
        ok, image = (False, None)
        if cap.isOpened():
            ok, image = cap.read()
        if not valid_frame(ok, image):
            cap.release()
            raise SourceError(f"Video file {self.path} cannot be decoded (not a video OpenCV can read).")
        self._cap, self._first = cap, image
        self.fps = file_fps(cap)
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.clock = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="mgc-file-reader", daemon=True)
        self._thread.start()
        return self

    def _timestamp(self, index: int) -> float:
        if self.fps > 0:
            return index / self.fps
        assert self._cap is not None
        return float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0

    def _put(self, item: Frame | None) -> bool:
        """Queue an item, giving up when the source is closed; False when closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            self._wake()
            return True
        return False

    def _run(self) -> None:
        cap, every = self._cap, self.options.every
        assert cap is not None
        index, image = 0, self._first
        self._first = None
        ended = False
        try:
            while not self._stop.is_set():
                if index % every == 0:
                    if image is None:
                        ok, image = cap.read()
                        if not valid_frame(ok, image):
                            break
                    with self._lock:
                        self._read += 1
                        self._size = image.shape[:2]
                        self._meter.tick(time.monotonic())
                    x, ms = self._prepared(image)
                    if not self._put(Frame(index, self._timestamp(index), image, x, ms)):
                        return
                else:  # skipped by `every`: grabbed, never converted
                    if not cap.grab():
                        break
                    with self._lock:
                        self._skipped += 1
                image = None
                index += 1
            ended = not self._stop.is_set()
        finally:
            if ended and self.frame_count and index < COMPLETE_SHARE * self.frame_count:
                where = f"stopped decoding at frame {index} of {self.frame_count}"
                self.short_end = f"{self.path} {where} (damaged or truncated)."
            self._put(None)

    def read(self, timeout: float = 0.1) -> Frame | None:
        """The next frame in file order; None at the end (then `ended` is True) or after `timeout`."""
        if self._state == ENDED:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        with self._lock:
            if item is None:
                self._state, self._message = ENDED, f"end of {self.path.name}"
                return None
            self._delivered += 1
        return item

    def status(self) -> SourceStatus:
        with self._lock:
            return SourceStatus(
                self._state,
                self._message,
                self._read,
                self._delivered,
                self._skipped,
                0,
                self._meter.rate(time.monotonic()),
                self._size,
            )

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._cap is not None and (self._thread is None or not self._thread.is_alive()):
            self._cap.release()  # never under a thread still decoding from it
        self._cap = None


def open_source(source: str, options: SourceOptions = SourceOptions()) -> Source:
    """`0` (camera index), a URL or a video file path -> an opened source; errors are one sentence."""
    from mgc_edge.runtime.live import LiveSource

    text = str(source).strip()
    if text.isdigit():
        if options.every != 1 or options.realtime:
            raise SourceError("--every and --realtime apply to video files, not to cameras.")
        return LiveSource(int(text), options).open()
    if is_url(text):
        if options.every != 1 or options.realtime:
            raise SourceError("--every and --realtime apply to video files, not to streams.")
        return LiveSource(text, options).open()
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise SourceError(
            f"Source {redact_url(text)} uses the scheme {scheme!r}; streams must be one of "
            f"{', '.join(URL_SCHEMES)}."
        )
    if options.realtime:
        return LiveSource(Path(text), options, paced_file=True).open()
    return FileSource(text, options).open()


def is_file_source(text: str) -> bool:
    """Whether a source text names a video file (not a camera index, not a URL)."""
    text = str(text).strip()
    return not (text.isdigit() or "://" in text)


def open_sources(texts: Sequence[str], options: SourceOptions = SourceOptions()) -> list[Source]:
    """Open several sources at once, in threads (a dead stream's timeout is paid once, not once per
    source); the first error is raised (one sentence naming its source) after closing the others.

    With a mix of files and cameras or streams, `every` and `realtime` apply to the files only; they are
    refused only where no source is a file."""
    texts = [str(t).strip() for t in texts]
    if not texts:
        raise SourceError("Give at least one source.")
    per_source = [options] * len(texts)
    if (options.every != 1 or options.realtime) and any(map(is_file_source, texts)):
        live = replace(options, every=1, realtime=False)
        per_source = [options if is_file_source(t) else live for t in texts]
    if len(texts) == 1:
        return [open_source(texts[0], per_source[0])]
    opened: list[Source] = []
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(16, len(texts)), thread_name_prefix="mgc-open") as pool:
        for future in [pool.submit(open_source, t, o) for t, o in zip(texts, per_source)]:
            try:
                opened.append(future.result())
            except BaseException as exc:  # keep collecting: every opened source must be closed
                failure = failure or exc
    if failure is not None:
        for source in opened:
            source.close()
        raise failure
    return opened


def read_sources_file(path: str | Path) -> list[str]:
    """The sources listed in a text file, one per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SourceError(f"Sources file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"Sources file {path} cannot be read ({type(exc).__name__}).") from None
    sources = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not sources:
        raise SourceError(f"Sources file {path} lists no source (one per line; # starts a comment).")
    return sources


def describe(source: Source) -> dict[str, Any]:
    """Name, kind and nominal rate of a source, for the start-up line and the status endpoint."""
    kind = "file" if isinstance(source, FileSource) else "live"
    info: dict[str, Any] = {"source": source.name, "kind": kind, "fps": round(source.fps, 2)}
    if isinstance(source, FileSource):
        info["frames"] = source.frame_count
    return info


def __getattr__(name: str) -> Any:
    """`LiveSource` and `open_capture` live in `live.py` (imported on first use, which avoids an import
    cycle) and are part of this module's interface too."""
    if name in ("LiveSource", "open_capture"):
        from mgc_edge.runtime import live

        return getattr(live, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
