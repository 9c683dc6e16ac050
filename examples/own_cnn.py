"""Your own CNN on your own data: trained, compressed with ADMM, run on crossbars and costed.

The data here are synthetic (the label is the brightest quadrant of the image) standing in for yours;
any ``nn.Module`` of Conv2d/Linear layers (with BatchNorm, ReLU, pooling, residual adds between them)
and any DataLoader of (images, labels) work the same way.

    python examples/own_cnn.py
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import forms


def main(images: int = 2048, epochs: int = 4) -> forms.CrossbarStats:
    """Train a small CNN on ``images`` synthetic 16x16 images, then compress, simulate and cost it."""
    torch.manual_seed(0)
    x = torch.randn(images, 3, 16, 16)
    y = x.mean(1).unfold(1, 8, 8).unfold(2, 8, 8).mean((-1, -2)).flatten(1).argmax(1)  # brightest quadrant
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 4),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
    rounds = {"admm_rounds": epochs, "retrain_epochs": 1}  # the defaults (4 and 3) suit real data
    spec = forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 8}, "schedule": rounds})
    done = forms.compress(model, loader, spec, val_loader=loader)  # ADMM: polarize, quantize; retrain
    folded, layers = forms.fold_batchnorm(done.model, done.layers)  # BatchNorm into the conv's scale and bias
    chip = forms.to_crossbars(folded, forms.SimSpec(adc_bits=6), calibration=loader, layers=layers)
    with torch.no_grad():
        agree = (chip(x).argmax(1) == folded(x).argmax(1)).float().mean()
    stats = chip.stats()
    est = forms.estimate(folded, "forms-8", (3, 16, 16), activity=stats, layers=layers)
    r = done.result
    print(f"accuracy {r.accuracy_before:.1%} float, {r.accuracy_after:.1%} compressed; "
          f"{r.fragments_mixed_sign} of {r.fragments_total} fragments hold both signs")  # fmt: skip
    print(f"crossbars agree with the digital model on {agree:.1%} of images, clip rate {stats.clip_rate:.4f}")
    print(f"forms-8: {est.fps:,.0f} images/s, {est.energy_per_inference_j * 1e6:.2f} uJ/image")
    return stats


if __name__ == "__main__":
    main()
