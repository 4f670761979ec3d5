"""fit(): train, pick the best epoch on validation (macro-F1), evaluate it once on test."""

from __future__ import annotations

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
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from mgc_edge.config import TrainConfig
from mgc_edge.data.dataset import Augment, FrameDataset, WeightedDistributedSampler, class_weights
from mgc_edge.errors import UserError
from mgc_edge.fileio import write_json
from mgc_edge.metrics import accuracy, balanced_accuracy, macro_f1
from mgc_edge.models import build_model, min_input_size
from mgc_edge.train import distributed as D
from mgc_edge.train import rundir as R
from mgc_edge.train.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint, unwrap
from mgc_edge.train.evaluate import autocast_for, evaluate_samples, infer, make_loader, show_report


@dataclass(frozen=True)
class FitResult:
    run_dir: Path
    best_epoch: int
    best_val: dict[str, float]
    test_report: dict[str, Any] | None
    seconds: float


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 1 % of the base rate; per optimiser step."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    device: torch.device,
    amp: bool,
    scaler: torch.amp.GradScaler | None,
    channels_last: bool,
    max_batches: int = 0,
    on_batch: Callable[[int, float, float, float], None] | None = None,
) -> dict[str, float]:
    """One pass over the loader; returns mean loss, accuracy and images/s (this rank's share)."""
    model.train()
    loss_sum, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    for i, (images, targets) in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        with autocast_for(device, amp):
            logits = model(images)
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
        n = targets.numel()
        loss_sum += loss.item() * n
        correct += (logits.argmax(1) == targets).sum().item()
        seen += n
        if on_batch is not None:
            on_batch(i + 1, loss_sum / seen, correct / seen, seen / (time.perf_counter() - start))
    elapsed = time.perf_counter() - start
    return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1), "seen": seen, "seconds": elapsed}


def evaluate(logits: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, float]:
    """The per-epoch validation figures (cheap); the full report comes from evaluate_predictions."""
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    pred = probs.argmax(1)
    return {
        "loss": loss,
        "acc": accuracy(y, probs),
        "macro_f1": macro_f1(y, pred, num_classes),
        "balanced_acc": balanced_accuracy(y, pred, num_classes),
    }


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
    try:
        _check_input_size(config)
        R.check_run_dir(run_dir, overwrite, resume)
        data = R.prepare_data(config)
        D.barrier(info)  # every rank checked the run dir before rank 0 touches it
        if info.is_main:
            if not resume:
                R.clear_run_dir(run_dir)
                R.write_run_files(run_dir, config, data)
        train_s, val_s, test_s = data.samples("train"), data.samples("val"), data.samples("test")
        out.print(
            f"[bold]{config.data}[/]: {len(data.labels)} classes, {len(data.scan.samples)} images "
            f"(train {len(train_s)}, val {len(val_s)}, test {len(test_s)}; split by "
            f"{'clip' if config.split.mode == 'group' else 'RANDOM IMAGE (leaky)'})"
        )
        if data.scan.skipped:
            shown = "; ".join(f"{p} ({why})" for p, why in data.scan.skipped[:5])
            more = f" and {len(data.scan.skipped) - 5} more" if len(data.scan.skipped) > 5 else ""
            out.print(f"[yellow]Skipped {len(data.scan.skipped)} file(s):[/] {shown}{more}")
        result = _train(config, data, info, device, run_dir, resume, out)
        return FitResult(run_dir, result[0], result[1], result[2], time.perf_counter() - started)
    finally:
        D.teardown()


