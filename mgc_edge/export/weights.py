"""Graph-level work on an ONNX model without its weights: shape inference copies a model in and out of C++
(serialise, infer, parse), which for the 228 MB demo model costs most of a second for a graph of a few
kilobytes. Types and shapes come from an initializer's dims and data type, never from its values, except for
shape-like inputs (Reshape's shape, Resize's scales, ...), which are small and stay in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import onnx
from onnx import TensorProto

# Only float tensors at least this large are set aside: weights, never a shape or a scale vector.
MIN_ELEMENTS = 1024
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


def _elements(tensor: TensorProto) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n


@contextlib.contextmanager
def weights_aside(model: onnx.ModelProto) -> Iterator[dict[str, bytes]]:
    """Take the raw data of the main graph's large float initializers out of `model` for the block (yielded
    by name) and put it back afterwards, whatever happens inside."""
    aside = {
        t.name: t.raw_data
        for t in model.graph.initializer
        if t.data_type in _FLOATS and t.raw_data and _elements(t) >= MIN_ELEMENTS
    }
    for t in model.graph.initializer:
        if t.name in aside:
            t.ClearField("raw_data")
    try:
        yield aside
    finally:
        put_back(model, aside)


def put_back(model: onnx.ModelProto, aside: dict[str, bytes]) -> None:
    """Give the initializers named in `aside` their raw data again (in a copy made inside weights_aside)."""
    for t in model.graph.initializer:
        if t.name in aside:
            t.raw_data = aside[t.name]


def infer_shapes(model: onnx.ModelProto, strict: bool = False) -> onnx.ModelProto:
    """onnx.shape_inference.infer_shapes(model, check_type=strict, strict_mode=strict), computed on the graph
    alone: the result carries the same weights as `model`, which is left as it was."""
    with weights_aside(model) as aside:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=strict, strict_mode=strict)
    put_back(inferred, aside)
    return inferred
