"""What the loop makes of one classified frame: its event (the JSONL object every sink gets) and its overlay.
numpy + OpenCV only."""

from __future__ import annotations

from typing import Any

import numpy as np

from mgc_edge.labels import Labels
from mgc_edge.runtime.live.feeds import Feed
from mgc_edge.runtime.model.scores import Prediction
from mgc_edge.runtime.overlay import OverlayView, annotate
from mgc_edge.runtime.sources.base import Frame


def frame_event(
    feed: Feed,
    frame: Frame,
    top: Prediction,
    labels: Labels,
    smoothed: np.ndarray,
    fps: dict[str, float],
    batch_size: int,
) -> dict[str, Any]:
    """The event of one classified frame (its `latency_ms` is added once the frame is drawn)."""
    best = int(np.argmax(smoothed))
    return {
        "source": feed.tag,
        "frame": frame.seq,
        "t": round(frame.t, 3),
        "top": [
            {"label": i, "name": n, "prob": round(p, 4)} for i, n, p in zip(top.ids, top.names, top.probs)
        ],
        "smoothed": {
            "label": labels.ids[best],
            "name": labels.display(best),
            "prob": round(float(smoothed[best]), 4),
        },
        "state": feed.state,
        "fps": fps,
        "batch": batch_size,
    }


def draw(
    frame: Frame,
    feed: Feed,
    top: Prediction,
    labels: Labels,
    smoothed: np.ndarray,
    fps: dict[str, float],
    latency_ms: float,
) -> np.ndarray:
    """The frame with its labels, bars, rates and state drawn on (a new array)."""
    best = int(np.argmax(smoothed))
    view = OverlayView(
        top=list(zip(top.names, top.probs)),
        smoothed=(labels.display(best), float(smoothed[best])),
        capture_fps=fps["capture"],
        inference_fps=fps["inference"],
        latency_ms=latency_ms,
        state=feed.state,
        message=feed.message,
    )
    return annotate(frame.image, view)
