"""A soak of an unattended box (not a test): `mgc-edge webcam --serve --jsonl` over four cameras for
`--minutes`, with cameras that drop and come back, and a viewer on the live view; its memory, threads and open
files sampled all along.

    python -m benchmarks.soak [--minutes 30] [--work DIR] [--out benchmarks/results/soak] [--force]
    python -m benchmarks.soak --minutes 2 --drop-every 40 --drop 10-15 --rtsp-every 60   # a smoke run

The cameras, all on 127.0.0.1: three MJPEG at 25 fps (benchmarks/mjpeg_server.py; two in one process, the
third in a process of its own that is killed for `--drop` seconds, drawn at random, every `--drop-every`
seconds) and one RTSP camera (tests/rtsp_server.py under Debian's Python: H.264, a user and a password) killed
and started again every `--rtsp-every` seconds (after `--rtsp-gap` seconds away). The sources are given in a
`--sources` file, so the password never shows in `ps`. The viewer is a plain HTTP client, not a browser: one
/events stream, one /stream.mjpg of the dropping camera (whose source sends nothing while it is away)
and a /frame.jpg of every camera each second, as the page's tiles ask, all under one `?viewer=` id; it
reconnects when a stream ends.

Every `--interval` seconds: the webcam's RSS, threads and open files (/proc/PID), its CPU time, the load
average, the viewer's counts and /api/status, one JSON line each in OUT.jsonl (written as it goes: a cut run
keeps what it measured); at the end OUT.json: the schedule, every outage with the webcam's log lines about it,
and the verdict on the targets: RSS grows by at most 5 MB after the first minute; threads and open files
return to their level after each outage; every outage is logged once ("dropped") and ends in "back".

Every child dies with the soak: it restores SIGINT and SIGTERM to their defaults (a background job ignores
SIGINT, and its children would too) and asks the kernel for SIGTERM when the soak dies; the soak ends them on
exit, SIGINT, SIGTERM and SIGHUP. The model is alexnet_bn at 64x64 made here as benchmarks/streams.py does
(needs the [train] extra) unless `--model` names one; `--work` keeps it for the next run.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, ROOT, machine, save_json
from benchmarks.soak_report import jsonl_states, markdown, outages_report, summarise
from benchmarks.soak_viewer import Viewer, api_status

USER, PASSWORD = "soak", "s0ak-Pass-7d1"  # the RTSP camera's credentials (loopback only)
FIRST_MINUTE_S = 60.0
CHILDREN: list[subprocess.Popen[Any]] = []


def _child_setup() -> None:
    """In each child before it runs: default SIGINT / SIGTERM, and SIGTERM when the soak dies (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(command: list[str], **popen: Any) -> subprocess.Popen[Any]:
    proc = subprocess.Popen(command, preexec_fn=_child_setup, cwd=ROOT, **popen)  # noqa: PLW1509
    CHILDREN.append(proc)
    return proc


def end(proc: subprocess.Popen[Any], first: int = signal.SIGTERM, wait_s: float = 10.0) -> None:
    """`first`, then SIGKILL if it has not ended within `wait_s`."""
    if proc.poll() is None:
        proc.send_signal(first)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def end_all() -> None:
    for proc in list(CHILDREN):
        end(proc, signal.SIGINT if "webcam" in proc.args else signal.SIGTERM)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(proc: subprocess.Popen[Any], what: str, seconds: float = 60.0) -> None:
    """Wait for a server's `ready PORT` line."""
    assert proc.stdout is not None
    line = proc.stdout.readline() if select.select([proc.stdout], [], [], seconds)[0] else ""
    if not line.startswith("ready "):
        raise SystemExit(f"{what} did not start: {line!r}")


class Server:
    """A camera server on a fixed port, which the schedule kills and starts again."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name, self.command, self.proc = name, command, None
        self.starts = 0

    def start(self) -> None:
        self.proc = spawn(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready(self.proc, self.name)
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None:
            end(self.proc, signal.SIGKILL)  # a camera that loses power says nothing
            self.proc = None


class Webcam:
    """`mgc-edge webcam --sources FILE --display off --serve --jsonl` with its stderr lines, timed."""

    def __init__(self, model: Path, sources: Path, jsonl: Path, port: int, log: Path) -> None:
        command = [sys.executable, "-m", "mgc_edge", "webcam", str(model), "--sources", str(sources)]
        command += ["--display", "off", "--device", "cpu", "--serve", f"127.0.0.1:{port}"]
        command += ["--jsonl", str(jsonl), "--force"]
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = spawn(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[tuple[float, str]] = []
        self.serving = threading.Event()
        self._log = log.open("w", encoding="utf-8")
        threading.Thread(target=self._read, daemon=True, name="soak-webcam-stderr").start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            now = time.time()
            self.lines.append((now, line.rstrip("\n")))
            self._log.write(f"{now:.3f} {line}")
            self._log.flush()
            if line.startswith("Live view:"):
                self.serving.set()
        self.serving.set()

    def stop(self) -> None:
        end(self.proc, signal.SIGINT, 60.0)  # Ctrl-C: its summary is printed and the JSONL closed


def proc_sample(pid: int) -> dict[str, Any]:
    """RSS (MB), threads, open files and CPU seconds of a process, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 2),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "cpu_s": round((int(stat[11]) + int(stat[12])) / ticks, 2),
    }


