"""Batch augmentation on the training device (run here on the CPU, the same code as on a GPU): its draws and
outputs follow the per-image augmentation of the decode path, and its normalisation is preprocess()'s."""

from __future__ import annotations

import itertools
import shutil

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.dataset import Augment
from mgc_edge.preprocess import normalize, preprocess
from mgc_edge.train.augment import (
    UNIFORMS,
    BatchAugment,
    BatchDraw,
    clip_normalized,
    crop_resize,
    draw,
    draw_from,
    fused,
    normalize_uint8,
    photometric,
)

CPU = torch.device("cpu")
Q = [1, 5, 25, 50, 75, 95, 99]


def _per_image(aug: Augment, h: int, w: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    d = [aug.draw(h, w, rng) for _ in range(n)]
    height = np.array([x.height / h for x in d])
    width = np.array([x.width / w for x in d])
    return {
        "area": height * width,
        "log_aspect": np.log(width / height),
        "top": np.array([x.top / h for x in d]),
        "left": np.array([x.left / w for x in d]),
        "flip": np.array([x.flip for x in d], float),
        "gain": np.array([x.gain for x in d]),
        "bias": np.array([x.bias for x in d]),
    }


def _batched(aug: Augment, h: int, w: int, n: int) -> dict[str, np.ndarray]:
    d = draw(aug, n, (h, w), torch.Generator().manual_seed(0), CPU)
    height, width = (d.height / h).numpy(), (d.width / w).numpy()
    return {
        "area": height * width,
        "log_aspect": np.log(width / height),
        "top": (d.top / h).numpy(),
        "left": (d.left / w).numpy(),
        "flip": d.flip.float().numpy(),
        "gain": d.gain.numpy(),
        "bias": d.bias.numpy(),
    }


def test_batch_draws_follow_the_per_image_distribution() -> None:
    """Crop area and aspect, crop position, flips, gain and bias: the decode path draws them per image on the
    full frame (180x320), the cached path per batch on the cache's 80x80 image; relative to the frame both
    have the same distribution (quantiles agree to about a pixel of the frame)."""
    n = 20000
    per, bat = _per_image(Augment(), 180, 320, n), _batched(Augment(), 80, 80, n)
    tolerance = {"area": 0.01, "log_aspect": 0.015, "top": 0.01, "left": 0.01, "gain": 0.015, "bias": 4.0}
    for key, tol in tolerance.items():
        a, b = np.percentile(per[key], Q), np.percentile(bat[key], Q)
        assert np.abs(a - b).max() <= tol, (key, a, b)
    assert 0.8 - 1e-6 <= bat["area"].min() and bat["area"].max() <= 1.0
    assert np.log(0.8) - 1e-6 <= bat["log_aspect"].min() and bat["log_aspect"].max() <= np.log(1.25) + 1e-6
    assert abs(per["flip"].mean() - 0.5) < 0.02 and abs(bat["flip"].mean() - 0.5) < 0.02
    assert bat["gain"].min() >= 0.75 and bat["gain"].max() <= 1.25
    assert bat["bias"].min() >= -63.75 and bat["bias"].max() <= 63.75
    no_flip = _batched(Augment(hflip=False), 80, 80, 1000)
    assert no_flip["flip"].sum() == 0


def _float(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [1, 3, H, W], channels-last in memory as photometric() makes it."""
    return torch.from_numpy(image)[None].permute(0, 3, 1, 2).float()


def _draw(top: float, left: float, h: float, w: float, flip: bool = False) -> BatchDraw:
    t = lambda v: torch.tensor([float(v)])  # noqa: E731
    return BatchDraw(t(top), t(left), t(h), t(w), torch.tensor([flip]), t(1.0), t(0.0))


@pytest.mark.parametrize("box", [(0, 0, 80, 80), (5, 9, 64, 70), (16, 0, 64, 80), (3, 11, 71, 59)])
@pytest.mark.parametrize("flip", [False, True])
def test_crop_and_resize_match_opencv_on_the_crop(box: tuple[int, int, int, int], flip: bool) -> None:
    """One bilinear resampling per image does what the decode path does in two steps: cut the crop, resize it
    with cv2.INTER_LINEAR (and mirror it); up to OpenCV's fixed-point rounding."""
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8), (5, 5), 1.5)
    top, left, h, w = box
    crop = image[top : top + h, left : left + w]
    if flip:
        crop = crop[:, ::-1]
    want = cv2.resize(np.ascontiguousarray(crop), (64, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    got = crop_resize(_float(image), _draw(top, left, h, w, flip), (64, 64))
    got = got[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() <= 2.0  # OpenCV interpolates uint8 in 11-bit fixed point
    assert np.abs(got - want).mean() < 0.3


def test_an_identity_crop_at_the_model_size_returns_the_pixels() -> None:
    image = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    got = crop_resize(_float(image), _draw(0, 0, 64, 48), (64, 48))
    # Up to float rounding of the sampling grid: no blur, no shift by half a pixel.
    assert torch.allclose(got[0].permute(1, 2, 0), torch.from_numpy(image).float(), atol=1e-3)


def test_photometric_jitter_clips_like_the_lookup_table() -> None:
    """Gain and bias as Augment's lookup table applies them, clipped at 0 and 255 (never reflected), then
    normalised: with ImageNet's mean and std, and with an identity normalisation (values on 0-255)."""
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).repeat(1, 3, 1, 1)  # [1, 3, 1, 256]
    spec = PreprocessSpec(size=(64, 64), mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255), color="bgr")
    imagenet = PreprocessSpec(size=(64, 64))
    scale = np.array([1 / (255 * s) for s in imagenet.std], np.float32)
    shift = np.array([m / s for m, s in zip(imagenet.mean, imagenet.std)], np.float32)
    for gain, bias in [(1.25, 63.0), (0.75, -63.0), (1.0, -20.0), (1.1, 5.5)]:
        d = BatchDraw(
            *[torch.zeros(1)] * 4, torch.tensor([False]), torch.tensor([gain]), torch.tensor([bias])
        )
        lut = np.clip(np.arange(256, dtype=np.float32) * np.float32(gain) + np.float32(bias), 0, 255)
        for x in (ramp, ramp.float()):  # converted as read (CUDA's order) or resampled floats (the CPU's)
            got = clip_normalized(photometric(x, d, spec), spec)[0, :, 0].numpy()
            assert np.abs(got - lut).max() < 1e-3
            got = clip_normalized(photometric(x, d, imagenet), imagenet)[0, :, 0].numpy()
            assert np.abs(got - (lut[None] * scale[:, None] - shift[:, None])).max() < 1e-5
    black = torch.zeros(400, 80, 80, 3, dtype=torch.uint8)
    out = BatchAugment(Augment(), spec)(black, torch.Generator().manual_seed(0))  # values back on 0-255
    per_image_max = out.amax(dim=(1, 2, 3))
    assert per_image_max.min() == 0  # darkening draws keep black at black
    assert 0 < per_image_max.max() <= 0.25 * 255 + 1e-3


def _resample_then_jitter(aug: BatchAugment, batch: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """What BatchAugment.apply computed before the jitter moved into the uint8-to-float pass: the whole batch
    as floats, affine_grid + grid_sample to the model size, then jitter, clip and normalise the result."""
    spec, (b, h, w, _) = aug.spec, batch.shape
    d = draw_from(aug.augment, u, (h, w))
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = d.width / w * torch.where(d.flip, -1.0, 1.0)
    theta[:, 0, 2] = (2 * d.left + d.width) / w - 1
    theta[:, 1, 1] = d.height / h
    theta[:, 1, 2] = (2 * d.top + d.height) / h - 1
    grid = F.affine_grid(theta, [b, 3, *spec.size], align_corners=False)
    x = (batch.flip(-1) if spec.color == "rgb" else batch).permute(0, 3, 1, 2).float()
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = (x * d.gain.view(-1, 1, 1, 1) + d.bias.view(-1, 1, 1, 1)).clamp(0, 255)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x / 255 - mean) / std


@pytest.mark.parametrize(("size", "stored", "n_random"), [(96, 120, 64), (224, 280, 16)])
@pytest.mark.parametrize("color", ["rgb", "bgr"])
@pytest.mark.parametrize("jitter_first", [True, False])
def test_batch_augment_equals_resampling_before_the_jitter(
    size: int, stored: int, n_random: int, color: str, jitter_first: bool
) -> None:
    """The same draws give the same model inputs as resampling the uint8 pixels first and jittering, clipping
    and normalising after, up to float rounding, in either order (jitter_first: CUDA's): on noise (the
    steepest image), with random draws and with every extreme of the crop (smallest and largest area and
    aspect, boxes at each border), flip, gain and bias (clipping at both ends)."""
    spec = PreprocessSpec(size=(size, size), color=color)
    aug = BatchAugment(Augment(), spec)
    g = torch.Generator().manual_seed(size)
    corners = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))  # area, aspect, top, left, flip
    extremes = torch.cat((corners, torch.randint(0, 2, (len(corners), 2), generator=g).float()), 1)
    u = torch.cat((extremes, torch.rand((n_random, UNIFORMS), generator=g)))
    batch = torch.randint(0, 256, (len(u), stored, stored, 3), dtype=torch.uint8, generator=g)
    want = _resample_then_jitter(aug, batch, u)
    got = aug.apply(batch, u, channels_last=True, jitter_first=jitter_first)
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    # Normalised units (1e-3 is 0.06 of a pixel value); measured 2e-4 at most: affine_grid and _grid round the
    # sampling positions differently, by about 1e-5 of a pixel, and noise changes by up to 255 per pixel.
    assert (got - want).abs().max() <= 1e-3


