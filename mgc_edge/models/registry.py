"""Architecture registry: arch name -> nn.Module builder, plus weight loading with a fitted head."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mgc_edge.errors import UserError


class ModelError(UserError):
    """A model cannot be built or its weights cannot be loaded; the message is one sentence."""


class AlexNetBN(nn.Module):
    """AlexNet as the seed report describes it: batch norm after each convolution, adaptive average
    pooling before the classifier; otherwise torchvision's layout and widths."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()

        def block(cin: int, cout: int, k: int, s: int, p: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(3, 64, 11, 4, 2),
            nn.MaxPool2d(3, 2),
            *block(64, 192, 5, 1, 2),
            nn.MaxPool2d(3, 2),
            *block(192, 384, 3, 1, 1),
            *block(384, 256, 3, 1, 1),
            *block(256, 256, 3, 1, 1),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # [N, 256, 6, 6] for any input of at least 63x63
        return self.classifier(torch.flatten(x, 1))


def _zoo() -> Any:
    """torchvision's model zoo, imported on first use: importing it imports torch._dynamo (about 1.5 s on two
    cores), which alexnet_bn, the default, never needs (train, evaluate and verify build it without)."""
    from torchvision import models

    return models


# name -> (builder(num_classes), name of torchvision's weights enum for --pretrained or None, smallest side)
ARCHS: dict[str, tuple[Callable[[int], nn.Module], str | None, int]] = {
    "alexnet": (lambda c: _zoo().alexnet(num_classes=c), "AlexNet_Weights", 63),
    "alexnet_bn": (lambda c: AlexNetBN(num_classes=c), None, 63),
    "mobilenet_v3_small": (
        lambda c: _zoo().mobilenet_v3_small(num_classes=c),
        "MobileNet_V3_Small_Weights",
        32,
    ),
    "resnet18": (lambda c: _zoo().resnet18(num_classes=c), "ResNet18_Weights", 32),
    "efficientnet_b0": (
        lambda c: _zoo().efficientnet_b0(num_classes=c),
        "EfficientNet_B0_Weights",
        32,
    ),
}


def _arch(arch: str) -> tuple[Callable[[int], nn.Module], str | None, int]:
    if arch not in ARCHS:
        raise ModelError(f"Unknown arch {arch!r}; choose one of {', '.join(ARCHS)}.")
    return ARCHS[arch]


def min_input_size(arch: str) -> int:
    return _arch(arch)[2]


def head_name(model: nn.Module) -> str:
    """Dotted name of the classifier head: the last nn.Linear of the model."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ModelError(f"{type(model).__name__} has no linear classifier head.")
    return names[-1]


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DDP and torch.compile wrap names; a weights file saved from either should still load.
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load every matching tensor; the head may differ in shape (it is left freshly initialised).

    Returns the names left at their initial values. Anything beyond the head missing or mismatched
    means the file belongs to another architecture, which is an error.
    """
    state = _strip_prefixes(state)
    own = model.state_dict()
    head = head_name(model)
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    left = sorted(k for k in own if k not in fitting)
    foreign = [k for k in left if not k.startswith(head + ".")]
    if foreign:
        raise ModelError(
            f"Weights file {source} does not fit this architecture ({len(foreign)} tensors missing or of "
            f"another shape, e.g. {foreign[0]})."
        )
    model.load_state_dict(fitting, strict=False)
    return left


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a plain `torch.save(state_dict)` file or one of our checkpoints (its `model`)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Weights file {path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        raise ModelError(
            f"Weights file {path} is not a readable PyTorch state dict ({type(exc).__name__})."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"Weights file {path} does not hold a state dict of tensors.")
    return obj


def build_model(
    arch: str,
    num_classes: int,
    weights: str | Path | None = None,
    pretrained: bool = False,
    dropout: float | None = None,
) -> nn.Module:
    """Build `arch` for `num_classes`, optionally starting from a local weights file or torchvision's
    ImageNet weights (whose head is replaced to fit the classes); `dropout` replaces the rate of every
    dropout layer (None keeps the architecture's own). Dropout only acts in training: inference and the
    exported model are the same for any rate."""
    builder, tv_weights, _ = _arch(arch)
    if num_classes < 2:
        raise ModelError(f"A classifier needs at least two classes, got {num_classes}.")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ModelError(f"Dropout must lie in [0, 1), got {dropout}.")
    model = builder(num_classes)
    if dropout is not None:
        for layer in model.modules():
            if isinstance(layer, nn.Dropout):
                layer.p = dropout
    if weights is not None and pretrained:
        raise ModelError("Pass either --weights FILE or --pretrained, not both.")
    if weights is not None:
        load_state_into(model, read_weights_file(weights), str(weights))
    elif pretrained:
        if tv_weights is None:
            raise ModelError(f"torchvision has no pretrained weights for {arch}; use --weights FILE.")
        try:
            state = getattr(_zoo(), tv_weights).DEFAULT.get_state_dict(progress=False)
        except Exception as exc:  # offline: URLError / OSError / hub errors
            raise ModelError(
                f"Could not fetch torchvision's pretrained {arch} weights ({type(exc).__name__}); offline, "
                "download them elsewhere and pass --weights FILE."
            ) from None
        load_state_into(model, state, f"torchvision {arch}")
    return model
