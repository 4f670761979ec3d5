"""Parity between an exported .onnx model and the checkpoint it came from, on real images, with gates.

Both sides are fed by the same preprocess(): PyTorch with the checkpoint's spec, the model with the spec
stored in it (the one an edge box will use), so a model whose metadata lies about its preprocessing
fails here rather than in the field. The model runs in ONNX Runtime by default, or in OpenVINO or OpenCV's DNN
module (`VerifyOptions.runtime`, runtime/backends.py) under the same gates. Without a checkpoint the model is
checked on its own (metadata, graph, forward shapes, and accuracy when labelled images are given); that path
never imports torch, and neither does a check that reuses the PyTorch side `export` stored (reference.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mgc_edge.data.scan import DataError, Sample, folder_samples
from mgc_edge.errors import TRAIN_INSTALL, UserError, first_line
from mgc_edge.export.gates import MAX_BATCH_PROB_DIFF, GateResult, Gates, ParityReport, write_report
from mgc_edge.export.options import VerifyOptions
from mgc_edge.export.reference import (
    CheckpointFacts,
    Reference,
    image_batches,
    load_reference,
    reference_logits,
    subsample,
)
from mgc_edge.images import read_images
from mgc_edge.metadata import MetadataError
from mgc_edge.preprocess import preprocess
from mgc_edge.runtime.model.backends import NAMES, Backend, open_backend
from mgc_edge.runtime.model.classifier import Classifier
from mgc_edge.runtime.model.scores import softmax

if TYPE_CHECKING:
    from mgc_edge.train.checkpoint import Checkpoint

BATCH1_IMAGES = 4  # images also run one at a time, to prove the dynamic batch axis


class ModelMismatchError(UserError):
    """A model and a checkpoint that do not belong together; the message is one sentence."""


class NeedsPyTorchError(UserError):
    """The stored reference cannot be reused and PyTorch, which would compute a new one, is not installed."""


def parity_classifier(model: str | Path, options: VerifyOptions) -> Classifier:
    """The ONNX side of a parity check: true fp32 on CUDA (TF32 off), like the reference."""
    return Classifier(model, device=options.device, tf32=False)


def _model_logits(
    clf: Classifier, backend: Backend, root: Path, samples: Sequence[Sample], batch_size: int
) -> tuple[np.ndarray, set[int]]:
    """The model's logits in `backend`'s runtime, fed with the model's own spec, and the batch sizes run."""
    outs, sizes = [], set()
    for frames in image_batches(root, samples, batch_size):
        out = backend.logits(preprocess(frames, clf.spec))
        if out.shape != (len(frames), clf.num_classes):
            raise MetadataError(
                f"{clf.path} does not follow the mgc-edge model layout: it returned {out.shape} for a batch "
                f"of {len(frames)} images with {clf.num_classes} classes."
            )
        outs.append(out)
        sizes.add(len(frames))
    return np.concatenate(outs), sizes


def _batch1_diff(
    clf: Classifier, backend: Backend, frames: Sequence[np.ndarray], batched_logits: np.ndarray
) -> tuple[float, bool]:
    """Max |Δprob| between one-at-a-time and batched runs of the same frames, and whether shapes held."""
    x = preprocess(list(frames), clf.spec)
    ones = [backend.logits(x[i : i + 1]) for i in range(len(frames))]
    shapes_ok = all(o.shape == (1, clf.num_classes) for o in ones)
    single = np.concatenate(ones)
    return float(np.abs(softmax(single) - softmax(batched_logits[: len(frames)])).max()), shapes_ok


# --- verify -----------------------------------------------------------------------------------------------


def _few(ids: Sequence[str]) -> str:
    return f"{len(ids)} ({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''})"


def check_belongs(clf: Classifier, checkpoint: CheckpointFacts) -> list[str]:
    """Refuse a model and a checkpoint that cannot be compared; return notes for lesser differences."""
    meta, ck = clf.metadata, checkpoint
    what = None
    if meta.arch != ck.arch:
        what = f"the model's arch is {meta.arch}, the checkpoint's {ck.arch}"
    elif meta.labels.ids != ck.labels.ids:
        what = f"the model's labels are {_few(meta.labels.ids)}, the checkpoint's {_few(ck.labels.ids)}"
    elif tuple(meta.preprocess.size) != tuple(ck.preprocess.size):
        what = "the model takes {}x{} inputs, the checkpoint {}x{}".format(
            *meta.preprocess.size, *ck.preprocess.size
        )
    if what:
        raise ModelMismatchError(f"{clf.path} and {ck.path} do not belong together: {what}.")
    notes = []
    if meta.checkpoint_sha256 and meta.checkpoint_sha256 != ck.sha256:
        notes.append(f"the model was exported from another checkpoint than {ck.path} (sha256 differs)")
    if meta.preprocess != ck.preprocess:
        notes.append(
            "the model's preprocessing differs from the checkpoint's; parity will show what it costs"
        )
    return notes


