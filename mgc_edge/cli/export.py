"""`mgc-edge export` and `mgc-edge verify`: ONNX models behind a parity gate, and the gate on its own.

A command function here is long only by its option declarations (Typer reads them from the signature);
its body parses them and calls one library function.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from mgc_edge.cli.app import console, stdout, user_errors
from mgc_edge.errors import UserError

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
PARITY_DEVICE = (
    "Where the parity check runs: cpu, cuda, cuda:N or auto. On CUDA both sides compute in true fp32 "
    "(TF32 off), so the gates are the same as on the CPU."
)


def _gate_overrides(
    min_agreement: float | None, max_prob_diff: float | None, max_acc_drop: float | None
) -> Any:
    """Percent / points on the command line, fractions in the library."""
    from mgc_edge.export.gates import GateOverrides

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
    from rich import box
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def sci(v: float | None) -> str:
        return "-" if v is None else f"{v:.0e}" if v == 0 else f"{v:.1e}"

    # Readable at 80 columns (a pipe, a log): light rules instead of boxes, and only the file name may wrap.
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in ("file", "MB", "prec", "agree", "Δlogit", "Δprob", "top-1", "torch", "gate"):
        is_file = col == "file"
        table.add_column(
            col,
            justify="left" if col in ("file", "prec", "gate") else "right",
            overflow="fold",
            no_wrap=not is_file,
        )
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
    device: Annotated[str, typer.Option(help=PARITY_DEVICE)] = "cpu",
    min_agreement: MinAgreement = None,
    max_prob_diff: MaxProbDiff = None,
    max_acc_drop: MaxAccDrop = None,
) -> None:
    """Export a checkpoint to one self-contained .onnx file per precision, each proven against the checkpoint."""
    with user_errors("export"):
        from mgc_edge.export.onnx_export import ExportOptions, export_run
        from mgc_edge.export.verify import VerifyOptions

        check = VerifyOptions(
            data=data,
            split=split,
            max_images=max_images,
            batch_size=batch_size,
            device=device,
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
    device: Annotated[str, typer.Option(help=PARITY_DEVICE)] = "cpu",
    runtime: Annotated[
        str,
        typer.Option(
            help="Runtime to check the model in: onnxruntime, openvino or opencv (the last two where installed)."
        ),
    ] = "onnxruntime",
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the report here (default: MODEL.verify.json beside the model)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report.")] = False,
    min_agreement: MinAgreement = None,
    max_prob_diff: MaxProbDiff = None,
    max_acc_drop: MaxAccDrop = None,
) -> None:
    """Compare an exported model with its checkpoint on real images (or check it alone on an edge box)."""
    with user_errors("verify"):
        from mgc_edge.export.gates import report_path_for, write_report
        from mgc_edge.export.verify import VerifyOptions, verify_model
        from mgc_edge.fileio import refuse_existing
        from mgc_edge.runtime.model.backends import NAMES

        options = VerifyOptions(
            data=data,
            split=split,
            max_images=max_images,
            batch_size=batch_size,
            device=device,
            gates=_gate_overrides(min_agreement, max_prob_diff, max_acc_drop),
            runtime=runtime,
        )
        path = refuse_existing(json_out or report_path_for(model), force, "--json")  # before any work
        report = verify_model(
            model,
            checkpoint,
            options,
            write=False,
            on_step=lambda msg: console.print(f"[dim]{msg}[/]", highlight=False),
        )
        write_report(report, path)
        console.print(
            _parity_table(
                [(model, model.stat().st_size / 1e6, report)],
                f"Verification of {model} in {NAMES[report.runtime]} {report.runtime_version or ''}".rstrip(),
            )
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
