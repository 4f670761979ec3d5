"""The benchmark's summary (flat ratios for monitoring), its targets, and the Markdown section for RESULTS.md,
including why a missed target was missed and what would close it."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from benchmarks.common import fmt, machine_line, table
from mgc_edge.data.cache import PARALLEL_FROM
from mgc_edge.runtime.model.binding import BindingChoice

# key -> (comparison that must hold, target): the two-core targets of the speed work.
TARGETS: dict[str, tuple[Callable[[float, float], bool], float]] = {
    "cached_over_compute_demo": (operator.ge, 0.9),
    "cached_over_compute_224": (operator.ge, 0.9),
    "ort_fp32_over_torch_b1": (operator.le, 0.7),
    "int8_over_fp32_b1": (operator.le, 0.35),
    "runtime_install_over_train": (operator.le, 0.2),
    "annotate_over_webcam": (operator.ge, 1.5),
    # Cameras as deployed (issue 17): webcam on a 1280x720 video against the pipeline bound; four 25 fps
    # cameras into one webcam with the 64x64 model.
    "loop_over_pipeline_bound_720p": (operator.ge, 0.85),
    "streams4_min_share": (operator.ge, 0.9),
    "streams4_p95_ms": (operator.le, 100.0),
}
ANNOTATE_GPU_FPS = 3000.0  # the GPU target of `annotate` on the demo's video (issue 16)
# On a GPU (benchmarks/results/gpu/summary.json): issue 15's targets for an H100 / H200.
GPU_TARGETS: dict[str, tuple[Callable[[float, float], bool], float]] = {
    "cached_over_compute_demo": (operator.ge, 0.95),
    "cached_over_compute_224": (operator.ge, 0.95),
    "ort_fp16_b1_ms_224": (operator.le, 0.30),
    "loop_over_inference": (operator.ge, 0.9),
    "demo_seconds": (operator.le, 60.0),
    "annotate_fps": (operator.ge, ANNOTATE_GPU_FPS),
}
SUMMARY_KEYS = (
    "cached_over_compute_demo",
    "cached_over_compute_224",
    "decode_over_compute_demo",
    "ort_fp32_over_torch_b1",
    "int8_over_fp32_b1",
    "runtime_install_over_train",
    "loop_over_inference",
    "loop_over_simulated_gpu",
    "loop_ceiling_over_inference",
    "ort_fp32_over_torch_b1_224",
    "int8_over_fp32_b1_224",
    "ort_fp32_b1_ms_224",
    "ort_fp16_b1_ms_224",
    "ort_fp16_over_torch_b1",
    "demo_seconds",
    "annotate_over_webcam",
    "annotate_fps",
    "open_video_over_plain_demo",
    "loop_over_pipeline_bound_720p",
    "streams4_min_share",
    "streams4_p95_ms",
    "streams4_separate_min_share",
)


def targets_for(summary: dict[str, Any]) -> dict[str, tuple[Callable[[float, float], bool], float]]:
    """The targets of the machine the summary comes from: the GPU's where it names one."""
    return GPU_TARGETS if summary.get("device") not in (None, "cpu") else TARGETS


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _decode_ratio(results: dict[str, Any]) -> float | None:
    own = _get(results, "decode", "own_size")
    return _get(results, "decode", "sizes", own, "open_video_over_plain_fps") if own else None


