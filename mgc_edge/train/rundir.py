"""The run directory: what a run is trained on (scan + split + labels), and its files."""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from mgc_edge.config import TrainConfig
from mgc_edge.data.scan import DataError, Sample, Scan, scan_folder
from mgc_edge.data.split import assign_splits, read_split_csv, samples_from_split_csv, write_split_csv
from mgc_edge.errors import UserError
from mgc_edge.fileio import write_text
from mgc_edge.labels import Labels, attach_names
from mgc_edge.metrics import MIN_CLIPS_TO_JUDGE

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
        if not (run_dir / CONFIG).is_file():
            raise UserError(f"{run_dir} already exists and is not an mgc-edge run; choose another --run-dir.")
        if overwrite:
            return
        if not (run_dir / LAST).is_file():  # a run killed before its first checkpoint: nothing to resume
            raise UserError(
                f"Run directory {run_dir} holds a run that saved no epoch; pass --force to start it again."
            )
        raise UserError(
            f"Run directory {run_dir} already exists; pass --resume to continue it or --force to replace it."
        )


class NewRun:
    """A fresh run's directory until its first checkpoint.

    `start()` sets an earlier run that --force replaces aside (renamed beside it, not yet deleted) and writes
    config.json and split.csv; `saved()`, once last.pt exists, deletes the run set aside; `undo()`, after a
    failure before any checkpoint (a diverged first epoch, weights that cannot be fetched, Ctrl-C), removes
    what this run wrote and puts the earlier run back: a failed start neither blocks its own retry nor costs
    the run it was to replace. Only the main process calls these."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.aside: Path | None = None
        self.made = False  # whether this run made the folder (then it removes it again)
        self.started = False  # nothing is undone before start(): the folder may hold another run

    def start(self, config: TrainConfig, data: RunData) -> None:
        run_dir = self.run_dir
        if run_dir.exists() and any(run_dir.iterdir()):  # check_run_dir allowed it: --force on a run
            aside = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}-{secrets.token_hex(4)}")
            try:
                os.replace(run_dir, aside)
                self.aside = aside
            except OSError:  # a mount point, a parent not ours to write in: replaced at once, as asked
                shutil.rmtree(run_dir)
        self.made = not run_dir.exists()
        self.started = True
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_files(run_dir, config, data)

    def saved(self) -> None:
        if self.aside is not None and (self.run_dir / LAST).is_file():
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def undo(self) -> None:
        if not self.started:
            return
        if (self.run_dir / LAST).is_file() or (self.run_dir / BEST).is_file():
            self.saved()  # it saved an epoch: that is kept, as the error says
            return
        for name in (CONFIG, SPLIT, METRICS):
            (self.run_dir / name).unlink(missing_ok=True)
        if self.made:
            with contextlib.suppress(OSError):  # something else was put there meanwhile: left as it is
                self.run_dir.rmdir()
        if self.aside is not None and not self.run_dir.exists():
            os.replace(self.aside, self.run_dir)
            self.aside = None


def update_config(run_dir: Path, config: TrainConfig) -> None:
    """config.json says what the run trains with: after --resume with other options (more --epochs) it is
    rewritten (atomically), so that a later --resume or --config continues that run, not the shorter one."""
    path, text = run_dir / CONFIG, config.to_json() + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text(path, text)


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


def validation_note(data: RunData, min_clips: int = MIN_CLIPS_TO_JUDGE) -> str | None:
    """One sentence when the validation split is too small to judge every class on, else None."""
    val = data.samples("val")
    if not val:
        return None
    clips: dict[int, set[str]] = {}
    for s in val:
        clips.setdefault(s.label, set()).add(s.group)
    trained = [i for i, n in enumerate(data.counts("train")) if n > 0]
    thin = [i for i in trained if len(clips.get(i, ())) < min_clips]
    if not thin:
        return None
    n_clips = len({s.group for s in val})
    return (
        f"Validation holds {len(val)} images in {n_clips} clips and {len(thin)} of {len(trained)} classes have "
        f"fewer than {min_clips} clips there: its figures move by several points between epochs by chance "
        f"(the ± on each epoch line), and the best epoch is chosen on them; a larger --val-frac steadies them."
    )
