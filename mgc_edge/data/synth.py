"""A synthetic, iMiGUE-shaped image dataset and demo video; numpy + OpenCV only, deterministic per seed.

The real iMiGUE frames are people seated at a press conference, faces masked, filmed from the front.
Here every clip is one cartoon "person" (own position, scale, colours, background, lighting, noise),
and the class is told only by where the hands are relative to that person's body and how they are
held (plus, for a few classes, the posture of head and shoulders). No colour or global statistic
depends on the class, so a model has to find the hands: learnable, but not trivial.

Geometry is written in *body units* (u, about the height of a head): the origin is the middle of the
shoulder line, x grows to the image right, y downwards. `_Canvas` maps units to pixels for one
person, with that person's position, scale and lean.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from mgc_edge.errors import UserError

# Frames per class folder 1..32 in the image-level iMiGUE export (DOMAIN.md).
IMIGUE_FRAME_COUNTS: tuple[int, ...] = (
    104, 1698, 183, 634, 266, 191, 306, 2060, 279, 12, 2345, 1403, 327, 347, 97, 163,
    1963, 464, 14, 4994, 686, 2290, 3588, 4025, 158, 3224, 622, 219, 4618, 57, 6671, 16506,
)  # fmt: skip
N_CLASSES = len(IMIGUE_FRAME_COUNTS)

README_MARKER = "mgc-edge synthetic iMiGUE-shaped dataset"
FIRST_CLIP_ID = 10000
JPEG_QUALITY = 90
# Frames per clip are 1 + geometric: p = 0.21 gives median 3 and, capped at 18, a mean of about 4.7,
# matching the real export (60,514 frames from 12,910 clips).
_CLIP_P = 0.21
_CLIP_CAP = 18
# What a previous make_dataset leaves in its folder; anything else there means it is not ours to delete.
_OUR_ENTRIES = frozenset({"README.txt", "training", "demo.mp4", "demo.avi", "demo.csv"})

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel drawing, so that small jitter really moves things
_ONE = 1 << _SHIFT


class SynthError(UserError):
    """Synthetic data cannot be made as asked; the message is one sentence."""


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; `scale` is the fraction of the real iMiGUE frame counts per class."""

    scale: float = 0.05
    min_clips: int = 3  # floor: every class gets at least this many clips
    size: tuple[int, int] = (180, 320)  # (H, W) of every frame, like the real export
    seed: int = 0
    video_seconds: float = 16.0
    fps: float = 15.0

    def __post_init__(self) -> None:
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise SynthError(f"scale must be a positive number, got {self.scale}.")
        if self.min_clips < 1:
            raise SynthError(f"min_clips must be at least 1, got {self.min_clips}.")
        if len(self.size) != 2 or min(self.size) < 32:
            raise SynthError(f"size must be (H, W) with both at least 32 pixels, got {self.size}.")
        if not (self.video_seconds > 0 and self.fps > 0):
            raise SynthError("video_seconds and fps must both be positive.")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))


@dataclass(frozen=True)
class SynthSummary:
    """Where make_dataset put things and how many frames and clips each class folder got."""

    root: Path
    image_dir: Path  # root/training, with class folders 1..32
    video: Path  # root/demo.mp4, or demo.avi where mp4 cannot be written
    video_labels: Path  # root/demo.csv: `frame,label`, frame counted from 0
    counts: dict[str, int]  # frames per class folder
    clips: dict[str, int]  # clips per class folder

    @property
    def n_images(self) -> int:
        """Frames in the whole image set."""
        return sum(self.counts.values())


Colour = tuple[int, int, int]  # BGR


@dataclass(frozen=True)
class Person:
    """One clip's appearance; positions are fractions of the frame so that one person fits any size."""

    cx: float  # shoulder-line centre x, fraction of W
    sy: float  # shoulder-line y, fraction of H
    unit: float  # body unit, fraction of H
    lean: float  # degrees, clockwise, about the hips
    skin: Colour
    shirt: Colour
    hair: Colour
    hair_style: int  # 0 short, 1 long, 2 bald, 3 big
    short_sleeves: bool
    hat: Colour | None  # class 3 always gets one; a few others do too
    mask: Colour  # the flat rectangle over the face, as in the real (anonymised) frames
    bg_corners: tuple[Colour, Colour, Colour, Colour]
    bg_shapes: tuple[tuple[int, float, float, float, float, Colour], ...]  # kind, x0, y0, x1, y1 (fractions)
    chair: Colour | None
    cast: tuple[float, float, float]  # per-channel lighting gain
    bias: float
    blur: float  # Gaussian sigma in pixels at 180 rows
    noise: float  # sensor noise sigma in grey levels
    side: int  # +1: one-handed gestures use the hand on the image right; -1: the image left
    hand_scale: float
    pose_seed: int  # clip-level choices of the gesture (offsets, which rest pose)
    object_colour: Colour


