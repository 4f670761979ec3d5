"""The live loop and `mgc-edge webcam` end to end: a generated video file checked frame by frame against
its known labels, a local MJPEG stream that is cut (reconnect, smoother reset, bounded give-up), clean
ends (q, Ctrl-C, max frames), headless detection, extra sinks, and every bad input in one sentence."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_helpers import tiny_onnx
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.errors import UserError
from mgc_edge.runtime.agreement import agreement
from mgc_edge.runtime.live.loop import STAGES, LoopOptions, run_loop
from mgc_edge.runtime.live.status import status
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sinks.base import BaseSink, StopRequested
from mgc_edge.runtime.sinks.jsonl import JsonlSink
from mgc_edge.runtime.sources.base import SourceOptions
from mgc_edge.runtime.sources.file import FileSource

runner = CliRunner()
# BGR colours the colour model tells apart: label "1" is red, "2" green, "3" blue.
COLOURS = {"1": (0, 0, 220), "2": (0, 220, 0), "3": (220, 0, 0)}
SEGMENTS = [("1", 8), ("3", 6), ("2", 7), ("1", 5), ("2", 6)]  # (label, frames): 32 frames
FPS = 20.0


def colour_model(path: Path) -> Path:
    """A tiny model whose logits are 4x the mean of each (normalised) RGB channel: it answers the dominant
    colour, and we know the right answer for every frame we make."""
    tiny_onnx(path, labels=("1", "2", "3"), size=(16, 16))
    model = onnx.load(str(path))
    for tensor in model.graph.initializer:
        if tensor.name == "w":
            tensor.CopyFrom(numpy_helper.from_array(np.eye(3, dtype=np.float32) * 4, "w"))
        elif tensor.name == "b":
            tensor.CopyFrom(numpy_helper.from_array(np.zeros(3, np.float32), "b"))
    onnx.save(model, str(path))
    return path


def colour_frame(label: str, rng: np.random.Generator, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    img = rng.integers(0, 50, (*size, 3), dtype=np.uint8)
    return np.clip(img + np.array(COLOURS[label], np.int32), 0, 255).astype(np.uint8)


def colour_video(path: Path, segments: list[tuple[str, int]] = SEGMENTS, fps: float = FPS) -> list[str]:
    """Write a video of coloured segments; returns the known label of every frame."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    assert writer.isOpened()
    labels = []
    for label, n in segments:
        for _ in range(n):
            writer.write(colour_frame(label, rng))
            labels.append(label)
    writer.release()
    return labels


@pytest.fixture(scope="module")
def stuff(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("loop")
    model = colour_model(root / "colour.onnx")
    labels = colour_video(root / "video.mp4")
    csv = root / "video.csv"
    csv.write_text("frame,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
    return {"model": model, "video": root / "video.mp4", "labels": labels, "csv": csv}


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def lines(path: Path) -> list[dict[str, Any]]:
    """The frame lines of a JSONL file (the `state` records left out: `states`)."""
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("type") != "state"]


def states(path: Path) -> list[dict[str, Any]]:
    """The `state` records of a JSONL file: one per event of a source's life."""
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("type") == "state"]


