"""Frame sources: every frame of a file, the newest frame of a live source (never a repeat, never a
placeholder, at most one frame behind), reconnect with a bounded give-up, stale detection, timeouts,
and URLs whose passwords are never shown."""

from __future__ import annotations

import socket
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from mgc_edge.config import PreprocessSpec
from mgc_edge.preprocess import PreprocessError, preprocess
from mgc_edge.runtime import host, sources
from mgc_edge.runtime.sources import open_source
from mgc_edge.runtime.sources import video as video_files
from mgc_edge.runtime.sources.base import (
    ENDED,
    LIVE,
    Frame,
    RateMeter,
    Source,
    SourceError,
    SourceOptions,
    SourceStatus,
    StreamLost,
)
from mgc_edge.runtime.sources.file import FileSource
from mgc_edge.runtime.sources.stream import LiveSource
from mgc_edge.runtime.sources.urls import redact_url


def wait_until(condition, seconds: float = 5.0) -> None:  # noqa: ANN001
    """Poll `condition` until it holds; a bound so that a broken source fails the test instead of hanging."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def numbered(index: int, size: tuple[int, int] = (24, 32)) -> np.ndarray:
    """A frame that carries its own index in its first two pixels (exact: no codec in between)."""
    img = np.full((*size, 3), 128, np.uint8)
    img[0, 0, 0], img[0, 0, 1] = index % 256, index // 256
    return img


def index_of(image: np.ndarray) -> int:
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


class FakeCamera:
    """A cv2.VideoCapture stand-in producing numbered frames; `gate` lets a test release them one by one,
    `limit` makes the stream drop after that many frames."""

    def __init__(
        self,
        limit: int | None = None,
        delay: float = 0.0,
        size: tuple[int, int] = (24, 32),
        gate: threading.Semaphore | None = None,
        opened: bool = True,
        start: int = 0,
    ) -> None:
        self.limit, self.delay, self.size, self.gate, self.opened = limit, delay, size, gate, opened
        self.count, self.start, self.stop, self.released = 0, start, False, False

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.gate is not None:
            while not self.gate.acquire(timeout=0.02):
                if self.stop:
                    return False, None
        if self.stop or (self.limit is not None and self.count >= self.limit):
            return False, None
        if self.delay:
            time.sleep(self.delay)
        image = numbered(self.start + self.count, self.size)
        self.count += 1
        return True, image

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def write_video(path: Path, n: int, fps: float = 25.0, size: tuple[int, int] = (48, 64)) -> Path:
    """A video whose frame i is a flat grey of brightness 8 * i (survives the codec to within a few levels)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((*size, 3), 8 * i, np.uint8))
    writer.release()
    return path


def brightness_index(image: np.ndarray) -> int:
    return round(float(image.mean()) / 8)


# -- files ---------------------------------------------------------------------------------------------


