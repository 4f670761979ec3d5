"""The runtimes an exported model can run in, behind one small interface: a preprocessed float32 batch
[N, 3, H, W] in, float32 logits [N, C] out.

ONNX Runtime is the edge runtime (the base install; its side is the `Classifier`, which also reads the labels
and preprocessing from the file). OpenVINO and OpenCV's DNN module are what other edge boxes have: imported
only when asked for, so neither is a dependency. `verify --runtime` proves parity in the one a model will
actually run in. Before a model is handed to OpenVINO or OpenCV, its own `opset_import` is read (domains.py): a
file tied to ONNX Runtime is refused in our words, not in whatever the other runtime's version says. numpy and
the runtimes only: this module must NEVER import torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import onnxruntime as ort

from mgc_edge.errors import UserError
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.domains import private_imports

RUNTIMES = ("onnxruntime", "openvino", "opencv")
NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "opencv": "OpenCV's DNN module"}
_PACKAGES = {"openvino": "openvino", "opencv": "opencv-python"}


class RuntimeMissingError(UserError):
    """The runtime a user asked for is not installed; the message is one sentence."""


class BackendError(UserError):
    """A runtime refuses to load or run a model; the message is one sentence."""


class Backend(Protocol):
    """One model opened in one runtime."""

    runtime: str  # one of RUNTIMES
    version: str

    def logits(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 [N, 3, H, W], already preprocess()ed -> float32 logits [N, C]."""
        ...


def check_runtime(runtime: str) -> str:
    """The runtime name, or one sentence naming the choices."""
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}.")
    return runtime


# Where in their C++ sources OpenCV and OpenVINO raised: noise in a sentence for the user.
_SOURCE_REFS = re.compile(
    r"OpenCV\(\S+\) \S+:\d+: error: \([^)]*\)\s*|Exception from \S+:\d+:\s*"
    r"|Check '.*?' failed at \S+:\d+:\s*|^>\s*",
    re.M,
)


def _reason(exc: BaseException) -> str:
    """A runtime's (multi-line, C++) error message on one line, without source references, kept short."""
    text = getattr(exc, "err", "") or str(exc)  # cv2.error keeps the message proper in `err`
    return " ".join(_SOURCE_REFS.sub("", text).split())[:300] or type(exc).__name__


@dataclass(frozen=True)
class OnnxRuntimeBackend:
    """The Classifier's own ONNX Runtime session (the provider it chose: CPU, CUDA or TensorRT)."""

    classifier: Classifier
    runtime: ClassVar[str] = "onnxruntime"

    @property
    def version(self) -> str:
        return ort.__version__

    def logits(self, batch_nchw: np.ndarray) -> np.ndarray:
        return self.classifier.logits(batch_nchw)


class OpenVinoBackend:
    """OpenVINO's CPU device, in ACCURACY mode: the precision the file asks for. Its default on CPUs with
    bfloat16 units (AVX512_BF16, AMX) computes an fp32 model in bfloat16, which is a different model."""

    runtime = "openvino"

    def __init__(self, model: Path, ov: Any) -> None:
        self.path = model
        self.version = ov.get_version().split("-")[0]
        try:
            compiled = ov.Core().compile_model(str(model), "CPU", {"EXECUTION_MODE_HINT": "ACCURACY"})
        except Exception as exc:  # RuntimeError with the plugin's message: the model is not usable here
            raise BackendError(f"OpenVINO {self.version} cannot compile {model} ({_reason(exc)}).") from None
        self._request = compiled.create_infer_request()

    def logits(self, batch_nchw: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch_nchw, dtype=np.float32)
        try:
            self._request.infer([x])
        except Exception as exc:
            raise BackendError(f"OpenVINO {self.version} cannot run {self.path} ({_reason(exc)}).") from None
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32)  # a copy: reused buffer


class OpenCvBackend:
    """OpenCV's DNN module (`cv2.dnn.readNetFromONNX`, its default engine), on the CPU."""

    runtime = "opencv"

    def __init__(self, model: Path, cv2: Any) -> None:
        self.path = model
        self.version = cv2.__version__
        self._error = cv2.error
        if int(self.version.split(".")[0]) < 5:
            raise BackendError(
                f"OpenCV {self.version}'s DNN module cannot read every model that export writes (OpenCV 4 has no "
                "GatherND, which AdaptiveAvgPool2d becomes below 223 pixels), so --runtime opencv needs OpenCV 5 "
                "or later (`pip install 'opencv-python>=5'`)."
            )
        log = cv2.utils.logging
        level = log.getLogLevel()
        log.setLogLevel(
            log.LOG_LEVEL_SILENT
        )  # its parser's fallback notes; a refusal is raised and said once
        try:
            self._net = cv2.dnn.readNetFromONNX(str(model))
        except cv2.error as exc:
            raise BackendError(f"OpenCV {self.version} cannot read {model} ({_reason(exc)}).") from None
        finally:
            log.setLogLevel(level)

    def logits(self, batch_nchw: np.ndarray) -> np.ndarray:
        # OpenCV reports some unsupported graphs only at the first forward pass.
        try:
            self._net.setInput(np.ascontiguousarray(batch_nchw, dtype=np.float32))
            out = self._net.forward()
        except self._error as exc:
            raise BackendError(f"OpenCV {self.version} cannot run {self.path} ({_reason(exc)}).") from None
        return np.array(out, dtype=np.float32)


def _import(runtime: str) -> Any:
    """The runtime's Python module, or one sentence saying how to install it."""
    try:
        return __import__("cv2" if runtime == "opencv" else runtime)
    except ImportError:
        raise RuntimeMissingError(
            f"{NAMES[runtime]} is not installed here (`pip install {_PACKAGES[runtime]}` brings it), so the "
            "model cannot be checked in it; --runtime onnxruntime needs nothing more."
        ) from None


def check_portable(model: Path, runtime: str) -> None:
    """One sentence if the model imports an operator domain that only ONNX Runtime runs (com.microsoft, ...):
    said before `runtime` sees the file, whatever its version would answer."""
    private = private_imports(model)
    if private:
        domains = f"domain{'s' if len(private) > 1 else ''} {', '.join(private)}"
        raise BackendError(
            f"{model} imports the operator {domains}, which only ONNX Runtime runs, so {NAMES[runtime]} "
            "cannot load it; `mgc-edge export` writes a portable file (the standard ONNX domains only)."
        )


def open_backend(runtime: str, classifier: Classifier) -> Backend:
    """The model `classifier` was opened from, in `runtime`. The classifier (ONNX Runtime) has already read
    the model's metadata and checked its inputs and outputs; ONNX Runtime itself runs in the classifier."""
    check_runtime(runtime)
    if runtime == "onnxruntime":
        return OnnxRuntimeBackend(classifier)
    check_portable(classifier.path, runtime)
    module = _import(runtime)
    if runtime == "openvino":
        return OpenVinoBackend(classifier.path, module)
    return OpenCvBackend(classifier.path, module)
