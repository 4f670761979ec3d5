"""Video files as every reader opens them: `open_video` (the decoder-thread policy), the container's rate,
count and size (`probe`), a decoded frame's time (`frame_time`) and the short-end rule (`cut_short`): a file
that stops well before the frames its container announces was damaged or truncated. Used by the file
sources, `annotate`'s decoder and the core measurement alike. numpy + OpenCV only."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from mgc_edge.runtime import host
from mgc_edge.runtime.sources.base import Capture

# A video or stream of known length that stops before this share of its announced frames was cut short
# (damaged, truncated); above it, container frame counts are often estimates (duration x fps), not an error.
COMPLETE_SHARE = 0.9


# A small video decodes faster in one FFmpeg thread on a machine of few cores, where its frame threads cost more
# in hand-overs than they save and take the cores that preprocessing wants; with many cores they win. Measured
# by benchmarks/bench_decode.py (one thread against FFmpeg's default; figures in benchmarks/RESULTS.md): on two
# cores one thread wins up to 640x360 within annotate's pipeline; on 16 cores FFmpeg's default wins. Between
# them it is unmeasured: FFmpeg's default.
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


@dataclass(frozen=True)
class VideoInfo:
    """What a container says about a video before decoding it."""

    fps: float  # 0 when unknown
    frame_count: int  # 0 when unknown
    size: tuple[int, int]  # (H, W)

    def expected(self, every: int = 1, start: float = 0.0, end: float | None = None) -> int:
        """Frames that will be classified (every `every`th from `start` to `end` seconds), as far as the
        container's counts tell (0 when unknown)."""
        if self.frame_count <= 0:
            return 0
        first = math.ceil(start * self.fps) if self.fps > 0 else 0
        last = self.frame_count
        if end is not None and self.fps > 0:
            last = min(last, math.ceil(end * self.fps))
        first = min(first, last)
        # indices in [first, last) that are multiples of `every`
        return max(0, (last - 1) // every - (first - 1) // every) if last > first else 0


def probe(path: Path, opener: Callable[[str], Capture] | None = None) -> VideoInfo | None:
    """Frame rate, frame count and size from the container, without decoding; None if it cannot open."""
    cap = (opener or cv2.VideoCapture)(str(path))  # read, never decoded: no decoder set-up to choose
    try:
        if not cap.isOpened():
            return None
        return container_info(cap)
    finally:
        cap.release()


def container_info(cap: Capture) -> VideoInfo:
    h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
    count = int(count) if math.isfinite(count) and count > 0 else 0
    return VideoInfo(file_fps(cap), count, (h, w))


def frame_time(cap: Capture, frame: int, step: float, last_t: float) -> float:
    """The decoded frame's presentation time in seconds; index / fps where the container has none, and
    never earlier than the previous frame's."""
    ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    t = ms / 1000.0 if ms is not None and math.isfinite(ms) and ms >= 0 else -1.0
    if frame > 0 and t <= last_t:
        t = last_t + step if step > 0 else -1.0
    if t < 0:
        t = frame * step
    return t


def cut_short(frames_read: int, announced: int) -> bool:
    """Whether a video that stopped after `frames_read` frames was cut short of the `announced` ones (0:
    unknown, never short); above COMPLETE_SHARE, container counts are often estimates, not an error."""
    return bool(announced) and frames_read < COMPLETE_SHARE * announced


def short_end_sentence(path: object, frames_read: int, announced: int) -> str:
    """The one sentence for a video cut short, as `webcam` and `annotate` both say it."""
    return f"{path} stopped decoding at frame {frames_read} of {announced} (damaged or truncated)."


def quiet_opencv() -> None:
    """OpenCV's and FFmpeg's own log lines (every camera backend probed, each stream hiccup) would bury
    our one-sentence messages, which say what failed; OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL bring them
    back for debugging."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    if "OPENCV_LOG_LEVEL" not in os.environ:
        # cv2.utils.logging from OpenCV 4.14 on, cv2.setLogLevel before it; 0 is LOG_LEVEL_SILENT in both.
        getattr(cv2.utils, "logging", cv2).setLogLevel(0)
