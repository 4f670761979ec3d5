"""The run directory: what a run is trained on (scan + split + labels), and its files."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

from mgc_edge.config import TrainConfig
from mgc_edge.data.scan import DataError, Sample, Scan, scan_folder
from mgc_edge.data.split import assign_splits, read_split_csv, samples_from_split_csv, write_split_csv
from mgc_edge.errors import UserError
from mgc_edge.fileio import write_text
from mgc_edge.labels import Labels, attach_names

CONFIG = "config.json"
SPLIT = "split.csv"
METRICS = "metrics.csv"
BEST = "best.pt"
LAST = "last.pt"
REPORT = "report.json"
CURVES = "curves.png"
CONFUSION = "confusion.png"
MODEL = "model.onnx"  # export's default fp32 file; the other precisions derive from it


def eval_report_name(tag: str) -> str:
    """`mgc-edge evaluate`'s report for a split (or "data" for another folder): eval-<tag>.json."""
    return f"eval-{tag}.json"


@dataclass(frozen=True)
class RunData:
    """Everything training needs from the data folder, split and labelled."""

    scan: Scan
    labels: Labels
    splits: tuple[str, ...]  # one per scan.samples

    def samples(self, which: str) -> list[Sample]:
        return [s for s, split in zip(self.scan.samples, self.splits) if split == which]

    def counts(self, which: str) -> list[int]:
        out = [0] * len(self.labels)
        for s in self.samples(which):
            out[s.label] += 1
        return out


def check_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """Refuse to clobber a run: an existing run needs --resume or --force."""
    if resume:
        if not (run_dir / LAST).is_file():
            raise UserError(f"Cannot resume: {run_dir / LAST} does not exist.")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UserError(
                f"Run directory {run_dir} already exists; pass --resume to continue it or --force to replace it."
            )
        if not (run_dir / CONFIG).is_file():
            raise UserError(f"{run_dir} is not empty and is not an mgc-edge run; refusing to replace it.")


def clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run (only after check_run_dir allowed it)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)


def prepare_data(config: TrainConfig) -> RunData:
    """Scan, name and split the data exactly as the config says (deterministic for its seeds)."""
    scan = scan_folder(config.data, config.split.group_regex, strict=config.strict)
    labels = attach_names(list(scan.labels), config.class_names)
    if config.split_file:
        splits = read_split_csv(config.split_file, scan)
    else:
        splits = assign_splits(scan.samples, config.split)
    data = RunData(scan, labels, tuple(splits))
    if not data.samples("train"):
        raise DataError(f"The split of {config.data} left no training images.")
    return data


def run_split(
    run_dir: str | Path, data: str | Path, labels: tuple[str, ...], which: str, hint: str
) -> list[Sample]:
    """The samples of split `which` of the run in `run_dir`, read from its split.csv under `data`, indexed by
    `labels`. `hint` ends the sentence when the split file or the data folder is gone ("pass --data DIR")."""
    split_csv, root = Path(run_dir) / SPLIT, Path(data)
    if not split_csv.is_file():
        raise DataError(f"{Path(run_dir)} has no {SPLIT}; {hint}.")
    if not root.is_dir():
        raise DataError(f"The run's data folder {root} is gone; {hint}.")
    return samples_from_split_csv(split_csv, labels, which)


def split_counts(run_dir: str | Path, labels: tuple[str, ...], which: str = "train") -> list[int] | None:
    """Frames per class in one split of a run (None when the run has no split.csv): the baseline's source."""
    split_csv = Path(run_dir) / SPLIT
    if not split_csv.is_file():
        return None
    counts = [0] * len(labels)
    for s in samples_from_split_csv(split_csv, labels, which):
        counts[s.label] += 1
    return counts


def write_run_files(run_dir: Path, config: TrainConfig, data: RunData) -> None:
    write_text(run_dir / CONFIG, config.to_json() + "\n")
    write_split_csv(run_dir / SPLIT, data.scan, list(data.splits))


def write_metrics_csv(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    lines = [",".join(columns)]
    lines += [",".join(f"{row.get(c, '')}" for c in columns) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows
