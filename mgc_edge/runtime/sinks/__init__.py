"""Where the live loop's results go: a window, an annotated video, a JSONL file, the web view.

Each kind of sink is one module with a `check(options, count)` (bad options and existing outputs refused
before anything opens) and a `build(context)` (the sink, or None where the options do not ask for it); a
new sink is one module plus one line in `BUILDERS` (plus its CLI option; tests/test_overlay.py adds one).
The protocol every sink follows is `base.Sink`.
"""

from __future__ import annotations

from types import ModuleType

from mgc_edge.runtime.sinks import jsonl, video, web, window
from mgc_edge.runtime.sinks.base import BaseSink, SinkContext, SinkOptions

BUILDERS: list[ModuleType] = [window, video, jsonl, web]


def check_sinks(options: SinkOptions, count: int) -> None:
    """Every builder's refusals for a run of `count` sources, before anything is opened (nothing is lost)."""
    for builder in BUILDERS:
        builder.check(options, count)


def build_sinks(context: SinkContext) -> list[BaseSink]:
    """The sinks the options ask for, in `BUILDERS` order."""
    built = [builder.build(context) for builder in BUILDERS]
    return [sink for sink in built if sink is not None]
