"""Capture in worker processes (runtime/capture/): the Frame contract across the process boundary, the same labels
as the threaded loop on the same file frames, a killed worker restarted, a hung worker not stalling the reader,
and no worker or shared memory left behind after SIGINT, SIGTERM or SIGKILL of the parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_runtime_loop import Recorder, colour_model, colour_video, invoke, lines, one_error
from test_sources import wait_until

from mgc_edge.config import PreprocessSpec
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime import sources as sources_module
from mgc_edge.runtime.capture.choose import AUTO_CORES, AUTO_SOURCES, chosen, worker_count
from mgc_edge.runtime.capture.pool import CapturePool, source_options
from mgc_edge.runtime.capture.ring import PREFIX, SHM_DIR, Ring, sweep_orphans
from mgc_edge.runtime.live.loop import LoopOptions, run_loop
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sources import Kind, open_sources
from mgc_edge.runtime.sources.base import Frame, SourceOptions
from mgc_edge.runtime.sources.paced_file import PacedFileSource

SPEC = PreprocessSpec(size=(16, 16))
LIVE = SourceOptions(realtime=True)


@pytest.fixture(scope="module")
def stuff(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("capture")
    model = colour_model(root / "colour.onnx")
    labels = colour_video(root / "video.mp4")
    long = root / "long.mp4"  # 10 s at 25 fps: a live source for the restart and signal tests
    writer = cv2.VideoWriter(str(long), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 24))
    for k in range(250):
        writer.write(np.full((24, 32, 3), k % 256, np.uint8))
    writer.release()
    return {"model": model, "video": root / "video.mp4", "labels": labels, "long": long}


def _segments(pid: int) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"{PREFIX}{pid}-*"))


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state


def test_ring_seqlock_and_orphan_sweep(tmp_path: Path) -> None:
    name = f"{PREFIX}999999999-test-0"  # no such process: a killed run's leftover
    ring = Ring.create(name, 2, (4, 4), 48)
    assert ring.header[0, 0] == 0 and ring.header[0, 1] == -1
    ring.begin(1)
    assert ring.header[1, 0] % 2 == 1  # a reader sees an odd generation: the slot is being written
    ring.end(1)
    assert ring.header[1, 0] == 2
    assert ring.image_view(0, 4, 4) is not None and ring.image_view(0, 8, 8) is None
    ring.close()
    assert (SHM_DIR / name).exists()
    assert name in sweep_orphans()
    assert not (SHM_DIR / name).exists()


def test_same_labels_as_threads_on_file_frames(stuff: dict[str, Any]) -> None:
    """Three files over two spawned workers: every frame once, in order, with the threaded loop's labels and
    probabilities; the model inputs are preprocess()'s; nothing is left in /dev/shm."""
    clf = Classifier(stuff["model"])
    texts = [str(stuff["video"])] * 3
    pool = CapturePool(texts, source_options(texts, SourceOptions()), clf.spec, 2)
    remote = Recorder()
    try:
        sources = pool.open()
        assert [s.kind for s in sources] == ["file"] * 3 and sources[0].name == str(stuff["video"])
        summary = run_loop(clf, sources, LoopOptions(smooth="off"), [remote])
    finally:
        pool.close()
    assert _segments(os.getpid()) == []
    assert summary.ended_by == "end of source" and summary.classified == 3 * len(stuff["labels"])
    threads = open_sources(texts)
    local = Recorder()
    try:
        run_loop(clf, threads, LoopOptions(smooth="off"), [local])
    finally:
        for s in threads:
            s.close()

    def rows(rec: Recorder) -> list[tuple[Any, ...]]:
        return sorted(
            (e["source"]["index"], e["frame"], e["top"][0]["name"], e["top"][0]["prob"])
            for _, e in rec.frames
        )

    assert rows(remote) == rows(local)
    for index in range(3):
        seqs = [e["frame"] for _, e in remote.frames if e["source"]["index"] == index]
        assert seqs == list(range(len(stuff["labels"])))
    assert {shape for shape, _ in remote.frames} == {shape for shape, _ in local.frames}  # images drawn


