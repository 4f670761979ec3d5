"""The live view of a real `mgc-edge webcam --serve` while its cameras drop and come back, in Debian's Chromium:
two loopback MJPEG cameras (benchmarks/mjpeg_server.py, killed and started again on their ports), the page's
tiles and panel, and /api/status while one and then every camera is away. Skipped, with the reason, only where
no Chromium binary exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_runtime_loop import colour_model, colour_video
from test_serve_browser import WAIT_MS, browser, until  # noqa: F401  (browser is a fixture)
from test_source_life import mjpeg_camera

pytestmark = pytest.mark.slow

SEGMENTS = [("1", 40), ("3", 40), ("2", 40)] * 3


def status_of(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/status", timeout=10) as response:
        return json.loads(response.read())


def wait(condition: Callable[[], bool], seconds: float = 40.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_cameras_that_drop_and_come_back_show_on_the_page(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    model = colour_model(tmp_path / "colour.onnx")
    colour_video(tmp_path / "video.mp4", segments=SEGMENTS, fps=20.0)
    cameras = [mjpeg_camera(tmp_path / "video.mp4") for _ in range(2)]
    ports = [port for _, port in cameras]
    listing = tmp_path / "cams.txt"
    listing.write_text(
        f"door = http://127.0.0.1:{ports[0]}/cam/0.mjpg\nyard = http://127.0.0.1:{ports[1]}/cam/1.mjpg\n"
    )
    command = [sys.executable, "-m", "mgc_edge", "webcam", str(model), "--sources", str(listing)]
    command += ["--display", "off", "--device", "cpu", "--timeout", "2", "--serve", "127.0.0.1:0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    said: list[str] = []
    threading.Thread(target=lambda: said.extend(proc.stderr or []), daemon=True).start()
    page = browser.new_page(viewport={"width": 1280, "height": 820})
    tile = ".tile:nth-child(2)"
    try:
        wait(lambda: any("Live view:" in line for line in said) or proc.poll() is not None, 90)
        url = re.search(r"Live view: (http://\S+/)", "".join(said)).group(1)  # type: ignore[union-attr]
        page.goto(url, timeout=WAIT_MS)
        until(page, "document.querySelectorAll('#tiles .tile').length === 2")
        until(
            page,
            "[...document.querySelectorAll('.tile-now')].every(el => el.textContent.startsWith('class'))",
        )
        assert page.locator(".tile-name .text").all_inner_texts() == ["door", "yard"]
        page.click(tile)
        until(page, "text('#now-state') === 'live'")
        until(page, "text('#counters').includes('viewers 1')")

        # The yard camera loses power: its tile and panel say so, the door camera goes on.
        cameras[1][0].kill()
        cameras[1][0].wait(10)
        until(page, "document.querySelector(arg).classList.contains('down')", tile)
        until(page, "text('#now-name') === '—' && text('#now-since').startsWith('since')")
        assert page.inner_text(f"{tile} .tile-now") == "—" and "since" in page.inner_text(
            f"{tile} .tile-message"
        )
        assert page.inner_text(".tile:nth-child(1) .tile-now").startswith("class")
        yard = status_of(url)["loop"]["sources"][1]
        assert yard["state"] == "reconnecting" and yard["fps"]["capture"] == 0 and yard["smoothed"] is None
        page.screenshot(path=str(tmp_path / "webcam-outage.png"))

        # Every camera is away: /api/status still tells the truth now, and keeps moving.
        cameras[0][0].kill()
        cameras[0][0].wait(10)
        wait(lambda: all(s["state"] != "live" for s in status_of(url)["loop"]["sources"]))
        first = status_of(url)
        time.sleep(3.0)
        later = status_of(url)
        assert later["server"]["time"] > first["server"]["time"] + 2
        assert later["loop"]["fps"]["capture"] == 0 and later["loop"]["state"] != "live"
        assert [s["state_since"] for s in later["loop"]["sources"]] == [
            s["state_since"] for s in first["loop"]["sources"]
        ]  # since when they went down, not since the last look
        until(page, "document.querySelectorAll('.tile.down').length === 2")

        # Both come back on their ports: live again, with labels.
        cameras = [mjpeg_camera(tmp_path / "video.mp4", port) for port in ports]
        until(page, "document.querySelectorAll('.tile.down').length === 0")
        until(
            page,
            "[...document.querySelectorAll('.tile-now')].every(el => el.textContent.startsWith('class'))",
        )
        until(page, "text('#now-state') === 'live' && text('#now-name').startsWith('class')")
        page.screenshot(path=str(tmp_path / "webcam-back.png"))
        keep = os.environ.get("MGC_EDGE_SHOTS")  # a folder to keep the screenshots in, to look at them
        for name in ("webcam-outage.png", "webcam-back.png") if keep else ():
            shutil.copy(tmp_path / name, Path(keep) / name)
        assert status_of(url)["server"]["streams"]["events"] == 1
    finally:
        page.close()
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
        for camera, _ in cameras:
            camera.kill()
            camera.wait(10)
    log = "".join(said)
    assert "Traceback" not in log, log
    for name in ("door", "yard"):  # each outage said once, and its end
        assert (
            len(re.findall(rf"{name}: dropped", log)) == 1 and len(re.findall(rf"{name}: back", log)) == 1
        ), log
