"""`mgc-edge annotate`: recorded videos in, per-frame labels, gesture segments and ELAN tiers out (no torch).

A command function here is long only by its option declarations (Typer reads them from the signature);
its body parses them and calls one library function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import ProgressColumn, Task
from rich.text import Text

from mgc_edge.cli import runtime as rt
from mgc_edge.cli.app import console, sigterm_as_interrupt, stdout, user_errors
from mgc_edge.cli.runtime import Device
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH, SMOOTH_HELP  # numpy-free: --help stays light

DEFAULT_MIN_SECONDS = 0.3  # recorded.options.DEFAULT_MIN_SECONDS (not imported: keeps --help light)


class RateColumn(ProgressColumn):
    """Frames per second over the last seconds, as the progress bar measures them."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(f"{speed:,.0f} frames/s" if speed else "", style="progress.data.speed")


def annotate(
    model: Annotated[
        Path, typer.Argument(help="An exported .onnx model (it carries labels and preprocessing).")
    ],
    inputs: Annotated[
        list[str], typer.Argument(help="Video files, folders (searched recursively for videos) and globs.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for <video>.frames.csv, .segments.csv, .eaf, .mgc.json and summary.json.",
        ),
    ] = Path("annotations"),
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Known labels to score against: a CSV frame,label (or frame,class) or an ELAN .eaf (one video), or "
            "a folder of truths named like the outputs (<name>.csv / .eaf), or at the video's relative path, or by "
            "its stem where no other video shares it."
        ),
    ] = None,
    truth_tier: Annotated[
        str | None,
        typer.Option(help="The .eaf tier holding the truth (default: its only tier, or 'gesture')."),
    ] = None,
    min_seconds: Annotated[
        float,
        typer.Option(
            help="Segments shorter than this are merged into a neighbour: 0.3 s is 4-5 frames at 15 fps, 9 at 30, "
            "longer than the flicker smoothing lets through and shorter than a held gesture; 0 keeps every run."
        ),
    ] = DEFAULT_MIN_SECONDS,
    background: Annotated[
        list[str] | None,
        typer.Option(
            help="A label (class folder name) left out of the segments and the .eaf; repeat for several."
        ),
    ] = None,
    topk: Annotated[
        int, typer.Option(help="Add columns top1..topK and prob1..probK to frames.csv; 0 = none.")
    ] = 0,
    smooth: Annotated[
        str,
        typer.Option(help=SMOOTH_HELP),
    ] = DEFAULT_SMOOTH,
    every: Annotated[int, typer.Option(help="Classify every Nth frame (frame numbers stay the file's).")] = 1,
    start: Annotated[float, typer.Option(help="Seconds into each video to start at.")] = 0.0,
    end: Annotated[
        float | None, typer.Option(help="Seconds into each video to stop at (default: its end).")
    ] = None,
    device: Device = "auto",
    batch_size: Annotated[int, typer.Option(help="Frames per inference batch.")] = 32,
    threads: Annotated[
        int, typer.Option(help="ONNX Runtime intra-op threads; 0 = all cores but those decoding needs.")
    ] = 0,
    plot: Annotated[
        bool, typer.Option("--plot", help="Also write <video>.timeline.png: true vs predicted segments.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Redo videos whose outputs are up to date, and replace files annotate did not write or that were "
            "changed since (each kept beside as <file>.bak).",
        ),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first video that cannot be decoded.")
    ] = False,
    publish: rt.Publish = None,  # each video's summary to MQTT (sinks/mqtt/annotations.py)
    box: rt.Box = None,
    publish_qos: rt.PublishQos = 1,
    publish_ca: rt.PublishCa = None,
    publish_spool: rt.PublishSpool = None,
    publish_segments: Annotated[bool, typer.Option(help="--publish: each video's segments too.")] = False,
) -> None:
    """Classify every frame of recorded videos in batches; write per-frame labels, segments and an ELAN tier.

    Resumable: a video whose outputs are up to date (its completion record matches) is kept. Files annotate
    did not write are never replaced without --force. Exit code 1 when a video could not be decoded or would
    have replaced someone else's file.
    """
    with user_errors("annotate"), sigterm_as_interrupt():
        from mgc_edge.cli.terminal import open_classifier
        from mgc_edge.runtime.recorded.annotate import annotate as run_annotate
        from mgc_edge.runtime.recorded.options import AnnotateOptions
        from mgc_edge.runtime.sources.video import quiet_opencv

        options = AnnotateOptions(
            out=out, topk=topk, min_seconds=min_seconds, background=tuple(background or ()), truth=truth,
            truth_tier=truth_tier, batch_size=batch_size, every=every, start=start, end=end, smooth=smooth,
            force=force, strict=strict, plot=plot, threads=threads,
        )  # fmt: skip
        options.check()  # bad options are refused before the model is loaded
        from mgc_edge.runtime.sinks.mqtt.annotations import publish_result, start_publishing

        publishing = rt.publish_options_of(publish, box, publish_qos, "frame", publish_ca, publish_spool)
        publisher = start_publishing(publishing, publish_segments, _note)
        quiet_opencv()
        # As in the live loop: decoding and preprocessing threads run beside inference, so ONNX Runtime gets
        # the other cores and does not spin (spinning threads took a quarter of the rate on two cores).
        clf = open_classifier(model, device, threads, True, console, _note)
        try:
            with _Progress() as bar:
                result = run_annotate(
                    clf, inputs, options, progress=bar.update, notify=_note, on_video=bar.video_done
                )
        except KeyboardInterrupt:
            _say(
                f"[yellow]interrupted:[/] the videos finished so far are kept in {escape(str(out))}; the same "
                "command again resumes with the rest."
            )
            raise typer.Exit(130) from None
        _print_summary(result)
        publish_result(publisher, result)
        stdout.print(json.dumps(_closing_line(result)))
        if result.failed or result.refused:
            raise typer.Exit(1)