def one_error(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


# -- the loop on a video file ---------------------------------------------------------------------------


def _labels_of(events: list[dict[str, Any]]) -> list[tuple[int, str, str, float]]:
    return [(e["frame"], e["top"][0]["label"], e["smoothed"]["label"], e["smoothed"]["prob"]) for e in events]


class SpySource(FileSource):
    """A file source that notes, per frame handed out, whether its reading thread preprocessed it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SourceOptions(prefetch=1))
        self.prepared: list[bool] = []

    def read(self, timeout: float = 0.1) -> Any:
        frame = super().read(timeout)
        if frame is not None:
            self.prepared.append(frame.x is not None)
        return frame


@pytest.mark.parametrize("max_frames", [0, 7])
def test_the_pipelined_loop_gives_the_same_events_as_the_sequential_one(
    stuff: dict, tmp_path: Path, max_frames: int
) -> None:
    """On a GPU a tick's inference overlaps the loop's work on the tick before, and the sources' threads
    preprocess: checked here on the CPU, the same frames in the same order with the same labels, and
    `max_frames` exact although a frame is in flight."""
    runs = {}
    for pipelined in (False, True):
        out = tmp_path / f"{pipelined}.jsonl"
        with SpySource(stuff["video"]) as src:
            summary = run_loop(
                Classifier(stuff["model"], device="cpu"),
                src,
                LoopOptions(max_frames=max_frames, pipeline=pipelined),
                [JsonlSink(out)],
            )
        runs[pipelined] = (_labels_of(lines(out)), summary.classified, summary.ended_by)
        # Frames decoded before the loop attached come unprepared (the first and the one queued behind it).
        assert sum(src.prepared) >= (len(src.prepared) - 2 if pipelined else 0)
        assert sum(src.prepared) == 0 or pipelined
        assert src._prepare is None  # detached: the source outlives the run
    assert runs[True] == runs[False]
    n = max_frames or len(stuff["labels"])
    assert runs[True][1] == n and len(runs[True][0]) == n


def test_a_model_that_fails_in_the_inference_thread_fails_the_run_and_leaves_no_thread(
    stuff: dict, tmp_path: Path
) -> None:
    """Pipelined, the model runs in a thread of its own: its error reaches the caller as it was raised, the
    frames classified before it are on disk, and the thread ends with the run."""
    clf = Classifier(stuff["model"], device="cpu")
    calls = []
    logits = clf.logits

    def failing(x: np.ndarray) -> np.ndarray:
        calls.append(threading.current_thread().name)
        if len(calls) == 5:
            raise MemoryError("out of device memory")
        return logits(x)

    clf.logits = failing  # type: ignore[method-assign]
    out = tmp_path / "o.jsonl"
    with FileSource(stuff["video"]) as src, pytest.raises(MemoryError, match="out of device memory"):
        run_loop(clf, src, LoopOptions(pipeline=True), [JsonlSink(out)])
    assert set(calls) == {"mgc-inference"}
    assert [e["frame"] for e in lines(out)] == [0, 1, 2, 3]
    assert not any(t.name == "mgc-inference" for t in threading.enumerate())


def test_every_frame_of_a_file_is_classified_and_matches_the_known_labels(
    stuff: dict, tmp_path: Path
) -> None:
    clf = Classifier(stuff["model"], device="cpu")
    out = tmp_path / "out.jsonl"
    with FileSource(stuff["video"]) as src:
        summary = run_loop(clf, src, LoopOptions(topk=3), [JsonlSink(out)])
    events = lines(out)
    n = len(stuff["labels"])
    assert [e["frame"] for e in events] == list(range(n))
    assert [e["t"] for e in events] == pytest.approx([i / FPS for i in range(n)], abs=1e-3)
    assert [e["top"][0]["label"] for e in events] == stuff["labels"]  # the model is right on every frame
    # Smoothing may lag a change of gesture by at most two frames, never more, never elsewhere.
    wrong = [i for i, e in enumerate(events) if e["smoothed"]["label"] != stuff["labels"][i]]
    boundaries = np.cumsum([k for _, k in SEGMENTS])[:-1]
    assert all(any(0 <= i - b < 2 for b in boundaries) for i in wrong)
    first = events[0]
    assert {"frame", "t", "top", "smoothed", "latency_ms", "state", "fps"} <= set(first)
    assert set(STAGES) <= set(first["latency_ms"]) and set(first["fps"]) == {"capture", "inference"}
    assert first["top"][0]["name"] == "class 1" and len(first["top"]) == 3
    assert sum(p["prob"] for p in first["top"]) == pytest.approx(1.0, abs=1e-3)
    assert (summary.frames_read, summary.classified, summary.dropped) == (n, n, 0)
    assert summary.ended_by == "end of source" and summary.error is None
    assert set(STAGES) <= set(summary.stages) and summary.provider == "CPUExecutionProvider"
    figures = agreement(out, stuff["csv"])
    assert figures["frames"] == n and figures["top1"] == 1.0
    assert figures["smoothed"] == pytest.approx(1 - len(wrong) / n)
    live = status()
    assert live["running"] is False and live["frames"]["classified"] == n
    assert live["provider"] == "CPUExecutionProvider" and live["last"]["frame"] == n - 1


class Recorder(BaseSink):
    """A sink that keeps what it is given, and can stop the loop or interrupt it at a given frame."""

    wants_image = True

    def __init__(self, raise_at: int | None = None, exc: type[BaseException] = StopRequested) -> None:
        self.frames: list[tuple[tuple[int, ...], dict]] = []
        self.states: list[dict] = []
        self.closed = False
        self.raise_at, self.exc = raise_at, exc

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        self.frames.append((annotated_bgr.shape, event))
        if self.raise_at is not None and len(self.frames) == self.raise_at:
            raise self.exc

    def state(self, event: dict[str, Any]) -> None:
        self.states.append(event)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("exc", "ended_by"), [(StopRequested, "quit"), (KeyboardInterrupt, "interrupted")])
def test_quit_and_ctrl_c_end_cleanly_with_the_summary(
    stuff: dict, tmp_path: Path, exc: type[BaseException], ended_by: str
) -> None:
    clf = Classifier(stuff["model"], device="cpu")
    rec, out = Recorder(raise_at=4, exc=exc), tmp_path / "out.jsonl"
    with FileSource(stuff["video"]) as src:
        summary = run_loop(clf, src, LoopOptions(), [rec, JsonlSink(out)])
    assert summary.ended_by == ended_by and summary.classified == 4
    assert rec.closed and rec.states[-1]["state"] == "ended" and rec.states[-1]["message"] == ended_by
    assert len(lines(out)) == 3  # the JSONL sink after the one that stopped: everything it got is kept
    assert rec.frames[0][0] == (360, 480, 3)  # annotated: enlarged and drawn on


def test_max_frames_and_a_headless_run_without_drawing(stuff: dict) -> None:
    clf = Classifier(stuff["model"], device="cpu")
    rec = Recorder()
    rec.wants_image = False
    with FileSource(stuff["video"]) as src:
        summary = run_loop(clf, src, LoopOptions(max_frames=5), [rec])
    assert summary.ended_by == "max frames" and summary.classified == 5
    assert rec.frames[0][0] == (48, 64, 3)  # nobody wanted the overlay: the frame went out undrawn
    assert summary.stages["draw"][1] < 1.0


# -- the CLI on a video file ------------------------------------------------------------------------------


def test_webcam_on_a_video_file_writes_the_annotated_video_and_jsonl(stuff: dict, tmp_path: Path) -> None:
    save, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    result = invoke(
        "webcam", stuff["model"], "--source", stuff["video"], "--display", "off",
        "--save", save, "--jsonl", jsonl, "--topk", 2, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    n = len(stuff["labels"])
    events = lines(jsonl)
    assert len(events) == n and all(len(e["top"]) == 2 for e in events)
    cap = cv2.VideoCapture(str(save))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    cap.release()
    assert f"{n} frames read, {n} classified" in result.output and "end of source" in result.output
    assert "CPUExecutionProvider" in result.output
    for stage in ("capture", "preprocess", "inference", "postprocess", "draw", "end-to-end"):
        assert stage in result.output


def test_every_max_frames_and_realtime(stuff: dict, tmp_path: Path) -> None:
    out = tmp_path / "every.jsonl"
    result = invoke(
        "webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--jsonl", out, "--every", 3
    )
    assert result.exit_code == 0, result.output
    assert [e["frame"] for e in lines(out)] == list(range(0, len(stuff["labels"]), 3))
    out = tmp_path / "max.jsonl"
    result = invoke(
        "webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--jsonl", out, "--max-frames", 4
    )
    assert result.exit_code == 0 and len(lines(out)) == 4 and "max frames" in result.output
    out = tmp_path / "realtime.jsonl"
    result = invoke(
        "webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--jsonl", out, "--realtime"
    )
    assert result.exit_code == 0, result.output
    frames = [e["frame"] for e in lines(out)]
    assert frames == sorted(set(frames)) and frames[0] == 0  # paced like a camera: newest frames, in order


def test_auto_display_without_a_screen_runs_headless_and_says_so(
    stuff: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    result = invoke(
        "webcam", stuff["model"], "-s", stuff["video"], "--max-frames", 2, "--jsonl", tmp_path / "a.jsonl"
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("running headless") == 1
    result = invoke("webcam", stuff["model"], "-s", stuff["video"], "--display", "on")
    assert "--display on needs a window" in one_error(result)


def test_extra_sinks_get_every_frame_and_the_end(stuff: dict) -> None:
    from mgc_edge.runtime.live.webcam import WebcamOptions, run_webcam

    rec = Recorder()
    run_webcam(stuff["model"], WebcamOptions(source=str(stuff["video"]), display="off"), extra_sinks=[rec])
    assert len(rec.frames) == len(stuff["labels"]) and rec.closed
    assert rec.states[-1]["state"] == "ended"


# -- a network stream that is cut ---------------------------------------------------------------------------


class MjpegServer:
    """An MJPEG-over-HTTP stream on 127.0.0.1, as IP cameras serve it. Connection i sends plan[i] frames of
    one colour (label, count[, (H, W)]) and then cuts the stream; connections beyond the plan get `gone` (503:
    the camera is gone)."""

    def __init__(self, plan: list[tuple[Any, ...]], interval: float = 0.02, gone: int = 503) -> None:
        self.plan, self.interval, self.gone, self.connections = plan, interval, gone, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                index = outer.connections
                outer.connections += 1
                if index >= len(outer.plan):
                    self.send_error(outer.gone)
                    return
                label, n, *size = outer.plan[index]
                rng = np.random.default_rng(index)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for _ in range(n):
                    jpeg = cv2.imencode(".jpg", colour_frame(label, rng, *size))[1].tobytes()
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    try:
                        self.wfile.write(head + jpeg + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(outer.interval)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials}127.0.0.1:{self.server.server_address[1]}/video.mjpg"

    def __enter__(self) -> MjpegServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real `mgc-edge` in a fresh process: its exit code, and everything it prints, C libraries included."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    code = "import sys; from mgc_edge.cli import app; sys.argv[0] = 'mgc-edge'; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_a_cut_stream_reconnects_resets_the_smoother_and_ends_cleanly(stuff: dict, tmp_path: Path) -> None:
    out = tmp_path / "stream.jsonl"
    with MjpegServer([("1", 15), ("3", 400)]) as server:
        proc = run_cli(
            "webcam", stuff["model"], "--source", server.url("viewer:s3cr3t-pw@"), "--jsonl", out,
            "--max-frames", 30, "--smooth", "ema:0.05", "--reconnect", 3, "--timeout", 5, "--device", "cpu",
        )  # fmt: skip
        connections = server.connections
    assert proc.returncode == 0, proc.stderr
    assert connections == 2 and "1 reconnect" in proc.stderr and "ended by max frames" in proc.stderr
    events = lines(out)
    assert len(events) == 30
    seqs = [e["frame"] for e in events]
    assert all(b > a for a, b in zip(seqs, seqs[1:]))  # never the same frame twice, across the reconnect
    top = [e["top"][0]["label"] for e in events]
    switch = top.index("3")
    assert set(top[:switch]) == {"1"} and set(top[switch:]) == {"3"}  # the stream's frames, in order
    # ema:0.05 would keep "1" for a dozen frames; the reset after the reconnect makes "3" win at once.
    assert events[switch]["smoothed"]["label"] == "3"
    assert "s3cr3t-pw" not in proc.stdout + proc.stderr and "viewer:***@" in proc.stderr


def test_a_stream_back_at_another_size_keeps_one_playable_video_and_every_jsonl_line(
    stuff: dict, tmp_path: Path
) -> None:
    """A camera reconfigured while the run goes on comes back at another size (and aspect): --save keeps the
    first size (letterboxed), the JSONL and the web view go on, and the video plays in real time (the frames
    not classified and the reconnect's gap: the frame before, repeated; this server sends faster than the 25 fps
    FFmpeg assumes: thinned to 25)."""
    out, saved = tmp_path / "resized.jsonl", tmp_path / "resized.mp4"
    with MjpegServer([("1", 12, (48, 64)), ("3", 400, (120, 240))]) as server:
        proc = run_cli(
            "webcam", stuff["model"], "--source", server.url(), "--jsonl", out, "--save", saved, "--serve", 0,
            "--max-frames", 30, "--reconnect", 3, "--timeout", 5, "--device", "cpu",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 reconnect" in proc.stderr and "The frame size changed to 720x360" in proc.stderr
    events = lines(out)
    assert len(events) == 30 and events[-1]["top"][0]["label"] == "3"
    cap = cv2.VideoCapture(str(saved))
    fps, shapes = cap.get(cv2.CAP_PROP_FPS), []
    while (got := cap.read())[0]:
        shapes.append(got[1].shape)
    assert set(shapes) == {(360, 480, 3)}  # the first size, enlarged to 360 rows
    span = (
        round((events[-1]["t"] - events[0]["t"]) * fps) + 1
    )  # video frames from the first to the last capture
    assert abs(len(shapes) - span) <= 1


def test_a_stream_that_never_comes_back_gives_up_in_one_sentence(stuff: dict, tmp_path: Path) -> None:
    """The camera's password was changed while the run went on: the reconnects fail, and the last sentence says
    what the server answered (as the first open would), never the password."""
    out = tmp_path / "lost.jsonl"
    with MjpegServer([("2", 12)], gone=401) as server:
        proc = run_cli(
            "webcam", stuff["model"], "--source", server.url("viewer:s3cr3t-pw@"), "--jsonl", out,
            "--reconnect", 2, "--timeout", 5, "--device", "cpu",
        )  # fmt: skip
        connections = server.connections
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    refused = "the server answered HTTP 401 Unauthorized (check the user and password)"
    sentence = f"Stream {server.url('viewer:***@')} dropped and did not come back after 2 reconnect attempts: {refused}."
    assert errors == [f"error: {sentence}"] and proc.stderr.count(sentence) == 1  # said once, at the end
    # The open, two tries, and after each failed try one GET that asks the server why.
    assert connections == 5 and "Traceback" not in proc.stderr and "ended by stream lost" in proc.stderr
    tries = [line for line in proc.stderr.splitlines() if ": reconnecting (try " in line]
    assert len(tries) == 2 and tries[1].endswith(f"; the last try: {refused})")
    records = states(out)  # each event of the source's life, the failure included
    assert [r["event"] for r in records] == ["dropped", "reconnecting", "reconnecting", "failed"]
    assert records[-1]["message"] == sentence and records[-1]["state"] == "failed"
    events = lines(out)  # nothing lost: what was classified before the drop is on disk
    assert 1 <= len(events) <= 12 and {e["top"][0]["label"] for e in events} == {"2"}
    assert "s3cr3t-pw" not in proc.stdout + proc.stderr


def test_sigterm_ends_a_run_as_ctrl_c_does_and_keeps_the_video_and_jsonl(stuff: dict, tmp_path: Path) -> None:
    """docker stop, systemctl stop and kill send SIGTERM: the run must close its files as on Ctrl-C, not die
    with them under hidden temporary names (an mp4 without its index does not play)."""
    video = tmp_path / "long.mp4"
    colour_video(video, [("1", 100), ("3", 100)], fps=20)  # 10 s at --realtime
    out, saved = tmp_path / "run.jsonl", tmp_path / "run.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    code = "import sys; from mgc_edge.cli import app; sys.argv[0] = 'mgc-edge'; app()"
    args = [
        "webcam", stuff["model"], "-s", video, "--realtime", "--jsonl", out, "--save", saved, "--device", "cpu",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 200 for p in tmp_path.glob(".run.jsonl.*")):  # a few frames written
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "ended by interrupted" in stderr and "Traceback" not in stderr
    events = lines(out)
    cap = cv2.VideoCapture(str(saved))
    assert 0 < len(events) < 200 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(events)
    assert not list(tmp_path.glob(".run.*"))  # no temporary file left behind


# -- bad input: one sentence, non-zero exit, nothing lost ------------------------------------------------------


def test_bad_models_are_one_sentence(stuff: dict, tmp_path: Path) -> None:
    video = stuff["video"]
    assert "does not exist" in one_error(invoke("webcam", tmp_path / "nope.onnx", "-s", video))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage" * 50)
    assert "not a model ONNX Runtime can load" in one_error(invoke("webcam", junk, "-s", video))
    plain = tiny_onnx(tmp_path / "plain.onnx", metadata=False)
    assert "no mgc-edge metadata" in one_error(invoke("webcam", plain, "-s", video))


def test_bad_sources_are_one_sentence(stuff: dict, tmp_path: Path) -> None:
    model = stuff["model"]
    assert "Camera 99 did not open" in one_error(invoke("webcam", model, "-s", "99", "--display", "off"))
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(os.urandom(4096))
    assert "cannot be decoded" in one_error(invoke("webcam", model, "-s", junk, "--display", "off"))
    assert "does not exist" in one_error(invoke("webcam", model, "-s", tmp_path / "gone.mp4"))
    assert "apply to video files" in one_error(invoke("webcam", model, "-s", "0", "--every", "2"))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        port = silent.getsockname()[1]
        url = f"rtsp://admin:hunter22@127.0.0.1:{port}/live"
        result = invoke("webcam", model, "-s", url, "--timeout", 1, "--display", "off")
    finally:
        silent.close()
    error = one_error(result)
    # OpenCV only says that it did not open; our own RTSP DESCRIBE says that nothing answered, and how long it waited.
    assert f"did not open: no answer from 127.0.0.1:{port} within 1 s." in error and "admin:***@" in error
    assert "hunter22" not in result.output


def test_a_video_file_cut_short_is_classified_as_far_as_it_goes_and_said(stuff: dict, tmp_path: Path) -> None:
    whole = tmp_path / "whole.avi"  # AVI keeps its announced frame count in the header, which survives a cut
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 20, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(60):
        writer.write(colour_frame("2", rng))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "cut.jsonl"
    result = invoke("webcam", stuff["model"], "-s", cut, "--display", "off", "--jsonl", out)
    assert result.exit_code == 0, result.output
    n = len(lines(out))
    assert 0 < n < 54
    assert f"{cut} stopped decoding at frame {n} of 60 (damaged or truncated)." in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--smooth", "median:3"], "--smooth must be"),
        (["--display", "maybe"], "--display must be auto, on or off"),
        (["--topk", "0"], "--topk must be at least 1"),
        (["--reconnect", "-2"], "--reconnect must be -1 (for ever), 0 (never) or a number of tries"),
        (["--every", "0"], "--every must be 1 or more"),
        (["--device", "npu"], "--device must be"),
        (["--save", "out.avi"], "ending in .mp4"),
    ],
)
def test_bad_options_are_one_sentence(stuff: dict, tmp_path: Path, args: list[str], needle: str) -> None:
    args = [str(tmp_path / a) if a.endswith(".avi") else a for a in args]
    assert needle in one_error(
        invoke("webcam", stuff["model"], "-s", stuff["video"], "--display", "off", *args)
    )


def test_an_output_that_cannot_be_written_is_refused_before_the_run(stuff: dict, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for option, name in (("--jsonl", "o.jsonl"), ("--save", "o.mp4")):
        path = blocker / name
        result = invoke("webcam", stuff["model"], "-s", stuff["video"], "--display", "off", option, path)
        assert f"{option} {path} cannot be written ({blocker} is a file)." in one_error(result)


def test_a_disk_that_fills_up_mid_run_is_one_sentence_and_keeps_what_was_written(
    stuff: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from mgc_edge.runtime.sinks.jsonl import JsonlSink

    write = JsonlSink.frame
    written = []

    def frame(self: Any, image: Any, event: dict) -> None:
        if len(written) == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        write(self, image, event)
        written.append(event["frame"])

    monkeypatch.setattr(JsonlSink, "frame", frame)
    out, video = tmp_path / "o.jsonl", tmp_path / "o.mp4"
    result = invoke(
        "webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--jsonl", out, "--save", video,
    )  # fmt: skip
    error = one_error(result)
    assert "stopped writing" in error and "No space left on device" in error
    assert [e["frame"] for e in lines(out)] == written == list(range(5))
    assert video.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "o.mp4"]


def test_an_existing_output_is_never_replaced_without_force(stuff: dict, tmp_path: Path) -> None:
    for option, name in (("--jsonl", "keep.jsonl"), ("--save", "keep.mp4")):
        path = tmp_path / name
        path.write_text("precious")
        result = invoke("webcam", stuff["model"], "-s", stuff["video"], "--display", "off", option, path)
        assert "exists; pass --force" in one_error(result)
        assert path.read_text() == "precious"
    result = invoke(
        "webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--jsonl", tmp_path / "keep.jsonl",
        "--max-frames", 3, "--force",
    )  # fmt: skip
    assert result.exit_code == 0 and len(lines(tmp_path / "keep.jsonl")) == 3


def test_agreement_module_prints_the_figure(stuff: dict, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    assert (
        invoke("webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--jsonl", out).exit_code
        == 0
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mgc_edge.runtime.agreement", str(out), str(stuff["csv"]), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures = json.loads(proc.stdout)
    assert figures["frames"] == len(stuff["labels"]) and figures["top1"] == 1.0
    assert 0.8 <= figures["smoothed"] < 1.0  # the smoothed label lags each change of gesture a little


class CountingSink(BaseSink):
    """A small example sink: counts the frames of each source (what a new sink's module holds)."""

    wants_image = False

    def __init__(self) -> None:
        self.frames: dict[int, int] = {}
        self.closed = False

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        index = event["source"]["index"]
        self.frames[index] = self.frames.get(index, 0) + 1

    def close(self) -> None:
        self.closed = True


def test_a_new_sink_is_one_module_and_one_line_in_builders(
    stuff: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`webcam` makes its sinks from `sinks.BUILDERS` alone: one more entry (a module with `check` and `build`)
    gets every frame of the run, and its `check` refuses before anything is opened."""
    from mgc_edge.runtime import sinks

    made: list[CountingSink] = []

    def check(options: Any, count: int) -> None:
        if options.jsonl is not None and options.jsonl.suffix != ".jsonl":
            raise UserError("The counting sink wants a .jsonl name.")

    def build(context: Any) -> CountingSink:
        made.append(CountingSink())
        return made[-1]

    monkeypatch.setattr(sinks, "BUILDERS", [*sinks.BUILDERS, SimpleNamespace(check=check, build=build)])
    result = invoke("webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--max-frames", "5")
    assert result.exit_code == 0, result.output
    assert len(made) == 1 and made[0].frames == {0: 5} and made[0].closed
    refused = invoke("webcam", stuff["model"], "-s", stuff["video"], "--display", "off", "--jsonl", "x.txt")
    assert one_error(refused).endswith("The counting sink wants a .jsonl name.") and len(made) == 1
