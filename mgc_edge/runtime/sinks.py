"""Where the live loop's results go: a window, an annotated video, a JSONL file (and, through the same
protocol, anything else, such as a web view). numpy + OpenCV only.

Every sink gets each classified frame with its event (the JSONL object), and every change of the
source's state. A sink that wants the loop to stop (a window's q / Esc) raises StopRequested. Files are
written under a temporary name and moved into place by `close()`, so a crash never leaves half a file
where a whole one is expected, and an existing file is never replaced without `force`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.fileio import temp_path, unwritable
from mgc_edge.runtime.overlay import draw_state

log = logging.getLogger(__name__)
Notify = Callable[[str], None]
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc
# H.264 ('avc1') plays in every browser; OpenCV's pip wheels usually lack an encoder for it, then mp4v.
VIDEO_CODECS = ("avc1", "mp4v")
# Made once: json.dumps(event, separators=...) builds an encoder at every call, which the loop pays per frame.
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


@runtime_checkable
class Sink(Protocol):
    """An output of the live loop.

    `frame()` is called for each classified frame with the annotated BGR image and the event: the JSONL
    object (source, frame, t, top, smoothed, latency_ms) plus "state", "fps" {"capture", "inference"} and
    "batch". `state()` is called when a source's state changes: {"state": "live" | "stale" | "reconnecting" |
    "failed" | "ended", "message": str, "t": float, "source": {"index", "name"}}, and once at the end of the
    run without "source". `close()` finishes the output. A sink may define `wants_image = False` when it
    ignores the image (the loop then skips drawing for it; a property is asked again before every batch), and
    may raise StopRequested from `frame()` or `state()` to end the loop cleanly.
    """

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None: ...

    def state(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class StopRequested(Exception):
    """Raised by a sink to end the loop cleanly (the user pressed q or Esc)."""


class OutputExistsError(UserError):
    """An output file exists and `--force` was not given, or it cannot be written there; one sentence."""


class DisplayError(UserError):
    """`--display on` where no window can open; the message is one sentence."""


def refuse_existing(path: str | Path, force: bool, option: str = "output") -> Path:
    """`path` as a Path, after refusing an existing file unless `force` (a folder is always refused) and a
    place where no file can be written (a read-only disk, no permission)."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{option} {path} is a folder; give a file name.")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to replace it.")
    problem = unwritable(path.parent)
    if problem is not None:
        raise OutputExistsError(f"{option} {path} cannot be written ({problem}).")
    return path


def wants_image(sink: object) -> bool:
    return bool(getattr(sink, "wants_image", True))


def display_problem() -> str | None:
    """Why no window can open here (a clause), or None when one probably can. A failing imshow is the
    last check, made by WindowSink itself."""
    gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
    if gui and gui[0].split(":", 1)[1].strip().upper() in ("NONE", "NO", ""):
        return "this OpenCV build has no GUI (opencv-python-headless)"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "there is no display (DISPLAY is not set)"
    return None


class WindowSink:
    """An OpenCV window showing the annotated frames; q or Esc ends the loop. If the window cannot
    open, it says so once and turns into a no-op (headless)."""

    wants_image = True

    def __init__(self, title: str = "mgc-edge", notify: Notify = log.warning) -> None:
        self.title = title
        self.notify = notify
        self.failed = False
        self._last: np.ndarray | None = None

    def _show(self, image: np.ndarray) -> None:
        if self.failed:
            return
        try:
            cv2.imshow(self.title, image)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            self.failed = True
            reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "imshow failed"
            self.notify(f"The window could not open ({reason}); running headless.")
            return
        if key in QUIT_KEYS:
            raise StopRequested

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        self._last = annotated_bgr
        self._show(annotated_bgr)

    def state(self, event: dict[str, Any]) -> None:
        if self._last is not None:
            self._show(draw_state(self._last, event["state"], event.get("message", "")))

    def idle(self) -> None:
        """Keep the window responsive (and q / Esc working) while no frame comes."""
        if self._last is not None and not self.failed:
            with contextlib.suppress(cv2.error):
                if cv2.waitKey(1) & 0xFF in QUIT_KEYS:
                    raise StopRequested

    def close(self) -> None:
        if self._last is not None and not self.failed:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)


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


class VideoSink:
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


class JsonlSink:
    """One JSON object per classified frame (the loop's event), one per line, flushed as it goes."""

    wants_image = False

    def __init__(self, path: str | Path, force: bool = False) -> None:
        self.path = refuse_existing(path, force, "--jsonl")
        self.lines = 0
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(temp_path(self.path))
        self._file = self._stack.enter_context(open(self._tmp, "w", encoding="utf-8"))

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        self._file.write(_COMPACT(event) + "\n")
        self._file.flush()
        self.lines += 1

    def state(self, event: dict[str, Any]) -> None:
        """Lines are frames only; states show in each frame's "state" key."""

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.close()
            os.replace(self._tmp, self.path)
        finally:
            self._stack.close()


class PerSource:
    """One sink per source (a window, an mp4 file): each frame and state goes to the sink of its event's
    source; the run's own end (an event without a source) goes to all of them."""

    def __init__(self, sinks: Sequence[Any]) -> None:
        self.sinks = list(sinks)
        self.wants_image = any(wants_image(s) for s in self.sinks)

    @property
    def outputs(self) -> list[Path]:
        """The files the sinks write, in source order."""
        return [s.path for s in self.sinks if getattr(s, "path", None) is not None]

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        self.sinks[event["source"]["index"]].frame(annotated_bgr, event)

    def state(self, event: dict[str, Any]) -> None:
        source = event.get("source")
        for sink in [self.sinks[source["index"]]] if source else self.sinks:
            sink.state(event)

    def idle(self) -> None:
        for sink in self.sinks:
            idle = getattr(sink, "idle", None)
            if idle is not None:
                idle()

    def close(self) -> None:
        """Close every sink, even when one fails; then report the first failure."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
