"""Writing the synthetic dataset (class folders of JPEG clips), its demo video and their README.

`make_dataset` is longer than 60 lines: the steps of one atomic write of the dataset, in order.

Everything is deterministic per seed: a clip's person and frames come from a generator seeded by the
clip id, so the same configuration gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from mgc_edge.data.synth.config import (
    IMIGUE_FRAME_COUNTS,
    N_CLASSES,
    README_MARKER,
    VIDEO_MIN_SHARE,
    SynthConfig,
    SynthError,
    SynthSummary,
)
from mgc_edge.data.synth.drawing import render_frame
from mgc_edge.data.synth.people import random_person
from mgc_edge.fileio import temp_path, write_text

FIRST_CLIP_ID = 10000
JPEG_QUALITY = 90
# Frames per clip are 1 + geometric: p = 0.21 gives median 3 and, capped at 18, a mean of about 4.7,
# matching the real export (60,514 frames from 12,910 clips).
_CLIP_P = 0.21
# Images from which the clips are drawn by worker processes (one per core, at most PARALLEL_WORKERS) on a
# machine of more than two cores: 3,664 images took 12 s in one process on a 16-core box, and a worker's
# start (importing numpy and OpenCV) costs about a second.
PARALLEL_FROM = 1000
PARALLEL_WORKERS = 16
CHUNK_CLIPS = 48  # clips per task: classes differ 1,000-fold in size, so tasks are chunks of clips
# What a previous make_dataset leaves in its folder; anything else there means it is not ours to delete.
_OUR_ENTRIES = frozenset({"README.txt", "training", "demo.mp4", "demo.avi", "demo.csv"})


def clip_lengths(target: int, min_clips: int, g: np.random.Generator, max_frames: int = 18) -> list[int]:
    """Clip lengths adding up to max(target, min_clips) frames, in at least `min_clips` clips."""
    lengths: list[int] = []
    while sum(lengths) < target:
        lengths.append(min(int(g.geometric(_CLIP_P)), max_frames))
    if lengths:
        lengths[-1] -= sum(lengths) - target  # the last clip is cut short to hit the target exactly
    if len(lengths) < min_clips:
        # Spread the frames over min_clips clips rather than adding whole new clips, so that a floored
        # class never outgrows a class that is bigger in the real data.
        total = max(target, min_clips)
        extra = g.multinomial(total - min_clips, np.full(min_clips, 1.0 / min_clips))
        lengths = [1 + int(e) for e in extra]
    return lengths


def video_classes(n_labels: int) -> list[int]:
    """Label indices the demo video shows: the gestures common enough in iMiGUE to be learned from it."""
    total = sum(IMIGUE_FRAME_COUNTS)
    common = [i for i in range(n_labels) if IMIGUE_FRAME_COUNTS[i] / total >= VIDEO_MIN_SHARE]
    return common or list(range(n_labels))


def _encode_jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SynthError("OpenCV could not encode a JPEG frame.")
    return buf.tobytes()


def _video_frames(n_labels: int, cfg: SynthConfig) -> Iterator[tuple[np.ndarray, int]]:
    """Frames of the demo video with their label indices: one person per segment, never the same
    gesture twice in a row, each held for `segment_seconds`."""
    g = np.random.default_rng([cfg.seed, 2])
    choices = video_classes(n_labels)
    total = max(1, round(cfg.video_seconds * cfg.fps))
    done, previous = 0, -1
    while done < total:
        n = min(max(1, round(g.uniform(*cfg.segment_seconds) * cfg.fps)), total - done)
        label = int(g.choice([c for c in choices if c != previous] or choices))
        person = random_person(g, cfg.level)
        for _ in range(n):
            yield render_frame(label, person, g, cfg.size, cfg.cue), label
        done, previous = done + n, label


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return -1
        n = 0
        while cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()


def make_video(path: Path, labels: list[str], cfg: SynthConfig) -> tuple[Path, Path]:
    """Write the demo video (`labels[i]` shows gesture i) and its `frame,label` CSV; return both paths.

    mp4 ('mp4v') where this OpenCV build can write and read it back, else Motion-JPEG .avi.
    """
    if not 1 <= len(labels) <= N_CLASSES:
        raise SynthError(f"make_video needs 1 to {N_CLASSES} labels, got {len(labels)}.")
    path = Path(path)
    h, w = cfg.size
    for fourcc, ext in (("mp4v", ".mp4"), ("MJPG", ".avi")):
        target = path.with_suffix(ext)
        with temp_path(target) as tmp:  # keeps the extension: OpenCV picks the container from it
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), cfg.fps, (w, h))
            if not writer.isOpened():
                writer.release()
                continue
            frame_labels: list[int] = []
            try:
                for frame, label in _video_frames(len(labels), cfg):
                    writer.write(frame)
                    frame_labels.append(label)
            finally:
                writer.release()
            if _count_frames(tmp) != len(frame_labels):
                continue
            os.replace(tmp, target)
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        rows.writerow(["frame", "label"])
        rows.writerows((i, labels[k]) for i, k in enumerate(frame_labels))
        csv_path = path.with_suffix(".csv")
        write_text(csv_path, text.getvalue())
        return target, csv_path
    raise SynthError("This OpenCV build can write neither an mp4 ('mp4v') nor an avi ('MJPG') video.")


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse to touch a folder that holds anything but a previous synthetic dataset."""
    if not out.exists():
        return
    if not out.is_dir():
        raise SynthError(f"{out} exists and is not a folder.")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    readme = out / "README.txt"
    ours = readme.is_file() and README_MARKER in readme.read_text(encoding="utf-8", errors="replace")
    if not ours or not entries <= _OUR_ENTRIES:
        raise SynthError(
            f"{out} holds files that `mgc-edge synth` did not write; it is never replaced, not even with "
            "--force: give another folder."
        )
    if not overwrite:
        raise SynthError(f"{out} holds an earlier synthetic dataset; pass --force to replace it.")


