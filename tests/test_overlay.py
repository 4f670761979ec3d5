"""The overlay (a pure drawing function) and the sinks: headless detection, the window's quit keys,
the annotated mp4 and the JSONL file (written atomically, never over an existing file)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mgc_edge.errors import UserError
from mgc_edge.fileio import OutputExistsError
from mgc_edge.runtime.overlay import MIN_HEIGHT, OverlayView, annotate, draw_state
from mgc_edge.runtime.sinks import window as K
from mgc_edge.runtime.sinks.base import Sink, StopRequested
from mgc_edge.runtime.sinks.jsonl import JsonlSink
from mgc_edge.runtime.sinks.video import VIDEO_CODECS, VideoSink
from mgc_edge.runtime.sinks.window import WindowSink

VIEW = OverlayView(
    top=[("Touching jaw", 0.71), ("Folding arms", 0.2), ("Crossing fingers", 0.09)],
    smoothed=("Touching jaw", 0.64),
    capture_fps=30.0,
    inference_fps=28.5,
    latency_ms=12.0,
)


def frame(h: int = 180, w: int = 320, value: int = 120) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_annotate_draws_on_a_copy_enlarged_to_a_readable_size() -> None:
    small = frame()
    before = small.copy()
    out = annotate(small, VIEW)
    np.testing.assert_array_equal(small, before)  # the input is never drawn on
    assert out.shape == (MIN_HEIGHT, 640, 3)
    big = frame(720, 1280)
    out_big = annotate(big, VIEW)
    assert out_big.shape == big.shape
    # The panel is on the top left; the rest of the frame is untouched.
    assert (out_big[:60, :200] != 120).any()
    assert (out_big[-100:, -300:] == 120).all()


def _bar_fill(prob: float) -> int:
    view = OverlayView(top=[("a", prob)], smoothed=("a", prob))
    out = annotate(frame(720, 1280, 0), view)
    return int((np.abs(out.astype(int) - (60, 170, 250)).sum(axis=2) == 0).sum())  # pixels in the bar colour


def test_probability_bars_grow_with_the_probability() -> None:
    empty, half, full = _bar_fill(0.0), _bar_fill(0.5), _bar_fill(1.0)
    assert empty == 0 < half < full
    assert half == pytest.approx(full / 2, rel=0.1)


def test_states_other_than_live_get_a_banner() -> None:
    img = frame(360, 640)
    live = annotate(img, VIEW)
    stale = annotate(img, OverlayView(**{**VIEW.__dict__, "state": "reconnecting", "message": "try 1 of 5"}))
    assert (live[-40:] == 120).all() and (stale[-40:] != live[-40:]).any()
    np.testing.assert_array_equal(draw_state(img, "live"), img)
    assert (draw_state(img, "stale")[-30:] != img[-30:]).any()


def test_names_that_opencv_cannot_draw_do_not_break_the_overlay() -> None:
    view = OverlayView(top=[("摸下巴" * 30, 0.5)], smoothed=("😀", 0.5))
    assert annotate(frame(), view).shape == (MIN_HEIGHT, 640, 3)


# -- window / headless -------------------------------------------------------------------------------


def test_no_display_means_headless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(K.sys, "platform", "linux")
    monkeypatch.setattr(K.cv2, "getBuildInformation", lambda: "  GUI:                           QT5\n")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "no display" in K.display_problem()
    monkeypatch.setenv("DISPLAY", ":0")
    assert K.display_problem() is None
    monkeypatch.setattr(K.cv2, "getBuildInformation", lambda: "  GUI:                           NONE\n")
    assert "no GUI" in K.display_problem()  # opencv-python-headless, even with a display


def test_a_failing_imshow_is_said_once_then_the_window_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(*args: object) -> None:
        calls.append(args)
        raise cv2.error("The function is not implemented: Rebuild the library with GTK+ 2.x")

    monkeypatch.setattr(K.cv2, "imshow", broken)
    notes: list[str] = []
    sink = WindowSink(notify=notes.append)
    for _ in range(3):
        sink.frame(frame(), {})
    sink.state({"state": "stale", "message": ""})
    sink.close()
    assert len(calls) == 1 and len(notes) == 1 and "running headless" in notes[0]


@pytest.mark.parametrize(("key", "stops"), [(ord("q"), True), (27, True), (ord("x"), False), (-1, False)])
def test_q_or_escape_in_the_window_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch, key: int, stops: bool
) -> None:
    shown = []
    monkeypatch.setattr(K.cv2, "imshow", lambda title, img: shown.append(img.shape))
    monkeypatch.setattr(K.cv2, "waitKey", lambda ms: key)
    monkeypatch.setattr(K.cv2, "destroyWindow", lambda title: None)
    sink = WindowSink()
    if stops:
        with pytest.raises(StopRequested):
            sink.frame(frame(), {})
    else:
        sink.frame(frame(), {})
        sink.state({"state": "reconnecting", "message": "try 1"})  # redraws the last frame with a banner
        assert shown == [(180, 320, 3), (180, 320, 3)]
    sink.close()


# -- files -----------------------------------------------------------------------------------------------


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            return frames
        frames.append(img)


def test_video_sink_writes_every_frame_keeps_the_first_size_and_says_its_codec_once(tmp_path: Path) -> None:
    notes: list[str] = []
    out = tmp_path / "annotated.mp4"
    sink = VideoSink(out, fps=15, notify=notes.append)
    for i in range(4):
        sink.frame(frame(180, 320, 40 * i), {})
    sink.frame(frame(240, 320, 200), {})  # a reconnect brought another size
    sink.frame(frame(240, 320, 200), {})
    assert not out.exists()  # written under a temporary name until closed
    sink.close()
    frames = read_video(out)
    assert len(frames) == 6 and {f.shape for f in frames} == {(180, 320, 3)}
    assert sink.codec in VIDEO_CODECS
    assert sum("frame size changed" in n for n in notes) == 1
    assert sum("H.264" in n for n in notes) == (sink.codec != "avc1")
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]  # no temporary file left behind


def test_a_paced_video_plays_in_real_time_whatever_the_model_kept_up_with(tmp_path: Path) -> None:
    """A live source's mp4: each classified frame where its capture time falls, the one before repeated over
    what was not classified, a frame early by jitter in the next place, a long outage cut to max_gap, and a
    source faster than its announced rate thinned to it."""
    notes: list[str] = []
    out = tmp_path / "live.mp4"
    sink = VideoSink(out, fps=10, notify=notes.append, paced=True, max_gap=1.0)
    # capture times: the stream starts at 5 s; 3 frames not classified; jitter; a 60 s outage; then 25 fps
    times = [5.0, 5.1, 5.5, 5.52, 5.6, 65.6, 65.7, 65.74, 65.78, 65.82, 65.86, 65.9, 65.94, 65.98]
    for i, t in enumerate(times):
        sink.frame(frame(60, 80, 18 * i), {"t": t})
    sink.close()
    levels = [round(float(f.mean()) / 18) for f in read_video(out)]
    # 5.0 -> place 0, 5.1 -> 1, 5.5 -> 5 (frame 1 repeated 3x), 5.52 -> 6 (one place early: the next one),
    # 5.6 -> 7; 65.6: 598 places missing, cut to 10 repeats of frame 4, itself at 18; then 25 fps into 10:
    # each frame at its place or one early, the ones that would lead by more left out (9, 11, 12).
    assert levels == [0, 1, 1, 1, 1, 2, 3, 4] + [4] * 10 + [5, 6, 7, 8, 10, 13]
    assert sink.frames == len(levels)
    assert any("no frame for 60 s" in n for n in notes) and any("faster than the 10 fps" in n for n in notes)
    assert len(notes) == 2 + ("H.264" in " ".join(notes))


def test_video_sink_refuses_an_existing_file_and_other_containers(tmp_path: Path) -> None:
    out = tmp_path / "old.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--force"):
        VideoSink(out, fps=15)
    assert out.read_bytes() == b"precious"
    with pytest.raises(UserError, match=r"\.mp4"):
        VideoSink(tmp_path / "x.avi", fps=15)
    sink = VideoSink(out, fps=15, force=True)
    sink.frame(frame(), {})
    sink.close()
    assert len(read_video(out)) == 1


def test_jsonl_sink_writes_one_object_per_frame_atomically(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    sink = JsonlSink(out)
    assert not sink.wants_image and VideoSink(tmp_path / "v.mp4", 10).wants_image
    events = [{"frame": i, "t": i / 10, "smoothed": {"label": "3"}} for i in range(3)]
    for e in events:
        sink.frame(frame(), e)
    sink.state({"state": "stale", "message": "", "t": 1.0})  # states are not lines
    assert not out.exists()
    sink.close()
    sink.close()  # closing twice is harmless
    assert [json.loads(line) for line in out.read_text().splitlines()] == events
    with pytest.raises(OutputExistsError):
        JsonlSink(out)


def test_every_sink_follows_the_protocol(tmp_path: Path) -> None:
    for sink in (WindowSink(), VideoSink(tmp_path / "a.mp4", 10), JsonlSink(tmp_path / "a.jsonl")):
        assert isinstance(sink, Sink)
        sink.close()
