"""Augmentation and normalisation of whole uint8 batches on the training device (the GPU when training on
CUDA, the same code on the CPU).

The draws follow `data.dataset.Augment`, the per-image augmentation of the decode path: a crop of 0.8-1.0
of the area with an aspect change of 0.8-1.25, a horizontal flip, a contrast gain and a brightness bias
clipped to [0, 255]. The crop and the resize to the model size are one bilinear resampling per image
(`grid_sample`, half-pixel centres as OpenCV's INTER_LINEAR). Contrast, brightness and the normalisation are
one affine map per image and channel (`photometric`), and its clipping (`clip_normalized`) follows the
resampling. Bilinear weights sum to 1, so the affine map commutes with the resampling and may come before
it: on CUDA, where a multiply-add converts uint8 to float as it reads, it rides on that conversion and the
clipping writes the output layout, one read and one write of the model's float batch fewer than jittering
the resampled image; the CPU converts into a temporary first, so there the map goes on the smaller,
resampled image. Both orders give the same values up to float rounding. `normalize_uint8` is the evaluation
path: bit-identical to `preprocess.normalize`, so a cached evaluation batch equals what the runtime computes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
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


UNIFORMS = 7  # uniform draws per image: crop area, aspect, top, left, flip, gain, bias


def uniforms(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """The [n, UNIFORMS] uniform draws of `n` images (one call: an epoch's draws are made at once)."""
    return torch.rand((n, UNIFORMS), generator=g, device=device)


def draw_from(augment: Augment, u: torch.Tensor, size: tuple[int, int]) -> BatchDraw:
    """The draws of images of `size` (H, W) from their uniforms u [n, UNIFORMS], distributed as
    `Augment.draw` draws them one image at a time. Pure arithmetic on `u`: capturable in a CUDA graph."""
    h, w = size
    area = augment.crop_scale[0] + (augment.crop_scale[1] - augment.crop_scale[0]) * u[:, 0]
    lo, hi = math.log(augment.crop_ratio[0]), math.log(augment.crop_ratio[1])
    ratio = torch.exp(lo + (hi - lo) * u[:, 1])
    # Continuous boxes: the limit of Augment's integer boxes on the full-resolution frame, which a cache
    # image a few times smaller would otherwise quantise coarsely (grid_sample takes sub-pixel boxes).
    ch = (h * torch.sqrt(area / ratio)).clamp(1, h)
    cw = (w * torch.sqrt(area * ratio)).clamp(1, w)
    top = u[:, 2] * (h - ch)
    left = u[:, 3] * (w - cw)
    flip = u[:, 4] < 0.5 if augment.hflip else torch.zeros_like(u[:, 4], dtype=torch.bool)
    gain = 1.0 + augment.contrast * (2 * u[:, 5] - 1)
    bias = 255.0 * augment.brightness * (2 * u[:, 6] - 1)
    return BatchDraw(top, left, ch, cw, flip, gain, bias)


def draw(
    augment: Augment, n: int, size: tuple[int, int], g: torch.Generator, device: torch.device
) -> BatchDraw:
    """`n` draws for images of `size` (H, W), distributed as `Augment.draw` draws them one image at a time."""
    return draw_from(augment, uniforms(n, g, device), size)


def _grid(d: BatchDraw, in_size: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
    """grid_sample's sampling grid [B, oh, ow, 2] for each image's crop box (mirrored where d.flip).

    What affine_grid makes of the crop's affine map, written out: the map has no rotation, so x depends on
    the column and y on the row only, and the grid is two broadcasts instead of a batched matrix product
    with an inner size of 3 (the slowest kernel of the whole augmentation on a GPU).
    """
    h, w = in_size
    oh, ow = out_size
    device = d.width.device
    # Output pixel centre j in grid_sample's [-1, 1] coordinates (align_corners=False): (2j + 1) / ow - 1,
    # so that it samples the crop at left + (j + 0.5) * width / ow - 0.5, exactly as cv2.resize.
    base_x = (2 * torch.arange(ow, device=device, dtype=torch.float32) + 1) / ow - 1
    base_y = (2 * torch.arange(oh, device=device, dtype=torch.float32) + 1) / oh - 1
    sx = d.width / w * torch.where(d.flip, -1.0, 1.0)
    gx = sx[:, None] * base_x + ((2 * d.left + d.width) / w - 1)[:, None]  # [B, ow]
    gy = (d.height / h)[:, None] * base_y + ((2 * d.top + d.height) / h - 1)[:, None]  # [B, oh]
    b = gx.shape[0]
    return torch.stack((gx[:, None, :].expand(b, oh, ow), gy[:, :, None].expand(b, oh, ow)), dim=-1)


def crop_resize(x: torch.Tensor, d: BatchDraw, out_size: tuple[int, int]) -> torch.Tensor:
    """float32 [B, C, H, W] (any memory format) -> float32 [B, C, oh, ow]: each image's crop box resized
    (bilinear) to `out_size`, mirrored where `d.flip`; the border pixels repeat beyond the image."""
    _, _, h, w = x.shape
    grid = _grid(d, (h, w), out_size)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


Constants = tuple[torch.Tensor, torch.Tensor]  # the normalisation's scale and shift, [1, 3, 1, 1] each


@functools.lru_cache(maxsize=16)
def _constants(spec: PreprocessSpec, device: torch.device) -> Constants:
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


def photometric(
    x: torch.Tensor,
    d: BatchDraw,
    spec: PreprocessSpec,
    memory_format: torch.memory_format = torch.preserve_format,
    consts: Constants | None = None,
) -> torch.Tensor:
    """[B, 3, H, W] pixels on the 0-255 scale in model order (uint8 or float) -> float32: v * gain + bias per
    image, normalised as scale_shift() does, not clipped (clip_normalized clips); one multiply-add, which
    writes `memory_format` (by default x's). `consts`: spec's constants on x's device, where already at hand."""
    scale, shift = consts or _constants(spec, x.device)
    gain = d.gain.view(-1, 1, 1, 1) * scale  # [B, 3, 1, 1]
    bias = d.bias.view(-1, 1, 1, 1) * scale - shift
    if memory_format == torch.preserve_format:  # no `out=`: torch.compile refuses one that is not contiguous
        return torch.addcmul(bias, x, gain)
    out = torch.empty_like(x, dtype=torch.float32, memory_format=memory_format)
    return torch.addcmul(bias, x, gain, out=out)


def clip_normalized(
    x: torch.Tensor, spec: PreprocessSpec, channels_last: bool = False, consts: Constants | None = None
) -> torch.Tensor:
    """Normalised float32 [B, 3, H, W] clipped to the normalised [0, 255], as the decode path's lookup table
    clips the jittered pixels (with a positive scale the bounds map to -shift and 255 * scale - shift): in
    place when x has the requested memory format, else written in it by the same pass."""
    scale, shift = consts or _constants(spec, x.device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if x.is_contiguous(memory_format=fmt):
        return x.clamp_(-shift, 255.0 * scale - shift)
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device, memory_format=fmt)
    return torch.clamp(x, -shift, 255.0 * scale - shift, out=out)


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
        return self.apply(batch, uniforms(batch.shape[0], g, batch.device), channels_last)

    def apply(
        self,
        batch: torch.Tensor,
        u: torch.Tensor,
        channels_last: bool = False,
        jitter_first: bool | None = None,
        consts: Constants | None = None,
    ) -> torch.Tensor:
        """The same with the batch's uniform draws given (u [B, UNIFORMS]): no generator, so a CUDA graph
        can capture it with `u` as a static input. `jitter_first` (default: on CUDA) applies the photometric
        map while converting the uint8 pixels, before the resampling (see the module's docstring). `consts`:
        the normalisation's constants on the batch's device (torch.compile takes them as inputs)."""
        d = draw_from(self.augment, u, (batch.shape[1], batch.shape[2]))
        x = model_order(batch, self.spec).permute(0, 3, 1, 2)  # uint8 [B, 3, H, W], channels-last in memory
        if jitter_first is None:
            jitter_first = batch.is_cuda  # where the multiply-add converts uint8 as it reads
        if jitter_first:
            y = crop_resize(photometric(x, d, self.spec, consts=consts), d, self.spec.size)
        else:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            y = photometric(crop_resize(x.float(), d, self.spec.size), d, self.spec, fmt, consts)
        return clip_normalized(y, self.spec, channels_last, consts)


GatherAugment = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (cache, index, u) -> x
# Model inputs from this many pixels up have their augmentation fused on CUDA (batches.fast_augment: the
# Triton kernel of augment_kernel.py, else this module's `fused`). Measured on an H200 at batch 256
# (benchmarks/RESULTS.md): at 96x96 the eager augmentation hides behind the model (cached 1.02 of
# compute-only), at 224x224 the step is GPU-bound: compiled (0.56 ms a batch against 0.99 eager) the cached
# path rose from 0.89 to 0.91 of compute-only, for about 6 s of compilation in the first epoch; the kernel
# (0.17 ms, 0.67 s to compile) raised it to 0.956.
FUSE_FROM_PIXELS = 128 * 128


def fused(augment: BatchAugment, channels_last: bool) -> GatherAugment:
    """The gather of a batch from a resident uint8 cache and `augment.apply` (jitter first) as one function
    compiled by torch.compile: inductor writes the gather, the jitter, the bilinear resampling and the
    clipping as a kernel or two that read the uint8 cache and write the model's batch once, where eager torch
    makes a pass over the batch per operation. It compiles on its first call (seconds), for one batch shape.
    The same values as the eager path up to float rounding."""

    def run(
        cache: torch.Tensor, index: torch.Tensor, u: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
    ) -> torch.Tensor:
        # Traced, a non-contiguous `out=` is refused and memory formats are not kept: clipped in place as
        # NCHW, then written as NHWC and viewed as NCHW, which is the channels-last layout.
        x = augment.apply(cache.index_select(0, index), u, False, True, (scale, shift))
        return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) if channels_last else x

    compiled = torch.compile(run, fullgraph=True, dynamic=False)

    def call(cache: torch.Tensor, index: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return compiled(cache, index, u, *_constants(augment.spec, cache.device))

    return call