def test_a_file_gives_every_frame_in_order_with_its_index_and_timestamp(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", 20, fps=25)
    with FileSource(video) as src:
        frames = list(src)
        status = src.status()
    assert [f.seq for f in frames] == list(range(20))
    assert [brightness_index(f.image) for f in frames] == list(range(20))
    assert [f.t for f in frames] == pytest.approx([i / 25 for i in range(20)])
    assert src.fps == pytest.approx(25) and src.frame_count == 20 and src.ended
    assert (status.read, status.delivered, status.skipped) == (20, 20, 0)


def test_every_nth_frame_of_a_file(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", 20)
    with FileSource(video, SourceOptions(every=3)) as src:
        frames = list(src)
    assert [f.seq for f in frames] == list(range(0, 20, 3))
    assert [brightness_index(f.image) for f in frames] == list(range(0, 20, 3))
    assert src.status().skipped == 20 - len(frames)


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_a_small_video_decodes_in_one_thread_on_few_cores_else_in_ffmpegs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    """FFmpeg's frame threads cost a small video more than they save where cores are few
    (video_files.SMALL_FRAME, FEW_CORES); a large video, or a machine of many cores, keeps them. Either way the
    frames are the ones a plain VideoCapture decodes."""
    monkeypatch.setattr(host, "usable_cores", lambda: cores)
    small = write_video(tmp_path / "small.mp4", 4)
    large = write_video(tmp_path / "large.mp4", 2, size=(608, 800))  # 800x608: above 640x360
    few = cores <= video_files.FEW_CORES
    expected_threads: dict[Path, float] = {}
    for video in (small, large):
        plain = cv2.VideoCapture(str(video))
        threads = expected_threads[video] = (
            1.0 if few and video == small else plain.get(cv2.CAP_PROP_N_THREADS)
        )
        cap = video_files.open_video(str(video))
        assert cap.get(cv2.CAP_PROP_N_THREADS) == threads
        for _ in range(2):
            (ok, image), (_, expected) = cap.read(), plain.read()
            assert ok and np.array_equal(image, expected)
        cap.release()
        plain.release()
    with FileSource(small) as src:
        assert src._cap.get(cv2.CAP_PROP_N_THREADS) == expected_threads[small]  # type: ignore[union-attr]


def test_a_truncated_file_says_how_far_it_decoded(tmp_path: Path) -> None:
    """A recording cut short (a full disk, a copy stopped midway) ends early; the user is told, as annotate
    tells, instead of a run that looks whole."""
    whole = tmp_path / "whole.avi"  # AVI announces its frame count in its header, which survives a cut
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(100):
        writer.write(np.full((48, 64, 3), 2 * i, np.uint8))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with FileSource(whole) as src:
        assert len(list(src)) == 100 and src.short_end is None
    with FileSource(cut) as src:
        frames = list(src)
    assert 0 < len(frames) < 90 and src.ended
    assert src.short_end == f"{cut} stopped decoding at frame {len(frames)} of 100 (damaged or truncated)."


def test_missing_and_undecodable_files_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"does not exist\.$"):
        open_source(str(tmp_path / "nope.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(SourceError, match=r"cannot be decoded"):
        open_source(str(junk))
    with pytest.raises(SourceError, match=r"cannot be decoded"):
        open_source(str(junk), SourceOptions(realtime=True))


def test_a_paced_file_behaves_like_a_live_source(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", 30, fps=100)
    frames = []
    with open_source(str(video), SourceOptions(realtime=True)) as src:
        assert src.live
        for frame in src:
            frames.append(frame)
            time.sleep(0.035)  # a consumer slower than the file's 100 fps
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)) and seqs[0] == 0 and len(seqs) < 30  # newest only: frames were missed
    assert all(brightness_index(f.image) == f.seq for f in frames)
    assert [f.t for f in frames] == pytest.approx([s / 100 for s in seqs])
    assert src.ended


def test_a_file_source_asked_to_prepare_frames_hands_out_their_model_input(tmp_path: Path) -> None:
    """The loop on a GPU has the reading thread preprocess: `x` is what preprocess() makes of the image; a
    frame that prepare() cannot take is still delivered, without `x`, for the loop to preprocess (and raise)."""
    video = write_video(tmp_path / "v.mp4", 12)
    spec = PreprocessSpec(size=(16, 16))

    def prepare(image: np.ndarray) -> np.ndarray:
        if brightness_index(image) == 5:
            raise PreprocessError("cannot")
        return preprocess(image, spec)[0]

    with FileSource(video, SourceOptions(prefetch=1)) as src:
        src.attach(lambda: None, prepare)
        frames = list(src)
    assert [f.seq for f in frames] == list(range(12))
    late = frames[2:]  # the first two were decoded before attach()
    for f in late:
        if f.seq == 5:
            assert f.x is None and f.prep_ms == 0.0
        else:
            assert f.x is not None and f.prep_ms > 0
            np.testing.assert_array_equal(f.x, preprocess(f.image, spec)[0])


def test_a_live_source_prepares_the_frames_it_keeps() -> None:
    gate = threading.Semaphore(1)
    cam = FakeCamera(gate=gate)
    spec = PreprocessSpec(size=(8, 8))
    src = LiveSource("camera", SourceOptions(read_timeout=1), opener=lambda: cam).open()
    try:
        assert src.read(1.0).x is None  # read at open, before attach()
        src.attach(lambda: None, lambda image: preprocess(image, spec)[0])
        gate.release()
        frame = src.read(1.0)
        assert frame is not None and frame.seq == 1 and frame.x is not None
        np.testing.assert_array_equal(frame.x, preprocess(frame.image, spec)[0])
    finally:
        cam.stop = True
        src.close()


# -- live sources --------------------------------------------------------------------------------------


def test_a_live_source_hands_out_the_newest_frame_once() -> None:
    gate = threading.Semaphore(1)  # the frame read at open
    cam = FakeCamera(gate=gate)
    src = LiveSource("camera", SourceOptions(read_timeout=1), opener=lambda: cam).open()
    try:
        assert src.read(1.0).seq == 0
        assert src.read(0.05) is None  # nothing new: no repeat, no placeholder
        for _ in range(5):
            gate.release()
        wait_until(lambda: src.status().read == 6)  # the frame read at open and five more
        frame = src.read(1.0)
        assert frame.seq == 5 and index_of(frame.image) == 5  # the newest, not the oldest waiting one
        assert src.read(0.05) is None
        status = src.status()
        assert (status.read, status.delivered) == (6, 2)
    finally:
        cam.stop = True
        src.close()


def test_a_slow_consumer_of_a_fast_source_lags_by_at_most_one_frame() -> None:
    cam = FakeCamera(delay=0.002)
    src = LiveSource("camera", SourceOptions(read_timeout=1), opener=lambda: cam).open()
    seqs = []
    try:
        for _ in range(25):
            produced = cam.count  # frames 0 .. produced-1 were captured (the last may still be in flight)
            frame = src.read(2.0)
            assert frame is not None
            assert frame.seq == index_of(frame.image)
            assert frame.seq >= produced - 2  # at most one frame behind the newest captured
            seqs.append(frame.seq)
            time.sleep(0.015)
    finally:
        cam.stop = True
        src.close()
    assert all(b > a for a, b in zip(seqs, seqs[1:]))  # strictly increasing: never a repeat
    assert seqs[-1] - seqs[0] > len(seqs)  # frames were skipped, not queued
    assert src.status().read - src.status().delivered > 0


def test_a_dropped_stream_reconnects_with_a_new_size_then_gives_up_in_one_sentence() -> None:
    cams = [
        FakeCamera(limit=5, delay=0.01),
        FakeCamera(opened=False),
        FakeCamera(limit=5, delay=0.01, size=(30, 40), start=100),
    ]
    opened: list[FakeCamera] = []

    def opener() -> FakeCamera:
        cam = cams.pop(0) if cams else FakeCamera(opened=False)
        opened.append(cam)
        return cam

    options = SourceOptions(reconnect=3, backoff=0.01, backoff_max=0.04)
    src = LiveSource(
        "rtsp://admin:s3cret@10.0.0.7/live", options, opener=opener, probe=lambda *_: None
    ).open()
    frames = []
    with pytest.raises(StreamLost) as lost:
        for frame in src:
            frames.append(frame)
    src.close()
    message = str(lost.value)
    assert (
        message
        == "Stream rtsp://admin:***@10.0.0.7/live dropped and did not come back after 3 reconnect attempts."
    )
    assert len(opened) == 1 + 2 + 3  # the open, two tries to come back, three to give up
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs))
    assert {f.image.shape[:2] for f in frames} == {(24, 32), (30, 40)}
    assert all(f.image.size and f.image.any() for f in frames)  # never a black placeholder
    assert src.status().reconnects == 1 and src.status().state == "failed"


