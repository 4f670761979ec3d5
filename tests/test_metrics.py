"""Metrics on hand-computed cases: frame and clip level, majority baseline, small classes, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgc_edge.labels import Labels
from mgc_edge.metrics import (
    accuracy,
    balanced_accuracy,
    clip_bootstrap_se,
    confusion_matrix,
    evaluate_predictions,
    macro_f1,
    top_k_accuracy,
)

LABELS3 = Labels(("1", "2", "3"), ("Turtle neck", "Bulging face", "Touching hat"))

# 3 classes, 6 samples, class 0 is the majority of this set.
Y = np.array([0, 0, 0, 1, 1, 2])
P = np.array(
    [
        [0.7, 0.2, 0.1],  # true 0 -> 0
        [0.6, 0.3, 0.1],  # true 0 -> 0
        [0.1, 0.5, 0.4],  # true 0 -> 1, and 0 is not in its top-2
        [0.1, 0.8, 0.1],  # true 1 -> 1
        [0.1, 0.3, 0.6],  # true 1 -> 2, 1 is second
        [0.2, 0.2, 0.6],  # true 2 -> 2
    ]
)
PRED = P.argmax(axis=1)
# By hand: confusion rows = true, cols = predicted.
CM = [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
RECALL = [2 / 3, 1 / 2, 1.0]
PRECISION = [1.0, 1 / 2, 1 / 2]
F1 = [2 * 2 / (3 + 2), 2 * 1 / (2 + 2), 2 * 1 / (1 + 2)]  # 2TP / (support + predicted)


def test_small_helpers_match_hand_computation():
    assert accuracy(Y, P) == pytest.approx(4 / 6)
    assert top_k_accuracy(Y, P, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy(Y, P, 10) == 1.0  # k is capped at C
    assert confusion_matrix(Y, PRED, 3).tolist() == CM
    assert balanced_accuracy(Y, PRED, 3) == pytest.approx(np.mean(RECALL))
    assert macro_f1(Y, PRED, 3) == pytest.approx(np.mean(F1))


def test_accuracy_accepts_logits():
    assert accuracy(Y, np.log(P) * 3.0 + 7.0) == pytest.approx(4 / 6)


def test_macro_f1_skips_classes_absent_from_truth_and_predictions_but_counts_false_positives():
    assert macro_f1(np.array([0, 1]), np.array([0, 1]), 4) == 1.0  # classes 2, 3 never occur: not averaged
    # class 1 is predicted but has no support: F1 = 0 and it is averaged in.
    assert macro_f1(np.array([0, 0]), np.array([0, 1]), 3) == pytest.approx((2 / 3 + 0.0) / 2)


def test_evaluate_predictions_frame_level():
    r = evaluate_predictions(Y, P, LABELS3)
    assert r["n"] == 6 and r["num_classes"] == 3
    assert r["top1"] == pytest.approx(4 / 6)
    assert r["top5"] == 1.0 and r["top5_k"] == 3
    assert r["balanced_accuracy"] == pytest.approx(np.mean(RECALL))
    assert r["macro_f1"] == pytest.approx(np.mean(F1))
    assert r["confusion"] == CM
    assert [c["label"] for c in r["per_class"]] == ["1", "2", "3"]
    assert [c["name"] for c in r["per_class"]] == ["Turtle neck", "Bulging face", "Touching hat"]
    assert [c["support"] for c in r["per_class"]] == [3, 2, 1]
    assert [c["clips"] for c in r["per_class"]] == [None, None, None]
    assert [c["precision"] for c in r["per_class"]] == pytest.approx(PRECISION)
    assert [c["recall"] for c in r["per_class"]] == pytest.approx(RECALL)
    assert [c["f1"] for c in r["per_class"]] == pytest.approx(F1)
    assert r["clip"] is None


def test_top5_uses_five_when_there_are_more_classes():
    scores = np.array([7, 6, 5, 4, 3, 2, 1], dtype=float) / 28.0
    probs = np.stack([scores, scores])
    r = evaluate_predictions(np.array([4, 5]), probs, Labels(tuple(str(i) for i in range(7))))
    assert r["top5_k"] == 5
    assert r["top5"] == 0.5  # rank 5 counts, rank 6 does not
    assert r["top1"] == 0.0


def test_undefined_per_class_values_are_none_and_report_is_plain_json():
    # Class "3" never occurs and is never predicted: no precision, recall or F1; class "2" is never predicted.
    y = np.array([0, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    r = evaluate_predictions(y, probs, LABELS3, groups=["a", "b"], train_counts=[5, 1, 1])
    c2, c3 = r["per_class"][1], r["per_class"][2]
    assert (c2["precision"], c2["recall"], c2["f1"]) == (None, 0.0, 0.0)
    assert (c3["precision"], c3["recall"], c3["f1"]) == (None, None, None)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)

    def plain(x):
        if isinstance(x, dict):
            return all(type(k) is str and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return x is None or type(x) in (int, float, str, bool)

    assert plain(r)  # no numpy scalars hiding in the dict
    json.dumps(r, allow_nan=False)


def test_clip_level_averages_softmax_and_can_beat_frame_level():
    # Clip "a" (class 0): two frames lean to 1, one frame is sure of 0. Frame argmax gets 1/3 and a majority
    # vote gets it wrong; the mean softmax [0.6, 0.4, 0] gets it right.
    y = np.array([0, 1, 0, 2, 0, 1])
    probs = np.array(
        [
            [0.45, 0.55, 0.0],  # a
            [0.2, 0.7, 0.1],  # b
            [0.45, 0.55, 0.0],  # a
            [0.5, 0.1, 0.4],  # c (wrong)
            [0.9, 0.1, 0.0],  # a
            [0.3, 0.6, 0.1],  # b
        ]
    )
    groups = ["a", "b", "a", "c", "a", "b"]  # interleaved on purpose: grouping is by key, not by position
    r = evaluate_predictions(y, probs, LABELS3, groups=groups)
    assert r["top1"] == pytest.approx(3 / 6)
    clip = r["clip"]
    assert clip["n_clips"] == 3
    assert clip["top1"] == pytest.approx(2 / 3)
    assert clip["balanced_accuracy"] == pytest.approx(2 / 3)
    assert clip["mixed_label_clips"] == 0
    assert [c["clips"] for c in r["per_class"]] == [1, 1, 1]


def test_mixed_label_clip_takes_majority_label_and_is_counted():
    y = np.array([0, 0, 1, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    r = evaluate_predictions(y, probs, LABELS3, groups=["x", "x", "x", "y"])
    assert r["clip"]["mixed_label_clips"] == 1
    assert r["clip"]["top1"] == 1.0  # clip x is labelled 0 (2 of 3 frames), predicted 0
    assert [c["clips"] for c in r["per_class"]] == [1, 0, 1]


def test_baseline_uses_train_majority_not_eval_majority():
    r = evaluate_predictions(Y, P, LABELS3, train_counts=[1, 10, 2])
    base = r["baseline"]
    assert (base["label"], base["index"], base["name"], base["source"]) == ("2", 1, "Bulging face", "train")
    assert base["top1"] == pytest.approx(2 / 6)
    assert base["balanced_accuracy"] == pytest.approx(1 / 3)  # recall 1 for class 1, 0 for the others
    assert base["macro_f1"] == pytest.approx((2 * 2 / (2 + 6)) / 3)
    assert base["top5"] == 1.0  # the 3 most frequent train classes cover everything
    assert base["clip_top1"] is None

    fallback = evaluate_predictions(Y, P, LABELS3)["baseline"]
    assert (fallback["label"], fallback["source"]) == ("1", "evaluation")
    assert fallback["top1"] == pytest.approx(3 / 6)


def test_too_small_counts_clips_when_groups_are_given():
    assert evaluate_predictions(Y, P, LABELS3, min_clips_to_judge=2)["too_small_to_judge"] == ["3"]
    # Class "1" has 3 frames but they are one clip: too small once clips are counted.
    groups = ["a", "a", "a", "b", "c", "d"]
    r = evaluate_predictions(Y, P, LABELS3, groups=groups, min_clips_to_judge=2)
    assert r["judged_on"] == "clips"
    assert r["too_small_to_judge"] == ["1", "3"]
    assert [c["clips"] for c in r["per_class"]] == [1, 2, 1]


@pytest.mark.parametrize(
    ("y", "probs", "kwargs", "match"),
    [
        (Y, P[:, 0], {}, "2-D"),
        (Y[:5], P, {}, "5 samples"),
        (Y, P[:, :2] / P[:, :2].sum(1, keepdims=True), {}, "2 columns"),
        (np.array([0, 0, 0, 1, 1, 3]), P, {}, "outside"),
        (np.array([0, 0, 0, 1, 1, -1]), P, {}, "outside"),
        (Y.astype(float), P, {}, "integer"),
        (Y, np.log(P), {}, "softmax"),
        (Y, np.where(P == 0.7, np.nan, P), {}, "NaN"),
        (Y, P, {"groups": ["a"] * 5}, "groups"),
        (Y, P, {"train_counts": [1, 2]}, "train_counts"),
        (Y, P, {"train_counts": [0, 0, 0]}, "positive total"),
    ],
)
def test_bad_inputs_raise_one_sentence(y, probs, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        evaluate_predictions(y, probs, LABELS3, **kwargs)
    assert str(info.value).endswith(".")


def test_helpers_reject_bad_inputs():
    with pytest.raises(ValueError, match="y_pred"):
        confusion_matrix(Y, PRED[:5], 3)
    with pytest.raises(ValueError, match="outside"):
        macro_f1(Y, np.array([0, 0, 0, 1, 1, 5]), 3)
    with pytest.raises(ValueError, match="empty"):
        macro_f1(np.array([], dtype=int), np.array([], dtype=int), 3)


def _clips(n_clips: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two classes; each clip is right or wrong as a whole (frames of one clip look alike)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 2, n_clips), frames)
    right = np.repeat(rng.random(n_clips) < 0.5, frames)
    pred = np.where(right, y, 1 - y)
    return y, pred, [f"c{i}" for i in np.repeat(np.arange(n_clips), frames)]


def test_clip_bootstrap_se_follows_the_number_of_clips_not_frames() -> None:
    y, pred, groups = _clips(40, 10, seed=1)
    by_clip = clip_bootstrap_se(y, pred, groups, 2, n_boot=400)
    by_frame = clip_bootstrap_se(y, pred, [str(i) for i in range(len(y))], 2, n_boot=400)
    p = float(np.mean(y == pred))
    assert by_clip["top1"] == pytest.approx(np.sqrt(p * (1 - p) / 40), rel=0.25)
    assert by_clip["top1"] > 2.5 * by_frame["top1"]  # 400 frames are only 40 independent draws
    many = clip_bootstrap_se(*_clips(1000, 2, seed=2), 2, n_boot=400)
    assert by_clip["top1"] > 3 * many["top1"] and by_clip["macro_f1"] > 3 * many["macro_f1"]


def test_clip_bootstrap_se_is_zero_when_every_clip_is_right() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    se = clip_bootstrap_se(y, y, ["a", "a", "b", "b", "c", "c"], 3)
    assert se == {"top1": 0.0, "macro_f1": 0.0}
    assert np.isnan(clip_bootstrap_se(y, y, ["a"] * 6, 3)["top1"])  # one clip: no spread to measure
    with pytest.raises(ValueError, match="groups"):
        clip_bootstrap_se(y, y, ["a"], 3)
