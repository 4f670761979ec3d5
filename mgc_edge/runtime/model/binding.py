"""Device-resident inputs and outputs for an ONNX Runtime session: I/O binding, page-locked staging and a
CUDA graph for batch 1.

A plain `session.run` on the CUDA provider allocates the input on the device, copies it from pageable host
memory, runs, allocates the output and copies it back, every call. Here each batch size gets its input and
output once, on the device, bound to the session: a call is one copy in (from page-locked memory where the
caller preprocessed into `staging()`), the kernels, and one small copy out. Batch 1 on CUDA also runs as a
CUDA graph (a second session with `enable_cuda_graph`): its kernels are replayed by one launch instead of
being launched one by one. Any of this that the machine refuses falls back to the plain path it replaces.

Where `update_inplace`, `run_with_iobinding` and `.numpy()` each synchronise the device (`session.run` does so
once), binding can be slower than the plain path at batch 1 (figures in benchmarks/RESULTS.md). So the
batch-1 graph runs on a stream of its own (`_Stream`, the session's `user_compute_stream`): copy in,
replay, copy out, all queued on it, then one synchronise; checked against the plain session when the graph is
built, and without it (three synchronisations) where that fails. Which is faster depends on the GPU, its
driver and the model, so on CUDA `Classifier.warmup(1)` times batch 1 both ways (`time_both`) and keeps the
faster (`BindingChoice`); `Classifier(io_binding=True)` binds every batch size. What the plain path takes from
here is `PinnedPool`: its inputs made in page-locked memory.

numpy, ctypes and onnxruntime only: this module must NEVER import torch.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from mgc_edge.errors import first_line
from mgc_edge.runtime.model.pinned import PinnedPool, _cudart

log = logging.getLogger(__name__)


GRAPH_WARMUP_RUNS = 3  # ONNX Runtime runs a graph-enabled session normally twice, then captures


_HOST_TO_DEVICE, _DEVICE_TO_HOST, _NON_BLOCKING = 1, 2, 1  # cudaMemcpyKind, cudaStreamNonBlocking


@dataclass
class _Slot:
    """One batch size's bound input and output (and its page-locked staging buffer, where there is one)."""

    x: ort.OrtValue
    y: ort.OrtValue
    binding: ort.IOBinding
    session: ort.InferenceSession
    staging: np.ndarray | None = None  # from the runner's PinnedPool: back to it once no view of it is left