def _train(
    config: TrainConfig,
    data: R.RunData,
    info: D.DistInfo,
    device: torch.device,
    run_dir: Path,
    resume: bool,
    out: Console,
) -> tuple[int, dict[str, float], dict[str, Any] | None]:
    torch.manual_seed(config.seed)
    num_classes = len(data.labels)
    spec = config.preprocess
    train_counts = data.counts("train")
    augment = Augment(hflip=config.hflip) if config.augment else None
    train_ds = FrameDataset(data.scan.root, data.samples("train"), spec, augment, seed=config.seed)
    if config.balance == "sampler":
        w = class_weights(train_counts)
        sampler: DistributedSampler = WeightedDistributedSampler(
            [w[s.label] for s in train_ds.samples], info.world_size, info.rank, config.seed
        )
    else:
        sampler = DistributedSampler(train_ds, info.world_size, info.rank, shuffle=True, seed=config.seed)
    train_loader = make_loader(train_ds, config.batch_size, config.workers, sampler)
    val_ds = FrameDataset(data.scan.root, data.samples("val"), spec)
    val_loader = make_loader(val_ds, config.batch_size * 2, config.workers)

    model = build_model(config.arch, num_classes, config.weights, config.pretrained).to(device)
    cuda = device.type == "cuda"
    channels_last = cuda and config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # No weight decay on biases and norm parameters (standard practice; decaying BN scales hurts).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        momentum=config.momentum,
        nesterov=True,
    )
    steps_per_epoch = (
        len(train_loader)
        if not config.max_train_batches
        else min(len(train_loader), config.max_train_batches)
    )
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total, round(config.warmup_epochs * steps_per_epoch))
    )
    amp = cuda and config.amp
    scaler = torch.amp.GradScaler("cuda") if amp and not torch.cuda.is_bf16_supported() else None
    weight = (
        torch.tensor(class_weights(train_counts), dtype=torch.float32, device=device)
        if config.balance == "loss"
        else None
    )
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)

    start_epoch, best_epoch, best_val, rows, stale = 1, 0, {}, [], 0
    if resume:
        last = load_checkpoint(run_dir / R.LAST)
        state = last.state
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if cuda and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        start_epoch = last.epoch + 1
        best_epoch, best_val, stale = state["best_epoch"], dict(state["best_val"]), state["stale"]
        rows = R.read_metrics_csv(run_dir / R.METRICS)[: last.epoch]
        out.print(f"Resuming {run_dir} at epoch {start_epoch}/{config.epochs}.")

    ddp_model: nn.Module = model
    if config.compile:
        ddp_model = torch.compile(ddp_model)
    if info.enabled:
        ddp_model = DistributedDataParallel(ddp_model, device_ids=[device.index] if cuda else None)

    for epoch in range(start_epoch, config.epochs + 1):
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        with _progress(out) as progress:
            task = progress.add_task(f"epoch {epoch}/{config.epochs}", total=steps_per_epoch, stats="")

            def on_batch(i: int, loss: float, acc: float, ips: float, task: Any = task) -> None:
                progress.update(
                    task,
                    completed=i,
                    stats=f"loss {loss:.3f} acc {acc:.1%} {ips * info.world_size:.0f} img/s",
                )

            stats = train_one_epoch(
                ddp_model,
                train_loader,
                optimizer,
                scheduler,
                loss_fn,
                device,
                amp,
                scaler,
                channels_last,
                config.max_train_batches,
                on_batch,
            )
        loss_sum, correct, seen = D.all_reduce_sum(
            info, [stats["loss"] * stats["seen"], stats["acc"] * stats["seen"], stats["seen"]], device
        )
        row = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "images_per_s": seen / max(stats["seconds"], 1e-9),
            "seconds": stats["seconds"],
        }
        improved = False
        if info.is_main:
            if len(val_ds):
                logits, y = infer(unwrap(model), val_loader, device, amp, channels_last)
                val = evaluate(logits, y, num_classes)
                row.update({f"val_{k}": v for k, v in val.items()})
                improved = not best_val or val["macro_f1"] > best_val["macro_f1"]
            else:
                improved = True  # no validation split: the last epoch is the best we can say
            rows.append(row)
            R.write_metrics_csv(run_dir / R.METRICS, rows)
            if improved:
                best_epoch, best_val, stale = (
                    epoch,
                    {k[4:]: v for k, v in row.items() if k.startswith("val_")},
                    0,
                )
                save_checkpoint(
                    run_dir / R.BEST,
                    checkpoint_dict(
                        model, config, data.labels, epoch, {"val": best_val, "train_acc": row["train_acc"]}
                    ),
                )
            else:
                stale += 1
            resume_state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if cuda else None,
                "best_epoch": best_epoch,
                "best_val": best_val,
                "stale": stale,
            }
            save_checkpoint(
                run_dir / R.LAST,
                checkpoint_dict(model, config, data.labels, epoch, {"val": row}, resume_state),
            )
            out.print(_epoch_line(row, improved))
        stop = D.broadcast(info, bool(config.patience and stale >= config.patience))
        if stop:
            out.print(f"No validation improvement for {config.patience} epochs; stopping early.")
            break

    report = None
    if info.is_main:
        report = _final_report(
            config, data, run_dir, device, rows, best_epoch, best_val, out, info.world_size
        )
    D.barrier(info)
    return best_epoch, best_val, report


def _final_report(
    config: TrainConfig,
    data: R.RunData,
    run_dir: Path,
    device: torch.device,
    rows: list[dict[str, float]],
    best_epoch: int,
    best_val: dict[str, float],
    out: Console,
    world_size: int,
) -> dict[str, Any] | None:
    """Evaluate the best checkpoint once on test; write report.json, curves.png and confusion.png."""
    from mgc_edge.train.plots import plot_curves

    test_samples = data.samples("test")
    plot_curves(rows, run_dir / R.CURVES)
    report: dict[str, Any] = {
        "best_epoch": best_epoch,
        "val": best_val,
        "split_mode": config.split.mode,
        "split_counts": {s: len(data.samples(s)) for s in ("train", "val", "test")},
        "world_size": world_size,
        "test": None,
    }
    if config.split.mode == "random":
        report["warning"] = "random image split: test frames have near-duplicate siblings in train (leaky)"
    if test_samples:
        model = load_checkpoint(run_dir / R.BEST).build().to(device)
        report["test"] = evaluate_samples(
            model,
            data.scan.root,
            test_samples,
            data.labels,
            config.preprocess,
            device,
            batch_size=config.batch_size * 2,  # no gradients: twice the training batch fits
            workers=config.workers,
            train_counts=data.counts("train"),
        )
        title = "Test (leaky random split)" if config.split.mode == "random" else "Test (clip-grouped split)"
        show_report(
            report["test"], data.labels, run_dir / R.CONFUSION, f"{title}, best epoch {best_epoch}", out
        )
    write_json(run_dir / R.REPORT, report)
    out.print(f"Run saved in [bold]{run_dir}[/] (best epoch {best_epoch}).")
    return report["test"]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _epoch_line(row: dict[str, float], improved: bool) -> str:
    text = (
        f"epoch {int(row['epoch']):>3}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%}  "
        f"{row['images_per_s']:.0f} img/s {row['seconds']:.0f}s"
    )
    if "val_loss" in row:
        text += (
            f"  | val loss {row['val_loss']:.3f} acc {row['val_acc']:.1%} "
            f"bal {row['val_balanced_acc']:.1%} F1 {row['val_macro_f1']:.3f}"
        )
    return text + ("  [green]*best[/]" if improved else "")
