"""Checkpoints, written atomically (:mod:`forms.io`) and read back with clear errors.

A checkpoint is a plain dict saved with ``torch.save``::

    {"format": "forms-checkpoint", "version": 1, "stage": "float" | "compressed",
     "model": {"name": str, "kwargs": dict}, "state_dict", "optimizer", "epoch", "seed",
     "config": dict, "data": {"dataset": str, "pad_to": int | None, "channels": int | None}, ...}

``model.name`` is a zoo name or a user factory's ``package.module:factory`` import path
(:mod:`forms.nn.user_model`); ``data.dataset`` a built-in name or the absolute path of user data
(:mod:`forms.nn.user_data`).

Training adds "scheduler", "rng" and "history", and the held-out validation images ("holdout",
:mod:`forms.nn.holdout`; absent in checkpoints written before it), the epoch whose weights
``state_dict`` holds ("selected_epoch": the best one once training has finished) and, while training,
the best epoch's weights when they are not the current ones ("best"); compression adds "integer_layers",
"compression" and "admm". Files are written to a temporary file in the same directory and moved into
place with ``os.replace``, so a crash never leaves a half-written checkpoint behind; a kill during a
write can leave the temporary file, which :func:`forms.io.remove_orphan_temp_files` clears when a run
starts again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from forms.errors import CheckpointError, ConfigError
from forms.io import atomic_write
from forms.nn.user_model import make_model

CHECKPOINT_FORMAT = "forms-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("stage", "model", "state_dict")


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
    """Rebuild the model (zoo or user factory) a checkpoint describes and load its weights (eval, CPU)."""
    try:
        spec = ckpt["model"]
        model = make_model(spec["name"], **spec.get("kwargs", {}))
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{source}: cannot rebuild its model ({exc})") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{source}: weights do not fit model {spec['name']} ({exc})") from None
    return model.eval()


def describe_checkpoint(ckpt: dict[str, Any]) -> str:
    """What a loaded checkpoint holds, in words ("a float lenet5 model on mnist, 3 of 10 epochs trained
    (forms train)"), for messages that refuse to overwrite or resume it."""
    model = ckpt.get("model")
    name = model.get("name", "?") if isinstance(model, dict) else "?"
    data = ckpt.get("data")
    dataset = data.get("dataset", "?") if isinstance(data, dict) else "?"
    stage = ckpt.get("stage")
    if stage == "compressed":
        return f"a compressed {name} model on {dataset} (forms compress)"
    if stage == "float":
        config = ckpt.get("config")
        total = config.get("epochs", "?") if isinstance(config, dict) else "?"
        epochs = f"{ckpt.get('epoch', '?')} of {total} epochs trained"
        return f"a float {name} model on {dataset}, {epochs} (forms train)"
    return f"a FORMS checkpoint of stage {stage!r}"
