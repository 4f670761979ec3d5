"""Checkpoint -> one self-contained .onnx file that carries its labels and preprocessing, and the export
pipeline around it: convert, prove parity with the checkpoint, and only then move each file into place."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from mgc_edge import __version__
from mgc_edge.data.scan import DataError
from mgc_edge.errors import UserError, first_line
from mgc_edge.export.convert import (
    CALIB_METHODS,
    CalibrationError,
    ImageCalibrationReader,
    check_int8_arch,
    images_under,
    pick_calibration_images,
    quantize_int8,
    to_fp16,
)
from mgc_edge.export.gates import ParityReport, report_path_for, write_report
from mgc_edge.export.portable import private_domains, strip_unused_opsets
from mgc_edge.export.reference import reference_logits, reference_path_for, save_reference
from mgc_edge.export.verify import VerifyOptions, verify_model
from mgc_edge.export.weights import weights_aside
from mgc_edge.fileio import file_sha256, temp_path
from mgc_edge.metadata import INPUT_NAME, OUTPUT_NAME, PRECISIONS, PREFIX, ModelMetadata
from mgc_edge.train import rundir
from mgc_edge.train.checkpoint import Checkpoint, load_checkpoint
from mgc_edge.train.rundir import run_split

# Opset 18: what the current (dynamo) exporter emits natively, so no version conversion runs; ONNX Runtime
# has run it since 1.14, and its quantizer needs >= 13 for per-channel QDQ (the axis attribute).
DEFAULT_OPSET = 18
MIN_OPSET = 18
BATCH_DIM = "batch"
FAILED_TAG = "FAILED"  # model.int8.onnx that fails its gate is kept as model.int8.FAILED.onnx


class ExportError(UserError):
    """A model cannot be exported as asked; the message is one sentence."""


# --- one fp32 file ------------------------------------------------------------------------------------------


def training_metrics(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint's own figures, plus the run's test figures when they describe this very checkpoint."""
    metrics: dict[str, Any] = {"epoch": checkpoint.epoch, **checkpoint.metrics}
    report = checkpoint.path.parent / rundir.REPORT
    if checkpoint.path.name == rundir.BEST and report.is_file():
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            test = json.loads(report.read_text(encoding="utf-8")).get("test") or {}
            keys = ("top1", "top5", "balanced_accuracy", "macro_f1")
            metrics["test"] = {k: test[k] for k in keys if isinstance(test.get(k), (int, float))}
    return json.loads(json.dumps(metrics, default=float))  # plain JSON types only


def model_metadata(
    checkpoint: Checkpoint, precision: str, checkpoint_sha256: str | None = None
) -> ModelMetadata:
    """Everything the runtime needs, taken from the checkpoint (never guessed from the graph)."""
    return ModelMetadata(
        labels=checkpoint.labels,
        preprocess=checkpoint.preprocess,
        arch=checkpoint.arch,
        precision=precision,
        metrics=training_metrics(checkpoint),
        checkpoint_sha256=checkpoint_sha256
        if checkpoint_sha256 is not None
        else file_sha256(checkpoint.path),
        package_version=__version__,
    )


def attach_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> None:
    """Replace every `mgc_edge.*` entry of `metadata_props` with `meta` (other tools' entries stay)."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*keep, *sorted(meta.to_props().items())]:
        model.metadata_props.add(key=key, value=value)


def check_onnx(model: onnx.ModelProto, num_classes: int, name: str) -> bytes:
    """ONNX's full checker and strict shape inference must pass, only the standard operator domains may
    appear (a file every runtime reads), and the graph must keep the contract: `images` [batch, 3, H, W] in,
    `logits` [batch, C] out, with a symbolic (dynamic) batch axis. Returns the bytes that were checked: the
    file to save, serialised once."""
    private = private_domains(model)
    if private:
        raise ExportError(
            f"The exported graph {name} uses operator domains that only some runtimes know "
            f"({', '.join(private)}); a portable file uses the standard ONNX domains only."
        )
    data = model.SerializeToString()
    try:
        # What check_model(full_check=True) runs, each once: the checker over every byte, then strict shape
        # inference with type checks, on the graph alone (weights.py), whose result the contract is read from.
        onnx.checker.check_model(data)
        with weights_aside(model):
            inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"The exported graph {name} fails ONNX's checker ({first_line(exc)}).") from None
    graph = inferred.graph

    def dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]

    ins, outs = [dims(i) for i in graph.input], [dims(o) for o in graph.output]
    ok = (
        [i.name for i in graph.input] == [INPUT_NAME]
        and [o.name for o in graph.output] == [OUTPUT_NAME]
        and len(ins[0]) == 4
        and isinstance(ins[0][0], str)
        and ins[0][1] == 3
        and len(outs[0]) == 2
        and isinstance(outs[0][0], str)
        and outs[0][1] == num_classes
    )
    if not ok:
        raise ExportError(
            f"The exported graph {name} does not keep the model contract: inputs {ins}, outputs {outs}; "
            f"expected {INPUT_NAME} [batch, 3, H, W] and {OUTPUT_NAME} [batch, {num_classes}]."
        )
    return data


def finish(model: onnx.ModelProto, meta: ModelMetadata, num_classes: int) -> bytes:
    """The last steps of every precision: unused operator imports dropped, our metadata attached, checked;
    returns the file's bytes."""
    strip_unused_opsets(model)
    attach_metadata(model, meta)
    return check_onnx(model, num_classes, meta.precision)


