"""`webcam --publish` against a real broker (Debian's mosquitto on a loopback port, tests/mqtt_broker.py): the
events equal the JSONL in order per source, the rate, the broker killed and restarted mid-run (every event
arrives, duplicates only as exact copies our `seq` exposes), a spool left by one run sent by the next, a wrong
password and a bad CA (one sentence, exit 2, no credential shown), TLS with a certificate the test makes, and
the last will when the box is killed. The command runs in its own process, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from mqtt_broker import Listener, Mosquitto, make_certificates, need_mosquitto
from test_runtime_loop import colour_model, colour_video

pytest.importorskip("paho.mqtt.client")
pytestmark = pytest.mark.slow

PASSWORD = "s3cret-Pa55word"
SEGMENTS = [("1", 12), ("3", 12), ("2", 12)]  # 36 frames
LONG = [("1", 40), ("3", 40), ("2", 40)]  # 6 s at 20 fps with --realtime


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_mosquitto()
    root = tmp_path_factory.mktemp("mqtt")
    colour_video(root / "short.mp4", segments=SEGMENTS, fps=20.0)
    colour_video(root / "long.mp4", segments=LONG, fps=20.0)
    return {
        "model": colour_model(root / "colour.onnx"),
        "short": root / "short.mp4",
        "long": root / "long.mp4",
    }


def webcam_command(
    media: dict[str, Path], url: str, *extra: str, sources: tuple[str, ...] = ("short",)
) -> list[str]:
    command = [sys.executable, "-m", "mgc_edge", "webcam", str(media["model"])]
    for source in sources:
        command += ["--source", str(media[source])]
    return command + ["--display", "off", "--device", "cpu", "--publish", url, *extra]


def run(command: list[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def frame_events(
    messages: list[tuple[str, Any, bool]], states: bool = False
) -> dict[int, list[dict[str, Any]]]:
    """Each source's frame events as published, in arrival order (its state records too with `states`)."""
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for topic, payload, _ in messages:
        if topic.endswith("/events") and (states or "frame" in payload):
            out[int(topic.split("/")[-2])].append(payload)
    return out


def jsonl_events(path: Path, states: bool = False) -> dict[int, list[dict[str, Any]]]:
    """Each source's frame events in the JSONL, in order (its state records too with `states`)."""
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if states or event.get("type") != "state":
            out[event["source"]["index"]].append(event)
    return out


def without_ours(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("box", "run", "seq")}


