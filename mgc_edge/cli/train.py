"""`mgc-edge train` and `mgc-edge evaluate`: thin commands over `train.loop.fit` and `train.evaluate`.

A command function here is long only by its option declarations (Typer reads them from the signature);
its body parses them and calls one library function.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from mgc_edge.cli.app import console, given, parse_size, stdout, user_errors
from mgc_edge.config import SplitConfig, TrainConfig
from mgc_edge.errors import UserError

_GROUP_REGEX = SplitConfig().group_regex


def base_config(
    data: Path | None, run: Path | None, config: Path | None, resume: bool, arch: str | None
) -> TrainConfig:
    """The config the options apply to: the resumed run's, a --config file's, or the defaults for DATA
    (with a run directory named after the arch and the time)."""
    if resume:
        if run is None:
            raise UserError("--resume needs --run-dir RUN_DIR.")
        config = config or run / "config.json"
    if config is not None:
        return TrainConfig.from_file(config)
    if data is None:
        raise UserError("Give a DATA folder (or --config FILE, or --resume with --run-dir).")
    default = TrainConfig(data=str(data), run_dir="")
    run_dir = Path("runs") / f"{arch or default.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    return given(default, run_dir=str(run_dir))


def train(
    data: Annotated[
        Path | None, typer.Argument(help="Folder with one sub-folder of images per class.")
    ] = None,
    run: Annotated[
        Path | None, typer.Option("--run-dir", "-o", help="Run directory (default runs/<arch>-<time>).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Repeat a run from its config.json; options given here override it."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --run-dir from its last.pt.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run directory.")] = False,
    arch: Annotated[
        str | None,
        typer.Option(
            help="alexnet_bn (default, the seed's model), alexnet, mobilenet_v3_small, resnet18, efficientnet_b0."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs [30].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size per process [30].")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of SGD [0.01].")] = None,
    momentum: Annotated[float | None, typer.Option(help="SGD momentum [0.9].")] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Weight decay, not on biases and norms [5e-4].")
    ] = None,
    warmup_epochs: Annotated[
        float | None, typer.Option(help="Linear warm-up before the cosine decay [1].")
    ] = None,
    label_smoothing: Annotated[
        float | None, typer.Option(help="Label smoothing of the cross-entropy [0.1].")
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(help="Dropout rate of the classifier; 0 learns faster in short runs [the arch's own]."),
    ] = None,
    balance: Annotated[
        str | None, typer.Option(help="Long-tail handling: none, loss (class weights) or sampler [none].")
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option("--augment/--no-augment", help="Random crop, flip, brightness and contrast [on]."),
    ] = None,
    hflip: Annotated[
        bool | None, typer.Option("--hflip/--no-hflip", help="Horizontal flips in augmentation [on].")
    ] = None,
    size: Annotated[str | None, typer.Option(help="Model input size N or HxW [224].")] = None,
    resize: Annotated[str | None, typer.Option(help="stretch, letterbox or center_crop [stretch].")] = None,
    split: Annotated[
        str | None, typer.Option(help="group (by clip, honest) or random (leaky) [group].")
    ] = None,
    group_regex: Annotated[
        str | None,
        typer.Option(
            help="Regex whose group `group` is the clip key of a file name; default "
            f"{_GROUP_REGEX} (the <clip> of <clip>.<frame>.jpg)."
        ),
    ] = None,
    test_frac: Annotated[
        float | None, typer.Option(help="Fraction of frames held out for test [0.2].")
    ] = None,
    val_frac: Annotated[float | None, typer.Option(help="Fraction of the rest for validation [0.1].")] = None,
    split_file: Annotated[
        Path | None, typer.Option(help="Reuse the split of an earlier run's split.csv.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for the split, initialisation and augmentation [0].")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda [auto].")] = None,
    amp: Annotated[
        bool | None,
        typer.Option("--amp/--no-amp", help="Mixed precision on CUDA (bf16 where supported) [on]."),
    ] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model [off].")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Stop after this many epochs without validation gain; 0 = never [0].")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Data-loading processes of the --no-cache path (default: the cores but one, 2-12)."
        ),
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Start from a local state-dict file (the head is refitted).")
    ] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option(
            "--pretrained", help="Start from torchvision's ImageNet weights (needs them downloaded)."
        ),
    ] = None,
    class_names: Annotated[
        str | None,
        typer.Option(help="CSV label,name of human-readable names; `imigue` for the shipped ones."),
    ] = None,
    strict: Annotated[
        bool | None, typer.Option("--strict", help="Fail on any unreadable file instead of skipping it.")
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option(
            "--cache/--no-cache",
            help="Decode and resize every image once into a memory-mapped uint8 cache that later epochs and "
            "runs reuse; --no-cache decodes every epoch in --workers processes [on].",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Where the cache lives [$XDG_CACHE_HOME/mgc-edge or ~/.cache/mgc-edge]."),
    ] = None,
    max_train_batches: Annotated[
        int | None, typer.Option(help="Cap batches per epoch (smoke runs).", hidden=True)
    ] = None,
) -> None:
    """Train a classifier; the best epoch on validation is evaluated once on the test split."""
    with user_errors("train"):
        base = base_config(data, run, config, resume, arch)
        cfg = given(
            base,
            data=str(data.resolve()) if data is not None else None,
            run_dir=str(run) if run is not None else (base.run_dir if resume else None),
            arch=arch,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            label_smoothing=label_smoothing,
            dropout=dropout,
            balance=balance,
            augment=augment,
            hflip=hflip,
            preprocess=given(base.preprocess, size=parse_size(size) if size else None, resize=resize),
            split=given(
                base.split,
                mode=split,
                group_regex=group_regex,
                test_frac=test_frac,
                val_frac=val_frac,
                seed=seed,
            ),
            split_file=str(split_file) if split_file else None,
            seed=seed,
            device=device,
            amp=amp,
            compile=compile,
            patience=patience,
            workers=workers,
            weights=str(weights) if weights else None,
            pretrained=pretrained,
            class_names=class_names,
            strict=strict,
            max_train_batches=max_train_batches,
            cache=cache,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
        from mgc_edge.train.loop import fit

        result = fit(cfg, overwrite=force, resume=resume, console=console)
        if result.test_report:
            t = result.test_report
            console.print(
                f"test top-1 {t['top1']:.1%} (majority baseline {t['baseline']['top1']:.1%}), "
                f"macro-F1 {t['macro_f1']:.3f}, {result.seconds:.0f}s"
            )
        stdout.print(str(result.run_dir))


def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory (or a checkpoint .pt).")],
    split: Annotated[str, typer.Option(help="Which split of the run: train, val or test.")] = "test",
    data: Annotated[
        Path | None, typer.Option(help="Evaluate on this folder-per-class tree instead of a split.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report here (default RUN/eval-<split>.json).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 64,
    workers: Annotated[int, typer.Option(help="Data-loading processes.")] = 2,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing report and its confusion matrix PNG.")
    ] = False,
) -> None:
    """Top-1, top-5, balanced accuracy, macro-F1, per-class figures, clip-level accuracy and the baseline."""
    with user_errors("evaluate"):
        from mgc_edge.train.evaluate import evaluate_and_write

        report, out = evaluate_and_write(
            run,
            split=split,
            data=data,
            device=device,
            batch_size=batch_size,
            workers=workers,
            json_out=json_out,
            console=console,
            force=force,
        )
        console.print(f"Report: {out}")
        stdout.print(json.dumps({k: report[k] for k in ("top1", "top5", "balanced_accuracy", "macro_f1")}))