def torch_to_onnx(model: nn.Module, size: tuple[int, int], opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The eval-mode model through the current (dynamo) exporter, with a dynamic batch axis.

    The exporter's own optimiser (onnxscript, `optimize=True`) constant-folds the eval-mode batch norms
    into the convolutions in float32; nothing is folded by hand, and ONNX Runtime would fuse any left.
    """
    h, w = size
    example = torch.zeros(2, 3, h, w)  # batch 2: a batch of 1 would let the exporter specialise on it
    program = torch.onnx.export(
        model.eval(),
        (example,),
        None,
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim(BATCH_DIM)},),
        opset_version=opset,
        external_data=False,
        optimize=True,
        verbose=False,
    )
    if program is None:  # only when the legacy exporter ran, which dynamo=True rules out
        raise ExportError("torch.onnx.export returned no program.")
    return program.model_proto


def save_onnx(model: onnx.ModelProto | bytes, path: str | Path) -> None:
    """One self-contained file: every weight inside, none in external data files. `model` may be the bytes
    finish() returned (no second serialisation of a 228 MB model)."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    Path(path).write_bytes(data)


def check_opset(opset: int) -> None:
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"--opset must lie between {MIN_OPSET} and {newest} (this onnx), got {opset}.")


# --- the pipeline -------------------------------------------------------------------------------------------


def parse_precisions(values: Sequence[str]) -> tuple[str, ...]:
    """'fp32', 'fp16,int8', 'all', repeated or comma-separated -> the distinct precisions in a fixed order."""
    wanted: set[str] = set()
    for value in values or ("fp32",):
        for part in str(value).lower().replace(" ", "").split(","):
            if part == "all":
                wanted.update(PRECISIONS)
            elif part in PRECISIONS:
                wanted.add(part)
            elif part:
                raise ExportError(f"--precision must be fp32, fp16, int8 or all, got {part!r}.")
    if not wanted:
        raise ExportError("Give at least one --precision (fp32, fp16, int8 or all).")
    return tuple(p for p in PRECISIONS if p in wanted)


@dataclass(frozen=True)
class ExportOptions:
    """What `mgc-edge export` was asked to make."""

    precisions: tuple[str, ...] = ("fp32",)
    out: Path | None = None  # a file (one precision), the fp32 name others derive from, or a folder
    opset: int = DEFAULT_OPSET
    calib_images: int = 256
    calib_data: Path | None = None  # images to calibrate int8 on instead of the run's training split
    calib_method: str = "minmax"
    force: bool = False
    verify: bool = True
    check: VerifyOptions = field(default_factory=VerifyOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "precisions", parse_precisions(self.precisions))
        check_opset(self.opset)
        if self.calib_method not in CALIB_METHODS:
            raise ExportError(
                f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {self.calib_method!r}."
            )


@dataclass(frozen=True)
class ExportedModel:
    """One file that export produced, where it lies now, and what its gate said."""

    precision: str
    path: Path
    size_mb: float
    report: ParityReport | None  # None with --no-verify
    report_path: Path | None

    @property
    def passed(self) -> bool:
        return self.report is None or self.report.passed


@dataclass(frozen=True)
class ExportResult:
    checkpoint: Path
    models: tuple[ExportedModel, ...]

    @property
    def ok(self) -> bool:
        return all(m.passed for m in self.models)


def output_paths(checkpoint: Checkpoint, precisions: Sequence[str], out: Path | None) -> dict[str, Path]:
    """Where each precision goes: <run>/model.onnx, model.fp16.onnx, model.int8.onnx by default.

    `out` ending in .onnx names the file itself when one precision is asked for, and the base name with
    several (edge.onnx -> edge.fp16.onnx ...); any other `out` is a folder that takes the default names.
    """
    if out is None or out.is_dir() or out.suffix != ".onnx":
        base = (out if out is not None else checkpoint.path.parent) / rundir.MODEL
    elif len(precisions) == 1:
        return {precisions[0]: out}
    else:
        base = out
    stem = base.name[: -len(".onnx")]
    return {p: base.with_name(stem + ("" if p == "fp32" else f".{p}") + ".onnx") for p in precisions}


