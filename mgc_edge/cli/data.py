"""`mgc-edge synth`: the built-in synthetic, iMiGUE-shaped data.

A command function here is long only by its option declarations (Typer reads them from the signature);
its body parses them and calls one library function.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mgc_edge.cli.app import console, stdout, user_errors


def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create (class folders go in OUT/training).")],
    scale: Annotated[
        float, typer.Option(help="Fraction of the real iMiGUE frame counts (0.01 tiny, 1.0 full).")
    ] = 0.05,
    min_clips: Annotated[int, typer.Option(help="Every class gets at least this many clips.")] = 3,
    difficulty: Annotated[
        str,
        typer.Option(
            help="How much placement, size, clutter and camera vary per clip: easy (the demo: a small "
            "CNN learns it in minutes), medium or hard."
        ),
    ] = "hard",
    max_frames: Annotated[
        int,
        typer.Option(
            help="Cap on frames per clip (iMiGUE's go up to 18, median 3); lower means more, shorter clips."
        ),
    ] = 18,
    cue: Annotated[
        bool,
        typer.Option(
            "--cue/--no-cue",
            help="--no-cue writes control data: the same people and scenes with the hands at rest, "
            "so no image shows its class and a model should score the majority baseline.",
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical files.")] = 0,
    video_seconds: Annotated[float, typer.Option(help="Length of the demo video.")] = 16.0,
    segment_seconds: Annotated[
        tuple[float, float],
        typer.Option(
            help="How long each gesture of the demo video lasts: LOW HIGH seconds (one person each)."
        ),
    ] = (3.0, 5.0),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier synthetic dataset in OUT.")
    ] = False,
) -> None:
    """Make a synthetic, iMiGUE-shaped dataset (32 classes, clips of near-duplicate frames) and a demo video."""
    with user_errors("synth"):
        from mgc_edge.data.synth import SynthConfig, make_dataset

        start = time.perf_counter()
        config = SynthConfig(
            scale=scale,
            min_clips=min_clips,
            difficulty=difficulty.lower(),
            max_frames=max_frames,
            cue=cue,
            seed=seed,
            video_seconds=video_seconds,
            segment_seconds=segment_seconds,
        )
        summary = make_dataset(out, config, overwrite=force)
        console.print(
            f"Wrote {summary.n_images} images in {sum(summary.clips.values())} clips of {len(summary.counts)} classes "
            f"({difficulty} difficulty{'' if cue else ', CUE REMOVED'}) to [bold]{summary.image_dir}[/] and a "
            f"demo video {summary.video} ({time.perf_counter() - start:.1f}s)."
        )
        stdout.print(str(summary.image_dir))
