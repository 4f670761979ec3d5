"""The torch-free ONNX Runtime wrapper: metadata, layout checks, providers, predictions."""

from __future__ import annotations

import ctypes
import gc
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_helpers import set_props, tiny_onnx
from rich.console import Console

from mgc_edge.cli.terminal import say_classifier
from mgc_edge.errors import UserError
from mgc_edge.metadata import MetadataError
from mgc_edge.preprocess import PreprocessError, preprocess
from mgc_edge.runtime import host
from mgc_edge.runtime.model import classifier as S
from mgc_edge.runtime.model import devices as D
from mgc_edge.runtime.model.classifier import Classifier, ModelFileError
from mgc_edge.runtime.model.devices import DeviceError
from mgc_edge.runtime.model.pinned import PinnedPool
from mgc_edge.runtime.model.scores import softmax

NO_GPU = D.cuda_device_count() == 0


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_classifier_reads_everything_from_the_metadata(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    assert clf.labels.ids == ("1", "2", "3")
    assert clf.spec.size == (16, 16)
    assert clf.metadata.arch == "tiny" and clf.metadata.precision == "fp32"
    assert clf.providers == ("CPUExecutionProvider",) and clf.device == "cpu"
    assert "tiny" in repr(clf)


def test_predict_matches_logits_of_the_shared_preprocess(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    batch = frames(5)
    probs = clf.predict(batch)
    assert probs.shape == (5, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(probs, softmax(clf.logits(preprocess(batch, clf.spec))))
    # One frame alone, or as part of a batch: the same answer (the batch axis is dynamic).
    np.testing.assert_allclose(clf.predict(batch[2]), probs[2:3], atol=1e-6)


def test_classify_gives_top_k_with_human_names(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    (probs,) = clf.predict(frames(1))
    pred = clf.top(probs, k=2)
    assert len(pred.indices) == 2 and pred.probs[0] >= pred.probs[1]
    assert pred.indices[0] == int(np.argmax(probs)) and pred.ids[0] == clf.labels.ids[pred.indices[0]]
    assert pred.names[0] == f"class {pred.ids[0]}"
    assert len(clf.top(clf.predict(frames(2))[0], k=99).indices) == 3  # k is capped at the number of classes


def test_logits_refuses_a_batch_of_the_wrong_shape(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    with pytest.raises(PreprocessError, match=r"\[N, 3, 16, 16\]"):
        clf.logits(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(PreprocessError):
        clf.logits(np.zeros((3, 16, 16), np.float32))
    assert clf.logits(np.zeros((0, 3, 16, 16), np.float32)).shape == (0, 3)


def test_warmup_runs_the_model_on_zeros_of_the_batch_size(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clf = Classifier(model, device="cpu")
    fed: list[np.ndarray] = []
    real_run = clf.session.run

    def run(names, feeds):  # noqa: ANN001, ANN202 (ONNX Runtime's signature)
        fed.append(feeds["images"])
        return real_run(names, feeds)

    monkeypatch.setattr(clf.session, "run", run)
    seconds = clf.warmup(2, runs=3)
    assert [x.shape for x in fed] == [(2, 3, 16, 16)] * 3
    assert all(x.dtype == np.float32 and not x.any() for x in fed)
    assert seconds > 0
    # Warming up changes nothing about the answers.
    batch = frames(2)
    np.testing.assert_array_equal(clf.predict(batch), Classifier(model, device="cpu").predict(batch))


def test_top_orders_classes_and_breaks_ties_by_index(model: Path) -> None:
    clf = Classifier(model, device="cpu")
    pred = clf.top(np.array([0.25, 0.5, 0.25], np.float32), k=3)
    assert pred.indices == (1, 0, 2) and pred.ids == ("2", "1", "3")
    assert pred.names == ("class 2", "class 1", "class 3") and pred.probs == (0.5, 0.25, 0.25)
    assert clf.top(np.array([0.1, 0.2, 0.7]), k=0).indices == (2,)  # at least one


def test_softmax_is_stable_for_huge_logits() -> None:
    p = softmax(np.array([[1e4, 0.0, -1e4]], np.float32))
    assert np.isfinite(p).all() and p[0, 0] == pytest.approx(1.0)


def test_a_model_without_our_metadata_is_refused(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "plain.onnx", metadata=False)
    with pytest.raises(MetadataError, match="no mgc-edge metadata"):
        Classifier(path, device="cpu")


def test_a_model_with_another_layout_is_refused(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "x.onnx", input_name="x")
    with pytest.raises(MetadataError, match="layout"):
        Classifier(path, device="cpu")
    path = tiny_onnx(tmp_path / "size.onnx", size=(16, 16))
    from onnx_helpers import set_props

    set_props(path, path, preprocess='{"size": [32, 32]}')
    with pytest.raises(MetadataError, match="input shape"):
        Classifier(path, device="cpu")


def test_missing_and_damaged_model_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        Classifier(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelFileError, match="not a model ONNX Runtime can load"):
        Classifier(junk, device="cpu")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--device", "cpu"], "is not a model ONNX Runtime can load"),
        (["--device", "gpu"], "--device must be"),
    ],
)
def test_model_and_device_errors_end_in_one_sentence_and_exit_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    from typer.testing import CliRunner

    from mgc_edge.cli import app

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 10)
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    image.write_bytes(b"")
    out = str(tmp_path / "out.csv")
    result = CliRunner().invoke(app, ["predict", str(junk), str(image.parent), "-o", out, *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in result.output
    assert isinstance(ModelFileError("x"), UserError) and isinstance(DeviceError("x"), UserError)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0", "", "auto:1", "trt"])
def test_bad_device_names_are_refused(device: str) -> None:
    with pytest.raises(DeviceError, match="--device"):
        D.parse_device(device)
    assert D.parse_device("CUDA:1") == ("cuda", 1)
    assert D.parse_device("tensorrt") == ("tensorrt", 0) and D.parse_device("tensorrt:2") == ("tensorrt", 2)


def test_gpu_providers_ask_for_heuristic_convolution_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: [D.TENSORRT, D.CUDA, D.CPU])
    cuda = D.choose_providers("cuda:1")
    want = {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
    assert cuda[0] == (D.CUDA, want) and cuda[-1] == D.CPU
    # TF32 only where asked: the CUDA provider's own default (on) moves fp32 probabilities by ~1e-3.
    assert D.choose_providers("cuda", tf32=True)[0][1]["use_tf32"] == "1"
    # Options given (the benchmark's variants) go over ours.
    given = D.choose_providers("cuda", {"prefer_nhwc": "1", "cudnn_conv_algo_search": "EXHAUSTIVE"})[0][1]
    assert given["prefer_nhwc"] == "1" and given["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    trt = D.choose_providers("tensorrt")
    assert [p if isinstance(p, str) else p[0] for p in trt] == [D.TENSORRT, D.CUDA, D.CPU]
    assert trt[0][1]["trt_engine_cache_enable"] is True
    assert D.choose_providers("cpu") == [D.CPU]
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: [D.CUDA, D.CPU])
    with pytest.raises(DeviceError, match="TensorRT"):
        D.choose_providers("tensorrt")


def test_live_threads_leave_cores_for_capture_and_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "usable_cores", lambda: 8)
    assert host.live_threads() == 6 and host.live_threads(reserve=1) == 7
    monkeypatch.setattr(host, "usable_cores", lambda: 2)
    assert host.live_threads() == 1  # never zero


_REAL_SESSION = S.ort.InferenceSession


@pytest.fixture()
def gpu_box_without_libraries(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A box whose driver reports a GPU and whose ONNX Runtime lists CUDA and TensorRT, but where every
    session quietly ends on the CPU, as ONNX Runtime does when their libraries are missing. Returns the
    provider lists the sessions were asked for."""
    asked: list[object] = []

    def session(path: str, sess_options: object = None, providers: object = None) -> object:
        asked.append(providers)
        return _REAL_SESSION(path, sess_options=sess_options, providers=[D.CPU])

    monkeypatch.setattr(S.ort, "InferenceSession", session)
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: [D.TENSORRT, D.CUDA, D.CPU])
    monkeypatch.setattr(D, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(D, "preload_cuda_libraries", lambda: None)
    return asked


def test_an_explicit_gpu_device_that_ends_on_the_cpu_is_an_error(
    model: Path, gpu_box_without_libraries: list[object]
) -> None:
    with pytest.raises(DeviceError, match=r"could not start CUDA .*--device cpu") as err:
        Classifier(model, device="cuda")
    assert "\n" not in str(err.value) and str(err.value).endswith(".")
    with pytest.raises(DeviceError, match="could not start TensorRT"):
        Classifier(model, device="tensorrt")
    first_asked = gpu_box_without_libraries[0][0]
    assert first_asked[0] == D.CUDA and first_asked[1]["cudnn_conv_algo_search"] == "HEURISTIC"


def test_auto_falls_back_to_the_cpu_and_says_so_once(
    model: Path, gpu_box_without_libraries: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=S.__name__):
        clf = Classifier(model, device="auto")
        clf.predict(frames(2))
    assert clf.device == "cpu" and clf.provider == D.CPU
    assert clf.fallback is not None and "running on the CPU" in clf.fallback
    assert len(caplog.records) == 1 and clf.fallback in caplog.records[0].getMessage()
    said: list[str] = []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=S.__name__):
        Classifier(model, device="auto", notify=said.append)
    assert len(said) == 1 and "running on the CPU" in said[0] and not caplog.records  # once, where asked


def test_cuda_without_a_cuda_provider_is_an_error(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(DeviceError, match="no CUDA provider"):
        Classifier(model, device="cuda")
    assert D.choose_providers("auto") == ["CPUExecutionProvider"]


def test_auto_on_a_box_without_a_gpu_stays_on_the_cpu_quietly(
    model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(D, "cuda_device_count", lambda: 0)
    with caplog.at_level(logging.WARNING, logger=S.__name__):
        clf = Classifier(model, device="auto")
    assert clf.device == "cpu" and not caplog.records


@pytest.mark.skipif(
    not NO_GPU or "CUDAExecutionProvider" not in S.ort.get_available_providers(),
    reason="needs onnxruntime-gpu on a box without a GPU",
)
def test_cuda_that_cannot_start_is_never_a_silent_fallback(
    model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Pretend the driver reports a GPU: ONNX Runtime then tries CUDA, fails here, and ends on the CPU.
    monkeypatch.setattr(D, "cuda_device_count", lambda: 1)
    with caplog.at_level(logging.WARNING, logger=S.__name__):
        clf = Classifier(model, device="auto")
    assert clf.device == "cpu"
    assert any("running on the CPU" in r.getMessage() for r in caplog.records)
    with pytest.raises(DeviceError, match="could not start CUDA"):
        Classifier(model, device="cuda")


def test_io_binding_gives_the_plain_run_bit_for_bit(model: Path) -> None:
    """The bound path (the GPU's) checked on the CPU: same logits for every batch size, buffers reused per
    size and bounded in number, and a batch shape never mixed up with another."""
    plain, bound = Classifier(model, device="cpu"), Classifier(model, device="cpu", io_binding=True)
    assert bound.io_bound and not plain.io_bound and not bound.graphed  # graphs are for CUDA only
    sizes = [1, 3, 1, 2, 5, 4, 7, 3, 1]  # more sizes than BOUND_SIZES: the oldest are dropped, not kept
    for i, n in enumerate(sizes):
        x = preprocess(frames(n, seed=i), plain.spec)
        np.testing.assert_array_equal(bound.logits(x), plain.logits(x))
    assert len(bound._runner._slots) == S.BOUND_SIZES
    batch = frames(3, seed=9)
    np.testing.assert_array_equal(bound.predict(batch), plain.predict(batch))
    np.testing.assert_array_equal(bound.preprocess(batch), preprocess(batch, bound.spec))
    bound.close()
    np.testing.assert_array_equal(bound.predict(batch), plain.predict(batch))  # unbound after close()


@pytest.mark.parametrize(("plain_ms", "bound_ms"), [(0.32, 0.25), (0.25, 0.32)])
def test_warmup_keeps_the_faster_path_for_batch_one(
    model: Path, monkeypatch: pytest.MonkeyPatch, plain_ms: float, bound_ms: float
) -> None:
    """The default on a GPU, checked on the CPU: warmup(1) times batch 1 plainly run and I/O bound, and the
    faster serves batch 1 from then on; other batch sizes always run plain, and the results never change."""
    monkeypatch.setattr(S, "AUTO_BINDING_DEVICES", ("cpu",))
    timed: list[tuple[object, object]] = []

    def time_both(a: Any, b: Any) -> tuple[float, float]:
        timed.append((a(), b()))  # both callables run batch 1
        return plain_ms, bound_ms

    monkeypatch.setattr(S, "time_both", time_both)
    plain = Classifier(model, device="cpu", io_binding=False)
    clf = Classifier(model, device="cpu")
    assert not clf.io_bound and clf.binding_choice is None  # nothing chosen before the warm-up
    clf.warmup(batch_size=2)
    assert clf.binding_choice is None and not timed  # a batched warm-up says nothing of batch 1
    clf.warmup()
    (a, b), choice = timed[0], clf.binding_choice
    np.testing.assert_array_equal(np.asarray(a)[0], b)  # the same input both ways
    assert choice is not None and (choice.plain_ms, choice.bound_ms) == (plain_ms, bound_ms)
    assert clf.io_bound == (bound_ms < plain_ms) == choice.bound
    words = choice.describe()
    assert words.startswith("batch 1 I/O bound: 0.25 ms" if choice.bound else "batch 1 plain: 0.25 ms")
    console = Console(file=io.StringIO(), width=300)
    say_classifier(clf, 0.01, console)
    assert f"on CPUExecutionProvider ({words}); warm-up 10 ms" in console.file.getvalue()  # the start-up line
    for n in (1, 3, 1):
        batch = frames(n, seed=n)
        np.testing.assert_array_equal(clf.predict(batch), plain.predict(batch))
    if clf.io_bound:
        assert list(clf._runner._slots) == [(1, 3, *clf.spec.size)]  # batch 3 ran plain
    clf.warmup()
    assert len(timed) == 1  # chosen once


def test_warmup_keeps_the_plain_path_where_the_bound_one_differs(
    model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mgc_edge.runtime.model.binding import BoundRunner

    monkeypatch.setattr(S, "AUTO_BINDING_DEVICES", ("cpu",))
    run = BoundRunner.run
    monkeypatch.setattr(BoundRunner, "run", lambda self, x: run(self, x) + 1.0)
    clf = Classifier(model, device="cpu")
    with caplog.at_level(logging.INFO, logger=S.__name__):
        clf.warmup()
    assert clf.binding_choice is None and not clf.io_bound
    assert any("differ from the plain session" in r.getMessage() for r in caplog.records)


def test_time_both_interleaves_its_rounds_and_gives_each_ones_median_in_ms() -> None:
    import time

    from mgc_edge.runtime.model.binding import time_both

    order: list[str] = []
    fast_ms, slow_ms = time_both(
        lambda: order.append("a"), lambda: (order.append("b"), time.sleep(0.002)), 3, 4
    )
    assert order == (["a"] * 4 + ["b"] * 4) * 3
    assert slow_ms >= 2.0 > fast_ms


def test_a_closed_classifier_binds_nothing_at_warmup(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "AUTO_BINDING_DEVICES", ("cpu",))
    clf = Classifier(model, device="cpu")
    clf.close()
    clf.warmup()
    assert clf.binding_choice is None and not clf.io_bound


def test_the_default_times_nothing_on_the_cpu(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "time_both", lambda a, b: pytest.fail("timed on the CPU"))
    clf = Classifier(model, device="cpu")
    clf.warmup()
    assert clf.binding_choice is None and not clf.io_bound


class _FakeDriver:
    """cudaHostAlloc / cudaFreeHost over plain memory, counting calls: the pool's bookkeeping without a GPU."""

    def __init__(self) -> None:
        self.buffers: list[ctypes.Array[ctypes.c_char]] = []
        self.freed: list[int] = []

    def cudaHostAlloc(self, ref: Any, nbytes: ctypes.c_size_t, flags: int) -> int:  # noqa: N802
        buf = ctypes.create_string_buffer(nbytes.value)
        self.buffers.append(buf)
        ctypes.cast(ref, ctypes.POINTER(ctypes.c_void_p))[0] = ctypes.addressof(buf)
        return 0

    def cudaFreeHost(self, ptr: ctypes.c_void_p) -> int:  # noqa: N802
        self.freed.append(ptr.value)
        return 0


class _FakeStreams(_FakeDriver):
    """The CUDA runtime's stream calls over host memory: a CPU session's bound buffers are host memory, so a
    queued copy is a memmove. `stale=True` drops the copy out (what a copy queued out of order would give)."""

    def __init__(self, stale: bool = False) -> None:
        super().__init__()
        self.stale, self.calls = stale, []

    def cudaStreamCreateWithFlags(self, ref: Any, flags: int) -> int:  # noqa: N802
        ctypes.cast(ref, ctypes.POINTER(ctypes.c_void_p))[0] = 0x5EED
        return 0

    def cudaMemcpyAsync(self, dst: Any, src: Any, n: Any, kind: int, stream: Any) -> int:  # noqa: N802
        self.calls.append(("copy in" if kind == 1 else "copy out", stream.value))
        if not (self.stale and kind == 2):
            ctypes.memmove(dst.value, src.value, n.value)
        return 0

    def cudaStreamSynchronize(self, stream: Any) -> int:  # noqa: N802
        self.calls.append(("sync", stream.value))
        return 0


@pytest.mark.parametrize("stale", [False, True])
def test_batch_one_on_its_own_stream_is_copied_in_run_and_copied_out_then_synchronised_once(
    model: Path, stale: bool
) -> None:
    """The CUDA graph's own stream, checked on the CPU through a fake CUDA runtime: the graph session gets
    the stream, a batch-1 call is one copy in, the run, one copy out and one synchronise, and its logits are
    the plain session's. A stream whose copy out comes back stale is caught when the graph is built: batch 1
    then runs on the session's own stream, still right."""
    from mgc_edge.runtime.model.binding import BoundRunner

    plain = Classifier(model, device="cpu")
    streams: list[int | None] = []

    def graph_session(stream: int | None) -> Any:
        streams.append(stream)
        return S.ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    runner = BoundRunner(plain.session, "cpu", 0, S.INPUT_NAME, S.OUTPUT_NAME, 3, graph_session=graph_session)
    runner._cuda = fake = _FakeStreams(stale)
    for seed in range(3):  # new inputs each call: a stale copy would repeat the last logits
        x = preprocess(frames(1, seed=seed), plain.spec)
        np.testing.assert_array_equal(runner.run(x), plain.logits(x))
    assert runner.graphed and runner.streamed != stale
    assert streams == ([0x5EED, None] if stale else [0x5EED])
    if stale:
        assert "differ" in runner.stream_error and fake.calls[-1][0] == "sync"  # none after the check
    else:
        call = [("copy in", 0x5EED), ("copy out", 0x5EED), ("sync", 0x5EED)]
        assert fake.calls[-9:] == call * 3 and runner.stream_error is None
    x = preprocess(frames(2), plain.spec)  # other sizes keep the plain bound path
    np.testing.assert_array_equal(runner.run(x), plain.logits(x))


def test_pinned_inputs_are_reused_only_once_every_view_is_gone() -> None:
    """A frame preprocessed ahead (a view of its pinned array) keeps its memory: the next frame gets other
    memory, and a block comes back for reuse only when the last view dies; beyond `keep` it is freed."""
    pool = PinnedPool(keep=1)
    pool._lib, pool.available = _FakeDriver(), True
    a = pool.empty((1, 3, 4, 4))
    assert a.dtype == np.float32 and a.shape == (1, 3, 4, 4) and a.flags.writeable and a.flags.c_contiguous
    a[...] = 7.0
    view = a[0]  # what a source hands the loop: the frame's [3, H, W]
    del a
    gc.collect()
    b = pool.empty((1, 3, 4, 4))
    b[...] = 1.0
    assert len(pool._lib.buffers) == 2 and np.all(view == 7.0)  # not handed out twice
    del view, b
    gc.collect()
    assert len(pool._lib.freed) == 1  # two blocks came back, one is kept
    kept = pool._free[4 * 48][0]
    again = pool.empty((1, 3, 4, 4))
    assert len(pool._lib.buffers) == 2 and again.__array_interface__["data"][0] == kept  # reused
    other = pool.empty((2, 3, 4, 4))  # another size: its own block
    assert len(pool._lib.buffers) == 3 and other.shape == (2, 3, 4, 4)
    pool.close()  # nothing free to return yet; the two arrays still alive return theirs when they die
    assert len(pool._lib.freed) == 1
    del again, other
    gc.collect()
    assert len(pool._lib.freed) == 3 and not any(pool._free.values())


def test_a_pool_without_page_locked_memory_gives_none_and_the_classifier_plain_arrays(model: Path) -> None:
    class Refusing(_FakeDriver):
        def cudaHostAlloc(self, ref: Any, nbytes: ctypes.c_size_t, flags: int) -> int:  # noqa: N802
            return 2  # cudaErrorMemoryAllocation

    pool = PinnedPool()
    pool._lib, pool.available = Refusing(), True
    assert pool.empty((1, 3, 4, 4)) is None and not pool.available
    clf = Classifier(model, device="cpu")
    assert not clf.pinned  # the CPU provider reads the array where it is
    x = clf.input_array(2)
    assert x.shape == (2, 3, *clf.spec.size) and x.dtype == np.float32
    clf._pinned = pool  # a GPU whose driver refuses page-locked memory: plain arrays, the same results
    batch = frames(2)
    np.testing.assert_array_equal(clf.preprocess(batch), preprocess(batch, clf.spec))
    assert clf.input_array(1).shape == (1, 3, *clf.spec.size)


def test_preprocess_writes_into_the_pool_on_a_gpu(model: Path) -> None:
    """Where inputs are pinned, preprocess() and input_array() hand out the pool's memory, and the results are
    those of the shared preprocess()."""
    clf = Classifier(model, device="cpu")
    pool = PinnedPool()
    pool._lib, pool.available = _FakeDriver(), True
    clf._pinned = pool
    assert clf.pinned
    batch = frames(3)
    x = clf.preprocess(batch)
    assert len(pool._lib.buffers) == 1 and x.__array_interface__["data"][0] == ctypes.addressof(
        pool._lib.buffers[0]
    )
    np.testing.assert_array_equal(x, preprocess(batch, clf.spec))
    np.testing.assert_array_equal(clf.logits(x), clf.logits(preprocess(batch, clf.spec)))


def test_an_int8_model_on_cuda_gets_one_line_of_advice(model: Path, tmp_path: Path) -> None:
    int8 = set_props(model, tmp_path / "int8.onnx", precision="int8")
    clf = Classifier(int8, device="cpu")
    assert clf.advice == ()  # the CPU is int8's device
    clf.providers = (D.CUDA, D.CPU)
    (line,) = clf.advice
    assert "fp16" in line and "\n" not in line
    assert Classifier(model, device="cpu").advice == ()


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_cuda_runs_and_matches_the_cpu(model: Path) -> None:
    """True fp32 on the GPU (TF32 off, the default) matches the CPU closely, plainly run or I/O bound with
    batch 1 as a CUDA graph."""
    cpu = Classifier(model, device="cpu")
    gpu, bound = Classifier(model, device="cuda"), Classifier(model, device="cuda", io_binding=True)
    assert gpu.device == "cuda" and not gpu.io_bound and not gpu.tf32 and bound.io_bound
    assert gpu.pinned and not bound.pinned  # page-locked inputs for the plain path, staging for the bound one
    batch = frames(4)
    for clf in (gpu, bound):
        np.testing.assert_allclose(clf.predict(batch), cpu.predict(batch), atol=1e-5)
        for i in range(3):  # batch 1, repeatedly: a captured graph replays on new inputs
            one = frames(1, seed=10 + i)
            np.testing.assert_allclose(clf.predict(one), cpu.predict(one), atol=1e-5)
    assert bound.graphed, bound._runner.graph_error
    assert bound.streamed, bound._runner.stream_error
    gpu.warmup()  # the default: batch 1 timed both ways, the faster kept
    choice = gpu.binding_choice
    assert choice is not None and choice.graphed and choice.streamed and gpu.io_bound == choice.bound, choice
    for i in range(3):
        one = frames(1, seed=20 + i)
        np.testing.assert_allclose(gpu.predict(one), cpu.predict(one), atol=1e-5)
