"""Drawing one frame: background, the person in body units, the gesture, then the camera.

`render_frame` is longer than 60 lines: the drawing steps of one frame, in the order they are painted.

`Canvas` maps body units (see poses.py) to pixels for one person, with that person's position, scale
and lean. Drawing is sub-pixel (OpenCV fixed point), so that small jitter really moves things.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import cv2
import numpy as np

from mgc_edge.data.synth.config import N_CLASSES, SynthError
from mgc_edge.data.synth.people import Colour, Person
from mgc_edge.data.synth.poses import Hand, clip_pose, neutral_pose

_SHIFT = 4  # OpenCV fixed-point bits
_ONE = 1 << _SHIFT


class Canvas:
    """Draws in body units on one frame: position, scale and lean of one person."""

    def __init__(self, img: np.ndarray, cx: float, sy: float, unit: float, lean_deg: float) -> None:
        self.img = img
        self.cx, self.sy, self.u = cx, sy, unit
        self.lean = lean_deg
        t = math.radians(lean_deg)
        self.cos, self.sin = math.cos(t), math.sin(t)
        self.pivot = 3.2  # the lean turns the body about the hips, below the frame

    def xy(self, x: float, y: float) -> tuple[float, float]:
        """Pixel coordinates (float) of a point in body units."""
        dy = y - self.pivot
        rx = x * self.cos - dy * self.sin
        ry = x * self.sin + dy * self.cos + self.pivot
        return self.cx + rx * self.u, self.sy + ry * self.u

    def pt(self, x: float, y: float) -> tuple[int, int]:
        px, py = self.xy(x, y)
        return round(px * _ONE), round(py * _ONE)

    def width(self, units: float, grow_px: int = 0) -> int:
        return max(1, round(units * self.u)) + grow_px

    def line(
        self, a: tuple[float, float], b: tuple[float, float], colour: Colour, units: float, grow: int = 0
    ) -> None:
        cv2.line(self.img, self.pt(*a), self.pt(*b), colour, self.width(units, grow), cv2.LINE_AA, _SHIFT)

    def ellipse(
        self, c: tuple[float, float], axes: tuple[float, float], angle: float, colour: Colour, grow: int = 0
    ) -> None:
        ax = (round((axes[0] * self.u + grow) * _ONE), round((axes[1] * self.u + grow) * _ONE))
        cv2.ellipse(self.img, self.pt(*c), ax, angle + self.lean, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)

    def poly(self, points: list[tuple[float, float]], colour: Colour, outline: Colour | None = None) -> None:
        pts = np.array([self.pt(x, y) for x, y in points], dtype=np.int32)
        cv2.fillPoly(self.img, [pts], colour, cv2.LINE_AA, _SHIFT)
        if outline is not None:
            cv2.polylines(self.img, [pts], True, outline, 1, cv2.LINE_AA, _SHIFT)


def _darker(colour: Colour, f: float = 0.6) -> Colour:
    return (int(colour[0] * f), int(colour[1] * f), int(colour[2] * f))


def _unit_vec(angle_deg: float) -> tuple[float, float]:
    a = math.radians(angle_deg)
    return math.sin(a), -math.cos(a)


def _draw_hand(cv: Canvas, hand: Hand, r: float, colour: Colour, grow: int) -> None:
    """One hand of radius `r` units; drawn twice, dark and grown first, so that it has an outline."""
    dx, dy = _unit_vec(hand.angle)
    px, py = -dy, dx  # across the hand
    c = (hand.x, hand.y)

    def at(along: float, across: float) -> tuple[float, float]:
        return hand.x + dx * along * r + px * across * r, hand.y + dy * along * r + py * across * r

    if hand.kind == "open":
        cv.ellipse(c, (0.5 * r, 0.62 * r), hand.angle, colour, grow)
        for k, length in ((-1.5, 0.6), (-0.5, 0.78), (0.5, 0.75), (1.5, 0.6)):
            fx, fy = _unit_vec(hand.angle + k * 7)
            base = at(0.4, k * 0.2)
            tip = (base[0] + fx * length * r, base[1] + fy * length * r)
            cv.line(base, tip, colour, 0.19 * r, grow)
        tx, ty = _unit_vec(hand.angle - 60)
        base = at(0.0, -0.4)
        cv.line(base, (base[0] + tx * 0.55 * r, base[1] + ty * 0.55 * r), colour, 0.22 * r, grow)
    else:
        cv.ellipse(c, (0.55 * r, 0.55 * r), 0.0, colour, grow)
        cv.line(at(-0.1, -0.45), at(0.25, -0.1), colour, 0.2 * r, grow)
        if hand.kind == "point":
            cv.line(at(0.35, 0.1), at(1.3, 0.1), colour, 0.19 * r, grow)


def _elbow(shoulder: tuple[float, float], wrist: tuple[float, float], side: int) -> tuple[float, float]:
    """Where the elbow goes for an arm of fixed segment lengths: bent down and outwards, as people sit."""
    l1, l2 = 1.25, 1.15
    vx, vy = wrist[0] - shoulder[0], wrist[1] - shoulder[1]
    d = math.hypot(vx, vy)
    if d >= l1 + l2 - 1e-6 or d < 1e-6:
        return shoulder[0] + vx * l1 / max(d, 1e-6), shoulder[1] + vy * l1 / max(d, 1e-6)
    along = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
    h = math.sqrt(max(l1 * l1 - along * along, 0.0))
    mx, my = shoulder[0] + vx * along / d, shoulder[1] + vy * along / d
    nx, ny = -vy / d, vx / d
    candidates = [(mx + nx * h, my + ny * h), (mx - nx * h, my - ny * h)]
    return max(candidates, key=lambda e: (e[0] - shoulder[0]) * side * 0.6 + (e[1] - shoulder[1]) * 0.8)


def _draw_arm(cv: Canvas, person: Person, hand: Hand, side: int, shoulder_raise: float, r: float) -> None:
    shoulder = (side * 1.05, 0.35 - shoulder_raise)
    dx, dy = _unit_vec(hand.angle)
    wrist = (hand.x - dx * 0.55 * r, hand.y - dy * 0.55 * r) if hand.kind != "hidden" else (hand.x, hand.y)
    elbow = hand.elbow if hand.elbow is not None else _elbow(shoulder, wrist, side)
    sleeve = person.shirt
    fore = person.skin if person.short_sleeves else person.shirt
    cv.line(shoulder, elbow, _darker(sleeve), 0.38, person.outline)
    cv.line(elbow, wrist, _darker(fore), 0.3, person.outline)
    cv.line(shoulder, elbow, sleeve, 0.38)
    cv.line(elbow, wrist, fore, 0.3)
    if hand.holds:
        # a phone / pen: the object itself is part of the cue, its colour is random per clip
        ox, oy = _unit_vec(hand.angle + 70)
        qx, qy = -oy, ox
        a, b = 0.75 * r * 1.4, 0.22 * r * 1.4
        corners = [(hand.x + ox * s * a + qx * t * b, hand.y + oy * s * a + qy * t * b)
                   for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1))]  # fmt: skip
        cv.poly(corners, person.object_colour, _darker(person.object_colour))
    if hand.kind != "hidden":
        _draw_hand(cv, hand, r, _darker(person.skin, 0.55), max(1, person.outline // 2))
        _draw_hand(cv, hand, r, person.skin, 0)


def _background(person: Person, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    corners = np.array(person.bg_corners, dtype=np.uint8).reshape(2, 2, 3)
    img = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)  # a 2x2 image stretched is a gradient
    for kind, x0, y0, x1, y1, colour in person.bg_shapes:
        p0 = (round(x0 * w), round(y0 * h))
        p1 = (round(x1 * w), round(y1 * h))
        if kind == 0:
            cv2.rectangle(img, p0, p1, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            radius = max(2, round(abs(x1 - x0) * w * 0.5))
            cv2.circle(img, p0, radius, colour, -1, cv2.LINE_AA)
        else:
            cv2.line(img, p0, p1, colour, max(1, round(h * 0.02)), cv2.LINE_AA)
    return img


_NOISE_PAD = 32


@functools.lru_cache(maxsize=4)
def _noise_bank(h: int, w: int) -> np.ndarray:
    """Unit Gaussian noise a little larger than a frame; each frame takes a random window of it.

    Drawing 170k fresh normals per frame was most of the render time; a shifted window of a fixed field
    is as good for a sensor-noise look and just as deterministic.
    """
    bank = np.random.default_rng(0x5EED).standard_normal(
        (h + _NOISE_PAD, w + _NOISE_PAD, 3), dtype=np.float32
    )
    bank.flags.writeable = False
    return bank


def render_frame(
    label_index: int, person: Person, rng: np.random.Generator, size: tuple[int, int], cue: bool = True
) -> np.ndarray:
    """One BGR uint8 frame of `person` making gesture `label_index` (0-based), with fresh jitter from `rng`.

    `cue=False` draws the same person, scene and camera with the hands at rest instead of the gesture.
    """
    if not 0 <= label_index < N_CLASSES:
        raise SynthError(f"label_index must be in 0..{N_CLASSES - 1}, got {label_index}.")
    h, w = size
    pose = clip_pose(label_index, person) if cue else neutral_pose(person)
    img = _background(person, size)

    # Frame-to-frame: the person sways a little; hands move a little more.
    sway = [float(v) for v in rng.normal(0.0, 0.008, 2)]
    lean = (person.lean if pose.lean is None else pose.lean) + float(rng.normal(0.0, 0.6))
    unit = person.unit * h
    cv = Canvas(img, (person.cx + sway[0]) * w, (person.sy + sway[1]) * h, unit, lean)

    def jitter(hand: Hand) -> Hand:
        jx, jy = (float(v) for v in rng.normal(0.0, pose.jitter, 2))
        return replace(hand, x=hand.x + jx, y=hand.y + jy, angle=hand.angle + float(rng.normal(0.0, 4.0)))

    hands = ((-1, jitter(pose.left), pose.raise_left), (+1, jitter(pose.right), pose.raise_right))
    r = 0.42 * person.hand_scale  # a fist is then ~9% of the frame height, still ~6 px at 64x64
    hx, hy = pose.head_dx, -1.05 + pose.head_dy

    if person.chair is not None:
        cv.poly([(-1.55, -0.5), (1.55, -0.5), (1.7, 4.0), (-1.7, 4.0)], person.chair)
    if person.hair_style == 1:  # long hair falls behind the shoulders
        cv.poly(
            [(hx - 0.5, hy - 0.2), (hx + 0.5, hy - 0.2), (hx + 0.6, hy + 0.95), (hx - 0.6, hy + 0.95)],
            person.hair,
        )
    for side, hand, lift in hands:
        if hand.behind:
            _draw_arm(cv, person, hand, side, lift, r)

    # neck, torso with a collar
    cv.poly([(hx - 0.17, hy + 0.3), (hx + 0.17, hy + 0.3), (0.19, 0.2), (-0.19, 0.2)], person.skin)
    rl, rr = pose.raise_left, pose.raise_right
    torso = [(-0.22, -0.02), (-0.9, 0.05 - rl), (-1.2, 0.35 - rl), (-1.3, 3.8),
             (1.3, 3.8), (1.2, 0.35 - rr), (0.9, 0.05 - rr), (0.22, -0.02)]  # fmt: skip
    cv.poly(torso, person.shirt, _darker(person.shirt))
    collar = _darker(person.shirt, 0.7)
    cv.line((-0.22, -0.02), (0.0, 0.45), collar, 0.06)
    cv.line((0.22, -0.02), (0.0, 0.45), collar, 0.06)

    # head: hair, ears, face, then the anonymising mask, then a hat
    if person.hair_style != 2:
        big = 1.15 if person.hair_style == 3 else 1.0
        cv.ellipse((hx, hy - 0.06), (0.47 * big, 0.6 * big), 0.0, person.hair)
    for s in (-1, 1):
        cv.ellipse((hx + s * 0.42, hy + 0.03), (0.08, 0.14), 0.0, _darker(person.skin, 0.85))
    cv.ellipse((hx, hy + 0.04), (0.41, 0.53), 0.0, person.skin)
    mask_top = hy - 0.38 + (0.08 if pose.head_dy < -0.1 else 0.0)  # head up: less face, more chin
    cv.poly(
        [(hx - 0.36, mask_top), (hx + 0.36, mask_top), (hx + 0.36, hy + 0.42), (hx - 0.36, hy + 0.42)],
        person.mask,
    )
    if person.hat is not None or pose.hat:
        hat = person.hat if person.hat is not None else person.object_colour
        cv.poly(
            [(hx - 0.4, hy - 0.35), (hx - 0.36, hy - 0.85), (hx + 0.36, hy - 0.85), (hx + 0.4, hy - 0.35)],
            hat,
        )
        cv.line((hx - 0.62, hy - 0.36), (hx + 0.62, hy - 0.36), _darker(hat, 0.8), 0.1)

    for side, hand, lift in hands:
        if not hand.behind:
            _draw_arm(cv, person, hand, side, lift, r)

    # camera: focus, lighting, colour cast, sensor noise
    sigma = person.blur * h / 180.0
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    oy, ox = rng.integers(0, _NOISE_PAD, 2)
    out = cv2.multiply(img, (*person.cast, 0.0), dtype=cv2.CV_32F)
    out += _noise_bank(h, w)[oy : oy + h, ox : ox + w] * np.float32(person.noise)
    out += np.float32(person.bias)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)
