"""fp32 ONNX -> fp16 (half weights and compute, float32 I/O) and int8 (static QDQ, calibrated on real frames).

Both work on ONNX files only (no torch), so a model can be converted again later without its checkpoint.
Metadata, checks and the parity gate are the caller's job (see onnx_export.export_run).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.scan import DataError
from mgc_edge.errors import UserError
from mgc_edge.export.weights import infer_shapes
from mgc_edge.images import is_image_name, read_image
from mgc_edge.metadata import INPUT_NAME
from mgc_edge.preprocess import preprocess

MIN_CALIB_IMAGES = 32  # fewer frames give activation ranges that follow a handful of images, not the data
CALIB_METHODS = ("minmax", "percentile", "entropy")
# Architectures whose static int8 model cannot keep to the parity gate, measured on trained models: refused
# up front rather than after minutes of work. EfficientNet-B0 (swish and squeeze-excitation gates after
# depthwise convolutions) kept only ~50 % top-1 agreement and lost ~9 accuracy points with min-max,
# percentile or entropy calibration alike, and with only Conv/Gemm quantized.
INT8_UNSUPPORTED: dict[str, str] = {
    "efficientnet_b0": (
        "its swish and squeeze-excitation activations do not survive per-tensor 8-bit quantization "
        "(about half the top-1 answers change); export it as fp16 or fp32."
    ),
}


class CalibrationError(UserError):
    """int8 calibration cannot run as asked (too few images, no images); the message is one sentence."""


class QuantizationError(UserError):
    """A model cannot be quantized to int8; the message is one sentence."""


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weights and compute in half precision; the input and output stay float32, so every caller feeds
    the same preprocess() output whatever the precision. `model` itself is left as it was.

    ONNX Runtime's own converter (shipped with onnxruntime) puts the I/O casts at the graph edges and leaves
    the ops on its block list in float32. fp16 is a GPU format: ONNX Runtime's CPU provider runs most fp16
    ops through float32 casts, so on a CPU it halves the file but not the time.
    The converter's shape inference runs on the graph alone (weights.py) and its weight conversion through
    `clamp_to_float16`: the same file, 3 s sooner for the demo model.
    """
    from onnxruntime.transformers import float16

    inferred = infer_shapes(model)
    with _patched(float16, "convert_np_to_float16", clamp_to_float16):
        half = float16.convert_float_to_float16(inferred, keep_io_types=True, disable_shape_infer=True)
    topological_sort(half.graph)  # the converter appends its input casts at the end of the node list
    return half


def clamp_to_float16(
    x: np.ndarray, min_positive_val: float = 5.96e-08, max_finite_val: float = 65504.0
) -> np.ndarray:
    """onnxruntime.transformers.float16.convert_np_to_float16 without its debug-log statistics, which cost
    six more passes with index arrays over every weight: nonzero magnitudes below `min_positive_val` and
    finite ones above `max_finite_val` are clamped with their sign kept; 0, inf and NaN stay."""
    lo, hi = min_positive_val, max_finite_val
    x = np.where((x > 0) & (x < lo), lo, x)
    x = np.where((x > -lo) & (x < 0), -lo, x)
    x = np.where((x > hi) & (x < np.inf), hi, x)
    x = np.where((x > -np.inf) & (x < -hi), -hi, x)
    return np.float16(x)


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    """`module.name` replaced for the block (the converter looks the function up at each call)."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder `graph.node` so that every node comes after the producers of its inputs (ONNX requires it),
    keeping the original order wherever it is already valid."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        left = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                left.append(node)
        if len(left) == len(pending):  # a cycle or an input nobody produces: leave it to the checker
            ordered += left
            break
        pending = left
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def check_int8_arch(arch: str) -> None:
    """Refuse, before any work, an arch whose int8 model is known not to keep to the parity gate."""
    if arch in INT8_UNSUPPORTED:
        raise QuantizationError(f"{arch} cannot be exported as int8: {INT8_UNSUPPORTED[arch]}")


WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds preprocess()ed frames to ONNX Runtime's calibrator one batch at a time (bounded memory)."""

    def __init__(self, paths: Sequence[Path], spec: PreprocessSpec, batch_size: int = 16) -> None:
        self.paths = list(paths)
        self.spec = spec
        self.batch_size = max(1, batch_size)
        self._next = 0

    def __len__(self) -> int:
        return len(self.paths)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.paths):
            return None
        chunk = self.paths[self._next : self._next + self.batch_size]
        self._next += len(chunk)
        return {INPUT_NAME: preprocess([read_image(p) for p in chunk], self.spec)}

    def rewind(self) -> None:
        self._next = 0


