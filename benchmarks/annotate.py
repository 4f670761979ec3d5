"""`annotate` against `webcam` on the same recorded video and model, side by side in one run.

    python -m benchmarks.annotate MODEL.onnx [VIDEO.mp4] [--frames 600] [--device cpu] [--batch-size 32]
    python -m benchmarks.annotate MODEL.onnx --memory 120    # resident memory over a two-hour video

(1) webcam: what `mgc-edge webcam MODEL --source VIDEO --display off --jsonl OUT` does with a file: the live
loop (`run_loop`, decoding in its thread, batch 1, the loop's thread settings) writing JSONL; (2) annotate: the
library call behind `mgc-edge annotate MODEL VIDEO --force` (decoding and preprocessing threads, batches,
frames.csv, segments.csv, .eaf, summary.json), the same frames (`--end` there, `max_frames` here). Each side
has its own session, opened and warmed up before timing, as each command opens its own. The two alternate
over a few rounds so that a shared machine's drift hits both alike; each rate is frames over seconds summed
over the rounds. `annotate_over_webcam` is the target's ratio. torch-free, like the runtime it measures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from benchmarks.common import save_json
from mgc_edge.runtime.host import LIVE_SPINNING, live_threads
from mgc_edge.runtime.live.loop import LoopOptions, run_loop
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.recorded.annotate import annotate
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.sinks.jsonl import JsonlSink
from mgc_edge.runtime.sources.base import SourceOptions
from mgc_edge.runtime.sources.file import FileSource

# The demo's video (scripts/demo.sh): 90 s at 15 fps, a new person every 1.5 to 3 s.
DEMO_VIDEO_SECONDS = 90.0
DEMO_SEGMENT_SECONDS = (1.5, 3.0)


def demo_video(folder: Path) -> Path:
    """The demo's video, made by the same generator and seed as `make demo` (in `folder`)."""
    from mgc_edge.data.synth import SynthConfig
    from mgc_edge.data.synth.writer import make_video

    cfg = SynthConfig(
        difficulty="easy", seed=0, video_seconds=DEMO_VIDEO_SECONDS, segment_seconds=DEMO_SEGMENT_SECONDS
    )
    video, _ = make_video(folder / "demo.mp4", [str(i + 1) for i in range(32)], cfg)
    return video


def _webcam_round(clf: Classifier, video: Path, frames: int, tmp: Path) -> tuple[int, float]:
    with FileSource(video, SourceOptions()) as src:
        sinks = [JsonlSink(tmp / "webcam.jsonl", force=True)]
        start = time.perf_counter()
        summary = run_loop(clf, src, LoopOptions(max_frames=frames), sinks)
        return summary.classified, time.perf_counter() - start


def _annotate_round(clf: Classifier, video: Path, options: AnnotateOptions) -> tuple[int, float]:
    start = time.perf_counter()
    result = annotate(clf, [video], options)
    seconds = time.perf_counter() - start
    (v,) = result.videos
    if v.status != "done":
        raise RuntimeError(f"annotate did not annotate {video}: {v.note}")
    return v.frames, seconds


def bench_annotate(
    model_path: str | Path,
    video_path: str | Path,
    frames: int = 600,
    device: str = "cpu",
    batch_size: int = 32,
    rounds: int = 3,
) -> dict[str, Any]:
    """Frames/s of webcam and annotate over the first `frames` frames of the video (0 = all), interleaved
    over `rounds` rounds, on `device`; annotate's whole call is timed (threads, inference, every output).
    Both use one session with the settings both commands open it with (`live_threads()`, `LIVE_SPINNING`)."""
    video = Path(video_path)
    live = batch = Classifier(model_path, device=device, threads=live_threads(), spinning=LIVE_SPINNING)
    live.warmup()
    batch.warmup(batch_size)
    with FileSource(video, SourceOptions()) as src:
        fps, total = src.fps or 25.0, src.frame_count
    frames = min(frames, total) if frames and total else (frames or total)
    end = frames / fps if frames and frames < total else None
    webcam, annotated = [], []
    with tempfile.TemporaryDirectory(prefix="mgc-bench-annotate-") as tmp:
        options = AnnotateOptions(out=Path(tmp) / "out", batch_size=batch_size, end=end, force=True)
        _annotate_round(batch, video, options)  # warms the decoder, the file cache and the pools
        for _ in range(rounds):
            webcam.append(_webcam_round(live, video, frames, Path(tmp)))
            annotated.append(_annotate_round(batch, video, options))
    w_fps = sum(n for n, _ in webcam) / sum(s for _, s in webcam)
    a_fps = sum(n for n, _ in annotated) / sum(s for _, s in annotated)
    return {
        "model": Path(model_path).name,
        "video": video.name,
        "frames": frames,
        "input_size": list(batch.spec.size),
        "device": device,
        "provider": batch.provider,
        "batch_size": batch_size,
        "rounds": rounds,
        "webcam": {"fps": w_fps, "rounds": [n / s for n, s in webcam], "threads": live.threads},
        "annotate": {"fps": a_fps, "rounds": [n / s for n, s in annotated]},
        "annotate_over_webcam": a_fps / w_fps,
    }


