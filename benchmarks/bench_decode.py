"""Decoding a recorded video: FFmpeg's default decoder threads against one thread, at three frame sizes.

    python -m benchmarks.bench_decode MODEL.onnx VIDEO.mp4 [--rounds 3] [--json out.json]

What `sources.open_video` decides (`SMALL_FRAME`, `FEW_CORES`: up to 640x360 in one thread where cores are
few), measured on this machine: the video at its own size and enlarged to 640x360 and 1280x720, each (1) decoded
alone, `cap.read()` back to back, frames per second and process CPU per frame, with FFmpeg's default threads and
with one; (2) through annotate's decode pipeline (`VideoBatches`: decoding thread + preprocess threads, the
model's input size), opened by `open_video` against a plain `cv2.VideoCapture`. The variants alternate over the
rounds so that a shared machine's drift hits them alike; each rate is frames over seconds summed over the
rounds. torch-free.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from benchmarks.common import save_json
from benchmarks.loop import scaled_video
from mgc_edge.config import PreprocessSpec
from mgc_edge.runtime.host import usable_cores
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.recorded.decode import DecodeOptions, VideoBatches
from mgc_edge.runtime.sources.video import FEW_CORES, SMALL_FRAME, open_video


def _default(path: str) -> cv2.VideoCapture:
    return cv2.VideoCapture(path)


def _one_thread(path: str) -> cv2.VideoCapture:
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])


def _read_all(video: Path, opener: Callable[[str], Any]) -> tuple[int, float, float]:
    """Frames, wall seconds and process CPU seconds of decoding the whole video."""
    cap = opener(str(video))
    cap.read()  # the codec's set-up is not a frame's cost
    n, cpu, start = 0, time.process_time(), time.perf_counter()
    while cap.read()[0]:
        n += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    cap.release()
    return n, wall, cpu


def _pipeline(video: Path, spec: PreprocessSpec, opener: Callable[[str], Any]) -> tuple[int, float, float]:
    """Frames, wall seconds and process CPU seconds of annotate's decode pipeline over the whole video."""
    n, cpu, start = 0, time.process_time(), time.perf_counter()
    with VideoBatches([video], spec, DecodeOptions(batch_size=32), opener=opener) as batches:
        for item in batches:
            x = getattr(item, "x", None)
            n += 0 if x is None else len(x)
    return n, time.perf_counter() - start, time.process_time() - cpu


def _rates(runs: list[tuple[int, float, float]]) -> dict[str, float]:
    frames, wall, cpu = (sum(r[i] for r in runs) for i in range(3))
    return {"fps": frames / wall, "cpu_ms_per_frame": cpu / frames * 1000}


def bench_decode(spec: PreprocessSpec, video_path: str | Path, rounds: int = 3) -> dict[str, Any]:
    """Decode rates with FFmpeg's default threads and with one, alone and in annotate's pipeline (which
    preprocesses by `spec`), at the video's own size, 640x360 and 1280x720 (see the module's docstring)."""
    source = Path(video_path)
    sizes: dict[str, Any] = {}
    cap = cv2.VideoCapture(str(source))
    own = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    default_threads = cap.get(cv2.CAP_PROP_N_THREADS)
    cap.release()
    with tempfile.TemporaryDirectory() as tmp:
        videos = {f"{own[0]}x{own[1]}": source}
        for w, h in ((640, 360), (1280, 720)):
            videos[f"{w}x{h}"] = scaled_video(source, Path(tmp) / f"{w}x{h}.mp4", (w, h), frames=300)
        for name, video in videos.items():
            runs: dict[str, list[tuple[int, float, float]]] = {
                k: [] for k in ("default", "one", "p_plain", "p_open")
            }
            for _ in range(rounds):
                runs["default"].append(_read_all(video, _default))
                runs["one"].append(_read_all(video, _one_thread))
                runs["p_plain"].append(_pipeline(video, spec, _default))
                runs["p_open"].append(_pipeline(video, spec, open_video))
            probe = open_video(str(video))  # what it chooses on this machine (its size and cores)
            single = probe.get(cv2.CAP_PROP_N_THREADS) == 1
            probe.release()
            default, one = _rates(runs["default"]), _rates(runs["one"])
            plain, chosen = _rates(runs["p_plain"]), _rates(runs["p_open"])
            sizes[name] = {
                "one_thread_by_open_video": single,
                "decode_default_threads": default,
                "decode_one_thread": one,
                "one_over_default_fps": one["fps"] / default["fps"],
                "pipeline_plain": plain,
                "pipeline_open_video": chosen,
                "open_video_over_plain_fps": chosen["fps"] / plain["fps"],
            }
    return {
        "video": source.name,
        "own_size": f"{own[0]}x{own[1]}",
        "cores": usable_cores(),
        "ffmpeg_default_threads": default_threads,
        "small_frame_pixels": SMALL_FRAME,
        "few_cores": FEW_CORES,
        "rounds": rounds,
        "sizes": sizes,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['video']} on {result['cores']} cores (FFmpeg's default: "
        f"{result['ffmpeg_default_threads']:.0f} threads); frames/s and CPU ms a frame",
        "size        default threads    one thread        one/default  annotate's pipeline: plain -> open_video",
    ]
    for name, r in sorted(result["sizes"].items(), key=lambda kv: int(kv[0].split("x")[0])):
        d, o = r["decode_default_threads"], r["decode_one_thread"]
        p, c = r["pipeline_plain"], r["pipeline_open_video"]
        lines.append(
            f"{name:<11} {d['fps']:7.0f} {d['cpu_ms_per_frame']:6.3f}   {o['fps']:7.0f} {o['cpu_ms_per_frame']:6.3f}"
            f"   {r['one_over_default_fps']:6.2f}       {p['fps']:7.0f} -> {c['fps']:7.0f} "
            f"({r['open_video_over_plain_fps']:.2f}x, {'one thread' if r['one_thread_by_open_video'] else 'default'})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="an mgc-edge ONNX model (its input size and preprocessing)")
    parser.add_argument("video")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    args = parser.parse_args()
    result = bench_decode(Classifier(args.model, device="cpu").spec, args.video, args.rounds)
    print(table(result))
    if args.json:
        save_json(args.json, result)


if __name__ == "__main__":
    main()
