"""The gestures: where each class puts the hands, head and shoulders, in body units.

`canonical_pose` is longer than 60 lines: a table of every class's pose, one entry per class.

Body units (u, about the height of a head): the origin is the middle of the shoulder line, x grows to
the image right, y downwards. Poses are written for a gesture made with the image-right hand and
mirrored for people who use the other one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mgc_edge.data.synth.config import N_CLASSES, SynthError
from mgc_edge.data.synth.people import Person


@dataclass(frozen=True)
class Hand:
    x: float
    y: float
    kind: str  # "open", "fist", "point" or "hidden" (arm drawn, hand out of sight)
    angle: float  # direction the fingers point, degrees: 0 up, 90 image right, 180 down
    elbow: tuple[float, float] | None = None  # None: solved from arm lengths
    behind: bool = False  # the arm is drawn behind torso and head
    holds: bool = False  # holds an object (class 26)


@dataclass(frozen=True)
class Pose:
    left: Hand  # the arm from the image-left shoulder
    right: Hand
    head_dx: float = 0.0
    head_dy: float = 0.0  # > 0 sinks the head into the shoulders
    raise_left: float = 0.0  # shoulder raise, units
    raise_right: float = 0.0
    lean: float | None = None  # overrides the person's lean (classes 20, 21)
    hat: bool = False
    jitter: float = 0.03  # frame-to-frame hand jitter, units


def rest(side: int, g: np.random.Generator) -> Hand:
    """A hand resting on the lap, fingers pointing inwards."""
    kind = "open" if g.random() < 0.5 else "fist"
    return Hand(side * g.uniform(0.3, 0.65), g.uniform(1.95, 2.2), kind, -side * g.uniform(60, 110))


def canonical_pose(index: int, g: np.random.Generator) -> Pose:
    """The pose of class `index` (0-based: folder index + 1), active hand on the image right."""
    c = index + 1
    h = Hand
    rl, rr = rest(-1, g), rest(+1, g)
    if c == 1:  # turtle neck: head sunk between raised shoulders
        return Pose(rl, rr, head_dy=0.3, raise_left=0.18, raise_right=0.18)
    if c == 2:  # deep breath: both hands flat on the belly
        return Pose(h(-0.45, 1.45, "open", 90), h(0.45, 1.45, "open", -90), head_dy=-0.08)
    if c == 3:  # touching hat
        return Pose(rl, h(0.42, -1.62, "open" if g.random() < 0.5 else "fist", -40), hat=True)
    if c == 4:  # scratching the top of the head
        return Pose(rl, h(0.12, -1.72, "point" if g.random() < 0.5 else "open", -100))
    if c == 5:  # forehead
        return Pose(rl, h(0.05, -1.35, "open", -90))
    if c == 6:  # covering face with both hands
        return Pose(h(-0.17, -1.0, "open", 10), h(0.17, -1.0, "open", -10))
    if c == 7:  # rubbing an eye
        return Pose(rl, h(0.17, -1.15, "fist", -20))
    if c == 8:  # touching the cheek
        return Pose(rl, h(0.3, -0.85, "point", -45))
    if c == 9:  # ear
        return Pose(rl, h(0.5, -1.05, "open", -10))
    if c == 10:  # biting nails
        return Pose(rl, h(0.05, -0.72, "point", -20))
    if c == 11:  # jaw
        return Pose(rl, h(0.2, -0.48, "open", -60))
    if c == 12:  # neck
        return Pose(rl, h(0.2, -0.25, "open", -75))
    if c == 13:  # hair, both hands at the sides of the head
        return Pose(h(-0.5, -1.45, "open", 30), h(0.5, -1.45, "open", -30))
    if c == 14:  # collar / tie, both fists at the collar
        return Pose(h(-0.18, 0.1, "fist", 20), h(0.18, 0.1, "fist", -20))
    if c == 15:  # suprasternal notch, flat hand below the neck
        return Pose(rl, h(0.02, 0.18, "open", -90))
    if c == 16:  # scratching the back: elbow up, hand behind the head
        return Pose(rl, h(0.35, -0.55, "hidden", -150, elbow=(0.95, -1.0), behind=True))
    if c == 17:  # folded arms: forearms across the chest, hands tucked away
        return Pose(
            h(0.7, 1.15, "hidden", 90, elbow=(-1.2, 1.5)),
            h(-0.7, 1.05, "hidden", -90, elbow=(1.2, 1.45)),
        )
    if c == 18:  # dusting off clothes: hand flat on the opposite side of the chest
        return Pose(rl, h(-0.45, 0.75, "open", -135))
    if c == 19:  # arms behind the body
        return Pose(
            h(-0.6, 1.9, "hidden", 150, elbow=(-1.2, 1.35), behind=True),
            h(0.6, 1.9, "hidden", -150, elbow=(1.2, 1.35), behind=True),
        )
    if c == 20:  # moving torso: a strong lean
        return Pose(rl, rr, lean=float(g.choice([-1, 1]) * g.uniform(12, 20)))
    if c == 21:  # sitting straight
        return Pose(rl, rr, lean=g.uniform(-1.5, 1.5))
    if c == 22:  # touching the other arm
        return Pose(rl, h(-1.05, 0.95, "open", -100))
    if c == 23:  # rubbing / holding hands low in front
        return Pose(h(-0.08, 1.9, "open", 90), h(0.1, 1.95, "fist", -90))
    if c == 24:  # crossed fingers: open hands overlapping, fingers across each other
        return Pose(h(-0.05, 1.55, "open", 60), h(0.05, 1.55, "open", -60))
    if c == 25:  # minaret: fingertips together, pointing up, at chest height
        return Pose(h(-0.22, 1.05, "open", 25), h(0.22, 1.05, "open", -25))
    if c == 26:  # playing with an object
        return Pose(h(0.0, 1.55, "open", 80), h(0.35, 1.45, "fist", -60, holds=True))
    if c == 27:  # arms held stiffly down the sides
        return Pose(
            h(-1.3, 2.2, "fist", 180, elbow=(-1.35, 1.3)), h(1.3, 2.2, "fist", 180, elbow=(1.35, 1.3))
        )
    if c == 28:  # head up
        return Pose(rl, rr, head_dy=-0.2)
    if c == 29:  # pressing lips: flat hand across the mouth
        return Pose(rl, h(0.0, -0.68, "open", -90))
    if c == 30:  # arms akimbo: fists on the hips, elbows out
        return Pose(
            h(-1.15, 1.95, "fist", 200, elbow=(-1.85, 1.15)), h(1.15, 1.95, "fist", 160, elbow=(1.85, 1.15))
        )
    if c == 31:  # shaking shoulders: shoulders up, unevenly
        return Pose(rl, rr, raise_left=0.1, raise_right=0.35, head_dy=0.05)
    if c == 32:  # illustrative body language: hands up in the air, anywhere, gesturing
        right = h(g.uniform(0.6, 1.5), g.uniform(-0.3, 1.2), "open", g.uniform(-60, 60))
        left = (
            h(-g.uniform(0.5, 1.4), g.uniform(0.0, 1.3), "open", g.uniform(-60, 60))
            if g.random() < 0.6
            else rl
        )
        return Pose(left, right, jitter=0.1)
    raise SynthError(f"Class index {index} is outside 0..{N_CLASSES - 1}.")


def _mirror_hand(hand: Hand) -> Hand:
    elbow = None if hand.elbow is None else (-hand.elbow[0], hand.elbow[1])
    return replace(hand, x=-hand.x, angle=-hand.angle, elbow=elbow)


def clip_pose(index: int, person: Person) -> Pose:
    """The class pose with this clip's own offsets, mirrored when the person gestures with the other hand."""
    g = np.random.default_rng(person.pose_seed)
    pose = canonical_pose(index, g)

    def vary(hand: Hand) -> Hand:
        # Same person, same gesture, but nobody puts a hand in exactly the same place.
        dx, dy = (
            float(v) for v in g.normal(0.0, person.pose_offset, 2)
        )  # Python floats: numpy scalars slow down drawing
        elbow = None if hand.elbow is None else (hand.elbow[0] + dx, hand.elbow[1] + dy)
        return replace(
            hand,
            x=hand.x + dx,
            y=hand.y + dy,
            angle=hand.angle + float(g.normal(0.0, person.pose_angle)),
            elbow=elbow,
        )

    head_dx = pose.head_dx + float(g.normal(0.0, 0.05))
    pose = replace(pose, left=vary(pose.left), right=vary(pose.right), head_dx=head_dx)
    if person.posture != 1.0:
        k = person.posture
        pose = replace(
            pose,
            head_dy=pose.head_dy * k,
            raise_left=pose.raise_left * k,
            raise_right=pose.raise_right * k,
            lean=None if pose.lean is None else pose.lean * k,
        )
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


def neutral_pose(person: Person) -> Pose:
    """Both hands resting on the lap and an upright head: the person with the gesture taken away.

    The cue-removed control draws every clip like this, whatever its class, so that only the
    per-clip nuisance (placement, colours, background, camera) is left to learn from.
    """
    g = np.random.default_rng(person.pose_seed)
    return Pose(rest(-1, g), rest(+1, g))