# --------------------------------------------------------------------------------------------------
# Poses: what each class looks like, in body units, for a gesture made with the image-right hand.


@dataclass(frozen=True)
class _Hand:
    x: float
    y: float
    kind: str  # "open", "fist", "point" or "hidden" (arm drawn, hand out of sight)
    angle: float  # direction the fingers point, degrees: 0 up, 90 image right, 180 down
    elbow: tuple[float, float] | None = None  # None: solved from arm lengths
    behind: bool = False  # the arm is drawn behind torso and head
    holds: bool = False  # holds an object (class 26)


@dataclass(frozen=True)
class _Pose:
    left: _Hand  # the arm from the image-left shoulder
    right: _Hand
    head_dx: float = 0.0
    head_dy: float = 0.0  # > 0 sinks the head into the shoulders
    raise_left: float = 0.0  # shoulder raise, units
    raise_right: float = 0.0
    lean: float | None = None  # overrides the person's lean (classes 20, 21)
    hat: bool = False
    jitter: float = 0.03  # frame-to-frame hand jitter, units


def _rest(side: int, g: np.random.Generator) -> _Hand:
    """A hand resting on the lap, fingers pointing inwards."""
    kind = "open" if g.random() < 0.5 else "fist"
    return _Hand(side * g.uniform(0.3, 0.65), g.uniform(1.95, 2.2), kind, -side * g.uniform(60, 110))


