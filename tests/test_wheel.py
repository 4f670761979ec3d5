"""The edge box's install as the README gives it: `make wheel`, the wheel installed into a fresh venv (no torch
comes with it), `mgc-edge verify MODEL` alone, then a video classified by `annotate`."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_helpers import tiny_onnx

import mgc_edge

pytestmark = pytest.mark.slow  # a wheel built and installed: seconds to a minute, still run by `make test`

ROOT = Path(__file__).resolve().parents[1]
NETWORK_TROUBLE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")


def run(*args: object, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("DISPLAY", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def skip_on_network_trouble(proc: subprocess.CompletedProcess) -> None:
    if proc.returncode != 0 and any(t in proc.stderr for t in NETWORK_TROUBLE):
        pytest.skip(f"pip cannot reach the package registry here: {proc.stderr.strip().splitlines()[-1]}")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make wheel` in a copy of the checkout (so that building leaves nothing in the working tree), with this
    interpreter's pip."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed here; the wheel is built by `make wheel`")
    src = tmp_path_factory.mktemp("wheel") / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "Makefile"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "mgc_edge", src / "mgc_edge", ignore=shutil.ignore_patterns("__pycache__"))
    proc = run("make", "wheel", f"PY={sys.executable}", cwd=src)
    skip_on_network_trouble(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = sorted((src / "dist").glob("*.whl"))
    assert [w.name for w in built] == [f"mgc_edge-{mgc_edge.__version__}-py3-none-any.whl"]
    return built[0]


def test_the_wheel_needs_no_torch_and_carries_the_page(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.MULTILINE)
    base = [r for r in requires if "extra ==" not in r]
    assert base and not [r for r in base if re.match(r"(torch|torchvision|onnx)\b", r)], base
    # Package data an edge box needs: the live view's page and the iMiGUE names.
    assert any(n.startswith("mgc_edge/runtime/sinks/web/static/") and n.endswith(".html") for n in names), (
        names
    )
    assert any(n.startswith("mgc_edge/resources/") and n.endswith(".csv") for n in names), names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]


def test_the_wheel_in_a_fresh_venv_classifies_a_video_without_torch(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python, mgc = env / "bin" / "python", env / "bin" / "mgc-edge"
    proc = run(python, "-m", "pip", "install", "-q", wheel)
    skip_on_network_trouble(proc)
    assert proc.returncode == 0, proc.stderr
    proc = run(python, "-c", "import torch")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, "torch came with the wheel"

    model = tiny_onnx(tmp_path / "model.onnx")  # made here, where onnx is installed
    video = tmp_path / "session.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for i in range(12):
        writer.write(np.full((24, 32, 3), 20 * i, np.uint8))
    writer.release()

    proc = run(mgc, "verify", model)  # alone, as on the edge box: metadata, graph, output shape
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    out = tmp_path / "annotations"
    proc = run(mgc, "annotate", model, video, "--out", out, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["frames"] == 12, result
    with open(out / "session.frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frame"]) for r in rows] == list(range(12))
    assert {r["label"] for r in rows} <= {"1", "2", "3"}
