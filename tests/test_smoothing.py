"""Temporal smoothing of probabilities, defined in time: parsing `--smooth` (and reading the old per-frame
forms), the EMA and window maths at each frame's time, reset, the same result whatever the frame rate or
frames skipped, and the default's promise (one wrong frame does not flip the label, a real change takes over
within a few frames)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mgc_edge.runtime.smoothing import (
    DEFAULT_SMOOTH,
    REFERENCE_FPS,
    Smoother,
    SmoothingError,
    SmoothSpec,
    parse_smooth,
)


def onehot(i: int, n: int = 3, p: float = 0.9) -> np.ndarray:
    v = np.full(n, (1 - p) / (n - 1), np.float32)
    v[i] = p
    return v


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("ema:0.1s", SmoothSpec("ema", 0.1)),
        ("EMA:250ms", SmoothSpec("ema", 0.25)),
        ("window:0.5s", SmoothSpec("window", 0.5)),
        ("mean:2s", SmoothSpec("window", 2.0)),
        ("off", SmoothSpec("off")),
        ("none", SmoothSpec("off")),
    ],
)
def test_parse_smooth(text: str, spec: SmoothSpec) -> None:
    assert parse_smooth(text) == spec and parse_smooth(text).note is None
    assert parse_smooth(str(spec)) == spec  # str() round-trips


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("ema:0.3", SmoothSpec("ema", float(f"{-1 / (REFERENCE_FPS * math.log(0.7)):.3g}"))),
        ("EMA:1e-1", SmoothSpec("ema", float(f"{-1 / (REFERENCE_FPS * math.log(0.9)):.3g}"))),
        ("window:6", SmoothSpec("window", 0.2)),
        ("mean:3", SmoothSpec("window", 0.1)),
        ("15", SmoothSpec("window", 0.5)),
        ("1", SmoothSpec("off")),
        ("ema:1", SmoothSpec("off")),
    ],
)
def test_old_per_frame_forms_are_read_at_the_reference_rate_with_a_note(text: str, spec: SmoothSpec) -> None:
    got = parse_smooth(text)
    assert got == spec
    assert got.note is not None and text in got.note and str(spec) in got.note and "seconds" in got.note


@pytest.mark.parametrize(
    "text", ["ema:0", "ema:1.5", "ema:x", "window:0", "window:2.5", "median:3", "", "-2", "ema:0s", "ema:-1s"]
)
def test_bad_smooth_values_are_one_sentence(text: str) -> None:
    with pytest.raises(SmoothingError, match=r"^--smooth must be .*\)\.$"):
        parse_smooth(text)


def test_ema_is_the_exponential_average_at_each_frames_time() -> None:
    tau = 0.2
    s = Smoother(f"ema:{tau}s")
    a, b = onehot(0), onehot(1)
    np.testing.assert_allclose(s.update(a, 1.0), a)
    w = 1 - math.exp(-0.1 / tau)  # 0.1 s later
    np.testing.assert_allclose(s.update(b, 1.1), w * b + (1 - w) * a, rtol=1e-5)
    w2 = 1 - math.exp(-0.3 / tau)  # a gap of 0.3 s weighs as three frames of 0.1 s
    first = w * b + (1 - w) * a
    np.testing.assert_allclose(s.update(b, 1.4), w2 * b + (1 - w2) * first, rtol=1e-5)


@pytest.mark.parametrize("spec", ["ema:0.2s", "window:0.4s"])
def test_the_same_smoothing_whatever_the_frame_rate_or_the_frames_skipped(spec: str) -> None:
    """The bug of --every N: a per-frame weight made the smoothing N times slower. In time, a step from one
    label to another is followed at the same moment whether frames come at 30 fps, every 5th of them, or at
    irregular times."""
    change = 1.0

    def switch_time(times: np.ndarray) -> float:
        s = Smoother(spec)
        for t in times:
            label = int(np.argmax(s.update(onehot(0 if t < change else 1), float(t))))
            if label == 1:
                return float(t)
        return math.inf

    fast = switch_time(np.arange(0, 3, 1 / 30))
    every5 = switch_time(np.arange(0, 3, 5 / 30))
    jittery = switch_time(np.sort(np.random.default_rng(0).uniform(0, 3, 120)))
    assert change < fast < change + 0.4
    assert abs(every5 - fast) <= 5 / 30 and abs(jittery - fast) <= 3 * 3 / 120 + 1 / 30


def test_window_mean_forgets_frames_older_than_the_window() -> None:
    s = Smoother("window:0.3s")
    seq = [onehot(0), onehot(1), onehot(2), onehot(1)]
    outs = [s.update(p, i * 0.1) for i, p in enumerate(seq)]
    np.testing.assert_allclose(outs[1], (seq[0] + seq[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(outs[3], (seq[1] + seq[2] + seq[3]) / 3, rtol=1e-6)
    np.testing.assert_allclose(outs[3].sum(), 1.0, rtol=1e-6)


def test_off_passes_probabilities_through_unchanged_and_as_a_copy() -> None:
    s = Smoother("off")
    p = onehot(2)
    out = s.update(p)
    np.testing.assert_array_equal(out, p)
    out[0] = 7
    assert p[0] != 7


@pytest.mark.parametrize("spec", ["ema:0.2s", "window:0.4s"])
def test_reset_forgets_the_past(spec: str) -> None:
    s = Smoother(spec)
    for _ in range(10):
        s.update(onehot(0))
    s.reset()
    np.testing.assert_allclose(s.update(onehot(1)), onehot(1), rtol=1e-6)


def test_default_ignores_one_wrong_frame_and_follows_a_change_within_three() -> None:
    s = Smoother(DEFAULT_SMOOTH)
    labels = [int(np.argmax(s.update(onehot(0)))) for _ in range(6)]
    labels.append(int(np.argmax(s.update(onehot(1, p=0.95)))))  # one confident wrong frame
    assert labels == [0] * 7
    after = [int(np.argmax(s.update(onehot(2)))) for _ in range(6)]
    assert after.index(2) <= 2 and after[after.index(2) :] == [2] * (6 - after.index(2))


def test_a_new_number_of_classes_starts_over() -> None:
    s = Smoother("ema:0.1s")
    s.update(onehot(0, n=3))
    np.testing.assert_allclose(s.update(onehot(4, n=5)), onehot(4, n=5), rtol=1e-6)


def test_time_going_back_starts_over() -> None:
    s = Smoother("ema:1s")
    s.update(onehot(0), 5.0)
    np.testing.assert_allclose(s.update(onehot(1), 0.0), onehot(1), rtol=1e-6)  # a file played again


def test_the_cli_default_is_the_library_default() -> None:
    from mgc_edge.cli import annotate, runtime

    assert runtime.DEFAULT_SMOOTH == DEFAULT_SMOOTH == str(parse_smooth(DEFAULT_SMOOTH))
    assert parse_smooth(DEFAULT_SMOOTH).note is None
    assert annotate.SMOOTH_HELP == runtime.SMOOTH_HELP  # one grammar, one help text
