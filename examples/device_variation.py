"""A trained model compressed, simulated under ReRAM programming variation, and costed on three chips.

The task is synthetic (which quadrant of a 12x12 image is brightest), so it trains in seconds and its
accuracy means something; put your own model and loaders in its place. Compression here is one-shot
(:func:`forms.project`: prune a quarter of each layer's filters, polarize, quantize); the accuracy under
variation is that of one simulated chip per sigma.

    python examples/device_variation.py
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import forms

ARCHITECTURES = ("forms-8", "isaac-opt", "prime")
"""FORMS (polarized), ISAAC (offset) and PRIME (differential) presets."""


def quadrant_data(images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 1x12x12 images whose label is the quadrant (0..3) lit brighter than the rest."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (images,), generator=generator)
    x = torch.randn(images, 1, 12, 12, generator=generator)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        x[i, 0, 6 * row : 6 * row + 6, 6 * col : 6 * col + 6] += 0.6
    return x, labels


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y``."""
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main(
    images: int = 1024, epochs: int = 3, sigmas: tuple[float, ...] = (0.0, 0.3, 1.0)
) -> dict[float, float]:
    """Train, compress, simulate at each variation sigma and cost; return the accuracy per sigma."""
    torch.manual_seed(0)
    x, y = quadrant_data(images, seed=1)
    test_x, test_y = quadrant_data(256, seed=2)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 4),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
    model.eval()
    float_accuracy = accuracy(copy.deepcopy(model), test_x, test_y)
    spec = {"crossbar": {"fragment_size": 8}, "prune": {"ratio": 0.25}}
    layers = forms.project(model, forms.CompressSpec.model_validate(spec))
    print(f"float {float_accuracy:.1%}, compressed {accuracy(model, test_x, test_y):.1%}")
    results: dict[float, float] = {}
    for sigma in sigmas:
        sim = forms.SimSpec.model_validate({"adc_bits": 6, "devices": {"variation": sigma}})
        chip = forms.to_crossbars(model, sim, calibration=loader, layers=layers)
        results[sigma] = accuracy(chip, test_x, test_y)
        print(f"variation sigma {sigma}: {results[sigma]:.1%} on crossbars")
    stats = chip.stats()
    for arch in ARCHITECTURES:
        est = forms.estimate(model, arch, (1, 12, 12), activity=stats, layers=layers)
        print(f"{arch}: {est.fps:,.0f} images/s, {est.energy_per_inference_j * 1e6:.2f} uJ/image")
    return results


if __name__ == "__main__":
    main()
