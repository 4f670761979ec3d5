"""`mgc-edge webcam --serve` end to end: the real command on a generated video at --realtime pace, its page in
Debian's Chromium, /api/status, the MJPEG stream, the token, and many viewers at once.

The command runs in its own process, as a user runs it; the browser and the viewers are other clients on
127.0.0.1. Skipped, with the reason, only where no Chromium binary exists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import served_url
from test_runtime_loop import colour_model, colour_video
from test_serve_browser import WAIT_MS, browser, until  # noqa: F401  (browser is a fixture)

pytestmark = pytest.mark.slow

TOKEN = "e2e-token-0123456789abcdef"
LABELS = ("1", "2", "3")
NAMES = ("class 1", "class 2", "class 3")  # the colour model's human names
SEGMENTS = [("1", 40), ("3", 40), ("2", 40)] * 3  # 2 s per label at 20 fps: 18 s in all


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-e2e")
    colour_video(root / "video.mp4", segments=SEGMENTS, fps=20.0)
    return {"model": colour_model(root / "colour.onnx"), "video": root / "video.mp4", "root": root}


class Webcam:
    """`mgc-edge webcam ... --serve 127.0.0.1:0` in a child process; `url` is read from its banner."""

    def __init__(self, model: Path, video: Path, jsonl: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MGC_EDGE_TOKEN": TOKEN}
        command = [sys.executable, "-m", "mgc_edge", "webcam", str(model), "--source", str(video)]
        command += ["--realtime", "--display", "off", "--device", "cpu", "--serve", "127.0.0.1:0"]
        command += ["--jsonl", str(jsonl)]
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.stderr: list[str] = []
        self.url = served_url(self.proc, "Live view:", self.stderr)

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url.rstrip("/") + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def finish(self) -> str:
        """Wait for the end of the video; the whole terminal output."""
        self.proc.wait(timeout=90)
        return "".join(self.stderr)


@pytest.fixture
def webcam(video: dict[str, Path], tmp_path: Path) -> Iterator[Webcam]:
    cam = Webcam(video["model"], video["video"], tmp_path / "out.jsonl")
    try:
        yield cam
    finally:
        if cam.proc.poll() is None:
            cam.proc.kill()
            cam.proc.wait()


def test_the_page_of_a_running_webcam_follows_the_video(browser: Any, webcam: Webcam, tmp_path: Path) -> None:  # noqa: F811
    # Without the token nothing is served, not even the page.
    assert webcam.get("/", token=None)[0] == 401
    assert webcam.get("/api/status", token="wrong")[0] == 401

    status_code, body = webcam.get("/api/status")
    status = json.loads(body)
    assert status_code == 200 and status["model"]["labels"] == list(LABELS)
    assert status["model"]["provider"].startswith("CPU")

    page = browser.new_page(viewport={"width": 1280, "height": 760})
    try:
        assert page.goto(f"{webcam.url}?token={TOKEN}", timeout=WAIT_MS).status == 200
        # The label shown follows the video, 2 s per label: 1, 3, 2, 1, 3, 2, ...
        until(page, "arg.includes(text('#now-name'))", list(NAMES))
        following = {"class 1": "class 3", "class 3": "class 2", "class 2": "class 1"}
        for _ in range(3):
            shown = page.inner_text("#now-name")
            until(page, "text('#now-name') === arg", following[shown])
        # The MJPEG image shows the video's frames and keeps changing.
        until(page, "document.querySelector('#video').naturalWidth > 0")
        first = page.inner_text("#frameinfo")
        until(page, "text('#frameinfo') !== arg", first)
        page.screenshot(path=str(tmp_path / "webcam-serve.png"))
        assert (tmp_path / "webcam-serve.png").stat().st_size > 5_000
        # The loop's counters grow while the page watches.
        before = json.loads(webcam.get("/api/status")[1])["loop"]["frames"]["classified"]
        until(page, "+text('#frameinfo').split(' ')[1] > arg + 20", int(first.split(" ")[1]))
        assert json.loads(webcam.get("/api/status")[1])["loop"]["frames"]["classified"] > before
    finally:
        page.close()
    output = webcam.finish()
    assert webcam.proc.returncode == 0, output
    assert TOKEN not in output  # the token is masked on the terminal
    assert "frames read" in output  # the summary, as without --serve


def test_many_viewers_do_not_hold_the_loop_back(webcam: Webcam, tmp_path: Path) -> None:
    """20 viewers of the stream and the events, some of which never read: the loop still classifies every
    frame of the --realtime video (a 20 fps source that a tiny model keeps up with easily)."""
    stop = threading.Event()
    done: list[int] = []

    def viewer(path: str, reads: bool) -> None:
        request = urllib.request.Request(webcam.url.rstrip("/") + path)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        got = 0
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                while not stop.is_set() and got < 2_000_000:
                    if reads:
                        chunk = response.read1(65536)
                        if not chunk:
                            break
                        got += len(chunk)
                    else:
                        time.sleep(0.1)  # a stalled viewer: its socket buffer fills up
        except (OSError, urllib.error.URLError):
            pass
        done.append(got)

    threads = [
        threading.Thread(target=viewer, args=(path, i % 4 != 0), daemon=True)
        for i in range(10)
        for path in ("/stream.mjpg", "/events")
    ]
    for t in threads:
        t.start()
    output = webcam.finish()
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert webcam.proc.returncode == 0, output
    assert any(n > 0 for n in done), "no viewer received anything"
    read = re.search(r"(\d+) frames read, (\d+) classified", output)
    assert read is not None, output
    assert int(read.group(2)) >= 0.9 * len([f for _, n in SEGMENTS for f in range(n)])
