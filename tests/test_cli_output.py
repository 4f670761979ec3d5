"""Output that a person reads in a log and a script parses, checked as a newcomer meets it: every command's
--help shows its defaults, tables stay whole at 80 columns when piped, and the line meant for scripts never
wraps (`mgc-edge evaluate RUN | tail -n 1 | python -m json.tool` works)."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.main import get_command
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.cli.export import _parity_table
from mgc_edge.config import SplitConfig
from mgc_edge.reports import render_report

runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]
GROUP_REGEX = SplitConfig().group_regex


def flat(text: str) -> str:
    """Whitespace collapsed, and a word that click's wrapping broke after a hyphen joined again."""
    return re.sub(r"(?<=\w-) (?=\w)", "", " ".join(text.split()))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_help_shows_its_defaults(name: str) -> None:
    """Defaults written into a help text ("Epochs [30].") survive, and an option with a default shows it."""
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    checked = 0
    for p in command.params:
        if getattr(p, "param_type_name", "") != "option" or p.hidden or p.name == "help":
            continue
        text = flat(p.help or "")
        assert text in out, f"{name} {p.opts[0]}: help text missing"
        for default in re.findall(r"\[[^\]]+\]", text):
            assert default in out
            checked += 1
        shown = out[out.index(text) + len(text) :].lstrip().startswith("[default:")
        if p.default is not None and not (p.is_flag and p.default is False) and p.show_default is not False:
            assert shown, f"{name} {p.opts[0]}: its default {p.default!r} is not shown"
            checked += 1
    assert checked > 0


def test_train_help_shows_the_bracketed_defaults_the_issue_named() -> None:
    out = flat(runner.invoke(app, ["train", "--help"]).output)
    for text in ("auto, cpu or cuda [auto].", "none, loss (class weights) or sampler [none].", "[stretch]."):
        assert text in out
    assert (
        f"--group-regex <str> Regex whose group `group` is the clip key of a file name; default {GROUP_REGEX} "
        in out
    )


def imigue_names() -> dict[str, str]:
    text = (resources.files("mgc_edge.resources") / "imigue_classes.csv").read_text(encoding="utf-8")
    return {row["label"]: row["name"] for row in csv.DictReader(io.StringIO(text))}


def narrow() -> tuple[Console, io.StringIO]:
    """What a pipe or a log gets: not a terminal, 80 columns."""
    buf = io.StringIO()
    return Console(file=buf, width=80, force_terminal=False), buf


def test_train_per_class_table_is_whole_at_80_columns() -> None:
    names = imigue_names()
    per_class = [
        {"label": k, "name": v, "support": 1234, "clips": 56, "precision": 0.5, "recall": 0.25, "f1": 1 / 3}
        for k, v in names.items()
    ]
    report = {
        "n": 3000, "num_classes": 32, "top1": 0.7, "top5": 0.9, "balanced_accuracy": 0.5, "macro_f1": 0.4,
        "baseline": {"label": "32", "source": "train", "top1": 0.27}, "per_class": per_class,
        "too_small_to_judge": ["10"],
    }  # fmt: skip
    console, buf = narrow()
    render_report(report, console)
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "support" in line)
    assert re.findall(r"[A-Za-z0-9-]+", header) == [
        "label",
        "name",
        "support",
        "clips",
        "precision",
        "recall",
        "F1",
    ]
    assert "…" not in buf.getvalue()
    assert (
        sum("1234" in line and "50.0%" in line and "25.0%" in line and "33.3%" in line for line in lines)
        == 32
    )
    shown: dict[str, str] = {}  # the name column, continuation lines joined: wrapped, never cut
    label = ""
    for line in lines:
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 7:
            label = cells[0] or label
            shown[label] = f"{shown.get(label, '')} {cells[1]}".strip()
    assert shown == names


