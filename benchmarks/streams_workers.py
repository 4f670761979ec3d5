"""Many cameras into one `webcam` loop: capture in threads of the main process against capture in worker
processes (`--capture processes`, runtime/capture/), side by side, sweeping the number of cameras.

    python -m benchmarks.streams_workers [--sweep 8,16,24,32] [--seconds 6] [--frame-size 640x360] [--record]

N loopback MJPEG cameras at 25 fps (benchmarks/mjpeg_server.py: pre-encoded JPEGs, one process) feed the loop in
this process, with a simulated model (zero logits, no time: the loop's own cost is what is measured) whose input
is 64x64 (the two-core target's model). After one second of warm-up, over `--seconds`:
- per camera, the share of its 25 fps classified (a camera keeps up at >= 99 %), end-to-end p95;
- `main_ms_per_frame`: CPU of this process per classified frame (with threads it includes the decoding; with
  processes the workers' CPU is counted apart, `worker_ms_per_frame`);
- the decode bound, cores / ((decode + preprocess + inference CPU per frame) x 25), decode and preprocess timed
  here on the same JPEGs, and the largest count that kept up over it.
A sweep stops, per mode, after the first count that does not keep up. `--record` writes
benchmarks/results/streams_workers.json, the `streams_*` keys of summary.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import RESULTS_DIR, append_section, machine, machine_line, read_result, save_json
from benchmarks.streams import Cameras
from mgc_edge.config import PreprocessSpec
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime import host
from mgc_edge.runtime.capture.choose import worker_count
from mgc_edge.runtime.capture.pool import CapturePool, source_options
from mgc_edge.runtime.live.loop import LoopOptions, run_loop
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sinks.base import BaseSink, StopRequested
from mgc_edge.runtime.sources import open_sources
from mgc_edge.runtime.sources.base import SourceOptions

FPS = 25.0
KEEP_UP = 0.99
WARMUP_S = 1.0


class Window(BaseSink):
    """Counts what was classified per camera between the warm-up and the end, and this process's CPU (and the
    workers') over that window; stops the loop at the end."""

    wants_image = False

    def __init__(self, n: int, seconds: float, pool: CapturePool | None) -> None:
        self.n, self.seconds, self.pool = n, seconds, pool
        self.start = time.monotonic()
        self.counts = np.zeros(n, int)
        self.e2e: list[float] = []
        self.cpu0 = self.wcpu0 = 0.0
        self.cpu = self.wcpu = 0.0
        self.opened = False

    def frame(self, annotated_bgr: Any, event: dict[str, Any]) -> None:
        now = time.monotonic() - self.start
        if now < WARMUP_S:
            return
        if not self.opened:
            self.opened, self.t0 = True, time.monotonic()
            self.cpu0 = time.process_time()
            self.wcpu0 = self.pool.cpu_time() if self.pool else 0.0
            return
        self.counts[event["source"]["index"]] += 1
        self.e2e.append(event["latency_ms"]["end_to_end"])
        if now >= WARMUP_S + self.seconds:
            self.window = time.monotonic() - self.t0
            self.cpu = time.process_time() - self.cpu0
            self.wcpu = (self.pool.cpu_time() if self.pool else 0.0) - self.wcpu0
            raise StopRequested

    def state(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def simulated(model: Path) -> Classifier:
    clf = Classifier(model, device="cpu", threads=1)
    clf.logits = lambda x: np.zeros((x.shape[0], clf.num_classes), np.float32)  # type: ignore[method-assign]
    return clf


def one_run(clf: Classifier, urls: list[str], mode: str, seconds: float, workers: int) -> dict[str, Any]:
    options = SourceOptions(open_timeout=30, read_timeout=30)
    pool = None
    if mode == "processes":
        pool = CapturePool(urls, source_options(urls, options), clf.spec, workers)
        sources = pool.open(timeout=60)
    else:
        sources = open_sources(urls, options)
    window = Window(len(urls), seconds, pool)
    try:
        run_loop(clf, sources, LoopOptions(smooth="ema:0.3"), [window])
    finally:
        for s in sources:
            s.close()
    shares = window.counts / (FPS * window.window)
    classified = int(window.counts.sum())
    return {
        "mode": mode,
        "cameras": len(urls),
        "workers": len(pool.procs) if pool else 0,
        "min_share": round(float(shares.min()), 4),
        "mean_share": round(float(shares.mean()), 4),
        "keeps_up": bool(shares.min() >= KEEP_UP),
        "p95_ms": round(float(np.percentile(window.e2e, 95)), 2) if window.e2e else None,
        "main_ms_per_frame": round(window.cpu / max(classified, 1) * 1000, 4),
        "worker_ms_per_frame": round(window.wcpu / max(classified, 1) * 1000, 4),
        "main_cores": round(window.cpu / window.window, 2),
        "worker_cores": round(window.wcpu / window.window, 2),
        "restarts": pool.restarts if pool else 0,
    }


def frame_costs(video: Path, size_wh: tuple[int, int], spec: PreprocessSpec) -> dict[str, float]:
    """CPU ms to decode one of the cameras' JPEGs and to preprocess it, one thread."""
    from benchmarks.mjpeg_server import encode_frames

    jpegs = encode_frames(video, size_wh, count=50)
    cv2.setNumThreads(1)
    images = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    start = time.process_time()
    for _ in range(2):
        for j in jpegs:
            cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)
    decode = (time.process_time() - start) / (2 * len(jpegs)) * 1000
    start = time.process_time()
    for image in images:
        preprocess(image, spec)
    prep = (time.process_time() - start) / len(images) * 1000
    cv2.setNumThreads(-1)
    return {"decode_ms": round(decode, 3), "preprocess_ms": round(prep, 3)}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {host.usable_cores()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sweep", default="8,16,24,32", help="comma-separated camera counts")
    parser.add_argument("--modes", default="threads,processes")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--frame-size", default="640x360")
    parser.add_argument("--workers", type=int, default=0, help="worker processes; 0 = by the cores")
    parser.add_argument("--video", type=Path, help="the cameras' video (default: a synthetic one made here)")
    parser.add_argument(
        "--record", action="store_true", help="results/streams_workers.json, summary, RESULTS.md"
    )
    args = parser.parse_args()
    w, h = (int(v) for v in args.frame_size.lower().split("x"))
    counts = [int(c) for c in args.sweep.split(",")]
    with tempfile.TemporaryDirectory(prefix="mgc-streams-workers-") as tmp:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from onnx_helpers import tiny_onnx

        model = tiny_onnx(Path(tmp) / "sim.onnx", size=(64, 64))
        video = args.video or _video(Path(tmp) / "cams.mp4", (w, h))
        clf = simulated(model)
        costs = frame_costs(video, (w, h), clf.spec)
        per_frame = costs["decode_ms"] + costs["preprocess_ms"]  # inference: simulated, no time
        cores = host.usable_cores()
        bound = cores / (per_frame / 1000 * FPS)
        before = load()
        cams = Cameras(video, FPS, f"{w}x{h}")
        runs: list[dict[str, Any]] = []
        try:
            for mode in args.modes.split(","):
                for n in counts:
                    urls = [cams.url(i) for i in range(n)]
                    run = one_run(clf, urls, mode, args.seconds, worker_count(args.workers, n))
                    runs.append(run)
                    print(_row(run), flush=True)
                    if not run["keeps_up"]:
                        break
        finally:
            cams.close()
    after = load()
    result = _result(runs, costs, bound, cores, f"{w}x{h}", before, after)
    print(table(result))
    if args.record:
        _record(result)


def _video(path: Path, size_wh: tuple[int, int]) -> Path:
    """A moving synthetic scene (JPEGs of real-looking detail cost more to decode than flat colour)."""
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (size_wh[1] // 8, size_wh[0] // 8, 3), dtype=np.uint8), size_wh)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size_wh)
    for k in range(50):
        frame = np.roll(base, 4 * k, axis=1)
        cv2.putText(frame, f"{k}", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(frame)
    writer.release()
    return path


def _result(
    runs: list[dict[str, Any]],
    costs: dict[str, float],
    bound: float,
    cores: int,
    size: str,
    before: str,
    after: str,
) -> dict[str, Any]:
    def best(mode: str) -> int:
        return max((r["cameras"] for r in runs if r["mode"] == mode and r["keeps_up"]), default=0)

    proc = [r for r in runs if r["mode"] == "processes" and r["keeps_up"]]
    main_ms = min((r["main_ms_per_frame"] for r in proc), default=None)
    return {
        "frame_size": size,
        "runs": runs,
        "costs": {**costs, "inference_ms": 0.0},
        "decode_bound": round(bound, 1),
        "keep_up": {"threads": best("threads"), "processes": best("processes")},
        "streams_keep_up_25fps_360p": best("processes") if size == "640x360" else None,
        "streams_over_decode_bound": round(best("processes") / bound, 3) if bound else None,
        "streams_main_ms_per_frame": main_ms,
        "load_before": before,
        "load_after": after,
        "cores": cores,
    }


def _row(r: dict[str, Any]) -> str:
    return (
        f"| {r['mode']} | {r['cameras']} | {r['workers'] or '-'} | {r['min_share']:.3f} | {r['p95_ms']} | "
        f"{r['main_ms_per_frame']:.3f} | {r['worker_ms_per_frame']:.3f} | {r['main_cores']} | {r['worker_cores']} |"
    )


def table(result: dict[str, Any]) -> str:
    head = (
        "| capture | cameras | workers | min share | p95 ms | main ms/frame | workers ms/frame | main cores | "
        "worker cores |\n|---|---|---|---|---|---|---|---|---|"
    )
    c = result["costs"]
    return "\n".join(
        [
            f"{result['frame_size']} MJPEG at 25 fps, simulated model (64x64 input):",
            head,
            *[_row(r) for r in result["runs"]],
            "",
            f"Per frame: decode {c['decode_ms']} ms, preprocess {c['preprocess_ms']} ms (one thread); decode bound "
            f"{result['decode_bound']} cameras on {result['cores']} cores. Kept up (>= 99 %): threads "
            f"{result['keep_up']['threads']}, processes {result['keep_up']['processes']} "
            f"({result['streams_over_decode_bound']} of the bound). Machine: {result['load_before']} before, "
            f"{result['load_after']} after.",
        ]
    )


def _record(result: dict[str, Any]) -> None:
    info = machine()
    save_json(RESULTS_DIR / "streams_workers.json", {**result, "machine": info})
    summary = read_result("summary") or {}
    for key in ("streams_main_ms_per_frame", "streams_over_decode_bound", "streams_keep_up_25fps_360p"):
        if result.get(key) is not None:
            summary[key] = result[key]
    save_json(RESULTS_DIR / "summary.json", summary)
    append_section(
        f"Capture in worker processes (benchmarks/streams_workers.py) on {machine_line(info)}", table(result)
    )


if __name__ == "__main__":
    main()
