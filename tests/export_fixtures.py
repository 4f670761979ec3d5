"""Session fixtures for the export / verify tests: a trained run exported in every precision, and a cheap run.

Loaded with `pytest_plugins = ["export_fixtures"]` (never imported directly), so that each fixture is computed
once per session, whichever module asks first. `tiny_run` (alexnet_bn trained on the synthetic data) and
`synth_data` come from conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def alexnet_export(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Any:
    """tiny_run (alexnet_bn, the default arch) exported in all three precisions, each through its parity
    gate, into a folder of its own (the run directory stays as training left it).

    tiny_run barely trains (it answers the majority class), so its gates prove the plumbing; the gates'
    power to tell a faithful model from a wrong one is tested on `resnet_run`."""
    from mgc_edge.export.onnx_export import ExportOptions, export_run

    out = tmp_path_factory.mktemp("alexnet_export")
    return export_run(tiny_run, ExportOptions(precisions=("all",), out=out, calib_images=64))


@pytest.fixture(scope="session")
def resnet_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path) -> Path:
    """resnet18 trained until it fits its training split (about 30 s on two cores).

    What matters for parity is a model whose answers depend on the image, with clear margins: then a
    wrong weight or a wrong preprocessing changes many answers, and a faithful int8 copy changes none.
    A model that has memorised its training frames is exactly that, also on unseen test frames."""
    from mgc_edge.config import PreprocessSpec, TrainConfig
    from mgc_edge.train.loop import fit

    cfg = TrainConfig(
        data=str(synth_data),
        run_dir=str(tmp_path_factory.mktemp("runs") / "resnet18"),
        arch="resnet18",
        epochs=10,
        batch_size=32,
        lr=0.05,
        augment=False,
        cache=False,  # the decode-every-epoch path: this fixture's margins were measured on it
        preprocess=PreprocessSpec(size=(64, 64)),
        workers=0,
        device="cpu",
    )
    return fit(cfg).run_dir


@pytest.fixture(scope="session")
def resnet_export(tmp_path_factory: pytest.TempPathFactory, resnet_run: Path) -> Any:
    """resnet_run exported in all three precisions, each through its parity gate."""
    from mgc_edge.export.onnx_export import ExportOptions, export_run

    out = tmp_path_factory.mktemp("resnet_export")
    return export_run(resnet_run, ExportOptions(precisions=("all",), out=out))


@pytest.fixture(scope="session")
def openvino() -> Any:
    """The `openvino` module (the dev extra installs it). Skipped with a reason where it cannot be imported,
    except in CI, where that means a broken install and fails."""
    try:
        import openvino
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("OpenVINO is not installed here (pip install -e '.[dev]' brings it)")
    return openvino
