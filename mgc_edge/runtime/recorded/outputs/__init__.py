"""The files `annotate` writes for each video, one module per format: `<name>` plus the module's `SUFFIX`.

Each module has `SUFFIX`, `REQUIRED` (a video is kept, not redone, only where every required file is as its
completion record says, record.py), `wanted(options)` and `write(path, annotation)` (to the staging name it is
given: recorder.py commits the video's files together), and
the reader the format needs (frames_csv and segments_csv read a kept video back, eaf reads truths and
settings). A new format is one module plus one line in `OUTPUTS` (tests/test_annotate.py adds one); the
order of `OUTPUTS` is the order files are written and listed in summary.json.
"""

from __future__ import annotations

from types import ModuleType

from mgc_edge.runtime.recorded.outputs import eaf, frames_csv, segments_csv, timeline_png
from mgc_edge.runtime.recorded.outputs.annotation import VideoAnnotation

__all__ = ["OUTPUTS", "VideoAnnotation"]


OUTPUTS: list[ModuleType] = [frames_csv, segments_csv, eaf, timeline_png]
