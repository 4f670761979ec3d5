"""Benchmarks (measurements, not tests): preprocessing and training throughput on this machine.

`make bench` runs it; paste the table into benchmarks/RESULTS.md with the machine it ran on.
Timings use warm-up iterations and, on CUDA, synchronise before reading the clock.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from mgc_edge.config import PreprocessSpec
from mgc_edge.models import build_model
from mgc_edge.preprocess import preprocess
from mgc_edge.train.distributed import resolve_device


def timed(fn: Callable[[], None], warmup: int, iters: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median seconds per call after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_preprocess(size: int, batch: int) -> dict[str, float]:
    """Frames/s of the shared preprocess() on 320x180 BGR frames, against a per-frame float pipeline."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (180, 320, 3), dtype=np.uint8) for _ in range(batch)]
    spec = PreprocessSpec(size=(size, size))

    def naive() -> None:  # the common per-frame float-first pipeline, for the ratio
        import cv2

        for f in frames:
            x = cv2.cvtColor(f, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            x = cv2.resize(x, (size, size))
            ((x - spec.mean) / spec.std).transpose(2, 0, 1)

    ours = timed(lambda: preprocess(frames, spec), 2, 10)
    base = timed(naive, 2, 10)
    return {
        "size": size,
        "frames_per_s": batch / ours,
        "naive_frames_per_s": batch / base,
        "speedup": base / ours,
    }


def bench_train_step(arch: str, size: int, batch: int, device: torch.device) -> dict[str, float]:
    """Images/s of one SGD training step (forward, backward, update) at a batch size."""
    model = build_model(arch, 32).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 32, (batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    sec = timed(step, 2, 5, sync)
    return {"arch": arch, "size": size, "batch": batch, "images_per_s": batch / sec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--archs", default="alexnet_bn,mobilenet_v3_small,resnet18")
    parser.add_argument("--sizes", default="64,112,224")
    parser.add_argument("--batch", type=int, default=30)
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, device {device}"
    )
    print(f"torch {torch.__version__}\n")
    print("| preprocess size | ours frames/s | naive frames/s | ratio |\n| --- | --- | --- | --- |")
    for size in (64, 224):
        r = bench_preprocess(size, 64)
        print(f"| {size} | {r['frames_per_s']:.0f} | {r['naive_frames_per_s']:.0f} | {r['speedup']:.2f}x |")
    print("\n| arch | input | batch | train images/s |\n| --- | --- | --- | --- |")
    for arch in args.archs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            r = bench_train_step(arch, size, args.batch, device)
            print(f"| {arch} | {size} | {args.batch} | {r['images_per_s']:.1f} |")


if __name__ == "__main__":
    main()
