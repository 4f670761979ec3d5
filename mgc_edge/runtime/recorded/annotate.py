"""Recorded videos -> batched inference -> per video `<name>.frames.csv`, `<name>.segments.csv` and an ELAN
`<name>.eaf`, scored against a truth where one is given; resumable, numpy + OpenCV + onnxruntime, never torch.

What a researcher runs overnight on a folder of sessions. Videos are decoded ahead in a thread
(`decode.VideoBatches`), classified in batches, smoothed per video exactly as the live loop smooths (the same
`Smoother`, frame by frame, so a frame gets the label `webcam` gives it), and segmented (`segments`); each
video's files are the formats of `outputs.OUTPUTS`. Every file is written under a temporary name and renamed
when whole; a video whose required files exist, are newer than the video and the model and were made with the
same settings (kept in the .eaf header) is not done again unless `force`, so a run killed midway, started
again, does only what is missing. A video that cannot be decoded is listed and skipped (`strict`: the first
one stops the run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgc_edge.fileio import write_json
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.recorded.decode import Batch, VideoBatches, VideoEnded, VideoFailed, VideoStarted
from mgc_edge.runtime.recorded.jobs import Job, plan, settings_of, up_to_date
from mgc_edge.runtime.recorded.options import AnnotateOptions, Notify, Progress, VideoError
from mgc_edge.runtime.recorded.recorder import DONE, FAILED, KEPT, Recorder, VideoResult, read_back
from mgc_edge.runtime.recorded.segments import Tally
from mgc_edge.runtime.recorded.truth import Truth
from mgc_edge.runtime.sources.video import probe

SUMMARY = "summary.json"


@dataclass(frozen=True)
class AnnotateResult:
    videos: list[VideoResult]
    settings: dict[str, Any]
    summary: Path
    seconds: float = 0.0
    overall: dict[str, Any] | None = field(default=None)

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.videos)

    @property
    def failed(self) -> list[VideoResult]:
        return [v for v in self.videos if v.status == FAILED]


def annotate(
    classifier: Classifier,
    inputs: Sequence[str | Path],
    options: AnnotateOptions = AnnotateOptions(),
    progress: Progress | None = None,
    notify: Notify | None = None,
    on_video: Callable[[VideoResult], None] | None = None,
) -> AnnotateResult:
    """Annotate every video of `inputs` into `options.out` (see the module's docstring); writes
    `summary.json` there and returns the per-video results. `progress` gets (frames done, frames in all,
    video name), `notify` the sentences worth saying once, `on_video` each video's result as it comes."""
    notify = notify or (lambda _m: None)
    started = time.perf_counter()
    options.check(classifier.labels.ids)
    jobs, truths = plan(classifier, inputs, options, notify)
    settings = settings_of(classifier, options)
    results: dict[int, VideoResult] = {}
    todo: list[int] = []
    for i, job in enumerate(jobs):
        if options.force or not up_to_date(job, classifier.path, settings):
            todo.append(i)
            continue
        truth = truths.get(job.truth) if job.truth else None
        try:
            results[i] = read_back(job, classifier, options, truth)
        except (OSError, KeyError, ValueError, IndexError):
            todo.append(i)  # damaged since: do it again
            continue
        if on_video is not None:
            on_video(results[i])
    if results:
        notify(
            f"{len(results)} video(s) already annotated in {options.out} with these settings, newer than "
            "video and model: kept (--force redoes them)."
        )
    todo.sort()
    options.out.mkdir(parents=True, exist_ok=True)
    _classify(
        classifier, [jobs[i] for i in todo], truths, options, settings, progress, results, todo, on_video
    )
    videos = [results[i] for i in range(len(jobs)) if i in results]
    overall = None
    if options.truth is not None:
        total = Tally()
        for v in videos:
            if v.tally is not None:
                total += v.tally
        overall = total.scores()
    result = AnnotateResult(videos, settings, options.out / SUMMARY, time.perf_counter() - started, overall)
    write_summary(result)
    return result


def _classify(
    classifier: Classifier,
    jobs: list[Job],
    truths: dict[Path, Truth],
    options: AnnotateOptions,
    settings: dict[str, Any],
    progress: Progress | None,
    results: dict[int, VideoResult],
    positions: list[int],
    on_video: Callable[[VideoResult], None] | None,
) -> None:
    """Decode, classify and record `jobs` in one pipeline; fills `results` at `positions`."""
    if not jobs:
        return
    decode = options.decode()
    infos = [probe(job.path) for job in jobs]
    expected = [info.expected(decode.every, decode.start, decode.end) if info else 0 for info in infos]
    total = sum(expected)
    done = 0
    recorder: Recorder | None = None
    with VideoBatches([job.path for job in jobs], classifier.spec, decode) as stream:
        try:
            for item in stream:
                job = jobs[item.index]
                if isinstance(item, Batch):
                    assert recorder is not None
                    recorder.add(item, classifier.logits(item.x))
                    done += len(item.frames)
                    if progress is not None:
                        progress(done, max(total, done), job.name)
                    continue
                if isinstance(item, VideoStarted):
                    truth = truths.get(job.truth) if job.truth else None
                    recorder = Recorder(job, classifier, options, settings, truth, item.info.fps)
                    continue
                if isinstance(item, VideoEnded):
                    assert recorder is not None
                    result = recorder.finish(item)
                    total += item.classified - expected[item.index]  # the container's count was an estimate
                elif isinstance(item, VideoFailed):
                    if recorder is not None:
                        recorder.discard()
                    if options.strict:
                        raise VideoError(f"{item.reason} (--strict stops at the first)")
                    result = VideoResult(job, FAILED, note=item.reason)
                    total -= expected[item.index]
                recorder = None
                results[positions[item.index]] = result
                if on_video is not None:
                    on_video(result)
        finally:
            if recorder is not None:
                recorder.discard()


def write_summary(result: AnnotateResult) -> None:
    """summary.json: the settings, every video's result and scores, and the overall scores."""
    data = {
        "settings": result.settings,
        "seconds": round(result.seconds, 2),
        "counts": {s: result.count(s) for s in (DONE, KEPT, FAILED)},
        "videos": [v.to_dict() for v in result.videos],
    }
    if result.overall is not None:
        data["overall"] = result.overall
    write_json(result.summary, data)