def failed_path(final: Path) -> Path:
    """model.int8.onnx -> model.int8.FAILED.onnx: a name nobody mistakes for a model that passed."""
    stem = final.name[: -len(".onnx")] if final.name.endswith(".onnx") else final.name
    return final.with_name(f"{stem}.{FAILED_TAG}.onnx")


def calibration_candidates(checkpoint: Checkpoint, calib_data: Path | None) -> list[Path]:
    """Frames to calibrate int8 on: the run's training split (what the model learned from), or a folder."""
    if calib_data is not None:
        return images_under(calib_data)
    root = Path(checkpoint.config.data)
    try:
        samples = run_split(
            checkpoint.path.parent, root, checkpoint.labels.ids, "train", "pass --calib-data DIR"
        )
    except DataError as exc:
        raise CalibrationError(f"int8 calibration needs the run's training images: {exc}") from None
    return [root / s.path for s in samples]


def _size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def export_run(
    source: str | Path,
    options: ExportOptions = ExportOptions(),
    on_step: Callable[[str], None] | None = None,
) -> ExportResult:
    """`mgc-edge export`: every asked precision, each proven against the checkpoint before it is moved into
    place. A model that fails its gate is kept as *.FAILED.onnx beside its report; the result says so.

    Everything that can be refused is refused before the slow work: a bad checkpoint, existing outputs,
    missing verification or calibration images, an arch that int8 cannot serve.
    """
    step = on_step or (lambda _msg: None)
    ckpt = load_checkpoint(source)
    precisions = options.precisions
    paths = output_paths(ckpt, precisions, options.out)
    # A model's report and reference too: one beside a model that is gone is no less a file to keep.
    existing = [
        f for p in paths.values() for f in (p, report_path_for(p), reference_path_for(p)) if f.exists()
    ]
    if existing and not options.force:
        raise ExportError(f"{existing[0]} already exists; pass --force to replace it.")
    calib: list[Path] = []
    if "int8" in precisions:
        check_int8_arch(ckpt.arch)
        calib = pick_calibration_images(
            calibration_candidates(ckpt, options.calib_data), options.calib_images
        )
    sha = file_sha256(ckpt.path)
    net = ckpt.build()  # once: the reference and the exporter run the same module
    reference = None
    if options.verify:
        step(f"running {ckpt.path} in PyTorch for the parity check")
        # also fails early when the images are gone
        reference = reference_logits(ckpt, options.check, model=net, sha256=sha)

    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        temps = {p: stack.enter_context(temp_path(paths[p])) for p in precisions}
        fp32 = temps.get("fp32") or stack.enter_context(
            temp_path(next(iter(paths.values())).with_name("fp32"))
        )
        step(f"exporting {ckpt.arch} to ONNX (opset {options.opset})")
        proto = torch_to_onnx(net, ckpt.preprocess.size, options.opset)
        del net
        save_onnx(finish(proto, model_metadata(ckpt, "fp32", sha), ckpt.num_classes), fp32)
        if "fp16" in precisions:
            step("converting to fp16")
            half = to_fp16(proto)  # the model just saved, still in memory: not read back from the file
            save_onnx(finish(half, model_metadata(ckpt, "fp16", sha), ckpt.num_classes), temps["fp16"])
            del half
        del proto
        if "int8" in precisions:
            step(
                f"quantizing to int8 (symmetric QDQ, per-channel weights, {options.calib_method} calibration "
                f"on {len(calib)} images)"
            )
            quantize_int8(
                fp32, temps["int8"], ImageCalibrationReader(calib, ckpt.preprocess), options.calib_method
            )
            q = onnx.load(str(temps["int8"]))
            save_onnx(finish(q, model_metadata(ckpt, "int8", sha), ckpt.num_classes), temps["int8"])
            del q

        models = []
        for precision in precisions:
            tmp, final = temps[precision], paths[precision]
            report = None
            if reference is not None:
                step(f"verifying {final.name}")
                report = verify_model(tmp, options=options.check, write=False, reference=reference)
            kept = final if report is None or report.passed else failed_path(final)
            os.replace(tmp, kept)
            report_path = None
            if report is not None and reference is not None:
                report = dataclasses.replace(report, model=str(kept))
                report_path = write_report(report)
                save_reference(reference, reference_path_for(kept))  # for a later `verify` of this file
            if kept == final:  # stale copies from an earlier export would only mislead
                failed = failed_path(final)
                for stale in (failed, report_path_for(failed), reference_path_for(failed)):
                    stale.unlink(missing_ok=True)
                if report is None:
                    report_path_for(final).unlink(missing_ok=True)
                    reference_path_for(final).unlink(missing_ok=True)
            models.append(ExportedModel(precision, kept, _size_mb(kept), report, report_path))
    return ExportResult(ckpt.path, tuple(models))
