"""Shared fixtures of the compression tests: a tiny float LeNet-5 checkpoint on synthetic MNIST files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forms.compress.spec import CompressSpec
from forms.nn.train import TrainSpec, train
from nn_helpers import write_idx_dataset


def make_float_checkpoint(root: Path, model: str = "lenet5", epochs: int = 2) -> tuple[Path, Path]:
    """Train ``model`` briefly on synthetic 28x28 IDX data under ``root``; return (checkpoint, data_dir)."""
    data_dir = root / "data"
    write_idx_dataset(data_dir / "mnist", 384, 128)
    spec = TrainSpec(
        model=model,
        epochs=epochs,
        batch_size=64,
        optimizer="adam",
        lr=0.005,
        schedule="constant",
        device="cpu",
        data_dir=str(data_dir),
    )
    train(spec, root / "float", progress=False)
    return root / "float" / "checkpoint.pt", data_dir


def tiny_spec(data_dir: Path, **sections: Any) -> CompressSpec:
    """A fast CompressSpec (2 ADMM rounds of 1 epoch, 1 retraining epoch) with overrides per section."""
    data: dict[str, Any] = {
        "schedule": {
            "admm_rounds": 2,
            "round_epochs": 1,
            "retrain_epochs": 1,
            "batch_size": 64,
            "rho": 0.05,
            "bn_recalibration_batches": 2,
        },
        "device": "cpu",
        "data_dir": str(data_dir),
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return CompressSpec.from_dict(data)