def test_while_reconnecting_the_consumer_gets_nothing_and_sees_the_state() -> None:
    cams = [FakeCamera(limit=1), FakeCamera(limit=3)]
    src = LiveSource(
        "camera",
        SourceOptions(reconnect=1, backoff=0.3),
        opener=lambda: cams.pop(0) if cams else FakeCamera(opened=False),
    ).open()
    try:
        assert src.read(1.0).seq == 0
        wait_until(lambda: src.status().state == "reconnecting")
        assert src.read(0.05) is None
        frame = src.read(2.0)
        assert frame is not None and frame.seq > 0  # numbering goes on across the reconnect
        wait_until(lambda: src.status().reconnects == 1)
    finally:
        src.close()


def test_a_live_source_without_new_frames_turns_stale_and_recovers() -> None:
    gate = threading.Semaphore(1)
    cam = FakeCamera(gate=gate)
    src = LiveSource("camera", SourceOptions(stale_after=0.05, read_timeout=1), opener=lambda: cam).open()
    try:
        assert src.read(1.0) is not None
        wait_until(lambda: src.status().state == "stale")
        assert src.read(0.01) is None
        gate.release()
        assert src.read(2.0) is not None and src.status().state == "live"
    finally:
        cam.stop = True
        src.close()


def test_a_video_file_served_over_http_ends_instead_of_playing_again_for_ever(tmp_path: Path) -> None:
    """A URL of known length read to its end has ended: reconnecting would restart it from frame 0."""
    clip = tmp_path / "clip.avi"  # AVI (MJPG) plays over a plain HTTP server without range requests
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(30):
        writer.write(np.full((48, 64, 3), 8 * i, np.uint8))
    writer.release()
    gets: list[str] = []

    class Files(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: object) -> None:
            gets.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
        options = SourceOptions(reconnect=3, backoff=0.01, open_timeout=5, read_timeout=5)
        with open_source(url, options) as src:
            frames, deadline = [], time.monotonic() + 10
            for frame in src:  # bounded: a replay for ever fails the test instead of hanging it
                frames.append(frame)
                if len(frames) > 60 or time.monotonic() > deadline:
                    break
            st = src.status()
    finally:
        server.shutdown()
        server.server_close()
    assert st.state == "ended" and st.reconnects == 0 and st.read == 30 and len(gets) == 1
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)) and frames[-1].seq == 29


