"""Shared fixtures: tiny synthetic data made on the fly (nothing is downloaded) and a tiny trained run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two cores: keep torch from oversubscribing them when tests run beside data-loading work.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic iMiGUE-shaped dataset (32 classes); returns the folder-per-class root."""
    from mgc_edge.data.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("synth") / "data"
    return make_dataset(
        out, SynthConfig(scale=0.01, min_clips=3, size=(90, 160), seed=0, video_seconds=2.0)
    ).image_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path) -> Path:
    """A genuine run directory: alexnet_bn trained for two short epochs at 64x64 on the CPU."""
    from mgc_edge.config import PreprocessSpec, TrainConfig
    from mgc_edge.train.loop import fit

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = TrainConfig(
        data=str(synth_data),
        run_dir=str(run_dir),
        epochs=2,
        batch_size=32,
        preprocess=PreprocessSpec(size=(64, 64)),
        workers=0,
        device="cpu",
        class_names="imigue",
    )
    return fit(cfg).run_dir
