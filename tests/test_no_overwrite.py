"""Every command run twice over the same outputs: the second run refuses in one sentence naming the file and
--force (exit 2) and changes nothing, byte or timestamp; --force (or --resume, or annotate's keeping what is
up to date, where that is the rule) then does its work. A file the tool did not write is never replaced
without --force, and a folder it did not write not even with it.

One trained run (resnet18 at 32x32, one batch an epoch) and its fp32 export serve every command; the data is
a dozen tiny images and a video of six frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers import make_tree
from typer.testing import CliRunner

from mgc_edge.cli import app

runner = CliRunner()
TRAIN = [
    "--arch", "resnet18", "--size", "32", "--epochs", "1", "--batch-size", "8", "--max-train-batches", "1",
    "--workers", "0", "--device", "cpu", "--no-cache",
]  # fmt: skip
Snapshot = dict[Path, tuple[bytes, int, int]]


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: object) -> Any:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def refused(*args: object, naming: str) -> str:
    """The one error sentence of a refused command, which names `naming` (a file or folder) and --force."""
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    sentence = errors[0]
    assert naming in sentence and "--force" in sentence, sentence
    return sentence


def snapshot(*paths: Path) -> Snapshot:
    """Bytes, modification time and inode of every file under `paths` (a file or a folder): an atomic write
    moves a new inode into place, so a replaced file differs even where bytes and clock agree."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    assert files, paths
    return {f: (f.read_bytes(), f.stat().st_mtime_ns, f.stat().st_ino) for f in files}


def refused_unchanged(*args: object, keep: tuple[Path, ...], naming: str) -> tuple[Snapshot, str]:
    """`refused()`, and every file under `keep` left as it was, byte, timestamp and inode: the snapshot taken
    before, and the sentence."""
    before = snapshot(*keep)
    sentence = refused(*args, naming=naming)
    assert snapshot(*keep) == before
    return before, sentence


