"""The live view's server, driven by a fake producer on loopback: status JSON, events, MJPEG, the token, the
fixed set of paths, slow and many viewers, and a clean close. No browser here (see test_serve_browser.py)."""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np
import pytest

from mgc_edge.errors import UserError
from mgc_edge.runtime.sinks.web.config import (
    ServeConfig,
    ServeError,
    bearer,
    host_name,
    is_loopback,
    mask_token,
    parse_address,
    token_matches,
)
from mgc_edge.runtime.sinks.web.server import EVENT_RING, LiveServer
from mgc_edge.runtime.sources.urls import redact_url

TOKEN = "s3cret-Token-for-tests"
LABELS = ["11", "17", "24", "12", "23"]
NAMES = [
    "Touching jaw",
    "Folding arms",
    "Crossing fingers",
    "Touching or scratching neck",
    "Rubbing or holding hands",
]
SHOWN = 3  # the smoothed label cycles through the first three classes
MODEL_INFO = {
    "model": "tiny.onnx",
    "arch": "alexnet_bn",
    "precision": "fp32",
    "input_size": [64, 64],
    "labels": LABELS,
    "names": NAMES,
    "provider": "CPUExecutionProvider",
    "device": "cpu",
}
LOOP_STATUS = {  # the shape of the loop's status(), with what the page shows of it
    "running": True,
    "state": "live",
    "frames": {"read": 120, "classified": 118, "dropped": 2, "skipped": 0},
    "reconnects": 0,
    "source": "demo.mp4",
    "latency_ms": {"end_to_end": {"p50": 9.1, "p95": 12.4}},
}
TIMEOUT = 10.0  # every socket in these tests gives up after this long: nothing can hang


