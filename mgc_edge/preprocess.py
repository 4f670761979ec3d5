"""THE preprocessing: BGR uint8 frames -> float32 NCHW. Shared by training, export parity and the runtime.

numpy + OpenCV only: the edge runtime imports this module and must never need torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mgc_edge.config import PreprocessSpec
from mgc_edge.errors import UserError

_INTERP = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
}


class PreprocessError(UserError):
    """A frame cannot be preprocessed (wrong dtype or shape); the message is one sentence."""


def ensure_bgr(image: np.ndarray) -> np.ndarray:
    """Return a 3-channel BGR uint8 view of a grayscale, BGR or BGRA uint8 image."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = getattr(image, "dtype", type(image).__name__)
        raise PreprocessError(f"Frames must be uint8 numpy arrays, got {kind}.")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise PreprocessError(f"Frames must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}.")


def resize_frame(frame_bgr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Resize one BGR uint8 frame to spec.size by the spec's policy; the output stays uint8 BGR."""
    frame = ensure_bgr(frame_bgr)
    out_h, out_w = spec.size
    in_h, in_w = frame.shape[:2]
    if in_h == 0 or in_w == 0:
        raise PreprocessError("Frames must not be empty.")
    interp = _INTERP[spec.interpolation]
    if spec.resize == "stretch" or (in_h, in_w) == (out_h, out_w):
        if (in_h, in_w) == (out_h, out_w):
            return frame
        return cv2.resize(frame, (out_w, out_h), interpolation=interp)
    if spec.resize == "letterbox":
        scale = min(out_h / in_h, out_w / in_w)
        new_h, new_w = max(1, round(in_h * scale)), max(1, round(in_w * scale))
        resized = cv2.resize(frame, (new_w, new_h), interpolation=interp)
        # Pad with the mean colour so the padding normalises to about zero.
        fill = [round(255 * m) for m in spec.mean]
        fill = fill[::-1] if spec.color == "rgb" else fill  # the frame is still BGR here
        canvas = np.empty((out_h, out_w, 3), np.uint8)
        canvas[:] = fill
        top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = resized
        return canvas
    # center_crop: scale to cover, then cut the middle.
    scale = max(out_h / in_h, out_w / in_w)
    new_h, new_w = max(out_h, round(in_h * scale)), max(out_w, round(in_w * scale))
    resized = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return resized[top : top + out_h, left : left + out_w]


def normalize(batch_bgr: np.ndarray, spec: PreprocessSpec, out: np.ndarray | None = None) -> np.ndarray:
    """[N, H, W, 3] BGR uint8 already at spec.size -> float32 [N, 3, H, W], colour-ordered and normalised;
    written into `out` (a C-contiguous float32 [N, 3, H, W], e.g. page-locked memory) when given."""
    if batch_bgr.ndim != 4 or batch_bgr.shape[1:] != (*spec.size, 3) or batch_bgr.dtype != np.uint8:
        raise PreprocessError(
            f"normalize() needs uint8 [N, {spec.size[0]}, {spec.size[1]}, 3], got {batch_bgr.dtype} "
            f"{tuple(batch_bgr.shape)}."
        )
    order = [2, 1, 0] if spec.color == "rgb" else [0, 1, 2]
    # x = (v / 255 - mean) / std, folded into one multiply-add per value; the order is fixed so that
    # every caller gets bit-identical results.
    scale = np.array([1.0 / (255.0 * s) for s in spec.std], np.float32).reshape(1, 3, 1, 1)
    shift = np.array([m / s for m, s in zip(spec.mean, spec.std)], np.float32).reshape(1, 3, 1, 1)
    planes = batch_bgr[..., order].transpose(0, 3, 1, 2)
    if out is None:
        out = np.ascontiguousarray(planes).astype(np.float32)
    else:
        if out.dtype != np.float32 or out.shape != planes.shape or not out.flags.c_contiguous:
            raise PreprocessError(
                f"normalize() writes into a C-contiguous float32 {planes.shape}, got {out.dtype} {out.shape}."
            )
        np.copyto(out, planes, casting="unsafe")
    out *= scale
    out -= shift
    return out


def preprocess(
    frames_bgr: np.ndarray | Sequence[np.ndarray], spec: PreprocessSpec, out: np.ndarray | None = None
) -> np.ndarray:
    """One BGR uint8 frame (HxWxC) or a sequence / NHWC array of them -> float32 [N, 3, H, W] (into `out`
    when given, see normalize)."""
    if isinstance(frames_bgr, np.ndarray) and frames_bgr.ndim in (2, 3):
        frames: Sequence[np.ndarray] = [frames_bgr]
    else:
        frames = list(frames_bgr)
    if not frames:
        raise PreprocessError("preprocess() needs at least one frame.")
    batch = np.stack([resize_frame(f, spec) for f in frames])
    return normalize(batch, spec, out)
