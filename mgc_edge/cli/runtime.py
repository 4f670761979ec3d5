"""`mgc-edge webcam` and `mgc-edge predict`: the edge runtime, one exported .onnx file and no torch.

A command function here is long only by its option declarations (Typer reads them from the signature);
its body parses them and calls one library function.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from mgc_edge.cli.app import console, fail, sigterm_as_interrupt, stdout, user_errors
from mgc_edge.config import SplitConfig
from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH, SMOOTH_HELP  # numpy-free: --help stays light

Device = Annotated[
    str,
    typer.Option(
        help="Where ONNX Runtime runs: auto (CUDA if it starts, else CPU), cpu, cuda, cuda:N or tensorrt."
    ),
]
Threads = Annotated[
    int,
    typer.Option(
        help="ONNX Runtime intra-op threads; 0 = the cores capture and decoding leave idle (measured)."
    ),
]


# --publish and its options (webcam; annotate takes the same), parsed by sinks/mqtt/config.py
Publish = Annotated[
    str | None,
    typer.Option(
        help="Publish events to an MQTT broker: mqtt://[USER[:PASS]@]HOST[:PORT]/PREFIX or mqtts://... "
        "(a password left out of the URL is read from MGC_EDGE_MQTT_PASSWORD).",
        metavar="URL",
    ),
]
Box = Annotated[str | None, typer.Option(help="This box's name in the topics (default: the host name).")]
PublishQos = Annotated[int, typer.Option(help="MQTT QoS of the events: 0, 1 or 2.")]
PublishRate = Annotated[
    str,
    typer.Option(
        help="When a source publishes: frame (every classified frame), change (when its smoothed label "
        "changes), or MS (at most every MS milliseconds).",
        metavar="frame|change|MS",
    ),
]
PublishCa = Annotated[Path | None, typer.Option(help="mqtts://: the CA certificate (PEM) of the broker.")]
PublishSpool = Annotated[
    Path | None,
    typer.Option(
        help="The folder of the on-disk spool (default: one per broker and box under ~/.local/state)."
    ),
]
PublishSpoolMb = Annotated[float, typer.Option(help="The spool's size limit; the oldest events go first.")]
PublishSpoolHours = Annotated[float, typer.Option(help="Spooled events older than this are dropped.")]


def publish_options_of(url: str | None, *args: Any) -> Any:
    """--publish and its options (box, qos, rate, ca, spool[, spool MB, spool hours]) checked into a
    sinks.mqtt.config.PublishOptions, or None without --publish."""
    if url is None:
        return None
    from mgc_edge.runtime.sinks.mqtt.config import publish_options

    return publish_options(url, *args)


def _note(message: str) -> None:
    console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def webcam(
    model: Annotated[
        Path, typer.Argument(help="An exported .onnx model (it carries labels and preprocessing).")
    ],
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="Camera index, video file, or rtsp:// / http(s):// stream URL (default 0); repeat it for "
            "several sources, classified together in one batch. ${VAR} is taken from the environment (quote "
            "it: a password written here shows in ps).",
        ),
    ] = None,
    name: Annotated[
        list[str] | None,
        typer.Option(
            "--name", help="A short name for each --source, in order (tables, log lines, the live view)."
        ),
    ] = None,
    sources: Annotated[
        Path | None,
        typer.Option(
            help="A text file of sources, one per line: [NAME = ]SOURCE; # at the start of a line or after a "
            "space starts a comment; ${VAR} is taken from the environment."
        ),
    ] = None,
    device: Device = "auto",
    threads: Threads = 0,
    topk: Annotated[int, typer.Option(help="Classes shown, with probability bars.")] = 5,
    smooth: Annotated[str, typer.Option(help=SMOOTH_HELP)] = DEFAULT_SMOOTH,
    display: Annotated[
        str, typer.Option(help="auto (a window where one can open), on, or off (headless).")
    ] = "auto",
    save: Annotated[Path | None, typer.Option(help="Write the annotated video to this .mp4 file.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="Write one JSON object per classified frame here.")
    ] = None,
    max_frames: Annotated[
        int, typer.Option(help="Stop after this many classified frames; 0 = no limit.")
    ] = 0,
    every: Annotated[int, typer.Option(help="Video files: classify every Nth frame.")] = 1,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Video files: pace at the file's frame rate, like a camera.")
    ] = False,
    reconnect: Annotated[
        int,
        typer.Option(
            help="Streams and cameras: reopen attempts after a drop (backoff doubling to 30 s, with jitter); "
            "-1 = for ever, 0 = give up at the first drop. A file, or a stream of known length, that ended ends."
        ),
    ] = -1,
    timeout: Annotated[
        float, typer.Option(help="Streams: seconds to wait for the stream to open or send a frame.")
    ] = 10.0,
    force: Annotated[bool, typer.Option("--force", help="Replace existing --save / --jsonl files.")] = False,
    serve: Annotated[
        str | None,
        typer.Option(
            help="Serve the live view on [HOST:]PORT (127.0.0.1 unless a host is given).",
            metavar="[HOST:]PORT",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MGC_EDGE_TOKEN", show_envvar=True, help="Require this token on every request of --serve."
        ),
    ] = None,
    publish: Publish = None,
    box: Box = None,
    publish_qos: PublishQos = 1,
    publish_rate: PublishRate = "change",
    publish_ca: PublishCa = None,
    publish_spool: PublishSpool = None,
    publish_spool_mb: PublishSpoolMb = 100.0,
    publish_spool_hours: PublishSpoolHours = 168.0,
    capture: Annotated[
        str,
        typer.Option(
            help="threads: every source in this process; processes: capture, decoding and preprocessing in "
            "worker processes (many cameras); auto: processes from 8 sources on, on 4 cores or more."
        ),
    ] = "auto",
    workers: Annotated[
        int, typer.Option(help="--capture processes: worker processes; 0 = one per two cores.")
    ] = 0,
) -> None:
    """Classify cameras, video files or network streams live, one or many at once; q, Esc, Ctrl-C or SIGTERM
    ends it with a summary."""
    with user_errors("webcam"), sigterm_as_interrupt():
        from mgc_edge.cli.terminal import TerminalReport
        from mgc_edge.runtime.live.webcam import WebcamOptions, run_webcam

        options = WebcamOptions(
            sources=tuple(source or ()), names=tuple(name or ()), sources_file=sources, device=device,
            threads=threads, topk=topk, smooth=smooth, display=display, save=save, jsonl=jsonl,
            max_frames=max_frames, every=every, realtime=realtime, reconnect=reconnect, timeout=timeout,
            force=force, serve=serve, token=token, capture=capture, workers=workers,
            publish=publish_options_of(
                publish, box, publish_qos, publish_rate, publish_ca, publish_spool, publish_spool_mb,
                publish_spool_hours,
            ),
        )  # fmt: skip
        summary = run_webcam(model, options, report=TerminalReport(console), notify=_note)
        if summary.error:
            fail(summary.error, code=1)


def predict(
    model: Annotated[Path, typer.Argument(help="An exported .onnx model.")],
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders (searched recursively) and globs.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write: filename,class.")] = Path(
        "predictions.csv"
    ),
    topk: Annotated[int, typer.Option(help="Add columns top1..topK and prob1..probK; 0 = only class.")] = 0,
    clip: Annotated[
        bool, typer.Option("--clip", help="Add a clip-level prediction: mean softmax over each clip's files.")
    ] = False,
    group_regex: Annotated[
        str, typer.Option(help="Regex whose group `group` is the clip key of a file name (as in training).")
    ] = SplitConfig().group_regex,
    batch_size: Annotated[int, typer.Option(help="Images per inference batch.")] = 32,
    device: Device = "auto",
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads; 0 = all cores.")] = 0,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first unreadable file.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
) -> None:
    """Predict the class of every image and write `filename,class` CSV (the submission format)."""
    with user_errors("predict"):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from mgc_edge.cli.terminal import open_classifier
        from mgc_edge.fileio import refuse_existing
        from mgc_edge.runtime.predict import PredictOptions
        from mgc_edge.runtime.predict import predict as run_predict

        options = PredictOptions(
            topk=topk, clip=clip, group_regex=group_regex, batch_size=batch_size, strict=strict
        )
        refuse_existing(out, force, "--out")
        clf = open_classifier(model, device, threads, False, console, _note)
        start = time.perf_counter()
        columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("predict", total=None)
            result = run_predict(
                clf, inputs, out, options, force=force,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
        seconds = time.perf_counter() - start
        n = len(result.files)
        console.print(
            f"Predicted {n} image{'s' if n != 1 else ''} in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f}/s).",
            highlight=False,
        )
        if result.failed:
            console.print(f"[yellow]Skipped {len(result.failed)} unreadable file(s):[/]", highlight=False)
            for _, why in result.failed[:20]:
                console.print(f"  {escape(why)}", highlight=False, soft_wrap=True)
            if len(result.failed) > 20:
                console.print(f"  ... and {len(result.failed) - 20} more", highlight=False)
        stdout.print(str(out), highlight=False, soft_wrap=True)
