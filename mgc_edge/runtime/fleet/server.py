"""The fleet page over the live view's HTTP (sinks/web/http.py: the same fixed routes, token and loopback
rules): `/` (the page in `static/`, styled by the live view's own stylesheet), `/api/status` (every box and
camera). The frame and event routes of a live view have nothing to serve here: video stays on the boxes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

from mgc_edge.runtime.fleet.state import FleetState
from mgc_edge.runtime.sinks.web.config import TOKEN_ENV, ServeConfig, is_loopback, mask_token
from mgc_edge.runtime.sinks.web.http import make_http_server


def _pages(token: str | None) -> dict[str, bytes]:
    """index.html (as is and with the token in its asset URLs), app.js, and the live view's stylesheet
    followed by the fleet's own rules."""
    own = resources.files("mgc_edge.runtime.fleet").joinpath("static")
    live = resources.files("mgc_edge.runtime.sinks.web").joinpath("static")
    html = own.joinpath("index.html").read_bytes()
    query = f"?token={quote(token, safe='')}" if token else ""
    return {
        "index.html": html.replace(b"__QUERY__", b""),
        "index.html+token": html.replace(b"__QUERY__", query.encode()),
        "app.js": own.joinpath("app.js").read_bytes(),
        "style.css": live.joinpath("style.css").read_bytes() + b"\n" + own.joinpath("fleet.css").read_bytes(),
    }


class FleetServer:
    """Serves the fleet page in a background thread from now until `close()` (ServeError when the address
    cannot be bound). What sinks/web/http.py asks of a live state, with no streams."""

    def __init__(self, config: ServeConfig, state: FleetState, broker: Callable[[], dict[str, Any]]) -> None:
        self.config, self.state, self.broker = config, state, broker
        self.pages = _pages(config.token)
        self._stopping = threading.Event()
        self._started = time.monotonic()
        self._httpd = make_http_server(config, self)
        self.host, self.port = config.host, int(self._httpd.server_address[1])
        self.loopback_only = is_loopback(self.host)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.1,), name="mgc-fleet", daemon=True
        )
        self._thread.start()

    def banner(self) -> list[str]:
        host = "127.0.0.1" if self.host == "0.0.0.0" else ("::1" if self.host == "::" else self.host)
        url = f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"
        lines = [f"Fleet view: {url}"]
        if self.config.token:
            lines.append(f"It needs the token ({mask_token(self.config.token)}): open {url}?token=<token>.")
        elif not self.loopback_only:
            lines.append(f"Anyone who can reach this address can open it; set --token or {TOKEN_ENV}.")
        return lines

    def close(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()

    # -- what the HTTP handlers call ---------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def pause(self, seconds: float) -> bool:
        return not self._stopping.wait(seconds)

    def open_stream(self, kind: str, source: int = 0) -> bool:
        return False  # no frames nor event streams here: the page polls /api/status

    def close_stream(self, kind: str, source: int = 0) -> None:
        pass

    def sent(self, what: str) -> None:
        pass

    def next_jpeg(self, last: int, source: int = 0) -> tuple[bytes | None, int]:
        return None, -1

    def first_events(self) -> tuple[list[Any], int]:
        return [], 0

    def next_events(self, last: int) -> tuple[list[Any], int]:
        return [], last

    def snapshot(self, source: int = 0) -> bytes | None:
        return None

    def status(self) -> dict[str, Any]:
        return {
            **self.state.snapshot(),
            "broker": self.broker(),
            "uptime_s": round(time.monotonic() - self._started, 1),
        }
