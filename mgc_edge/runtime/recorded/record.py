"""The completion record of one annotated video, `<name>.mgc.json`, written last: what made its files (the
settings, the video's fingerprint, the model's sha256) and each file's sha256.

A video is up to date only where its record is complete and everything in it still holds: the same settings,
the same model, the same video (size, frame count, and the sha256 of its first and last MiB, so that another
video copied over it with its old times is seen), and every required file with the hash it was written with.
The hashes also say which files are ours and unchanged (`ownership.py`): anything else at an output path is
someone else's work. While a video's files are being replaced the record says so (`complete` false, with the
files' earlier hashes), so that a run killed between two renames leaves files that are still known as ours and
a video that is done again, never one called up to date.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mgc_edge import __version__
from mgc_edge.fileio import file_sha256, write_json

SUFFIX = ".mgc.json"
KIND = "mgc-edge annotate record"
EDGE_BYTES = 1 << 20  # the head and the tail of a video that its fingerprint hashes


def video_fingerprint(path: Path, frame_count: int) -> dict[str, Any] | None:
    """Size, the container's frame count and the sha256 of the first and last MiB; None if unreadable."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = hashlib.sha256(fh.read(EDGE_BYTES)).hexdigest()
            fh.seek(max(0, size - EDGE_BYTES))
            tail = hashlib.sha256(fh.read(EDGE_BYTES)).hexdigest()
    except OSError:
        return None
    return {"size": size, "frames": frame_count, "head_sha256": head, "tail_sha256": tail}


def model_identity(path: Path) -> dict[str, str]:
    return {"name": path.name, "sha256": file_sha256(path)}


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at `path`, or None where there is none or the file is not one of ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != KIND or not isinstance(data.get("outputs"), dict):
        return None
    return data


def write_record(
    path: Path,
    video: Path,
    fingerprint: Mapping[str, Any] | None,
    model: Mapping[str, str],
    settings: Mapping[str, Any],
    outputs: Mapping[str, str],
    complete: bool,
    extra: Mapping[str, Any] | None = None,
    previous: Mapping[str, str] | None = None,
) -> None:
    """Write the record atomically; `outputs` maps file names (beside the record) to their sha256,
    `previous` the hashes of the files being replaced (while `complete` is false)."""
    data: dict[str, Any] = {
        "kind": KIND,
        "version": __version__,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": complete,
        "video": {"path": str(video), **(fingerprint or {})},
        "model": dict(model),
        "settings": dict(settings),
        "outputs": dict(outputs),
        **(extra or {}),
    }
    if previous:
        data["previous"] = dict(previous)
    write_json(path, data)


def stale_reason(
    record: Mapping[str, Any] | None,
    fingerprint: Mapping[str, Any] | None,
    model: Mapping[str, str],
    settings: Mapping[str, Any],
    required: list[Path],
) -> str | None:
    """Why the video must be done again (a few words), or None when it is up to date."""
    if record is None:
        return "no completion record"
    if not record.get("complete"):
        return "its last run did not finish"
    video = {k: v for k, v in record.get("video", {}).items() if k != "path"}
    if fingerprint is None or video != dict(fingerprint):
        return "the video changed"
    if record.get("model", {}).get("sha256") != model["sha256"]:
        return "another model"
    if record.get("settings") != json.loads(json.dumps(dict(settings))):
        return "other settings"
    outputs = record["outputs"]
    for path in required:
        if outputs.get(path.name) is None or not path.is_file() or file_sha256(path) != outputs[path.name]:
            return f"{path.name} is missing or changed"
    return None


def known_hashes(record: Mapping[str, Any] | None, name: str) -> set[str]:
    """The hashes a file of this name had when annotate wrote it (the earlier ones too, mid-replacement)."""
    if record is None:
        return set()
    return {h for h in (record["outputs"].get(name), record.get("previous", {}).get(name)) if h}
