"""`fleet` as a library call: subscribe to every box under a prefix (sinks/mqtt's client: the same URL, user,
password and TLS rules as --publish) and serve the page, until closed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mgc_edge.runtime.fleet.server import FleetServer
from mgc_edge.runtime.fleet.state import FleetState
from mgc_edge.runtime.sinks.mqtt.client import BrokerClient
from mgc_edge.runtime.sinks.mqtt.config import Broker
from mgc_edge.runtime.sinks.web.config import ServeConfig


class Fleet:
    """The subscriber and the page of one prefix: started by `__enter__`, stopped by `__exit__`."""

    def __init__(self, broker: Broker, config: ServeConfig, notify: Callable[[str], None]) -> None:
        self.broker, self.config, self.notify = broker, config, notify
        self.state = FleetState(broker.prefix)
        topics = [f"{broker.prefix}/+/status", f"{broker.prefix}/+/+/events"]
        self.client = BrokerClient(
            broker, "fleet", subscribe=topics, on_message=self.state.message,
            on_down=lambda why: notify(f"The MQTT broker at {broker.url} went away ({why}); reconnecting."),
        )  # fmt: skip
        self.server: FleetServer | None = None

    def __enter__(self) -> Fleet:
        why = self.client.start()  # a refused password or certificate: PublishError, nothing served
        if why is not None:
            self.notify(f"Cannot reach the MQTT broker at {self.broker.url} yet ({why}); retrying.")
        try:
            self.server = FleetServer(self.config, self.state, self._broker_info)
        except BaseException:
            self.client.stop()
            raise
        return self

    def _broker_info(self) -> dict[str, Any]:
        return {"url": self.broker.url, "connected": self.client.connected}

    def banner(self) -> list[str]:
        return self.server.banner() if self.server else []

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()
        self.client.stop()
