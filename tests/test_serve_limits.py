"""The live view's limits hold on an unattended box: unknown sources are refused without taking a slot, a slot
comes back however its connection ends, and a good viewer still gets frames and events after a run of bad and
abandoned requests. Also what the page needs to show the truth now: `viewers`, each source's state and since
when, and the event each JPEG was drawn for. Loopback only; every wait is bounded."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import cv2
import numpy as np
import pytest
from test_serve import TIMEOUT, TOKEN, get, make_event, read_events, read_parts, stream

import mgc_edge.runtime.sinks.web.server as server_module
from mgc_edge.runtime.sinks.web.config import ServeConfig
from mgc_edge.runtime.sinks.web.http import _Handler
from mgc_edge.runtime.sinks.web.server import LiveServer

MODEL = {"model": "tiny.onnx", "labels": ["1", "2"], "names": ["one", "two"]}


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that stalls is dropped after 1 s, and an idle stream looks for its viewer every 0.3 s (10 s
    and 5 s in use), so that the abandoned requests below end within the test's time."""
    monkeypatch.setattr(_Handler, "timeout", 1.0)
    monkeypatch.setattr(server_module, "KEEPALIVE_S", 0.3)


def coloured(i: int) -> np.ndarray:
    """A flat frame whose grey level says its number (mod 50), JPEG-safe to a few levels."""
    return np.full((96, 128, 3), 20 + 4 * (i % 50), np.uint8)


