"""The ONNX Runtime session every edge-side caller builds on: one exported .onnx file in, probabilities out.

It reads the labels and the exact preprocessing from the model's own `mgc_edge.*` metadata, so a box needs
nothing but the file. numpy, OpenCV and onnxruntime only: this module must NEVER import torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mgc_edge.config import PreprocessSpec
from mgc_edge.errors import UserError, first_line
from mgc_edge.labels import Labels
from mgc_edge.metadata import INPUT_NAME, OUTPUT_NAME, MetadataError, ModelMetadata
from mgc_edge.preprocess import PreprocessError, preprocess
from mgc_edge.runtime.iobinding import GRAPH_WARMUP_RUNS, BindingChoice, BoundRunner, PinnedPool, time_both

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
# What an int8 model costs through the CUDA provider, measured (benchmarks/RESULTS.md, H200, 224x224,
# batch 1 p50): int8 0.83 ms against fp16 0.32 and fp32 0.51. Its QDQ pairs run as extra kernels there.
INT8_ON_CUDA = (
    "int8 models run slower than fp16 and fp32 through ONNX Runtime's CUDA provider (0.83 ms against "
    "0.32 ms per frame at 224x224 on an H200); on a GPU use `mgc-edge export --precision fp16`."
)
BOUND_SIZES = 4  # batch sizes whose bound device buffers a Classifier keeps (the oldest is dropped first)
# Where the default `io_binding=None` times batch 1 plain and I/O bound at warm-up and keeps the faster.
AUTO_BINDING_DEVICES = ("cuda",)


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
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'tensorrt' | 'tensorrt:N' -> (kind, CUDA device id)."""
    text = device.strip().lower()
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind not in ("cuda", "tensorrt") or not index.isdigit())):
        raise DeviceError(f"--device must be auto, cpu, cuda, cuda:N or tensorrt, got {device!r}.")
    return kind, int(index or 0)


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def live_threads(reserve: float = 2.0) -> int:
    """Intra-op threads for a live loop: the usable cores less `reserve`, the cores that capture and decoding
    keep busy beside inference (measured by `runtime/cores.py`), rounded half up, at least one."""
    cores = usable_cores()
    return max(1, min(cores, math.floor(cores - reserve + 0.5)))


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


def _unloadable(names: Sequence[str]) -> list[str]:
    """The shared libraries in `names` that this process cannot load (after preload_dlls)."""
    missing = []
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def _cuda_problem() -> str:
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


def _tensorrt_problem() -> str:
    missing = _unloadable(_TENSORRT_LIBRARIES)
    if missing:
        return f"the TensorRT 10 libraries cannot be loaded ({', '.join(missing)})"
    return "TensorRT refused this model or GPU"


def gpu_runtime_available() -> bool:
    """Whether `--device auto` would run on a GPU here: ONNX Runtime's CUDA provider, an NVIDIA GPU and the
    CUDA 13 / cuDNN 9 libraries it needs (the demo picks the GPU's precision by this)."""
    if CUDA not in ort.get_available_providers() or cuda_device_count() == 0:
        return False
    _preload_cuda_libraries()
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


