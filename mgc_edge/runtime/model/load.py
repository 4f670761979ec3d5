"""The one way `webcam`, `predict` and `annotate` load their model: on the device asked for, warmed up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mgc_edge.runtime import host
from mgc_edge.runtime.model.classifier import Classifier


def load_classifier(
    model: Path, device: str, threads: int, live: bool, notify: Callable[[str], None], batch: int = 1
) -> tuple[Classifier, float]:
    """The model on the device asked for, warmed up on `batch` frames, and the seconds the first run took. A
    live loop without --threads starts on every core; `live.cores` measures what its sources leave."""
    threads = threads or (host.live_threads(reserve=0) if live else 0)
    clf = Classifier(
        model, device=device, threads=threads, spinning=host.LIVE_SPINNING if live else "on", notify=notify
    )
    return clf, clf.warmup(batch_size=batch)
