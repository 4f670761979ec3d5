"""What every benchmark shares: the machine it ran on, timing helpers, the demo's input size, and where
results go (JSON under benchmarks/results/, a dated section appended to benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.fileio import write_json

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"
GPU_RESULTS_DIR = RESULTS_DIR / "gpu"  # the same files, measured on a GPU machine (the CPU's stay put)
RESULTS_MD = HERE / "RESULTS.md"
DEMO_SCRIPT = ROOT / "scripts" / "demo.sh"


def _demo_default(name: str) -> str | None:
    """The default of `NAME="${NAME:-value}"` in scripts/demo.sh, so the benchmark follows the demo."""
    try:
        m = re.search(rf'{name}="\$\{{{name}:-([^}}]+)\}}"', DEMO_SCRIPT.read_text(encoding="utf-8"))
    except OSError:
        return None
    return m.group(1) if m else None


def demo_size(default: int = 64) -> int:
    """The input size `make demo` trains at."""
    value = _demo_default("SIZE")
    return int(value) if value and value.isdigit() else default


def demo_resize(default: str = "stretch") -> str:
    """The resize policy `make demo` trains with (used at every benchmarked size)."""
    return _demo_default("RESIZE") or default


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector and int8 instruction sets that decide CPU inference speed (Linux only)."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return [f for f in wanted if f in have]
    return []


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, GPU and library versions: what a reader needs to compare runs."""
    import cv2
    import onnxruntime
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": cores(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
    }
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def machine_line(m: dict[str, Any]) -> str:
    gpu = m["gpu"] or "no GPU"
    mem = f", {m['memory_gib']} GiB" if "memory_gib" in m else ""
    flags = f", {' '.join(m['cpu_flags'])}" if m.get("cpu_flags") else ""
    return (
        f"{m['cpu']} ({m['cores']} cores{mem}{flags}), {gpu}; Python {m['python']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), torchvision {m.get('torchvision', '-')}, onnxruntime "
        f"{m['onnxruntime']}, OpenCV {m['opencv']}, numpy {m['numpy']}; load average at start "
        f"{m['load_average_at_start']}"
    )


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 in milliseconds."""
    p = np.percentile(np.asarray(seconds) * 1000, [50, 95, 99])
    return {"p50_ms": float(p[0]), "p95_ms": float(p[1]), "p99_ms": float(p[2])}


def time_calls(
    fn: Callable[[], object], warmup: int, iters: int, sync: Callable[[], None] = lambda: None
) -> list[float]:
    """Seconds of each of `iters` calls after `warmup` calls (synchronised when the device is asynchronous)."""
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - start)
    return out


QUIET_SHARE = 0.05  # of one core: below it, no thread of the process is spinning
QUIET_WINDOW_S = 0.02
QUIET_MAX_S = 1.0


def quiet_start(
    window_s: float = QUIET_WINDOW_S, share: float = QUIET_SHARE, max_s: float = QUIET_MAX_S
) -> float:
    """Wait until this process is idle: until a `window_s` sleep costs it under `share` of a core of CPU time
    (at most `max_s`); the seconds waited. Engines timed in turn in one process need it: the idle threads of
    the one that just ran (ONNX Runtime's spinning intra-op pool, OpenMP's) keep cores busy for a while after
    its last call, and would time the next engine against them."""
    start = time.perf_counter()
    while True:
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(window_s)
        busy = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
        waited = time.perf_counter() - start
        if busy < share or waited >= max_s:
            return waited


def results_dir(gpu: bool) -> Path:
    return GPU_RESULTS_DIR if gpu else RESULTS_DIR


def save_json(path: Path, data: dict[str, Any]) -> Path:
    """`data` as JSON at `path` (its folder made), atomically: a benchmark's --json or its result file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path


def write_result(name: str, data: dict[str, Any], folder: Path = RESULTS_DIR) -> Path:
    """<folder>/<name>.json, benchmarks/results/ by default (the latest run; RESULTS.md keeps the history)."""
    return save_json(folder / f"{name}.json", data)


def read_result(name: str, folder: Path = RESULTS_DIR) -> dict[str, Any] | None:
    try:
        return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def append_section(title: str, body: str) -> None:
    """Add a dated section at the end of RESULTS.md (old sections are never edited)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else "# Benchmark results\n"
    RESULTS_MD.write_text(
        text.rstrip("\n") + f"\n\n## {stamp}, {title}\n\n{body.strip()}\n", encoding="utf-8"
    )


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"
