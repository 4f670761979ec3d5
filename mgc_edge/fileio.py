"""Atomic writes: a crash never leaves half a file where a whole one is expected; stdlib only."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mgc_edge.errors import UserError


class OutputExistsError(UserError):
    """An output file exists and `--force` was not given, or it cannot be written there; one sentence."""


@contextmanager
def temp_path(final: str | Path) -> Iterator[Path]:
    """A hidden, unused name beside `final` (same filesystem, so a move is a rename), removed afterwards
    unless moved away. The caller creates the file, so it gets the usual permissions (no umask games)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{final.suffix}")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def unwritable(folder: str | Path) -> str | None:
    """Why no file can be made in `folder` (a clause), or None when one can. Asked before a long run, so that
    an output that cannot be written fails at once, not at its first write; the folder is not made here (a run
    refused for another reason leaves nothing behind), its nearest existing parent is tried instead."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def refuse_existing(path: str | Path, force: bool, option: str = "output") -> Path:
    """`path` as a Path, after refusing an existing file unless `force` (a folder is always refused) and a
    place where no file can be written (a read-only disk, no permission)."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{option} {path} is a folder; give a file name.")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to replace it.")
    problem = unwritable(path.parent)
    if problem is not None:
        raise OutputExistsError(f"{option} {path} cannot be written ({problem}).")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the block succeeds it is renamed onto `path`.
    A crash or an error never leaves half a file where a whole one is expected."""
    with temp_path(path) as tmp:
        yield tmp
        os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically, pretty and with sorted keys so that diffs stay readable."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
