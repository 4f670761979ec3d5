"""`mgc-edge export`: tiny trained models in all three precisions, each through its parity gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.export import onnx_export as E
from mgc_edge.export.convert import CalibrationError, QuantizationError
from mgc_edge.export.onnx_export import ExportError, ExportOptions, export_run, output_paths, parse_precisions
from mgc_edge.export.reference import reference_path_for
from mgc_edge.export.verify import VerifyOptions
from mgc_edge.fileio import file_sha256
from mgc_edge.metadata import ModelMetadata
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.train.checkpoint import CheckpointError, load_checkpoint

pytest_plugins = ["export_fixtures"]  # alexnet_export, resnet_run, ...: computed once per session

REPO = Path(__file__).resolve().parents[1]


def by_precision(result: Any) -> dict[str, Any]:
    return {m.precision: m for m in result.models}


@pytest.mark.slow
def test_all_three_precisions_pass_their_gates(alexnet_export: Any) -> None:
    models = by_precision(alexnet_export)
    assert set(models) == {"fp32", "fp16", "int8"} and alexnet_export.ok
    for precision, m in models.items():
        assert (
            m.path.name
            == {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}[precision]
        )
        assert m.passed and m.report is not None and m.report.passed, m.report.failures()
        assert m.report_path == m.path.with_name(m.path.name.replace(".onnx", ".verify.json"))
        saved = json.loads(m.report_path.read_text())
        assert saved["passed"] and saved["precision"] == precision and saved["model"] == str(m.path)
    fp32 = models["fp32"].report
    assert fp32.agreement == 1.0 and fp32.probs_max_abs <= 1e-4
    assert models["fp16"].report.agreement >= 0.99
    assert models["int8"].report.agreement >= 0.98 and models["int8"].report.acc_drop <= 0.01
    # Half and a quarter of the fp32 file, give or take the graph.
    assert 0.45 < models["fp16"].size_mb / models["fp32"].size_mb < 0.55
    assert 0.2 < models["int8"].size_mb / models["fp32"].size_mb < 0.3
    # No temporary or intermediate file is left behind; beside each report, the PyTorch side for `verify`.
    assert sorted(p.name for p in models["fp32"].path.parent.iterdir()) == sorted(
        [m.path.name for m in models.values()]
        + [m.report_path.name for m in models.values()]
        + [reference_path_for(m.path).name for m in models.values()]
    )


@pytest.mark.slow
def test_exported_files_are_self_contained_valid_and_carry_metadata(
    alexnet_export: Any, tiny_run: Path
) -> None:
    ckpt = load_checkpoint(tiny_run)
    for m in alexnet_export.models:
        model = onnx.load(str(m.path), load_external_data=False)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
        onnx.checker.check_model(str(m.path), full_check=True)
        meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
        assert meta.precision == m.precision and meta.arch == "alexnet_bn"
        assert meta.labels == ckpt.labels and meta.labels.names is not None  # human names travel along
        assert meta.preprocess == ckpt.preprocess
        assert meta.checkpoint_sha256 == file_sha256(ckpt.path)
        assert meta.metrics["epoch"] == ckpt.epoch and "val" in meta.metrics and "test" in meta.metrics
        assert meta.package_version
        (inp,) = model.graph.input
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert isinstance(dims[0], str) and dims[1:] == [3, 64, 64]
        (out,) = model.graph.output
        assert out.name == "logits" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ops = {n.op_type for n in onnx.load(str(by_precision(alexnet_export)["int8"].path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_int8_keeps_the_first_and_last_layers_in_float(alexnet_export: Any) -> None:
    graph = onnx.load(str(by_precision(alexnet_export)["int8"].path)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(weighted) == 8  # alexnet_bn: five convolutions, three linear layers
    int8_weights = [n.input[1] in dequantized for n in weighted]
    assert int8_weights == [False] + [True] * 6 + [False]


@pytest.mark.slow
def test_exported_models_run_in_a_fresh_process_that_never_imports_torch(
    alexnet_export: Any, tiny_run: Path
) -> None:
    ckpt = load_checkpoint(tiny_run)
    image = Path(ckpt.config.data) / next(
        line.split(",")[0]
        for line in (tiny_run / "split.csv").read_text().splitlines()[1:]
        if line.endswith(",test")
    )
    code = """
