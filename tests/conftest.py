"""Shared fixtures: tiny synthetic data made on the fly (nothing is downloaded) and a tiny trained run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Two cores: keep torch from oversubscribing them when tests run beside data-loading work.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Training caches of the tests go to a temporary folder, never into the user's ~/.cache/mgc-edge.
_CACHE = tempfile.mkdtemp(prefix="mgc-edge-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE


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


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process without native teardown, keeping pytest's exit status.

    After every test has passed, a combined run of the runtime tests (OpenCV video capture, FFmpeg, ONNX
    Runtime sessions, a browser driver) sometimes aborts in a C++ static destructor at interpreter teardown
    ("terminate called without an active exception", exit 134), although no thread of ours is left. The
    CLI's own processes exit cleanly (tests check their exit codes); until the native culprit is found, the
    test process does not run that teardown. Runtime threads that tests left running are named first."""
    import sys
    import threading
    import time

    deadline = time.monotonic() + 5.0
    for thread in threading.enumerate():
        if thread.name.startswith("mgc-") and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in threading.enumerate() if t.name.startswith("mgc-") and t.is_alive()]
    if left:
        sys.stderr.write(f"note: runtime threads still running at exit: {', '.join(left)}\n")
    shutil.rmtree(_CACHE, ignore_errors=True)  # os._exit runs no atexit handler
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(getattr(config, "_mgc_exitstatus", 0)))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._mgc_exitstatus = int(exitstatus)  # type: ignore[attr-defined]
