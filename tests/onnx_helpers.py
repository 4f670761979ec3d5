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


def tiny_cnn_onnx(
    path: Path, labels: tuple[str, ...] = ("1", "2", "3"), size: int = 16, seed: int = 0
) -> Path:
    """A hand-built CNN with biases and our metadata (conv-relu x3 with a max pool, global average pool, two
    linear layers): five weighted layers, so int8 quantizes the three in between (`float_ends`)."""
    rng = np.random.default_rng(seed)
    c = len(labels)
    inits: list[onnx.TensorProto] = []

    def param(name: str, *shape: int) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        value = rng.normal(scale=1 / np.sqrt(fan_in), size=shape).astype(np.float32)
        inits.append(numpy_helper.from_array(value, name))
        return name

    nodes = [
        helper.make_node("Conv", ["images", param("w1", 8, 3, 3, 3), param("b1", 8)], ["c1"], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", param("w2", 16, 8, 3, 3), param("b2", 16)], ["c2"], pads=[1] * 4),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p2", param("w3", 16, 16, 3, 3), param("b3", 16)], ["c3"], pads=[1] * 4),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", param("w4", 16, 16), param("b4", 16)], ["l4"], transB=1),
        helper.make_node("Relu", ["l4"], ["r4"]),
        helper.make_node("Gemm", ["r4", param("w5", c, 16), param("b5", c)], ["logits"], transB=1),
    ]
    for i, node in enumerate(nodes):  # the quantizer excludes the float ends by node name
        node.name = f"{node.op_type.lower()}_{i}"
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", c])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    meta = ModelMetadata(
        labels=Labels(labels, tuple(f"class {x}" for x in labels)),
        preprocess=PreprocessSpec(size=(size, size)),
        arch="tiny_cnn",
    )
    for key, value in meta.to_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def onnxruntime_only(src: Path, dst: Path) -> Path:
    """A copy of a tiny_onnx model that only ONNX Runtime runs: the images pass through a MatMul with the
    inverse of an identity matrix, computed by ONNX Runtime's private `com.microsoft.Inverse` (same answers)."""
    model = onnx.load(str(src))
    width = model.graph.input[0].type.tensor_type.shape.dim[3].dim_value
    model.graph.initializer.append(numpy_helper.from_array(np.eye(width, dtype=np.float32), "eye"))
    first = model.graph.node[0]
    nodes = [
        helper.make_node("Inverse", ["eye"], ["inv"], domain="com.microsoft"),
        helper.make_node("MatMul", [first.input[0], "inv"], ["same_images"]),
    ]
    first.input[0] = "same_images"
    for i, node in enumerate(nodes):
        model.graph.node.insert(i, node)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return dst


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