def replaced(before: Snapshot) -> bool:
    """Every file of `before` was written again."""
    return all(
        f.exists() and (f.stat().st_ino, f.stat().st_mtime_ns) != (ino, mtime)
        for f, (_, mtime, ino) in before.items()
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("twice")
    make_tree(root / "data", {"1": 4, "2": 4, "3": 4})
    writer = cv2.VideoWriter(str(root / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for i in range(6):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    return root


@pytest.fixture(scope="module")
def run(work: Path) -> Path:
    ok("train", work / "data", "--run-dir", work / "run", *TRAIN)
    return work / "run"


@pytest.fixture(scope="module")
def model(work: Path, run: Path) -> Path:
    out = work / "models" / "m.onnx"
    ok("export", run, "--out", out, "--device", "cpu", "--max-images", "8", "--batch-size", "4")
    return out


def test_synth(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    args = [
        "synth",
        out,
        "--scale",
        "0.001",
        "--min-clips",
        "1",
        "--max-frames",
        "2",
        "--video-seconds",
        "0.5",
    ]
    ok(*args)
    before, _ = refused_unchanged(*args, keep=(out,), naming=str(out))
    ok(*args, "--force")
    assert replaced(before)
    # A folder holding a file synth did not write is not replaced, not even with --force.
    (out / "notes.txt").write_text("mine")
    _, sentence = refused_unchanged(*args, "--force", keep=(out,), naming=str(out))
    assert "not even with --force" in sentence


def test_train(work: Path) -> None:
    run = work / "train-twice"
    args = ["train", work / "data", "--run-dir", run, *TRAIN]
    ok(*args)
    before, sentence = refused_unchanged(*args, keep=(run,), naming=str(run))
    assert "--resume" in sentence
    # --resume is the rule for more epochs; a run that trained all its epochs is not resumed for nothing.
    resume = ["train", "--resume", "--run-dir", run]
    result = invoke(*resume)
    assert result.exit_code == 2 and "has trained all its 1 epochs" in " ".join(result.output.split())
    assert snapshot(run) == before
    ok(*resume, "--epochs", "2")
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    result = invoke(*resume)  # config.json now says 2 epochs, as trained
    assert result.exit_code == 2 and "has trained all its 2 epochs" in " ".join(result.output.split())
    before = snapshot(run)
    ok(*args, "--force")
    assert replaced(before) and json.loads((run / "config.json").read_text())["epochs"] == 1


def test_evaluate(run: Path, tmp_path: Path) -> None:
    args = ["evaluate", run, "--split", "val", "--device", "cpu", "--workers", "0"]
    ok(*args)
    outputs = (run / "eval-val.json", run / "eval-val.confusion.png")
    before, _ = refused_unchanged(*args, keep=outputs, naming="eval-val.json")
    ok(*args, "--force")
    assert replaced(before)

    # A --json file mgc-edge did not write: kept without --force, replaced when the user asks.
    mine = tmp_path / "my.json"
    mine.write_text("{}\n")
    before = snapshot(mine)
    refused(*args, "--json", mine, naming=str(mine))
    assert snapshot(mine) == before and not mine.with_suffix(".confusion.png").exists()
    ok(*args, "--json", mine, "--force")
    assert json.loads(mine.read_text())["source"].startswith("val split")


def test_export(run: Path, model: Path, tmp_path: Path) -> None:
    args = ["export", run, "--out", model, "--device", "cpu", "--max-images", "8", "--batch-size", "4"]
    outputs = (model, model.with_name("m.verify.json"), model.with_name("m.reference.npz"))
    before, _ = refused_unchanged(*args, keep=outputs, naming=str(model))

    # A report left beside a model that is gone is kept too.
    elsewhere = tmp_path / "e.onnx"
    report = tmp_path / "e.verify.json"
    report.write_text("{}\n")
    refused("export", run, "--out", elsewhere, "--device", "cpu", "--max-images", "8", naming=str(report))
    assert report.read_text() == "{}\n" and not elsewhere.exists()

    ok(*args, "--force")
    assert replaced(before)


def test_verify(run: Path, model: Path, tmp_path: Path) -> None:
    # export wrote m.verify.json: verify does not silently replace it.
    report = model.with_name("m.verify.json")
    args = ["verify", model, "--checkpoint", run, "--batch-size", "4", "--max-images", "8"]
    before, _ = refused_unchanged(*args, keep=(report,), naming=str(report))
    ok(*args, "--force")
    assert replaced(before) and json.loads(report.read_text())["passed"]

    mine = tmp_path / "my.json"
    mine.write_text("{}\n")  # echo '{}' > my.json; mgc-edge verify model.onnx --json my.json
    refused_unchanged("verify", model, "--json", mine, keep=(mine,), naming=str(mine))
    ok("verify", model, "--json", mine, "--force")
    assert json.loads(mine.read_text())["checkpoint"] is None


def test_predict(work: Path, model: Path) -> None:
    out = work / "predictions.csv"
    args = ["predict", model, work / "data", "--out", out, "--device", "cpu"]
    ok(*args)
    before, _ = refused_unchanged(*args, keep=(out,), naming=str(out))
    ok(*args, "--force")
    assert replaced(before)


def test_webcam(work: Path, model: Path) -> None:
    jsonl, mp4 = work / "live.jsonl", work / "live.mp4"
    args = ["webcam", model, "--source", work / "v.mp4", "--display", "off", "--device", "cpu"]
    args += ["--jsonl", jsonl, "--save", mp4]
    ok(*args)
    before, _ = refused_unchanged(*args, keep=(jsonl, mp4), naming=str(mp4))
    ok(*args, "--force")
    assert replaced(before)


def test_annotate(work: Path, model: Path) -> None:
    """annotate resumes: a video whose outputs are up to date is kept as it is (its summary.json, the run's
    own account, is written again); --force does it again."""
    out = work / "annotations"
    args = ["annotate", model, work / "v.mp4", "--out", out, "--device", "cpu"]
    ok(*args)
    videos = [out / f"v.{suffix}" for suffix in ("frames.csv", "segments.csv", "eaf")]
    before = snapshot(*videos)
    result = ok(*args)
    assert json.loads(result.stdout.strip().splitlines()[-1])["kept"] == 1
    assert snapshot(*videos) == before
    ok(*args, "--force")
    assert replaced(before)
