"""A timeline image of a video's segments, as a researcher compares them: the true segments (where a truth
is given) above the predicted ones and the per-frame smoothed labels they were made from, one colour per
class, a time axis and a legend. A pure function of its inputs; numpy + OpenCV only (no matplotlib on an
edge box)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mgc_edge.runtime.overlay import ascii_text
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.recorded.outputs.annotation import VideoAnnotation
from mgc_edge.runtime.recorded.segments import Segment

SUFFIX = ".timeline.png"
REQUIRED = False  # drawn again for a kept video where missing or drawn from other segments or truth
FONT = cv2.FONT_HERSHEY_SIMPLEX
WIDTH = 1600
_LEFT, _RIGHT, _TOP = 120, 30, 48
_INK, _GRID, _PAPER, _EMPTY = (40, 40, 40), (215, 215, 215), (255, 255, 255), (245, 245, 245)
_NONE = ""  # the legend's entry for the empty (grey) parts of a row
_NONE_TEXT = "none: no truth, or background"
# Twenty distinct colours (Tableau 20, as BGR), given to the classes present in one timeline in label order:
# up to twenty classes in one image never share a colour (iMiGUE has 32; a video shows fewer).
PALETTE = [
    (180, 119, 31), (232, 199, 174), (14, 127, 255), (120, 187, 255), (44, 160, 44), (138, 223, 152),
    (40, 39, 214), (150, 152, 255), (189, 103, 148), (213, 176, 197), (75, 86, 140), (148, 156, 196),
    (194, 119, 227), (210, 182, 247), (127, 127, 127), (199, 199, 199), (34, 189, 188), (141, 219, 219),
    (207, 190, 23), (229, 218, 158),
]  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One band of the timeline: a title and its segments; `thin` rows are drawn lower and unlabelled."""

    title: str
    segments: Sequence[Segment]
    thin: bool = False


def colour_of(label: str, present: Sequence[str]) -> tuple[int, int, int]:
    """The class's colour: by its rank among the classes the timeline shows."""
    return PALETTE[present.index(label) % len(PALETTE)]


