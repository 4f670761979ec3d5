"""Inference: batch-1 latency (p50, p95, p99) and batch-32 throughput of one checkpoint through torch eager,
ONNX Runtime fp32 and int8 (and fp16 where a GPU runs it), at one input size.

The checkpoint is made here (a short `fit()` on the synthetic data) and exported with `export_run`, the
function behind `mgc-edge export`, so its parity gate (verify) reports each file's accuracy change too.
Inputs are already preprocessed float32 tensors: this times the model, not the decode.

The engines share one process and run in interleaved rounds, so that load drift hits them alike; each round
of an engine starts once the process is idle (`quiet_start`). Without that wait the engine before keeps a core:
ONNX Runtime's intra-op threads spin for tens of milliseconds after a call by default, which on two cores
timed the int8 model (about 3 ms a call) against them for most of its round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import demo_resize, percentiles, quiet_start, time_calls
from mgc_edge.config import PreprocessSpec, TrainConfig
from mgc_edge.export.onnx_export import ExportOptions, export_run
from mgc_edge.export.verify import VerifyOptions
from mgc_edge.train.checkpoint import load_checkpoint
from mgc_edge.train.loop import fit


@dataclasses.dataclass(frozen=True)
class InferBench:
    size: int
    arch: str = "alexnet_bn"
    b1_iters: int = 100  # in all, over `rounds` interleaved rounds
    b32_iters: int = 5
    rounds: int = 5
    train_batches: int = 4  # the checkpoint is barely trained: only its speed and parity matter here
    calib_images: int = 32
    verify_images: int = 100
    quiet: bool = True  # each engine's round starts once the process is idle (False: straight after the last)


def make_checkpoint(data: Path, run_dir: Path, b: InferBench, device: str, cache_dir: Path) -> Path:
    """A real run directory (best.pt, split.csv) from one short epoch: what export and verify need."""
    config = TrainConfig(
        data=str(data),
        run_dir=str(run_dir),
        arch=b.arch,
        epochs=1,
        preprocess=PreprocessSpec(size=(b.size, b.size), resize=demo_resize()),
        max_train_batches=b.train_batches,
        device=device,
        workers=1,
        cache_dir=str(cache_dir),
    )
    from rich.console import Console

    return fit(config, overwrite=True, console=Console(quiet=True)).run_dir


def export(run_dir: Path, b: InferBench, gpu: bool) -> dict[str, Any]:
    """fp32 + int8 (+ fp16 on a GPU) files behind the parity gate; each one's path and verify figures."""
    precisions = ("fp32", "fp16", "int8") if gpu else ("fp32", "int8")
    result = export_run(
        run_dir,
        ExportOptions(
            precisions=precisions,
            calib_images=b.calib_images,
            force=True,
            check=VerifyOptions(max_images=b.verify_images),
        ),
    )
    out = {}
    for m in result.models:
        r = m.report
        out[m.precision] = {
            "path": str(m.path),
            "size_mb": m.size_mb,
            "gate_passed": m.passed,
            "agreement": r.agreement if r else None,
            "acc_checkpoint": r.acc_checkpoint if r else None,
            "acc_model": r.acc_model if r else None,
            "acc_change_points": (r.acc_model - r.acc_checkpoint) * 100 if r else None,
            "verify_images": r.n_images if r else None,
        }
    return out


# Engines measured on a GPU beside the runtime's defaults: name -> (precision, Classifier options).
GPU_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ort_fp16_pageable": ("fp16", {"pinned": False}),  # the input in plain memory: the driver stages it
    # batch 1 always through session.run (the runtime's default, ort_fp16, times it against the bound path at
    # warm-up and keeps the faster)
    "ort_fp16_plain": ("fp16", {"io_binding": False}),
    # I/O bound, batch 1 as a CUDA graph on a stream of its own (one synchronisation a call), or in NHWC
    "ort_fp16_bound": ("fp16", {"io_binding": True}),
    "ort_fp16_bound_nhwc": ("fp16", {"io_binding": True, "cuda_options": {"prefer_nhwc": "1"}}),
    "ort_fp16_bound_nograph": ("fp16", {"io_binding": True, "cuda_graph": False}),
    "ort_fp32_tf32": ("fp32", {"tf32": True}),
    # cuDNN's convolutions in NHWC (tensor cores without a transpose around each one), and the algorithm
    # picked by timing every candidate on the first run instead of by heuristics.
    "ort_fp16_nhwc": ("fp16", {"cuda_options": {"prefer_nhwc": "1"}}),
    "ort_fp16_exhaustive": ("fp16", {"cuda_options": {"cudnn_conv_algo_search": "EXHAUSTIVE"}}),
    "ort_fp16_nhwc_exhaustive": (
        "fp16",
        {"cuda_options": {"prefer_nhwc": "1", "cudnn_conv_algo_search": "EXHAUSTIVE"}},
    ),
}


