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


def make_cue_tree(root: Path, clips: dict[str, int], frames: int = 2, seed: int = 0) -> Path:
    """Clip-grouped data whose class is the HEIGHT at which a disc sits (left/right is free, so horizontal
    flips keep the label), on a random background per clip: easy for a few CPU epochs, impossible from colour."""
    rng = np.random.default_rng(seed)
    heights = [0.2, 0.4, 0.6, 0.8]
    clip = 1000
    for ci, (name, n) in enumerate(clips.items()):
        for _ in range(n):
            clip += 1
            bg = rng.integers(0, 256, 3)
            fg = (bg + rng.integers(90, 166, 3)) % 256  # differs from the background in every channel
            cy = heights[ci % 4]
            for f in range(1, frames + 1):
                img = np.empty((90, 160, 3), np.uint8)
                img[:] = bg
                y = int((cy + rng.uniform(-0.04, 0.04)) * 90)
                x = int(rng.uniform(0.2, 0.8) * 160)
                cv2.circle(img, (x, y), 10, [int(v) for v in fg], -1)
                noise = rng.integers(-12, 13, img.shape)
                write_image(root / name / f"{clip}.{f}.jpg", np.clip(img + noise, 0, 255).astype(np.uint8))
    return root


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
