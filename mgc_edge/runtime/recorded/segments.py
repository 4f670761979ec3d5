"""Per-frame labels -> gesture segments, and how well segments and frames agree with a truth; numpy only.

A segment is a run of frames with the same (smoothed) label, from the time of its first frame to the time
of the frame after its last one, so that consecutive segments touch. Runs are built incrementally, one
batch of frames at a time, keeping per run only its bounds and the sum of its frames' probabilities: a
two-hour video costs as much memory as its number of label changes, never its number of frames.

Runs shorter than a minimum duration are flicker, not gestures: each is merged, shortest first, into the
neighbour whose label the model found more likely over the short run's frames (the two neighbours and the
run become one where the neighbours share a label). Labels named as background then leave the segments.

Scoring follows the temporal action segmentation literature: frame accuracy and macro-F1 over frames, and
segment precision / recall / F1 where a predicted segment counts when it overlaps a not yet matched true
segment of the same label with an intersection over union of at least 0.5, counted in the frames the truth
labels (`scoring.py`); `Tally` adds the counts up.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.metrics import macro_f1_of_counts

MATCH_IOU = 0.5  # the usual threshold of segment F1 (F1@50)


class SegmentError(UserError):
    """A bad segmentation option (negative minimum duration, ...); the message is one sentence."""


@dataclass(frozen=True)
class Segment:
    """Frames `start_frame..end_frame` (inclusive), from `start_time` to `end_time` seconds (exclusive:
    where the next segment starts), all of label `label` (a label id, the class folder name)."""

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    label: str
    mean_prob: float = 1.0

    @property
    def seconds(self) -> float:
        return self.end_time - self.start_time


@dataclass(slots=True)
class Run:
    """A run of consecutive classified frames with one label index, and its frames' summed probabilities
    (slots and float32 sums: a two-hour video holds thousands of runs, and this is all it holds)."""

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    label: int
    frames: int
    prob_sum: np.ndarray  # [C] float32, summed over the run's frames
    prev: Run | None = field(default=None, repr=False)
    next: Run | None = field(default=None, repr=False)
    alive: bool = True

    @property
    def seconds(self) -> float:
        return self.end_time - self.start_time


class RunBuilder:
    """Run-length encodes a stream of classified frames (frame index, time, label index, probabilities),
    fed a batch at a time; `finish(end_time)` closes the last run and returns them all."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.runs: list[Run] = []
        self.frames = 0

    def add(self, frames: np.ndarray, times: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> None:
        """Append a batch: frames [B] (increasing), times [B] seconds, labels [B], probs [B, C]."""
        n = len(labels)
        if n == 0:
            return
        labels = np.asarray(labels)
        # Boundaries: where the label changes inside the batch, plus the batch's start.
        cuts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [n]))
        sums = np.add.reduceat(np.asarray(probs, np.float32), starts, axis=0)
        for i, (a, b) in enumerate(zip(starts, ends)):
            label = int(labels[a])
            last = self.runs[-1] if self.runs else None
            if last is not None:
                last.end_time = float(times[a])  # the previous run ends where this frame starts
            if last is not None and last.label == label:
                last.end_frame = int(frames[b - 1])
                last.frames += int(b - a)
                last.prob_sum += sums[i]
            else:
                self.runs.append(
                    Run(int(frames[a]), int(frames[b - 1]), float(times[a]), float(times[a]), label,
                        int(b - a), sums[i].copy())
                )  # fmt: skip
        self.runs[-1].end_time = float(times[-1])  # provisional until the next frame or finish()
        self.frames += n

    def finish(self, end_time: float) -> list[Run]:
        """The runs, the last one ending at `end_time` (the time just after the last classified frame)."""
        if self.runs:
            last = self.runs[-1]
            last.end_time = max(float(end_time), last.start_time)
        return self.runs


