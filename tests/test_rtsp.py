"""`webcam` against a real RTSP server on 127.0.0.1: GStreamer's rtsp-server (tests/rtsp_server.py, run by Debian's
own Python) serving H.264 with basic authentication, read by OpenCV's FFmpeg as an IP camera is. Sources classified
over RTSP beside a file in one batched loop; a server stopped mid-stream and started again (followed across the
reconnect, no frame twice); one that never comes back (a clean give-up while the others go on); the password never
printed. Skipped, with the reason, only where the Debian packages are not installed (`.ci/run` installs them).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_runtime_loop import SEGMENTS, colour_model, colour_video, lines, run_cli

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi; the venv has no gi
SERVER = Path(__file__).with_name("rtsp_server.py")
USER, PASSWORD = "cam", "s3cr3t-rtsp-pw"
PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"


def rtsp_problem() -> str | None:
    """Why no RTSP server can run here (a sentence), or None."""
    if not Path(SYSTEM_PYTHON).is_file():
        return f"no {SYSTEM_PYTHON} (Debian's Python runs the GStreamer RTSP server)"
    check = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst; Gst.init(None); "
        "missing = [e for e in ('x264enc', 'rtph264pay', 'videotestsrc') if not Gst.ElementFactory.find(e)]; "
        "print(' '.join(missing))"
    )
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} cannot run ({exc})"
    if proc.returncode != 0:
        return f"GStreamer's RTSP server is not installed for {SYSTEM_PYTHON}: apt-get install {PACKAGES}"
    if proc.stdout.strip():
        return f"GStreamer elements missing ({proc.stdout.strip()}): apt-get install {PACKAGES}"
    return None


@pytest.fixture(scope="module")
def rtsp() -> None:
    problem = rtsp_problem()
    if problem:
        pytest.skip(problem)


class RtspServer:
    """tests/rtsp_server.py in its own process: `rtsp://cam:PASSWORD@127.0.0.1:PORT/MOUNT` for each mount."""

    def __init__(self, mounts: dict[str, str], port: int = 0) -> None:
        args = [f"/{m}={colour}" for m, colour in mounts.items()]
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), "--port", str(port), "--user", USER, "--password", PASSWORD, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise AssertionError(f"the RTSP server did not start: {line!r} {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
        self.port = int(line.split()[1])

    def url(self, mount: str, password: str = PASSWORD) -> str:
        return f"rtsp://{USER}:{password}@127.0.0.1:{self.port}/{mount}"

    def stop(self) -> None:
        """Stop it as a camera that loses power would: at once, connections cut."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def servers() -> Iterator[list[RtspServer]]:
    started: list[RtspServer] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("rtsp")
    labels = colour_video(root / "video.mp4", SEGMENTS * 3)  # 96 frames, 4.8 s at --realtime pace
    return {"model": colour_model(root / "colour.onnx"), "video": root / "video.mp4", "labels": labels}


def by_source(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["source"]["index"], []).append(e)
    return out