def test_a_camera_that_does_not_open_is_one_sentence() -> None:
    with pytest.raises(SourceError, match=r"^Camera 99 did not open .*\.$"):
        open_source("99")


def test_a_url_that_never_answers_fails_within_the_timeout() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection (kernel backlog) and never says a word
    port = silent.getsockname()[1]
    try:
        start = time.monotonic()
        with pytest.raises(SourceError, match=r"did not open or gave no frame \(it gave up after") as err:
            open_source(
                f"http://viewer:pa55word@127.0.0.1:{port}/video.mjpg",
                SourceOptions(open_timeout=1, read_timeout=1),
            )
        assert time.monotonic() - start < 30  # bounded: the open timeout works
        assert "pa55word" not in str(err.value) and "viewer:***@" in str(err.value)
    finally:
        silent.close()


def test_a_stream_whose_server_refuses_says_what_it_answered() -> None:
    """OpenCV only says a stream did not open; the server's refusal (401, 404) says why, and the password in
    the URL goes out as Basic auth, never into the message."""
    import base64

    good = "Basic " + base64.b64encode(b"viewer:pa55@word").decode()

    class Camera(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path != "/video.mjpg":
                self.send_error(404)
            elif self.headers.get("Authorization") != good:
                self.send_error(401)
            else:  # the right user and password, but not a video: OpenCV's own sentence stands
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"hello")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"127.0.0.1:{server.server_address[1]}"
    options = SourceOptions(open_timeout=2, read_timeout=2)
    try:
        cases = [
            (
                f"http://viewer:wrong@{base}/video.mjpg",
                "answered HTTP 401 Unauthorized (check the user and password)",
            ),
            (f"http://{base}/video.mjpg", "answered HTTP 401"),
            (f"http://viewer:pa55%40word@{base}/other.mjpg", "answered HTTP 404 Not Found (check the path)"),
            (
                f"http://viewer:pa55%40word@{base}/video.mjpg",
                "did not open or gave no frame (it gave up after",
            ),
        ]
        for url, needle in cases:
            with pytest.raises(SourceError) as err:
                open_source(url, options)
            message = str(err.value)
            assert needle in message and "wrong" not in message and "pa55" not in message
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("source", "options", "needle"),
    [
        ("ftp://cam.local/x", SourceOptions(), "scheme 'ftp'"),
        ("0", SourceOptions(every=2), "--every and --realtime apply to video files"),
        ("rtsp://cam/x", SourceOptions(realtime=True), "--every and --realtime apply to video files"),
    ],
)
def test_options_that_do_not_fit_the_source_are_refused(
    source: str, options: SourceOptions, needle: str
) -> None:
    with pytest.raises(SourceError, match=needle):
        open_source(source, options)


