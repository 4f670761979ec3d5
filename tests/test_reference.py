"""The PyTorch side that export stores beside a model: `verify` reuses it when the checkpoint (by sha256), the
images (by content) and the preprocessing match, whichever torch made it and where, also on a box without
torch; it recomputes otherwise, and says which it did and, where it cannot recompute, why not.

Fast and torch-free: a stand-in checkpoint file (only its digest matters to the store), a tiny hand-built
model, and a reference of that model's own logits, so that every gate passes when the reference is reused."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import make_tree
from onnx_helpers import tiny_onnx
from test_torch_free import cli, run_child
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
    # The CLI says which side it used (--force: the report above is replaced).
    res = CliRunner().invoke(app, ["verify", str(stored.model), "-c", str(stored.run), "--force"])
    assert res.exit_code == 0, res.output
    assert "reusing model.reference.npz" in " ".join(res.output.split())


def test_only_another_checkpoint_images_or_preprocessing_make_verify_recompute(
    stored: Stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    def why(options: VerifyOptions = VerifyOptions()) -> str:
        reference, reason = R.load_reference(stored.model, stored.run, options)
        assert (reference is None) == ("reusing" not in reason), reason
        return reason

    assert why().startswith("reusing")
    # Where and how PyTorch would run now does not matter: true fp32 moves a logit by rounding only.
    assert why(VerifyOptions(device="cuda")).startswith("reusing")
    assert why(VerifyOptions(batch_size=8)).startswith("reusing")
    assert "differs from this check in its images" in why(VerifyOptions(max_images=5))

    image = next((stored.run.parent / "data").rglob("*.png"))
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # copied without its times, say
    assert why().startswith("reusing")
    original = image.read_bytes()
    image.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # rewritten: other content
    assert "differs from this check in its images" in why()
    image.write_bytes(original)
    assert why().startswith("reusing")

    # Another OpenCV or mgc-edge whose preprocess() makes other inputs of the same frame.
    real = R.preprocess
    monkeypatch.setattr(R, "preprocess", lambda frames, spec: real(frames, spec) + 1e-3)
    assert "differs from this check in its preprocessing" in why()
    monkeypatch.undo()

    # Another checkpoint: not reused, and verify goes back to PyTorch (which refuses this stand-in file).
    original = stored.checkpoint.read_bytes()
    stored.checkpoint.write_bytes(original + b"retrained")
    assert "made from another checkpoint" in why()
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        verify_model(stored.model, stored.run, write=False)
    stored.checkpoint.write_bytes(original)

    stored.checkpoint.rename(stored.run / "moved.pt")
    with pytest.raises(R.CheckpointMissingError, match="does not exist"):
        why()
    (stored.run / "moved.pt").rename(stored.checkpoint)

    with np.load(stored.store) as z:
        logits, header = z["logits"], json.loads(str(z["header"]))
    header["key"]["format"] = 1  # a store an earlier mgc-edge wrote, keyed otherwise
    with stored.store.open("wb") as fh:
        np.savez(fh, logits=logits, header=np.array(json.dumps(header)))
    assert "store format 1" in why()
    stored.store.write_bytes(b"half a file")
    assert "unreadable" in why()
    stored.store.unlink()
    assert why().startswith("there is no stored reference beside the model")


def _restamp(store: Path, **key: object) -> None:
    """The stored reference as another box made it: another torch, device and batch size."""
    with np.load(store) as z:
        logits, header = z["logits"], json.loads(str(z["header"]))
    header["key"].update(key)
    with store.open("wb") as fh:
        np.savez(fh, logits=logits, header=np.array(json.dumps(header)))


def test_an_edge_box_without_torch_reuses_a_reference_another_torch_made(stored: Stored) -> None:
    """Made by another torch on a GPU at another batch size, the reference is still the checkpoint's answer
    on these images: a box without torch checks the model against it (the CLI's own report, exit 0)."""
    _restamp(stored.store, torch="2.0.0+cu118", device="cuda:0", batch_size=64)
    out = stored.model.with_name("edge.verify.json")
    child = cli("verify", stored.model, "--checkpoint", stored.run, "--json", out)
    assert (child["code"], child["error"], child["torch"]) == (0, None, []), child["stderr"]
    report = json.loads(out.read_text())
    assert report["passed"] and report["reference_file"] == str(stored.store)
    assert report["reference_device"] == "cuda:0"  # where PyTorch really ran
    assert "made by torch 2.0.0+cu118 on cuda:0, batch 64" in " ".join(child["stderr"].split())


def test_an_edge_box_without_torch_says_why_the_reference_cannot_serve(stored: Stored) -> None:
    image = next((stored.run.parent / "data").rglob("*.png"))
    image.write_bytes(image.read_bytes() + b"\0")  # an image changed since the export
    report = report_path_for(stored.model)
    child = cli("verify", stored.model, "--checkpoint", stored.run)
    assert (child["code"], child["torch"]) == (2, []), child
    errors = [line for line in child["stderr"].splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in child["stderr"], child["stderr"]
    assert "needs PyTorch here because the stored reference model.reference.npz differs" in errors[0]
    assert "in its images" in errors[0] and "pip install '.[train]'" in errors[0]
    assert not report.exists()