class _Stream:
    """A CUDA stream of our own for the batch-1 graph session (its `user_compute_stream`): the input is copied
    in, the graph replayed and the logits copied out on it, all queued, then ONE synchronise. The bound path
    otherwise synchronises three times a call (`update_inplace`, the run, `.numpy()`), which is what made it
    slower than the plain `session.run` where it was measured. Not destroyed: the session may outlive the runner's
    references to it, and a stream is a few bytes of the driver's."""

    def __init__(self, lib: Any, out: np.ndarray) -> None:
        self.lib, self.out = lib, out  # out: batch 1's logits [1, C], copied out here (page-locked on a GPU)
        handle = ctypes.c_void_p()
        if lib.cudaStreamCreateWithFlags(ctypes.byref(handle), _NON_BLOCKING) != 0 or not handle.value:
            raise RuntimeError("cudaStreamCreateWithFlags failed")
        self.handle = handle.value
        self.nosync = ort.RunOptions()
        self.nosync.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"{what} failed (CUDA error {code})")

    def run(self, slot: _Slot, x: np.ndarray) -> np.ndarray:
        """Logits of `x` through the slot's graph session, on this stream, in `self.out` (overwritten by the
        next call)."""
        out = self.out
        lib, stream = self.lib, ctypes.c_void_p(self.handle)
        copy = lib.cudaMemcpyAsync
        x_ptr, y_ptr = ctypes.c_void_p(slot.x.data_ptr()), ctypes.c_void_p(slot.y.data_ptr())
        self._check(
            copy(x_ptr, ctypes.c_void_p(x.ctypes.data), ctypes.c_size_t(x.nbytes), _HOST_TO_DEVICE, stream),
            "copy in",
        )
        slot.session.run_with_iobinding(slot.binding, self.nosync)
        self._check(
            copy(
                ctypes.c_void_p(out.ctypes.data), y_ptr, ctypes.c_size_t(out.nbytes), _DEVICE_TO_HOST, stream
            ),
            "copy out",
        )
        self._check(lib.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return out


@dataclass(frozen=True)
class BindingChoice:
    """What `Classifier.warmup(1)` measured on a GPU: batch 1's median ms a call through the plain session and
    through the I/O-bound runner, and how the runner's batch 1 ran; the faster one serves batch 1."""

    plain_ms: float
    bound_ms: float
    graphed: bool
    streamed: bool

    @property
    def bound(self) -> bool:
        return self.bound_ms < self.plain_ms

    def describe(self) -> str:
        """For the start-up line: which path serves batch 1, measured against the other."""
        graph = (" as a CUDA graph" + (" on its own stream" if self.streamed else "")) if self.graphed else ""
        if self.bound:
            return f"batch 1 I/O bound{graph}: {self.bound_ms:.2f} ms against {self.plain_ms:.2f} plain"
        return f"batch 1 plain: {self.plain_ms:.2f} ms against {self.bound_ms:.2f} I/O bound{graph}"


def time_both(
    a: Callable[[], object], b: Callable[[], object], rounds: int = 5, calls: int = 20
) -> tuple[float, float]:
    """Median ms a call of `a` and of `b`, over `rounds` interleaved rounds of `calls` calls each: a GPU's
    clocks and the machine's load drift, and must hit both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, out in zip((a, b), times):
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    return float(np.median(times[0])) * 1000, float(np.median(times[1])) * 1000


class BoundRunner:
    """Runs `session` on float32 [N, 3, H, W] batches through I/O binding on `device` ("cuda" or "cpu").

    `graph_session`, when given, builds a CUDA-graph session that serves batch 1; if it cannot be built or
    its first runs fail, batch 1 runs like every other size (said once in the log). Thread-safe: the bound
    buffers are shared, so calls are serialised.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        device: str,
        device_id: int,
        input_name: str,
        output_name: str,
        num_classes: int,
        graph_session: Callable[[int | None], ort.InferenceSession] | None = None,
        max_sizes: int = 4,
    ) -> None:
        self.session = session
        self.device, self.device_id = device, device_id
        self.input_name, self.output_name = input_name, output_name
        self.num_classes = num_classes
        self.max_sizes = max_sizes
        self._slots: OrderedDict[tuple[int, ...], _Slot] = OrderedDict()
        self._graph_factory = graph_session
        self._graph: _Slot | None = None
        self.graph_error: str | None = None  # why batch 1 runs without a CUDA graph, once tried
        self._lock = threading.Lock()
        self._pinned = PinnedPool(keep=max_sizes) if device == "cuda" else None
        self._cuda = _cudart() if device == "cuda" else None  # for the graph's own stream
        self._stream: _Stream | None = None
        self.stream_error: str | None = None  # why the graph runs with three synchronisations, once tried

    @property
    def graphed(self) -> bool:
        """Whether batch 1 runs as a captured CUDA graph."""
        return self._graph is not None

    @property
    def streamed(self) -> bool:
        """Whether batch 1's graph runs on its own stream, synchronised once a call."""
        return self._graph is not None and self._stream is not None

    def _new_slot(self, session: ort.InferenceSession, shape: tuple[int, ...]) -> _Slot:
        x = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), np.float32, self.device, self.device_id)
        y = ort.OrtValue.ortvalue_from_shape_and_type(
            [shape[0], self.num_classes], np.float32, self.device, self.device_id
        )
        binding = session.io_binding()
        binding.bind_ortvalue_input(self.input_name, x)
        binding.bind_ortvalue_output(self.output_name, y)
        # None where page-locked memory cannot be had: pageable works too, with one more copy in the driver
        staging = self._pinned.empty(shape) if self._pinned is not None else None
        return _Slot(x, y, binding, session, staging)

    def _slot(self, shape: tuple[int, ...]) -> _Slot:
        slot = self._slots.get(shape)
        if slot is None:
            slot = self._slots[shape] = self._new_slot(self.session, shape)
            while len(self._slots) > self.max_sizes:  # a stream of odd batch sizes must not grow memory
                self._slots.popitem(last=False)
        self._slots.move_to_end(shape)
        return slot

    def _graph_slot(self, shape: tuple[int, ...]) -> _Slot | None:
        """The CUDA-graph slot for batch 1: built and captured on first use, None where it cannot be."""
        if shape[0] != 1 or self._graph_factory is None:
            return None if self._graph is None or self._graph.x.shape() != list(shape) else self._graph
        factory, self._graph_factory = self._graph_factory, None  # one try
        try:
            self._graph = self._build_graph(factory, shape)
        except Exception as exc:  # a node outside CUDA, an old driver: batch 1 runs without a graph
            self.graph_error = first_line(exc, 200)
            log.info("batch 1 runs without a CUDA graph: %s", self.graph_error)
            return None
        return self._graph

    def _build_graph(
        self, factory: Callable[[int | None], ort.InferenceSession], shape: tuple[int, ...]
    ) -> _Slot:
        """The graph session on a stream of our own where the driver gives one and the result checks out,
        else on ONNX Runtime's stream (three synchronisations a call); raises where neither can be had."""
        if self._cuda is not None:
            try:
                out = self._pinned.empty((1, self.num_classes)) if self._pinned is not None else None
                stream = _Stream(
                    self._cuda, out if out is not None else np.empty((1, self.num_classes), np.float32)
                )
                slot = self._warm(factory(stream.handle), shape, stream)
                self._check_stream(slot, stream)
                self._stream = stream
                return slot
            except Exception as exc:  # said once; the graph on ONNX Runtime's own stream is tried next
                self.stream_error = first_line(exc, 200)
                log.info("batch 1's CUDA graph runs without a stream of its own: %s", self.stream_error)
        return self._warm(factory(None), shape, None)

    def _warm(self, session: ort.InferenceSession, shape: tuple[int, ...], stream: _Stream | None) -> _Slot:
        """A slot of `session`, run the times ONNX Runtime needs to capture its graph."""
        slot = self._new_slot(session, shape)
        zeros = np.zeros(shape, np.float32)
        for _ in range(GRAPH_WARMUP_RUNS):  # the regular runs and the capture
            if stream is not None:
                stream.run(slot, zeros)
            else:
                slot.x.update_inplace(zeros)
                slot.session.run_with_iobinding(slot.binding)
        return slot

    def _check_stream(self, slot: _Slot, stream: _Stream) -> None:
        """The streamed call must give what the plain session gives on a new input, and what the bound output
        holds once synchronised: a copy queued out of order would hand back an older frame's logits."""
        x = np.random.default_rng(0).standard_normal(tuple(slot.x.shape()), np.float32)
        got = stream.run(slot, x).copy()
        (plain,) = self.session.run([self.output_name], {self.input_name: x})
        if not np.array_equal(got, slot.y.numpy()) or not np.allclose(got, plain, rtol=1e-2, atol=1e-2):
            raise RuntimeError("the streamed graph's logits differ from the plain session's")

    def staging(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A page-locked buffer to preprocess a batch of `shape` into (None where there is none); valid until
        the next call with another shape."""
        with self._lock:
            slot = self._graph_slot(shape) or self._slot(shape)
            return slot.staging

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits [N, C] of a C-contiguous float32 batch, copied in and out through the bound buffers."""
        shape = tuple(x.shape)
        with self._lock:
            slot = self._graph_slot(shape) or self._slot(shape)
            if slot is self._graph and self._stream is not None:
                return self._stream.run(slot, x).copy()
            slot.x.update_inplace(x)
            slot.session.run_with_iobinding(slot.binding)
            return slot.y.numpy()

    def close(self) -> None:
        """Return the page-locked memory (the runner must not be used afterwards; a staging array still
        held elsewhere returns its block when it dies)."""
        with self._lock:
            self._slots.clear()
            self._graph = self._stream = None
        if self._pinned is not None:
            self._pinned.close()
