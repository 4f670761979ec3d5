"""The README's figure blocks, written from docs/figures.json: no figure in them is typed by hand.

    python scripts/readme_figures.py            # rewrite every block from the figures file
    python scripts/readme_figures.py --check    # exit 1, one sentence per block that differs

A block is the text between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`, each marker on a line of its
own; RENDERERS holds one function per NAME. `make demo` and `make bench` record their figures in
docs/figures.json (benchmarks/figures.py) and then run this script, so the README follows every recorded run;
tests/test_readme_figures.py runs `--check` on the committed README. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIGURES = ROOT / "docs" / "figures.json"
BLOCK = re.compile(r"^<!-- figures:([a-z0-9-]+) -->\n(.*?)^<!-- /figures:\1 -->$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- /?figures:([a-z0-9-]+) -->")

Figures = dict[str, Any]


class FiguresError(Exception):
    """A README or figures file this script cannot work with (one sentence)."""


# ---------------------------------------------------------------------------------------------- formatting


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f} %"


def num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def sci(x: float | None) -> str:
    """A difference: 3e-06 as `3.3e-06`, 0.15 as `0.15`."""
    if x is None:
        return "-"
    return f"{x:.2f}" if x >= 0.01 else f"{x:.1e}"


def gb(mb: float | None) -> str:
    return "-" if mb is None else f"{mb / 1000:.1f} GB"


def day(stamp: str | None) -> str:
    return (stamp or "?")[:10]


def provenance(section: Figures) -> str:
    """`2026-11-27, commit f9a449b` (with uncommitted changes where there were some)."""
    changes = " plus uncommitted changes" if section.get("uncommitted_changes") else ""
    return f"{day(section.get('date'))}, commit {section.get('commit') or '?'}{changes}"


def cpu_words(section: Figures) -> str:
    """The machine line's first part: `AMD EPYC, 2 cores, no GPU`."""
    return str(section.get("machine", "?")).split(";")[0]


def cores_words(section: Figures) -> str:
    """`2 CPU cores`, or `16 CPU cores and an NVIDIA H200`; `, shared with other work (...)` when it was."""
    gpu = f" and an {section['gpu']}" if section.get("gpu") else ""
    return f"{section.get('cores', '?')} CPU cores{gpu}{shared(section)}"


def shared(section: Figures) -> str:
    """A run timed while other work loaded the machine says so: its seconds are then not a quiet box's."""
    load, cores = section.get("load_average_at_start"), section.get("cores")
    if not load or not cores or load[0] < cores:
        return ""
    return f", shared with other work (load average {load[0]:.1f} at its start)"


def model_words(name: str | None) -> str:
    """A benchmark's model file as its precision: model.onnx is fp32, model.int8.onnx int8."""
    m = re.fullmatch(r"model(?:\.(fp16|int8))?\.onnx", name or "")
    return f"the {m.group(1) or 'fp32'} model" if m else f"`{name}`"


RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "opencv": "OpenCV DNN"}
CPU_ENGINES = {
    "torch_eager": "PyTorch eager",
    "ort_fp32": "ONNX Runtime fp32",
    "ort_int8": "ONNX Runtime int8",
}
GPU_ENGINES = {
    "ort_fp16": "ONNX Runtime fp16 (the runtime's default there)",
    "ort_fp32": "ONNX Runtime fp32",
    "ort_int8": "ONNX Runtime int8",
    "torch_eager": "PyTorch eager",
    "ort_fp16_pageable": "fp16 from pageable memory",
    "ort_fp32_tf32": "fp32 with TF32",
}


def missing(what: str, how: str) -> str:
    return f"No {what} recorded yet: {how} records them.\n"


# ---------------------------------------------------------------------------------------------- blocks


def quick_start(f: Figures) -> str:
    demo, bench = f.get("demo"), f.get("bench", {})
    foot = bench.get("footprint", {})
    sizes = (
        f"about {gb(foot.get('train_venv_mb'))} of disk for the `.venv/` they create (torch and its CUDA "
        f"libraries come from the package registry; the edge install alone, without torch, takes "
        f"{gb(foot.get('runtime_venv_mb'))})"
        if foot
        else "several GB of disk for the `.venv/` they create (torch comes from the package registry)"
    )
    if not demo:
        took = "`make demo` then takes a few minutes"
    elif shared(demo):  # a loaded machine's seconds would misstate what a newcomer waits
        took = (
            f"`make demo` then takes a few minutes on a quiet machine (its last recorded run, {day(demo.get('date'))}, "
            f"took {demo['seconds']} s on {cores_words(demo)})"
        )
    else:
        took = (
            f"`make demo` then takes about {max(1, round(demo['seconds'] / 60))} minutes "
            f"({demo['seconds']} s on {cores_words(demo)}, {day(demo.get('date'))})"
        )
    return (
        f"Both work as the first command on a fresh machine with Python 3.10+ and {sizes}. Setting up downloads "
        f"the dependencies once; {took}.\n"
    )


