"""Batch sources for training and evaluation: each yields (model input, labels) already on the device.

`CachedBatches` reads uint8 images from the training cache (data/cache.py), gathers a batch, moves it to
the device and augments and normalises it there. `LoaderBatches` is the decode-every-epoch path: a
DataLoader over `FrameDataset` with worker processes, pinned memory and prefetching. Both draw their
indices from the same (distributed) samplers, so under torchrun each rank trains on its own shard.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from mgc_edge.config import PreprocessSpec
from mgc_edge.data.dataset import FrameDataset
from mgc_edge.train.augment import BatchAugment, normalize_uint8

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
    ) -> None:
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

    def _upload(self) -> torch.Tensor | None:
        """The whole cache on the device when it fits comfortably (no host gather or copy per batch)."""
        nbytes = self.images.nbytes
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if nbytes > RESIDENT_FRACTION * free:
                return None
        out = torch.empty(self.images.shape, dtype=torch.uint8, device=self.device)
        step = max(1, (64 << 20) // max(1, self.images[0].nbytes))  # about 64 MiB per copy
        for i in range(0, len(self.images), step):
            out[i : i + step].copy_(torch.from_numpy(np.ascontiguousarray(self.images[i : i + step])))
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

    def __iter__(self) -> Iterator[Batch]:
        g = self._generator() if self.augment is not None else None
        order = self._order()
        # The epoch's order goes to the device once: slicing it there needs no copy (no sync) per batch.
        order_dev = torch.from_numpy(order).to(self.device)
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
            if g is not None and self.augment is not None:
                x = self.augment(u8, g, self.channels_last)
            else:
                x = normalize_uint8(u8, self.spec, self.channels_last)
            yield x, y


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
