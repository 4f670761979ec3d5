"""`make bench`: every benchmark in one run on this machine, on synthetic data made here.

1. training images/s: (a) tensors in memory, (b) the cached path, (c) decode every epoch; demo size and 224
2. inference: batch-1 p50/p95/p99 and batch-32 images/s, torch eager vs ONNX Runtime fp32 / int8 (fp16 on GPU)
3. install footprint: the edge runtime's venv against the [train] one (cached, see bench_footprint)
4. cache build images/s, and the first epoch against later ones (inside 1)
5. the live loop against bare inference, when benchmarks/loop.py exists
6. `webcam` on a 1280x720 video against the pipeline bound (loop.py --pipeline)
7. four 25 fps cameras into one `webcam` (64x64 model) beside one `webcam` per camera (streams.py)

Each writes benchmarks/results/<name>.json; summary.json holds the flat ratios monitoring reads (a run with
--only updates the ratios it measured); one dated section with the machine and every table is appended to
benchmarks/RESULTS.md.
`python -m benchmarks.run --quick` is a smaller run (fewer batches and repetitions) to check that it works.
torch is imported inside the functions: a cache build's spawned workers import this module again.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import append_section, demo_size, machine, machine_line, read_result, write_result
from benchmarks.report import TARGETS, render, summary_of

ALL = {"train", "infer", "footprint", "loop", "pipeline", "streams"}


def synthetic_data(folder: Path, quick: bool) -> Any:
    """The demo's synthetic data (same generator and seed), smaller with --quick."""
    from mgc_edge.data.synth import SynthConfig, make_dataset

    cfg = SynthConfig(scale=0.012 if quick else 0.03, seed=0, video_seconds=6.0 if quick else 16.0)
    return make_dataset(folder / "data", cfg)


def training(data: Path, sizes: list[int], device: Any, quick: bool) -> dict[str, Any]:
    from benchmarks.bench_train import TrainBench, bench_training
    from mgc_edge.data.scan import scan_folder

    samples = list(scan_folder(data, r"^(?P<group>[^.]+)\.").samples)
    order = np.random.default_rng(0).permutation(len(samples))  # a mix of every class, as an epoch sees
    samples = [samples[i] for i in order]
    cuda = device.type == "cuda"
    out: dict[str, Any] = {}
    for size in sizes:
        small = size <= 128
        bench = TrainBench(
            size=size,
            batch=256 if cuda else 30,
            batches=(4 if cuda else (8 if quick else 12)) if small else (4 if cuda else (3 if quick else 6)),
            repeats=1 if quick else 3,
        )
        print(f"training at {size}: {bench}", flush=True)
        out[str(size)] = bench_training(bench, data, samples, device)
        if cuda:
            from dataclasses import replace

            out[f"{size}_compiled"] = bench_training(replace(bench, compile=True), data, samples, device)
    return out


def inference(data: Path, work: Path, sizes: list[int], device: Any, quick: bool) -> dict[str, Any]:
    from benchmarks.bench_infer import InferBench, bench_inference

    out = {}
    for size in sizes:
        bench = InferBench(
            size=size,
            b1_iters=50 if quick else 100,
            b32_iters=3 if quick else 5,
            calib_images=32,
            verify_images=64 if quick else 100,
        )
        print(f"inference at {size}: {bench}", flush=True)
        out[str(size)] = bench_inference(data, work, bench, device, work / "cache")
    return out


def live_loop(model: str, video: Path) -> dict[str, Any]:
    """benchmarks/loop.py's bench_loop (the runtime's own benchmark), when it exists."""
    if importlib.util.find_spec("benchmarks.loop") is None:
        return {"loop_over_inference": None, "note": "benchmarks/loop.py does not exist yet"}
    from benchmarks.loop import bench_loop  # type: ignore[import-not-found]

    return bench_loop(model, video)


