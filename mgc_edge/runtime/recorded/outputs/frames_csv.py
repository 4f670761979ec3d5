"""`<name>.frames.csv`: one row per classified frame (`frame,time,label,name,prob,smoothed_label`
[+ `top1..K`, `prob1..K`]), streamed to a temporary file while the video is classified and moved into place when whole;
read back (`replay`) for a video kept from an earlier run."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.fileio import temp_path
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.recorded.outputs.annotation import VideoAnnotation
from mgc_edge.runtime.recorded.segments import RunBuilder, Tally

LabelsAt = Callable[[list[int], list[float]], list[str | None]]  # Truth.labels_at: the truth of frames

SUFFIX = ".frames.csv"
REQUIRED = True
COLUMNS = ("frame", "time", "label", "name", "prob", "smoothed_label")
CHUNK_ROWS = 4096  # rows replayed at a time: a long video's file is never held whole


def header(k: int) -> list[str]:
    return [*COLUMNS, *(f"top{j}" for j in range(1, k + 1)), *(f"prob{j}" for j in range(1, k + 1))]


def wanted(options: AnnotateOptions) -> bool:
    return True


class FramesWriter:
    """The frame rows of one video, written to a temporary file beside `path` until `finish()`."""

    def __init__(self, path: Path, k: int) -> None:
        self.path = path
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(temp_path(path))
        self._fh = self._stack.enter_context(open(self._tmp, "w", newline="", encoding="utf-8"))
        self._rows = csv.writer(self._fh, lineterminator="\n")
        self._rows.writerow(header(k))

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        self._rows.writerows(rows)

    def finish(self, dest: Path | None = None) -> None:
        """Move the whole file to `dest` (a staging name beside `path`: recorder.py commits it), or `path`."""
        self._fh.close()
        os.replace(self._tmp, dest or self.path)
        self._stack.close()

    def discard(self) -> None:
        """Drop the half-written file (the video failed or the run stopped)."""
        self._stack.close()


def write(path: Path, annotation: VideoAnnotation) -> None:
    """The streamed rows, whole, moved to `path` (the file's staging name)."""
    assert annotation.frames is not None
    annotation.frames.finish(path)


def replay(
    path: Path, runs: RunBuilder, tally: Tally | None, truth: LabelsAt | None, ids: Sequence[str]
) -> tuple[int, list[float]]:
    """Feed a frames.csv back into `runs` and the tally: the frames read and [first, one before the last,
    last] of their times."""
    index = {label: i for i, label in enumerate(ids)}
    frames = 0
    times: list[float] = []
    with open(path, newline="", encoding="utf-8") as fh:
        chunk: list[dict[str, str]] = []
        for row in csv.DictReader(fh):
            chunk.append(row)
            if len(chunk) == CHUNK_ROWS:
                frames += _replay(chunk, runs, tally, truth, index, times)
                chunk = []
        frames += _replay(chunk, runs, tally, truth, index, times)
    return frames, times


def _replay(
    rows: list[dict[str, str]],
    runs: RunBuilder,
    tally: Tally | None,
    truth: LabelsAt | None,
    index: dict[str, int],
    times: list[float],
) -> int:
    """Feed rows of a frames.csv back into runs and the tally; `times` keeps the first time and the last
    two."""
    if not rows:
        return 0
    frames = np.array([int(r["frame"]) for r in rows], np.int64)
    t = np.array([float(r["time"]) for r in rows], np.float64)
    smoothed = [r["smoothed_label"] for r in rows]
    labels = np.array([index[s] for s in smoothed], np.int64)
    runs.add(frames, t, labels, np.zeros((len(rows), runs.num_classes)))
    if tally is not None and truth is not None:
        tally.add_frames(truth(frames.tolist(), t.tolist()), smoothed, [r["label"] for r in rows])
    seen = times[1:] if times else [float(t[0])] * 2
    times[:] = [times[0] if times else float(t[0]), *(seen + t.tolist())[-2:]]
    return len(rows)
