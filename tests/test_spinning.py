"""How ONNX Runtime's idle intra-op threads wait: each `spinning` mode reaches the session's options, and the live
commands open their sessions with `LIVE_SPINNING` while the others keep ONNX Runtime's default."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_helpers import tiny_onnx

from benchmarks.loop import live_spinning
from mgc_edge.runtime import host as S
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.load import load_classifier

ALLOW = "session.intra_op.allow_spinning"
STOP = "session.force_spinning_stop"


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


def entries(clf: Classifier) -> dict[str, str]:
    """The spinning entries of the options the session was made with (absent: ONNX Runtime's default)."""
    options = clf.session.get_session_options()
    out = {}
    for key in (ALLOW, STOP):
        try:
            out[key] = options.get_session_config_entry(key)
        except RuntimeError:  # not set
            pass
    return out


@pytest.mark.parametrize(
    ("spinning", "mode", "want"),
    [
        ("on", "on", {}),
        (True, "on", {}),
        ("run", "run", {STOP: "1"}),
        ("off", "off", {ALLOW: "0"}),
        (False, "off", {ALLOW: "0"}),
    ],
)
def test_each_spinning_mode_reaches_the_session_options(
    model: Path, spinning: bool | str, mode: str, want: dict[str, str]
) -> None:
    clf = Classifier(model, device="cpu", threads=2, spinning=spinning)
    assert clf.spinning == mode
    assert entries(clf) == want


def test_an_unknown_spinning_mode_is_refused(model: Path) -> None:
    with pytest.raises(ValueError, match="spinning must be one of on, run, off"):
        Classifier(model, device="cpu", spinning="sometimes")


def test_the_live_commands_use_the_live_mode_and_the_others_the_default(model: Path) -> None:
    live, _ = load_classifier(model, "cpu", 2, True, lambda _: None)
    other, _ = load_classifier(model, "cpu", 2, False, lambda _: None)
    assert live.spinning == S.LIVE_SPINNING and other.spinning == "on"


@pytest.mark.parametrize("mode", S.SPINNING)
def test_the_benchmark_opens_the_live_loop_with_each_mode_in_turn(model: Path, mode: str) -> None:
    before = S.LIVE_SPINNING
    with live_spinning(mode):
        live, _ = load_classifier(model, "cpu", 2, True, lambda _: None)
    assert live.spinning == mode
    assert S.LIVE_SPINNING == before
