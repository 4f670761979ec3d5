"""The webcam loop on a video file, headless, against the inference-only rate of the same model and size.

    python -m benchmarks.loop MODEL.onnx VIDEO.mp4 [--frames 300] [--device cpu] [--save]
    python -m benchmarks.loop MODEL.onnx VIDEO.mp4 --pipeline     # webcam at 1280x720 against the pipeline bound
    python -m benchmarks.loop MODEL.onnx VIDEO.mp4 --simulate 0.4 # the pipelined loop against a simulated GPU
    python -m benchmarks.loop MODEL.onnx VIDEO.mp4 --spinning     # webcam with each way ONNX Runtime's threads wait

In one run, on one session, interleaved over a few rounds so that a shared machine's drift hits both alike:
(1) the loop: `run_loop` over the file (decoding in its thread, preprocess, inference, softmax, smoothing,
JSONL output), headless; (2) inference only: the model on one preprocessed frame of the video, batch 1,
back to back, as many frames as the loop classified. Reports frames/s of each, per-stage p50 / p95 latency,
and `loop_over_inference`, the loop's rate over the inference-only rate. `--save` adds a run that also draws the overlay and encodes the
annotated mp4. `--simulate MS` replaces the model by a stand-in for a GPU (MS of wall time per batch that holds
neither a core nor the GIL) and runs the loop pipelined as on a GPU: what is left between the two rates is the
loop's own overhead, measurable on a machine without a GPU. `--pipeline` (bench_pipeline) runs `webcam` itself on the video enlarged to 1280x720 against the
pipeline bound: the lesser of inference alone on every core and cores / (decode + preprocess + inference CPU
seconds of one frame). torch-free, like the runtime it measures.
"""

from __future__ import annotations

import argparse
import io
import platform
import re
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from benchmarks.common import save_json
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime import host
from mgc_edge.runtime.host import SPINNING, live_threads
from mgc_edge.runtime.live.loop import LoopOptions, LoopSummary, run_loop
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sinks.jsonl import JsonlSink
from mgc_edge.runtime.sinks.video import VideoSink
from mgc_edge.runtime.sources.base import SourceOptions
from mgc_edge.runtime.sources.file import FileSource


def _first_frame(video: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"{video} cannot be decoded.")
    return frame


@contextmanager
def thread_cpu(totals: defaultdict[str, float]) -> Iterator[None]:
    """CPU seconds of each Python thread started inside the block (by name, numbers stripped) and of the
    calling thread (`loop`), added to `totals`: Thread.run is wrapped for the block's duration."""
    run = threading.Thread.run

    def timed(self: threading.Thread) -> None:
        start = time.thread_time()
        try:
            run(self)
        finally:
            totals[self.name.rstrip("_0123456789-")] += time.thread_time() - start

    threading.Thread.run = timed  # type: ignore[method-assign]
    start = time.thread_time()
    try:
        yield
    finally:
        totals["loop"] += time.thread_time() - start
        threading.Thread.run = run  # type: ignore[method-assign]


def inference_only(clf: Classifier, x: np.ndarray, n: int) -> dict[str, float]:
    """Frames/s, latency and process CPU time of `n` back-to-back runs of the model on one preprocessed batch-1
    tensor."""
    times = np.empty(n)
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        clf.logits(x)
        times[i] = time.perf_counter() - t
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    p50, p95 = np.percentile(times * 1000, [50, 95])
    return {
        "fps": n / total,
        "frames": n,
        "seconds": total,
        "cpu_seconds": cpu,
        "p50_ms": float(p50),
        "p95_ms": float(p95),
    }


class SimulatedModel:
    """A stand-in for a GPU's model call (`--simulate`): `ms` of wall time per batch in time.sleep, which holds
    no core and releases the GIL as ONNX Runtime's run does, and zero logits of the model's shape."""

    def __init__(self, ms: float, classes: int) -> None:
        self.seconds, self.classes = ms / 1000, classes

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return np.zeros((batch.shape[0], self.classes), np.float32)


def _loop(
    clf: Classifier, video: Path, n: int, save: bool, tmp: Path, pipeline: bool | None = None
) -> LoopSummary:
    sinks: list[Any] = [JsonlSink(tmp / "bench.jsonl", force=True)]
    with FileSource(video, SourceOptions()) as src:
        if save:
            sinks.append(VideoSink(tmp / "bench.mp4", src.fps or 25.0, force=True, notify=lambda _: None))
        return run_loop(clf, src, LoopOptions(max_frames=n, pipeline=pipeline), sinks)


