"""The soak's viewer on the live view: a plain HTTP client, not a browser. One /events stream, one /stream.mjpg
of one source and a /frame.jpg of every source each second (as the page's tiles ask), all under one `?viewer=`
id, each reconnecting when its stream ends; and /api/status, compacted for the soak's samples."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

VIEWER_ID = "soak-viewer"
READ_TIMEOUT_S = 20.0  # the live view writes to an open stream at least every 5 s


class Viewer:
    """Three kinds of requests in threads of their own; `counts()` says what came back."""

    def __init__(self, url: str, video_source: int, sources: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.video_source, self.sources = video_source, sources
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._counts = {
            "frame_events": 0, "state_events": 0, "jpegs": 0, "snapshots": 0, "no_frame_yet": 0,
            "refused": 0, "stream_restarts": 0, "errors": 0,
        }  # fmt: skip
        self._open: set[http.client.HTTPConnection] = set()
        self._threads = [
            threading.Thread(target=self._loop, args=(self._events,), daemon=True, name="soak-events"),
            threading.Thread(target=self._loop, args=(self._mjpeg,), daemon=True, name="soak-mjpeg"),
            threading.Thread(target=self._tiles, daemon=True, name="soak-tiles"),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._halt.set()
        with self._lock:
            for conn in list(self._open):
                if conn.sock is not None:
                    try:
                        conn.sock.shutdown(2)
                    except OSError:
                        pass
        for thread in self._threads:
            thread.join(10)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def _add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def _connect(self, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=READ_TIMEOUT_S)
        with self._lock:
            self._open.add(conn)
        conn.request("GET", path)
        return conn, conn.getresponse()

    def _loop(self, body: Any) -> None:
        """Run a stream reader again and again until stopped (2 s apart, as the page's EventSource does)."""
        while not self._halt.is_set():
            conn = None
            try:
                conn = body()
            except (OSError, http.client.HTTPException, ValueError):
                if not self._halt.is_set():
                    self._add("errors")
            finally:
                if conn is not None:
                    with self._lock:
                        self._open.discard(conn)
                    conn.close()
            if not self._halt.is_set():
                self._add("stream_restarts")
                self._halt.wait(2.0)

    def _events(self) -> http.client.HTTPConnection:
        conn, response = self._connect(f"/events?viewer={VIEWER_ID}")
        if response.status != 200:
            self._add("refused")
            return conn
        while not self._halt.is_set():
            line = response.readline()
            if not line:
                break
            if line.startswith(b"event: frame"):
                self._add("frame_events")
            elif line.startswith(b"event: state"):
                self._add("state_events")
        return conn

    def _mjpeg(self) -> http.client.HTTPConnection:
        conn, response = self._connect(f"/stream.mjpg?source={self.video_source}&viewer={VIEWER_ID}")
        if response.status != 200:
            self._add("refused")
            return conn
        while not self._halt.is_set():
            line = response.readline()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                while response.readline() not in (b"\r\n", b""):
                    pass
                if len(response.read(length)) == length:
                    self._add("jpegs")
        return conn

    def _tiles(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=READ_TIMEOUT_S)
        with self._lock:
            self._open.add(conn)
        while not self._halt.wait(1.0):
            for source in range(self.sources):
                try:
                    conn.request("GET", f"/frame.jpg?source={source}")
                    response = conn.getresponse()
                    response.read()
                    if response.status == 200:
                        self._add("snapshots")
                    elif response.status == 503:
                        self._add("no_frame_yet")
                    else:
                        self._add("refused")
                except (OSError, http.client.HTTPException):
                    if self._halt.is_set():
                        return
                    self._add("errors")
                    conn.close()  # the next request connects again
        conn.close()


def api_status(url: str) -> dict[str, Any] | None:
    """/api/status without what the soak does not follow (latency, the last event, the model); None when it
    does not answer within 10 s."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    try:
        conn.request("GET", "/api/status")
        response = conn.getresponse()
        report = json.loads(response.read())
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    loop = {k: v for k, v in report.get("loop", {}).items() if k not in ("last", "latency_ms", "sources")}
    loop["sources"] = [
        {k: v for k, v in s.items() if k not in ("latency_ms", "smoothed", "name")}
        for s in report.get("loop", {}).get("sources", [])
    ]
    server = {k: v for k, v in report.get("server", {}).items() if k not in ("max_streams", "stream_fps")}
    return {"t": round(time.time(), 1), "loop": loop, "server": server}
