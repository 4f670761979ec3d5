"""Label order and human-readable class names; stdlib only (the runtime uses it)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mgc_edge.errors import UserError

IMIGUE_NAMES = "imigue"  # `--class-names imigue` picks the shipped file


class LabelError(UserError):
    """Labels or a class-names file are invalid; the message is one sentence."""


def _natural_key(name: str) -> tuple:
    # "2" before "10": numbers compare as numbers, everything else as text.
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in re.split(r"(\d+)", name)
        if part
    )


def sort_labels(names: list[str]) -> list[str]:
    """Folder names in label-index order: numerically where they are numbers, never a plain string sort."""
    return sorted(names, key=_natural_key)


@dataclass(frozen=True)
class Labels:
    """Folder names in label-index order, with optional human-readable names."""

    ids: tuple[str, ...]
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(str(i) for i in self.ids))
        if len(set(self.ids)) != len(self.ids):
            raise LabelError("Labels must be unique.")
        if self.names is not None:
            object.__setattr__(self, "names", tuple(str(n) for n in self.names))
            if len(self.names) != len(self.ids):
                raise LabelError(f"Got {len(self.names)} class names for {len(self.ids)} labels.")

    def __len__(self) -> int:
        return len(self.ids)

    def display(self, index: int) -> str:
        """The human name if known, else the folder name."""
        return self.names[index] if self.names else self.ids[index]

    def index(self, label_id: str) -> int:
        return self.ids.index(label_id)


def read_class_names(source: str | Path) -> dict[str, str]:
    """Read a `label,name` CSV (header optional); `imigue` reads the shipped iMiGUE names."""
    try:
        if str(source) == IMIGUE_NAMES:
            text = resources.files("mgc_edge.resources").joinpath("imigue_classes.csv").read_text("utf-8")
        else:
            text = Path(source).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise LabelError(f"Class-names file {source} does not exist.") from None
    except UnicodeDecodeError:
        raise LabelError(f"Class-names file {source} is not UTF-8 text.") from None
    mapping: dict[str, str] = {}
    for row in csv.reader(text.splitlines()):
        if (
            not row
            or row[0].strip().startswith("#")
            or [c.strip().lower() for c in row[:2]] == ["label", "name"]
        ):
            continue
        if len(row) < 2:
            raise LabelError(f"Class-names file {source} needs two columns, label and name; got {row!r}.")
        mapping[row[0].strip()] = ",".join(row[1:]).strip()
    if not mapping:
        raise LabelError(f"Class-names file {source} holds no names.")
    return mapping


def attach_names(ids: list[str] | tuple[str, ...], source: str | Path | None) -> Labels:
    """Labels for `ids`, named from `source` where the file knows them (unknown ones keep their folder name)."""
    if source is None:
        return Labels(tuple(ids))
    mapping = read_class_names(source)
    missing = [i for i in ids if i not in mapping]
    if len(missing) == len(ids):
        raise LabelError(
            f"Class-names file {source} names none of the class folders ({', '.join(ids[:5])}, ...)."
        )
    return Labels(tuple(ids), tuple(mapping.get(i, i) for i in ids))
