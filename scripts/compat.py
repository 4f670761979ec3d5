"""`make test-latest`'s last word: one row for COMPAT.md saying which versions the suite ran on today, beside the
lock's. Usage: compat.py LOCKED_PYTHON LATEST_PYTHON JUNIT_XML (the venvs' interpreters, pytest's report)."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LIST = "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def versions(python: str) -> dict[str, str]:
    """Every distribution installed in the venv of `python`, by canonical name."""
    out = subprocess.run([python, "-c", LIST], capture_output=True, text=True, check=True).stdout
    return {canonical(k): v for k, v in json.loads(out).items()}


def direct(pyproject: Path) -> list[str]:
    """The packages pyproject.toml names, base and every extra, in its order (markers and ranges dropped)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    names = [canonical(re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0]) for r in reqs]
    return list(dict.fromkeys(names))


def outcome(junit: Path) -> str:
    """'N passed, M skipped' or the failures, from pytest's JUnit report (missing when pytest never ran)."""
    if not junit.exists():
        return "did not run"
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    bad = [f"{counts[k]} {k}" for k in ("failures", "errors") if counts[k]]
    return ", ".join([*bad, f"{passed} passed", f"{counts['skipped']} skipped"])


def main(locked_python: str, latest_python: str, junit: str) -> None:
    locked, latest = versions(locked_python), versions(latest_python)
    cells = []
    for name in direct(ROOT / "pyproject.toml"):
        if name in latest:
            was = locked.get(name)
            cells.append(f"{name} {latest[name]}" + ("" if was == latest[name] else f" (lock {was})"))
    moved = sum(1 for k, v in latest.items() if k in locked and locked[k] != v) - sum(
        1 for c in cells if "(lock" in c
    )
    py = subprocess.run(
        [latest_python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    today = datetime.date.today().isoformat()
    print("\nCOMPAT.md row (newest versions the ranges allow, against uv.lock):")
    print(f"| {today} | {py} | {outcome(Path(junit))} | {', '.join(cells)}; {moved} other packages moved |")


if __name__ == "__main__":
    main(*sys.argv[1:4])
