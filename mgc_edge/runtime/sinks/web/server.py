"""The live view over HTTP (`webcam --serve`): annotated frames as MJPEG, predictions as Server-Sent Events,
the model and the loop's counters as JSON.

A sink of the live loop that never blocks it: `frame()` only keeps a reference to the newest frame and event
and wakes whoever waits. One encoder thread turns the newest frame into a JPEG at most `stream_fps` times a
second, and only while someone watches; every viewer has its own thread that sends the newest JPEG (never a
queue of old ones) or the events it has not seen, as fast as its socket takes them. A slow viewer stalls only
its own thread; memory stays bounded (one frame, one JPEG, a fixed ring of events, a capped number of streams).
Standard library only (http.server), so the base install stays as light as it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from mgc_edge.runtime.model.scores import display_names
from mgc_edge.runtime.sinks.base import BaseSink
from mgc_edge.runtime.sinks.web.config import (
    TOKEN_ENV,
    ServeConfig,
    ServeError,
    is_loopback,
    mask_token,
    serving_urls,
)
from mgc_edge.runtime.sinks.web.encoder import encode_jpeg
from mgc_edge.runtime.sinks.web.http import SCRIPTS, make_http_server
from mgc_edge.runtime.sinks.web.pictures import Event, Picture, Shot, fill_since, source_index, viewer_id

if TYPE_CHECKING:
    from mgc_edge.runtime.model.classifier import Classifier

log = logging.getLogger(__name__)

EVENT_RING = 256  # events kept for viewers that fall behind; older ones are skipped, never queued
EVENT_BATCH = 64  # at most this many pending events in one write: a viewer that lags jumps to the newest
KEEPALIVE_S = 5.0  # an idle stream sends something this often, so a viewer that left is noticed
WATCH_S = 3.0  # after a snapshot, frames are drawn this long for the next one (tiles ask every 0.2-1 s)
CLOSE_GRACE_S = 0.5  # close() lets streams send their last events this long before it cuts them
WEB_FILES = ("index.html", *SCRIPTS, "style.css")


def model_info(classifier: Classifier) -> dict[str, Any]:
    """What the page and /api/status show about a model: labels, names, input size, precision, provider."""
    meta, labels = classifier.metadata, classifier.metadata.labels
    return {
        "model": classifier.path.name,
        "arch": meta.arch,
        "precision": meta.precision,
        "input_size": list(meta.preprocess.size),
        "labels": list(labels.ids),
        "names": list(display_names(labels)),
        "provider": classifier.providers[0] if classifier.providers else "",
        "device": classifier.device,
    }


class LiveServer(BaseSink):
    """The live view: the sink the loop calls (`frame`, `state`, `close`) and the HTTP server it feeds, started
    in background threads when made (ServeError when the address cannot be bound); `close()` it at the end.

    `frame()` must get a frame the caller no longer changes (the overlay draws onto a new array each time):
    it is kept by reference, not copied, so that the call costs microseconds. With several sources, each has its
    own newest frame and JPEG (the `source` of the event says whose); `source` 0 is the default everywhere.
    """

    @property
    def wants_image(self) -> bool:
        """Whether the loop should draw the overlay for this view (asked before every tick): only while someone
        watches frames, an MJPEG stream or a snapshot within the last WATCH_S. Nobody watching, drawing tens of
        cameras' frames would cost the loop for nothing; a new viewer's first frame may come undrawn."""
        return self._streams["mjpeg"] > 0 or time.monotonic() < self._watched_until

    def __init__(
        self,
        config: ServeConfig,
        model_info: Mapping[str, Any],
        status: Callable[[], Mapping[str, Any]],
        sources: int | None = None,
    ) -> None:
        """`sources`: how many sources the run has (0 .. sources - 1 exist); None: source 0 and those that
        published a frame or a state. A request for any other source is refused (404) and keeps nothing."""
        self.config = config
        self.sources = sources
        self.model_info = dict(model_info)
        self._status = status
        self._lock = threading.Lock()
        self._frame_ready = threading.Condition(self._lock)  # the encoder waits here
        self._jpeg_ready = threading.Condition(self._lock)  # MJPEG viewers wait here
        self._event_ready = threading.Condition(self._lock)  # event-stream viewers wait here
        self._stream_closed = threading.Condition(self._lock)  # close() waits here for streams to end
        self._stopping = threading.Event()
        self._pictures: dict[int, Picture] = {}  # per known source; made by its first frame, state or viewer
        self._events: deque[Event] = deque(maxlen=EVENT_RING)
        self._event_seq = 0
        self._last_state_event: Event | None = None  # the newest state event, of the run or of a source
        self._streams = {"mjpeg": 0, "events": 0}
        self._viewer_ids: dict[str, int] = {}  # open streams per `?viewer=` id (a page's streams share one)
        self._anonymous = 0  # open streams without an id: one viewer each
        self._counts = {"frames": 0, "jpegs": 0, "jpegs_sent": 0, "event_writes": 0, "refused_streams": 0}
        self._started = time.monotonic()
        self._watched_until = 0.0  # a snapshot was asked for: frames are wanted drawn until then
        self.pages = _load_pages(config.token)
        self._httpd = make_http_server(config, self)
        self.host, self.port = config.host, int(self._httpd.server_address[1])
        self.loopback_only = is_loopback(self.host)  # then requests must name a loopback host too
        self.urls = serving_urls(self.host, self.port)
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, args=(0.1,), name="mgc-serve", daemon=True),
            threading.Thread(target=self._encode_loop, name="mgc-serve-jpeg", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- the sink protocol: called by the loop, never blocks ------------------------------------------------
    def frame(self, annotated_bgr: np.ndarray, event: Mapping[str, Any]) -> None:
        """Publish one classified frame and its JSONL object; keeps references only and returns at once."""
        with self._lock:
            if self._stopping.is_set():
                return
            picture = self._picture(source_index(event) or 0)
            picture.frame = annotated_bgr
            picture.seq += 1
            picture.frame_at = time.monotonic()
            picture.became(event.get("state"))
            self._counts["frames"] += 1
            picture.event = self._push("frame", event)
            if picture.viewers:  # waking an encoder with nothing to do costs the loop a thread switch
                self._frame_ready.notify()

    def state(self, event: Mapping[str, Any]) -> None:
        """Publish a state change ("live", "stale", "reconnecting", "ended", "failed") with its message: of one
        source when the event names it, else of the whole run."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._last_state_event = self._push("state", event)
            index = source_index(event)
            if index is not None:
                picture = self._picture(index)
                picture.state = self._last_state_event
                picture.became(event.get("state"))

    def _picture(self, index: int) -> Picture:
        # Caller holds the lock.
        picture = self._pictures.get(index)
        if picture is None:
            picture = self._pictures[index] = Picture()
        return picture

    def has_source(self, index: int) -> bool:
        """Whether source `index` exists: the handlers answer 404 for any other, before taking a slot."""
        if index < 0:
            return False
        if self.sources is not None:
            return index < self.sources
        with self._lock:
            return index == 0 or index in self._pictures

    def close(self) -> None:
        """Stop serving: every open stream ends and the port is released, within about a second."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            for condition in (self._frame_ready, self._jpeg_ready, self._event_ready):
                condition.notify_all()
        self._httpd.shutdown()  # returns once serve_forever has seen the flag (it polls every 0.1 s)
        self._httpd.server_close()
        with self._lock:  # streams end by themselves after sending what is pending (the "ended" state)...
            self._stream_closed.wait_for(lambda: not any(self._streams.values()), CLOSE_GRACE_S)
        self._httpd.close_connections()  # ...and a viewer stuck on a slow client is cut
        for thread in self._threads:
            thread.join(timeout=1.0)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _push(self, kind: str, data: Mapping[str, Any]) -> Event:
        # Caller holds the lock. The deque drops the oldest event itself: memory stays bounded.
        self._event_seq += 1
        event = Event(self._event_seq, kind, data)
        self._events.append(event)
        self._event_ready.notify_all()
        return event

    # -- what the terminal shows ------------------------------------------------------------------------
    def banner(self) -> list[str]:
        """Lines for the terminal: where to open the page, and what serving beyond loopback means."""
        lines = [
            f"Live view: {self.urls[0]}" + (f" (also {', '.join(self.urls[1:])})" if self.urls[1:] else "")
        ]
        if self.config.token:
            lines.append(
                f"It needs the token ({mask_token(self.config.token)}): open {self.urls[0]}?token=<token>, "
                "or send 'Authorization: Bearer <token>' from scripts."
            )
        if not is_loopback(self.host):
            advice = "" if self.config.token else f"; set --token or {TOKEN_ENV} so that only you can"
            lines.append(
                f"Serving on {self.host}: any machine that can reach port {self.port} can open it{advice}."
            )
        return lines

    # -- what the HTTP handlers use ----------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if the server stops; True when it stops."""
        return self._stopping.wait(seconds)

    def open_stream(self, kind: str, source: int = 0, viewer: str | None = None) -> bool:
        """Take a stream slot ("mjpeg" of one source, or "events"); False when the cap is reached or the server
        stops. `viewer`: the id a client gives all its streams (`?viewer=`; a page's), so that it counts once
        in `viewers`. Every True must be matched by one `close_stream` with the same arguments."""
        viewer = viewer_id(viewer)
        with self._lock:
            if self._stopping.is_set() or sum(self._streams.values()) >= self.config.max_streams:
                self._counts["refused_streams"] += 1
                return False
            self._streams[kind] += 1
            if viewer is None:
                self._anonymous += 1
            else:
                self._viewer_ids[viewer] = self._viewer_ids.get(viewer, 0) + 1
            if kind == "mjpeg":
                self._picture(source).viewers += 1
                self._frame_ready.notify()  # a first MJPEG viewer wakes the encoder
            return True

    def close_stream(self, kind: str, source: int = 0, viewer: str | None = None) -> None:
        viewer = viewer_id(viewer)
        with self._lock:
            self._streams[kind] -= 1
            if viewer is None:
                self._anonymous -= 1
            elif self._viewer_ids.get(viewer, 0) <= 1:
                self._viewer_ids.pop(viewer, None)
            else:
                self._viewer_ids[viewer] -= 1
            if kind == "mjpeg":
                self._picture(source).viewers -= 1
            self._stream_closed.notify_all()

    def sent(self, what: str) -> None:
        """Count one write to a viewer ("jpegs_sent" or "event_writes"), for /api/status."""
        with self._lock:
            self._counts[what] += 1

    def next_jpeg(self, last: int, source: int = 0) -> Shot:
        """The newest JPEG of `source` (with its event) once it is newer than frame `last`, or the same again
        after KEEPALIVE_S (None before its first); seq -1 when the server stops."""
        with self._lock:
            picture = self._picture(source)
            self._jpeg_ready.wait_for(
                lambda: self._stopping.is_set() or picture.jpeg_seq != last, KEEPALIVE_S
            )
            return Shot(None, -1, None) if self._stopping.is_set() else picture.shot()

    def first_events(self) -> tuple[list[Event], int]:
        """What a new event stream starts with (the run's state; each source's state and newest frame event) and
        its position."""
        with self._lock:
            intro = {e.seq: e for e in (self._last_state_event,) if e is not None}
            for picture in self._pictures.values():
                intro.update((e.seq, e) for e in (picture.state, picture.event) if e is not None)
            return [intro[seq] for seq in sorted(intro)], self._event_seq

    def next_events(self, last: int) -> tuple[list[Event], int]:
        """Events after `last` (the newest EVENT_BATCH of them at most) and the new position; waits up to
        KEEPALIVE_S for one. The list may be empty on a timeout or when the server stops."""
        with self._lock:
            self._event_ready.wait_for(
                lambda: self._stopping.is_set() or self._event_seq != last, KEEPALIVE_S
            )
            pending = min(self._event_seq - last, EVENT_BATCH, len(self._events))
            batch = [self._events[i] for i in range(len(self._events) - pending, len(self._events))]
            return batch, self._event_seq

    def snapshot(self, source: int = 0) -> Shot:
        """The newest frame of `source` as a JPEG with its event, encoding it now if the encoder has not; a
        None JPEG before its first frame."""
        with self._lock:
            self._watched_until = time.monotonic() + WATCH_S
            picture = self._pictures.get(source)
            if picture is None:
                return Shot(None, 0, None)
            frame, seq, event, old = picture.frame, picture.seq, picture.event, picture.shot()
        if frame is None or old.seq == seq:
            return old
        fresh = self._encode(frame)
        self._store_jpeg(source, seq, fresh, event)
        return Shot(fresh, seq, event) if fresh is not None else old

    def status(self) -> dict[str, Any]:
        """GET /api/status: the model, the loop's counters, the current state and the server's own counts."""
        try:
            loop: Any = dict(self._status())
        except Exception as exc:  # a failing counter must not take the endpoint (or the server) down
            loop = {"error": f"{type(exc).__name__}: {exc}"}
        now, wall = time.monotonic(), time.time()
        with self._lock:
            state = self._last_state_event.data if self._last_state_event else None
            pictures = sorted(self._pictures.items())
            server = {
                **self._counts,
                "streams": dict(self._streams),
                "viewers": len(self._viewer_ids) + self._anonymous,
                "connections": self._httpd.open_connections(),
                "max_streams": self.config.max_streams,
                "stream_fps": self.config.stream_fps,
                "uptime_s": round(now - self._started, 3),
                "time": round(wall, 3),  # the box's clock: a page elsewhere measures `state_since` against it
                "sources": [picture.entry(index, now) for index, picture in pictures],
            }
        fill_since(loop, server["sources"])
        return {"model": self.model_info, "loop": loop, "state": state, "server": server}

    # -- the encoder thread ------------------------------------------------------------------------------
    def _encode_loop(self) -> None:
        """Encode the newest frame of every source that has MJPEG viewers, at most `stream_fps` times a second
        each."""
        interval = 1.0 / max(self.config.stream_fps, 0.1)

        def work() -> list[tuple[int, Picture]]:
            return [(i, p) for i, p in self._pictures.items() if p.needs_jpeg()]

        while True:
            with self._lock:
                self._frame_ready.wait_for(lambda: self._stopping.is_set() or bool(work()), KEEPALIVE_S)
                if self._stopping.is_set():
                    return
                todo = [(i, p.frame, p.seq, p.event) for i, p in work()]
                for _, picture in work():
                    picture.tried = picture.seq
            if not todo:
                continue
            started = time.monotonic()
            for index, frame, seq, event in todo:
                self._store_jpeg(index, seq, self._encode(frame), event)
            if self._stopping.wait(max(0.0, interval - (time.monotonic() - started))):
                return

    def _encode(self, frame: np.ndarray | None) -> bytes | None:
        return encode_jpeg(frame, self.config)

    def _store_jpeg(self, source: int, seq: int, jpeg: bytes | None, event: Event | None) -> None:
        with self._lock:
            picture = self._picture(source)
            if jpeg is not None and seq > picture.jpeg_seq:
                picture.jpeg, picture.jpeg_seq, picture.jpeg_event = jpeg, seq, event
                self._counts["jpegs"] += 1
                self._jpeg_ready.notify_all()


def _load_pages(token: str | None) -> dict[str, bytes]:
    """The page's own files, read once. index.html comes twice: as is, and with the token in its asset URLs
    (for a browser that came with `?token=`: a stylesheet or script request cannot carry a header)."""
    folder = resources.files("mgc_edge.runtime.sinks.web").joinpath("static")
    try:
        pages = {name: folder.joinpath(name).read_bytes() for name in WEB_FILES}
    except OSError:
        raise ServeError(
            "The live view's page files are missing from this installation; reinstall mgc-edge."
        ) from None
    query = f"?token={quote(token, safe='')}" if token else ""
    html = pages["index.html"]
    pages["index.html"] = html.replace(b"__QUERY__", b"")
    pages["index.html+token"] = html.replace(b"__QUERY__", query.encode())
    return pages
