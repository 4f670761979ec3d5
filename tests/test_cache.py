"""The training cache: built once, reused, invalidated by a changed, added or removed file, never read after
a killed build, and on the evaluation side equal bit for bit to decoding the files with preprocess()."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_tree, write_image

import mgc_edge.data.cache as cache_mod
from mgc_edge.config import PreprocessSpec
from mgc_edge.data.cache import SUFFIX, CacheError, default_cache_dir, margin_size, open_cache, stored_spec
from mgc_edge.data.dataset import FrameDataset
from mgc_edge.data.scan import Sample, scan_folder
from mgc_edge.images import ImageReadError, read_image
from mgc_edge.preprocess import preprocess, resize_frame
from mgc_edge.train.batches import CachedBatches, _prefetch

SPEC = PreprocessSpec(size=(32, 40))
CPU = torch.device("cpu")


def _samples(root: Path) -> list[Sample]:
    return list(scan_folder(root, r"^(?P<group>[^.]+)\.").samples)


def _cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{SUFFIX}"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data", {"a": 3, "b": 3}, frames=2, size=(45, 80))


def test_built_once_then_reused_and_equal_to_decoding(tmp_path: Path, tree: Path) -> None:
    samples, folder = _samples(tree), tmp_path / "cache"
    progress: list[tuple[int, int]] = []
    first = open_cache(tree, samples, SPEC, "val", folder, on_progress=lambda d, t: progress.append((d, t)))
    assert first.built and first.seconds > 0 and first.images.shape == (len(samples), 32, 40, 3)
    assert progress[-1] == (len(samples), len(samples))
    again = open_cache(tree, samples, SPEC, "val", folder)
    assert not again.built and again.path == first.path and _cache_files(folder) == [first.path]
    for i, s in enumerate(samples):
        assert np.array_equal(again.images[i], resize_frame(read_image(tree / s.path), SPEC))
    assert not again.images.flags.writeable  # read-only: nothing can scribble on the file


@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec(size=(32, 40)),
        PreprocessSpec(size=(36, 36), resize="letterbox", interpolation="area"),
        PreprocessSpec(size=(40, 32), resize="center_crop", interpolation="cubic", color="bgr"),
    ],
)
def test_cached_evaluation_batches_are_bit_identical_to_preprocess(
    tmp_path: Path, tree: Path, spec: PreprocessSpec
) -> None:
    """What validation and test see through the cache is what the runtime computes from the same files."""
    samples = _samples(tree)
    cached = open_cache(tree, samples, spec, "val", tmp_path / "cache")
    batches = CachedBatches(cached.images, [s.label for s in samples], spec, 5, CPU)
    got = torch.cat([x for x, _ in batches]).numpy()
    labels = torch.cat([y for _, y in batches]).tolist()
    runtime = preprocess([read_image(tree / s.path) for s in samples], spec)
    assert got.tobytes() == runtime.tobytes()
    decode_path = torch.stack([FrameDataset(tree, samples, spec)[i][0] for i in range(len(samples))])
    assert got.tobytes() == decode_path.numpy().tobytes()
    assert labels == [s.label for s in samples]


def test_a_changed_added_or_removed_file_invalidates_the_cache(tmp_path: Path, tree: Path) -> None:
    folder = tmp_path / "cache"
    samples = _samples(tree)
    first = open_cache(tree, samples, SPEC, "train", folder)

    changed = tree / samples[0].path
    write_image(changed, np.full((45, 80, 3), 255, np.uint8))
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    after_change = open_cache(tree, samples, SPEC, "train", folder)
    assert after_change.built and after_change.path != first.path
    assert after_change.images[0].min() == 255  # the new content, not the old

    write_image(tree / "a" / "999.1.png", np.zeros((45, 80, 3), np.uint8))
    added = open_cache(tree, _samples(tree), SPEC, "train", folder)
    assert added.built and len(added) == len(samples) + 1

    removed = open_cache(tree, _samples(tree)[1:], SPEC, "train", folder)
    assert removed.built and len(removed) == len(samples)

    other_size = open_cache(tree, samples, stored_spec(SPEC, margin_size(SPEC.size)), "train", folder)
    assert other_size.built and other_size.images.shape[1:3] == (40, 50)
    # Older versions of one cache are deleted (two are kept per data folder, role and size).
    assert len(_cache_files(folder)) == cache_mod.KEEP_VERSIONS + 1


KILLED_BUILD = textwrap.dedent(
    """
    import os, signal, sys
    from mgc_edge.config import PreprocessSpec
    from mgc_edge.data.cache import open_cache
    from mgc_edge.data.scan import scan_folder

    root, folder = sys.argv[1], sys.argv[2]
    samples = list(scan_folder(root, r"^(?P<group>[^.]+)\\.").samples)

    def die(done, total):
        if 0 < done < total:
            os.kill(os.getpid(), signal.SIGKILL)  # the machine goes down in the middle of the build

    open_cache(root, samples, PreprocessSpec(size=(32, 40)), "train", folder, workers=1, on_progress=die)
    """
)


def test_a_killed_build_is_never_read_and_is_rebuilt(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "data", {"a": 10, "b": 10}, frames=2, size=(45, 80))  # 40 images
    folder = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(tree), str(folder)], timeout=120)
    assert proc.returncode == -9
    assert _cache_files(folder) == []  # nothing under a cache name
    leftovers = list(folder.glob(".*.tmp"))
    assert leftovers  # the half-written temporary file of the dead process
    samples = _samples(tree)
    rebuilt = open_cache(tree, samples, SPEC, "train", folder)
    assert rebuilt.built and not any(p.exists() for p in leftovers)  # the dead build's file is cleaned up
    assert np.array_equal(rebuilt.images[-1], resize_frame(read_image(tree / samples[-1].path), SPEC))


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda p: os.truncate(p, p.stat().st_size - 100), "truncated"),
        (lambda p: p.write_bytes(b"\0" * 16 + p.read_bytes()[16:]), "incomplete"),
        (lambda p: p.write_bytes(p.read_bytes()[:40] + b"#" + p.read_bytes()[41:]), "damaged header"),
    ],
)
def test_a_damaged_cache_file_is_rebuilt_not_read(
    tmp_path: Path, tree: Path, damage: object, why: str
) -> None:
    samples, folder = _samples(tree), tmp_path / "cache"
    path = open_cache(tree, samples, SPEC, "train", folder).path
    damage(path)  # type: ignore[operator]
    again = open_cache(tree, samples, SPEC, "train", folder)
    assert again.built and why in (again.rebuilt_because or "")
    assert np.array_equal(again.images[0], resize_frame(read_image(tree / samples[0].path), SPEC))


def test_several_processes_build_the_same_file(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = _samples(tree)
    one = open_cache(tree, samples, SPEC, "train", tmp_path / "one")  # few images: in this process
    monkeypatch.setattr(cache_mod, "CHUNK", 5)
    progress: list[int] = []
    two = open_cache(
        tree, samples, SPEC, "train", tmp_path / "two", workers=2, on_progress=lambda d, t: progress.append(d)
    )
    assert two.built and np.array_equal(np.asarray(one.images), np.asarray(two.images))
    assert progress[-1] == len(samples) and len(progress) >= 2  # one update per finished chunk


@pytest.mark.parametrize("parallel", [False, True])
def test_an_unreadable_image_fails_the_build_and_leaves_nothing(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    samples, folder = _samples(tree), tmp_path / "cache"
    monkeypatch.setattr(cache_mod, "CHUNK", 4)
    (tree / samples[5].path).write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="not a readable image"):
        open_cache(tree, samples, SPEC, "train", folder, workers=2 if parallel else 1)
    assert list(folder.iterdir()) == []


def test_an_unusable_cache_folder_is_one_clear_error(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a file").write_text("x")
    with pytest.raises(CacheError, match="Cannot create the cache folder"):
        open_cache(tree, _samples(tree), SPEC, "train", tmp_path / "a file" / "cache")
    monkeypatch.setattr(
        cache_mod.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**6, 10**6, 1000)
    )
    with pytest.raises(CacheError, match=r"needs .* GB .* --no-cache"):
        open_cache(tree, _samples(tree), SPEC, "train", tmp_path / "full")
    assert list((tmp_path / "full").iterdir()) == []


def test_default_location_is_the_users_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mgc-edge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mgc-edge"


def test_margin_size_leaves_room_for_the_smallest_crop() -> None:
    assert margin_size((64, 64)) == (80, 80)
    assert margin_size((224, 224)) == (280, 280)
    assert margin_size((112, 200)) == (140, 250)


def _cached_batches(n: int, **kw: object) -> CachedBatches:
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 4, 4, 3), np.uint8)
    return CachedBatches(images, list(range(n)), PreprocessSpec(size=(4, 4)), 4, CPU, **kw)  # type: ignore[arg-type]


def test_each_rank_trains_on_its_own_shard() -> None:
    """DistributedSampler semantics: two ranks see disjoint halves that together cover every image."""
    from torch.utils.data import DistributedSampler

    seen = []
    for rank in (0, 1):
        batches = _cached_batches(10, sampler=DistributedSampler(range(10), 2, rank, shuffle=True, seed=3))
        batches.set_epoch(2)
        seen.append(torch.cat([y for _, y in batches]).tolist())
    assert set(seen[0]).isdisjoint(seen[1]) and sorted(seen[0] + seen[1]) == list(range(10))
    assert seen[0] != sorted(seen[0]) or seen[1] != sorted(seen[1])  # shuffled


def test_device_resident_and_host_gathers_give_the_same_batches() -> None:
    host = [x for x, _ in _cached_batches(10)]
    resident = [x for x, _ in _cached_batches(10, resident=True)]
    assert len(host) == 3 and all(torch.equal(a, b) for a, b in zip(host, resident))


def test_prefetch_keeps_order_passes_errors_and_stops_early() -> None:
    assert list(_prefetch(iter(range(50)), 3)) == list(range(50))

    def broken():  # noqa: ANN202
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(_prefetch(broken(), 2))
    it = _prefetch(iter(range(10**6)), 2)
    assert next(it) == 0
    it.close()  # the producer thread is released, not left blocked on a full queue
