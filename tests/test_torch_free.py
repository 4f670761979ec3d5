"""The edge runtime never imports torch: each command and module runs in a fresh process in which any
attempt to import torch or torchvision fails, and afterwards neither is in sys.modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import write_image
from onnx_helpers import tiny_onnx

import mgc_edge

# Runs in the child: a meta-path finder that refuses torch (so even a lazy import inside a function would
# fail loudly) as a box without it does (ModuleNotFoundError naming the module), then the code under test,
# then a report of what got imported.
_CHILD = """
import json, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"torch-free code imported {name}", name=name)
sys.meta_path.insert(0, NoTorch())
code, error = 0, None
try:
    exec(sys.argv[1])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
except Exception as exc:
    code, error = 1, f"{type(exc).__name__}: {exc}"
torch = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
print(json.dumps({"code": code, "error": error, "torch": torch}))
"""


def run_child(code: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, code, *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["stderr"] = proc.stderr
    return report


def cli(*args: object) -> dict:
    argv = ["mgc-edge", *map(str, args)]
    return run_child(f"from mgc_edge.cli import app; sys.argv = {argv!r}; app()")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torchfree")
    model = tiny_onnx(root / "m.onnx")
    video = root / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 24))
    for i in range(6):
        writer.write(np.full((24, 32, 3), 30 * i, np.uint8))
    writer.release()
    for i in range(3):
        write_image(root / "images" / f"1.{i}.png", np.full((20, 20, 3), 60 * i, np.uint8))
    return {"root": root, "model": model, "video": video, "images": root / "images"}


def _runtime_modules() -> list[str]:
    """Every module of the runtime package, found on disk: a module added or moved is checked too."""
    root = Path(mgc_edge.__file__).parent
    found = []
    for path in sorted((root / "runtime").rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.mark.parametrize(
    "module",
    [
        *_runtime_modules(),
        "mgc_edge.cli.annotate",
        "mgc_edge.preprocess",
        "mgc_edge.metadata",
        "mgc_edge.metrics",
        "mgc_edge.cli",
        "mgc_edge.cli.runtime",
        "mgc_edge.export.verify",  # the check of a model alone, and with a stored reference
    ],
)
def test_runtime_modules_import_without_torch(module: str) -> None:
    report = run_child(f"import importlib; importlib.import_module({module!r})")
    assert (report["code"], report["error"], report["torch"]) == (0, None, []), report["stderr"]


def test_help_is_torch_free() -> None:
    report = cli("--help")
    assert (report["code"], report["error"], report["torch"]) == (0, None, []), report["stderr"]


def test_webcam_runs_without_torch(files: dict[str, Path]) -> None:
    out = files["root"] / "w.jsonl"
    report = cli(
        "webcam", files["model"], "--source", files["video"], "--display", "off", "--jsonl", out, "--force"
    )
    assert (report["code"], report["error"], report["torch"]) == (0, None, []), report["stderr"]
    assert len(out.read_text().splitlines()) == 6


def test_predict_runs_without_torch(files: dict[str, Path]) -> None:
    out = files["root"] / "p.csv"
    report = cli("predict", files["model"], files["images"], "-o", out, "--force", "--topk", "2", "--clip")
    assert (report["code"], report["error"], report["torch"]) == (0, None, []), report["stderr"]
    assert out.read_text().splitlines()[0].startswith("filename,class,top1")


@pytest.mark.parametrize("runtime", ["openvino", "opencv"])
def test_verify_in_another_runtime_runs_without_torch(files: dict[str, Path], runtime: str) -> None:
    if runtime == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed here (the dev extra brings it)")
    out = files["root"] / f"{runtime}.verify.json"
    report = cli("verify", files["model"], "--runtime", runtime, "--batch-size", "3", "--json", out)
    if runtime == "opencv" and int(cv2.__version__.split(".")[0]) < 5:  # the base install's floor allows 4
        said = " ".join(report["stderr"].split())  # the console wraps at 80 columns
        assert (report["code"], report["torch"]) == (2, []) and "needs OpenCV 5 or later" in said, report
        return
    assert (report["code"], report["error"], report["torch"]) == (0, None, []), report["stderr"]
    assert json.loads(out.read_text())["runtime"] == runtime


def test_annotate_runs_without_torch(files: dict[str, Path]) -> None:
    out = files["root"] / "annotations"
    truth = files["root"] / "v.csv"
    truth.write_text("frame,label\n" + "".join(f"{i},{1 + i // 3}\n" for i in range(6)))
    report = cli(
        "annotate", files["model"], files["video"], "--out", out, "--truth", truth, "--plot", "--topk", "2"
    )
    assert (report["code"], report["error"], report["torch"]) == (0, None, []), report["stderr"]
    assert {p.name for p in out.iterdir()} == {
        "v.frames.csv", "v.segments.csv", "v.eaf", "v.timeline.png", "v.mgc.json", "summary.json"
    }  # fmt: skip


def test_the_guard_itself_catches_a_torch_import() -> None:
    report = run_child("import mgc_edge.train.loop")  # training code does need torch
    assert report["error"] == "ModuleNotFoundError: torch-free code imported torch" and report["torch"] == []
