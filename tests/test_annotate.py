"""`mgc-edge annotate` end to end on generated videos whose every frame's label is known: the same labels as
`webcam` frame by frame, the three files per video, scores against a CSV and an .eaf truth, resuming (kept,
stale, killed midway), corrupt videos, bad input in one sentence, and memory bounded by the decode queue."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pympi
import pytest
from test_runtime_loop import colour_model, colour_video
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.config import PreprocessSpec
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.recorded.annotate import annotate
from mgc_edge.runtime.recorded.decode import (
    CHUNK,
    Batch,
    DecodeOptions,
    VideoBatches,
    VideoEnded,
    VideoStarted,
)
from mgc_edge.runtime.recorded.jobs import output_names
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.recorded.outputs.eaf import read_eaf
from mgc_edge.runtime.recorded.outputs.timeline_png import Row, colour_of, draw_timeline
from mgc_edge.runtime.recorded.segments import Segment

pytest_plugins = ["export_fixtures"]  # resnet_export: computed once per session
runner = CliRunner()
FPS = 20.0
SEGMENTS = [("1", 12), ("3", 10), ("2", 14), ("1", 12)]  # 48 frames, every segment longer than 0.3 s


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def closing(result: Any) -> dict[str, Any]:
    """The last stdout line, the one for scripts."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("annotate")
    model = colour_model(root / "colour.onnx")
    rng = np.random.default_rng(3)
    flicker = [(str(rng.integers(1, 4)), 1) for _ in range(60)]  # every frame its own colour
    colour_video(root / "flicker.mp4", flicker, FPS)
    labels = colour_video(root / "session.mp4", SEGMENTS, FPS)
    truth = root / "session.csv"
    truth.write_text("frame,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
    return {"root": root, "model": model, "flicker": root / "flicker.mp4", "session": root / "session.mp4",
            "labels": labels, "truth": truth}  # fmt: skip


@pytest.mark.parametrize("every", [1, 3])
def test_labels_equal_webcam_frame_by_frame(media: dict[str, Any], tmp_path: Path, every: int) -> None:
    """Batching, threads and order must not change a label: top-1 and smoothed label of every frame are
    the ones `webcam` gives on the same frames (a video whose every frame has its own colour)."""
    jsonl = tmp_path / "w.jsonl"
    result = invoke(
        "webcam", media["model"], "--source", media["flicker"], "--display", "off", "--jsonl", jsonl,
        "--every", every, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke(
        "annotate", media["model"], media["flicker"], "--out", tmp_path / "a", "--every", every,
        "--batch-size", 7, "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    got = rows(tmp_path / "a" / "flicker.frames.csv")
    assert len(got) == len(events) == len(range(0, 60, every))
    assert [int(r["frame"]) for r in got] == [e["frame"] for e in events]
    assert [r["label"] for r in got] == [e["top"][0]["label"] for e in events]
    assert [r["smoothed_label"] for r in got] == [e["smoothed"]["label"] for e in events]
    assert [float(r["time"]) for r in got] == pytest.approx([e["t"] for e in events], abs=1e-3)
    assert len({r["label"] for r in got}) == 3  # the labels really change from frame to frame


@pytest.mark.slow
def test_labels_equal_webcam_with_a_trained_network(
    resnet_export: Any, synth_data: Path, tmp_path: Path
) -> None:
    """The same with a real convolutional network (fp32 and int8), on a video of its training images (which it
    tells apart, so that the labels change from frame to frame)."""
    images = [sorted((synth_data / c).glob("*.jpg"))[0] for c in sorted(p.name for p in synth_data.iterdir())]
    video = tmp_path / "people.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (160, 90))
    for path in images * 2:
        writer.write(cv2.resize(cv2.imread(str(path)), (160, 90)))
    writer.release()
    for m in resnet_export.models:
        if m.precision == "fp16":
            continue
        jsonl = tmp_path / f"{m.precision}.jsonl"
        assert (
            invoke(
                "webcam", m.path, "--source", video, "--display", "off", "--jsonl", jsonl, "--device", "cpu"
            ).exit_code
            == 0
        )
        out = tmp_path / m.precision
        result = invoke("annotate", m.path, video, "--out", out, "--batch-size", 16, "--device", "cpu")
        assert result.exit_code == 0, result.output
        events = [json.loads(line) for line in jsonl.read_text().splitlines()]
        got = rows(out / "people.frames.csv")
        assert [(r["label"], r["smoothed_label"]) for r in got] == [
            (e["top"][0]["label"], e["smoothed"]["label"]) for e in events
        ]
        assert len(got) == 64 and len({r["label"] for r in got}) > 5


def test_the_three_files(media: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        "annotate", media["model"], media["session"], "--out", out, "--topk", 2, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    line = closing(result)
    assert (line["done"], line["kept"], line["failed"], line["frames"]) == (1, 0, 0, 48)
    frames = rows(out / "session.frames.csv")
    header = list(frames[0])
    assert header == [
        "frame",
        "time",
        "label",
        "name",
        "prob",
        "smoothed_label",
        "top1",
        "top2",
        "prob1",
        "prob2",
    ]
    assert [int(r["frame"]) for r in frames] == list(range(48))
    assert [float(r["time"]) for r in frames] == pytest.approx([i / FPS for i in range(48)], abs=1e-3)
    assert [r["label"] for r in frames] == media["labels"]  # the colour model is always right per frame
    assert all(
        r["top1"] == r["label"] and r["prob1"] == r["prob"] and r["name"] == f"class {r['label']}"
        for r in frames
    )
    segments = rows(out / "session.segments.csv")
    assert ",".join(segments[0]) == "segment,start_frame,end_frame,start_time,end_time,label,name,mean_prob"
    assert [s["label"] for s in segments] == ["1", "3", "2", "1"]
    assert segments[0]["start_frame"] == "0" and segments[-1]["end_frame"] == "47"
    assert float(segments[-1]["end_time"]) == pytest.approx(48 / FPS)
    for a, b in zip(segments, segments[1:]):  # contiguous, in frames and in time
        assert int(b["start_frame"]) == int(a["end_frame"]) + 1 and b["start_time"] == a["end_time"]
    assert all(0.5 < float(s["mean_prob"]) <= 1 for s in segments)
    doc = read_eaf(out / "session.eaf")
    anns = doc.tiers["gesture"]
    assert [doc.label_of(a) for a in anns] == ["1", "3", "2", "1"]
    assert [(a.start_ms, a.end_ms) for a in anns] == [
        (round(float(s["start_time"]) * 1000), round(float(s["end_time"]) * 1000)) for s in segments
    ]
    assert (
        pympi.Elan.Eaf(str(out / "session.eaf")).media_descriptors[0]["MEDIA_URL"]
        == media["session"].resolve().as_uri()
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"done": 1, "kept": 0, "failed": 0, "refused": 0}
    assert summary["videos"][0]["segments"] == 4 and summary["settings"]["min_seconds"] == 0.3


def test_scores_against_a_csv_and_an_eaf_truth(media: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        "annotate", media["model"], media["session"], "--out", out, "--truth", media["truth"], "--plot"
    )
    assert result.exit_code == 0, result.output
    line = closing(result)
    smoothed = [r["smoothed_label"] for r in rows(out / "session.frames.csv")]
    expected = np.mean([s == t for s, t in zip(smoothed, media["labels"])])
    assert 0.85 < expected < 1  # smoothing lags a frame or two at each change
    assert line["frame_accuracy"] == pytest.approx(expected, abs=1e-4)
    assert line["segment_f1"] == 1.0 and line["segment_precision"] == 1.0  # every boundary within 2 frames
    scores = json.loads((out / "summary.json").read_text())["overall"]
    assert scores["top1_accuracy"] == 1.0 and scores["segments_true"] == 4
    assert "frame accuracy" in result.output and "Against the truth" in result.output
    image = cv2.imread(str(out / "session.timeline.png"))
    assert image is not None and image.shape[1] == 1600
    # Our own .eaf as the truth of the same video: perfect agreement, label ids found through CVE_REF.
    result = invoke(
        "annotate",
        media["model"],
        media["session"],
        "--out",
        tmp_path / "again",
        "--truth",
        out / "session.eaf",
    )
    line = closing(result)
    assert (line["frame_accuracy"], line["segment_f1"]) == (1.0, 1.0)
    # A researcher's .eaf (written by pympi) naming classes by name, one value the model does not know.
    theirs = pympi.Elan.Eaf(author="someone")
    theirs.add_tier("hands")
    for (label, n), start in zip(SEGMENTS, np.cumsum([0] + [n for _, n in SEGMENTS])):
        theirs.add_annotation(
            "hands", int(start * 50), int((start + n) * 50), f"Class {label}" if start else "waving"
        )
    (tmp_path / "truths").mkdir()
    pympi.Elan.to_eaf(str(tmp_path / "truths" / "session.eaf"), theirs)
    result = invoke(
        "annotate",
        media["model"],
        media["session"],
        "--out",
        tmp_path / "third",
        "--truth",
        tmp_path / "truths",
    )
    assert result.exit_code == 0, result.output
    assert "waving" in result.output and "cannot predict" in result.output
    line = closing(result)
    assert line["segment_recall"] == 0.75 and 0.6 < line["frame_accuracy"] < 0.75


def test_a_second_run_keeps_what_is_up_to_date(media: dict[str, Any], tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        shutil.copy(media["session"], videos / f"{name}.mp4")
    out = tmp_path / "out"
    args = ["annotate", media["model"], videos, "--out", out, "--device", "cpu"]
    assert closing(invoke(*args))["done"] == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = invoke(*args)
    assert (closing(result)["kept"], closing(result)["done"]) == (2, 0)
    assert "already annotated" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "summary.json"} == {
        k: v for k, v in stamps.items() if k != "summary.json"
    }
    # A missing file, another video, other settings, --force: each is done again, the rest kept.
    (out / "a.segments.csv").unlink()
    assert (closing(invoke(*args))["done"], closing(invoke(*args))["kept"]) == (1, 2)
    os.utime(videos / "b.mp4")  # a newer time alone changes nothing
    assert closing(invoke(*args))["kept"] == 2
    assert closing(invoke(*args))["done"] == 0
    assert closing(invoke(*args, "--min-seconds", "0.5"))["done"] == 2
    assert closing(invoke(*args, "--min-seconds", "0.5", "--force"))["done"] == 2
    # Kept videos are scored from their files, without decoding them again.
    (tmp_path / "truths").mkdir()
    shutil.copy(media["truth"], tmp_path / "truths" / "a.csv")
    result = invoke(*args, "--min-seconds", "0.5", "--truth", tmp_path / "truths")
    assert "No truth for 1 video(s) (b)" in result.output
    fresh = closing(invoke("annotate", media["model"], videos / "a.mp4", "--out", tmp_path / "fresh",
                           "--min-seconds", "0.5", "--truth", media["truth"]))  # fmt: skip
    kept = closing(result)
    assert kept["kept"] == 2 and kept["frame_accuracy"] == fresh["frame_accuracy"] > 0.85
    assert kept["segment_f1"] == fresh["segment_f1"] == 1.0


def test_a_run_killed_midway_is_finished_by_the_next(media: dict[str, Any], tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    long = colour_video(tmp_path / "long.mp4", SEGMENTS * 25, FPS)  # 1,200 frames each
    for i in range(4):
        shutil.copy(tmp_path / "long.mp4", videos / f"v{i}.mp4")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mgc_edge", "annotate", str(media["model"]), str(videos), "--out", str(out),
           "--batch-size", "1", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "v0.eaf").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    complete = {
        f"v{i}"
        for i in range(4)
        if all((out / f"v{i}{s}").exists() for s in (".frames.csv", ".segments.csv", ".eaf"))
    }
    assert "v0" in complete and len(complete) < 4  # killed with work left
    result = invoke("annotate", media["model"], videos, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    kept = {v["name"] for v in summary["videos"] if v["status"] == "kept"}
    assert kept == complete and summary["counts"]["done"] == 4 - len(complete)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    assert all(len(rows(out / f"v{i}.frames.csv")) == len(long) for i in range(4))


def test_an_interrupted_run_leaves_whole_files_only(
    media: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mgc_edge.runtime.recorded import recorder as mod

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        shutil.copy(media["session"], videos / f"{name}.mp4")
    real = mod.Recorder.add
    calls = {"n": 0}

    def add(self: Any, batch: Any, logits: Any) -> None:
        calls["n"] += 1
        if self.job.name == "b":
            raise KeyboardInterrupt
        real(self, batch, logits)

    monkeypatch.setattr(mod.Recorder, "add", add)
    clf = Classifier(media["model"], device="cpu")
    with pytest.raises(KeyboardInterrupt):
        annotate(clf, [videos], AnnotateOptions(out=tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.eaf",
        "a.frames.csv",
        "a.mgc.json",
        "a.segments.csv",
    ]


def test_corrupt_videos_are_listed_and_skipped(media: dict[str, Any], tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(media["session"], videos / "good.mp4")
    (videos / "text.mp4").write_text("not a video")
    (videos / "empty.avi").write_bytes(b"")
    writer = cv2.VideoWriter(str(tmp_path / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(100):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = (tmp_path / "full.avi").read_bytes()
    (videos / "truncated.avi").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = invoke("annotate", media["model"], videos, "--out", out, "--device", "cpu")
    assert result.exit_code == 1, result.output
    line = closing(result)
    assert (line["done"], line["failed"]) == (1, 3)
    assert "3 video(s) could not be decoded" in result.output and "damaged or truncated" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "good.eaf",
        "good.frames.csv",
        "good.mgc.json",
        "good.segments.csv",
        "summary.json",
    ]
    failed = {
        v["name"]: v["note"]
        for v in json.loads((out / "summary.json").read_text())["videos"]
        if v["status"] == "failed"
    }
    assert set(failed) == {"empty", "text", "truncated"} and "frame 4" in failed["truncated"]
    result = invoke(
        "annotate", media["model"], videos, "--out", tmp_path / "strict", "--strict", "--device", "cpu"
    )
    assert result.exit_code == 2 and "--strict" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["{model}", "{tmp}/missing.mp4"], "does not exist"),
        (["{tmp}/missing.onnx", "{video}"], "does not exist"),
        (["{model}", "{video}", "--background", "7"], "--background 7 is not a label"),
        (["{model}", "{video}", "--start", "2", "--end", "1"], "must come after --start"),
        (["{model}", "{video}", "--min-seconds", "-1"], "--min-seconds"),
        (["{model}", "{video}", "--every", "0"], "--every"),
        (["{model}", "{video}", "--smooth", "ema:7"], "--smooth"),
        (["{model}", "{video}", "{video2}", "--truth", "{truth}"], "is one file but 2 videos"),
        (["{model}", "{video}", "--truth", "{tmp}"], "holds no <video name>.csv"),
        (["{model}", "{video}", "--out", "{truth}"], "is a file"),
        (["{model}", "{video}", "--out", "{tmp}/copy.mp4/out"], "out cannot be written ("),
        (["{model}", "{tmp}/*.mkv"], "No video file matches"),
        (["{model}", "{video}", "--start", "100"], "has no frame from 100 s"),
    ],
)
def test_bad_input_is_one_sentence(
    media: dict[str, Any], tmp_path: Path, args: list[str], message: str
) -> None:
    shutil.copy(media["session"], tmp_path / "copy.mp4")
    values = {"{model}": media["model"], "{video}": media["session"], "{video2}": tmp_path / "copy.mp4",
              "{truth}": media["truth"], "{tmp}": tmp_path}  # fmt: skip
    argv = [str(values.get(a, a)).replace("{tmp}", str(tmp_path)) for a in args]
    result = invoke("annotate", *argv, "--device", "cpu", "--strict")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in result.output and "Traceback" not in result.output


def test_a_folder_finds_the_recordings_of_ip_cameras_phones_and_camcorders(
    media: dict[str, Any], tmp_path: Path
) -> None:
    """MJPEG recordings of IP cameras (.mjpg), phones (.3gp) and AVCHD camcorders (.m2ts) are videos too;
    OpenCV reads them by their content, whatever the name."""
    names = ["cam.mjpg", "cam2.MJPEG", "phone.3gp", "camcorder.m2ts", "notes.txt"]
    for name in names:
        shutil.copy(media["session"], tmp_path / name)
    result = invoke("annotate", media["model"], tmp_path, "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert closing(result)["done"] == 4


def test_videos_sharing_a_name_get_their_folder_added(media: dict[str, Any], tmp_path: Path) -> None:
    for folder in ("monday", "tuesday"):
        (tmp_path / folder).mkdir()
        shutil.copy(media["session"], tmp_path / folder / "s1.mp4")
    shutil.copy(media["session"], tmp_path / "monday" / "s1.avi")
    paths = [tmp_path / "monday" / "s1.mp4", tmp_path / "tuesday" / "s1.mp4", tmp_path / "other.mp4"]
    assert output_names(paths) == ["s1-monday", "s1-tuesday", "other"]
    assert output_names([tmp_path / "monday" / "s1.mp4", tmp_path / "monday" / "s1.avi"]) == [
        "s1-mp4",
        "s1-avi",
    ]
    result = invoke(
        "annotate",
        media["model"],
        tmp_path / "monday" / "s1.mp4",
        tmp_path / "tuesday",
        "--out",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "out").glob("*.eaf")} == {"s1-monday.eaf", "s1-tuesday.eaf"}


def test_start_end_and_every_choose_the_frames(media: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        "annotate",
        media["model"],
        media["session"],
        "--out",
        out,
        "--start",
        "0.5",
        "--end",
        "1.6",
        "--every",
        "2",
    )
    assert result.exit_code == 0, result.output
    frames = [int(r["frame"]) for r in rows(out / "session.frames.csv")]
    assert frames == [f for f in range(10, 32) if f % 2 == 0]
    segments = rows(out / "session.segments.csv")
    assert float(segments[0]["start_time"]) == 0.5 and float(segments[-1]["end_time"]) == pytest.approx(1.6)


class EndlessCapture:
    """A fake video that never ends, counting the frames read."""

    def __init__(self) -> None:
        self.reads = 0

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def grab(self) -> bool:
        self.reads += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray]:
        return True, np.zeros((480, 640, 3), np.uint8)

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_POS_MSEC: self.reads * 1000 / 30}.get(prop, 0.0)

    def release(self) -> None:
        pass


def test_decoding_ahead_is_bounded(tmp_path: Path) -> None:
    """A consumer that stops reading stops the decoder after a bounded number of frames: memory does not grow
    with the video's length, however long it is."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    cap = EndlessCapture()
    options = DecodeOptions(batch_size=16, workers=2)
    with VideoBatches([video], PreprocessSpec(size=(32, 32)), options, opener=lambda _p: cap) as stream:
        items = iter(stream)
        assert isinstance(next(items), VideoStarted)
        first = next(items)
        assert isinstance(first, Batch) and first.x.shape == (16, 3, 32, 32)
        assert first.frames.tolist() == list(range(16))
        time.sleep(0.5)
        bound = (options.queue_chunks() + 2 * 2 + 2) * CHUNK + options.batch_size
        assert cap.reads <= bound
        reads = cap.reads
        time.sleep(0.3)
        assert cap.reads == reads  # blocked, not decoding on
    assert not any(t.name == "mgc-decode" and t.is_alive() for t in threading.enumerate())


def test_every_video_ends_with_its_count(media: dict[str, Any]) -> None:
    with VideoBatches(
        [media["session"]], PreprocessSpec(size=(16, 16)), DecodeOptions(batch_size=10)
    ) as stream:
        items = list(stream)
    batches = [i for i in items if isinstance(i, Batch)]
    assert [len(b.frames) for b in batches] == [10, 10, 10, 10, 8]  # batches of 10, never across videos
    (end,) = [i for i in items if isinstance(i, VideoEnded)]
    assert (end.classified, end.stopped_at) == (48, 48) and end.end_time == pytest.approx(48 / FPS)


def test_the_timeline_draws_each_row_in_its_class_colours() -> None:
    truth = [Segment(0, 9, 0.0, 1.0, "a"), Segment(10, 19, 1.0, 2.0, "b")]
    predicted = [Segment(0, 14, 0.0, 1.5, "b"), Segment(15, 19, 1.5, 2.0, "c")]
    image = draw_timeline([Row("truth", truth), Row("predicted", predicted)], (0.0, 2.0), ["a", "b", "c"], {})
    assert image.shape[1] == 1600 and image.dtype == np.uint8
    present = ["a", "b", "c"]
    x = lambda t: 120 + round(t / 2.0 * (1600 - 150))  # noqa: E731 (the plot area's left edge and width)
    truth_y, predicted_y = 48 + 5, 48 + 46 + 12 + 5  # inside each bar, above its label text
    assert tuple(image[truth_y, x(0.2)]) == colour_of("a", present)
    assert tuple(image[truth_y, x(1.8)]) == colour_of("b", present)
    assert tuple(image[predicted_y, x(0.2)]) == colour_of("b", present)
    assert tuple(image[predicted_y, x(1.8)]) == colour_of("c", present)
    assert len({colour_of(label, present) for label in present}) == 3


def test_a_new_annotation_format_is_one_module_and_one_line_in_outputs(
    media: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small example format (each segment's label on a line of `<name>.labels.txt`) added to `OUTPUTS` is
    written for every video, listed in summary.json, and, being required, makes a video annotated before it
    existed be done again rather than kept."""
    from types import SimpleNamespace

    from mgc_edge.runtime.recorded import outputs

    out = tmp_path / "out"
    assert invoke("annotate", media["model"], media["session"], "--out", out).exit_code == 0

    def write(path: Path, annotation: Any) -> None:
        path.write_text("".join(f"{s.label}\n" for s in annotation.segments))

    labels = SimpleNamespace(SUFFIX=".labels.txt", REQUIRED=True, wanted=lambda options: True, write=write)
    monkeypatch.setattr(outputs, "OUTPUTS", [*outputs.OUTPUTS, labels])
    result = invoke("annotate", media["model"], media["session"], "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["counts"]["done"] == 1 and summary["counts"]["kept"] == 0
    )  # redone: its new file was missing
    assert summary["videos"][0]["outputs"][-1] == str(out / "session.labels.txt")
    segments = [r["label"] for r in rows(out / "session.segments.csv")]
    assert (out / "session.labels.txt").read_text().split() == segments == ["1", "3", "2", "1"]
