"""An OpenCV window per source (`--display`), headless where none can open. numpy + OpenCV only."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import cv2
import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.runtime.overlay import draw_state
from mgc_edge.runtime.sinks.base import (
    BaseSink,
    Notify,
    SinkContext,
    SinkOptions,
    StopRequested,
    log,
    per_source,
)

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc


class DisplayError(UserError):
    """`--display on` where no window can open; the message is one sentence."""


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


class WindowSink(BaseSink):
    """An OpenCV window showing the annotated frames; q or Esc ends the loop. If the window cannot
    open, it says so once and turns into a no-op (headless)."""

    wants_image = True
    shows = True

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


def check(options: SinkOptions, count: int) -> None:
    if options.display not in ("auto", "on", "off"):
        raise UserError(f"--display must be auto, on or off, got {options.display!r}.")


def build(context: SinkContext) -> BaseSink | None:
    """A window per source where one can open (`--display auto|on`); with `auto` headless and said where none
    can, with `on` an error."""
    if context.options.display == "off":
        return None
    problem = display_problem()
    if problem is not None:
        if context.options.display == "on":
            raise DisplayError(f"--display on needs a window, but {problem}; use --display off or auto.")
        context.notify(f"No window: {problem}; running headless.")
        return None
    titles = [f"mgc-edge: {context.model_name}"]
    if len(context.sources) > 1:
        titles = [f"mgc-edge: {context.model_name} [{i}] {s.name}" for i, s in enumerate(context.sources)]
    return per_source([WindowSink(title, notify=context.notify) for title in titles])
