"""A frame of the live view as a JPEG: scaled down to the config's width, at its quality. OpenCV only."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from mgc_edge.runtime.sinks.web.config import ServeConfig

log = logging.getLogger(__name__)


def encode_jpeg(frame: np.ndarray | None, config: ServeConfig) -> bytes | None:
    """`frame` (BGR) as JPEG bytes, no wider than `config.max_width`; None where it cannot be encoded."""
    try:
        height, width = frame.shape[:2]  # type: ignore[union-attr]
        if width > config.max_width:
            size = (config.max_width, max(1, round(height * config.max_width / width)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
    except (AttributeError, TypeError, ValueError, cv2.error) as exc:
        log.debug("Cannot encode a frame for the live view: %s", exc)
        return None
    return buf.tobytes() if ok else None
