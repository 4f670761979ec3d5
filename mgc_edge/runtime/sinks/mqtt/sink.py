"""The publishing sink of the live loop (`webcam --publish`): each source's events, at the rate asked, as the
JSONL objects plus `box`, `run` and `seq` (per source, from 1), spooled then published on
`PREFIX/BOX/SOURCE/events`; the box's retained status on `PREFIX/BOX/status` every few seconds and at every
reconnection; the last will (offline) set on the connection, and published by us at a clean end."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mgc_edge.runtime.sinks.base import BaseSink, state_record
from mgc_edge.runtime.sinks.mqtt.config import PublishOptions
from mgc_edge.runtime.sinks.mqtt.publisher import Publisher

_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


class _Rate:
    """Whether a source's event is published: every frame, at a change of its smoothed label, or at most
    once per interval."""

    def __init__(self, rate: str | float) -> None:
        self.rate = rate
        self.last_label: dict[int, Any] = {}
        self.last_time: dict[int, float] = {}

    def wants(self, index: int, event: Mapping[str, Any], now: float) -> bool:
        if self.rate == "frame":
            return True
        if self.rate == "change":
            label = event["smoothed"]["label"]
            changed = index not in self.last_label or self.last_label[index] != label
            self.last_label[index] = label
            return changed
        if now - self.last_time.get(index, -np.inf) >= float(self.rate):
            self.last_time[index] = now
            return True
        return False


class MqttSink(BaseSink):
    """Publishes the loop's events and the box's status through a `Publisher` (never blocks the loop)."""

    wants_image = False

    def __init__(
        self,
        options: PublishOptions,
        model: str,
        status: Callable[[], Mapping[str, Any]],
        notify: Callable[[str], None],
        live_url: str | None = None,
        say: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.options, self.model, self._status, self.live_url = options, model, status, live_url
        self.say = say
        self.run = uuid.uuid4().hex[:12]
        self._seq: dict[int, int] = {}
        self._rate = _Rate(options.rate)
        self._next_status = 0.0
        self.publisher = Publisher(
            options, notify, will=(options.status_topic(), self._status_payload("offline")), on_up=self._up
        )
        self.publisher.start()

    # -- the sink protocol (the loop's thread) ---------------------------------------------------------------
    def frame(self, annotated_bgr: np.ndarray, event: dict[str, Any]) -> None:
        index = event["source"]["index"]
        if self._rate.wants(index, event, time.monotonic()):
            self._send(index, event)
        self._heartbeat()

    def state(self, event: dict[str, Any]) -> None:
        """A source's event, as its JSONL record; the run's own end (no source) is in the final status."""
        if (source := event.get("source")) is not None:
            self._send(source["index"], state_record(event))
        self._heartbeat()

    def idle(self) -> None:
        self._heartbeat()

    def close(self) -> None:
        self.publisher.close(
            final=(self.options.status_topic(), lambda: self._status_payload("offline", final=True))
        )
        c = self.publisher.counters()
        self.say(
            f"MQTT: {c['published']} events published to {c['broker']}, {c['spooled']} left in the spool, "
            f"{c['dropped']} dropped."
        )

    def counters(self) -> dict[str, Any]:
        """published / spooled / dropped, for /api/status and the summary."""
        return self.publisher.counters()

    # -- what is published -----------------------------------------------------------------------------------
    def _send(self, index: int, event: Mapping[str, Any]) -> None:
        seq = self._seq[index] = self._seq.get(index, 0) + 1
        payload = _COMPACT({**event, "box": self.options.box, "run": self.run, "seq": seq})
        self.publisher.send(self.options.events_topic(index), payload)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + self.options.status_s
            self.publisher.publish_now(self.options.status_topic(), self._status_payload("online"))

    def _up(self) -> None:
        self._next_status = 0.0  # a status at the next call of the loop, so the retained one is fresh

    def _status_payload(self, state: str, final: bool = False) -> bytes:
        """The retained status: the box, its model, its sources (state, fps, label) and the counters."""
        body: dict[str, Any] = {
            "box": self.options.box,
            "state": state,
            "run": self.run,
            "time": round(time.time(), 3),
            "model": self.model,
            "live": self.live_url,
        }
        if state == "online" or final:  # the will (set at connection) says only who went offline
            try:
                loop = dict(self._status())
            except Exception:  # a failing counter must not take the publishing down
                loop = {}
            body["sources"] = [
                {k: s.get(k) for k in ("index", "name", "kind", "state", "message", "fps", "smoothed")}
                for s in loop.get("sources", [])
            ]
            body["publish"] = {k: v for k, v in self.publisher.counters().items() if k != "broker"}
        return _COMPACT(body).encode()


def live_url(serve: tuple[str, int] | None) -> str | None:
    """Where other machines reach this box's live view, when it serves one they can reach (not loopback)."""
    if serve is None or serve[1] == 0:
        return None
    host, port = serve
    if host in ("127.0.0.1", "::1", "localhost"):
        return None
    if host in ("0.0.0.0", "::", ""):
        host = _outward_address() or socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _outward_address() -> str | None:
    """The address other machines reach this box at: the source address of the default route (connect() on a
    UDP socket only picks the route; nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # a documentation address
            address = str(sock.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address
