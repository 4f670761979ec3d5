"""PyTorch's side of a parity check: the checkpoint's logits on the check's images, and their store beside a
model so that a later `verify` need not run PyTorch again.

`export` computes the reference once, proves every precision against it, and stores it beside each model
(`model.fp16.reference.npz`, written atomically) with the key it depends on: the checkpoint's sha256, the
images (paths under their folder, labels and contents) and the preprocessing (what preprocess() makes of a
probe frame here). `verify` reuses a stored reference when that key matches what it would compute now,
whichever torch made it and whether or not torch is installed here: an edge box with the run's checkpoint and
images checks a model against it without PyTorch. Where PyTorch ran (device, batch size) and which torch and
mgc-edge did are kept beside the key and reported, not compared: in true fp32 they move a logit by rounding
only, far inside the tightest gate. Reuse needs no torch: the checkpoint is recognised by its digest, and the
few facts a check needs from it (arch, labels, preprocessing, data folder) are stored with the logits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mgc_edge import __version__
from mgc_edge.config import ConfigError, PreprocessSpec
from mgc_edge.data.scan import DataError, Sample, folder_samples
from mgc_edge.errors import UserError
from mgc_edge.export.options import VerifyOptions
from mgc_edge.fileio import atomic_path, file_sha256
from mgc_edge.images import read_images
from mgc_edge.labels import Labels
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime.model.devices import parse_device
from mgc_edge.train import rundir

if TYPE_CHECKING:
    from torch import nn

    from mgc_edge.train.checkpoint import Checkpoint

STORE_SUFFIX = ".reference.npz"
STORE_FORMAT = 2  # 2: images keyed by relative path and content (1: absolute path and mtime), preprocessing
# The part of the key the logits are a function of: a stored reference is reused only when all of it matches.
# The rest of the key (device, batch size, torch and mgc-edge versions) is where and how PyTorch ran: kept and
# reported, not compared (see the module's docstring).
REUSE_KEY = ("format", "checkpoint_sha256", "images", "preprocess")
# What each differing part means to the user, after "the stored reference ... differs from this check in its".
_DIFFERS = {
    "images": "images (one was added, removed, relabelled or changed since, or --data, --split or --max-images "
    "differ)",
    "preprocess": "preprocessing (preprocess() makes other inputs of the same frame here: another OpenCV or "
    "mgc-edge)",
}


class CheckpointMissingError(UserError):
    """The checkpoint to compare with does not exist; the message is one sentence."""


@dataclass(frozen=True)
class CheckpointFacts:
    """What a parity check needs to know about a checkpoint besides its logits (torch-free)."""

    path: Path
    sha256: str
    arch: str
    labels: Labels
    preprocess: PreprocessSpec
    data: str  # the training data folder, where the run's splits live

    @classmethod
    def of(cls, checkpoint: Checkpoint, sha256: str | None = None) -> CheckpointFacts:
        return cls(
            path=checkpoint.path,
            sha256=sha256 if sha256 is not None else file_sha256(checkpoint.path),
            arch=checkpoint.arch,
            labels=checkpoint.labels,
            preprocess=checkpoint.preprocess,
            data=checkpoint.config.data,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "labels": list(self.labels.ids),
            "label_names": list(self.labels.names) if self.labels.names else None,
            "preprocess": self.preprocess.to_dict(),
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, path: Path, sha256: str, d: Mapping[str, Any]) -> CheckpointFacts:
        names = d.get("label_names")
        return cls(
            path=path,
            sha256=sha256,
            arch=str(d["arch"]),
            labels=Labels(tuple(d["labels"]), tuple(names) if names else None),
            preprocess=PreprocessSpec.from_dict(d["preprocess"]),
            data=str(d["data"]),
        )


@dataclass(frozen=True)
class Reference:
    """PyTorch's side of the comparison, computed once and reused for every precision of one export."""

    checkpoint: CheckpointFacts
    root: Path
    samples: tuple[Sample, ...]
    source: str
    logits: np.ndarray  # float32 [N, C]
    device: str = "cpu"  # where PyTorch ran
    key: Mapping[str, Any] = field(default_factory=dict)  # what the logits depend on (see reference_key)
    stored: Path | None = None  # the stored reference this was read from; None: computed in this process

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