def cameras(name: str, results: dict[str, Any], synth: Any, work: Path) -> dict[str, Any]:
    """webcam at 1280x720 against the pipeline bound, or four cameras into one webcam; a failure is noted, not
    fatal (the other results are kept)."""
    try:
        if name == "pipeline":
            from benchmarks.loop import bench_pipeline

            return bench_pipeline(results["infer"][str(results["demo_size"])]["fp32_model"], synth.video)
        from benchmarks.streams import bench_streams, make_model

        return bench_streams(make_model(work, 64, synth.image_dir), synth.video)
    except Exception as exc:
        return {"note": f"{name} failed: {exc!r}"[:300]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer batches and repetitions (a smoke run)")
    parser.add_argument("--only", default=",".join(sorted(ALL)), help="comma-separated subset")
    parser.add_argument(
        "--footprint",
        default="cached",
        choices=("cached", "fresh", "skip"),
        help="venv sizes: see bench_footprint",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    only = set(args.only.split(","))
    from mgc_edge.train.distributed import resolve_device

    device = resolve_device(args.device)
    demo = demo_size()
    sizes = [demo] + ([224] if demo != 224 else [])
    info = machine()
    print(f"machine: {machine_line(info)}\ndevice: {device}", flush=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": info, "quick": args.quick, "demo_size": demo}

    with tempfile.TemporaryDirectory(prefix="mgc-bench-") as tmp:
        work = Path(tmp)
        synth = synthetic_data(work, args.quick)
        print(f"synthetic data: {synth.n_images} images", flush=True)
        stages = results["stage_seconds"] = {}
        if "train" in only:
            t = time.perf_counter()
            results["train"] = training(synth.image_dir, sizes, device, args.quick)
            stages["train"] = time.perf_counter() - t
            write_result("train", {"machine": info, **results["train"]})
        if only & {"infer", "loop", "pipeline"}:
            results["infer"] = inference(
                synth.image_dir, work, sorted(sizes, reverse=True), device, args.quick
            )
            write_result("infer", {"machine": info, **results["infer"]})
        if "loop" in only:
            model = results["infer"][str(demo)]["fp32_model"]
            t = time.perf_counter()
            try:
                results["loop"] = live_loop(model, synth.video)
            except Exception as exc:  # a broken neighbour benchmark must not lose the others' results
                results["loop"] = {"loop_over_inference": None, "note": f"bench_loop failed: {exc!r}"[:300]}
            stages["loop"] = time.perf_counter() - t
            write_result("loop", {"machine": info, **results["loop"]})
        for name in ("pipeline", "streams"):
            if name in only:
                t = time.perf_counter()
                results[name] = cameras(name, results, synth, work)
                stages[name] = time.perf_counter() - t
                write_result(name, {"machine": info, **results[name]})
    if "footprint" in only:
        from benchmarks.bench_footprint import bench_footprint

        print("install footprint ...", flush=True)
        t = time.perf_counter()
        results["footprint"] = bench_footprint(args.footprint)
        results["stage_seconds"]["footprint"] = time.perf_counter() - t
        if not results["footprint"].get("from_cache"):  # the cached file stays as it was measured
            write_result("footprint", results["footprint"])

    results["seconds"] = time.perf_counter() - started
    summary = summary_of(results)
    if only != ALL:  # a partial run updates the ratios it measured and keeps the others
        old = read_result("summary") or {}
        summary = {**old, **{k: v for k, v in summary.items() if v is not None}}
    write_result("summary", summary)
    body = render(results)
    if not args.no_record:
        title = f"`make bench`{' --quick' if args.quick else ''} on {info['cpu']}, {info['cores']} cores"
        append_section(title + (f", {info['gpu']}" if info["gpu"] else ", no GPU"), body)
    print(body)
    print("\nsummary:", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})
    missed = [
        k for k, (op, target) in TARGETS.items() if summary.get(k) is not None and not op(summary[k], target)
    ]
    print(f"{len(missed)} target(s) missed: {', '.join(missed) or '-'}; {results['seconds']:.0f}s in all")


if __name__ == "__main__":
    main()
