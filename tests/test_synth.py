"""The synthetic iMiGUE-shaped dataset: layout, class sizes, determinism, safety, video, and a learnable cue."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from mgc_edge.data.synth import (
    IMIGUE_FRAME_COUNTS,
    README_MARKER,
    SynthConfig,
    SynthError,
    SynthSummary,
    make_dataset,
    random_person,
    render_frame,
)

CFG = SynthConfig(scale=0.003, min_clips=2, size=(90, 160), seed=7, video_seconds=3.0, fps=10.0)
NAME = re.compile(r"^(\d+)\.(\d+)\.jpg$")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return make_dataset(tmp_path_factory.mktemp("synth") / "out", CFG)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_file_names(synth: SynthSummary) -> None:
    assert synth.image_dir == synth.root / "training"
    assert README_MARKER in (synth.root / "README.txt").read_text(encoding="utf-8")
    folders = sorted((p.name for p in synth.image_dir.iterdir()), key=int)
    assert folders == [str(i) for i in range(1, 33)]
    for folder in folders:
        frames: dict[int, list[int]] = defaultdict(list)
        for path in (synth.image_dir / folder).iterdir():
            match = NAME.match(path.name)
            assert match, path.name
            frames[int(match[1])].append(int(match[2]))
        assert frames, f"class {folder} is empty"
        assert len(frames) == synth.clips[folder]
        assert sum(len(f) for f in frames.values()) == synth.counts[folder]
        for numbers in frames.values():  # frames are numbered 1..n within a clip
            assert sorted(numbers) == list(range(1, len(numbers) + 1))
    assert synth.n_images == sum(1 for _ in synth.image_dir.rglob("*.jpg"))


def test_class_sizes_follow_the_real_counts(synth: SynthSummary) -> None:
    counts = [synth.counts[str(i)] for i in range(1, 33)]
    assert counts == [max(round(CFG.scale * n), CFG.min_clips) for n in IMIGUE_FRAME_COUNTS]
    assert all(synth.clips[str(i)] >= CFG.min_clips for i in range(1, 33))
    assert max(counts) == counts[31] and counts.count(counts[31]) == 1  # class 32 alone is the largest
    for i, a in enumerate(IMIGUE_FRAME_COUNTS):  # never ordered against the real data
        for j, b in enumerate(IMIGUE_FRAME_COUNTS):
            if a < b:
                assert counts[i] <= counts[j], (i + 1, j + 1)


def test_clip_ids_are_unique_across_classes(synth: SynthSummary) -> None:
    owner: dict[int, str] = {}
    for path in synth.image_dir.rglob("*.jpg"):
        clip = int(path.name.split(".")[0])
        assert owner.setdefault(clip, path.parent.name) == path.parent.name, clip
    assert len(owner) == sum(synth.clips.values())


def test_images_decode_to_the_configured_size(synth: SynthSummary) -> None:
    for path in sorted(synth.image_dir.rglob("*.jpg"))[::25]:
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (*CFG.size, 3) and image.dtype == np.uint8


def test_video_and_labels_agree(synth: SynthSummary) -> None:
    assert synth.video.parent == synth.root and synth.video.suffix in {".mp4", ".avi"}
    with synth.video_labels.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "label"]
    body = rows[1:]
    assert len(body) == round(CFG.video_seconds * CFG.fps)
    assert [int(r[0]) for r in body] == list(range(len(body)))
    assert {r[1] for r in body} <= {str(i) for i in range(1, 33)}
    cap = cv2.VideoCapture(str(synth.video))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (*CFG.size, 3)
        n += 1
    cap.release()
    assert n == len(body)


def test_same_seed_same_bytes_other_seed_differs(synth: SynthSummary, tmp_path: Path) -> None:
    again = make_dataset(tmp_path / "again", CFG)
    first, second = _files(synth.root / "training"), _files(again.root / "training")
    assert first == second
    assert synth.video_labels.read_bytes() == again.video_labels.read_bytes()
    assert synth.video.read_bytes() == again.video.read_bytes()
    other = make_dataset(tmp_path / "other", replace(CFG, seed=8))
    assert _files(other.root / "training") != first


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SynthError, match="overwrite"):
        make_dataset(out, CFG)
    with pytest.raises(SynthError, match="refusing"):  # even with overwrite: not ours to delete
        make_dataset(out, CFG, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left behind


def test_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(SynthError, match="not a folder"):
        make_dataset(tmp_path / "out", CFG, overwrite=True)


def test_overwrite_replaces_a_previous_output(tmp_path: Path) -> None:
    small = SynthConfig(scale=0.001, min_clips=1, size=(48, 64), seed=1, video_seconds=1.0, fps=5.0)
    out = tmp_path / "synth"
    make_dataset(out, small)
    with pytest.raises(SynthError, match="overwrite"):
        make_dataset(out, small)
    second = make_dataset(out, replace(small, seed=2), overwrite=True)
    assert "seed 2" in (out / "README.txt").read_text(encoding="utf-8")
    assert second.n_images == sum(1 for _ in out.rglob("*.jpg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_bad_config_and_label_are_refused() -> None:
    with pytest.raises(SynthError):
        SynthConfig(scale=0)
    with pytest.raises(SynthError):
        SynthConfig(size=(10, 10))
    with pytest.raises(SynthError):
        render_frame(32, random_person(np.random.default_rng(0)), np.random.default_rng(0), (90, 160))


def _gradient_histograms(gray: np.ndarray, cell: int = 8, bins: int = 8) -> np.ndarray:
    """A bare-bones HOG: orientation histograms of 8x8 cells, each cell normalised."""
    g = gray.astype(np.float32)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    magnitude = np.hypot(gx, gy)
    bin_of = np.minimum((np.arctan2(gy, gx) % np.pi / np.pi * bins).astype(int), bins - 1)
    hc, wc = g.shape[0] // cell, g.shape[1] // cell
    votes = np.eye(bins, dtype=np.float32)[bin_of] * magnitude[..., None]
    cells = votes[: hc * cell, : wc * cell].reshape(hc, cell, wc, cell, bins).sum(axis=(1, 3))
    return (cells / (np.linalg.norm(cells, axis=-1, keepdims=True) + 1e-3)).ravel()


def test_cue_is_in_the_shapes_not_the_colours() -> None:
    # One frame each of 24 people per class; a linear model trained on 16 people, tested on 8 OTHERS.
    # Shape features (gradient histograms of a 64x64 grey thumbnail) must beat chance clearly;
    # global colour statistics must not, or the class would be given away without looking at hands.
    people, train_people = 24, 16
    shape, colour, label = [], [], []
    for k in range(32):
        for p in range(people):
            g = np.random.default_rng([11, k, p])
            frame = render_frame(k, random_person(g), g, (90, 160))
            small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
            shape.append(_gradient_histograms(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)))
            colour.append(np.concatenate([frame.mean(axis=(0, 1)), frame.std(axis=(0, 1))]) / 64.0)
            label.append(k)
    y = np.array(label)
    train = np.tile(np.arange(people), 32) < train_people

    def ridge_accuracy(features: list[np.ndarray], lam: float) -> float:
        x = np.array(features, dtype=np.float64)
        x = np.hstack([x - x[train].mean(axis=0), np.ones((len(x), 1))])
        targets = np.eye(32)[y]
        w = np.linalg.solve(x[train].T @ x[train] + lam * np.eye(x.shape[1]), x[train].T @ targets[train])
        return float(((x[~train] @ w).argmax(axis=1) == y[~train]).mean())

    chance = 1 / 32
    assert ridge_accuracy(shape, 100.0) > 3 * chance
    assert ridge_accuracy(colour, 1.0) < 2.5 * chance
