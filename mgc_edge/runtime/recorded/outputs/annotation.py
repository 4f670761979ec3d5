"""What every output format of a video is written from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mgc_edge.runtime.recorded.segments import Segment


class StreamedFile(Protocol):
    """A file written while the video is classified (frames_csv.FramesWriter), put in place by `finish`."""

    path: Path

    def finish(self, dest: Path | None = None) -> None: ...


@dataclass(frozen=True)
class VideoAnnotation:
    """What a video's files are made from once it is classified (or, for the files redrawn, read back)."""

    video: Path
    segments: Sequence[Segment]  # the smoothed label's runs, short ones merged, background left out
    per_frame: Sequence[Segment]  # the runs before merging (the timeline's thin row)
    truth: Sequence[Segment] | None
    span: tuple[float, float]  # seconds: the first classified frame to the end of the last
    ids: Sequence[str]
    names: Sequence[str]
    settings: Mapping[str, Any]
    frames: StreamedFile | None = None  # the frame rows streamed so far (None when read back)
    date: str | None = (
        None  # the .eaf's DATE (the video's modification time): identical runs, identical files
    )
    key: str | None = None  # what the .eaf's URN is derived from (video, model, settings)
