"""Draws the live view onto a frame: top-k classes with probability bars, the smoothed label, capture FPS,
inference FPS and end-to-end latency, and the "stale" / "reconnecting" states. Pure functions of their
inputs (the frame is never modified in place); numpy + OpenCV only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_HEIGHT = 360  # smaller frames are enlarged first so that the text stays readable
NAME_CHARS = 30
_WHITE, _GREY, _GREEN, _BAR = (255, 255, 255), (190, 190, 190), (90, 230, 90), (60, 170, 250)
_STATE_COLOURS = {"stale": (0, 165, 255), "reconnecting": (40, 40, 230), "ended": (160, 160, 160)}


@dataclass(frozen=True)
class OverlayView:
    """What the overlay shows for one frame; names are human names (or label ids where none)."""

    top: Sequence[tuple[str, float]]  # (name, probability), best first
    smoothed: tuple[str, float] | None = None
    capture_fps: float = 0.0
    inference_fps: float = 0.0
    latency_ms: float = 0.0
    state: str = "live"
    message: str = ""


def ascii_text(text: str, limit: int = NAME_CHARS) -> str:
    """OpenCV's Hershey fonts draw ASCII only; long names are cut with an ellipsis."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return text if len(text) <= limit else text[: limit - 2] + ".."


def enlarge(image_bgr: np.ndarray, min_height: int = MIN_HEIGHT) -> np.ndarray:
    """A copy of the frame, enlarged to at least `min_height` rows (aspect kept)."""
    h, w = image_bgr.shape[:2]
    if h >= min_height:
        return image_bgr.copy()
    scale = min_height / h
    return cv2.resize(image_bgr, (round(w * scale), min_height), interpolation=cv2.INTER_LINEAR)


def _metrics(height: int) -> tuple[float, int, int]:
    """Font scale, line thickness and row height for a frame `height` rows high."""
    scale = max(0.4, height / 900)
    return scale, max(1, round(scale * 2)), round(40 * scale)


def _shade(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, keep: float = 0.35) -> None:
    """Darken a rectangle in place, so that text on it reads on any background."""
    roi = image[max(0, y0) : y1, max(0, x0) : x1]
    roi[:] = (roi * keep).astype(np.uint8)


def draw_state(image_bgr: np.ndarray, state: str, message: str = "") -> np.ndarray:
    """The frame (a copy) with a banner for a non-live state; a live state draws nothing."""
    out = image_bgr.copy()
    if state == "live":
        return out
    h, w = out.shape[:2]
    scale, thick, row = _metrics(h)
    colour = _STATE_COLOURS.get(state, (40, 40, 230))
    y0 = h - round(row * 1.6)
    _shade(out, 0, y0, w, h, 0.25)
    label = state.upper() + (f": {ascii_text(message, 60)}" if message else "")
    cv2.putText(out, label, (round(row * 0.3), h - round(row * 0.5)), FONT, scale, colour, thick, cv2.LINE_AA)
    return out


def annotate(image_bgr: np.ndarray, view: OverlayView, min_height: int = MIN_HEIGHT) -> np.ndarray:
    """A new frame (enlarged to `min_height` rows where smaller) with the live view drawn on its top left:
    the smoothed label, one bar per top-k class, and the capture / inference rates and latency."""
    out = enlarge(image_bgr, min_height)
    h, w = out.shape[:2]
    scale, thick, row = _metrics(h)
    pad = round(row * 0.3)
    bar_w, bar_h = round(row * 3), round(row * 0.6)
    title = f"{ascii_text(view.smoothed[0], 24)} {view.smoothed[1]:.0%}" if view.smoothed else ""
    rows = [f"{prob:4.0%}  {ascii_text(name)}" for name, prob in view.top]
    figures = (
        f"capture {view.capture_fps:.1f} fps  inference {view.inference_fps:.1f} fps  "
        f"latency {view.latency_ms:.0f} ms"
    )
    widths = [cv2.getTextSize(title, FONT, scale * 1.1, thick + 1)[0][0]]
    widths += [pad + bar_w + cv2.getTextSize(r, FONT, scale * 0.8, thick)[0][0] for r in rows]
    widths += [cv2.getTextSize(figures, FONT, scale * 0.7, thick)[0][0]]
    _shade(out, 0, 0, min(w, max(widths) + 2 * pad), pad * 2 + row * (len(rows) + 2))
    y = pad + round(row * 0.75)
    if title:
        cv2.putText(out, title, (pad, y), FONT, scale * 1.1, _GREEN, thick + 1, cv2.LINE_AA)
    y += row
    for (_, prob), text in zip(view.top, rows):
        top_y = y - bar_h
        cv2.rectangle(out, (pad, top_y), (pad + bar_w, top_y + bar_h), _GREY, 1)
        filled = round(bar_w * min(max(prob, 0.0), 1.0))
        if filled:
            cv2.rectangle(out, (pad, top_y), (pad + filled, top_y + bar_h), _BAR, -1)
        cv2.putText(out, text, (pad * 2 + bar_w, y), FONT, scale * 0.8, _WHITE, thick, cv2.LINE_AA)
        y += row
    cv2.putText(out, figures, (pad, y), FONT, scale * 0.7, _GREY, thick, cv2.LINE_AA)
    if view.state != "live":
        out = draw_state(out, view.state, view.message)
    return out
