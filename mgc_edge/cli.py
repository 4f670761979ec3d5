"""The `mgc-edge` command line: thin commands that parse options and call one library function each.

Heavy imports (torch) happen inside the commands, so `mgc-edge --help` and the runtime commands stay fast
and work on an edge box without PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mgc_edge import __version__
from mgc_edge.config import TrainConfig
from mgc_edge.errors import UserError

app = typer.Typer(
    name="mgc-edge",
    help="Micro-gesture image classifier: train, export (with a parity gate) and run on the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
stdout = Console()


@contextmanager
def user_errors() -> Iterator[None]:
    """Errors a user can cause end in one sentence and exit code 2, never a traceback."""
    try:
        yield
    except UserError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None


def _version(value: bool) -> None:
    if value:
        stdout.print(f"mgc-edge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Micro-gesture image classifier: train, export (with a parity gate) and run on the edge."""


def parse_size(text: str) -> tuple[int, int]:
    """'224' -> (224, 224); '112x200' -> (112, 200) as (H, W)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise UserError(f"--size must be N or HxW (e.g. 224 or 112x200), got {text!r}.") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise UserError(f"--size must be N or HxW (e.g. 224 or 112x200), got {text!r}.")
    return parts[0], parts[1]


def _replace(obj: Any, **changes: Any) -> Any:
    """dataclasses.replace with only the options the user actually gave (None = not given)."""
    return dataclasses.replace(obj, **{k: v for k, v in changes.items() if v is not None})


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create (class folders go in OUT/training).")],
    scale: Annotated[
        float, typer.Option(help="Fraction of the real iMiGUE frame counts (0.01 tiny, 1.0 full).")
    ] = 0.05,
    min_clips: Annotated[int, typer.Option(help="Every class gets at least this many clips.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical files.")] = 0,
    video_seconds: Annotated[float, typer.Option(help="Length of the demo video.")] = 16.0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier synthetic dataset in OUT.")
    ] = False,
) -> None:
    """Make a synthetic, iMiGUE-shaped dataset (32 classes, clips of near-duplicate frames) and a demo video."""
    from mgc_edge.data.synth import SynthConfig, SynthError, make_dataset

    with user_errors():
        start = time.perf_counter()
        try:
            summary = make_dataset(
                out,
                SynthConfig(scale=scale, min_clips=min_clips, seed=seed, video_seconds=video_seconds),
                overwrite=force,
            )
        except SynthError as exc:
            raise UserError(str(exc)) from None
        console.print(
            f"Wrote {summary.n_images} images in {sum(summary.clips.values())} clips of {len(summary.counts)} classes "
            f"to [bold]{summary.image_dir}[/] and a demo video {summary.video} ({time.perf_counter() - start:.1f}s)."
        )
        stdout.print(str(summary.image_dir))


@app.command()
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
        str | None, typer.Option(help="Regex whose group `group` is the clip key of a file name.")
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
    workers: Annotated[int | None, typer.Option(help="Data-loading processes [2].")] = None,
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
    max_train_batches: Annotated[
        int | None, typer.Option(help="Cap batches per epoch (smoke runs).", hidden=True)
    ] = None,
) -> None:
    """Train a classifier; the best epoch on validation is evaluated once on the test split."""
    with user_errors():
        if resume:
            if run is None:
                raise UserError("--resume needs --run-dir RUN_DIR.")
            config = config or run / "config.json"
        if config is not None:
            base = TrainConfig.from_file(config)
        elif data is not None:
            base = TrainConfig(data=str(data), run_dir="")
        else:
            raise UserError("Give a DATA folder (or --config FILE, or --resume with --run-dir).")
        spec = _replace(base.preprocess, size=parse_size(size) if size else None, resize=resize)
        split_cfg = _replace(
            base.split, mode=split, group_regex=group_regex, test_frac=test_frac, val_frac=val_frac, seed=seed
        )
        chosen_arch = arch or base.arch
        default_run = Path("runs") / f"{chosen_arch}-{time.strftime('%Y%m%d-%H%M%S')}"
        cfg = _replace(
            base,
            data=str(data.resolve()) if data is not None else None,
            run_dir=str(run) if run is not None else (base.run_dir if resume else str(default_run)),
            arch=arch,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            label_smoothing=label_smoothing,
            balance=balance,
            augment=augment,
            hflip=hflip,
            preprocess=spec,
            split=split_cfg,
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


@app.command()
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
) -> None:
    """Top-1, top-5, balanced accuracy, macro-F1, per-class figures, clip-level accuracy and the baseline."""
    with user_errors():
        from mgc_edge.fileio import write_json
        from mgc_edge.labels import Labels
        from mgc_edge.train.evaluate import evaluate_run
        from mgc_edge.train.plots import plot_confusion
        from mgc_edge.train.report import render_report

        report = evaluate_run(
            run, split=split, data=data, device=device, batch_size=batch_size, workers=workers
        )
        run_dir = Path(report["checkpoint"]).parent
        tag = "data" if data is not None else split
        out = json_out or run_dir / f"eval-{tag}.json"
        write_json(out, report)
        labels = Labels(
            tuple(r["label"] for r in report["per_class"]), tuple(r["name"] for r in report["per_class"])
        )
        plot_confusion(report["confusion"], labels, out.with_suffix(".confusion.png"), title=report["source"])
        render_report(report, console, title=f"Evaluation on the {report['source']}")
        console.print(f"Report: {out}")
        stdout.print(json.dumps({k: report[k] for k in ("top1", "top5", "balanced_accuracy", "macro_f1")}))


# --- export / verify (issue 3) ---


# Gate options shared by export and verify (percent / points on the command line).
MinAgreement = Annotated[
    float | None, typer.Option(help="Gate: top-1 agreement in percent (default: fp32 100, fp16 99, int8 98).")
]
MaxProbDiff = Annotated[
    float | None, typer.Option(help="Gate: largest probability difference (default: fp32 1e-4).")
]
MaxAccDrop = Annotated[
    float | None,
    typer.Option(help="Gate: accuracy points the model may lose against PyTorch (default: int8 1)."),
]


def _gate_overrides(
    min_agreement: float | None, max_prob_diff: float | None, max_acc_drop: float | None
) -> Any:
    """Percent / points on the command line, fractions in the library."""
    from mgc_edge.export.verify import GateOverrides

    for name, value in (("--min-agreement", min_agreement), ("--max-acc-drop", max_acc_drop)):
        if value is not None and not 0 <= value <= 100:
            raise UserError(f"{name} is in percent (points) between 0 and 100, got {value}.")
    return GateOverrides(
        min_agreement=None if min_agreement is None else min_agreement / 100,
        max_prob_diff=max_prob_diff,
        max_acc_drop=None if max_acc_drop is None else max_acc_drop / 100,
    )


def _parity_table(rows: list[tuple[Path, float | None, Any]], title: str) -> Any:
    """One row per model: file, size, precision, parity figures, accuracy on the checked images, gate."""
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def sci(v: float | None) -> str:
        return "-" if v is None else f"{v:.0e}" if v == 0 else f"{v:.1e}"

    table = Table(title=title, title_justify="left")
    for col in ("file", "MB", "prec", "agree", "Δlogit", "Δprob", "top-1", "torch", "gate"):
        table.add_column(col, justify="left" if col in ("file", "prec", "gate") else "right", overflow="fold")
    for path, size_mb, r in rows:
        gate = "-" if r is None else ("[green]pass[/]" if r.passed else "[bold red]FAIL[/]")
        table.add_row(
            path.name,
            "-" if size_mb is None else f"{size_mb:.1f}",
            r.precision if r else "-",
            pct(r.agreement if r else None),
            sci(r.logits_max_abs if r else None),
            sci(r.probs_max_abs if r else None),
            pct(r.acc_model if r else None),
            pct(r.acc_checkpoint if r else None),
            gate,
        )
    return table


def _legend(report: Any) -> str:
    if report.checkpoint is None:
        return f"Checked alone on {report.n_images} {report.source}: no checkpoint to compare with."
    return (
        f"Checked on {report.n_images} images of the {report.source}: agree = top-1 agreement with PyTorch, "
        "Δ = largest absolute difference, top-1 = accuracy on these images."
    )


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory (its best.pt) or a checkpoint .pt.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output .onnx file, or with several precisions the fp32 name the others derive from; anything else is a folder (default: RUN/model.onnx, model.fp16.onnx, model.int8.onnx).",
        ),
    ] = None,
    precision: Annotated[
        list[str] | None,
        typer.Option(
            "--precision",
            "-p",
            help="fp32, fp16, int8 or all; repeat or comma-separate for several (default: fp32).",
        ),
    ] = None,
    calib_images: Annotated[
        int, typer.Option(help="Training images to calibrate int8 on (at least 32).")
    ] = 256,
    calib_data: Annotated[
        Path | None,
        typer.Option(
            help="Calibrate int8 on the images under this folder instead of the run's training split."
        ),
    ] = None,
    calib_method: Annotated[
        str, typer.Option(help="int8 calibration: minmax, percentile or entropy.")
    ] = "minmax",
    opset: Annotated[int, typer.Option(help="ONNX opset (18 or newer).")] = 18,
    force: Annotated[bool, typer.Option("--force", help="Replace existing output files.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Prove parity before moving each file into place; --no-verify is discouraged.",
        ),
    ] = True,
    data: Annotated[
        Path | None,
        typer.Option(help="Check parity on this folder-per-class tree instead of the run's split."),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Split of the run to check parity on: train, val or test.")
    ] = "test",
    max_images: Annotated[int, typer.Option(help="Images to check parity on; 0 = all.")] = 1000,
    batch_size: Annotated[
        int, typer.Option(help="Batch size of the parity check (at least 2; batch 1 is checked too).")
    ] = 16,
    min_agreement: MinAgreement = None,
    max_prob_diff: MaxProbDiff = None,
    max_acc_drop: MaxAccDrop = None,
) -> None:
    """Export a checkpoint to one self-contained .onnx file per precision, each proven against the checkpoint."""
    with user_errors():
        from mgc_edge.export.onnx_export import ExportOptions, export_run
        from mgc_edge.export.verify import VerifyOptions

        check = VerifyOptions(
            data=data,
            split=split,
            max_images=max_images,
            batch_size=batch_size,
            gates=_gate_overrides(min_agreement, max_prob_diff, max_acc_drop),
        )
        options = ExportOptions(
            precisions=tuple(precision or ("fp32",)),
            out=out,
            opset=opset,
            calib_images=calib_images,
            calib_data=calib_data,
            calib_method=calib_method,
            force=force,
            verify=verify,
            check=check,
        )
        if not verify:
            console.print("[yellow]--no-verify: these models have not been shown to match the checkpoint.[/]")
        start = time.perf_counter()
        result = export_run(
            run, options, on_step=lambda msg: console.print(f"[dim]{msg}[/]", highlight=False)
        )
        rows = [(m.path, m.size_mb, m.report) for m in result.models]
        console.print(
            _parity_table(rows, f"Export of {result.checkpoint} ({time.perf_counter() - start:.0f}s)")
        )
        if rows and rows[0][2] is not None:
            console.print(_legend(rows[0][2]), highlight=False)
        for m in result.models:
            if not m.passed and m.report is not None:
                console.print(
                    f"[bold red]{m.precision} failed its gate:[/] {' '.join(m.report.failures())} Kept as {m.path}."
                )
            elif m.passed:
                stdout.print(str(m.path))
        if not result.ok:
            raise typer.Exit(1)


@app.command()
def verify(
    model: Annotated[Path, typer.Argument(help="An exported .onnx model.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            "-c",
            help="Compare with this run directory or checkpoint .pt; without it the model is checked on its own.",
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Folder-per-class tree to check on instead of the run's split.")
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the checkpoint's run: train, val or test.")] = "test",
    max_images: Annotated[int, typer.Option(help="Images to check; 0 = all.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Batch size (at least 2; batch 1 is checked too).")] = 16,
    device: Annotated[
        str, typer.Option(help="Where ONNX Runtime runs: cpu (the reference), cuda or auto.")
    ] = "cpu",
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the report here (default: MODEL.verify.json beside the model)."),
    ] = None,
    min_agreement: MinAgreement = None,
    max_prob_diff: MaxProbDiff = None,
    max_acc_drop: MaxAccDrop = None,
) -> None:
    """Compare an exported model with its checkpoint on real images (or check it alone on an edge box)."""
    with user_errors():
        from mgc_edge.export.verify import VerifyOptions, verify_model, write_report

        options = VerifyOptions(
            data=data,
            split=split,
            max_images=max_images,
            batch_size=batch_size,
            device=device,
            gates=_gate_overrides(min_agreement, max_prob_diff, max_acc_drop),
        )
        report = verify_model(
            model,
            checkpoint,
            options,
            write=False,
            on_step=lambda msg: console.print(f"[dim]{msg}[/]", highlight=False),
        )
        path = write_report(report, json_out)
        console.print(
            _parity_table([(model, model.stat().st_size / 1e6, report)], f"Verification of {model}")
        )
        console.print(_legend(report), highlight=False)
        for gate in report.gates:
            console.print(
                ("[green]pass[/] " if gate.passed else "[bold red]FAIL[/] ") + gate.sentence(),
                highlight=False,
            )
        for note in report.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        console.print(f"Report: {path}")
        stdout.print(
            json.dumps({"passed": report.passed, "failures": report.failures(), "report": str(path)})
        )
        if not report.passed:
            raise typer.Exit(1)


# --- end export / verify ---
