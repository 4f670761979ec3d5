"""The `mgc_edge.*` keys stored in every exported .onnx file, and their (de)serialisation; stdlib only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mgc_edge.config import ConfigError, PreprocessSpec
from mgc_edge.errors import UserError
from mgc_edge.labels import LabelError, Labels

FORMAT_VERSION = "1"
PREFIX = "mgc_edge."
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
PRECISIONS = ("fp32", "fp16", "int8")

K_FORMAT = PREFIX + "format_version"
K_LABELS = PREFIX + "labels"
K_NAMES = PREFIX + "label_names"
K_PREPROCESS = PREFIX + "preprocess"
K_ARCH = PREFIX + "arch"
K_PRECISION = PREFIX + "precision"
K_METRICS = PREFIX + "metrics"
K_SHA256 = PREFIX + "checkpoint_sha256"
K_VERSION = PREFIX + "package_version"


class MetadataError(UserError):
    """A model file lacks our metadata or carries a damaged copy; the message is one sentence."""


@dataclass(frozen=True)
class ModelMetadata:
    """What the runtime needs to run a model, read from and written to `metadata_props`."""

    labels: Labels
    preprocess: PreprocessSpec
    arch: str
    precision: str = "fp32"
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint_sha256: str = ""
    package_version: str = ""
    format_version: str = FORMAT_VERSION

    def to_props(self) -> dict[str, str]:
        """Flat string key/value pairs, as ONNX `metadata_props` wants them."""
        props = {
            K_FORMAT: self.format_version,
            K_LABELS: json.dumps(list(self.labels.ids)),
            K_PREPROCESS: self.preprocess.to_json(),
            K_ARCH: self.arch,
            K_PRECISION: self.precision,
            K_METRICS: json.dumps(self.metrics, sort_keys=True),
            K_SHA256: self.checkpoint_sha256,
            K_VERSION: self.package_version,
        }
        if self.labels.names is not None:
            props[K_NAMES] = json.dumps(list(self.labels.names))
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "the model") -> ModelMetadata:
        """Parse `metadata_props`; refuse a file that is not ours, with a sentence that says so."""
        if K_FORMAT not in props:
            raise MetadataError(
                f"{source} has no mgc-edge metadata; export it with `mgc-edge export` so that it carries "
                "its labels and preprocessing."
            )
        if props[K_FORMAT] != FORMAT_VERSION:
            raise MetadataError(
                f"{source} uses mgc-edge metadata format {props[K_FORMAT]}, this version reads {FORMAT_VERSION}."
            )
        try:
            names = json.loads(props[K_NAMES]) if K_NAMES in props else None
            precision = props.get(K_PRECISION, "fp32")
            if precision not in PRECISIONS:
                raise MetadataError(f"{source} has an unknown precision {precision!r}.")
            return cls(
                labels=Labels(tuple(json.loads(props[K_LABELS])), tuple(names) if names else None),
                preprocess=PreprocessSpec.from_json(props[K_PREPROCESS]),
                arch=props[K_ARCH],
                precision=precision,
                metrics=json.loads(props.get(K_METRICS, "{}")),
                checkpoint_sha256=props.get(K_SHA256, ""),
                package_version=props.get(K_VERSION, ""),
            )
        except (KeyError, json.JSONDecodeError, TypeError, ConfigError, LabelError) as exc:
            raise MetadataError(f"{source} carries damaged mgc-edge metadata ({exc}).") from None
