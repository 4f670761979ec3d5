"""A synthetic, iMiGUE-shaped image dataset and demo video; numpy + OpenCV only, deterministic per seed.

The real iMiGUE frames are people seated at a press conference, faces masked, filmed from the front.
Here every clip is one cartoon "person" (own position, scale, colours, background, lighting, noise),
and the class is told only by where the hands are relative to that person's body and how they are
held (plus, for a few classes, the posture of head and shoulders). No colour or global statistic
depends on the class, so a model has to find the hands: learnable, but not trivial. `difficulty`
sets how much the nuisance varies; `cue=False` makes the control data in which only the nuisance is left.

Modules: `config` (what to make), `people` (one clip's person and scene), `poses` (the gestures),
`drawing` (one frame), `writer` (the folders, the video, the README).
"""

from mgc_edge.data.synth.config import (
    DIFFICULTIES,
    IMIGUE_FRAME_COUNTS,
    N_CLASSES,
    README_MARKER,
    Difficulty,
    SynthConfig,
    SynthError,
    SynthSummary,
)
from mgc_edge.data.synth.drawing import render_frame
from mgc_edge.data.synth.people import Person, random_person
from mgc_edge.data.synth.writer import make_dataset, make_video, video_classes

__all__ = [
    "DIFFICULTIES",
    "IMIGUE_FRAME_COUNTS",
    "N_CLASSES",
    "README_MARKER",
    "Difficulty",
    "Person",
    "SynthConfig",
    "SynthError",
    "SynthSummary",
    "make_dataset",
    "make_video",
    "random_person",
    "render_frame",
    "video_classes",
]
