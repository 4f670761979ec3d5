"""The live view in a real browser: Debian's Chromium (`apt-get install chromium`) driven by the `playwright`
package through `executable_path`; playwright never downloads a browser of its own here.

A fake producer stands in for the loop (labels change every second). Skipped, with the reason, only where no
Chromium binary exists.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_serve import LABELS, MODEL_INFO, NAMES, SHOWN, TOKEN, Producer, make_event, serving

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000  # the longest any one wait in the page may take


def chromium_path() -> str | None:
    for candidate in (os.environ.get("MGC_EDGE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium binary (/usr/bin/chromium): `apt-get install chromium` to run the browser tests"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def until(page: Any, condition: str, arg: object = None) -> None:
    """Wait until a JavaScript condition over `arg` holds; `text(selector)` is an element's textContent.

    Passed as a function, never as a bare expression: playwright evaluates a bare expression with eval(),
    which the page's Content-Security-Policy rightly forbids.
    """
    body = f"arg => {{ const text = s => document.querySelector(s).textContent; return {condition}; }}"
    page.wait_for_function(body, arg=arg, timeout=WAIT_MS)


def camera_frame(i: int, size: tuple[int, int] = (360, 640)) -> np.ndarray:
    """A camera-like annotated frame: a figure whose hands follow the current label, and an overlay."""
    h, w = size
    k = (i // 25) % SHOWN
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = np.array([58, 46, 38], np.float32) * (1 - ramp) + np.array([92, 80, 66], np.float32) * ramp
    img = np.repeat(img, w, axis=1).astype(np.uint8)
    cv2.rectangle(img, (0, int(h * 0.82)), (w, h), (40, 44, 48), -1)  # a desk
    cx, sway = w // 2 + 40, int(6 * math.sin(i / 6))
    head, shoulders = (cx, int(h * 0.3)), int(h * 0.48)
    cv2.ellipse(img, (cx, int(h * 0.78)), (95, 120), 0, 180, 360, (120, 100, 82), -1)  # torso
    cv2.circle(img, head, 48, (150, 175, 205), -1)
    hands = {
        0: [(cx - 12 + sway, head[1] + 44), (cx + 70, int(h * 0.8))],  # touching the jaw
        1: [(cx + 55, int(h * 0.66) + sway), (cx - 55, int(h * 0.66) - sway)],  # folded arms
        2: [(cx - 14, int(h * 0.72) + sway), (cx + 14, int(h * 0.72) - sway)],  # fingers crossed in front
    }[k]
    for side, hand in zip((-1, 1), hands):
        shoulder = (cx + side * 85, shoulders + 30)
        cv2.line(img, shoulder, hand, (110, 92, 76), 22, cv2.LINE_AA)
        cv2.circle(img, hand, 16, (150, 175, 205), -1, cv2.LINE_AA)
    text = f"{NAMES[k]}  {100 * make_event(i)['smoothed']['prob']:.0f}%"
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
    cv2.rectangle(img, (10, 10), (tw + 30, 58), (20, 20, 20), -1)
    cv2.putText(img, text, (20, 42), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (120, 230, 150), 2, cv2.LINE_AA)
    cv2.putText(
        img, f"frame {i}", (w - 130, h - 16), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (200, 200, 200), 1, cv2.LINE_AA
    )
    return img


def test_the_page_follows_the_live_labels(browser: Any, tmp_path: Path) -> None:
    with serving(token=TOKEN, stream_fps=15) as server:
        producer = Producer(server, fps=25, hold=25, draw=camera_frame)
        server.state({"state": "live", "message": "", "t": 0.0})
        producer.start()
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        try:
            response = page.goto(f"{server.urls[0]}?token={TOKEN}", timeout=WAIT_MS)
            assert response is not None and response.status == 200

            # The label shown changes as the published labels change.
            shown = "#now-name"
            until(page, "arg.includes(text('#now-name'))", NAMES)
            first = page.inner_text(shown)
            until(page, "text('#now-name') !== arg[0] && arg[1].includes(text('#now-name'))", [first, NAMES])
            assert page.inner_text(shown) != first
            assert page.locator("#topk li").count() == 5
            assert page.inner_text("#state") == "LIVE"  # CSS upper-cases "live"
            assert page.inner_text("#provider") == "provider CPU"
            assert "alexnet_bn" in page.inner_text("#model") and "source demo.mp4" in page.inner_text(
                "#model"
            )
            until(page, "text('#counters').startsWith('read 120 · classified 118 · dropped 2')")
            until(page, "text('#counters').includes('viewers 1')")  # the page, counted once
            until(page, "text('#fps-inference') === '24.8'")
            assert page.evaluate("document.querySelector('#now-state').textContent") == "live"

            # The MJPEG image is there and keeps changing.
            until(page, "document.querySelector('#video').naturalWidth === 640")
            video = page.locator("#video")
            shots = [video.screenshot()]
            for _ in range(20):
                time.sleep(0.25)
                shots.append(video.screenshot())
                if shots[-1] != shots[0]:
                    break
            assert shots[-1] != shots[0], "the MJPEG image did not update"

            # The status JSON the page reads, through the page's own token.
            status = page.evaluate("async q => (await fetch('/api/status' + q)).json()", f"?token={TOKEN}")
            assert status["model"]["labels"] == LABELS and status["server"]["streams"]["mjpeg"] >= 1

            # The picture: a filled timeline, and a moment well inside one label (video and text agree).
            until(
                page,
                "+text('#frameinfo').split(' ')[1] >= 175 && +text('#frameinfo').split(' ')[1] % 25 >= 10",
            )
            shot = tmp_path / "live-view.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            # The caption under the picture is the event of the frame shown: its frame number and its label.
            for _ in range(10):
                words = page.inner_text("#frameinfo").split(" · ")
                frame = int(words[0].split(" ")[1])
                assert words[2] == f"{make_event(frame)['smoothed']['name']} {pct(make_event(frame))}"
                time.sleep(0.1)

            # A reconnecting source shows as such.
            producer.stop()
            server.state(
                {"state": "reconnecting", "message": "reconnecting (try 2, next in 1.0 s)", "t": 9.0}
            )
            page.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
            assert (
                "Reconnecting" in page.inner_text("#banner") and page.inner_text("#state") == "RECONNECTING"
            )
            until(page, "text('#banner').includes(': try 2, next in 1.0 s')")  # the state is said once
            assert "reconnecting (" not in page.inner_text("#banner")
            until(page, "text('#now-state') === 'reconnecting' && text('#now-name') === '—'")
            assert "since" in page.inner_text("#banner")
            server.frame(camera_frame(999), make_event(999))  # frames again: live again
            page.wait_for_selector("#banner[hidden]", state="attached", timeout=WAIT_MS)
        finally:
            page.close()
            producer.stop()


def pct(event: dict[str, Any]) -> str:
    return f"{100 * event['smoothed']['prob']:.0f}%"


def test_a_narrow_window_stacks_video_above_predictions(browser: Any, tmp_path: Path) -> None:
    with serving() as server:
        producer = Producer(server, fps=25, draw=camera_frame)
        producer.start()
        page = browser.new_page(viewport={"width": 420, "height": 900})
        try:
            page.goto(server.urls[0], timeout=WAIT_MS)
            until(page, "document.querySelector('#video').naturalWidth > 0")
            video, side = page.locator(".video-card").bounding_box(), page.locator(".side").bounding_box()
            assert video and side and side["y"] >= video["y"] + video["height"] - 1
            assert side["width"] <= 420 and video["width"] <= 420  # nothing wider than the window
            page.screenshot(path=str(tmp_path / "live-view-narrow.png"), full_page=True)
        finally:
            page.close()
            producer.stop()


def test_without_the_token_the_page_is_refused(browser: Any) -> None:
    with serving(token=TOKEN) as server:
        page = browser.new_page()
        try:
            for url in (server.urls[0], f"{server.urls[0]}?token=wrong", f"{server.urls[0]}stream.mjpg"):
                response = page.goto(url, timeout=WAIT_MS)
                assert response is not None and response.status == 401, url
                assert "needs its token" in page.content()
        finally:
            page.close()


def test_the_end_and_a_lost_server_are_shown(browser: Any) -> None:
    with serving() as server:
        producer = Producer(server, fps=25, draw=camera_frame)
        producer.start()
        page = browser.new_page()
        try:
            page.goto(server.urls[0], timeout=WAIT_MS)
            until(page, "text('#state') === 'live'")
            producer.stop()
            server.close()  # the server goes away without an "ended" state: the page says it lost it
            until(page, "text('#state') === 'offline'")
            assert "lost" in page.inner_text("#banner") and page.get_attribute("#conn", "class") == "dot off"
        finally:
            page.close()
            producer.stop()
    with serving() as server:
        server.frame(camera_frame(0), make_event(0))
        page = browser.new_page()
        try:
            page.goto(server.urls[0], timeout=WAIT_MS)
            until(page, "text('#state') === 'live'")
            server.state({"state": "ended", "message": "end of the video", "t": 3.0})
            server.close()  # the loop's last words stay on the page
            until(page, "document.querySelector('#conn').className === 'dot off'")
            assert page.inner_text("#state") == "ENDED" and "end of the video" in page.inner_text("#banner")
        finally:
            page.close()


CAMERAS = [
    "rtsp://lab:***@10.0.0.21/stream1",
    "rtsp://lab:***@10.0.0.22/stream1",
    "meeting-room.mp4",
    "camera 0",
]


class SourcesProducer(threading.Thread):
    """Stands in for a loop over several sources: each publishes camera-like frames and events of its own
    (labels changing at its own moments), as the loop does with the newest frame of every source."""

    def __init__(self, server: Any, fps: float = 12.0) -> None:
        super().__init__(daemon=True, name="fake-sources")
        self.server, self.fps, self.count = server, fps, 0
        self.down: set[int] = set()  # sources that send nothing now
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for index, name in enumerate(CAMERAS):
                if index in self.down:
                    continue
                i = self.count + 9 * index  # each camera's gestures change at other moments
                event = {
                    **make_event(i),
                    "source": {"index": index, "name": name},
                    "batch": len(CAMERAS),
                }
                self.server.frame(camera_frame(i, (270, 480)), event)
            self.count += 1
            self._halt.wait(1.0 / self.fps)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def sources_status() -> dict[str, Any]:
    """The loop's status() over four sources, as /api/status serves it."""
    entries = [
        {
            "index": i, "name": name, "kind": "live", "state": "live", "message": "",
            "frames": {"read": 300 + i, "classified": 290 + i, "dropped": 10, "skipped": 0},
            "reconnects": i % 2, "fps": {"capture": 25.0, "inference": 24.6},
            "latency_ms": {"end_to_end": {"p50": 21.0 + i, "p95": 38.0 + i}},
        }
        for i, name in enumerate(CAMERAS)
    ]  # fmt: skip
    return {"running": True, "state": "live", "source": f"{len(CAMERAS)} sources", "sources": entries}


