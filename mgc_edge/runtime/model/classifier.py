"""The ONNX Runtime session every edge-side caller builds on: one exported .onnx file in, logits out.

It reads the labels and the exact preprocessing from the model's own `mgc_edge.*` metadata, so a box needs
nothing but the file; it checks the model's layout and the providers that really run, and makes inputs in the
memory the device copies from fastest. numpy, OpenCV and onnxruntime only: this module must NEVER import torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mgc_edge.config import PreprocessSpec
from mgc_edge.errors import UserError, first_line
from mgc_edge.labels import Labels
from mgc_edge.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from mgc_edge.preprocess import PreprocessError, preprocess
from mgc_edge.runtime import host
from mgc_edge.runtime.model import devices
from mgc_edge.runtime.model.binding import GRAPH_WARMUP_RUNS, BindingChoice, BoundRunner, time_both
from mgc_edge.runtime.model.contract import check_contract
from mgc_edge.runtime.model.devices import CPU, CUDA, TENSORRT, choose_providers, parse_device
from mgc_edge.runtime.model.pinned import PinnedPool
from mgc_edge.runtime.model.scores import Prediction, display_names, prediction, softmax

log = logging.getLogger(__name__)


# Said to the user of an int8 model on the CUDA provider, where its QDQ pairs run as extra kernels (the
# sentence quotes the measured figures of benchmarks/RESULTS.md).
INT8_ON_CUDA = (
    "int8 models run slower than fp16 and fp32 through ONNX Runtime's CUDA provider (0.83 ms against "
    "0.32 ms per frame at 224x224 on an H200); on a GPU use `mgc-edge export --precision fp16`."
)


BOUND_SIZES = 4  # batch sizes whose bound device buffers a Classifier keeps (the oldest is dropped first)


# Where the default `io_binding=None` times batch 1 plain and I/O bound at warm-up and keeps the faster.
AUTO_BINDING_DEVICES = ("cuda",)


class ModelFileError(UserError):
    """A model file is missing or is not a readable ONNX model; the message is one sentence."""


def session_options(threads: int, spinning: bool | str) -> ort.SessionOptions:
    """Every optimisation at load time, `threads` intra-op threads (0: ONNX Runtime's default), idle threads
    waiting as `spinning` says (`host.SPINNING`), errors only in ONNX Runtime's log (fallbacks are said by us)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        options.intra_op_num_threads = threads
    for key, value in host.SPIN_ENTRIES[host.spin_mode(spinning)].items():
        options.add_session_config_entry(key, value)
    options.log_severity_level = 3
    return options


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
        spinning: bool | str = "on",
        notify: Callable[[str], None] | None = None,
        tf32: bool = False,
        io_binding: bool | None = None,
        cuda_graph: bool | None = None,
        cuda_options: dict[str, object] | None = None,
        pinned: bool | None = None,
    ) -> None:
        """`threads`: intra-op threads, 0 = ONNX Runtime's default (all cores; a live loop passes
        `live_threads()`). `spinning`: how idle intra-op threads wait, one of `host.SPINNING`
        (True is "on", False "off"); a loop with capture and drawing threads beside inference passes
        `host.LIVE_SPINNING`. `notify` receives the one
        sentence of an `auto` fallback (default: a log warning). `tf32` lets the CUDA provider round fp32
        math to TF32 (off: parity checks need true fp32). `io_binding=True` keeps each batch size's input and
        output bound on the device and `cuda_graph` (with it, on CUDA) replays batch 1 as a CUDA graph; False
        runs the plain `session.run`. None (the default): on CUDA, `warmup(1)` times batch 1 both ways and keeps
        the faster for batch 1 (`binding_choice`): which wins depends on the GPU, the driver and the model;
        other sizes run plain (bound, large batches were slower), and so does everything on other devices.
        `cuda_options`: CUDA provider options over ours (the benchmark measures e.g. `prefer_nhwc` and
        `cudnn_conv_algo_search` with it). `pinned` (default: on a GPU without I/O binding) makes `preprocess()`
        and `input_array()` write into page-locked memory, from which ONNX Runtime's copy to the device is one
        DMA transfer (figures in benchmarks/RESULTS.md)."""
        self._notify = notify
        self.path = Path(model)
        if not self.path.is_file():
            raise ModelFileError(f"Model file {self.path} does not exist.")
        kind, index = parse_device(device)
        self.requested = kind
        providers = choose_providers(device, cuda_options, tf32=tf32)
        wants_gpu = providers[0] != CPU
        if wants_gpu:
            devices.preload_cuda_libraries()
        options = session_options(threads, spinning)
        ort.set_default_logger_severity(4 if wants_gpu else 3)  # provider load failures: we say it once
        self.session = self._open(options, providers)
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        self.threads = threads
        self.spinning = host.spin_mode(spinning)
        self._check_providers(kind, providers)
        self.metadata: ModelMetadata = ModelMetadata.from_props(
            dict(self.session.get_modelmeta().custom_metadata_map), source=str(self.path)
        )
        check_contract(self.session, self.metadata, self.path)
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
        """An explicit device that ends elsewhere is an error (`devices.check_providers`); `auto` that ends on
        the CPU says so once and keeps the sentence in `fallback`."""
        self.fallback = devices.check_providers(kind, asked, self.providers)
        if self.fallback is None:
            return
        if self._notify is not None:
            self._notify(self.fallback)
        else:
            log.warning("%s: %s", self.path.name, self.fallback)

    @property
    def labels(self) -> Labels:
        return self.metadata.labels

    @cached_property
    def _names(self) -> tuple[str, ...]:
        return display_names(self.labels)

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

    def prepare_one(self, image: np.ndarray) -> np.ndarray:
        """One frame's model input [3, H, W] as an array of its own (page-locked on a GPU), never a buffer that
        the next frame overwrites while this one waits: what a source's thread makes ahead of the model."""
        return preprocess(image, self.spec, out=self.input_array(1))[0]

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

    def top(self, probs: np.ndarray, k: int = 1) -> Prediction:
        """The k most probable classes of one probability vector [C], best first (ties: lower index)."""
        return prediction(probs, k, self.labels.ids, self._names)

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
