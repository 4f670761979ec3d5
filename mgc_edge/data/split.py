"""Group-aware, class-stratified train / val / test split, and its `split.csv` form.

Frames of one clip are near-duplicates, so a split by image leaks: every clip goes wholly to one split.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mgc_edge.config import SplitConfig
from mgc_edge.data.scan import DataError, Sample, Scan
from mgc_edge.fileio import write_text

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ("path", "label", "group", "split")


def _take(groups: list[str], sizes: dict[str, int], frac: float, keep: int) -> tuple[list[str], list[str]]:
    """Take groups from the front until their frames come closest to `frac` of the total; at least one
    group when frac > 0 and enough groups exist, and always leave `keep` groups behind."""
    total = sum(sizes[g] for g in groups)
    target = frac * total
    taken: list[str] = []
    count = 0
    for g in groups:
        if len(groups) - len(taken) <= keep:
            break
        # Stop when one more group would move us further from the target than we are now.
        if taken and abs(count + sizes[g] - target) >= abs(count - target):
            break
        if not taken and frac <= 0:
            break
        taken.append(g)
        count += sizes[g]
    return taken, groups[len(taken) :]


def assign_splits(samples: tuple[Sample, ...] | list[Sample], cfg: SplitConfig) -> list[str]:
    """The split name of every sample, deterministic for cfg.seed.

    group mode: each group's class is the majority label of its frames; per class, shuffled groups are
    cut so that test and val hold about test_frac and val_frac of that class's frames. A class with one
    clip stays in train; with two, one goes to test and val gets none.
    random mode: per-class random cut of images (leaky: siblings of a test frame sit in train).
    """
    rng = np.random.default_rng(cfg.seed)
    if cfg.mode == "random":
        keys = [f"<sample>{i}" for i in range(len(samples))]
    else:
        keys = [s.group for s in samples]
    sizes = Counter(keys)
    votes: dict[str, Counter[int]] = defaultdict(Counter)
    for key, s in zip(keys, samples):
        votes[key][s.label] += 1
    by_class: dict[int, list[str]] = defaultdict(list)
    for key in sorted(votes):
        by_class[votes[key].most_common(1)[0][0]].append(key)

    where: dict[str, str] = {}
    for label in sorted(by_class):
        groups = by_class[label]
        groups = [groups[i] for i in rng.permutation(len(groups))]
        test, rest = _take(groups, sizes, cfg.test_frac, keep=1)
        val, train = _take(rest, sizes, cfg.val_frac, keep=1)
        where.update({g: "test" for g in test})
        where.update({g: "val" for g in val})
        where.update({g: "train" for g in train})
    return [where[k] for k in keys]


def split_csv_text(scan: Scan, splits: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SPLIT_COLUMNS)
    for s, split in zip(scan.samples, splits):
        writer.writerow((s.path, scan.labels[s.label], s.group, split))
    return buf.getvalue()


def write_split_csv(path: Path, scan: Scan, splits: list[str]) -> None:
    """Write every file, its label, group and split (atomically)."""
    write_text(path, split_csv_text(scan, splits))


def read_split_csv(path: str | Path, scan: Scan) -> list[str]:
    """The splits of `scan`'s samples as recorded in a split.csv; every scanned file must be listed
    with the same label, so that a reused split means the same thing."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"Split file {path} does not exist.") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Split file {path} is not a readable CSV ({exc}).") from None
    if not rows or not set(SPLIT_COLUMNS) <= set(rows[0]):
        raise DataError(f"Split file {path} needs the columns {', '.join(SPLIT_COLUMNS)}.")
    recorded = {r["path"]: r for r in rows}
    out = []
    for s in scan.samples:
        row = recorded.get(s.path)
        if row is None:
            raise DataError(f"{s.path} is in the data folder but not in split file {path}.")
        if row["label"] != scan.labels[s.label]:
            raise DataError(
                f"{s.path} has label {row['label']} in {path} but sits in folder {scan.labels[s.label]}."
            )
        if row["split"] not in SPLITS:
            raise DataError(f"Split file {path} has an unknown split {row['split']!r} for {s.path}.")
        out.append(row["split"])
    return out


def leaked_groups(samples: tuple[Sample, ...] | list[Sample], splits: list[str]) -> set[str]:
    """Groups that appear in more than one split (empty for an honest split)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for s, split in zip(samples, splits):
        seen[s.group].add(split)
    return {g for g, where in seen.items() if len(where) > 1}


def samples_from_split_csv(path: str | Path, labels: tuple[str, ...], which: str) -> list[Sample]:
    """The samples of one split recorded in a run's split.csv, indexed by `labels` (a checkpoint's order)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Split file {path} does not exist.")
    index = {label: i for i, label in enumerate(labels)}
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("split") != which:
                continue
            if row["label"] not in index:
                raise DataError(
                    f"Split file {path} has label {row['label']!r}, which the model does not know."
                )
            out.append(Sample(row["path"], index[row["label"]], row["group"]))
    return out
