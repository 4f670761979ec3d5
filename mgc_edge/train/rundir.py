"""The run directory: what a run is trained on (scan + split + labels), and its files."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

from mgc_edge.config import TrainConfig
from mgc_edge.data.scan import DataError, Sample, Scan, scan_folder
from mgc_edge.data.split import assign_splits, read_split_csv, write_split_csv
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
