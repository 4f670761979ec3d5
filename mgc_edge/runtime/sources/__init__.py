"""Where frames come from: a video file, a file played at its rate, a camera, a network stream.

Every source yields `Frame(seq, t, image)` (sources/base.py). A file gives every frame, decoded one step ahead
(`file`); a live source (camera or URL: `stream`; a file with `--realtime`: `paced_file`) is read by a capture
thread that keeps only the newest frame. `KINDS` says which kind a source text is, in order: a new kind of
source is one module plus one line there (tests/test_sources.py adds one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mgc_edge.runtime.sources.base import Source, SourceError, SourceOptions
from mgc_edge.runtime.sources.file import FileSource
from mgc_edge.runtime.sources.paced_file import PacedFileSource
from mgc_edge.runtime.sources.stream import LiveSource
from mgc_edge.runtime.sources.urls import URL_SCHEMES, is_url, redact_url


@dataclass(frozen=True)
class Kind:
    """One kind of source: `claims(text, options)` says whether a source text is of this kind, `make(text,
    options)` builds it (not yet opened). `what` names it in the sentence that refuses `--every` and
    `--realtime`, which only kinds with `file_options` take."""

    name: str
    claims: Callable[[str, SourceOptions], bool]
    make: Callable[[str, SourceOptions], Source]
    file_options: bool = False
    what: str = ""


def _unknown_scheme(text: str, _options: SourceOptions) -> Source:
    scheme = text.split("://", 1)[0]
    raise SourceError(
        f"Source {redact_url(text)} uses the scheme {scheme!r}; streams must be one of {', '.join(URL_SCHEMES)}."
    )


KINDS: list[Kind] = [
    Kind("camera", lambda t, _o: t.isdigit(), lambda t, o: LiveSource(int(t), o), what="cameras"),
    Kind("stream", lambda t, _o: is_url(t), lambda t, o: LiveSource(t, o), what="streams"),
    Kind("unknown scheme", lambda t, _o: "://" in t, _unknown_scheme),
    Kind("paced file", lambda _t, o: o.realtime, lambda t, o: PacedFileSource(Path(t), o), file_options=True),
    Kind("file", lambda _t, _o: True, lambda t, o: FileSource(t, o), file_options=True),
]


def kind_of(text: str, options: SourceOptions = SourceOptions()) -> Kind:
    """The first kind in `KINDS` that claims `text`."""
    return next(kind for kind in KINDS if kind.claims(text, options))


def open_source(source: str, options: SourceOptions = SourceOptions()) -> Source:
    """`0` (camera index), a URL or a video file path -> an opened source; errors are one sentence."""
    text = str(source).strip()
    kind = kind_of(text, options)
    source = kind.make(text, options)  # an unusable text (an unknown scheme) is refused here
    if not kind.file_options and (options.every != 1 or options.realtime):
        raise SourceError(f"--every and --realtime apply to video files, not to {kind.what}.")
    return source.open()


def open_sources(texts: Sequence[str], options: SourceOptions = SourceOptions()) -> list[Source]:
    """Open several sources at once, in threads (a dead stream's timeout is paid once, not once per
    source); the first error is raised (one sentence naming its source) after closing the others.

    With a mix of files and cameras or streams, `every` and `realtime` apply to the files only; they are
    refused (by `open_source`) only where no source is a file."""
    texts = [str(t).strip() for t in texts]
    if not texts:
        raise SourceError("Give at least one source.")
    per_source = [options] * len(texts)
    takes = [kind_of(t, options).file_options for t in texts]
    if (options.every != 1 or options.realtime) and any(takes):
        live = replace(options, every=1, realtime=False)
        per_source = [options if file else live for file in takes]
    if len(texts) == 1:
        return [open_source(texts[0], per_source[0])]
    opened: list[Source] = []
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(16, len(texts)), thread_name_prefix="mgc-open") as pool:
        for future in [pool.submit(open_source, t, o) for t, o in zip(texts, per_source)]:
            try:
                opened.append(future.result())
            except BaseException as exc:  # keep collecting: every opened source must be closed
                failure = failure or exc
    if failure is not None:
        for source in opened:
            source.close()
        raise failure
    return opened


def read_sources_file(path: str | Path) -> list[str]:
    """The sources listed in a text file, one per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SourceError(f"Sources file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"Sources file {path} cannot be read ({type(exc).__name__}).") from None
    sources = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not sources:
        raise SourceError(f"Sources file {path} lists no source (one per line; # starts a comment).")
    return sources


def describe(source: Source) -> dict[str, Any]:
    """Name, kind and nominal rate of a source, for the start-up line and the status endpoint."""
    info: dict[str, Any] = {"source": source.name, "kind": source.kind, "fps": round(source.fps, 2)}
    if source.kind == "file":
        info["frames"] = source.frame_count
    return info
