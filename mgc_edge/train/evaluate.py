"""`mgc-edge evaluate RUN`: the best checkpoint on a split of its run, or on another folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mgc_edge.data.scan import folder_samples
from mgc_edge.data.split import samples_from_split_csv
from mgc_edge.errors import UserError
from mgc_edge.train import rundir as R
from mgc_edge.train.checkpoint import load_checkpoint
from mgc_edge.train.distributed import resolve_device
from mgc_edge.train.loop import evaluate_samples


def evaluate_run(
    run: str | Path,
    split: str = "test",
    data: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
) -> dict[str, Any]:
    """The full report of `run`'s best checkpoint on one split of its data (or on folder `data`)."""
    run = Path(run)
    ckpt = load_checkpoint(run if run.suffix == ".pt" else run / R.BEST)
    run_dir = ckpt.path.parent
    config = dataclasses.replace(ckpt.config, batch_size=max(1, batch_size // 2), workers=workers)
    split_csv = run_dir / R.SPLIT
    train_counts = None
    if split_csv.is_file():
        train_counts = [0] * ckpt.num_classes
        for s in samples_from_split_csv(split_csv, ckpt.labels.ids, "train"):
            train_counts[s.label] += 1
    if data is not None:
        root = Path(data)
        samples = folder_samples(root, ckpt.labels.ids, config.split.group_regex, config.strict)
        source = str(root)
    else:
        if split not in ("train", "val", "test"):
            raise UserError(f"--split must be train, val or test, got {split!r}.")
        root = Path(config.data)
        if not root.is_dir():
            raise UserError(f"The run's data folder {root} is gone; pass --data DIR to evaluate on a folder.")
        samples = samples_from_split_csv(split_csv, ckpt.labels.ids, split)
        source = f"{split} split of {root}"
    if not samples:
        raise UserError(f"There are no images to evaluate in the {source}.")
    dev = resolve_device(device)
    report = evaluate_samples(ckpt.build().to(dev), root, samples, ckpt.labels, config, dev, train_counts)
    report["source"] = source
    report["checkpoint"] = str(ckpt.path)
    report["epoch"] = ckpt.epoch
    return report
