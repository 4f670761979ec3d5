"""Install footprint: the size on disk of a virtual environment with the base install (the edge runtime,
`pip install .`) beside one with the `[train]` extra.

The runtime venv is made fresh in a temporary folder (pip's own cache and the registry make it quick); the
`[train]` figure is the venv running the benchmark (`make bench` uses the project's `.venv` with
`.[train,dev]`: the dev tools are small beside torch). Making venvs takes minutes, so the result is cached in benchmarks/results/footprint.json, keyed by
the dependency lines of pyproject.toml and the Python version: `make bench` measures again only when those
change (or with --footprint fresh).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, read_result

NOT_SOURCES = (".venv*", ".git", "runs", "demo", "build", "*.egg-info", "__pycache__", ".*_cache", "results")


def dir_size(path: Path) -> int:
    """Bytes of the regular files under `path` (hard links counted once, symlinks not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen or not os.path.isfile(os.path.join(dirpath, name)):
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def dependency_key() -> str:
    """What decides the sizes: pyproject's dependencies and extras, the Python version and the platform."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        project = tomllib.loads(text)["project"]
        deps = [project.get("dependencies", []), project.get("optional-dependencies", {})]
        text = json.dumps(deps, sort_keys=True)
    except (ImportError, KeyError, ValueError):  # Python 3.10 has no tomllib: the whole file then
        pass
    text += f"\n{platform.python_version()} {platform.machine()} {sys.platform}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dev_tools() -> list[str]:
    try:
        import tomllib

        dev = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        return [re.split(r"[<>=!~; \[]", d, maxsplit=1)[0] for d in dev["optional-dependencies"]["dev"]]
    except (ImportError, KeyError, ValueError):
        return []


def _run(cmd: list[str]) -> None:
    """Run quietly (pip's warnings are noise here); on failure, show what it said."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def runtime_venv_bytes() -> tuple[int, float]:
    """A fresh venv with `pip install .` (no extras): its size and the seconds the install took."""
    with tempfile.TemporaryDirectory(prefix="mgc-bench-venv-") as tmp:
        venv = Path(tmp) / "venv"
        started = time.perf_counter()
        _run([sys.executable, "-m", "venv", str(venv)])
        # Copy the sources first: an in-tree build would write build/ and *.egg-info into the checkout.
        src = Path(tmp) / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCES))
        _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                str(src),
            ]
        )
        seconds = time.perf_counter() - started
        return dir_size(venv), seconds


def bench_footprint(mode: str = "cached") -> dict[str, Any]:
    """Sizes in MB and their ratio; `mode` is cached (reuse a result with the same dependency key), fresh,
    or skip (report the cached result if any, never build)."""
    key = dependency_key()
    old = read_result("footprint")
    if mode != "fresh" and old and old.get("dependency_key") == key:
        return {**old, "from_cache": True}
    if mode == "skip":
        return {"skipped": True, "runtime_install_over_train": None, "dependency_key": key}
    train_venv = Path(sys.prefix)  # the venv running the benchmark: it has [train], or torch would not import
    runtime_bytes, seconds = runtime_venv_bytes()
    train_bytes = dir_size(train_venv)
    return {
        "dependency_key": key,
        "runtime_venv_mb": runtime_bytes / 1e6,
        "train_venv_mb": train_bytes / 1e6,
        "runtime_install_seconds": seconds,
        "runtime_install_over_train": runtime_bytes / train_bytes,
        "how": "runtime: a fresh venv + `pip install .` of a copy of this checkout; train: the venv running the "
        f"benchmark ({train_venv}, `.[train,dev]`, dev being {', '.join(_dev_tools()) or 'nothing'}, small "
        "beside torch); file sizes summed, hard links once",
        "from_cache": False,
    }
