"""Resumable state of a compression run: the run directory's files, ``compress_state.pt`` and its checks.

A run saves its whole state (weights, Z, U, rho, round, optimizer, frozen masks) after every ADMM
round and retraining epoch (:class:`StateWriter`). Before one continues from it, or reuses a
finished run, the saved float model (:func:`forms.nn.fingerprint.fingerprint`) and settings
(:func:`run_config`) must be those of the new call. A run folder holding anything else (another
kind of checkpoint, the float checkpoint being compressed, a damaged state or metrics file) is
refused with an error that names the file and what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from forms.compress.admm import ADMMState
from forms.compress.projections import Projection
from forms.compress.result import CHECKPOINT_NAME, METRICS_NAME, CompressResult
from forms.compress.spec import CompressSpec
from forms.errors import CheckpointError, ConfigError
from forms.io import atomic_write
from forms.nn import distributed as D
from forms.nn.checkpoint import describe_checkpoint, load_checkpoint
from forms.nn.train_spec import EXECUTION_KEYS

STATE_NAME = "compress_state.pt"
STATE_FORMAT = "forms-compress-state"
STATE_KEYS = ("phase", "model", "source_fingerprint", "config", "accuracy_before", "admm", "state_dict")
"""Entries every saved state holds (one saved in retraining also holds ``retrain``)."""


@dataclass(frozen=True)
class RunPaths:
    """The files of a compression run directory."""

    out: Path
    state: Path
    checkpoint: Path
    metrics: Path

    @classmethod
    def under(cls, out_dir: str | Path) -> RunPaths:
        """The files of the run directory ``out_dir``."""
        out = Path(out_dir)
        return cls(out, out / STATE_NAME, out / CHECKPOINT_NAME, out / METRICS_NAME)


def run_config(spec: CompressSpec) -> dict[str, Any]:
    """The settings that define what a run computes (``spec`` as JSON without the execution keys)."""
    return {k: v for k, v in spec.model_dump(mode="json").items() if k not in EXECUTION_KEYS}


def saved_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run config saved by an earlier version, completed with the defaults of fields added since.

    So a run started before a new setting existed still resumes (and compares equal) when the
    setting is left at its default, which reproduces the old behaviour.
    """
    return run_config(CompressSpec.from_dict(config, source="the saved compression settings"))


def _state_problem(saved: Any) -> str | None:
    """Why ``saved`` (a loaded state file) is not a compression state, or None when it is one."""
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        return f"it holds a {type(saved).__name__}, not a compression state"
    missing = [k for k in STATE_KEYS if k not in saved]
    if saved.get("phase") == "retrain" and "retrain" not in saved:
        missing.append("retrain")
    if missing:
        return f"it lacks {', '.join(missing)}"
    if saved["phase"] not in ("admm", "retrain") or not isinstance(saved["model"], dict):
        return f"its phase {saved['phase']!r} or model record is not one a compression saves"
    return None


def check_resumable(
    saved: dict[str, Any], spec: CompressSpec, model_record: dict[str, Any], source_fp: str, path: Path
) -> None:
    """Raise unless the state ``saved`` (read from ``path``) is of this float model and these settings."""
    problem = _state_problem(saved)
    if problem is not None:
        raise CheckpointError(
            f"{path} is not a usable compression state ({problem}); delete it to compress from the start, "
            "or choose another --out"
        )
    if saved["model"] != model_record or saved["source_fingerprint"] != source_fp:
        raise CheckpointError(
            f"{path} belongs to a different float model ({saved['model'].get('name')}); "
            "resume with the checkpoint it was started from, or choose another --out"
        )
    then, now = saved_run_config(saved["config"]), run_config(spec)
    if then != now:
        diffs = [k for k in sorted(set(now) | set(then)) if now.get(k) != then.get(k)]
        raise ConfigError(
            f"cannot resume {path}: its compression settings differ in {', '.join(diffs)}; "
            "use the same options or a new --out directory"
        )