def test_export_table_shows_whole_file_names_at_80_columns() -> None:
    report = SimpleNamespace(
        precision="int8", agreement=0.996, logits_max_abs=0.0591, probs_max_abs=0.0153, acc_model=0.719,
        acc_checkpoint=0.72, passed=True,
    )  # fmt: skip
    rows = [
        (Path("demo/run") / name, 57.3, report)
        for name in ("model.onnx", "model.int8.onnx", "model.int8.FAILED.onnx")
    ]
    console, buf = narrow()
    console.print(_parity_table(rows, "Export of demo/run/best.pt (41s)"))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in ("model.onnx", "model.int8.onnx", "model.int8.FAILED.onnx"):
        assert any(line.split()[:1] == [name] for line in lines), buf.getvalue()
    header = next(line for line in lines if "agree" in line)
    assert header.split() == ["file", "MB", "prec", "agree", "Δlogit", "Δprob", "top-1", "torch", "gate"]


def test_evaluate_closing_json_survives_a_pipe(tiny_run: Path, tmp_path: Path) -> None:
    mgc = Path(sys.executable).with_name("mgc-edge")
    cmd = (
        f"{shlex.quote(str(mgc))} evaluate {shlex.quote(str(tiny_run))} --device cpu --workers 0 "
        f"--json {shlex.quote(str(tmp_path / 'e.json'))} | tail -n 1 | {shlex.quote(sys.executable)} -m json.tool"
    )
    proc = subprocess.run(
        cmd,
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = json.loads(proc.stdout)
    assert set(line) == {"top1", "top5", "balanced_accuracy", "macro_f1"}


def test_webcam_per_source_table_is_whole_at_80_columns() -> None:
    """Four cameras, one of them lost, an "ended by" column: headers whole, each source's short name whole
    (folded where long, never cut), and the full URL nowhere in the table (it is in the JSONL)."""
    from mgc_edge.cli.terminal import print_summary
    from mgc_edge.runtime.live.feeds import SourceSummary
    from mgc_edge.runtime.live.loop import LoopSummary

    short = [
        "door",
        "127.0.0.1:18081/cam/1.mjpg",
        "camera-in-the-long-corridor.local:554/Streaming/101",
        "yard",
    ]
    sources = tuple(
        SourceSummary(
            index=i, name=f"rtsp://admin:***@{name}", frames_read=45000, classified=44000, dropped=0, skipped=35,
            reconnects=12, fps=24.9, capture_fps=25.0, latency_ms=(22.0, 24.0),
            ended_by="stream lost" if i == 2 else "interrupted", error=None, short_name=name,
        )
        for i, name in enumerate(short)
    )  # fmt: skip
    summary = LoopSummary(
        frames_read=180000, classified=176000, dropped=0, skipped=140, reconnects=48, seconds=1800.0, fps=97.8,
        capture_fps=100.0, stages={"end_to_end": (22.0, 24.0)}, provider="CPUExecutionProvider",
        source="4 sources", ended_by="interrupted", sources=sources, batches=50000,
    )  # fmt: skip
    console, buf = narrow()
    print_summary(summary, console)
    text = buf.getvalue()
    lines = text.splitlines()
    table = lines[
        lines.index(next(x for x in lines if x.startswith("per source"))) : -1
    ]  # the sentence: one line
    assert max(len(line) for line in table) <= 80 and "…" not in text
    header = next(line for line in lines if "classified" in line and "source" in line)
    assert header.split() == [
        "#", "source", "classified", "dropped", "skipped", "reconnects", "fps", "e2e", "ms", "ended", "by"
    ]  # fmt: skip
    start = lines.index(header) + 1
    rows = lines[start : start + 12]
    names: dict[str, str] = {}  # the source column, its folded lines joined
    index = ""
    column = header.index("source")
    for line in rows:
        if not line.strip() or "frames read" in line:
            break
        index = line[:column].strip() or index
        names[index] = names.get(index, "") + line[column:].split()[0]
    assert list(names.values()) == short
    assert "admin" not in text
