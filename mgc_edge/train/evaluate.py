"""Evaluation: a model's logits over a list of samples, the full report, and `mgc-edge evaluate RUN`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.cache import open_cache
from mgc_edge.data.dataset import FrameDataset
from mgc_edge.data.scan import Sample, folder_samples
from mgc_edge.errors import UserError
from mgc_edge.fileio import refuse_existing, write_json
from mgc_edge.labels import Labels
from mgc_edge.metrics import evaluate_predictions
from mgc_edge.reports import render_report
from mgc_edge.train import rundir as R
from mgc_edge.train.batches import BatchSource, CachedBatches, LoaderBatches, make_loader
from mgc_edge.train.checkpoint import load_checkpoint
from mgc_edge.train.distributed import resolve_device


def autocast_for(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA where supported (fp16 otherwise); plain fp32 on the CPU."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def infer(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    amp: bool = False,
    channels_last: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits [N, C] (float32) and labels [N] over batches (a BatchSource or a DataLoader), in order.

    Outputs stay on the device until the end: one copy back, not one synchronisation per batch."""
    model.eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    outs, ys = [], []
    for images, targets in batches:
        images = images.to(device, non_blocking=True).contiguous(memory_format=fmt)
        with autocast_for(device, amp):
            outs.append(model(images).float())
        ys.append(targets.to(device, non_blocking=True))
    return torch.cat(outs).cpu().numpy(), torch.cat(ys).cpu().numpy()


def sample_batches(
    root: Path,
    samples: list[Sample],
    spec: PreprocessSpec,
    device: torch.device,
    batch_size: int,
    workers: int = 0,
    cache_dir: Path | None = None,
    role: str = "eval",
    on_progress: Callable[[int, int], None] | None = None,
) -> BatchSource:
    """Evaluation batches of `samples` in order: from the uint8 cache at exactly the model size when
    `cache_dir` is given (bit-identical to preprocess() of the decoded files), else decoded by a DataLoader."""
    if cache_dir is None:
        return LoaderBatches(make_loader(FrameDataset(root, samples, spec), batch_size, workers), device)
    cached = open_cache(root, samples, spec, role, cache_dir, on_progress=on_progress)
    return CachedBatches(cached.images, [s.label for s in samples], spec, batch_size, device)


def evaluate_samples(
    model: nn.Module,
    root: Path,
    samples: list[Sample],
    labels: Labels,
    spec: PreprocessSpec,
    device: torch.device,
    batch_size: int,
    workers: int = 0,
    train_counts: list[int] | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """The full evaluation report (evaluate_predictions) of a model on a list of samples; `cache_dir` reads
    them through the training cache (see sample_batches)."""
    batches = sample_batches(root, samples, spec, device, batch_size, workers, cache_dir, role="test")
    logits, y = infer(model, batches, device)
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    return evaluate_predictions(
        y, probs, labels, groups=[s.group for s in samples], train_counts=train_counts
    )


def show_report(
    report: dict[str, Any], labels: Labels, confusion_png: Path, title: str, console: Console
) -> None:
    """The one way a report leaves evaluation: the confusion matrix as PNG and the tables on the terminal."""
    from mgc_edge.train.plots import plot_confusion

    plot_confusion(report["confusion"], labels, confusion_png, title=title)
    render_report(report, console, title=title)


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
    config = ckpt.config
    if data is not None:
        root = Path(data)
        samples = folder_samples(root, ckpt.labels.ids, config.split.group_regex, config.strict)
        source = str(root)
    else:
        if split not in ("train", "val", "test"):
            raise UserError(f"--split must be train, val or test, got {split!r}.")
        root = Path(config.data)
        samples = R.run_split(
            run_dir, root, ckpt.labels.ids, split, "pass --data DIR to evaluate on a folder"
        )
        source = f"{split} split of {root}"
    if not samples:
        raise UserError(f"There are no images to evaluate in the {source}.")
    dev = resolve_device(device)
    report = evaluate_samples(
        ckpt.build().to(dev),
        root,
        samples,
        ckpt.labels,
        ckpt.preprocess,
        dev,
        batch_size=batch_size,
        workers=workers,
        train_counts=R.split_counts(run_dir, ckpt.labels.ids, "train"),
    )
    report["source"] = source
    report["checkpoint"] = str(ckpt.path)
    report["epoch"] = ckpt.epoch
    return report


def evaluate_and_write(
    run: str | Path,
    split: str = "test",
    data: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
    json_out: Path | None = None,
    console: Console | None = None,
    force: bool = False,
) -> tuple[dict[str, Any], Path]:
    """`mgc-edge evaluate`: the report as JSON (RUN/eval-<split>.json by default), its confusion PNG beside
    it, and the tables on the console. An existing report or PNG is refused before any work unless `force`."""
    run = Path(run)
    run_dir = run.parent if run.suffix == ".pt" else run  # where evaluate_run finds the checkpoint
    out = (
        Path(json_out)
        if json_out is not None
        else run_dir / R.eval_report_name("data" if data is not None else split)
    )
    confusion = out.with_suffix(".confusion.png")
    refuse_existing(out, force, "--json")
    refuse_existing(confusion, force, "the confusion matrix")
    report = evaluate_run(run, split=split, data=data, device=device, batch_size=batch_size, workers=workers)
    write_json(out, report)
    labels = Labels(
        tuple(r["label"] for r in report["per_class"]), tuple(r["name"] for r in report["per_class"])
    )
    title = f"Evaluation on the {report['source']}"
    show_report(report, labels, confusion, title, console or Console(stderr=True))
    return report, out
