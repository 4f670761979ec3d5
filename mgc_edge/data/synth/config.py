"""What the synthetic data generator is asked for: class sizes, difficulty, video; stdlib only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mgc_edge.errors import UserError

# Frames per class folder 1..32 in the image-level iMiGUE export (DOMAIN.md).
IMIGUE_FRAME_COUNTS: tuple[int, ...] = (
    104, 1698, 183, 634, 266, 191, 306, 2060, 279, 12, 2345, 1403, 327, 347, 97, 163,
    1963, 464, 14, 4994, 686, 2290, 3588, 4025, 158, 3224, 622, 219, 4618, 57, 6671, 16506,
)  # fmt: skip
N_CLASSES = len(IMIGUE_FRAME_COUNTS)

README_MARKER = "mgc-edge synthetic iMiGUE-shaped dataset"
# The demo video shows only the gestures that make up at least this share of iMiGUE's frames (13 of the
# 32): a model has seen enough clips of those to be judged live; the rare ones are judged on the test split.
VIDEO_MIN_SHARE = 0.02


class SynthError(UserError):
    """Synthetic data cannot be made as asked; the message is one sentence."""


@dataclass(frozen=True)
class Difficulty:
    """How much each clip's person, scene and camera vary (everything a model must learn to ignore; none
    of it depends on the class), and how plainly the gesture itself is drawn.

    Ranges are (low, high) of a uniform draw per clip.
    """

    centre_x: float  # shoulder-line centre x is 0.5 +- this, fraction of W
    shoulder_y: tuple[float, float]  # offset of the shoulder line from its size-given height, fraction of H
    unit: tuple[float, float]  # body unit (about a head's height), fraction of H
    lean: float  # +- degrees
    hand_scale: tuple[float, float]
    pose_offset: float  # sd of where this clip's person puts a hand, body units
    pose_angle: float  # sd of the hand's angle, degrees
    bg_shapes: tuple[int, int]  # clutter shapes in the background, low inclusive, high exclusive
    exposure: tuple[float, float]  # overall gain, before a +-10 % colour cast
    noise: tuple[float, float]  # sensor noise sigma, grey levels
    blur: float  # largest Gaussian sigma, pixels at 180 rows
    # How plainly the gesture shows; the same for every class.
    outline: int  # dark edge around arms, in pixels (hands get half): arms over a same-coloured shirt
    short_sleeves: float  # chance of bare (skin-coloured) forearms
    posture: float  # scales head, shoulder and torso movements (classes 1, 20, 28, 31, ...)


# `hard` is the generator as it was first written: per clip, a person anywhere in the middle 60 % of the
# frame, at any of a range of sizes, over a cluttered background, with camera noise and blur, arms drawn
# with a thin edge over a shirt of their own colour. `easy` keeps every kind of variation (colours,
# backgrounds, lighting, hats, chairs, the hand used) but narrows placement and size, quiets the clutter,
# draws arms with a clear edge and postures more markedly, so that a CNN trained from scratch for a few
# CPU minutes finds the gesture; `medium` lies between.
DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(
        centre_x=0.05,
        shoulder_y=(-0.01, 0.02),
        unit=(0.2, 0.22),
        lean=2.0,
        hand_scale=(1.2, 1.4),
        pose_offset=0.04,
        pose_angle=6.0,
        bg_shapes=(0, 3),
        exposure=(0.85, 1.1),
        noise=(1.0, 4.0),
        blur=0.6,
        outline=4,
        short_sleeves=0.6,
        posture=1.5,
    ),
    "medium": Difficulty(
        centre_x=0.12,
        shoulder_y=(-0.02, 0.035),
        unit=(0.185, 0.22),
        lean=3.5,
        hand_scale=(1.05, 1.25),
        pose_offset=0.055,
        pose_angle=8.0,
        bg_shapes=(1, 5),
        exposure=(0.8, 1.15),
        noise=(1.5, 6.0),
        blur=0.9,
        outline=3,
        short_sleeves=0.45,
        posture=1.25,
    ),
    "hard": Difficulty(
        centre_x=0.2,
        shoulder_y=(-0.03, 0.05),
        unit=(0.17, 0.22),
        lean=5.0,
        hand_scale=(0.9, 1.12),
        pose_offset=0.07,
        pose_angle=10.0,
        bg_shapes=(2, 6),
        exposure=(0.75, 1.2),
        noise=(2.0, 8.0),
        blur=1.2,
        outline=2,
        short_sleeves=0.3,
        posture=1.0,
    ),
}


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; `scale` is the fraction of the real iMiGUE frame counts per class."""

    scale: float = 0.05
    min_clips: int = 3  # floor: every class gets at least this many clips
    size: tuple[int, int] = (180, 320)  # (H, W) of every frame, like the real export
    seed: int = 0
    difficulty: str = "hard"  # a key of DIFFICULTIES
    max_frames: int = 18  # frames per clip are capped here; the real export's clips have up to 18
    cue: bool = True  # False: every clip rests its hands, a control in which only the nuisance is left
    video_seconds: float = 16.0
    fps: float = 15.0
    segment_seconds: tuple[float, float] = (3.0, 5.0)  # each gesture of the demo video lasts this long

    def __post_init__(self) -> None:
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise SynthError(f"--scale must be a positive number, got {self.scale}.")
        if self.min_clips < 1:
            raise SynthError(f"--min-clips must be at least 1, got {self.min_clips}.")
        if len(self.size) != 2 or min(self.size) < 32:
            raise SynthError(f"size must be (H, W) with both at least 32 pixels, got {self.size}.")
        if self.difficulty not in DIFFICULTIES:
            raise SynthError(
                f"--difficulty must be one of {', '.join(DIFFICULTIES)}, got {self.difficulty!r}."
            )
        if self.max_frames < 1:
            raise SynthError(f"--max-frames must be at least 1, got {self.max_frames}.")
        if not (self.video_seconds > 0 and self.fps > 0):
            raise SynthError(
                f"--video-seconds must be positive, got {self.video_seconds} (and fps {self.fps})."
            )
        lo, hi = self.segment_seconds
        if not 0 < lo <= hi:
            raise SynthError(f"--segment-seconds must be LOW HIGH with 0 < LOW <= HIGH, got {lo} {hi}.")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        object.__setattr__(self, "segment_seconds", (float(lo), float(hi)))

    @property
    def level(self) -> Difficulty:
        return DIFFICULTIES[self.difficulty]


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