import sys, json
from mgc_edge.images import read_image
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.export.verify import VerifyOptions, check_model_alone
frame = read_image(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    clf = Classifier(path, device="cpu")
    probs = clf.predict([frame, frame, frame])
    assert probs.shape == (3, clf.num_classes), probs.shape
    out[clf.metadata.precision] = probs[0].tolist()
    assert check_model_alone(path, VerifyOptions(batch_size=3)).passed
assert "torch" not in sys.modules, "the runtime imported torch"
print(json.dumps(out))
"""
    paths = [str(m.path) for m in alexnet_export.models]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(image), *paths], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    probs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(probs) == {"fp32", "fp16", "int8"}
    # Same frame, three precisions: the same answer.
    assert len({int(np.argmax(p)) for p in probs.values()}) == 1


@pytest.mark.slow
def test_a_model_that_fails_its_gate_is_kept_under_a_failed_name(
    resnet_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = E.torch_to_onnx

    def sabotaged(model: Any, size: Any, opset: int = E.DEFAULT_OPSET) -> onnx.ModelProto:
        import torch

        with torch.no_grad():
            head = model.fc  # resnet18's classifier
            head.weight.copy_(torch.roll(head.weight, 1, dims=0))
        return real(model, size, opset)

    monkeypatch.setattr(E, "torch_to_onnx", sabotaged)
    out = tmp_path / "m.onnx"
    quick = VerifyOptions(max_images=48)
    result = export_run(resnet_run, ExportOptions(out=out, check=quick))
    (m,) = result.models
    assert not result.ok and not m.passed
    assert not out.exists() and m.path == tmp_path / "m.FAILED.onnx" and m.path.exists()
    assert json.loads((tmp_path / "m.FAILED.verify.json").read_text())["passed"] is False
    assert any("top-1 agreement" in f for f in m.report.failures())

    # The CLI says which figure failed and exits non-zero; a later faithful export clears the FAILED copy.
    res = CliRunner().invoke(app, ["export", str(resnet_run), "--out", str(out), "--max-images", "48"])
    assert res.exit_code == 1 and "failed its gate" in res.output and "top-1 agreement" in res.output
    monkeypatch.setattr(E, "torch_to_onnx", real)
    res = CliRunner().invoke(app, ["export", str(resnet_run), "--out", str(out), "--max-images", "48"])
    assert res.exit_code == 0, res.output
    assert out.exists() and not m.path.exists()


@pytest.mark.slow
def test_existing_output_is_not_overwritten_unless_forced(resnet_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"precious")
    with pytest.raises(ExportError, match="already exists; pass --force"):
        export_run(resnet_run, ExportOptions(out=out))
    assert out.read_bytes() == b"precious"
    res = CliRunner().invoke(app, ["export", str(resnet_run), "-o", str(out)])
    assert res.exit_code == 2 and "already exists" in res.output and out.read_bytes() == b"precious"
    res = CliRunner().invoke(
        app, ["export", str(resnet_run), "-o", str(out), "--force", "--max-images", "40"]
    )
    assert res.exit_code == 0, res.output
    assert "model.onnx" in res.output and "pass" in res.output
    assert Classifier(out, device="cpu").metadata.arch == "resnet18"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.onnx",
        "model.reference.npz",
        "model.verify.json",
    ]


def test_missing_damaged_and_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        export_run(tmp_path / "nope")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="damaged"):
        export_run(bad)
    import torch

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an mgc-edge checkpoint"):
        export_run(foreign)
    res = CliRunner().invoke(app, ["export", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == [bad, foreign] or set(tmp_path.iterdir()) == {bad, foreign}


@pytest.mark.slow
def test_too_few_calibration_images_are_refused_before_any_work(resnet_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="at least 32"):
        export_run(resnet_run, ExportOptions(precisions=("int8",), out=tmp_path / "a.onnx", calib_images=8))
    few = tmp_path / "few"
    few.mkdir()
    src = next(Path(load_checkpoint(resnet_run).config.data).glob("*/*.jpg"))
    for i in range(5):
        (few / f"{i}.jpg").write_bytes(src.read_bytes())
    with pytest.raises(CalibrationError, match="Only 5 image"):
        export_run(resnet_run, ExportOptions(precisions=("int8",), out=tmp_path / "a.onnx", calib_data=few))
    assert not (tmp_path / "a.onnx").exists() and not list(tmp_path.glob(".*"))


@pytest.mark.slow
def test_an_arch_that_cannot_be_quantized_is_refused(
    resnet_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mgc_edge.export import convert

    with pytest.raises(QuantizationError, match="efficientnet_b0 cannot be exported as int8: its swish"):
        convert.check_int8_arch("efficientnet_b0")
    monkeypatch.setitem(convert.INT8_UNSUPPORTED, "resnet18", "its accuracy does not survive 8 bits.")
    with pytest.raises(QuantizationError, match="resnet18 cannot be exported as int8"):
        export_run(resnet_run, ExportOptions(precisions=("int8",), out=tmp_path / "a.onnx"))
    assert not list(tmp_path.iterdir())


def test_precisions_and_output_names() -> None:
    assert parse_precisions(["all"]) == ("fp32", "fp16", "int8")
    assert parse_precisions(["int8", "fp16,fp32", "fp16"]) == ("fp32", "fp16", "int8")
    with pytest.raises(ExportError, match="--precision"):
        parse_precisions(["bf16"])
    with pytest.raises(ExportError, match="--opset"):
        ExportOptions(opset=11)

    class Ck:
        path = Path("/runs/a/best.pt")

    ck: Any = Ck()
    assert output_paths(ck, ("fp32", "int8"), None) == {
        "fp32": Path("/runs/a/model.onnx"),
        "int8": Path("/runs/a/model.int8.onnx"),
    }
    assert output_paths(ck, ("int8",), Path("/x/edge.onnx")) == {"int8": Path("/x/edge.onnx")}
    assert output_paths(ck, ("fp32", "fp16"), Path("/x/edge.onnx"))["fp16"] == Path("/x/edge.fp16.onnx")
    assert output_paths(ck, ("fp16",), Path("/x/new_folder")) == {
        "fp16": Path("/x/new_folder/model.fp16.onnx")
    }
    assert E.failed_path(Path("/x/model.int8.onnx")) == Path("/x/model.int8.FAILED.onnx")
    # An export error is a user error: the CLI turns it into one sentence and exit 2, not a traceback.
    result = CliRunner().invoke(app, ["export", "/no/such/run", "--precision", "bf16"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.count("error:") == 1 and "bf16" in result.output