def _loop_figures(summary: LoopSummary) -> dict[str, Any]:
    return {
        "fps": summary.fps,
        "frames": summary.classified,
        "stages_ms": {k: {"p50": v[0], "p95": v[1]} for k, v in summary.stages.items()},
    }


def _merge(summaries: list[LoopSummary]) -> dict[str, Any]:
    """One figure for several loop runs: frames over seconds in all, stage percentiles of the last run."""
    frames = sum(s.classified for s in summaries)
    seconds = sum(s.seconds for s in summaries)
    figures = _loop_figures(summaries[-1])
    figures.update(fps=frames / seconds, frames=frames, rounds=[s.fps for s in summaries])
    return figures


def _inference_share(loop: dict[str, Any]) -> float:
    """Median inference time over the sum of the median stage times (capture wait to output)."""
    stages = loop["stages_ms"]
    total = sum(v["p50"] for k, v in stages.items() if k != "end_to_end")
    return stages["inference"]["p50"] / total if total else 0.0


def bench_loop(
    model_path: str | Path,
    video_path: str | Path,
    frames: int = 300,
    device: str = "cpu",
    threads: int = 0,
    save: bool = False,
    warmup: int = 20,
    rounds: int = 3,
    simulate_ms: float = 0.0,
) -> dict[str, Any]:
    """Measure the headless webcam loop over `video_path` against inference only, on one session (the
    loop's own settings: `live_threads()` intra-op threads unless `threads`, `LIVE_SPINNING`). The two are
    interleaved over `rounds` rounds of about `frames / rounds` frames each, so that a shared machine's
    drift hits both alike; each rate is frames over seconds summed over the rounds. `simulate_ms`: the model
    is a SimulatedModel of that many ms and the loop runs pipelined, as on a GPU."""
    threads = threads or live_threads()
    clf = Classifier(model_path, device=device, threads=threads, spinning=host.LIVE_SPINNING)
    pipeline = None
    if simulate_ms > 0:
        clf.logits = SimulatedModel(simulate_ms, clf.num_classes)  # type: ignore[method-assign]
        pipeline = True
    video = Path(video_path)
    x = clf.preprocess(_first_frame(video))  # in the runtime's input memory (page-locked on a GPU)
    clf.warmup()
    for _ in range(warmup):
        clf.logits(x)
    per_round = max(1, frames // rounds)
    bare, loops, drawn = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        _loop(clf, video, min(per_round, 30), False, Path(tmp), pipeline)  # warms the decoder and file cache
        loop_cpu = 0.0
        threads_cpu: defaultdict[str, float] = defaultdict(float)
        for _ in range(rounds):
            cpu = time.process_time()
            with thread_cpu(threads_cpu):
                loops.append(_loop(clf, video, per_round, False, Path(tmp), pipeline))
            loop_cpu += time.process_time() - cpu
            bare.append(inference_only(clf, x, loops[-1].classified))
            if save:
                drawn.append(_loop(clf, video, per_round, True, Path(tmp), pipeline))
    n = sum(b["frames"] for b in bare)
    inference_fps = n / sum(b["seconds"] for b in bare)
    loop = _merge(loops)
    # CPU of every thread of the process (decoding, preprocess, the loop, inference): on a GPU box whose loop
    # falls short of its model, what the CPU side costs a frame.
    loop["cpu_ms_per_frame"] = loop_cpu / loop["frames"] * 1000
    # ... and per Python thread: the loop's own, the file reader, the inference thread (the rest is FFmpeg's
    # and ONNX Runtime's threads). Their sum against a frame's time says how close the GIL is to its limit.
    loop["thread_cpu_ms_per_frame"] = {k: v / loop["frames"] * 1000 for k, v in sorted(threads_cpu.items())}
    result: dict[str, Any] = {
        "model": Path(model_path).name,
        "video": video.name,
        "input_size": list(clf.spec.size),
        "provider": f"simulated ({simulate_ms:.2f} ms a batch)" if simulate_ms > 0 else clf.provider,
        "threads": threads,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "inference": {
            "fps": inference_fps,
            "frames": n,
            "p50_ms": float(np.median([b["p50_ms"] for b in bare])),
            "p95_ms": float(np.median([b["p95_ms"] for b in bare])),
            "rounds": [b["fps"] for b in bare],
            "cpu_ms_per_frame": sum(b["cpu_seconds"] for b in bare) / n * 1000,
        },
        "loop": loop,
        "loop_over_inference": loop["fps"] / inference_fps,
        # Robust to a noisy machine: the share of a frame's median time that is the model itself.
        "inference_share_of_loop": _inference_share(loop),
    }
    if drawn:
        result["loop_save"] = _merge(drawn)
        result["loop_save_over_inference"] = result["loop_save"]["fps"] / inference_fps
    return result


def scaled_video(src: Path, dst: Path, size_wh: tuple[int, int] = (1280, 720), frames: int = 300) -> Path:
    """`src`'s frames enlarged to `size_wh`, looped to `frames` frames, written at `src`'s rate (mp4v: what
    OpenCV writes everywhere)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    images = []
    while len(images) < frames:
        ok, image = cap.read()
        if not ok:
            break
        images.append(cv2.resize(image, size_wh, interpolation=cv2.INTER_LINEAR))
    cap.release()
    if not images:
        raise SystemExit(f"{src} cannot be decoded.")
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size_wh)
    for i in range(frames):
        writer.write(images[i % len(images)])
    writer.release()
    return dst


def cpu_ms_per_frame(video: Path, clf: Classifier, n: int = 60) -> dict[str, float]:
    """CPU ms (every thread of the process, FFmpeg's and ONNX Runtime's included) that one frame costs in each
    stage when run alone: decoding, preprocess, inference (batch 1 on `clf`)."""
    cap = cv2.VideoCapture(str(video))
    cap.read()  # the codec's set-up is not a frame's cost
    frames, cpu = [], time.process_time()
    for _ in range(n):
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    decode = (time.process_time() - cpu) / len(frames)
    cap.release()
    cpu = time.process_time()
    batches = [preprocess(f, clf.spec) for f in frames]
    pre = (time.process_time() - cpu) / len(frames)
    cpu = time.process_time()
    for x in batches:
        clf.logits(x)
    infer = (time.process_time() - cpu) / len(batches)
    return {"decode": decode * 1000, "preprocess": pre * 1000, "inference": infer * 1000}


def _webcam_run(
    model: Path, video: Path, frames: int, tmp: Path, threads: int = 0
) -> tuple[LoopSummary, int]:
    """`mgc-edge webcam MODEL -s VIDEO --display off --jsonl [--threads N]` as the command runs it, quietly; its
    summary and the threads it ran with (its own measured choice unless `threads`)."""
    from rich.console import Console

    from mgc_edge.cli.terminal import TerminalReport
    from mgc_edge.runtime.live.webcam import WebcamOptions, run_webcam

    out = io.StringIO()
    options = WebcamOptions(
        source=str(video),
        display="off",
        jsonl=tmp / "webcam.jsonl",
        max_frames=frames,
        force=True,
        threads=threads,
    )
    summary = run_webcam(model, options, report=TerminalReport(Console(file=out, width=200)))
    found = re.search(r"\((\d+) threads?", out.getvalue())
    return summary, int(found.group(1)) if found else threads


@contextmanager
def live_spinning(mode: str) -> Iterator[None]:
    """The live loop's sessions opened with `mode` (one of `SPINNING`) for the block."""
    saved, host.LIVE_SPINNING = host.LIVE_SPINNING, mode
    try:
        yield
    finally:
        host.LIVE_SPINNING = saved


def bench_spinning(
    model_path: str | Path,
    video_path: str | Path,
    frames: int = 300,
    rounds: int = 4,
    modes: tuple[str, ...] = SPINNING,
    size_wh: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """`webcam` on the video (its own thread choice, headless, JSONL out) with each way ONNX Runtime's idle
    intra-op threads may wait (`modes`), interleaved over `rounds` rounds, the order reversed every other round,
    so that a shared machine's drift hits each alike; `size_wh` enlarges the video first (1280x720: decoding
    then weighs as a camera's does). Each mode's frames/s is frames over seconds summed over its rounds."""
    from mgc_edge.runtime.host import usable_cores

    runs: dict[str, list[LoopSummary]] = {m: [] for m in modes}
    threads: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        video = Path(video_path)
        if size_wh is not None:
            video = scaled_video(video, tmp / "video.mp4", size_wh, frames=frames)
        _webcam_run(Path(model_path), video, 30, tmp)  # warms the file cache and the decoder
        for r in range(rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:
                with live_spinning(mode):
                    summary, threads[mode] = _webcam_run(Path(model_path), video, frames, tmp)
                runs[mode].append(summary)
    fps = {m: sum(s.classified for s in v) / sum(s.seconds for s in v) for m, v in runs.items()}
    return {
        "model": Path(model_path).name,
        "video": f"{size_wh[0]}x{size_wh[1]}" if size_wh else Path(video_path).name,
        "cores": usable_cores(),
        "threads": threads,
        "fps": fps,
        "rounds": {m: [s.fps for s in v] for m, v in runs.items()},
        "inference_p50_ms": {m: v[-1].stages["inference"][0] for m, v in runs.items()},
        "live_spinning": host.LIVE_SPINNING,
    }


def _spinning_table(r: dict[str, Any]) -> str:
    lines = [f"{r['model']} on {r['video']}, {r['cores']} cores; webcam, headless, JSONL out"]
    for mode, fps in r["fps"].items():
        rounds = ", ".join(f"{v:.1f}" for v in r["rounds"][mode])
        lines.append(
            f"spinning {mode:<3}: {fps:.1f} frames/s ({r['threads'][mode]} threads; rounds {rounds}; inference p50 "
            f"{r['inference_p50_ms'][mode]:.2f} ms)"
        )
    return "\n".join(lines)


def bench_pipeline(
    model_path: str | Path, source_video: str | Path, frames: int = 150, rounds: int = 4
) -> dict[str, Any]:
    """`webcam` on a 1280x720 video against the pipeline bound, side by side.

    The bound is the lesser of (a) inference alone at batch 1 on every core and (b) cores / (decode + preprocess
    + inference CPU seconds of one frame): what the machine could classify if every core were busy all the time
    and nothing were wasted. Each round runs webcam (its own thread choice), webcam with the former fixed rule
    (cores - 2 threads), inference alone and the CPU costs one after the other, so that a shared machine's load
    hits them alike; `loop_over_pipeline_bound` is the median over the rounds of webcam's frames per second
    over that round's bound (the pooled ratio is reported beside it)."""
    from mgc_edge.runtime.host import usable_cores

    cores = usable_cores()
    model = Path(model_path)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        video = scaled_video(Path(source_video), tmp / "video720.mp4", frames=frames)
        everything = Classifier(model, device="cpu", threads=cores, spinning=False)
        x = preprocess(_first_frame(video), everything.spec)
        everything.warmup()
        _webcam_run(model, video, 30, tmp)  # warms the file cache and the decoder
        rounds_out: list[dict[str, Any]] = []
        for _ in range(rounds):
            summary, threads = _webcam_run(model, video, frames, tmp)
            former, _ = _webcam_run(model, video, frames, tmp, threads=max(1, cores - 2))
            bare = inference_only(everything, x, max(50, summary.classified // 2))
            cost = cpu_ms_per_frame(video, everything)
            cpu_bound = cores / (sum(cost.values()) / 1000)
            rounds_out.append(
                {
                    "webcam": summary,
                    "threads": threads,
                    "former": former,
                    "inference_fps": bare["fps"],
                    "cost": cost,
                    "bound": min(bare["fps"], cpu_bound),
                    "cpu_bound": cpu_bound,
                }
            )
    loops = [r["webcam"] for r in rounds_out]
    formers = [r["former"] for r in rounds_out]
    loop_fps = sum(s.classified for s in loops) / sum(s.seconds for s in loops)
    former_fps = sum(s.classified for s in formers) / sum(s.seconds for s in formers)
    inference_fps = float(np.median([r["inference_fps"] for r in rounds_out]))
    cost = {k: float(np.median([r["cost"][k] for r in rounds_out])) for k in rounds_out[0]["cost"]}
    cpu_bound = cores / (sum(cost.values()) / 1000)
    bound = min(inference_fps, cpu_bound)
    ratios = [r["webcam"].fps / r["bound"] for r in rounds_out]
    former_ratios = [r["former"].fps / r["bound"] for r in rounds_out]
    return {
        "model": model.name,
        "video": "1280x720, mp4v",
        "cores": cores,
        "webcam_threads": rounds_out[-1]["threads"],
        "webcam_fps": loop_fps,
        "webcam_rounds": [s.fps for s in loops],
        "former_threads": max(1, cores - 2),
        "former_fps": former_fps,
        "former_rounds": [s.fps for s in formers],
        "inference_all_cores_fps": inference_fps,
        "inference_rounds": [r["inference_fps"] for r in rounds_out],
        "cpu_ms_per_frame": cost,
        "cpu_bound_fps": cpu_bound,
        "pipeline_bound_fps": bound,
        "bound_by": "inference on every core" if inference_fps <= cpu_bound else "CPU time per frame",
        "round_ratios": ratios,
        "loop_over_pipeline_bound": float(np.median(ratios)),
        "pooled_ratio": loop_fps / bound,
        "former_over_pipeline_bound": float(np.median(former_ratios)),
        "stages_ms": {k: {"p50": v[0], "p95": v[1]} for k, v in loops[-1].stages.items()},
    }


def _pipeline_table(r: dict[str, Any]) -> str:
    cost = r["cpu_ms_per_frame"]

    def rounds(key: str) -> str:
        return ", ".join(f"{v:.1f}" for v in r[key])

    return "\n".join(
        [
            f"{r['model']} on a {r['video']} video, {r['cores']} cores; webcam chose {r['webcam_threads']} threads",
            f"CPU per frame: decode {cost['decode']:.2f} ms + preprocess {cost['preprocess']:.2f} ms + inference "
            f"{cost['inference']:.2f} ms -> {r['cpu_bound_fps']:.1f} fps on {r['cores']} cores",
            f"inference alone on every core: {r['inference_all_cores_fps']:.1f} fps (rounds: {rounds('inference_rounds')})",
            f"pipeline bound {r['pipeline_bound_fps']:.1f} fps ({r['bound_by']})",
            f"webcam: {r['webcam_fps']:.1f} fps (rounds: {rounds('webcam_rounds')}); over each round's bound: "
            + ", ".join(f"{v:.2f}" for v in r["round_ratios"])
            + f"; median {r['loop_over_pipeline_bound']:.3f}, pooled {r['pooled_ratio']:.3f}",
            f"webcam --threads {r['former_threads']} (the former cores - 2): {r['former_fps']:.1f} fps (rounds: "
            f"{rounds('former_rounds')}); median {r['former_over_pipeline_bound']:.3f} of the bound",
        ]
    )


def _table(result: dict[str, Any]) -> str:
    inf = result["inference"]
    lines = [
        f"{result['model']} {result['input_size'][0]}x{result['input_size'][1]} on {result['provider']} "
        f"({result['threads']} threads), video {result['video']}",
        f"inference only: {inf['fps']:.1f} frames/s (rounds: {', '.join(f'{r:.1f}' for r in inf['rounds'])}; "
        f"p50 {inf['p50_ms']:.2f} ms, p95 {inf['p95_ms']:.2f} ms)",
    ]
    for key, label in (("loop", "loop, headless + JSONL"), ("loop_save", "loop + overlay + mp4")):
        if key not in result:
            continue
        loop = result[key]
        ratio = result["loop_over_inference" if key == "loop" else "loop_save_over_inference"]
        rounds = ", ".join(f"{r:.1f}" for r in loop["rounds"])
        lines.append(
            f"{label}: {loop['fps']:.1f} frames/s = {100 * ratio:.1f} % of inference only (rounds: {rounds})"
        )
        lines.append(f"  the model is {100 * _inference_share(loop):.1f} % of a frame's median time")
        lines.append("  stage        p50 ms   p95 ms")
        for stage, v in loop["stages_ms"].items():
            lines.append(f"  {stage:<12} {v['p50']:7.2f}  {v['p95']:7.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="also measure drawing and writing the mp4")
    parser.add_argument(
        "--simulate", type=float, default=0.0, metavar="MS", help="a simulated GPU taking MS a batch"
    )
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="webcam on the video enlarged to 1280x720 against the pipeline bound",
    )
    parser.add_argument(
        "--spinning",
        action="store_true",
        help="webcam with each way ONNX Runtime's idle threads may wait (on, run, off), side by side",
    )
    parser.add_argument("--rounds", type=int, default=4, help="rounds of --spinning")
    parser.add_argument("--size", default=None, help="WxH: --spinning on the video enlarged to this size")
    args = parser.parse_args()
    if args.spinning:
        size = tuple(int(v) for v in args.size.split("x")) if args.size else None
        result = bench_spinning(args.model, args.video, args.frames, args.rounds, size_wh=size)  # type: ignore[arg-type]
        print(_spinning_table(result))
    elif args.pipeline:
        result = bench_pipeline(args.model, args.video)
        print(_pipeline_table(result))
    else:
        result = bench_loop(
            args.model,
            args.video,
            args.frames,
            args.device,
            args.threads,
            args.save,
            simulate_ms=args.simulate,
        )
        print(_table(result))
    if args.json:
        save_json(args.json, result)


if __name__ == "__main__":
    main()
