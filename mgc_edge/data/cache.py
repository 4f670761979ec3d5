"""The training cache: every image decoded and resized once into one memory-mapped uint8 file.

Later epochs and later runs read frames from the page cache instead of decoding JPEGs again. A cache file
holds the images of one list of samples, resized by the run's resize policy to one fixed size, as
[N, H, W, 3] BGR uint8. Its name is derived from a key over the files' paths, sizes and modification times,
the resize policy and the size, so a changed, added or removed file gives another key and a fresh build.

A build writes a hidden temporary file and renames it into place only when complete, and the header's magic
bytes are written last: a killed build never leaves a file under a cache name, and a file whose header,
size or key does not check out is rebuilt, never read. numpy + OpenCV only (no torch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.scan import Sample
from mgc_edge.errors import UserError
from mgc_edge.images import read_image
from mgc_edge.preprocess import resize_frame

FORMAT = 1
MAGIC = b"MGC-EDGE-U8CACHE"  # 16 bytes, written last: its presence marks a complete file
PREFIX_BYTES = 32  # magic, then the data offset and the header length as two little-endian uint64
PAGE = 4096  # the data starts on a page boundary, so the memory map is aligned
SUFFIX = ".u8cache"
MARGIN = 1.25  # the smallest default crop (0.8 of each side) then still has the model's resolution
KEEP_VERSIONS = 2  # per data folder, role and size: older versions (changed files) are deleted
CHUNK = 64  # images per task when building in several processes
PARALLEL_FROM = 2000  # fewer images are built in this process (seconds at most): workers cost a start


class CacheError(UserError):
    """The cache folder cannot be used; the message is one sentence."""


@dataclass(frozen=True)
class CachedImages:
    """The images of a list of samples, in sample order: [N, H, W, 3] BGR uint8, memory-mapped read-only."""

    path: Path
    images: np.ndarray
    spec: PreprocessSpec  # what each image is: resize policy and stored size
    built: bool  # True when this call built the file, False when it reused one
    seconds: float  # building time (0 when reused)
    rebuilt_because: str | None = None  # why an existing file was not used, if one was there

    def __len__(self) -> int:
        return len(self.images)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/mgc-edge, else ~/.cache/mgc-edge: the user's cache, not the run directory."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mgc-edge"


def margin_size(size: tuple[int, int], margin: float = MARGIN) -> tuple[int, int]:
    """The stored size for training images: `margin` above the model input, so random crops keep detail."""
    return math.ceil(size[0] * margin - 1e-9), math.ceil(size[1] * margin - 1e-9)


def stored_spec(spec: PreprocessSpec, size: tuple[int, int]) -> PreprocessSpec:
    """The spec whose resize_frame() makes the stored images: the run's policy at the stored size."""
    return dataclasses.replace(spec, size=size)


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _fingerprint(root: Path, samples: Sequence[Sample]) -> list[tuple[str, int, int]]:
    out = []
    for s in samples:
        try:
            st = os.stat(root / s.path)
        except OSError as exc:
            raise CacheError(f"Cannot cache {root / s.path}: {exc.strerror or exc}.") from None
        out.append((s.path, st.st_size, st.st_mtime_ns))
    return out


def _tag(root: Path, spec: PreprocessSpec, role: str) -> str:
    """Names the versions of one cache: the data folder, the role (train, val, ...) and what is stored."""
    return _digest({"root": str(root), "spec": spec.to_dict(), "role": role})[:12]


def cache_key(root: str | Path, samples: Sequence[Sample], spec: PreprocessSpec) -> str:
    """Hex key over the files (relative path, size, mtime), the data folder and the stored spec."""
    root = Path(root).resolve()
    return _digest(
        {
            "format": FORMAT,
            "root": str(root),
            "spec": spec.to_dict(),
            "files": _fingerprint(root, samples),
        }
    )


@dataclass(frozen=True)
class _Header:
    key: str
    shape: tuple[int, int, int, int]
    data_offset: int


def _read_header(path: Path) -> _Header:
    """The header of a complete cache file; ValueError says why a file is not one."""
    with open(path, "rb") as fh:
        prefix = fh.read(PREFIX_BYTES)
        if len(prefix) < PREFIX_BYTES or prefix[:16] != MAGIC:
            raise ValueError("incomplete or not a cache file (no header)")
        offset = int.from_bytes(prefix[16:24], "little")
        length = int.from_bytes(prefix[24:32], "little")
        if offset % PAGE or length > offset - PREFIX_BYTES:
            raise ValueError("damaged header")
        try:
            meta = json.loads(fh.read(length))
            header = _Header(str(meta["key"]), tuple(int(v) for v in meta["shape"]), offset)
        except (ValueError, KeyError, TypeError):
            raise ValueError("damaged header") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')} (this version reads {FORMAT})")
    expected = offset + int(np.prod(header.shape))
    actual = path.stat().st_size
    if actual != expected:
        raise ValueError(f"{actual} bytes where {expected} were expected (truncated or damaged)")
    return header


