"""The inputs of `predict` and `annotate`: files, folders (searched recursively, hidden files and folders left
out) and globs, in input order and sorted within a folder or glob, each file once. A file named explicitly is
taken whatever its extension (what it is not is reported when it is read)."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mgc_edge.errors import UserError


@dataclass(frozen=True)
class Wanted:
    """What a command collects: `noun` ("image", "video") for its sentences, the extensions it reads, the
    command's `verb` and the error its sentences are raised as."""

    noun: str
    extensions: Sequence[str]
    verb: str
    error: type[UserError] = UserError

    def takes(self, path: Path) -> bool:
        """A visible file name with one of the extensions."""
        return not path.name.startswith(".") and path.suffix.lower() in self.extensions


@dataclass(frozen=True)
class Found:
    path: Path
    base: Path  # the folder or glob base it was found under; a file named explicitly: its own folder


def glob_base(pattern: str) -> Path:
    """The fixed folder part of a glob: `data/*/x.jpg` -> `data`."""
    fixed = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def walk(folder: Path, wanted: Wanted) -> list[Path]:
    """The wanted files under `folder`, recursively, hidden files and folders left out, in a stable order."""
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and wanted.takes(p) and not any(s.startswith(".") for s in p.relative_to(folder).parts)
    ]


def collect(inputs: Sequence[str | Path], wanted: Wanted) -> list[Found]:
    """Every wanted file of `inputs` (see the module's docstring); a folder or glob that gives none, and an
    input that does not exist, are refused in one sentence."""
    if not inputs:
        raise wanted.error(f"Give at least one {wanted.noun} file, folder or glob to {wanted.verb}.")
    found: list[Found] = []
    seen: set[Path] = set()
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            files, base = walk(path, wanted), path
            if not files:
                kinds = ", ".join(e[1:] for e in wanted.extensions)
                raise wanted.error(f"Input folder {path} holds no {wanted.noun}s ({kinds}).")
        elif path.is_file():
            files, base = [path], path.parent
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files, base = [m for m in matches if m.is_file() and wanted.takes(m)], glob_base(text)
            if not files:
                raise wanted.error(f"No {wanted.noun} file matches {text}.")
        else:
            raise wanted.error(f"Input {text} does not exist.")
        for file in files:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append(Found(file, base))
    return found