def long_video(source: Path, minutes: float, path: Path) -> Path:
    """`source` played again and again into one video of `minutes` (streamed: one frame in memory)."""
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(round(minutes * 60 * fps)):
        ok, frame = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(source))
            ok, frame = cap.read()
        writer.write(frame)
    writer.release()
    cap.release()
    return path


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_memory(
    model_path: str | Path, video: Path, device: str = "cpu", batch_size: int = 32
) -> dict[str, Any]:
    """Resident memory (Linux VmRSS) while annotate runs over `video`, sampled against the frames done:
    flat means the decode queue, the runs and the tally do not grow with the video."""
    clf = Classifier(model_path, device=device, threads=live_threads(), spinning=LIVE_SPINNING)
    clf.warmup(batch_size)
    samples: list[tuple[int, float]] = []
    last = [0.0]

    def progress(done: int, total: int, _name: str) -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0:
            last[0] = now
            samples.append((done, _rss_mib()))

    before = _rss_mib()
    with tempfile.TemporaryDirectory(prefix="mgc-bench-memory-") as tmp:
        start = time.perf_counter()
        result = annotate(
            clf, [video], AnnotateOptions(out=Path(tmp), batch_size=batch_size, force=True), progress
        )
        seconds = time.perf_counter() - start
    (v,) = result.videos
    rss = [m for _, m in samples]
    tenth = max(1, len(rss) // 10)
    return {
        "model": Path(model_path).name,
        "frames": v.frames,
        "segments": v.segments,
        "seconds": seconds,
        "rss_before_mib": before,
        "rss_first_tenth_mib": max(rss[:tenth]) if rss else None,
        "rss_last_tenth_mib": max(rss[-tenth:]) if rss else None,
        "rss_peak_mib": max(rss) if rss else None,
        "samples": samples,
    }


def table(result: dict[str, Any]) -> str:
    """Markdown lines for RESULTS.md."""
    w, a = result["webcam"], result["annotate"]
    h, wd = result["input_size"]

    def rounds(r: dict[str, Any]) -> str:
        return ", ".join(f"{x:,.0f}" for x in r["rounds"])

    return "\n".join(
        [
            f"`{result['model']}` {h}x{wd} on {result['provider']}, the first {result['frames']} frames of "
            f"`{result['video']}` per round, {result['rounds']} interleaved rounds:",
            "",
            "| command | frames/s | rounds |",
            "| --- | --- | --- |",
            f"| webcam --jsonl (batch 1, {w['threads']} threads) | {w['fps']:,.1f} | {rounds(w)} |",
            f"| annotate (batch {result['batch_size']}, all outputs) | {a['fps']:,.1f} | {rounds(a)} |",
            "",
            f"annotate / webcam = **{result['annotate_over_webcam']:.2f}x**",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("video", nargs="?", help="default: the demo's video, made here")
    parser.add_argument("--frames", type=int, default=600, help="frames per round; 0 = the whole video")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", type=float, metavar="MINUTES", help="instead: memory over a long video")
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else demo_video(Path(tmp))
        if args.memory:
            video = long_video(video, args.memory, Path(tmp) / "long.mp4")
            result = bench_memory(args.model, video, args.device, args.batch_size)
            print({k: v for k, v in result.items() if k != "samples"})
        else:
            result = bench_annotate(args.model, video, args.frames, args.device, args.batch_size, args.rounds)
            print(table(result))
    if args.json:
        save_json(args.json, result)


if __name__ == "__main__":
    main()
