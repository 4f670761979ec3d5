"""Batch sources for training and evaluation: each yields (model input, labels) already on the device.

`CachedBatches` reads uint8 images from the training cache (data/cache.py), gathers a batch, moves it to
the device and augments and normalises it there. On CUDA with the cache resident on the GPU, full batches
are gathered, augmented and normalised by replaying a CUDA graph on a side stream, one batch ahead of the
model (`GraphedBatches`): the host launches three small operations per batch instead of dozens of kernels,
which is what held a training step back (the step is bound by the host's kernel launches at 96x96).
`LoaderBatches` is the decode-every-epoch path: a DataLoader over `FrameDataset` with worker processes,
pinned memory and prefetching. Both draw their indices from the same (distributed) samplers, so under
torchrun each rank trains on its own shard.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.dataset import FrameDataset
from mgc_edge.errors import first_line
from mgc_edge.train.augment import (
    FUSE_FROM_PIXELS,
    UNIFORMS,
    BatchAugment,
    GatherAugment,
    fused,
    normalize_uint8,
    uniforms,
)

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # float32 [B, 3, H, W] normalised, int64 [B]
RESIDENT_FRACTION = 0.5  # a CUDA cache is copied to the GPU when it takes at most this part of free memory
PREFETCH = 3  # batches gathered ahead by the host thread when the cache stays in host memory on CUDA


class BatchSource(Protocol):
    """What the training loop and inference iterate over."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Batch]: ...

    def set_epoch(self, epoch: int) -> None: ...


def make_loader(
    dataset: FrameDataset,
    batch_size: int,
    workers: int,
    sampler: Any = None,
    persistent: bool = False,
) -> DataLoader:
    """The decode path's DataLoader: worker processes, pinned memory on CUDA, prefetching; `persistent`
    keeps the workers between epochs (worth it for a loader iterated every epoch)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        persistent_workers=persistent and workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


class LoaderBatches:
    """The decode-every-epoch path: a DataLoader's CPU batches moved to the device."""

    def __init__(self, loader: DataLoader, device: torch.device, channels_last: bool = False) -> None:
        self.loader = loader
        self.device = device
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        sampler = self.loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if isinstance(self.loader.dataset, FrameDataset):
            self.loader.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        for images, targets in self.loader:
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
            yield images, targets.to(self.device, non_blocking=True)


