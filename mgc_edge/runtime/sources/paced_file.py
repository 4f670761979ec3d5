"""A video file played at its own frame rate (`--realtime`): a live source whose frames can be missed, read
from the loop's first read (its first frames are not lost while a model loads or the loop measures the
machine), `every` Nth frame grabbed and the rest skipped, ending at the file's end. numpy + OpenCV only."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mgc_edge.runtime.sources.base import ENDED, Capture, SourceError, SourceOptions, valid_frame
from mgc_edge.runtime.sources.stream import LiveSource
from mgc_edge.runtime.sources.video import open_video


class PacedFileSource(LiveSource):
    """A file paced at its frame rate: `seq` is the frame's index in the file, `t` its time (index / fps)."""

    def __init__(
        self,
        path: str | Path,
        options: SourceOptions = SourceOptions(),
        opener: Callable[[], Capture] | None = None,
    ) -> None:
        super().__init__(str(path), options, opener or (lambda: open_video(str(path))))
        self.name = self.video_path = str(path)

    def _open_error(self, waited: float) -> SourceError:
        return SourceError(f"Video file {self.target} cannot be decoded (not a video OpenCV can read).")

    def open(self) -> PacedFileSource:
        if self._thread is None and not Path(str(self.target)).is_file():
            raise SourceError(f"Video file {self.target} does not exist.")
        super().open()
        return self

    def _stamp(self, file_index: int, now: float) -> tuple[int, float]:
        return file_index, file_index / self.fps if self.fps else now - self.clock

    def _may_be_stale(self) -> bool:
        return self._reading.is_set()  # not before the loop reads: the file waits for it

    def _run(self) -> None:
        while not self._reading.wait(0.1):
            if self._stop.is_set():
                return
        with self._cond:
            self.clock = self._last_time = time.monotonic()
        index, every = 0, self.options.every
        while not self._stop.is_set():
            cap = self._cap
            assert cap is not None
            if self.fps > 0:
                # Wait until the file's clock reaches the next frame (interruptible by close()).
                delay = self.clock + (index + 1) / self.fps - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            index += 1
            image = None
            if index % every != 0:
                ok = cap.grab()
                if ok:
                    with self._cond:
                        self._skipped += 1
                    continue
            else:
                ok, image = cap.read()
            if self._stop.is_set():
                break
            if valid_frame(ok, image):
                self._store(image, index)
                continue
            self._set_state(ENDED, f"end of {Path(str(self.target)).name}", "ended")
            return
