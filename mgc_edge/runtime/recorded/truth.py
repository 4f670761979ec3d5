"""A video's known labels, read from a `frame,label` CSV or from one tier of an ELAN .eaf file; stdlib and
numpy only. `annotate --truth` scores its frames and segments against them.

Labels are the model's label ids (class folder names). An .eaf value is mapped to one through our own
vocabulary reference (CVE_REF), else taken as a label id, else matched to a class name (case and spacing
ignored); a value that is none of these stays as it is, a class the model cannot predict, and is named once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.fileio import file_sha256
from mgc_edge.labels import Labels
from mgc_edge.runtime.recorded.outputs.eaf import choose_tier, read_eaf
from mgc_edge.runtime.recorded.segments import Segment, clip_segments, segments_from_labels

TRUTH_SUFFIXES = (".csv", ".eaf")
LABEL_COLUMNS = ("label", "class")  # the column of a truth CSV holding the label


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
    key: str = ""  # what identifies this truth: its file's sha256 and, for an .eaf, the tier read

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
        return Truth(path, spans=tuple(spans), unknown=tuple(unknown), key=f"{file_sha256(path)}:{name}")
    if path.suffix.lower() != ".csv":
        raise TruthError(f"Truth file {path} must be a .csv (frame,label) or an ELAN .eaf file.")
    frames = read_truth_csv(path)
    ids = set(labels.ids)
    unknown = sorted({v for v in frames.values() if v not in ids})
    return Truth(path, frames=frames, unknown=tuple(unknown), key=file_sha256(path))


def read_truth_csv(path: Path) -> dict[int, str]:
    """`frame,label` (or `frame,class`) rows -> {frame: label}: a UTF-8 byte order mark (Excel's "CSV
    UTF-8") is accepted; a missing column, a frame that is not a whole number or given twice is refused."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = list(reader)
    except FileNotFoundError:
        raise TruthError(f"Truth file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise TruthError(f"Truth file {path} is not UTF-8 text.") from None
    keys = [h.casefold() for h in header]
    column = next((c for c in LABEL_COLUMNS if c in keys), None)
    if "frame" not in keys or column is None:
        found = ",".join(header) if header else "nothing"
        raise TruthError(
            f"Truth file {path} needs the columns frame,label (or frame,class); its header is {found}."
        )
    fi, li = keys.index("frame"), keys.index(column)
    frames: dict[int, str] = {}
    for n, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            frame = int(row[fi].strip())
            label = row[li].strip()
        except (ValueError, IndexError):
            raise TruthError(
                f"Truth file {path} line {n}: the frame is not a whole number or the label is missing."
            ) from None
        if frame in frames:
            raise TruthError(
                f"Truth file {path} line {n}: frame {frame} is given twice; keep one row per frame."
            )
        frames[frame] = label
    if not frames:
        raise TruthError(f"Truth file {path} has the header {','.join(header)} but no rows.")
    return frames


@dataclass(frozen=True)
class VideoRef:
    """A video as truth matching sees it: its output name, stem and path relative to the input it was
    found under (its own name for a file named explicitly)."""

    name: str
    stem: str
    relative: Path
    path: Path


def find_truths(source: str | Path, videos: Sequence[VideoRef]) -> list[Path | None]:
    """The truth file of each video, found as an output is named: `source` itself for a single video, else in
    the folder `source` the file named after the video's output name, or at its relative path
    (`monday/s1.csv` for `monday/s1.avi`), or by its stem alone (`s1.csv`) only where no other video of the
    run shares that stem. A truth that fits several videos is an error naming them. Only those exact paths
    are looked at, never a search: an annotate output folder below holds `<name>.eaf` files too, which must
    never pass for a truth."""
    source = Path(source)
    if source.is_file():
        if len(videos) != 1:
            raise TruthError(
                f"--truth {source} is one file but {len(videos)} videos were given; give a folder holding "
                "<video name>.csv or <video name>.eaf for each."
            )
        return [source]
    if not source.is_dir():
        raise TruthError(f"Truth {source} does not exist.")
    stems: dict[str, list[VideoRef]] = {}
    for v in videos:
        stems.setdefault(v.stem, []).append(v)
    chosen: list[Path | None] = []
    claims: dict[Path, list[VideoRef]] = {}
    for v in videos:
        found = None
        places = [Path(v.name), v.relative.with_suffix("")]
        if len(stems[v.stem]) == 1:
            places.append(Path(v.stem))
        for place in dict.fromkeys(places):
            found = _one_file(source, place, v)
            if found is not None:
                break
        shared = _one_file(source, Path(v.stem), v) if found is None and len(stems[v.stem]) > 1 else None
        if shared is not None:
            claims.setdefault(shared, []).append(v)
        if found is not None:
            claims.setdefault(found, []).append(v)
        chosen.append(found)
    for truth, owners in claims.items():
        if len(owners) > 1 or truth not in chosen:
            fits = owners if len(owners) > 1 else stems[owners[0].stem]
            shown = ", ".join(str(v.path) for v in fits[:4]) + (", ..." if len(fits) > 4 else "")
            raise TruthError(
                f"Truth {truth} fits {len(fits)} videos named {owners[0].stem} ({shown}); name each truth after "
                f"its video's output name ({', '.join(v.name + truth.suffix for v in fits[:3])}) or put it at "
                "the video's path inside the truth folder."
            )
    return chosen


def _one_file(source: Path, place: Path, video: VideoRef) -> Path | None:
    """`source/place.csv` or `.eaf`; both is an error."""
    found = [source / f"{place}{suffix}" for suffix in TRUTH_SUFFIXES]
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        raise TruthError(
            f"Several truth files fit video {video.name} ({', '.join(str(m) for m in found)}); keep one."
        )
    return found[0] if found else None
