"""The torch-free ONNX Runtime wrapper: metadata, layout checks, providers, predictions."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from onnx_helpers import tiny_onnx

from mgc_edge.errors import UserError
from mgc_edge.metadata import MetadataError
from mgc_edge.preprocess import PreprocessError, preprocess
from mgc_edge.runtime import session as S
from mgc_edge.runtime.session import Classifier, DeviceError, ModelFileError, softmax

NO_GPU = S.cuda_device_count() == 0


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_classifier_reads_everything_from_the_metadata(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    assert clf.labels.ids == ("1", "2", "3")
    assert clf.spec.size == (16, 16)
    assert clf.metadata.arch == "tiny" and clf.metadata.precision == "fp32"
    assert clf.providers == ("CPUExecutionProvider",) and clf.device == "cpu"
    assert "tiny" in repr(clf)


def test_predict_matches_logits_of_the_shared_preprocess(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    batch = frames(5)
    probs = clf.predict(batch)
    assert probs.shape == (5, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(probs, softmax(clf.logits(preprocess(batch, clf.spec))))
    # One frame alone, or as part of a batch: the same answer (the batch axis is dynamic).
    np.testing.assert_allclose(clf.predict(batch[2]), probs[2:3], atol=1e-6)


def test_classify_gives_top_k_with_human_names(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    (pred,) = clf.classify(frames(1), k=2)
    assert len(pred.indices) == 2 and pred.probs[0] >= pred.probs[1]
    assert pred.names[0] == f"class {pred.ids[0]}"
    assert len(clf.classify(frames(2), k=99)[0].indices) == 3  # k is capped at the number of classes


def test_logits_refuses_a_batch_of_the_wrong_shape(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    with pytest.raises(PreprocessError, match=r"\[N, 3, 16, 16\]"):
        clf.logits(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(PreprocessError):
        clf.logits(np.zeros((3, 16, 16), np.float32))
    assert clf.logits(np.zeros((0, 3, 16, 16), np.float32)).shape == (0, 3)
    clf.warmup(2)


def test_softmax_is_stable_for_huge_logits() -> None:
    p = softmax(np.array([[1e4, 0.0, -1e4]], np.float32))
    assert np.isfinite(p).all() and p[0, 0] == pytest.approx(1.0)


def test_a_model_without_our_metadata_is_refused(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "plain.onnx", metadata=False)
    with pytest.raises(MetadataError, match="no mgc-edge metadata"):
        Classifier(path, device="cpu")


def test_a_model_with_another_layout_is_refused(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "x.onnx", input_name="x")
    with pytest.raises(MetadataError, match="layout"):
        Classifier(path, device="cpu")
    path = tiny_onnx(tmp_path / "size.onnx", size=(16, 16))
    from onnx_helpers import set_props

    set_props(path, path, preprocess='{"size": [32, 32]}')
    with pytest.raises(MetadataError, match="input shape"):
        Classifier(path, device="cpu")


def test_missing_and_damaged_model_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        Classifier(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelFileError, match="not a model ONNX Runtime can load"):
        Classifier(junk, device="cpu")
    assert issubclass(ModelFileError, UserError) and issubclass(DeviceError, UserError)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0", ""])
def test_bad_device_names_are_refused(device: str) -> None:
    with pytest.raises(DeviceError, match="--device"):
        S.parse_device(device)
    assert S.parse_device("CUDA:1") == ("cuda", 1)


def test_cuda_without_a_cuda_provider_is_an_error(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(DeviceError, match="no CUDA provider"):
        Classifier(model, device="cuda")
    assert S.choose_providers("auto") == ["CPUExecutionProvider"]


def test_auto_on_a_box_without_a_gpu_stays_on_the_cpu_quietly(
    model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(S, "cuda_device_count", lambda: 0)
    with caplog.at_level(logging.WARNING, logger=S.__name__):
        clf = Classifier(model, device="auto")
    assert clf.device == "cpu" and not caplog.records


@pytest.mark.skipif(
    not NO_GPU or "CUDAExecutionProvider" not in S.ort.get_available_providers(),
    reason="needs onnxruntime-gpu on a box without a GPU",
)
def test_cuda_that_cannot_start_is_never_a_silent_fallback(
    model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Pretend the driver reports a GPU: ONNX Runtime then tries CUDA, fails here, and ends on the CPU.
    monkeypatch.setattr(S, "cuda_device_count", lambda: 1)
    with caplog.at_level(logging.WARNING, logger=S.__name__):
        clf = Classifier(model, device="auto")
    assert clf.device == "cpu"
    assert any("running on the CPU" in r.getMessage() for r in caplog.records)
    with pytest.raises(DeviceError, match="could not start CUDA"):
        Classifier(model, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_cuda_runs_and_matches_the_cpu(model: Path) -> None:
    gpu, cpu = Classifier(model, device="cuda"), Classifier(model, device="cpu")
    assert gpu.device == "cuda"
    batch = frames(4)
    np.testing.assert_allclose(gpu.predict(batch), cpu.predict(batch), atol=1e-5)
