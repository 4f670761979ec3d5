"""The training augmentation of a batch gathered from a GPU-resident uint8 cache as one hand-written Triton
kernel: each output pixel reads its four bilinear taps' bytes straight from the cache image its index names
and writes its three normalised, jittered and clipped floats once, in the model's layout.

What it computes is `BatchAugment.apply` (augment.py): the same draws (`draw_from`, run as torch ops on the
[B] draws), the same sampling positions as grid_sample's (half-pixel centres, border clamp) and the same
normalisation constants; only the order of the float roundings differs (the jitter's multiply-add follows
the resampling here, which the weights summing to 1 allow). torch.compile's kernels for the same function
took 0.56 ms a 224x224 batch of 256 on an H200, where the batch's bytes (about 60 MB of uint8 read at most,
154 MB of floats written) would take about a tenth of that at the memory's speed (an estimate, not timed).

Triton is imported with this module: callers import it where they can fall back (batches.py). Under
TRITON_INTERPRET=1 the kernel runs on CPU tensors, which is how the tests check it on a machine without a GPU.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from mgc_edge.config import PreprocessSpec
from mgc_edge.train.augment import BatchAugment, GatherAugment, _constants, draw_from

BLOCK = 256  # output pixels a program writes (x 4 lanes, the fourth masked: one 16-byte row per pixel)
PARAMS = 6  # per image: the x and y maps from output to grid coordinates (scale, offset each), gain, bias


@triton.jit
def _augment(
    cache_ptr,  # uint8 [N, H, W, 3] BGR
    index_ptr,  # int64 [B]: the cache image of each batch row
    params_ptr,  # float32 [B, PARAMS]
    consts_ptr,  # float32 [8]: the normalisation's scale (4) and shift (4), per model channel
    out_ptr,  # float32 [B, 3, OH, OW], NCHW or channels-last
    H,
    W,
    OH,
    OW,
    out_sb,
    out_sc,
    out_sw,  # a row's stride is OW * out_sw in both layouts
    SWAP: tl.constexpr,  # the model takes RGB: its channel c is the cache's 2 - c
    BLOCK: tl.constexpr,
):
    b = tl.program_id(1)
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = p < OH * OW
    i = p // OW
    j = p % OW
    prm = params_ptr + b * 6
    sx, ox = tl.load(prm), tl.load(prm + 1)
    sy, oy = tl.load(prm + 2), tl.load(prm + 3)
    gain, bias = tl.load(prm + 4), tl.load(prm + 5)
    # The grid as augment._grid builds it, unnormalised and clamped as grid_sample does (align_corners=False,
    # padding "border").
    gx = sx * ((2 * j + 1).to(tl.float32) / OW - 1) + ox
    gy = sy * ((2 * i + 1).to(tl.float32) / OH - 1) + oy
    ix = tl.minimum(tl.maximum(((gx + 1) * W - 1) * 0.5, 0.0), W - 1.0)
    iy = tl.minimum(tl.maximum(((gy + 1) * H - 1) * 0.5, 0.0), H - 1.0)
    fx, fy = tl.floor(ix), tl.floor(iy)
    wx1, wy1 = ix - fx, iy - fy
    wx0, wy0 = (fx + 1) - ix, (fy + 1) - iy
    x0, y0 = fx.to(tl.int32), fy.to(tl.int32)
    x1, y1 = tl.minimum(x0 + 1, W - 1), tl.minimum(y0 + 1, H - 1)  # the clamped tap weighs 0

    c = tl.arange(0, 4)
    channel = c < 3
    if SWAP:
        src = 2 - c
    else:
        src = c
    mask = live[:, None] & channel[None, :]
    image = cache_ptr + tl.load(index_ptr + b).to(tl.int64) * H * W * 3
    top, bottom = y0 * W, y1 * W
    v00 = tl.load(image + ((top + x0) * 3)[:, None] + src[None, :], mask=mask, other=0).to(tl.float32)
    v01 = tl.load(image + ((top + x1) * 3)[:, None] + src[None, :], mask=mask, other=0).to(tl.float32)
    v10 = tl.load(image + ((bottom + x0) * 3)[:, None] + src[None, :], mask=mask, other=0).to(tl.float32)
    v11 = tl.load(image + ((bottom + x1) * 3)[:, None] + src[None, :], mask=mask, other=0).to(tl.float32)
    upper = v00 * wx0[:, None] + v01 * wx1[:, None]
    lower = v10 * wx0[:, None] + v11 * wx1[:, None]
    v = upper * wy0[:, None] + lower * wy1[:, None]

    scale = tl.load(consts_ptr + c, mask=channel, other=1.0)
    shift = tl.load(consts_ptr + 4 + c, mask=channel, other=0.0)
    out = v * (gain * scale)[None, :] + (bias * scale - shift)[None, :]  # photometric()'s map
    out = tl.minimum(tl.maximum(out, -shift[None, :]), (255.0 * scale - shift)[None, :])  # clip_normalized()
    where = b.to(tl.int64) * out_sb + c[None, :] * out_sc + p[:, None] * out_sw
    tl.store(out_ptr + where, out, mask=mask)


@functools.lru_cache(maxsize=16)
def _packed_constants(spec: PreprocessSpec, device: torch.device) -> torch.Tensor:
    """augment's normalisation constants as the kernel reads them: [scale x3, 1, shift x3, 0]."""
    scale, shift = (t.view(3) for t in _constants(spec, device))
    one, zero = torch.ones(1, device=device), torch.zeros(1, device=device)
    return torch.cat((scale, one, shift, zero))


def kernel_augment(augment: BatchAugment, channels_last: bool) -> GatherAugment:
    """(cache uint8 [N, H, W, 3], index int64 [B], u [B, UNIFORMS]) -> float32 [B, 3, *spec.size], what
    `augment.apply(cache[index], u, channels_last)` returns, from one kernel launch (plus the draws' few
    element-wise ops on [B] tensors). Capturable in a CUDA graph once it has run (Triton compiles on the
    first call, then caches on disk)."""
    spec = augment.spec
    oh, ow = spec.size
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run(cache: torch.Tensor, index: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if cache.dtype != torch.uint8 or cache.ndim != 4 or cache.shape[3] != 3 or not cache.is_contiguous():
            raise ValueError(
                f"the kernel reads a contiguous uint8 [N, H, W, 3] cache, got {cache.dtype} {cache.shape}"
            )
        _, h, w, _ = cache.shape
        d = draw_from(augment.augment, u, (h, w))
        # augment._grid's affine maps from the output pixel's [-1, 1] coordinate to the input's
        sx = d.width / w * torch.where(d.flip, -1.0, 1.0)
        ox = (2 * d.left + d.width) / w - 1
        params = torch.stack((sx, ox, d.height / h, (2 * d.top + d.height) / h - 1, d.gain, d.bias), 1)
        out = torch.empty(
            (index.shape[0], 3, oh, ow), dtype=torch.float32, device=cache.device, memory_format=fmt
        )
        grid = (triton.cdiv(oh * ow, BLOCK), index.shape[0])
        _augment[grid](
            cache,
            index,
            params.contiguous(),
            _packed_constants(spec, cache.device),
            out,
            h,
            w,
            oh,
            ow,
            out.stride(0),
            out.stride(1),
            out.stride(3),
            SWAP=spec.color == "rgb",
            BLOCK=BLOCK,
        )
        return out

    return run
