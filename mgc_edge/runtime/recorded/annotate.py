"""Recorded videos -> batched inference -> per video `<name>.frames.csv`, `<name>.segments.csv` and an ELAN
`<name>.eaf`, scored against a truth where one is given; resumable, numpy + OpenCV + onnxruntime, never torch.

What a researcher runs overnight on a folder of sessions. Videos are decoded ahead in a thread
(`decode.VideoBatches`), classified in batches, smoothed per video exactly as the live loop smooths (the same
`Smoother`, frame by frame, so a frame gets the label `webcam` gives it), and segmented (`segments`); each
video's files are the formats of `outputs.OUTPUTS`. Every file is written under a temporary name, and the
video's completion record (`record.py`) is written last: a video whose record matches its files, the
settings, the model and the video itself is not done again unless `force`, so a run killed midway, started
again, does only what is missing. Only files annotate wrote and nobody changed since are replaced
(`ownership.py`); a video whose outputs would replace anything else is refused and named. A video that cannot
be decoded is listed and skipped (`strict`: the first one stops the run). `summary.json` is merged per video
(`summary.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.recorded import outputs, ownership, record, summary
from mgc_edge.runtime.recorded.decode import Batch, VideoBatches, VideoEnded, VideoFailed, VideoStarted
from mgc_edge.runtime.recorded.jobs import Job, plan, settings_of
from mgc_edge.runtime.recorded.options import AnnotateOptions, Notify, Progress, VideoError
from mgc_edge.runtime.recorded.recorder import DONE, FAILED, KEPT, REFUSED, Recorder, VideoResult, read_back
from mgc_edge.runtime.recorded.segments import Tally
from mgc_edge.runtime.recorded.truth import Truth
from mgc_edge.runtime.smoothing import parse_smooth
from mgc_edge.runtime.sources.video import probe

SUMMARY = summary.NAME


@dataclass(frozen=True)
class AnnotateResult:
    videos: list[VideoResult]
    settings: dict[str, Any]
    summary: Path
    seconds: float = 0.0
    overall: dict[str, Any] | None = field(default=None)  # this run's videos
    folder_overall: dict[str, Any] | None = field(default=None)  # every scored video in --out (summary.json)

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.videos)

    @property
    def failed(self) -> list[VideoResult]:
        return [v for v in self.videos if v.status == FAILED]

    @property
    def refused(self) -> list[VideoResult]:
        return [v for v in self.videos if v.status == REFUSED]


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
    spec = parse_smooth(options.smooth)
    if spec.note:
        notify(spec.note)
    if options.topk > len(classifier.labels.ids):
        notify(
            f"--topk {options.topk}: the model has {len(classifier.labels.ids)} classes; frames.csv gets that many."
        )
    jobs, truths = plan(classifier, inputs, options, notify)
    summary.check_summary(options.out / SUMMARY, options.force, notify)
    settings = settings_of(classifier, options)
    model = record.model_identity(classifier.path)
    if ownership.remove_leftovers(options.out):
        notify(f"Removed the temporary files a stopped run left in {options.out}.")
    results: dict[int, VideoResult] = {}
    todo: list[int] = []
    bases: dict[int, dict[str, Any]] = {}
    wanted = [o for o in outputs.OUTPUTS if o.wanted(options)]
    for i, job in enumerate(jobs):
        info = probe(job.path)
        fingerprint = record.video_fingerprint(job.path, info.frame_count if info else 0)
        bases[i] = {"video": job.path, "fingerprint": fingerprint, "model": model, "settings": settings}
        rec = record.read_record(job.record)
        truth = truths.get(job.truth) if job.truth else None
        if (
            not options.force
            and record.stale_reason(rec, fingerprint, model, settings, list(job.outputs)) is None
        ):
            assert rec is not None
            try:
                results[i] = read_back(job, classifier, options, truth, rec)
            except (OSError, KeyError, ValueError, IndexError):
                pass  # damaged since: done again below, if its files are still ours
            else:
                if on_video is not None:
                    on_video(results[i])
                continue
        theirs = ownership.foreign([job.file(o.SUFFIX) for o in wanted], rec, job.record)
        if theirs and not options.force:
            results[i] = VideoResult(job, REFUSED, note=ownership.refusal(theirs, rec is not None))
            if on_video is not None:
                on_video(results[i])
            continue
        todo.append(i)
    kept = sum(r.status == KEPT for r in results.values())
    if kept:
        notify(
            f"{kept} video(s) already annotated in {options.out} with these settings, this model and the same "
            "video: kept (--force redoes them)."
        )
    options.out.mkdir(parents=True, exist_ok=True)
    _classify(classifier, [jobs[i] for i in todo], truths, options, [bases[i] for i in todo], progress,
              results, todo, on_video)  # fmt: skip
    videos = [results[i] for i in range(len(jobs)) if i in results]
    overall = None
    if options.truth is not None:
        total = Tally()
        for v in videos:
            if v.tally is not None:
                total += v.tally
        overall = total.scores()
    seconds = time.perf_counter() - started
    counts = {s: sum(v.status == s for v in videos) for s in (DONE, KEPT, FAILED, REFUSED)}
    header = {"settings": settings, "seconds": round(seconds, 2), "counts": counts,
              "truth": str(options.truth) if options.truth else None, "truth_tier": options.truth_tier}  # fmt: skip
    folder_overall = summary.merge(options.out / SUMMARY, [v.to_dict() for v in videos], header)
    return AnnotateResult(videos, settings, options.out / SUMMARY, seconds, overall, folder_overall)


def _classify(
    classifier: Classifier,
    jobs: list[Job],
    truths: dict[Path, Truth],
    options: AnnotateOptions,
    bases: list[dict[str, Any]],
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
                    recorder = Recorder(job, classifier, options, bases[item.index], truth, item.info.fps)
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
