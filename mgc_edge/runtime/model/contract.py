"""The layout every mgc-edge model follows (DESIGN.md, 'ONNX model'): one float32 input `images` [N, 3, H, W]
and one output `logits` [N, C], H, W and C as its metadata says. A file that does not is refused in one
sentence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from mgc_edge.metadata import INPUT_NAME, OUTPUT_NAME, MetadataError, ModelMetadata


def check_contract(session: ort.InferenceSession, metadata: ModelMetadata, path: Path) -> None:
    """The input/output names and shapes the rest of mgc-edge relies on (DESIGN.md, 'ONNX model')."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    h, w = metadata.preprocess.size
    n_classes = len(metadata.labels)
    problem = None
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        problem = f"one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}"
    elif inputs[0].type != "tensor(float)":
        problem = f"a float32 input, got {inputs[0].type}"
    elif not _shape_fits(inputs[0].shape, (None, 3, h, w)):
        problem = f"input shape [N, 3, {h}, {w}], got {inputs[0].shape}"
    elif len(outputs) != 1 or outputs[0].name != OUTPUT_NAME:
        problem = f"one output named {OUTPUT_NAME!r}, got {[o.name for o in outputs]}"
    elif not _shape_fits(outputs[0].shape, (None, n_classes)):
        problem = f"output shape [N, {n_classes}], got {outputs[0].shape}"
    if problem:
        raise MetadataError(f"{path} does not follow the mgc-edge model layout: it needs {problem}.")


def _shape_fits(shape: Sequence[object], want: Sequence[int | None]) -> bool:
    """An ONNX Runtime shape (ints for fixed dims, strings or None for symbolic ones) against the wanted
    one, where None accepts anything (the dynamic batch axis)."""
    if len(shape) != len(want):
        return False
    return all(w is None or not isinstance(s, int) or s == w for s, w in zip(shape, want))
