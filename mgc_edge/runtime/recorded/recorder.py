"""One video's outputs while it is classified (`Recorder`: frame rows streamed, the smoothed label frame by frame
as the live loop smooths it, at each frame's time, runs, the truth's tally, then every file of
`outputs.OUTPUTS`, staged and committed with the video's completion record), and a video kept from an earlier
run read back from its files (`read_back`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.fileio import file_sha256, temp_path
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.scores import display_names, softmax, top_k
from mgc_edge.runtime.recorded import outputs, ownership
from mgc_edge.runtime.recorded.decode import Batch, VideoEnded
from mgc_edge.runtime.recorded.jobs import Job
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.recorded.outputs import VideoAnnotation, frames_csv, segments_csv, timeline_png
from mgc_edge.runtime.recorded.outputs.frames_csv import FramesWriter
from mgc_edge.runtime.recorded.scoring import TruthFrames
from mgc_edge.runtime.recorded.segments import RunBuilder, Segment, Tally, merge_short, to_segments
from mgc_edge.runtime.recorded.truth import Truth
from mgc_edge.runtime.smoothing import Smoother
from mgc_edge.runtime.sources.video import probe

DONE, KEPT, FAILED, REFUSED = "done", "kept", "failed", "refused"


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
            "outputs": [str(p) for p in self.job.outputs] if self.status in (DONE, KEPT) else [],
        }
        if self.job.truth is not None and self.tally is not None:
            d["truth"] = str(self.job.truth)
            d["scores"] = self.scores()
            d["tally"] = self.tally.to_dict()
        return d


class Recorder:
    """The outputs of one video while it is classified: frame rows streamed to a temporary file, runs of the
    smoothed label (its bounds and summed probabilities only), and the truth's tally. `base` holds what the
    completion record says made the files (video, fingerprint, model, settings)."""

    def __init__(
        self,
        job: Job,
        classifier: Classifier,
        options: AnnotateOptions,
        base: Mapping[str, Any],
        truth: Truth | None,
        fps: float,
    ) -> None:
        self.job, self.options, self.base, self.truth, self.fps = job, options, base, truth, fps
        self.ids = list(classifier.labels.ids)
        self.names = display_names(classifier.labels)
        self.k = min(options.topk, len(self.ids))
        self.smoother = Smoother(options.smooth)
        self.runs = RunBuilder(len(self.ids))
        self.tally = Tally() if truth is not None else None
        self.truth_frames = TruthFrames(truth) if truth is not None else None
        self.first_time: float | None = None
        self.clock = time.perf_counter()  # the video's wall time, waiting for its frames included
        self.frames = FramesWriter(job.file(frames_csv.SUFFIX), self.k)

    def add(self, batch: Batch, logits: np.ndarray) -> None:
        """One classified batch: top-1 and top-k per frame, the smoothed label (frame by frame, in order, at
        each frame's time, as the live loop does it), the CSV rows, the runs and the tally."""
        probs = softmax(logits)
        top1 = np.argmax(probs, axis=1)
        smoothed = np.empty_like(probs)
        for i, (p, t) in enumerate(zip(probs, batch.times.tolist())):
            smoothed[i] = self.smoother.update(p, t)
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
        if self.tally is not None and self.truth_frames is not None:
            truth = self.truth_frames.add(batch.frames.tolist(), batch.times.tolist())
            self.tally.add_frames(truth, [ids[int(b)] for b in best], [ids[int(c)] for c in top1])

    def finish(self, ended: VideoEnded) -> VideoResult:
        """Segments from the runs, the scores, then every output file wanted, staged and committed with the
        completion record (ownership.py); a file that is not ours refuses the video unless --force."""
        runs = self.runs.finish(ended.end_time)
        per_frame = to_segments(runs, self.ids) if self.options.plot else []  # the timeline's thin row
        segments = to_segments(merge_short(runs, self.options.min_seconds), self.ids, self.options.background)
        start = self.first_time or 0.0
        true_segments, notes = None, [ended.note] if ended.note else []
        if self.tally is not None and self.truth is not None and self.truth_frames is not None:
            true_segments = self.truth.segments(self.fps, start, ended.end_time, self.options.background)
            counts = self.truth_frames.score(segments, self.options.background)
            self.tally.add_segments(counts.true, counts.predicted, counts.matched)
            notes += [counts.note] if counts.note else []
        annotation = VideoAnnotation(
            self.job.path, segments, per_frame, true_segments, (start, ended.end_time), self.ids, self.names,
            self.base["settings"], self.frames, _video_date(self.job.path), _content_key(self.base),
        )  # fmt: skip
        wanted = [o for o in outputs.OUTPUTS if o.wanted(self.options)]
        try:
            backups = _write(self.job, wanted, annotation, self.base, self.options.force, self.truth)
        except ownership.NotOurs as exc:
            self.discard()
            return VideoResult(self.job, REFUSED, note=str(exc))
        notes += [f"kept the old {b.name.rsplit(ownership.BACKUP, 1)[0]} as {b.name}" for b in backups]
        seconds = time.perf_counter() - self.clock
        note = "; ".join(notes) or None
        return VideoResult(self.job, DONE, ended.classified, len(segments), seconds, note, self.tally)

    def discard(self) -> None:
        """Drop the half-written frames file (the video failed or the run stopped)."""
        self.frames.discard()


def _write(
    job: Job,
    wanted: list[Any],
    annotation: VideoAnnotation,
    base: Mapping[str, Any],
    force: bool,
    truth: Truth | None,
) -> list[Path]:
    """Each wanted format written to a temporary file beside its place, then all committed together."""
    with ExitStack() as stack:
        staged = {}
        for output in wanted:
            final = job.file(output.SUFFIX)
            tmp = stack.enter_context(temp_path(final))
            output.write(tmp, annotation)
            staged[final] = tmp
        extra = None
        if timeline_png in wanted:
            segments = (
                staged[job.file(segments_csv.SUFFIX)] if job.file(segments_csv.SUFFIX) in staged else None
            )
            extra = {"timeline_of": _timeline_key(file_sha256(segments) if segments else "", truth)}
        return ownership.commit(staged, job.record, base, force, extra)


def _timeline_key(segments_sha: str, truth: Truth | None) -> str:
    """What a timeline was drawn from: the segments file and the truth (a new truth redraws it)."""
    return f"{segments_sha}|{truth.key if truth is not None else ''}"


def _video_date(path: Path) -> str:
    """The .eaf's DATE: the video's modification time, so that identical runs write identical files."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    except OSError:
        return datetime.fromtimestamp(0, timezone.utc).isoformat(timespec="seconds")


def _content_key(base: Mapping[str, Any]) -> str:
    """What the .eaf's URN is derived from: the video's fingerprint, the model and the settings."""
    text = repr((sorted((base.get("fingerprint") or {}).items()), base["model"].get("sha256"), sorted(
        (k, repr(v)) for k, v in base["settings"].items())))  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def read_back(
    job: Job, classifier: Classifier, options: AnnotateOptions, truth: Truth | None, rec: Mapping[str, Any]
) -> VideoResult:
    """The result of a video annotated earlier, from its files: its counts and, where a truth is given, its
    scores (and the timeline, when asked for and missing or drawn from other segments or another truth),
    without decoding it again."""
    ids = list(classifier.labels.ids)
    runs = RunBuilder(len(ids))
    tally = Tally() if truth is not None else None
    truth_frames = TruthFrames(truth) if truth is not None else None
    labels_at = truth_frames.add if truth_frames is not None else None
    frames, times = frames_csv.replay(job.file(frames_csv.SUFFIX), runs, tally, labels_at, ids)
    segments = segments_csv.read(job.file(segments_csv.SUFFIX))
    # times = [first, one before the last, last]: the last frame lasts as long as the step before it
    start, end = (times[0], 2 * times[2] - times[1]) if times else (0.0, 0.0)
    true_segments, note = None, None
    if tally is not None and truth is not None and truth_frames is not None:
        counts = truth_frames.score(segments, options.background)
        tally.add_segments(counts.true, counts.predicted, counts.matched)
        note = counts.note
        info = probe(job.path)
        true_segments = truth.segments(info.fps if info else 0.0, start, end, options.background)
    if options.plot:
        note = _redraw(
            job, classifier, options, truth, rec, runs, segments, true_segments, (start, end), note
        )
    return VideoResult(job, KEPT, frames, len(segments), 0.0, note, tally)


def _redraw(
    job: Job,
    classifier: Classifier,
    options: AnnotateOptions,
    truth: Truth | None,
    rec: Mapping[str, Any],
    runs: RunBuilder,
    segments: list[Segment],
    true_segments: list[Segment] | None,
    span: tuple[float, float],
    note: str | None,
) -> str | None:
    """Draw a kept video's timeline again where it is missing or was drawn from other segments or another
    truth; one that is not ours is kept (said in the note)."""
    path = job.file(timeline_png.SUFFIX)
    key = _timeline_key(rec["outputs"].get(job.file(segments_csv.SUFFIX).name, ""), truth)
    if path.exists() and rec.get("extras", {}).get("timeline_of") == key and path.name in rec["outputs"]:
        return note
    ids = list(classifier.labels.ids)
    annotation = VideoAnnotation(
        job.path, segments, to_segments(runs.finish(span[1]), ids), true_segments, span, ids,
        display_names(classifier.labels), rec["settings"],
    )  # fmt: skip
    base = {"video": rec["video"].get("path", str(job.path)), "model": rec["model"], "settings": rec["settings"],
            "fingerprint": {k: v for k, v in rec["video"].items() if k != "path"}}  # fmt: skip
    with temp_path(path) as tmp:
        timeline_png.write(tmp, annotation)
        try:
            ownership.commit({path: tmp}, job.record, base, options.force, {"timeline_of": key})
        except ownership.NotOurs as exc:
            return "; ".join(n for n in (note, str(exc)) if n)
    return note
