"""Where a model runs: the device names a user gives, the execution providers they mean, and why a GPU
could not be used (which libraries are missing), asked without torch or the CUDA toolkit."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import onnxruntime as ort

from mgc_edge.errors import UserError

log = logging.getLogger(__name__)


CPU = "CPUExecutionProvider"


CUDA = "CUDAExecutionProvider"


TENSORRT = "TensorrtExecutionProvider"


DEVICES = ("auto", "cpu", "cuda", "tensorrt")


# Libraries the CUDA provider of onnxruntime-gpu links against (CUDA 13, cuDNN 9): named in the error
# when CUDA cannot start, so that the sentence says what is missing.
_CUDA_LIBRARIES = (
    ("cudart64_13.dll", "cublas64_13.dll", "cublasLt64_13.dll", "cudnn64_9.dll")
    if sys.platform == "win32"
    else ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcudnn.so.9")
)


_TENSORRT_LIBRARIES = ("nvinfer_10.dll",) if sys.platform == "win32" else ("libnvinfer.so.10",)


class DeviceError(UserError):
    """The device a user asked for cannot be used; the message is one sentence."""


def parse_device(device: str) -> tuple[str, int]:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'tensorrt' | 'tensorrt:N' -> (kind, CUDA device id)."""
    text = device.strip().lower()
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind not in ("cuda", "tensorrt") or not index.isdigit())):
        raise DeviceError(f"--device must be auto, cpu, cuda, cuda:N or tensorrt, got {device!r}.")
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
def preload_cuda_libraries() -> None:
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


def _unloadable(names: Sequence[str]) -> list[str]:
    """The shared libraries in `names` that this process cannot load (after preload_dlls)."""
    missing = []
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def cuda_problem() -> str:
    """What keeps CUDA from starting here, as a clause for the one-sentence error."""
    if cuda_device_count() == 0:
        return "no NVIDIA GPU or driver was found"
    missing = _unloadable(_CUDA_LIBRARIES)
    if missing:
        return (
            f"the CUDA 13 / cuDNN 9 libraries cannot be loaded ({', '.join(missing)}; "
            "`pip install 'onnxruntime-gpu[cuda,cudnn]'` brings them)"
        )
    return "the CUDA 13 / cuDNN 9 libraries or the GPU were refused (check the driver version)"


def tensorrt_problem() -> str:
    missing = _unloadable(_TENSORRT_LIBRARIES)
    if missing:
        return f"the TensorRT 10 libraries cannot be loaded ({', '.join(missing)})"
    return "TensorRT refused this model or GPU"


def gpu_runtime_available() -> bool:
    """Whether `--device auto` would run on a GPU here: ONNX Runtime's CUDA provider, an NVIDIA GPU and the
    CUDA 13 / cuDNN 9 libraries it needs (the demo picks the GPU's precision by this)."""
    if CUDA not in ort.get_available_providers() or cuda_device_count() == 0:
        return False
    preload_cuda_libraries()
    return not _unloadable(_CUDA_LIBRARIES)


def choose_providers(
    device: str, cuda_options: dict[str, object] | None = None, tf32: bool = False
) -> list[str | tuple[str, dict[str, object]]]:
    """Execution providers for `device`: TensorRT, then CUDA, then the CPU as far as asked (or where `auto`
    finds a GPU). `cudnn_conv_algo_search` defaults to HEURISTIC: EXHAUSTIVE benchmarks every convolution
    on the first frame, which makes a live loop start seconds late for a gain of a few percent. TF32 is off
    unless asked for: the CUDA provider's default (on) rounds fp32 convolutions and GEMMs to 10-bit
    mantissas, which moves probabilities by ~1e-3 and fails the fp32 parity gate."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    has_provider = CUDA in available
    if kind in ("cuda", "tensorrt") and not has_provider:
        raise DeviceError(
            f"--device {kind} needs onnxruntime-gpu, but this ONNX Runtime has no CUDA provider; install "
            "onnxruntime-gpu or use --device cpu."
        )
    if kind == "auto" and (not has_provider or cuda_device_count() == 0):
        return [CPU]
    cuda = {
        "device_id": index,
        "cudnn_conv_algo_search": "HEURISTIC",
        "use_tf32": "1" if tf32 else "0",
        **(cuda_options or {}),
    }
    providers: list[str | tuple[str, dict[str, object]]] = [(CUDA, cuda), CPU]
    if kind == "tensorrt":
        if TENSORRT not in available:
            raise DeviceError(
                "--device tensorrt needs an ONNX Runtime built with TensorRT (onnxruntime-gpu on Linux or "
                "Windows x86-64); use --device cuda."
            )
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mgc-edge" / "tensorrt"
        trt = {"device_id": index, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
        providers.insert(0, (TENSORRT, trt))
    return providers


def check_providers(
    kind: str, asked: Sequence[str | tuple[str, dict[str, object]]], running: Sequence[str]
) -> str | None:
    """Compare the providers that run with the ones asked for. An explicit `cuda` or `tensorrt` that ends
    elsewhere is an error naming what is missing; `auto` with a GPU that ends on the CPU returns the sentence
    to tell the user (None where everything runs as asked)."""
    first = asked[0] if isinstance(asked[0], str) else asked[0][0]
    if first == CPU or running[0] == first:
        return None
    if kind == "tensorrt":
        where = "CUDA" if running[0] == CUDA else "the CPU"
        raise DeviceError(
            f"ONNX Runtime could not start TensorRT ({tensorrt_problem()}) and would run on {where}; "
            "install TensorRT 10 or use --device cuda."
        )
    if kind == "cuda":
        raise DeviceError(
            f"ONNX Runtime could not start CUDA ({cuda_problem()}), so it would run on the CPU; fix "
            "that or use --device cpu."
        )
    return (
        f"A GPU is present but ONNX Runtime could not start CUDA ({cuda_problem()}); running on the "
        "CPU (pass --device cpu to silence this)."
    )
