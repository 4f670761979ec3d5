"""What the live view keeps of each source: its newest frame and JPEG with the event each was drawn for, its
state and since when, its viewers; and one SSE message (`Event`). Standard library + numpy only."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from mgc_edge.runtime.sinks.web.http import json_bytes

MAX_VIEWER_ID = 32  # `?viewer=` longer than this, or not [A-Za-z0-9_-], counts as no id


class Event:
    """One SSE message, serialised once, on first need, by whichever viewer thread sends it first."""

    __slots__ = ("seq", "kind", "data", "_wire")

    def __init__(self, seq: int, kind: str, data: Mapping[str, Any]) -> None:
        self.seq, self.kind, self.data = seq, kind, data
        self._wire: bytes | None = None

    def wire(self) -> bytes:
        if self._wire is None:  # two threads may both serialise it once; harmless, and no lock needed
            head = f"id: {self.seq}\nevent: {self.kind}\ndata: ".encode()
            self._wire = head + json_bytes(self.data) + b"\n\n"
        return self._wire


class Shot(NamedTuple):
    """A JPEG of one source as a viewer gets it: its frame number within the source (-1: the server stops) and
    the frame event it was drawn for, so that a caption under it can say what the picture shows."""

    jpeg: bytes | None
    seq: int
    event: Event | None


class Picture:
    """One source's newest annotated frame and its JPEG (frames count from 1; 0 means none yet), the events
    they were drawn for, its newest state event and the wall-clock time that state began."""

    __slots__ = (
        "frame", "seq", "tried", "jpeg", "jpeg_seq", "viewers", "event", "jpeg_event", "state", "state_name",
        "since", "frame_at",
    )  # fmt: skip

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None
        self.seq = self.tried = self.jpeg_seq = self.viewers = 0
        self.jpeg: bytes | None = None
        self.event: Event | None = None  # the newest frame event: the event of `frame`
        self.jpeg_event: Event | None = None  # the event of `jpeg`
        self.state: Event | None = None  # the newest state event of this source
        self.state_name: str | None = None
        self.since: float | None = None  # time.time() when `state_name` began (first seen here)
        self.frame_at: float | None = None  # time.monotonic() of the newest frame

    def needs_jpeg(self) -> bool:
        return self.viewers > 0 and self.seq != self.tried

    def became(self, state: str | None) -> None:
        """Note the source's state; `since` moves only when it changes."""
        if state and state != self.state_name:
            self.state_name, self.since = state, time.time()

    def shot(self) -> Shot:
        return Shot(self.jpeg, self.jpeg_seq, self.jpeg_event)

    def entry(self, index: int, now: float) -> dict[str, Any]:
        """This source as the server sees it, for /api/status: its state, since when (epoch seconds) and how
        long ago its newest frame came (None before the first)."""
        age = None if self.frame_at is None else round(now - self.frame_at, 3)
        since = None if self.since is None else round(self.since, 3)
        return {
            "index": index,
            "state": self.state_name,
            "state_since": since,
            "last_frame_age_s": age,
            "viewers": self.viewers,
        }


def source_index(event: Mapping[str, Any]) -> int | None:
    """The index of the source an event belongs to; None for an event of the whole run."""
    source = event.get("source")
    return int(source["index"]) if isinstance(source, Mapping) and "index" in source else None


def viewer_id(text: str | None) -> str | None:
    """A client's `?viewer=` id as counted, or None (no id, or one that is too long or has odd characters)."""
    if (
        not text
        or len(text) > MAX_VIEWER_ID
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text)
    ):
        return None
    return text


def fill_since(loop: dict[str, Any], seen: list[dict[str, Any]]) -> None:
    """Give the loop's source entries a `state_since` where they have none: when this server saw their state
    begin (a view that started later sees a later time)."""
    entries = loop.get("sources") if isinstance(loop, dict) else None
    if not isinstance(entries, list):
        return
    since = {s["index"]: s["state_since"] for s in seen}
    loop["sources"] = [
        {**e, "state_since": since[e["index"]]}
        if isinstance(e, dict) and e.get("state_since") is None and e.get("index") in since
        else e
        for e in entries
    ]
