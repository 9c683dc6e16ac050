"""Before a training run starts: whether its folder holds a run to continue, and refusals of one it cannot.

:func:`checkpoint_to_resume` is :func:`forms.nn.train.train`'s first step: it refuses, before any work,
a folder whose files a run would overwrite (without ``resume``) or cannot continue (with it), and a
checkpoint saved with other settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from forms.errors import CheckpointError, ConfigError
from forms.nn.checkpoint import describe_checkpoint, load_checkpoint
from forms.nn.train_result import CHECKPOINT_NAME, METRICS_NAME
from forms.nn.train_spec import EXECUTION_KEYS, TrainSpec


def _config_differences(saved: dict[str, Any], spec: TrainSpec) -> list[str]:
    """The fields (execution keys aside) where the saved config and ``spec`` differ, as messages."""
    current = spec.model_dump(mode="json")
    keys = sorted((set(saved) | set(current)) - set(EXECUTION_KEYS))
    fields = TrainSpec.model_fields
    # a field added since the checkpoint was saved compares as its default (the old behaviour)
    then = {k: saved[k] if k in saved or k not in fields else fields[k].default for k in keys}
    return [
        f"{k}: checkpoint {then[k]!r} vs now {current.get(k)!r}" for k in keys if then[k] != current.get(k)
    ]


TRAINING_KEYS = ("optimizer", "scheduler", "rng", "history", "epoch", "config")
"""Checkpoint entries a training run saves after every epoch and needs to resume."""


def _refuse_to_overwrite(ckpt_path: Path) -> NoReturn:
    """Raise :class:`ConfigError` saying what the existing ``ckpt_path`` holds and how to keep it."""
    try:
        ckpt = load_checkpoint(ckpt_path)
    except CheckpointError:
        held, fix = f"a {ckpt_path.name} that is not a readable FORMS checkpoint", "choose another --out"
    else:
        is_run = ckpt["stage"] == "float"
        held = describe_checkpoint(ckpt)
        fix = "pass --resume to continue it, or choose another --out" if is_run else "choose another --out"
    raise ConfigError(f"{ckpt_path.parent} already holds {held}; training there would overwrite it: {fix}")


def checkpoint_to_resume(spec: TrainSpec, out: Path, resume: bool) -> dict[str, Any] | None:
    """The training checkpoint in ``out`` to continue, or None to start afresh; refuses, before any work,
    a folder whose files a run would overwrite (without ``resume``) or cannot continue (with it)."""
    ckpt_path, metrics_path = out / CHECKPOINT_NAME, out / METRICS_NAME
    if ckpt_path.exists() and not resume:
        _refuse_to_overwrite(ckpt_path)
    if not ckpt_path.exists():
        if metrics_path.exists():
            raise ConfigError(
                f"{out} holds a {METRICS_NAME} but no {CHECKPOINT_NAME}: it is not a training run, and "
                "training there would overwrite that file; choose another --out"
            )
        return None
    ckpt = load_checkpoint(ckpt_path)
    if ckpt["stage"] != "float":
        raise CheckpointError(
            f"cannot resume {ckpt_path}: it holds {describe_checkpoint(ckpt)}, not a training run; "
            "choose another --out"
        )
    missing = [k for k in TRAINING_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"cannot resume {ckpt_path}: it lacks the training state ({', '.join(missing)}) that "
            "`forms train` saves after every epoch; choose another --out"
        )
    diffs = _config_differences(ckpt["config"] if isinstance(ckpt["config"], dict) else {}, spec)
    if diffs:
        raise ConfigError(
            f"cannot resume {ckpt_path}: its config differs ({'; '.join(diffs)}); "
            "use the same options or a new --out directory"
        )
    return ckpt