def pick_calibration_images(candidates: Sequence[Path], count: int, seed: int = 0) -> list[Path]:
    """`count` frames drawn without replacement (deterministic per seed), or refuse when there are too few.

    A random draw, not the first N, so that every clip and class has its chance to set the ranges.
    """
    if count < MIN_CALIB_IMAGES:
        raise CalibrationError(
            f"--calib-images must be at least {MIN_CALIB_IMAGES} to calibrate int8, got {count}."
        )
    if len(candidates) < MIN_CALIB_IMAGES:
        raise CalibrationError(
            f"Only {len(candidates)} image(s) are available to calibrate int8; at least {MIN_CALIB_IMAGES} "
            "are needed (pass --calib-data DIR with more images)."
        )
    if len(candidates) <= count:
        return list(candidates)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(candidates), size=count, replace=False))
    return [candidates[i] for i in picked]


def images_under(folder: str | Path) -> list[Path]:
    """Every image file under `folder` (recursively, hidden entries skipped), in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Calibration folder {folder} does not exist.")
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if is_image_name(f)]
    return out


def float_ends(graph: onnx.GraphProto) -> list[str]:
    """The first and the last weighted layer, which int8 keeps in float.

    The first sees the raw normalised image through 8 bits and the last writes the logits the top-1 is read
    from: on the demo model (alexnet_bn, 96x96) quantizing every layer agreed with fp32 on 97.4 % of the test
    frames, keeping these two in float on 99.6 %, for 0.2 ms more per frame and under 1 % of the weights.
    """
    weighted = [n.name for n in graph.node if n.op_type in WEIGHTED_OPS]
    return list(dict.fromkeys(weighted[:1] + weighted[-1:]))


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    reader: ImageCalibrationReader,
    method: str = "minmax",
) -> None:
    """Static int8 quantization in the standard QDQ form that ONNX Runtime, OpenVINO, OpenCV's DNN and
    TensorRT all read: int8 weights symmetric per output channel, int8 activations symmetric (zero point 0),
    biases left in float, the first and last weighted layers in float (`float_ends`).

    quant_pre_process runs shape inference only: its default also runs ONNX Runtime's graph optimiser and
    saves the graph ONNX Runtime made for itself, which declares every operator domain ONNX Runtime knows
    (com.microsoft.nchwc, org.pytorch.aten, ...) and ties the file to ONNX Runtime. Batch norm is already
    folded by the torch exporter, and each runtime optimises the graph at load time.
    Biases stay float because an int32 DequantizeLinear on a bias is what TensorRT's parser and OpenCV's DNN
    refuse; the runtimes that want an int32 bias compute it from the float one when they fuse the layer.
    Symmetric activations (what TensorRT requires) cost the demo model 0.7 points of top-1 agreement against
    asymmetric ones (98.9 vs 99.6 % of 730 test frames); both keep well inside the gates.
    """
    if method not in CALIB_METHODS:
        raise CalibrationError(f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {method!r}.")
    if len(reader) < MIN_CALIB_IMAGES:
        raise CalibrationError(
            f"Only {len(reader)} image(s) to calibrate int8 from; at least {MIN_CALIB_IMAGES} are needed."
        )
    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]

    dst = Path(dst)
    reader.rewind()
    # Intermediate files are as big as the model: keep them beside it, not in a small /tmp.
    with tempfile.TemporaryDirectory(prefix=".mgc-int8-", dir=dst.parent) as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        quant_pre_process(str(src), str(pre), skip_optimization=True)
        quantize_static(
            str(pre),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate,
            nodes_to_exclude=float_ends(onnx.load(str(pre), load_external_data=False).graph),
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )
    if not any(
        n.op_type == "QuantizeLinear" for n in onnx.load(str(dst), load_external_data=False).graph.node
    ):
        raise QuantizationError(f"ONNX Runtime's quantizer found nothing to quantize in {Path(src).name}.")