def merge_short(runs: Sequence[Run], min_seconds: float) -> list[Run]:
    """Merge every run shorter than `min_seconds` into a neighbour, shortest first (a heap, so a two-hour
    video of flicker stays fast): into both neighbours when they share a label, else into the one whose
    label has the larger summed probability over the short run's frames (ties: the longer neighbour)."""
    if min_seconds < 0:
        raise SegmentError(f"--min-seconds must be 0 or more, got {min_seconds:g}.")
    runs = list(runs)
    for a, b in zip(runs, runs[1:]):
        a.next, b.prev = b, a
    if runs:
        runs[0].prev = None
        runs[-1].next = None
    heap = [(r.seconds, r.start_frame, i) for i, r in enumerate(runs) if r.seconds < min_seconds]
    heapq.heapify(heap)
    index = {id(r): i for i, r in enumerate(runs)}
    while heap:
        seconds, _, i = heapq.heappop(heap)
        run = runs[i]
        if not run.alive or run.seconds != seconds or (run.prev is None and run.next is None):
            continue  # merged away, grown since it was pushed, or the only run left
        prev, nxt = run.prev, run.next
        if prev is not None and nxt is not None and prev.label == nxt.label:
            target = _absorb(prev, run)
            target = _absorb(target, nxt)
        else:
            target_is_prev = nxt is None or (
                prev is not None
                and (run.prob_sum[prev.label], prev.seconds) >= (run.prob_sum[nxt.label], nxt.seconds)
            )
            target = _absorb(prev, run) if target_is_prev else _absorb(run, nxt, keep_right=True)
        if target.seconds < min_seconds and (target.prev is not None or target.next is not None):
            heapq.heappush(heap, (target.seconds, target.start_frame, index[id(target)]))
    return [r for r in runs if r.alive]


def _absorb(left: Run, right: Run, keep_right: bool = False) -> Run:
    """Join two adjacent runs into one; the label of `left` (or of `right` with keep_right) wins."""
    keep, gone = (right, left) if keep_right else (left, right)
    keep.start_frame, keep.start_time = left.start_frame, left.start_time
    keep.end_frame, keep.end_time = right.end_frame, right.end_time
    keep.frames = left.frames + right.frames
    keep.prob_sum = left.prob_sum + right.prob_sum
    keep.prev, keep.next = left.prev, right.next
    if keep.prev is not None:
        keep.prev.next = keep
    if keep.next is not None:
        keep.next.prev = keep
    gone.alive = False
    return keep


def to_segments(
    runs: Iterable[Run], label_ids: Sequence[str], background: Iterable[str] = ()
) -> list[Segment]:
    """Runs -> segments, leaving out background labels; `mean_prob` is the mean probability of the
    segment's label over its frames (after smoothing, where the probabilities were smoothed)."""
    skip = set(background)
    out = []
    for r in runs:
        label = label_ids[r.label]
        if label in skip:
            continue
        mean = float(r.prob_sum[r.label] / r.frames) if r.frames else 0.0
        out.append(Segment(r.start_frame, r.end_frame, r.start_time, r.end_time, label, mean))
    return out


def segments_from_labels(
    frames: Sequence[int], labels: Sequence[str], frame_seconds: float, background: Iterable[str] = ()
) -> list[Segment]:
    """Segments of a per-frame truth (`frame,label` rows): runs of one label over consecutive frames; a
    gap in the frame numbers ends a run. Times are frame / fps (`frame_seconds` = 1 / fps)."""
    skip = set(background)
    out: list[Segment] = []
    order = np.argsort(np.asarray(frames), kind="stable")
    start = prev = None
    current = None
    for i in order:
        f, label = int(frames[i]), str(labels[i])
        if start is not None and (label != current or f != prev + 1):
            out.append(_truth_segment(start, prev, current, frame_seconds))
            start = None
        if start is None:
            start, current = f, label
        prev = f
    if start is not None:
        out.append(_truth_segment(start, prev, current, frame_seconds))
    return [s for s in out if s.label not in skip]


def _truth_segment(first: int, last: int, label: str, frame_seconds: float) -> Segment:
    return Segment(first, last, first * frame_seconds, (last + 1) * frame_seconds, label)


