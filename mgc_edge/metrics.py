"""Classification metrics for imbalanced, clip-grouped data; numpy only (no torch).

`evaluate_predictions` is longer than 60 lines: it assembles one report, field by field, in the order
the report is read.

`evaluate_predictions` builds the JSON-ready report that DOMAIN.md asks for: top-1/top-5, balanced
accuracy, macro-F1, per-class scores and a confusion matrix, always beside the majority-class baseline,
with clip-level accuracy (mean softmax over a clip's frames) beside frame-level accuracy, and the classes
too small to judge. The small helpers (`accuracy`, `macro_f1`, ...) are what the trainer calls per epoch.

Conventions, shared with scikit-learn's defaults so that numbers can be cross-checked:
- balanced accuracy = mean recall over the classes that have support in `y_true`;
- macro-F1 = mean F1 over the classes that occur in `y_true` or in the predictions. A class absent from
  both carries no information about the model (counting it as 0 would punish the split, as 1 would flatter
  the model); a class that is predicted but absent from the truth counts, with F1 = 0, so that false
  positives still cost;
- per-class F1 = 2TP / (2TP + FP + FN), precision is None when a class is never predicted, recall is None
  when it has no support, F1 is None when it has neither.
All rates are fractions in [0, 1]; undefined values are None so that the dict stays valid JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mgc_edge.labels import Labels

MIN_CLIPS_TO_JUDGE = 5  # fewer clips of a class in an evaluated set and its figures are mostly luck

__all__ = [
    "MIN_CLIPS_TO_JUDGE",
    "accuracy",
    "balanced_accuracy",
    "clip_bootstrap_se",
    "confusion_matrix",
    "evaluate_predictions",
    "macro_f1",
    "top_k_accuracy",
]

# Softmax rows computed in float16 can miss 1 by a few 1e-3; logits miss by far more.
_PROB_SUM_TOL = 1e-2


# ----------------------------------------------------------------------------- validation


def _check_labels(y: Any, num_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of label indices; got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer label indices; got dtype {arr.dtype}.")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1; got {num_classes}.")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{name} holds label indices outside 0..{num_classes - 1} (min {arr.min()}, max {arr.max()})."
        )
    return arr.astype(np.int64, copy=False)


def _check_scores(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be a 2-D array [N, C]; got shape {p.shape}.")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must hold at least one sample and one class; got shape {p.shape}.")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"probs must be floating point; got dtype {p.dtype}.")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs holds NaN or infinite values.")
    y = _check_labels(y_true, p.shape[1], "y_true")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} samples but probs has {p.shape[0]} rows.")
    return y, p


def _check_pair(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t = _check_labels(y_true, num_classes, "y_true")
    p = _check_labels(y_pred, num_classes, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[0]} samples but y_pred has {p.shape[0]}.")
    if t.size == 0:
        raise ValueError("Cannot score an empty set of predictions.")
    return t, p


# ----------------------------------------------------------------------------- small helpers


def _top_k_indices(probs: np.ndarray, k: int) -> np.ndarray:
    # Stable sort of -probs: ties resolve to the lower class index, as np.argmax does, so top-1 == argmax.
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the k highest scores (k is capped at C)."""
    y, p = _check_scores(y_true, probs)
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}.")
    top = _top_k_indices(p, min(k, p.shape[1]))
    return float(np.mean(np.any(top == y[:, None], axis=1)))


