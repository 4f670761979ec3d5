"""The one preprocessing: golden values, policies, bad input, and training path == runtime path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write_image

from mgc_edge.config import ConfigError, PreprocessSpec
from mgc_edge.preprocess import PreprocessError, ensure_bgr, preprocess, resize_frame


def test_golden_values_and_channel_order() -> None:
    # A 2x2 frame that is pure blue in OpenCV's BGR: the model must see it in the B slot of RGB.
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[..., 0] = 255
    spec = PreprocessSpec(size=(2, 2), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    out = preprocess(frame, spec)
    assert out.shape == (1, 3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 2], 1.0, atol=1e-6)  # blue -> (1 - .5) / .5
    np.testing.assert_allclose(out[0, 0], -1.0, atol=1e-6)  # red absent -> (0 - .5) / .5
    bgr = preprocess(frame, PreprocessSpec(size=(2, 2), color="bgr", mean=(0.5,) * 3, std=(0.5,) * 3))
    np.testing.assert_allclose(bgr[0, 0], 1.0, atol=1e-6)


def test_imagenet_normalisation_matches_formula() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    spec = PreprocessSpec(size=(8, 8))
    expected = (frame[..., ::-1].astype(np.float64) / 255 - spec.mean) / spec.std
    np.testing.assert_allclose(preprocess(frame, spec)[0].transpose(1, 2, 0), expected, atol=1e-5)


@pytest.mark.parametrize("policy", ["stretch", "letterbox", "center_crop"])
def test_resize_policies_give_the_input_size(policy: str) -> None:
    frame = np.full((180, 320, 3), 200, np.uint8)
    spec = PreprocessSpec(size=(64, 48), resize=policy)
    assert resize_frame(frame, spec).shape == (64, 48, 3)
    assert preprocess([frame, frame], spec).shape == (2, 3, 64, 48)


def test_letterbox_pads_with_the_mean_colour() -> None:
    frame = np.full((10, 40, 3), 255, np.uint8)  # wide frame: padding above and below
    out = preprocess(frame, PreprocessSpec(size=(40, 40), resize="letterbox"))
    assert abs(float(out[0, :, 0, 20].mean())) < 0.05  # padding normalises to about zero
    assert float(out[0, :, 20, 20].min()) > 1.5  # the white content


def test_grayscale_and_bgra_become_bgr() -> None:
    assert ensure_bgr(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert ensure_bgr(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8), "frame"],
)
def test_bad_frames_raise_one_clear_error(bad: object) -> None:
    with pytest.raises(PreprocessError):
        preprocess(bad, PreprocessSpec(size=(8, 8)))  # type: ignore[arg-type]


def test_empty_batch_raises() -> None:
    with pytest.raises(PreprocessError, match="at least one frame"):
        preprocess([], PreprocessSpec(size=(8, 8)))


def test_spec_validation_and_json_round_trip() -> None:
    spec = PreprocessSpec(size=(96, 128), resize="letterbox", interpolation="area")
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ConfigError):
        PreprocessSpec(resize="squash")
    with pytest.raises(ConfigError):
        PreprocessSpec(size=(0, 4))


def test_training_path_and_runtime_path_are_bit_identical(tmp_path: Path) -> None:
    """The Dataset's evaluation item and the runtime's preprocess of the same file are the same bits."""
    pytest.importorskip("torch")
    from mgc_edge.data.dataset import FrameDataset
    from mgc_edge.data.scan import Sample
    from mgc_edge.images import read_image

    rng = np.random.default_rng(2)
    path = write_image(tmp_path / "a" / "1.1.jpg", rng.integers(0, 256, (180, 320, 3), dtype=np.uint8))
    spec = PreprocessSpec(size=(64, 96), resize="letterbox", interpolation="area")
    item, label = FrameDataset(tmp_path, [Sample("a/1.1.jpg", 3, "1")], spec)[0]
    runtime = preprocess(read_image(path), spec)[0]
    assert label == 3
    assert item.numpy().tobytes() == runtime.tobytes()


def test_augmentation_clips_instead_of_reflecting_dark_pixels() -> None:
    pytest.importorskip("torch")
    from mgc_edge.data.dataset import Augment

    black = np.zeros((40, 60, 3), np.uint8)
    aug = Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip=False, brightness=0.25, contrast=0.0)
    outs = [aug(black, np.random.default_rng(seed)) for seed in range(20)]
    assert all(o.shape == black.shape for o in outs)
    # A darkening draw keeps black at 0; only brightening draws may lift it, never above 0.25 * 255.
    assert min(int(o.max()) for o in outs) == 0
    assert max(int(o.max()) for o in outs) <= 64


def test_preprocess_into_a_given_buffer_is_bit_identical() -> None:
    """The runtime preprocesses straight into page-locked memory on a GPU: the same bits as a new array."""
    spec = PreprocessSpec(size=(12, 10), resize="center_crop")
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (30, 41, 3), dtype=np.uint8) for _ in range(3)]
    out = np.full((3, 3, 12, 10), np.nan, np.float32)
    got = preprocess(frames, spec, out=out)
    assert got is out
    np.testing.assert_array_equal(out, preprocess(frames, spec))
    for bad in (np.zeros((2, 3, 12, 10), np.float32), np.zeros((3, 3, 12, 10), np.float64)):
        with pytest.raises(PreprocessError, match="writes into"):
            preprocess(frames, spec, out=bad)
