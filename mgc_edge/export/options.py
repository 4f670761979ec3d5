"""What a parity check runs on and how (`VerifyOptions`): shared by the reference (reference.py) and the check
(verify.py), so that neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mgc_edge.data.split import SPLITS
from mgc_edge.errors import UserError
from mgc_edge.export.gates import GateOverrides
from mgc_edge.runtime.model.backends import NAMES, check_runtime


@dataclass(frozen=True)
class VerifyOptions:
    """Which images to check and how."""

    data: Path | None = None  # folder-per-class tree instead of the run's split
    split: str = "test"
    max_images: int = 1000  # 0 = all; a seeded random subset otherwise
    batch_size: int = 16
    device: str = "cpu"  # where ONNX Runtime (and PyTorch's reference) run: cpu, auto, cuda[:N]
    gates: GateOverrides = field(default_factory=GateOverrides)
    runtime: str = "onnxruntime"  # the runtime the model is checked in (runtime/backends.py)

    def __post_init__(self) -> None:
        check_runtime(self.runtime)
        if self.runtime != "onnxruntime" and self.device not in ("cpu", "auto"):
            raise UserError(
                f"--device {self.device} chooses where ONNX Runtime runs; {NAMES[self.runtime]} is checked on "
                "the CPU, so leave --device at cpu."
            )
        if self.split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}.")
        if self.batch_size < 2:
            raise UserError(
                f"--batch-size must be at least 2 to check the dynamic batch axis, got {self.batch_size}."
            )
        if self.max_images < 0:
            raise UserError(f"--max-images must be 0 (all) or more, got {self.max_images}.")