class Classifier:
    """An exported mgc-edge model, ready to classify BGR frames.

    Opening refuses a file without our metadata or with another input/output layout, and never falls
    back from a GPU to the CPU silently: ONNX Runtime itself does (it logs and runs on the CPU), so the
    providers that really run are read back. An explicit `cuda` or `tensorrt` that ends elsewhere is an
    error naming what is missing; `auto` with a GPU that ends on the CPU keeps going and says so in
    `fallback` (and one log warning).
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        threads: int = 0,
        spinning: bool = True,
        notify: Callable[[str], None] | None = None,
        tf32: bool = False,
        io_binding: bool | None = None,
        cuda_graph: bool | None = None,
        cuda_options: dict[str, object] | None = None,
        pinned: bool | None = None,
    ) -> None:
        """`threads`: intra-op threads, 0 = ONNX Runtime's default (all cores; a live loop passes
        `live_threads()`). `spinning=False` stops idle intra-op threads from busy-waiting between runs,
        which a loop with capture and drawing threads beside inference wants. `notify` receives the one
        sentence of an `auto` fallback (default: a log warning). `tf32` lets the CUDA provider round fp32
        math to TF32 (off: parity checks need true fp32). `io_binding=True` keeps each batch size's input and
        output bound on the device and `cuda_graph` (with it, on CUDA) replays batch 1 as a CUDA graph; False
        runs the plain `session.run`. None (the default): on CUDA, `warmup(1)` times batch 1 both ways and keeps
        the faster for batch 1 (`binding_choice`); other sizes run plain (bound, batch 32 took twice as long on
        an H200), and so does everything on other devices. On an H200 the plain path was the faster before the
        graph had a stream of its own (fp16, 224x224: 0.32 ms against 0.42; benchmarks/RESULTS.md), which
        depends on the GPU, the driver and the model. `cuda_options`: CUDA provider options over ours (the
        benchmark measures e.g. `prefer_nhwc` and `cudnn_conv_algo_search` with it). `pinned` (default: on a GPU
        without I/O binding) makes `preprocess()` and `input_array()` write into page-locked memory, from which
        ONNX Runtime's copy to the device is one DMA transfer (H200, fp16, 224x224: batch 1 0.32 ms against
        0.38, batch 32 28,900 images/s against 13,400)."""
        self._notify = notify
        self.path = Path(model)
        if not self.path.is_file():
            raise ModelFileError(f"Model file {self.path} does not exist.")
        kind, index = parse_device(device)
        self.requested = kind
        providers = choose_providers(device, cuda_options, tf32=tf32)
        wants_gpu = providers[0] != CPU
        if wants_gpu:
            _preload_cuda_libraries()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only; we report fallbacks ourselves
        ort.set_default_logger_severity(4 if wants_gpu else 3)  # provider load failures: we say it once
        self.session = self._open(options, providers)
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        self.threads = threads
        self.fallback: str | None = None  # the sentence `auto` said when a GPU ended up unused
        self._check_providers(kind, providers)
        self.metadata: ModelMetadata = ModelMetadata.from_props(
            dict(self.session.get_modelmeta().custom_metadata_map), source=str(self.path)
        )
        self._check_contract()
        on_gpu = self.device in ("cuda", "tensorrt")
        self.tf32 = tf32 and on_gpu
        self._runner: BoundRunner | None = None
        self._pinned: PinnedPool | None = None
        if (pinned if pinned is not None else not io_binding) and on_gpu:
            self._pinned = PinnedPool()
        self.binding_choice: BindingChoice | None = None  # what warmup(1) measured, where it chose
        self._candidate: Callable[[], BoundRunner] | None = None  # the runner warmup(1) times, not yet built
        if io_binding:
            self._runner = self._bound_runner(options, providers, index, cuda_graph)
        elif io_binding is None and self.device in AUTO_BINDING_DEVICES:
            self._candidate = lambda: self._bound_runner(options, providers, index, cuda_graph)

    def _bound_runner(
        self,
        options: ort.SessionOptions,
        providers: list[str | tuple[str, dict[str, object]]],
        index: int,
        cuda_graph: bool | None,
    ) -> BoundRunner:
        """The I/O-bound runner of this session, with batch 1 as a CUDA graph on CUDA unless `cuda_graph` is
        False."""
        on_gpu = self.device in ("cuda", "tensorrt")
        graph = None
        if (cuda_graph if cuda_graph is not None else True) and self.device == "cuda":
            cuda = dict(next(p[1] for p in providers if isinstance(p, tuple) and p[0] == CUDA))

            def graph(stream: int | None) -> ort.InferenceSession:
                # CUDA alone: a graph needs every node on the GPU and refuses the session otherwise. On the
                # runner's own stream where it has one (one synchronisation a call instead of three).
                own = {"user_compute_stream": str(stream)} if stream else {}
                # A refusal (an int8 model's CPU nodes) is logged by ONNX Runtime as an error, on stderr, at
                # every start; the runner says it once at info level instead.
                severity, options.log_severity_level = options.log_severity_level, 4
                try:
                    return self._open(options, [(CUDA, {**cuda, "enable_cuda_graph": "1", **own})])
                finally:
                    options.log_severity_level = severity

        return BoundRunner(
            self.session,
            "cuda" if on_gpu else "cpu",
            index if on_gpu else 0,
            INPUT_NAME,
            OUTPUT_NAME,
            self.num_classes,
            graph_session=graph,
            max_sizes=BOUND_SIZES,
        )

    def _open(
        self, options: ort.SessionOptions, providers: Sequence[str | tuple[str, dict[str, object]]]
    ) -> ort.InferenceSession:
        try:
            # ONNX Runtime prints its provider fallback banner with print(): keep stdout clean for results.
            with contextlib.redirect_stdout(io.StringIO()):
                return ort.InferenceSession(str(self.path), sess_options=options, providers=list(providers))
        except Exception as exc:  # InvalidProtobuf, InvalidGraph, NotImplemented, ... all mean "not usable"
            raise ModelFileError(
                f"{self.path} is not a model ONNX Runtime can load ({first_line(exc)})."
            ) from None

    def _check_providers(self, kind: str, asked: Sequence[str | tuple[str, dict[str, object]]]) -> None:
        """Compare the providers that run with the ones asked for: error for an explicit device, a warning
        (once, kept in `fallback`) for `auto`."""
        first = asked[0] if isinstance(asked[0], str) else asked[0][0]
        if first == CPU or self.providers[0] == first:
            return
        if kind == "tensorrt":
            where = "CUDA" if self.providers[0] == CUDA else "the CPU"
            raise DeviceError(
                f"ONNX Runtime could not start TensorRT ({_tensorrt_problem()}) and would run on {where}; "
                "install TensorRT 10 or use --device cuda."
            )
        if kind == "cuda":
            raise DeviceError(
                f"ONNX Runtime could not start CUDA ({_cuda_problem()}), so it would run on the CPU; fix "
                "that or use --device cpu."
            )
        self.fallback = (
            f"A GPU is present but ONNX Runtime could not start CUDA ({_cuda_problem()}); running on the "
            "CPU (pass --device cpu to silence this)."
        )
        if self._notify is not None:
            self._notify(self.fallback)
        else:
            log.warning("%s: %s", self.path.name, self.fallback)

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

    @cached_property
    def _names(self) -> tuple[str, ...]:
        """Every class's display name, by index."""
        return tuple(self.labels.display(i) for i in range(len(self.labels)))

    @property
    def spec(self) -> PreprocessSpec:
        return self.metadata.preprocess

    @property
    def num_classes(self) -> int:
        return len(self.metadata.labels)

    @property
    def device(self) -> str:
        """'tensorrt', 'cuda' or 'cpu': where the model actually runs."""
        first = self.providers[0] if self.providers else CPU
        return {TENSORRT: "tensorrt", CUDA: "cuda"}.get(first, "cpu")

    @property
    def provider(self) -> str:
        """The execution provider that runs the model (the first one ONNX Runtime kept)."""
        return self.providers[0] if self.providers else CPU

    @property
    def io_bound(self) -> bool:
        """Whether inputs and outputs are bound to buffers on the device (I/O binding; with the default
        `io_binding`, for batch 1 only)."""
        return self._runner is not None

    @property
    def graphed(self) -> bool:
        """Whether batch 1 runs as a captured CUDA graph (known after the first batch-1 run)."""
        return self._runner is not None and self._runner.graphed

    @property
    def streamed(self) -> bool:
        """Whether that graph runs on a stream of its own, synchronised once a call."""
        return self._runner is not None and self._runner.streamed

    @property
    def advice(self) -> tuple[str, ...]:
        """Sentences for the user about this model on this device (an int8 model on CUDA, say)."""
        if self.device == "cuda" and self.metadata.precision == "int8":
            return (INT8_ON_CUDA,)
        return ()

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
        runner = self._bound(x.shape[0])
        if runner is not None:
            return runner.run(x)
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return np.asarray(out, dtype=np.float32)

    def _bound(self, n: int) -> BoundRunner | None:
        """The I/O-bound runner where it serves batches of `n`: every size with `io_binding=True`, batch 1 only
        where the warm-up chose it (`binding_choice`)."""
        if self._runner is None or (self.binding_choice is not None and n != 1):
            return None
        return self._runner

    @property
    def pinned(self) -> bool:
        """Whether model inputs are made in page-locked memory (a GPU without I/O binding)."""
        return self._pinned is not None and self._pinned.available

    def input_array(self, n: int) -> np.ndarray:
        """An uninitialised float32 [n, 3, H, W] model input: page-locked where `pinned`, else plain memory.
        Its memory is reused only once the array and every view of it are gone."""
        shape = (n, 3, *self.spec.size)
        out = self._pinned.empty(shape) if self._pinned is not None and n else None
        return out if out is not None else np.empty(shape, np.float32)

    def preprocess(self, frames_bgr: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """The shared preprocess() with this model's spec; on a GPU straight into page-locked memory (the
        I/O binding's staging buffer, or `input_array()`), from which the device copies the batch once."""
        single = isinstance(frames_bgr, np.ndarray) and frames_bgr.ndim in (2, 3)
        return preprocess(frames_bgr, self.spec, out=self.input_buffer(1 if single else len(frames_bgr)))

    def input_buffer(self, n: int) -> np.ndarray | None:
        """The memory `preprocess()` writes a batch of `n` into: the I/O-bound runner's staging buffer where it
        serves that size (valid until a batch of another size), else page-locked memory on a GPU; None where a
        new array will do (the CPU)."""
        if not n:
            return None
        runner = self._bound(n)
        if runner is not None:
            return runner.staging((n, 3, *self.spec.size))
        return self.input_array(n) if self.pinned else None

    def predict(self, frames_bgr: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """One BGR uint8 frame or a batch of them -> probabilities [N, C], via the shared preprocess()."""
        return softmax(self.logits(self.preprocess(frames_bgr)))

    def classify(self, frames_bgr: np.ndarray | Sequence[np.ndarray], k: int = 1) -> list[Prediction]:
        """The top-k classes of each frame, with label ids, human names and probabilities."""
        return [self.top(p, k) for p in self.predict(frames_bgr)]

    def top(self, probs: np.ndarray, k: int = 1) -> Prediction:
        """The k most probable classes of one probability vector [C], best first (ties: lower index)."""
        k = max(1, min(k, self.num_classes))
        p = np.asarray(probs)
        order = np.argsort(-p, kind="stable")[:k]
        indices = order.tolist()  # the live loop calls this per frame: whole-array conversions, not per item
        ids, names = self.labels.ids, self._names
        return Prediction(
            indices=tuple(indices),
            ids=tuple([ids[i] for i in indices]),
            names=tuple([names[i] for i in indices]),
            probs=tuple(p[order].tolist()),
        )

    def warmup(self, batch_size: int = 1, runs: int = 2) -> float:
        """Forward passes on zeros so that the first real frame pays for neither allocation nor (on CUDA)
        kernel selection and graph capture; returns the seconds the first one took."""
        h, w = self.spec.size
        x = np.zeros((batch_size, 3, h, w), np.float32)
        start = time.perf_counter()
        self.logits(x)
        first = time.perf_counter() - start
        for _ in range(runs - 1):
            self.logits(x)
        if batch_size == 1 and self._candidate is not None:
            self._choose_binding()
        return first

    def _choose_binding(self) -> None:
        """Time batch 1 through the plain session and through the I/O-bound runner (its CUDA graph captured
        first), interleaved, each from the memory it preprocesses into; keep the runner where it is faster."""
        make, self._candidate = self._candidate, None  # one try
        assert make is not None
        x = np.random.default_rng(0).standard_normal((1, 3, *self.spec.size), dtype=np.float32)
        plain_x = self.input_array(1)
        plain_x[...] = x
        run = self.session.run
        (want,) = run([OUTPUT_NAME], {INPUT_NAME: plain_x})
        runner: BoundRunner | None = None
        try:
            runner = make()
            staged = runner.staging(x.shape)
            bound_x = staged if staged is not None else x.copy()
            bound_x[...] = x
            for _ in range(GRAPH_WARMUP_RUNS):
                got = runner.run(bound_x)
            if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
                raise RuntimeError("its logits differ from the plain session's")
        except Exception as exc:  # I/O binding refused or wrong here: the plain path, as by default
            log.info("batch 1 runs without I/O binding: %s", first_line(exc, 200))
            if runner is not None:
                runner.close()
            return
        bound = runner
        plain_ms, bound_ms = time_both(
            lambda: run([OUTPUT_NAME], {INPUT_NAME: plain_x}), lambda: bound.run(bound_x)
        )
        self.binding_choice = BindingChoice(plain_ms, bound_ms, runner.graphed, runner.streamed)
        if self.binding_choice.bound:
            self._runner = runner
        else:
            runner.close()

    def close(self) -> None:
        """Return page-locked host memory now rather than at exit; later calls run without I/O binding or
        page-locked inputs."""
        self._candidate = None  # a later warmup(1) binds nothing either
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._pinned is not None:
            self._pinned.close()
            self._pinned = None

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