def schedule(args: argparse.Namespace, seconds: float, rng: random.Random) -> list[dict[str, Any]]:
    """The outages: the MJPEG camera every `drop_every` s for a random time, the RTSP camera every `rtsp_every`
    s (half a drop period later, so the two are told apart) for `rtsp_gap` s; each ends before the run."""
    low, _, high = args.drop.partition("-")
    plan = []
    t = args.drop_every
    while t < seconds:
        plan.append(
            {"camera": "mjpeg", "start_s": t, "away_s": round(rng.uniform(float(low), float(high or low)))}
        )
        t += args.drop_every
    t = args.rtsp_every + args.drop_every / 4
    while t < seconds:
        plan.append({"camera": "rtsp", "start_s": t, "away_s": args.rtsp_gap})
        t += args.rtsp_every
    margin = 20.0  # a camera comes back this long before the end at least: its "back" is in the log
    plan = [o for o in plan if o["start_s"] + o["away_s"] + margin <= seconds]
    return sorted(plan, key=lambda o: o["start_s"])


def make_model(work: Path) -> Path:
    from benchmarks.streams import make_model as make

    model = work / "alexnet_bn_64.onnx"
    return model if model.exists() else make(work, 64)


def video_for(work: Path) -> Path:
    from benchmarks.streams import synthetic

    found = sorted((work / "data").rglob("*.mp4")) if (work / "data").exists() else []
    return found[0] if found else synthetic(work).video


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--drop-every", type=float, default=120.0, help="seconds between MJPEG drops")
    parser.add_argument("--drop", default="20-60", help="seconds an MJPEG drop lasts: LOW-HIGH, drawn")
    parser.add_argument("--rtsp-every", type=float, default=300.0, help="seconds between RTSP restarts")
    parser.add_argument("--rtsp-gap", type=float, default=5.0, help="seconds the RTSP camera is away")
    parser.add_argument("--model", type=Path, help="an exported .onnx (default: alexnet_bn 64 made here)")
    parser.add_argument("--work", type=Path, help="keep the model, video, JSONL and logs here")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "soak", help="OUT.jsonl and OUT.json")
    parser.add_argument("--force", action="store_true", help="replace OUT.jsonl / OUT.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    samples_path, summary_path = args.out.with_suffix(".jsonl"), args.out.with_suffix(".json")
    for path in (samples_path, summary_path):
        if path.exists() and not args.force:
            raise SystemExit(f"{path} exists; pass --force to replace it.")

    signal.signal(signal.SIGINT, _stop)  # also where a background job started with SIGINT ignored
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    atexit.register(end_all)
    work = args.work or Path(f"/tmp/mgc-soak-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    plan = schedule(args, seconds, random.Random(args.seed))
    try:
        run(args, work, seconds, plan, samples_path, summary_path)
    except KeyboardInterrupt as exc:
        print(
            f"soak: stopped ({exc or 'interrupted'}); what was measured is in {samples_path}", file=sys.stderr
        )
        sys.exit(130)
    finally:
        end_all()


def run(
    args: argparse.Namespace,
    work: Path,
    seconds: float,
    plan: list[dict[str, Any]],
    samples_path: Path,
    summary_path: Path,
) -> None:
    model = args.model or make_model(work)
    video = video_for(work)
    ports = {name: free_port() for name in ("steady", "drop", "rtsp", "serve")}
    mjpeg = [sys.executable, "-m", "benchmarks.mjpeg_server", str(video), "--fps", "25", "--size", "640x360"]
    steady = Server("MJPEG cameras 0 and 1", [*mjpeg, "--port", str(ports["steady"])])
    dropping = Server("MJPEG camera 2", [*mjpeg, "--port", str(ports["drop"])])
    rtsp_command = [
        "/usr/bin/python3",
        "tests/rtsp_server.py",
        "--port",
        str(ports["rtsp"]),
        "--size",
        "320x240",
    ]
    rtsp = Server("RTSP camera 3", [*rtsp_command, "--user", USER, "--password", PASSWORD, "/cam=ball"])
    for server in (steady, dropping, rtsp):
        server.start()
    urls = [
        f"http://127.0.0.1:{ports['steady']}/cam/0.mjpg",
        f"http://127.0.0.1:{ports['steady']}/cam/1.mjpg",
        f"http://127.0.0.1:{ports['drop']}/cam/2.mjpg",
        f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{ports['rtsp']}/cam",
    ]
    sources = work / "sources.txt"
    sources.write_text("".join(f"{url}\n" for url in urls), encoding="utf-8")
    sources.chmod(0o600)
    webcam = Webcam(model, sources, work / "soak-events.jsonl", ports["serve"], work / "webcam.log")
    if not webcam.serving.wait(180) or webcam.proc.poll() is not None:
        raise SystemExit("webcam did not start serving:\n" + "\n".join(t for _, t in webcam.lines))
    viewer = Viewer(webcam.url, video_source=2, sources=len(urls))
    viewer.start()
    started = time.time()
    print(
        f"soak: {args.minutes:g} min from {time.strftime('%H:%M:%S')}, {len(plan)} outages; "
        f"samples in {samples_path}",
        flush=True,
    )
    outages: list[dict[str, Any]] = []
    pending = [dict(o) for o in plan]
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    with samples_path.open("w", encoding="utf-8") as out:
        next_sample = 0.0
        while (now := time.time() - started) < seconds:
            for outage in [o for o in pending if o["start_s"] <= now and "began" not in o]:
                outage["began"] = time.time()  # before the kill: the webcam may see it before kill() returns
                (dropping if outage["camera"] == "mjpeg" else rtsp).kill()
            for outage in [o for o in pending if "began" in o and now >= o["start_s"] + o["away_s"]]:
                (dropping if outage["camera"] == "mjpeg" else rtsp).start()
                outage["ended"] = time.time()
                outages.append(outage)
                pending.remove(outage)
            if now >= next_sample:
                if webcam.proc.poll() is not None:
                    raise SystemExit(f"webcam ended early (exit {webcam.proc.returncode})")
                sample = {"t_s": round(now, 1), "wall": round(time.time(), 1), **proc_sample(webcam.proc.pid)}
                sample["load"] = [round(v, 2) for v in os.getloadavg()]
                sample["viewer"] = viewer.counts()
                sample["status"] = api_status(webcam.url)
                sample["away"] = [o["camera"] for o in pending if "began" in o]
                out.write(json.dumps(sample, separators=(",", ":")) + "\n")
                out.flush()
                next_sample += args.interval
            time.sleep(0.2)
    viewer.stop()
    ended = time.time()
    webcam.stop()
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines()]
    names = {"mjpeg": urls[2], "rtsp": f"127.0.0.1:{ports['rtsp']}/cam"}
    report = {
        "machine": machine(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "seconds": round(ended - started, 1),
        "sources": [re.sub(r"//[^@/]*@", "//***@", url) for url in urls],
        "outages": outages_report(outages, webcam.lines, names, ended),
        "jsonl_states": jsonl_states(work / "soak-events.jsonl"),
        "webcam_exit": webcam.proc.returncode,
        "webcam_tail": [text for _, text in webcam.lines[-12:]],
    }
    report["summary"] = summarise(samples, report["outages"], FIRST_MINUTE_S, args.interval)
    save_json(summary_path, report)
    print(markdown(report))
    print(f"soak: the samples are in {samples_path}, the outages and the verdict in {summary_path}")


if __name__ == "__main__":
    main()
