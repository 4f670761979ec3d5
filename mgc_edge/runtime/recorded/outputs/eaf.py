"""ELAN annotation documents (EAF 3.0): write one tier of segments, read tiers back; stdlib XML only.

The only module that knows the format. What ELAN and the EAF 3.0 schema (EAFv3.0.xsd) require, and this
writer does: the root ANNOTATION_DOCUMENT with AUTHOR, an xsd:dateTime DATE and VERSION 3.0; its children in
the schema's order (HEADER, TIME_ORDER, TIER, LINGUISTIC_TYPE, LANGUAGE, CONSTRAINT, CONTROLLED_VOCABULARY);
a HEADER in milliseconds with a MEDIA_DESCRIPTOR (an absolute file:// MEDIA_URL, a RELATIVE_MEDIA_URL so that
the pair still opens after both move together, and a MIME type); TIME_SLOTs in time order; and every
ALIGNABLE_ANNOTATION pointing at two existing slots, the first earlier than the second.

Each annotation's value is the class name a researcher reads; the label id stays recoverable through the
document's controlled vocabulary (one entry per class of the model, CVE_ID `label-<id>`) that every
annotation references by CVE_REF, which also lets ELAN offer the model's classes when correcting a tier.
"""

from __future__ import annotations

import json
import mimetypes
import os
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mgc_edge import __version__
from mgc_edge.errors import UserError
from mgc_edge.fileio import atomic_path
from mgc_edge.runtime.recorded.options import AnnotateOptions
from mgc_edge.runtime.recorded.outputs.annotation import VideoAnnotation
from mgc_edge.runtime.recorded.segments import Segment

SUFFIX = ".eaf"
REQUIRED = True
SETTINGS_PROPERTY = "mgc_edge.settings"  # the header property holding the settings that made the file
EAF_VERSION = "3.0"
SCHEMA = "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CVE_PREFIX = "label-"
DEFAULT_TIER = "gesture"
_CV_ID = "mgc-edge classes"
_LANG = "und"  # ISO 639-3 "undetermined": ELAN's default language for a vocabulary
_LANG_DEF = "http://cdb.iso.org/lg/CDB-00130975-001"
# The stereotypes ELAN declares in every document it writes.
_CONSTRAINTS = (
    ("Time_Subdivision", "Time subdivision of parent annotation's time interval, no time gaps allowed within this interval"),
    ("Symbolic_Subdivision", "Symbolic subdivision of a parent annotation. Annotations refering to the same parent are ordered"),
    ("Symbolic_Association", "1-1 association with a parent annotation"),
    ("Included_In", "Time alignable annotations within the parent annotation's time interval, gaps are allowed"),
)  # fmt: skip
_MIME = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".wmv": "video/x-ms-wmv",
}


class EafError(UserError):
    """An .eaf file that cannot be read as an ELAN document; the message is one sentence."""


@dataclass(frozen=True)
class Annotation:
    """One time-aligned annotation: milliseconds from the media's start, its value and its CVE_REF."""

    start_ms: int
    end_ms: int
    value: str
    cve_ref: str | None = None


@dataclass(frozen=True)
class EafDocument:
    """What mgc-edge reads back from an .eaf file."""

    media: tuple[str, ...]  # MEDIA_URL of each media descriptor
    tiers: dict[str, list[Annotation]]  # tier id -> its time-aligned annotations, in time order
    vocabulary: dict[str, str]  # CVE_ID -> value, over every controlled vocabulary
    properties: dict[str, str]  # HEADER PROPERTY name -> text

    def label_of(self, annotation: Annotation) -> str | None:
        """The label id our own writer stored in the annotation's CVE_REF, if it did."""
        ref = annotation.cve_ref or ""
        return ref[len(CVE_PREFIX) :] if ref.startswith(CVE_PREFIX) and ref in self.vocabulary else None


def mime_type(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    return _MIME.get(suffix) or mimetypes.guess_type(str(path))[0] or "unknown"


def relative_url(media: Path, eaf: Path) -> str:
    """The media file relative to the .eaf file's folder, as ELAN writes it (`./x.mp4`, `../v/x.mp4`)."""
    rel = Path(os.path.relpath(media.resolve(), eaf.resolve().parent)).as_posix()
    rel = urllib.parse.quote(rel)
    return rel if rel.startswith("../") else f"./{rel}"


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def build_eaf(
    segments: Sequence[Segment],
    media: str | Path,
    eaf_path: str | Path,
    label_ids: Sequence[str],
    label_names: Sequence[str],
    tier: str = DEFAULT_TIER,
    properties: Mapping[str, str] | None = None,
    date: str | None = None,
    key: str | None = None,
) -> ET.ElementTree:
    """The EAF 3.0 tree of one tier of `segments` (in time order, not overlapping) for the video `media`:
    header, time slots and tier, then the tier's type, language, constraints and vocabulary, in ELAN's order.
    `date` (default: now) and `key` (the URN is a UUID derived from it and the segments; default: random)
    make two identical runs write identical files."""
    urn = uuid.uuid4()
    if key is not None:
        urn = uuid.uuid5(
            uuid.NAMESPACE_URL, f"mgc-edge:{key}:{[(s.start_time, s.end_time, s.label) for s in segments]}"
        )
    root = ET.Element(
        "ANNOTATION_DOCUMENT",
        {
            "AUTHOR": f"mgc-edge {__version__}",
            "DATE": date or datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "FORMAT": EAF_VERSION,
            "VERSION": EAF_VERSION,
            "xmlns:xsi": XSI,
            "xsi:noNamespaceSchemaLocation": SCHEMA,
        },
    )
    _header(
        root,
        Path(media),
        Path(eaf_path),
        len(segments),
        {"URN": f"urn:nl-mpi-tools-elan-eaf:{urn}", **(properties or {})},
    )
    _tier(root, segments, label_ids, label_names, tier)
    _vocabulary(root, label_ids, label_names, tier)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="    ")
    return tree


