"""`mgc-edge fleet`: every box publishing under one MQTT prefix (`webcam --publish`), on one page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mgc_edge.cli.app import console, sigterm_as_interrupt, user_errors


def _note(message: str) -> None:
    console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fleet(
    url: Annotated[
        str,
        typer.Argument(
            help="The broker and prefix the boxes publish to: mqtt://[USER[:PASS]@]HOST[:PORT]/PREFIX or "
            "mqtts://... (a password left out of the URL is read from MGC_EDGE_MQTT_PASSWORD).",
            metavar="URL",
        ),
    ],
    serve: Annotated[
        str,
        typer.Option(
            help="Serve the page on [HOST:]PORT (127.0.0.1 unless a host is given).", metavar="[HOST:]PORT"
        ),
    ] = "8090",
    token: Annotated[
        str | None,
        typer.Option(envvar="MGC_EDGE_TOKEN", show_envvar=True, help="Require this token on every request."),
    ] = None,
    ca: Annotated[Path | None, typer.Option(help="mqtts://: the CA certificate (PEM) of the broker.")] = None,
) -> None:
    """Show every box and camera publishing under an MQTT prefix on one page (current label, state, fps, last
    seen; a link to a box's own live view); Ctrl-C or SIGTERM ends it."""
    with user_errors("fleet"), sigterm_as_interrupt():
        from mgc_edge.runtime.fleet.watch import Fleet
        from mgc_edge.runtime.sinks.mqtt.config import parse_broker
        from mgc_edge.runtime.sinks.web.config import ServeConfig, parse_address

        broker = parse_broker(url, "fleet", ca=ca, ca_option="--ca")
        host, port = parse_address(serve)
        with Fleet(broker, ServeConfig(host=host, port=port, token=token or None), _note) as view:
            console.print(f"Watching {escape(broker.url)}/#", highlight=False, soft_wrap=True)
            for line in view.banner():
                console.print(escape(line), highlight=False, soft_wrap=True)
            try:
                while True:
                    time.sleep(1.0)
            except KeyboardInterrupt:
                pass