@pytest.mark.parametrize("bad", [dict(reconnect=-2), dict(every=0), dict(open_timeout=0)])
def test_bad_source_options_are_refused(bad: dict) -> None:
    with pytest.raises(SourceError):
        SourceOptions(**bad)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:hunter2@10.0.0.7:554/stream1", "rtsp://admin:***@10.0.0.7:554/stream1"),
        ("could not open http://u:p%40ss@cam/x.mjpg now", "could not open http://u:***@cam/x.mjpg now"),
        ("http://cam/x.mjpg?user=a&password=hunter2&fps=5", "http://cam/x.mjpg?user=a&password=***&fps=5"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
        ("rtsp://justuser@cam/x", "rtsp://justuser@cam/x"),
        # FFmpeg takes the userinfo up to the last @ before the host, so a password may hold @ or :
        ("rtsp://admin:p@ss@10.0.0.7/live", "rtsp://admin:***@10.0.0.7/live"),
        (
            "open rtsp://admin:a:b@c@cam:554 and http://u:v@w",
            "open rtsp://admin:***@cam:554 and http://u:***@w",
        ),
        (
            "https://cam/x.m3u8?access_token=abc&X-Amz-Signature=d1&api_key=k&pw=x&q=1",
            "https://cam/x.m3u8?access_token=***&X-Amz-Signature=***&api_key=***&pw=***&q=1",
        ),
    ],
)
def test_redact_url_masks_passwords(text: str, shown: str) -> None:
    assert redact_url(text) == shown


class CountingSource(Source):
    """A small example kind: `count:N` yields N black frames, then ends (what a new kind's module holds)."""

    live = False

    def __init__(self, text: str, options: SourceOptions) -> None:
        self.name, self.options, self.fps, self.clock = text, options, 0.0, time.monotonic()
        self._left, self._seq = int(text.split(":", 1)[1]), -1

    def open(self) -> CountingSource:
        return self

    def read(self, timeout: float = 0.1) -> Frame | None:
        if self._left == 0:
            return None
        self._left, self._seq = self._left - 1, self._seq + 1
        return Frame(self._seq, self._seq / 10, np.zeros((4, 4, 3), np.uint8))

    def status(self) -> SourceStatus:
        state = ENDED if self._left == 0 else LIVE
        return SourceStatus(state, "", self._seq + 1, self._seq + 1, 0, 0, 0.0, (4, 4))

    def close(self) -> None:
        pass


def test_a_new_source_kind_is_one_class_and_one_line_in_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    kind = sources.Kind("counting", lambda t, _o: t.startswith("count:"), CountingSource, what="counters")
    monkeypatch.setattr(sources, "KINDS", [kind, *sources.KINDS])
    (src,) = sources.open_sources(["count:3"])
    assert isinstance(src, CountingSource) and [f.seq for f in src] == [0, 1, 2]
    assert sources.describe(src) == {"source": "count:3", "kind": "live", "fps": 0.0}
    # The options of files are refused for it as for every kind that does not take them, in one sentence.
    with pytest.raises(
        SourceError, match=r"^--every and --realtime apply to video files, not to counters\.$"
    ):
        sources.open_source("count:3", SourceOptions(every=2))
    # The kinds already there still claim their own texts.
    assert sources.kind_of("0").name == "camera" and sources.kind_of("clip.mp4").name == "file"


def test_a_burst_of_buffered_frames_after_a_reconnect_is_no_rate() -> None:
    meter = RateMeter(window=2.0)
    for k in range(3):  # what FFmpeg hands over within milliseconds of a reconnect
        meter.tick(100.0 + 0.002 * k)
    assert meter.rate(100.005) <= 2 / meter.least_span
    for k in range(1, 51):  # then a steady 25 fps: the rate settles on it
        meter.tick(100.004 + k / 25)
    assert meter.rate(102.0) == pytest.approx(25, rel=0.05)
