"""Portable exports: every precision `export` writes is standard ONNX that OpenVINO and OpenCV's DNN module load
and run like ONNX Runtime does; int8 is the symmetric QDQ form TensorRT also takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from helpers import write_image
from onnx import helper, numpy_helper
from onnx_helpers import tiny_cnn_onnx, tiny_onnx

from mgc_edge.export.convert import ImageCalibrationReader, quantize_int8
from mgc_edge.export.onnx_export import ExportError, check_onnx
from mgc_edge.export.portable import STANDARD_DOMAINS, private_domains, strip_unused_opsets
from mgc_edge.images import read_images
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.train.checkpoint import load_checkpoint
from mgc_edge.train.rundir import run_split

pytest_plugins = ["export_fixtures"]  # alexnet_export, resnet_export, openvino: computed once per session

PRECISIONS = ("fp32", "fp16", "int8")
EXPORTS = ("alexnet_export", "resnet_export")  # the default arch (its graph as 64x64 makes it), and margins
MIN_AGREEMENT = 0.99


def standard_only(model: onnx.ModelProto) -> list[str]:
    """What ties a file to one runtime: a non-standard domain in its imports or on a node (checked here
    without the library's own helper, so that a bug there cannot hide one)."""
    bad = [f"imports {o.domain}" for o in model.opset_import if o.domain not in STANDARD_DOMAINS]
    bad += [f"node {n.op_type} in {n.domain}" for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    return bad + [f"local function {f.name}" for f in model.functions]


def qdq_problems(model: onnx.ModelProto) -> list[str]:
    """Everything that keeps an int8 file from being the standard symmetric QDQ form: int8 zero points of 0
    on every QuantizeLinear / DequantizeLinear, per-output-channel int8 weights, float biases."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    problems = [f"int32 tensor {name}" for name, a in inits.items() if a.dtype == np.int32]
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits.get(n.input[2]) if len(n.input) > 2 else None
            if zp is None or zp.dtype != np.int8 or zp.any():
                problems.append(f"{n.name}: zero point {zp!r} is not int8 0")
        if n.op_type not in ("Conv", "Gemm") or n.input[1] not in producer:
            continue
        dq = producer[n.input[1]]
        weight, scale = inits.get(dq.input[0]), inits.get(dq.input[1])
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if dq.op_type != "DequantizeLinear" or weight is None or weight.dtype != np.int8:
            problems.append(f"{n.name}: weights are not stored as int8")
        elif scale is None or scale.shape != (weight.shape[0],) or axis != 0:
            problems.append(f"{n.name}: weights are not quantized per output channel")
        if len(n.input) > 2 and n.input[2] and n.input[2] not in inits:
            problems.append(f"{n.name}: bias is not a float initializer")
    return problems


# --- the format, on hand-built models (fast) ---------------------------------------------------------------


def test_a_runtime_private_domain_is_refused_and_an_unused_import_dropped(tmp_path: Path) -> None:
    model = onnx.load(str(tiny_onnx(tmp_path / "m.onnx")))
    check_onnx(model, 3, "fp32")
    # What ONNX Runtime's saved optimised graphs declare: every domain it knows, used or not.
    model.opset_import.extend(
        [helper.make_opsetid("com.microsoft.nchwc", 1), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    assert private_domains(model) == ["com.microsoft.nchwc"]
    with pytest.raises(
        ExportError, match=r"int8 uses operator domains that only some runtimes know \(com\.mic"
    ):
        check_onnx(model, 3, "int8")
    strip_unused_opsets(model)
    assert [o.domain for o in model.opset_import] == [""] and private_domains(model) == []
    check_onnx(model, 3, "int8")
    # A node only ONNX Runtime knows keeps its domain's import and is refused.
    model.graph.node[0].domain = "com.microsoft"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    strip_unused_opsets(model)
    assert private_domains(model) == ["com.microsoft"]
    with pytest.raises(
        ExportError, match=r"\(com\.microsoft\); a portable file uses the standard ONNX domains"
    ):
        check_onnx(model, 3, "fp32")


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny_cnn_onnx and its int8 model from the export's own quantize_int8, calibrated on 32 noise images."""
    root = tmp_path_factory.mktemp("tiny_int8")
    src = tiny_cnn_onnx(root / "fp32.onnx")
    rng = np.random.default_rng(0)
    images = [
        write_image(root / "calib" / f"{i}.png", rng.integers(0, 256, (20, 20, 3), np.uint8))
        for i in range(32)
    ]
    dst = root / "int8.onnx"
    quantize_int8(src, dst, ImageCalibrationReader(images, Classifier(src, device="cpu").spec))
    return src, dst


def test_int8_is_standard_symmetric_qdq_with_float_ends(tiny_int8: tuple[Path, Path]) -> None:
    model = onnx.load(str(tiny_int8[1]))
    assert standard_only(model) == [] and [o.domain for o in model.opset_import] == [""]
    onnx.checker.check_model(model, full_check=True)
    assert qdq_problems(model) == []
    ops = [n.op_type for n in model.graph.node]
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(ops)
    # The first and last weighted layers read float weights, the two between int8 ones.
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    weighted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert [n.input[1] in dq_out for n in weighted] == [False, True, True, True, False]


def test_the_qdq_check_itself_sees_an_asymmetric_zero_point(tiny_int8: tuple[Path, Path]) -> None:
    model = onnx.load(str(tiny_int8[1]))
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    zp = next(t for t in model.graph.initializer if t.name == q.input[2])
    zp.CopyFrom(numpy_helper.from_array(np.array(-128, np.int8), zp.name))
    assert any("is not int8 0" in p for p in qdq_problems(model))


def test_the_tiny_int8_model_runs_alike_in_three_runtimes(
    tiny_int8: tuple[Path, Path], openvino: Any
) -> None:
    import cv2

    x = np.random.default_rng(1).standard_normal((8, 3, 16, 16)).astype(np.float32)
    fp32, int8 = (Classifier(p, device="cpu").logits(x) for p in tiny_int8)
    net = cv2.dnn.readNetFromONNX(str(tiny_int8[1]))
    net.setInput(x)
    compiled = openvino.Core().compile_model(str(tiny_int8[1]), "CPU")
    for other in (net.forward(), compiled(x)[0]):
        # Each runtime rounds its own way; the answers stay those of ONNX Runtime's int8 and fp32 models.
        assert np.abs(other - int8).max() <= 0.1 * np.abs(fp32).max()
        assert (other.argmax(1) == fp32.argmax(1)).mean() >= 0.75


# --- what export writes, in every runtime (a trained run each; slow) --------------------------------------


def held_out_frames(run: Path, n: int = 200) -> list[np.ndarray]:
    """Up to n frames of the run's test split (images no model saw in training)."""
    ckpt = load_checkpoint(run)
    root = Path(ckpt.config.data)
    samples = run_split(run, root, ckpt.labels.ids, "test", "")[:n]
    return read_images([root / s.path for s in samples]).images


def exported(request: pytest.FixtureRequest, export: str) -> tuple[dict[str, Path], list[np.ndarray]]:
    result = request.getfixturevalue(export)
    frames = held_out_frames(result.checkpoint.parent)
    return {m.precision: m.path for m in result.models}, frames


def in_batches(run: Any, x: np.ndarray, size: int = 16) -> np.ndarray:
    return np.concatenate([np.array(run(x[i : i + size])) for i in range(0, len(x), size)])


@pytest.mark.slow
@pytest.mark.parametrize("export", EXPORTS)
def test_every_exported_precision_is_standard_onnx(request: pytest.FixtureRequest, export: str) -> None:
    paths, _ = exported(request, export)
    assert set(paths) == set(PRECISIONS)
    for precision, path in paths.items():
        model = onnx.load(str(path))
        assert standard_only(model) == [], (precision, standard_only(model))
        onnx.checker.check_model(model, full_check=True)
        if precision == "int8":
            assert qdq_problems(model) == []


@pytest.mark.slow
@pytest.mark.parametrize("export", EXPORTS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_exported_precision_runs_in_openvino_as_in_onnxruntime(
    request: pytest.FixtureRequest, export: str, precision: str, openvino: Any
) -> None:
    paths, frames = exported(request, export)
    clf = Classifier(paths[precision], device="cpu")
    x = preprocess(frames, clf.spec)
    # ACCURACY: the precision the file asks for (by default a CPU with bfloat16 units computes fp32 in bf16).
    compiled = openvino.Core().compile_model(
        str(paths[precision]), "CPU", {"EXECUTION_MODE_HINT": "ACCURACY"}
    )
    ours, theirs = in_batches(clf.logits, x), in_batches(lambda b: compiled(b)[0], x)
    assert theirs.shape == ours.shape and np.isfinite(theirs).all()
    assert (theirs.argmax(1) == ours.argmax(1)).mean() >= MIN_AGREEMENT


@pytest.mark.slow
@pytest.mark.parametrize("export", EXPORTS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_exported_precision_runs_in_opencv_dnn_as_in_onnxruntime(
    request: pytest.FixtureRequest, export: str, precision: str
) -> None:
    import cv2

    if int(cv2.__version__.split(".")[0]) < 5:
        pytest.skip(
            "OpenCV 4's ONNX importer cannot read GatherND (AdaptiveAvgPool2d below 6x6); OpenCV 5 can"
        )
    paths, frames = exported(request, export)
    clf = Classifier(paths[precision], device="cpu")
    x = preprocess(frames, clf.spec)
    net = cv2.dnn.readNetFromONNX(str(paths[precision]))

    def forward(batch: np.ndarray) -> np.ndarray:
        net.setInput(batch)
        return net.forward()

    ours, theirs = in_batches(clf.logits, x), in_batches(forward, x)
    assert theirs.shape == ours.shape and np.isfinite(theirs).all()
    assert (theirs.argmax(1) == ours.argmax(1)).mean() >= MIN_AGREEMENT
