"""`annotate --publish`: each annotated video's summary (its summary.json entry, and with `--publish-segments`
its segment rows) on `PREFIX/BOX/annotate`, through the same spool as the live events. Connected before the first
video (a refused password stops the run before any work); the results are sent once annotate returns. Reads
only what annotate wrote (the result's `to_dict()` and its `.segments.csv`): no import of `recorded`."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mgc_edge.runtime.sinks.mqtt.config import PublishOptions
from mgc_edge.runtime.sinks.mqtt.publisher import Publisher

SENT = ("done", "failed")  # a video kept (up to date) was published by the run that made it
SEGMENTS_SUFFIX = ".segments.csv"


class AnnotationPublisher:
    """One broker connection for a run of annotate: `send(result)` spools a message per video and closes."""

    def __init__(self, options: PublishOptions, segments: bool, notify: Callable[[str], None]) -> None:
        self.options, self.segments, self.notify = options, segments, notify
        self.run = uuid.uuid4().hex[:12]
        self.publisher = Publisher(options, notify)
        self.publisher.start()

    @property
    def topic(self) -> str:
        return f"{self.options.broker.prefix}/{self.options.box}/annotate"

    def send(self, result: Any) -> None:
        """Every video annotate did (or failed) now, in order; then the spool is drained and the line said."""
        seq = 0
        try:
            for video in result.videos:
                if video.status not in SENT:
                    continue
                seq += 1
                body = {**video.to_dict(), "box": self.options.box, "run": self.run, "seq": seq}
                body["model"] = result.settings.get("model")
                if self.segments:
                    body["segment_rows"] = _segments(video.job.outputs)  # "segments" is their count
                self.publisher.send(self.topic, json.dumps(body, separators=(",", ":"), default=str))
        finally:
            self.publisher.close()
        c = self.publisher.counters()
        self.notify(
            f"MQTT: {c['published']} video summaries published to {c['broker']}, {c['spooled']} left in the "
            f"spool, {c['dropped']} dropped."
        )


def _segments(outputs: Any) -> list[dict[str, Any]]:
    """The rows of a video's .segments.csv, numbers as numbers."""
    path = next((Path(p) for p in outputs if str(p).endswith(SEGMENTS_SUFFIX)), None)
    if path is None or not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def start_publishing(options: PublishOptions | None, segments: bool, notify: Callable[[str], None]) -> Any:
    """The publisher of `annotate --publish` (connected now), or None without --publish."""
    return None if options is None else AnnotationPublisher(options, segments, notify)


def publish_result(publisher: AnnotationPublisher | None, result: Any) -> None:
    if publisher is not None:
        publisher.send(result)
