"""Scanning, labels and the group-aware split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import make_tree, write_image

from mgc_edge.config import SplitConfig
from mgc_edge.data.scan import DataError, Sample, scan_folder
from mgc_edge.data.split import assign_splits, leaked_groups, read_split_csv, write_split_csv
from mgc_edge.labels import LabelError, attach_names, sort_labels

REGEX = SplitConfig().group_regex


def test_labels_sort_numerically_not_as_strings() -> None:
    assert sort_labels(["10", "2", "1", "32", "3"]) == ["1", "2", "3", "10", "32"]
    assert sort_labels(["b", "a10", "a2"]) == ["a2", "a10", "b"]


def test_shipped_imigue_names_and_partial_files(tmp_path: Path) -> None:
    labels = attach_names([str(i) for i in range(1, 33)], "imigue")
    assert labels.display(16) == "Folding arms" and labels.display(31) == "Illustrative body language"
    f = tmp_path / "names.csv"
    f.write_text("label,name\ncat,Cat\n", encoding="utf-8")
    assert attach_names(["cat", "dog"], f).names == ("Cat", "dog")
    with pytest.raises(LabelError, match="names none"):
        attach_names(["x", "y"], f)
    with pytest.raises(LabelError, match="does not exist"):
        attach_names(["x"], tmp_path / "missing.csv")


def test_scan_reads_labels_groups_and_mixed_images(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"10": 2, "2": 2})
    write_image(root / "2" / "gray.7.png", np.zeros((9, 9), np.uint8))
    write_image(root / "2" / "rgba.1.png", np.zeros((9, 12, 4), np.uint8))
    (root / "2" / ".hidden.jpg").write_bytes(b"junk")
    scan = scan_folder(root, REGEX)
    assert scan.labels == ("2", "10")
    assert scan.counts() == [6, 4]
    groups = {s.group for s in scan.samples}
    assert {"gray", "rgba", "101", "103"} <= groups
    assert scan.skipped == ()


def test_corrupt_and_non_image_files_are_listed_and_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"a": 2, "b": 2})
    (root / "a" / "broken.1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "b" / "notes.txt").write_text("hello")
    scan = scan_folder(root, REGEX)
    assert sorted(p for p, _ in scan.skipped) == ["a/broken.1.jpg", "b/notes.txt"]
    assert len(scan.samples) == 8
    with pytest.raises(DataError, match="2 file.*--strict"):
        scan_folder(root, REGEX, strict=True)


def test_paths_with_spaces_and_non_ascii_names(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "my data ü", {"Grüße 1": 1, "クラス 2": 1})
    scan = scan_folder(root, REGEX)
    assert len(scan.samples) == 4 and set(scan.labels) == {"Grüße 1", "クラス 2"}


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: None, "does not exist"),
        (lambda r: r.mkdir(), "no class folders"),
        (lambda r: make_tree(r, {"only": 2}), "only one class"),
        (lambda r: (make_tree(r, {"a": 1}), (r / "empty").mkdir()), "holds no images"),
        (
            lambda r: (make_tree(r, {"a": 1}), (r / "b").mkdir(), (r / "b" / "x.jpg").write_bytes(b"x")),
            "no readable",
        ),
    ],
)
def test_bad_data_folders_fail_with_one_sentence(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=message):
        scan_folder(root, REGEX)


def _samples(clips_per_class: dict[int, int], frames: int = 3) -> list[Sample]:
    out, clip = [], 0
    for label, n in clips_per_class.items():
        for _ in range(n):
            clip += 1
            out += [Sample(f"{label}/{clip}.{f}.jpg", label, str(clip)) for f in range(frames)]
    return out


def test_group_split_never_leaks_and_is_stratified() -> None:
    samples = _samples({0: 40, 1: 20, 2: 10, 3: 2, 4: 1})
    splits = assign_splits(samples, SplitConfig(seed=3))
    assert leaked_groups(samples, splits) == set()
    per = Counter((s.label, sp) for s, sp in zip(samples, splits))
    for label, n_clips in {0: 40, 1: 20, 2: 10}.items():
        total = 3 * n_clips
        assert abs(per[label, "test"] / total - 0.2) < 0.1  # about 20 % of each class
        assert per[label, "val"] > 0 and per[label, "train"] > 0
    assert per[3, "test"] == 3 and per[3, "train"] == 3  # two clips: one to test, one kept for train
    assert per[4, "train"] == 3  # a single clip stays in train


def test_split_is_deterministic_per_seed() -> None:
    samples = _samples({0: 30, 1: 30})
    assert assign_splits(samples, SplitConfig(seed=1)) == assign_splits(samples, SplitConfig(seed=1))
    assert assign_splits(samples, SplitConfig(seed=1)) != assign_splits(samples, SplitConfig(seed=2))


def test_random_split_leaks_which_is_why_reports_call_it_leaky() -> None:
    samples = _samples({0: 30, 1: 30}, frames=4)
    assert leaked_groups(samples, assign_splits(samples, SplitConfig(mode="random"))) != set()


def test_split_csv_round_trip_and_mismatch(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", {"a": 6, "b": 6})
    scan = scan_folder(root, REGEX)
    splits = assign_splits(scan.samples, SplitConfig())
    write_split_csv(tmp_path / "split.csv", scan, splits)
    assert read_split_csv(tmp_path / "split.csv", scan) == splits
    text = (tmp_path / "split.csv").read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(text[:-1]) + "\n")
    with pytest.raises(DataError, match="not in split file"):
        read_split_csv(tmp_path / "short.csv", scan)
