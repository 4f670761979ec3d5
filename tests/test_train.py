"""fit(): the run directory contract, honest splits, resume, and the refusals."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from helpers import make_cue_tree, make_tree

from mgc_edge.config import PreprocessSpec, TrainConfig
from mgc_edge.errors import UserError
from mgc_edge.train.checkpoint import CheckpointError, load_checkpoint
from mgc_edge.train.loop import fit

RUN_FILES = {
    "config.json",
    "split.csv",
    "metrics.csv",
    "best.pt",
    "last.pt",
    "curves.png",
    "confusion.png",
    "report.json",
}


def tiny_config(data: Path, run_dir: Path, **kw: object) -> TrainConfig:
    base = dict(
        epochs=1,
        batch_size=8,
        preprocess=PreprocessSpec(size=(32, 32)),
        workers=0,
        device="cpu",
        arch="resnet18",
    )
    base.update(kw)
    return TrainConfig(data=str(data), run_dir=str(run_dir), **base)  # type: ignore[arg-type]


def test_run_dir_holds_every_file_of_the_contract(tiny_run: Path) -> None:
    assert RUN_FILES <= {p.name for p in tiny_run.iterdir()}
    assert not [p for p in tiny_run.iterdir() if p.name.startswith(".")]  # no temp files left behind
    report = json.loads((tiny_run / "report.json").read_text())
    test = report["test"]
    assert report["split_mode"] == "group"
    assert {"top1", "top5", "balanced_accuracy", "macro_f1", "clip", "baseline", "per_class"} <= set(test)
    assert test["baseline"]["label"] == "32"  # the train majority, as in the real data
    rows = list(csv.DictReader((tiny_run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and "val_macro_f1" in rows[0]


def test_split_csv_puts_every_clip_in_one_split(tiny_run: Path) -> None:
    where: dict[str, set[str]] = defaultdict(set)
    for row in csv.DictReader((tiny_run / "split.csv").open()):
        where[row["group"]].add(row["split"])
    assert where and all(len(s) == 1 for s in where.values())
    assert {next(iter(s)) for s in where.values()} == {"train", "val", "test"}


def test_checkpoint_is_plain_and_loads_with_weights_only(tiny_run: Path) -> None:
    raw = torch.load(tiny_run / "best.pt", weights_only=True)
    assert raw["format"] == "mgc_edge.checkpoint" and raw["labels"][:3] == ["1", "2", "3"]
    ckpt = load_checkpoint(tiny_run)
    assert ckpt.labels.names is not None and ckpt.labels.display(16) == "Folding arms"
    assert ckpt.preprocess.size == (64, 64)
    assert ckpt.build()(torch.zeros(1, 3, 64, 64)).shape == (1, 32)
    last = torch.load(tiny_run / "last.pt", weights_only=True)
    assert {"optimizer", "scheduler", "rng_cpu"} <= set(last)


def test_damaged_or_foreign_checkpoints_are_refused(tmp_path: Path, tiny_run: Path) -> None:
    data = (tiny_run / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an mgc-edge checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_existing_run_is_never_overwritten_unless_asked(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    cfg = tiny_config(data, tmp_path / "run")
    fit(cfg)
    before = (tmp_path / "run" / "best.pt").stat().st_mtime_ns
    with pytest.raises(UserError, match="already exists"):
        fit(cfg)
    assert (tmp_path / "run" / "best.pt").stat().st_mtime_ns == before
    fit(cfg, overwrite=True)
    assert (tmp_path / "run" / "best.pt").stat().st_mtime_ns != before


def test_resume_after_a_crash_matches_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    straight = fit(tiny_config(data, tmp_path / "straight", epochs=3))

    import mgc_edge.train.loop as loop

    real, calls = loop.train_one_epoch, []

    def crash_in_epoch_3(*args: object, **kwargs: object) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the machine goes down mid-run
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(data, tmp_path / "resumed", epochs=3))
    monkeypatch.setattr(loop, "train_one_epoch", real)
    resumed = fit(tiny_config(data, tmp_path / "resumed", epochs=3), resume=True)
    rows = list(csv.DictReader((resumed.run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    a = load_checkpoint(straight.run_dir / "last.pt").state["model"]
    b = load_checkpoint(resumed.run_dir / "last.pt").state["model"]
    # Same seed, optimizer, scheduler and RNG state: the resumed run computes the same weights.
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_resume_without_last_pt_is_refused(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(UserError, match="Cannot resume"):
        fit(tiny_config(data, tmp_path / "nothing"), resume=True)


def test_cuda_asked_for_where_there_is_none(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data = make_tree(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(UserError, match="no usable CUDA"):
        fit(tiny_config(data, tmp_path / "run", device="cuda"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("balance", ["loss", "sampler"])
def test_balance_options_train(tmp_path: Path, balance: str) -> None:
    data = make_tree(tmp_path / "d", {"a": 8, "b": 2})
    result = fit(tiny_config(data, tmp_path / "run", balance=balance))
    assert (result.run_dir / "best.pt").is_file()


@pytest.mark.slow
def test_training_on_synthetic_data_beats_the_majority_baseline(tmp_path: Path) -> None:
    """The seed's model, defaults and all, learns a spatial cue: test top-1 clearly above the majority.

    Clip-grouped split, so the test clips are backgrounds and colours the model has never seen.
    """
    data = make_cue_tree(tmp_path / "cue", {"a": 40, "b": 25, "c": 20, "d": 15})
    cfg = TrainConfig(
        data=str(data),
        run_dir=str(tmp_path / "run"),
        epochs=10,
        preprocess=PreprocessSpec(size=(64, 64)),
        workers=0,
        device="cpu",
    )
    test = fit(cfg).test_report
    assert test is not None
    assert test["top1"] >= test["baseline"]["top1"] + 0.2, (test["top1"], test["baseline"]["top1"])
    assert test["balanced_accuracy"] > 0.5  # more than the majority class is recognised
