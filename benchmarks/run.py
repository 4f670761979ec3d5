"""`make bench`: every benchmark in one run on this machine, on synthetic data made here.

1. training images/s: (a) tensors in memory, (b) the cached path, (c) decode every epoch; demo size and 224
2. inference: batch-1 p50/p95/p99 and batch-32 images/s, torch eager vs ONNX Runtime fp32 / int8 (fp16 on GPU)
3. install footprint: the edge runtime's venv against the [train] one (cached, see bench_footprint)
4. cache build images/s, and the first epoch against later ones (inside 1)
5. the live loop against bare inference, when benchmarks/loop.py exists
6. `annotate` against `webcam` on the demo's video, side by side (benchmarks/annotate.py); decoding with FFmpeg's
   threads against one, at three frame sizes (benchmarks/bench_decode.py: what `open_video` chooses)
7. on the CPU: `webcam` on a 1280x720 video against the pipeline bound (loop.py --pipeline), and four 25 fps
   cameras into one `webcam` (64x64 model) beside one `webcam` per camera (streams.py)
8. on a GPU, `make demo` end to end (scripts/demo.sh in a temporary folder), its seconds per step

Each writes benchmarks/results/<name>.json (benchmarks/results/gpu/ when the device is CUDA: the CPU's files
stay as measured); summary.json holds the flat ratios monitoring reads (a run with --only updates the ratios
it measured); one dated section with the machine and every table is appended to benchmarks/RESULTS.md, and the
figures the README quotes go to docs/figures.json and its figure blocks (benchmarks/figures.py).
On CUDA everything runs there: training at batch 256 on more data, ONNX Runtime's CUDA provider (fp16 too,
and fp16 without I/O binding and fp32 with TF32 for comparison), the loop on the fp16 model.
`python -m benchmarks.run --quick` is a smaller run (fewer batches and repetitions) to check that it works.
torch is imported inside the functions: a cache build's spawned workers import this module again.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    DEMO_SCRIPT,
    ROOT,
    append_section,
    demo_resize,
    demo_size,
    machine,
    machine_line,
    read_result,
    results_dir,
    write_result,
)
from benchmarks.figures import record_bench
from benchmarks.report import render, summary_of, targets_for

ALL = {"train", "infer", "footprint", "loop", "decode", "annotate", "pipeline", "streams", "demo"}
CPU_ONLY = {"pipeline", "streams"}  # two-core targets; a GPU's camera count: benchmarks/streams.py --sweep
GPU_ONLY = {"demo"}  # 5.5 minutes on two cores, more than this run's budget there


def synthetic_data(folder: Path, quick: bool, gpu: bool) -> Any:
    """The demo's synthetic data (same generator and seed), smaller with --quick; on a GPU as much as the
    demo trains on, so that a pass holds a dozen batches of 256."""
    from mgc_edge.data.synth import SynthConfig, make_dataset

    scale = 0.012 if quick else (0.06 if gpu else 0.03)
    cfg = SynthConfig(scale=scale, seed=0, video_seconds=6.0 if quick else 16.0)
    return make_dataset(folder / "data", cfg)


def demo_run(work: Path) -> dict[str, Any]:
    """scripts/demo.sh end to end in a temporary folder: its seconds in all and per step."""
    env = {**os.environ, "DEMO": str(work / "demo"), "BIN": str(Path(sys.executable).parent)}
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", str(DEMO_SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    seconds = time.perf_counter() - started
    out = done.stdout + done.stderr
    steps = [int(x) for x in re.findall(r"^\s+\((\d+)s\)$", out, flags=re.M)]
    agreement = re.search(r"([\d.]+) ?% of", out)
    return {
        "demo_seconds": seconds if done.returncode == 0 else None,
        "exit_code": done.returncode,
        "step_seconds": dict(zip(("synth", "train", "export_verify", "runtime"), steps)),
        "output_tail": out[-3000:],
        "live_agreement_line": agreement.group(0) if agreement else None,
    }


def training(data: Path, sizes: list[int], device: Any, quick: bool, compiled: bool) -> dict[str, Any]:
    from benchmarks.bench_train import TrainBench, bench_training
    from mgc_edge.data.scan import scan_folder

    samples = list(scan_folder(data, r"^(?P<group>[^.]+)\.").samples)
    order = np.random.default_rng(0).permutation(len(samples))  # a mix of every class, as an epoch sees
    samples = [samples[i] for i in order]
    cuda = device.type == "cuda"
    out: dict[str, Any] = {}
    for size in sizes:
        small = size <= 128
        if cuda:  # every image once per pass: passes long enough that a pass's start-up is noise
            batches = max(4, len(samples) // 256)
        else:
            batches = (8 if quick else 12) if small else (3 if quick else 6)
        # A pass on a GPU lasts 0.05-0.1 s: ten of them, of which the best is taken, not three.
        repeats = 1 if quick else (10 if cuda else 3)
        bench = TrainBench(size=size, batch=256 if cuda else 30, batches=batches, repeats=repeats)
        print(f"training at {size}: {bench}", flush=True)
        out[str(size)] = bench_training(bench, data, samples, device)
        if cuda and compiled:
            from dataclasses import replace

            out[f"{size}_compiled"] = bench_training(replace(bench, compile=True), data, samples, device)
    return out


def inference(data: Path, work: Path, sizes: list[int], device: Any, quick: bool) -> dict[str, Any]:
    from benchmarks.bench_infer import InferBench, bench_inference

    cuda = device.type == "cuda"
    out = {}
    for size in sizes:
        bench = InferBench(
            size=size,
            # On a GPU a call takes under a millisecond: a thousand, so that p50 is not a clock's ramp.
            b1_iters=50 if quick else (1000 if cuda else 100),
            b32_iters=3 if quick else (25 if cuda else 5),
            calib_images=32,
            verify_images=64 if quick else 100,
        )
        print(f"inference at {size}: {bench}", flush=True)
        out[str(size)] = bench_inference(data, work, bench, device, work / "cache")
    return out


# What the simulated GPU of the CPU run takes per batch: about the H200's fp16 batch of one at 96x96 (0.39 ms).
SIMULATED_GPU_MS = 0.4
CEILING_MS = 0.001  # the loop's ceiling: a simulated model of one microsecond


def live_loop(model: str, video: Path, device: str) -> dict[str, Any]:
    """benchmarks/loop.py's bench_loop (the runtime's own benchmark), when it exists, and against a simulated
    GPU: the loop's own overhead on this machine's CPU. On a CPU the simulated model takes what an H200's
    takes; on a GPU what the real one just took (its inference-only p50), so that the two loops differ only in
    what the real model call does beside its latency. At a GPU's rate over 1,200 frames: 300 pass in a fifth
    of a second, where the loop's start weighs on the figure."""
    if importlib.util.find_spec("benchmarks.loop") is None:
        return {"loop_over_inference": None, "note": "benchmarks/loop.py does not exist yet"}
    from benchmarks.loop import bench_loop  # type: ignore[import-not-found]

    if device != "cpu":
        result = bench_loop(model, video, frames=1200, device=device)
        simulate_ms = result["inference"]["p50_ms"]
    else:
        result = bench_loop(model, video, device=device)
        simulate_ms = SIMULATED_GPU_MS
    result["simulated_gpu"] = bench_loop(model, video, frames=1200, device=device, simulate_ms=simulate_ms)
    # A model that takes no time: the most frames a second the loop's CPU side (decoding, preprocess, the loop's
    # own work, the hand-overs) allows on this machine, whatever the model.
    result["ceiling"] = bench_loop(model, video, frames=1200, device=device, simulate_ms=CEILING_MS)
    return result