def test_several_sources_show_as_tiles_with_their_own_labels(browser: Any, tmp_path: Path) -> None:
    from mgc_edge.runtime.sinks.web.config import ServeConfig
    from mgc_edge.runtime.sinks.web.server import LiveServer

    server = LiveServer(ServeConfig(host="127.0.0.1", port=0), MODEL_INFO, sources_status)
    producer = SourcesProducer(server)
    producer.start()
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(server.urls[0], timeout=WAIT_MS)
        until(page, "document.querySelectorAll('#tiles .tile').length === 4")
        assert page.is_hidden(".video-card") and page.is_visible("#grid-card")
        # Every tile shows its source, a label of the model, its figures, and a frame of its own.
        until(
            page,
            "[...document.querySelectorAll('.tile-now')].every(el => arg.includes(el.textContent))",
            NAMES,
        )
        until(page, "[...document.querySelectorAll('.tile img')].every(img => img.naturalWidth === 480)")
        names = page.locator(".tile-name .text").all_inner_texts()
        assert names == CAMERAS
        until(page, "text('.tile:nth-child(2) .tile-figures').includes('e2e p95 39 ms')")
        assert "reconnects 1" in page.inner_text(".tile:nth-child(2) .tile-figures")
        # The labels differ between sources at the same moment (each follows its own events) ...
        until(page, "new Set([...document.querySelectorAll('.tile-now')].map(el => el.textContent)).size > 1")
        # ... and a click shows one source in full on the right.
        page.click(".tile:nth-child(3)")
        until(page, "text('#selected').includes('source 2')")
        assert "meeting-room.mp4" in page.inner_text("#selected")
        until(page, "text('#now-name') === text('.tile:nth-child(3) .tile-now')")
        until(page, "text('#counters').startsWith('read 302 · classified 292')")
        shot = tmp_path / "live-view-sources.png"
        until(page, "document.querySelectorAll('#topk li').length === 5")
        time.sleep(1.0)  # a second of timeline on every tile
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000
        # One source reconnecting shows on its own tile only.
        source = {"index": 1, "name": CAMERAS[1]}
        producer.stop()
        server.state(
            {"state": "reconnecting", "message": "stream dropped, try 1 of 5", "t": 4.0, "source": source}
        )
        until(page, "text('.tile:nth-child(2) .state') === 'reconnecting'")
        assert page.inner_text(".tile:nth-child(1) .state") == "LIVE"  # CSS upper-cases it
        assert "try 1 of 5" in page.inner_text(".tile:nth-child(2) .tile-message")
    finally:
        page.close()
        producer.stop()
        server.close()


