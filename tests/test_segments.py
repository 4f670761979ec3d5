"""Per-frame labels -> segments (incremental runs, minimum duration, background) and the scores against a
truth (frame accuracy, macro-F1 over frames, segment F1 at IoU >= 0.5), checked against hand-made cases and
against the project's own metrics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mgc_edge.metrics import macro_f1 as metrics_macro_f1
from mgc_edge.runtime.recorded.segments import (
    RunBuilder,
    Segment,
    SegmentError,
    Tally,
    clip_segments,
    merge_short,
    segments_from_labels,
    to_segments,
)

IDS = ["a", "b", "c"]
FPS = 10.0


def build(labels: list[int], batch: int = 4, probs: np.ndarray | None = None) -> RunBuilder:
    """Runs of `labels` (one per frame at FPS), fed `batch` frames at a time."""
    n = len(labels)
    frames = np.arange(n)
    times = frames / FPS
    lab = np.asarray(labels)
    p = probs if probs is not None else np.eye(3)[lab]
    runs = RunBuilder(3)
    for i in range(0, n, batch):
        runs.add(frames[i : i + batch], times[i : i + batch], lab[i : i + batch], p[i : i + batch])
    return runs


def spans(runs) -> list[tuple[int, int, int]]:
    return [(r.start_frame, r.end_frame, r.label) for r in runs]


@pytest.mark.parametrize("batch", [1, 3, 4, 100])
def test_runs_are_the_same_whatever_the_batch_boundaries(batch: int) -> None:
    labels = [0, 0, 1, 1, 1, 0, 2, 2, 2, 2, 2]
    runs = build(labels, batch).finish(len(labels) / FPS)
    assert spans(runs) == [(0, 1, 0), (2, 4, 1), (5, 5, 0), (6, 10, 2)]
    # Consecutive runs touch: each ends where the next starts, the last at the given end.
    bounds = [t for r in runs for t in (r.start_time, r.end_time)]
    assert bounds == pytest.approx([0, 0.2, 0.2, 0.5, 0.5, 0.6, 0.6, 1.1])
    assert [r.frames for r in runs] == [2, 3, 1, 5]
    assert runs[1].prob_sum.tolist() == [0, 3, 0]


def test_a_short_run_between_two_of_one_label_joins_them() -> None:
    runs = build([0] * 5 + [1] + [0] * 5).finish(1.1)
    merged = merge_short(runs, 0.3)
    assert spans(merged) == [(0, 10, 0)]
    assert merged[0].frames == 11 and merged[0].prob_sum.tolist() == [10, 1, 0]


def test_a_short_run_goes_to_the_neighbour_the_model_found_more_likely() -> None:
    labels = [0] * 5 + [1, 1] + [2] * 8
    probs = np.eye(3)[labels]
    probs[5:7] = [0.2, 0.5, 0.3]  # over the short run, c (index 2) is likelier than a
    merged = merge_short(build(labels, probs=probs).finish(1.5), 0.3)
    assert spans(merged) == [(0, 4, 0), (5, 14, 2)]
    probs[5:7] = [0.3, 0.5, 0.2]  # now a is
    merged = merge_short(build(labels, probs=probs).finish(1.5), 0.3)
    assert spans(merged) == [(0, 6, 0), (7, 14, 2)]


def test_merging_keeps_every_frame_and_leaves_no_short_run() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500).tolist()  # flicker: most runs are a frame or two
    runs = build(labels, batch=32).finish(50.0)
    merged = merge_short(runs, 0.5)
    assert sum(r.frames for r in merged) == 500
    assert all(r.seconds >= 0.5 for r in merged) and len(merged) < 60
    assert merged[0].start_time == 0 and merged[-1].end_time == 50.0
    assert all(a.end_time == b.start_time and a.label != b.label for a, b in zip(merged, merged[1:]))
    assert spans(merge_short(build(labels).finish(50.0), 0)) == spans(build(labels).finish(50.0))


def test_merging_a_long_flickering_video_is_fast() -> None:
    labels = np.tile([0, 1], 50_000).tolist()  # 100,000 runs of one frame
    runs = build(labels, batch=4096).finish(10_000.0)
    start = time.perf_counter()
    merged = merge_short(runs, 0.3)
    assert time.perf_counter() - start < 10
    assert sum(r.frames for r in merged) == 100_000


def test_negative_minimum_is_refused() -> None:
    with pytest.raises(SegmentError, match="--min-seconds"):
        merge_short([], -1)


def test_background_labels_leave_the_segments() -> None:
    runs = build([0, 0, 0, 1, 1, 1, 2, 2, 2]).finish(0.9)
    segs = to_segments(runs, IDS, background=["b"])
    assert [(s.label, s.start_frame, s.end_frame) for s in segs] == [("a", 0, 2), ("c", 6, 8)]
    assert all(s.mean_prob == 1.0 for s in segs)


def test_truth_segments_from_frame_labels_break_at_gaps() -> None:
    segs = segments_from_labels([0, 1, 2, 3, 4, 8, 9], ["a", "a", "b", "b", "b", "b", "b"], 0.1)
    assert [(s.label, s.start_frame, s.end_frame) for s in segs] == [("a", 0, 1), ("b", 2, 4), ("b", 8, 9)]
    assert (segs[1].start_time, segs[1].end_time) == pytest.approx((0.2, 0.5))
    assert len(segments_from_labels([0, 1], ["a", "b"], 0.1, background=["a"])) == 1


def seg(a: float, b: float, label: str = "a") -> Segment:
    return Segment(0, 0, a, b, label)


def test_clipping_keeps_the_parts_inside_the_span() -> None:
    clipped = clip_segments([seg(0, 2), seg(3, 4)], 1, 3.5)
    assert [(s.start_time, s.end_time) for s in clipped] == [(1, 2), (3, 3.5)]


def test_scores_agree_with_the_project_metrics() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.6, truth, rng.integers(0, 5, 300))  # class 4 is never true
    names = ["w", "x", "y", "z", "q"]
    tally = Tally()
    tally.add_frames([names[t] for t in truth], [names[p] for p in pred], [names[t] for t in truth])
    tally.add_frames([None, None], ["w", "w"], ["w", "w"])
    s = tally.scores()
    assert s["scored_frames"] == 300 and s["unlabelled_frames"] == 2
    assert s["frame_accuracy"] == pytest.approx(np.mean(truth == pred))
    assert s["top1_accuracy"] == 1.0
    assert s["frame_macro_f1"] == pytest.approx(metrics_macro_f1(truth, pred, 5))


def test_segment_precision_recall_and_f1_add_up_over_videos() -> None:
    tally = Tally()
    tally.add_segments(3, 3, 3)
    tally.add_segments(0, 1, 0)  # a second video: one false positive
    s = tally.scores()
    assert (s["segments_matched"], s["segments_predicted"], s["segments_true"]) == (3, 4, 3)
    assert s["segment_precision"] == 0.75 and s["segment_recall"] == 1.0
    assert s["segment_f1"] == pytest.approx(2 * 3 / 7)
    again = Tally.from_dict(tally.to_dict())  # summary.json keeps the counts, not only the scores
    assert again.scores() == s
    empty = Tally().scores()
    assert empty["frame_accuracy"] is None and empty["segment_f1"] is None