def demo_summary(f: Figures) -> str:
    demo = f.get("demo")
    if not demo:
        return missing("demo figures", "`make demo`")
    t, exports, live = demo["test"], demo.get("exports", {}), demo.get("live")
    rt = exports.get(demo.get("runtime_precision"))
    lines = [
        f"Its last recorded run ({provenance(demo)}; {cpu_words(demo)}{shared(demo)}, {demo['seconds']} s in all): "
        f"**{pct(t['top1'])} test top-1 against a {pct(t['baseline_top1'])} majority baseline, macro-F1 "
        f"{t['macro_f1']:.3f}** ({t['classes']} classes; {num(t['frames'])} test frames of {num(t['clips'])} clips "
        f"whose people, scenes and cameras training never saw)"
    ]
    if rt:
        lines.append(
            f"; the {demo['runtime_precision']} model agrees with PyTorch on {pct(rt['agreement'])} of the test "
            f"frames and {'passes' if rt['passed'] else 'FAILS'} its gate"
        )
    if live:
        lines.append(
            f"; the live loop's smoothed label matches the demo video's known labels on {pct(live['smoothed'])} of "
            f"its {num(live['frames'])} frames"
        )
    text = "".join(lines) + ". Every figure of that run: [Performance](#performance).\n"
    gpu = f.get("demo_gpu")
    gpu_seconds = gpu["seconds"] if gpu else f.get("bench_gpu", {}).get("demo_seconds")
    if gpu_seconds:
        where = cpu_words(gpu or f.get("bench_gpu", {}))
        top1 = f", test top-1 {pct(gpu['test']['top1'])}" if gpu else ""
        text += f"On a GPU box ({where}) the same `make demo` took {round(gpu_seconds)} s{top1}.\n"
    return text


def recipe_words(demo: Figures) -> str:
    """`alexnet_bn at 96x96, 5 epochs, dropout 0, balance sampler`."""
    r = demo.get("recipe", {})
    size = "x".join(str(x) for x in r.get("size") or ["?"])
    return f"{r.get('arch')} at {size}, {r.get('epochs')} epochs, dropout {r.get('dropout'):g}, balance {r.get('balance')}"