class CachedBatches:
    """Batches from cached uint8 images: indices from `sampler` (or in order), augmented by `augment` (or
    only normalised: then the images must be at the model size, and the result equals preprocess())."""

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int],
        spec: PreprocessSpec,
        batch_size: int,
        device: torch.device,
        sampler: Sampler[int] | None = None,
        augment: BatchAugment | None = None,
        seed: int = 0,
        rank: int = 0,
        channels_last: bool = False,
        resident: bool | None = None,
        graphs: bool | None = None,
        fuse: bool | None = None,
    ) -> None:
        """`resident` (default: on CUDA when it fits) copies the whole cache to the device; `graphs` (default:
        on CUDA when resident and augmenting) replays full batches as CUDA graphs; `fuse` (default: with graphs,
        for model inputs of FUSE_FROM_PIXELS and up) runs their gather and augmentation as one kernel
        (`fast_augment`)."""
        if augment is None and tuple(images.shape[1:3]) != spec.size:
            raise ValueError(f"un-augmented batches need images at {spec.size}, got {images.shape[1:3]}")
        self.images = images
        self.spec = spec
        self.batch_size = batch_size
        self.device = device
        self.sampler = sampler
        self.augment = augment
        self.seed, self.rank, self.epoch = seed, rank, 0
        self.channels_last = channels_last
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64)).to(device)
        self.resident = self._upload() if (resident is None and device.type == "cuda") or resident else None
        cuda_graphs = self.resident is not None and augment is not None and device.type == "cuda"
        self._graphs_wanted = cuda_graphs if graphs is None else graphs and cuda_graphs
        self._fuse = spec.size[0] * spec.size[1] >= FUSE_FROM_PIXELS if fuse is None else fuse
        self._graphed: GraphedBatches | None = None

    def _upload(self) -> torch.Tensor | None:
        """The whole cache on the device when it fits comfortably (no host gather or copy per batch),
        copied in chunks through one reused page-locked buffer."""
        nbytes = self.images.nbytes
        cuda = self.device.type == "cuda"
        if cuda:
            free, _ = torch.cuda.mem_get_info(self.device)
            if nbytes > RESIDENT_FRACTION * free:
                return None
        n = len(self.images)
        out = torch.empty(self.images.shape, dtype=torch.uint8, device=self.device)
        step = max(1, min(n, (64 << 20) // max(1, self.images[0].nbytes)))  # about 64 MiB per copy
        staging = torch.empty((step, *self.images.shape[1:]), dtype=torch.uint8, pin_memory=cuda)
        host = staging.numpy()  # writable: the read-only map is copied into it, never wrapped
        for i in range(0, n, step):
            k = min(step, n - i)
            host[:k] = self.images[i : i + k]
            out[i : i + k].copy_(staging[:k], non_blocking=cuda)
            if cuda:
                torch.cuda.current_stream(self.device).synchronize()  # the staging buffer is reused
        return out

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.images)
        return -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _generator(self) -> torch.Generator:
        """Augmentation draws depend on (seed, epoch, rank) only: a resumed run repeats them."""
        g = torch.Generator(device=self.device)
        g.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, self.rank]).generate_state(1)[0]))
        return g

    def _order(self) -> np.ndarray:
        if self.sampler is None:
            return np.arange(len(self.images), dtype=np.int64)
        return np.fromiter(self.sampler, np.int64)

    def _host_batches(self, order: np.ndarray) -> Iterator[torch.Tensor]:
        pin = self.device.type == "cuda"
        for s in range(0, len(order), self.batch_size):
            u8 = torch.from_numpy(self.images[order[s : s + self.batch_size]])  # a copy out of the map
            yield u8.pin_memory() if pin else u8

    def _graphs(self) -> GraphedBatches | None:
        """The CUDA-graph pipeline, captured on first use; None (the eager path) where capture fails."""
        if self._graphed is None and self._graphs_wanted:
            self._graphs_wanted = False  # one try
            assert self.resident is not None and self.augment is not None
            try:
                self._graphed = GraphedBatches(
                    self.resident, self.labels, self.augment, self.batch_size, self.channels_last, self._fuse
                )
            except RuntimeError as exc:  # capture refused (an old driver, a debugging mode): run eagerly
                log.warning("training batches run without CUDA graphs: %s", first_line(exc, 200))
        return self._graphed

    @property
    def graphed(self) -> bool:
        """Whether full batches are replayed as CUDA graphs (known after the first epoch starts)."""
        return self._graphed is not None

    @property
    def augment_engine(self) -> str:
        """What gathers and augments the graphed batches: "kernel", "compiled" or "eager" (`fast_augment`)."""
        return self._graphed.engine if self._graphed is not None else "eager"

    @property
    def augment_error(self) -> str | None:
        """Why the faster engines before `augment_engine` were passed over (None where none was)."""
        return self._graphed.fuse_error if self._graphed is not None else None

    def __iter__(self) -> Iterator[Batch]:
        order = self._order()
        # The epoch's order and its augmentation draws go to the device once: slicing them there needs no
        # copy (no sync) per batch, and the draws depend on (seed, epoch, rank) only.
        order_dev = torch.from_numpy(order).to(self.device)
        u = uniforms(len(order), self._generator(), self.device) if self.augment is not None else None
        graphed = self._graphs()
        full = len(order) // self.batch_size
        if graphed is not None and u is not None and full:
            yield from graphed.epoch(order_dev, u, full)
            if full * self.batch_size == len(order):
                return
            graphed.join()  # the last, partial batch runs eagerly after the graphed ones
            order_dev, u = order_dev[full * self.batch_size :], u[full * self.batch_size :]
            order = order[full * self.batch_size :]
        starts = range(0, len(order), self.batch_size)
        if self.resident is not None:
            resident = self.resident
            source: Iterator[torch.Tensor] = (resident[order_dev[s : s + self.batch_size]] for s in starts)
        elif self.device.type == "cuda":
            source = _prefetch(self._host_batches(order), PREFETCH)
        else:
            source = self._host_batches(order)
        for s, u8 in zip(starts, source):
            u8 = u8.to(self.device, non_blocking=True)
            y = self.labels[order_dev[s : s + self.batch_size]]
            if u is not None and self.augment is not None:
                x = self.augment.apply(u8, u[s : s + self.batch_size], self.channels_last)
            else:
                x = normalize_uint8(u8, self.spec, self.channels_last)
            yield x, y


@dataclass
class _Slot:
    """One of the two graphs: its static inputs (indices, uniforms), outputs, and the events that order it
    against the model's stream."""

    index: torch.Tensor
    u: torch.Tensor
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    y: torch.Tensor
    ready: torch.cuda.Event  # the side stream wrote x, y
    free: torch.cuda.Event  # the model's stream has queued everything that reads x, y


FAST_ATOL = 1e-3  # normalised units, 0.06 of a pixel level: float rounding passes, a wrong tap or channel not
Engines = tuple[tuple[str, Callable[[BatchAugment, bool], GatherAugment]], ...]


def _kernel(augment: BatchAugment, channels_last: bool) -> GatherAugment:
    from mgc_edge.train.augment_kernel import kernel_augment  # imports Triton, which a machine may lack

    return kernel_augment(augment, channels_last)


FAST_ENGINES: Engines = (("kernel", _kernel), ("compiled", fused))


