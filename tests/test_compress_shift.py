"""Shift augmentation in compression (schedule.shift): deterministic per seed, off by default, never
applied to the batches that re-estimate BatchNorm statistics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from compress_helpers import make_float_checkpoint, tiny_spec
from forms.compress.phases import training_loader, unaugmented
from forms.compress.pipeline import compress
from forms.errors import ConfigError
from forms.nn.checkpoint import load_checkpoint
from forms.nn.loader import EpochLoader

DATA = TensorDataset(torch.randn(70, 1, 8, 8), torch.randint(0, 3, (70,)))


def _batches(loader: EpochLoader | object, epoch: int) -> list[torch.Tensor]:
    loader.set_epoch(epoch)  # type: ignore[attr-defined]
    return [x for x, _ in loader]  # type: ignore[attr-defined]


def test_shift_zero_gives_the_batches_compression_drew_before(tmp_path: Path) -> None:
    """Without a shift the training batches are those of the plain seeded EpochLoader of earlier versions."""
    spec = tiny_spec(tmp_path)
    before = EpochLoader(DATA, spec.schedule.batch_size, seed=spec.seed)
    for epoch in (0, 3):
        assert all(
            torch.equal(a, b)
            for a, b in zip(
                _batches(training_loader(DATA, spec), epoch), _batches(before, epoch), strict=True
            )
        )


def test_shifted_batches_follow_the_seed_and_bn_statistics_see_plain_images(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, schedule={"shift": 2})
    shifted = training_loader(DATA, spec)
    again = training_loader(DATA, spec)
    plain = training_loader(DATA, tiny_spec(tmp_path))
    first = _batches(shifted, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, _batches(again, 1), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, _batches(plain, 1), strict=True))
    assert all(
        torch.equal(a, b) for a, b in zip(_batches(unaugmented(shifted), 1), _batches(plain, 1), strict=True)
    )


def _integers(folder: Path) -> list[torch.Tensor]:
    return [layer["weight_int"] for layer in load_checkpoint(folder / "checkpoint.pt")["integer_layers"]]


def test_a_shifted_compression_is_deterministic_and_differs_from_an_unshifted_one(tmp_path: Path) -> None:
    ckpt, data_dir = make_float_checkpoint(tmp_path, epochs=1)
    runs = {}
    for name, shift in (("a", 2), ("b", 2), ("plain", 0)):
        spec = tiny_spec(data_dir, schedule={"shift": shift}, validation_images=64)
        runs[name] = compress(spec, ckpt, tmp_path / name, progress=False)
    assert all(
        torch.equal(x, y) for x, y in zip(_integers(tmp_path / "a"), _integers(tmp_path / "b"), strict=True)
    )
    assert runs["a"].to_dict()["accuracy_after"] == runs["b"].to_dict()["accuracy_after"]
    assert not all(
        torch.equal(x, y)
        for x, y in zip(_integers(tmp_path / "a"), _integers(tmp_path / "plain"), strict=True)
    )
    assert runs["a"].config["schedule"]["shift"] == 2  # in the run's settings, so in its resume key


def test_the_api_shifts_a_tensor_dataset_and_refuses_a_shift_it_cannot_apply(tmp_path: Path) -> None:
    from forms.api.compression import training_batches

    spec = tiny_spec(tmp_path, schedule={"shift": 1})
    loader = torch.utils.data.DataLoader(DATA, batch_size=16)
    with pytest.raises(ConfigError, match=r"schedule\.shift"):
        training_batches(loader, spec)
    assert training_batches(DATA, spec).shift == 1  # type: ignore[attr-defined]
