"""The annotated frames of each source as an mp4 file (`--save`), encoded in a writer thread.
numpy + OpenCV only."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.fileio import refuse_existing, temp_path
from mgc_edge.runtime.sinks.base import (
    BaseSink,
    Notify,
    SinkContext,
    SinkOptions,
    log,
    per_source,
)
from mgc_edge.runtime.sources.base import Source

# H.264 ('avc1') plays in every browser; OpenCV's pip wheels usually lack an encoder for it, then mp4v.
VIDEO_CODECS = ("avc1", "mp4v")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C-level stderr for a moment: FFmpeg reports each encoder it cannot open in several
    lines, and we say the outcome ourselves in one."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def open_video_writer(path: Path, fps: float, size_wh: tuple[int, int]) -> tuple[cv2.VideoWriter, str]:
    """A VideoWriter with the first codec of VIDEO_CODECS that opens here, and that codec's name."""
    for codec in VIDEO_CODECS:
        with _quiet_stderr():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size_wh)
        if writer.isOpened():
            return writer, codec
        writer.release()
    raise UserError(f"OpenCV cannot write an mp4 video to {path} here (no avc1 or mp4v encoder).")


def fit_to(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """`image` letterboxed into `size_wh` (black bars): a frame size that changed after a reconnect."""
    w, h = size_wh
    ih, iw = image.shape[:2]
    scale = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    canvas = np.zeros((h, w, 3), np.uint8)
    top, left = (h - nh) // 2, (w - nw) // 2
    canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return canvas


class VideoSink(BaseSink):
    """The annotated frames as an mp4 file: H.264 where OpenCV has an encoder (browsers play it), else
    mp4v (said once). The size is fixed by the first frame; later frames of another size are letterboxed.

    Encoding runs in a writer thread behind a short queue, so that it overlaps the next inference; every
    frame is written (a full queue makes the loop wait, it never drops a frame). `paced` (live sources): the
    video plays in real time instead, however fast the model kept up: each frame goes where its capture time
    falls at `fps`, the frame before it repeated over the frames the loop did not classify; a gap longer than
    `max_gap` seconds (a stream that was down) is cut to that, and a source faster than `fps` is thinned to
    it, each said once.
    """

    wants_image = True

    def __init__(
        self,
        path: str | Path,
        fps: float,
        force: bool = False,
        notify: Notify = log.warning,
        queue_size: int = 8,
        paced: bool = False,
        max_gap: float = 10.0,
    ) -> None:
        self.path = refuse_existing(path, force, "--save")
        if self.path.suffix.lower() != ".mp4":
            raise UserError(
                f"--save writes an mp4 video; give a file name ending in .mp4, not {self.path.name}."
            )
        self.fps = fps if fps and fps > 0 else 25.0
        self.notify = notify
        self.codec = ""
        self.frames = 0
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(temp_path(self.path))
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._resized = False
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.paced, self._max_fill = paced, max(0, round(max_gap * self.fps))
        self._last: np.ndarray | None = None  # the frame written last (paced: repeated over a gap)
        self._slot = -1  # paced: the video frame it was written at
        self._cut = 0  # paced: frames of over-long gaps left out, so later frames keep their place
        self._cut_said = self._fast_said = False

    def _write_all(self) -> None:
        assert self._writer is not None
        while (image := self._queue.get()) is not None:
            if self._failure is None:
                try:
                    self._writer.write(image)
                except Exception as exc:  # reported to the loop on the next frame or at close
                    self._failure = exc

    def _open(self, w: int, h: int) -> None:
        self._size = (w, h)
        self._writer, self.codec = open_video_writer(self._tmp, self.fps, self._size)
        if self.codec != VIDEO_CODECS[0]:
            self.notify(
                f"This OpenCV build has no H.264 encoder; {self.path.name} is written as {self.codec}, "
                "which some browsers do not play (`ffmpeg -i IN -c:v libx264 OUT` converts it)."
            )
        self._thread = threading.Thread(target=self._write_all, name="mgc-video-writer", daemon=True)
        self._thread.start()

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        if self._failure is not None:
            raise self._failure
        h, w = annotated_bgr.shape[:2]
        if self._writer is None:
            self._open(w, h)
        assert self._size is not None
        image = annotated_bgr
        if (w, h) != self._size:
            if not self._resized:
                self._resized = True
                self.notify(
                    f"The frame size changed to {w}x{h}; {self.path.name} keeps {self._size[0]}x{self._size[1]}."
                )
            image = fit_to(annotated_bgr, self._size)
        if self.paced:
            repeats = self._repeats(float(event["t"]))
            if repeats is None:
                return
            for _ in range(repeats):
                self._queue.put(self._last)
                self.frames += 1
        self._queue.put(image)  # the loop hands over a new array per frame: no copy needed
        self._last = image
        self.frames += 1

    def _repeats(self, t: float) -> int | None:
        """Paced: how often the last frame is written again before the frame captured at `t` (seconds since
        the source started); None where the frame is left out. A frame one place early (jitter) takes the
        next place; one that would put the video more than a frame ahead of real time is left out (a source
        faster than the rate it announced, which FFmpeg guesses as 25 for MJPEG), said once."""
        want = round(t * self.fps) - self._cut
        if self._last is None:
            self._cut, self._slot = want, 0  # the video starts at the first frame
            return 0
        if want < self._slot:
            if not self._fast_said:
                self._fast_said = True
                self.notify(
                    f"A source sends frames faster than the {self.fps:g} fps it announced; {self.path.name} "
                    f"keeps {self.fps:g} of them a second, in real time (the JSONL has every one)."
                )
            return None
        gap = want - self._slot - 1
        if gap > self._max_fill:
            if not self._cut_said:
                self._cut_said = True
                self.notify(
                    f"A source gave no frame for {gap / self.fps:.0f} s; {self.path.name} holds its last frame "
                    f"for {self._max_fill / self.fps:.0f} s of that gap (and of any longer one)."
                )
            self._cut += gap - self._max_fill
            gap = self._max_fill
        gap = max(0, gap)
        self._slot += gap + 1
        return gap

    def state(self, event: dict[str, Any]) -> None:
        """States are not frames: the video shows them on the frames that follow."""

    @property
    def outputs(self) -> Sequence[Path]:
        return [self.path]

    def close(self) -> None:
        """Write what is queued, finish the file and move it into place."""
        try:
            if self._writer is not None:
                self._queue.put(None)
                if self._thread is not None:
                    self._thread.join()
                self._writer.release()
                self._writer = None
                if self._failure is not None:
                    raise self._failure
                os.replace(self._tmp, self.path)
        finally:
            self._stack.close()


def save_paths(save: Path, count: int) -> list[Path]:
    """Where --save writes: the file itself for one source, else one file per source, `NAME.<index>.mp4`
    (one video per camera keeps each one's own size, rate and timeline; a grid would have to resample them all
    to one clock and letterbox them to one size)."""
    if count == 1:
        return [save]
    return [save.with_name(f"{save.stem}.{i}{save.suffix}") for i in range(count)]


def source_fps(source: Source, every: int) -> float:
    """The frame rate of a source's annotated video: its own, 25 when unknown; --every thins files only."""
    fps = source.fps or 25.0
    return fps / every if source.kind == "file" else fps


def check(options: SinkOptions, count: int) -> None:
    if options.save is not None:
        for path in save_paths(options.save, count):
            refuse_existing(path, options.force, "--save")


def build(context: SinkContext) -> BaseSink | None:
    """`--save`: an mp4 per source, live sources paced to their capture times."""
    options = context.options
    if options.save is None:
        return None
    paths = save_paths(options.save, len(context.sources))
    return per_source(
        [
            VideoSink(
                path,
                source_fps(src, options.every),
                force=options.force,
                notify=context.notify,
                paced=src.live,
            )
            for path, src in zip(paths, context.sources)
        ]
    )
