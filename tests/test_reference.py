"""The PyTorch side that export stores beside a model: `verify` reuses it only when the checkpoint (by sha256),
the images, the device and the batch size all match, recomputes otherwise, and says which it did.

Fast and torch-free: a stand-in checkpoint file (only its digest matters to the store), a tiny hand-built
model, and a reference of that model's own logits, so that every gate passes when the reference is reused."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import make_tree
from onnx_helpers import tiny_onnx
from test_torch_free import run_child
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.config import PreprocessSpec
from mgc_edge.export import reference as R
from mgc_edge.export.gates import report_path_for
from mgc_edge.export.verify import VerifyOptions, verify_model
from mgc_edge.fileio import file_sha256
from mgc_edge.images import read_images
from mgc_edge.labels import Labels
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.train.checkpoint import CheckpointError


@dataclass(frozen=True)
class Stored:
    run: Path
    checkpoint: Path
    model: Path
    store: Path


@pytest.fixture
def stored(tmp_path: Path) -> Stored:
    data = make_tree(tmp_path / "data", {"1": 2, "2": 2, "3": 2})
    run = tmp_path / "run"
    run.mkdir()
    checkpoint = run / "best.pt"
    checkpoint.write_bytes(b"stand-in checkpoint: only its sha256 matters to the store")
    with (run / "split.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "group", "split"])
        for p in sorted(data.rglob("*.png")):
            w.writerow([p.relative_to(data).as_posix(), p.parent.name, p.stem.split(".")[0], "test"])
    (tmp_path / "out").mkdir()
    model = tiny_onnx(tmp_path / "out" / "model.onnx")
    facts = R.CheckpointFacts(
        checkpoint,
        file_sha256(checkpoint),
        "tiny",
        Labels(("1", "2", "3")),
        PreprocessSpec(size=(16, 16)),
        str(data),
    )
    options = VerifyOptions()
    root, samples, source = R.check_images(facts, options)
    frames = read_images([root / s.path for s in samples]).images
    logits = Classifier(model, device="cpu").logits(preprocess(frames, facts.preprocess))
    key = R.reference_key(facts, root, samples, "cpu", options.batch_size)
    store = R.reference_path_for(model)
    R.save_reference(R.Reference(facts, root, tuple(samples), source, logits, "cpu", key), store)
    return Stored(run, checkpoint, model, store)


def test_a_matching_stored_reference_is_reused_without_torch(stored: Stored) -> None:
    assert stored.store.name == "model.reference.npz"
    code = (
        "from mgc_edge.export.verify import verify_model; "
        f"r = verify_model({str(stored.model)!r}, {str(stored.run)!r}); "
        "assert r.passed, r.failures(); "
        f"assert r.reference_file == {str(stored.store)!r} and r.n_images == 12, r"
    )
    child = run_child(code)
    assert child["code"] == 0 and child["torch"] == [], child
    report = json.loads(report_path_for(stored.model).read_text())
    assert report["reference_file"] == str(stored.store) and report["reference_device"] == "cpu"
    # The CLI says which side it used.
    res = CliRunner().invoke(app, ["verify", str(stored.model), "-c", str(stored.run)])
    assert res.exit_code == 0, res.output
    assert "reusing model.reference.npz" in " ".join(res.output.split())


def test_anything_that_changes_the_reference_makes_verify_recompute(
    stored: Stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    def why(options: VerifyOptions = VerifyOptions()) -> str:
        reference, reason = R.load_reference(stored.model, stored.run, options)
        assert (reference is None) == ("reusing" not in reason), reason
        return reason

    assert why().startswith("reusing") and why(VerifyOptions(device="cuda")).startswith(
        "reusing"
    )  # no GPU here
    assert "differs in: batch size" in why(VerifyOptions(batch_size=8))
    assert "differs in: images" in why(VerifyOptions(max_images=5))
    monkeypatch.setattr(R, "cuda_device_count", lambda: 1)  # the reference would now run on the GPU
    assert "differs in: device" in why(VerifyOptions(device="auto"))
    monkeypatch.undo()

    image = next((stored.run.parent / "data").rglob("*.png"))
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # rewritten, say
    assert "differs in: images" in why()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert why().startswith("reusing")

    # Another checkpoint: not reused, and verify goes back to PyTorch (which refuses this stand-in file).
    original = stored.checkpoint.read_bytes()
    stored.checkpoint.write_bytes(original + b"retrained")
    assert "of another checkpoint" in why()
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        verify_model(stored.model, stored.run, write=False)
    stored.checkpoint.write_bytes(original)

    stored.store.write_bytes(b"half a file")
    assert "unreadable" in why()
    stored.store.unlink()
    assert why() == "no stored reference beside the model"
