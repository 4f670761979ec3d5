"""What every source is: `Frame(seq, t, image)`, the states a source reports, its options and status, the
`Capture` part of cv2.VideoCapture that sources read (tests pass fakes), and the `Source` surface itself.

Every source yields frames with `seq` strictly increasing and never repeated. numpy only."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mgc_edge.errors import UserError

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


FOREVER = -1  # `reconnect`: keep trying for as long as the run lasts


@dataclass(frozen=True)
class SourceOptions:
    """How sources are opened and kept alive; times in seconds."""

    reconnect: int = FOREVER  # reopen attempts after a live stream drops (-1: for ever; 0: give up at once)
    open_timeout: float = 10.0  # a network stream that does not answer within this is an error
    read_timeout: float = 10.0  # a network stream silent for this long counts as dropped
    backoff: float = 0.5  # first wait before reopening, doubled at each attempt...
    backoff_max: float = 30.0  # ...up to this
    jitter: float = 0.2  # each wait is shortened by up to this share, so that cameras cut together spread out
    warmup: float = 2.0  # frames overwritten this soon after a (re)open are `skipped`, not `dropped`
    stale_after: float = 2.0  # a live source without a new frame for this long is "stale"
    every: int = 1  # files: deliver every Nth frame
    realtime: bool = False  # files: pace at the file's frame rate, dropping what the consumer misses
    prefetch: int = 4  # files: frames decoded ahead

    def __post_init__(self) -> None:
        if self.reconnect < FOREVER:
            raise SourceError(
                f"--reconnect must be -1 (for ever), 0 (never) or a number of tries, got {self.reconnect}."
            )
        if self.every < 1:
            raise SourceError(f"--every must be 1 or more, got {self.every}.")
        if not (self.open_timeout > 0 and self.read_timeout > 0):
            raise SourceError("Stream timeouts must be positive numbers of seconds.")


def backoff_delay(attempt: int, options: SourceOptions, rng: random.Random | None = None) -> float:
    """The wait before reopen try `attempt` (1, 2, ...): `backoff` doubled at each try up to `backoff_max`, less
    up to `jitter` of it at random (never above the cap, never below half the first wait)."""
    base = min(options.backoff * 2.0 ** min(attempt - 1, 60), options.backoff_max)
    return max(base * (1.0 - options.jitter * (rng or random).random()), options.backoff / 2)


class Clock:
    """Time as a source's reconnects see it: tests pass a fake one, so that an outage of minutes takes
    milliseconds. `sleep` returns True when `stop` was set meanwhile."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


REAL_CLOCK = Clock()


@dataclass(frozen=True)
class SourceEvent:
    """One event of a source's life: `kind` is "dropped", "reconnecting", "back", "failed" or "ended", `state`
    the state it leaves the source in, `message` what happened (URLs redacted), `wall` when (epoch seconds)."""

    kind: str
    state: str
    message: str
    wall: float


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's counters: frames read (decoded or captured), frames the consumer
    got, frames skipped (by `every`, or overwritten while the loop started or the stream warmed up), reconnects
    so far, the measured capture rate, and frames `dropped` (overwritten by newer ones while running)."""

    state: str
    message: str
    read: int
    delivered: int
    skipped: int
    reconnects: int
    capture_fps: float
    size: tuple[int, int] | None  # (H, W) of the latest frame
    dropped: int = 0


class Capture(Protocol):
    """The part of cv2.VideoCapture the sources and the recorded-video decoder use (tests pass fakes)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def grab(self) -> bool: ...
    def retrieve(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


def valid_frame(ok: bool, image: np.ndarray | None) -> bool:
    return bool(ok) and image is not None and image.size > 0


class RateMeter:
    """Events per second over the last `window` seconds (not thread-safe: callers hold their lock)."""

    def __init__(self, window: float = 2.0, least_span: float = 0.5) -> None:
        self.window, self.least_span = window, least_span
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        """Events per second; 0 until two events fell in the window, decaying when events stop. Counted over
        at least `least_span` seconds: a stream that comes back often hands over a burst of buffered frames
        within milliseconds, which is no rate."""
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0], self.least_span)
        return (len(self._times) - 1) / span


def _nothing() -> None:
    pass


Prepare = Callable[[np.ndarray], np.ndarray]  # one BGR frame -> its model input [3, H, W]


class Source:
    """Common surface of every source: `open()`, `read(timeout)` -> the next Frame or None, `status()`,
    `close()`, and iteration over frames until the end (a lost stream raises StreamLost). A new kind of source
    subclasses it in a module of its own and registers one `Kind` in `sources.KINDS`."""

    name: str  # for messages; URLs are redacted
    short_name: str = ""  # short and unique in the run (set by open_sources): tables, logs, the live view
    options: SourceOptions
    live: bool  # True where frames can be missed (camera, URL, realtime file)
    kind: str = "live"  # "file" where every frame is delivered (the status and summary say it)
    fps: float  # nominal frame rate, 0 when unknown
    clock: float  # time.monotonic() at the start: frame.t + clock is the capture instant (live sources)
    frame_count: int = 0  # frames the container announces (files), 0 when unknown
    video_path: str | None = None  # the video file this source decodes (a file, paced or not), else None
    short_end: str | None = None  # set at the end of a file cut short: one sentence
    _wake: Callable[[], None] = staticmethod(_nothing)
    _prepare: Prepare | None = None

    def _emit(self, kind: str, state: str, message: str, wall: float | None = None) -> None:
        """Record one event of this source's life (any thread); `events()` hands it out once."""
        self._event_log.append(SourceEvent(kind, state, message, time.time() if wall is None else wall))

    @property
    def _event_log(self) -> deque[SourceEvent]:
        # Made on first use: subclasses need not call an __init__ here. Bounded: nobody may be reading.
        log = self.__dict__.get("_events_")
        if log is None:
            log = self.__dict__.setdefault("_events_", deque(maxlen=1000))
        return log

    def events(self) -> list[SourceEvent]:
        """The events of this source's life since the last call, oldest first."""
        log, out = self._event_log, []
        while log:
            out.append(log.popleft())
        return out

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
