"""Graph work without the weights (export/weights.py): the export's checks and its fp16 file are exactly what
the plain ONNX and ONNX Runtime calls give, only cheaper. Hand-built models, milliseconds each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx_helpers import tiny_cnn_onnx
from onnxruntime.transformers.float16 import convert_float_to_float16, convert_np_to_float16

from mgc_edge.export.convert import clamp_to_float16, to_fp16, topological_sort
from mgc_edge.export.onnx_export import ExportError, check_onnx
from mgc_edge.export.weights import infer_shapes, weights_aside


@pytest.fixture
def cnn(tmp_path: Path) -> onnx.ModelProto:
    return onnx.load(str(tiny_cnn_onnx(tmp_path / "cnn.onnx")))


def _init(model: onnx.ModelProto, name: str) -> TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def test_weights_are_set_aside_and_always_put_back(cnn: onnx.ModelProto) -> None:
    before = cnn.SerializeToString()
    with pytest.raises(RuntimeError), weights_aside(cnn) as aside:
        assert set(aside) == {"w2", "w3"}  # >= 1024 floats; small tensors (shapes, biases) stay
        assert not _init(cnn, "w2").raw_data and _init(cnn, "b2").raw_data
        raise RuntimeError
    assert cnn.SerializeToString() == before
    # Shape inference on the graph alone gives what it gives on the whole model, weights included.
    full = onnx.shape_inference.infer_shapes(cnn, check_type=True, strict_mode=True)
    assert infer_shapes(cnn, strict=True).SerializeToString() == full.SerializeToString()
    assert cnn.SerializeToString() == before


def _wider(model: onnx.ModelProto) -> None:
    """w3 makes 32 channels where the Gemm after it takes 16: whole data, so only shape inference, from the
    dims of a tensor it runs without, sees it."""
    _init(model, "w3").CopyFrom(numpy_helper.from_array(np.zeros((32, 16, 3, 3), np.float32), "w3"))


def _truncated(model: onnx.ModelProto) -> None:
    t = _init(model, "w3")  # a tensor that shape inference runs without: the checker reads its bytes
    t.raw_data = t.raw_data[:-4]


def _output_type(model: onnx.ModelProto) -> None:
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64


@pytest.mark.parametrize("damage", [_wider, _truncated, _output_type])
def test_check_onnx_refuses_what_the_full_checker_refuses(
    cnn: onnx.ModelProto, damage: Callable[[onnx.ModelProto], None]
) -> None:
    assert check_onnx(cnn, 3, "fp32") == cnn.SerializeToString()  # the bytes to save
    damage(cnn)
    with pytest.raises((onnx.checker.ValidationError, onnx.shape_inference.InferenceError)):
        onnx.checker.check_model(cnn, full_check=True)
        onnx.shape_inference.infer_shapes(cnn, check_type=True, strict_mode=True)
    with pytest.raises(ExportError, match="fails ONNX's checker"):
        check_onnx(cnn, 3, "fp32")


def test_clamp_to_float16_is_onnxruntimes_conversion() -> None:
    edges = [0.0, -0.0, 1e-45, 1e-9, 2.9e-8, 3e-8, 5.9e-8, 5.96e-8, 6e-8, 6.1e-5, 1.0, 65504, 65505, 65519]
    edges += [65520, 7e4, 3e38, np.inf, np.nan]
    rng = np.random.default_rng(0)
    wide = rng.standard_normal(100_000) * 10.0 ** rng.integers(-12, 8, 100_000)
    for x in (np.array(edges + [-e for e in edges], np.float32), wide.astype(np.float32)):
        with np.errstate(over="ignore"):
            ours, theirs = clamp_to_float16(x), convert_np_to_float16(x)
        assert ours.dtype == theirs.dtype == np.float16
        assert np.array_equal(ours.view(np.uint16), theirs.view(np.uint16))


def test_to_fp16_writes_the_file_onnxruntimes_converter_writes(cnn: onnx.ModelProto) -> None:
    before = cnn.SerializeToString()
    theirs = convert_float_to_float16(onnx.load_from_string(before), keep_io_types=True)
    topological_sort(theirs.graph)
    half = to_fp16(cnn)
    assert half.SerializeToString() == theirs.SerializeToString()
    assert cnn.SerializeToString() == before  # the fp32 model is left as it was
    assert _init(half, "w2").data_type == TensorProto.FLOAT16
