"""Events through a real broker from N sources, and the CPU publishing adds per event (issue 32):

    python -m benchmarks.mqtt [--sources 1 4 16] [--events 4000] [--qos 1 0]

One `MqttSink` (rate `frame`, its spool in a temporary folder) gets the loop's events for N sources as fast as
the loop can give them; Debian's mosquitto (tests/mqtt_broker.py) on a loopback port carries them to
`mosquitto_sub` in another process, which exits once it has them all. Reported per N: events per second
delivered end to end, the CPU of this process per event (the loop's call, the sender thread, paho's thread:
everything publishing adds), the loop thread's own time per call (p50 / p95), the broker's CPU per event, and,
for scale, the same events written by the JSONL sink. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mqtt_broker import Mosquitto  # noqa: E402

from mgc_edge.runtime.sinks.jsonl import JsonlSink  # noqa: E402
from mgc_edge.runtime.sinks.mqtt.config import publish_options  # noqa: E402
from mgc_edge.runtime.sinks.mqtt.sink import MqttSink  # noqa: E402

NAMES = ["Folding arms", "Scratching head", "Touching nose", "Crossing fingers", "Rubbing hands"]


def event(source: int, frame: int) -> dict[str, Any]:
    """An event of the loop's shape and size (top-5 with names, as `frame_event` makes it)."""
    probs = [0.61, 0.17, 0.09, 0.07, 0.06]
    return {
        "source": {"index": source, "name": f"rtsp://cam{source}.lab/stream1"},
        "frame": frame,
        "t": round(frame / 25, 3),
        "top": [{"label": str(i + 1), "name": n, "prob": p} for i, (n, p) in enumerate(zip(NAMES, probs))],
        "smoothed": {"label": "1", "name": NAMES[0], "prob": 0.58},
        "state": "live",
        "fps": {"capture": 25.0, "inference": 24.9},
        "batch": 4,
        "latency_ms": {
            "capture": 0.1,
            "preprocess": 1.8,
            "inference": 9.6,
            "postprocess": 0.1,
            "draw": 0.0,
            "end_to_end": 38.2,
        },  # fmt: skip
    }


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(sources: int, count: int, qos: int, folder: Path) -> dict[str, float]:
    events = [event(i % sources, i // sources) for i in range(count)]
    with Mosquitto(folder / f"broker-{sources}-{qos}") as broker:
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "bench/+/+/events",
             "-q", str(qos), "-C", str(count)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)  # subscribed before the first event
        options = publish_options(
            broker.url(prefix="bench"),
            box="bench",
            qos=qos,
            rate="frame",
            spool=folder / f"spool-{sources}-{qos}",
        )
        sink = MqttSink(options, "bench.onnx", lambda: {"sources": []}, lambda _m: None)
        assert broker.proc is not None
        broker_cpu0 = proc_cpu(broker.proc.pid)
        calls = np.empty(count)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i, e in enumerate(events):
            t = time.perf_counter()
            sink.frame(None, e)  # type: ignore[arg-type]
            calls[i] = time.perf_counter() - t
        sub.wait(120)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        broker_cpu = proc_cpu(broker.proc.pid) - broker_cpu0
        sink.close()
    jsonl = JsonlSink(folder / f"bench-{sources}-{qos}.jsonl")
    cpu_j = time.process_time()
    for e in events:
        jsonl.frame(None, e)  # type: ignore[arg-type]
    cpu_j = time.process_time() - cpu_j
    jsonl.close()
    return {
        "events_per_s": count / wall,
        "cpu_us": cpu / count * 1e6,
        "call_p50_us": float(np.percentile(calls, 50)) * 1e6,
        "call_p95_us": float(np.percentile(calls, 95)) * 1e6,
        "broker_us": broker_cpu / count * 1e6,
        "jsonl_us": cpu_j / count * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--qos", type=int, nargs="+", default=[1, 0])
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("| QoS | sources | events/s end to end | CPU per event (µs) | loop's call p50 / p95 (µs) "
          "| broker CPU per event (µs) | JSONL sink per event (µs) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="mgc-bench-mqtt-") as tmp:
        for qos in args.qos:
            for n in args.sources:
                r = one(n, args.events, qos, Path(tmp))
                print(
                    f"| {qos} | {n} | {r['events_per_s']:,.0f} | {r['cpu_us']:.0f} | "
                    f"{r['call_p50_us']:.0f} / {r['call_p95_us']:.0f} | {r['broker_us']:.0f} | {r['jsonl_us']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
