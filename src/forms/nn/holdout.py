"""Training images held out for validation: :class:`Holdout`, recorded in float checkpoints.

A hold-out is ``images`` examples drawn with ``seed`` from the first ``pool`` examples of a dataset's
training split (:func:`forms.nn.data.holdout_mask`). ``forms train --validation-images N`` holds one
out (``pool`` = its training set, all of it or ``train_subset``; ``seed`` = its seed) and records it
in the checkpoint's ``holdout`` entry, so that ``forms compress`` and ``forms search`` validate on
images the float model never trained on (:mod:`forms.compress.validation_split`). A checkpoint
written before the record existed has none (:func:`recorded_holdout` returns None): its model saw
every training image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.data import TensorDataset

from forms.errors import CheckpointError, ConfigError
from forms.nn.data import holdout_mask

HOLDOUT_KEY = "holdout"
"""The float checkpoint's entry recording its hold-out (absent in checkpoints written before it)."""


@dataclass(frozen=True)
class Holdout:
    """``images`` training examples held out, drawn with ``seed`` from the first ``pool`` of the split."""

    images: int
    """How many examples are held out (0: none)."""
    seed: int
    """Seed of the draw (:func:`forms.nn.data.holdout_mask`)."""
    pool: int
    """The draw is over the first ``pool`` examples of the training split."""

    def mask(self, length: int) -> torch.Tensor:
        """Boolean mask over the first ``length`` training examples marking the held-out ones."""
        mask = torch.zeros(max(length, self.pool), dtype=torch.bool)
        if self.images:
            mask[: self.pool] = holdout_mask(self.pool, self.images, self.seed)
        return mask[:length]

    def indices(self) -> set[int]:
        """Indices, in the training split, of the held-out examples."""
        return {int(i) for i in self.mask(self.pool).nonzero().flatten()}

    def describe(self) -> str:
        """The hold-out in words, with the settings that draw it."""
        return f"{self.images} images (seed {self.seed}, drawn from the first {self.pool} training images)"

    def to_dict(self) -> dict[str, int]:
        """The checkpoint's ``holdout`` entry."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Holdout:
        """Inverse of :meth:`to_dict`."""
        return cls(images=int(d["images"]), seed=int(d["seed"]), pool=int(d["pool"]))


def recorded_holdout(ckpt: dict[str, Any]) -> Holdout | None:
    """The hold-out a float checkpoint records, or None for one written before it was recorded."""
    entry = ckpt.get(HOLDOUT_KEY)
    if entry is None:
        return None
    try:
        return Holdout.from_dict(entry)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"the checkpoint's '{HOLDOUT_KEY}' entry is damaged ({type(exc).__name__}: {exc}); "
            "train the model again with forms train"
        ) from None


def split_train(
    full: TensorDataset, length: int, holdout: Holdout
) -> tuple[TensorDataset, TensorDataset | None]:
    """(training set, held-out set or None): the first ``length`` examples of the training split
    ``full`` without the held-out ones, and the held-out examples. Both keep the split's order."""
    if holdout.pool > len(full):
        raise ConfigError(
            f"the hold-out is drawn from the first {holdout.pool} training images, but the dataset "
            f"has {len(full)}; choose a smaller validation_pool"
        )
    if holdout.images == 0:
        return TensorDataset(*(t[:length] for t in full.tensors)), None
    if not 0 < holdout.images < holdout.pool:
        raise ConfigError(
            f"cannot hold out {holdout.images} of {holdout.pool} images: choose a number between 1 and "
            f"{holdout.pool - 1} (a smaller validation_images, or a larger train_subset)"
        )
    keep = ~holdout.mask(length)
    held = holdout.mask(holdout.pool)
    return (
        TensorDataset(*(t[:length][keep] for t in full.tensors)),
        TensorDataset(*(t[: holdout.pool][held] for t in full.tensors)),
    )
