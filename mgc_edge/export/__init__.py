"""Export: checkpoint -> .onnx (fp32 / fp16 / int8) with a parity gate, and verify().

Names are loaded on first use, so that `mgc_edge.export.verify` (which checks a model on its own without
torch) can be imported on an edge box where the exporter's torch and onnx are absent.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "export_onnx": "onnx_export",
    "export_run": "onnx_export",
    "ExportOptions": "onnx_export",
    "ExportResult": "onnx_export",
    "ExportedModel": "onnx_export",
    "ExportError": "onnx_export",
    "DEFAULT_OPSET": "onnx_export",
    "parse_precisions": "onnx_export",
    "to_fp16": "convert",
    "quantize_int8": "convert",
    "ImageCalibrationReader": "convert",
    "CalibrationError": "convert",
    "QuantizationError": "convert",
    "verify_model": "verify",
    "VerifyOptions": "verify",
    "GateOverrides": "verify",
    "Gates": "verify",
    "ParityReport": "verify",
    "ModelMismatchError": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
