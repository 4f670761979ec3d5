"""Real-time MJPEG cameras on 127.0.0.1 for the benchmarks: every path `/cam/N.mjpg` is a camera sending the
frames of a video at a fixed rate, paced by the clock (frame k leaves at start + k / fps), as IP cameras send.

    python -m benchmarks.mjpeg_server VIDEO.mp4 [--fps 25] [--size 640x360] [--port 0]

The frames are JPEG-encoded once at start-up, so serving costs the machine almost nothing beside what it
measures. Prints `ready PORT` once it serves; runs until killed. `GET /stats` returns the frames sent per path.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2


def encode_frames(video: Path, size_wh: tuple[int, int], count: int = 100, quality: int = 85) -> list[bytes]:
    """The first `count` frames of `video`, resized to `size_wh`, as JPEG bytes."""
    cap = cv2.VideoCapture(str(video))
    jpegs: list[bytes] = []
    while len(jpegs) < count:
        ok, image = cap.read()
        if not ok:
            break
        image = cv2.resize(image, size_wh, interpolation=cv2.INTER_LINEAR)
        jpegs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    cap.release()
    if not jpegs:
        raise SystemExit(f"{video} cannot be decoded.")
    return jpegs


def make_server(jpegs: list[bytes], fps: float, port: int = 0) -> ThreadingHTTPServer:
    sent: dict[str, int] = {}
    lock = threading.Lock()

    class Camera(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/stats":
                with lock:
                    body = json.dumps(sent).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if not self.path.startswith("/cam/"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            offset = 7 * sum(self.path.encode()) % len(jpegs)  # each camera shows another moment
            start, k = time.monotonic(), 0
            while True:
                jpeg = jpegs[(offset + k) % len(jpegs)]
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                try:
                    self.wfile.write(head + jpeg + b"\r\n")
                    self.wfile.flush()
                except OSError:
                    return
                with lock:
                    sent[self.path] = sent.get(self.path, 0) + 1
                k += 1
                delay = start + k / fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    server = ThreadingHTTPServer(("127.0.0.1", port), Camera)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("video", type=Path)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", default="640x360", help="WxH of the frames sent")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    server = make_server(encode_frames(args.video, (w, h)), args.fps, args.port)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
