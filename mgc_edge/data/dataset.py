"""The decode-every-epoch path: a torch Dataset over scanned samples, read -> (augment on uint8) -> the
shared preprocess(); and the samplers both training paths draw indices from."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.scan import Sample
from mgc_edge.images import read_image
from mgc_edge.preprocess import preprocess


@dataclass(frozen=True)
class Augment:
    """Augmentations on the BGR uint8 frame, before preprocess(); mild, since the cue is a small hand."""

    crop_scale: tuple[float, float] = (0.8, 1.0)  # area kept; gesture cues sit near the frame edges
    crop_ratio: tuple[float, float] = (0.8, 1.25)  # aspect change relative to the frame
    hflip: bool = True
    brightness: float = 0.25  # +- fraction of 255
    contrast: float = 0.25  # +- gain

    def draw(self, h: int, w: int, rng: np.random.Generator) -> AugmentDraw:
        """One image's random draws: crop box, flip, gain and bias."""
        area = rng.uniform(*self.crop_scale)
        ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        ch = min(h, max(1, round(h * math.sqrt(area / ratio))))
        cw = min(w, max(1, round(w * math.sqrt(area * ratio))))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        flip = bool(self.hflip and rng.random() < 0.5)
        gain = 1.0 + rng.uniform(-self.contrast, self.contrast)
        bias = 255.0 * rng.uniform(-self.brightness, self.brightness)
        return AugmentDraw(top, left, ch, cw, flip, gain, bias)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        d = self.draw(image.shape[0], image.shape[1], rng)
        image = image[d.top : d.top + d.height, d.left : d.left + d.width]
        if d.flip:
            image = image[:, ::-1]
        # A lookup table, not convertScaleAbs: that one takes |x|, so a negative bias would turn dark
        # pixels bright instead of clipping them at black.
        lut = np.clip(np.arange(256, dtype=np.float32) * d.gain + d.bias, 0, 255).astype(np.uint8)
        return cv2.LUT(np.ascontiguousarray(image), lut)


@dataclass(frozen=True)
class AugmentDraw:
    """The random draws of one augmented image (pixels of the input frame)."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    gain: float
    bias: float  # on the 0-255 scale


class FrameDataset(Dataset):
    """Samples of one split; item = (float32 [3, H, W] tensor, label index)."""

    def __init__(
        self,
        root: str | Path,
        samples: Sequence[Sample],
        spec: PreprocessSpec,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.samples = list(samples)
        self.spec = spec
        self.augment = augment
        self.seed = seed
        # In shared memory, so that persistent DataLoader workers see the epoch the main process sets.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on (seed, epoch, index) only, so runs repeat whatever the worker count."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        image = read_image(self.root / sample.path)
        if self.augment is not None:
            image = self.augment(image, np.random.default_rng((self.seed, self.epoch, index)))
        return torch.from_numpy(preprocess(image, self.spec)[0]), sample.label


class WeightedDistributedSampler(DistributedSampler):
    """Draws indices with replacement by per-sample weight, one shard per rank (the `--balance sampler` path)."""

    def __init__(self, weights: Sequence[float], num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(range(len(weights)), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.weights = torch.as_tensor(weights, dtype=torch.double)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        indices = torch.multinomial(self.weights, self.total_size, replacement=True, generator=g).tolist()
        return iter(indices[self.rank : self.total_size : self.num_replicas])


def class_weights(counts: Sequence[int]) -> np.ndarray:
    """Inverse square-root frequency, mean 1 over present classes.

    Plain inverse frequency would weigh iMiGUE's 12-frame class 1,400x its largest one, which makes
    training unstable; the square root keeps the tail visible without that.
    """
    c = np.asarray(counts, dtype=np.float64)
    w = np.where(c > 0, 1.0 / np.sqrt(np.maximum(c, 1)), 0.0)
    return w / w[c > 0].mean()
