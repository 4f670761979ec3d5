"""HTTP for the live view: the access token, the request handler and the threaded server.

Only a fixed set of paths exists (the page's own files, the status JSON, the two streams, a snapshot; the
frame routes take `?source=N` for one source of several, and any route answers 404 for a source that does not
exist, before it takes a stream slot); no request path is ever mapped to the file system, so nothing else can
be read. A stream's slot is given back however its connection ends (the viewer left or stopped reading, a
write failed, an error, the server closing): a stream with nothing to send checks that its viewer is still
there. A JPEG carries the event it was drawn for (`X-Event-Seq`, `X-Event`), so a caption can match it.

With a token set, every request must carry it, as `Authorization: Bearer TOKEN` (scripts) or `?token=TOKEN`
(the page, whose image, stylesheet and event-stream requests cannot set a header); it is compared in constant
time and never logged or shown in full. Standard library only; the live state behind it is `server.LiveState`,
seen here through the `LiveState` protocol (what the handlers call), so that this module never imports it.
"""

from __future__ import annotations

import json
import logging
import math
import select
import socket
import socketserver
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import numpy as np

from mgc_edge.runtime.sinks.web.config import (
    QUERY_KEY,
    ServeConfig,
    ServeError,
    bearer,
    host_name,
    is_loopback,
    token_matches,
)
from mgc_edge.runtime.sources.urls import redact_url

log = logging.getLogger(__name__)


class LiveState(Protocol):
    """What the request handlers use of the live view (`server.LiveServer`). A state without `has_source` serves
    no frames (the fleet page): its frame and stream routes are 404 and the members below `has_source` are never
    called."""

    config: ServeConfig
    pages: dict[str, bytes]
    loopback_only: bool

    @property
    def stopping(self) -> bool: ...
    def pause(self, seconds: float) -> bool: ...
    def has_source(self, index: int) -> bool: ...
    def open_stream(self, kind: str, source: int = 0, viewer: str | None = None) -> bool: ...
    def close_stream(self, kind: str, source: int = 0, viewer: str | None = None) -> None: ...
    def sent(self, what: str) -> None: ...
    def next_jpeg(self, last: int, source: int = 0) -> Any: ...  # a pictures.Shot: (jpeg, seq, event)
    def first_events(self) -> tuple[list[Any], int]: ...
    def next_events(self, last: int) -> tuple[list[Any], int]: ...
    def snapshot(self, source: int = 0) -> Any: ...  # a pictures.Shot
    def status(self) -> dict[str, Any]: ...


BOUNDARY = b"mgcframe"
MJPEG_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"
IO_TIMEOUT_S = 10.0  # a client that sends no request, or takes no bytes, for this long is dropped
EVENT_INTERVAL_S = 0.05  # an event stream writes at most 20 times a second, whatever the loop's rate
EXTRA_CONNECTIONS = 32  # connections allowed beyond the stream cap: page, status and snapshot requests
FRAME_ROUTES = ("/events", "/stream.mjpg", "/frame.jpg")
CAPTION_KEYS = ("frame", "t", "smoothed", "state")  # what a JPEG's X-Event header says of its frame

TEXT, JSON_TYPE = "text/plain; charset=utf-8", "application/json"
SCRIPTS = (
    "state.js",
    "timeline.js",
    "frames.js",
    "tiles.js",
    "app.js",
)  # the page's, in the order it loads them
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    **{f"/{name}": (name, "text/javascript; charset=utf-8") for name in SCRIPTS},
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's URL may carry the token
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
}


