"""paho-mqtt behind our sentences: connect (user, password, TLS with `--publish-ca`, the last will), the
start-up refusals as one `PublishError`, reconnection in paho's own network thread, and `publish` that never
blocks the caller on the network. paho is imported here only, when a broker is asked for."""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from mgc_edge.runtime.sinks.mqtt.config import Broker, PublishError

CONNECT_TIMEOUT_S = 5.0  # the TCP (and TLS) connection
CONNACK_WAIT_S = 10.0  # the broker's answer to our CONNECT at start-up
KEEPALIVE_S = 15  # the broker declares us gone (and sends the will) after 1.5 x this without a word
RECONNECT_S = (1, 15)  # paho's backoff between reconnection attempts, first and longest
MAX_INFLIGHT = 100
MQTT_INSTALL = "pip install 'mgc-edge[mqtt]' (paho-mqtt)"


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise PublishError(f"Publishing to MQTT needs paho-mqtt: {MQTT_INSTALL}.") from None
    return mqtt


class BrokerClient:
    """One connection to a broker, kept up by paho's network thread (publishing, or subscribed to `subscribe`
    with `on_message(topic, payload)`). `on_up()` is called (in that thread) at
    every successful connection, `on_down(reason)` at every loss, `on_done(mid)` when a message reached the
    broker (QoS 1: acknowledged; QoS 0: written)."""

    def __init__(
        self,
        broker: Broker,
        client_name: str,
        will: tuple[str, bytes] | None = None,
        on_up: Callable[[], None] = lambda: None,
        on_down: Callable[[str], None] = lambda _r: None,
        on_done: Callable[[int], None] = lambda _m: None,
        subscribe: Sequence[str] = (),
        on_message: Callable[[str, bytes], None] = lambda _t, _p: None,
    ) -> None:
        mqtt = _paho()
        self.broker = broker
        self.on_up, self.on_down, self.on_done = on_up, on_down, on_done
        self.subscriptions, self.on_message = list(subscribe), on_message
        self.connected = False
        self._stopping = False
        self._answered = threading.Event()
        self._refused: str | None = None
        client_id = f"mgc-edge-{client_name}-{uuid.uuid4().hex[:8]}"
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        self._client.connect_timeout = CONNECT_TIMEOUT_S
        if broker.user:
            self._client.username_pw_set(broker.user, broker.password)
        if broker.tls:
            self._client.tls_set(ca_certs=str(broker.ca) if broker.ca else None)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.reconnect_delay_set(*RECONNECT_S)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_publish = self._published
        self._client.on_message = lambda client, userdata, msg: self.on_message(msg.topic, msg.payload)

    def start(self) -> str | None:
        """Connect and start paho's network thread. A refused password or an unverifiable certificate is a
        PublishError; a broker that cannot be reached yet is retried in the background (returns why)."""
        b = self.broker
        unreachable = None
        try:
            self._client.connect(b.host, b.port, keepalive=KEEPALIVE_S)
        except ssl.SSLCertVerificationError as exc:
            by = f"--publish-ca {b.ca}" if b.ca else "this system's certificate authorities"
            raise PublishError(
                f"The MQTT broker at {b.url} has a certificate that {by} does not verify "
                f"({exc.verify_message or exc.reason})."
            ) from None
        except ssl.SSLError as exc:
            raise PublishError(f"TLS with the MQTT broker at {b.url} failed ({exc.reason or exc}).") from None
        except (OSError, ValueError) as exc:  # refused, unreachable, unknown host, timed out: retried
            unreachable = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        self._client.loop_start()
        if unreachable is None:
            self._answered.wait(CONNACK_WAIT_S)
            if self._refused is not None:
                self.stop()
                raise PublishError(f"The MQTT broker at {b.url} refused the connection ({self._refused}).")
            if not self.connected:
                unreachable = "it did not answer in time"
        return unreachable

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int:
        """Hand a message to paho (queued in memory while it reconnects); its message id."""
        return int(self._client.publish(topic, payload, qos=qos, retain=retain).mid)

    def publish_wait(self, topic: str, payload: bytes, retain: bool, timeout: float = 2.0) -> None:
        """Publish at QoS 1 and wait (up to `timeout`) until the broker has it: the last status of a run."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):  # the connection went meanwhile: the will says offline anyway
            pass

    def stop(self, timeout: float = 2.0) -> None:
        """Disconnect (no will: this is a clean end) and stop the network thread."""
        self._stopping = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    # -- paho's callbacks, in its network thread -------------------------------------------------------------
    def _connected(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = self._refused or _reason_text(reason)
            self.connected = False
        else:
            self.connected = True
            for topic in self.subscriptions:  # again at every connection: a clean session forgets them
                client.subscribe(topic, qos=1)
            self.on_up()
        self._answered.set()

    def _disconnected(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            self.on_down(_reason_text(reason))

    def _published(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self.on_done(mid)


def _reason_text(reason: Any) -> str:
    text = str(reason)
    if text in ("Not authorized", "Bad user name or password"):
        return f"{text.lower()}: check the user name and password"
    return text
