"""The README's figures come from docs/figures.json: `scripts/readme_figures.py --check` holds on the committed
pair, and fails, naming the block, when a figure in the README is edited by hand."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "readme_figures.py"
README, FIGURES = ROOT / "README.md", ROOT / "docs" / "figures.json"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_figures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(readme: Path, figures: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--readme", str(readme), "--figures", str(figures), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_committed_readme_says_what_the_figures_file_says() -> None:
    proc = check(README, FIGURES, "--check")
    assert proc.returncode == 0, proc.stderr


def test_every_section_of_the_figures_file_says_when_where_and_on_what_it_was_measured() -> None:
    figures = json.loads(FIGURES.read_text(encoding="utf-8"))
    assert {"demo", "bench"} <= set(figures)
    for name, section in figures.items():
        assert re.fullmatch(r"[0-9a-f]{7,40}", section.get("commit") or ""), name
        assert re.match(r"\d{4}-\d\d-\d\dT", section.get("date") or ""), name
        assert section.get("machine") and section.get("cores"), name


def test_a_figure_edited_by_hand_fails_the_check_and_the_script_writes_it_back(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(README, readme)
    text = readme.read_text(encoding="utf-8")
    block = re.search(r"<!-- figures:demo-summary -->\n(.*?)<!-- /figures:demo-summary -->", text, re.DOTALL)
    assert block is not None
    figure = re.search(r"\d+\.\d %", block.group(1))
    assert figure is not None, block.group(1)
    start = block.start(1) + figure.start()
    edited = text[:start] + ("1" if text[start] != "1" else "2") + text[start + 1 :]
    readme.write_text(edited, encoding="utf-8")

    proc = check(readme, FIGURES, "--check")
    assert proc.returncode == 1
    sentences = [line for line in proc.stderr.splitlines() if "figures:" in line]
    assert len(sentences) == 1 and "figures:demo-summary" in sentences[0], proc.stderr
    assert readme.read_text(encoding="utf-8") == edited  # --check changes nothing

    assert check(readme, FIGURES).returncode == 0
    assert readme.read_text(encoding="utf-8") == text


def test_text_outside_the_blocks_is_the_writers_own(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# t\nHand-written 12.5 %.\n<!-- figures:bench-gpu -->\nold\n<!-- /figures:bench-gpu -->\nEnd 3 s.\n",
        encoding="utf-8",
    )
    figures = tmp_path / "figures.json"
    figures.write_text("{}", encoding="utf-8")
    proc = check(readme, figures, "--check")
    assert proc.returncode == 1 and "figures:bench-gpu" in proc.stderr
    assert check(readme, figures).returncode == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# t\nHand-written 12.5 %.\n") and text.endswith("End 3 s.\n")
    assert "No GPU figures recorded yet" in text and "old" not in text
    # Blocks the README lacks are named too, one sentence each.
    proc = check(readme, figures, "--check")
    assert proc.returncode == 1 and "no figures:demo-summary block" in proc.stderr


@pytest.mark.parametrize(
    "text, words",
    [
        ("<!-- figures:demo-summary -->\nx\n", "has no partner"),
        ("<!-- figures:nosuch -->\nx\n<!-- /figures:nosuch -->\n", "no renderer knows: nosuch"),
    ],
)
def test_a_broken_block_is_one_sentence_and_exit_2(tmp_path: Path, text: str, words: str) -> None:
    readme, figures = tmp_path / "README.md", tmp_path / "figures.json"
    readme.write_text(text, encoding="utf-8")
    figures.write_text("{}", encoding="utf-8")
    for extra in ((), ("--check",)):
        proc = check(readme, figures, *extra)
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert readme.read_text(encoding="utf-8") == text


def test_the_blocks_follow_the_figures() -> None:
    rf = load_script()
    figures = json.loads(FIGURES.read_text(encoding="utf-8"))
    demo = figures["demo"]
    summary = rf.demo_summary(figures)
    assert rf.pct(demo["test"]["top1"]) in summary and rf.pct(demo["test"]["baseline_top1"]) in summary
    changed = {**figures, "demo": {**demo, "test": {**demo["test"], "top1": 0.123}}}
    assert "12.3 %" in rf.demo_summary(changed) and rf.pct(demo["test"]["top1"]) not in rf.demo_summary(
        changed
    )
    # Every precision the demo exported has a row in the parity table, every runtime it checked too.
    table = rf.parity_table(figures)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(demo["exports"]) + len(demo.get("runtimes", {"precision": 0})) - 1


def test_recording_a_section_keeps_the_others(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.figures import record
    finally:
        sys.path.remove(str(ROOT))
    path = tmp_path / "figures.json"
    record("demo", {"seconds": 1}, path)
    record("bench", {"x": 2}, path)
    record("demo", {"seconds": 3}, path)
    assert json.loads(path.read_text()) == {"bench": {"x": 2}, "demo": {"seconds": 3}}


def test_the_bench_section_is_taken_from_the_result_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.figures import bench_figures
    finally:
        sys.path.remove(str(ROOT))
    machine = {"cpu": "Some CPU", "cores": 4, "gpu": None, "onnxruntime": "1", "opencv": "5", "torch": "2"}
    engines = {"ort_int8": {"p50_ms": 2.5, "b32_images_per_s": 900.0}, "ort_other": {"p50_ms": 1.0}}
    files = {
        "summary": {"date": "2026-01-02T03:04:05Z"},
        "infer": {"96": {"engines": engines}, "machine": machine},
        "annotate": {"model": "model.onnx", "annotate": {"fps": 300.0}, "webcam": {"fps": 100.0}},
    }
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
    got = bench_figures(tmp_path, gpu=False, measured={"commit": "abc1234", "uncommitted_changes": False})
    assert got["infer"] == {"96": {"ort_int8": {"p50_ms": 2.5, "b32_images_per_s": 900.0}}}
    assert got["annotate"]["annotate_fps"] == 300.0 and got["annotate"]["webcam_fps"] == 100.0
    assert (got["date"], got["commit"], got["cores"]) == ("2026-01-02T03:04:05Z", "abc1234", 4)
    assert "Some CPU" in got["machine"]
    assert "pipeline" not in got and "streams" not in got and "footprint" not in got  # not measured: left out
