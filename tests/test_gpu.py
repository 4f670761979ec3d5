"""The flow on a real GPU: CUDA training (bf16 autocast, channels-last, graphed batches, with the augmentation
compiled or not), export of every precision behind its gate on the CUDA provider, `verify`, `webcam` and
`predict --device cuda`, with the provider that really runs checked, and the opt-in I/O-bound path with its
batch-1 CUDA graph. Skipped where there is no GPU (CI); run with `pytest -m gpu` on one (on the GPU machine,
naming this file and tests/test_runtime_session.py: benchmarks/gpu_session.sh)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mgc_edge.cli import app
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.devices import CUDA, gpu_runtime_available

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for torch")
needs_ort_cuda = pytest.mark.skipif(
    not gpu_runtime_available(), reason="needs a GPU and ONNX Runtime's CUDA provider"
)


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory: pytest.TempPathFactory, synth_data: Path) -> Path:
    from mgc_edge.config import PreprocessSpec, TrainConfig
    from mgc_edge.train.loop import fit

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU for torch")
    run_dir = tmp_path_factory.mktemp("gpu") / "run"
    cfg = TrainConfig(
        data=str(synth_data),
        run_dir=str(run_dir),
        epochs=2,
        batch_size=32,
        preprocess=PreprocessSpec(size=(64, 64)),
        device="cuda",
        dropout=0.0,
    )
    return fit(cfg).run_dir


@needs_cuda
def test_cuda_training_steps_with_bf16_and_channels_last(cuda_run: Path) -> None:
    from mgc_edge.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(cuda_run / "best.pt")
    assert ckpt.config.device == "cuda" and ckpt.config.amp and ckpt.config.channels_last
    state = ckpt.state["model"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())  # fp32 master weights
    rows = (cuda_run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "nan" not in rows[-1]


@needs_cuda
@pytest.mark.parametrize("fuse", [False, True])
def test_graphed_batches_equal_the_eager_ones(synth_data: Path, tmp_path: Path, fuse: bool) -> None:
    """The CUDA-graph pipeline (side stream, double buffer) yields what the eager path computes, with the
    augmentation as one Triton kernel (as from FUSE_FROM_PIXELS up) or not."""
    from mgc_edge.config import PreprocessSpec
    from mgc_edge.data.cache import margin_size, open_cache, stored_spec
    from mgc_edge.data.dataset import Augment
    from mgc_edge.data.scan import scan_folder
    from mgc_edge.train.augment import BatchAugment
    from mgc_edge.train.batches import CachedBatches

    samples = list(scan_folder(synth_data, r"^(?P<group>[^.]+)\.").samples)
    spec = PreprocessSpec(size=(48, 48))
    cached = open_cache(synth_data, samples, stored_spec(spec, margin_size(spec.size)), "g", tmp_path)
    device = torch.device("cuda")

    def epoch(graphs: bool) -> tuple[list[torch.Tensor], list[torch.Tensor], bool]:
        b = CachedBatches(
            cached.images, [s.label for s in samples], spec, 64, device,
            augment=BatchAugment(Augment(), spec), seed=3, channels_last=True, graphs=graphs, fuse=fuse,
        )  # fmt: skip
        b.set_epoch(2)
        xs, ys = [], []
        for x, y in b:
            xs.append(x.clone())  # a graphed batch is reused two batches later
            ys.append(y.clone())
        assert b.augment_engine == ("kernel" if graphs and fuse else "eager"), (
            b._graphed and b._graphed.fuse_error
        )
        return xs, ys, b.graphed

    gx, gy, graphed = epoch(True)
    ex, ey, eager_graphed = epoch(False)
    assert graphed and not eager_graphed
    assert len(gx) == len(ex) == -(-len(samples) // 64)
    for a, b in zip(gx, ex):
        assert a.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4 if fuse else 1e-5)
    assert all(torch.equal(a, b) for a, b in zip(gy, ey))


@needs_cuda
@needs_ort_cuda
def test_every_precision_passes_its_gate_on_the_cuda_provider(cuda_run: Path, tmp_path: Path) -> None:
    from mgc_edge.export.onnx_export import ExportOptions, export_run
    from mgc_edge.export.verify import VerifyOptions

    result = export_run(
        cuda_run,
        ExportOptions(precisions=("all",), out=tmp_path, calib_images=64, check=VerifyOptions(device="cuda")),
    )
    assert result.ok, [m.report.failures() for m in result.models if m.report]
    for m in result.models:
        assert m.report.provider == CUDA and m.report.reference_device.startswith("cuda")
    fp32 = next(m for m in result.models if m.precision == "fp32").report
    assert fp32.agreement == 1.0 and fp32.probs_max_abs <= 1e-4  # true fp32 on both sides
    runner = CliRunner()
    for m in result.models:
        out = runner.invoke(  # --force: export's own report is replaced
            app, ["verify", str(m.path), "--checkpoint", str(cuda_run), "--device", "cuda", "--force"]
        )
        assert out.exit_code == 0, out.output
        result_line = json.loads(out.stdout.strip().splitlines()[-1])
        assert result_line["passed"] is True
        # PyTorch's side on CUDA is the one export stored, not computed again (export/reference.py).
        report = json.loads(Path(result_line["report"]).read_text())
        assert report["reference_file"].endswith(".reference.npz") and report["reference_device"] == "cuda:0"


@needs_cuda
@needs_ort_cuda
def test_webcam_and_predict_run_on_the_cuda_provider(
    cuda_run: Path, synth_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from mgc_edge.export.onnx_export import ExportOptions, export_run

    models = {m.precision: m.path for m in export_run(cuda_run, ExportOptions(precisions=("fp16", "int8"),
              out=tmp_path, calib_images=64)).models}  # fmt: skip
    video = synth_data.parent / "demo.mp4"
    runner = CliRunner()
    jsonl = tmp_path / "out.jsonl"
    out = runner.invoke(
        app,
        ["webcam", str(models["fp16"]), "-s", str(video), "--device", "cuda", "--display", "off",
         "--jsonl", str(jsonl)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert CUDA in out.output
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(len(lines))) and len(lines) > 10  # every frame, in order
    assert all(1 >= x["top"][0]["prob"] >= x["top"][-1]["prob"] >= 0 for x in lines)

    out = runner.invoke(
        app, ["webcam", str(models["int8"]), "-s", str(video), "--device", "cuda", "--display", "off",
              "--max-frames", "5"],
    )  # fmt: skip
    assert out.exit_code == 0 and "--precision fp16" in out.output  # int8 on CUDA: told what to use
    # The warm-up's try of a CUDA graph, which an int8 model refuses, prints no ONNX Runtime error on stderr
    assert "graph capture" not in capfd.readouterr().err

    csv = tmp_path / "pred.csv"
    out = runner.invoke(
        app, ["predict", str(models["fp16"]), str(synth_data), "-o", str(csv), "--device", "cuda"]
    )
    assert out.exit_code == 0, out.output
    rows = csv.read_text().splitlines()
    assert rows[0] == "filename,class" and len(rows) > 100


@needs_ort_cuda
def test_batch_one_is_a_cuda_graph_and_matches_batched(tmp_path: Path) -> None:
    from onnx_helpers import tiny_onnx

    clf = Classifier(tiny_onnx(tmp_path / "tiny.onnx"), device="cuda", io_binding=True)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(6)]
    batched = clf.predict(frames)
    ones = np.concatenate([clf.predict(f) for f in frames])
    assert clf.graphed, clf._runner.graph_error
    assert clf.streamed, clf._runner.stream_error  # on its own stream, synchronised once a call
    np.testing.assert_allclose(ones, batched, atol=1e-5)
