"""The spool and the broker together: `send()` writes a message to the spool and returns at once; one sender
thread reads the spool in order and hands each message to paho while the broker is up (a bounded number
unacknowledged at a time), and moves the spool's cursor past what the broker acknowledged. A broker that goes
away only stops the sending; the spool keeps filling within its limits and is sent when it is back."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from mgc_edge.runtime.sinks.mqtt.client import BrokerClient
from mgc_edge.runtime.sinks.mqtt.config import PublishOptions
from mgc_edge.runtime.sinks.mqtt.spool import Position, Spool

MAX_OUTSTANDING = 1000  # messages handed to paho and not yet acknowledged (bounds paho's memory)
SYNC_S = 1.0  # the spool is fsync'd and its cursor stored about this often
DRAIN_S = 5.0  # at the end, how long the spool may take to empty before it is left for the next run


class Publisher:
    """Messages to one broker through the on-disk spool (`send`), or straight to it (`publish_now`: a
    retained status, which is no use late)."""

    def __init__(
        self,
        options: PublishOptions,
        notify: Callable[[str], None],
        will: tuple[str, bytes] | None = None,
        on_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.options, self.notify = options, notify
        self.published = 0
        self._kick = threading.Event()  # something to do: a message spooled, acknowledged, the broker back
        self._acks: SimpleQueue[int] = SimpleQueue()  # from paho's thread; only the sender reads them
        # Only the sender thread touches these (never under a lock of ours while paho's locks are held:
        # paho calls on_publish holding its message lock, which publish() takes too).
        self._outstanding: deque[list[Any]] = deque()  # [end position, acknowledged], oldest first
        self._mids: dict[int, list[Any]] = {}
        self._stop = False
        self._on_up = on_up
        self._was_down = False
        self.client = BrokerClient(
            options.broker, options.box, will, on_up=self._up, on_down=self._down, on_done=self._done
        )
        self.spool = Spool(options.spool_dir, options.spool_bytes, options.spool_age_s, notify)
        self._thread = threading.Thread(target=self._send_loop, name="mgc-mqtt-send", daemon=True)

    def start(self) -> None:
        """Connect (a PublishError at a refused password or certificate) and start sending."""
        waiting = self.spool.pending
        why = self.client.start()
        if why is not None:
            self._was_down = True
            self.notify(
                f"Cannot reach the MQTT broker at {self.options.broker.url} yet ({why}); events are spooled "
                f"in {self.options.spool_dir} and sent once it answers."
            )
        elif waiting:
            self.notify(f"Sending {waiting} events an earlier run left in the MQTT spool.")
        self._thread.start()

    def send(self, topic: str, payload: str) -> None:
        """Spool one message (the loop's thread: a line written to a file, no network)."""
        self.spool.append(topic, payload)
        self._kick.set()

    def publish_now(self, topic: str, payload: bytes, retain: bool = True) -> bool:
        """Publish without the spool while connected (the status); False when the broker is away."""
        if not self.client.connected:
            return False
        self.client.publish(topic, payload, self.options.qos, retain)
        return True

    def counters(self) -> dict[str, Any]:
        """published (acknowledged by the broker), spooled (waiting: on disk or unacknowledged), dropped."""
        outstanding = len(self._outstanding)
        return {
            "broker": self.options.broker.url,
            "connected": self.client.connected,
            "published": self.published,
            "spooled": self.spool.pending + outstanding,
            "dropped": self.spool.dropped,
        }

    def close(self, final: tuple[str, Callable[[], bytes]] | None = None) -> None:
        """Send what the spool holds for up to DRAIN_S while connected, publish `final` (retained), disconnect;
        what is left stays in the spool for the next run."""
        deadline = time.monotonic() + DRAIN_S
        while self.client.connected and time.monotonic() < deadline:
            if not self._outstanding and not self.spool.pending:
                break
            time.sleep(0.02)
        self._stop = True
        self._kick.set()
        if self._thread.is_alive():
            self._thread.join()
        if final is not None and self.client.connected:
            self.client.publish_wait(final[0], final[1](), retain=True)
        self.client.stop()
        self.spool.close()
        left = self.counters()["spooled"]
        if left:
            self.notify(
                f"{left} events stay in the MQTT spool ({self.options.spool_dir}); the next run with the same "
                "--publish sends them."
            )

    # -- the sender thread -----------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        last_sync = time.monotonic()
        while not self._stop:
            while not self._acks.empty():
                self._ack(self._acks.get())
            sent = 0
            while self.client.connected and len(self._outstanding) < MAX_OUTSTANDING and sent < 256:
                record = self.spool.next()
                if record is None:
                    break
                entry = [record.end, False]
                self._outstanding.append(entry)
                self._mids[self.client.publish(record.topic, record.payload, self.options.qos)] = entry
                sent += 1
            if not sent:
                self._kick.wait(0.2)
                self._kick.clear()
            if time.monotonic() - last_sync >= SYNC_S:
                self.spool.sync()
                last_sync = time.monotonic()
        while not self._acks.empty():
            self._ack(self._acks.get())
        self.spool.sync()

    def _ack(self, mid: int) -> None:
        """Message `mid` reached the broker; move the cursor past every acknowledged one (a status message's
        id is not ours: ignored)."""
        entry = self._mids.pop(mid, None)
        if entry is None:
            return
        entry[1] = True
        self.published += 1
        end: Position | None = None
        while self._outstanding and self._outstanding[0][1]:
            end = self._outstanding.popleft()[0]
        if end is not None:
            self.spool.commit(end)

    # -- paho's network thread -------------------------------------------------------------------------------
    def _done(self, mid: int) -> None:
        self._acks.put(mid)
        self._kick.set()

    def _up(self) -> None:
        if self._was_down:
            self.notify(f"The MQTT broker at {self.options.broker.url} answers; sending the spooled events.")
        self._was_down = False
        self._on_up()
        self._kick.set()

    def _down(self, reason: str) -> None:
        if not self._was_down:
            self.notify(
                f"The MQTT broker at {self.options.broker.url} went away ({reason}); events are spooled in "
                f"{self.options.spool_dir} until it is back."
            )
        self._was_down = True
