"""Plain helpers for the export / verify / runtime tests: hand-built and deliberately damaged ONNX models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mgc_edge.config import PreprocessSpec
from mgc_edge.labels import Labels
from mgc_edge.metadata import ModelMetadata


def tiny_onnx(
    path: Path,
    labels: tuple[str, ...] = ("1", "2", "3"),
    size: tuple[int, int] = (16, 16),
    metadata: bool = True,
    input_name: str = "images",
    seed: int = 0,
) -> Path:
    """A hand-built classifier (global average pool -> linear) with our metadata: no torch, built in
    milliseconds, and its logits are easy to predict."""
    rng = np.random.default_rng(seed)
    c = len(labels)
    w = numpy_helper.from_array(rng.normal(size=(c, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(c,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3, *size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", c])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    if metadata:
        meta = ModelMetadata(
            labels=Labels(labels, tuple(f"class {x}" for x in labels)),
            preprocess=PreprocessSpec(size=size),
            arch="tiny",
            metrics={"val": {"acc": 0.5}},
        )
        for key, value in meta.to_props().items():
            model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def set_props(src: Path, dst: Path, **changes: str) -> Path:
    """A copy of an exported model with some `mgc_edge.*` metadata entries replaced (keys without prefix)."""
    model = onnx.load(str(src))
    for prop in model.metadata_props:
        short = prop.key.removeprefix("mgc_edge.")
        if short in changes:
            prop.value = changes[short]
    onnx.save(model, str(dst))
    return dst


def classifier_weight(model: onnx.ModelProto) -> onnx.TensorProto:
    """The stored weight tensor of the last Gemm / MatMul (the classifier head), through an int8 model's
    DequantizeLinear if there is one."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    head = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    name = head.input[1]
    while name not in inits:
        name = producers[name].input[0]  # DequantizeLinear / Cast / Transpose back to the stored tensor
    return inits[name]


def perturb_head(src: Path, dst: Path, mode: str = "roll") -> Path:
    """A copy whose classifier weights are deliberately wrong: `roll` swaps the classes' rows (top-1 moves),
    `nudge` makes them 1 % larger (probabilities move, top-1 mostly does not)."""
    model = onnx.load(str(src))
    tensor = classifier_weight(model)
    arr = numpy_helper.to_array(tensor).copy()
    # Gemm with transB stores [C, K]; MatMul / Gemm without it [K, C]: roll along the class axis.
    class_axis = 0 if arr.shape[0] < arr.shape[1] else 1
    if mode == "roll":
        arr = np.roll(arr, 1, axis=class_axis)
    else:  # 1 % larger: every logit grows a little, the ranking barely moves
        arr = (arr * 1.01).astype(arr.dtype) if arr.dtype.kind == "f" else arr // 2
    tensor.CopyFrom(numpy_helper.from_array(arr, tensor.name))
    onnx.save(model, str(dst))
    return dst


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst
