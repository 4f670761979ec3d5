"""The live view (`webcam --serve`): a sink of the loop that serves the page in `static/`, the annotated frames
as MJPEG, the events as Server-Sent Events and the status as JSON (`server`, `http`, `encoder`, `config`)."""

from __future__ import annotations

from mgc_edge.runtime.sinks.base import BaseSink, SinkContext, SinkOptions
from mgc_edge.runtime.sinks.web.config import ServeConfig
from mgc_edge.runtime.sinks.web.server import LiveServer, model_info


def check(options: SinkOptions, count: int) -> None:
    """Nothing left to refuse: the address was parsed into `options.serve` (config.parse_address)."""


def build(context: SinkContext) -> BaseSink | None:
    """`--serve [HOST:]PORT`: the live view, started now (closed with the run); says where to open it."""
    options = context.options
    if options.serve is None:
        return None
    host, port = options.serve
    config = ServeConfig(host=host, port=port, token=options.token or None)
    live = LiveServer(config, model_info(context.classifier), context.status, sources=len(context.sources))
    server = context.stack.enter_context(live)
    for line in server.banner():
        context.say(line)
    return server
