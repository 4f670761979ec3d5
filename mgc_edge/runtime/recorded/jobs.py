"""The videos of a run: found among files, folders and globs, named (`<name>` of every output file), paired
with their truths (found by the same rules as the names, `truth.find_truths`), and the settings their files
depend on. Whether a video is up to date is its completion record's to say (`record.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgc_edge.runtime.inputs import Wanted, collect
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.recorded import outputs, record
from mgc_edge.runtime.recorded.options import VIDEO_EXTENSIONS, AnnotateInputError, AnnotateOptions, Notify
from mgc_edge.runtime.recorded.truth import Truth, VideoRef, find_truths, read_truth
from mgc_edge.runtime.smoothing import parse_smooth

VIDEOS = Wanted("video", VIDEO_EXTENSIONS, "annotate", AnnotateInputError)


@dataclass(frozen=True)
class Job:
    """One video of the run and the files it gets: `<out>/<name><SUFFIX>` for each of `outputs.OUTPUTS`."""

    path: Path
    name: str  # output stem: the video's stem, plus a suffix where two inputs share one
    out: Path
    truth: Path | None = None
    relative: Path | None = None  # the video's path inside the input folder it was found under

    @property
    def record(self) -> Path:
        """The completion record, written last (record.py)."""
        return self.file(record.SUFFIX)

    def file(self, suffix: str) -> Path:
        return self.out / f"{self.name}{suffix}"

    @property
    def outputs(self) -> tuple[Path, ...]:
        """The files a video must have to be kept (summary.json lists them)."""
        return tuple(self.file(output.SUFFIX) for output in outputs.OUTPUTS if output.REQUIRED)

    @property
    def every_file(self) -> tuple[Path, ...]:
        return tuple(self.file(output.SUFFIX) for output in outputs.OUTPUTS)


def collect_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Video files, folders and globs (runtime/inputs.py), each file once."""
    return [found.path for found in collect(inputs, VIDEOS)]


def _relative(path: Path, base: Path) -> Path:
    try:
        return path.relative_to(base)
    except ValueError:
        return Path(path.name)


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
        "topk": min(options.topk, len(classifier.labels.ids)),
    }


def plan(
    classifier: Classifier, inputs: Sequence[str | Path], options: AnnotateOptions, notify: Notify
) -> tuple[list[Job], dict[Path, Truth]]:
    """The jobs of the run and their truths (read now, so that a bad truth file stops the run before any
    work rather than hours into it). A truth file that is also an output path of the run is refused."""
    found = collect(inputs, VIDEOS)
    paths = [f.path for f in found]
    names = output_names(paths)
    relatives = [_relative(f.path, f.base) for f in found]
    truth_paths: list[Path | None] = [None] * len(paths)
    if options.truth is not None:
        refs = [VideoRef(n, p.stem, r, p) for n, p, r in zip(names, paths, relatives)]
        truth_paths = find_truths(options.truth, refs)
        missing = [n for n, t in zip(names, truth_paths) if t is None]
        if len(missing) == len(paths):
            raise AnnotateInputError(
                f"--truth {options.truth} holds no <video name>.csv or .eaf for any video."
            )
        if missing:
            notify(f"No truth for {len(missing)} video(s) ({', '.join(missing[:5])}); they are not scored.")
    jobs = [Job(p, n, options.out, t, r) for p, n, t, r in zip(paths, names, truth_paths, relatives)]
    _refuse_truth_as_output(jobs)
    truths: dict[Path, Truth] = {}
    for path in {t for t in truth_paths if t is not None}:
        truth = read_truth(path, classifier.labels, options.truth_tier)
        if truth.unknown:
            notify(
                f"Truth {path} holds values that are neither a label nor a class name of the model "
                f"({', '.join(truth.unknown[:5])}); they count as classes it cannot predict."
            )
        truths[path] = truth
    return jobs, truths


def _refuse_truth_as_output(jobs: Sequence[Job]) -> None:
    """A truth is never written over, even with --force: it is what the run is judged by."""
    truths = {job.truth.resolve(): job.truth for job in jobs if job.truth is not None}
    for job in jobs:
        for path in (*job.every_file, job.record):
            if path.resolve() in truths:
                raise AnnotateInputError(
                    f"--truth file {truths[path.resolve()]} is also where annotate would write {job.path}'s "
                    "output; give --out another folder (a truth is never overwritten, even with --force)."
                )
