"""A real RTSP server for the stream tests and the benchmark: GStreamer's rtsp-server on 127.0.0.1 serving H.264
(x264enc, RTP over RTSP) of solid colours, as an IP camera would serve its picture.

Run by Debian's own Python, which has `gi` (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly), never by the project's venv:

    /usr/bin/python3 tests/rtsp_server.py [--port 0] [--user U --password P] /red=red /cam2=blue ...

Each MOUNT=COLOUR serves `rtsp://127.0.0.1:PORT/MOUNT`, a 25 fps picture of one colour (red, green or blue; the
tests' colour model tells them apart) with a keyframe every 5 frames, so that a client starts within 0.2 s.
With --user and --password every request needs them (basic authentication), as real cameras do. It prints
`ready PORT` once it serves and runs until it is killed.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PATTERNS = {"red": "red", "green": "green", "blue": "blue", "smpte": "smpte", "ball": "ball"}
PIPELINE = (
    "( videotestsrc pattern={pattern} is-live=true ! video/x-raw,width={w},height={h},framerate={fps}/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 bitrate=500 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mounts", nargs="+", help="MOUNT=COLOUR, e.g. /red=red")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--size", default="160x120", help="WxH of the picture")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken.new()
        token.set_string("media.factory.role", "camera-user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
    for mount in args.mounts:
        path, _, colour = mount.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(PIPELINE.format(pattern=PATTERNS[colour or "smpte"], w=w, h=h, fps=args.fps))
        factory.set_shared(True)  # every client of a mount watches the same "camera"
        if args.user:
            factory.add_role_from_structure(
                Gst.Structure.from_string(
                    "camera-user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )[0]
            )
        server.get_mount_points().add_factory(path if path.startswith("/") else "/" + path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot serve RTSP on 127.0.0.1:{args.port}")
    print(f"ready {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
