"""The training augmentation alone, on any device: what `GraphedBatches` replays per batch (the gather from
the resident uint8 cache, then `BatchAugment.apply`), against two other formulations of the same result.

    python -m benchmarks.bench_augment [--device auto] [--sizes 96,224] [--batch 256] [--rounds 7]

Engines, all from the same cache, indices and draws:
- `before`: apply until issue 15: the batch as floats, grid_sample, then jitter and normalise into the output
  layout and clip in place.
- `jitter_first`: apply as it runs on CUDA: jitter and normalise in the multiply-add that converts the uint8
  pixels, grid_sample, then clip into the output layout (one read and one write of the output floats fewer
  than `before` where the multiply-add converts as it reads, as on CUDA; the CPU converts into a temporary).
- `jitter_last`: apply as it runs on the CPU: the passes of `before`.
- `separable`: issue 15's proposal in eager torch: rows gathered from the uint8 batch and blended, then
  columns gathered (the channel flip in their index) and blended with the jitter, then clipped.
- `fused`: `augment.fused`, the gather and `jitter_first` compiled by torch.compile (inductor) into a kernel or
  two that read the uint8 cache and write the batch once: what training runs on CUDA from
  `FUSE_FROM_PIXELS` up where the kernel below does not run. Its traffic is not counted (the compiled
  kernels bypass the dispatcher); its compile time is reported.
- `kernel`: `augment_kernel.kernel_augment`, the hand-written Triton kernel (one launch: the four taps' bytes
  read from the cache, the batch written once): what training runs on CUDA from `FUSE_FROM_PIXELS` up. CUDA
  only; timed as `fused`.

On CUDA each engine is captured as a CUDA graph, as training replays it, and timed with events over
`--iters` replays; on the CPU each call is timed by the wall clock and by the process's CPU time. Rounds
interleave the engines so that a shared machine's drift hits all alike; each figure is the median of the
rounds, with the min and max. `traffic_mib` counts the bytes each operation reads and writes at least
(operands broadcast along a dimension count once, views nothing): device-independent, and what a
memory-bound GPU pays. `allocated_mib` sums the tensors the engine allocates. `max_abs_diff` is against
`before`, in normalised units. Writes benchmarks/results/augment.json (results/gpu/ on CUDA) and appends a
section to RESULTS.md unless --no-record.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from benchmarks.common import append_section, fmt, machine, machine_line, results_dir, table, write_result
from mgc_edge.config import PreprocessSpec
from mgc_edge.data.cache import margin_size
from mgc_edge.data.dataset import Augment
from mgc_edge.train.augment import (
    FUSE_FROM_PIXELS,
    BatchAugment,
    GatherAugment,
    _constants,
    crop_resize,
    draw_from,
    fused,
    model_order,
)
from mgc_edge.train.batches import FAST_ENGINES

Engine = GatherAugment  # (cache, index, u) -> batch


def before(aug: BatchAugment) -> Engine:
    """apply until issue 15: float copy, grid_sample, jitter into channels-last, clip in place."""
    spec = aug.spec

    def run(cache: torch.Tensor, index: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        batch = cache.index_select(0, index)
        d = draw_from(aug.augment, u, (batch.shape[1], batch.shape[2]))
        x = crop_resize(model_order(batch, spec).permute(0, 3, 1, 2).float(), d, spec.size)
        # [1, 3, 1, 1], made once per device: no host-to-device copy inside a CUDA graph capture
        scale, shift = _constants(spec, x.device)
        out = torch.empty(x.shape, device=x.device, memory_format=torch.channels_last)
        torch.addcmul(d.bias.view(-1, 1, 1, 1) * scale - shift, x, d.gain.view(-1, 1, 1, 1) * scale, out=out)
        return out.clamp_(-shift, 255.0 * scale - shift)

    return run


def _taps(start: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int, flip: torch.Tensor) -> Any:
    """Per image and output index: the two input indices [B, n_out] and the second one's weight, sampling
    the box at half-pixel centres (mirrored where `flip`), clamped to the border."""
    j = torch.arange(n_out, device=start.device, dtype=torch.float32) + 0.5
    step = (length / n_out)[:, None]
    pos = torch.where(flip[:, None], (start + length)[:, None] - j * step, start[:, None] + j * step) - 0.5
    pos = pos.clamp(0, n_in - 1)
    i0 = pos.floor()
    w1 = pos - i0
    i0 = i0.long()
    return i0, (i0 + 1).clamp(max=n_in - 1), w1


def separable(aug: BatchAugment) -> Engine:
    """Rows then columns straight from the uint8 cache, with integer indices and per-row / per-column
    weights: each blend of two gathered tensors is two passes over floats (eager torch fuses nothing)."""
    spec = aug.spec
    oh, ow = spec.size

    def run(cache: torch.Tensor, index: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = cache.shape
        b, dev = index.shape[0], cache.device
        d = draw_from(aug.augment, u, (h, w))
        y0, y1, wy = _taps(d.top, d.height, h, oh, torch.zeros_like(d.flip))
        x0, x1, wx = _taps(d.left, d.width, w, ow, d.flip)
        perm = torch.arange(3, device=dev).flip(0) if spec.color == "rgb" else torch.arange(3, device=dev)
        base = (index * h)[:, None]  # the batch's gather folded into the row gather
        rows = cache.view(-1, w * 3).index_select(0, torch.cat((y0 + base, y1 + base), 1).view(-1))
        rows = rows.view(b, 2, oh, w * 3)
        r = rows[:, 0] * (1 - wy)[:, :, None]
        r.addcmul_(rows[:, 1], wy[:, :, None])  # [B, oh, W * 3]
        col = (torch.cat((x0, x1), 1)[:, :, None] * 3 + perm).view(b, 1, 2 * ow * 3)
        cols = torch.gather(r, 2, col.expand(b, oh, 2 * ow * 3)).view(b, oh, 2, ow, 3)
        scale, shift = (t.view(3) for t in _constants(spec, dev))
        gain = d.gain[:, None] * scale  # [B, 3]
        a = ((1 - wx)[:, :, None] * gain[:, None, :])[:, None]  # [B, 1, ow, 3]
        c = (wx[:, :, None] * gain[:, None, :])[:, None]
        out = torch.addcmul((d.bias[:, None] * scale - shift)[:, None, None, :], cols[:, :, 0], a)
        out.addcmul_(cols[:, :, 1], c)
        return out.clamp_(-shift, 255.0 * scale - shift).permute(0, 3, 1, 2)  # channels-last [B, 3, oh, ow]

    return run


def jitter(first: bool) -> Callable[[BatchAugment], Engine]:
    """BatchAugment.apply in one order: first = CUDA's default, jitter while converting uint8 (before the
    resampling); last = the CPU's, jitter the resampled image."""

    def engine(aug: BatchAugment) -> Engine:
        def run(cache: torch.Tensor, index: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
            return aug.apply(cache.index_select(0, index), u, channels_last=True, jitter_first=first)

        return run

    return engine


ENGINES = {
    "before": before,
    "jitter_last": jitter(False),
    "jitter_first": jitter(True),
    "separable": separable,
    "fused": lambda aug: fused(aug, channels_last=True),
    "kernel": lambda aug: dict(FAST_ENGINES)["kernel"](aug, True),
}
COMPILED = ("fused", "kernel")  # compiled on the first call; their kernels bypass the dispatcher


def _span(t: torch.Tensor) -> int:
    """Bytes an operation must touch in `t`: a dimension of stride 0 (broadcast) counts once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        n *= size if stride else 1
    return n * t.element_size()


GATHERS = ("index_select", "gather", "index")  # read at most what they write from their source


class Traffic(TorchDispatchMode):
    """Bytes read and written per operation (views and allocations touch nothing), and bytes allocated."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, int, int]] = []
        self.allocated = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        written = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if name in ("empty", "empty_strided", "empty_like"):
            self.allocated += sum(_span(t) for t in written)
        if func.is_view or name.startswith("empty"):
            return out
        into = kwargs.get("out")
        read = [
            _span(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor) and t is not into
        ]
        w = sum(_span(t) for t in written)
        if name in GATHERS:  # the source (the first operand) only where the indices point
            read[0] = min(read[0], w)
        self.ops.append((name, sum(read), w))
        if into is None and not name.endswith("_"):
            self.allocated += w
        return out


def _graph(fn: Callable[[], torch.Tensor], device: torch.device) -> torch.cuda.CUDAGraph:
    """fn captured as GraphedBatches captures a batch: warmed up on a side stream, then recorded."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        fn()
    return graph


def bench_size(
    size: int, batch: int, rounds: int, iters: int, device: torch.device, engines: list[str]
) -> dict[str, Any]:
    """Each engine at one model size (from the cache's margin size), timed in interleaved rounds."""
    spec = PreprocessSpec(size=(size, size))
    stored = margin_size(spec.size)
    aug = BatchAugment(Augment(), spec)
    g = torch.Generator().manual_seed(size)
    cache = torch.randint(0, 256, (2 * batch, *stored, 3), dtype=torch.uint8, generator=g).to(device)
    index = torch.randperm(2 * batch, generator=g)[:batch].to(device)
    u = torch.rand((batch, 7), generator=g).to(device)
    fns = {name: (lambda f=ENGINES[name](aug): f(cache, index, u)) for name in engines}
    reference = ENGINES["before"](aug)(cache, index, u)
    out: dict[str, Any] = {"stored": list(stored), "batch": batch, "engines": {}, "engines_failed": {}}
    for name, fn in list(fns.items()):
        if name in COMPILED:  # compiled on its first call, outside any dispatch mode; no traffic to count
            start = time.perf_counter()
            try:
                got = fn()
            except Exception as exc:  # no Triton or no compiler here: the other engines still count
                out["engines_failed"][name] = f"{exc!r}"[:300]
                del fns[name]
                continue
            out["engines"][name] = {
                "max_abs_diff": float((got - reference).abs().max()),
                "compile_s": time.perf_counter() - start,
                "traffic_mib": None,
                "allocated_mib": None,
                "ops": None,
            }
            continue
        with Traffic() as traffic:
            got = fn()
        big = [(op, r >> 20, w >> 20) for op, r, w in traffic.ops if r + w >= 1 << 20]
        out["engines"][name] = {
            "max_abs_diff": float((got - reference).abs().max()),
            "traffic_mib": sum(r + w for _, r, w in traffic.ops) / 2**20,
            "allocated_mib": traffic.allocated / 2**20,
            "ops": len(traffic.ops),
            "large_ops_mib": [f"{op} r{r} w{w}" for op, r, w in big],
        }
    cuda = device.type == "cuda"
    if cuda:
        graphs = {name: _graph(fn, device) for name, fn in fns.items()}
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(iters):
                    graphs[name].replay()
                end.record()
                end.synchronize()
                seconds[name].append(start.elapsed_time(end) / 1000 / iters)
            else:
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                seconds[name].append(time.perf_counter() - wall)
                cpu_seconds[name].append(time.process_time() - cpu)
    for name in fns:
        e, s = out["engines"][name], sorted(seconds[name])
        e.update(ms_median=statistics.median(s) * 1e3, ms_min=s[0] * 1e3, ms_max=s[-1] * 1e3)
        if cpu_seconds[name]:
            e["cpu_ms_median"] = statistics.median(cpu_seconds[name]) * 1e3
    current = "jitter_first" if cuda else "jitter_last"  # what training runs on this device
    if cuda and size * size >= FUSE_FROM_PIXELS:  # batches.fast_augment's order
        current = next((name for name in ("kernel", "fused") if name in fns), current)
    out["current_engine"] = current
    if current in fns and "before" in fns:
        e = out["engines"]
        out["current_over_before"] = e[current]["ms_median"] / e["before"]["ms_median"]
    return out


def render(result: dict[str, Any]) -> str:
    timing = "CUDA graph replays, events" if result["device"].startswith("cuda") else "wall clock (CPU time)"
    rows = []
    for size, r in result["sizes"].items():
        for name, e in r["engines"].items():
            cpu = f" ({fmt(e['cpu_ms_median'], 1)})" if "cpu_ms_median" in e else ""
            rows.append(
                [
                    f"{size}x{size} from {r['stored'][0]}x{r['stored'][1]}",
                    name,
                    f"{fmt(e['ms_median'], 2)}{cpu}",
                    f"{fmt(e['ms_min'], 2)} - {fmt(e['ms_max'], 2)}",
                    fmt(e["traffic_mib"], 0),
                    fmt(e["allocated_mib"], 0),
                    e["ops"] if e["ops"] is not None else "-",
                    f"{e['max_abs_diff']:.2g}",
                ]
            )
    header = ["input", "engine", "ms/batch median", "min - max", "traffic MiB", "allocated MiB", "ops"]
    return (
        f"Machine: {machine_line(result['machine'])}\n\n"
        f"Gather + augmentation of a batch of {result['batch']} ({timing}), {result['rounds']} interleaved "
        f"rounds, device {result['device']}, torch threads {result['machine']['torch_threads']}.\n\n"
        + table(header + ["max abs diff vs before"], rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--sizes", default="96,224", help="model input sizes, comma-separated")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=50, help="graph replays per round on CUDA")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    from mgc_edge.train.distributed import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    engines = args.engines.split(",")
    result: dict[str, Any] = {
        "machine": machine(),
        "device": str(device),
        "batch": args.batch,
        "rounds": args.rounds,
        "iters": args.iters if device.type == "cuda" else 1,
        "sizes": {},
    }
    for size in (int(s) for s in args.sizes.split(",")):
        result["sizes"][str(size)] = bench_size(size, args.batch, args.rounds, args.iters, device, engines)
    write_result("augment", result, results_dir(device.type == "cuda"))
    body = render(result)
    if not args.no_record:
        gpu = result["machine"]["gpu"] or "no GPU"
        append_section(f"`benchmarks.bench_augment` on {result['machine']['cpu']}, {gpu}", body)
    print(body)


if __name__ == "__main__":
    main()
