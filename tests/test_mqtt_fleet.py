"""The fleet view: `FleetState` from hand-made messages, and `mgc-edge fleet` end to end with two boxes
publishing to a real broker (tests/mqtt_broker.py), its page in Debian's Chromium and its token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import served_url
from mqtt_broker import Mosquitto, free_port, need_mosquitto
from test_runtime_loop import colour_model, colour_video
from test_serve_browser import browser, until  # noqa: F401  (browser is a fixture)

from mgc_edge.runtime.fleet.state import SILENT_S, FleetState

TOKEN = "fleet-token-0123456789abcdef"
LIVE_PORT = free_port()  # room1's own live view, which its tile links to


def test_the_fleet_state_follows_status_and_events() -> None:
    now = [100.0]
    state = FleetState("lab", clock=lambda: now[0])
    status = {"box": "r1", "state": "online", "model": "m.onnx", "live": "http://r1:8080/",
              "sources": [{"index": 0, "name": "cam", "state": "live", "fps": {"inference": 9.5}}]}  # fmt: skip
    state.message("lab/r1/status", json.dumps(status).encode())
    event = {"source": {"index": 0, "name": "cam"}, "frame": 7, "state": "live", "seq": 3,
             "smoothed": {"label": "2", "name": "nod", "prob": 0.8}, "fps": {"inference": 10.0}}  # fmt: skip
    now[0] += 2
    state.message("lab/r1/0/events", json.dumps(event).encode())
    state.message("lab/r1/0/events", b"not json")
    state.message("other/r1/status", b"{}")
    box = state.snapshot()["boxes"][0]
    assert (box["box"], box["state"], box["model"], box["live"]) == (
        "r1",
        "online",
        "m.onnx",
        "http://r1:8080/",
    )
    source = box["sources"][0]
    assert source["label"]["name"] == "nod" and source["frame"] == 7 and source["last_seen_s"] == 0.0
    assert state.snapshot()["unreadable"] == 2
    now[0] += SILENT_S + 1
    assert state.snapshot()["boxes"][0]["state"] == "silent"  # online by its retained status, but unheard
    state.message("lab/r1/status", json.dumps({**status, "state": "offline"}).encode())
    assert state.snapshot()["boxes"][0]["state"] == "offline"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_mosquitto()
    pytest.importorskip("paho.mqtt.client")
    root = tmp_path_factory.mktemp("fleet")
    colour_video(root / "long.mp4", segments=[("1", 40), ("3", 40), ("2", 40)], fps=20.0)
    return {"model": colour_model(root / "colour.onnx"), "long": root / "long.mp4"}


class FleetCommand:
    """`mgc-edge fleet URL --serve 127.0.0.1:0` in a child process; `url` is read from its banner."""

    def __init__(self, broker_url: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MGC_EDGE_TOKEN": TOKEN}
        command = [sys.executable, "-m", "mgc_edge", "fleet", broker_url, "--serve", "127.0.0.1:0"]
        self.proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.stderr: list[str] = []
        self.url = served_url(self.proc, "Fleet view:", self.stderr)

    def status(self, token: str | None = TOKEN) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + "api/status")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None


@pytest.fixture
def fleet_of_two(
    media: dict[str, Path], tmp_path: Path
) -> Iterator[tuple[FleetCommand, list[subprocess.Popen[str]]]]:
    with Mosquitto(tmp_path / "broker") as broker:
        view = FleetCommand(broker.url(prefix="lab"))
        boxes = []
        for name, sources in (("room1", 1), ("room2", 2)):
            command = [sys.executable, "-m", "mgc_edge", "webcam", str(media["model"])]
            command += ["--source", str(media["long"])] * sources
            command += ["--realtime", "--display", "off", "--device", "cpu", "--box", name]
            command += ["--publish", broker.url(prefix="lab"), "--publish-spool", str(tmp_path / name)]
            command += ["--serve", f"0.0.0.0:{LIVE_PORT}"] if name == "room1" else []
            boxes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            )
        try:
            yield view, boxes
        finally:
            for proc in [*boxes, view.proc]:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


@pytest.mark.slow
def test_the_fleet_page_shows_two_boxes_and_their_cameras(browser: Any, fleet_of_two: Any) -> None:  # noqa: F811
    view, boxes = fleet_of_two
    assert view.status(token=None)[0] == 401
    page = browser.new_page()
    try:
        page.goto(view.url + f"?token={TOKEN}")
        until(
            page,
            "document.querySelectorAll('.box').length === 2 && document.querySelectorAll('.box .tile').length === 3",
        )
        until(page, "[...document.querySelectorAll('.tile .state')].every(e => e.textContent === 'live')")
        names = page.evaluate("() => [...document.querySelectorAll('.box-name')].map(e => e.textContent)")
        assert names == ["room1", "room2"]
        # a label that the colour video changes every 2 s changes on the page too
        first = page.evaluate("() => document.querySelector('.tile .tile-now').textContent")
        until(page, "document.querySelector('.tile .tile-now').textContent !== arg", first)
        links = page.evaluate(
            "() => [...document.querySelectorAll('.box a.chip')].map(a => [a.closest('.box').dataset.box, a.href])"
        )
        assert len(links) == 1 and links[0][0] == "room1" and links[0][1].endswith(f":{LIVE_PORT}/")
        for proc in boxes:
            proc.wait(60)
        until(
            page, "[...document.querySelectorAll('.box-head .state')].every(e => e.textContent === 'offline')"
        )
        until(page, "[...document.querySelectorAll('.tile .state')].every(e => e.textContent === 'ended')")
        page.screenshot(path=str(Path(os.environ.get("MGC_EDGE_SHOTS", "/tmp")) / "fleet.png"))
    finally:
        page.close()
    code, status = view.status()
    assert code == 200 and [b["box"] for b in status["boxes"]] == ["room1", "room2"]
    assert [len(b["sources"]) for b in status["boxes"]] == [1, 2] and status["broker"]["connected"]
    for proc in boxes:
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


@pytest.mark.slow
def test_fleet_refuses_a_wrong_password_in_one_sentence(media: dict[str, Path], tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker", users={"viewer": "right-password"}) as broker:
        command = [
            sys.executable,
            "-m",
            "mgc_edge",
            "fleet",
            broker.url("viewer", "wrong-password"),
            "--serve",
            "0",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "refused the connection" in result.stderr
    assert "wrong-password" not in result.stderr and "Traceback" not in result.stderr
