"""Where the live loop's results go: a window, an annotated video, a JSONL file, the web view.

Each kind of sink is one module with a `check(options, count)` (bad options and existing outputs refused
before anything opens) and a `build(context)` (the sink, or None where the options do not ask for it); a
new sink is one module plus one line in `BUILDERS` (plus its CLI option; tests/test_overlay.py adds one).
The protocol every sink follows is `base.Sink`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import ModuleType
from typing import Any

from mgc_edge.runtime.sinks import jsonl, mqtt, video, web, window
from mgc_edge.runtime.sinks.base import BaseSink, SinkContext, SinkOptions

# mqtt first: a broker that refuses us stops the run before any file is opened
BUILDERS: list[ModuleType] = [mqtt, window, video, jsonl, web]


def check_sinks(options: SinkOptions, count: int) -> None:
    """Every builder's refusals for a run of `count` sources, before anything is opened (nothing is lost)."""
    for builder in BUILDERS:
        builder.check(options, count)


def build_sinks(context: SinkContext) -> list[BaseSink]:
    """The sinks the options ask for, in `BUILDERS` order; a sink with `counters()` (the publisher) adds them
    to the live status the sinks after it read (the web view's /api/status)."""
    sinks = []
    for builder in BUILDERS:
        sink = builder.build(context)
        if sink is not None:
            sinks.append(sink)
            if hasattr(sink, "counters"):
                context = replace(context, status=_with_counters(context.status, sink.counters))
    return sinks


def _with_counters(status: Callable[[], Mapping[str, Any]], counters: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: {**status(), "publish": counters()}