def _data_offset(header_json: bytes) -> int:
    return -(-(PREFIX_BYTES + len(header_json)) // PAGE) * PAGE


def open_cache(
    root: str | Path,
    samples: Sequence[Sample],
    spec: PreprocessSpec,
    role: str,
    cache_dir: str | Path | None = None,
    workers: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> CachedImages:
    """The cache of `samples` under `root` stored as resize_frame(image, spec): reused when a complete file
    with this key exists, else built: `workers` processes (1 = in this process), or with 0 in this process
    below PARALLEL_FROM images and in one process per available core from there.

    `role` ("train", "val", ...) keeps the caches of one data folder apart, so that building one never
    evicts another. `on_progress(done, total)` is called while building.
    """
    root = Path(root).resolve()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"Cannot create the cache folder {folder}: {exc.strerror or exc}.") from None
    if not samples:
        return CachedImages(folder, np.empty((0, *spec.size, 3), np.uint8), spec, built=False, seconds=0.0)
    key = cache_key(root, samples, spec)
    tag = _tag(root, spec, role)
    path = folder / f"{tag}-{key[:20]}{SUFFIX}"
    shape = (len(samples), spec.size[0], spec.size[1], 3)
    reason = None
    if path.exists():
        try:
            header = _read_header(path)
            if header.key != key or header.shape != shape:
                raise ValueError("its key does not match these files")
            images = np.memmap(path, np.uint8, "r", header.data_offset, shape)
        except (OSError, ValueError) as exc:
            reason = str(exc)
        else:
            with contextlib.suppress(OSError):  # most recently used: the last to be pruned
                os.utime(path)
            return CachedImages(path, images, spec, built=False, seconds=0.0)
    started = time.perf_counter()
    _build(path, root, samples, spec, key, workers, on_progress)
    _prune(folder, tag, keep=path)
    header = _read_header(path)
    images = np.memmap(path, np.uint8, "r", header.data_offset, shape)
    return CachedImages(path, images, spec, True, time.perf_counter() - started, reason)


def _build(
    path: Path,
    root: Path,
    samples: Sequence[Sample],
    spec: PreprocessSpec,
    key: str,
    workers: int,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """Fill a hidden temporary file, write its header last, fsync, and rename it to `path`."""
    n = len(samples)
    shape = (n, spec.size[0], spec.size[1], 3)
    meta = json.dumps(
        {"format": FORMAT, "key": key, "shape": list(shape), "spec": spec.to_dict(), "root": str(root)}
    ).encode()
    offset = _data_offset(meta)
    _remove_stale_temps(path)
    total = offset + int(np.prod(shape))
    free = shutil.disk_usage(path.parent).free
    if free < total:
        raise CacheError(
            f"The cache of {n} images needs {total / 1e9:.1f} GB in {path.parent} but only {free / 1e9:.1f} GB "
            "are free; pass --cache-dir DIR on a larger disk, or --no-cache."
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    paths = [str(root / s.path) for s in samples]
    try:
        try:
            with open(tmp, "wb") as fh:
                # Zeros (no magic yet, so not a cache file), allocated now: a disk that fills up fails here
                # with an error, not later in a write through the memory map.
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fh.fileno(), 0, total)
                else:
                    fh.truncate(total)
        except OSError as exc:
            raise CacheError(
                f"Cannot write the cache in {path.parent} ({exc.strerror or exc}); pass --cache-dir DIR or "
                "--no-cache."
            ) from None
        if workers == 0:
            workers = 1 if n < PARALLEL_FROM else _cpu_count()
        if workers <= 1:
            _fill(str(tmp), offset, shape, paths, 0, spec.to_json(), on_progress)
        else:
            _fill_parallel(str(tmp), offset, shape, paths, spec, workers, on_progress)
        with open(tmp, "r+b") as fh:
            fh.seek(PREFIX_BYTES)
            fh.write(meta)
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the magic says it is complete
            fh.seek(0)
            fh.write(MAGIC + offset.to_bytes(8, "little") + len(meta).to_bytes(8, "little"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _fill(
    tmp: str,
    offset: int,
    shape: tuple[int, ...],
    paths: Sequence[str],
    start: int,
    spec_json: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Decode and resize `paths` into the images start, start+1, ... of the file; runs here or in a worker."""
    spec = PreprocessSpec.from_json(spec_json)
    out = np.memmap(tmp, np.uint8, "r+", offset, shape)
    for j, p in enumerate(paths):
        out[start + j] = resize_frame(read_image(p), spec)
        if on_progress is not None and (j + 1) % 16 == 0:
            on_progress(j + 1, len(paths))
    out.flush()
    del out
    if on_progress is not None:
        on_progress(len(paths), len(paths))
    return len(paths)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _fill_parallel(
    tmp: str,
    offset: int,
    shape: tuple[int, ...],
    paths: Sequence[str],
    spec: PreprocessSpec,
    workers: int,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    n = len(paths)
    # spawn, never fork: a child forked from a parent whose OpenCV thread pool has run deadlocks in OpenCV
    # (seen here, in cv2.setNumThreads). A spawned child imports the parent's main module: cheap for the CLI,
    # a second or two where that module imports torch, which PARALLEL_FROM keeps small beside the build.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
        futures = [
            pool.submit(_fill, tmp, offset, shape, paths[s : s + CHUNK], s, spec.to_json())
            for s in range(0, n, CHUNK)
        ]
        done = 0
        try:
            for future in as_completed(futures):
                done += future.result()  # re-raises a worker's error (an unreadable image, say)
                if on_progress is not None:
                    on_progress(done, n)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no worker writes after the file is removed
            raise


def _remove_stale_temps(path: Path) -> None:
    """Temporary files of builds that were killed (their process is gone) for the same cache name."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows: signal 0 would be CTRL_C_EVENT, so never ask
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or the platform cannot tell
        return True
    return True


def _prune(folder: Path, tag: str, keep: Path) -> None:
    """Keep the KEEP_VERSIONS most recently used versions of one cache (one data folder, role and size)."""

    def last_used(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:  # removed meanwhile by another run
            return 0.0

    versions = sorted((p for p in folder.glob(f"{tag}-*{SUFFIX}") if p != keep), key=last_used, reverse=True)
    for old in versions[KEEP_VERSIONS - 1 :]:
        with contextlib.suppress(OSError):  # in use where the platform refuses, or already gone: harmless
            old.unlink()
