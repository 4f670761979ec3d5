"""Frozen configuration dataclasses with JSON round-trips; stdlib only so the runtime can import it."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from mgc_edge.errors import UserError

RESIZE_POLICIES = ("stretch", "letterbox", "center_crop")
INTERPOLATIONS = ("nearest", "linear", "area", "cubic")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

T = TypeVar("T")


def default_workers() -> int:
    """DataLoader processes for the decode path: one per usable core but one (the training process), at
    least 2 and at most 12. Measured on 16 cores (H200 box, 224x224): 2 workers fed 630 images/s, 8 fed
    1,310; decoding JPEGs scales with the cores until the GPU or the disk is the limit."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(2, min(cores - 1, 12))


class ConfigError(UserError):
    """A configuration value a user gave is invalid; the message is one sentence."""


def _coerce(cls: type[T], data: dict[str, Any]) -> T:
    """Build a frozen dataclass from a dict, turning JSON lists back into tuples and rejecting unknown keys."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"Unknown {cls.__name__} keys: {', '.join(unknown)}.")
    kwargs = {}
    for name, value in data.items():
        default = known[name].default
        if isinstance(value, list) and (isinstance(default, tuple) or default is dataclasses.MISSING):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything needed to turn a BGR uint8 frame into the model's input; stored inside every .onnx file."""

    size: tuple[int, int] = (224, 224)  # (H, W) of the model input
    resize: str = "stretch"  # stretch | letterbox | center_crop
    interpolation: str = "linear"  # OpenCV interpolation name
    color: str = "rgb"  # channel order the model sees; OpenCV frames are BGR
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.size) != 2 or min(self.size) < 1:
            raise ConfigError(f"Input size must be two positive numbers, got {self.size}.")
        if self.resize not in RESIZE_POLICIES:
            raise ConfigError(
                f"Resize policy must be one of {', '.join(RESIZE_POLICIES)}, got {self.resize!r}."
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"Interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}."
            )
        if self.color not in ("rgb", "bgr"):
            raise ConfigError(f"Colour order must be 'rgb' or 'bgr', got {self.color!r}.")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("Mean and std need three values each, and std must be positive.")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        return _coerce(cls, data)

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class SplitConfig:
    """How files become train / val / test."""

    mode: str = "group"  # group (by clip, honest) | random (leaky, for comparison only)
    group_regex: str = r"^(?P<group>[^.]+)\."  # <clip> of <clip>.<frame>.jpg
    test_frac: float = 0.2
    val_frac: float = 0.1  # of what is left after test
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("group", "random"):
            raise ConfigError(f"Split mode must be 'group' or 'random', got {self.mode!r}.")
        if not (0.0 <= self.test_frac < 1.0 and 0.0 <= self.val_frac < 1.0):
            raise ConfigError("Split fractions must lie in [0, 1).")


@dataclass(frozen=True)
class TrainConfig:
    """One training run, exactly as written to config.json so that `--config` can repeat it."""

    data: str
    run_dir: str
    arch: str = "alexnet_bn"
    epochs: int = 30
    batch_size: int = 30
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    dropout: float | None = None  # None = the architecture's own (0.5 in AlexNet's classifier)
    balance: str = "none"  # none | loss | sampler
    augment: bool = True
    hflip: bool = True  # most iMiGUE gestures are done with either hand
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    split: SplitConfig = field(default_factory=SplitConfig)
    split_file: str | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # only takes effect on CUDA
    channels_last: bool = True  # NHWC activations: faster on CUDA and on the CPU (oneDNN)
    compile: bool = False
    patience: int = 0  # 0 = no early stopping
    workers: int = field(default_factory=default_workers)  # the --no-cache path's DataLoader processes
    weights: str | None = None
    pretrained: bool = False
    class_names: str | None = None
    strict: bool = False
    max_train_batches: int = 0  # 0 = all; a cap for smoke runs
    cache: bool = True  # decode + resize every image once into a memory-mapped uint8 cache
    cache_dir: str | None = None  # None = $XDG_CACHE_HOME/mgc-edge or ~/.cache/mgc-edge

    def __post_init__(self) -> None:
        if self.balance not in ("none", "loss", "sampler"):
            raise ConfigError(f"--balance must be none, loss or sampler, got {self.balance!r}.")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}.")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("Epochs and batch size must be at least 1.")
        if self.lr <= 0:
            raise ConfigError("The learning rate must be positive.")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must lie in [0, 1), got {self.dropout}.")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["preprocess"] = self.preprocess.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        if isinstance(data.get("preprocess"), dict):
            data["preprocess"] = PreprocessSpec.from_dict(data["preprocess"])
        if isinstance(data.get("split"), dict):
            data["split"] = _coerce(SplitConfig, data["split"])
        return _coerce(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist.") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"Config file {path} is not a valid mgc-edge config.json ({exc}).") from None
