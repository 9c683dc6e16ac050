"""Checkpoints and JSON results, written atomically and read back with clear errors.

A checkpoint is a plain dict saved with ``torch.save``::

    {"format": "forms-checkpoint", "version": 1, "stage": "float" | "compressed",
     "model": {"name": str, "kwargs": dict}, "state_dict", "optimizer", "epoch", "seed",
     "config": dict, "data": {"dataset": str, "pad_to": int | None, "channels": int | None}, ...}

Training adds "scheduler", "rng" and "history"; compression adds "integer_layers", "compression"
and "admm". Files are written to a temporary file in the same directory and moved into place with
``os.replace``, so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from forms.errors import CheckpointError, ConfigError
from forms.nn.models import build_model

CHECKPOINT_FORMAT = "forms-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("stage", "model", "state_dict")


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(fh)`` on a temp file next to ``path``, fsync it, then ``os.replace`` it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Save checkpoint dict ``state`` atomically to ``path`` (format/version keys are filled in)."""
    full = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    missing = [k for k in REQUIRED_KEYS if k not in full]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    return atomic_write(path, lambda fh: torch.save(full, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint` onto the CPU.

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable/corrupt, or not a
    FORMS checkpoint, with the command that produces one.
    """
    p = Path(path)
    fix = (
        "train one with `forms train --model <name> --dataset <name> --out <dir>`"
        " (writes <dir>/checkpoint.pt)"
    )
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist; {fix}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise CheckpointError(
            f"checkpoint {p} is corrupt or not a PyTorch file ({type(exc).__name__}: {exc}); {fix}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{p} is a PyTorch file but not a FORMS checkpoint (no format='{CHECKPOINT_FORMAT}'); {fix}"
        )
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {p} has format version {ckpt.get('version')}, this FORMS reads {CHECKPOINT_VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {p} lacks {', '.join(missing)}; {fix}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint") -> nn.Module:
    """Rebuild the zoo model a checkpoint describes and load its weights (eval mode, CPU)."""
    try:
        spec = ckpt["model"]
        model = build_model(spec["name"], **spec.get("kwargs", {}))
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{source}: cannot rebuild its model ({exc})") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{source}: weights do not fit model {spec['name']} ({exc})") from None
    return model.eval()


def _json_safe(obj: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively; tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented, strictly valid JSON (NaN/inf become null) atomically."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=False, allow_nan=False, default=str)
    return atomic_write(path, lambda fh: fh.write((text + "\n").encode()))
