"""The CLI end to end on tiny data: thin commands, one-sentence errors, non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_tree
from typer.testing import CliRunner

from mgc_edge.cli import app

runner = CliRunner()
FAST = [
    "--arch",
    "resnet18",
    "--size",
    "32",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--device",
    "cpu",
]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return result.output


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "evaluate", "synth"):
        assert command in result.output


def test_train_evaluate_and_repeat_from_config(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "my data", {"1": 6, "2": 6, "10": 6})
    run = tmp_path / "run one"
    result = invoke("train", data, "--run-dir", run, *FAST)
    assert result.exit_code == 0, result.output
    assert str(run) in result.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["arch"] == "resnet18" and cfg["preprocess"]["size"] == [32, 32]

    result = invoke("evaluate", run, "--split", "val", "--device", "cpu", "--workers", "0")
    assert result.exit_code == 0, result.output
    report = json.loads((run / "eval-val.json").read_text())
    assert report["source"].startswith("val split") and "baseline" in report

    result = invoke("evaluate", run, "--data", data, "--device", "cpu", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "eval-data.json").read_text())["n"] == 36

    again = tmp_path / "run two"
    result = invoke("train", "--config", run / "config.json", "--run-dir", again, "--epochs", "2")
    assert result.exit_code == 0, result.output
    repeated = json.loads((again / "config.json").read_text())
    assert repeated["epochs"] == 2 and repeated["arch"] == "resnet18" and repeated["data"] == cfg["data"]
    assert (again / "split.csv").read_text() == (run / "split.csv").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "{tmp}/missing", *FAST], "does not exist"),
        (["train", "{tmp}/data", "--run-dir", "{tmp}/existing", *FAST], "already exists"),
        (["train", "--resume", "--run-dir", "{tmp}/nope"], "does not exist"),
        (["train", "{tmp}/data", "--size", "abc"], "--size"),
        (["train", "{tmp}/data", "--arch", "vgg99", *FAST[2:]], "Unknown arch"),
        (["evaluate", "{tmp}/nope"], "does not exist"),
        (["evaluate", "{tmp}/existing/junk.pt"], "not a readable checkpoint"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    make_tree(tmp_path / "data", {"a": 2, "b": 2})
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "junk.pt").write_bytes(b"junk")
    result = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert message in one_error_line(result)
    assert (tmp_path / "existing" / "junk.pt").read_bytes() == b"junk"  # nothing lost


def test_python_m_entry_point_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mgc_edge", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("mgc-edge ")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    """torchrun with two gloo processes: one run dir, written once, trained on both shards."""
    data = make_tree(tmp_path / "data", {"a": 8, "b": 8})
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mgc_edge",
        "train",
        str(data),
        "--run-dir",
        str(run),
        *FAST[:-2],
        "--device",
        "cpu",
        "--epochs",
        "2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert report["world_size"] == 2
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    assert proc.stderr.count("Run saved in") == 1  # rank 0 alone reports and writes