def _pipelines(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The same frame through the decode path (Augment + preprocess per image) and the cached path (stored
    at the margin size, BatchAugment): per-image statistics [n, 3] of the model inputs."""
    from mgc_edge.data.cache import margin_size, stored_spec
    from mgc_edge.preprocess import resize_frame

    spec = PreprocessSpec(size=(64, 64), mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255), color="bgr")
    frame = np.zeros((180, 320, 3), np.uint8)
    frame[:, :, :] = np.linspace(40, 215, 320, dtype=np.float32).astype(np.uint8)[None, :, None]  # ramp
    frame[60:120, 40:90] = 250  # a bright patch on the left, about a third of the height

    def stats(x: np.ndarray) -> np.ndarray:  # [N, 3, H, W] on the 0-255 scale
        left, right = x[..., :8].mean(axis=(1, 2, 3)), x[..., -8:].mean(axis=(1, 2, 3))
        patch = x.max(axis=(1, 2)).argmax(axis=-1) / x.shape[-1]  # the brightest column: the patch
        patch = np.where(right < left, 1 - patch, patch)  # seen unflipped
        return np.stack([x.mean(axis=(1, 2, 3)), np.abs(right - left), patch, right < left], 1)

    aug, rng = Augment(), np.random.default_rng(0)
    per = np.concatenate([preprocess(aug(frame, rng), spec) for _ in range(n)])
    cached = resize_frame(frame, stored_spec(spec, margin_size(spec.size)))
    batch = torch.from_numpy(np.repeat(cached[None], n, axis=0))
    bat = BatchAugment(aug, spec)(batch, torch.Generator().manual_seed(0)).numpy()
    return stats(per), stats(bat)


def test_augmented_batches_follow_the_per_image_pipeline() -> None:
    """End to end on one frame: brightness, the left-right contrast, the position of a feature and the flip
    rate have the same distribution whichever path made the model inputs."""
    per, bat = _pipelines(1500)
    # A contrast of 0.4 moves the mean by 6.8, a crop of 0.6-1.0 the left-right contrast by 29.
    mean_tol, diff_tol, pos_tol = 5.0, 6.0, 0.04
    for column, tol in enumerate([mean_tol, diff_tol, pos_tol]):
        # The feature's position is coarse (1/64 steps) with two modes whose gap falls at the median, which
        # then jumps by 3 pixels between random seeds of either path: its quartiles and tails are compared.
        q = [5, 25, 50, 75, 95] if column < 2 else [5, 25, 75, 95]
        a, b = np.percentile(per[:, column], q), np.percentile(bat[:, column], q)
        assert np.abs(a - b).max() <= tol, (column, a, b)
    assert abs(per[:, 3].mean() - 0.5) < 0.05 and abs(bat[:, 3].mean() - 0.5) < 0.05  # flip rate


@pytest.mark.parametrize("color", ["rgb", "bgr"])
def test_device_normalisation_is_bit_identical_to_preprocess(color: str) -> None:
    spec = PreprocessSpec(size=(24, 40), color=color)
    batch = np.random.default_rng(3).integers(0, 256, (5, 24, 40, 3), dtype=np.uint8)
    got = normalize_uint8(torch.from_numpy(batch), spec).numpy()
    assert got.tobytes() == normalize(batch, spec).tobytes()
    last = normalize_uint8(torch.from_numpy(batch), spec, channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last)
    assert last.numpy().tobytes() != b"" and torch.equal(last, torch.from_numpy(got))


def test_batch_augment_output_shape_layout_and_determinism() -> None:
    spec = PreprocessSpec(size=(64, 56))
    batch = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (6, 80, 70, 3), dtype=np.uint8))
    aug = BatchAugment(Augment(), spec)
    a = aug(batch, torch.Generator().manual_seed(7))
    assert a.shape == (6, 3, 64, 56) and a.dtype == torch.float32 and a.is_contiguous()
    assert torch.equal(a, aug(batch, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, aug(batch, torch.Generator().manual_seed(8)))
    u = torch.rand((6, UNIFORMS), generator=torch.Generator().manual_seed(9))
    for jitter_first in (False, True):
        assert aug.apply(batch, u, jitter_first=jitter_first).is_contiguous()
        last = aug.apply(batch, u, channels_last=True, jitter_first=jitter_first)
        assert last.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None, reason="inductor's CPU code needs a C compiler")
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_compiled_augmentation_equals_the_eager_one(channels_last: bool) -> None:
    """What training compiles on CUDA from FUSE_FROM_PIXELS up (inductor, here its CPU code): the gather and
    apply() as one function, the same values up to float rounding, in the memory format the model wants,
    and with new draws and indices it is not compiled again for."""
    spec = PreprocessSpec(size=(24, 32), color="rgb")
    aug = BatchAugment(Augment(), spec)
    g = torch.Generator().manual_seed(5)
    cache = torch.randint(0, 256, (12, 30, 40, 3), dtype=torch.uint8, generator=g)
    run = fused(aug, channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for _ in range(2):
        index = torch.randint(0, 12, (6,), generator=g)
        u = torch.rand((6, UNIFORMS), generator=g)
        got = run(cache, index, u)
        want = aug.apply(cache.index_select(0, index), u, channels_last, jitter_first=True)
        assert got.shape == (6, 3, 24, 32) and got.is_contiguous(memory_format=fmt)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def interpreted_kernel(tmp_path_factory: pytest.TempPathFactory) -> object:
    """augment_kernel loaded afresh under TRITON_INTERPRET=1, which Triton reads when the kernel is decorated:
    the kernel then runs on CPU tensors (numpy), the same code the GPU compiles."""
    import importlib.util
    import os

    pytest.importorskip("triton")
    from mgc_edge.train import augment_kernel as installed

    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        spec = importlib.util.spec_from_file_location("augment_kernel_interpreted", installed.__file__)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before
    return module


@pytest.mark.parametrize(("size", "stored"), [((24, 30), (30, 40)), ((24, 30), (14, 12))])
@pytest.mark.parametrize("color", ["rgb", "bgr"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_the_triton_kernel_computes_what_apply_computes(
    interpreted_kernel: object,
    size: tuple[int, int],
    stored: tuple[int, int],
    color: str,
    channels_last: bool,
) -> None:
    """What training runs on CUDA from FUSE_FROM_PIXELS up (augment_kernel, here through Triton's
    interpreter): the gather from the cache and apply()'s values up to float rounding, in the model's layout,
    for every extreme of the crop, flip, gain and bias, shrinking and enlarging, and a pixel count that is
    not a multiple of the kernel's block."""
    spec = PreprocessSpec(size=size, color=color)
    aug = BatchAugment(Augment(), spec)
    g = torch.Generator().manual_seed(11)
    corners = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))  # area, aspect, top, left, flip
    extremes = torch.cat((corners, torch.randint(0, 2, (len(corners), 2), generator=g).float()), 1)
    u = torch.cat((extremes, torch.rand((8, UNIFORMS), generator=g)))
    cache = torch.randint(0, 256, (9, *stored, 3), dtype=torch.uint8, generator=g)
    index = torch.randint(0, 9, (len(u),), generator=g)
    got = interpreted_kernel.kernel_augment(aug, channels_last)(cache, index, u)  # type: ignore[attr-defined]
    want = aug.apply(cache.index_select(0, index), u, channels_last, jitter_first=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert (
        got.shape == (len(u), 3, *size)
        and got.dtype == torch.float32
        and got.is_contiguous(memory_format=fmt)
    )
    # Normalised units: 1e-4 is 0.006 of a pixel level; the two orders of the jitter round differently.
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_the_triton_kernel_refuses_a_cache_it_cannot_address(interpreted_kernel: object) -> None:
    """The kernel computes byte addresses of a contiguous uint8 [N, H, W, 3] cache; anything else is refused,
    so fast_augment passes over it instead of reading the wrong bytes."""
    aug = BatchAugment(Augment(), PreprocessSpec(size=(8, 8)))
    run = interpreted_kernel.kernel_augment(aug, True)  # type: ignore[attr-defined]
    index, u = torch.tensor([0]), torch.rand((1, UNIFORMS))
    cache = torch.randint(0, 256, (2, 10, 12, 3), dtype=torch.uint8)
    for bad in (cache.transpose(1, 2), cache.float(), cache[..., :2]):
        with pytest.raises(ValueError, match="contiguous uint8"):
            run(bad, index, u)


def test_fast_augment_takes_the_first_engine_that_gives_the_eager_batch() -> None:
    """Training's choice of its augmentation kernel: an engine that raises (no Triton, no compiler), gives
    other values or another layout is passed over, with why; with none left the eager path runs."""
    from mgc_edge.train.batches import fast_augment

    spec = PreprocessSpec(size=(12, 16))
    aug = BatchAugment(Augment(), spec)
    cache = torch.randint(
        0, 256, (7, 15, 20, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )

    def eager(a: BatchAugment, channels_last: bool):  # noqa: ANN202
        return lambda c, i, u: a.apply(c.index_select(0, i), u, channels_last)

    def raises(a: BatchAugment, channels_last: bool):  # noqa: ANN202
        raise RuntimeError("no C compiler\nsecond line")

    def shifted(a: BatchAugment, channels_last: bool):  # noqa: ANN202
        return lambda c, i, u: eager(a, channels_last)(c, i, u) + 0.01

    def wrong_layout(a: BatchAugment, channels_last: bool):  # noqa: ANN202
        return lambda c, i, u: eager(a, channels_last)(c, i, u).contiguous()

    bad = (("raises", raises), ("shifted", shifted), ("layout", wrong_layout))
    name, engine, why = fast_augment(cache, aug, True, 5, (("good", eager),))
    assert (name, why) == ("good", None) and engine is not None
    name, engine, why = fast_augment(cache, aug, True, 5, bad + (("good", eager),))
    assert (
        name == "good" and engine is not None and why is not None and why.startswith("raises: no C compiler")
    )
    index, u = torch.tensor([6, 0, 2]), torch.rand((3, UNIFORMS))
    torch.testing.assert_close(engine(cache, index, u), aug.apply(cache[index], u, True), rtol=0, atol=0)

    name, engine, why = fast_augment(cache, aug, True, 5, bad)
    assert name == "eager" and engine is None and why is not None
    assert "raises: no C compiler" in why and "second line" not in why
    assert "shifted: differs from the eager augmentation by 0.01" in why and "layout: gave" in why
