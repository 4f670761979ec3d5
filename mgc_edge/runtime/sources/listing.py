"""The sources of a run as the user lists them (`-s` and `--name`, `--sources FILE`): each a `SourceSpec` with the
text to open (`${VAR}` taken from the environment, so that a password need not be written on the command line
nor in the file), an optional short name, and where it was given (for errors: "line 3 of cams.txt").

In a sources file: one source per line; blank lines and lines starting with `#` are skipped; ` #` (a `#` after
whitespace) starts a trailing comment; `NAME = SOURCE` names a source. A camera or stream listed twice is
refused (two readers of one camera double its load and its network traffic, and show the same picture twice);
a video file may be listed twice (each is decoded on its own). Every source gets a short unique name: the
name given, else `host:port/path` of a URL, the file name of a file, `camera N` of a camera index."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mgc_edge.runtime.sources.base import SourceError
from mgc_edge.runtime.sources.urls import is_url, redact_url

_NAME = r"[A-Za-z0-9][\w.-]{0,31}"
_NAMED = re.compile(rf"(?P<name>{_NAME})\s*=\s*(?P<source>\S.*)")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COMMENT = re.compile(r"\s#")


@dataclass(frozen=True)
class SourceSpec:
    """One source as listed: `text` is what is opened (may hold a password: never show it; `redact_url`),
    `name` the short name given (None: made from the text), `origin` where it was listed ("line 3 of
    cams.txt"; None on the command line, where the source itself says which)."""

    text: str = field(repr=False)
    name: str | None = None
    origin: str | None = None

    @property
    def live(self) -> bool:
        """A camera or a stream (a file may be listed twice)."""
        return self.text.isdigit() or "://" in self.text


def expand(text: str, origin: str | None = None) -> str:
    """`text` with every `${VAR}` replaced by the environment variable's value; an unset one is refused."""

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match[1])
        if found is None:
            where = f"The source on {origin}" if origin else f"Source {redact_url(text)}"
            raise SourceError(f"{where} uses ${{{match[1]}}}, which is not set in the environment.")
        return found

    return _VAR.sub(value, text)


def check_name(name: str, origin: str) -> str:
    if not re.fullmatch(_NAME, name):
        raise SourceError(
            f"The name {name!r} ({origin}) must be 1 to 32 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit."
        )
    return name


def command_line(texts: Sequence[str], names: Sequence[str] = ()) -> list[SourceSpec]:
    """The `-s` sources with their `--name`s, given in the same order (fewer names than sources: the rest are
    named from their text)."""
    if len(names) > len(texts):
        raise SourceError(
            f"{len(names)} --name given for {len(texts)} --source; give one per --source, in order."
        )
    return [
        SourceSpec(expand(text.strip()), check_name(names[i], f"--name {i + 1}") if i < len(names) else None)
        for i, text in enumerate(texts)
    ]


def read_sources_file(path: str | Path) -> list[SourceSpec]:
    """The sources listed in a text file (see the module's docstring); errors name the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SourceError(f"Sources file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"Sources file {path} cannot be read ({type(exc).__name__}).") from None
    specs = []
    for number, line in enumerate(lines, 1):
        text = _COMMENT.split(line, maxsplit=1)[0].strip()
        if not text or text.startswith("#"):
            continue
        origin = f"line {number} of {path}"
        name = None
        named = _NAMED.fullmatch(text)
        if named and not is_url(text) and not Path(text).exists():
            name, text = named["name"], named["source"].strip()
        specs.append(SourceSpec(expand(text, origin), name, origin))
    if not specs:
        raise SourceError(f"Sources file {path} lists no source (one per line; # starts a comment).")
    return specs


def check_specs(specs: Sequence[SourceSpec]) -> None:
    """Refuse a camera or stream listed twice, and a short name given twice."""
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if not spec.live:
            continue
        if spec.text in seen:
            first = specs[seen[spec.text]]
            where = spec.origin or f"--source {i + 1}"
            earlier = first.origin or f"--source {seen[spec.text] + 1}"
            raise SourceError(
                f"Source {redact_url(spec.text)} ({where}) is listed already ({earlier}); list each camera once "
                "(a second reader would double its load and show the same picture twice)."
            )
        seen[spec.text] = i
    names = [spec.name for spec in specs if spec.name is not None]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourceError(f"The source name {repeated[0]!r} is given twice; each source needs its own name.")


def derived_name(text: str) -> str:
    """A short name from a source's text: `host:port/path` of a URL (no user, password nor query), the file
    name of a file, `camera N` of a camera index."""
    if text.isdigit():
        return f"camera {text}"
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return f"{parts.hostname or ''}{port}{parts.path}".rstrip("/") or redact_url(text)
    return Path(text).name or text


def short_names(specs: Sequence[SourceSpec]) -> list[str]:
    """A short unique name per source: the one given, else `derived_name`; a derived name that two sources
    share gets ` #N` (N: the source's index)."""
    derived = [spec.name or derived_name(spec.text) for spec in specs]
    return [
        name if spec.name or derived.count(name) == 1 else f"{name} #{i}"
        for i, (spec, name) in enumerate(zip(specs, derived))
    ]
