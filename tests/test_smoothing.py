"""Temporal smoothing of probabilities: parsing `--smooth`, the EMA and window maths, reset, and the
default's promise (one wrong frame does not flip the label, a real change takes over within a few frames)."""

from __future__ import annotations

import numpy as np
import pytest

from mgc_edge.runtime.smoothing import DEFAULT_SMOOTH, Smoother, SmoothingError, SmoothSpec, parse_smooth


def onehot(i: int, n: int = 3, p: float = 0.9) -> np.ndarray:
    v = np.full(n, (1 - p) / (n - 1), np.float32)
    v[i] = p
    return v


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("ema:0.3", SmoothSpec("ema", 0.3)),
        ("EMA:1e-1", SmoothSpec("ema", 0.1)),
        ("window:5", SmoothSpec("window", 5)),
        ("mean:4", SmoothSpec("window", 4)),
        ("7", SmoothSpec("window", 7)),
        ("1", SmoothSpec("off")),
        ("off", SmoothSpec("off")),
        ("ema:1", SmoothSpec("off")),
    ],
)
def test_parse_smooth(text: str, spec: SmoothSpec) -> None:
    assert parse_smooth(text) == spec
    assert parse_smooth(str(spec)) == spec  # str() round-trips


@pytest.mark.parametrize(
    "text", ["ema:0", "ema:1.5", "ema:x", "window:0", "window:2.5", "median:3", "", "-2"]
)
def test_bad_smooth_values_are_one_sentence(text: str) -> None:
    with pytest.raises(SmoothingError, match=r"^--smooth must be .*\.$"):
        parse_smooth(text)


def test_ema_is_the_exponential_average_and_starts_at_the_first_frame() -> None:
    s = Smoother("ema:0.5")
    a, b = onehot(0), onehot(1)
    np.testing.assert_allclose(s.update(a), a)
    np.testing.assert_allclose(s.update(b), 0.5 * b + 0.5 * a, rtol=1e-6)
    np.testing.assert_allclose(s.update(b), 0.75 * b + 0.25 * a, rtol=1e-6)


def test_window_mean_forgets_frames_older_than_the_window() -> None:
    s = Smoother("window:3")
    seq = [onehot(0), onehot(1), onehot(2), onehot(1)]
    outs = [s.update(p) for p in seq]
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


@pytest.mark.parametrize("spec", ["ema:0.2", "window:4"])
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
    s = Smoother("ema:0.1")
    s.update(onehot(0, n=3))
    np.testing.assert_allclose(s.update(onehot(4, n=5)), onehot(4, n=5), rtol=1e-6)


def test_the_cli_default_is_the_library_default() -> None:
    from mgc_edge.cli import runtime

    assert runtime.DEFAULT_SMOOTH == DEFAULT_SMOOTH == str(parse_smooth(DEFAULT_SMOOTH))