def compressed_checkpoint_in(paths: RunPaths, source: str | Path) -> dict[str, Any] | None:
    """The compressed checkpoint a run in ``paths`` wrote, or None when the folder holds none.

    Raises :class:`ConfigError` when ``paths.checkpoint`` is anything else a run there would replace:
    the float checkpoint ``source`` being compressed, another kind of checkpoint, an unreadable file;
    or when the folder holds a ``metrics.json`` without a checkpoint (another kind of run).
    """
    target = paths.checkpoint
    if not target.exists():
        if paths.metrics.exists() and not paths.state.exists():
            raise ConfigError(
                f"{paths.out} holds a {METRICS_NAME} but no {CHECKPOINT_NAME}: it is not a compression run, "
                "and compressing there would overwrite that file; choose another --out"
            )
        return None
    src = Path(source)
    src = src / CHECKPOINT_NAME if src.is_dir() else src
    if src.exists() and os.path.samefile(target, src):
        raise ConfigError(
            f"--out {paths.out} is the folder of the float checkpoint being compressed ({target}); the "
            "compressed model would replace it: choose another --out"
        )
    try:
        done = load_checkpoint(target)
    except CheckpointError:
        held = f"a {target.name} that is not a readable FORMS checkpoint"
    else:
        if done["stage"] == "compressed":
            return done
        held = describe_checkpoint(done)
    raise ConfigError(
        f"{paths.out} already holds {held}; compressing there would replace it: choose another --out"
    )


def check_finished_run(done: dict[str, Any], paths: RunPaths, spec: CompressSpec, source_fp: str) -> None:
    """Raise unless ``done``, the finished run's checkpoint in ``paths``, compressed the same float model
    with the same settings."""
    same = saved_run_config(done.get("compression") or {}) == run_config(spec)
    if not same or done.get("source_fingerprint") != source_fp:
        raise CheckpointError(
            f"{paths.checkpoint} was compressed from another model or with other settings; "
            "choose another --out"
        )


def read_finished_result(paths: RunPaths) -> CompressResult:
    """The result a finished run in ``paths`` wrote to its ``metrics.json``; :class:`CheckpointError`
    naming the file when it is damaged."""
    try:
        return CompressResult.from_dict(json.loads(paths.metrics.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(
            f"{paths.metrics} is damaged ({type(exc).__name__}: {exc}); the compressed model in "
            f"{paths.checkpoint} has no readable results: delete both files to compress again, "
            "or choose another --out"
        ) from None


def load_saved_state(
    paths: RunPaths, spec: CompressSpec, model_record: dict[str, Any], source_fp: str, resume: bool
) -> dict[str, Any] | None:
    """The checked state of an unfinished run in ``paths``, or None when there is none.

    Raises :class:`ConfigError` when there is one and ``resume`` is false, and
    :class:`CheckpointError` naming the file when it is damaged or not a compression state.
    """
    if paths.state.exists() and not resume:
        raise ConfigError(
            f"{paths.out} holds an unfinished compression; pass --resume to continue it "
            "or choose another --out"
        )
    if not paths.state.is_file():
        return None
    try:
        saved = torch.load(paths.state, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"{paths.state} is damaged or not a PyTorch file ({type(exc).__name__}: {exc}); delete it to "
            "compress from the start, or choose another --out"
        ) from None
    check_resumable(saved, spec, model_record, source_fp, paths.state)
    return saved


def projection_state(projections: dict[str, Projection]) -> dict[str, Any]:
    """The frozen masks, signs, scales and integers of ``projections`` as plain tensors for ``torch.save``."""
    return {
        name: {
            "keep": p.keep,
            "signs": p.signs,
            "scale": p.scale,
            "matrix": p.matrix,
            "weight_int": p.weight_int,
        }
        for name, p in projections.items()
    }


def projections_from_state(state: dict[str, Any]) -> dict[str, Projection]:
    """Inverse of :func:`projection_state`."""
    return {
        name: Projection(
            matrix=s["matrix"], weight_int=s["weight_int"], scale=s["scale"], keep=s["keep"], signs=s["signs"]
        )
        for name, s in state.items()
    }


@dataclass(frozen=True)
class StateWriter:
    """Saves a run's state to ``path`` (on rank 0; every rank waits for it) after each step."""

    path: Path
    spec: CompressSpec
    model_record: dict[str, Any]
    source_fp: str
    accuracy_before: float
    admm: ADMMState

    def save(self, phase: str, **extra: Any) -> None:
        """Write the state of ``phase`` ("admm" or "retrain") with ``extra`` entries, atomically."""
        if D.is_main():
            state = {
                "format": STATE_FORMAT,
                "phase": phase,
                "model": self.model_record,
                "source_fingerprint": self.source_fp,
                "config": run_config(self.spec),
                "accuracy_before": self.accuracy_before,
                "admm": self.admm.state(),
                **extra,
            }
            atomic_write(self.path, lambda fh: torch.save(state, fh))
        D.barrier()
