"""Content hashes that identify what a run computes from: weights, checkpoints, image sets.

Resumable work is keyed by these, so work recorded for one input is never reused for another:
compression keeps the :func:`fingerprint` of the float weights it started from, a simulation's
``runs.json`` keeps the :func:`content_digest` of its weights, integer layers and images, and
:func:`checkpoint_content_key` names the content of a checkpoint file (for a sweep point's key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def fingerprint(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 of a state dict's names, shapes and bytes: identifies the float model compressed."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if isinstance(t, torch.Tensor):
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _update(h: Any, value: Any) -> None:
    """Feed ``value`` (tensors, mappings, sequences and plain scalars, nested) into the hash ``h``."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        h.update(f"map {len(value)}|".encode())
        for key in sorted(value, key=str):
            _update(h, str(key))
            _update(h, value[key])
    elif isinstance(value, list | tuple):
        h.update(f"seq {len(value)}|".encode())
        for item in value:
            _update(h, item)
    else:
        h.update(f"{type(value).__name__} {value!r}|".encode())


def content_digest(*values: Any) -> str:
    """SHA-256 of ``values``: equal exactly when every tensor's dtype, shape and bytes and every other
    entry (nested dicts, lists, strings, numbers) are equal."""
    h = hashlib.sha256()
    for value in values:
        _update(h, value)
    return h.hexdigest()


CONTENT_KEYS = ("stage", "model", "state_dict", "integer_layers", "data")
"""The checkpoint entries that determine what a simulation or cost estimate of it computes."""


def checkpoint_content_key(checkpoint: str | Path | Mapping[str, Any]) -> str:
    """Content key of a checkpoint (a path or a loaded dict): the :func:`content_digest` of its
    :data:`CONTENT_KEYS`. Two checkpoints with the same key hold the same model, weights, integer
    layers and dataset record, wherever they are stored; work recorded under one key (a simulation, a
    sweep point) may be reused only for a checkpoint of the same key. Raises
    :class:`forms.errors.CheckpointError` for a path that is missing or not a FORMS checkpoint."""
    from forms.nn.checkpoint import load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, Mapping) else load_checkpoint(checkpoint)
    return content_digest({key: ckpt.get(key) for key in CONTENT_KEYS})
