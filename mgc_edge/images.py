"""Reading image files as BGR uint8; numpy + OpenCV only, shared by training and the runtime."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mgc_edge.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageReadError(UserError):
    """An image file is missing, corrupt or not an image; the message is one sentence."""


def is_image_name(path: str | Path) -> bool:
    """True for a visible file whose extension is one we read."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path, reduced: bool = False) -> np.ndarray:
    """Decode an image file to BGR uint8 (grayscale, RGBA and 16-bit images are converted).

    `np.fromfile` + `imdecode` instead of `imread` so that non-ASCII paths work on every OS;
    `reduced` decodes at 1/4 size, enough to prove a file is a readable image at a fraction of the cost.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ImageReadError(f"Cannot read image {path}: {exc.strerror or exc}.") from None
    flags = cv2.IMREAD_REDUCED_COLOR_4 if reduced else cv2.IMREAD_COLOR
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ImageReadError(f"{path} is not a readable image (corrupt or another kind of file).")
    return image


@dataclass(frozen=True)
class ImageBatch:
    """Decoded images in input order, with unreadable files left out and reported."""

    images: list[np.ndarray]  # BGR uint8
    kept: list[int]  # index into the input paths of each image
    failed: list[tuple[Path, str]]  # (path, why) of each file that could not be read

    def __len__(self) -> int:
        return len(self.images)


def read_images(
    paths: Sequence[str | Path], skip_unreadable: bool = False, reduced: bool = False, threads: int = 0
) -> ImageBatch:
    """The one way to read a batch of image files: decoded in threads (OpenCV releases the GIL).

    An unreadable file raises ImageReadError, or with `skip_unreadable` is left out and listed in `failed`.
    """
    paths = [Path(p) for p in paths]

    def one(path: Path) -> np.ndarray | str:
        try:
            return read_image(path, reduced=reduced)
        except ImageReadError as exc:
            if not skip_unreadable:
                raise
            return str(exc)

    workers = threads or min(8, (os.cpu_count() or 1) + 2)
    if len(paths) <= 1 or workers <= 1:
        results = [one(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, paths))
    images, kept, failed = [], [], []
    for i, (path, result) in enumerate(zip(paths, results)):
        if isinstance(result, str):
            failed.append((path, result))
        else:
            images.append(result)
            kept.append(i)
    return ImageBatch(images, kept, failed)