def annotate_vs_webcam(model: str, work: Path, cuda: bool, quick: bool) -> dict[str, Any]:
    """benchmarks/annotate.py on the demo's video: the first 600 frames per round on the CPU (200 with
    --quick), the whole video on a GPU, where a round takes well under a second."""
    from benchmarks.annotate import bench_annotate, demo_video

    video = demo_video(work)
    frames = 0 if cuda else (200 if quick else 600)
    return bench_annotate(model, video, frames, "cuda" if cuda else "cpu", rounds=2 if quick else 3)


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
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {','.join(sorted(ALL))} (default: all)"
    )
    parser.add_argument(
        "--footprint",
        default="cached",
        choices=("cached", "fresh", "skip"),
        help="venv sizes: see bench_footprint",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--compiled", action="store_true", help="on CUDA, also train with torch.compile")
    args = parser.parse_args()
    from mgc_edge.train.distributed import resolve_device

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    default = ALL - (CPU_ONLY if gpu else GPU_ONLY)
    only = set(args.only.split(",")) if args.only else default
    folder = results_dir(gpu)
    demo = demo_size()
    sizes = [demo] + ([224] if demo != 224 else [])
    info = machine()
    print(f"machine: {machine_line(info)}\ndevice: {device}", flush=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": info, "quick": args.quick, "demo_size": demo}

    with tempfile.TemporaryDirectory(prefix="mgc-bench-") as tmp:
        work = Path(tmp)
        synth = synthetic_data(work, args.quick, gpu)
        print(f"synthetic data: {synth.n_images} images", flush=True)
        stages = results["stage_seconds"] = {}
        if "train" in only:
            t = time.perf_counter()
            results["train"] = training(synth.image_dir, sizes, device, args.quick, args.compiled)
            stages["train"] = time.perf_counter() - t
            write_result("train", {**results["train"], "machine": info}, folder)
        if only & {"infer", "loop", "annotate", "pipeline"}:
            # Without "infer" only the demo size's models are needed (the loop's and annotate's)
            infer_sizes = sorted(sizes, reverse=True) if "infer" in only else [demo]
            results["infer"] = inference(synth.image_dir, work, infer_sizes, device, args.quick)
            if "infer" in only:  # measured only to give the loop and annotate a model: not a result
                write_result("infer", {**results["infer"], "machine": info}, folder)
        if "loop" in only:
            # The precision the runtime gets on this device (the demo's choice): fp16 on a GPU.
            model = results["infer"][str(demo)]["fp16_model" if gpu else "fp32_model"]
            t = time.perf_counter()
            try:
                results["loop"] = live_loop(model, synth.video, "cuda" if gpu else "cpu")
            except Exception as exc:  # a broken neighbour benchmark must not lose the others' results
                results["loop"] = {"loop_over_inference": None, "note": f"bench_loop failed: {exc!r}"[:300]}
            stages["loop"] = time.perf_counter() - t
            write_result("loop", {**results["loop"], "machine": info}, folder)
        if "decode" in only:
            from benchmarks.bench_decode import bench_decode
            from mgc_edge.config import PreprocessSpec

            t = time.perf_counter()
            spec = PreprocessSpec(size=(demo, demo), resize=demo_resize())  # the demo model's preprocessing
            results["decode"] = bench_decode(spec, synth.video, rounds=2 if args.quick else 3)
            stages["decode"] = time.perf_counter() - t
            write_result("decode", {**results["decode"], "machine": info}, folder)
        if "annotate" in only:
            # The demo's model at the demo size, in the precision the runtime gets on this device.
            model = results["infer"][str(demo)]["fp16_model" if gpu else "fp32_model"]
            t = time.perf_counter()
            try:
                results["annotate"] = annotate_vs_webcam(model, work, gpu, args.quick)
            except Exception as exc:  # a broken neighbour benchmark must not lose the others' results
                results["annotate"] = {
                    "annotate_over_webcam": None,
                    "note": f"bench_annotate failed: {exc!r}"[:300],
                }
            stages["annotate"] = time.perf_counter() - t
            write_result("annotate", {**results["annotate"], "machine": info}, folder)
        if "demo" in only:
            print("make demo, end to end ...", flush=True)
            t = time.perf_counter()
            results["demo"] = demo_run(work)
            stages["demo"] = time.perf_counter() - t
            write_result("demo", {**results["demo"], "machine": info}, folder)
        for name in ("pipeline", "streams"):
            if name in only:
                t = time.perf_counter()
                results[name] = cameras(name, results, synth, work)
                stages[name] = time.perf_counter() - t
                write_result(name, {**results[name], "machine": info}, folder)
    if "footprint" in only and not gpu:  # the venv sizes do not depend on the device
        from benchmarks.bench_footprint import bench_footprint

        print("install footprint ...", flush=True)
        t = time.perf_counter()
        results["footprint"] = bench_footprint(args.footprint)
        results["stage_seconds"]["footprint"] = time.perf_counter() - t
        if not results["footprint"].get("from_cache"):  # the cached file stays as it was measured
            write_result("footprint", results["footprint"])

    results["seconds"] = time.perf_counter() - started
    # A stage run only to feed another (inference makes the model annotate runs) is not a result of this run.
    asked = {k: v for k, v in results.items() if k not in ALL - only}
    measured = summary_of(asked)
    summary = {k: v for k, v in measured.items() if v is not None}  # what this machine measured
    if only != default:  # a partial run updates what it measured and keeps the rest
        summary = {**(read_result("summary", folder) or {}), **summary}
    write_result("summary", summary, folder)
    if not (args.quick or args.no_record):  # docs/figures.json and the README's figure blocks
        record_bench(folder, gpu)
    body = render(asked)  # nor in RESULTS.md: its tables, summary and missed targets are of what was asked
    if not args.no_record:
        title = f"`make bench`{' --quick' if args.quick else ''} on {info['cpu']}, {info['cores']} cores"
        append_section(title + (f", {info['gpu']}" if info["gpu"] else ", no GPU"), body)
    print(body)
    print("\nsummary:", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})
    missed = [
        k
        for k, (op, target) in targets_for(summary).items()
        if summary.get(k) is not None and not op(summary[k], target)
    ]
    print(f"{len(missed)} target(s) missed: {', '.join(missed) or '-'}; {results['seconds']:.0f}s in all")


if __name__ == "__main__":
    main()