class SourcesStatus:
    """The loop's status() over four sources whose state the test sets, with since when and rates of 0 while
    a source is down, as the loop reports them."""

    def __init__(self) -> None:
        self.states = {i: ("live", "", time.time() - 60) for i in range(len(CAMERAS))}

    def set(self, index: int, state: str, message: str = "") -> None:
        self.states[index] = (state, message, time.time())

    def __call__(self) -> dict[str, Any]:
        report = sources_status()
        for entry in report["sources"]:
            state, message, since = self.states[entry["index"]]
            entry.update(state=state, message=message, state_since=since, short_name=f"cam{entry['index']}")
            if state != "live":
                entry.update(fps={"capture": 0.0, "inference": 0.0}, smoothed=None)
        return report


def test_a_source_that_goes_down_and_comes_back_shows_it(browser: Any, tmp_path: Path) -> None:
    from mgc_edge.runtime.sinks.web.config import ServeConfig
    from mgc_edge.runtime.sinks.web.server import LiveServer

    status = SourcesStatus()
    server = LiveServer(ServeConfig(host="127.0.0.1", port=0), MODEL_INFO, status, sources=len(CAMERAS))
    producer = SourcesProducer(server)
    producer.start()
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    tile = ".tile:nth-child(2)"
    try:
        page.goto(server.urls[0], timeout=WAIT_MS)
        until(page, "document.querySelectorAll('#tiles .tile').length === 4")
        until(page, "[...document.querySelectorAll('.tile img')].every(img => img.naturalWidth === 480)")
        assert page.locator(".tile-name .text").all_inner_texts() == ["cam0", "cam1", "cam2", "cam3"]
        page.click(tile)
        until(page, "text('#now-state') === 'live' && text('#now-since').startsWith('since')")
        until(page, "text('#counters').includes('viewers 1')")
        # Source 1 drops: its tile and its panel say so, with no label and rates of 0.
        producer.down.add(1)
        source = {"index": 1, "name": CAMERAS[1]}
        server.state(
            {"state": "reconnecting", "message": "stream dropped, try 1", "t": 4.0, "source": source}
        )
        status.set(1, "reconnecting", "try 2, next in 2.0 s")
        until(page, "document.querySelector(arg).classList.contains('down')", tile)
        until(page, "text(arg + ' .tile-message').includes('try 2, next in 2.0 s')", tile)
        assert page.inner_text(f"{tile} .tile-now") == "—" and "since" in page.inner_text(
            f"{tile} .tile-message"
        )
        assert "capture 0.0 fps" in page.inner_text(f"{tile} .tile-figures")
        until(page, "text('#now-state') === 'reconnecting' && text('#now-name') === '—'")
        assert page.inner_text("#fps-capture") == "0.0" and page.locator("#topk li").count() == 0
        assert not page.locator(".tile:nth-child(1)").evaluate("el => el.classList.contains('down')")
        # Its timeline moves on and empties (the right end has nothing drawn 2 s later).
        time.sleep(2.0)
        right = "el => el.getContext('2d').getImageData(el.width - 3, 2, 1, 1).data[3]"
        assert page.locator(f"{tile} canvas").evaluate(right) == 0
        assert page.locator(".tile:nth-child(1) canvas").evaluate(right) > 0
        page.screenshot(path=str(tmp_path / "live-view-down.png"))
        # It fails: still down, with its state.
        server.state({"state": "failed", "message": "gave up after 5 tries", "t": 9.0, "source": source})
        status.set(1, "failed", "gave up after 5 tries")
        until(page, "text(arg + ' .state') === 'failed'", tile)
        until(page, "text('#now-message').includes('gave up')")
        # And comes back: live, a label again.
        producer.down.discard(1)
        server.state({"state": "live", "message": "", "t": 12.0, "source": source})
        status.set(1, "live")
        until(page, "!document.querySelector(arg).classList.contains('down')", tile)
        until(page, "arg[1].includes(text(arg[0] + ' .tile-now'))", [tile, NAMES])
        until(page, "text('#now-state') === 'live' && text('#now-name') !== '—'")
        time.sleep(1.0)
        page.screenshot(path=str(tmp_path / "live-view-back.png"))
        keep = os.environ.get("MGC_EDGE_SHOTS")  # a folder to keep the screenshots in, to look at them
        for name in ("live-view-down.png", "live-view-back.png") if keep else ():
            shutil.copy(tmp_path / name, Path(keep) / name)
    finally:
        page.close()
        producer.stop()
        server.close()