def _canonical_pose(index: int, g: np.random.Generator) -> _Pose:
    """The pose of class `index` (0-based: folder index + 1), active hand on the image right."""
    c = index + 1
    h = _Hand
    rl, rr = _rest(-1, g), _rest(+1, g)
    if c == 1:  # turtle neck: head sunk between raised shoulders
        return _Pose(rl, rr, head_dy=0.3, raise_left=0.18, raise_right=0.18)
    if c == 2:  # deep breath: both hands flat on the belly
        return _Pose(h(-0.45, 1.45, "open", 90), h(0.45, 1.45, "open", -90), head_dy=-0.08)
    if c == 3:  # touching hat
        return _Pose(rl, h(0.42, -1.62, "open" if g.random() < 0.5 else "fist", -40), hat=True)
    if c == 4:  # scratching the top of the head
        return _Pose(rl, h(0.12, -1.72, "point" if g.random() < 0.5 else "open", -100))
    if c == 5:  # forehead
        return _Pose(rl, h(0.05, -1.35, "open", -90))
    if c == 6:  # covering face with both hands
        return _Pose(h(-0.17, -1.0, "open", 10), h(0.17, -1.0, "open", -10))
    if c == 7:  # rubbing an eye
        return _Pose(rl, h(0.17, -1.15, "fist", -20))
    if c == 8:  # touching the cheek
        return _Pose(rl, h(0.3, -0.85, "point", -45))
    if c == 9:  # ear
        return _Pose(rl, h(0.5, -1.05, "open", -10))
    if c == 10:  # biting nails
        return _Pose(rl, h(0.05, -0.72, "point", -20))
    if c == 11:  # jaw
        return _Pose(rl, h(0.2, -0.48, "open", -60))
    if c == 12:  # neck
        return _Pose(rl, h(0.2, -0.25, "open", -75))
    if c == 13:  # hair, both hands at the sides of the head
        return _Pose(h(-0.5, -1.45, "open", 30), h(0.5, -1.45, "open", -30))
    if c == 14:  # collar / tie, both fists at the collar
        return _Pose(h(-0.18, 0.1, "fist", 20), h(0.18, 0.1, "fist", -20))
    if c == 15:  # suprasternal notch, flat hand below the neck
        return _Pose(rl, h(0.02, 0.18, "open", -90))
    if c == 16:  # scratching the back: elbow up, hand behind the head
        return _Pose(rl, h(0.35, -0.55, "hidden", -150, elbow=(0.95, -1.0), behind=True))
    if c == 17:  # folded arms: forearms across the chest, hands tucked away
        return _Pose(
            h(0.7, 1.15, "hidden", 90, elbow=(-1.2, 1.5)),
            h(-0.7, 1.05, "hidden", -90, elbow=(1.2, 1.45)),
        )
    if c == 18:  # dusting off clothes: hand flat on the opposite side of the chest
        return _Pose(rl, h(-0.45, 0.75, "open", -135))
    if c == 19:  # arms behind the body
        return _Pose(
            h(-0.6, 1.9, "hidden", 150, elbow=(-1.2, 1.35), behind=True),
            h(0.6, 1.9, "hidden", -150, elbow=(1.2, 1.35), behind=True),
        )
    if c == 20:  # moving torso: a strong lean
        return _Pose(rl, rr, lean=float(g.choice([-1, 1]) * g.uniform(12, 20)))
    if c == 21:  # sitting straight
        return _Pose(rl, rr, lean=g.uniform(-1.5, 1.5))
    if c == 22:  # touching the other arm
        return _Pose(rl, h(-1.05, 0.95, "open", -100))
    if c == 23:  # rubbing / holding hands low in front
        return _Pose(h(-0.08, 1.9, "open", 90), h(0.1, 1.95, "fist", -90))
    if c == 24:  # crossed fingers: open hands overlapping, fingers across each other
        return _Pose(h(-0.05, 1.55, "open", 60), h(0.05, 1.55, "open", -60))
    if c == 25:  # minaret: fingertips together, pointing up, at chest height
        return _Pose(h(-0.22, 1.05, "open", 25), h(0.22, 1.05, "open", -25))
    if c == 26:  # playing with an object
        return _Pose(h(0.0, 1.55, "open", 80), h(0.35, 1.45, "fist", -60, holds=True))
    if c == 27:  # arms held stiffly down the sides
        return _Pose(
            h(-1.3, 2.2, "fist", 180, elbow=(-1.35, 1.3)), h(1.3, 2.2, "fist", 180, elbow=(1.35, 1.3))
        )
    if c == 28:  # head up
        return _Pose(rl, rr, head_dy=-0.2)
    if c == 29:  # pressing lips: flat hand across the mouth
        return _Pose(rl, h(0.0, -0.68, "open", -90))
    if c == 30:  # arms akimbo: fists on the hips, elbows out
        return _Pose(
            h(-1.15, 1.95, "fist", 200, elbow=(-1.85, 1.15)), h(1.15, 1.95, "fist", 160, elbow=(1.85, 1.15))
        )
    if c == 31:  # shaking shoulders: shoulders up, unevenly
        return _Pose(rl, rr, raise_left=0.1, raise_right=0.35, head_dy=0.05)
    if c == 32:  # illustrative body language: hands up in the air, anywhere, gesturing
        right = h(g.uniform(0.6, 1.5), g.uniform(-0.3, 1.2), "open", g.uniform(-60, 60))
        left = (
            h(-g.uniform(0.5, 1.4), g.uniform(0.0, 1.3), "open", g.uniform(-60, 60))
            if g.random() < 0.6
            else rl
        )
        return _Pose(left, right, jitter=0.1)
    raise SynthError(f"Class index {index} is outside 0..{N_CLASSES - 1}.")


def _mirror_hand(hand: _Hand) -> _Hand:
    elbow = None if hand.elbow is None else (-hand.elbow[0], hand.elbow[1])
    return replace(hand, x=-hand.x, angle=-hand.angle, elbow=elbow)