def summary_of(results: dict[str, Any]) -> dict[str, Any]:
    """The flat object of benchmarks/results/summary.json: every ratio (None where not measured)."""
    demo = str(results["demo_size"])
    s: dict[str, Any] = {
        "cached_over_compute_demo": _get(results, "train", demo, "cached_over_compute"),
        "cached_over_compute_224": _get(results, "train", "224", "cached_over_compute"),
        "decode_over_compute_demo": _get(results, "train", demo, "decode_over_compute"),
        # At the demo size: the model the demo exports and the edge runtime runs (224 under *_224).
        "ort_fp32_over_torch_b1": _get(results, "infer", demo, "ort_fp32_over_torch_b1"),
        "int8_over_fp32_b1": _get(results, "infer", demo, "int8_over_fp32_b1"),
        "runtime_install_over_train": _get(results, "footprint", "runtime_install_over_train"),
        "loop_over_inference": _get(results, "loop", "loop_over_inference"),
        # The pipelined loop against a simulated GPU (CPU runs only): the GPU target's proxy without a GPU.
        "loop_over_simulated_gpu": _get(results, "loop", "simulated_gpu", "loop_over_inference"),
        # The loop with a model that takes no time, over the real model's inference-only rate: below 0.9 the
        # loop's CPU side, not the model, is what keeps loop_over_inference under its target.
        "loop_ceiling_over_inference": _ratio(
            _get(results, "loop", "ceiling", "loop", "fps"), _get(results, "loop", "inference", "fps")
        ),
        "ort_fp32_over_torch_b1_224": _get(results, "infer", "224", "ort_fp32_over_torch_b1"),
        "int8_over_fp32_b1_224": _get(results, "infer", "224", "int8_over_fp32_b1"),
        "ort_fp32_b1_ms_224": _get(results, "infer", "224", "engines", "ort_fp32", "p50_ms"),
        "ort_fp16_b1_ms_224": _get(results, "infer", "224", "engines", "ort_fp16", "p50_ms"),
        "ort_fp16_over_torch_b1": _ratio(
            _get(results, "infer", demo, "engines", "ort_fp16", "p50_ms"),
            _get(results, "infer", demo, "engines", "torch_eager", "p50_ms"),
        ),
        "demo_seconds": _get(results, "demo", "demo_seconds"),
        "annotate_over_webcam": _get(results, "annotate", "annotate_over_webcam"),
        "annotate_fps": _get(results, "annotate", "annotate", "fps"),
        # annotate's decode pipeline on the demo's video, opened by open_video against a plain VideoCapture.
        "open_video_over_plain_demo": _decode_ratio(results),
        "loop_over_pipeline_bound_720p": _get(results, "pipeline", "loop_over_pipeline_bound"),
        "streams4_min_share": _get(results, "streams", "one_process", "min_share"),
        "streams4_p95_ms": _get(results, "streams", "one_process", "p95_ms"),
        "streams4_separate_min_share": _get(results, "streams", "separate", "min_share"),
        "demo_size": results["demo_size"],
        "quick": results["quick"],
        "device": _get(results, "machine", "gpu") or "cpu",
        "cores": _get(results, "machine", "cores"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return s


def _training(train: dict[str, Any]) -> str:
    rows, epochs = [], []
    for r in train.values():
        ips = r["images_per_s"]
        label = f"{r['size']}x{r['size']}" + (" compiled" if r["compile"] else "")
        rows.append(
            [
                label,
                r["batch"],
                fmt(ips["memory"]),
                fmt(ips["cached"]),
                fmt(ips["decode"]),
                f"{r['cached_over_compute']:.2f}",
                f"{r['decode_over_compute']:.2f}",
            ]
        )
        c, e = r["cache"], r["epochs_seconds"]
        epochs.append(
            [
                label,
                f"{c['stored_size'][0]}x{c['stored_size'][1]}",
                c["images"],
                f"{c['build_seconds']:.1f} s ({fmt(c['build_images_per_s'], 0)}/s)",
                f"{fmt(c['parallel_build_images_per_s'], 0)}/s ({c['parallel_build_images']} images, "
                f"{c['parallel_build_processes']} processes)",
                f"{e['cached_first']:.1f} s ({e['cached_first_training_only']:.1f} training)",
                f"{e['cached_later']:.1f} s",
                f"{e['decode_first']:.1f} s",
                f"{e['decode_later']:.1f} s",
                f"{e['memory_later']:.1f} s",
            ]
        )
    any_r = next(iter(train.values()))
    head = (
        f"`{any_r['arch']}`, SGD step of `fit()` (`train_one_epoch`), {any_r['repeats']} interleaved measured "
        f"pass(es) per path after a first one, the best pass of each; device {any_r['device']}"
        + (", bf16 autocast" if any_r["amp_bf16"] else "")
        + (", channels_last" if any_r.get("channels_last") else "")
        + (", fused SGD" if any_r.get("fused_sgd") else "")
        + f"; the decode path uses {any_r['decode_workers']} DataLoader workers (the `train` default); "
        + f"resize policy {any_r.get('resize', 'stretch')} (the demo's)."
    )
    return (
        "### Training throughput (images/s)\n"
        + head
        + "\n\n"
        + table(
            ["input", "batch", "(a) tensors in memory", "(b) cached", "(c) decode every epoch", "b/a", "c/a"],
            rows,
        )
        + "\n\n### Cache build, first epoch against later ones\n"
        + f"One pass = {any_r['images_per_pass']} images at the demo size (the passes are the benchmark's epochs). "
        + f"`fit()` builds a cache in one process per core from {PARALLEL_FROM} images up, in-process below; "
        + "both rates are measured.\n\n"
        + table(
            [
                "input",
                "stored",
                "images",
                "build, in-process",
                "build, processes",
                "(b) first pass (build + training)",
                "(b) later",
                "(c) first",
                "(c) later",
                "(a) later",
            ],
            epochs,
        )
    )


def _inference(infer: dict[str, Any]) -> str:
    rows = []
    for r in infer.values():
        torch_p50 = r["engines"]["torch_eager"]["p50_ms"]
        for name, f in r["engines"].items():
            precision = name.removeprefix("ort_")
            ex = r["exported"].get(precision, {}) if name != "torch_eager" else {}
            gate = "-"
            if ex:
                change = ex["acc_change_points"]
                gate = (
                    f"{'pass' if ex['gate_passed'] else 'FAIL'}: agreement {ex['agreement']:.1%}, "
                    f"accuracy {change:+.1f} pt on {ex['verify_images']}"
                )
            rows.append(
                [
                    f"{r['size']}x{r['size']}",
                    name.replace("_", " "),
                    f"{f['p50_ms']:.2f}",
                    f"{f['p95_ms']:.2f}",
                    f"{f['p99_ms']:.2f}",
                    fmt(f["b32_images_per_s"]),
                    f"{f['p50_ms'] / torch_p50:.2f}",
                    fmt(ex.get("size_mb")),
                    gate,
                ]
            )
    any_r = next(iter(infer.values()))
    return (
        "### Inference\n"
        + f"`{any_r['arch']}` checkpoint made and exported by the benchmark (`export_run`, parity gate on), "
        + f"{any_r['b1_iters']} batch-1 calls and {any_r['b32_iters']} batch-32 calls per engine in "
        + f"{any_r.get('rounds', 1)} interleaved rounds"
        + (", each engine's round once the process was idle" if any_r.get("quiet_start") else "")
        + f"; inputs already preprocessed; device {any_r['device']}.\n\n"
        + table(
            [
                "input",
                "engine",
                "b1 p50 ms",
                "p95",
                "p99",
                "b32 images/s",
                "b1 / torch",
                "file MB",
                "verify gate",
            ],
            rows,
        )
        + "".join(
            f"\n\n{r['size']}x{r['size']} {name.replace('_', ' ')} could not run: {why}"
            for r in infer.values()
            for name, why in r.get("engines_failed", {}).items()
        )
        + "".join(
            f"\n\n{r['size']}x{r['size']} {name.replace('_', ' ')} (the runtime's default) chose at warm-up: "
            f"{BindingChoice(**choice).describe()}."
            for r in infer.values()
            for name, choice in r.get("batch1_choice", {}).items()
        )
    )


def _footprint(fp: dict[str, Any]) -> str:
    if fp.get("skipped"):
        return "### Install footprint\nNot measured in this run (--footprint skip and no cached result)."
    cached = " (cached result: same dependencies)" if fp.get("from_cache") else ""
    return (
        "### Install footprint\n"
        + table(
            ["edge runtime venv (base install)", "[train] venv", "runtime / train"],
            [
                [
                    f"{fp['runtime_venv_mb']:,.0f} MB",
                    f"{fp['train_venv_mb']:,.0f} MB",
                    f"{fp['runtime_install_over_train']:.3f}",
                ]
            ],
        )
        + f"\n\nHow: {fp['how']}{cached}."
    )


def _annotate(result: dict[str, Any]) -> str:
    from benchmarks.annotate import table as annotate_table

    body = annotate_table(result)
    if result.get("device") == "cuda":
        fps = result["annotate"]["fps"]
        met = "met" if fps >= ANNOTATE_GPU_FPS else "**missed**"
        body += f"\n\nGPU target: annotate >= {ANNOTATE_GPU_FPS:,.0f} frames/s on the demo's video: {met}."
    return "### annotate against webcam (the same video and model)\n" + body


def _summary(summary: dict[str, Any]) -> str:
    rows = []
    targets = targets_for(summary)
    for key in SUMMARY_KEYS:
        value = summary.get(key)
        if value is None:
            continue
        target = targets.get(key)
        met = "-"
        if target is not None and value is not None:
            met = "yes" if target[0](value, target[1]) else "**no**"
        want = "-" if target is None else f"{'>=' if target[0] is operator.ge else '<='} {target[1]}"
        rows.append([f"`{key}`", "-" if value is None else f"{value:.3f}", want, met])
    where = "gpu/summary.json" if summary.get("device") not in (None, "cpu") else "summary.json"
    return f"### Summary (`benchmarks/results/{where}`)\n" + table(["key", "value", "target", "met"], rows)


def render(results: dict[str, Any]) -> str:
    """The RESULTS.md section of one run: machine, every table, the summary and notes on missed targets."""
    summary = summary_of(results)
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in results.get("stage_seconds", {}).items())
    parts = [
        f"Machine: {machine_line(results['machine'])}. Whole run {results['seconds']:.0f} s ({stages}; "
        "each pass, call count and image count is in the tables)."
    ]
    if results["quick"]:
        parts.append("`--quick`: fewer batches and repetitions than `make bench`; indicative only.")
    if "train" in results:
        parts.append(_training(results["train"]))
    if "infer" in results:
        parts.append(_inference(results["infer"]))
    if "footprint" in results:
        parts.append(_footprint(results["footprint"]))
    if "loop" in results and results["loop"].get("loop") is not None:
        parts.append(_loop(results["loop"]))
    if "demo" in results:
        parts.append(_demo(results["demo"]))
    if "decode" in results:
        from benchmarks.bench_decode import table as decode_table

        parts.append(
            "### Decoding: FFmpeg's threads against one\n```\n" + decode_table(results["decode"]) + "\n```"
        )
    if _get(results, "annotate", "annotate") is not None:
        parts.append(_annotate(results["annotate"]))
    parts += _cameras(results)
    parts.append(_summary(summary))
    notes = missed_notes(summary, results)
    if notes:
        parts.append(
            "### Targets missed: why, and what would close them\n" + "\n".join(f"- {n}" for n in notes)
        )
    for key in ("loop", "annotate", "pipeline", "streams"):
        note = _get(results, key, "note")
        if note:
            parts.append(f"{key.capitalize()}: {note}.")
    return "\n\n".join(parts)


def _loop(loop: dict[str, Any]) -> str:
    text = "### Live loop\n" + _loop_line(loop)
    sim = loop.get("simulated_gpu")
    if sim:
        text += (
            "\n\nAgainst a simulated GPU (the model replaced by a wait that holds neither a core nor the GIL, "
            "the loop pipelined as on a GPU): " + _loop_line(sim)
        )
    ceiling = loop.get("ceiling")
    if ceiling:
        text += (
            f"\n\nThe loop's ceiling (a simulated model of 1 µs, pipelined): {fmt(ceiling['loop']['fps'])} "
            f"frames/s, {ceiling['loop']['cpu_ms_per_frame']:.2f} ms of CPU a frame (every thread; Python's: "
            + ", ".join(f"{k} {v:.3f}" for k, v in ceiling["loop"].get("thread_cpu_ms_per_frame", {}).items())
            + f"), = {ceiling['loop']['fps'] / loop['inference']['fps']:.2f} of the real model's inference-only "
            "rate."
        )
    return text


def _loop_line(loop: dict[str, Any]) -> str:
    inf, lp = loop["inference"], loop["loop"]
    return (
        f"`{loop['model']}` {loop['input_size'][0]}x{loop['input_size'][1]} on {loop['provider']}, video "
        + f"{loop['video']}: inference only {fmt(inf['fps'])} frames/s (p50 {inf['p50_ms']:.2f} ms), the "
        + f"headless loop with JSONL {fmt(lp['fps'])} frames/s = {loop['loop_over_inference']:.2f} of it; "
        + "stage p50 ms: "
        + ", ".join(f"{k} {v['p50']:.2f}" for k, v in lp["stages_ms"].items())
        + "."
    )


def _demo(demo: dict[str, Any]) -> str:
    steps = ", ".join(f"{k} {v} s" for k, v in demo.get("step_seconds", {}).items())
    total = demo.get("demo_seconds")
    head = f"{total:.0f} s end to end" if total is not None else f"FAILED (exit {demo.get('exit_code')})"
    return f"### `make demo` (scripts/demo.sh)\n{head}: {steps}."


def missed_notes(summary: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """One sentence or two per missed target, from what this run measured."""
    notes = []
    for key, (op, target) in targets_for(summary).items():
        value = summary.get(key)
        if value is None or op(value, target):
            continue
        explain = EXPLAIN.get(key)
        why = explain(results) if explain is not None else "see the tables above."
        notes.append(f"`{key}` = {value:.3f} (target {target}): {why}")
    return notes


def _augment_engine(r: dict[str, Any]) -> str:
    """What augmented the graphed batches; results from before the kernel say only whether it was compiled."""
    if "augment_engine" in r:
        why = f" ({r['augment_error']})" if r.get("augment_error") else ""
        return f"{r['augment_engine']}{why}"
    return "compiled" if r.get("augment_compiled") else "eager"


def _explain_cached(results: dict[str, Any], size: str) -> str:
    r = _get(results, "train", size) or {}
    load = _get(results, "machine", "load_average_at_start")
    if str(r.get("device", "cpu")).startswith("cuda"):
        ips = r.get("images_per_s") or {}
        return (
            f"on CUDA (batches replayed as CUDA graphs: {r.get('cuda_graphs')}, augmentation: "
            f"{_augment_engine(r)}) the cached path adds the "
            "gather, crop-resize and normalisation of each batch; they run on a side stream beside the step, "
            "so what remains is the GPU time they take from the model's kernels where the step is GPU-bound, "
            f"or the host's launches where it is host-bound (compute-only {fmt(ips.get('memory'))} images/s). "
            f"Passes of {r.get('images_per_pass')} images."
        )
    return (
        "on the CPU the cached path adds only the gather, the crop-resize (`grid_sample`) and the normalisation "
        "of each batch to the model's step; they run on the same cores as the model, so the gap is their share "
        f"of the step plus run-to-run noise (load average at start {load}: other processes share the cores). "
        "Closing it: run on a quiet machine; overlap augmentation with the step in a background thread; on a GPU "
        f"the batch work is a small fraction of the step. Passes of {r.get('images_per_pass')} images."
    )


def _cameras(results: dict[str, Any]) -> list[str]:
    """The sections of the webcam benchmarks (benchmarks/loop.py --pipeline, benchmarks/streams.py)."""
    from benchmarks.loop import _pipeline_table
    from benchmarks.streams import table as streams_table

    parts = []
    if _get(results, "pipeline", "loop_over_pipeline_bound") is not None:
        parts.append(
            "### webcam at 1280x720 against the pipeline bound\n```\n"
            + _pipeline_table(results["pipeline"])
            + "\n```"
        )
    if _get(results, "streams", "one_process") is not None:
        parts.append(
            "### Several cameras: one webcam, batched, beside one webcam per camera\n"
            + streams_table(results["streams"])
        )
    return parts


def _explain_pipeline(r: dict[str, Any]) -> str:
    p = r.get("pipeline", {})
    return (
        f"webcam ran {p.get('webcam_fps', 0):.1f} fps against a bound of {p.get('pipeline_bound_fps', 0):.1f} "
        f"({p.get('bound_by')}) with {p.get('webcam_threads')} ONNX Runtime threads. The loop thread preprocesses, "
        "post-processes and writes between inferences, while decoding runs beside it; on a shared machine other "
        "processes take cores the bound assumes are ours (load average in the machine line). Closing it: a quiet "
        "machine; preprocessing the next frame while the model runs."
    )


def _explain_streams(r: dict[str, Any]) -> str:
    one = _get(r, "streams", "one_process") or {}
    return (
        f"with four cameras the worst one had {100 * one.get('min_share', 0):.1f} % of its frames classified and the "
        f"worst p95 was {one.get('p95_ms') or 0:.1f} ms ({one.get('threads_line', '')}). Decoding four MJPEG streams, "
        "the loop and the model share two cores with whatever else runs (load average in the machine line). "
        "Closing it: a quiet machine, smaller camera frames, or the int8 model."
    )


def _explain_int8(r: dict[str, Any]) -> str:
    """What this run measured of int8 against fp32 at the demo size: the two p50s, the kernels ONNX Runtime ran,
    the bytes of the weights each pass reads, how each engine's round started, and the machine's load."""
    infer = _get(r, "infer", str(r["demo_size"])) or {}
    engines, exported = infer.get("engines", {}), infer.get("exported", {})
    int8, fp32 = engines.get("ort_int8", {}), engines.get("ort_fp32", {})
    parts = [
        f"int8 took {int8.get('p50_ms', 0):.2f} ms a frame at batch 1 against fp32's {fp32.get('p50_ms', 0):.2f} ms"
    ]
    ops = infer.get("int8_cpu_ops")
    if ops:
        fused = {
            k: v for k, v in ops.items() if k in ("QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger")
        }
        parts.append(
            "ONNX Runtime ran its quantized layers as "
            + (
                ", ".join(f"{v} {k}" for k, v in fused.items())
                if fused
                else "DequantizeLinear + float kernels"
            )
            + f", and the first and last weighted layers, kept in float, as {ops.get('Conv', 0)} Conv and "
            + f"{ops.get('Gemm', 0)} Gemm"
        )
    if exported.get("int8", {}).get("size_mb") and exported.get("fp32", {}).get("size_mb"):
        parts.append(
            f"a pass reads the weights once, {exported['int8']['size_mb']:.0f} MB in int8 against "
            f"{exported['fp32']['size_mb']:.0f} MB in fp32, and at batch 1 the fully connected layers' reads "
            "dominate, so the ratio cannot go far below the ratio of the bytes"
        )
    waits = int8.get("quiet_wait_ms")
    if infer.get("quiet_start") and waits:
        parts.append(
            f"each engine's round started once the process was idle (int8 waited up to {waits[1]:.0f} ms for the "
            "engine before)"
        )
    elif infer and not infer.get("quiet_start"):
        parts.append("each engine's round started straight after the engine before, beside its idle threads")
    parts.append(
        f"load average at start {_get(r, 'machine', 'load_average_at_start')}: other processes share the cores"
    )
    return "; ".join(parts) + ". Closing it: a quiet machine, or fewer fully connected weights."


EXPLAIN: dict[str, Callable[[dict[str, Any]], str]] = {
    "annotate_over_webcam": lambda r: (
        "annotate classifies batches of frames while a thread decodes and preprocesses the next ones; on two "
        "cores both sides share the same two cores with whatever else runs (load average at start "
        f"{_get(r, 'machine', 'load_average_at_start')}), so a busy machine narrows the gap. Closing it: a quiet "
        "machine, a larger --batch-size, or an int8 model (inference is most of annotate's time)."
    ),
    "loop_over_pipeline_bound_720p": _explain_pipeline,
    "streams4_min_share": _explain_streams,
    "streams4_p95_ms": _explain_streams,
    "cached_over_compute_demo": lambda r: _explain_cached(r, str(r["demo_size"])),
    "cached_over_compute_224": lambda r: _explain_cached(r, "224"),
    "ort_fp32_over_torch_b1": lambda r: (
        "AlexNet at batch 1 is dominated by its fully connected layers (57 M weights, 228 MB in fp32; about "
        "three quarters of the time at 64x64 and half at 224 when measured in PyTorch): a matrix-vector "
        "product bound by memory bandwidth, which both runtimes stream at the same speed, while the "
        "convolutions run on comparable kernels (oneDNN in PyTorch, MLAS in ONNX Runtime) and AlexNet has no "
        "small operators for graph fusion to remove. Closing it: int8 weights (a quarter of the bytes), a "
        "smaller head (global pooling before one linear layer), or a GPU."
    ),
    "int8_over_fp32_b1": _explain_int8,
    "runtime_install_over_train": lambda r: (
        "the base install carries onnxruntime-gpu with its CUDA provider and OpenCV; closing it: the CPU-only "
        "`onnxruntime` wheel for boxes without a GPU, or `opencv-python-headless`."
    ),
}
