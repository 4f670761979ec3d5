"""The runtime's own reader of a model's `opset_import` (no onnx package) finds what onnx's parser finds, on any
file, and refuses a file that is not a model in one sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx_helpers import onnxruntime_only, tiny_cnn_onnx, tiny_onnx

from mgc_edge.runtime.model.domains import STANDARD_DOMAINS, OnnxFileError, opset_imports, private_imports

pytest_plugins = ["export_fixtures"]  # alexnet_export: once per session


def onnx_imports(path: Path) -> dict[str, int]:
    """What onnx's own (protobuf) parser reads, for comparison."""
    return {o.domain: o.version for o in onnx.load(str(path), load_external_data=False).opset_import}


def many_imports(src: Path, dst: Path) -> Path:
    """A copy of a model with every kind of field around its imports: imports of long version numbers and of
    several private domains, a local function, a doc string, metadata and a 1 MB initializer to skip."""
    model = onnx.load(str(src))
    model.opset_import.extend(
        [
            helper.make_opsetid("ai.onnx.ml", 5),
            helper.make_opsetid("com.microsoft", 1),
            helper.make_opsetid("org.pytorch.aten", 2**40),  # a 6-byte varint
            helper.make_opsetid("custom.ü", 3),  # a UTF-8 domain name
        ]
    )
    model.doc_string = "x" * 300  # a length that takes a two-byte varint
    model.graph.initializer.append(numpy_helper.from_array(np.ones(1 << 18, np.float32), "unused"))
    model.functions.append(
        helper.make_function("custom.ü", "F", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], [])
    )
    onnx.save(model, str(dst))
    return dst


def imports_first(src: Path, dst: Path) -> Path:
    """The same model with `opset_import` written before the graph (protobuf allows fields in any order:
    concatenated messages merge; onnx itself writes them in field-number order, the graph first)."""
    model = onnx.load(str(src))
    head = onnx.ModelProto()
    head.opset_import.extend(model.opset_import)
    del model.opset_import[:]
    dst.write_bytes(head.SerializeToString() + model.SerializeToString())
    assert onnx_imports(dst) == onnx_imports(src)
    return dst


def test_the_reader_finds_what_onnx_finds_on_every_kind_of_model(tmp_path: Path) -> None:
    tiny = tiny_onnx(tmp_path / "tiny.onnx")
    models = [
        tiny,
        tiny_cnn_onnx(tmp_path / "cnn.onnx"),
        onnxruntime_only(tiny, tmp_path / "ort_only.onnx"),
        many := many_imports(tiny, tmp_path / "many.onnx"),
        imports_first(many, tmp_path / "first.onnx"),
    ]
    for path in models:
        assert opset_imports(path) == onnx_imports(path), path.name
    assert list(opset_imports(many)) == ["", "ai.onnx.ml", "com.microsoft", "org.pytorch.aten", "custom.ü"]
    assert opset_imports(many)["org.pytorch.aten"] == 2**40
    assert private_imports(tiny) == [] and private_imports(tmp_path / "ort_only.onnx") == ["com.microsoft"]
    assert private_imports(many) == ["com.microsoft", "custom.ü", "org.pytorch.aten"]
    assert not set(private_imports(many)) & STANDARD_DOMAINS


@pytest.mark.slow
def test_the_reader_finds_what_onnx_finds_on_every_exported_precision(alexnet_export: object) -> None:
    for exported in alexnet_export.models:  # type: ignore[attr-defined]
        assert opset_imports(exported.path) == onnx_imports(exported.path), exported.precision
        assert private_imports(exported.path) == []


def test_a_file_that_is_not_a_model_is_one_sentence(tmp_path: Path) -> None:
    data = tiny_onnx(tmp_path / "tiny.onnx").read_bytes()
    cases = {
        "empty.onnx": b"",
        "cut.onnx": data[: len(data) // 2],  # ends inside the graph
        "text.onnx": b"hello, this is not a model\n",
        "image.onnx": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(OnnxFileError) as info:
            opset_imports(path)
        message = str(info.value)
        assert message.startswith(f"{path} is not ") and "ONNX model file" in message, (name, message)
        assert message.endswith(".") and "\n" not in message
