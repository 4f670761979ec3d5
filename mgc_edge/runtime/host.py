"""The cores of this machine that this process may use, the share a live loop gives inference, and how
its idle inference threads wait.

Owned here because the model, the file decoders and the live loop all size their threads by it; tests
patch `host.usable_cores` once for all of them."""

from __future__ import annotations

import math
import os


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def live_threads(reserve: float = 2.0) -> int:
    """Intra-op threads for a live loop: the usable cores less `reserve`, the cores that capture and decoding
    keep busy beside inference (measured by `live/cores.py`), rounded half up, at least one."""
    cores = usable_cores()
    return max(1, min(cores, math.floor(cores - reserve + 0.5)))


# How idle intra-op threads wait for work (`Classifier(spinning=...)`): "on" busy-waits, ONNX Runtime's
# default, which keeps a core busy for a while after every run; "run" busy-waits only while a run is in progress
# and blocks as soon as it returns; "off" always blocks.
SPINNING = ("on", "run", "off")
SPIN_ENTRIES = {
    "on": {},
    "run": {"session.force_spinning_stop": "1"},
    "off": {"session.intra_op.allow_spinning": "0"},
}
# The live loop's (webcam, annotate): never spin. Its threads share the cores with decoding, preprocessing and
# often other processes: spinning after a run takes a core from decoding, and spinning within a run wastes the
# core whenever a peer thread is descheduled, which cost webcams that shared the cores a large share of their
# frames; only a lone loop on small frames gained a little from it (`python -m benchmarks.loop --spinning`,
# benchmarks/streams.py; figures in benchmarks/RESULTS.md).
LIVE_SPINNING = "off"


def spin_mode(spinning: bool | str) -> str:
    """One of `SPINNING` for a `Classifier(spinning=...)` value: True is "on", False "off"."""
    mode = ("on" if spinning else "off") if isinstance(spinning, bool) else spinning
    if mode not in SPINNING:
        raise ValueError(f"spinning must be one of {', '.join(SPINNING)}, True or False, got {spinning!r}")
    return mode