def test_events_equal_the_jsonl_in_order_with_a_retained_status(
    media: dict[str, Path], tmp_path: Path
) -> None:
    with Mosquitto(tmp_path / "broker", users={"box": PASSWORD}) as broker:
        listener = Listener(broker.port, ["lab/#"], user=("box", PASSWORD))
        result = run(
            webcam_command(
                media, broker.url("box", PASSWORD, "lab"), "--box", "room1", "--publish-rate", "frame",
                "--jsonl", str(tmp_path / "out.jsonl"), "--publish-spool", str(tmp_path / "spool"),
                sources=("short", "short"),
            )
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        expected = jsonl_events(tmp_path / "out.jsonl", states=True)  # 36 frames and its end, per source
        got = listener.wait_for(lambda m: sum(map(len, frame_events(m, states=True).values())) >= 74)
        listener.close()
        published = frame_events(got, states=True)
        assert sorted(published) == [0, 1]
        for index in (0, 1):
            assert [without_ours(e) for e in published[index]] == expected[index]
            # seq counts every message of a source (frames and its state records) from 1, without a gap
            seqs = [p["seq"] for t, p, _ in got if t == f"lab/room1/{index}/events"]
            assert seqs == list(range(1, len(seqs) + 1))
            assert {e["box"] for e in published[index]} == {"room1"} and len(
                {e["run"] for e in published[index]}
            ) == 1
        statuses = [p for t, p, _ in got if t == "lab/room1/status"]
        assert statuses[0]["state"] == "online" and [s["index"] for s in statuses[0]["sources"]] == [0, 1]
        assert statuses[-1]["state"] == "offline"
        # a subscriber that comes later is told the box's last status at once (retained)
        late = Listener(broker.port, ["lab/+/status"], user=("box", PASSWORD))
        retained = late.wait_for(lambda m: m, timeout=10)
        late.close()
        assert retained and retained[0][2] and retained[0][1]["state"] == "offline"
    assert PASSWORD not in result.stderr and PASSWORD not in json.dumps([p for _, p, _ in got])
    assert "MQTT: 74 events published" in result.stderr  # 72 frames and each source's end


def test_the_change_rate_publishes_each_change_of_the_smoothed_label(
    media: dict[str, Path], tmp_path: Path
) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        listener = Listener(broker.port, ["test/#"])
        result = run(
            webcam_command(media, broker.url(), "--box", "b", "--jsonl", str(tmp_path / "out.jsonl"),
                           "--publish-spool", str(tmp_path / "spool"))
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        expected = jsonl_events(tmp_path / "out.jsonl")[0]
        changes = [
            e
            for i, e in enumerate(expected)
            if i == 0 or e["smoothed"]["label"] != expected[i - 1]["smoothed"]["label"]
        ]
        got = listener.wait_for(
            lambda m: any(p.get("state") == "offline" for _, p, _ in m if isinstance(p, dict))
        )
        listener.close()
    assert len(changes) >= 3  # the video shows three colours
    assert [without_ours(e) for e in frame_events(got)[0]] == changes


def test_a_broker_killed_and_restarted_mid_run_loses_nothing(media: dict[str, Path], tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker", persistent=True) as broker:
        listener = Listener(broker.port, ["test/#"], session="test-listener")
        command = webcam_command(
            media, broker.url(), "--box", "b", "--publish-rate", "frame", "--realtime",
            "--jsonl", str(tmp_path / "out.jsonl"), "--publish-spool", str(tmp_path / "spool"), sources=("long",),
        )  # fmt: skip
        box = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            listener.wait_for(lambda m: len(frame_events(m)[0]) >= 20)
            broker.stop(signal.SIGTERM)  # kept: the listener's session; lost: whatever was in flight
            time.sleep(2.0)
            broker.start()
            _, stderr = box.communicate(timeout=90)
        finally:
            if box.poll() is None:
                box.kill()
        assert box.returncode == 0, stderr
        expected = jsonl_events(tmp_path / "out.jsonl")[0]
        got = listener.wait_for(
            lambda m: len({e["seq"] for e in frame_events(m)[0]}) >= len(expected), timeout=60
        )
        listener.close()
    published = frame_events(got)[0]
    first: dict[int, dict[str, Any]] = {}
    for event in published:  # QoS 1 may deliver twice: only as an exact copy, told apart by seq
        assert first.setdefault(event["seq"], event) == event
    in_order = [without_ours(first[s]) for s in sorted(first)]
    assert in_order == expected
    assert "went away" in stderr and "answers" in stderr and "0 dropped" in stderr


def test_a_spool_left_by_one_run_is_sent_by_the_next(media: dict[str, Path], tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    broker_dir = tmp_path / "broker"
    down = Mosquitto(broker_dir)  # only for its port: stopped at once, so the first run finds nobody
    port = down.port
    down.stop()
    url = f"mqtt://127.0.0.1:{port}/test"
    first = run(
        webcam_command(media, url, "--box", "b", "--publish-rate", "frame", "--publish-spool", str(spool))
    )
    assert first.returncode == 0, first.stderr
    # its 36 frames; a single source's end is the run's own (in the final status), as in the JSONL
    assert (
        "Cannot reach the MQTT broker" in first.stderr and "36 events stay in the MQTT spool" in first.stderr
    )
    with Mosquitto(broker_dir, port=port) as broker:
        listener = Listener(broker.port, ["test/#"])
        second = run(
            webcam_command(media, url, "--box", "b", "--publish-rate", "frame", "--publish-spool", str(spool))
        )
        got = listener.wait_for(lambda m: len(frame_events(m)[0]) >= 72)
        listener.close()
    assert second.returncode == 0, second.stderr
    assert "Sending 36 events an earlier run left" in second.stderr
    runs = [e["run"] for e in frame_events(got)[0]]
    assert (
        len(runs) == 72 and len(set(runs[:36])) == 1 and set(runs[:36]) != set(runs[36:])
    )  # the old run first


def test_a_wrong_password_is_one_sentence_and_exit_2(media: dict[str, Path], tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker", users={"box": PASSWORD}) as broker:
        result = run(webcam_command(media, broker.url("box", "wrong-" + PASSWORD)))
    assert result.returncode == 2
    assert "refused the connection" in result.stderr and "user name" in result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr
    assert "box:***@" in result.stderr


def test_tls_with_the_right_ca_publishes_and_another_ca_is_refused(
    media: dict[str, Path], tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "certs")
    with Mosquitto(tmp_path / "broker", users={"box": PASSWORD}, tls=(certs["cert"], certs["key"])) as broker:
        listener = Listener(broker.port, ["test/#"], tls_ca=certs["ca"], user=("box", PASSWORD))
        url = broker.url("box")  # the password from the environment, not the command line
        env_run = webcam_command(media, url, "--publish-ca", str(certs["ca"]), "--publish-rate", "frame",
                                 "--publish-spool", str(tmp_path / "spool"))  # fmt: skip
        good = subprocess.run(env_run, env={**os.environ, "MGC_EDGE_MQTT_PASSWORD": PASSWORD}, capture_output=True,
                              text=True, timeout=90)  # fmt: skip
        got = listener.wait_for(lambda m: len(frame_events(m)[0]) >= 36)
        listener.close()
        bad = run(webcam_command(media, broker.url("box", PASSWORD), "--publish-ca", str(certs["other-ca"])))
    assert good.returncode == 0, good.stderr
    assert len(frame_events(got)[0]) == 36
    assert bad.returncode == 2 and "does not verify" in bad.stderr and "Traceback" not in bad.stderr
    assert PASSWORD not in bad.stderr


def test_the_last_will_says_offline_when_the_box_is_killed(media: dict[str, Path], tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        listener = Listener(broker.port, ["test/+/status"])
        command = webcam_command(media, broker.url(), "--box", "b", "--realtime", "--publish-spool",
                                 str(tmp_path / "spool"), sources=("long",))  # fmt: skip
        box = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            listener.wait_for(lambda m: any(p["state"] == "online" for _, p, _ in m))
            box.send_signal(signal.SIGKILL)
            box.wait(10)
            got = listener.wait_for(lambda m: any(p["state"] == "offline" for _, p, _ in m), timeout=30)
        finally:
            if box.poll() is None:
                box.kill()
            listener.close()
    states = [p["state"] for _, p, _ in got]
    assert states[0] == "online" and states[-1] == "offline"
    assert got[-1][1]["box"] == "b"


def test_api_status_counts_published_spooled_and_dropped(media: dict[str, Path], tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        command = webcam_command(media, broker.url(), "--publish-rate", "frame", "--realtime", "--serve",
                                 "127.0.0.1:0", "--publish-spool", str(tmp_path / "spool"), sources=("long",))  # fmt: skip
        box = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert box.stderr is not None
            url = next(m.group(1) for line in box.stderr if (m := re.search(r"Live view: (\S+)", line)))
            deadline, publish = time.monotonic() + 30, {}
            while time.monotonic() < deadline and not publish.get("published"):
                with urllib.request.urlopen(url + "api/status", timeout=10) as response:
                    publish = json.loads(response.read())["loop"].get("publish", {})
                time.sleep(0.2)
        finally:
            box.send_signal(signal.SIGTERM)
            box.wait(30)
    assert publish["published"] > 0 and publish["dropped"] == 0 and publish["spooled"] >= 0
    assert publish["connected"] is True and publish["broker"] == broker.url()


def test_annotate_publishes_each_video_summary_and_segments(media: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ann"
    with Mosquitto(tmp_path / "broker", users={"box": PASSWORD}) as broker:
        listener = Listener(broker.port, ["test/#"], user=("box", PASSWORD))
        command = [sys.executable, "-m", "mgc_edge", "annotate", str(media["model"]), str(media["short"]),
                   str(media["long"]), "--out", str(out), "--device", "cpu", "--box", "b", "--publish-segments",
                   "--publish", broker.url("box", PASSWORD), "--publish-spool", str(tmp_path / "spool")]  # fmt: skip
        first = run(command)
        summary = json.loads((out / "summary.json").read_text())
        got = listener.wait_for(lambda m: len(m) >= 2)
        again = run(command)  # both videos up to date: kept, nothing new to publish
        refused = run(
            [*command[:-4], "--publish", broker.url("box", "nope"), "--out", str(tmp_path / "other")]
        )
        time.sleep(0.5)
        listener.close()
    assert first.returncode == 0, first.stderr
    assert "MQTT: 2 video summaries published" in first.stderr
    assert [t for t, _, _ in listener.received()] == ["test/b/annotate"] * 2
    by_name = {message["name"]: message for _, message, _ in got}  # as each video ended; the summary by name
    assert sorted(by_name) == sorted(video["name"] for video in summary["videos"])
    for video in summary["videos"]:
        message = by_name[video["name"]]
        assert {k: message[k] for k in video} == video and message["model"] == "colour.onnx"
        rows = (out / f"{video['name']}.segments.csv").read_text().splitlines()
        assert len(message["segment_rows"]) == len(rows) - 1 == video["segments"] >= 1
        assert [s["label"] for s in message["segment_rows"]] == [int(r.split(",")[5]) for r in rows[1:]]
    assert [m["seq"] for _, m, _ in got] == [1, 2]
    assert again.returncode == 0 and "MQTT: 0 video summaries published" in again.stderr
    assert refused.returncode == 2 and "refused the connection" in refused.stderr
    assert not (tmp_path / "other").exists() and "nope" not in refused.stderr