# --- which images ---------------------------------------------------------------------------------------


def subsample(samples: Sequence[Sample], max_images: int, seed: int = 0) -> list[Sample]:
    """At most `max_images` samples (0 = all), a seeded random draw kept in the original order."""
    if max_images <= 0 or len(samples) <= max_images:
        return list(samples)
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=max_images, replace=False))
    return [samples[i] for i in keep]


def check_images(facts: CheckpointFacts, options: VerifyOptions) -> tuple[Path, list[Sample], str]:
    """The images a check with `options` runs on: root, samples and a description of where they come from."""
    if options.data is not None:
        root, samples = Path(options.data), folder_samples(Path(options.data), facts.labels.ids)
        source = str(root)
    else:
        root = Path(facts.data)
        samples = rundir.run_split(
            facts.path.parent,
            root,
            facts.labels.ids,
            options.split,
            "pass --data DIR with labelled images",
        )
        source = f"{options.split} split of {root}"
    samples = subsample(samples, options.max_images)
    if not samples:
        raise DataError(
            f"There are no images to verify on in the {source}; pass --data DIR or another --split."
        )
    return root, samples, source


def image_batches(root: Path, samples: Sequence[Sample], batch_size: int) -> Iterator[list[np.ndarray]]:
    """Lists of BGR uint8 frames, batch by batch (read again per model: memory stays bounded)."""
    for i in range(0, len(samples), batch_size):
        yield read_images([root / s.path for s in samples[i : i + batch_size]]).images


def images_digest(root: Path, samples: Sequence[Sample]) -> str:
    """sha256 over every image's path under `root`, label and content: a changed, added, removed or relabelled
    image changes it; the same images copied elsewhere (another folder, another box, new mtimes) do not."""
    h = hashlib.sha256()
    for s in samples:
        try:
            content = file_sha256(root / s.path)
        except OSError:
            content = "unreadable"
        h.update(f"{Path(s.path).as_posix()}\0{s.label}\0{content}\n".encode())
    return h.hexdigest()


