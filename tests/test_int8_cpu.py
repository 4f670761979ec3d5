"""The int8 file stays portable (float biases, standard QDQ) and ONNX Runtime's CPU provider still runs its
quantized layers as fused integer kernels: at load time it quantizes the float biases to int32 itself
(its BiasQuantization pass) and fuses each DequantizeLinear -> Conv / Gemm -> QuantizeLinear group into
QLinearConv / QGemm. A change of exporter or ONNX Runtime that loses the fusion fails here."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from mgc_edge.fileio import file_sha256
from mgc_edge.runtime.model.classifier import Classifier

pytest_plugins = ["export_fixtures"]  # alexnet_export: computed once per session


def _int8(alexnet_export: Any) -> Path:
    return next(m.path for m in alexnet_export.models if m.precision == "int8")


def _optimized_ops(path: Path, dump: Path) -> Counter[str]:
    """The operators of the graph ONNX Runtime runs on the CPU, at the optimisation level the Classifier asks."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(dump)
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(dump)).graph.node)


def test_the_int8_file_keeps_float_biases(alexnet_export: Any) -> None:
    graph = onnx.load(str(_int8(alexnet_export))).graph
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert all(n.input[2] in floats and n.input[2] not in dequantized for n in weighted)
    assert not any(t.data_type == onnx.TensorProto.INT32 for t in graph.initializer)


def test_onnx_runtime_runs_the_quantized_layers_as_fused_int8_kernels(
    alexnet_export: Any, tmp_path: Path
) -> None:
    path = _int8(alexnet_export)
    before = file_sha256(path)
    ops = _optimized_ops(path, tmp_path / "optimized.onnx")
    # alexnet_bn: five convolutions and three linear layers, the first and the last kept in float
    assert ops["QLinearConv"] == 4 and ops["QGemm"] == 2
    assert ops["Conv"] == 1 and ops["Gemm"] == 1
    assert file_sha256(path) == before  # the file on disk is what export wrote


def test_the_classifier_opens_the_int8_file_at_the_level_that_fuses(alexnet_export: Any) -> None:
    clf = Classifier(_int8(alexnet_export), device="cpu")
    level = clf.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
