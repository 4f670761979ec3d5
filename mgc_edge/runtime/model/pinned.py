"""Page-locked (pinned) host memory through the CUDA runtime that ONNX Runtime already loaded: a model input
made there is copied to the device in one DMA transfer. numpy and ctypes only; never torch."""

from __future__ import annotations

import ctypes
import sys
import threading
import weakref
from collections import defaultdict
from functools import lru_cache

import numpy as np

_CUDART = "cudart64_13.dll" if sys.platform == "win32" else "libcudart.so.13"


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
