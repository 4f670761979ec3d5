"""Segments scored on the frames the truth labels, in frames; numpy only.

Frame accuracy counts the classified frames the truth gives a label; segment scores use exactly those frames
too. A true segment is a run of one label over consecutive classified frames (a frame the truth says nothing
about ends it); a predicted segment is measured by its classified frames that the truth labels, so the part
of it past the truth's end or in a gap of the truth counts neither for nor against it, and a segment lying
wholly outside the truth is left out. Overlaps are counted in frames, never compared as floating-point
times, so a rounding sliver can never make a segment of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mgc_edge.runtime.recorded.segments import MATCH_IOU, Segment
from mgc_edge.runtime.recorded.truth import Truth


@dataclass(frozen=True)
class SegmentCounts:
    """True, predicted and matched segments of one video, and a sentence on the frames left out (or None)."""

    true: int
    predicted: int
    matched: int
    note: str | None = None


class TruthFrames:
    """The truth's label of every classified frame of one video, gathered a batch at a time (frame numbers
    and label codes: a few bytes per frame)."""

    def __init__(self, truth: Truth) -> None:
        self.truth = truth
        self._frames: list[np.ndarray] = []
        self._codes: list[np.ndarray] = []
        self._labels: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, frames: Sequence[int], times: Sequence[float]) -> list[str | None]:
        """The true labels of a batch's frames (None where the truth says nothing), kept for `score`."""
        labels = self.truth.labels_at(frames, times)
        codes = np.fromiter((self._code(x) for x in labels), np.int32, len(labels))
        self._frames.append(np.asarray(frames, np.int64))
        self._codes.append(codes)
        return labels

    def _code(self, label: str | None) -> int:
        if label is None:
            return -1
        if label not in self._index:
            self._index[label] = len(self._labels)
            self._labels.append(label)
        return self._index[label]

    def score(
        self, predicted: Sequence[Segment], background: Iterable[str] = (), threshold: float = MATCH_IOU
    ) -> SegmentCounts:
        frames = np.concatenate(self._frames) if self._frames else np.zeros(0, np.int64)
        codes = np.concatenate(self._codes) if self._codes else np.zeros(0, np.int32)
        labelled = codes >= 0
        cum = np.concatenate(([0], np.cumsum(labelled)))
        skip = set(background)
        truth = [t for t in _runs(codes) if self._labels[t[0]] not in skip]
        preds = []
        for s in predicted:
            a = int(np.searchsorted(frames, s.start_frame, "left"))
            b = int(np.searchsorted(frames, s.end_frame, "right"))
            if cum[b] > cum[a]:
                preds.append((s.label, a, b, int(cum[b] - cum[a])))
        matched = _match(preds, [(self._labels[c], a, b) for c, a, b in truth], cum, threshold)
        return SegmentCounts(
            len(truth), len(preds), matched, self._note(frames, labelled, len(predicted) - len(preds))
        )

    def _note(self, frames: np.ndarray, labelled: np.ndarray, dropped: int) -> str | None:
        """One sentence on the classified frames without a truth and the truth rows past the video's end."""
        parts = []
        missing = int((~labelled).sum())
        if missing and labelled.any():
            first, last = np.flatnonzero(labelled)[[0, -1]]
            before, after = int(first), int(len(labelled) - 1 - last)
            gaps = missing - before - after
            where = [
                f"{n} {w}"
                for n, w in ((before, "before it"), (after, "after its end"), (gaps, "in its gaps"))
                if n
            ]
            parts.append(f"{missing} of {len(labelled)} classified frames have no truth ({', '.join(where)})")
        elif missing:
            parts.append(f"none of the {missing} classified frames has a truth")
        if dropped:
            parts.append(f"{dropped} predicted segment(s) lie wholly outside it")
        table = self.truth.frames
        if table is not None and len(frames):
            step = (
                int(np.diff(frames).min()) if len(frames) > 1 else 1
            )  # --every: the frames after the last count
            last = int(frames[-1]) + step - 1
            beyond = sum(1 for f in table if f > last)
            if beyond:
                parts.append(f"{beyond} truth row(s) lie past the last frame classified or skipped ({last})")
        if not parts:
            return None
        return f"truth {self.truth.path.name}: " + "; ".join(parts) + "; left out of every score."


def _runs(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """(code, start, end) of each run of one label code >= 0 over consecutive classified frames."""
    if not len(codes):
        return []
    cuts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(codes)]))
    return [(int(codes[a]), int(a), int(b)) for a, b in zip(starts, ends) if codes[a] >= 0]


def _match(
    preds: list[tuple[str, int, int, int]],
    truth: list[tuple[str, int, int]],
    cum: np.ndarray,
    threshold: float,
) -> int:
    """Predicted segments matching a true one of their label at IoU >= threshold (in labelled frames), each
    true one matched at most once, best overlaps first."""
    starts = np.array([a for _, a, _ in truth], np.int64)
    pairs = []
    for i, (label, a, b, n) in enumerate(preds):
        j = max(int(np.searchsorted(starts, a, "right")) - 1, 0)
        while j < len(truth) and truth[j][1] < b:
            t_label, c, d = truth[j]
            lo, hi = max(a, c), min(b, d)
            if t_label == label and hi > lo:
                inter = int(cum[hi] - cum[lo])
                union = n + (d - c) - inter
                if union and inter / union >= threshold:
                    pairs.append((-inter / union, i, j))
            j += 1
    pairs.sort()
    used_p: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)
