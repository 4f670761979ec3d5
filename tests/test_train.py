"""fit(): the run directory contract, honest splits, resume, and the refusals."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_cue_tree, make_tree
from rich.console import Console

from mgc_edge.config import PreprocessSpec, TrainConfig
from mgc_edge.data.scan import scan_folder
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


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs here cache their images under the test's folder, never in the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


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
    assert all(0.0 < float(r["val_acc_se"]) < 0.5 for r in rows)  # clip-bootstrap error of each epoch
    # The synthetic long tail leaves most classes with a clip or two in validation: said, not hidden.
    assert "fewer than 5 clips" in report["val_warning"] and "--val-frac" in report["val_warning"]


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


def test_a_checkpoint_builds_the_model_it_was_saved_from(tmp_path: Path) -> None:
    from mgc_edge.labels import Labels
    from mgc_edge.models import build_model
    from mgc_edge.train.checkpoint import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    trained = build_model("alexnet_bn", 3).to(memory_format=torch.channels_last)  # as training saves it
    for bn in (m for m in trained.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
    config = tiny_config(
        tmp_path, tmp_path / "run", arch="alexnet_bn", preprocess=PreprocessSpec(size=(64, 64))
    )
    data = checkpoint_dict(trained, config, Labels(("a", "b", "c")), 1, {})
    save_checkpoint(tmp_path / "best.pt", data)
    built = load_checkpoint(tmp_path / "best.pt").build()
    # Exactly what the ordinary build (random init, then load_state_dict) computes, in eval mode.
    ordinary = build_model("alexnet_bn", 3)
    ordinary.load_state_dict(data["model"])
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert not built.training and torch.equal(built(x), ordinary.eval()(x))
    assert not any(t.is_meta for t in [*built.parameters(), *built.buffers()])
    save_checkpoint(tmp_path / "other.pt", {**data, "arch": "resnet18"})
    with pytest.raises(CheckpointError, match="weights do not fit arch resnet18"):
        load_checkpoint(tmp_path / "other.pt").build()


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


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing_and_its_retry_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_tree(tmp_path / "d", {"a": 8, "b": 8})
    run = tmp_path / "run"
    diverging = tiny_config(data, run, lr=1e30, warmup_epochs=0.0, epochs=3, batch_size=4)
    with pytest.raises(
        UserError, match=r"Training diverged in epoch 1 .*nothing was saved.*smaller --lr"
    ) as caught:
        fit(diverging)
    assert "\n" not in str(caught.value)
    assert not run.exists()  # the message is true: no config.json or split.csv left to block the retry

    import mgc_edge.train.trainer as trainer

    def offline(*args: object, **kwargs: object) -> None:
        raise UserError("Could not fetch torchvision's pretrained resnet18 weights (offline).")

    monkeypatch.setattr(trainer, "build_model", offline)  # fails after config.json and split.csv were written
    with pytest.raises(UserError, match="offline"):
        fit(tiny_config(data, run, pretrained=True))
    assert not run.exists()
    monkeypatch.undo()

    fit(tiny_config(data, run))  # the same command again, no --force needed
    kept = _files(run)
    # --force over a run whose replacement fails before its first checkpoint: the earlier run is put back.
    with pytest.raises(UserError, match="diverged"):
        fit(diverging, overwrite=True)
    assert _files(run) == kept
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing set aside is left
    fit(tiny_config(data, run, seed=1), overwrite=True)
    assert _files(run)["config.json"] != kept["config.json"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_run_that_diverges_later_keeps_its_earlier_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mgc_edge.train.loop as loop

    data = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    real = loop.run_epoch

    def nan_in_epoch_2(t: object, epoch: int) -> dict[str, float]:
        row = real(t, epoch)  # type: ignore[arg-type]
        return {**row, "train_loss": float("nan")} if epoch == 2 else row

    monkeypatch.setattr(loop, "run_epoch", nan_in_epoch_2)
    with pytest.raises(UserError, match="epoch 2 .*earlier epochs are kept"):
        fit(tiny_config(data, tmp_path / "run", epochs=3))
    assert {"config.json", "split.csv", "metrics.csv", "best.pt", "last.pt"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }
    assert load_checkpoint(tmp_path / "run" / "last.pt").epoch == 1


def test_a_run_killed_before_its_first_checkpoint_is_started_again_with_force(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    cfg = tiny_config(data, tmp_path / "run")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(cfg.to_json())  # what a run killed in its first epoch leaves
    with pytest.raises(UserError, match="saved no epoch; pass --force to start it again"):
        fit(cfg)
    assert (run / "config.json").read_text() == cfg.to_json()
    assert (fit(cfg, overwrite=True).run_dir / "last.pt").is_file()


def test_resume_with_more_epochs_updates_config_json_and_a_finished_run_is_not_resumed(
    tmp_path: Path,
) -> None:
    data = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    run = tmp_path / "run"
    fit(tiny_config(data, run, epochs=1))
    kept = _files(run)
    with pytest.raises(UserError, match="has trained all its 1 epochs; pass --epochs N"):
        fit(tiny_config(data, run, epochs=1), resume=True)
    assert _files(run) == kept
    fit(tiny_config(data, run, epochs=2), resume=True)
    assert json.loads((run / "config.json").read_text())["epochs"] == 2  # a later --resume continues this
    assert TrainConfig.from_file(run / "config.json") == tiny_config(data, run, epochs=2)
    assert [int(r["epoch"]) for r in csv.DictReader((run / "metrics.csv").open())] == [1, 2]


def test_cuda_asked_for_where_there_is_none(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data = make_tree(tmp_path / "d", {"a": 2, "b": 2})
    with pytest.raises(UserError, match="no usable CUDA"):
        fit(tiny_config(data, tmp_path / "run", device="cuda"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("balance", ["none", "loss", "sampler"])
def test_balance_options_change_what_is_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, balance: str
) -> None:
    """`--balance sampler` draws the rare class far more often than its share; `--balance loss` weighs it
    up in the loss by the square root of the frequency ratio; `none` does neither."""
    import mgc_edge.train.loop as loop

    data = make_tree(tmp_path / "d", {"a": 24, "b": 3})
    made: list = []
    real_setup, real_epoch = loop.setup, loop.train_one_epoch
    monkeypatch.setattr(loop, "setup", lambda *a, **k: made.append(real_setup(*a, **k)) or made[-1])
    trained: list[int] = []

    def spy(net: object, batches: object, *args: object, **kwargs: object) -> dict[str, float]:
        class Recording:
            def __len__(self) -> int:
                return len(batches)  # type: ignore[arg-type]

            def __iter__(self):  # noqa: ANN204
                for x, y in batches:  # type: ignore[attr-defined]
                    trained.extend(y.tolist())
                    yield x, y

        return real_epoch(net, Recording(), *args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", spy)
    assert (fit(tiny_config(data, tmp_path / "run", balance=balance)).run_dir / "best.pt").is_file()
    t = made[0]
    n_common, n_rare = t.data.counts("train")
    assert n_rare > 0
    labels = [s.label for s in t.data.samples("train")]
    sampler = t.train.sampler
    sampler.set_epoch(1)
    assert sorted(trained) == sorted(labels[i] for i in sampler)  # what was trained is what it drew
    drawn = []
    for epoch in range(300):
        sampler.set_epoch(epoch)
        drawn += [labels[i] for i in sampler]
    share, natural = float(np.mean(drawn)), n_rare / (n_common + n_rare)
    weight = t.loss_fn.weight
    if balance == "sampler":
        expected = np.sqrt(n_rare) / (np.sqrt(n_rare) + np.sqrt(n_common))  # inverse sqrt-frequency weights
        assert share > 2 * natural and abs(share - expected) < 0.02, (share, natural, expected)
    else:
        assert abs(share - natural) < 1e-9  # every image once per epoch
    if balance == "loss":
        assert weight is not None
        assert float(weight[1] / weight[0]) == pytest.approx(np.sqrt(n_common / n_rare), rel=1e-5)
    else:
        assert weight is None


def test_fit_caches_the_images_once_and_the_next_run_reuses_them(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    cache = tmp_path / "cache"
    first, second = io.StringIO(), io.StringIO()
    fit(tiny_config(data, tmp_path / "one", cache_dir=str(cache)), console=Console(file=first, width=300))
    files = sorted(p.name for p in cache.glob("*.u8cache"))
    assert len(files) == 3  # train (a margin above the model size), val and test (at the model size)
    assert first.getvalue().count("Cached ") == 2 and "train images at 40x40" in first.getvalue()
    fit(tiny_config(data, tmp_path / "two", cache_dir=str(cache)), console=Console(file=second, width=300))
    assert sorted(p.name for p in cache.glob("*.u8cache")) == files
    assert "Cached " not in second.getvalue() and second.getvalue().count("Using the cache") == 2


def test_no_cache_trains_from_the_files_and_writes_no_cache(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    run = fit(tiny_config(data, tmp_path / "run", cache=False, cache_dir=str(tmp_path / "cache"))).run_dir
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    assert not (tmp_path / "cache").exists()


def test_persistent_loader_workers_see_each_new_epoch(tmp_path: Path) -> None:
    """The decode path keeps its workers between epochs; their augmentation still changes per epoch."""
    from mgc_edge.data.dataset import Augment, FrameDataset
    from mgc_edge.train.batches import LoaderBatches, make_loader

    data = make_tree(tmp_path / "d", {"a": 2, "b": 2}, size=(40, 40))
    samples = scan_folder(data, r"^(?P<group>[^.]+)\.").samples
    ds = FrameDataset(data, samples, PreprocessSpec(size=(32, 32)), Augment(), seed=0)
    batches = LoaderBatches(make_loader(ds, 8, workers=1, persistent=True), torch.device("cpu"))
    epochs = []
    for epoch in (1, 2, 1):
        batches.set_epoch(epoch)
        epochs.append(torch.cat([x for x, _ in batches]))
    assert not torch.equal(epochs[0], epochs[1]) and torch.equal(epochs[0], epochs[2])
    ds.set_epoch(2)
    assert torch.equal(epochs[1][0], ds[0][0])  # the workers used the epoch the main process set


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


def test_cli_cache_options_reach_the_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mgc_edge.cli import app

    data = make_tree(tmp_path / "d", {"a": 4, "b": 4})
    fast = ["--arch", "resnet18", "--size", "32", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]
    cache = tmp_path / "my cache"
    result = CliRunner().invoke(
        app, ["train", str(data), "-o", str(tmp_path / "r1"), *fast, "--cache-dir", str(cache)]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r1" / "config.json").read_text())
    assert config["cache"] is True and config["cache_dir"] == str(cache)
    assert len(list(cache.glob("*.u8cache"))) == 3
    result = CliRunner().invoke(
        app, ["train", str(data), "-o", str(tmp_path / "r2"), *fast, "--no-cache", "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r2" / "config.json").read_text())["cache"] is False
    (tmp_path / "a file").write_text("x")
    result = CliRunner().invoke(
        app, ["train", str(data), "-o", str(tmp_path / "r3"), *fast, "--cache-dir", str(tmp_path / "a file")]
    )
    assert result.exit_code == 2 and "Cannot create the cache folder" in result.output
    assert "Traceback" not in result.output


def test_an_epoch_reads_its_figures_from_the_device_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host-device synchronisation per step: loss and hits add up on the device and are read once."""
    import mgc_edge.train.loop as loop

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    batches = [(torch.randn(5, 3, 8, 8), torch.randint(0, 4, (5,))) for _ in range(12)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    reads: list[str] = []
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)

        def counted(
            self: torch.Tensor, *a: object, _real: object = real, _name: str = name, **k: object
        ) -> object:
            reads.append(_name)
            return _real(self, *a, **k)  # type: ignore[operator]

        monkeypatch.setattr(torch.Tensor, name, counted)
    monkeypatch.setattr(loop, "REFRESH_S", 1e9)  # the bar's figures are never due during this epoch
    progress: list[tuple[int, object]] = []
    stats = loop.train_one_epoch(
        model, batches, opt, sched, torch.nn.CrossEntropyLoss(), torch.device("cpu"), False, None,
        on_batch=lambda done, s: progress.append((done, s)),
    )  # fmt: skip
    monkeypatch.undo()
    assert reads == ["tolist"], reads  # one read, at the end of the epoch
    assert [d for d, _ in progress] == list(range(1, 13)) and all(s is None for _, s in progress)
    assert stats["seen"] == 60 and 0 <= stats["acc"] <= 1 and stats["loss"] > 0
