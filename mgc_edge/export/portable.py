"""What keeps an exported .onnx file portable: only the standard operator domains, in its imports and its nodes.

ONNX Runtime, OpenVINO, OpenCV's DNN and TensorRT all read the standard domains; a file that declares a
runtime's private domain (ONNX Runtime's `com.microsoft.*`, `org.pytorch.aten`, ...) is tied to that runtime,
even when no node uses it (OpenVINO and OpenCV refuse unknown imports). Graph optimisation is each runtime's
own business at load time, never something saved into the file.
"""

from __future__ import annotations

import onnx

# One list: the runtime reads a file's imports too.
from mgc_edge.runtime.model.domains import STANDARD_DOMAINS

__all__ = ["STANDARD_DOMAINS", "private_domains", "strip_unused_opsets"]


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Every node of the model: the main graph, its subgraphs, and local functions."""
    out: list[onnx.NodeProto] = []
    graphs = [model.graph] + [onnx.helper.make_graph(list(f.node), f.name, [], []) for f in model.functions]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            out.append(node)
            for attr in node.attribute:
                graphs += [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
    return out


def strip_unused_opsets(model: onnx.ModelProto) -> None:
    """Drop the `opset_import` entries of domains no node uses (the default domain always stays)."""
    used = {node.domain for node in _nodes(model)} | {"", "ai.onnx"}
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def private_domains(model: onnx.ModelProto) -> list[str]:
    """The operator domains outside the standard ones that the model imports or its nodes use, sorted."""
    domains = {o.domain for o in model.opset_import} | {n.domain for n in _nodes(model)}
    return sorted(domains - STANDARD_DOMAINS)
