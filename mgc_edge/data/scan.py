"""Scan a folder-per-class image tree into labelled samples with a group (clip) key each.

`scan_folder` is longer than 60 lines: one walk over the tree, with its checks and skip rules in the
order they apply.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mgc_edge.config import SplitConfig
from mgc_edge.errors import UserError
from mgc_edge.images import IMAGE_EXTENSIONS, is_image_name, read_images
from mgc_edge.labels import sort_labels


class DataError(UserError):
    """The data folder cannot be used as given; the message is one sentence."""


@dataclass(frozen=True)
class Sample:
    """One image: its path relative to the data root, label index and group (clip) key."""

    path: str
    label: int
    group: str


@dataclass(frozen=True)
class Scan:
    """What a data folder holds: labels in index order, the usable samples, and what was skipped."""

    root: Path
    labels: tuple[str, ...]
    samples: tuple[Sample, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (relative path, reason)

    def counts(self) -> list[int]:
        out = [0] * len(self.labels)
        for s in self.samples:
            out[s.label] += 1
        return out


def group_key(file_name: str, pattern: re.Pattern[str]) -> str:
    """The clip key of a file name (named group `group`, else the first group, else the whole match);
    a file the pattern does not match is a group of its own."""
    m = pattern.search(file_name)
    if m is None:
        return f"<file>{file_name}"
    if "group" in m.groupdict():
        return m.group("group")
    return m.group(1) if m.groups() else m.group(0)


def compile_group_regex(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as exc:
        raise DataError(f"The group regex {regex!r} is not a valid regular expression ({exc}).") from None


def scan_folder(root: str | Path, group_regex: str, strict: bool = False, verify: bool = True) -> Scan:
    """Scan `root/<class>/<image>`; hidden entries are ignored, unreadable files listed and skipped.

    Labels are the class folder names in numeric-aware order. `strict` makes any skipped file fatal.
    `verify` decodes every image (at reduced size, in threads: OpenCV releases the GIL).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"Data folder {root} does not exist.")
    if not root.is_dir():
        raise DataError(f"Data path {root} is not a folder.")
    pattern = compile_group_regex(group_regex)
    class_dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not class_dirs:
        raise DataError(f"Data folder {root} has no class folders; expected {root}/<class>/<image>.")
    labels = tuple(sort_labels([p.name for p in class_dirs]))
    if len(labels) < 2:
        raise DataError(f"Data folder {root} has only one class folder ({labels[0]}); need at least two.")

    candidates: list[tuple[Path, int]] = []
    skipped: list[tuple[str, str]] = []
    for index, name in enumerate(labels):
        found = 0
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if fname.startswith("."):
                    continue
                path = Path(dirpath) / fname
                if is_image_name(fname):
                    candidates.append((path, index))
                    found += 1
                else:
                    skipped.append((path.relative_to(root).as_posix(), "not an image file"))
        if found == 0:
            raise DataError(
                f"Class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "remove it or add images."
            )

    reasons: list[str | None] = [None] * len(candidates)
    if verify:
        batch = read_images([p for p, _ in candidates], skip_unreadable=True, reduced=True)
        unreadable = {path for path, _ in batch.failed}
        reasons = ["corrupt or not an image" if p in unreadable else None for p, _ in candidates]
    samples = []
    for (path, index), reason in zip(candidates, reasons):
        rel = path.relative_to(root).as_posix()
        if reason:
            skipped.append((rel, reason))
        else:
            samples.append(Sample(rel, index, group_key(path.name, pattern)))
    if skipped and strict:
        rel, reason = skipped[0]
        raise DataError(
            f"{len(skipped)} file(s) in {root} cannot be used (first: {rel}, {reason}); --strict is set."
        )
    scan = Scan(root, labels, tuple(samples), tuple(skipped))
    empty = [labels[i] for i, c in enumerate(scan.counts()) if c == 0]
    if empty:
        raise DataError(f"Class folder(s) {', '.join(empty)} in {root} hold no readable images.")
    return scan


DEFAULT_GROUP_REGEX = SplitConfig().group_regex  # <clip> of <clip>.<frame>.jpg


def folder_samples(
    data: str | Path, labels: tuple[str, ...], group_regex: str = DEFAULT_GROUP_REGEX, strict: bool = False
) -> list[Sample]:
    """Samples of a folder-per-class tree indexed by a MODEL's labels: folder names map by name, so a
    folder with fewer classes (or another order) still scores against the right outputs."""
    scan = scan_folder(data, group_regex, strict=strict)
    unknown = [name for name in scan.labels if name not in labels]
    if unknown:
        raise DataError(f"{data} has class folder(s) the model does not know: {', '.join(unknown[:5])}.")
    index = {name: i for i, name in enumerate(labels)}
    return [dataclasses.replace(s, label=index[scan.labels[s.label]]) for s in scan.samples]