def _torch_engine(run_dir: Path, device: torch.device) -> Any:
    model = load_checkpoint(run_dir / "best.pt").build().to(device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(x: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(device)).float().cpu()

    return run, sync


def _ort_engine(path: str, gpu: bool, **options: Any) -> Any:
    from mgc_edge.runtime.model.classifier import Classifier

    clf = Classifier(path, device="cuda" if gpu else "cpu", **options)
    clf.warmup()  # as the live loop starts: by default on a GPU, batch 1's path is chosen here
    staged: dict[int, np.ndarray] = {}

    def run(x: np.ndarray) -> Any:
        # Each input once in the memory the runtime preprocesses into (page-locked on a GPU, or the bound
        # runner's staging buffer of that shape), as a frame is.
        if id(x) not in staged:
            buffer = clf.input_buffer(x.shape[0])
            staged[id(x)] = buffer if buffer is not None else np.empty_like(x)
            staged[id(x)][...] = x
        return clf.logits(staged[id(x)])

    return run, (lambda: None), clf  # ORT returns host arrays: each call is already synchronous


def optimized_ops(path: str | Path) -> dict[str, int]:
    """How many nodes of each operator the CPU provider runs for the model at `path`, after ONNX Runtime's
    load-time graph optimisation (the runtime's level): for int8, whether its quantized layers became fused
    integer kernels (QLinearConv, QGemm) or stayed DequantizeLinear + float Conv / Gemm."""
    import tempfile
    from collections import Counter

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3  # its warning that the dump holds this CPU's own layouts
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
    return dict(sorted(Counter(n.op_type for n in graph.node).items()))


def time_engines(
    engines: dict[str, tuple[Any, Any]],
    x1: np.ndarray,
    x32: np.ndarray,
    b: InferBench,
    wait: Callable[[], float] = quiet_start,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Seconds of each engine's batch-1 and batch-32 calls over `b.rounds` interleaved rounds (a GPU's clocks and
    a shared machine's load drift, and must hit every engine alike), and, with `b.quiet`, the seconds each
    round waited (`wait`) for the process to fall idle first."""
    b1: dict[str, list[float]] = {name: [] for name in engines}
    b32: dict[str, list[float]] = {name: [] for name in engines}
    waits: dict[str, list[float]] = {name: [] for name in engines}
    per_round = max(1, b.b1_iters // b.rounds)
    for _ in range(b.rounds):
        for name, (run, sync) in engines.items():
            if b.quiet:
                waits[name].append(wait())
            b1[name] += time_calls(lambda run=run: run(x1), max(3, per_round // 10), per_round, sync)
            b32[name] += time_calls(lambda run=run: run(x32), 1, max(1, b.b32_iters // b.rounds), sync)
    return b1, b32, waits


def bench_inference(
    data: Path, work: Path, b: InferBench, device: torch.device, cache_dir: Path
) -> dict[str, Any]:
    """Latency and throughput of every engine at one size; `work` receives the run directory and models."""
    gpu = device.type == "cuda"
    run_dir = make_checkpoint(data, work / f"run-{b.size}", b, device.type, cache_dir)
    exported = export(run_dir, b, gpu)
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((1, 3, b.size, b.size), dtype=np.float32)
    x32 = rng.standard_normal((32, 3, b.size, b.size), dtype=np.float32)
    engines: dict[str, Any] = {"torch_eager": _torch_engine(run_dir, device)}
    choices: dict[str, Any] = {}  # what the runtime's defaults chose for batch 1 at warm-up (on a GPU)
    for precision, info in exported.items():
        run, sync, clf = _ort_engine(info["path"], gpu)
        engines[f"ort_{precision}"] = (run, sync)
        if clf.binding_choice is not None:
            choices[f"ort_{precision}"] = dataclasses.asdict(clf.binding_choice)
    failed: dict[str, str] = {}
    bound: dict[str, Any] = {}  # the I/O-bound variants' classifiers: how their batch 1 ran
    if gpu:  # what options the runtime leaves off are worth (each measured against the plain engine)
        for name, (precision, options) in GPU_VARIANTS.items():
            try:
                run, sync, clf = _ort_engine(exported[precision]["path"], gpu, **options)
            except Exception as exc:  # an option this ONNX Runtime lacks must not lose the other figures
                failed[name] = f"{exc!r}"[:300]
                continue
            engines[name] = (run, sync)
            if clf.io_bound:
                bound[name] = clf
    b1, b32, waits = time_engines(engines, x1, x32, b)
    figures: dict[str, Any] = {
        name: {
            **percentiles(b1[name]),
            "b32_images_per_s": 32 / float(np.median(b32[name])),
            # how long its rounds waited for the engine before to fall idle (median, longest)
            "quiet_wait_ms": [1000 * float(np.median(waits[name])), 1000 * max(waits[name])]
            if waits[name]
            else None,
        }
        for name in engines
    }
    # What the CPU provider really runs for int8 (a GPU runs it through another provider).
    int8_ops = optimized_ops(exported["int8"]["path"]) if "int8" in exported and not gpu else None
    torch_p50 = figures["torch_eager"]["p50_ms"]
    fp32_p50 = figures["ort_fp32"]["p50_ms"]
    return {
        "size": b.size,
        "arch": b.arch,
        "device": str(device),
        "b1_iters": b.b1_iters,
        "b32_iters": b.b32_iters,
        "rounds": b.rounds,
        "quiet_start": b.quiet,
        "engines": figures,
        "engines_failed": failed,
        "batch1_choice": choices,
        "bound_batch1": {
            name: {
                "graphed": clf.graphed,
                "streamed": clf.streamed,
                "graph_error": clf._runner.graph_error,
                "stream_error": clf._runner.stream_error,
            }
            for name, clf in bound.items()
        },
        "exported": exported,
        "int8_cpu_ops": int8_ops,
        "ort_fp32_over_torch_b1": fp32_p50 / torch_p50,
        "int8_over_fp32_b1": figures["ort_int8"]["p50_ms"] / fp32_p50 if "ort_int8" in figures else None,
        "fp32_model": exported["fp32"]["path"],
        "fp16_model": exported["fp16"]["path"] if "fp16" in exported else None,
    }
