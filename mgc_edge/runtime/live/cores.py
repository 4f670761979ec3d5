"""How many intra-op threads ONNX Runtime gets in the live loop: the cores that capture and decoding leave idle,
measured on the sources at hand rather than a fixed reserve.

- Cameras and streams decode at their own rate whatever the model does: the cores they keep busy are the
  process's CPU time over a short window while only their capture threads work (the model is loaded but idle).
  FFmpeg decodes in threads of its own, which is why this is the process's CPU time and not the capture
  threads'. A file paced at its frame rate (`--realtime`) keeps `rate x decode time` busy.
- Files are decoded as fast as the loop takes them, so their share of the cores is their share of a frame's
  CPU time, decode / (decode + inference).
- Decoding one frame is timed on a second reader of the same file (the source itself loses no frame);
  inference on the loaded model, a batch of one frame per source.

ONNX Runtime gets the rest, rounded half up, at least one thread. On two cores with a 1280x720 file and the
96x96 AlexNet that is both cores (decoding is about a sixth of a frame's CPU time); with a model far cheaper
than decoding it is one, so that decoding never waits for a core. numpy + OpenCV only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from mgc_edge.runtime import host
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.sources.base import Source
from mgc_edge.runtime.sources.video import open_video

WINDOW_S = 0.3  # several frames of a 25 fps camera; paid once at start-up, only where a camera or stream is
DECODE_FRAMES = 8  # frames of a file timed, after two warm-up reads


@dataclass(frozen=True)
class CoreBudget:
    """What was measured and the threads chosen from it."""

    cores: int
    live_cores: float  # cores the cameras, streams and paced files keep busy
    file_decode_ms: float  # CPU ms to decode one frame of every unpaced file (0 without one)
    inference_ms: float  # CPU ms of one batch of the model (only measured where there are files)
    threads: int

    @property
    def busy(self) -> float:
        """Cores that capture and decoding keep busy while the loop runs flat out."""
        files = 0.0
        if self.file_decode_ms > 0:
            free = max(0.0, self.cores - self.live_cores)
            files = free * self.file_decode_ms / (self.file_decode_ms + max(self.inference_ms, 1e-6))
        return self.live_cores + files

    def describe(self) -> str:
        """A clause for the start-up line."""
        return f"capture and decoding measured at {self.busy:.1f} of {self.cores} cores"


def threads_for(live_cores: float, file_decode_ms: float = 0.0, inference_ms: float = 0.0) -> CoreBudget:
    """The intra-op threads for these measurements on this machine (see the module's docstring)."""
    budget = CoreBudget(host.usable_cores(), live_cores, file_decode_ms, inference_ms, 0)
    return replace(budget, threads=host.live_threads(reserve=budget.busy))


def _paced(source: Source) -> bool:
    """A file played at its rate: live, but its decoding is CPU work the loop must leave cores for."""
    return source.live and source.video_path is not None


def live_load(sources: Sequence[Source], seconds: float = WINDOW_S) -> float:
    """Cores the cameras and streams keep busy: process CPU time over wall time while their capture threads
    run and nothing else works (0, without waiting, where there is none)."""
    if not any(s.live and not _paced(s) for s in sources):
        return 0.0
    cpu, wall = _cpu(sources), time.perf_counter()
    time.sleep(seconds)
    return max(0.0, (_cpu(sources) - cpu) / (time.perf_counter() - wall))


def _cpu(sources: Sequence[Source]) -> float:
    """CPU seconds of this process and of the worker processes that capture `sources` (runtime/capture/)."""
    pools = {id(p): p for s in sources if (p := getattr(s, "pool", None)) is not None}
    return time.process_time() + sum(pool.cpu_time() for pool in pools.values())


def decode_ms(source: Source, frames: int = DECODE_FRAMES) -> float:
    """CPU ms to decode one delivered frame of a file (`every` N decodes N of them), timed on a second reader."""
    cap = open_video(source.video_path or "")  # as the source decodes it
    try:
        for _ in range(2):  # the codec's set-up is not a frame's cost
            cap.read()
        cpu, n = time.process_time(), 0
        for _ in range(frames):
            ok, _image = cap.read()
            if not ok:
                break
            n += 1
        return (time.process_time() - cpu) / n * 1000 * source.options.every if n else 0.0
    finally:
        cap.release()


def inference_ms(run: Callable[[], object], live_cores: float = 0.0, runs: int = 5) -> float:
    """CPU ms of one call of `run` (the model on a batch), less what the capture threads took meanwhile."""
    run()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(runs):
        run()
    spent = (time.process_time() - cpu) - live_cores * (time.perf_counter() - wall)
    return max(spent, 0.0) / runs * 1000


def measure(sources: Sequence[Source], infer: Callable[[], object] | None = None) -> CoreBudget:
    """Measure what the opened `sources` take and choose the threads; `infer` runs the loaded model on one batch
    (None where inference does not run on the CPU: then files are not weighed against it)."""
    live = live_load(sources)
    live += sum(decode_ms(s) * s.fps / 1000 for s in sources if _paced(s))
    files = [s for s in sources if s.kind == "file"]
    if not files or infer is None:
        return threads_for(live)
    return threads_for(live, sum(decode_ms(f) for f in files), inference_ms(infer, live))


def fit_threads(
    clf: Classifier, first: float, sources: Sequence[Source]
) -> tuple[Classifier, float, CoreBudget | None]:
    """Measure the cores the opened `sources` keep busy and give the model the rest: the session is made again
    where that is fewer threads than it has (the old one is dropped first)."""
    if clf.device != "cpu":  # a GPU runs the model; its CPU threads hardly matter
        return clf, first, None
    batch = max(1, min(len(sources), 64))  # a tick where every source has a frame
    x = np.zeros((batch, 3, *clf.spec.size), np.float32)
    budget = measure(sources, lambda: clf.logits(x))
    if budget.threads != clf.threads:
        model = clf.path
        del clf
        clf = Classifier(model, device="cpu", threads=budget.threads, spinning=host.LIVE_SPINNING)
        first = clf.warmup(batch_size=batch)
    return clf, first, budget
