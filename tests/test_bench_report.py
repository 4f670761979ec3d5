"""A missed int8 target is explained by what the run measured (the two latencies, the kernels ONNX Runtime ran, the
weight bytes, how each round started, the load), never by a guess about the hardware."""

from __future__ import annotations

from typing import Any

from benchmarks.report import missed_notes, summary_of


def results(quiet: bool, int8_ms: float = 3.1, ops: dict[str, int] | None = None) -> dict[str, Any]:
    engine = {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "b32_images_per_s": 1.0}
    return {
        "demo_size": 96,
        "quick": False,
        "machine": {"cpu_flags": ["avx2"], "load_average_at_start": [3.5, 2.0, 1.0], "cores": 2, "gpu": None},
        "infer": {
            "96": {
                "quiet_start": quiet,
                "engines": {
                    "torch_eager": {**engine, "p50_ms": 14.0},
                    "ort_fp32": {**engine, "p50_ms": 8.0, "quiet_wait_ms": [20.0, 61.0] if quiet else None},
                    "ort_int8": {
                        **engine,
                        "p50_ms": int8_ms,
                        "quiet_wait_ms": [20.0, 45.0] if quiet else None,
                    },
                },
                "exported": {"fp32": {"size_mb": 228.6}, "int8": {"size_mb": 57.7}},
                "int8_cpu_ops": ops
                if ops is not None
                else {"QLinearConv": 4, "QGemm": 2, "Conv": 1, "Gemm": 1, "DequantizeLinear": 8},
                "int8_over_fp32_b1": int8_ms / 8.0,
                "ort_fp32_over_torch_b1": 8.0 / 14.0,
            }
        },
    }


def note(r: dict[str, Any]) -> str:
    (line,) = [n for n in missed_notes(summary_of(r), r) if n.startswith("`int8_over_fp32_b1`")]
    return line


def test_the_note_gives_the_measured_latencies_kernels_bytes_and_load() -> None:
    line = note(results(quiet=True))
    assert "= 0.388 (target 0.35)" in line
    assert "int8 took 3.10 ms a frame at batch 1 against fp32's 8.00 ms" in line
    assert "4 QLinearConv, 2 QGemm" in line and "1 Conv and 1 Gemm" in line
    assert "58 MB in int8 against 229 MB in fp32" in line
    assert "int8 waited up to 45 ms" in line
    assert "[3.5, 2.0, 1.0]" in line
    assert (
        "VNNI" not in line
    )  # the cpu flags are not a reason: the old text blamed them on a CPU that had them


def test_the_note_says_when_the_rounds_ran_beside_the_engine_before() -> None:
    assert "straight after the engine before" in note(results(quiet=False))


def test_the_note_says_when_the_quantized_layers_were_not_fused() -> None:
    line = note(results(quiet=True, ops={"Conv": 5, "Gemm": 3, "DequantizeLinear": 31}))
    assert "DequantizeLinear + float kernels" in line


def test_a_met_target_has_no_note() -> None:
    r = results(quiet=True, int8_ms=2.3)
    assert not [n for n in missed_notes(summary_of(r), r) if n.startswith("`int8_over_fp32_b1`")]
