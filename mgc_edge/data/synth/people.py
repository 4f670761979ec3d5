"""One clip's person, scene and camera, drawn at random and independently of the class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgc_edge.data.synth.config import DIFFICULTIES, Difficulty

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
    pose_offset: float = 0.07  # sd of this person's own hand placement, body units
    pose_angle: float = 10.0  # sd of this person's own hand angle, degrees
    outline: int = 2  # dark edge around the arms, pixels
    posture: float = 1.0  # scale of head, shoulder and torso movements


def _colour(g: np.random.Generator, lo: int = 0, hi: int = 255) -> Colour:
    b, gr, r = g.integers(lo, hi + 1, 3)
    return int(b), int(gr), int(r)


def _distance(a: Colour, b: Colour) -> int:
    return sum(abs(int(x) - int(y)) for x, y in zip(a, b))


def random_person(rng: np.random.Generator, level: Difficulty = DIFFICULTIES["hard"]) -> Person:
    """A random person, background and camera for one clip, varying as much as `level` says."""
    g, n = rng, level
    # The order of the draws is part of the output: `hard` repeats the files of earlier versions.
    unit = g.uniform(*n.unit)
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
    for _ in range(int(g.integers(*n.bg_shapes))):
        x0, y0 = g.uniform(0, 1, 2)
        x1, y1 = x0 + g.uniform(-0.3, 0.3), y0 + g.uniform(-0.3, 0.3)
        shapes.append((int(g.integers(3)), float(x0), float(y0), float(x1), float(y1), _colour(g, 20, 240)))
    grey = int(g.integers(90, 200))
    cast = g.uniform(*n.exposure) * g.uniform(0.9, 1.1, 3)  # overall exposure times a slight colour cast
    return Person(
        cx=float(0.5 + g.uniform(-n.centre_x, n.centre_x)),
        sy=float(0.08 + 1.75 * unit + g.uniform(*n.shoulder_y)),
        unit=float(unit),
        lean=float(g.uniform(-n.lean, n.lean)),
        skin=skin,
        shirt=shirt,
        hair=hair,
        hair_style=int(g.integers(4)),
        short_sleeves=bool(g.random() < n.short_sleeves),
        hat=_colour(g, 20, 230) if g.random() < 0.08 else None,
        mask=(grey, grey, grey),
        bg_corners=bg_corners,
        bg_shapes=tuple(shapes),
        chair=_colour(g, 10, 90) if g.random() < 0.5 else None,
        cast=(float(cast[0]), float(cast[1]), float(cast[2])),
        bias=float(g.uniform(-15, 15)),
        blur=float(g.uniform(0.0, n.blur)),
        noise=float(g.uniform(*n.noise)),
        side=int(g.choice([-1, 1])),
        hand_scale=float(g.uniform(*n.hand_scale)),
        pose_seed=int(g.integers(2**31)),
        object_colour=_colour(g, 20, 235),
        pose_offset=n.pose_offset,
        pose_angle=n.pose_angle,
        outline=n.outline,
        posture=n.posture,
    )
