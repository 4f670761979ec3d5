"""`mgc-edge predict`: files, folders and globs to a `filename,class` CSV; top-k and clip columns; an
unreadable file listed and skipped (or fatal with --strict); nothing overwritten without --force."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import write_image
from onnx_helpers import tiny_onnx
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.images import read_image
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.predict import InputError, collect_inputs, predict_files

runner = CliRunner()


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def one_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", labels=("1", "2", "10"), seed=3)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """test/: images in two levels (clips 7 and 8 of two frames, one loose image), one corrupt .jpg, and
    files that are not images or are hidden (ignored)."""
    root = tmp_path / "test"
    rng = np.random.default_rng(1)
    for name in ("7.1.jpg", "7.2.jpg", "sub/8.1.png", "sub/8.2.png", "sub/deeper/9.1.bmp"):
        write_image(root / name, rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    write_image(root / ".hidden" / "h.1.png", np.zeros((8, 8, 3), np.uint8))
    return root


def expected(model: Path, root: Path, names: list[str]) -> dict[str, np.ndarray]:
    clf = Classifier(model, device="cpu")
    return {n: clf.predict(read_image(root / n))[0] for n in names}


GOOD = ["7.1.jpg", "7.2.jpg", "sub/8.1.png", "sub/8.2.png", "sub/deeper/9.1.bmp"]


def test_a_folder_with_one_unreadable_file(model: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    result = invoke("predict", model, folder, "-o", out, "--device", "cpu", "--batch-size", 2)
    assert result.exit_code == 0, result.output
    got = rows(out)
    assert list(got[0]) == ["filename", "class"]  # exactly the submission format
    assert sorted(r["filename"] for r in got) == sorted(GOOD)  # relative to the folder; hidden, txt left out
    probs = expected(model, folder, GOOD)
    ids = ["1", "2", "10"]
    assert {r["filename"]: r["class"] for r in got} == {n: ids[int(np.argmax(p))] for n, p in probs.items()}
    assert "Skipped 1 unreadable file" in result.output and "broken.jpg" in result.output
    assert result.stdout.strip().endswith(str(out))
    # --strict makes it fatal, and then nothing is written.
    strict_out = tmp_path / "strict.csv"
    assert "broken.jpg" in one_error(invoke("predict", model, folder, "-o", strict_out, "--strict"))
    assert not strict_out.exists()


def test_topk_and_clip_columns(model: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    result = invoke("predict", model, folder, "-o", out, "--topk", 2, "--clip", "--device", "cpu")
    assert result.exit_code == 0, result.output
    got = {r["filename"]: r for r in rows(out)}
    assert list(next(iter(got.values()))) == [
        "filename", "class", "top1", "prob1", "top2", "prob2", "clip", "clip_class", "clip_prob",
    ]  # fmt: skip
    probs = expected(model, folder, GOOD)
    ids = ["1", "2", "10"]
    for name, row in got.items():
        order = np.argsort(-probs[name], kind="stable")
        assert row["top1"] == row["class"] == ids[order[0]] and row["top2"] == ids[order[1]]
        assert float(row["prob1"]) == pytest.approx(probs[name][order[0]], abs=1e-4)
    assert [got[n]["clip"] for n in GOOD] == ["7", "7", "sub/8", "sub/8", "sub/deeper/9"]
    clip7 = (probs["7.1.jpg"] + probs["7.2.jpg"]) / 2
    assert got["7.1.jpg"]["clip_class"] == got["7.2.jpg"]["clip_class"] == ids[int(np.argmax(clip7))]
    assert float(got["7.2.jpg"]["clip_prob"]) == pytest.approx(clip7.max(), abs=1e-4)
    assert got["sub/deeper/9.1.bmp"]["clip_class"] == got["sub/deeper/9.1.bmp"]["class"]  # a clip of one


def test_files_and_globs_are_named_relative_to_where_they_were_found(model: Path, folder: Path) -> None:
    files = collect_inputs([folder / "7.1.jpg", str(folder / "sub" / "*.png"), str(folder / "**" / "*.bmp")])
    assert [f.name for f in files] == ["7.1.jpg", "8.1.png", "8.2.png", "sub/deeper/9.1.bmp"]
    again = collect_inputs([folder, folder / "7.1.jpg"])  # each file once
    assert len(again) == len(GOOD) + 1  # the broken .jpg is still an input, skipped when read


def test_batches_give_the_same_answers_as_one_by_one(model: Path, folder: Path) -> None:
    clf = Classifier(model, device="cpu")
    files = collect_inputs([folder])
    done: list[tuple[int, int]] = []
    from mgc_edge.runtime.predict import PredictOptions

    batched = predict_files(
        clf, files, PredictOptions(batch_size=4), progress=lambda d, t: done.append((d, t))
    )
    single = predict_files(clf, files, PredictOptions(batch_size=1))
    np.testing.assert_allclose(batched.probs, single.probs, atol=1e-6)
    assert [f.name for f in batched.files] == [f.name for f in single.files]
    assert [p.name for p, _ in batched.failed] == ["broken.jpg"]
    assert done[-1] == (len(files), len(files)) and len(done) == 2


def test_an_existing_output_is_kept_unless_force(model: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.csv"
    out.write_text("precious")
    assert "exists; pass --force" in one_error(invoke("predict", model, folder, "-o", out))
    assert out.read_text() == "precious"
    assert invoke("predict", model, folder, "-o", out, "--force").exit_code == 0
    assert len(rows(out)) == len(GOOD)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda root: root.mkdir() or root, "holds no images"),
        (lambda root: root / "missing", "does not exist"),
        (lambda root: str(root / "*.jpg"), "No image file matches"),
    ],
)
def test_inputs_with_nothing_to_predict_are_one_sentence(
    model: Path, tmp_path: Path, make: Any, needle: str
) -> None:
    target = make(tmp_path / "empty")
    assert needle in one_error(invoke("predict", model, target, "-o", tmp_path / "p.csv"))
    assert not (tmp_path / "p.csv").exists()


def test_an_output_that_cannot_be_written_is_one_sentence(model: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "a-file" / "p.csv"
    out.parent.write_text("not a folder")
    error = one_error(invoke("predict", model, folder, "-o", out))
    assert f"--out {out} cannot be written ({out.parent} is a file)." in error


def test_only_unreadable_files_is_an_error(model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"nope")
    assert "None of the 1 input files is a readable image" in one_error(
        invoke("predict", model, bad, "-o", tmp_path / "p.csv")
    )


def test_bad_options_and_models_are_one_sentence(model: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    assert "--batch-size must be at least 1" in one_error(
        invoke("predict", model, folder, "-o", out, "--batch-size", 0)
    )
    assert "not a valid regular expression" in one_error(
        invoke("predict", model, folder, "-o", out, "--clip", "--group-regex", "(")
    )
    plain = tiny_onnx(tmp_path / "plain.onnx", metadata=False)
    assert "no mgc-edge metadata" in one_error(invoke("predict", plain, folder, "-o", out))
    with pytest.raises(InputError):
        collect_inputs([])
