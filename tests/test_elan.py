"""ELAN documents: what we write follows the EAF 3.0 schema's rules that ELAN relies on, an independent EAF
reader from the package registry (pympi-ling) reads it back, and our reader reads documents that reader
wrote (as a researcher's own ELAN files come to `annotate --truth`)."""

from __future__ import annotations

import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pympi
import pytest

from mgc_edge.runtime.recorded.outputs.eaf import EafError, choose_tier, read_eaf, read_properties, write_eaf
from mgc_edge.runtime.recorded.segments import Segment

IDS = ["1", "20", "32"]
NAMES = ["Turtle neck", "Moving torso", "Illustrative body language"]
SEGMENTS = [
    Segment(0, 14, 0.0, 1.0, "20", 0.91),
    Segment(15, 40, 1.0, 2.7333, "32", 0.66),
    Segment(60, 61, 4.0, 4.0004, "1", 0.5),  # shorter than a millisecond after rounding: still begin < end
]
# EAFv3.0.xsd: the children of ANNOTATION_DOCUMENT, in this order.
SCHEMA_ORDER = [
    "LICENSE", "HEADER", "TIME_ORDER", "TIER", "LINGUISTIC_TYPE", "LOCALE", "LANGUAGE", "CONSTRAINT",
    "CONTROLLED_VOCABULARY", "LEXICON_REF", "REF_LINK_SET", "EXTERNAL_REF",
]  # fmt: skip
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


@pytest.fixture()
def written(tmp_path: Path) -> tuple[Path, Path]:
    media = tmp_path / "videos" / "session one.mp4"
    media.parent.mkdir()
    media.write_bytes(b"not decoded here")
    eaf = write_eaf(tmp_path / "out" / "session one.eaf", SEGMENTS, media, IDS, NAMES, properties={"k": "v"})
    return eaf, media


def test_the_document_follows_the_schema_rules(written: tuple[Path, Path]) -> None:
    eaf, media = written
    root = ET.parse(eaf).getroot()
    # Root and header.
    assert root.tag == "ANNOTATION_DOCUMENT"
    assert root.get("VERSION") == "3.0" and root.get("FORMAT") == "3.0" and root.get("AUTHOR")
    assert datetime.fromisoformat(root.get("DATE")).tzinfo is not None  # xsd:dateTime with an offset
    assert root.get(f"{XSI}noNamespaceSchemaLocation") == "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
    tags = [child.tag for child in root]
    assert tags == sorted(tags, key=SCHEMA_ORDER.index)
    assert tags.count("HEADER") == 1 and tags.count("TIME_ORDER") == 1
    header = root.find("HEADER")
    assert header.get("TIME_UNITS") == "milliseconds"
    assert [c.tag for c in header] == sorted(
        (c.tag for c in header), key=["MEDIA_DESCRIPTOR", "PROPERTY"].index
    )
    # The media descriptor: an absolute file URL, a MIME type and a URL relative to the .eaf that finds it.
    (md,) = header.findall("MEDIA_DESCRIPTOR")
    assert md.get("MIME_TYPE") == "video/mp4"
    assert (
        Path(urllib.request.url2pathname(urllib.parse.urlparse(md.get("MEDIA_URL")).path)) == media.resolve()
    )
    rel = urllib.parse.unquote(md.get("RELATIVE_MEDIA_URL"))
    assert rel.startswith(("./", "../")) and (eaf.parent / rel).resolve() == media.resolve()
    # Time slots: unique ids, whole milliseconds, in time order.
    slots = root.findall("TIME_ORDER/TIME_SLOT")
    ids = [s.get("TIME_SLOT_ID") for s in slots]
    values = [int(s.get("TIME_VALUE")) for s in slots]
    assert len(set(ids)) == len(ids) and values == sorted(values)
    slot_value = dict(zip(ids, values))
    # Each alignable annotation: a unique id, two existing slots, the first earlier than the second.
    anns = root.findall("TIER/ANNOTATION/ALIGNABLE_ANNOTATION")
    assert len(anns) == len(SEGMENTS)
    assert len({a.get("ANNOTATION_ID") for a in anns}) == len(anns)
    for a, s in zip(anns, SEGMENTS):
        begin, end = slot_value[a.get("TIME_SLOT_REF1")], slot_value[a.get("TIME_SLOT_REF2")]
        assert begin < end
        assert begin == round(s.start_time * 1000)
    # References resolve: the tier's type, the type's vocabulary, each CVE_REF, each LANG_REF.
    tier = root.find("TIER")
    types = {t.get("LINGUISTIC_TYPE_ID"): t for t in root.findall("LINGUISTIC_TYPE")}
    lt = types[tier.get("LINGUISTIC_TYPE_REF")]
    assert lt.get("TIME_ALIGNABLE") == "true"
    cv = {c.get("CV_ID"): c for c in root.findall("CONTROLLED_VOCABULARY")}[
        lt.get("CONTROLLED_VOCABULARY_REF")
    ]
    entries = {e.get("CVE_ID") for e in cv.findall("CV_ENTRY_ML")}
    assert {a.get("CVE_REF") for a in anns} <= entries and len(entries) == len(IDS)
    languages = {lang.get("LANG_ID") for lang in root.findall("LANGUAGE")}
    assert {e.get("LANG_REF") for e in root.iter() if e.get("LANG_REF")} <= languages


