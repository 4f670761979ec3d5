"""Device-resident inputs and outputs for an ONNX Runtime session: I/O binding, page-locked staging and a
CUDA graph for batch 1.

A plain `session.run` on the CUDA provider allocates the input on the device, copies it from pageable host
memory, runs, allocates the output and copies it back, every call. Here each batch size gets its input and
output once, on the device, bound to the session: a call is one copy in (from page-locked memory where the
caller preprocessed into `staging()`), the kernels, and one small copy out. Batch 1 on CUDA also runs as a
CUDA graph (a second session with `enable_cuda_graph`): its kernels are replayed by one launch instead of
being launched one by one. Any of this that the machine refuses falls back to the plain path it replaces.

Opt-in (`Classifier(io_binding=True)`): measured on an H200 with ONNX Runtime 1.31 it was slower than the
plain path at batch 1 (fp16, 224x224: 0.42 ms against 0.32, with or without the graph; benchmarks/RESULTS.md),
most likely because `update_inplace`, `run_with_iobinding` and `.numpy()` each synchronise the device where
`session.run` does so once. The benchmark keeps measuring both (`ort_fp16_bound` against `ort_fp16`). What the
plain path takes from here is `PinnedPool`: its inputs made in page-locked memory.

numpy, ctypes and onnxruntime only: this module must NEVER import torch.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

_CUDART = "cudart64_13.dll" if sys.platform == "win32" else "libcudart.so.13"
GRAPH_WARMUP_RUNS = 3  # ONNX Runtime runs a graph-enabled session normally twice, then captures


@lru_cache(maxsize=1)
def _cudart() -> ctypes.CDLL | None:
    """The CUDA runtime that ONNX Runtime's CUDA provider already loaded (None where there is none)."""
    try:
        return ctypes.CDLL(_CUDART)
    except OSError:
        return None


class _PinnedBlock:
    """One page-locked allocation, exposed to numpy through the array interface: an array made from it keeps
    it alive, so the block goes back to its pool only when the last view of that array is gone."""

    def __init__(self, ptr: int, nbytes: int, shape: tuple[int, ...]) -> None:
        self.ptr, self.nbytes = ptr, nbytes
        self.__array_interface__ = {"shape": shape, "typestr": "<f4", "data": (ptr, False), "version": 3}


class PinnedPool:
    """float32 arrays in page-locked host memory, for model inputs on a GPU (the plain `session.run` path's and
    the bound path's staging): from page-locked memory the copy to the device is one DMA transfer instead of the
    driver's staging through a bounce buffer. Blocks are reused by size. An array is never handed out twice
    while any view of it lives (a frame a source preprocessed ahead and still holds keeps its block), so
    callers need no lifetime rules. `empty()` gives None where page-locked memory cannot be had."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep  # free blocks kept per size; more are returned to the driver
        self._free: defaultdict[int, list[int]] = defaultdict(list)
        self._lock = threading.Lock()
        self._lib = _cudart()
        self.available = self._lib is not None

    def empty(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self.available:
            return None
        nbytes = max(4, int(np.prod(shape)) * 4)
        with self._lock:
            ptr = self._free[nbytes].pop() if self._free[nbytes] else None
        if ptr is None:
            raw = ctypes.c_void_p()
            if self._lib.cudaHostAlloc(ctypes.byref(raw), ctypes.c_size_t(nbytes), 0) != 0:
                self.available = False  # said once by the caller's fallback: plain memory from now on
                return None
            ptr = raw.value
        block = _PinnedBlock(ptr, nbytes, tuple(shape))
        weakref.finalize(block, self._release, ptr, nbytes).atexit = False
        return np.asarray(block)

    def _release(self, ptr: int, nbytes: int) -> None:
        with self._lock:
            if len(self._free[nbytes]) < self.keep:
                self._free[nbytes].append(ptr)
                return
        self._lib.cudaFreeHost(ctypes.c_void_p(ptr))

    def close(self) -> None:
        """Return the free blocks to the driver; arrays still alive keep theirs until they die, and then
        return them to the driver too."""
        with self._lock:
            self.keep = 0
            blocks = [p for ptrs in self._free.values() for p in ptrs]
            self._free.clear()
        for ptr in blocks:
            self._lib.cudaFreeHost(ctypes.c_void_p(ptr))


@dataclass
class _Slot:
    """One batch size's bound input and output (and its page-locked staging buffer, where there is one)."""

    x: ort.OrtValue
    y: ort.OrtValue
    binding: ort.IOBinding
    session: ort.InferenceSession
    staging: np.ndarray | None = None  # from the runner's PinnedPool: back to it once no view of it is left


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
        graph_session: Callable[[], ort.InferenceSession] | None = None,
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

    @property
    def graphed(self) -> bool:
        """Whether batch 1 runs as a captured CUDA graph."""
        return self._graph is not None

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
            return None
        if self._graph is None:
            factory, self._graph_factory = self._graph_factory, None  # one try
            slot = None
            try:
                slot = self._new_slot(factory(), shape)
                slot.x.update_inplace(np.zeros(shape, np.float32))
                for _ in range(GRAPH_WARMUP_RUNS):  # the regular runs and the capture
                    slot.session.run_with_iobinding(slot.binding)
            except Exception as exc:  # a node outside CUDA, an old driver: batch 1 runs without a graph
                self.graph_error = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
                log.info("batch 1 runs without a CUDA graph: %s", self.graph_error)
                return None
            self._graph = slot
        return self._graph if self._graph.x.shape() == list(shape) else None

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
            slot.x.update_inplace(x)
            slot.session.run_with_iobinding(slot.binding)
            return slot.y.numpy()

    def close(self) -> None:
        """Return the page-locked memory (the runner must not be used afterwards; a staging array still
        held elsewhere returns its block when it dies)."""
        with self._lock:
            self._slots.clear()
            self._graph = None
        if self._pinned is not None:
            self._pinned.close()
