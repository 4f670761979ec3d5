"""fit(): train, pick the best epoch on validation (macro-F1), evaluate it once on test.

fit() is a sequence of small steps: trainer.setup() builds what a run trains with (data sources, model,
optimiser), trainer.restore() reads last.pt on --resume, run_epoch() trains one pass (train_one_epoch),
validate() scores it, record() writes the metrics and checkpoints, finish() evaluates the best checkpoint
on test.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from mgc_edge.config import TrainConfig
from mgc_edge.errors import UserError
from mgc_edge.fileio import write_json
from mgc_edge.metrics import (
    accuracy,
    balanced_accuracy,
    clip_bootstrap_se,
    macro_f1,
)
from mgc_edge.models import min_input_size
from mgc_edge.train import distributed as D
from mgc_edge.train import rundir as R
from mgc_edge.train.batches import BatchSource
from mgc_edge.train.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from mgc_edge.train.evaluate import autocast_for, evaluate_samples, infer, show_report
from mgc_edge.train.trainer import (
    EVAL_BATCH_FACTOR,
    History,
    Trainer,
    cache_dir_of,
    progress_bar,
    restore,
    resumable,
    setup,
)

REFRESH_S = 0.5  # seconds between progress-bar figures (each read synchronises with the device once)


class DivergedError(UserError):
    """The training loss stopped being a number; the checkpoints of earlier epochs are left as they were."""


@dataclass(frozen=True)
class FitResult:
    run_dir: Path
    best_epoch: int
    best_val: dict[str, float]
    test_report: dict[str, Any] | None
    seconds: float


def train_one_epoch(
    net: nn.Module,
    batches: BatchSource,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    device: torch.device,
    amp: bool,
    scaler: torch.amp.GradScaler | None,
    max_batches: int = 0,
    on_batch: Callable[[int, dict[str, float] | None], None] | None = None,
) -> dict[str, float]:
    """One pass over `batches` (model inputs already on the device); returns mean loss, accuracy, images seen
    and seconds (this rank's share).

    Loss and hits add up on the device: the host reads them at the end and at most every REFRESH_S seconds
    for `on_batch(done, stats)` (stats None in between), never once per batch, so the step never waits."""
    net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, start = 0, time.perf_counter()
    shown = start
    for i, (images, targets) in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        with autocast_for(device, amp):
            logits = net(images)
            loss = loss_fn(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        n = targets.shape[0]
        loss_sum += loss.detach().double() * n
        correct += (logits.detach().argmax(1) == targets).sum()
        seen += n
        if on_batch is not None:
            now = time.perf_counter()
            stats = None
            if now - shown >= REFRESH_S:
                stats, shown = _read(loss_sum, correct, seen, now - start), now
            on_batch(i + 1, stats)
    stats = _read(loss_sum, correct, seen, 0.0)
    stats["seconds"] = time.perf_counter() - start  # after the read: every queued step has finished
    return stats


def _read(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, seconds: float) -> dict[str, float]:
    """The epoch's figures so far, read from the device in one copy."""
    loss, hits = torch.stack([loss_sum, correct.double()]).tolist()
    return {
        "loss": loss / max(seen, 1),
        "acc": hits / max(seen, 1),
        "seen": seen,
        "images_per_s": seen / max(seconds, 1e-9),
    }


def evaluate(
    logits: np.ndarray, y: np.ndarray, num_classes: int, groups: list[str] | None = None
) -> dict[str, float]:
    """The per-epoch validation figures (cheap); the full report comes from evaluate_predictions.

    With the clip of each frame, also the figures' standard errors over clips: a small validation split
    moves by several points between epochs by chance alone, and the epoch line says how many.
    """
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    pred = probs.argmax(1)
    out = {
        "loss": loss,
        "acc": accuracy(y, probs),
        "macro_f1": macro_f1(y, pred, num_classes),
        "balanced_acc": balanced_accuracy(y, pred, num_classes),
    }
    if groups is not None:
        se = clip_bootstrap_se(y, pred, groups, num_classes)
        out.update(acc_se=se["top1"], macro_f1_se=se["macro_f1"])
    return out


def _check_input_size(config: TrainConfig) -> None:
    need = min_input_size(config.arch)
    if min(config.preprocess.size) < need:
        raise UserError(
            f"{config.arch} needs an input of at least {need}x{need}; got {config.preprocess.size}."
        )


def fit(
    config: TrainConfig, overwrite: bool = False, resume: bool = False, console: Console | None = None
) -> FitResult:
    """Train per `config` into config.run_dir; the only function the `train` command calls."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    info, device = D.setup(config.device)
    quiet = Console(quiet=True)
    out = console if info.is_main else quiet
    run_dir = Path(config.run_dir)
    if info.is_main:
        from mgc_edge.train.plots import warm_font_cache

        warm_font_cache()  # the plots at the end need it; built while the run trains
    new_run = R.NewRun(run_dir) if info.is_main and not resume else None
    try:
        _check_input_size(config)
        R.check_run_dir(run_dir, overwrite, resume)
        last = resumable(run_dir, config) if resume else None
        data = R.prepare_data(config)
        D.barrier(info)  # every rank checked the run dir before rank 0 touches it
        if new_run is not None:
            new_run.start(config, data)
        _describe_data(config, data, out)
        trainer = setup(config, data, info, device, run_dir, out)
        history = restore(trainer, last) if last is not None else History()
        if last is not None and info.is_main:
            R.update_config(run_dir, config)  # once the options proved to fit the run
        for epoch in range(history.start_epoch, config.epochs + 1):
            row = run_epoch(trainer, epoch)
            _check_finite(row, config, run_dir)
            if info.is_main:
                record(trainer, history, row, validate(trainer))
                if new_run is not None:
                    new_run.saved()
            if D.broadcast(info, bool(config.patience and history.stale >= config.patience)):
                out.print(f"No validation improvement for {config.patience} epochs; stopping early.")
                break
        report = finish(trainer, history) if info.is_main else None
        D.barrier(info)
        return FitResult(run_dir, history.best_epoch, history.best_val, report, time.perf_counter() - started)
    except BaseException:
        if new_run is not None:
            with contextlib.suppress(OSError):  # the error that stopped the run is the one to tell
                new_run.undo()  # before its first checkpoint a run leaves nothing behind (see NewRun)
        raise
    finally:
        D.teardown()


def _check_finite(row: dict[str, float], config: TrainConfig, run_dir: Path) -> None:
    # The row is summed over ranks, so every rank stops here together.
    if not math.isfinite(row["train_loss"]):
        kept = (
            f"the checkpoints of earlier epochs are kept in {run_dir}"
            if row["epoch"] > 1
            else f"nothing was saved in {run_dir}"  # NewRun.undo() takes back what the run wrote
        )
        raise DivergedError(
            f"Training diverged in epoch {int(row['epoch'])} (the loss is {row['train_loss']}); {kept}; "
            f"try a smaller --lr than {config.lr:g}."
        )


def _describe_data(config: TrainConfig, data: R.RunData, out: Console) -> None:
    train_s, val_s, test_s = data.samples("train"), data.samples("val"), data.samples("test")
    out.print(
        f"[bold]{config.data}[/]: {len(data.labels)} classes, {len(data.scan.samples)} images "
        f"(train {len(train_s)}, val {len(val_s)}, test {len(test_s)}; split by "
        f"{'clip' if config.split.mode == 'group' else 'RANDOM IMAGE (leaky)'})"
    )
    note = R.validation_note(data)
    if note:
        out.print(f"[yellow]{note}[/]")
    if data.scan.skipped:
        shown = "; ".join(f"{p} ({why})" for p, why in data.scan.skipped[:5])
        more = f" and {len(data.scan.skipped) - 5} more" if len(data.scan.skipped) > 5 else ""
        out.print(f"[yellow]Skipped {len(data.scan.skipped)} file(s):[/] {shown}{more}")


# --- one epoch --------------------------------------------------------------------------------------------


def run_epoch(t: Trainer, epoch: int) -> dict[str, float]:
    """Train one epoch with a progress bar; the metrics row of the whole job (summed over ranks)."""
    t.train.set_epoch(epoch)
    world = t.info.world_size
    with progress_bar(t.out) as progress:
        task = progress.add_task(f"epoch {epoch}/{t.config.epochs}", total=t.steps_per_epoch, stats="")

        def on_batch(done: int, s: dict[str, float] | None) -> None:
            if s is None:
                progress.update(task, completed=done)
            else:
                text = f"loss {s['loss']:.3f} acc {s['acc']:.1%} {s['images_per_s'] * world:.0f} img/s"
                progress.update(task, completed=done, stats=text)

        stats = train_one_epoch(
            t.net,
            t.train,
            t.optimizer,
            t.scheduler,
            t.loss_fn,
            t.device,
            t.amp,
            t.scaler,
            t.config.max_train_batches,
            on_batch,
        )
    loss_sum, correct, seen = D.all_reduce_sum(
        t.info, [stats["loss"] * stats["seen"], stats["acc"] * stats["seen"], stats["seen"]], t.device
    )
    return {
        "epoch": epoch,
        "lr": t.optimizer.param_groups[0]["lr"],
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": correct / max(seen, 1),
        "images_per_s": seen / max(stats["seconds"], 1e-9),
        "seconds": stats["seconds"],
    }


def validate(t: Trainer) -> dict[str, float] | None:
    """The epoch's validation figures (None without validation images)."""
    if t.val is None:
        return None
    logits, y = infer(t.model, t.val, t.device, t.amp, t.channels_last)
    return evaluate(logits, y, len(t.data.labels), [s.group for s in t.data.samples("val")])


# --- checkpoints ------------------------------------------------------------------------------------------


def record(t: Trainer, h: History, row: dict[str, float], val: dict[str, float] | None) -> bool:
    """Add the epoch to metrics.csv, save best.pt when validation improved (always without validation)
    and last.pt with everything --resume needs; returns whether the epoch is the best so far."""
    epoch = int(row["epoch"])
    if val is not None:
        row.update({f"val_{k}": v for k, v in val.items()})
    improved = val is None or not h.best_val or val["macro_f1"] > h.best_val["macro_f1"]
    h.rows.append(row)
    R.write_metrics_csv(t.run_dir / R.METRICS, h.rows)
    if improved:
        h.best_epoch, h.best_val, h.stale = epoch, dict(val or {}), 0
        metrics = {"val": h.best_val, "train_acc": row["train_acc"]}
        save_checkpoint(t.run_dir / R.BEST, checkpoint_dict(t.model, t.config, t.data.labels, epoch, metrics))
    else:
        h.stale += 1
    cuda = t.device.type == "cuda"
    resume_state = {
        "optimizer": t.optimizer.state_dict(),
        "scheduler": t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict() if t.scaler is not None else None,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(t.device) if cuda else None,
        "best_epoch": h.best_epoch,
        "best_val": h.best_val,
        "stale": h.stale,
    }
    save_checkpoint(
        t.run_dir / R.LAST,
        checkpoint_dict(t.model, t.config, t.data.labels, epoch, {"val": row}, resume_state),
    )
    t.out.print(_epoch_line(row, improved))
    return improved


# --- finish -----------------------------------------------------------------------------------------------


def finish(t: Trainer, h: History) -> dict[str, Any] | None:
    """Evaluate the best checkpoint once on test; write report.json, curves.png and confusion.png."""
    from mgc_edge.train.plots import plot_curves

    config, data, run_dir = t.config, t.data, t.run_dir
    test_samples = data.samples("test")
    plot_curves(h.rows, run_dir / R.CURVES)
    report: dict[str, Any] = {
        "best_epoch": h.best_epoch,
        "val": h.best_val,
        "split_mode": config.split.mode,
        "split_counts": {s: len(data.samples(s)) for s in ("train", "val", "test")},
        "world_size": t.info.world_size,
        "val_warning": R.validation_note(data),
        "test": None,
    }
    if config.split.mode == "random":
        report["warning"] = "random image split: test frames have near-duplicate siblings in train (leaky)"
    if test_samples:
        model = load_checkpoint(run_dir / R.BEST).build().to(t.device)
        report["test"] = evaluate_samples(
            model,
            data.scan.root,
            test_samples,
            data.labels,
            config.preprocess,
            t.device,
            batch_size=config.batch_size * EVAL_BATCH_FACTOR,
            workers=config.workers,
            train_counts=data.counts("train"),
            cache_dir=cache_dir_of(config) if config.cache else None,
        )
        title = "Test (leaky random split)" if config.split.mode == "random" else "Test (clip-grouped split)"
        show_report(
            report["test"], data.labels, run_dir / R.CONFUSION, f"{title}, best epoch {h.best_epoch}", t.out
        )
    write_json(run_dir / R.REPORT, report)
    t.out.print(f"Run saved in [bold]{run_dir}[/] (best epoch {h.best_epoch}).")
    return report["test"]


def _epoch_line(row: dict[str, float], improved: bool) -> str:
    text = (
        f"epoch {int(row['epoch']):>3}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%}  "
        f"{row['images_per_s']:.0f} img/s {row['seconds']:.0f}s"
    )
    if "val_loss" in row:
        text += (
            f"  | val loss {row['val_loss']:.3f} acc {row['val_acc']:.1%}{_pm(row, 'val_acc_se', '.1%')} "
            f"bal {row['val_balanced_acc']:.1%} F1 {row['val_macro_f1']:.3f}{_pm(row, 'val_macro_f1_se', '.3f')}"
        )
    return text + ("  [green]*best[/]" if improved else "")


def _pm(row: dict[str, float], key: str, fmt: str) -> str:
    value = row.get(key)
    return f" ±{value:{fmt}}" if value is not None and math.isfinite(value) else ""
