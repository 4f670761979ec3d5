"""The life of a live source on an unattended box: a camera away for ten minutes (a fake clock: milliseconds) comes
back; the backoff is capped, with jitter; an exception in capture fails its source in one sentence and the loop
goes on; every event (dropped, reconnecting, back, failed) is recorded once, in the JSONL and the live status,
which is true while a source is down (fps 0, no label, since when); frames overwritten while starting up are
`skipped`, while running `dropped`; and a real MJPEG camera killed and started again is logged as it happens."""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_many_sources import ColourCamera
from test_runtime_loop import Recorder, colour_model, colour_video, lines, states
from test_sources import FakeCamera, wait_until

from mgc_edge.runtime.live.loop import LoopOptions, run_loop
from mgc_edge.runtime.live.status import status
from mgc_edge.runtime.live.webcam import LifeLog
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sources.base import FAILED, LIVE, Clock, SourceOptions, StreamLost, backoff_delay
from mgc_edge.runtime.sources.file import FileSource
from mgc_edge.runtime.sources.probe import why_not_open
from mgc_edge.runtime.sources.stream import LiveSource

ROOT = Path(__file__).resolve().parents[1]


class FakeClock(Clock):
    """Time that moves only when a source waits: an outage of ten minutes passes in milliseconds."""

    def __init__(self) -> None:
        self.t, self.waits = 0.0, []

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_800_000_000.0 + self.t

    def sleep(self, stop: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.t += seconds
        return stop.is_set()


def no_probe(_target: object, _timeout: float) -> None:
    return None


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("life")
    return {
        "model": colour_model(root / "colour.onnx"),
        "long": root / "long.mp4",
        "labels": colour_video(root / "long.mp4"),
    }


# -- the source alone -------------------------------------------------------------------------------------


def test_the_backoff_doubles_up_to_its_cap_with_jitter_that_spreads_cameras_out() -> None:
    options = SourceOptions()  # the defaults: 0.5 s doubling to 30 s, up to 20 % shorter at random
    rng = random.Random(1)
    for attempt in range(1, 200):
        delay = backoff_delay(attempt, options, rng)
        base = min(0.5 * 2 ** (attempt - 1), 30.0)
        assert 0.8 * base <= delay <= base <= 30.0
    # Cameras cut by one switch reboot do not all knock again at the same instant.
    assert len({round(backoff_delay(9, options, random.Random(seed)), 3) for seed in range(10)}) > 5
    assert backoff_delay(10**6, options) <= 30.0  # no overflow after days of trying


def test_a_camera_away_for_ten_minutes_is_tried_for_ever_and_comes_back() -> None:
    clock = FakeClock()
    first = FakeCamera(limit=3)

    def opener() -> FakeCamera:
        if first.count == 0:
            return first
        # Away for ten minutes (of the fake clock), then back with another picture.
        return FakeCamera(opened=False) if clock.t < 600 else FakeCamera(delay=0.002, start=100)

    src = LiveSource(
        "rtsp://cam:pw@10.0.0.9/live", SourceOptions(), opener, clock=clock, probe=no_probe
    ).open()
    try:
        seqs = [src.read(2.0).seq for _ in range(3)]
        wait_until(lambda: src.status().reconnects == 1)
        after = src.read(2.0)
        assert after is not None and after.seq > seqs[-1] and src.status().state == LIVE
    finally:
        src.close()
    events = src.events()
    kinds = [e.kind for e in events]
    assert kinds[0] == "dropped" and kinds[-1] == "back" and set(kinds[1:-1]) == {"reconnecting"}
    tries = len(kinds) - 2
    assert tries == len(clock.waits) and tries > 20  # never given up
    assert max(clock.waits) <= 30.0 and clock.waits[0] <= 0.5 and sum(clock.waits) >= 600
    assert events[1].message.startswith("reconnecting (try 1, next in ")
    assert events[-1].message == f"back (after {clock.t:.1f} s, try {tries})"
    assert events[-1].wall == pytest.approx(1_800_000_000.0 + clock.t)
    assert "pw" not in repr(events) and src.events() == []  # each event handed out once


def give_up(tries: int) -> tuple[LiveSource, FakeClock]:
    """A camera that drops after two frames and never comes back, with `reconnect=tries`, once it failed."""
    clock, cams = FakeClock(), [FakeCamera(limit=2)]

    def opener() -> FakeCamera:
        return cams.pop(0) if cams else FakeCamera(opened=False)

    src = LiveSource("camera", SourceOptions(reconnect=tries), opener, clock=clock, probe=no_probe).open()
    try:
        wait_until(lambda: src.status().state == FAILED)
    finally:
        src.close()
    return src, clock


@pytest.mark.parametrize(("tries", "said"), [(3, "after 3 reconnect attempts"), (0, "(--reconnect 0)")])
def test_reconnect_n_bounds_the_tries_and_0_gives_up_at_the_first_drop(tries: int, said: str) -> None:
    src, clock = give_up(tries)
    assert len(clock.waits) == tries
    assert src.status().message == f"Stream camera dropped and did not come back {said}."
    assert [e.kind for e in src.events()] == ["dropped", *["reconnecting"] * tries, "failed"]


class Explodes(FakeCamera):
    """A capture that raises after a few frames, as urllib did on a URL with a trailing comment."""

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.count == 2:
            raise ValueError("nonnumeric port: 'http://u:secret@cam:80   # the lab camera'")
        return super().read()


def test_an_exception_in_capture_fails_its_source_in_one_sentence() -> None:
    src = LiveSource("rtsp://u:secret@cam/live", SourceOptions(), lambda: Explodes(), probe=no_probe).open()
    try:
        wait_until(lambda: src.status().state == FAILED)
        assert src.read(0.1) is not None  # the frames it had are still handed out...
        with pytest.raises(StreamLost) as lost:
            for _ in range(5):  # ...then the loss, never a wait on a dead thread
                src.read(0.1)
        assert src._thread is not None and not src._thread.is_alive()
    finally:
        src.close()
    assert str(lost.value) == (
        "Stream rtsp://u:***@cam/live failed: its capture stopped on an error (ValueError: nonnumeric port: "
        "'http://u:***@cam:80   # the lab camera')."
    )
    assert [e.kind for e in src.events()] == ["failed"]


def test_the_probe_never_raises_on_a_url_urllib_refuses() -> None:
    # The untrimmed line of a sources file that made urllib raise InvalidURL in the capture thread.
    assert why_not_open("http://127.0.0.1:9/stream.mjpg   # the lab camera", 1.0) is None
    assert why_not_open("rtsp://[::1", 1.0) is None


def test_frames_overwritten_while_starting_are_skipped_and_while_running_dropped() -> None:
    gate = threading.Semaphore(0)
    cam = FakeCamera(gate=gate)
    src = LiveSource("camera", SourceOptions(warmup=0.2, read_timeout=5), opener=lambda: cam)
    gate.release()
    src.open()
    try:
        for _ in range(5):  # the loop is not reading yet (a model loading, the cores measured)
            gate.release()
        wait_until(lambda: src.status().read == 6)
        assert (src.status().skipped, src.status().dropped) == (5, 0)
        for _ in range(5):  # a consumer that keeps up drops nothing
            assert src.read(1.0) is not None
            gate.release()
            wait_until(lambda: src.status().read > src.status().delivered)
        time.sleep(0.25)  # past the warm-up: what is overwritten now is dropped
        for _ in range(3):  # frame 11, waiting since the last read, and 12 and 13 are overwritten unread
            gate.release()
        wait_until(lambda: src.status().read == 14)
        assert (src.status().skipped, src.status().dropped) == (5, 3)
    finally:
        cam.stop = True
        src.close()


# -- inside the loop --------------------------------------------------------------------------------------


class StatusRecorder(Recorder):
    """A Recorder that also takes the live status at every state event (the loop updates it first)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshots: list[dict[str, Any]] = []

    def state(self, event: dict[str, Any]) -> None:
        self.snapshots.append(status())
        super().state(event)


def test_a_dead_capture_thread_ends_its_own_feed_while_the_file_goes_on(media: dict) -> None:
    clf = Classifier(media["model"], device="cpu")
    cam = LiveSource("camera", SourceOptions(), lambda: Explodes(delay=0.01), probe=no_probe).open()
    rec = Recorder()
    try:
        with FileSource(media["long"]) as file:
            summary = run_loop(clf, [cam, file], LoopOptions(), [rec])
    finally:
        cam.close()
    assert summary.sources[0].ended_by == "stream lost" and "ValueError" in (summary.error or "")
    assert len([e for _, e in rec.frames if e["source"]["index"] == 1]) == len(media["labels"])
    assert [s["event"] for s in rec.states if s.get("source", {}).get("index") == 0] == ["failed"]


def test_the_live_status_is_true_while_a_camera_is_down(media: dict) -> None:
    clf = Classifier(media["model"], device="cpu")
    rec = StatusRecorder()
    cams = [ColourCamera("1", limit=8, delay=0.01)]
    down = FakeCamera(opened=False)

    def opener() -> FakeCamera:
        if cams:
            return cams.pop(0)
        # Down for three tries, then back.
        return down if len(rec.states) < 5 else ColourCamera("3", delay=0.01, limit=200)

    cam = LiveSource(
        "http://u:pw@10.1.1.1:8080/cam/1.mjpg", SourceOptions(backoff=0.05), opener, probe=no_probe
    )
    cam.open().short_name = "lab"
    try:
        with FileSource(media["long"]) as file:
            summary = run_loop(clf, [cam, file], LoopOptions(max_frames=30, smooth="ema:0.5"), [rec])
    finally:
        cam.close()
    # Its rates in the summary are over the time it was live, not over a run it was partly away from.
    lab = summary.sources[0]
    assert 0 < lab.live_seconds < summary.seconds
    assert lab.fps == pytest.approx(lab.classified / lab.live_seconds, rel=0.01)
    mine = [(s, snap) for s, snap in zip(rec.states, rec.snapshots) if s.get("source", {}).get("index") == 0]
    kinds = [s["event"] for s, _ in mine]
    assert kinds[0] == "dropped" and kinds.count("back") == 1 and "reconnecting" in kinds
    for event, snap in mine:
        entry = snap["sources"][0]
        assert event["source"] == {
            "index": 0,
            "name": "http://u:***@10.1.1.1:8080/cam/1.mjpg",
            "short_name": "lab",
        }
        assert entry["short_name"] == "lab" and entry["state_since"] > 1.7e9
        # Events that came in one tick are told one after the other; the status shows the newest.
        assert entry["message"] in [e["message"] for e, _ in mine]
        if entry["state"] == "reconnecting":  # down: nothing live is shown as if it were
            assert entry["fps"] == {"capture": 0.0, "inference": 0.0} and entry["smoothed"] is None
    assert any(snap["sources"][0]["state"] == "reconnecting" for _, snap in mine)
    last = mine[-1][1]["sources"][0]
    assert (last["state"], last["message"]) == ("live", mine[-1][0]["message"])
    sinces = [snap["sources"][0]["state_since"] for _, snap in mine]
    assert sinces == sorted(sinces) and sinces[-1] > sinces[0]  # "back" starts a new state
    messages = [event["message"] for event, _ in mine]
    assert messages[0] == "dropped (stream stopped)" and messages[1].startswith(
        "reconnecting (try 1, next in "
    )
    assert messages[-1].startswith("back (after ")


def test_the_live_status_moves_on_while_the_only_camera_is_down(media: dict) -> None:
    """It used to freeze with the last tick: capture 49 fps and "try 1 of 5" while nothing came for 16 s."""
    clf = Classifier(media["model"], device="cpu")
    cams = [ColourCamera("1", limit=10, delay=0.01)]
    seen: list[dict[str, Any]] = []

    def opener() -> FakeCamera:
        if cams:
            return cams.pop(0)
        seen.append(status())  # taken while the camera is away, between two tries
        return FakeCamera(opened=False) if len(seen) < 6 else ColourCamera("3", delay=0.01, limit=100)

    cam = LiveSource("camera", SourceOptions(backoff=0.05), opener, probe=no_probe).open()
    try:
        run_loop(clf, [cam], LoopOptions(max_frames=20), [Recorder()])
    finally:
        cam.close()
    late = seen[-1]  # at the sixth try, about 1.5 s into the outage
    assert late["state"] == "reconnecting" and late["message"].startswith("reconnecting (try 6, next in ")
    assert late["fps"]["capture"] == 0.0 and late["sources"][0]["fps"] == {"capture": 0.0, "inference": 0.0}
    assert late["sources"][0]["smoothed"] is None and late["last"]["smoothed"] is not None


def test_every_event_makes_one_log_line_with_the_short_name() -> None:
    said: list[str] = []
    log = LifeLog(said.append, 2)
    source = {"index": 0, "name": "rtsp://u:***@cam/1", "short_name": "door"}
    when = time.mktime((2026, 12, 6, 16, 20, 1, 0, 0, -1))
    for event, message in [
        ("dropped", "dropped (no frame for 10.0 s)"),
        *[("reconnecting", f"reconnecting (try {n}, next in 30.0 s)") for n in range(1, 13)],
        ("back", "back (after 301.2 s, try 12)"),
        ("failed", "Stream rtsp://u:***@cam/1 dropped and did not come back after 3 reconnect attempts."),
    ]:
        log.state(
            {"event": event, "state": "x", "message": message, "t": 1.0, "time": when, "source": source}
        )
    log.state({"state": "ended", "message": "interrupted", "t": 2.0})  # the run's own end: no line
    assert said[0] == "2026-12-06 16:20:01 door: dropped (no frame for 10.0 s)"
    tries = [line for line in said if "reconnecting" in line]
    assert [line.split("try ")[1].split(",")[0] for line in tries] == ["1", "2", "3", "4", "5", "10"]
    assert said[-2] == "2026-12-06 16:20:01 door: back (after 301.2 s, try 12)"
    assert said[-1].endswith(
        "door: failed: Stream rtsp://u:***@cam/1 dropped and did not come back after 3 "
        "reconnect attempts. The other sources go on."
    )


# -- a real camera, killed and started again ------------------------------------------------------------------


def mjpeg_camera(video: Path, port: int = 0) -> tuple[subprocess.Popen, int]:
    """benchmarks/mjpeg_server.py in its own process (killing it cuts the connections, as a power cut does)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.mjpeg_server", str(video), "--fps", "20", "--size", "64x48", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("ready "):
        proc.kill()
        raise AssertionError(f"the MJPEG camera did not start: {line!r}")
    return proc, int(line.split()[1])


@pytest.mark.slow
def test_a_real_camera_killed_and_started_again_is_logged_and_followed(media: dict, tmp_path: Path) -> None:
    from test_rtsp import jsonl_lines, start_cli, wait_for

    def jsonl_text(path: Path) -> str:  # written under a hidden temporary name until the run ends
        return "".join(p.read_text(errors="replace") for p in path.parent.glob(f".{path.name}.*.tmp*"))

    camera, port = mjpeg_camera(media["long"])
    out = tmp_path / "out.jsonl"
    listing = tmp_path / "cams.txt"
    listing.write_text(f"lab = http://viewer:${{CAM_PW}}@127.0.0.1:{port}/cam/1.mjpg   # the lab camera\n")
    os.environ["CAM_PW"] = "s3cr3t-pw"
    try:
        proc = start_cli(
            "webcam", media["model"], "--sources", listing, "--jsonl", out, "--timeout", 2, "--device", "cpu"
        )
    finally:
        del os.environ["CAM_PW"]
    try:
        wait_for(lambda: jsonl_lines(out) >= 10 or proc.poll() is not None)
        camera.kill()
        camera.wait(10)
        time.sleep(3)  # the camera is away for a few seconds...
        camera, _ = mjpeg_camera(media["long"], port)  # ...and back on the same port
        wait_for(lambda: '"event":"back"' in jsonl_text(out) or proc.poll() is not None, 40)
    except AssertionError:
        pass  # the assertions below say what was missing
    finally:
        proc.terminate()  # SIGTERM: the run ends with its summary, as Ctrl-C
        stdout, stderr = proc.communicate(timeout=30)
        camera.kill()
        camera.wait(10)
    assert "Traceback" not in stderr, stderr
    records = [s for s in states(out) if s["source"]["index"] == 0]
    kinds = [s["event"] for s in records]
    assert kinds[0] == "dropped" and "reconnecting" in kinds and kinds[-1] == "back", (kinds, stderr)
    log = [line for line in stderr.splitlines() if " lab: " in line]
    assert any("lab: dropped (" in line for line in log) and any("lab: back (after " in line for line in log)
    assert len([line for line in log if "lab: dropped" in line]) == 1  # one outage, said once
    assert records[0]["source"]["short_name"] == "lab"
    assert "s3cr3t-pw" not in stdout + stderr + out.read_text()
    frames = [e for e in lines(out) if e["source"]["index"] == 0]
    assert frames and all(b["frame"] > a["frame"] for a, b in zip(frames, frames[1:]))


def test_a_camera_tried_for_ever_says_why_its_tries_fail() -> None:
    """With tries for ever there is no last sentence: each try's line says what the camera answered."""
    clock, cams = FakeClock(), [FakeCamera(limit=2)]
    answers = iter(
        ["connection refused by 10.0.0.9:554", *["authentication refused (check the user and password)"] * 5]
    )

    def opener() -> FakeCamera:
        return cams.pop(0) if cams else FakeCamera(opened=False) if clock.t < 20 else FakeCamera(delay=0.002)

    src = LiveSource(
        "rtsp://cam:pw@10.0.0.9/live", SourceOptions(), opener, clock=clock, probe=lambda *_: next(answers)
    ).open()
    try:
        wait_until(lambda: src.status().reconnects == 1)
    finally:
        src.close()
    messages = [e.message for e in src.events() if e.kind == "reconnecting"]
    assert "the last try" not in messages[0]
    assert messages[1].endswith("; the last try: connection refused by 10.0.0.9:554)")
    assert messages[2].endswith("; the last try: authentication refused (check the user and password))")


def test_a_file_whose_decoding_raises_fails_in_one_sentence(media: dict) -> None:
    src = FileSource(media["long"], opener=lambda _path: Explodes()).open()
    try:
        with pytest.raises(StreamLost) as lost:
            for _ in src:
                pass
    finally:
        src.close()
    assert str(lost.value).startswith(
        f"Video file {media['long']} failed: decoding stopped on an error (ValueError"
    )
    assert [e.kind for e in src.events()] == ["failed"]


def test_a_capture_thread_gone_without_a_word_is_failed_not_waited_on() -> None:
    gate = threading.Semaphore(0)
    cam = FakeCamera(gate=gate)
    gate.release()
    src = LiveSource("camera", SourceOptions(), lambda: cam).open()
    src._thread = threading.Thread(target=lambda: None)  # a thread that ended without setting any state
    src._thread.start()
    src._thread.join()
    try:
        assert (
            src.status().state == FAILED
            and src.status().message == "Stream camera failed: its capture thread stopped."
        )
    finally:
        cam.stop = True
        src.close()
