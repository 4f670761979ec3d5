"""`summary.json` of an annotate folder, merged per video: a run replaces the entries of the videos it did or
kept, keeps every other entry (a run over a subset, or one where every video failed, never erases earlier
results; a video that failed now keeps its earlier entry, with this run's note beside it), drops those whose
completion record is gone, and recomputes the overall scores over every scored video in the folder from the
counts each entry keeps. It names the tool version, the date, the truth and tier, and the IoU threshold."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mgc_edge import __version__
from mgc_edge.fileio import write_json
from mgc_edge.runtime.recorded import ownership, record
from mgc_edge.runtime.recorded.options import AnnotateInputError
from mgc_edge.runtime.recorded.segments import MATCH_IOU, Tally

NAME = "summary.json"
KIND = "mgc-edge annotate summary"
GOOD = ("done", "kept")


def read_summary(path: Path) -> dict[str, Any] | None:
    """The summary at `path` if it is ours (of this version, or a run before summaries said so)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        return None
    if data.get("kind", KIND) != KIND or "settings" not in data:
        return None
    return data


def check_summary(path: Path, force: bool, notify: Callable[[str], None]) -> None:
    """Before any work: a summary.json that annotate did not write is refused, or with `force` kept as .bak."""
    if not path.exists() or read_summary(path) is not None:
        return
    if not force:
        raise AnnotateInputError(
            f"{path} exists but is not an annotate summary; --force keeps it as {path.name}.bak and writes ours."
        )
    notify(f"Kept {path}, not an annotate summary, as {ownership.set_aside(path)}.")


def merge(
    path: Path,
    run: Sequence[Mapping[str, Any]],
    header: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Write the merged summary (see the module's docstring) and return its overall scores (None when no
    video in the folder is scored). `run` is this run's entries (VideoResult.to_dict), `header` its
    settings, counts, truth and tier."""
    old = read_summary(path) or {"videos": []}
    entries: dict[str, dict[str, Any]] = {e["name"]: dict(e) for e in old["videos"] if "name" in e}
    for e in run:
        name, earlier = e["name"], entries.get(e["name"])
        if e["status"] in GOOD or earlier is None or earlier.get("status") not in GOOD:
            new = dict(e)
            if e["status"] == "kept" and "tally" not in e and earlier and earlier.get("status") in GOOD:
                # scored before, not now: the files are the same, so are their scores
                new.update({k: earlier[k] for k in ("truth", "scores", "tally") if k in earlier})
            entries[name] = new
        else:
            earlier["last_run"] = {"status": e["status"], "note": e.get("note")}
    folder = path.parent
    entries = {
        n: e
        for n, e in entries.items()
        if e.get("status") not in GOOD or (folder / f"{n}{record.SUFFIX}").exists()
    }
    total, scored = Tally(), 0
    for e in entries.values():
        if e.get("status") in GOOD and e.get("tally"):
            total += Tally.from_dict(e["tally"])
            scored += 1
    overall = {**total.scores(), "videos": scored} if scored else None
    data: dict[str, Any] = {
        "kind": KIND,
        "version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "iou_threshold": MATCH_IOU,
        **header,
        "videos": [entries[n] for n in sorted(entries)],
    }
    if overall is not None:
        data["overall"] = overall
    write_json(path, data)
    return overall
