"""`<name>.segments.csv`: one row per segment (`segment,start_frame,end_frame,start_time,end_time,label,name,
mean_prob`, numbered from 1, times in seconds; a segment ends where the next one starts), and read back."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from mgc_edge.fileio import write_text
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.recorded.outputs.annotation import VideoAnnotation
from mgc_edge.runtime.recorded.segments import Segment

SUFFIX = ".segments.csv"
REQUIRED = True
COLUMNS = tuple("segment,start_frame,end_frame,start_time,end_time,label,name,mean_prob".split(","))


def wanted(options: AnnotateOptions) -> bool:
    return True


def segments_text(segments: Sequence[Segment], ids: Sequence[str], names: Sequence[str]) -> str:
    """segments.csv: one row per segment, numbered from 1, times in seconds."""
    lookup = dict(zip(ids, names))
    lines = [",".join(COLUMNS)]
    rows = []
    for i, s in enumerate(segments, start=1):
        rows.append(
            [i, s.start_frame, s.end_frame, f"{s.start_time:.3f}", f"{s.end_time:.3f}", s.label,
             lookup.get(s.label, s.label), f"{s.mean_prob:.4f}"]
        )  # fmt: skip
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return "\n".join(lines) + "\n" + buf.getvalue()


def write(path: Path, annotation: VideoAnnotation) -> None:
    write_text(path, segments_text(annotation.segments, annotation.ids, annotation.names))


def read(path: Path) -> list[Segment]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            Segment(int(r["start_frame"]), int(r["end_frame"]), float(r["start_time"]), float(r["end_time"]),
                    r["label"], float(r["mean_prob"]))
            for r in csv.DictReader(fh)
        ]  # fmt: skip
