"""Reusable scratch buffers for chunked engines, and their chunk size.

The GEMM engine processes vectors in chunks of a few megabytes; allocating every chunk's tensors
afresh makes the allocator hand back new pages each time, and the first write to each page faults.
A :class:`Workspace` keeps one flat buffer per role and hands out views of its prefix.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor


class Workspace:
    """Named flat buffers, grown on demand and reused by later chunks of one run."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """An uninitialized contiguous tensor of ``shape``: a view of buffer ``name`` (its previous
        contents are overwritten by the caller; one view per name is live at a time)."""
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < size or buf.dtype != dtype or buf.device != device:
            with torch.inference_mode(False):  # a buffer made under inference mode refuses writes outside it
                buf = torch.empty(size, dtype=dtype, device=device)
            self._buffers[name] = buf
        return buf[:size].view(shape)


_THREAD_SCRATCH = threading.local()
"""Each thread's :func:`thread_scratch` workspace."""


def thread_scratch() -> Workspace:
    """This thread's workspace kept between calls, for short passes whose buffers of a few megabytes,
    allocated afresh on every call, would cost more in page faults than the passes themselves (the
    zero-skip counting, the exact GEMM's converted codes). Its users take distinct buffer names."""
    workspace: Workspace | None = getattr(_THREAD_SCRATCH, "workspace", None)
    if workspace is None:
        workspace = _THREAD_SCRATCH.workspace = Workspace()
    return workspace


def vectors_per_chunk(chunk_elements: int, per_vector: int) -> int:
    """Vectors per chunk of an engine whose vectors hold ``per_vector`` elements each: ``chunk_elements``
    per intra-op thread (``torch.get_num_threads()``), at least one vector.

    Each thread's share of a chunk then stays the same at every thread count: a chunk's elementwise
    passes and GEMMs are split over the threads, and with a fixed chunk size each thread's share (and
    so the work between two fork/joins) would shrink as threads are added (docs/design.md, "Making the
    simulator fast", has the measurements)."""
    return max(1, chunk_elements * torch.get_num_threads() // max(1, per_vector))