def parity_table(f: Figures) -> str:
    demo = f.get("demo")
    if not demo or not demo.get("exports"):
        return missing("parity figures", "`make demo`")
    rows = [(p, r) for p, r in demo["exports"].items()]
    runtimes = demo.get("runtimes", {})
    rows += [(runtimes["precision"], r) for k, r in runtimes.items() if k != "precision"]
    out = [
        f"The demo's model ({recipe_words(demo)}; {provenance(demo)}) on its "
        f"{num(rows[0][1].get('n_images'))} test frames, each file against PyTorch's logits:",
        "",
        "| file | runtime | top-1 agreement | largest logit difference | top-1 accuracy (PyTorch) | gate |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for precision, r in rows:
        runtime = f"{RUNTIME_NAMES.get(r['runtime'], r['runtime'])} {r.get('runtime_version') or ''}".strip()
        out.append(
            f"| {precision} | {runtime} | {pct(r['agreement'])} | {sci(r['logits_max_abs'])} | "
            f"{pct(r['acc_model'])} ({pct(r['acc_checkpoint'])}) | {'pass' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(out) + "\n"


def runtime_figures(f: Figures) -> str:
    demo = f.get("demo")
    if not demo or not (demo.get("live") or demo.get("annotate")):
        return missing("runtime figures", "`make demo`")
    out = []
    live, ann = demo.get("live"), demo.get("annotate")
    model = f"the {demo.get('runtime_precision')} model"
    if live:
        out.append(
            f"- `webcam` over the demo video ({model}): the smoothed label matches the known labels on "
            f"{pct(live['smoothed'])} of {num(live['frames'])} frames (per-frame top-1: {pct(live['top1'])})."
        )
    if ann:
        out.append(
            f"- `annotate` over the same video: {num(ann['frames'])} frames in {ann['seconds']:.1f} s "
            f"({num(ann['frames_per_s'])} frames/s), {ann['segments']} segments; frame accuracy "
            f"{pct(ann.get('frame_accuracy'))} (the same frames as `webcam`), macro-F1 "
            f"{ann.get('frame_macro_f1', 0):.3f}, segment F1 {ann.get('segment_f1', 0):.2f} (precision "
            f"{ann.get('segment_precision', 0):.2f}, recall {ann.get('segment_recall', 0):.2f})."
        )
    return "\n".join(out) + "\n"


def annotate_example(f: Figures) -> str:
    example = f.get("demo", {}).get("examples")
    if not example:
        return missing("example output", "`make demo`")
    return (
        f"`demo/annotations/demo.frames.csv` (first rows):\n```\n{chr(10).join(example['frames_csv'])}\n```\n"
        f"`demo.segments.csv`:\n```\n{chr(10).join(example['segments_csv'])}\n```\n"
    )


def infer_table(infer: Figures, engines: dict[str, str], sizes: list[str]) -> list[str]:
    head = " | ".join(f"batch 1 p50 ms, {s}x{s} | batch 32 images/s, {s}x{s}" for s in sizes)
    out = [f"| engine | {head} |", "| --- |" + " --- | --- |" * len(sizes)]
    for name, words in engines.items():
        cells = []
        for s in sizes:
            r = infer.get(s, {}).get(name)
            cells += [num(r.get("p50_ms"), 2), num(r.get("b32_images_per_s"))] if r else ["-", "-"]
        if any(c != "-" for c in cells):
            out.append(f"| {words} | " + " | ".join(cells) + " |")
    return out


def bench_cpu(f: Figures) -> str:
    b = f.get("bench")
    if not b:
        return missing("benchmark figures", "`make bench`")
    sizes = sorted(b.get("infer", {}), key=int)
    out = [
        f"`make bench` on {cpu_words(b)}{shared(b)} ({provenance(b)}); every table: `benchmarks/RESULTS.md`.",
        "",
    ]
    if sizes:
        out += ["The demo's AlexNet-BN, one inference call (`benchmarks/bench_infer.py`):", ""]
        out += infer_table(b["infer"], CPU_ENGINES, sizes) + [""]
    ann, pipe, st, foot = b.get("annotate"), b.get("pipeline"), b.get("streams"), b.get("footprint")
    if ann:
        out.append(
            f"- `annotate` against `webcam` on the demo video ({model_words(ann.get('model'))}, {num(ann.get('frames'))} "
            f"frames): {num(ann.get('annotate_fps'))} against {num(ann.get('webcam_fps'))} frames/s, "
            f"{ann.get('annotate_over_webcam', 0):.1f}x (`benchmarks/annotate.py`)."
        )
    if pipe:
        out.append(
            f"- `webcam` on a 1280x720 video runs at {pipe.get('loop_over_bound', 0):.2f} of what the machine "
            f"can do (the lesser of inference alone on every core and cores / CPU time per frame); the former "
            f"fixed thread count reached {pipe.get('former_over_bound', 0):.2f} (`benchmarks/loop.py --pipeline`)."
        )
    if st:
        out.append(
            f"- {st.get('sources')} cameras at {num(st.get('fps'))} fps ({st.get('frame_size')}, "
            f"{model_words(st.get('model'))}): one `webcam` classified {pct(st.get('one_process_min_share'), 0)} of the worst "
            f"camera's frames with end-to-end p95 {num(st.get('one_process_p95_ms'))} ms; one process per "
            f"camera {pct(st.get('separate_min_share'), 0)}, p95 {num(st.get('separate_p95_ms'))} ms "
            f"(`benchmarks/streams.py`)."
        )
    if foot:
        out.append(
            f"- Install footprint: the edge install {gb(foot.get('runtime_venv_mb'))}, the development venv "
            f"{gb(foot.get('train_venv_mb'))} (`benchmarks/bench_footprint.py`: a fresh venv with `pip install .` "
            "against the venv with `.[train,dev]`, file sizes summed)."
        )
    return "\n".join(out) + "\n"


def bench_gpu(f: Figures) -> str:
    b = f.get("bench_gpu")
    if not b:
        return missing("GPU figures", "`make bench` on a GPU machine")
    sizes = sorted(b.get("infer", {}), key=int, reverse=True)
    out = [
        f"`make bench` on {cpu_words(b)}{shared(b)} ({provenance(b)}); every table: `benchmarks/RESULTS.md`.",
        "",
    ]
    if sizes:
        out += infer_table(b["infer"], GPU_ENGINES, sizes) + [""]
    train, loop, ann = b.get("train", {}), b.get("loop"), b.get("annotate")
    for size in sorted(train, key=int, reverse=True):
        t = train[size]
        out.append(
            f"- Training at {size}x{size}, batch {t.get('batch')}: {num(t.get('cached_images_per_s'))} images/s "
            f"from the uint8 cache, {t.get('cached_over_compute', 0):.2f} of the rate on tensors already in memory "
            f"({num(t.get('memory_images_per_s'))})."
        )
    if loop:
        out.append(
            f"- The live loop over the demo video ({model_words(loop.get('model'))}): {num(loop.get('loop_fps'))} frames/s, "
            f"{loop.get('loop_over_inference', 0):.2f} of the model alone ({num(loop.get('inference_fps'))})."
        )
    if ann:
        out.append(
            f"- `annotate` over the same video: {num(ann.get('annotate_fps'))} frames/s "
            f"({ann.get('annotate_over_webcam', 0):.1f}x `webcam`)."
        )
    if b.get("streams_keep_up_25fps"):
        out.append(f"- One `webcam` keeps up with {b['streams_keep_up_25fps']} cameras at 25 fps.")
    if b.get("demo_seconds"):
        out.append(f"- `make demo` end to end: {round(b['demo_seconds'])} s.")
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[Figures], str]] = {
    "quick-start": quick_start,
    "demo-summary": demo_summary,
    "parity": parity_table,
    "runtime": runtime_figures,
    "annotate-example": annotate_example,
    "bench-cpu": bench_cpu,
    "bench-gpu": bench_gpu,
}