def wait_for(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def start_cli(*args: object) -> subprocess.Popen:
    """The real `mgc-edge` in a child process that the test can watch while it runs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    code = "import sys; from mgc_edge.cli import app; sys.argv[0] = 'mgc-edge'; app()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def jsonl_lines(path: Path) -> int:
    """Lines written so far: the JSONL file is written under a hidden temporary name until the run ends."""
    for candidate in [path, *path.parent.glob(f".{path.name}.*.tmp*")]:
        try:
            return len(candidate.read_text().splitlines())
        except FileNotFoundError:
            continue
    return 0


def test_rtsp_cameras_and_a_file_are_classified_in_one_loop(
    rtsp: None, servers: list, media: dict, tmp_path: Path
) -> None:
    servers.append(RtspServer({"red": "red", "blue": "blue"}))
    server = servers[0]
    out = tmp_path / "out.jsonl"
    proc = run_cli(
        "webcam", media["model"], "-s", server.url("red"), "-s", server.url("blue"), "-s", media["video"],
        "--jsonl", out, "--max-frames", 25, "--timeout", 5, "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = by_source(lines(out))
    assert {i: len(e) for i, e in events.items()} == {0: 25, 1: 25, 2: 25}
    assert {e["top"][0]["label"] for e in events[0]} == {"1"}  # red, H.264 over RTP, decoded by FFmpeg
    assert {e["top"][0]["label"] for e in events[1]} == {"3"}  # blue
    assert [e["top"][0]["label"] for e in events[2]] == media["labels"][:25]  # the file, every frame
    for i in (0, 1):
        seqs = [e["frame"] for e in events[i]]
        assert all(b > a for a, b in zip(seqs, seqs[1:]))
        assert (
            events[i][0]["source"]["name"]
            == f"rtsp://{USER}:***@127.0.0.1:{server.port}/{['red', 'blue'][i]}"
        )
    assert max(e["batch"] for e in lines(out)) >= 2  # classified together
    assert "per source" in proc.stderr and "ended by max frames" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr + out.read_text() and f"{USER}:***@" in proc.stderr


def test_an_rtsp_server_stopped_mid_stream_and_started_again_is_followed(
    rtsp: None, servers: list, media: dict, tmp_path: Path
) -> None:
    servers.append(RtspServer({"live": "red"}))
    port = servers[0].port
    out = tmp_path / "out.jsonl"
    proc = start_cli(
        "webcam", media["model"], "-s", servers[0].url("live"), "--jsonl", out, "--max-frames", 40,
        "--smooth", "ema:0.05", "--reconnect", 5, "--timeout", 5, "--device", "cpu",
    )  # fmt: skip
    try:
        wait_for(lambda: jsonl_lines(out) >= 10 or proc.poll() is not None)
        servers[0].stop()  # the camera goes dark mid-stream...
        servers.append(RtspServer({"live": "blue"}, port=port))  # ...and comes back, showing another scene
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    events = lines(out)
    assert len(events) == 40 and "1 reconnect" in stderr and "ended by max frames" in stderr
    seqs = [e["frame"] for e in events]
    assert all(b > a for a, b in zip(seqs, seqs[1:]))  # never the same frame twice, across the reconnect
    top = [e["top"][0]["label"] for e in events]
    switch = top.index("3")
    assert switch >= 10 and set(top[:switch]) == {"1"} and set(top[switch:]) == {"3"}
    assert events[switch]["smoothed"]["label"] == "3"  # the smoother starts afresh after the reconnect
    assert PASSWORD not in stdout + stderr


def test_an_rtsp_camera_that_never_comes_back_is_given_up_while_a_file_goes_on(
    rtsp: None, servers: list, media: dict, tmp_path: Path
) -> None:
    servers.append(RtspServer({"live": "green"}))
    url = servers[0].url("live")
    out = tmp_path / "out.jsonl"
    proc = start_cli(
        "webcam", media["model"], "-s", url, "-s", media["video"], "--realtime", "--jsonl", out,
        "--reconnect", 2, "--timeout", 3, "--device", "cpu",
    )  # fmt: skip
    try:
        wait_for(lambda: jsonl_lines(out) >= 10 or proc.poll() is not None)
        servers[0].stop()  # gone for good
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.returncode == 1, stderr
    redacted = f"rtsp://{USER}:***@127.0.0.1:{servers[0].port}/live"
    refused = (
        f"connection refused by 127.0.0.1:{servers[0].port} (is the camera on, and is that its RTSP port?)"
    )
    sentence = f"Stream {redacted} dropped and did not come back after 2 reconnect attempts: {refused}."
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {sentence}"] and "Traceback" not in stderr
    assert f"live: failed: {sentence} The other sources go on." in stderr.replace("\n", " ")
    assert "live: dropped (" in stderr and "live: reconnecting (try 2 of 2, next in " in stderr
    events = by_source(lines(out))  # nothing lost: what was classified is on disk
    assert {e["top"][0]["label"] for e in events[0]} == {"2"}
    file_frames = [e["frame"] for e in events[1]]
    assert file_frames[-1] == len(media["labels"]) - 1  # the file went on to its end
    assert PASSWORD not in stdout + stderr + out.read_text()


def test_rtsp_failures_say_what_failed(rtsp: None, servers: list, media: dict) -> None:
    """A wrong password, a wrong path and a closed port each get their own sentence (OpenCV says only that the
    stream did not open): our own RTSP DESCRIBE asks the camera."""
    servers.append(RtspServer({"live": "red"}))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    cases = [
        (servers[0].url("live", password="wrong-pw"), "authentication refused (check the user and password)"),
        (servers[0].url("nope"), "stream path not found (check the path)"),
        (
            f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/live",
            f"connection refused by 127.0.0.1:{port} (is the camera on, and is that its RTSP port?)",
        ),
    ]
    for url, why in cases:
        proc = run_cli(
            "webcam", media["model"], "-s", url, "--timeout", 3, "--device", "cpu", "--display", "off"
        )
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        redacted = url.replace(PASSWORD, "***").replace("wrong-pw", "***")
        assert proc.returncode == 2 and errors == [f"error: Stream {redacted} did not open: {why}."], (
            proc.stderr
        )
        assert PASSWORD not in proc.stderr + proc.stdout and "wrong-pw" not in proc.stderr + proc.stdout
