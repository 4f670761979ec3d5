"""Shared fixtures: tiny synthetic data made on the fly (nothing is downloaded) and a tiny trained run."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

# Two cores: keep torch from oversubscribing them when tests run beside data-loading work.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", image)
    assert ok
    buf.tofile(str(path))
    return path


def make_tree(root: Path, classes: dict[str, int], frames: int = 2, size: tuple[int, int] = (24, 32)) -> Path:
    """root/<class>/<clip>.<frame>.png with `n` clips per class; pixel colour encodes the class."""
    rng = np.random.default_rng(0)
    clip = 100
    for ci, (name, clips) in enumerate(classes.items()):
        for _ in range(clips):
            clip += 1
            for f in range(1, frames + 1):
                img = np.full((*size, 3), 20 * ci, np.uint8) + rng.integers(0, 10, (*size, 3), dtype=np.uint8)
                write_image(root / name / f"{clip}.{f}.png", img)
    return root


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic iMiGUE-shaped dataset (32 classes); returns the folder-per-class root."""
    from mgc_edge.data.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("synth") / "data"
    return make_dataset(out, SynthConfig(scale=0.01, min_clips=3, size=(90, 160), seed=0, video_seconds=2.0)).image_dir


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
