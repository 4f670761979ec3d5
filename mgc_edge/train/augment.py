"""Augmentation and normalisation of whole uint8 batches on the training device (the GPU when training on
CUDA, the same code on the CPU).

The draws follow `data.dataset.Augment`, the per-image augmentation of the decode path: a crop of 0.8-1.0
of the area with an aspect change of 0.8-1.25, a horizontal flip, a contrast gain and a brightness bias
clipped to [0, 255]. The crop and the resize to the model size are one bilinear resampling per image
(`grid_sample`, half-pixel centres as OpenCV's INTER_LINEAR). The photometric jitter comes after the
resampling (a pointwise affine map commutes with it, up to the clipping), so it touches the model's pixels
only. `normalize_uint8` is the evaluation path: bit-identical to `preprocess.normalize`, so a cached
evaluation batch equals what the runtime computes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.dataset import Augment


@dataclass(frozen=True)
class BatchDraw:
    """One batch's random draws, each a tensor of shape [B] on the batch's device; boxes in (sub-)pixels of
    the input images."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor  # bool
    gain: torch.Tensor
    bias: torch.Tensor  # in pixel values (0-255 scale)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def draw(
    augment: Augment, n: int, size: tuple[int, int], g: torch.Generator, device: torch.device
) -> BatchDraw:
    """`n` draws for images of `size` (H, W), distributed as `Augment.draw` draws them one image at a time."""
    h, w = size
    area = _uniform(n, *augment.crop_scale, g, device)
    ratio = torch.exp(
        _uniform(n, math.log(augment.crop_ratio[0]), math.log(augment.crop_ratio[1]), g, device)
    )
    # Continuous boxes: the limit of Augment's integer boxes on the full-resolution frame, which a cache
    # image a few times smaller would otherwise quantise coarsely (grid_sample takes sub-pixel boxes).
    ch = (h * torch.sqrt(area / ratio)).clamp(1, h)
    cw = (w * torch.sqrt(area * ratio)).clamp(1, w)
    top = torch.rand(n, generator=g, device=device) * (h - ch)
    left = torch.rand(n, generator=g, device=device) * (w - cw)
    flip_u = torch.rand(n, generator=g, device=device)
    flip = flip_u < 0.5 if augment.hflip else torch.zeros(n, dtype=torch.bool, device=device)
    gain = 1.0 + _uniform(n, -augment.contrast, augment.contrast, g, device)
    bias = 255.0 * _uniform(n, -augment.brightness, augment.brightness, g, device)
    return BatchDraw(top, left, ch, cw, flip, gain, bias)


def crop_resize(batch: torch.Tensor, d: BatchDraw, out_size: tuple[int, int]) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, oh, ow]: each image's crop box resized (bilinear) to `out_size`,
    mirrored where `d.flip`; values stay on the 0-255 scale, channels in the input's order."""
    b, h, w, _ = batch.shape
    oh, ow = out_size
    x = batch.permute(0, 3, 1, 2).float()
    # The affine map from output to input in grid_sample's [-1, 1] coordinates (align_corners=False), so that
    # output pixel centre j samples the crop at left + (j + 0.5) * width / ow - 0.5, exactly as cv2.resize.
    sx = d.width / w * torch.where(d.flip, -1.0, 1.0)
    sy = d.height / h
    tx = (2 * d.left + d.width) / w - 1
    ty = (2 * d.top + d.height) / h - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta, [b, 3, oh, ow], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def photometric(x: torch.Tensor, d: BatchDraw) -> torch.Tensor:
    """x * gain + bias per image, clipped to [0, 255] (as the decode path's lookup table clips)."""
    return x.mul_(d.gain.view(-1, 1, 1, 1)).add_(d.bias.view(-1, 1, 1, 1)).clamp_(0.0, 255.0)


@functools.lru_cache(maxsize=16)
def _constants(spec: PreprocessSpec, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # The very float32 constants preprocess.normalize builds, so that the results are the same bits.
    scale = np.array([1.0 / (255.0 * s) for s in spec.std], np.float32).reshape(1, 3, 1, 1)
    shift = np.array([m / s for m, s in zip(spec.mean, spec.std)], np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy(scale).to(device), torch.from_numpy(shift).to(device)


def model_order(batch: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """BGR [B, H, W, 3] -> the channel order the model sees (done on uint8: a quarter of the bytes)."""
    return batch.flip(-1) if spec.color == "rgb" else batch


def scale_shift(x: torch.Tensor, spec: PreprocessSpec, channels_last: bool = False) -> torch.Tensor:
    """float32 [B, 3, H, W] on the 0-255 scale, already in model order -> (v/255 - mean)/std as one multiply
    and one subtract: the two roundings, in the order, that preprocess.normalize uses."""
    scale, shift = _constants(spec, x.device)
    out = x.mul(scale)
    out.sub_(shift)
    return out.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def normalize_uint8(batch: torch.Tensor, spec: PreprocessSpec, channels_last: bool = False) -> torch.Tensor:
    """uint8 BGR [B, H, W, 3] at spec.size -> float32 [B, 3, H, W], bit-identical to preprocess.normalize."""
    if batch.dtype != torch.uint8 or batch.ndim != 4 or tuple(batch.shape[1:]) != (*spec.size, 3):
        raise ValueError(
            f"normalize_uint8 needs uint8 [B, {spec.size[0]}, {spec.size[1]}, 3], got {batch.shape}"
        )
    return scale_shift(model_order(batch, spec).permute(0, 3, 1, 2).float(), spec, channels_last)


@dataclass(frozen=True)
class BatchAugment:
    """Random crop + resize to the model size, flip and photometric jitter of a uint8 batch, then the
    shared normalisation; all on the batch's device."""

    augment: Augment
    spec: PreprocessSpec  # the model input (spec.size) and its normalisation

    def __call__(self, batch: torch.Tensor, g: torch.Generator, channels_last: bool = False) -> torch.Tensor:
        """uint8 BGR [B, H, W, 3] (any H, W: the cache's margin size) -> normalised float32 [B, 3, *spec.size]."""
        d = draw(self.augment, batch.shape[0], (batch.shape[1], batch.shape[2]), g, batch.device)
        x = photometric(crop_resize(model_order(batch, self.spec), d, self.spec.size), d)
        return scale_shift(x, self.spec, channels_last)
