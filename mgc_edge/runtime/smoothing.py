"""Temporal smoothing of per-frame class probabilities, defined in time; numpy only (imported when a
`Smoother` is made, so that the CLI's --help, which reads `SMOOTH_HELP` here, stays light).

A micro-gesture spans several frames, and a single-frame classifier flickers between neighbouring classes
from one frame to the next. Averaging the probabilities over the last fraction of a second keeps the label
steady while a gesture lasts and still follows a change soon after.

Smoothing is set in seconds and applied with each frame's own time, so classifying every Nth frame
(`--every`), another frame rate or dropped frames never change what it means. The default, `ema:0.1s`, is an
exponential moving average with a time constant of 0.1 s: a frame `dt` seconds after the last one weighs
`1 - exp(-dt / 0.1)`, 28 % at 30 fps (the 30 % per frame of the earlier `ema:0.3` default, where it was
tuned) and 49 % at 15 fps. One wrong frame among right ones cannot flip the label unless it is far more
confident than they are, and a real change of gesture takes over within about 0.1 s, short against a gesture
that lasts around a second. `window:0.5s` is the mean of the frames of the last half second; `off` turns
smoothing off. The earlier per-frame forms (`ema:0.3`, the newest frame's weight; `window:5` or `5`, frames)
are still accepted, read at `REFERENCE_FPS`, and say so once (`SmoothSpec.note`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mgc_edge.errors import UserError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_SMOOTH = "ema:0.1s"
# The frame rate at which an old per-frame form is read, and the step assumed between frames given no time.
REFERENCE_FPS = 30.0
SMOOTH_HELP = (
    "Temporal smoothing in seconds, the same whatever --every and the frame rate: ema:0.1s (exponential "
    "average, time constant 0.1 s), window:0.5s (mean over the last 0.5 s), or off. Old per-frame forms "
    "(ema:0.3, window:5) are read at 30 frames/s."
)
_EPS = 1e-6  # seconds: a frame exactly a window's length old has left it, whatever the rounding of its time


class SmoothingError(UserError):
    """A `--smooth` value that cannot be parsed; the message is one sentence."""


@dataclass(frozen=True)
class SmoothSpec:
    """`kind` is "ema" (`seconds` = time constant), "window" (`seconds` = length) or "off"; `note` says how
    an old per-frame form was read (not part of the value: the same smoothing compares equal)."""

    kind: str
    seconds: float = 0.0
    note: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        if self.kind == "off":
            return "off"
        return f"{self.kind}:{self.seconds:g}s"


def _seconds(value: str) -> float | None:
    """`0.1s` / `100ms` in seconds; None without a unit."""
    for unit, scale in (("ms", 1e-3), ("s", 1.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    return None


def _round(seconds: float) -> float:
    return float(f"{seconds:.3g}")


def parse_smooth(text: str) -> SmoothSpec:
    """`ema:Ts`, `window:Ts` (T in s or ms, > 0), `off` / `none`; the old per-frame `ema:A` (0 < A <= 1) and
    `window:N` / `mean:N` / `N` (N >= 1 frames) are converted at `REFERENCE_FPS`, with a note."""
    raw = str(text).strip().lower()
    bad = SmoothingError(
        f"--smooth must be ema:T or window:T with T seconds (0.1s, 100ms), or off, got {text!r} (the old "
        "per-frame ema:A with 0 < A <= 1 and window:N with N >= 1 frames are read too)."
    )
    if raw in ("off", "none"):
        return SmoothSpec("off")
    kind, sep, value = raw.partition(":")
    if not sep:
        kind, value = "window", raw
    if kind == "mean":
        kind = "window"
    if kind not in ("ema", "window"):
        raise bad
    try:
        seconds = _seconds(value)
        if seconds is not None:
            if not (seconds > 0 and math.isfinite(seconds)):
                raise bad
            return SmoothSpec(kind, seconds)
        if kind == "ema":
            alpha = float(value)
            if not 0 < alpha <= 1:
                raise bad
            tau = -1 / (REFERENCE_FPS * math.log1p(-alpha)) if alpha < 1 else 0.0
            spec = SmoothSpec("off") if alpha == 1 else SmoothSpec(kind, _round(tau))
        else:
            n = int(value)
            if n < 1:
                raise bad
            spec = SmoothSpec("off") if n == 1 else SmoothSpec(kind, _round(n / REFERENCE_FPS))
    except ValueError:
        raise bad from None
    note = (
        f"--smooth {text} is a per-frame form, read at {REFERENCE_FPS:g} frames/s as {spec}: smoothing is now set "
        "in seconds, so --every and the frame rate no longer change it."
    )
    return SmoothSpec(spec.kind, spec.seconds, note)


class Smoother:
    """Smooths a stream of probability vectors [C], each at its time in seconds; `reset()` forgets the past
    (after a reconnect). Without a time, frames are taken to be 1 / `REFERENCE_FPS` apart."""

    def __init__(self, spec: SmoothSpec | str = DEFAULT_SMOOTH) -> None:
        import numpy

        self._np = numpy
        self.spec = parse_smooth(spec) if isinstance(spec, str) else spec
        self._state: np.ndarray | None = None  # EMA: the average
        self._recent: deque[tuple[float, np.ndarray]] = deque()  # window: (time, probabilities)
        self._last_t: float | None = None

    def reset(self) -> None:
        self._state, self._last_t = None, None
        self._recent.clear()

    def update(self, probs: np.ndarray, t: float | None = None) -> np.ndarray:
        """Add one frame's probabilities at time `t` (seconds) and return the smoothed vector (a new array,
        sums to 1). A time earlier than the last one starts over (a file played again, another stream)."""
        np = self._np
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        kind = self.spec.kind
        if kind == "off":
            return p.copy()
        if t is None:
            t = 0.0 if self._last_t is None else self._last_t + 1 / REFERENCE_FPS
        shape = self._state.shape[-1] if self._state is not None else None
        if self._recent:
            shape = self._recent[-1][1].shape[0]
        if (shape is not None and shape != p.shape[0]) or (self._last_t is not None and t < self._last_t):
            self.reset()  # another model or label set, or time went back: nothing to average with
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t
        if kind == "ema":
            if self._state is None:
                self._state = p.copy()
            else:
                a = np.float32(-math.expm1(-dt / self.spec.seconds))
                self._state = a * p + (np.float32(1) - a) * self._state
            return self._state.copy()
        self._recent.append((t, p.copy()))
        while len(self._recent) > 1 and t - self._recent[0][0] >= self.spec.seconds - _EPS:
            self._recent.popleft()
        return np.mean([q for _, q in self._recent], axis=0).astype(np.float32)