def clip_segments(segments: Iterable[Segment], start: float, end: float) -> list[Segment]:
    """The parts of `segments` inside [start, end) seconds (a truth cut to the classified span)."""
    out = []
    for s in segments:
        a, b = max(s.start_time, start), min(s.end_time, end)
        if b > a:
            out.append(Segment(s.start_frame, s.end_frame, a, b, s.label, s.mean_prob))
    return out


@dataclass
class Tally:
    """Counts behind the scores of one video (or of several, added together): frame pairs (true label,
    predicted label) for frames with a known label, the top-1 hits, and the segment counts."""

    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    top1_correct: int = 0
    unlabelled: int = 0  # classified frames the truth says nothing about
    true_segments: int = 0
    predicted_segments: int = 0
    matched_segments: int = 0

    def add_frames(self, truth: Sequence[str | None], smoothed: Sequence[str], top1: Sequence[str]) -> None:
        """Frames of one batch: their true labels (None = unknown), smoothed and top-1 labels."""
        for t, s, p in zip(truth, smoothed, top1):
            if t is None:
                self.unlabelled += 1
                continue
            self.pairs[(t, s)] += 1
            self.top1_correct += t == p

    def add_segments(self, true: int, predicted: int, matched: int) -> None:
        """Segment counts of one video (recorded/scoring.py scores them on the truth's frames)."""
        self.true_segments += true
        self.predicted_segments += predicted
        self.matched_segments += matched

    def to_dict(self) -> dict[str, Any]:
        """The counts, as summary.json keeps them so that overall scores can be recomputed from it."""
        return {
            "pairs": sorted([t, p, c] for (t, p), c in self.pairs.items()),
            "top1_correct": self.top1_correct,
            "unlabelled": self.unlabelled,
            "segments": [self.true_segments, self.predicted_segments, self.matched_segments],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tally:
        tally = cls(Counter({(str(t), str(p)): int(c) for t, p, c in data["pairs"]}))
        tally.top1_correct, tally.unlabelled = int(data["top1_correct"]), int(data["unlabelled"])
        tally.true_segments, tally.predicted_segments, tally.matched_segments = map(int, data["segments"])
        return tally

    def __iadd__(self, other: Tally) -> Tally:
        self.pairs.update(other.pairs)
        self.top1_correct += other.top1_correct
        self.unlabelled += other.unlabelled
        self.true_segments += other.true_segments
        self.predicted_segments += other.predicted_segments
        self.matched_segments += other.matched_segments
        return self

    @property
    def frames(self) -> int:
        return sum(self.pairs.values())

    def scores(self) -> dict[str, Any]:
        """Frame accuracy (smoothed label, the one segments are made of), top-1 frame accuracy, macro-F1 over
        frames, and segment precision / recall / F1 at IoU >= MATCH_IOU; None where undefined."""
        n = self.frames
        correct = sum(c for (t, p), c in self.pairs.items() if t == p)
        p_seg = _ratio(self.matched_segments, self.predicted_segments)
        r_seg = _ratio(self.matched_segments, self.true_segments)
        f_seg = None
        if self.predicted_segments + self.true_segments:
            f_seg = 2 * self.matched_segments / (self.predicted_segments + self.true_segments)
        return {
            "scored_frames": n,
            "unlabelled_frames": self.unlabelled,
            "frame_accuracy": _ratio(correct, n),
            "top1_accuracy": _ratio(self.top1_correct, n),
            "frame_macro_f1": macro_f1(self.pairs) if n else None,
            "segments_true": self.true_segments,
            "segments_predicted": self.predicted_segments,
            "segments_matched": self.matched_segments,
            "segment_precision": p_seg,
            "segment_recall": r_seg,
            "segment_f1": f_seg,
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def macro_f1(pairs: Mapping[tuple[str, str], int]) -> float:
    """metrics' macro-F1 (mean F1 over the labels that occur in the truth or the predictions) of counts of
    (true, predicted) label pairs."""
    labels = sorted({label for pair in pairs for label in pair})
    if not labels:
        return 0.0
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), np.int64)
    for (t, p), c in pairs.items():
        cm[index[t], index[p]] += c
    return macro_f1_of_counts(cm)
