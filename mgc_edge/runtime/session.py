"""The ONNX Runtime session every edge-side caller builds on: one exported .onnx file in, probabilities out.

It reads the labels and the exact preprocessing from the model's own `mgc_edge.*` metadata, so a box needs
nothing but the file. numpy, OpenCV and onnxruntime only: this module must NEVER import torch.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mgc_edge.config import PreprocessSpec
from mgc_edge.errors import UserError
from mgc_edge.labels import Labels
from mgc_edge.metadata import INPUT_NAME, OUTPUT_NAME, MetadataError, ModelMetadata
from mgc_edge.preprocess import PreprocessError, preprocess

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


class ModelFileError(UserError):
    """A model file is missing or is not a readable ONNX model; the message is one sentence."""


class DeviceError(UserError):
    """The device a user asked for cannot be used; the message is one sentence."""


@dataclass(frozen=True)
class Prediction:
    """The top classes of one frame, best first."""

    indices: tuple[int, ...]
    ids: tuple[str, ...]  # folder names
    names: tuple[str, ...]  # human names where known, else the folder names
    probs: tuple[float, ...]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits; the one used by verify and the runtime alike."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def parse_device(device: str) -> tuple[str, int]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> (kind, CUDA device id)."""
    text = device.strip().lower()
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}.")
    return kind, int(index or 0)


@lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """GPUs the NVIDIA driver reports, asked through the driver library itself (no torch, no CUDA toolkit).

    `onnxruntime-gpu` lists its CUDA provider on every machine, GPU or not, so `auto` needs this to avoid
    trying (and loudly failing) CUDA on a CPU-only box. Any failure means no usable GPU: 0.
    """
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:
            return 0
        return int(count.value)
    return 0


@lru_cache(maxsize=1)
def _preload_cuda_libraries() -> None:
    """Load the CUDA / cuDNN libraries that pip installed (with torch or onnxruntime-gpu[cuda,cudnn]).

    Called once, before the first CUDA session; a failure only means the system libraries are used.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # missing packages or an older layout: let ONNX Runtime search as usual
        log.debug("onnxruntime.preload_dlls() failed: %s", exc)


def choose_providers(device: str) -> list[str | tuple[str, dict[str, object]]]:
    """Execution providers for `device`, CUDA first where asked (or where `auto` finds a GPU)."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return [CPU]
    has_provider = CUDA in ort.get_available_providers()
    if kind == "cuda" and not has_provider:
        raise DeviceError(
            "--device cuda needs onnxruntime-gpu, but this ONNX Runtime has no CUDA provider; install "
            "onnxruntime-gpu or use --device cpu."
        )
    if kind == "auto" and (not has_provider or cuda_device_count() == 0):
        return [CPU]
    return [(CUDA, {"device_id": index}), CPU]


