"""The model zoo: every network FORMS compresses, maps and simulates, built by name.

``build_model(name, in_channels, num_classes, image_size)`` returns a fresh, randomly initialised
``nn.Module`` whose weight-bearing layers are plain ``nn.Conv2d`` / ``nn.Linear`` (what the crossbar
mapping places) plus BatchNorm/ReLU/pooling. Architectures follow their papers:

- ``lenet5``: LeCun et al., "Gradient-based learning applied to document recognition", Proc. IEEE
  1998 (conv 6@5x5, pool, conv 16@5x5, pool, FC 120-84-classes), with ReLU and max pooling as in
  modern re-implementations. A 28x28 input is padded by 2 in the first conv, so that it sees the
  32x32 frame of the original.
- ``lenet5-caffe``: the LeNet-5 of Caffe's MNIST example (``examples/mnist/lenet_train_test.prototxt``),
  which the ADMM pruning work FORMS builds on compresses (Zhang et al., "A Systematic DNN Weight
  Pruning Framework using Alternating Direction Method of Multipliers", ECCV 2018): conv 20@5x5, max
  pool, conv 50@5x5, max pool, FC 800-500, ReLU, FC 500-classes (431,080 parameters on 28x28 MNIST).
  As in Caffe, the only ReLU follows the first FC layer and the first conv is not padded.
- ``mlp``: LeNet-300-100 from the same paper as ``lenet5`` (FC 300-100-classes).
- ``resnet20``: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2
  (CIFAR: 3 stages of 3 basic blocks, 16/32/64 channels); shortcuts that change shape use a 1x1
  conv + BN (option B) so that every layer maps to crossbars.
- ``resnet18`` / ``resnet50``: same paper, Table 1 (basic blocks [2,2,2,2]; bottlenecks [3,4,6,3]).
- ``vgg16``: Simonyan & Zisserman, ICLR 2015, configuration D, with BatchNorm after each conv.

``*-imagenet`` variants (and ``resnet50``) use the ImageNet stem (7x7/2 conv + 3x3/2 max pool for
ResNets; the 4096-4096 classifier for VGG); the others use the CIFAR stem (3x3/1 conv, no pool;
one linear classifier), suited to 28-32 pixel inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from forms.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """One zoo entry: its constructor, the smallest input side it accepts and a one-line summary."""

    builder: Callable[[int, int, int], nn.Module]
    min_image_size: int
    summary: str


class LeNet5(nn.Module):
    """LeNet-5 (ReLU, max pooling) for ``in_channels`` x ``image_size`` x ``image_size`` inputs."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        pad = 2 if image_size < 32 else 0
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a batch ``x`` (N, C, H, W)."""
        return self.classifier(self.features(x))


class LeNet5Caffe(nn.Module):
    """Caffe's LeNet-5 (conv 20, pool, conv 50, pool, FC 500, FC classes) for square inputs."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(50 * side * side, 500),
            nn.ReLU(inplace=True),
            nn.Linear(500, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a batch ``x`` (N, C, H, W)."""
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """LeNet-300-100: a three-layer perceptron on the flattened image."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, 300),
            nn.ReLU(inplace=True),
            nn.Linear(300, 100),
            nn.ReLU(inplace=True),
            nn.Linear(100, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a batch ``x`` (N, C, H, W)."""
        return self.net(x)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """Conv (no bias, 'same' padding) followed by BatchNorm."""
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)]


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a 1x1 projection conv + BN (He et al. option B)."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(cin, cout, 1, stride))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            *_conv_bn(cin, width, 3, stride), nn.ReLU(inplace=True), *_conv_bn(width, cout, 3)
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """relu(body(x) + shortcut(x))."""
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), with a residual connection."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            *_conv_bn(cin, width, 1),
            nn.ReLU(inplace=True),
            *_conv_bn(width, width, 3, stride),
            nn.ReLU(inplace=True),
            *_conv_bn(width, cout, 1),
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """relu(body(x) + shortcut(x))."""
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet from a block type, per-stage block counts and widths, and a CIFAR or ImageNet stem."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: list[int],
        widths: list[int],
        in_channels: int,
        num_classes: int,
        imagenet_stem: bool,
    ) -> None:
        super().__init__()
        stem_width = widths[0]
        if imagenet_stem:
            stem: list[nn.Module] = [
                nn.Conv2d(in_channels, stem_width, 7, 2, padding=3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, padding=1),
            ]
        else:
            stem = [*_conv_bn(in_channels, stem_width, 3), nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*stem)
        stages: list[nn.Module] = []
        cin = stem_width
        for i, (count, width) in enumerate(zip(blocks, widths, strict=True)):
            layers: list[nn.Module] = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(block(cin, width, stride))
                cin = width * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a batch ``x`` (N, C, H, W)."""
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


VGG16_LAYERS: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]
VGG16_LAYERS += [512, 512, 512, "M", 512, 512, 512, "M"]
"""Configuration D of Simonyan & Zisserman (2015), Table 1: conv widths, "M" = 2x2 max pool."""


class VGG16(nn.Module):
    """VGG-16 with BatchNorm; CIFAR head (one linear layer) or ImageNet head (4096-4096 + dropout)."""

    def __init__(self, in_channels: int, num_classes: int, imagenet_head: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for item in VGG16_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                width = int(item)
                layers += [*_conv_bn(cin, width, 3), nn.ReLU(inplace=True)]
                cin = width
        self.features = nn.Sequential(*layers)
        if imagenet_head:
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(7)
            self.classifier: nn.Module = nn.Sequential(
                nn.Flatten(),
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Linear(4096, num_classes),
            )
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a batch ``x`` (N, C, H, W)."""
        return self.classifier(self.pool(self.features(x)))


def _resnet(block: type[BasicBlock] | type[Bottleneck], blocks: list[int], widths: list[int], stem: bool):
    """A zoo builder (in_channels, num_classes, image_size) for one ResNet configuration."""

    def build(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
        return ResNet(block, blocks, widths, in_channels, num_classes, imagenet_stem=stem)

    return build


ZOO: dict[str, ModelEntry] = {
    "lenet5": ModelEntry(lambda c, k, s: LeNet5(c, k, s), 12, "LeNet-5 (2 conv + 3 FC), MNIST-sized inputs"),
    "lenet5-caffe": ModelEntry(
        lambda c, k, s: LeNet5Caffe(c, k, s),
        16,
        "Caffe's LeNet-5 (conv 20-50, FC 500), of the ADMM pruning work",
    ),
    "mlp": ModelEntry(lambda c, k, s: MLP(c, k, s), 1, "LeNet-300-100 multilayer perceptron"),
    "resnet20": ModelEntry(
        _resnet(BasicBlock, [3, 3, 3], [16, 32, 64], False), 8, "ResNet-20, CIFAR style (0.27 M weights)"
    ),
    "resnet18": ModelEntry(
        _resnet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], False), 8, "ResNet-18, CIFAR stem"
    ),
    "resnet18-imagenet": ModelEntry(
        _resnet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], True), 32, "ResNet-18, ImageNet stem"
    ),
    "vgg16": ModelEntry(lambda c, k, s: VGG16(c, k, imagenet_head=False), 32, "VGG-16 (BN), CIFAR head"),
    "vgg16-imagenet": ModelEntry(
        lambda c, k, s: VGG16(c, k, imagenet_head=True), 32, "VGG-16 (BN), ImageNet head (4096-4096)"
    ),
    "resnet50": ModelEntry(
        _resnet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], True), 32, "ResNet-50, ImageNet stem"
    ),
}
"""Every model by name."""

MODEL_NAMES: tuple[str, ...] = tuple(ZOO)
"""The names :func:`build_model` accepts."""


def build_model(name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Build zoo model ``name`` for (in_channels, image_size, image_size) inputs and ``num_classes`` classes.

    Raises :class:`ConfigError` for an unknown name (listing the valid ones), a non-positive size,
    or an image too small for the model's pooling (naming the minimum and the ``--pad-to`` fix).
    """
    entry = ZOO.get(name)
    if entry is None:
        raise ConfigError(f"unknown model '{name}'; choose one of: {', '.join(MODEL_NAMES)}")
    for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if value < 1:
            raise ConfigError(f"model {name}: {label} must be >= 1, got {value}")
    if image_size < entry.min_image_size:
        raise ConfigError(
            f"model {name} needs images of at least {entry.min_image_size}x{entry.min_image_size} pixels, "
            f"got {image_size}; pad the data (e.g. --pad-to 32) or pick a smaller model"
        )
    return entry.builder(in_channels, num_classes, image_size)


def model_kwargs(in_channels: int, num_classes: int, image_size: int) -> dict[str, int]:
    """The keyword arguments of :func:`build_model` as stored in a checkpoint's ``model.kwargs``."""
    return {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
