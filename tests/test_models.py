"""Model zoo: every model builds by name and maps its input shape to (batch, classes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from forms.errors import ConfigError
from forms.geometry import mapped_layers
from forms.nn.models import MODEL_NAMES, build_model

CASES = [
    ("lenet5", 1, 28, 10),
    ("lenet5", 3, 32, 10),
    ("lenet5-caffe", 1, 28, 10),
    ("lenet5-caffe", 3, 32, 10),
    ("mlp", 1, 28, 10),
    ("mlp", 3, 32, 100),
    ("resnet20", 3, 32, 10),
    ("resnet20", 1, 28, 10),
    ("resnet18", 3, 32, 100),
    ("resnet18-imagenet", 3, 64, 10),
    ("vgg16", 3, 32, 10),
    ("vgg16", 1, 32, 10),
    ("vgg16-imagenet", 3, 224, 1000),
    ("resnet50", 3, 224, 1000),
]


def test_cases_cover_the_whole_zoo() -> None:
    assert {c[0] for c in CASES} == set(MODEL_NAMES)


@pytest.mark.parametrize("name, channels, size, classes", CASES)
def test_forward_shape(name: str, channels: int, size: int, classes: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, num_classes=classes, image_size=size).eval()
    batch = 1 if size >= 224 else 2
    with torch.no_grad():
        out = model(torch.randn(batch, channels, size, size))
    assert out.shape == (batch, classes)
    assert torch.isfinite(out).all()
    assert mapped_layers(model)  # every zoo model is placeable on crossbars


def test_lenet5_has_the_classic_layer_sizes() -> None:
    model = build_model("lenet5")
    shapes = [tuple(m.weight.shape) for _, m in mapped_layers(model)]
    assert shapes == [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]


def test_lenet5_caffe_has_the_layer_sizes_and_parameters_of_the_admm_pruning_work() -> None:
    # Caffe's examples/mnist LeNet: conv 20@5x5, pool, conv 50@5x5, pool, FC 800-500, FC 500-10;
    # 431,080 parameters (weights and biases), the count the ADMM pruning work reports (431K).
    model = build_model("lenet5-caffe")
    shapes = [tuple(m.weight.shape) for _, m in mapped_layers(model)]
    assert shapes == [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]
    assert sum(p.numel() for p in model.parameters()) == 431_080
    with torch.no_grad():
        features = model.features(torch.zeros(1, 1, 28, 28))
    assert features.shape == (1, 50, 4, 4)


def test_resnet_parameter_counts_match_the_papers() -> None:
    # ResNet-20: 0.27M parameters (He et al. 2016, Table 6); ResNet-50: 25.6M with 1000 classes
    # (torchvision's count for the same architecture).
    assert round(sum(p.numel() for p in build_model("resnet20", 3, 10, 32).parameters()) / 1e6, 2) == 0.27
    n50 = sum(p.numel() for p in build_model("resnet50", 3, 1000, 224).parameters())
    assert abs(n50 - 25.56e6) < 0.01e6


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = build_model("resnet20", 3, 10, 32)
    torch.manual_seed(3)
    b = build_model("resnet20", 3, 10, 32)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'lenet6'.*lenet5.*resnet50"):
        build_model("lenet6")


@pytest.mark.parametrize("name", ["vgg16", "vgg16-imagenet", "resnet50", "resnet18-imagenet"])
def test_too_small_images_suggest_padding(name: str) -> None:
    with pytest.raises(ConfigError, match=r"at least 32x32.*--pad-to 32"):
        build_model(name, 1, 10, 28)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        build_model("mlp", num_classes=0)
    assert isinstance(build_model("mlp", 1, 2, 4), nn.Module)
