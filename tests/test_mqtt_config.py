"""`--publish` parsed without a broker: the URL forms, the password kept out of every repr and message, the
rate, the box name, and the runtime without paho-mqtt installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mgc_edge.runtime.sinks.mqtt.config import PublishError, parse_broker, parse_rate, publish_options


def test_the_url_forms() -> None:
    b = parse_broker("mqtt://broker.lan/lab/rooms")
    assert (b.host, b.port, b.tls, b.prefix, b.user) == ("broker.lan", 1883, False, "lab/rooms", None)
    b = parse_broker("mqtts://u:p%40ss@10.0.0.2:8884")
    assert (b.port, b.tls, b.prefix, b.user, b.password) == (8884, True, "mgc-edge", "u", "p@ss")
    assert parse_broker("mqtt://[::1]:1999/x").url == "mqtt://[::1]:1999/x"


def test_the_password_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    options = publish_options("mqtt://box:hunter22@host/p", box="b")
    assert "hunter22" not in repr(options) and "hunter22" not in options.broker.url
    assert options.broker.password == "hunter22"
    monkeypatch.setenv("MGC_EDGE_MQTT_PASSWORD", "from-env")
    assert parse_broker("mqtt://box@host/p").password == "from-env"
    with pytest.raises(PublishError) as refused:
        parse_broker("http://box:hunter22@host/p")
    assert "hunter22" not in str(refused.value)


@pytest.mark.parametrize(
    "url, box, why",
    [
        ("mqtt:///p", None, "mqtt://"),
        ("mqtt://h/a/+/b", None, "prefix"),
        ("mqtt://h/p", "a/b", "--box"),
        ("mqtt://h/p", "", "--box"),
    ],
)
def test_bad_urls_and_names_are_refused(url: str, box: str | None, why: str) -> None:
    with pytest.raises(PublishError, match=why.replace("+", r"\+")):
        publish_options(url, box=box)


def test_the_rate(tmp_path: Path) -> None:
    assert parse_rate("frame") == "frame" and parse_rate("Change") == "change" and parse_rate("250") == 0.25
    for bad in ("0", "-5", "often"):
        with pytest.raises(PublishError, match="--publish-rate"):
            parse_rate(bad)
    with pytest.raises(PublishError, match="--publish-ca"):
        publish_options("mqtt://h/p", box="b", ca=tmp_path / "ca.pem")  # a CA for a plain mqtt:// broker


def test_the_runtime_imports_without_paho_and_publish_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['paho'] = None; sys.modules['paho.mqtt'] = None; "
        "sys.modules['paho.mqtt.client'] = None\n"
        "import mgc_edge.cli, mgc_edge.runtime.sinks, mgc_edge.runtime.live.webcam\n"
        "from mgc_edge.runtime.sinks.mqtt.config import publish_options\n"
        "from mgc_edge.runtime.sinks.mqtt.publisher import Publisher\n"
        "from mgc_edge.runtime.sinks.mqtt.config import PublishError\n"
        f"opts = publish_options('mqtt://127.0.0.1:1/p', box='b', spool={str(tmp_path / 's')!r})\n"
        "try:\n    Publisher(opts, print)\nexcept PublishError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'mgc-edge[mqtt]'" in out.stdout
