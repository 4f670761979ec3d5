"""`mgc-edge verify`: every gate passes on a faithful model and fails on a perturbed or mis-described one."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_helpers import onnxruntime_only, perturb_head, set_props, tiny_onnx
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.export.gates import GateOverrides, GateResult, Gates, report_path_for
from mgc_edge.export.reference import reference_path_for
from mgc_edge.export.verify import ModelMismatchError, VerifyOptions, reference_logits, verify_model
from mgc_edge.metadata import MetadataError
from mgc_edge.runtime.model.backends import NAMES, BackendError, open_backend
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.train.checkpoint import load_checkpoint

pytest_plugins = ["export_fixtures"]  # alexnet_export, resnet_export, resnet_run: once per session

PRECISIONS = ("fp32", "fp16", "int8")


def model_of(result: Any, precision: str) -> Path:
    return next(m.path for m in result.models if m.precision == precision)


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_faithful_model_passes_and_a_perturbed_weight_fails(
    resnet_export: Any, resnet_run: Path, tmp_path: Path, precision: str
) -> None:
    src = model_of(resnet_export, precision)
    ok = verify_model(src, resnet_run, VerifyOptions(), write=False)
    assert ok.passed, ok.failures()
    assert ok.batch_sizes[0] == 1 and max(ok.batch_sizes) > 1  # the dynamic axis, proven
    assert ok.batch_prob_max_abs < 1e-3
    assert ok.provider == "CPUExecutionProvider" and ok.reference_device == "cpu"  # where each side ran

    bad = perturb_head(src, tmp_path / f"bad.{precision}.onnx", mode="roll")
    report = verify_model(bad, resnet_run, VerifyOptions())
    assert not report.passed
    failures = report.failures()
    assert any(
        f.startswith("top-1 agreement") and "is below the" in f and "gate by" in f for f in failures
    ), failures
    saved = json.loads(report_path_for(bad).read_text())  # written beside the model
    assert saved["passed"] is False and saved["failures"] == failures


@pytest.mark.slow
def test_the_fp32_gate_sees_a_small_change_that_keeps_most_top1(
    resnet_export: Any, resnet_run: Path, tmp_path: Path
) -> None:
    bad = perturb_head(model_of(resnet_export, "fp32"), tmp_path / "nudged.onnx", mode="nudge")
    report = verify_model(bad, resnet_run, VerifyOptions(), write=False)
    assert not report.passed and report.agreement > 0.9
    assert any(f.startswith("max |Δprob|") and "exceeds the 1.00e-04 gate" in f for f in report.failures())


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_mismatched_preprocessing_fails(
    resnet_export: Any, resnet_run: Path, tmp_path: Path, precision: str
) -> None:
    src = model_of(resnet_export, precision)
    spec = load_checkpoint(resnet_run).preprocess
    for name, change in {
        "bgr": {"color": "bgr"},  # the edge box would feed BGR to an RGB model
        "unnormalised": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
        "cropped": {"resize": "center_crop"},
    }.items():
        wrong = json.dumps({**spec.to_dict(), **change})
        bad = set_props(src, tmp_path / f"{name}.{precision}.onnx", preprocess=wrong)
        report = verify_model(bad, resnet_run, VerifyOptions(), write=False)
        assert not report.passed, (name, report)
        assert any(f.startswith("top-1 agreement") for f in report.failures()), (name, report.failures())
        assert any("preprocessing differs" in n for n in report.notes)


@pytest.mark.slow
def test_the_int8_accuracy_gate_and_tightened_gates(resnet_export: Any, resnet_run: Path) -> None:
    src = model_of(resnet_export, "int8")
    report = verify_model(src, resnet_run, VerifyOptions(), write=False)
    names = [g.name for g in report.gates]
    assert "accuracy drop" in names and "max |Δprob|" not in names
    # A user may tighten any gate: int8 cannot match probabilities to 1e-6.
    strict = verify_model(
        src, resnet_run, VerifyOptions(gates=GateOverrides(max_prob_diff=1e-6)), write=False
    )
    assert not strict.passed and any(f.startswith("max |Δprob|") for f in strict.failures())


@pytest.mark.slow
def test_a_model_and_checkpoint_that_do_not_belong_together_are_refused(
    resnet_export: Any, resnet_run: Path, tmp_path: Path
) -> None:
    src = model_of(resnet_export, "fp32")
    cases = {
        "arch is mobilenet_v3_small": {"arch": "mobilenet_v3_small"},
        r"labels are 32 \(c0, c1, c2, ...\), the checkpoint's 32 \(1, 2, 3": {
            "labels": json.dumps([f"c{i}" for i in range(32)]),
            "label_names": json.dumps([f"c{i}" for i in range(32)]),
        },
    }
    for what, change in cases.items():
        with pytest.raises(ModelMismatchError, match=f"do not belong together: the model's {what}"):
            verify_model(set_props(src, tmp_path / f"{what[:4]}.onnx", **change), resnet_run)
    # A checkpoint of the same run trained at another input size: the sizes differ.
    import torch

    data = torch.load(resnet_run / "best.pt", map_location="cpu", weights_only=True)
    data["preprocess"]["size"] = [96, 96]
    data["train_config"]["preprocess"]["size"] = [96, 96]
    torch.save(data, tmp_path / "big.pt")
    with pytest.raises(ModelMismatchError, match="takes 64x64 inputs, the checkpoint 96x96"):
        verify_model(src, tmp_path / "big.pt")
    res = CliRunner().invoke(app, ["verify", str(tmp_path / "arch.onnx"), "--checkpoint", str(resnet_run)])
    assert res.exit_code == 2 and "do not belong together" in res.output


@pytest.mark.slow
def test_verify_reuses_the_exports_reference_until_the_checkpoint_changes(
    alexnet_export: Any, tiny_run: Path, tmp_path: Path
) -> None:
    import torch

    exported = next(m for m in alexnet_export.models if m.precision == "fp16")
    reused = verify_model(exported.path, tiny_run, write=False)
    assert reused.reference_file == str(reference_path_for(exported.path))
    # The same figures as the gate export ran with its own, freshly computed, reference.
    assert dataclasses.replace(reused, reference_file=None) == exported.report

    # A retrained checkpoint (here: the same weights saved as another epoch) is run in PyTorch again.
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "split.csv", run / "split.csv")
    data = torch.load(tiny_run / "best.pt", map_location="cpu", weights_only=True)
    torch.save({**data, "epoch": data["epoch"] + 1}, run / "best.pt")
    again = verify_model(exported.path, run, write=False)
    assert again.reference_file is None and again.passed
    assert any("another checkpoint" in n for n in again.notes)


def test_a_model_without_our_metadata_is_refused(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "plain.onnx", metadata=False)
    with pytest.raises(MetadataError, match="no mgc-edge metadata"):
        verify_model(path)
    res = CliRunner().invoke(app, ["verify", str(path)])
    assert res.exit_code == 2 and "no mgc-edge metadata" in res.output
    assert not report_path_for(path).exists()


def test_the_model_alone_is_checked_without_a_checkpoint(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "tiny.onnx")
    res = CliRunner().invoke(app, ["verify", str(path), "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    report = json.loads(report_path_for(path).read_text())
    assert report["passed"] and report["checkpoint"] is None and report["agreement"] is None
    assert {g["name"] for g in report["gates"]} == {
        "graph valid",
        "forward pass of the right shape",
        "batch 1 vs batched |Δprob|",
    }
    assert report["batch_sizes"] == [1, 4]


@pytest.mark.slow
def test_the_model_alone_with_labelled_images_reports_its_accuracy(
    resnet_export: Any, resnet_run: Path
) -> None:
    data = Path(load_checkpoint(resnet_run).config.data)
    report = verify_model(
        model_of(resnet_export, "int8"), options=VerifyOptions(data=data, max_images=64), write=False
    )
    assert report.passed and report.n_images == 64 and report.acc_model is not None


@pytest.mark.slow
def test_verify_cli_on_a_faithful_and_a_perturbed_model(
    resnet_export: Any, resnet_run: Path, tmp_path: Path
) -> None:
    src = model_of(resnet_export, "fp16")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app, ["verify", str(src), "-c", str(resnet_run), "--json", str(out), "--max-images", "50"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["n_images"] == 50
    bad = perturb_head(src, tmp_path / "bad.onnx")
    res = CliRunner().invoke(app, ["verify", str(bad), "-c", str(resnet_run), "--min-agreement", "99.5"])
    assert res.exit_code == 1 and "FAIL" in res.output and "top-1 agreement" in res.output


@pytest.fixture(scope="module")
def resnet_reference(resnet_run: Path) -> Any:
    """PyTorch's side on the resnet run's test split, once for every runtime and precision below."""
    return reference_logits(load_checkpoint(resnet_run), VerifyOptions())


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ("openvino", "opencv"))
def test_verify_in_another_runtime_keeps_the_same_gates(
    resnet_export: Any, resnet_reference: Any, tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    if runtime == "openvino":
        request.getfixturevalue("openvino")  # skips where OpenVINO cannot be imported (never in CI)
    for precision in PRECISIONS:
        report = verify_model(
            model_of(resnet_export, precision),
            options=VerifyOptions(runtime=runtime),
            write=False,
            reference=resnet_reference,
        )
        assert report.passed, (precision, report.failures())
        assert report.runtime == runtime and report.runtime_version
        assert report.batch_sizes[0] == 1 and max(report.batch_sizes) > 1
    # The gates bite there too, and the report says which runtime ran the model.
    bad = perturb_head(model_of(resnet_export, "int8"), tmp_path / "bad.int8.onnx")
    report = verify_model(bad, options=VerifyOptions(runtime=runtime), reference=resnet_reference)
    assert not report.passed and any(f.startswith("top-1 agreement") for f in report.failures())
    assert json.loads(report_path_for(bad).read_text())["runtime"] == runtime


def test_verify_runs_the_model_in_the_runtime_asked_for(tmp_path: Path, openvino: Any) -> None:
    import cv2

    path = tiny_onnx(tmp_path / "tiny.onnx")
    for runtime, version in (("openvino", openvino.get_version().split("-")[0]), ("opencv", cv2.__version__)):
        out = tmp_path / f"{runtime}.json"
        res = CliRunner().invoke(
            app, ["verify", str(path), "--runtime", runtime, "--batch-size", "4", "--json", str(out)]
        )
        assert res.exit_code == 0, res.output
        report = json.loads(out.read_text())
        assert report["passed"] and (report["runtime"], report["runtime_version"]) == (runtime, version)
    # A model only ONNX Runtime can run passes there, and for the other runtimes verify says so in its own
    # sentence, read from the file's imports before the runtime sees it (whatever that runtime's version would
    # answer): verify --runtime is how a user finds a file tied to one runtime before deploying it.
    only = onnxruntime_only(path, tmp_path / "ort_only.onnx")
    assert CliRunner().invoke(app, ["verify", str(only), "--batch-size", "4"]).exit_code == 0
    for runtime, name in (("openvino", "OpenVINO"), ("opencv", "OpenCV's DNN module")):
        res = CliRunner().invoke(  # --force: the report of the check above is there
            app, ["verify", str(only), "--runtime", runtime, "--batch-size", "4", "--force"]
        )
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert res.exit_code == 2 and len(errors) == 1 and "Traceback" not in res.output, res.output
        said = " ".join(res.output.split())  # the console wraps long lines
        assert (
            "imports the operator domain com.microsoft, which only ONNX Runtime runs, "
            f"so {name} cannot load it; `mgc-edge export` writes a portable file" in said
        ), said
        # ONNX Runtime's report stays as it was
        assert json.loads(report_path_for(only).read_text())["runtime"] == "onnxruntime"


def test_the_runtime_is_told_every_private_domain_before_it_sees_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = onnx.load(str(tiny_onnx(tmp_path / "tiny.onnx")))
    model.opset_import.extend(
        [helper.make_opsetid(d, 1) for d in ("org.pytorch.aten", "com.microsoft.nchwc")]
    )
    path = tmp_path / "two.onnx"
    onnx.save(model, str(path))  # ONNX Runtime loads it: no node uses the domains
    monkeypatch.setitem(sys.modules, "openvino", None)  # the refusal comes first, runtime installed or not
    for runtime in ("openvino", "opencv"):
        with pytest.raises(BackendError) as info:
            open_backend(runtime, Classifier(path, device="cpu"))
        assert str(info.value) == (
            f"{path} imports the operator domains com.microsoft.nchwc, org.pytorch.aten, which only ONNX "
            f"Runtime runs, so {NAMES[runtime]} cannot load it; `mgc-edge export` writes a portable file (the "
            "standard ONNX domains only)."
        )
    ours = open_backend("onnxruntime", Classifier(path, device="cpu"))  # where it does run
    assert ours.logits(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 3)


def test_opencv_4_is_refused_in_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    monkeypatch.setattr(cv2, "__version__", "4.8.0")  # its DNN importer has no GatherND
    res = CliRunner().invoke(app, ["verify", str(tiny_onnx(tmp_path / "tiny.onnx")), "--runtime", "opencv"])
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "Traceback" not in res.output, res.output
    said = " ".join(res.output.split())
    assert "OpenCV 4.8.0's DNN module cannot read every model" in said and "needs OpenCV 5 or later" in said


def test_a_runtime_that_is_missing_or_unknown_is_one_sentence_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_onnx(tmp_path / "tiny.onnx")
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now fails as if not installed
    res = CliRunner().invoke(app, ["verify", str(path), "--runtime", "openvino"])
    assert res.exit_code == 2 and "OpenVINO is not installed here" in res.output, res.output
    assert "pip install openvino" in res.output and not report_path_for(path).exists()
    res = CliRunner().invoke(app, ["verify", str(path), "--runtime", "tensorflow"])
    assert res.exit_code == 2 and "--runtime must be one of onnxruntime, openvino, opencv" in res.output
    res = CliRunner().invoke(app, ["verify", str(path), "--runtime", "opencv", "--device", "cuda"])
    assert res.exit_code == 2 and "leave --device at cpu" in res.output


def test_gates_default_per_precision_and_can_be_tightened() -> None:
    assert Gates.for_precision("fp32") == Gates(min_agreement=1.0, max_prob_diff=1e-4)
    assert Gates.for_precision("fp16").min_agreement == 0.99
    int8 = Gates.for_precision("int8", GateOverrides(min_agreement=0.995))
    assert int8.min_agreement == 0.995 and int8.max_acc_drop == 0.01
    with pytest.raises(ValueError, match="between 0 and 1"):
        GateOverrides(min_agreement=99.0)
    with pytest.raises(ValueError, match="--batch-size"):
        VerifyOptions(batch_size=1)
    g = GateResult("top-1 agreement", 0.96, 0.98, False, "%")
    assert g.sentence() == "top-1 agreement 96.0% is below the 98.0% gate by 2.0 points."
    assert GateResult("graph valid", 0.0, 1.0, False, "bool").sentence() == "graph valid: FAILED."
    g = GateResult("accuracy drop", 0.025, 0.01, False, "points")
    assert g.sentence() == "accuracy drop 2.50 points exceeds the 1.00-point gate by 1.50 points."
