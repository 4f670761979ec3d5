"""docs/figures.json: every figure the README quotes, written by the runs that measure them.

`make demo` (scripts/demo_figures.py) writes the section `demo` (`demo_gpu` on CUDA); `make bench`
(benchmarks/run.py) writes `bench` (`bench_gpu`) from the result files in benchmarks/results/. Each section is
stamped with the commit, the date and the machine, and replaced whole, so that a figure never outlives the run
that measured it. scripts/readme_figures.py writes the README's figure blocks from this file.

    python -m benchmarks.figures [--gpu]    # the bench section from the committed result files
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mgc_edge.fileio import write_json

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures.json"
README_SCRIPT = ROOT / "scripts" / "readme_figures.py"
# What the recording runs write: a tree that differs only here is the commit's tree.
OUTPUTS = ("docs/figures.json", "README.md", "benchmarks/results/", "benchmarks/RESULTS.md")
# The engines of bench_infer the README's tables show, in this order.
CPU_ENGINES = ("torch_eager", "ort_fp32", "ort_int8")
GPU_ENGINES = ("ort_fp16", "ort_fp32", "ort_int8", "torch_eager", "ort_fp16_pageable", "ort_fp32_tf32")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit() -> dict[str, Any]:
    """The commit measured, and whether the tree had changes besides the recording runs' own outputs."""
    head = _git("rev-parse", "--short", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    changed = [line[3:] for line in status.splitlines() if not line[3:].startswith(OUTPUTS)]
    return {"commit": head, "uncommitted_changes": bool(changed)}


def stamp(
    machine: dict[str, Any] | None, date: str | None = None, measured: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Commit (`measured`, else the tree now), UTC date and machine (benchmarks.common.machine()) of a section."""
    when = date or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    m = machine or {}
    return {
        **(measured or commit()),
        "date": when,
        "machine": describe(machine),
        "cores": m.get("cores"),
        "gpu": m.get("gpu"),
        "load_average_at_start": m.get("load_average_at_start"),
    }


def load(path: Path = FIGURES) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def record(section: str, values: dict[str, Any], path: Path = FIGURES) -> Path:
    """Replace one section of the figures file (atomically; the other sections are kept)."""
    figures = load(path)
    figures[section] = values
    write_json(path, dict(sorted(figures.items())))
    return path


def update_readme() -> int:
    """Rewrite the README's figure blocks from the figures file; returns the script's exit code."""
    return subprocess.run([sys.executable, str(README_SCRIPT)], cwd=ROOT).returncode


def _read(folder: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pick(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def _engines(infer: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size, result in infer.items():
        if not size.isdigit():
            continue
        engines = result.get("engines", {})
        rows = {
            name: {
                "p50_ms": engines[name].get("p50_ms"),
                "b32_images_per_s": engines[name].get("b32_images_per_s"),
            }
            for name in names
            if name in engines
        }
        if rows:
            out[size] = rows
    return out


def bench_figures(folder: Path, gpu: bool, measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """The figures the README quotes, taken from the result files of `make bench` in `folder`; `measured`
    names the commit when it is not the tree now."""
    summary = _read(folder, "summary")
    infer, annotate, loop = _read(folder, "infer"), _read(folder, "annotate"), _read(folder, "loop")
    figures: dict[str, Any] = {
        "infer": _engines(infer, GPU_ENGINES if gpu else CPU_ENGINES),
        "annotate": _drop_none(
            {
                "model": annotate.get("model"),
                "frames": annotate.get("frames"),
                "annotate_fps": _pick(annotate, "annotate", "fps"),
                "webcam_fps": _pick(annotate, "webcam", "fps"),
                "annotate_over_webcam": annotate.get("annotate_over_webcam"),
            }
        ),
        "loop": _drop_none(
            {
                "model": loop.get("model"),
                "loop_fps": _pick(loop, "loop", "fps"),
                "inference_fps": _pick(loop, "inference", "fps"),
                "loop_over_inference": loop.get("loop_over_inference"),
            }
        ),
    }
    if gpu:
        train, demo = _read(folder, "train"), _read(folder, "demo")
        figures["train"] = {
            size: _drop_none(
                {
                    "batch": r.get("batch"),
                    "memory_images_per_s": _pick(r, "images_per_s", "memory"),
                    "cached_images_per_s": _pick(r, "images_per_s", "cached"),
                    "cached_over_compute": r.get("cached_over_compute"),
                }
            )
            for size, r in train.items()
            if size.isdigit()
        }
        figures["streams_keep_up_25fps"] = summary.get("streams_keep_up_25fps")
        figures["demo_seconds"] = demo.get("demo_seconds")
    else:
        footprint, pipeline, streams = (
            _read(folder, "footprint"),
            _read(folder, "pipeline"),
            _read(folder, "streams"),
        )
        figures["footprint"] = _drop_none(
            {k: footprint.get(k) for k in ("runtime_venv_mb", "train_venv_mb", "how")}
        )
        figures["pipeline"] = _drop_none(
            {
                "loop_over_bound": pipeline.get("loop_over_pipeline_bound"),
                "former_over_bound": pipeline.get("former_over_pipeline_bound"),
            }
        )
        figures["streams"] = _drop_none(
            {
                "sources": streams.get("sources"),
                "fps": streams.get("fps"),
                "frame_size": streams.get("frame_size"),
                "model": streams.get("model"),
                "one_process_p95_ms": _pick(streams, "one_process", "p95_ms"),
                "one_process_min_share": _pick(streams, "one_process", "min_share"),
                "separate_p95_ms": _pick(streams, "separate", "p95_ms"),
                "separate_min_share": _pick(streams, "separate", "min_share"),
            }
        )
    machine = next(
        (r["machine"] for r in (infer, annotate, loop) if isinstance(r.get("machine"), dict)), None
    )
    return {**stamp(machine, summary.get("date"), measured), **_drop_none(figures)}


def describe(machine: dict[str, Any] | None) -> str:
    """A machine in a few words: CPU, cores, GPU and the runtime's versions."""
    if not machine:
        return "unknown machine"
    gpu = machine.get("gpu") or "no GPU"
    return (
        f"{machine.get('cpu')}, {machine.get('cores')} cores, {gpu}; onnxruntime {machine.get('onnxruntime')}, "
        f"OpenCV {machine.get('opencv')}, torch {machine.get('torch')}"
    )


def record_bench(
    folder: Path,
    gpu: bool,
    measured: dict[str, Any] | None = None,
    path: Path = FIGURES,
    readme: Callable[[], int] = update_readme,
) -> None:
    """The bench section from the result files in `folder`, then the README's blocks. A figures file that
    cannot be read is said in one line: the benchmark's own results are written already."""
    try:
        record("bench_gpu" if gpu else "bench", bench_figures(folder, gpu, measured), path)
    except (OSError, ValueError) as exc:
        print(f"note: {path} not updated: {exc}", file=sys.stderr)
        return
    readme()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpu", action="store_true", help="from benchmarks/results/gpu/ (bench_gpu)")
    args = parser.parse_args()
    from benchmarks.common import results_dir

    folder = results_dir(args.gpu)
    # Stored results were measured on the tree of the commit that stored them, not necessarily this one.
    stored = _git("log", "-1", "--format=%h", "--", str(folder / "summary.json"))
    record_bench(folder, args.gpu, {"commit": stored, "uncommitted_changes": False} if stored else None)
    print(
        f"{FIGURES.relative_to(ROOT)}: {'bench_gpu' if args.gpu else 'bench'} recorded; README blocks written"
    )


if __name__ == "__main__":
    main()
