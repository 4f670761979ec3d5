"""What `--publish` asks for: the broker URL parsed (`mqtt://[user[:pass]@]host[:port]/PREFIX`, `mqtts://`),
the box name, the rate, QoS, spool limits, and the topics. Standard library only: `--help` and the refusals
work without paho-mqtt installed."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mgc_edge.errors import UserError
from mgc_edge.runtime.sources.urls import redact_url

PASSWORD_ENV = (
    "MGC_EDGE_MQTT_PASSWORD"  # the password when the URL names a user but no password (keeps it out of ps)
)
DEFAULT_PREFIX = "mgc-edge"
PORTS = {"mqtt": 1883, "mqtts": 8883}
RATES = ("frame", "change")
DEFAULT_RATE = "change"


class PublishError(UserError):
    """`--publish` cannot start (bad URL, refused credentials, a certificate the CA does not verify)."""


@dataclass(frozen=True)
class Broker:
    """One broker and the topic prefix under it; `password` never shows in a repr nor in `url`."""

    host: str
    port: int
    tls: bool
    prefix: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None

    @property
    def url(self) -> str:
        """The broker as it may be shown: scheme, user (no password), host, port and prefix."""
        user = f"{self.user}:***@" if self.user and self.password else (f"{self.user}@" if self.user else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}/{self.prefix}"


def check_topic_level(text: str, what: str) -> str:
    """A topic level we build topics from: not empty, no `/`, no wildcard, no control character."""
    if not text or any(c in text for c in "/+#") or any(ord(c) < 32 for c in text):
        raise PublishError(f"{what} must be a non-empty name without '/', '+', '#', got {text!r}.")
    return text


def parse_broker(
    text: str, option: str = "--publish", ca: Path | None = None, ca_option: str = "--publish-ca"
) -> Broker:
    """`mqtt://[user[:pass]@]host[:port]/PREFIX` (or mqtts://) -> Broker; the password may come from
    MGC_EDGE_MQTT_PASSWORD instead of the URL. Every refusal names the URL with its password masked."""
    shown = redact_url(text)
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise PublishError(f"{option} takes mqtt://[user:pass@]host[:port]/PREFIX, got {shown!r}.") from None
    scheme = parts.scheme.lower()
    if scheme not in PORTS or not parts.hostname:
        raise PublishError(
            f"{option} takes mqtt://[user:pass@]host[:port]/PREFIX or mqtts://..., got {shown!r}."
        )
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    for level in prefix.split("/"):
        check_topic_level(level, f"The topic prefix of {option}")
    if ca is not None and scheme != "mqtts":
        raise PublishError(f"{ca_option} is for an mqtts:// broker, but {option} is {shown!r}.")
    if ca is not None and not ca.is_file():
        raise PublishError(f"{ca_option} {ca} is not a file.")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if user and password is None:
        password = os.environ.get(PASSWORD_ENV) or None
    return Broker(parts.hostname, port or PORTS[scheme], scheme == "mqtts", prefix, user, password, ca)


def parse_rate(text: str) -> str | float:
    """`frame`, `change` or MS (a positive number of milliseconds) -> "frame", "change" or seconds."""
    value = text.strip().lower()
    if value in RATES:
        return value
    try:
        ms = float(value)
    except ValueError:
        ms = -1.0
    if not ms > 0:
        raise PublishError(f"--publish-rate takes frame, change or a number of milliseconds, got {text!r}.")
    return ms / 1000.0


def default_box() -> str:
    """This machine's host name, as a topic level."""
    name = socket.gethostname().split(".")[0] or "box"
    return "".join(c if c not in "/+#" and ord(c) >= 32 else "_" for c in name)


def default_spool(broker: Broker, box: str) -> Path:
    """Where a box's spool lives by default: one folder per broker, prefix and box, so a restarted run with the
    same --publish finds and sends what the last one left."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    key = f"{'s' if broker.tls else ''}{broker.host}_{broker.port}_{broker.prefix}_{box}".replace("/", "_")
    return base / "mgc-edge" / "mqtt-spool" / key


@dataclass(frozen=True)
class PublishOptions:
    """Everything `--publish` and its options ask for, parsed and checked."""

    broker: Broker
    box: str
    qos: int = 1
    rate: str | float = DEFAULT_RATE  # "frame", "change", or seconds between a source's events
    spool: Path | None = None  # None: default_spool()
    spool_bytes: int = 100 * 1024 * 1024
    spool_age_s: float = 7 * 24 * 3600.0
    status_s: float = 5.0

    @property
    def rate_text(self) -> str:
        return self.rate if isinstance(self.rate, str) else f"at most every {self.rate * 1000:g} ms"

    @property
    def spool_dir(self) -> Path:
        return self.spool if self.spool is not None else default_spool(self.broker, self.box)

    def status_topic(self) -> str:
        return f"{self.broker.prefix}/{self.box}/status"

    def events_topic(self, source: int | str) -> str:
        return f"{self.broker.prefix}/{self.box}/{source}/events"


def publish_options(
    url: str,
    box: str | None = None,
    qos: int = 1,
    rate: str = DEFAULT_RATE,
    ca: Path | None = None,
    spool: Path | None = None,
    spool_mb: float = 100.0,
    spool_hours: float = 168.0,
) -> PublishOptions:
    """The CLI's --publish options, checked (a PublishError names the first bad one)."""
    broker = parse_broker(url, ca=ca)
    if qos not in (0, 1, 2):
        raise PublishError(f"--publish-qos must be 0, 1 or 2, got {qos}.")
    if not spool_mb > 0 or not spool_hours > 0:
        raise PublishError("--publish-spool-mb and --publish-spool-hours must be more than 0.")
    name = check_topic_level(box if box is not None else default_box(), "--box")
    return PublishOptions(
        broker, name, qos, parse_rate(rate), spool, int(spool_mb * 1024 * 1024), spool_hours * 3600.0
    )
