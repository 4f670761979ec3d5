"""Training throughput, side by side in one process: (a) the model on tensors already in memory (the
compute-only rate), (b) the cached path (uint8 cache + augmentation on the device), (c) the
decode-every-epoch path (DataLoader workers: decode, augment, preprocess). Same model, optimiser step,
batch and input size; all three through `train.loop.train_one_epoch`, the function `fit()` runs.

Each path trains passes of the same number of batches; the passes interleave (a, b, c, a, b, c, ...) so that
a change in the machine's load hits all three alike. Rates come from the later passes; the first pass of
each path is reported apart ("first epoch"): for (b) it follows the cache build, for (c) the workers' start.
Each path's rate is its best later pass (other processes only ever slow a pass down).
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from benchmarks.common import cores, demo_resize
from mgc_edge.config import PreprocessSpec, TrainConfig, default_workers
from mgc_edge.data.cache import margin_size, open_cache, stored_spec
from mgc_edge.data.dataset import Augment, FrameDataset
from mgc_edge.data.scan import Sample
from mgc_edge.models import build_model
from mgc_edge.train.augment import BatchAugment
from mgc_edge.train.batches import CachedBatches, LoaderBatches, make_loader
from mgc_edge.train.loop import train_one_epoch
from mgc_edge.train.trainer import lr_lambda, make_loss, make_optimizer


@dataclass(frozen=True)
class TrainBench:
    """One training comparison: what is trained, on how much, how often."""

    size: int
    arch: str = "alexnet_bn"
    batch: int = 30
    batches: int = 20  # per pass (an "epoch" of the benchmark)
    repeats: int = 2  # measured passes per path after the first
    workers: int = field(default_factory=default_workers)  # the decode path's processes (`train`'s default)
    compile: bool = False


class MemoryBatches:
    """(a): a few normalised batches already on the device, served `n` times."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
        self.x, self.y, self.n = x, y, n

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):  # noqa: ANN204
        for i in range(self.n):
            yield self.x[i % len(self.x)], self.y[i % len(self.y)]


def _pass(step: dict[str, Any], source: Any, n_batches: int, epoch: int) -> dict[str, float]:
    source.set_epoch(epoch)
    stats = train_one_epoch(
        step["net"],
        source,
        step["optimizer"],
        step["scheduler"],
        step["loss_fn"],
        step["device"],
        step["amp"],
        None,
        n_batches,
    )
    return {
        "seconds": stats["seconds"],
        "images": stats["seen"],
        "images_per_s": stats["seen"] / stats["seconds"],
    }


def bench_training(
    b: TrainBench, root: Path, samples: list[Sample], device: torch.device, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Images/s of paths (a), (b) and (c) at one input size, the cache build, and first vs later passes."""
    cuda = device.type == "cuda"
    spec = PreprocessSpec(size=(b.size, b.size), resize=demo_resize())
    n_images = min(len(samples), b.batch * b.batches)
    subset = samples[:n_images]
    n_batches = -(-n_images // b.batch)
    labels = [s.label for s in subset]
    num_classes = max(s.label for s in samples) + 1
    config = TrainConfig(data=str(root), run_dir="", arch=b.arch, batch_size=b.batch)

    torch.manual_seed(0)
    model = build_model(b.arch, num_classes).to(device)
    if config.channels_last:  # as fit() trains
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(10**6, 0))
    net = torch.compile(model) if b.compile else model
    step = {
        "net": net,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "loss_fn": make_loss(config, [1] * num_classes, device),
        "device": device,
        "amp": cuda,
    }
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(4, b.batch, 3, b.size, b.size, generator=g).to(device)
    memory = MemoryBatches(
        [x.contiguous(memory_format=fmt) for x in xs],
        [torch.randint(0, num_classes, (b.batch,), generator=g).to(device) for _ in range(4)],
        n_batches,
    )
    sampler = DistributedSampler(range(n_images), 1, 0, shuffle=True, seed=0)

    with tempfile.TemporaryDirectory(prefix="mgc-bench-cache-") as tmp:
        folder = cache_dir or Path(tmp)
        stored = stored_spec(spec, margin_size(spec.size))
        started = time.perf_counter()
        cached_images = open_cache(root, subset, stored, f"bench-{b.size}", folder)
        build_s = time.perf_counter() - started
        # The multi-process build fit() uses from PARALLEL_FROM images up, timed on every image here.
        started = time.perf_counter()
        everything = open_cache(root, samples, stored, f"bench-{b.size}-all", folder, workers=max(2, cores()))
        parallel_s = time.perf_counter() - started
        cached = CachedBatches(
            cached_images.images,
            labels,
            spec,
            b.batch,
            device,
            sampler,
            BatchAugment(Augment(), spec),
            channels_last=config.channels_last,
        )
        loader = make_loader(
            FrameDataset(root, subset, spec, Augment(), seed=0),
            b.batch,
            b.workers,
            DistributedSampler(range(n_images), 1, 0, shuffle=True, seed=0),
            persistent=True,
        )
        decode = LoaderBatches(loader, device, channels_last=config.channels_last)

        warm = _pass(step, memory, min(3, n_batches), 0)  # the model's own warm-up (allocations, kernels)
        first = {"cached": _pass(step, cached, n_batches, 1), "decode": _pass(step, decode, n_batches, 1)}
        runs: dict[str, list[dict[str, float]]] = {"memory": [], "cached": [], "decode": []}
        for epoch in range(2, 2 + b.repeats):
            runs["memory"].append(_pass(step, memory, n_batches, epoch))
            runs["cached"].append(_pass(step, cached, n_batches, epoch))
            runs["decode"].append(_pass(step, decode, n_batches, epoch))
        cuda_graphs, augment_engine, augment_error = (
            cached.graphed,
            cached.augment_engine,
            cached.augment_error,
        )
        del decode, loader, cached
        gc.collect()

    # The best pass of each path, as timeit takes the minimum: other processes only ever slow a pass down.
    rate = {k: float(max(r["images_per_s"] for r in v)) for k, v in runs.items()}
    later = {k: float(np.median([r["seconds"] for r in v])) for k, v in runs.items()}
    return {
        "size": b.size,
        "resize": spec.resize,
        "arch": b.arch,
        "batch": b.batch,
        "batches_per_pass": n_batches,
        "images_per_pass": n_images,
        "repeats": b.repeats,
        "decode_workers": b.workers,
        "compile": b.compile,
        "amp_bf16": cuda,
        "channels_last": config.channels_last,
        "fused_sgd": bool(optimizer.defaults.get("fused")),
        "cuda_graphs": cuda_graphs,
        "augment_engine": augment_engine,
        "augment_error": augment_error,
        "device": str(device),
        "images_per_s": rate,
        "cached_over_compute": rate["cached"] / rate["memory"],
        "decode_over_compute": rate["decode"] / rate["memory"],
        "passes": runs,
        "warmup_pass": warm,
        "cache": {
            "stored_size": list(stored.size),
            "images": n_images,
            "build_seconds": build_s,
            "build_images_per_s": n_images / build_s,
            "parallel_build_images": len(everything),
            "parallel_build_processes": max(2, cores()),
            "parallel_build_seconds": parallel_s,
            "parallel_build_images_per_s": len(everything) / parallel_s,
            "bytes": int(cached_images.images.nbytes),
        },
        "epochs_seconds": {
            "cached_first": build_s + first["cached"]["seconds"],
            "cached_first_training_only": first["cached"]["seconds"],
            "cached_later": later["cached"],
            "decode_first": first["decode"]["seconds"],
            "decode_later": later["decode"],
            "memory_later": later["memory"],
        },
    }
