"""The options of `mgc-edge annotate`, checked before any work, and the errors of a recorded run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mgc_edge.errors import UserError
from mgc_edge.fileio import unwritable
from mgc_edge.runtime.recorded.decode import DecodeOptions
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH, parse_smooth

VIDEO_EXTENSIONS = (
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".mts",
    ".m2ts",  # AVCHD camcorders
    ".3gp",  # phones
    ".mjpg",  # IP cameras' MJPEG recordings
    ".mjpeg",
    ".ogv",
)


# Shorter runs of the smoothed label are flicker, not gestures: 0.3 s is 4-5 frames at 15 fps and 9 at
# 30 fps, above the 2-3 frames in which the default smoothing (ema:0.1s) lets a wrong label through, and
# below the second or more that a gesture is held. Measured on the demo video in README / RESULTS.md.
DEFAULT_MIN_SECONDS = 0.3


Progress = Callable[[int, int, str], None]  # (frames done, frames in all, the video being classified)


Notify = Callable[[str], None]


class AnnotateInputError(UserError):
    """An input, option or output folder that cannot be used; the message is one sentence."""


class VideoError(UserError):
    """A video that cannot be decoded, under `strict`; the message is one sentence."""


@dataclass(frozen=True)
class AnnotateOptions:
    """The options of `mgc-edge annotate` (see its --help)."""

    out: Path = Path("annotations")
    topk: int = 0
    min_seconds: float = DEFAULT_MIN_SECONDS
    background: tuple[str, ...] = ()
    truth: Path | None = None
    truth_tier: str | None = None
    batch_size: int = 32
    every: int = 1
    start: float = 0.0
    end: float | None = None
    smooth: str = DEFAULT_SMOOTH
    workers: int = 0
    force: bool = False
    strict: bool = False
    plot: bool = False
    threads: int = 0  # ONNX Runtime's intra-op threads (the classifier is opened with them; checked here)

    def check(self, labels: Sequence[str] | None = None) -> None:
        """Refuse bad options before any work, each in one sentence (`--background` against `labels`, the
        model's, where given)."""
        if self.batch_size < 1:
            raise AnnotateInputError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.topk < 0:
            raise AnnotateInputError(f"--topk must be 0 or more, got {self.topk}.")
        if self.threads < 0:
            raise AnnotateInputError(
                f"--threads must be 0 (all cores but decoding's) or more, got {self.threads}."
            )
        if self.truth_tier is not None and self.truth is None:
            raise AnnotateInputError(
                f"--truth-tier {self.truth_tier} needs --truth (the .eaf it is a tier of)."
            )
        if self.every < 1:
            raise AnnotateInputError(f"--every must be at least 1, got {self.every}.")
        if self.min_seconds < 0:
            raise AnnotateInputError(f"--min-seconds must be 0 or more, got {self.min_seconds:g}.")
        if self.start < 0:
            raise AnnotateInputError(f"--start must be 0 or more seconds, got {self.start:g}.")
        if self.end is not None and self.end <= self.start:
            raise AnnotateInputError(f"--end ({self.end:g} s) must come after --start ({self.start:g} s).")
        unknown = [b for b in self.background if labels is not None and b not in labels]
        if unknown and labels is not None:
            raise AnnotateInputError(
                f"--background {unknown[0]} is not a label of the model (its labels: {', '.join(labels[:8])}"
                f"{', ...' if len(labels) > 8 else ''})."
            )
        parse_smooth(self.smooth)
        if self.out.exists() and not self.out.is_dir():
            raise AnnotateInputError(f"--out {self.out} is a file; give a folder.")
        problem = unwritable(self.out)
        if problem is not None:
            raise AnnotateInputError(f"--out {self.out} cannot be written ({problem}).")

    def decode(self) -> DecodeOptions:
        return DecodeOptions(self.every, self.start, self.end, self.batch_size, self.workers)
