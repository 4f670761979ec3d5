"""Data the tests make on the fly (nothing is downloaded); importable as `helpers` from any test module
(pyproject's `pythonpath = ["tests"]`), with `pytest` and `make test` alike."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np


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


def served_url(proc: subprocess.Popen[str], banner: str, lines: list[str], timeout: float = 60) -> str:
    """The loopback URL `proc` prints after `banner` (e.g. "Live view:") on its stderr, which a thread keeps
    reading into `lines` (a child that fills its pipe would stall); kills it and fails with what it said if
    none comes within `timeout` seconds."""
    found, urls = threading.Event(), []
    pattern = re.compile(re.escape(banner) + r" (http://127\.0\.0\.1:\d+/)")

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            match = pattern.search(line)
            if match and not found.is_set():
                urls.append(match.group(1))
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        proc.kill()
        raise AssertionError(f"no {banner} URL was printed:\n" + "".join(lines))
    return urls[0]
