"""The edge install: the package with its base dependencies only (no `[train]`: no torch, no onnx) in a
fresh virtual environment runs `predict` and `webcam`, and `train` there says which extra it needs."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import write_image
from onnx_helpers import tiny_onnx

ROOT = Path(__file__).resolve().parents[1]
NETWORK_TROUBLE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")


def bin_path(env: Path, name: str) -> Path:
    return env / ("Scripts" if sys.platform == "win32" else "bin") / name


def run(*args: object, timeout: float = 900, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("DISPLAY", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def this_environment(path: Path) -> Path:
    """The versions this test process runs on, as pip constraints: the edge install gets the same numpy,
    OpenCV, ONNX Runtime, typer and rich as the suite (uv.lock's under `make test`, the newest under
    `make test-latest`), never whatever the registry serves that day."""
    pins = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
    pins.pop("mgc-edge", None)
    path.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    return path


@pytest.fixture(scope="module")
def edge_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install <this repo>` and nothing else, at this environment's versions (pip's
    cache is reused)."""
    root = tmp_path_factory.mktemp("edge")
    src = root / "src"  # a clean copy, so that building leaves nothing in the working tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "mgc_edge", src / "mgc_edge", ignore=shutil.ignore_patterns("__pycache__"))
    env = root / "venv"
    venv.create(env, with_pip=True)
    constraints = this_environment(root / "constraints.txt")
    proc = run(bin_path(env, "python"), "-m", "pip", "install", "-q", "-c", constraints, str(src))
    if proc.returncode != 0 and any(t in proc.stderr for t in NETWORK_TROUBLE):
        pytest.skip(f"pip cannot reach the package registry here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    return env


@pytest.mark.slow
def test_the_base_install_runs_the_edge_commands_without_torch(edge_env: Path, tmp_path: Path) -> None:
    python, mgc = bin_path(edge_env, "python"), bin_path(edge_env, "mgc-edge")
    for missing in ("torch", "torchvision", "onnx"):
        proc = run(python, "-c", f"import {missing}")
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, f"{missing} is installed"

    model = tiny_onnx(tmp_path / "model.onnx")  # made here, where onnx is installed
    images = tmp_path / "images"
    for i in range(4):
        write_image(images / f"{i}.1.png", np.full((20, 30, 3), 50 * i, np.uint8))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for i in range(8):
        writer.write(np.full((24, 32, 3), 25 * i, np.uint8))
    writer.release()

    out = tmp_path / "predictions.csv"
    proc = run(mgc, "predict", model, images, "-o", out, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "filename,class" and len(lines) == 5

    jsonl = tmp_path / "live.jsonl"
    proc = run(
        mgc,
        "webcam",
        model,
        "--source",
        video,
        "--display",
        "off",
        "--jsonl",
        jsonl,
        "--save",
        tmp_path / "a.mp4",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(jsonl.read_text().splitlines()) == 8 and (tmp_path / "a.mp4").stat().st_size > 0

    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    proc = run(mgc, "train", data, "--run-dir", tmp_path / "run")
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    # The advice names commands that work: mgc-edge is not on the package index, so no `mgc-edge[train]`.
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "pip install '.[train]'" in errors[0] and "-py3-none-any.whl[train]'" in errors[0]
    assert "mgc-edge[train]" not in errors[0]
