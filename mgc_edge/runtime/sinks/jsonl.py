"""One JSON object per classified frame, one per line (`--jsonl`), flushed as it goes; and one `state` record
({"type": "state", "event", "state", "message", "t", "time", "source"}) per event of a source's life: dropped,
reconnecting, back, failed, ended, stale, live. Frame lines have no "type"."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from mgc_edge.fileio import refuse_existing, temp_path
from mgc_edge.runtime.sinks.base import BaseSink, SinkContext, SinkOptions, state_record

# Made once: json.dumps(event, separators=...) builds an encoder at every call, which the loop pays per frame.
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


class JsonlSink(BaseSink):
    """One JSON object per classified frame (the loop's event), one per line, flushed as it goes, and a
    `state` record per event of a source's life."""

    wants_image = False

    def __init__(self, path: str | Path, force: bool = False) -> None:
        self.path = refuse_existing(path, force, "--jsonl")
        self.lines = 0
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(temp_path(self.path))
        self._file = self._stack.enter_context(open(self._tmp, "w", encoding="utf-8"))

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        self._file.write(_COMPACT(event) + "\n")
        self._file.flush()
        self.lines += 1

    def state(self, event: dict[str, Any]) -> None:
        """A source's event as a `state` record; the run's own end (no source) is in the summary, not here."""
        if self._file.closed or "source" not in event:
            return
        self._file.write(_COMPACT(state_record(event)) + "\n")
        self._file.flush()

    @property
    def outputs(self) -> Sequence[Path]:
        return [self.path]

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.close()
            os.replace(self._tmp, self.path)
        finally:
            self._stack.close()


def check(options: SinkOptions, count: int) -> None:
    if options.jsonl is not None:
        refuse_existing(options.jsonl, options.force, "--jsonl")


def build(context: SinkContext) -> BaseSink | None:
    """`--jsonl`: one file for every source (each line names its source)."""
    if context.options.jsonl is None:
        return None
    return JsonlSink(context.options.jsonl, force=context.options.force)