# ---------------------------------------------------------------------------------------------- README


def blocks(text: str) -> dict[str, str]:
    """{name: body} of every block; a marker without its partner, or a name twice, is an error."""
    found: dict[str, str] = {}
    for m in BLOCK.finditer(text):
        if m.group(1) in found:
            raise FiguresError(f"the block figures:{m.group(1)} appears twice")
        found[m.group(1)] = m.group(2)
    paired = {n for n in found}
    for m in MARKER.finditer(text):
        if m.group(1) not in paired:
            raise FiguresError(f"the marker {m.group(0)} has no partner on a line of its own")
    unknown = sorted(set(found) - set(RENDERERS))
    if unknown:
        raise FiguresError(f"the README has blocks no renderer knows: {', '.join(unknown)}")
    return found


def wrap(body: str, width: int = 115) -> str:
    """Prose and bullets wrapped as the README's own text is; tables and code blocks left as they are."""
    out, fenced = [], False
    for line in body.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced or line.startswith(("```", "|")) or len(line) <= width:
            out.append(line)
            continue
        indent = "  " if line.startswith("- ") else ""
        out += textwrap.wrap(
            line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
        )
    return "\n".join(out) + "\n"


def render(text: str, figures: Figures) -> str:
    """The README with every block's body written from the figures."""
    blocks(text)

    def body(m: re.Match[str]) -> str:
        name = m.group(1)
        return f"<!-- figures:{name} -->\n{wrap(RENDERERS[name](figures))}<!-- /figures:{name} -->"

    return BLOCK.sub(body, text)


def differences(text: str, figures: Figures) -> list[str]:
    """One sentence per block whose text is not what the figures give, naming its first differing line."""
    have, want = blocks(text), blocks(render(text, figures))
    out = []
    for name in sorted(set(RENDERERS) - set(have)):
        out.append(f"The README has no figures:{name} block.")
    for name, body in have.items():
        if body == want[name]:
            continue
        a, b = body.splitlines(), want[name].splitlines()
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        line = text[: text.index(f"<!-- figures:{name} -->")].count("\n") + 2 + i
        said = a[i] if i < len(a) else "(nothing)"
        given = b[i] if i < len(b) else "(nothing)"
        out.append(
            f"README.md line {line}, block figures:{name}, says {excerpt(said, given)!r} where "
            f"docs/figures.json gives {excerpt(given, said)!r}."
        )
    return out


def excerpt(line: str, other: str, around: int = 40) -> str:
    """The part of `line` around its first difference from `other`."""
    j = next((k for k, (x, y) in enumerate(zip(line, other)) if x != y), min(len(line), len(other)))
    lo = max(0, j - around)
    return ("..." if lo else "") + line[lo : j + around] + ("..." if j + around < len(line) else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--figures", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
        figures = json.loads(args.figures.read_text(encoding="utf-8"))
        if args.check:
            problems = differences(text, figures)
            for sentence in problems:
                print(sentence, file=sys.stderr)
            if problems:
                print(
                    "Run `python scripts/readme_figures.py` to write the blocks from the figures.",
                    file=sys.stderr,
                )
            return 1 if problems else 0
        new = render(text, figures)
    except (OSError, ValueError, FiguresError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as exc:  # a figures file from another version of the recording scripts
        print(f"error: {args.figures} lacks a figure a block needs ({exc!r}).", file=sys.stderr)
        return 2
    if new != text:
        tmp = args.readme.with_name(args.readme.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(args.readme)  # atomic: the README is never half written
    return 0


if __name__ == "__main__":
    sys.exit(main())