class Classifier:
    """An exported mgc-edge model, ready to classify BGR frames.

    Opening refuses a file without our metadata or with another input/output layout, and never falls
    back from CUDA to the CPU silently: `device="cuda"` that cannot start CUDA is an error, `auto` with
    a GPU that ends up on the CPU logs a warning.
    """

    def __init__(self, model: str | Path, device: str = "auto", threads: int = 0) -> None:
        self.path = Path(model)
        if not self.path.is_file():
            raise ModelFileError(f"Model file {self.path} does not exist.")
        kind, _ = parse_device(device)
        providers = choose_providers(device)
        wants_cuda = providers[0] != CPU
        if wants_cuda:
            _preload_cuda_libraries()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only; we report fallbacks ourselves
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # InvalidProtobuf, InvalidGraph, NotImplemented, ... all mean "not usable"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(
                f"{self.path} is not a model ONNX Runtime can load ({reason[:300]})."
            ) from None
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        if wants_cuda and CUDA not in self.providers:
            if kind == "cuda":
                raise DeviceError(
                    "ONNX Runtime could not start CUDA (check the NVIDIA driver and the CUDA 13 / cuDNN 9 "
                    "libraries, e.g. `pip install onnxruntime-gpu[cuda,cudnn]`), or use --device cpu."
                )
            log.warning(
                "A GPU is present but ONNX Runtime could not start CUDA for %s; running on the CPU "
                "(check the CUDA 13 / cuDNN 9 libraries, or pass --device cpu to silence this).",
                self.path.name,
            )
        self.metadata: ModelMetadata = ModelMetadata.from_props(
            dict(self.session.get_modelmeta().custom_metadata_map), source=str(self.path)
        )
        self._check_contract()

    def _check_contract(self) -> None:
        """The input/output names and shapes the rest of mgc-edge relies on (DESIGN.md, 'ONNX model')."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        h, w = self.metadata.preprocess.size
        n_classes = len(self.metadata.labels)
        problem = None
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            problem = f"one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}"
        elif inputs[0].type != "tensor(float)":
            problem = f"a float32 input, got {inputs[0].type}"
        elif not _shape_fits(inputs[0].shape, (None, 3, h, w)):
            problem = f"input shape [N, 3, {h}, {w}], got {inputs[0].shape}"
        elif len(outputs) != 1 or outputs[0].name != OUTPUT_NAME:
            problem = f"one output named {OUTPUT_NAME!r}, got {[o.name for o in outputs]}"
        elif not _shape_fits(outputs[0].shape, (None, n_classes)):
            problem = f"output shape [N, {n_classes}], got {outputs[0].shape}"
        if problem:
            raise MetadataError(f"{self.path} does not follow the mgc-edge model layout: it needs {problem}.")

    @property
    def labels(self) -> Labels:
        return self.metadata.labels

    @property
    def spec(self) -> PreprocessSpec:
        return self.metadata.preprocess

    @property
    def num_classes(self) -> int:
        return len(self.metadata.labels)

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where the model actually runs."""
        return "cuda" if self.providers and self.providers[0] == CUDA else "cpu"

    def logits(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 [N, 3, H, W] (already preprocessed) -> float32 logits [N, C]."""
        x = np.asarray(batch_nchw)
        h, w = self.spec.size
        if x.ndim != 4 or x.shape[1:] != (3, h, w) or not np.issubdtype(x.dtype, np.floating):
            raise PreprocessError(
                f"The model needs a float32 batch [N, 3, {h}, {w}], got {x.dtype} {tuple(x.shape)}."
            )
        if x.shape[0] == 0:
            return np.zeros((0, self.num_classes), np.float32)
        x = np.ascontiguousarray(x, dtype=np.float32)
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return np.asarray(out, dtype=np.float32)

    def predict(self, frames_bgr: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """One BGR uint8 frame or a batch of them -> probabilities [N, C], via the shared preprocess()."""
        return softmax(self.logits(preprocess(frames_bgr, self.spec)))

    def classify(self, frames_bgr: np.ndarray | Sequence[np.ndarray], k: int = 1) -> list[Prediction]:
        """The top-k classes of each frame, with label ids, human names and probabilities."""
        probs = self.predict(frames_bgr)
        k = max(1, min(k, self.num_classes))
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            Prediction(
                indices=tuple(int(i) for i in row),
                ids=tuple(self.labels.ids[i] for i in row),
                names=tuple(self.labels.display(int(i)) for i in row),
                probs=tuple(float(p[i]) for i in row),
            )
            for row, p in zip(top, probs)
        ]

    def warmup(self, batch_size: int = 1) -> None:
        """One forward pass on zeros, so that the first real frame does not pay for allocation and tuning."""
        h, w = self.spec.size
        self.logits(np.zeros((batch_size, 3, h, w), np.float32))

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"Classifier({self.path.name}, arch={m.arch}, precision={m.precision}, "
            f"classes={self.num_classes}, size={m.preprocess.size}, providers={list(self.providers)})"
        )


def _shape_fits(shape: Sequence[object], want: Sequence[int | None]) -> bool:
    """An ONNX Runtime shape (ints for fixed dims, strings or None for symbolic ones) against the wanted
    one, where None accepts anything (the dynamic batch axis)."""
    if len(shape) != len(want):
        return False
    return all(w is None or not isinstance(s, int) or s == w for s, w in zip(shape, want))
