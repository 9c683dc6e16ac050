"""CIFAR-10/100 python-pickle batches: where they lie in an extracted archive, and a reader that
unpickles nothing but numpy arrays (a foreign pickle cannot run code). Used by :mod:`forms.nn.data`."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from forms.errors import DataError

CIFAR_FILES: dict[str, tuple[str, dict[str, list[str]], bytes]] = {
    "cifar10": (
        "cifar-10-batches-py",
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        b"labels",
    ),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, b"fine_labels"),
}
"""Per CIFAR variant: the archive's folder name, the pickle files of each split, the label key."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, lists, dicts and scalars (CIFAR batches need no more)."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: bytes, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one CIFAR python-pickle batch file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; {hint}")
    try:
        with path.open("rb") as fh:
            batch = _CifarUnpickler(io.BufferedReader(fh), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means a corrupt or foreign file
        reason = f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path}: not a CIFAR python-pickle batch ({reason}); {hint}") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected a dict with b'data' and {label_key!r}, found {keys}; {hint}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(
            f"{path}: expected uint8 data (N, 3072) and N labels, got data {data.dtype} {data.shape} "
            f"and {len(labels)} labels; {hint}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar_split(
    name: str, base: Path, split: str, hint: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels of one CIFAR-10/100 split in dataset folder ``base``."""
    folder, files, label_key = CIFAR_FILES[name]
    directory = base / folder if (base / folder).is_dir() else base
    parts = [read_cifar_batch(directory / f, label_key, hint) for f in files[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"{directory}: {split} labels outside 0..{num_classes - 1}; {hint}")
    return images, labels
