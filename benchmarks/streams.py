"""Several real-time cameras into one `webcam` (one batch per tick), beside one `webcam` process per camera.

    python -m benchmarks.streams [--sources 4] [--size 64] [--device cpu] [--seconds 8]
    python -m benchmarks.streams --device cuda --size 96 --sweep 8,16,32,48,64,96,128   # how many keep up

N loopback MJPEG cameras at 25 fps (benchmarks/mjpeg_server.py in its own process, 640x360 frames of the synthetic
demo video) feed (1) one `mgc-edge webcam -s URL1 ... -s URLN --display off --jsonl` and (2) N `mgc-edge webcam`
processes of one camera each, started together (what a user without several sources per process would run). Each
runs `--seconds` once its sources are open, then gets Ctrl-C (SIGINT) and ends with its summary. Per camera, from
its JSONL lines after the first second: the share of its frames that were classified, the rate it was captured
at, and end-to-end latency p50 / p95 (frame decoded to frame classified, as the loop measures it). The share
counts a camera's frames from the clock as well as from the capture numbers and takes the larger count, so a
capture thread that fell behind cannot hide it. A camera keeps up when at least 90 % of its frames are classified.

`--sweep` runs only the one-process case for each count, stopping after the first count that does not keep up,
and reports the largest that does. The model is alexnet_bn at `--size` (64: the digits-sized model of the
two-core target; 96: the demo's), its weights barely trained (only speed matters here), made and exported here
(needs the [train] extra) unless `--model` names one.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import save_json

FPS = 25.0  # every camera's frame rate
KEEP_UP = 0.9  # the share of a camera's frames that counts as keeping up
WARMUP_S = 1.0  # each camera's first second is left out of its figures (sessions and buffers settle)


def make_model(work: Path, size: int, data: Path | None = None) -> Path:
    """alexnet_bn at `size`x`size`, one short training pass on synthetic data, exported to fp32 ONNX (no gate:
    only its speed is measured)."""
    from benchmarks.bench_infer import InferBench, make_checkpoint
    from mgc_edge.export.onnx_export import ExportOptions, export_run

    if data is None:
        data = synthetic(work).image_dir
    run = make_checkpoint(
        data, work / f"run{size}", InferBench(size=size, train_batches=2), "cpu", work / "cache"
    )
    out = work / f"alexnet_bn_{size}.onnx"
    export_run(run, ExportOptions(precisions=("fp32",), out=out, force=True, verify=False))
    return out


def synthetic(work: Path) -> Any:
    from mgc_edge.data.synth import SynthConfig, make_dataset

    return make_dataset(work / "data", SynthConfig(scale=0.012, seed=0, video_seconds=6.0))


class Cameras:
    """benchmarks/mjpeg_server.py in its own process: `url(i)` is camera i."""

    def __init__(self, video: Path, fps: float, size: str) -> None:
        command = [
            sys.executable,
            "-m",
            "benchmarks.mjpeg_server",
            str(video),
            "--fps",
            str(fps),
            "--size",
            size,
        ]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            self.close()
            raise SystemExit(f"the MJPEG cameras did not start: {line!r}")
        self.port = int(line.split()[1])

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/cam/{i}.mjpg"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


class Webcam:
    """`mgc-edge webcam` over some cameras in a child process, headless, writing JSONL."""

    def __init__(self, model: Path, urls: list[str], jsonl: Path, device: str) -> None:
        command = [sys.executable, "-m", "mgc_edge", "webcam", str(model), "--display", "off"]
        command += [arg for url in urls for arg in ("-s", url)]
        command += ["--jsonl", str(jsonl), "--device", device, "--timeout", "30", "--force"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.jsonl, self.sources = jsonl, len(urls)
        self.proc = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self.lines: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        opened = 0
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("Source"):
                opened += 1
                if opened == self.sources:
                    self.started.set()
        self.started.set()  # ended early: whoever waits sees it in the output

    def stop(self) -> str:
        """SIGTERM, which webcam takes as Ctrl-C: the summary is printed and the JSONL closed. Its whole output.
        Not SIGINT: a child of a background job inherits SIGINT ignored, and then never stops."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.1)
        return "".join(self.lines)