def test_model_input_is_preprocess(stuff: dict[str, Any]) -> None:
    pool = CapturePool([str(stuff["video"])], [SourceOptions()], SPEC, 1, start_method="fork")
    try:
        (source,) = pool.open()
        pool.want_images(True)
        frame = _next(source)
        while frame.image.strides[0] == 0:  # the first frame was written before images were asked for
            frame = _next(source)
        np.testing.assert_array_equal(frame.x, preprocess(frame.image, SPEC)[0])
    finally:
        pool.close()


def _next(source: Any, seconds: float = 10.0) -> Frame:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = source.read(0.05)
        if frame is not None:
            return frame
    raise AssertionError("no frame")


def _read_for(sources: list[Any], seconds: float) -> dict[int, list[Frame]]:
    got: dict[int, list[Frame]] = {i: [] for i in range(len(sources))}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for i, source in enumerate(sources):
            frame = source.read(0)
            if frame is not None:
                got[i].append(frame)
        time.sleep(0.002)
    return got


def test_killed_worker_restarts_and_sources_reconnect(stuff: dict[str, Any]) -> None:
    texts = [str(stuff["long"])] * 2
    pool = CapturePool(texts, source_options(texts, LIVE), SPEC, 1, start_method="fork")
    try:
        sources = pool.open()
        before = _read_for(sources, 0.6)
        os.kill(pool.procs[0].pid, signal.SIGKILL)
        after = _read_for(sources, 3.0)
        assert pool.restarts == 1
        for i, source in enumerate(sources):
            seqs = [f.seq for f in before[i] + after[i]]
            assert seqs and all(b > a for a, b in zip(seqs, seqs[1:]))  # never a repeat, across the restart
            kinds = [e.kind for e in source.events()]
            assert "dropped" in kinds and "back" in kinds, kinds
            assert kinds.index("back") > kinds.index("dropped")
            assert source.status().reconnects >= 1 and source.status().state == "live"
            assert len(after[i]) > 10  # frames came again after the restart
    finally:
        pool.close()
    assert _segments(os.getpid()) == []


class _Hanging(PacedFileSource):
    """A decoder that hangs in the worker's own loop after a few frames."""

    def read(self, timeout: float = 0.1) -> Frame | None:
        frame = super().read(timeout)
        if frame is not None and frame.seq >= 5:
            time.sleep(3600)
        return frame