def number_of(jpeg: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return round((float(image.mean()) - 20) / 4)


class Camera(threading.Thread):
    """Publishes frames of source 0 (flat and numbered, or big noisy ones that fill a socket) until stopped."""

    def __init__(self, server: LiveServer, fps: float = 40.0, noisy: bool = False) -> None:
        super().__init__(daemon=True, name="fake-camera")
        self.server, self.fps, self.count = server, fps, 0
        self.noise = np.random.default_rng(0).integers(0, 256, (360, 640, 3), np.uint8) if noisy else None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            i = self.count
            image = coloured(i) if self.noise is None else np.roll(self.noise, i, axis=1)
            self.server.frame(image, {**make_event(i), "source": {"index": 0, "name": "cam"}})
            self.count += 1
            self._halt.wait(1.0 / self.fps)

    def stop(self) -> None:
        self._halt.set()
        self.join(TIMEOUT)


@contextmanager
def live(sources: int | None = 2, token: str | None = None, **config: Any) -> Iterator[LiveServer]:
    server = LiveServer(ServeConfig(port=0, token=token, **config), MODEL, dict, sources=sources)
    try:
        yield server
    finally:
        server.close()


def settle(server: LiveServer, want: dict[str, int], seconds: float = TIMEOUT) -> dict[str, Any]:
    """Wait (bounded) until the server's stream counts are `want`; its status then."""
    deadline = time.monotonic() + seconds
    while True:
        report = server.status()["server"]
        if report["streams"] == want or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def raw(server: LiveServer, request: bytes, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    if request:
        sock.sendall(request)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a browser tab that is killed does."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def request(path: str, token: str | None = TOKEN) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


def test_unknown_sources_are_404_on_every_route_and_take_no_slot() -> None:
    with live(sources=2, max_streams=2) as server:
        for _ in range(10):  # many times the cap
            for path in ("/stream.mjpg", "/events", "/frame.jpg", "/api/status", "/"):
                for bad in ("2", "5", "4095", "-1", "x", "1e3", "%D9%A3"):
                    assert get(server, f"{path}?source={bad}")[0] == 404, (path, bad)
        report = server.status()["server"]
        assert report["streams"] == {"mjpeg": 0, "events": 0} and report["refused_streams"] == 0
        assert [s["index"] for s in report["sources"]] == []  # nothing kept for a source that does not exist
        assert get(server, "/frame.jpg?source=1")[0] == 503  # a real source without a frame yet
        with stream(server, "/stream.mjpg?source=1") as response:  # its stream is open while it has none
            assert response.status == 200
    # Without a count: source 0, and the sources that published something.
    with live(sources=None) as server:
        assert get(server, "/frame.jpg?source=3")[0] == 404
        server.frame(coloured(1), {**make_event(1), "source": {"index": 3, "name": "cam3"}})
        assert get(server, "/frame.jpg?source=3")[0] == 200 and get(server, "/frame.jpg")[0] == 503


def test_a_slot_comes_back_when_its_stream_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    with live() as server:
        Camera(server).start()

        def broken(last: int, source: int = 0) -> Any:
            raise RuntimeError("a bug in a stream")

        monkeypatch.setattr(server, "next_jpeg", broken)
        monkeypatch.setattr(server, "first_events", lambda: (_ for _ in ()).throw(KeyError("intro")))
        for path in ("/stream.mjpg", "/events"):
            with stream(server, path) as response:
                assert response.status == 200
                response.read()  # the server ends it
        assert settle(server, {"mjpeg": 0, "events": 0})["streams"] == {"mjpeg": 0, "events": 0}


def test_a_viewer_that_left_a_stream_with_nothing_to_send_frees_its_slot(quick: None) -> None:
    # Source 1 never has a frame: its stream writes nothing, so only a look at the socket sees the viewer go.
    with live(max_streams=2) as server:
        for _ in range(5):
            sock = raw(server, request("/stream.mjpg?source=1", None))
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sock.close()
            assert settle(server, {"mjpeg": 0, "events": 0}, 3.0)["streams"]["mjpeg"] == 0


@pytest.mark.slow
def test_after_bad_and_abandoned_requests_a_good_viewer_still_gets_frames_and_events(quick: None) -> None:
    cap = 4
    with live(sources=2, token=TOKEN, max_streams=cap, stream_fps=30, jpeg_quality=95) as server:
        camera = Camera(server, fps=30, noisy=True)  # ~0.4 MB JPEGs: a viewer that reads nothing stalls fast
        camera.start()
        started = time.monotonic()
        for _ in range(3):  # each round opens more streams than the cap holds
            held: list[socket.socket] = []
            for path in ("/stream.mjpg?source=7", "/events?source=2", "/frame.jpg?source=9"):
                held.append(raw(server, request(path)))  # unknown sources: 404
            for path in ("/stream.mjpg?token=wrong", "/events", "/frame.jpg"):
                held.append(raw(server, request(path, "wrong")))  # bad tokens: 401
            held.append(raw(server, b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"))  # half a request
            held.append(raw(server, b""))  # connects, says nothing
            for path in ("/stream.mjpg", "/events"):  # connect, never read
                held.append(raw(server, request(path), rcvbuf=4096))
            for path in ("/stream.mjpg", "/events", "/stream.mjpg?source=1"):  # leave mid-stream
                sock = raw(server, request(path))
                sock.recv(2048)
                reset(sock) if path == "/events" else sock.close()
            for sock in held[:6]:  # the refused ones got their answer
                answer = sock.recv(64)
                assert answer.startswith((b"HTTP/1.1 404", b"HTTP/1.1 401")), answer
            for sock in held[:6]:
                sock.close()
            time.sleep(1.5)  # the stalled ones are dropped after their 1 s timeout
            for sock in held[6:]:
                reset(sock)
        report = settle(server, {"mjpeg": 0, "events": 0})
        assert report["streams"] == {"mjpeg": 0, "events": 0}, report
        assert time.monotonic() - started < 30
        # A good viewer: frames and events, in the same slots the others left.
        for _ in range(cap + 1):
            with stream(server, f"/stream.mjpg?token={TOKEN}") as response:
                assert response.status == 200 and len(read_parts(response, 2)) == 2
            with stream(server, f"/events?token={TOKEN}") as response:
                assert response.status == 200 and len(read_events(response, 3)) == 3
        camera.stop()
        report = settle(server, {"mjpeg": 0, "events": 0})
        _, _, body = get(server, "/api/status", {"Authorization": f"Bearer {TOKEN}"})
        status = json.loads(body)["server"]
    assert status["streams"] == {"mjpeg": 0, "events": 0} and status["viewers"] == 0
    assert status["connections"] <= 1  # this request's own


def test_viewers_count_pages_whatever_they_stream() -> None:
    with live() as server:
        Camera(server).start()
        with (
            stream(server, "/events?viewer=page-a") as events_a,
            stream(server, "/stream.mjpg?viewer=page-a") as video_a,
            stream(server, "/events?viewer=page-b") as events_b,
            stream(server, "/events") as script,  # no id: one viewer per stream
            stream(server, "/events?viewer=%2e%2e%2f") as odd,  # an id that is not one
        ):
            assert all(r.status == 200 for r in (events_a, video_a, events_b, script, odd))
            report = server.status()["server"]
            assert report["viewers"] == 4 and report["streams"] == {"mjpeg": 1, "events": 4}
        assert settle(server, {"mjpeg": 0, "events": 0})["viewers"] == 0


def test_each_jpeg_carries_the_event_it_was_drawn_for() -> None:
    with live(stream_fps=30) as server:
        camera = Camera(server, fps=40)
        camera.start()
        headers: list[dict[str, str]] = []
        with stream(server, "/stream.mjpg") as response:
            parts = read_parts(response, 12, headers)
        snapshots = [get(server, "/frame.jpg") for _ in range(6)]
        camera.stop()
    frames = []
    for jpeg, head in [*zip(parts, headers), *((body, h) for _, h, body in snapshots)]:
        caption = json.loads(head["X-Event"])
        assert int(head["X-Event-Seq"]) == caption["seq"] and caption["state"] == "live"
        assert caption["smoothed"] == make_event(caption["frame"])["smoothed"]
        assert number_of(jpeg) == caption["frame"] % 50  # the picture is that event's frame
        frames.append(caption["frame"])
    assert len(set(frames)) > 3  # the frames moved on meanwhile


def test_status_says_each_sources_state_since_when_and_its_newest_frames_age() -> None:
    def loop_status() -> dict[str, Any]:
        return {"sources": [{"index": 0, "state": "live"}, {"index": 1, "state": "live", "state_since": 5.0}]}

    with LiveServer(ServeConfig(port=0), MODEL, loop_status, sources=2) as server:
        server.frame(coloured(1), {**make_event(1), "source": {"index": 0, "name": "a"}})
        before = time.time()
        tag = {"index": 1, "name": "b"}
        server.state({"state": "reconnecting", "message": "try 1", "t": 1.0, "source": tag})
        first = server.status()["server"]["sources"][1]["state_since"]
        time.sleep(0.05)
        server.state({"state": "reconnecting", "message": "try 2", "t": 3.0, "source": tag})  # same state
        report = server.status()
    seen = {s["index"]: s for s in report["server"]["sources"]}
    assert seen[1]["state"] == "reconnecting" and seen[1]["state_since"] == first  # since the first
    assert before - 0.01 <= first < before + 2
    assert seen[1]["last_frame_age_s"] is None and 0.05 <= seen[0]["last_frame_age_s"] < 5
    assert seen[0]["state"] == "live" and abs(report["server"]["time"] - time.time()) < 5
    # The loop's own `state_since` wins; where it has none, the server's is filled in.
    loop = {s["index"]: s for s in report["loop"]["sources"]}
    assert loop[1]["state_since"] == 5.0 and loop[0]["state_since"] == seen[0]["state_since"]


class NoFrames:
    """A state that serves a page and a status but no frames (as the fleet page does): no `has_source`."""

    config = ServeConfig(port=0)
    pages = {"index.html": b"<!doctype html>", "index.html+token": b"", "app.js": b"", "style.css": b""}
    loopback_only = True
    stopping = False

    def status(self) -> dict[str, Any]:
        return {"boxes": 1}


def test_a_state_without_frames_answers_its_page_and_status_and_404_for_frames() -> None:
    from mgc_edge.runtime.sinks.web.http import make_http_server

    state = NoFrames()
    httpd = make_http_server(state.config, state)  # type: ignore[arg-type]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        server: Any = type("Address", (), {"port": httpd.server_address[1]})()
        assert get(server, "/api/status")[2] == b'{"boxes":1}' and get(server, "/")[0] == 200
        for path in ("/events", "/stream.mjpg", "/frame.jpg", "/frame.jpg?source=1", "/?source=1"):
            assert get(server, path)[0] == 404, path
    finally:
        httpd.shutdown()
        httpd.server_close()