def compare(
    clf: Classifier, reference: Reference, options: VerifyOptions = VerifyOptions(), notes: Sequence[str] = ()
) -> ParityReport:
    """The model's side (in `options.runtime`) on the reference's images, the figures, and the gates for the
    model's precision."""
    gates = Gates.for_precision(clf.metadata.precision, options.gates)
    backend = open_backend(options.runtime, clf)
    logits, sizes = _model_logits(clf, backend, reference.root, reference.samples, options.batch_size)
    first = read_images([reference.root / s.path for s in reference.samples[:BATCH1_IMAGES]]).images
    batch_diff, shapes_ok = _batch1_diff(clf, backend, first, logits)
    ref = reference.logits
    p_model, p_ref = softmax(logits), softmax(ref)
    y = reference.labels
    d_logits, d_probs = np.abs(logits - ref), np.abs(p_model - p_ref)
    agreement = float((logits.argmax(1) == ref.argmax(1)).mean())
    acc_model = float((logits.argmax(1) == y).mean())
    acc_ref = float((ref.argmax(1) == y).mean())
    finite = bool(np.isfinite(logits).all())

    results = [
        GateResult(
            "forward pass of the right shape", float(finite and shapes_ok), 1.0, finite and shapes_ok, "bool"
        ),
        GateResult("top-1 agreement", agreement, gates.min_agreement, agreement >= gates.min_agreement, "%"),
    ]
    if gates.max_prob_diff is not None:
        v = float(d_probs.max())
        results.append(GateResult("max |Δprob|", v, gates.max_prob_diff, v <= gates.max_prob_diff))
    if gates.max_acc_drop is not None:
        drop = acc_ref - acc_model
        # A hair of tolerance: 1 point on 100 images is exactly one image, which must pass.
        results.append(
            GateResult("accuracy drop", drop, gates.max_acc_drop, drop <= gates.max_acc_drop + 1e-9, "points")
        )
    results.append(
        GateResult(
            "batch 1 vs batched |Δprob|",
            batch_diff,
            gates.max_batch_prob_diff,
            batch_diff <= gates.max_batch_prob_diff,
        )
    )
    return ParityReport(
        model=str(clf.path),
        precision=clf.metadata.precision,
        arch=clf.metadata.arch,
        checkpoint=str(reference.checkpoint.path),
        source=reference.source,
        n_images=len(reference.samples),
        batch_sizes=tuple(sorted({1, *sizes})),
        logits_max_abs=float(d_logits.max()),
        logits_mean_abs=float(d_logits.mean()),
        probs_max_abs=float(d_probs.max()),
        probs_mean_abs=float(d_probs.mean()),
        agreement=agreement,
        acc_model=acc_model,
        acc_checkpoint=acc_ref,
        batch_prob_max_abs=batch_diff,
        gates=tuple(results),
        thresholds=gates,
        notes=tuple(notes),
        provider=clf.provider if backend.runtime == "onnxruntime" else None,
        reference_device=reference.device,
        reference_file=None if reference.stored is None else str(reference.stored),
        runtime=backend.runtime,
        runtime_version=backend.version,
    )