def _header(
    root: ET.Element, media: Path, eaf_path: Path, count: int, properties: Mapping[str, str] | None
) -> None:
    header = ET.SubElement(root, "HEADER", {"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    ET.SubElement(
        header,
        "MEDIA_DESCRIPTOR",
        {
            "MEDIA_URL": media.resolve().as_uri(),
            "MIME_TYPE": mime_type(media),
            "RELATIVE_MEDIA_URL": relative_url(media, eaf_path),
        },
    )
    props = dict(properties or {})
    props["lastUsedAnnotationId"] = str(count)
    for name, text in props.items():
        ET.SubElement(header, "PROPERTY", {"NAME": name}).text = text


def _tier(
    root: ET.Element,
    segments: Sequence[Segment],
    label_ids: Sequence[str],
    label_names: Sequence[str],
    tier: str,
) -> None:
    """The time slots and the tier's annotations: a label of the model refers to its vocabulary entry."""
    time_order = ET.SubElement(root, "TIME_ORDER")
    tier_el = ET.SubElement(
        root, "TIER", {"ANNOTATOR": "mgc-edge", "LINGUISTIC_TYPE_REF": tier, "TIER_ID": tier}
    )
    known = set(label_ids)
    last_ms = 0
    for i, seg in enumerate(segments, start=1):
        start = max(_ms(seg.start_time), last_ms)  # slots stay in time order, even after rounding
        end = max(_ms(seg.end_time), start + 1)  # ELAN needs begin < end
        last_ms = end
        ts1, ts2 = f"ts{2 * i - 1}", f"ts{2 * i}"
        ET.SubElement(time_order, "TIME_SLOT", {"TIME_SLOT_ID": ts1, "TIME_VALUE": str(start)})
        ET.SubElement(time_order, "TIME_SLOT", {"TIME_SLOT_ID": ts2, "TIME_VALUE": str(end)})
        attrs = {"ANNOTATION_ID": f"a{i}", "TIME_SLOT_REF1": ts1, "TIME_SLOT_REF2": ts2}
        if seg.label in known:
            attrs["CVE_REF"] = CVE_PREFIX + seg.label
        value = label_names[label_ids.index(seg.label)] if seg.label in known else seg.label
        ann = ET.SubElement(ET.SubElement(tier_el, "ANNOTATION"), "ALIGNABLE_ANNOTATION", attrs)
        ET.SubElement(ann, "ANNOTATION_VALUE").text = value


def _vocabulary(root: ET.Element, label_ids: Sequence[str], label_names: Sequence[str], tier: str) -> None:
    """The tier's linguistic type, language and constraints, and the controlled vocabulary of the classes."""
    ET.SubElement(
        root,
        "LINGUISTIC_TYPE",
        {
            "CONTROLLED_VOCABULARY_REF": _CV_ID,
            "GRAPHIC_REFERENCES": "false",
            "LINGUISTIC_TYPE_ID": tier,
            "TIME_ALIGNABLE": "true",
        },
    )
    ET.SubElement(
        root, "LANGUAGE", {"LANG_DEF": _LANG_DEF, "LANG_ID": _LANG, "LANG_LABEL": "undetermined (und)"}
    )
    for stereotype, description in _CONSTRAINTS:
        ET.SubElement(root, "CONSTRAINT", {"DESCRIPTION": description, "STEREOTYPE": stereotype})
    cv = ET.SubElement(root, "CONTROLLED_VOCABULARY", {"CV_ID": _CV_ID})
    ET.SubElement(cv, "DESCRIPTION", {"LANG_REF": _LANG}).text = "The classes of the model"
    for label, name in zip(label_ids, label_names):
        entry = ET.SubElement(cv, "CV_ENTRY_ML", {"CVE_ID": CVE_PREFIX + label})
        ET.SubElement(entry, "CVE_VALUE", {"DESCRIPTION": f"label {label}", "LANG_REF": _LANG}).text = name


def write_eaf(
    path: str | Path,
    segments: Sequence[Segment],
    media: str | Path,
    label_ids: Sequence[str],
    label_names: Sequence[str],
    tier: str = DEFAULT_TIER,
    properties: Mapping[str, str] | None = None,
    date: str | None = None,
    key: str | None = None,
) -> Path:
    """Write the document atomically (a crash never leaves half an .eaf)."""
    path = Path(path)
    tree = build_eaf(segments, media, path, label_ids, label_names, tier, properties, date, key)
    with atomic_path(path) as tmp:
        tree.write(tmp, encoding="UTF-8", xml_declaration=True)
    return path


def read_eaf(path: str | Path) -> EafDocument:
    """Every tier's time-aligned annotations (times resolved through the time slots, in time order), the
    controlled vocabularies, the media URLs and the header's properties. Annotations whose slots carry no
    time (ELAN allows unaligned slots inside a subdivision) are left out."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise EafError(f"ELAN file {path} does not exist.") from None
    except (ET.ParseError, OSError) as exc:
        raise EafError(f"{path} is not a readable ELAN (.eaf) file ({exc}).") from None
    if root.tag != "ANNOTATION_DOCUMENT":
        raise EafError(f"{path} is not an ELAN (.eaf) file: its root is <{root.tag}>.")
    header = root.find("HEADER")
    units = header.get("TIME_UNITS", "milliseconds") if header is not None else "milliseconds"
    if units != "milliseconds":
        raise EafError(f"{path} counts time in {units}; only milliseconds are supported.")
    slots: dict[str, int] = {}
    for slot in root.iterfind("TIME_ORDER/TIME_SLOT"):
        value = slot.get("TIME_VALUE")
        if value is not None:
            slots[slot.get("TIME_SLOT_ID", "")] = int(value)
    tiers: dict[str, list[Annotation]] = {}
    for tier in root.iterfind("TIER"):
        found = []
        for ann in tier.iterfind("ANNOTATION/ALIGNABLE_ANNOTATION"):
            a, b = slots.get(ann.get("TIME_SLOT_REF1", "")), slots.get(ann.get("TIME_SLOT_REF2", ""))
            if a is None or b is None or b <= a:
                continue
            found.append(
                Annotation(a, b, (ann.findtext("ANNOTATION_VALUE") or "").strip(), ann.get("CVE_REF"))
            )
        tiers[tier.get("TIER_ID", "")] = sorted(found, key=lambda x: (x.start_ms, x.end_ms))
    vocabulary = {}
    for entry in root.iterfind("CONTROLLED_VOCABULARY/CV_ENTRY_ML"):
        vocabulary[entry.get("CVE_ID", "")] = (entry.findtext("CVE_VALUE") or "").strip()
    for entry in root.iterfind("CONTROLLED_VOCABULARY/CV_ENTRY"):  # EAF before 2.8
        vocabulary[entry.get("CVE_ID", entry.text or "")] = (entry.text or "").strip()
    media = tuple(m.get("MEDIA_URL", "") for m in root.iterfind("HEADER/MEDIA_DESCRIPTOR"))
    properties = {p.get("NAME", ""): p.text or "" for p in root.iterfind("HEADER/PROPERTY")}
    return EafDocument(media, tiers, vocabulary, properties)


def read_properties(path: str | Path) -> dict[str, str]:
    """The HEADER's properties only (what an up-to-date check needs), without reading the tiers."""
    try:
        for _, element in ET.iterparse(path, events=("end",)):
            if element.tag == "HEADER":
                return {p.get("NAME", ""): p.text or "" for p in element.iterfind("PROPERTY")}
    except (ET.ParseError, OSError):
        return {}
    return {}


def choose_tier(doc: EafDocument, path: str | Path, tier: str | None = None) -> str:
    """The tier to read: the one named, else the only one with annotations, else ours (`gesture`)."""
    if tier is not None:
        if tier not in doc.tiers:
            raise EafError(f"{path} has no tier {tier!r}; its tiers: {', '.join(doc.tiers) or 'none'}.")
        return tier
    filled = [t for t, anns in doc.tiers.items() if anns]
    if len(filled) == 1:
        return filled[0]
    if DEFAULT_TIER in doc.tiers:
        return DEFAULT_TIER
    if not filled:
        raise EafError(f"{path} holds no time-aligned annotations.")
    raise EafError(f"{path} has several tiers ({', '.join(filled)}); name one with --truth-tier.")


def wanted(options: AnnotateOptions) -> bool:
    return True


def settings_text(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


def write(path: Path, annotation: VideoAnnotation) -> None:
    """The video's segments as one tier, the settings that made them in the header."""
    a = annotation
    properties = {SETTINGS_PROPERTY: settings_text(a.settings)}
    write_eaf(path, a.segments, a.video, a.ids, a.names, properties=properties, date=a.date, key=a.key)
