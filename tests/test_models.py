"""Model registry, weight loading with a refitted head, and the offline --pretrained path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mgc_edge.models import ARCHS, ModelError, build_model, head_name


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_builds_for_the_classes_and_small_inputs(arch: str) -> None:
    model = build_model(arch, 7).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 7)


def test_alexnet_bn_is_the_seeds_model() -> None:
    model = build_model("alexnet_bn", 32)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds.count("Conv2d") == 5 and kinds.count("BatchNorm2d") == 5
    assert isinstance(model.avgpool, torch.nn.AdaptiveAvgPool2d)


def test_the_default_arch_is_built_without_importing_torchvision() -> None:
    # torchvision's zoo imports torch._dynamo: seconds of start-up for train, evaluate and verify.
    code = (
        "import sys; from mgc_edge.models import build_model; build_model('alexnet_bn', 4); "
        "assert 'torchvision' not in sys.modules, 'torchvision imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_dropout_rate_changes_training_only() -> None:
    rates = lambda m: {layer.p for layer in m.modules() if isinstance(layer, torch.nn.Dropout)}  # noqa: E731
    torch.manual_seed(0)
    own = build_model("alexnet_bn", 5)
    torch.manual_seed(0)
    none = build_model("alexnet_bn", 5, dropout=0.0)
    assert rates(own) == {0.5} and rates(none) == {0.0}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(own.eval()(x), none.eval()(x))  # same weights, same inference
        assert not torch.equal(own.train()(x), none.train()(x))  # differ only while training
    with pytest.raises(ModelError, match="Dropout must lie"):
        build_model("alexnet_bn", 5, dropout=1.0)


def test_torchvision_alexnet_layout_loads_imagenet_shaped_weights(tmp_path: Path) -> None:
    """A 1000-class torchvision state dict (as ImageNet weights are) loads; only the head is refitted."""
    source = build_model("alexnet", 1000)
    torch.save(source.state_dict(), tmp_path / "imagenet_like.pth")
    model = build_model("alexnet", 32, weights=tmp_path / "imagenet_like.pth")
    assert head_name(model) == "classifier.6"
    assert torch.equal(model.features[0].weight, source.features[0].weight)
    assert model.classifier[6].out_features == 32


def test_weights_of_another_arch_are_refused(tmp_path: Path) -> None:
    torch.save(build_model("resnet18", 5).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ModelError, match="does not fit"):
        build_model("alexnet", 5, weights=tmp_path / "r18.pth")


def test_damaged_and_missing_weights_files(tmp_path: Path) -> None:
    (tmp_path / "bad.pth").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="not a readable"):
        build_model("resnet18", 5, weights=tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="does not exist"):
        build_model("resnet18", 5, weights=tmp_path / "missing.pth")


def test_pretrained_offline_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: torchvision must try the network

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(ModelError, match="--weights FILE"):
        build_model("resnet18", 5, pretrained=True)


def test_unknown_arch() -> None:
    with pytest.raises(ModelError, match="Unknown arch"):
        build_model("vgg99", 5)
