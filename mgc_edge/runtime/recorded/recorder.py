"""One video's outputs while it is classified (`Recorder`: frame rows streamed, the smoothed label frame by frame
as the live loop smooths it, runs, the truth's tally, then every file of `outputs.OUTPUTS`), and a video kept
from an earlier run read back from its files (`read_back`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.scores import display_names, softmax, top_k
from mgc_edge.runtime.recorded import outputs
from mgc_edge.runtime.recorded.decode import Batch, VideoEnded
from mgc_edge.runtime.recorded.jobs import Job, remove_stale_temps
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.recorded.outputs import VideoAnnotation, frames_csv, segments_csv
from mgc_edge.runtime.recorded.outputs.frames_csv import FramesWriter
from mgc_edge.runtime.recorded.segments import RunBuilder, Tally, merge_short, to_segments
from mgc_edge.runtime.recorded.truth import Truth
from mgc_edge.runtime.smoothing import Smoother
from mgc_edge.runtime.sources.video import probe

DONE, KEPT, FAILED = "done", "kept", "failed"


@dataclass(frozen=True)
class VideoResult:
    """What happened to one video: done now, kept (up to date) or failed, with its figures."""

    job: Job
    status: str
    frames: int = 0
    segments: int = 0
    seconds: float = 0.0  # classifying it (0 when kept or failed)
    note: str | None = None  # why it failed, or what is worth knowing about it
    tally: Tally | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def scores(self) -> dict[str, Any] | None:
        return self.tally.scores() if self.tally is not None else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "video": str(self.job.path),
            "name": self.job.name,
            "status": self.status,
            "frames": self.frames,
            "segments": self.segments,
            "seconds": round(self.seconds, 3),
            "frames_per_s": round(self.fps, 1),
            "note": self.note,
            "outputs": [str(p) for p in self.job.outputs] if self.status != FAILED else [],
        }
        if self.job.truth is not None:
            d["truth"] = str(self.job.truth)
            d["scores"] = self.scores()
        return d


class Recorder:
    """The outputs of one video while it is classified: frame rows streamed to a temporary file, runs of the
    smoothed label (its bounds and summed probabilities only), and the truth's tally."""

    def __init__(
        self,
        job: Job,
        classifier: Classifier,
        options: AnnotateOptions,
        settings: dict[str, Any],
        truth: Truth | None,
        fps: float,
    ) -> None:
        self.job, self.options, self.settings, self.truth, self.fps = job, options, settings, truth, fps
        self.ids = list(classifier.labels.ids)
        self.names = display_names(classifier.labels)
        self.k = min(options.topk, len(self.ids))
        self.smoother = Smoother(options.smooth)
        self.runs = RunBuilder(len(self.ids))
        self.tally = Tally() if truth is not None else None
        self.first_time: float | None = None
        self.clock = time.perf_counter()  # the video's wall time, waiting for its frames included
        remove_stale_temps(job)
        self.frames = FramesWriter(job.file(frames_csv.SUFFIX), self.k)

    def add(self, batch: Batch, logits: np.ndarray) -> None:
        """One classified batch: top-1 and top-k per frame, the smoothed label (frame by frame, in order,
        as the live loop does it), the CSV rows, the runs and the tally."""
        probs = softmax(logits)
        top1 = np.argmax(probs, axis=1)
        smoothed = np.empty_like(probs)
        for i, p in enumerate(probs):
            smoothed[i] = self.smoother.update(p)
        best = np.argmax(smoothed, axis=1)
        order = top_k(probs, self.k) if self.k else None
        ids, names = self.ids, self.names
        rows = []
        for i, (f, t) in enumerate(zip(batch.frames.tolist(), batch.times.tolist())):
            c = int(top1[i])
            row = [f, f"{t:.3f}", ids[c], names[c], f"{probs[i, c]:.4f}", ids[int(best[i])]]
            if order is not None:
                row += [ids[int(j)] for j in order[i]] + [f"{probs[i, j]:.4f}" for j in order[i]]
            rows.append(row)
        self.frames.add(rows)
        if self.first_time is None:
            self.first_time = float(batch.times[0])
        self.runs.add(batch.frames, batch.times, best, smoothed)
        if self.tally is not None and self.truth is not None:
            truth = self.truth.labels_at(batch.frames.tolist(), batch.times.tolist())
            self.tally.add_frames(truth, [ids[int(b)] for b in best], [ids[int(c)] for c in top1])

    def finish(self, ended: VideoEnded) -> VideoResult:
        """Segments from the runs, the scores, then every output file wanted, each moved into place."""
        runs = self.runs.finish(ended.end_time)
        per_frame = to_segments(runs, self.ids) if self.options.plot else []  # the timeline's thin row
        segments = to_segments(merge_short(runs, self.options.min_seconds), self.ids, self.options.background)
        start = self.first_time or 0.0
        true_segments = None
        if self.tally is not None and self.truth is not None:
            true_segments = self.truth.segments(self.fps, start, ended.end_time, self.options.background)
            self.tally.add_segments(segments, true_segments)
        annotation = VideoAnnotation(
            self.job.path, segments, per_frame, true_segments, (start, ended.end_time), self.ids, self.names,
            self.settings, self.frames,
        )  # fmt: skip
        for output in outputs.OUTPUTS:
            if output.wanted(self.options):
                output.write(self.job.file(output.SUFFIX), annotation)
        seconds = time.perf_counter() - self.clock
        return VideoResult(self.job, DONE, ended.classified, len(segments), seconds, ended.note, self.tally)

    def discard(self) -> None:
        """Drop the half-written frames file (the video failed or the run stopped)."""
        self.frames.discard()


def read_back(job: Job, classifier: Classifier, options: AnnotateOptions, truth: Truth | None) -> VideoResult:
    """The result of a video annotated earlier, from its files: its counts and, where a truth is given, its
    scores (and the files not required, such as the timeline, when asked for and missing or older than the
    others), without decoding it again."""
    ids = list(classifier.labels.ids)
    runs = RunBuilder(len(ids))
    tally = Tally() if truth is not None else None
    labels_at = truth.labels_at if truth is not None else None
    frames, times = frames_csv.replay(job.file(frames_csv.SUFFIX), runs, tally, labels_at, ids)
    segments = segments_csv.read(job.file(segments_csv.SUFFIX))
    # times = [first, one before the last, last]: the last frame lasts as long as the step before it
    start, end = (times[0], 2 * times[2] - times[1]) if times else (0.0, 0.0)
    true_segments = None
    if tally is not None and truth is not None:
        info = probe(job.path)
        true_segments = truth.segments(info.fps if info else 0.0, start, end, options.background)
        tally.add_segments(segments, true_segments)
    redraw = [
        o for o in outputs.OUTPUTS if not o.REQUIRED and o.wanted(options) and _stale(job.file(o.SUFFIX), job)
    ]
    if redraw:
        names = display_names(classifier.labels)
        per_frame = to_segments(runs.finish(end), ids)
        annotation = VideoAnnotation(
            job.path, segments, per_frame, true_segments, (start, end), ids, names, {}
        )  # fmt: skip
        for output in redraw:
            output.write(job.file(output.SUFFIX), annotation)
    return VideoResult(job, KEPT, frames, len(segments), 0.0, None, tally)


def _stale(path: Path, job: Job) -> bool:
    """Missing, or older than the newest of the video's required files (made by an earlier run)."""
    if not path.exists():
        return True
    return path.stat().st_mtime < max(p.stat().st_mtime for p in job.outputs)
