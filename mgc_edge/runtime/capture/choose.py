"""Which capture a run gets (`webcam --capture threads|processes|auto`, `--workers N`) and its sources opened
that way: threads in the main process (`sources.open_sources`), or worker processes (`CapturePool`).
numpy + the standard library only."""

from __future__ import annotations

from collections.abc import Sequence

from mgc_edge.config import PreprocessSpec
from mgc_edge.errors import UserError
from mgc_edge.runtime import host
from mgc_edge.runtime.capture.pool import CapturePool, source_options
from mgc_edge.runtime.sources import open_sources
from mgc_edge.runtime.sources.base import Source, SourceOptions
from mgc_edge.runtime.sources.listing import SourceSpec, check_specs, short_names

CAPTURES = ("threads", "processes", "auto")
# `auto` takes worker processes from this many sources on, where there are this many cores: with fewer sources
# threads cost less CPU, and on two cores both keep up with as many cameras while threads answer sooner
# (benchmarks/RESULTS.md, "Capture in worker processes"); more cores leave the main interpreter the limit.
AUTO_SOURCES, AUTO_CORES = 8, 4


def check_capture(capture: str, workers: int) -> None:
    if capture not in CAPTURES:
        raise UserError(f"--capture must be one of {', '.join(CAPTURES)}, got {capture!r}.")
    if workers < 0:
        raise UserError(f"--workers must be 0 (as many as the cores allow) or more, got {workers}.")


def chosen(capture: str, sources: int, cores: int | None = None) -> str:
    """ "threads" or "processes" for `sources` sources on this machine."""
    if capture != "auto":
        return capture
    cores = host.usable_cores() if cores is None else cores
    return "processes" if cores >= AUTO_CORES and sources >= AUTO_SOURCES else "threads"


def worker_count(workers: int, sources: int, cores: int | None = None) -> int:
    """`workers`, or with 0 one per two cores (each worker's sources decode in threads of their own, so one
    worker already uses several cores; the main process keeps the model's)."""
    cores = host.usable_cores() if cores is None else cores
    return max(1, min(sources, workers or cores // 2))


def open_captured(
    specs: Sequence[SourceSpec], options: SourceOptions, spec: PreprocessSpec, capture: str, workers: int = 0
) -> tuple[list[Source], CapturePool | None]:
    """The opened sources, and the pool of worker processes that captures them (None with threads); the caller
    closes the sources (closing one closes the pool)."""
    how = chosen(capture, len(specs))
    if how == "threads":
        return open_sources(specs, options), None
    check_specs(specs)
    texts = [s.text.strip() for s in specs]
    pool = CapturePool(texts, source_options(texts, options), spec, worker_count(workers, len(texts)))
    opened = pool.open()
    for source, name in zip(opened, short_names(specs)):
        source.short_name = name
    return list(opened), pool