def accuracy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Top-1 accuracy from scores [N, C]; logits work as well as probabilities (argmax is the same)."""
    y, p = _check_scores(y_true, probs)
    return float(np.mean(np.argmax(p, axis=1) == y))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [C, C] with rows = true class and columns = predicted class (int64)."""
    t, p = _check_pair(y_true, y_pred, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def _per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        denom = support + predicted  # 2TP + FP + FN
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    return {"support": support, "predicted": predicted, "precision": precision, "recall": recall, "f1": f1}


def _macro_f1_from_cm(cm: np.ndarray) -> float:
    f1 = _per_class(cm)["f1"]
    return float(np.nanmean(f1))  # NaN = class neither present nor predicted; never all-NaN for N > 0


def _balanced_from_cm(cm: np.ndarray) -> float:
    return float(np.nanmean(_per_class(cm)["recall"]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean F1 over classes present in y_true or y_pred (scikit-learn's default macro average)."""
    return _macro_f1_from_cm(confusion_matrix(y_true, y_pred, num_classes))


def macro_f1_of_counts(cm: np.ndarray) -> float:
    """`macro_f1` of a confusion matrix [C, C] of counts (rows true, columns predicted) made elsewhere."""
    return _macro_f1_from_cm(np.asarray(cm))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over classes with support: the number to pick checkpoints on when classes are imbalanced."""
    return _balanced_from_cm(confusion_matrix(y_true, y_pred, num_classes))


# ----------------------------------------------------------------------------- full report


def clip_bootstrap_se(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Sequence[str],
    num_classes: int,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Standard errors of top-1 and macro-F1 under resampling whole clips with replacement: how far a
    figure on this split moves by the luck of which clips it holds (frames of a clip are not independent).
    """
    y, pred = _check_pair(y_true, y_pred, num_classes)
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} entries for {len(y)} samples.")
    _, clip_of = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    n_clips = int(clip_of.max()) + 1 if len(y) else 0
    if n_clips < 2:
        return {"top1": float("nan"), "macro_f1": float("nan")}
    rng = np.random.default_rng(seed)
    hit, cell = (y == pred).astype(np.float64), y * num_classes + pred
    top1, f1 = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        w = np.bincount(rng.integers(0, n_clips, n_clips), minlength=n_clips)[clip_of].astype(np.float64)
        top1[b] = (w * hit).sum() / w.sum()
        cm = np.bincount(cell, weights=w, minlength=num_classes * num_classes).reshape(num_classes, -1)
        f1[b] = _macro_f1_from_cm(cm)
    return {"top1": float(top1.std(ddof=1)), "macro_f1": float(f1.std(ddof=1))}


def _opt(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _clip_aggregate(
    y: np.ndarray, probs: np.ndarray, groups: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per clip: majority true label, mean softmax [G, C], frame count, and how many clips mix labels."""
    keys = np.asarray([str(g) for g in groups])
    if keys.shape != (y.shape[0],):
        raise ValueError(f"groups has {len(groups)} entries but there are {y.shape[0]} samples.")
    _, inv = np.unique(keys, return_inverse=True)
    inv = inv.reshape(-1)
    n_clips = int(inv.max()) + 1
    num_classes = probs.shape[1]
    frames = np.bincount(inv, minlength=n_clips)
    # Sum of softmax per clip, class by class (bincount with weights is fast and exact enough in float64).
    sums = np.stack(
        [
            np.bincount(inv, weights=probs[:, c].astype(np.float64), minlength=n_clips)
            for c in range(num_classes)
        ],
        axis=1,
    )
    mean_probs = sums / frames[:, None]
    votes = np.bincount(inv * num_classes + y, minlength=n_clips * num_classes).reshape(n_clips, num_classes)
    clip_true = np.argmax(votes, axis=1)  # majority label; a tie goes to the lower label index
    mixed = int(np.sum(np.count_nonzero(votes, axis=1) > 1))
    return clip_true, mean_probs, frames, mixed


def evaluate_predictions(
    y_true: np.ndarray,
    probs: np.ndarray,
    labels: Labels,
    groups: Sequence[str] | None = None,
    train_counts: Sequence[int] | None = None,
    min_clips_to_judge: int = MIN_CLIPS_TO_JUDGE,
) -> dict[str, Any]:
    """Score softmax outputs against true labels and return a JSON-ready report (see the module docstring).

    `groups` (the clip key of each sample) enables clip-level scores; `train_counts` (frames per class in the
    train split) defines the majority baseline, which otherwise falls back to the evaluation set's majority.
    """
    num_classes = len(labels)
    shape = np.shape(probs)
    if len(shape) == 2 and shape[1] != num_classes:
        raise ValueError(f"probs has {shape[1]} columns but there are {num_classes} labels.")
    y, p = _check_scores(y_true, probs)
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=_PROB_SUM_TOL):
        raise ValueError("probs must be softmax probabilities (non-negative rows summing to 1), not logits.")
    if min_clips_to_judge < 0:
        raise ValueError(f"min_clips_to_judge must be non-negative; got {min_clips_to_judge}.")
    n = int(y.shape[0])
    k = min(5, num_classes)

    y_pred = np.argmax(p, axis=1)
    cm = confusion_matrix(y, y_pred, num_classes)
    pc = _per_class(cm)

    # Clip level: argmax of the mean softmax over a clip's frames.
    clip: dict[str, Any] | None = None
    clips_per_class: np.ndarray | None = None
    clip_true: np.ndarray | None = None
    if groups is not None:
        clip_true, mean_probs, _, mixed = _clip_aggregate(y, p, groups)
        clip_pred = np.argmax(mean_probs, axis=1)
        clip_cm = confusion_matrix(clip_true, clip_pred, num_classes)
        clips_per_class = np.bincount(clip_true, minlength=num_classes)
        clip = {
            "n_clips": int(clip_true.shape[0]),
            "top1": float(np.mean(clip_pred == clip_true)),
            "top5": top_k_accuracy(clip_true, mean_probs, k),
            "balanced_accuracy": _balanced_from_cm(clip_cm),
            "macro_f1": _macro_f1_from_cm(clip_cm),
            "mixed_label_clips": mixed,
        }

    # Majority baseline: always answer the class most frequent in the train split.
    if train_counts is not None:
        counts = np.asarray(train_counts)
        if counts.shape != (num_classes,):
            raise ValueError(
                f"train_counts must have one count per class ({num_classes}); got shape {counts.shape}."
            )
        if not np.issubdtype(counts.dtype, np.number) or np.any(counts < 0) or counts.sum() <= 0:
            raise ValueError("train_counts must be non-negative counts with a positive total.")
        source = "train"
    else:
        counts = np.bincount(y, minlength=num_classes)
        source = "evaluation"
    majority = int(np.argmax(counts))  # ties go to the lower label index
    ranked = np.argsort(-counts, kind="stable")[:k]
    base_cm = confusion_matrix(y, np.full(n, majority), num_classes)
    baseline = {
        "label": labels.ids[majority],
        "index": majority,
        "name": labels.display(majority),
        "source": source,
        "top1": float(np.mean(y == majority)),
        "top5": float(np.mean(np.isin(y, ranked))),
        "balanced_accuracy": _balanced_from_cm(base_cm),
        "macro_f1": _macro_f1_from_cm(base_cm),
        "clip_top1": None if clip_true is None else float(np.mean(clip_true == majority)),
    }

    judged_on = clips_per_class if clips_per_class is not None else pc["support"]
    per_class = [
        {
            "index": i,
            "label": labels.ids[i],
            "name": labels.display(i),
            "precision": _opt(pc["precision"][i]),
            "recall": _opt(pc["recall"][i]),
            "f1": _opt(pc["f1"][i]),
            "support": int(pc["support"][i]),
            "predicted": int(pc["predicted"][i]),
            "clips": None if clips_per_class is None else int(clips_per_class[i]),
        }
        for i in range(num_classes)
    ]

    return {
        "n": n,
        "num_classes": num_classes,
        "top1": float(np.mean(y_pred == y)),
        "top5": top_k_accuracy(y, p, k),
        "top5_k": k,
        "balanced_accuracy": _balanced_from_cm(cm),
        "macro_f1": _macro_f1_from_cm(cm),
        "per_class": per_class,
        "confusion": cm.astype(int).tolist(),
        "clip": clip,
        "baseline": baseline,
        "min_clips_to_judge": int(min_clips_to_judge),
        "judged_on": "clips" if clips_per_class is not None else "samples",
        "too_small_to_judge": [
            labels.ids[i] for i in range(num_classes) if judged_on[i] < min_clips_to_judge
        ],
    }