def _clip_pose(index: int, person: Person) -> _Pose:
    """The class pose with this clip's own offsets, mirrored when the person gestures with the other hand."""
    g = np.random.default_rng(person.pose_seed)
    pose = _canonical_pose(index, g)

    def vary(hand: _Hand) -> _Hand:
        # Same person, same gesture, but nobody puts a hand in exactly the same place.
        dx, dy = (float(v) for v in g.normal(0.0, 0.07, 2))  # Python floats: numpy scalars slow down drawing
        elbow = None if hand.elbow is None else (hand.elbow[0] + dx, hand.elbow[1] + dy)
        return replace(
            hand, x=hand.x + dx, y=hand.y + dy, angle=hand.angle + float(g.normal(0.0, 10.0)), elbow=elbow
        )

    head_dx = pose.head_dx + float(g.normal(0.0, 0.05))
    pose = replace(pose, left=vary(pose.left), right=vary(pose.right), head_dx=head_dx)
    if person.side < 0:
        pose = replace(
            pose,
            left=_mirror_hand(pose.right),
            right=_mirror_hand(pose.left),
            head_dx=-pose.head_dx,
            raise_left=pose.raise_right,
            raise_right=pose.raise_left,
            lean=None if pose.lean is None else -pose.lean,
        )
    return pose


# --------------------------------------------------------------------------------------------------
# Drawing


class _Canvas:
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


def _draw_hand(cv: _Canvas, hand: _Hand, r: float, colour: Colour, grow: int) -> None:
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


def _draw_arm(cv: _Canvas, person: Person, hand: _Hand, side: int, shoulder_raise: float, r: float) -> None:
    shoulder = (side * 1.05, 0.35 - shoulder_raise)
    dx, dy = _unit_vec(hand.angle)
    wrist = (hand.x - dx * 0.55 * r, hand.y - dy * 0.55 * r) if hand.kind != "hidden" else (hand.x, hand.y)
    elbow = hand.elbow if hand.elbow is not None else _elbow(shoulder, wrist, side)
    sleeve = person.shirt
    fore = person.skin if person.short_sleeves else person.shirt
    cv.line(shoulder, elbow, _darker(sleeve), 0.38, 2)
    cv.line(elbow, wrist, _darker(fore), 0.3, 2)
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
        _draw_hand(cv, hand, r, _darker(person.skin, 0.55), 1)
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
    label_index: int, person: Person, rng: np.random.Generator, size: tuple[int, int]
) -> np.ndarray:
    """One BGR uint8 frame of `person` making gesture `label_index` (0-based), with fresh jitter from `rng`."""
    if not 0 <= label_index < N_CLASSES:
        raise SynthError(f"label_index must be in 0..{N_CLASSES - 1}, got {label_index}.")
    h, w = size
    pose = _clip_pose(label_index, person)
    img = _background(person, size)

    # Frame-to-frame: the person sways a little; hands move a little more.
    sway = [float(v) for v in rng.normal(0.0, 0.008, 2)]
    lean = (person.lean if pose.lean is None else pose.lean) + float(rng.normal(0.0, 0.6))
    unit = person.unit * h
    cv = _Canvas(img, (person.cx + sway[0]) * w, (person.sy + sway[1]) * h, unit, lean)

    def jitter(hand: _Hand) -> _Hand:
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


# --------------------------------------------------------------------------------------------------
# People


def _colour(g: np.random.Generator, lo: int = 0, hi: int = 255) -> Colour:
    b, gr, r = g.integers(lo, hi + 1, 3)
    return int(b), int(gr), int(r)


def _distance(a: Colour, b: Colour) -> int:
    return sum(abs(int(x) - int(y)) for x, y in zip(a, b))


