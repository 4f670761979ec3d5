"""Model registry: `build_model(arch, num_classes)`."""

from mgc_edge.models.registry import ARCHS, ModelError, build_model, head_name, min_input_size

__all__ = ["ARCHS", "ModelError", "build_model", "head_name", "min_input_size"]
