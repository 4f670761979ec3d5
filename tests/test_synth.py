"""The synthetic iMiGUE-shaped dataset: layout, class sizes, determinism, safety, video, difficulty levels,
a learnable cue and a cue-removed control that carries no class."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.data.synth import (
    DIFFICULTIES,
    IMIGUE_FRAME_COUNTS,
    README_MARKER,
    SynthConfig,
    SynthError,
    SynthSummary,
    make_dataset,
    random_person,
    render_frame,
    video_classes,
)
from mgc_edge.errors import UserError

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


def test_worker_processes_write_the_same_bytes(
    synth: SynthSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a many-core machine clips are drawn by worker processes: the dataset is byte for byte the same."""
    from mgc_edge.data.synth import writer

    monkeypatch.setattr(writer, "_workers", lambda n_images: 2)
    monkeypatch.setattr(writer, "CHUNK_CLIPS", 5)  # several tasks, finishing in any order
    parallel = make_dataset(tmp_path / "parallel", CFG)
    assert _files(parallel.root / "training") == _files(synth.root / "training")
    assert parallel.counts == synth.counts and parallel.clips == synth.clips
    assert parallel.video.read_bytes() == synth.video.read_bytes()


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    # Not ours to delete, with or without --force; the sentence names the command and the flag.
    for overwrite in (False, True):
        with pytest.raises(SynthError, match="`mgc-edge synth` did not write.*not even with --force"):
            make_dataset(out, CFG, overwrite=overwrite)
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
    with pytest.raises(SynthError, match="earlier synthetic dataset; pass --force to replace it"):
        make_dataset(out, small)
    second = make_dataset(out, replace(small, seed=2), overwrite=True)
    assert "seed 2" in (out / "README.txt").read_text(encoding="utf-8")
    assert second.n_images == sum(1 for _ in out.rglob("*.jpg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_bad_config_and_label_are_refused() -> None:
    assert issubclass(SynthError, UserError)
    for bad in (
        {"scale": 0},
        {"size": (10, 10)},
        {"difficulty": "insane"},
        {"max_frames": 0},
        {"segment_seconds": (3.0, 1.0)},
        {"segment_seconds": (0.0, 1.0)},
    ):
        with pytest.raises(SynthError):
            SynthConfig(**bad)
    with pytest.raises(SynthError):
        render_frame(32, random_person(np.random.default_rng(0)), np.random.default_rng(0), (90, 160))


def test_difficulty_sets_how_much_the_nuisance_varies() -> None:
    def people(level: str) -> list:
        return [random_person(np.random.default_rng([3, i]), DIFFICULTIES[level]) for i in range(300)]

    easy, hard = people("easy"), people("hard")
    spread = {name: np.ptp([p.cx for p in group]) for name, group in (("easy", easy), ("hard", hard))}
    assert spread["easy"] <= 2 * DIFFICULTIES["easy"].centre_x < spread["hard"] / 2
    assert max(len(p.bg_shapes) for p in easy) < min(len(p.bg_shapes) for p in hard) + 3
    assert np.mean([p.noise for p in easy]) < np.mean([p.noise for p in hard])
    # What is not nuisance to narrow still varies at every level: colours, backgrounds, the hand used.
    for group in (easy, hard):
        assert len({p.shirt for p in group}) > 250 and len({p.bg_corners for p in group}) > 250
        assert {p.side for p in group} == {-1, 1}
    # The ranges nest: medium lies between easy and hard.
    e, m, h = (DIFFICULTIES[k] for k in ("easy", "medium", "hard"))
    assert e.centre_x < m.centre_x < h.centre_x and e.pose_offset < m.pose_offset < h.pose_offset


def test_max_frames_gives_more_shorter_clips_of_the_same_class_sizes(tmp_path: Path) -> None:
    cfg = replace(CFG, scale=0.004, video_seconds=1.0, difficulty="easy")
    capped = make_dataset(tmp_path / "capped", replace(cfg, max_frames=2))
    free = make_dataset(tmp_path / "free", cfg)
    assert capped.counts == free.counts
    assert sum(capped.clips.values()) > sum(free.clips.values())
    lengths: dict[str, int] = defaultdict(int)
    for path in capped.image_dir.rglob("*.jpg"):
        lengths[path.name.split(".")[0]] += 1
    assert max(lengths.values()) <= 2
    assert "difficulty easy and at most 2 frames per clip" in (capped.root / "README.txt").read_text()


def test_removing_the_cue_leaves_a_frame_that_does_not_depend_on_the_class() -> None:
    person = random_person(np.random.default_rng(5), DIFFICULTIES["easy"])

    def frame(k: int, cue: bool) -> np.ndarray:
        return render_frame(k, person, np.random.default_rng(9), (90, 160), cue)

    control = frame(0, False)
    assert all(np.array_equal(frame(k, False), control) for k in (5, 16, 28, 31))
    assert len({frame(k, True).tobytes() for k in (0, 5, 16, 28, 31)}) == 5


def test_video_shows_common_gestures_in_segments_of_a_few_seconds(tmp_path: Path) -> None:
    cfg = replace(CFG, scale=0.001, min_clips=1, video_seconds=30.0, fps=5.0, segment_seconds=(3.0, 5.0))
    summary = make_dataset(tmp_path / "v", cfg)
    with summary.video_labels.open(encoding="utf-8", newline="") as f:
        labels = [row["label"] for row in csv.DictReader(f)]
    assert len(labels) == 150
    common = {str(i + 1) for i in video_classes(32)}
    assert set(labels) <= common and len(common) == 13 and "32" in common and "10" not in common
    runs: list[list[str]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1].append(label)
        else:
            runs.append([label])  # a new segment always shows another gesture
    assert len(runs) >= 6
    assert all(15 <= len(run) <= 25 for run in runs[:-1])


def test_synth_command_options(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "control"
    args = ["synth", str(out), "--scale", "0.001", "--min-clips", "1", "--video-seconds", "0.5"]
    result = runner.invoke(app, [*args, "--difficulty", "easy", "--max-frames", "2", "--no-cue"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(out / "training"))
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert "difficulty easy" in readme and "CONTROL DATA" in readme
    result = runner.invoke(app, [*args, "--difficulty", "insane", "--force"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == [
        "error: --difficulty must be one of easy, medium, hard, got 'insane'."
    ]


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


PEOPLE, TRAIN_PEOPLE = 24, 16


def _features(difficulty: str, cue: bool) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """One frame each of 24 people per class: shape features (gradient histograms of a 64x64 grey
    thumbnail), global colour statistics, and the labels."""
    shape, colour, label = [], [], []
    for k in range(32):
        for p in range(PEOPLE):
            g = np.random.default_rng([11, k, p])
            frame = render_frame(k, random_person(g, DIFFICULTIES[difficulty]), g, (90, 160), cue)
            small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
            shape.append(_gradient_histograms(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)))
            colour.append(np.concatenate([frame.mean(axis=(0, 1)), frame.std(axis=(0, 1))]) / 64.0)
            label.append(k)
    return shape, colour, np.array(label)


def _ridge_accuracy(features: list[np.ndarray], y: np.ndarray, lam: float) -> float:
    """A linear model trained on 16 people per class, scored on 8 OTHER people per class."""
    train = np.tile(np.arange(PEOPLE), 32) < TRAIN_PEOPLE
    x = np.array(features, dtype=np.float64)
    x = np.hstack([x - x[train].mean(axis=0), np.ones((len(x), 1))])
    targets = np.eye(32)[y]
    w = np.linalg.solve(x[train].T @ x[train] + lam * np.eye(x.shape[1]), x[train].T @ targets[train])
    return float(((x[~train] @ w).argmax(axis=1) == y[~train]).mean())


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_cue_is_in_the_shapes_not_the_colours(difficulty: str) -> None:
    # Shape features must beat chance clearly (easy far more than hard); global colour statistics must
    # not, or the class would be given away without looking at hands.
    shape, colour, y = _features(difficulty, cue=True)
    chance = 1 / 32
    assert _ridge_accuracy(shape, y, 100.0) > (10 if difficulty == "easy" else 3) * chance
    assert _ridge_accuracy(colour, y, 1.0) < 2.5 * chance


def test_without_the_cue_shapes_carry_no_class() -> None:
    # The control: the same people, scenes and cameras with the hands at rest; placement and shapes of
    # the person and the background are all that is left, and they must not tell the class.
    shape, _, y = _features("easy", cue=False)
    assert _ridge_accuracy(shape, y, 100.0) < 2.5 / 32
