"""The parity gates and the report `verify` writes: thresholds per precision, one result per gate, and the
report as JSON beside the model. Plain data, no ONNX Runtime and no torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgc_edge.errors import UserError
from mgc_edge.fileio import write_json
from mgc_edge.metadata import PRECISIONS

REPORT_SUFFIX = ".verify.json"
MAX_BATCH_PROB_DIFF = 1e-3  # batch 1 vs batched: the same model, only the kernels' summation order differs


@dataclass(frozen=True)
class GateOverrides:
    """Thresholds a user sets; None keeps the default for the model's precision."""

    min_agreement: float | None = None  # fraction of images whose top-1 matches PyTorch's
    max_prob_diff: float | None = None  # largest |p_onnx - p_torch| over all images and classes
    max_acc_drop: float | None = None  # accuracy (fraction) the model may lose against the checkpoint

    def __post_init__(self) -> None:
        for name in ("min_agreement", "max_acc_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UserError(f"{name.replace('_', ' ')} must lie between 0 and 1, got {value}.")
        if self.max_prob_diff is not None and not 0.0 <= self.max_prob_diff <= 1.0:
            raise UserError(f"The probability tolerance must lie between 0 and 1, got {self.max_prob_diff}.")


@dataclass(frozen=True)
class Gates:
    """What a model must show to leave `export`; the defaults are the issue's, per precision."""

    min_agreement: float
    max_prob_diff: float | None = None
    max_acc_drop: float | None = None
    max_batch_prob_diff: float = MAX_BATCH_PROB_DIFF

    @classmethod
    def for_precision(cls, precision: str, overrides: GateOverrides | None = None) -> Gates:
        """fp32 must agree everywhere and match probabilities to 1e-4; fp16 agree on 99 %; int8 agree on
        98 % and lose at most one accuracy point."""
        if precision not in PRECISIONS:
            raise UserError(f"Precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
        base = {
            "fp32": cls(min_agreement=1.0, max_prob_diff=1e-4),
            "fp16": cls(min_agreement=0.99),
            "int8": cls(min_agreement=0.98, max_acc_drop=0.01),
        }[precision]
        if overrides is None:
            return base
        changes = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
        return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class GateResult:
    """One gate: the measured figure, its limit, and whether it held."""

    name: str
    value: float
    limit: float
    passed: bool
    unit: str = ""  # "%": fractions shown as percentages; "points": accuracy drops; "bool": yes/no; "": raw

    def sentence(self) -> str:
        """'top-1 agreement 96.0% is below the 98.0% gate by 2.0 points.' and the like."""
        if self.unit == "bool":
            return f"{self.name}: {'ok' if self.passed else 'FAILED'}."
        v = _fmt(self.value, self.unit)
        lim = f"{100 * self.limit:.2f}-point" if self.unit == "points" else _fmt(self.limit, self.unit)
        if self.passed:
            return f"{self.name} {v} is within the {lim} gate."
        lower_is_better = self.name not in _HIGHER_IS_BETTER
        gap = abs(self.value - self.limit)
        by = f"{100 * gap:.1f} points" if self.unit == "%" else _fmt(gap, self.unit)
        verb = "exceeds" if lower_is_better else "is below"
        return f"{self.name} {v} {verb} the {lim} gate by {by}."


_HIGHER_IS_BETTER = {"top-1 agreement"}


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * value:.1f}%"
    if unit == "points":
        return f"{100 * value:.2f} points"
    return f"{value:.2e}"


@dataclass(frozen=True)
class ParityReport:
    """Everything `verify` measured; written as JSON beside the model."""

    model: str
    precision: str
    arch: str
    checkpoint: str | None  # None: the model was checked alone
    source: str  # which images
    n_images: int
    batch_sizes: tuple[int, ...]
    batch_prob_max_abs: float  # batch 1 vs batched, ONNX side
    gates: tuple[GateResult, ...]
    thresholds: Gates | None = None
    logits_max_abs: float | None = None  # the figures against PyTorch (None when checked alone)
    logits_mean_abs: float | None = None
    probs_max_abs: float | None = None
    probs_mean_abs: float | None = None
    agreement: float | None = None
    acc_model: float | None = None  # the ONNX model's top-1 on the labelled images
    acc_checkpoint: float | None = None  # PyTorch's top-1 on the same images
    notes: tuple[str, ...] = ()
    provider: str | None = None  # the ONNX Runtime execution provider that ran the model
    reference_device: str | None = None  # where PyTorch ran the reference ("cpu", "cuda:0")
    reference_file: str | None = None  # the stored reference reused (reference.py); None: PyTorch ran for it
    runtime: str = "onnxruntime"  # which runtime ran the model (runtime/backends.py RUNTIMES)
    runtime_version: str | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def acc_drop(self) -> float | None:
        if self.acc_model is None or self.acc_checkpoint is None:
            return None
        return self.acc_checkpoint - self.acc_model

    def failures(self) -> list[str]:
        """One sentence per failed gate."""
        return [g.sentence() for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["passed"] = self.passed
        out["acc_drop"] = self.acc_drop
        out["failures"] = self.failures()
        return out


def report_path_for(model: str | Path) -> Path:
    """model.int8.onnx -> model.int8.verify.json, beside it."""
    model = Path(model)
    stem = model.name[: -len(".onnx")] if model.name.endswith(".onnx") else model.name
    return model.with_name(stem + REPORT_SUFFIX)


def write_report(report: ParityReport, path: str | Path | None = None) -> Path:
    """Write the report atomically (beside the model unless told otherwise)."""
    path = Path(path) if path is not None else report_path_for(report.model)
    write_json(path, report.to_dict())
    return path
