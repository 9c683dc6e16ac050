"""Shared helpers for the forms.nn tests: small, learnable datasets written in the real file formats."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from forms.nn.data import IDX_FILES, write_idx


def pattern_images(
    n: int, side: int, classes: int, seed: int, channels: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose class is the row of a bright bar (plus noise), and their labels.

    ``channels`` = 0 gives (n, side, side) (IDX layout); otherwise (n, channels, side, side).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    shape = (n, side, side) if channels == 0 else (n, channels, side, side)
    images = rng.integers(0, 60, shape).astype(np.uint8)
    band = max(side // classes, 1)
    for i, k in enumerate(labels):
        rows = slice(k * band, k * band + band)
        if channels == 0:
            images[i, rows, 4:-4] = 230
        else:
            images[i, :, rows, 4:-4] = 230
    return images, labels.astype(np.uint8)


def write_idx_dataset(directory: Path, n_train: int = 256, n_test: int = 128, gz: bool = False) -> Path:
    """Write MNIST-format IDX files (28x28, 10 classes) for both splits into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = pattern_images(n, 28, 10, seed)
        image_file, label_file = IDX_FILES[split]  # type: ignore[index]
        suffix = ".gz" if gz else ""
        write_idx(images, directory / f"{image_file}{suffix}", compress=gz)
        write_idx(labels, directory / f"{label_file}{suffix}", compress=gz)
    return directory


def write_cifar(root: Path, name: str, per_file: int = 20) -> Path:
    """Write CIFAR-10 (5 train batches + test) or CIFAR-100 (train + test) python-pickle files."""
    if name == "cifar10":
        folder, files, key, classes = (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            b"labels",
            10,
        )
        files.append("test_batch")
    else:
        folder, files, key, classes = "cifar-100-python", ["train", "test"], b"fine_labels", 100
    directory = root / name / folder
    directory.mkdir(parents=True, exist_ok=True)
    for seed, filename in enumerate(files):
        images, labels = pattern_images(per_file, 32, classes, seed, channels=3)
        batch = {b"data": images.reshape(per_file, -1), key: [int(v) for v in labels], b"batch_label": b"x"}
        with (directory / filename).open("wb") as fh:
            pickle.dump(batch, fh)
    return directory


class Interrupted(Exception):
    """Raised by :func:`train_interrupted_after_epoch_1` in place of a kill."""


def train_interrupted_after_epoch_1(monkeypatch: Any, spec: Any, out: Path) -> None:
    """Run ``forms.nn.train.train(spec, out)`` and stop it right after epoch 1's checkpoint is saved
    (as a kill would), leaving ``out`` ready to resume."""
    import pytest

    import forms.nn.train as train_module

    real_save = train_module.save_checkpoint

    def save_then_crash(state: dict, path: Path) -> Path:
        saved = real_save(state, path)
        if state["epoch"] == 1:
            raise Interrupted
        return saved

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(Interrupted):
        train_module.train(spec, out, progress=False)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