def check_model_alone(
    model: str | Path, options: VerifyOptions = VerifyOptions(), seed: int = 0
) -> ParityReport:
    """What an edge box can check without the checkpoint (and without torch): metadata readable, graph
    valid, a forward pass of the right shape at batch 1 and several, and accuracy on --data if given."""
    clf = parity_classifier(model, options)  # refuses a model without our metadata
    notes: list[str] = []
    results: list[GateResult] = []
    backend = open_backend(options.runtime, clf)
    try:
        import onnx
    except ImportError:
        notes.append("onnx is not installed here, so the graph was checked by ONNX Runtime's loader only")
    else:
        try:
            onnx.checker.check_model(str(clf.path), full_check=True)
            results.append(GateResult("graph valid", 1.0, 1.0, True, "bool"))
        except Exception as exc:  # ValidationError, InferenceError
            results.append(GateResult("graph valid", 0.0, 1.0, False, "bool"))
            notes.append(f"onnx.checker: {first_line(exc)}")

    acc = None
    if options.data is not None:
        root = Path(options.data)
        samples = subsample(folder_samples(root, clf.labels.ids), options.max_images)
        if not samples:
            raise DataError(f"There are no images to check in {root}.")
        logits, sizes = _model_logits(clf, backend, root, samples, options.batch_size)
        first = read_images([root / s.path for s in samples[:BATCH1_IMAGES]]).images
        acc = float((logits.argmax(1) == np.array([s.label for s in samples])).mean())
        source, n = str(root), len(samples)
    else:
        # Noise frames of an odd size: they exercise resize and every layer, though they mean nothing.
        rng = np.random.default_rng(seed)
        h, w = clf.spec.size
        frames = [
            rng.integers(0, 256, (h + 7, w + 5, 3), dtype=np.uint8) for _ in range(options.batch_size + 1)
        ]
        logits = np.concatenate(
            [
                backend.logits(preprocess(frames[: options.batch_size], clf.spec)),
                backend.logits(preprocess(frames[-1:], clf.spec)),
            ]
        )
        sizes = {options.batch_size, 1}
        first, source, n = frames[:BATCH1_IMAGES], "random frames (no labelled images given)", len(frames)
    batch_diff, shapes_ok = _batch1_diff(clf, backend, first, logits)
    ok = shapes_ok and bool(np.isfinite(logits).all()) and logits.shape[1] == clf.num_classes
    results.append(GateResult("forward pass of the right shape", float(ok), 1.0, ok, "bool"))
    results.append(
        GateResult(
            "batch 1 vs batched |Δprob|", batch_diff, MAX_BATCH_PROB_DIFF, batch_diff <= MAX_BATCH_PROB_DIFF
        )
    )
    return ParityReport(
        model=str(clf.path),
        precision=clf.metadata.precision,
        arch=clf.metadata.arch,
        checkpoint=None,
        source=source,
        n_images=n,
        batch_sizes=tuple(sorted(sizes)),
        batch_prob_max_abs=batch_diff,
        gates=tuple(results),
        acc_model=acc,
        notes=tuple(notes),
        provider=clf.provider if backend.runtime == "onnxruntime" else None,
        runtime=backend.runtime,
        runtime_version=backend.version,
    )


def _need_pytorch(model: str | Path, checkpoint: object, why: str) -> None:
    """Refuse in one sentence, saying why the stored reference could not serve, where PyTorch is not here to
    compute a new one (an edge box); a torch that is installed but broken is left to fail as it does."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        raise NeedsPyTorchError(
            f"Comparing {Path(model).name} with {checkpoint} needs PyTorch here because {why}; check it without "
            f"--checkpoint, or install the training extra: {TRAIN_INSTALL}."
        ) from None


def verify_model(
    model: str | Path,
    checkpoint: str | Path | Checkpoint | None = None,
    options: VerifyOptions = VerifyOptions(),
    write: bool = True,
    reference: Reference | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ParityReport:
    """Compare an exported model with its checkpoint (or check it alone), and write the report beside it.

    `reference` reuses PyTorch's logits across several models of one export. Without it, the reference
    that export stored beside the model is reused when it was made from the same checkpoint (by sha256), on
    the same images, with the same preprocessing (torch is not even imported then); otherwise PyTorch runs the
    checkpoint again, and where PyTorch is not installed the error says why the stored one could not serve.
    The steps and the report (`reference_file`) say which.
    """
    step = on_step or (lambda _msg: None)
    if checkpoint is None and reference is None:
        step(f"checking {Path(model).name} on its own")
        report = check_model_alone(model, options)
    else:
        clf = parity_classifier(model, options)
        why = "the checkpoint is already loaded"
        if reference is None and isinstance(checkpoint, (str, Path)):
            reference, why = load_reference(model, checkpoint, options)
            if reference is not None:
                step(f"PyTorch's side: {why}")
        if reference is None:
            _need_pytorch(model, checkpoint, why)
            from mgc_edge.train.checkpoint import Checkpoint, load_checkpoint

            ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)  # type: ignore[arg-type]
            facts = CheckpointFacts.of(ckpt)
            notes = check_belongs(clf, facts)  # before the slow part
            step(f"running {ckpt.path.name} in PyTorch: {why}")
            reference = reference_logits(ckpt, options, sha256=facts.sha256)
        else:
            notes = check_belongs(clf, reference.checkpoint)
        step(f"running {Path(model).name} in {NAMES[options.runtime]} on {len(reference.samples)} images")
        report = compare(clf, reference, options, notes)
    if write:
        write_report(report)
    return report
