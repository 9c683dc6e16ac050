"""Your own CNN on your own data: trained, compressed one-shot, run on crossbars and costed.

The data here are random tensors standing in for yours; any ``nn.Module`` of Conv2d/Linear layers
(with BatchNorm, ReLU, pooling, residual adds between them) and any DataLoader work the same way.

    python examples/own_cnn.py
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import forms


def main(images: int = 512, epochs: int = 3) -> forms.CrossbarStats:
    """Train a small CNN on ``images`` random 16x16 images, then compress, simulate and cost it."""
    torch.manual_seed(0)
    x, y = torch.randn(images, 3, 16, 16), torch.randint(0, 4, (images,))
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
    model.eval()
    layers = forms.project(model, forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 8}}))
    chip = forms.to_crossbars(model, forms.SimSpec(adc_bits=6), calibration=loader, layers=layers)
    with torch.no_grad():
        agree = (chip(x).argmax(1) == model(x).argmax(1)).float().mean()
    stats = chip.stats()
    est = forms.estimate(model, "forms-8", (3, 16, 16), activity=stats, layers=layers)
    print(f"crossbars agree with the digital model on {agree:.1%} of images, clip rate {stats.clip_rate:.4f}")
    print(f"forms-8: {est.fps:,.0f} images/s, {est.energy_per_inference_j * 1e6:.2f} uJ/image")
    return stats


if __name__ == "__main__":
    main()