def fast_augment(
    resident: torch.Tensor,
    augment: BatchAugment,
    channels_last: bool,
    batch: int,
    engines: Engines = FAST_ENGINES,
) -> tuple[str, GatherAugment | None, str | None]:
    """The first of `engines` that runs here and gives, on one batch of `resident` with random draws, what the
    eager path gives: (its name, it, why each one before it failed, or None); ("eager", None, why each failed)
    where none does. The hand-written
    kernel comes first (one launch that reads the cache's bytes and writes the batch once), then
    torch.compile's kernels of the same function (0.56 ms a 224 batch of 256 on an H200), which compile for
    seconds on the first call."""
    g = torch.Generator(device=resident.device).manual_seed(0)
    index = torch.randint(len(resident), (batch,), generator=g, device=resident.device)
    u = uniforms(batch, g, resident.device)
    want = augment.apply(resident.index_select(0, index), u, channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    failed = []
    for name, make in engines:
        try:
            engine = make(augment, channels_last)
            got = engine(resident, index, u)
            if got.shape != want.shape or got.dtype != want.dtype or not got.is_contiguous(memory_format=fmt):
                raise ValueError(f"gave {got.dtype} {tuple(got.shape)} in another layout")
            diff = (got - want).abs().max().item()
            if not diff <= FAST_ATOL:
                raise ValueError(f"differs from the eager augmentation by {diff:.3g}")
            if failed:
                log.info("the training augmentation runs as %s: %s", name, "; ".join(failed))
            return name, engine, "; ".join(failed) or None
        except Exception as exc:  # no Triton or no C compiler here, or a wrong result: the next one
            failed.append(f"{name}: {first_line(exc, 200)}")
    why = "; ".join(failed)
    log.warning("the training augmentation runs eagerly: %s", why)
    return "eager", None, why


class GraphedBatches:
    """Full training batches from a GPU-resident cache: gather, augment and normalise captured as two CUDA
    graphs (double buffered) and replayed on a side stream one batch ahead of the model.

    Per batch the host queues two small copies (the batch's indices and draws into the graph's static
    inputs) and one replay; the model's stream waits on an event for the batch, and a slot is overwritten
    only after the model's stream has queued everything that reads it (its backward pass included), so a
    yielded batch stays valid while the training step that took it runs. Yields the same values as the
    eager path for the same indices and draws (up to float rounding where `fuse` runs the augmentation as one
    kernel; where a faster engine does not run here, the next is captured and the reason is in `fuse_error`).
    """

    def __init__(
        self,
        resident: torch.Tensor,
        labels: torch.Tensor,
        augment: BatchAugment,
        batch_size: int,
        channels_last: bool,
        fuse: bool = False,
    ) -> None:
        self.device = resident.device
        self.batch_size = batch_size
        self.stream = torch.cuda.Stream(self.device)
        self.engine, self._fast, self.fuse_error = (
            fast_augment(resident, augment, channels_last, batch_size) if fuse else ("eager", None, None)
        )
        self.slots = [self._capture(resident, labels, augment, channels_last) for _ in range(2)]

    def _capture(
        self, resident: torch.Tensor, labels: torch.Tensor, augment: BatchAugment, channels_last: bool
    ) -> _Slot:
        index = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)
        u = torch.full((self.batch_size, UNIFORMS), 0.5, device=self.device)

        def step() -> tuple[torch.Tensor, torch.Tensor]:
            if self._fast is not None:
                x = self._fast(resident, index, u)
            else:
                x = augment.apply(resident.index_select(0, index), u, channels_last)
            return x, labels.index_select(0, index)

        main = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(main)
        with torch.cuda.stream(self.stream):  # warm-up outside the capture (cuBLAS/cuDNN handles, caches)
            for _ in range(2):
                step()
        main.wait_stream(self.stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            x, y = step()
        return _Slot(index, u, graph, x, y, torch.cuda.Event(), torch.cuda.Event())

    def _produce(self, k: int, order: torch.Tensor, u: torch.Tensor) -> None:
        slot, b = self.slots[k % 2], self.batch_size
        with torch.cuda.stream(self.stream):
            if k >= 2:  # the slot's previous batch, k - 2, must be fully queued on the model's stream
                self.stream.wait_event(slot.free)
            slot.index.copy_(order[k * b : (k + 1) * b])
            slot.u.copy_(u[k * b : (k + 1) * b])
            slot.graph.replay()
            slot.ready.record(self.stream)

    def epoch(self, order: torch.Tensor, u: torch.Tensor, batches: int) -> Iterator[Batch]:
        """The first `batches` full batches of the epoch's `order` with their draws `u` [len(order), UNIFORMS]."""
        main = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(main)  # the order and draws were made, and the last epoch read, on it
        for t in (order, u):
            t.record_stream(self.stream)  # not recycled by the allocator while the side stream reads them
        self._produce(0, order, u)
        for k in range(batches):
            if k + 1 < batches:
                self._produce(k + 1, order, u)  # runs while the model trains on batch k
            slot = self.slots[k % 2]
            main.wait_event(slot.ready)
            yield slot.x, slot.y
            slot.free.record(main)

    def join(self) -> None:
        """Make the model's stream wait for everything queued on the side stream."""
        torch.cuda.current_stream(self.device).wait_stream(self.stream)


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run `items` in a background thread, `depth` ahead (the gather and pinning overlap the GPU's work)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)
            return
        q.put(done)

    thread = threading.Thread(target=work, daemon=True, name="mgc-edge-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)