def _readme(cfg: SynthConfig, n_images: int, n_clips: int, video: Path, video_csv: Path) -> str:
    cue = (
        "the class is shown only by hand position and pose relative to each clip's cartoon person"
        if cfg.cue
        else "CONTROL DATA: every clip rests its hands whatever its folder, so no image shows its class"
    )
    return (
        f"{README_MARKER}, made by mgc_edge.data.synth with seed {cfg.seed}, scale {cfg.scale}, difficulty "
        f"{cfg.difficulty} and at most {cfg.max_frames} frames per clip: {n_images} JPEG frames of {n_clips} "
        f"clips in training/1 ... training/32 (files <clip>.<frame>.jpg, {cfg.size[1]}x{cfg.size[0]} pixels, "
        f"faces masked, class sizes {cfg.scale} times the real iMiGUE counts with at least {cfg.min_clips} "
        f"clips each), where {cue}; plus {video.name}, a {cfg.video_seconds:g} s video at {cfg.fps:g} fps "
        f"of the common gestures, with its true per-frame labels in {video_csv.name}. It is for tests and "
        "demos only, and `mgc-edge synth --force` may delete this folder.\n"
    )


Clip = tuple[int, int, int, str]  # class index, clip id, frames, folder


def _write_clips(clips: Sequence[Clip], cfg: SynthConfig) -> None:
    """Render and write clips; each one's frames depend on (seed, clip id) only, whichever process runs it."""
    cv2.setNumThreads(1)  # small images: OpenCV's own threads only contend with the other workers
    for index, clip, n_frames, folder in clips:
        g = np.random.default_rng([cfg.seed, 4, clip])
        person = random_person(g, cfg.level)
        for frame in range(1, n_frames + 1):
            img = render_frame(index, person, g, cfg.size, cfg.cue)
            Path(folder, f"{clip}.{frame}.jpg").write_bytes(_encode_jpeg(img))


def _workers(n_images: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return min(cores, PARALLEL_WORKERS) if cores > 2 and n_images >= PARALLEL_FROM else 1


def make_dataset(out: Path, cfg: SynthConfig = SynthConfig(), overwrite: bool = False) -> SynthSummary:
    """Write the synthetic image set under `out/training/<1..32>/`, a demo video and a README.

    Everything is written to a temporary sibling folder and renamed into place, so a crash leaves no
    half dataset; `overwrite` replaces only a folder that an earlier make_dataset wrote.
    """
    out = Path(out).absolute()
    _check_target(out, overwrite)
    labels = [str(i + 1) for i in range(N_CLASSES)]
    plans = [
        clip_lengths(
            round(cfg.scale * n), cfg.min_clips, np.random.default_rng([cfg.seed, 1, i]), cfg.max_frames
        )
        for i, n in enumerate(IMIGUE_FRAME_COUNTS)
    ]
    n_clips = sum(len(p) for p in plans)
    # Clip ids interleave across classes, as in the real export, so an id range never hints at a class.
    ids = iter(FIRST_CLIP_ID + np.random.default_rng([cfg.seed, 3]).permutation(n_clips))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        image_dir = tmp / "training"
        counts = {label: sum(lengths) for label, lengths in zip(labels, plans)}
        clips = {label: len(lengths) for label, lengths in zip(labels, plans)}
        jobs: list[Clip] = []
        for index, (label, lengths) in enumerate(zip(labels, plans)):
            (image_dir / label).mkdir(parents=True)
            jobs += [(index, int(next(ids)), n, str(image_dir / label)) for n in lengths]
        workers = _workers(sum(counts.values()))
        if workers > 1:
            chunks = [jobs[i : i + CHUNK_CLIPS] for i in range(0, len(jobs), CHUNK_CLIPS)]
            spawn = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
            with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
                pending = [pool.submit(_write_clips, chunk, cfg) for chunk in chunks]
                video, video_csv = make_video(tmp / "demo.mp4", labels, cfg)  # meanwhile, here
                for task in pending:
                    task.result()
        else:
            _write_clips(jobs, cfg)
            video, video_csv = make_video(tmp / "demo.mp4", labels, cfg)
        write_text(tmp / "README.txt", _readme(cfg, sum(counts.values()), n_clips, video, video_csv))
        if out.exists():
            # Move the old folder aside first: its removal is the only step that can leave debris, and
            # then only a hidden sibling, never a half dataset at `out`.
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(
        root=out,
        image_dir=out / "training",
        video=out / video.name,
        video_labels=out / video_csv.name,
        counts=counts,
        clips=clips,
    )