def random_person(rng: np.random.Generator) -> Person:
    """A random person, background and camera for one clip."""
    g = rng
    unit = g.uniform(0.17, 0.22)
    # Skin anywhere between a dark and a light tone, drawn independently of the class.
    t = g.uniform(0.0, 1.0)
    dark, light = np.array([60, 85, 130]), np.array([175, 200, 240])
    b, gr, r = (int(v) for v in np.clip(dark + t * (light - dark) + g.normal(0, 8, 3), 0, 255))
    skin: Colour = (b, gr, r)
    shirt = _colour(g, 15, 235)
    while _distance(shirt, skin) < 120:  # hands and forearms must stand out from the shirt
        shirt = _colour(g, 15, 235)
    hair_choices = ((20, 20, 25), (30, 45, 70), (40, 70, 110), (90, 160, 200), (150, 150, 150), (25, 35, 120))
    hair: Colour = hair_choices[int(g.integers(len(hair_choices)))]
    bg_corners = (_colour(g, 40, 230), _colour(g, 40, 230), _colour(g, 40, 230), _colour(g, 40, 230))
    shapes = []
    for _ in range(int(g.integers(2, 6))):
        x0, y0 = g.uniform(0, 1, 2)
        x1, y1 = x0 + g.uniform(-0.3, 0.3), y0 + g.uniform(-0.3, 0.3)
        shapes.append((int(g.integers(3)), float(x0), float(y0), float(x1), float(y1), _colour(g, 20, 240)))
    grey = int(g.integers(90, 200))
    cast = g.uniform(0.75, 1.2) * g.uniform(0.9, 1.1, 3)  # overall exposure times a slight colour cast
    return Person(
        cx=float(0.5 + g.uniform(-0.2, 0.2)),
        sy=float(0.08 + 1.75 * unit + g.uniform(-0.03, 0.05)),
        unit=float(unit),
        lean=float(g.uniform(-5, 5)),
        skin=skin,
        shirt=shirt,
        hair=hair,
        hair_style=int(g.integers(4)),
        short_sleeves=bool(g.random() < 0.3),
        hat=_colour(g, 20, 230) if g.random() < 0.08 else None,
        mask=(grey, grey, grey),
        bg_corners=bg_corners,
        bg_shapes=tuple(shapes),
        chair=_colour(g, 10, 90) if g.random() < 0.5 else None,
        cast=(float(cast[0]), float(cast[1]), float(cast[2])),
        bias=float(g.uniform(-15, 15)),
        blur=float(g.uniform(0.0, 1.2)),
        noise=float(g.uniform(2.0, 8.0)),
        side=int(g.choice([-1, 1])),
        hand_scale=float(g.uniform(0.9, 1.12)),
        pose_seed=int(g.integers(2**31)),
        object_colour=_colour(g, 20, 235),
    )


# --------------------------------------------------------------------------------------------------
# Dataset and video


def _clip_lengths(target: int, min_clips: int, g: np.random.Generator) -> list[int]:
    """Clip lengths adding up to max(target, min_clips) frames, in at least `min_clips` clips."""
    lengths: list[int] = []
    while sum(lengths) < target:
        lengths.append(min(int(g.geometric(_CLIP_P)), _CLIP_CAP))
    if lengths:
        lengths[-1] -= sum(lengths) - target  # the last clip is cut short to hit the target exactly
    if len(lengths) < min_clips:
        # Spread the frames over min_clips clips rather than adding whole new clips, so that a floored
        # class never outgrows a class that is bigger in the real data.
        total = max(target, min_clips)
        extra = g.multinomial(total - min_clips, np.full(min_clips, 1.0 / min_clips))
        lengths = [1 + int(e) for e in extra]
    return lengths


def _encode_jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SynthError("OpenCV could not encode a JPEG frame.")
    return buf.tobytes()


def _video_frames(n_labels: int, cfg: SynthConfig) -> Iterator[tuple[np.ndarray, int]]:
    """Frames of the demo video with their label indices: segments of 1-2 s, each its own class and person."""
    g = np.random.default_rng([cfg.seed, 2])
    total = max(1, round(cfg.video_seconds * cfg.fps))
    done = 0
    while done < total:
        n = min(max(1, round(g.uniform(1.0, 2.0) * cfg.fps)), total - done)
        label = int(g.integers(n_labels))
        person = random_person(g)
        for _ in range(n):
            yield render_frame(label, person, g, cfg.size), label
        done += n


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return -1
        n = 0
        while cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()