def json_bytes(value: object) -> bytes:
    """Compact JSON a browser's JSON.parse accepts: numpy values as numbers, NaN / infinity as null."""
    try:
        text = json.dumps(value, separators=(",", ":"), default=_plain, allow_nan=False)
    except ValueError:  # a non-finite float somewhere (an FPS before its first interval, say)
        text = json.dumps(_finite(value), separators=(",", ":"), default=_plain)
    return text.encode("utf-8")


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _finite(value: object) -> object:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    """One connection: authorises, then serves one of the fixed routes."""

    protocol_version = "HTTP/1.1"
    server_version = "mgc-edge"
    sys_version = ""
    timeout = IO_TIMEOUT_S
    server: _Server

    def do_GET(self) -> None:
        live = self.server.live
        url = urlsplit(self.path)
        from_query = parse_qs(url.query, keep_blank_values=True).get(QUERY_KEY, [])
        token = live.config.token
        host = host_name(self.headers.get("Host"))
        if live.loopback_only and host and not is_loopback(host):
            # A page elsewhere that renamed itself to 127.0.0.1 (DNS rebinding) must not read a local view.
            self._reply(403, b"Forbidden: this live view only answers to a loopback host name.\n", TEXT)
            return
        if token and not token_matches([bearer(self.headers.get("Authorization")), *from_query], token):
            body = b"401 Unauthorized: this live view needs its token; open it as /?token=YOUR_TOKEN.\n"
            self._reply(401, body, TEXT, {"WWW-Authenticate": 'Bearer realm="mgc-edge"'})
            return
        query = parse_qs(url.query)
        source = _source(query.get("source", ["0"])[-1])
        has_source = getattr(live, "has_source", None)  # None: a state that serves no frames
        if source is None or not (has_source(source) if has_source else source == 0):
            self._reply(404, b"No such source.\n", TEXT)  # before any slot or state is taken for it
            return
        viewer = query.get("viewer", [None])[-1]
        if url.path in FRAME_ROUTES and has_source is None:
            self._reply(404, b"Not found.\n", TEXT)
        elif url.path in ASSETS and ASSETS[url.path][0] in live.pages:  # a page may have fewer files (fleet)
            name, content_type = ASSETS[url.path]
            if name == "index.html" and token and token_matches(from_query, token):
                name = "index.html+token"  # its stylesheet and script URLs carry the token too
            self._reply(200, live.pages[name], content_type)
        elif url.path == "/api/status":
            self._reply(200, json_bytes(live.status()), JSON_TYPE)
        elif url.path == "/events":
            self._stream(live, "events", source, viewer)
        elif url.path == "/stream.mjpg":
            self._stream(live, "mjpeg", source, viewer)
        elif url.path == "/frame.jpg":
            shot = live.snapshot(source)
            if shot.jpeg is None:
                self._reply(503, b"No frame yet.\n", TEXT, {"Retry-After": "1"})
            else:
                self._reply(200, shot.jpeg, "image/jpeg", caption_headers(shot.event))
        else:
            self._reply(404, b"Not found.\n", TEXT)

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, live: LiveState, kind: str, source: int, viewer: str | None) -> None:
        """An MJPEG or event stream in a slot of the cap, given back however the connection ends."""
        if not live.open_stream(kind, source, viewer):
            self._reply(
                503, b"Too many live-view streams are open; try again later.\n", TEXT, {"Retry-After": "5"}
            )
            return
        self.close_connection = True  # a stream has no length: it ends with the connection
        try:
            self.send_response(200)
            mjpeg = kind == "mjpeg"
            self.send_header("Content-Type", MJPEG_TYPE if mjpeg else "text/event-stream; charset=utf-8")
            self.send_header("Connection", "close")
            for key, value in SECURITY_HEADERS.items():
                self.send_header(key, value)
            self.end_headers()
            if mjpeg:
                self._mjpeg(live, source)
            else:
                self._events(live)
        except (OSError, ValueError):  # the viewer left, or took nothing for IO_TIMEOUT_S
            pass
        finally:  # whatever ended it, an error of ours included (handle_error logs that)
            live.close_stream(kind, source, viewer)

    def _mjpeg(self, live: LiveState, source: int) -> None:
        self.wfile.write(b"--" + BOUNDARY + b"\r\n")
        last = 0
        while True:
            jpeg, seq, event = live.next_jpeg(last, source)
            if seq < 0:
                return
            if jpeg is None:  # nothing to send (no frame yet): no write would notice a viewer that left
                if _peer_gone(self.connection):
                    return
                continue
            # The boundary goes right after each image: browsers show a part once the next boundary
            # arrives, so sending it now shows the frame now, not one frame late.
            head = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n" % len(jpeg)
            head += b"".join(f"{k}: {v}\r\n".encode() for k, v in caption_headers(event).items())
            self.wfile.write(head + b"\r\n" + jpeg + b"\r\n--" + BOUNDARY + b"\r\n")
            live.sent("jpegs_sent")
            last = seq

    def _events(self, live: LiveState) -> None:
        intro, last = live.first_events()
        self.wfile.write(b"retry: 2000\n\n" + b"".join(event.wire() for event in intro))
        while True:
            batch, last = live.next_events(last)
            self.wfile.write(b"".join(event.wire() for event in batch) if batch else b": keepalive\n\n")
            live.sent("event_writes")
            if live.stopping:
                return  # after sending what was pending, such as the final "ended" state
            live.pause(EVENT_INTERVAL_S)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("live view, %s: %s", self.client_address[0], redact_url(format % args))


def _source(text: str) -> int | None:
    """The `?source=N` of a request (0 when absent); None for anything but a plain index."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else None


def caption_headers(event: Any) -> dict[str, str]:
    """`X-Event-Seq` (the SSE id of a JPEG's frame event) and `X-Event` (its frame, t, smoothed label and state,
    as ASCII JSON): the page writes a frame's caption from these, never from a newer event."""
    if event is None:
        return {}
    caption = {"seq": event.seq, **{k: event.data[k] for k in CAPTION_KEYS if k in event.data}}
    try:
        text = json.dumps(caption, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=str)
    except ValueError:  # a non-finite number: the caption is a nicety, the sequence number is enough
        return {"X-Event-Seq": str(event.seq)}
    return {"X-Event-Seq": str(event.seq), "X-Event": text}


def _peer_gone(sock: socket.socket) -> bool:
    """Whether the client closed its end: readable, and a peek reads the end of the stream (or fails)."""
    try:
        poller = select.poll()  # not select(): it fails on descriptors past 1024
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0)) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Server(ThreadingHTTPServer):
    """A thread per connection (daemon threads), a cap on open connections, and a way to cut them all."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True  # a restarted view binds again while old sockets sit in TIME_WAIT
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], live: LiveState, max_connections: int) -> None:
        self.live = live
        self.max_connections = max_connections
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for our fully qualified name, which can hang on a box without
        # DNS; the name is not used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = len(self._open) >= self.max_connections
            if not full:
                self._open.add(request)
        if not full:
            super().process_request(request, client_address)
            return
        try:  # non-blocking: the accepting thread never waits on a client
            request.setblocking(False)
            request.send(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        except OSError:
            pass
        self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def close_connections(self) -> None:
        """Cut every open connection, so that threads blocked on a slow client return at once."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("live view: a request from %s failed", client_address[0], exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_http_server(config: ServeConfig, live: LiveState) -> _Server:
    """Bind (not yet serve) the live view's HTTP server; ServeError when the address cannot be bound."""
    server_class = _Server6 if ":" in config.host else _Server
    try:
        return server_class((config.host, config.port), live, config.max_streams + EXTRA_CONNECTIONS)
    except OSError as exc:  # address in use, not an address of this machine, unknown host name, ...
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ServeError(f"Cannot serve the live view on {config.host}:{config.port} ({reason}).") from None
