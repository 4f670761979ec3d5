"""Which files in `--out` annotate may replace, and replacing them: only files it wrote and nobody changed since
(their sha256 is in the video's completion record, `record.py`). Anything else at an output path (a
researcher's own .eaf, a file corrected in ELAN, a file from before completion records) is someone else's
work: the video is refused, naming the file, and only `force` goes past that, keeping the old file beside the
new one as `<file>.bak` (then `.bak2`, `.bak3`: an earlier backup is never replaced).

A video's new files are staged under temporary names, hashed, announced in the record (incomplete, with the
hashes of the files they replace), renamed into place, and the record is completed last.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mgc_edge.errors import UserError
from mgc_edge.fileio import file_sha256
from mgc_edge.runtime.recorded import record

BACKUP = ".bak"


class NotOurs(UserError):
    """Files at a video's output paths that annotate did not write or that changed since; one sentence."""

    def __init__(self, paths: Sequence[Path], recorded: bool) -> None:
        self.paths = list(paths)
        super().__init__(refusal(self.paths, recorded))


def refusal(paths: Sequence[Path], recorded: bool) -> str:
    """The sentence naming files that are not ours; `recorded`: the video has a completion record."""
    names = ", ".join(str(p) for p in paths)
    why = (
        "not written by annotate, or changed since"
        if recorded
        else "annotate has no record of writing it (someone else's, or from before completion records)"
    )
    return (
        f"kept {names}: {why}; --force replaces {'it' if len(paths) == 1 else 'them'} and keeps the old as "
        f"{paths[0].name}{BACKUP}."
    )


def foreign(paths: Sequence[Path], rec: Mapping[str, Any] | None, record_path: Path) -> list[Path]:
    """Those of `paths` (and the record's own path) that exist and are not ours and unchanged."""
    out = []
    if record_path.exists() and rec is None:
        out.append(record_path)
    for path in paths:
        if path.exists() and (
            not path.is_file() or file_sha256(path) not in record.known_hashes(rec, path.name)
        ):
            out.append(path)
    return out


def set_aside(path: Path) -> Path:
    """Rename `path` to the first free `<path>.bak`, `.bak2`, ... and return that name."""
    n = 1
    while True:
        backup = path.with_name(f"{path.name}{BACKUP}{n if n > 1 else ''}")
        if not backup.exists() and not backup.is_symlink():
            os.rename(path, backup)  # never onto an existing name (a race is still caught by exists above)
            return backup
        n += 1


def commit(
    staged: Mapping[Path, Path],
    record_path: Path,
    base: Mapping[str, Any],
    force: bool,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Move the staged files (final path -> its whole temporary file) into place under the rules above and
    complete the record; `base` holds the record's video, fingerprint, model and settings. Returns the
    backups made (only with `force`); raises NotOurs otherwise."""
    current = record.read_record(record_path)
    theirs = foreign(list(staged), current, record_path)
    if theirs and not force:
        raise NotOurs(theirs, current is not None)
    backups = [set_aside(p) for p in theirs]
    new = {final.name: file_sha256(tmp) for final, tmp in staged.items()}
    kept = {}  # files of the record not replaced now that are still ours (a timeline of an earlier run)
    if current is not None:
        for name, digest in current["outputs"].items():
            path = record_path.parent / name
            if name not in new and path.is_file() and file_sha256(path) == digest:
                kept[name] = digest
    previous = dict(current["outputs"]) if current is not None else {}
    extra = {**(current or {}).get("extras", {}), **(extra or {})}
    args = (base["video"], base["fingerprint"], base["model"], base["settings"])
    record.write_record(record_path, *args, {**kept, **new}, False, {"extras": extra}, previous)
    for final, tmp in staged.items():
        os.replace(tmp, final)
    record.write_record(record_path, *args, {**kept, **new}, True, {"extras": extra})
    return backups


def remove_leftovers(folder: Path) -> int:
    """Delete the temporary files that killed runs left in `folder` (named by fileio.temp_path with the
    writer's process id: `.<name>.<pid>-<hex>.tmp<suffix>`); those of a process still running are left
    alone. Returns how many were removed."""
    if sys.platform == "win32" or not folder.is_dir():  # os.kill(pid, 0) is not a harmless probe there
        return 0
    removed = 0
    for tmp in folder.glob(".*.tmp*"):
        stem = tmp.name.rsplit(".tmp", 1)[0]
        pid = stem.rsplit(".", 1)[-1].split("-", 1)[0]
        if pid.isdigit() and tmp.is_file() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True
