"""The videos of a run: found among files, folders and globs, named (`<name>` of every output file), paired
with their truths, and whether one is already up to date (its required outputs exist, are newer than video
and model, and were made with these settings), so that a run killed midway does only what is missing."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgc_edge.runtime.inputs import Wanted, collect
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.recorded import outputs
from mgc_edge.runtime.recorded.options import VIDEO_EXTENSIONS, AnnotateInputError, AnnotateOptions, Notify
from mgc_edge.runtime.recorded.outputs import eaf
from mgc_edge.runtime.recorded.truth import Truth, find_truths, read_truth
from mgc_edge.runtime.smoothing import parse_smooth

VIDEOS = Wanted("video", VIDEO_EXTENSIONS, "annotate", AnnotateInputError)


@dataclass(frozen=True)
class Job:
    """One video of the run and the files it gets: `<out>/<name><SUFFIX>` for each of `outputs.OUTPUTS`."""

    path: Path
    name: str  # output stem: the video's stem, plus a suffix where two inputs share one
    out: Path
    truth: Path | None = None

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
    settings_file = job.file(eaf.SUFFIX)
    return eaf.read_properties(settings_file).get(eaf.SETTINGS_PROPERTY) == eaf.settings_text(settings)


def remove_stale_temps(job: Job) -> None:
    """Delete the temporary files a killed run left beside this video's outputs (named by fileio.temp_path
    with the writer's process id); those of a process still running are left alone."""
    if sys.platform == "win32":  # os.kill(pid, 0) is not a harmless probe there
        return
    for final in job.every_file:
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


def plan(
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
