"""How sources are listed and named (`--sources FILE`, `-s`, `--name`, `${VAR}`), and why a stream did not open
(our own RTSP DESCRIBE against a fake camera: Basic and Digest authentication, a wrong path, a closed port, a
camera that never answers)."""

from __future__ import annotations

import hashlib
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_runtime_loop import colour_model, colour_video, invoke, one_error

from mgc_edge.runtime.sources import open_sources
from mgc_edge.runtime.sources.base import SourceError
from mgc_edge.runtime.sources.listing import SourceSpec, command_line, read_sources_file, short_names
from mgc_edge.runtime.sources.probe import rtsp_refusal


def test_a_sources_file_strips_comments_and_takes_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAM_PW", "s3cr3t")
    listing = tmp_path / "cams.txt"
    listing.write_text(
        "# the lab\n"
        "http://127.0.0.1:8081/stream.mjpg   # the lab camera\n"
        "door = rtsp://admin:${CAM_PW}@10.0.0.7:554/Streaming/101\n"
        "\n"
        "  clips/a#1.mp4\n"  # a # inside a word is no comment
        "yard=http://10.0.0.8/cam.mjpg?x=1\t# tab before the comment\n"
    )
    specs = read_sources_file(listing)
    assert [s.text for s in specs] == [
        "http://127.0.0.1:8081/stream.mjpg",
        "rtsp://admin:s3cr3t@10.0.0.7:554/Streaming/101",
        "clips/a#1.mp4",
        "http://10.0.0.8/cam.mjpg?x=1",
    ]
    assert [s.name for s in specs] == [None, "door", None, "yard"]
    assert [s.origin for s in specs] == [f"line {n} of {listing}" for n in (2, 3, 5, 6)]
    assert short_names(specs) == ["127.0.0.1:8081/stream.mjpg", "door", "a#1.mp4", "yard"]
    assert "s3cr3t" not in repr(specs)  # the text is never in a repr


def test_a_camera_listed_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    listing = tmp_path / "cams.txt"
    listing.write_text("rtsp://u:a@cam/1\nrtsp://u:b@cam/1\nrtsp://u:a@cam/1  # again\n")
    with pytest.raises(SourceError) as err:
        open_sources(read_sources_file(listing))
    assert str(err.value).startswith(
        f"Source rtsp://u:***@cam/1 (line 3 of {listing}) is listed already (line 1 of {listing})"
    )
    clip = tmp_path / "clip.mp4"  # a file may be listed twice: each copy is decoded on its own
    assert [s.text for s in command_line([str(clip), str(clip)])] == [str(clip), str(clip)]


def test_an_unset_variable_and_bad_names_are_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_PW", raising=False)
    listing = tmp_path / "cams.txt"
    listing.write_text("\ncam = rtsp://u:${NO_SUCH_PW}@cam/1\n")
    with pytest.raises(
        SourceError, match=rf"^The source on line 2 of {re.escape(str(listing))} uses \$\{{NO_SUCH_PW\}}"
    ):
        read_sources_file(listing)
    with pytest.raises(SourceError, match=r"2 --name given for 1 --source"):
        command_line(["0"], ["a", "b"])
    with pytest.raises(SourceError, match=r"The name 'a b'"):
        command_line(["0"], ["a b"])
    with pytest.raises(SourceError, match=r"'door' is given twice"):
        open_sources([SourceSpec("0", "door"), SourceSpec("1", "door")])


def test_derived_short_names_are_short_and_unique() -> None:
    specs = command_line(
        [
            "rtsp://admin:pw@10.0.0.7:554/live?token=abc",
            "http://10.0.0.7/live",
            "http://10.0.0.7/live?b=2",
            "3",
            "/data/clips/a.mp4",
        ]
    )
    assert short_names(specs) == [
        "10.0.0.7:554/live",
        "10.0.0.7/live #1",
        "10.0.0.7/live #2",
        "camera 3",
        "a.mp4",
    ]


def test_webcam_says_which_line_of_a_sources_file_failed(tmp_path: Path) -> None:
    model = colour_model(tmp_path / "colour.onnx")
    colour_video(tmp_path / "ok.mp4")
    listing = tmp_path / "cams.txt"
    listing.write_text(f"{tmp_path / 'ok.mp4'}\n# the yard\n{tmp_path / 'gone.mp4'}  # not there\n")
    error = one_error(invoke("webcam", model, "--sources", listing, "--display", "off"))
    assert (
        error
        == f"error: The source on line 3 of {listing}: Video file {tmp_path / 'gone.mp4'} does not exist."
    )


# -- a fake RTSP camera, as far as DESCRIBE goes -------------------------------------------------------------------


