"""A video's known labels, read from a `frame,label` CSV or from one tier of an ELAN .eaf file; stdlib and
numpy only. `annotate --truth` scores its frames and segments against them.

Labels are the model's label ids (class folder names). An .eaf value is mapped to one through our own
vocabulary reference (CVE_REF), else taken as a label id, else matched to a class name (case and spacing
ignored); a value that is none of these stays as it is, a class the model cannot predict, and is named once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.labels import Labels
from mgc_edge.runtime.agreement import read_labels
from mgc_edge.runtime.recorded.outputs.eaf import choose_tier, read_eaf
from mgc_edge.runtime.recorded.segments import Segment, clip_segments, segments_from_labels

TRUTH_SUFFIXES = (".csv", ".eaf")


class TruthError(UserError):
    """A truth file or folder that cannot be used; the message is one sentence."""


@dataclass(frozen=True)
class Truth:
    """Known labels of one video: per frame (`frames`, from a CSV) or per time span (`spans`, from an .eaf
    tier, seconds). `unknown` are the values that are neither a label id nor a class name of the model."""

    path: Path
    frames: dict[int, str] | None = None
    spans: tuple[Segment, ...] = ()
    unknown: tuple[str, ...] = field(default=())

    def labels_at(self, frames: Sequence[int], times: Sequence[float]) -> list[str | None]:
        """The known label of each classified frame (None where the truth says nothing)."""
        if self.frames is not None:
            return [self.frames.get(int(f)) for f in frames]
        if not self.spans:
            return [None] * len(frames)
        starts = np.array([s.start_time for s in self.spans])
        t = np.asarray(times, np.float64)
        # Time in ms, as the .eaf stores it: a frame at t belongs to the span [start, end) holding it.
        t = np.round(t * 1000) / 1000
        i = np.searchsorted(starts, t, side="right") - 1
        out: list[str | None] = []
        for k, tk in zip(i, t):
            out.append(self.spans[k].label if k >= 0 and tk < self.spans[k].end_time else None)
        return out

    def segments(self, fps: float, start: float, end: float, background: Iterable[str] = ()) -> list[Segment]:
        """The true segments inside the classified span [start, end) seconds, background labels left out."""
        skip = set(background)
        if self.frames is not None:
            frames = sorted(self.frames)
            found = segments_from_labels(
                frames, [self.frames[f] for f in frames], 1.0 / fps if fps > 0 else 0.0
            )
        else:
            found = list(self.spans)
        return [s for s in clip_segments(found, start, end) if s.label not in skip]


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def read_truth(path: str | Path, labels: Labels, tier: str | None = None) -> Truth:
    """A CSV `frame,label` or an .eaf file (its one tier, or `tier`) as a Truth in the model's label ids."""
    path = Path(path)
    if path.suffix.lower() == ".eaf":
        doc = read_eaf(path)
        name = choose_tier(doc, path, tier)
        by_name = {_key(labels.display(i)): label for i, label in enumerate(labels.ids)}
        ids = set(labels.ids)
        spans, unknown = [], []
        for ann in doc.tiers[name]:
            label = doc.label_of(ann)
            if label is None:
                value = ann.value
                label = value if value in ids else by_name.get(_key(value), value)
                if label not in ids and label not in unknown:
                    unknown.append(label)
            spans.append(Segment(-1, -1, ann.start_ms / 1000, ann.end_ms / 1000, label))
        return Truth(path, spans=tuple(spans), unknown=tuple(unknown))
    if path.suffix.lower() != ".csv":
        raise TruthError(f"Truth file {path} must be a .csv (frame,label) or an ELAN .eaf file.")
    try:
        frames = read_labels(path)
    except UserError:
        raise
    except ValueError:
        raise TruthError(f"Truth file {path} has a frame that is not a whole number.") from None
    ids = set(labels.ids)
    unknown = sorted({v for v in frames.values() if v not in ids})
    return Truth(path, frames=frames, unknown=tuple(unknown))


def find_truths(source: str | Path, names: Sequence[str], stems: Sequence[str]) -> list[Path | None]:
    """The truth file of each video: `source` itself for a single video, else the file in the folder
    `source` named after the video's output name or, failing that, its stem. Not searched recursively: an
    annotate output folder below it holds `<name>.eaf` files too, which must never pass for a truth."""
    source = Path(source)
    if source.is_file():
        if len(names) != 1:
            raise TruthError(
                f"--truth {source} is one file but {len(names)} videos were given; give a folder holding "
                "<video name>.csv or <video name>.eaf for each."
            )
        return [source]
    if not source.is_dir():
        raise TruthError(f"Truth {source} does not exist.")
    found: dict[str, list[Path]] = {}
    for p in sorted(source.iterdir()):
        if p.suffix.lower() in TRUTH_SUFFIXES and p.is_file() and not p.name.startswith("."):
            found.setdefault(p.name[: -len(p.suffix)], []).append(p)
    out: list[Path | None] = []
    for name, stem in zip(names, stems):
        matches = found.get(name) or found.get(stem) or []
        if len(matches) > 1:
            raise TruthError(
                f"Several truth files fit video {name} ({', '.join(str(m) for m in matches[:3])}); keep one."
            )
        out.append(matches[0] if matches else None)
    return out