def make_video(path: Path, labels: list[str], cfg: SynthConfig) -> tuple[Path, Path]:
    """Write the demo video (`labels[i]` shows gesture i) and its `frame,label` CSV; return both paths.

    mp4 ('mp4v') where this OpenCV build can write and read it back, else Motion-JPEG .avi.
    """
    if not 1 <= len(labels) <= N_CLASSES:
        raise SynthError(f"make_video needs 1 to {N_CLASSES} labels, got {len(labels)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = cfg.size
    for fourcc, ext in (("mp4v", ".mp4"), ("MJPG", ".avi")):
        target = path.with_suffix(ext)
        # The container is chosen from the extension, so the temporary name keeps it.
        tmp = target.with_name(f".{target.stem}.tmp{ext}")
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), cfg.fps, (w, h))
        if not writer.isOpened():
            writer.release()
            tmp.unlink(missing_ok=True)
            continue
        frame_labels: list[int] = []
        try:
            for frame, label in _video_frames(len(labels), cfg):
                writer.write(frame)
                frame_labels.append(label)
        finally:
            writer.release()
        if _count_frames(tmp) != len(frame_labels):
            tmp.unlink(missing_ok=True)
            continue
        os.replace(tmp, target)
        csv_path = path.with_suffix(".csv")
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        rows.writerow(["frame", "label"])
        rows.writerows((i, labels[k]) for i, k in enumerate(frame_labels))
        csv_tmp = csv_path.with_name(f".{csv_path.name}.tmp")
        csv_tmp.write_text(text.getvalue(), encoding="utf-8")
        os.replace(csv_tmp, csv_path)
        return target, csv_path
    raise SynthError("This OpenCV build can write neither an mp4 ('mp4v') nor an avi ('MJPG') video.")


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse to touch a folder that holds anything but a previous synthetic dataset."""
    if not out.exists():
        return
    if not out.is_dir():
        raise SynthError(f"{out} exists and is not a folder.")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    if not overwrite:
        raise SynthError(
            f"{out} exists and is not empty; pass overwrite to replace a previous synthetic dataset."
        )
    readme = out / "README.txt"
    ours = readme.is_file() and README_MARKER in readme.read_text(encoding="utf-8", errors="replace")
    if not ours or not entries <= _OUR_ENTRIES:
        raise SynthError(f"{out} holds files that make_dataset did not write; refusing to delete it.")


def make_dataset(out: Path, cfg: SynthConfig = SynthConfig(), overwrite: bool = False) -> SynthSummary:
    """Write the synthetic image set under `out/training/<1..32>/`, a demo video and a README.

    Everything is written to a temporary sibling folder and renamed into place, so a crash leaves no
    half dataset; `overwrite` replaces only a folder that an earlier make_dataset wrote.
    """
    out = Path(out).absolute()
    _check_target(out, overwrite)
    labels = [str(i + 1) for i in range(N_CLASSES)]
    plans = [
        _clip_lengths(round(cfg.scale * n), cfg.min_clips, np.random.default_rng([cfg.seed, 1, i]))
        for i, n in enumerate(IMIGUE_FRAME_COUNTS)
    ]
    n_clips = sum(len(p) for p in plans)
    # Clip ids interleave across classes, as in the real export, so an id range never hints at a class.
    ids = iter(FIRST_CLIP_ID + np.random.default_rng([cfg.seed, 3]).permutation(n_clips))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        image_dir = tmp / "training"
        counts: dict[str, int] = {}
        clips: dict[str, int] = {}
        for index, (label, lengths) in enumerate(zip(labels, plans)):
            folder = image_dir / label
            folder.mkdir(parents=True)
            for n_frames in lengths:
                clip = int(next(ids))
                g = np.random.default_rng([cfg.seed, 4, clip])
                person = random_person(g)
                for frame in range(1, n_frames + 1):
                    img = render_frame(index, person, g, cfg.size)
                    (folder / f"{clip}.{frame}.jpg").write_bytes(_encode_jpeg(img))
            counts[label] = sum(lengths)
            clips[label] = len(lengths)
        video, video_csv = make_video(tmp / "demo.mp4", labels, cfg)
        n_images = sum(counts.values())
        (tmp / "README.txt").write_text(
            f"{README_MARKER}, made by mgc_edge.data.synth with seed {cfg.seed} and scale {cfg.scale}: "
            f"{n_images} JPEG frames of {n_clips} clips in training/1 ... training/32 (files <clip>.<frame>.jpg, "
            f"{cfg.size[1]}x{cfg.size[0]} pixels, faces masked, class sizes {cfg.scale} times the real iMiGUE counts "
            f"with at least {cfg.min_clips} clips each), where the class is shown only by hand position and pose "
            f"relative to each clip's cartoon person; plus {video.name}, a {cfg.video_seconds:g} s video at "
            f"{cfg.fps:g} fps, with its true per-frame labels in {video_csv.name}. It is for tests and demos only, "
            "and make_dataset(overwrite=True) may delete this folder.\n",
            encoding="utf-8",
        )
        if out.exists():
            # Move the old folder aside first: its removal is the only step that can leave debris, and
            # then only a hidden sibling, never a half dataset at `out`.
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(
        root=out,
        image_dir=out / "training",
        video=out / video.name,
        video_labels=out / video_csv.name,
        counts=counts,
        clips=clips,
    )
