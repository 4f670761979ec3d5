"""The operator domains a .onnx file imports, read from the file itself: what decides which runtimes can load it.

An edge box has ONNX Runtime and numpy, not the `onnx` package, so the model's `opset_import` (ModelProto field 8)
is read straight from the protobuf wire format; every other top-level field, the graph and its weights
included, is skipped by seeking, never read. Stdlib only.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from mgc_edge.errors import UserError

# The default domain ("" and its long name) and the traditional-ML one: every ONNX runtime implements them.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})

# ModelProto's field 8, opset_import: repeated OperatorSetIdProto {1: domain (string), 2: version (int64)}.
_OPSET_IMPORT = 8
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5  # protobuf wire types (3 and 4, groups, are not used by ONNX)


class OnnxFileError(UserError):
    """The file is not a well-formed ONNX model; the message is one sentence."""


def _varint(f: BinaryIO) -> int:
    """The next base-128 varint."""
    value = shift = 0
    while byte := f.read(1):
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("a varint is longer than 10 bytes")
    raise ValueError("the data ends inside a field")


def _fields(f: BinaryIO, end: int, read: frozenset[int]) -> list[tuple[int, int | bytes]]:
    """The fields of one message, from where `f` stands up to byte `end`: (number, value), varints as int and
    the length-delimited fields numbered in `read` as bytes; the others are skipped by seeking."""
    out: list[tuple[int, int | bytes]] = []
    while f.tell() < end:
        key = _varint(f)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            out.append((number, _varint(f)))
        elif wire in (_I64, _I32):
            f.seek(8 if wire == _I64 else 4, 1)
        elif wire == _LEN:
            size = _varint(f)
            if f.tell() + size > end:
                raise ValueError(f"field {number} runs past the end of its message")
            if number in read:
                out.append((number, f.read(size)))
            else:
                f.seek(size, 1)
        else:
            raise ValueError(f"field {number} has wire type {wire}")
    if f.tell() != end:
        raise ValueError("the last field runs past the end of the data")
    return out


def opset_imports(path: Path) -> dict[str, int]:
    """Each operator domain the model imports ("" is the default, ai.onnx) and its version, in file order."""
    imports: dict[str, int] = {}
    try:
        with open(path, "rb") as f:
            end = f.seek(0, io.SEEK_END)
            f.seek(0)
            for _, value in _fields(f, end, frozenset({_OPSET_IMPORT})):
                if isinstance(value, bytes):  # an opset entry (the varints are ir_version, model_version)
                    entry = dict(_fields(io.BytesIO(value), len(value), frozenset({1})))
                    domain = entry.get(1, b"")
                    version = entry.get(2, 0)
                    imports[domain.decode() if isinstance(domain, bytes) else ""] = int(version)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OnnxFileError(f"{path} is not a well-formed ONNX model file ({exc}).") from None
    if not imports:
        raise OnnxFileError(f"{path} is not an ONNX model file (it imports no operator set).")
    return imports


def private_imports(path: Path) -> list[str]:
    """The domains outside the standard ones that the model imports, sorted: only their runtime runs them."""
    return sorted(set(opset_imports(path)) - STANDARD_DOMAINS)
