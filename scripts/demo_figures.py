"""The figures of one `make demo` run, from the files it wrote, into docs/figures.json (then the README's blocks).

    python scripts/demo_figures.py DEMO --seconds 169 --steps synth=11,train=95,export_verify=40,runtime=23 \
        --device cpu --precision int8

scripts/demo.sh calls it at its end: the section `demo` (`demo_gpu` when the demo ran on CUDA) is replaced whole
with the run's test report, its exports' parity reports (ONNX Runtime, and the other runtimes the demo checked
the runtime's model in), the live loop's agreement with the video's known labels and annotate's summary, stamped
with the commit, date and machine (benchmarks/figures.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ and mgc_edge/ from the checkout

from benchmarks.figures import FIGURES, record, stamp, update_readme  # noqa: E402


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def parity(report: dict[str, Any]) -> dict[str, Any]:
    """What the README shows of a verify report."""
    keys = ("runtime", "runtime_version", "n_images", "agreement", "logits_max_abs", "probs_max_abs")
    return {
        **{k: report.get(k) for k in keys},
        "acc_model": report.get("acc_model"),
        "acc_checkpoint": report.get("acc_checkpoint"),
        "passed": report.get("passed"),
    }


def test_figures(report: dict[str, Any]) -> dict[str, Any]:
    test, base = report["test"], report["test"]["baseline"]
    return {
        "frames": test["n"],
        "clips": test.get("clip", {}).get("n_clips"),
        "classes": test.get("num_classes"),
        "top1": test["top1"],
        "top5": test.get("top5"),
        "balanced_accuracy": test.get("balanced_accuracy"),
        "macro_f1": test["macro_f1"],
        "clip_top1": test.get("clip", {}).get("top1"),
        "baseline_top1": base["top1"],
        "baseline_macro_f1": base.get("macro_f1"),
        "baseline_label": base.get("label"),
        "best_epoch": report.get("best_epoch"),
        "split_counts": report.get("split_counts"),
    }


def recipe(config: dict[str, Any]) -> dict[str, Any]:
    keys = ("arch", "epochs", "lr", "batch_size", "dropout", "balance")
    size = config.get("preprocess", {}).get("size")
    return {
        **{k: config.get(k) for k in keys},
        "size": size,
        "resize": config.get("preprocess", {}).get("resize"),
    }


def collect(
    demo: Path,
    seconds: float,
    steps: dict[str, int],
    device: str,
    precision: str,
    load_at_start: list[float] | None = None,
) -> dict[str, Any]:
    """Every figure of the demo in `demo`; a part that did not run (a failed gate) is left out. The load
    average is the one at the demo's start where given (the machine's now is the end's)."""
    from benchmarks.common import machine
    from mgc_edge.runtime.agreement import agreement

    run = demo / "run"
    out: dict[str, Any] = {
        **stamp({**machine(), **({"load_average_at_start": load_at_start} if load_at_start else {})}),
        "seconds": round(seconds),
        "steps": steps,
        "device": device,
        "runtime_precision": precision,
        "recipe": recipe(_read(run / "config.json") or {}),
        "test": test_figures(_read(run / "report.json") or {"test": {}}),
    }
    exports = {}
    for name in ("model", "model.fp16", "model.int8"):
        report = _read(run / f"{name}.verify.json")
        if report is not None:
            exports[report["precision"]] = parity(report)
    out["exports"] = exports
    runtimes = {}
    for path in sorted((demo / "portability").glob("*.json")):
        report = _read(path)
        if report is not None:
            runtimes[report["runtime"]] = parity(report)
    if runtimes:
        out["runtimes"] = {"precision": precision, **runtimes}
    if (demo / "webcam.jsonl").exists():
        live = agreement(demo / "webcam.jsonl", demo / "data" / "demo.csv")
        out["live"] = {k: live[k] for k in ("frames", "smoothed", "top1")}
    summary = _read(demo / "annotations" / "summary.json")
    if summary and summary.get("videos"):
        video, overall = summary["videos"][0], summary.get("overall") or {}
        out["annotate"] = {
            "frames": video["frames"],
            "seconds": video["seconds"],
            "frames_per_s": video["frames_per_s"],
            "segments": video["segments"],
            **{
                k: overall.get(k)
                for k in (
                    "frame_accuracy",
                    "top1_accuracy",
                    "frame_macro_f1",
                    "segments_true",
                    "segment_precision",
                    "segment_recall",
                    "segment_f1",
                )
                if k in overall
            },
        }
    examples = {
        "frames_csv": _head(demo / "annotations" / "demo.frames.csv", 3),
        "segments_csv": _head(demo / "annotations" / "demo.segments.csv", 4),
    }
    if all(examples.values()):
        out["examples"] = examples
    return out


def _head(path: Path, lines: int) -> list[str]:
    """The first lines of a text file (none when it does not exist)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.rstrip("\n") for _, line in zip(range(lines), fh)]
    except OSError:
        return []


def parse_steps(text: str) -> dict[str, int]:
    """`synth=11,train=95` -> {"synth": 11, "train": 95}."""
    pairs = [p.split("=", 1) for p in text.split(",") if "=" in p]
    return {k.strip(): int(v) for k, v in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("demo", type=Path, help="the demo's folder (DEMO in scripts/demo.sh)")
    parser.add_argument("--seconds", type=float, required=True, help="the demo's seconds end to end")
    parser.add_argument("--steps", default="", help="seconds per step: name=s,name=s")
    parser.add_argument("--device", default="cpu", help="where the demo ran: cpu or cuda")
    parser.add_argument("--precision", default="int8", help="the precision the runtime got")
    parser.add_argument("--load-at-start", default="", help="/proc/loadavg's first three fields at the start")
    args = parser.parse_args()
    if not (args.demo / "run" / "report.json").exists():
        parser.exit(
            2, f"error: {args.demo}/run/report.json does not exist: is {args.demo} a demo's folder?\n"
        )
    try:
        load = [float(x) for x in args.load_at_start.split()] or None
    except ValueError:
        load = None
    figures = collect(args.demo, args.seconds, parse_steps(args.steps), args.device, args.precision, load)
    section = "demo" if args.device == "cpu" else "demo_gpu"
    record(section, figures)
    code = update_readme()
    print(
        f"   figures: {section} in {FIGURES.relative_to(FIGURES.parents[1])}; README's figure blocks rewritten"
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