def _tick_step(seconds: float, width: int) -> float:
    """A round tick spacing giving ticks at least about 90 pixels apart."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step / max(seconds, 1e-9) * width >= 90:
            return step
    return 7200.0


def _clock(t: float, end: float) -> str:
    """A tick's label, in one format along the whole axis: seconds (`5s`) when it ends before a minute,
    else m:ss (h:mm:ss past an hour)."""
    t = round(t, 1)
    if end < 60:
        return f"{t:g}s"
    if end >= 3600:
        return f"{int(t // 3600)}:{int(t % 3600 // 60):02d}:{int(t % 60):02d}"
    return f"{int(t // 60)}:{int(t % 60):02d}"


def draw_timeline(
    rows: Sequence[Row],
    span: tuple[float, float],
    label_order: Sequence[str],
    names: Mapping[str, str],
    title: str = "",
    width: int = WIDTH,
) -> np.ndarray:
    """The timeline as a BGR uint8 image `width` pixels wide; the plot area spans `span` (start, end)
    seconds, `names` maps label ids to what the legend and the bars say."""
    t0, t1 = span
    duration = max(t1 - t0, 1e-9)
    plot_w = width - _LEFT - _RIGHT
    heights = [26 if r.thin else 46 for r in rows]
    present = sorted(
        {s.label for r in rows for s in r.segments},
        key=lambda x: (label_order.index(x) if x in label_order else len(label_order), x),
    )
    legend = _legend_layout([*present, _NONE], {**names, _NONE: _NONE_TEXT}, width)
    axis_y = _TOP + sum(heights) + 12 * len(rows)
    height = axis_y + 40 + legend[1] + 16
    img = np.full((height, width, 3), _PAPER, np.uint8)
    if title:
        cv2.putText(img, ascii_text(title, 140), (_LEFT, 30), FONT, 0.6, _INK, 1, cv2.LINE_AA)

    def x_of(t: float) -> int:
        return _LEFT + round(min(max(t - t0, 0.0), duration) / duration * plot_w)

    step = _tick_step(duration, plot_w)
    t = math.ceil(t0 / step) * step
    while t <= t1 + 1e-9:
        x = x_of(t)
        cv2.line(img, (x, _TOP - 4), (x, axis_y), _GRID, 1)
        cv2.putText(img, _clock(t, t1), (x - 14, axis_y + 20), FONT, 0.45, _INK, 1, cv2.LINE_AA)
        t += step
    y = _TOP
    for row, h in zip(rows, heights):
        cv2.putText(img, ascii_text(row.title, 14), (10, y + h // 2 + 5), FONT, 0.5, _INK, 1, cv2.LINE_AA)
        cv2.rectangle(img, (_LEFT, y), (_LEFT + plot_w, y + h), _EMPTY, -1)
        for s in row.segments:
            x0, x1 = x_of(s.start_time), max(x_of(s.end_time), x_of(s.start_time) + 1)
            colour = colour_of(s.label, present)
            cv2.rectangle(img, (x0, y), (x1 - 1, y + h), colour, -1)
            if not row.thin:
                _label_in_box(img, names.get(s.label, s.label), x0, x1, y, h, colour)
        cv2.rectangle(img, (_LEFT, y), (_LEFT + plot_w, y + h), _GRID, 1)
        y += h + 12
    cv2.putText(img, "time", (10, axis_y + 20), FONT, 0.45, _INK, 1, cv2.LINE_AA)
    _draw_legend(img, legend[0], axis_y + 40, present)
    return img


def _label_in_box(
    img: np.ndarray, text: str, x0: int, x1: int, y: int, h: int, colour: tuple[int, ...]
) -> None:
    """The class name inside its bar where it fits (shortened to fit, never spilling over)."""
    room = x1 - x0 - 8
    text = ascii_text(text, 40)
    while text and cv2.getTextSize(text, FONT, 0.42, 1)[0][0] > room:
        text = text[:-3] + ".." if len(text) > 4 else ""
    if text:
        ink = _INK if sum(colour) > 420 else _PAPER  # dark text on light colours
        cv2.putText(img, text, (x0 + 4, y + h // 2 + 5), FONT, 0.42, ink, 1, cv2.LINE_AA)


def _legend_layout(labels: Sequence[str], names: Mapping[str, str], width: int) -> tuple[list, int]:
    """Legend entries placed left to right, wrapping: ([(label, text, x, line)], height in pixels)."""
    placed, x, line = [], _LEFT, 0
    for label in labels:
        name = names.get(label, label)
        text = ascii_text(name if label == _NONE or name == label else f"{label}: {name}", 40)
        w = 22 + cv2.getTextSize(text, FONT, 0.42, 1)[0][0] + 18
        if x + w > width - _RIGHT and x > _LEFT:
            x, line = _LEFT, line + 1
        placed.append((label, text, x, line))
        x += w
    return placed, (line + 1) * 22 if labels else 0


def _draw_legend(img: np.ndarray, placed: list, top: int, present: Sequence[str]) -> None:
    for label, text, x, line in placed:
        y = top + line * 22
        colour = _EMPTY if label == _NONE else colour_of(label, present)
        cv2.rectangle(img, (x, y), (x + 14, y + 14), colour, -1)
        cv2.rectangle(img, (x, y), (x + 14, y + 14), _GRID, 1)
        cv2.putText(img, text, (x + 20, y + 12), FONT, 0.42, _INK, 1, cv2.LINE_AA)


def write_png(path: str, image: np.ndarray) -> None:
    """Encode as PNG and write atomically."""
    from mgc_edge.fileio import atomic_path

    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"OpenCV could not encode {path} as PNG.")
    with atomic_path(path) as tmp:
        buf.tofile(str(tmp))


def wanted(options: AnnotateOptions) -> bool:
    return options.plot


def write(path: Path, annotation: VideoAnnotation) -> None:
    """True segments (where known) over the predicted ones and the per-frame labels."""
    a = annotation
    rows = [Row("truth", a.truth)] if a.truth is not None else []
    rows += [Row("predicted", a.segments), Row("per frame", a.per_frame, thin=True)]
    image = draw_timeline(rows, a.span, a.ids, dict(zip(a.ids, a.names)), title=a.video.name)
    write_png(str(path), image)
