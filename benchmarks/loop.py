"""The webcam loop on a video file, headless, against the inference-only rate of the same model and size.

    python -m benchmarks.loop MODEL.onnx VIDEO.mp4 [--frames 300] [--device cpu] [--save]

In one run, on one session, interleaved over a few rounds so that a shared machine's drift hits both alike:
(1) the loop: `run_loop` over the file (decoding in its thread, preprocess, inference, softmax, smoothing,
JSONL output), headless; (2) inference only: the model on one preprocessed frame of the video, batch 1,
back to back, as many frames as the loop classified. Reports frames/s of each, per-stage p50 / p95 latency,
and `loop_over_inference`, the loop's rate over the inference-only rate. `--save` adds a run that also draws the overlay and encodes the
annotated mp4. torch-free, like the runtime it measures.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from mgc_edge.preprocess import preprocess
from mgc_edge.runtime.loop import LoopOptions, LoopSummary, run_loop
from mgc_edge.runtime.session import Classifier, live_threads
from mgc_edge.runtime.sinks import JsonlSink, VideoSink
from mgc_edge.runtime.sources import FileSource, SourceOptions


def _first_frame(video: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"{video} cannot be decoded.")
    return frame


def inference_only(clf: Classifier, x: np.ndarray, n: int) -> dict[str, float]:
    """Frames/s and latency of `n` back-to-back runs of the model on one preprocessed batch-1 tensor."""
    times = np.empty(n)
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        clf.logits(x)
        times[i] = time.perf_counter() - t
    total = time.perf_counter() - start
    p50, p95 = np.percentile(times * 1000, [50, 95])
    return {"fps": n / total, "frames": n, "seconds": total, "p50_ms": float(p50), "p95_ms": float(p95)}


def _loop(clf: Classifier, video: Path, n: int, save: bool, tmp: Path) -> LoopSummary:
    sinks: list[Any] = [JsonlSink(tmp / "bench.jsonl", force=True)]
    with FileSource(video, SourceOptions()) as src:
        if save:
            sinks.append(VideoSink(tmp / "bench.mp4", src.fps or 25.0, force=True, notify=lambda _: None))
        return run_loop(clf, src, LoopOptions(max_frames=n), sinks)


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
) -> dict[str, Any]:
    """Measure the headless webcam loop over `video_path` against inference only, on one session (the
    loop's own settings: `live_threads()` intra-op threads unless `threads`, no spinning). The two are
    interleaved over `rounds` rounds of about `frames / rounds` frames each, so that a shared machine's
    drift hits both alike; each rate is frames over seconds summed over the rounds."""
    threads = threads or live_threads()
    clf = Classifier(model_path, device=device, threads=threads, spinning=False)
    video = Path(video_path)
    x = preprocess(_first_frame(video), clf.spec)
    clf.warmup()
    for _ in range(warmup):
        clf.logits(x)
    per_round = max(1, frames // rounds)
    bare, loops, drawn = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        _loop(clf, video, min(per_round, 30), False, Path(tmp))  # warms the decoder and the file cache
        for _ in range(rounds):
            loops.append(_loop(clf, video, per_round, False, Path(tmp)))
            bare.append(inference_only(clf, x, loops[-1].classified))
            if save:
                drawn.append(_loop(clf, video, per_round, True, Path(tmp)))
    n = sum(b["frames"] for b in bare)
    inference_fps = n / sum(b["seconds"] for b in bare)
    loop = _merge(loops)
    result: dict[str, Any] = {
        "model": Path(model_path).name,
        "video": video.name,
        "input_size": list(clf.spec.size),
        "provider": clf.provider,
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
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    args = parser.parse_args()
    result = bench_loop(args.model, args.video, args.frames, args.device, args.threads, args.save)
    print(_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
