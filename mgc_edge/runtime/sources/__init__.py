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
from mgc_edge.runtime.sources.listing import SourceSpec, check_specs, short_names
from mgc_edge.runtime.sources.listing import read_sources_file as read_sources_file
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


def open_sources(
    listed: Sequence[str | SourceSpec], options: SourceOptions = SourceOptions()
) -> list[Source]:
    """Open several sources at once, in threads (a dead stream's timeout is paid once, not once per
    source); the first error is raised (one sentence naming its source, and its line in a sources file)
    after closing the others. Each source gets its `short_name` (sources/listing.py).

    With a mix of files and cameras or streams, `every` and `realtime` apply to the files only; they are
    refused (by `open_source`) only where no source is a file."""
    specs = [s if isinstance(s, SourceSpec) else SourceSpec(str(s).strip()) for s in listed]
    if not specs:
        raise SourceError("Give at least one source.")
    check_specs(specs)
    opened = _open_all([s.text.strip() for s in specs], [s.origin for s in specs], options)
    for source, name in zip(opened, short_names(specs)):
        source.short_name = name
    return opened


def _opened(text: str, options: SourceOptions, origin: str | None) -> Source:
    try:
        return open_source(text, options)
    except SourceError as exc:
        if origin is None:
            raise
        raise SourceError(f"The source on {origin}: {exc}") from None


def _open_all(texts: list[str], origins: list[str | None], options: SourceOptions) -> list[Source]:
    per_source = [options] * len(texts)
    takes = [kind_of(t, options).file_options for t in texts]
    if (options.every != 1 or options.realtime) and any(takes):
        live = replace(options, every=1, realtime=False)
        per_source = [options if file else live for file in takes]
    if len(texts) == 1:
        return [_opened(texts[0], per_source[0], origins[0])]
    opened: list[Source] = []
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(16, len(texts)), thread_name_prefix="mgc-open") as pool:
        for future in [pool.submit(_opened, t, o, w) for t, o, w in zip(texts, per_source, origins)]:
            try:
                opened.append(future.result())
            except BaseException as exc:  # keep collecting: every opened source must be closed
                failure = failure or exc
    if failure is not None:
        for source in opened:
            source.close()
        raise failure
    return opened


def describe(source: Source) -> dict[str, Any]:
    """Name, kind and nominal rate of a source, for the start-up line and the status endpoint."""
    info: dict[str, Any] = {"source": source.name, "kind": source.kind, "fps": round(source.fps, 2)}
    if source.short_name and source.short_name != source.name:
        info["short_name"] = source.short_name
    if source.kind == "file":
        info["frames"] = source.frame_count
    return info
