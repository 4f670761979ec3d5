"""How often the live loop's labels match a video's known labels: a `--jsonl` file against a `frame,label`
CSV (as `mgc-edge synth` writes for its demo video). Stdlib only.

    python -m mgc_edge.runtime.agreement OUT.jsonl demo.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from mgc_edge.errors import UserError


def read_labels(labels_csv: str | Path) -> dict[int, str]:
    """`frame,label` rows -> {frame: label}."""
    try:
        with open(labels_csv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise UserError(f"Labels file {labels_csv} does not exist.") from None
    if not rows or not {"frame", "label"} <= set(rows[0]):
        raise UserError(f"Labels file {labels_csv} needs the columns frame,label.")
    return {int(r["frame"]): str(r["label"]) for r in rows}


def agreement(jsonl_path: str | Path, labels_csv: str | Path, source: int | None = None) -> dict[str, Any]:
    """Fractions of the classified frames whose smoothed label, and whose per-frame top-1, equal the
    known label of that frame; frames without a known label are counted apart. A run over several sources
    needs `source`, the index of the one the labels belong to."""
    truth = read_labels(labels_csv)
    frames = smoothed = top1 = unknown = 0
    try:
        lines = Path(jsonl_path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"JSONL file {jsonl_path} does not exist.") from None
    events = [json.loads(line) for line in lines if line.strip()]
    events = [e for e in events if e.get("type") != "state"]  # the sources' state records are no frames
    indices = {e["source"]["index"] for e in events if "source" in e}
    if source is None and len(indices) > 1:
        raise UserError(
            f"{jsonl_path} holds {len(indices)} sources; say which one the labels belong to (--source N)."
        )
    for event in events:
        if source is not None and event.get("source", {}).get("index", 0) != source:
            continue
        label = truth.get(int(event["frame"]))
        if label is None:
            unknown += 1
            continue
        frames += 1
        smoothed += event["smoothed"]["label"] == label
        top1 += event["top"][0]["label"] == label
    return {
        "frames": frames,
        "smoothed": smoothed / frames if frames else 0.0,
        "top1": top1 / frames if frames else 0.0,
        "unknown_frames": unknown,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Agreement of a webcam --jsonl file with known frame labels."
    )
    parser.add_argument("jsonl")
    parser.add_argument("labels_csv")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--source", type=int, help="the source the labels belong to, in a run over several")
    args = parser.parse_args(argv)
    try:
        result = agreement(args.jsonl, args.labels_csv, args.source)
    except UserError as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"The smoothed label matched the video's labels on {100 * result['smoothed']:.1f} % of "
            f"{result['frames']} classified frames (per-frame top-1: {100 * result['top1']:.1f} %)."
        )


if __name__ == "__main__":
    main()