def _say(text: str) -> None:
    """A sentence on stderr, wrapped to the terminal (a path too long for a line is folded, never cut)."""
    console.print(text, highlight=False, overflow="fold")


def _note(message: str) -> None:
    _say(f"[yellow]note:[/] {escape(message)}")


class _Progress:
    """A progress bar over all frames of all videos (frames/s, ETA), one line per finished video above it."""

    def __enter__(self) -> _Progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeRemainingColumn(), console=console, transient=True,
        )  # fmt: skip
        self._bar.start()
        self._task = self._bar.add_task("annotate", total=None)
        return self

    def update(self, done: int, total: int, name: str) -> None:
        self._bar.update(self._task, completed=done, total=total, description=escape(name[:24]))

    def video_done(self, result: Any) -> None:
        j = result.job
        if result.status == "failed":
            line = f"[yellow]skipped:[/] {escape(result.note or str(j.path))}"
        elif result.status == "refused":
            line = f"[yellow]not annotated:[/] {escape(str(j.path))}: {escape(result.note or '')}"
        elif result.status == "kept":
            line = (
                f"kept {escape(str(j.path))}: {_count(result.frames, 'frame')}, "
                f"{_count(result.segments, 'segment')} (up to date)"
            )
            if result.note:
                line += f" [yellow]note:[/] {escape(result.note)}"
        else:
            line = (
                f"{escape(str(j.path))}: {_count(result.frames, 'frame')}, {_count(result.segments, 'segment')} in "
                f"{result.seconds:.1f} s ({result.fps:.0f} frames/s) -> {escape(str(j.out / j.name))}.*"
            )
            if result.note:
                line += f" [yellow]note:[/] {escape(result.note)}"
        self._bar.console.print(line, highlight=False, overflow="fold")

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_summary(result: Any) -> None:
    """One table: a row per video and, with a truth, its scores and the overall ones; then what failed."""
    from rich import box
    from rich.table import Table

    scored = result.overall is not None
    table = Table(
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
        title=f"annotate: {len(result.videos)} video(s)",
    )
    longest = max((len(v.job.name) for v in result.videos), default=5)
    table.add_column("video", overflow="fold", min_width=min(longest, 20))  # never chopped into short pieces
    cols = ["status", "frames", "segs", "fps"] + (["acc", "F1", "seg F1"] if scored else [])
    for col in cols:
        table.add_column(
            col, justify="left" if col == "status" else "right"
        )  # headers wrap, values are one word
    for v in result.videos:
        row = [v.job.name, v.status, str(v.frames), str(v.segments), f"{v.fps:.0f}" if v.seconds else "-"]
        if scored:
            s = v.scores() or {}
            row += [_pct(s.get("frame_accuracy")), _num(s.get("frame_macro_f1")), _num(s.get("segment_f1"))]
        table.add_row(*[escape(c) for c in row])
    if scored and len(result.videos) > 1:
        o = result.overall
        table.add_row(
            "all", "", str(sum(v.frames for v in result.videos)), str(sum(v.segments for v in result.videos)), "",
            _pct(o["frame_accuracy"]), _num(o["frame_macro_f1"]), _num(o["segment_f1"]), style="bold",
        )  # fmt: skip
    console.print(table)
    if scored:
        _say(f"Against the truth: {_scores(result.overall)}")
    folder = result.folder_overall
    if folder is not None and (
        not scored or folder["videos"] != sum(v.tally is not None for v in result.videos)
    ):
        _say(
            f"Over all {folder['videos']} scored video(s) in {escape(str(result.summary.parent))}: {_scores(folder)}"
        )
    failed = result.failed
    if failed:
        _say(f"[yellow]{len(failed)} video(s) could not be decoded and were skipped:[/]")
        for v in failed:
            _say(f"  {escape(v.note or str(v.job.path))}")
    if result.refused:
        _say(
            f"[yellow]{len(result.refused)} video(s) not annotated, to keep files annotate did not write:[/]"
        )
        for v in result.refused:
            _say(f"  {escape(str(v.job.path))}: {escape(v.note or '')}")
    _say(f"Summary: {escape(str(result.summary))}")


def _scores(o: dict[str, Any]) -> str:
    return (
        f"frame accuracy {_pct(o['frame_accuracy'])} (top-1 before smoothing {_pct(o['top1_accuracy'])}), "
        f"macro-F1 {_num(o['frame_macro_f1'])} over {o['scored_frames']} scored frames; segments (IoU >= 0.5) "
        f"precision {_num(o['segment_precision'])}, recall {_num(o['segment_recall'])}, F1 {_num(o['segment_f1'])} "
        f"({o['segments_matched']} of {o['segments_predicted']} predicted, {o['segments_true']} true)."
    )


def _closing_line(result: Any) -> dict[str, Any]:
    """The one line for scripts: counts, where things are, and the overall scores where a truth was given."""
    line: dict[str, Any] = {
        "out": str(result.summary.parent),
        "summary": str(result.summary),
        "done": result.count("done"),
        "kept": result.count("kept"),
        "failed": result.count("failed"),
        "refused": result.count("refused"),
        "frames": sum(v.frames for v in result.videos),  # classified
    }
    if result.overall is not None:
        line["scored_frames"] = result.overall["scored_frames"]
        for key in ("frame_accuracy", "frame_macro_f1", "segment_precision", "segment_recall", "segment_f1"):
            value = result.overall[key]
            line[key] = None if value is None else round(value, 6)
    return line
