"""The cores of this machine that this process may use, and the share a live loop gives inference.

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
