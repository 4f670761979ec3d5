"""Several sources in one loop: one batch per tick with the newest frame of each, per-source smoothing, state,
counters and outputs (JSONL `source`, one mp4 per source), a source that drops while the others go on, and the
threads the loop leaves for capture and decoding, measured."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_runtime_loop import (
    Recorder,
    colour_frame,
    colour_model,
    colour_video,
    invoke,
    lines,
    one_error,
)
from test_sources import FakeCamera, wait_until

from mgc_edge.errors import UserError
from mgc_edge.runtime import host
from mgc_edge.runtime.agreement import agreement
from mgc_edge.runtime.live import cores
from mgc_edge.runtime.live.loop import LoopOptions, run_loop
from mgc_edge.runtime.live.status import status
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sinks.jsonl import JsonlSink
from mgc_edge.runtime.sources import open_sources, read_sources_file
from mgc_edge.runtime.sources.base import SourceOptions
from mgc_edge.runtime.sources.file import FileSource
from mgc_edge.runtime.sources.stream import LiveSource

SHORT = [("2", 5), ("3", 5)]  # 10 frames


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("many")
    return {
        "model": colour_model(root / "colour.onnx"),
        "long": root / "long.mp4",
        "long_labels": colour_video(root / "long.mp4"),
        "short": root / "short.mp4",
        "short_labels": colour_video(root / "short.mp4", SHORT),
    }


class CountingClassifier(Classifier):
    """The real classifier, counting the batch size of every inference call (and optionally slower)."""

    def __init__(self, *args: Any, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []
        self.delay = delay

    def logits(self, batch_nchw: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch_nchw))
        if self.delay:
            time.sleep(self.delay)
        return super().logits(batch_nchw)


class ColourCamera(FakeCamera):
    """A fake live camera whose frames are one colour, so the colour model's answer is known."""

    def __init__(self, label: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label, self.rng = label, np.random.default_rng(0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, image = super().read()
        return (ok, colour_frame(self.label, self.rng) if ok else None)


def by_source(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["source"]["index"], []).append(e)
    return out


def test_two_files_are_classified_together_frame_by_frame(media: dict, tmp_path: Path) -> None:
    clf = CountingClassifier(media["model"], device="cpu")
    out = tmp_path / "out.jsonl"
    with FileSource(media["long"]) as long, FileSource(media["short"]) as short:
        summary = run_loop(clf, [long, short], LoopOptions(), [JsonlSink(out)])
    events = by_source(lines(out))
    n_long, n_short = len(media["long_labels"]), len(media["short_labels"])
    # Every frame of each file, in order, each right, each tagged with its source.
    assert [e["frame"] for e in events[0]] == list(range(n_long))
    assert [e["frame"] for e in events[1]] == list(range(n_short))
    assert [e["top"][0]["label"] for e in events[0]] == media["long_labels"]
    assert [e["top"][0]["label"] for e in events[1]] == media["short_labels"]
    assert {e["source"]["name"] for e in events[1]} == {str(media["short"])}
    # One inference call per tick: never more frames than sources, and together while both had frames.
    assert sum(clf.batches) == n_long + n_short and max(clf.batches) == 2
    assert clf.batches.count(2) >= n_short - 2  # a decoder may lag a tick now and then
    assert summary.batches == len(clf.batches) and summary.classified == n_long + n_short
    # Smoothing is per source: the short file's first frame is not pulled towards the long one's label.
    assert events[1][0]["smoothed"]["label"] == media["short_labels"][0]
    assert [s.classified for s in summary.sources] == [n_long, n_short]
    assert [s.ended_by for s in summary.sources] == ["end of source", "end of source"]
    assert summary.ended_by == "end of source" and summary.error is None and summary.source == "2 sources"
    live = status()
    assert [s["frames"]["classified"] for s in live["sources"]] == [n_long, n_short]
    assert set(live["sources"][0]["latency_ms"]) == {"end_to_end"}
    # The agreement with a video's known labels is told per source.
    csv = tmp_path / "short.csv"
    csv.write_text(
        "frame,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(media["short_labels"]))
    )
    assert agreement(out, csv, source=1)["top1"] == 1.0 and agreement(out, csv, source=1)["frames"] == n_short
    with pytest.raises(UserError, match="holds 2 sources"):
        agreement(out, csv)


def test_a_slow_model_gets_the_newest_frame_of_every_camera_in_one_batch(media: dict) -> None:
    clf = CountingClassifier(media["model"], device="cpu", delay=0.03)
    colours = ["1", "2", "3", "1"]
    cams = [ColourCamera(c, delay=0.01) for c in colours]
    sources = [
        LiveSource(f"camera-{i}", SourceOptions(warmup=0), opener=lambda c=c: c).open()
        for i, c in enumerate(cams)
    ]
    rec = Recorder()
    rec.wants_image = False
    try:
        summary = run_loop(clf, sources, LoopOptions(max_frames=8), [rec])
    finally:
        for cam in cams:
            cam.stop = True
        for src in sources:
            src.close()
    # Frames of all four pile up while the model works: most ticks classify four at once, never more.
    assert max(clf.batches) == 4 and clf.batches.count(4) >= len(clf.batches) // 2
    events = by_source([e for _, e in rec.frames])
    for i, colour in enumerate(colours):
        seqs = [e["frame"] for e in events[i]]
        assert len(seqs) == 8 and all(b > a for a, b in zip(seqs, seqs[1:]))  # never a frame twice
        assert {e["top"][0]["label"] for e in events[i]} == {colour}
        assert summary.sources[i].dropped > 0  # the newest frame only: the others were dropped, not queued
    assert summary.ended_by == "max frames" and summary.batches == len(clf.batches)
    assert {e["batch"] for e in events[0]} <= {1, 2, 3, 4}


class SeenRecorder(Recorder):
    """A Recorder that says when it has had a frame of source 0."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen = threading.Event()

    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        if event["source"]["index"] == 0:
            self.seen.set()
        super().frame(annotated_bgr, event)


class DropsOnceSeen(ColourCamera):
    """A camera that drops after its frames, but only once the loop has classified one of them (however loaded
    the machine is)."""

    def __init__(self, label: str, seen: threading.Event, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.seen = seen

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.limit is not None and self.count >= self.limit:
            self.seen.wait(10)
        return super().read()


def test_a_camera_that_drops_reconnects_while_a_file_goes_on(media: dict) -> None:
    clf = Classifier(media["model"], device="cpu")
    rec = SeenRecorder()
    cams = [DropsOnceSeen("1", rec.seen, limit=6, delay=0.01), ColourCamera("3", delay=0.01)]
    options = SourceOptions(reconnect=2, backoff=0.05)
    cam = LiveSource("rtsp://viewer:pw@cam/1", options, opener=lambda: cams.pop(0)).open()
    try:
        with FileSource(media["long"]) as file:
            summary = run_loop(clf, [cam, file], LoopOptions(max_frames=20, smooth="ema:0.05"), [rec])
    finally:
        cam.close()
    events = by_source([e for _, e in rec.frames])
    assert [e["frame"] for e in events[1]] == list(range(20))  # the file lost nothing meanwhile
    top = [e["top"][0]["label"] for e in events[0]]
    switch = top.index("3")
    assert set(top[:switch]) == {"1"} and set(top[switch:]) == {"3"}
    assert events[0][switch]["smoothed"]["label"] == "3"  # this source's smoother was reset, at once
    assert summary.sources[0].reconnects == 1 and summary.sources[1].reconnects == 0
    reconnecting = [s for s in rec.states if s["state"] == "reconnecting"]
    assert reconnecting and all(s["source"]["index"] == 0 for s in reconnecting)
    assert (
        "pw" not in json.dumps(rec.states) and reconnecting[0]["source"]["name"] == "rtsp://viewer:***@cam/1"
    )


def test_a_lost_camera_ends_its_own_feed_and_the_run_says_so(media: dict) -> None:
    clf = Classifier(media["model"], device="cpu")
    cams = [ColourCamera("1", limit=3, delay=0.01)]
    options = SourceOptions(reconnect=1, backoff=0.01)
    cam = LiveSource(
        "camera", options, opener=lambda: cams.pop(0) if cams else FakeCamera(opened=False)
    ).open()
    rec = Recorder()
    try:
        with FileSource(media["long"]) as file:
            summary = run_loop(clf, [cam, file], LoopOptions(), [rec])
    finally:
        cam.close()
    events = by_source([e for _, e in rec.frames])
    assert len(events[1]) == len(media["long_labels"])  # every frame of the file, the camera lost or not
    assert summary.error == "Stream camera dropped and did not come back after 1 reconnect attempt."
    assert summary.ended_by == "stream lost"
    assert [s.ended_by for s in summary.sources] == ["stream lost", "end of source"]
    failed = [s for s in rec.states if s["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["source"]["index"] == 0 and failed[0]["message"] == summary.error
    assert rec.states[-1]["state"] == "ended" and "source" not in rec.states[-1]  # the run's own end, once


def test_a_stream_lost_before_a_quit_still_fails_the_run(media: dict) -> None:
    clf = Classifier(media["model"], device="cpu")
    cams = [ColourCamera("1", limit=2)]
    cam = LiveSource(
        "camera", SourceOptions(reconnect=0), opener=lambda: cams.pop(0) if cams else FakeCamera(opened=False)
    ).open()

    class QuitAfterTheLoss(Recorder):
        def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
            if len(self.frames) == 24:  # the user quits once the camera is gone
                wait_until(lambda: cam.status().state == "failed", 10)
            super().frame(annotated_bgr, event)

    rec = QuitAfterTheLoss(raise_at=25)
    try:
        with FileSource(media["long"]) as file:
            summary = run_loop(clf, [cam, file], LoopOptions(), [rec])
    finally:
        cam.close()
    assert summary.ended_by == "quit" and summary.sources[0].ended_by == "stream lost"
    assert summary.error == "Stream camera dropped and did not come back (--reconnect 0)."


# -- the command ------------------------------------------------------------------------------------------


def test_webcam_with_two_sources_writes_one_video_per_source(media: dict, tmp_path: Path) -> None:
    save, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    result = invoke(
        "webcam", media["model"], "-s", media["long"], "-s", media["short"], "--display", "off",
        "--save", save, "--jsonl", jsonl, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    n = {0: len(media["long_labels"]), 1: len(media["short_labels"])}
    for i in (0, 1):
        cap = cv2.VideoCapture(str(tmp_path / f"out.{i}.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n[i]
        cap.release()
    assert not save.exists()
    events = by_source(lines(jsonl))
    assert {i: len(e) for i, e in events.items()} == n
    assert "per source" in result.output and "Source 1 [short.mp4]: " in result.output
    assert f"{n[0] + n[1]} frames read, {n[0] + n[1]} classified" in result.output
    # An existing output of any one source is refused before anything starts.
    (tmp_path / "keep.1.mp4").write_text("precious")
    again = invoke(
        "webcam", media["model"], "-s", media["long"], "-s", media["short"], "--save", tmp_path / "keep.mp4"
    )
    assert "keep.1.mp4 exists; pass --force" in one_error(again)
    assert (tmp_path / "keep.1.mp4").read_text() == "precious" and not (tmp_path / "keep.0.mp4").exists()


def test_a_sources_file_lists_one_source_per_line(media: dict, tmp_path: Path) -> None:
    listing = tmp_path / "cameras.txt"
    listing.write_text(f"# the lab\n{media['short']}\n\n   {media['long']}  \n# end\n")
    assert [s.text for s in read_sources_file(listing)] == [str(media["short"]), str(media["long"])]
    out = tmp_path / "out.jsonl"
    result = invoke("webcam", media["model"], "--sources", listing, "--display", "off", "--jsonl", out)
    assert result.exit_code == 0, result.output
    assert {e["source"]["name"] for e in lines(out)} == {str(media["short"]), str(media["long"])}
    assert "does not exist" in one_error(invoke("webcam", media["model"], "--sources", tmp_path / "none.txt"))
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    assert "lists no source" in one_error(
        invoke("webcam", media["model"], "--sources", tmp_path / "empty.txt")
    )


def test_a_source_that_does_not_open_stops_the_start_and_closes_the_others(media: dict) -> None:
    # --every applies to the file only: the stream is refused for not answering, not for --every.
    options = SourceOptions(open_timeout=1, read_timeout=1, every=2)
    with pytest.raises(Exception, match=r"did not open: connection refused by 127.0.0.1:9") as err:
        open_sources([str(media["long"]), "rtsp://admin:hunter22@127.0.0.1:9/live"], options)
    assert "admin:***@" in str(err.value) and "hunter22" not in str(err.value)
    assert "--every" in one_error(invoke("webcam", media["model"], "-s", "0", "-s", "1", "--every", 2))


# -- the threads the loop leaves for capture and decoding ----------------------------------------------------


def test_threads_follow_what_capture_and_decoding_take(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "usable_cores", lambda: 2)
    assert cores.threads_for(0.0).threads == 2  # nothing to decode: every core
    assert cores.threads_for(0.3).threads == 2  # four small streams: still both
    assert cores.threads_for(0.0, file_decode_ms=2.1, inference_ms=12.0).threads == 2  # a 720p file, AlexNet
    assert cores.threads_for(0.0, file_decode_ms=2.1, inference_ms=0.2).threads == 1  # decoding dominates
    assert cores.threads_for(1.8).threads == 1  # never zero
    monkeypatch.setattr(host, "usable_cores", lambda: 8)
    assert cores.threads_for(1.6).threads == 6 and cores.threads_for(2.5).threads == 6  # half rounds up
    budget = cores.threads_for(0.5, file_decode_ms=3.0, inference_ms=9.0)
    assert budget.busy == pytest.approx(0.5 + 7.5 * 0.25) and budget.threads == 6
    assert "measured at 2.4 of 8 cores" in budget.describe()


def test_the_cores_capture_and_decoding_take_are_measured(media: dict) -> None:
    class BusyCamera(ColourCamera):
        """Spends about 4 ms of CPU on each frame, 100 frames a second: about 0.4 of a core."""

        def read(self) -> tuple[bool, np.ndarray | None]:
            end = time.thread_time() + 0.004
            while time.thread_time() < end:
                pass
            return super().read()

    cam = BusyCamera("1", delay=0.006)
    live = LiveSource("camera", SourceOptions(), opener=lambda: cam).open()
    try:
        with FileSource(media["long"]) as file:
            decode = cores.decode_ms(file)
            busy = cores.live_load([live, file])
    finally:
        cam.stop = True
        live.close()
    assert 0 < decode < 50
    assert 0.1 < busy < 1.2, busy  # about 0.4; a loaded machine gives the thread less time
    assert cores.live_load([FileSource(media["long"])]) == 0.0  # files alone: nothing to wait for


def test_a_large_batch_is_preprocessed_in_threads_to_the_same_array(
    media: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mgc_edge.preprocess import preprocess
    from mgc_edge.runtime.live.stages import Preprocessor

    spec = Classifier(media["model"], device="cpu").spec
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40 + 7 * i, 64 + 5 * i, 3), dtype=np.uint8) for i in range(13)]
    monkeypatch.setattr(host, "usable_cores", lambda: 8)
    split = Preprocessor(spec, sources=16)
    try:
        assert split.workers == 4 and split.pool is not None
        assert np.array_equal(split(images), preprocess(images, spec))
        assert np.array_equal(split(images[:3]), preprocess(images[:3], spec))  # small batches: one call
    finally:
        split.close()
    monkeypatch.setattr(host, "usable_cores", lambda: 2)
    assert Preprocessor(spec, sources=16).pool is None  # two cores: nothing to spare
    assert Preprocessor(spec, sources=4).pool is None


def test_a_web_view_nobody_watches_costs_the_loop_no_drawing(media: dict) -> None:
    from mgc_edge.runtime.sinks.web.config import ServeConfig
    from mgc_edge.runtime.sinks.web.server import LiveServer, model_info

    clf = Classifier(media["model"], device="cpu")
    rec = Recorder()
    rec.wants_image = False  # it records the image the loop hands out: drawn ones are enlarged to 360 rows
    with LiveServer(ServeConfig(port=0), model_info(clf), status) as server:
        with FileSource(media["short"]) as file:
            run_loop(clf, file, LoopOptions(), [server, rec])
    assert {shape for shape, _ in rec.frames} == {(48, 64, 3)}