def test_an_independent_reader_reads_it_back(written: tuple[Path, Path]) -> None:
    eaf, media = written
    doc = pympi.Elan.Eaf(str(eaf))
    assert list(doc.get_tier_names()) == ["gesture"]
    got = sorted(doc.get_annotation_data_for_tier("gesture"))
    assert got == [
        (0, 1000, "Moving torso"),
        (1000, 2733, "Illustrative body language"),
        (4000, 4001, "Turtle neck"),
    ]
    (md,) = doc.media_descriptors
    assert md["MEDIA_URL"] == media.resolve().as_uri() and md["MIME_TYPE"] == "video/mp4"
    entries = doc.get_cv_entries(list(doc.get_controlled_vocabulary_names())[0])
    assert {k: v[0][0][0] for k, v in entries.items()} == {
        "label-1": NAMES[0],
        "label-20": NAMES[1],
        "label-32": NAMES[2],
    }


def test_our_reader_recovers_the_label_ids_and_properties(written: tuple[Path, Path]) -> None:
    eaf, _ = written
    doc = read_eaf(eaf)
    anns = doc.tiers["gesture"]
    assert [doc.label_of(a) for a in anns] == ["20", "32", "1"]
    assert [a.value for a in anns] == [NAMES[1], NAMES[2], NAMES[0]]
    assert read_properties(eaf)["k"] == "v" and doc.properties["k"] == "v"


def test_our_reader_reads_a_document_another_tool_wrote(tmp_path: Path) -> None:
    other = pympi.Elan.Eaf(author="a researcher")  # pympi writes EAF 2.8, with an empty default tier
    other.add_tier("hands")
    other.add_annotation("hands", 1000, 1500, "20")
    other.add_annotation("hands", 100, 900, "Touching jaw")
    pympi.Elan.to_eaf(str(tmp_path / "theirs.eaf"), other)
    doc = read_eaf(tmp_path / "theirs.eaf")
    assert choose_tier(doc, "theirs.eaf") == "hands"
    assert [(a.start_ms, a.end_ms, a.value, doc.label_of(a)) for a in doc.tiers["hands"]] == [
        (100, 900, "Touching jaw", None),
        (1000, 1500, "20", None),
    ]
    other.add_tier("gaze")
    other.add_annotation("gaze", 0, 10, "left")
    pympi.Elan.to_eaf(str(tmp_path / "two.eaf"), other)
    with pytest.raises(EafError, match="several tiers"):
        choose_tier(read_eaf(tmp_path / "two.eaf"), "two.eaf")
    assert choose_tier(read_eaf(tmp_path / "two.eaf"), "two.eaf", "gaze") == "gaze"


@pytest.mark.parametrize(
    "content, message",
    [(b"not xml", "not a readable ELAN"), (b"<ANNOTATIONS/>", "its root is <ANNOTATIONS>")],
)
def test_a_file_that_is_not_an_eaf_is_one_sentence(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.eaf"
    path.write_bytes(content)
    with pytest.raises(EafError, match=message):
        read_eaf(path)
    with pytest.raises(EafError, match="does not exist"):
        read_eaf(tmp_path / "missing.eaf")