def test_hung_worker_does_not_stall_the_others(
    stuff: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    hang = Kind(
        "hang", lambda t, _o: t.startswith("hang:"), lambda t, o: _Hanging(t[5:], o), file_options=True
    )
    monkeypatch.setattr(sources_module, "KINDS", [hang, *sources_module.KINDS])  # inherited by forked workers
    texts = [f"hang:{stuff['long']}", str(stuff["long"])]
    pool = CapturePool(texts, source_options(texts, LIVE), SPEC, 2, start_method="fork", hang_after=0.5)
    try:
        sources = pool.open()
        got = _read_for(sources, 2.5)
        assert pool.restarts >= 1
        good = [f.t for f in got[1]]
        assert len(good) > 25  # about 25 fps throughout
        assert max(np.diff(good)) < 0.5  # never waited on the hung worker
        assert "dropped" in [e.kind for e in sources[0].events()]
    finally:
        pool.close()
    assert _segments(os.getpid()) == []


CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from mgc_edge.config import PreprocessSpec
    from mgc_edge.runtime.capture.pool import CapturePool, source_options
    from mgc_edge.runtime.sources.base import SourceOptions

    def interrupt(*_):
        raise KeyboardInterrupt

    if __name__ == "__main__":
        signal.signal(signal.SIGTERM, interrupt)
        texts = [sys.argv[1]] * 2
        opts = SourceOptions(realtime=True)
        pool = CapturePool(texts, source_options(texts, opts), PreprocessSpec(size=(16, 16)), 2, start_method="fork")
        sources = pool.open()
        try:
            print("ready", *[p.pid for p in pool.procs], flush=True)
            while True:
                for s in sources:
                    s.read(0.01)
        except KeyboardInterrupt:
            pass
        finally:
            pool.close()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_orphans_after_parent_signal(stuff: dict[str, Any], tmp_path: Path, sig: signal.Signals) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(stuff["long"])], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", line
        workers = [int(p) for p in line[1:]]
        assert len(workers) == 2 and len(_segments(proc.pid)) == 2
        time.sleep(0.3)
        proc.send_signal(sig)
        proc.wait(10)
        wait_until(lambda: all(_gone(p) for p in workers), 10)
        wait_until(lambda: _segments(proc.pid) == [], 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_webcam_capture_processes_end_to_end(stuff: dict[str, Any], tmp_path: Path) -> None:
    """`webcam --capture processes` on two files: the JSONL of `--capture threads`, frame for frame; bad
    options and a missing file are one sentence; nothing is left in /dev/shm."""
    outs = {}
    for capture in ("threads", "processes"):
        out = outs[capture] = tmp_path / f"{capture}.jsonl"
        video = stuff["video"]
        result = invoke(
            "webcam", stuff["model"], "-s", video, "-s", video, "--capture", capture, "--workers", "2",
            "--display", "off", "--smooth", "off", "--jsonl", out,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert ("Capture: 2 worker processes" in result.output) == (capture == "processes")

    def rows(path: Path) -> list[tuple[Any, ...]]:
        return sorted(
            (e["source"]["index"], e["frame"], e["top"][0]["name"], e["top"][0]["prob"]) for e in lines(path)
        )

    assert rows(outs["processes"]) == rows(outs["threads"]) and len(rows(outs["threads"])) == 2 * len(
        stuff["labels"]
    )
    assert "--capture must be one of" in one_error(invoke("webcam", stuff["model"], "--capture", "proc"))
    missing = one_error(invoke("webcam", stuff["model"], "-s", tmp_path / "no.mp4", "--capture", "processes"))
    assert "does not exist" in missing
    assert _segments(os.getpid()) == []


def test_auto_capture_by_sources_and_cores() -> None:
    assert chosen("auto", 1, cores=16) == "threads"
    assert chosen("auto", AUTO_SOURCES, cores=AUTO_CORES) == "processes"
    assert chosen("auto", 64, cores=2) == "threads"
    assert chosen("threads", 64, cores=16) == "threads" and chosen("processes", 1, cores=1) == "processes"
    assert (
        worker_count(0, 64, cores=16) == 8
        and worker_count(0, 3, cores=16) == 3
        and worker_count(0, 4, cores=1) == 1
    )


def test_mjpeg_camera_in_a_worker_names_redacted(stuff: dict[str, Any]) -> None:
    """A real HTTP MJPEG camera (benchmarks/mjpeg_server.py, in a thread here) read by a worker: live frames with
    seq strictly increasing, the password never in a name, a message or the summary, a capture rate measured."""
    import threading

    from benchmarks.mjpeg_server import encode_frames, make_server

    server = make_server(encode_frames(stuff["long"], (64, 48), count=20), 25.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://user:hunter2@127.0.0.1:{server.server_address[1]}/cam/0.mjpg"
    # spawned, as webcam does: forking while the camera's server thread runs here can leave a lock held in the child
    pool = CapturePool([url], [SourceOptions(open_timeout=5, read_timeout=5)], SPEC, 1)
    try:
        (source,) = pool.open()
        frames = _read_for([source], 1.5)[0]
        assert len(frames) > 10 and all(b.seq > a.seq for a, b in zip(frames, frames[1:]))
        assert frames[-1].x.shape == (3, 16, 16) and frames[-1].image.shape == (48, 64, 3)
        st = source.status()
        assert st.state == "live" and st.capture_fps > 5 and st.size == (48, 64)
        assert "hunter2" not in source.name and "***" in source.name
        assert all("hunter2" not in e.message for e in source.events())
    finally:
        pool.close()
        server.shutdown()
