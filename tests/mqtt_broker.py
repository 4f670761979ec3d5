"""A real MQTT broker for the tests and the benchmark: Debian's mosquitto on 127.0.0.1, a free port, its own
config file in a temporary folder (never the system service), with optional users and TLS; and a subscriber
(`Listener`) that records what arrives. Skips (with the install line) where mosquitto is not installed.

    with Mosquitto(tmp_path, users={"u": "p"}) as broker: ...   # broker.url("u", "p") -> mqtt://u:p@...
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

INSTALL = "apt-get install -y mosquitto mosquitto-clients"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_mosquitto() -> str:
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if path is None:
        pytest.skip(f"mosquitto is not installed ({INSTALL})")
    return path


class Mosquitto:
    """mosquitto on 127.0.0.1:`port` (a free one), run until `stop()`; `restart()` keeps port and config."""

    def __init__(
        self,
        folder: Path,
        users: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,  # (certificate, key) of the server
        port: int | None = None,
        persistent: bool = False,  # sessions and queued messages kept across stop(SIGTERM) / start()
    ) -> None:
        self.binary = need_mosquitto()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls is not None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "log_dest stderr",
            "log_type error",
            "max_queued_messages 0",
        ]
        if persistent:
            lines += ["persistence true", f"persistence_location {self.folder}/", "autosave_interval 0"]
        else:
            lines += ["persistence false"]
        if os.geteuid() == 0:  # as root mosquitto would drop to its own user, who cannot read our files
            lines.insert(0, "user root")
        if users:
            passwd = self.folder / "passwd"
            for i, (user, password) in enumerate(users.items()):
                args = ["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(passwd), user, password]
                subprocess.run(args, check=True, capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines += ["allow_anonymous true"]
        if tls is not None:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def url(self, user: str | None = None, password: str | None = None, prefix: str = "test") -> str:
        auth = f"{user}:{password}@" if user and password else (f"{user}@" if user else "")
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}127.0.0.1:{self.port}/{prefix}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not start: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 10 s")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Listener:
    """A paho subscriber on `topics` that keeps every message (topic, JSON or text payload, retained flag)."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        tls_ca: Path | None = None,
        user: tuple[str, str] | None = None,
        session: str | None = None,  # a client id: a persistent session (queued while it is away)
    ):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, Any, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=session or "",
            clean_session=session is None,
            protocol=mqtt.MQTTv311,
        )
        if user:
            self.client.username_pw_set(*user)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_connect = lambda c, u, f, r, p: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(10), "the test's subscriber could not subscribe"

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            payload: Any = json.loads(msg.payload)
        except ValueError:
            payload = msg.payload.decode(errors="replace")
        with self._lock:
            self.messages.append((msg.topic, payload, bool(msg.retain)))

    def received(self) -> list[tuple[str, Any, bool]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, condition: Any, timeout: float = 30.0) -> list[tuple[str, Any, bool]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if condition(got):
                return got
            time.sleep(0.05)
        return self.received()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_certificates(folder: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A CA, a server certificate it signs for `host` (and localhost), and a second, unrelated CA; made by the
    openssl command (the `cryptography` package is not in the lock)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt-get install -y openssl)")
    folder.mkdir(parents=True, exist_ok=True)
    p = {k: folder / f for k, f in [("ca", "ca.pem"), ("ca_key", "ca.key"), ("other-ca", "other-ca.pem"),
                                     ("other_key", "other-ca.key"), ("cert", "server.pem"), ("key", "server.key"),
                                     ("csr", "server.csr"), ("ext", "server.ext")]}  # fmt: skip

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    for ca, key, cn in (("ca", "ca_key", "mgc test CA"), ("other-ca", "other_key", "another CA")):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", f"/CN={cn}", "-keyout", str(p[key]), "-out", str(p[ca]))  # fmt: skip
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={host}", "-keyout", str(p["key"]), "-out", str(p["csr"]))  # fmt: skip
    p["ext"].write_text(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(p["csr"]), "-CA", str(p["ca"]), "-CAkey", str(p["ca_key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(p["ext"]), "-out", str(p["cert"]))  # fmt: skip
    return p