def make_event(i: int, hold: int = 25) -> dict[str, Any]:
    """The JSONL object of frame i; the smoothed label changes every `hold` frames, the top-5 wiggles."""
    k = (i // hold) % SHOWN
    wiggle = 0.04 * math.sin(i / 3)
    probs = (0.62 + wiggle, 0.17 - wiggle, 0.1, 0.07, 0.04)
    order = [k] + [j for j in range(len(LABELS)) if j != k]
    top = [{"label": LABELS[j], "name": NAMES[j], "prob": round(p, 4)} for j, p in zip(order, probs)]
    return {
        "frame": i,
        "t": round(i / 25, 3),
        "top": top,
        "smoothed": {"label": LABELS[k], "name": NAMES[k], "prob": round(0.58 + wiggle / 2, 4)},
        "latency_ms": {
            "capture": 0.1,
            "preprocess": 0.4,
            "inference": 7.9,
            "postprocess": 0.1,
            "draw": 0.6,
            "end_to_end": 9.4,
        },
        "state": "live",
        "fps": {"capture": 25.0, "inference": 24.8},
    }


def make_frame(i: int, size: tuple[int, int] = (180, 320)) -> np.ndarray:
    """A synthetic annotated frame that visibly changes from one frame to the next."""
    h, w = size
    img = np.full((h, w, 3), (40 + 60 * ((i // 25) % SHOWN), 30, 20), np.uint8)
    x = (i * 7) % (w - 40)
    cv2.rectangle(img, (x, h // 3), (x + 40, h // 3 + 40), (0, 200, 255), -1)
    cv2.putText(img, f"frame {i}", (10, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return img


class Producer(threading.Thread):
    """Stands in for the live loop: publishes frames and events to a sink at about `fps`."""

    def __init__(
        self,
        sink: Any,
        fps: float = 50.0,
        hold: int = 25,
        draw: Callable[[int], np.ndarray] = make_frame,
    ) -> None:
        super().__init__(daemon=True, name="fake-producer")
        self.sink, self.fps, self.hold, self.draw = sink, fps, hold, draw
        self.published: deque[dict[str, Any]] = deque(maxlen=2000)
        self.count = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            event = make_event(self.count, self.hold)
            self.sink.frame(self.draw(self.count), event)
            self.published.append(event)
            self.count += 1
            self._halt.wait(1.0 / self.fps)

    def stop(self) -> None:
        self._halt.set()
        self.join(TIMEOUT)


@contextmanager
def serving(token: str | None = None, **config: Any) -> Iterator[LiveServer]:
    server = LiveServer(
        ServeConfig(host="127.0.0.1", port=0, token=token, **config), MODEL_INFO, lambda: LOOP_STATUS
    )
    try:
        yield server
    finally:
        server.close()


def get(
    server: LiveServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@contextmanager
def stream(server: LiveServer, path: str) -> Iterator[http.client.HTTPResponse]:
    """An open streaming response, really closed at the end (the response holds the socket too)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    conn.request("GET", path)
    response = conn.getresponse()
    try:
        yield response
    finally:
        response.close()
        conn.close()


def read_events(response: http.client.HTTPResponse, count: int, kind: str = "frame") -> list[dict[str, Any]]:
    """The next `count` SSE messages of type `kind`, parsed."""
    found: list[dict[str, Any]] = []
    current = ""
    while len(found) < count:
        line = response.readline()
        assert line, "the event stream ended early"
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            current = text[7:]
        elif text.startswith("data: ") and current == kind:
            found.append(json.loads(text[6:]))
    return found


def read_parts(
    response: http.client.HTTPResponse, count: int, headers: list[dict[str, str]] | None = None
) -> list[bytes]:
    """The next `count` JPEG parts of a multipart/x-mixed-replace stream (each part's headers appended to
    `headers` when given)."""
    parts = []
    while len(parts) < count:
        line = response.readline()
        assert line, "the MJPEG stream ended early"
        if line.lower().startswith(b"content-type:"):
            head = {"Content-Type": line.split(b":", 1)[1].strip().decode()}
            while (line := response.readline()) != b"\r\n":
                assert line, "the MJPEG stream ended early"
                key, _, value = line.decode().partition(":")
                head[key] = value.strip()
            parts.append(response.read(int(head["Content-Length"])))
            if headers is not None:
                headers.append(head)
    return parts


def test_status_reports_model_loop_and_server() -> None:
    with serving() as server:
        Producer(server, fps=200).start()
        status, headers, body = get(server, "/api/status")
        assert status == 200 and headers["Content-Type"] == "application/json"
        report = json.loads(body)
        assert report["model"] == MODEL_INFO
        assert report["loop"] == LOOP_STATUS
        assert report["server"]["max_streams"] == 32 and report["server"]["streams"] == {
            "mjpeg": 0,
            "events": 0,
        }


def test_status_survives_a_failing_counter_and_non_finite_numbers() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("counter gone")

    with LiveServer(ServeConfig(port=0), {"fps": float("nan"), "n": np.int64(3)}, broken) as server:
        status, _, body = get(server, "/api/status")
        report = json.loads(body)  # strict JSON: NaN became null, numpy became a number
    assert status == 200
    assert report["loop"] == {"error": "RuntimeError: counter gone"}
    assert report["model"] == {"fps": None, "n": 3}


def test_events_carry_the_published_objects_in_order() -> None:
    with serving() as server:
        producer = Producer(server, fps=100)
        with stream(server, "/events") as response:
            assert response.status == 200
            assert response.getheader("Content-Type").startswith("text/event-stream")
            server.state({"state": "live", "message": "", "t": 0.0})
            producer.start()
            received = read_events(response, 30)
            producer.stop()
    published = list(producer.published)
    first = published.index(received[0])
    assert received == published[first : first + 30]  # every event, in order, as published


def test_a_new_event_stream_starts_with_the_current_state_and_newest_frame() -> None:
    with serving() as server:
        server.frame(make_frame(0), make_event(0))
        server.state({"state": "reconnecting", "message": "stream dropped, try 1 of 5", "t": 1.5})
        with stream(server, "/events") as response:
            assert read_events(response, 1, "frame") == [make_event(0)]
            assert read_events(response, 1, "state")[0]["state"] == "reconnecting"


def test_mjpeg_parts_decode_and_show_newer_frames() -> None:
    with serving(stream_fps=50) as server:
        producer = Producer(server, fps=60)
        producer.start()
        with stream(server, "/stream.mjpg") as response:
            assert response.status == 200
            assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=mgcframe"
            parts = read_parts(response, 4)
        producer.stop()
    images = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert all(img is not None and img.shape == (180, 320, 3) for img in images)
    assert any(np.abs(a.astype(int) - b.astype(int)).mean() > 1 for a, b in zip(images, images[1:]))


def test_snapshot_is_the_newest_frame() -> None:
    with serving() as server:
        assert get(server, "/frame.jpg")[0] == 503  # nothing published yet
        server.frame(make_frame(3), make_event(3))
        status, headers, body = get(server, "/frame.jpg")
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert np.abs(img.astype(int) - make_frame(3).astype(int)).mean() < 6  # JPEG-close to frame 3


def source_frame(index: int, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A flat frame whose colour says which source it came from."""
    return np.full((*size, 3), (60 * index, 200 - 60 * index, 90), np.uint8)


def source_event(index: int, i: int) -> dict[str, Any]:
    return {**make_event(i), "source": {"index": index, "name": f"rtsp://cam{index}"}}


def test_several_sources_have_their_own_frames_streams_and_states() -> None:
    with serving(stream_fps=50) as server:
        for index in (0, 1, 2):
            server.frame(source_frame(index), source_event(index, 10 + index))
        server.state(
            {"state": "reconnecting", "message": "dropped", "t": 2.0, "source": source_event(1, 0)["source"]}
        )
        for index in (0, 1, 2):
            status, _, body = get(server, f"/frame.jpg?source={index}")
            img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            assert status == 200 and np.abs(img.astype(int) - source_frame(index).astype(int)).mean() < 4
        assert get(server, "/frame.jpg?source=7")[0] == 404  # no such source
        for bad in ("-1", "x", "99999"):
            assert get(server, f"/frame.jpg?source={bad}")[0] == 404
            assert get(server, f"/stream.mjpg?source={bad}")[0] == 404
        with stream(server, "/stream.mjpg?source=2") as response:
            server.frame(source_frame(0), source_event(0, 20))  # another source's frame is not this stream's
            server.frame(source_frame(2), source_event(2, 21))
            parts = read_parts(response, 2)
        for part in parts:
            img = cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)
            assert np.abs(img.astype(int) - source_frame(2).astype(int)).mean() < 4
        # A new viewer starts with the newest frame of every source and each one's state.
        with stream(server, "/events") as response:
            frames = read_events(response, 3, "frame")
        assert sorted(e["source"]["index"] for e in frames) == [0, 1, 2]
        assert {e["frame"] for e in frames} == {20, 11, 21}
        with stream(server, "/events") as response:
            states = read_events(response, 1, "state")
        assert states[0]["source"]["index"] == 1 and states[0]["state"] == "reconnecting"


def test_the_loop_draws_for_the_view_only_while_someone_watches(tmp_path: Any) -> None:
    with serving() as server:
        assert server.wants_image is False  # nobody watches: the loop need not draw for it
        with stream(server, "/stream.mjpg"):
            deadline = time.monotonic() + TIMEOUT
            while not server.wants_image:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        get(server, "/frame.jpg?source=1")  # a tile asking for its frame
        assert server.wants_image is True


def test_the_token_is_required_on_every_request() -> None:
    with serving(token=TOKEN) as server:
        for path in (
            "/",
            "/app.js",
            "/tiles.js",
            "/style.css",
            "/api/status",
            "/events",
            "/stream.mjpg",
            "/frame.jpg",
            "/nope",
        ):
            status, headers, body = get(server, path)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
            assert TOKEN.encode() not in body
        assert get(server, "/api/status?token=wrong")[0] == 401
        assert get(server, "/api/status", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(server, "/api/status", {"Authorization": f"Basic {TOKEN}"})[0] == 401
        assert get(server, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(server, f"/api/status?token={TOKEN}")[0] == 200
        # The page opened with ?token= asks for its own files with the token too; through the header, without.
        status, _, page = get(server, f"/?token={TOKEN}")
        assert status == 200 and f'href="style.css?token={TOKEN}"'.encode() in page
        _, _, page = get(server, "/", {"Authorization": f"Bearer {TOKEN}"})
        assert b'href="style.css"' in page and TOKEN.encode() not in page


def test_a_loopback_view_answers_only_to_loopback_host_names() -> None:
    with serving() as server:
        for host in ("evil.example:8080", "192.168.1.20", "attacker.com"):
            assert get(server, "/api/status", {"Host": host})[0] == 403, host
        for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]:80", "app.localhost"):
            assert get(server, "/api/status", {"Host": host})[0] == 200, host


def test_token_helpers_hide_and_compare() -> None:
    assert TOKEN not in mask_token(TOKEN) and mask_token(TOKEN).startswith("s3***")
    assert mask_token("short") == "***(5 chars)" and mask_token(None) == "(none)"
    assert redact_url(f"GET /events?x=1&token={TOKEN} HTTP/1.1") == "GET /events?x=1&token=*** HTTP/1.1"
    assert bearer(f"Bearer {TOKEN}") == TOKEN and bearer(f"Basic {TOKEN}") is None and bearer(None) is None
    assert token_matches([None, "no", TOKEN], TOKEN) and not token_matches(
        ["no", TOKEN[:-1], "\udcff"], TOKEN
    )


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/..%2f..%2fpyproject.toml",
        "/%2e%2e/serve.py",
        "/web/index.html",
        "/serve.py",
        "//etc/passwd",
        "/static/../../../../etc/passwd",
        "/index.html/..",
        "/app.js%00.html",
        "/api/status/../../serve.py",
    ],
)
def test_only_the_page_assets_exist(path: str) -> None:
    with serving() as server:
        assert get(server, path)[0] == 404


def test_the_page_assets_are_served_with_their_types() -> None:
    with serving() as server:
        for path, kind, marker in [
            ("/", "text/html", b"<!doctype html>"),
            ("/index.html", "text/html", b"app.js"),
            ("/app.js", "text/javascript", b"EventSource"),
            ("/state.js", "text/javascript", b"function current("),
            ("/timeline.js", "text/javascript", b"function renderTimeline("),
            ("/frames.js", "text/javascript", b"X-Event"),
            ("/tiles.js", "text/javascript", b"function renderTiles("),
            ("/style.css", "text/css", b".layout"),
        ]:
            status, headers, body = get(server, path)
            assert status == 200 and headers["Content-Type"].startswith(kind) and marker in body, path
            assert (
                headers["X-Content-Type-Options"] == "nosniff"
                and "default-src 'self'" in headers["Content-Security-Policy"]
            )


def test_a_viewer_that_reads_nothing_never_slows_the_producer() -> None:
    # Large incompressible frames and a fast encoder fill the stuck viewer's socket buffers within a second.
    noise = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), np.uint8)
    with serving(stream_fps=100, jpeg_quality=95) as server:
        stuck = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + TIMEOUT
        sent = -1
        while time.monotonic() < deadline:  # until the viewer's thread is blocked: no more parts go out
            for _ in range(20):
                server.frame(np.roll(noise, 1, axis=1), make_event(0))
                time.sleep(0.01)
            now = server.status()["server"]["jpegs_sent"]
            if now == sent and server.status()["server"]["jpegs"] > now + 5:
                break
            sent = now
        else:
            pytest.fail("the stuck viewer never filled its buffers")
        calls, slowest, started = 0, 0.0, time.perf_counter()
        for i in range(3000):
            t0 = time.perf_counter()
            server.frame(noise, make_event(i))
            slowest = max(slowest, time.perf_counter() - t0)
            calls += 1
        elapsed = time.perf_counter() - started
        report = server.status()["server"]
        assert get(server, "/api/status")[0] == 200  # other requests still served meanwhile
        closing = time.monotonic()
        server.close()  # cuts the stuck viewer after a short grace
        closed_after = time.monotonic() - closing
        deadline = time.monotonic() + TIMEOUT
        while server.status()["server"]["streams"]["mjpeg"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.status()["server"]["streams"]["mjpeg"] == 0
        stuck.close()
    assert closed_after < 5.0  # about half a second (the grace); generous for a loaded box
    assert calls == 3000 and report["streams"]["mjpeg"] == 1
    assert report["jpegs_sent"] == sent  # still stuck, yet the producer went on
    # Generous bounds (a loaded CI box): frame() costs microseconds, never a viewer's write.
    assert elapsed < 3.0 and slowest < 0.5


def test_the_last_state_reaches_the_viewers_before_close_ends_their_streams() -> None:
    with serving() as server:
        server.frame(make_frame(0), make_event(0))
        with stream(server, "/events") as response:
            assert read_events(response, 1) == [make_event(0)]
            server.state({"state": "ended", "message": "end of source", "t": 2.0})
            server.close()
            assert read_events(response, 1, "state") == [
                {"state": "ended", "message": "end of source", "t": 2.0}
            ]
            assert response.read().strip() == b""  # and then the stream ends


def test_the_event_ring_stays_bounded() -> None:
    with serving() as server:
        frame = make_frame(0)
        for i in range(5 * EVENT_RING):
            server.frame(frame, make_event(i))
        assert len(server._events) == EVENT_RING
        with stream(server, "/events") as response:
            assert read_events(response, 1) == [make_event(5 * EVENT_RING - 1)]  # starts at the newest


def test_many_viewers_then_a_cap_then_close_ends_them_all() -> None:
    viewers = 20
    with serving(max_streams=viewers, stream_fps=30) as server:
        producer = Producer(server, fps=60)
        producer.start()
        ended = [threading.Event() for _ in range(viewers)]
        got_data = [threading.Event() for _ in range(viewers)]

        def watch(i: int) -> None:
            path = "/stream.mjpg" if i % 2 else "/events"
            try:
                with stream(server, path) as response:
                    while response.read1(1024):
                        got_data[i].set()
            except OSError:
                pass
            finally:
                ended[i].set()

        threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(viewers)]
        for thread in threads:
            thread.start()
        assert all(e.wait(TIMEOUT) for e in got_data)
        streams = server.status()["server"]["streams"]
        assert streams == {"mjpeg": viewers // 2, "events": viewers // 2}
        assert get(server, "/stream.mjpg")[0] == 503  # the cap
        assert get(server, "/api/status")[0] == 200  # the rest still works
        closing = time.monotonic()
        server.close()
        assert all(e.wait(TIMEOUT) for e in ended)
        closed_after = time.monotonic() - closing
        producer.stop()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT).close()
    assert closed_after < 5.0  # about a second in practice; generous for a loaded box


def test_idle_connections_are_capped_too() -> None:
    # Connections that never send a request hold a thread each until IO_TIMEOUT_S: their number is capped.
    with serving(max_streams=1) as server:
        limit = server._httpd.max_connections
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) for _ in range(limit)]
        try:
            deadline = time.monotonic() + TIMEOUT
            while len(server._httpd._open) < limit and time.monotonic() < deadline:
                time.sleep(0.01)
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as extra:
                extra.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert extra.recv(1024).startswith(b"HTTP/1.1 503")
        finally:
            for sock in idle:
                sock.close()


def test_viewers_that_leave_free_their_slots() -> None:
    with serving(max_streams=2) as server:
        producer = Producer(server, fps=60)
        producer.start()
        for _ in range(6):  # three times the cap, each leaving after its first part
            with stream(server, "/stream.mjpg") as response:
                assert response.status == 200
                read_parts(response, 1)
            deadline = time.monotonic() + TIMEOUT
            while server.status()["server"]["streams"]["mjpeg"] and time.monotonic() < deadline:
                server.frame(make_frame(0), make_event(0))  # the next write notices the viewer left
                time.sleep(0.02)
        producer.stop()
        assert server.status()["server"]["streams"] == {"mjpeg": 0, "events": 0}


def test_close_is_idempotent_and_later_frames_are_ignored() -> None:
    server = LiveServer(ServeConfig(port=0), MODEL_INFO, dict)
    server.close()
    server.close()
    server.frame(make_frame(0), make_event(0))
    server.state({"state": "ended", "message": "", "t": 0.0})
    assert server.status()["server"]["frames"] == 0


def test_a_port_in_use_is_one_clear_error() -> None:
    with serving() as server:
        with pytest.raises(ServeError, match=r"Cannot serve the live view on 127\.0\.0\.1:\d+ \(.+\)\.$"):
            LiveServer(ServeConfig(port=server.port), MODEL_INFO, dict)
    assert issubclass(ServeError, UserError)


def test_parse_address_and_banner() -> None:
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:8000") == ("::1", 8000)
    for bad in ("", "abc", ":80", "host:", "1.2.3.4:99999", "[::1]8000"):
        with pytest.raises(ServeError, match="--serve takes PORT or HOST:PORT"):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("192.168.1.20")
        and not is_loopback("evil.localhost.com")
    )
    assert (
        host_name("127.0.0.1:8080") == "127.0.0.1"
        and host_name("[::1]:80") == "::1"
        and host_name("::1") == "::1"
    )
    with serving(token=TOKEN) as server:
        banner = "\n".join(server.banner())
    assert f"http://127.0.0.1:{server.port}/" in banner and "?token=<token>" in banner and TOKEN not in banner
