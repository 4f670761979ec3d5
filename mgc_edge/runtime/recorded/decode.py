"""Recorded videos -> preprocessed batches, decoded ahead of the model; numpy + OpenCV only, never torch.

One thread decodes the videos one after the other (a video's frames can only be decoded in order), every
frame once: frames left out by `every` or before `start` are grabbed, never converted to BGR. Decoded frames go in
small chunks to a few preprocessing threads running the shared `preprocess()` (OpenCV and numpy release the
GIL), and the chunks come back in order through a bounded queue. Memory is bounded by construction: at most
`2 x workers` chunks of raw frames are in flight and at most `prefetch` preprocessed chunks wait for the
model, however long the video, so a two-hour session costs what a two-minute one does.

The consumer iterates over `VideoStarted`, `Batch`es, then `VideoEnded` or `VideoFailed` per video, in
order; a video that cannot be opened or decoded is a `VideoFailed` with one sentence, and the next video
follows. Times come from the video's own timestamps (CAP_PROP_POS_MSEC of each decoded frame), falling back
to index / fps where a container gives none.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.config import PreprocessSpec
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime import host
from mgc_edge.runtime.sources.base import Capture, valid_frame
from mgc_edge.runtime.sources.video import (
    VideoInfo,
    container_info,
    cut_short,
    frame_time,
    open_video,
    short_end_sentence,
)

CHUNK = 8  # frames per preprocessing task: small, so raw frames in flight stay few even at 4K


@dataclass(frozen=True)
class DecodeOptions:
    """Which frames to classify and how far ahead to decode."""

    every: int = 1  # every Nth frame of the file (the others are grabbed, never converted)
    start: float = 0.0  # seconds
    end: float | None = None  # seconds, exclusive; None = to the end
    batch_size: int = 32
    workers: int = 0  # preprocessing threads; 0 = about half the cores, 1 to 4
    prefetch: int = 0  # preprocessed chunks waiting for the model; 0 = two batches' worth

    def preprocess_threads(self) -> int:
        return self.workers or max(1, min(4, host.usable_cores() // 2))

    def queue_chunks(self) -> int:
        return self.prefetch or max(2, 2 * math.ceil(self.batch_size / CHUNK))


@dataclass(frozen=True)
class VideoStarted:
    index: int
    info: VideoInfo


@dataclass(frozen=True)
class Batch:
    """Preprocessed frames of one video: file frame indices [B], timestamps [B] in seconds, and the
    model input float32 [B, 3, H, W]."""

    index: int
    frames: np.ndarray
    times: np.ndarray
    x: np.ndarray


@dataclass(frozen=True)
class VideoEnded:
    index: int
    classified: int
    end_time: float  # just after the last classified frame: where its segment ends
    stopped_at: int  # frames read from the file (decoded or grabbed)
    note: str | None = None  # a short end worth saying (fewer frames than the container announced)


@dataclass(frozen=True)
class VideoFailed:
    index: int
    reason: str  # one sentence


Item = VideoStarted | Batch | VideoEnded | VideoFailed
Opener = Callable[[str], Capture]


class _Chunk:
    """Raw frames on their way to a preprocessing thread."""

    __slots__ = ("frames", "images", "index", "times")

    def __init__(self, index: int) -> None:
        self.index = index
        self.frames: list[int] = []
        self.times: list[float] = []
        self.images: list[np.ndarray] = []


class _Stopped(Exception):
    """The consumer closed the stream while the decoder waited."""


class VideoBatches:
    """Iterate over the items of `videos`, decoded in a thread and preprocessed ahead of the consumer;
    `close()` (or leaving a `with` block) stops the threads, also midway."""

    def __init__(
        self,
        videos: Sequence[Path],
        spec: PreprocessSpec,
        options: DecodeOptions = DecodeOptions(),
        opener: Opener | None = None,
    ) -> None:
        self.videos = list(videos)
        self.spec = spec
        self.options = options
        self._opener = opener or open_video
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=options.queue_chunks())
        workers = options.preprocess_threads()
        self._slots = threading.Semaphore(2 * workers)  # chunks of raw frames in flight
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mgc-preprocess")
        self._thread = threading.Thread(target=self._decode_all, name="mgc-decode", daemon=True)
        self._started = False

    # -- the decoding thread ------------------------------------------------------------------------

    def _put(self, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _submit(self, chunk: _Chunk) -> None:
        while not self._slots.acquire(timeout=0.1):
            if self._stop.is_set():
                raise _Stopped
        future = self._pool.submit(self._preprocess, chunk)
        future.add_done_callback(lambda _f: self._slots.release())
        self._put(future)

    def _preprocess(self, chunk: _Chunk) -> Batch:
        x = preprocess(chunk.images, self.spec)
        chunk.images.clear()  # the raw frames go now, not when the consumer gets to this chunk
        return Batch(chunk.index, np.asarray(chunk.frames, np.int64), np.asarray(chunk.times, np.float64), x)

    def _decode_all(self) -> None:
        try:
            for index, path in enumerate(self.videos):
                self._decode(index, path)
        except _Stopped:
            return
        except BaseException as exc:  # a bug, not a bad file: hand it to the consumer
            try:
                self._put(exc)
            except _Stopped:
                return
        try:
            self._put(None)
        except _Stopped:
            pass

    def _decode(self, index: int, path: Path) -> None:
        opts = self.options
        if not path.is_file():
            self._put(VideoFailed(index, f"Video file {path} does not exist."))
            return
        cap = self._opener(str(path))
        try:
            if not cap.isOpened():
                self._put(
                    VideoFailed(index, f"{path} cannot be opened as a video (not a video OpenCV can read).")
                )
                return
            info = container_info(cap)
            step = 1.0 / info.fps if info.fps > 0 else 0.0
            self._put(VideoStarted(index, info))
            chunk = _Chunk(index)
            classified, frame, last_t, kept_t, ended_by_time = 0, 0, -1.0, 0.0, False
            while True:
                if self._stop.is_set():
                    raise _Stopped
                # Every frame is decoded (grab) exactly once; only the frames classified are converted to
                # BGR (retrieve): what read() does, minus the conversion of the frames left out.
                if not cap.grab():
                    break
                t = frame_time(cap, frame, step, last_t)
                if step == 0.0 and last_t >= 0:
                    step = t - last_t  # no frame rate: the spacing of the timestamps
                last_t = t
                if opts.end is not None and t >= opts.end:
                    ended_by_time = True
                    break
                frame += 1
                if (frame - 1) % opts.every != 0 or t < opts.start:
                    continue
                ok, image = cap.retrieve()
                if not valid_frame(ok, image):
                    frame -= 1  # decoded but unusable: the video ends before it
                    break
                chunk.frames.append(frame - 1)
                chunk.times.append(t)
                chunk.images.append(image)
                classified, kept_t = classified + 1, t
                if len(chunk.frames) == CHUNK:
                    self._submit(chunk)
                    chunk = _Chunk(index)
            if chunk.frames:
                self._submit(chunk)
            ending = self._ending(index, path, info, classified, frame, (last_t, kept_t, step), ended_by_time)
            self._put(ending)
        finally:
            cap.release()

    def _ending(
        self,
        index: int,
        path: Path,
        info: VideoInfo,
        classified: int,
        frames_read: int,
        times: tuple[float, float, float],
        ended_by_time: bool,
    ) -> VideoEnded | VideoFailed:
        """The end of a video: failed when nothing decoded or it stopped far short of its announced end.
        `times`: the last frame read, the last frame classified, and the frame spacing (seconds)."""
        last_t, kept_t, step = times
        opts = self.options
        if frames_read == 0:
            return VideoFailed(index, f"{path} cannot be decoded (no frame could be read).")
        announced = info.frame_count
        if not ended_by_time and cut_short(frames_read, announced):
            return VideoFailed(index, short_end_sentence(path, frames_read, announced))
        if classified == 0:
            window = f"{opts.start:g} s to {'the end' if opts.end is None else f'{opts.end:g} s'}"
            return VideoFailed(index, f"{path} has no frame from {window} (it lasts {last_t + step:.1f} s).")
        note = None
        if not ended_by_time and announced and frames_read < announced - 1:
            note = f"decoded {frames_read} of the {announced} frames its container announces"
        # The last classified frame stands for `every` frames, as every other classified frame does.
        end_time = kept_t + opts.every * (step or 0.04)
        if opts.end is not None:
            end_time = min(end_time, opts.end)
        return VideoEnded(index, classified, end_time, frames_read, note)

    # -- the consumer's side ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Item]:
        """The items in order; preprocessed chunks are joined into batches of `batch_size` frames (fewer at
        the end of a video: a batch never spans two videos)."""
        if not self._started:
            self._started = True
            self._thread.start()
        pending: list[Batch] = []
        size = 0
        while True:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Future):
                chunk = item.result()
                pending.append(chunk)
                size += len(chunk.frames)
                while size >= self.options.batch_size:
                    joined = _join(pending)
                    yield _slice(joined, 0, self.options.batch_size)
                    rest = _slice(joined, self.options.batch_size, size)
                    pending, size = ([rest] if len(rest.frames) else []), len(rest.frames)
                continue
            if pending:
                yield _join(pending)
                pending, size = [], 0
            if item is None:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> VideoBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _join(chunks: list[Batch]) -> Batch:
    if len(chunks) == 1:
        return chunks[0]
    return Batch(
        chunks[0].index,
        np.concatenate([c.frames for c in chunks]),
        np.concatenate([c.times for c in chunks]),
        np.concatenate([c.x for c in chunks]),
    )


def _slice(batch: Batch, a: int, b: int) -> Batch:
    return Batch(batch.index, batch.frames[a:b], batch.times[a:b], batch.x[a:b])
