"""Recorded videos -> batched inference -> per video `<name>.frames.csv`, `<name>.segments.csv` and an ELAN
`<name>.eaf`, scored against a truth where one is given; resumable, numpy + OpenCV + onnxruntime, never torch.

What a researcher runs overnight on a folder of sessions. Videos are decoded ahead in a thread
(`decode.VideoBatches`), classified in batches, smoothed per video exactly as the live loop smooths (the same
`Smoother`, frame by frame, so a frame gets the label `webcam` gives it), and segmented (`segments`). Every
file is written under a temporary name and renamed when whole; a video whose three files exist, are newer
than the video and the model and were made with the same settings (kept in the .eaf header) is not done
again unless `force`, so a run killed midway, started again, does only what is missing. A video that cannot
be decoded is listed and skipped (`strict`: the first one stops the run).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.errors import UserError
from mgc_edge.fileio import temp_path, unwritable, write_json, write_text
from mgc_edge.runtime import elan
from mgc_edge.runtime.decode import Batch, DecodeOptions, VideoBatches, VideoEnded, VideoFailed, VideoStarted
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.scores import display_names, softmax, top_k
from mgc_edge.runtime.segments import RunBuilder, Segment, Tally, merge_short, to_segments
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH, Smoother, parse_smooth
from mgc_edge.runtime.sources.video import probe
from mgc_edge.runtime.timeline import Row, draw_timeline, write_png
from mgc_edge.runtime.truth import Truth, find_truths, read_truth

VIDEO_EXTENSIONS = (
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".mts",
    ".m2ts",  # AVCHD camcorders
    ".3gp",  # phones
    ".mjpg",  # IP cameras' MJPEG recordings
    ".mjpeg",
    ".ogv",
)
# Shorter runs of the smoothed label are flicker, not gestures: 0.3 s is 4-5 frames at 15 fps and 9 at
# 30 fps, above the 2-3 frames in which the default smoothing (ema:0.3) lets a wrong label through, and
# below the second or more that a gesture is held. Measured on the demo video in README / RESULTS.md.
DEFAULT_MIN_SECONDS = 0.3
DONE, KEPT, FAILED = "done", "kept", "failed"
SUMMARY = "summary.json"
SETTINGS_PROPERTY = "mgc_edge.settings"
FRAME_COLUMNS = ("frame", "time", "label", "name", "prob", "smoothed_label")
SEGMENT_COLUMNS = tuple("segment,start_frame,end_frame,start_time,end_time,label,name,mean_prob".split(","))

Progress = Callable[[int, int, str], None]  # (frames done, frames in all, the video being classified)
Notify = Callable[[str], None]


class AnnotateInputError(UserError):
    """An input, option or output folder that cannot be used; the message is one sentence."""


class VideoError(UserError):
    """A video that cannot be decoded, under `strict`; the message is one sentence."""


@dataclass(frozen=True)
class AnnotateOptions:
    """The options of `mgc-edge annotate` (see its --help)."""

    out: Path = Path("annotations")
    topk: int = 0
    min_seconds: float = DEFAULT_MIN_SECONDS
    background: tuple[str, ...] = ()
    truth: Path | None = None
    truth_tier: str | None = None
    batch_size: int = 32
    every: int = 1
    start: float = 0.0
    end: float | None = None
    smooth: str = DEFAULT_SMOOTH
    workers: int = 0
    force: bool = False
    strict: bool = False
    plot: bool = False

    def check(self, labels: Sequence[str] | None = None) -> None:
        """Refuse bad options before any work, each in one sentence (`--background` against `labels`, the
        model's, where given)."""
        if self.batch_size < 1:
            raise AnnotateInputError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.topk < 0:
            raise AnnotateInputError(f"--topk must be 0 or more, got {self.topk}.")
        if self.every < 1:
            raise AnnotateInputError(f"--every must be at least 1, got {self.every}.")
        if self.min_seconds < 0:
            raise AnnotateInputError(f"--min-seconds must be 0 or more, got {self.min_seconds:g}.")
        if self.start < 0:
            raise AnnotateInputError(f"--start must be 0 or more seconds, got {self.start:g}.")
        if self.end is not None and self.end <= self.start:
            raise AnnotateInputError(f"--end ({self.end:g} s) must come after --start ({self.start:g} s).")
        unknown = [b for b in self.background if labels is not None and b not in labels]
        if unknown and labels is not None:
            raise AnnotateInputError(
                f"--background {unknown[0]} is not a label of the model (its labels: {', '.join(labels[:8])}"
                f"{', ...' if len(labels) > 8 else ''})."
            )
        parse_smooth(self.smooth)
        if self.out.exists() and not self.out.is_dir():
            raise AnnotateInputError(f"--out {self.out} is a file; give a folder.")
        problem = unwritable(self.out)
        if problem is not None:
            raise AnnotateInputError(f"--out {self.out} cannot be written ({problem}).")

    def decode(self) -> DecodeOptions:
        return DecodeOptions(self.every, self.start, self.end, self.batch_size, self.workers)


@dataclass(frozen=True)
class Job:
    """One video of the run and the files it gets."""

    path: Path
    name: str  # output stem: the video's stem, plus a suffix where two inputs share one
    out: Path
    truth: Path | None = None

    @property
    def frames_csv(self) -> Path:
        return self.out / f"{self.name}.frames.csv"

    @property
    def segments_csv(self) -> Path:
        return self.out / f"{self.name}.segments.csv"

    @property
    def eaf(self) -> Path:
        return self.out / f"{self.name}.eaf"

    @property
    def png(self) -> Path:
        return self.out / f"{self.name}.timeline.png"

    @property
    def outputs(self) -> tuple[Path, Path, Path]:
        return (self.frames_csv, self.segments_csv, self.eaf)


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


# ---------------------------------------------------------------------------------------------- inputs


def _is_video_name(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() in VIDEO_EXTENSIONS


def collect_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Video files, folders (searched recursively for video extensions, hidden ones left out) and globs, in
    input order and sorted within a folder or glob, each file once. A file named explicitly is taken
    whatever its extension (a video it is not is reported when decoding fails)."""
    if not inputs:
        raise AnnotateInputError("Give at least one video file, folder or glob to annotate.")
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            videos = [
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and _is_video_name(p)
                and not any(s.startswith(".") for s in p.relative_to(path).parts)
            ]
            if not videos:
                raise AnnotateInputError(
                    f"Input folder {path} holds no videos ({', '.join(e[1:] for e in VIDEO_EXTENSIONS)})."
                )
            for p in videos:
                add(p)
        elif path.is_file():
            add(path)
        elif glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            videos = [m for m in matches if m.is_file() and _is_video_name(m)]
            if not videos:
                raise AnnotateInputError(f"No video file matches {text}.")
            for p in videos:
                add(p)
        else:
            raise AnnotateInputError(f"Input {text} does not exist.")
    return found


def output_names(paths: Sequence[Path]) -> list[str]:
    """The output stem of each video: its own stem, unless several inputs share it; then the stem plus the
    fewest parent folder names (or the extension) that tell them apart, e.g. `s1-monday`, `s1-tuesday`."""
    names = [p.stem for p in paths]
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault(p.stem, []).append(i)
    for stem, idx in groups.items():
        if len(idx) < 2:
            continue
        resolved = [paths[i].resolve() for i in idx]
        depth = max(len(r.parent.parts) for r in resolved)
        keys = [r.suffix.lstrip(".").lower() for r in resolved]
        for d in range(1, depth + 1):
            if len(set(keys)) == len(keys):
                break
            keys = ["-".join(r.parent.parts[-d:]).strip("/") for r in resolved]
            if len(set(keys)) < len(keys):
                keys = [f"{k}-{r.suffix.lstrip('.').lower()}" for k, r in zip(keys, resolved)]
        for i, key in zip(idx, keys):
            names[i] = f"{stem}-{key}"
    taken: dict[str, int] = {}
    for i, name in enumerate(names):  # a last resort against a video that is itself named `s1-monday`
        taken[name] = taken.get(name, 0) + 1
        if taken[name] > 1:
            names[i] = f"{name}~{taken[name]}"
    return names


def settings_of(classifier: Classifier, options: AnnotateOptions) -> dict[str, Any]:
    """What the outputs depend on besides the video (batch size and device do not change a label)."""
    meta = classifier.metadata
    return {
        "model": classifier.path.name,
        "checkpoint_sha256": meta.checkpoint_sha256,
        "precision": meta.precision,
        "every": options.every,
        "start": options.start,
        "end": options.end,
        "smooth": str(parse_smooth(options.smooth)),
        "min_seconds": options.min_seconds,
        "background": sorted(options.background),
        "topk": options.topk,
    }


def _settings_text(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


def up_to_date(job: Job, model: Path, settings: dict[str, Any]) -> bool:
    """The video's three files exist, are newer than the video and the model, and were made with these
    settings: then there is nothing to do."""
    try:
        newest_input = max(job.path.stat().st_mtime, model.stat().st_mtime)
        oldest_output = min(p.stat().st_mtime for p in job.outputs)
    except OSError:
        return False
    if oldest_output < newest_input:
        return False
    return elan.read_properties(job.eaf).get(SETTINGS_PROPERTY) == _settings_text(settings)


# ---------------------------------------------------------------------------------------------- one video


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
        self.job, self.clf, self.options, self.settings, self.truth, self.fps = (
            job, classifier, options, settings, truth, fps
        )  # fmt: skip
        self.ids = list(classifier.labels.ids)
        self.names = display_names(classifier.labels)
        self.k = min(options.topk, len(self.ids))
        self.smoother = Smoother(options.smooth)
        self.runs = RunBuilder(len(self.ids))
        self.tally = Tally() if truth is not None else None
        self.first_time: float | None = None
        self.clock = time.perf_counter()  # the video's wall time, waiting for its frames included
        remove_stale_temps(job)
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(temp_path(job.frames_csv))
        self._fh = self._stack.enter_context(open(self._tmp, "w", newline="", encoding="utf-8"))
        self._rows = csv.writer(self._fh, lineterminator="\n")
        self._rows.writerow(frame_header(self.k))

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
        self._rows.writerows(rows)
        if self.first_time is None:
            self.first_time = float(batch.times[0])
        self.runs.add(batch.frames, batch.times, best, smoothed)
        if self.tally is not None and self.truth is not None:
            truth = self.truth.labels_at(batch.frames.tolist(), batch.times.tolist())
            self.tally.add_frames(truth, [ids[int(b)] for b in best], [ids[int(c)] for c in top1])

    def finish(self, ended: VideoEnded) -> VideoResult:
        """Segments from the runs; segments.csv, the .eaf and frames.csv moved into place; the scores."""
        runs = self.runs.finish(ended.end_time)
        per_frame = to_segments(runs, self.ids) if self.options.plot else []  # the timeline's thin row
        segments = to_segments(merge_short(runs, self.options.min_seconds), self.ids, self.options.background)
        write_text(self.job.segments_csv, segments_text(segments, self.ids, self.names))
        elan.write_eaf(
            self.job.eaf, segments, self.job.path, self.ids, self.names,
            properties={SETTINGS_PROPERTY: _settings_text(self.settings)},
        )  # fmt: skip
        self._fh.close()
        os.replace(self._tmp, self.job.frames_csv)
        self._stack.close()
        start = self.first_time or 0.0
        true_segments = None
        if self.tally is not None and self.truth is not None:
            true_segments = self.truth.segments(self.fps, start, ended.end_time, self.options.background)
            self.tally.add_segments(segments, true_segments)
        if self.options.plot:
            plot(self.job, segments, per_frame, true_segments, (start, ended.end_time), self.ids, self.names)
        seconds = time.perf_counter() - self.clock
        return VideoResult(self.job, DONE, ended.classified, len(segments), seconds, ended.note, self.tally)

    def discard(self) -> None:
        """Drop the half-written frames file (the video failed or the run stopped)."""
        self._stack.close()


def remove_stale_temps(job: Job) -> None:
    """Delete the temporary files a killed run left beside this video's outputs (named by fileio.temp_path
    with the writer's process id); those of a process still running are left alone."""
    if sys.platform == "win32":  # os.kill(pid, 0) is not a harmless probe there
        return
    for final in (*job.outputs, job.png):
        for tmp in final.parent.glob(f".{glob.escape(final.name)}.*.tmp*"):
            pid = tmp.name[len(final.name) + 2 :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


def frame_header(k: int) -> list[str]:
    return [*FRAME_COLUMNS, *(f"top{j}" for j in range(1, k + 1)), *(f"prob{j}" for j in range(1, k + 1))]


def segments_text(segments: Sequence[Segment], ids: Sequence[str], names: Sequence[str]) -> str:
    """segments.csv: one row per segment, numbered from 1, times in seconds."""
    lookup = dict(zip(ids, names))
    lines = [",".join(SEGMENT_COLUMNS)]
    rows = []
    for i, s in enumerate(segments, start=1):
        rows.append(
            [i, s.start_frame, s.end_frame, f"{s.start_time:.3f}", f"{s.end_time:.3f}", s.label,
             lookup.get(s.label, s.label), f"{s.mean_prob:.4f}"]
        )  # fmt: skip
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return "\n".join(lines) + "\n" + buf.getvalue()


def plot(
    job: Job,
    segments: Sequence[Segment],
    per_frame: Sequence[Segment],
    truth: Sequence[Segment] | None,
    span: tuple[float, float],
    ids: Sequence[str],
    names: Sequence[str],
) -> None:
    """`<name>.timeline.png`: true segments (where known) over the predicted ones and the per-frame labels."""
    rows = [Row("truth", truth)] if truth is not None else []
    rows += [Row("predicted", segments), Row("per frame", per_frame, thin=True)]
    image = draw_timeline(rows, span, ids, dict(zip(ids, names)), title=job.path.name)
    write_png(str(job.png), image)


# ---------------------------------------------------------------------------------------------- kept videos


def read_back(job: Job, classifier: Classifier, options: AnnotateOptions, truth: Truth | None) -> VideoResult:
    """The result of a video annotated earlier, from its files: its counts and, where a truth is given, its
    scores (and the timeline, when asked for and missing), without decoding it again."""
    ids = list(classifier.labels.ids)
    index = {label: i for i, label in enumerate(ids)}
    runs = RunBuilder(len(ids))
    tally = Tally() if truth is not None else None
    frames = 0
    times: list[float] = []
    with open(job.frames_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        chunk: list[dict[str, str]] = []
        for row in reader:
            chunk.append(row)
            if len(chunk) == 4096:
                frames += _replay(chunk, runs, tally, truth, index, times)
                chunk = []
        frames += _replay(chunk, runs, tally, truth, index, times)
    with open(job.segments_csv, newline="", encoding="utf-8") as fh:
        segments = [
            Segment(int(r["start_frame"]), int(r["end_frame"]), float(r["start_time"]), float(r["end_time"]),
                    r["label"], float(r["mean_prob"]))
            for r in csv.DictReader(fh)
        ]  # fmt: skip
    # times = [first, one before the last, last]: the last frame lasts as long as the step before it
    start, end = (times[0], 2 * times[2] - times[1]) if times else (0.0, 0.0)
    true_segments = None
    if tally is not None and truth is not None:
        info = probe(job.path)
        true_segments = truth.segments(info.fps if info else 0.0, start, end, options.background)
        tally.add_segments(segments, true_segments)
    if options.plot and (not job.png.exists() or job.png.stat().st_mtime < job.eaf.stat().st_mtime):
        names = display_names(classifier.labels)
        plot(job, segments, to_segments(runs.finish(end), ids), true_segments, (start, end), ids, names)
    return VideoResult(job, KEPT, frames, len(segments), 0.0, None, tally)


def _replay(
    rows: list[dict[str, str]],
    runs: RunBuilder,
    tally: Tally | None,
    truth: Truth | None,
    index: dict[str, int],
    times: list[float],
) -> int:
    """Feed rows of a frames.csv back into runs and the tally; `times` keeps the first time and the last two."""
    if not rows:
        return 0
    frames = np.array([int(r["frame"]) for r in rows], np.int64)
    t = np.array([float(r["time"]) for r in rows], np.float64)
    smoothed = [r["smoothed_label"] for r in rows]
    labels = np.array([index[s] for s in smoothed], np.int64)
    runs.add(frames, t, labels, np.zeros((len(rows), runs.num_classes)))
    if tally is not None and truth is not None:
        tally.add_frames(truth.labels_at(frames.tolist(), t.tolist()), smoothed, [r["label"] for r in rows])
    seen = times[1:] if times else [float(t[0])] * 2
    times[:] = [times[0] if times else float(t[0]), *(seen + t.tolist())[-2:]]
    return len(rows)


# ---------------------------------------------------------------------------------------------- the run


def _plan(
    classifier: Classifier, inputs: Sequence[str | Path], options: AnnotateOptions, notify: Notify
) -> tuple[list[Job], dict[Path, Truth]]:
    """The jobs of the run and their truths (read now, so that a bad truth file stops the run before any
    work rather than hours into it)."""
    paths = collect_videos(inputs)
    names = output_names(paths)
    truth_paths: list[Path | None] = [None] * len(paths)
    if options.truth is not None:
        truth_paths = find_truths(options.truth, names, [p.stem for p in paths])
        missing = [n for n, t in zip(names, truth_paths) if t is None]
        if len(missing) == len(paths):
            raise AnnotateInputError(
                f"--truth {options.truth} holds no <video name>.csv or .eaf for any video."
            )
        if missing:
            notify(f"No truth for {len(missing)} video(s) ({', '.join(missing[:5])}); they are not scored.")
    truths: dict[Path, Truth] = {}
    for path in {t for t in truth_paths if t is not None}:
        truth = read_truth(path, classifier.labels, options.truth_tier)
        if truth.unknown:
            notify(
                f"Truth {path} holds values that are neither a label nor a class name of the model "
                f"({', '.join(truth.unknown[:5])}); they count as classes it cannot predict."
            )
        truths[path] = truth
    jobs = [Job(p, n, options.out, t) for p, n, t in zip(paths, names, truth_paths)]
    return jobs, truths


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
    jobs, truths = _plan(classifier, inputs, options, notify)
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
    total = sum(info.expected(decode.every, decode.start, decode.end) if info else 0 for info in infos)
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
                    expected = (
                        infos[item.index].expected(decode.every, decode.start, decode.end)
                        if infos[item.index]
                        else 0
                    )
                    total += item.classified - expected  # the container's count was an estimate
                elif isinstance(item, VideoFailed):
                    if recorder is not None:
                        recorder.discard()
                    if options.strict:
                        raise VideoError(f"{item.reason} (--strict stops at the first)")
                    result = VideoResult(job, FAILED, note=item.reason)
                    total -= (
                        infos[item.index].expected(decode.every, decode.start, decode.end)
                        if infos[item.index]
                        else 0
                    )
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