def preprocess_digest(spec: PreprocessSpec) -> str:
    """sha256 of the spec and of what preprocess() makes of two fixed probe frames under it (one larger and one
    smaller than the model's input, of other aspects): the same on every box whose OpenCV and mgc-edge
    preprocess alike, another where resizing or normalisation would feed the model other numbers."""
    h, w = spec.size
    rng = np.random.default_rng(0)
    probes = [rng.integers(0, 256, (2 * h + 37, 2 * w + 53, 3), dtype=np.uint8)]
    probes.append(rng.integers(0, 256, (h // 2 + 5, w // 2 + 3, 3), dtype=np.uint8))
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for frame in probes:
        digest.update(np.ascontiguousarray(preprocess([frame], spec), dtype="<f4").tobytes())
    return digest.hexdigest()


# --- computing it -------------------------------------------------------------------------------------


def reference_device(device: str) -> str:
    """Where PyTorch computes the reference: on the GPU when ONNX Runtime is asked to run there and this
    torch sees CUDA (the same kind of arithmetic, and no CPU pass over the images), else on the CPU."""
    import torch

    kind, index = parse_device(device)
    if kind != "cpu" and torch.cuda.is_available():
        return f"cuda:{index}"
    return "cpu"


@contextlib.contextmanager
def true_fp32() -> Iterator[None]:
    """PyTorch in true fp32 on CUDA while the reference runs: TF32 off for matmuls and cuDNN convolutions
    (cuDNN's default is on), restored afterwards."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def reference_key(
    facts: CheckpointFacts, root: Path, samples: Sequence[Sample], device: str, batch_size: int
) -> dict[str, Any]:
    """What the reference logits are a function of (REUSE_KEY: checkpoint, images, preprocessing), and where
    and how PyTorch computed them (device, batch size, versions: reported, not compared)."""
    return {
        "format": STORE_FORMAT,
        "checkpoint_sha256": facts.sha256,
        "images": images_digest(root, samples),
        "preprocess": preprocess_digest(facts.preprocess),
        "n_images": len(samples),
        "device": device,
        "batch_size": batch_size,
        "torch": _torch_version(),
        "mgc_edge": __version__,
    }


def reference_logits(
    checkpoint: Checkpoint,
    options: VerifyOptions,
    model: nn.Module | None = None,
    sha256: str | None = None,
) -> Reference:
    """The checkpoint's logits in eval mode in true fp32 (on the CPU, or on the GPU with TF32 off where
    the check runs on CUDA), fed by preprocess() with its own spec. `model` (checkpoint.build(), left on the
    CPU afterwards) and `sha256` save an export building and hashing them twice."""
    import torch

    facts = CheckpointFacts.of(checkpoint, sha256)
    root, samples, source = check_images(facts, options)
    device = reference_device(options.device)
    key = reference_key(facts, root, samples, device, options.batch_size)  # before reading: no race
    net = (model if model is not None else checkpoint.build()).to(device)
    outs = []
    try:
        with torch.inference_mode(), true_fp32():
            for frames in image_batches(root, samples, options.batch_size):
                x = torch.from_numpy(preprocess(frames, checkpoint.preprocess)).to(device)
                outs.append(net(x).float().cpu().numpy())
    finally:
        net.to("cpu")
    return Reference(facts, root, tuple(samples), source, np.concatenate(outs), device, key)


# --- the store ------------------------------------------------------------------------------------------


def reference_path_for(model: str | Path) -> Path:
    """model.fp16.onnx -> model.fp16.reference.npz, beside it (and beside its report)."""
    model = Path(model)
    stem = model.name[: -len(".onnx")] if model.name.endswith(".onnx") else model.name
    return model.with_name(stem + STORE_SUFFIX)


def save_reference(reference: Reference, path: str | Path) -> None:
    """Write the logits, their key and the checkpoint's facts atomically (a crash leaves no half file)."""
    header = {"key": dict(reference.key), "checkpoint": reference.checkpoint.to_dict()}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, logits=reference.logits.astype(np.float32), header=np.array(json.dumps(header)))


def load_reference(
    model: str | Path, checkpoint: str | Path, options: VerifyOptions
) -> tuple[Reference | None, str]:
    """The reference stored beside `model` when it holds what PyTorch would compute now for `checkpoint` and
    `options` (REUSE_KEY), else None; and a clause saying why, for the user ("reusing ..." when reused; else
    what follows "because")."""
    path = reference_path_for(model)
    ckpt = Path(checkpoint)
    ckpt = ckpt / rundir.BEST if ckpt.is_dir() else ckpt
    if not ckpt.is_file():
        raise CheckpointMissingError(f"Checkpoint {ckpt} does not exist.")
    if not path.is_file():
        return None, f"there is no stored reference beside the model (export writes {path.name})"
    try:
        with np.load(path, allow_pickle=False) as z:
            logits = np.asarray(z["logits"], dtype=np.float32)
            header = json.loads(str(z["header"]))
        stored = dict(header["key"])
        facts = CheckpointFacts.from_dict(ckpt, file_sha256(ckpt), header["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None, f"the stored reference {path.name} is unreadable"
    if stored.get("format") != STORE_FORMAT:
        return None, (
            f"the stored reference {path.name} is in store format {stored.get('format')} and this mgc-edge "
            f"reads {STORE_FORMAT} (export again to renew it)"
        )
    if stored.get("checkpoint_sha256") != facts.sha256:
        return None, f"the stored reference {path.name} was made from another checkpoint than {ckpt}"
    root, samples, source = check_images(facts, options)
    key = reference_key(facts, root, samples, str(stored.get("device")), int(stored.get("batch_size") or 0))
    differs = [k for k in REUSE_KEY if stored.get(k) != key[k]]
    if differs:
        parts = " and ".join(_DIFFERS.get(k, k) for k in differs)
        return None, f"the stored reference {path.name} differs from this check in its {parts}"
    if logits.shape != (len(samples), len(facts.labels)):
        return None, f"the stored reference {path.name} holds logits of another shape, {logits.shape}"
    key.update({k: stored.get(k) for k in ("device", "batch_size", "torch", "mgc_edge")})
    device = str(stored.get("device") or "cpu")
    reference = Reference(facts, root, tuple(samples), source, logits, device, key, stored=path)
    made = f"torch {stored.get('torch') or '?'} on {device}, batch {stored.get('batch_size')}"
    return reference, f"reusing {path.name} (same checkpoint, images and preprocessing; made by {made})"
