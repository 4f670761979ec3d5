"""Batch prediction: image files, folders (recursively) and globs -> one exported model -> a CSV.

The CSV is the course's submission format, `filename,class`: the file name relative to the folder (or the
glob's fixed part) it was found under, and the label name (the class folder name the model was trained
on). `topk` adds the next guesses, `clip` a clip-level prediction (mean softmax over a clip's files, the
clip parsed from the file name by the same regex as training). Unreadable files are listed and skipped.
numpy + OpenCV + onnxruntime only: never torch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgc_edge.data.scan import DEFAULT_GROUP_REGEX, compile_group_regex, group_key
from mgc_edge.errors import UserError
from mgc_edge.fileio import refuse_existing, write_text
from mgc_edge.images import IMAGE_EXTENSIONS, ImageBatch, ImageReadError, read_images
from mgc_edge.runtime.inputs import Wanted, collect
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.scores import top_k

Progress = Callable[[int, int], None]  # (files done, files in all)


class InputError(UserError):
    """An input path, folder or glob that gives nothing to predict; the message is one sentence."""


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # as written in the CSV: relative to the folder (or glob base) it was found under


@dataclass(frozen=True)
class PredictOptions:
    topk: int = 0  # 0: only `class`; K adds top1..topK and prob1..probK
    clip: bool = False
    group_regex: str = DEFAULT_GROUP_REGEX
    batch_size: int = 32
    strict: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.topk < 0:
            raise UserError(f"--topk must be 0 or more, got {self.topk}.")


@dataclass(frozen=True)
class PredictResult:
    files: list[InputFile]  # the files predicted, in input order
    probs: np.ndarray  # [N, C] float32
    failed: list[tuple[Path, str]]  # unreadable files and why


IMAGES = Wanted("image", IMAGE_EXTENSIONS, "predict", InputError)


def collect_inputs(inputs: Sequence[str | Path]) -> list[InputFile]:
    """Files, folders (recursively) and globs -> image files with their CSV names (relative to the folder or
    glob base they were found under; a file given by name is written as its name), each file once."""
    return [InputFile(f.path, f.path.relative_to(f.base).as_posix()) for f in collect(inputs, IMAGES)]


def _batches(files: Sequence[InputFile], size: int) -> list[list[InputFile]]:
    return [list(files[i : i + size]) for i in range(0, len(files), size)]


def predict_files(
    classifier: Classifier,
    files: Sequence[InputFile],
    options: PredictOptions = PredictOptions(),
    progress: Progress | None = None,
) -> PredictResult:
    """Probabilities for every readable file, in batches; the next batch is decoded while the model runs
    on the current one. With `options.strict` the first unreadable file is an ImageReadError."""
    batches = _batches(files, options.batch_size)
    kept: list[InputFile] = []
    probs: list[np.ndarray] = []
    failed: list[tuple[Path, str]] = []
    done = 0

    def read(batch: list[InputFile]) -> ImageBatch:
        return read_images([f.path for f in batch], skip_unreadable=not options.strict)

    with ThreadPoolExecutor(max_workers=1) as ahead:
        pending = ahead.submit(read, batches[0]) if batches else None
        for i, batch in enumerate(batches):
            assert pending is not None
            images = pending.result()
            pending = ahead.submit(read, batches[i + 1]) if i + 1 < len(batches) else None
            failed.extend(images.failed)
            if images.images:
                probs.append(classifier.predict(images.images))
                kept.extend(batch[j] for j in images.kept)
            done += len(batch)
            if progress is not None:
                progress(done, len(files))
    out = np.concatenate(probs) if probs else np.zeros((0, classifier.num_classes), np.float32)
    return PredictResult(kept, out, failed)


def clip_keys(files: Sequence[InputFile], group_regex: str) -> list[str]:
    """The clip of each file: its folder (relative, as in the CSV) and the group parsed from its name."""
    pattern = compile_group_regex(group_regex)
    keys = []
    for f in files:
        folder, _, name = f.name.rpartition("/")
        key = group_key(name, pattern)
        keys.append(f"{folder}/{key}" if folder else key)
    return keys


def clip_probs(probs: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """Each row replaced by the mean softmax of its clip's rows."""
    out = np.empty_like(probs)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    for rows in groups.values():
        out[rows] = probs[rows].mean(axis=0)
    return out


def to_csv(result: PredictResult, labels: Sequence[str], options: PredictOptions) -> str:
    """`filename,class` (+ `top1,prob1,...` with topk, + `clip,clip_class,clip_prob` with clip)."""
    ids = list(labels)
    k = min(options.topk, len(ids))
    header = ["filename", "class"]
    header += [col for j in range(1, k + 1) for col in (f"top{j}", f"prob{j}")]
    keys: list[str] = []
    clip = np.zeros_like(result.probs)
    if options.clip:
        header += ["clip", "clip_class", "clip_prob"]
        keys = clip_keys(result.files, options.group_regex)
        clip = clip_probs(result.probs, keys)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    order = top_k(result.probs, max(k, 1))
    for i, f in enumerate(result.files):
        row: list[str] = [f.name, ids[order[i, 0]]]
        for j in range(k):
            c = order[i, j]
            row += [ids[c], f"{result.probs[i, c]:.4f}"]
        if options.clip:
            c = int(np.argmax(clip[i]))
            row += [keys[i], ids[c], f"{clip[i, c]:.4f}"]
        writer.writerow(row)
    return text.getvalue()


def predict(
    classifier: Classifier,
    inputs: Sequence[str | Path],
    out: str | Path,
    options: PredictOptions = PredictOptions(),
    force: bool = False,
    progress: Progress | None = None,
) -> PredictResult:
    """Predict every image of `inputs` and write the CSV to `out` atomically (refused if it exists
    without `force`, checked before any work)."""
    out = refuse_existing(out, force, "--out")
    compile_group_regex(options.group_regex)  # a bad regex is refused before any work
    files = collect_inputs(inputs)
    result = predict_files(classifier, files, options, progress)
    if not result.files:
        raise ImageReadError(f"None of the {len(files)} input files is a readable image.")
    write_text(out, to_csv(result, classifier.labels.ids, options))
    return result
