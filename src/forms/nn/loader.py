"""Mini-batches whose order and augmentation are a function of (seed, epoch) only, shardable by rank.

:class:`EpochLoader` is the loader of training and ADMM retraining: deterministic, resumable at any
epoch boundary without saved RNG state, and split across data-parallel processes so that W processes
see exactly the samples of the single-process global batch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed for (run seed, epoch, stream), independent across all three (numpy SeedSequence)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def shift_images(x: Tensor, dy: Tensor, dx: Tensor, max_shift: int, fill: Sequence[float]) -> Tensor:
    """Translate each image ``x[i]`` by (dy[i], dx[i]) pixels, filling uncovered pixels with ``fill``."""
    n, c, h, w = x.shape
    s = max_shift
    padded = x.new_empty(n, c, h + 2 * s, w + 2 * s)
    padded[:] = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    padded[:, :, s : s + h, s : s + w] = x
    rows = (s - dy)[:, None] + torch.arange(h, device=x.device)
    cols = (s - dx)[:, None] + torch.arange(w, device=x.device)
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


class EpochLoader:
    """Mini-batches of a ``TensorDataset`` whose order and augmentation depend only on (seed, epoch).

    Call :meth:`set_epoch` before iterating. ``batch_size`` is the global batch: with ``world_size``
    W > 1, rank r keeps every W-th sample of each global batch. With ``wrap`` (for training) the
    sample order is padded by wrap-around to a multiple of W so all ranks see equally many samples in
    every batch, as DDP needs; evaluation uses ``wrap=False`` so no sample counts twice.
    """

    def __init__(
        self,
        dataset: TensorDataset,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        shift: int = 0,
        flip: bool = False,
        fill: Sequence[float] | None = None,
        rank: int = 0,
        world_size: int = 1,
        wrap: bool = True,
    ) -> None:
        self.images, self.labels = dataset.tensors[0], dataset.tensors[1]
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.shift = shift
        self.flip = flip
        self.fill = tuple(fill) if fill is not None else (0.0,) * self.images.shape[1]
        self.rank = rank
        self.world_size = world_size
        self.wrap = wrap
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order/augmentation the next iteration produces."""
        self.epoch = epoch

    def without_augmentation(self) -> EpochLoader:
        """The same batches (order, shards, epoch) without shifts or flips: for statistics of plain images."""
        plain = copy.copy(self)
        plain.shift, plain.flip = 0, False
        return plain

    def _order(self) -> Tensor:
        n = len(self.labels)
        if self.shuffle:
            gen = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, 0))
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        pad = (-n) % self.world_size if self.wrap else 0
        return torch.cat([order, order.repeat(-(-pad // n))[:pad]]) if pad else order

    def __len__(self) -> int:
        n = len(self.labels) + ((-len(self.labels)) % self.world_size if self.wrap else 0)
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()
        aug = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, 1))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            k = len(idx)
            dy = torch.randint(-self.shift, self.shift + 1, (k,), generator=aug) if self.shift else None
            dx = torch.randint(-self.shift, self.shift + 1, (k,), generator=aug) if self.shift else None
            flips = torch.rand(k, generator=aug) < 0.5 if self.flip else None
            mine = slice(self.rank, None, self.world_size)
            x, y = self.images[idx[mine]], self.labels[idx[mine]]
            if dy is not None and dx is not None:
                x = shift_images(x, dy[mine], dx[mine], self.shift, self.fill)
            if flips is not None:
                x = torch.where(flips[mine].view(-1, 1, 1, 1), x.flip(3), x)
            yield x, y
