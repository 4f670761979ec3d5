"""Reading image files as BGR uint8; numpy + OpenCV only, shared by training and the runtime."""

from __future__ import annotations

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
