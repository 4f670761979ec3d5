"""Temporal smoothing of per-frame class probabilities; numpy only.

A micro-gesture spans several frames, and a single-frame classifier flickers between neighbouring classes
from one frame to the next. Averaging the probabilities over the last frames keeps the label steady while a
gesture lasts and still follows a change within a few frames.

The default, `ema:0.3`, is an exponential moving average in which the newest frame weighs 30 %: the
weight of older frames halves about every two frames (0.7 ** 2 = 0.49), so one wrong frame among right
ones cannot flip the label unless it is far more confident than they are, and a real change of gesture
takes over after about two frames (70-130 ms at 15-30 fps), short against a gesture that lasts around a
second. Unlike a window mean it needs no buffer, gives a label from the first frame on and has no hard
edge where an old frame suddenly drops out. `window:N` (the mean of the last N frames) is there for those
who want a fixed horizon; `1` or `off` turns smoothing off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgc_edge.errors import UserError

DEFAULT_SMOOTH = "ema:0.3"


class SmoothingError(UserError):
    """A `--smooth` value that cannot be parsed; the message is one sentence."""


@dataclass(frozen=True)
class SmoothSpec:
    """`kind` is "ema" (value = weight of the newest frame), "window" (value = frames) or "off"."""

    kind: str
    value: float = 1.0

    def __str__(self) -> str:
        if self.kind == "ema":
            return f"ema:{self.value:g}"
        if self.kind == "window":
            return f"window:{int(self.value)}"
        return "off"


def parse_smooth(text: str) -> SmoothSpec:
    """`ema:A` (0 < A <= 1), `window:N` (also `mean:N`, or a bare N), `1` / `off` / `none`."""
    raw = str(text).strip().lower()
    bad = SmoothingError(
        f"--smooth must be ema:A with 0 < A <= 1, window:N with N >= 1, or off, got {text!r}."
    )
    if raw in ("off", "none", "1", "ema:1", "window:1", "mean:1"):
        return SmoothSpec("off")
    kind, sep, value = raw.partition(":")
    if not sep:
        kind, value = "window", raw
    try:
        if kind == "ema":
            alpha = float(value)
            if not 0 < alpha <= 1:
                raise bad
            return SmoothSpec("ema", alpha)
        if kind in ("window", "mean"):
            n = int(value)
            if n < 1:
                raise bad
            return SmoothSpec("window", n)
    except ValueError:
        raise bad from None
    raise bad


class Smoother:
    """Smooths a stream of probability vectors [C]; `reset()` forgets the past (after a reconnect)."""

    def __init__(self, spec: SmoothSpec | str = DEFAULT_SMOOTH) -> None:
        self.spec = parse_smooth(spec) if isinstance(spec, str) else spec
        self._state: np.ndarray | None = None  # EMA: the average; window: the ring of the last N vectors
        self._count = 0

    def reset(self) -> None:
        self._state, self._count = None, 0

    def update(self, probs: np.ndarray) -> np.ndarray:
        """Add one frame's probabilities and return the smoothed vector (a new array, sums to 1)."""
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        kind = self.spec.kind
        if kind == "off":
            return p.copy()
        if self._state is not None and self._state.shape[-1] != p.shape[0]:
            self.reset()  # another model or label set: nothing to average with
        if kind == "ema":
            if self._state is None:
                self._state = p.copy()
            else:
                a = np.float32(self.spec.value)
                self._state = a * p + (np.float32(1) - a) * self._state
            return self._state.copy()
        n = int(self.spec.value)
        if self._state is None:
            self._state = np.zeros((n, p.shape[0]), np.float32)
        self._state[self._count % n] = p
        self._count += 1
        return self._state[: min(self._count, n)].mean(axis=0)
