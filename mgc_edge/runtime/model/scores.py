"""From logits to what a user reads: softmax, the top-k classes (one ordering everywhere: most probable first,
ties to the lower index) and the display name of every class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mgc_edge.labels import Labels


@dataclass(frozen=True)
class Prediction:
    """The top classes of one frame, best first."""

    indices: tuple[int, ...]
    ids: tuple[str, ...]  # folder names
    names: tuple[str, ...]  # human names where known, else the folder names
    probs: tuple[float, ...]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits; the one used by verify and the runtime alike."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """The indices of the `k` most probable classes of each row of `probs` ([N, C] -> [N, k], or [C] -> [k]),
    best first, ties to the lower index; the one ordering of `webcam`, `predict` and `annotate`."""
    p = np.asarray(probs)
    return np.argsort(-p, axis=-1, kind="stable")[..., :k]


def display_names(labels: Labels) -> tuple[str, ...]:
    """Every class's display name, by index: the human name where known, else the folder name."""
    return tuple(labels.display(i) for i in range(len(labels)))


def prediction(probs: np.ndarray, k: int, ids: Sequence[str], names: Sequence[str]) -> Prediction:
    """The k most probable classes of one probability vector [C], best first (ties: lower index)."""
    p = np.asarray(probs)
    order = top_k(p, max(1, min(k, len(ids))))
    indices = order.tolist()  # the live loop calls this per frame: whole-array conversions, not per item
    return Prediction(
        indices=tuple(indices),
        ids=tuple([ids[i] for i in indices]),
        names=tuple([names[i] for i in indices]),
        probs=tuple(p[order].tolist()),
    )
