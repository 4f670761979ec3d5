"""A video file, every frame (every Nth with `every`), decoded one step ahead in a thread so that decoding
overlaps inference. numpy + OpenCV only."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from mgc_edge.runtime.sources.base import (
    ENDED,
    FAILED,
    LIVE,
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
from mgc_edge.runtime.sources.video import cut_short, file_fps, open_video, short_end_sentence


class FileSource(Source):
    """Every frame of a video file (every Nth with `every`), decoded one step ahead in a thread.

    `seq` is the frame's index in the file, `t` its timestamp (index / fps). The end of the file ends the
    source; a file that cannot be decoded at all is a SourceError, one that stops decoding well before the
    frames its container announces sets `short_end` (one sentence).
    """

    live = False
    kind = "file"

    def __init__(
        self,
        path: str | Path,
        options: SourceOptions = SourceOptions(),
        opener: Callable[[str], Capture] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = self.video_path = str(path)
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
        self._failure: str | None = None  # what stopped the decoding thread, where it raised

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
        except Exception as exc:  # noqa: BLE001 (a dead thread must never leave the loop waiting)
            self._failure = (
                f"Video file {self.path} failed: decoding stopped on an error ({type(exc).__name__}: {exc})."
            )
        finally:
            if ended and cut_short(index, self.frame_count):
                self.short_end = short_end_sentence(self.path, index, self.frame_count)
            self._put(None)

    def read(self, timeout: float = 0.1) -> Frame | None:
        """The next frame in file order; None at the end (then `ended` is True) or after `timeout`."""
        if self._state == ENDED:
            return None
        if self._state == FAILED:
            raise StreamLost(self._message)
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        with self._lock:
            if item is None:
                if self._failure is not None:
                    self._state, self._message = FAILED, self._failure
                    self._emit("failed", FAILED, self._failure)
                    raise StreamLost(self._failure)
                self._state, self._message = ENDED, f"end of {self.path.name}"
                self._emit("ended", ENDED, self._message)
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