class FakeRtsp(socketserver.ThreadingTCPServer):
    """Answers DESCRIBE as a camera would: 401 with a challenge until the right credentials come, 404 for any
    other path than /live, 200 with an SDP otherwise. `silent`: accepts and never answers."""

    daemon_threads = allow_reuse_address = True

    def __init__(self, challenge: str = "basic", silent: bool = False) -> None:
        self.challenge, self.silent, self.requests = challenge, silent, []
        super().__init__(("127.0.0.1", 0), Handler)

    def authorized(self, header: str, uri: str) -> bool:
        if self.challenge == "basic":
            return header == "Basic Y2FtOnMzY3IzdA=="  # cam:s3cr3t
        fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
        ha1 = hashlib.md5(b"cam:Cam:s3cr3t").hexdigest()
        ha2 = hashlib.md5(f"DESCRIBE:{uri}".encode()).hexdigest()
        want = hashlib.md5(f"{ha1}:n0nce:{ha2}".encode()).hexdigest()
        return header.startswith("Digest ") and fields.get("response") == want


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: FakeRtsp = self.server  # type: ignore[assignment]
        if server.silent:
            time.sleep(3)
            return
        head = []
        while (line := self.rfile.readline().decode().rstrip("\r\n")) != "":
            head.append(line)
        server.requests.append(head)
        uri = head[0].split()[1]
        auth = next((h.split(":", 1)[1].strip() for h in head if h.lower().startswith("authorization:")), "")
        if not server.authorized(auth, uri):
            challenge = (
                'Basic realm="Cam"' if server.challenge == "basic" else 'Digest realm="Cam", nonce="n0nce"'
            )
            answer = f"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: {challenge}\r\n\r\n"
        elif not uri.endswith("/live"):
            answer = "RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n"
        else:
            answer = "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 0\r\n\r\n"
        self.wfile.write(answer.encode())


@pytest.fixture(params=["basic", "digest"])
def camera(request: pytest.FixtureRequest) -> Iterator[FakeRtsp]:
    server = FakeRtsp(request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_rtsp_probe_says_what_the_camera_answered(camera: FakeRtsp) -> None:
    base = f"127.0.0.1:{camera.server_address[1]}"
    assert rtsp_refusal(f"rtsp://cam:s3cr3t@{base}/live", 2) is None  # accepted: OpenCV's sentence stands
    assert (
        rtsp_refusal(f"rtsp://cam:wrong@{base}/live", 2)
        == "authentication refused (check the user and password)"
    )
    assert (
        rtsp_refusal(f"rtsp://{base}/live", 2)
        == "authentication required (give the user and password in the URL)"
    )
    assert rtsp_refusal(f"rtsp://cam:s3cr3t@{base}/nope", 2) == "stream path not found (check the path)"
    sent = "\n".join("\n".join(r) for r in camera.requests)
    assert "s3cr3t" not in sent and "wrong" not in sent  # neither in clear, nor in a request line


def test_the_rtsp_probe_tells_a_closed_port_from_a_silent_camera() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    assert rtsp_refusal(f"rtsp://u:p@127.0.0.1:{port}/live", 2) == (
        f"connection refused by 127.0.0.1:{port} (is the camera on, and is that its RTSP port?)"
    )
    silent = FakeRtsp(silent=True)
    threading.Thread(target=silent.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        answer = rtsp_refusal(f"rtsp://u:p@127.0.0.1:{silent.server_address[1]}/live", 0.5)
        waited = time.monotonic() - start
    finally:
        silent.shutdown()
        silent.server_close()
    assert (
        answer == f"no answer from 127.0.0.1:{silent.server_address[1]} within 0.5 s" and 0.4 < waited < 2.5
    )


def test_webcam_names_its_sources_with_name_and_keeps_the_full_name_in_the_jsonl(tmp_path: Path) -> None:
    import json

    model = colour_model(tmp_path / "colour.onnx")
    colour_video(tmp_path / "a.mp4")
    out = tmp_path / "out.jsonl"
    result = invoke(
        "webcam", model, "-s", tmp_path / "a.mp4", "-s", tmp_path / "a.mp4", "--name", "left", "--name", "right",
        "--display", "off", "--jsonl", out, "--max-frames", 3,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Source 0 [left]: " in result.output and "Source 1 [right]: " in result.output
    rows = [line.split()[:2] for line in result.output.splitlines() if line.strip()[:2] in ("0 ", "1 ")]
    assert rows == [["0", "left"], ["1", "right"]]
    tags = {json.dumps(json.loads(line)["source"], sort_keys=True) for line in out.read_text().splitlines()}
    assert tags == {
        json.dumps({"index": i, "name": str(tmp_path / "a.mp4"), "short_name": n}, sort_keys=True)
        for i, n in enumerate(["left", "right"])
    }