def camera_figures(events: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    """One camera's share of frames classified, capture rate and latency, from its JSONL lines after the first
    second."""
    if not events:
        return {"classified": 0, "share": 0.0, "capture_fps": 0.0, "p50_ms": None, "p95_ms": None}
    kept = [e for e in events if e["t"] >= events[0]["t"] + WARMUP_S] or events
    first, last = kept[0], kept[-1]
    by_number = last["frame"] - first["frame"] + 1
    by_clock = round((last["t"] - first["t"]) * fps) + 1
    latency = np.array([e["latency_ms"]["end_to_end"] for e in kept])
    seconds = last["t"] - first["t"]
    return {
        "classified": len(kept),
        "frames": max(by_number, by_clock),
        "share": len(kept) / max(by_number, by_clock),
        "capture_fps": (last["frame"] - first["frame"]) / seconds if seconds > 0 else 0.0,
        "p50_ms": float(np.percentile(latency, 50)),
        "p95_ms": float(np.percentile(latency, 95)),
        "mean_batch": float(np.mean([e.get("batch", 1) for e in kept])),
    }


def _events(path: Path) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            event = json.loads(line)
            out.setdefault(event["source"]["index"], []).append(event)
    return out


def _run(processes: list[Webcam], seconds: float) -> list[str]:
    for webcam in processes:
        if not webcam.started.wait(120):
            raise SystemExit("webcam did not open its sources:\n" + "".join(webcam.lines))
    time.sleep(seconds + WARMUP_S)
    return [webcam.stop() for webcam in processes]


def _summary(cameras: list[dict[str, Any]], outputs: list[str]) -> dict[str, Any]:
    shares = [c["share"] for c in cameras]
    p95 = [c["p95_ms"] for c in cameras if c["p95_ms"] is not None]
    return {
        "cameras": cameras,
        "min_share": min(shares) if shares else 0.0,
        "mean_share": float(np.mean(shares)) if shares else 0.0,
        "p95_ms": max(p95) if p95 else None,
        "kept_up": bool(shares) and min(shares) >= KEEP_UP,
        "threads_line": next(
            (ln.strip() for out in outputs for ln in out.splitlines() if "threads" in ln), ""
        ),
    }


def one_process(
    model: Path, cameras: Cameras, n: int, seconds: float, device: str, work: Path
) -> dict[str, Any]:
    """All n cameras in one webcam."""
    webcam = Webcam(model, [cameras.url(i) for i in range(n)], work / f"one-{n}.jsonl", device)
    output = _run([webcam], seconds)[0]
    events = _events(webcam.jsonl)
    figures = [camera_figures(events.get(i, []), FPS) for i in range(n)]
    return {**_summary(figures, [output]), "summary": output.strip().splitlines()[-2:]}


def separate(
    model: Path, cameras: Cameras, n: int, seconds: float, device: str, work: Path
) -> dict[str, Any]:
    """One webcam per camera, all started together."""
    webcams = [Webcam(model, [cameras.url(i)], work / f"sep-{i}.jsonl", device) for i in range(n)]
    outputs = _run(webcams, seconds)
    figures = [camera_figures(_events(w.jsonl).get(0, []), FPS) for w in webcams]
    return _summary(figures, outputs)


def bench_streams(
    model: Path,
    video: Path,
    n: int = 4,
    seconds: float = 8.0,
    device: str = "cpu",
    frame_size: str = "640x360",
    compare: bool = True,
) -> dict[str, Any]:
    """n cameras at 25 fps into one webcam, and (with `compare`) into n separate webcams."""
    from mgc_edge.runtime.host import usable_cores

    cameras = Cameras(video, FPS, frame_size)
    try:
        with tempfile.TemporaryDirectory(prefix="mgc-streams-") as tmp:
            result: dict[str, Any] = {
                "model": model.name,
                "sources": n,
                "fps": FPS,
                "frame_size": frame_size,
                "device": device,
                "cores": usable_cores(),
                "seconds": seconds,
                "one_process": one_process(model, cameras, n, seconds, device, Path(tmp)),
            }
            if compare:
                result["separate"] = separate(model, cameras, n, seconds, device, Path(tmp))
    finally:
        cameras.close()
    return result


def sweep(
    model: Path, video: Path, counts: list[int], seconds: float, device: str, frame_size: str
) -> dict[str, Any]:
    """One webcam over more and more cameras until one count does not keep up."""
    runs = []
    cameras = Cameras(video, FPS, frame_size)
    try:
        with tempfile.TemporaryDirectory(prefix="mgc-sweep-") as tmp:
            for n in counts:
                run = one_process(model, cameras, n, seconds, device, Path(tmp))
                runs.append({"sources": n, **{k: v for k, v in run.items() if k != "cameras"}})
                print(_row(n, run), flush=True)
                if not run["kept_up"]:
                    break
    finally:
        cameras.close()
    kept = [r["sources"] for r in runs if r["kept_up"]]
    return {
        "model": model.name,
        "device": device,
        "frame_size": frame_size,
        "fps": FPS,
        "runs": runs,
        "keeps_up_with": max(kept) if kept else 0,
    }


def _row(n: int, run: dict[str, Any]) -> str:
    p95 = f"{run['p95_ms']:.1f} ms" if run["p95_ms"] is not None else "-"
    return (
        f"{n:4d} cameras: min share {100 * run['min_share']:5.1f} %, mean {100 * run['mean_share']:5.1f} %, "
        f"p95 {p95}{'' if run['kept_up'] else '  <- falls behind'}"
    )


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['sources']} cameras at {result['fps']:g} fps ({result['frame_size']} MJPEG on loopback), "
        f"{result['model']} on {result['device']}, {result['cores']} cores, {result['seconds']:g} s measured",
        "| run | camera | classified | share | capture fps | e2e p50 ms | e2e p95 ms | mean batch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, label in (("one_process", "one webcam, batched"), ("separate", "one webcam per camera")):
        if key not in result:
            continue
        for i, c in enumerate(result[key]["cameras"]):
            lines.append(
                f"| {label} | {i} | {c['classified']} | {100 * c['share']:.1f} % | {c['capture_fps']:.1f} | "
                f"{c['p50_ms'] or 0:.1f} | {c['p95_ms'] or 0:.1f} | {c.get('mean_batch', 1):.2f} |"
            )
    for key, label in (("one_process", "one webcam"), ("separate", "separate webcams")):
        if key in result:
            r = result[key]
            lines.append(
                f"\n{label}: min share {100 * r['min_share']:.1f} %, worst p95 {r['p95_ms'] or 0:.1f} ms; "
                f"{r['threads_line']}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument(
        "--model", type=Path, help="an exported .onnx (default: alexnet_bn at --size, made here)"
    )
    parser.add_argument("--size", type=int, default=64, help="input size of the model made here")
    parser.add_argument("--device", default="cpu", help="webcam's --device: cpu, cuda, ...")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--frame-size", default="640x360", help="WxH of the cameras' frames")
    parser.add_argument("--sweep", help="comma-separated camera counts, one webcam each, e.g. 8,16,32,64")
    parser.add_argument(
        "--no-separate", action="store_true", help="skip the one-webcam-per-camera comparison"
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mgc-streams-model-") as tmp:
        work = Path(tmp)
        data = synthetic(work)
        model = args.model or make_model(work, args.size, data.image_dir)
        if args.sweep:
            counts = [int(v) for v in args.sweep.split(",")]
            result = sweep(model, data.video, counts, args.seconds, args.device, args.frame_size)
            runs = result["runs"]
            most = " (the most tried)" if runs and runs[-1]["kept_up"] else ""
            print(
                f"{result['model']} on {args.device} keeps up with {result['keeps_up_with']}{most} cameras at "
                f"25 fps (at least {100 * KEEP_UP:.0f} % of each camera's frames classified)"
            )
        else:
            result = bench_streams(
                model,
                data.video,
                args.sources,
                args.seconds,
                args.device,
                args.frame_size,
                not args.no_separate,
            )
            print(table(result))
    if args.json:
        save_json(args.json, result)


if __name__ == "__main__":
    main()
