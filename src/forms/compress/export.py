"""Export compressed integer weights to ``.npz`` and check the FORMS constraints on such a file.

File layout (numpy ``.npz``, readable with ``numpy.load(path)``, no pickles):

- metadata scalars ``fragment_size`` (R), ``weight_bits`` (b), ``crossbar_rows``, ``crossbar_cols``,
  and ``layers``: the mapped layer names in order;
- per layer ``<layer>.weight_int``: signed integers (int32) in crossbar-matrix layout as docs/design.md
  defines it, shape (rows, cols) (rows = inputs in PyTorch's (c, i, j) order, cols = outputs), or
  (groups, rows, cols) for a grouped convolution; ``<layer>.scale``: float32 step, shape () per
  layer or (cols,) / (groups, cols) per output channel; ``<layer>.fragment_size``: the R this
  layer satisfies (equal to the global R, or 1 for a layer left unpolarized on purpose);
  ``<layer>.weight_shape``: the PyTorch weight shape.

:func:`check_npz` re-derives every constraint with numpy alone: each fragment of R consecutive rows
of one column (the last one may be short) holds no positive AND negative value, |w| <= 2^b - 1,
integer dtype, crossbar matrices of the shape ``weight_shape`` maps to, R divides the crossbar rows,
positive finite real scales of a matching shape. A file that is not an ``.npz`` archive at all
(empty, truncated, a single ``.npy`` array) is an error; a damaged or unreadable member (a CRC
error, an object array) is a violation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forms.compress.result import CHECKPOINT_NAME
from forms.encoding import MAX_WEIGHT_BITS
from forms.errors import CheckpointError, ConfigError
from forms.intweights import IntegerLayer, check_layers_fit, integer_layers_from_checkpoint, matrix_shape

META_KEYS = ("fragment_size", "weight_bits", "crossbar_rows", "crossbar_cols", "layers")
LAYER_KEYS = ("weight_int", "scale", "fragment_size", "weight_shape")
"""The per-layer entries, each stored as ``<layer>.<key>``."""


def _layer_arrays(layer: IntegerLayer) -> dict[str, np.ndarray]:
    """The ``.npz`` entries of one integer layer (see the module docstring)."""
    w = layer.weight_int.numpy().astype(np.int32)
    scale = layer.scale.numpy().astype(np.float32)
    if w.shape[0] == 1:
        w = w[0]
        scale = scale.reshape(scale.shape[1:]) if scale.ndim == 2 else scale
    return {
        f"{layer.name}.weight_int": w,
        f"{layer.name}.scale": scale,
        f"{layer.name}.fragment_size": np.asarray(layer.fragment_size, dtype=np.int64),
        f"{layer.name}.weight_shape": np.asarray(layer.weight_shape, dtype=np.int64),
    }


def write_npz(layers: Sequence[IntegerLayer], meta: dict[str, int], out: str | Path) -> Path:
    """Write ``layers`` and the metadata scalars ``meta`` to the ``.npz`` ``out`` atomically; return its path.

    ``meta`` holds every :data:`META_KEYS` entry but ``layers`` (the names, taken from ``layers``).
    """
    from forms.io import atomic_write

    arrays: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.int64) for k, v in meta.items()}
    arrays["layers"] = np.asarray([layer.name for layer in layers])
    for layer in layers:
        arrays.update(_layer_arrays(layer))
    return atomic_write(out, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]


def _refuse_to_replace_checkpoint(checkpoint: Path, target: Path) -> None:
    """Raise :class:`ConfigError` when ``target`` is the checkpoint file (or a folder's checkpoint) itself."""
    source = checkpoint / CHECKPOINT_NAME if checkpoint.is_dir() else checkpoint
    if target.exists() and source.exists() and os.path.samefile(target, source):
        raise ConfigError(
            f"--out {target} is the checkpoint being exported; writing the .npz there would replace it: "
            "choose another file, such as model.npz"
        )


def export_npz(checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the integer layers of a compressed checkpoint to ``out`` (atomically); return a summary.

    Refuses (before writing) an ``out`` that is the checkpoint itself, a checkpoint that is not
    compressed, and integer layers that do not fit the checkpoint's model.
    """
    from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint

    target = Path(out)
    _refuse_to_replace_checkpoint(Path(checkpoint), target)
    ckpt = load_checkpoint(checkpoint)
    if ckpt["stage"] != "compressed":
        raise CheckpointError(
            f"{checkpoint} is a '{ckpt['stage']}' checkpoint; export needs one written by `forms compress`"
        )
    layers = integer_layers_from_checkpoint(ckpt, str(checkpoint))
    check_layers_fit(layers, model_from_checkpoint(ckpt, str(checkpoint)), str(checkpoint))
    spec = ckpt.get("compression_spec") or ckpt.get("compression") or {}
    try:
        crossbar = spec.get("crossbar", {})
        meta = {
            "fragment_size": int(crossbar["fragment_size"]),
            "weight_bits": int(spec["quant"]["weight_bits"]),
            "crossbar_rows": int(crossbar["rows"]),
            "crossbar_cols": int(crossbar["cols"]),
        }
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: no compression settings recorded ({exc})") from None
    write_npz(layers, meta, target)
    return {"path": str(target), "layers": [layer.name for layer in layers], **meta}


@dataclass
class CheckReport:
    """Result of :func:`check_npz`: ``ok`` is True only when ``violations`` is empty."""

    path: str
    ok: bool = True
    violations: list[str] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, int] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        """Record one violation."""
        self.ok = False
        self.violations.append(message)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-ready)."""
        return asdict(self)


def mixed_sign_fragments(w: np.ndarray, r: int) -> int:
    """Fragments of ``r`` consecutive rows of one column holding both signs; ``w`` is (..., rows, cols)."""
    rows = w.shape[-2]
    pad = (-rows) % r
    if pad:
        w = np.concatenate([w, np.zeros((*w.shape[:-2], pad, w.shape[-1]), dtype=w.dtype)], axis=-2)
    frags = w.reshape(*w.shape[:-2], -1, r, w.shape[-1])
    return int(((frags > 0).any(axis=-2) & (frags < 0).any(axis=-2)).sum())


def _integer_scalar(arrays: dict[str, np.ndarray], key: str, label: str, report: CheckReport) -> int | None:
    """The integer scalar ``arrays[key]``, or None after recording why it is missing or not one."""
    if key not in arrays:
        report.fail(f"{label} '{key}' is missing")
        return None
    value = arrays[key]
    if value.shape != () or not np.issubdtype(value.dtype, np.integer):
        report.fail(f"{label} '{key}' must be an integer scalar, got dtype {value.dtype} shape {value.shape}")
        return None
    return int(value)


def _check_weights(name: str, w: np.ndarray, weight_shape: np.ndarray, report: CheckReport) -> bool:
    """Record why ``w`` is not integer crossbar matrices of a weight of ``weight_shape``; True when it is."""
    if not np.issubdtype(w.dtype, np.integer):
        report.fail(f"layer '{name}': weight_int has dtype {w.dtype}, not an integer type")
        return False
    if w.ndim not in (2, 3) or w.size == 0:
        report.fail(
            f"layer '{name}': weight_int must be non-empty (rows, cols) or (groups, rows, cols), "
            f"got {w.shape}"
        )
        return False
    if weight_shape.ndim != 1 or not np.issubdtype(weight_shape.dtype, np.integer):
        report.fail(f"layer '{name}': weight_shape must be a 1-D integer array, got {weight_shape!r}")
        return False
    matrices = w.shape if w.ndim == 3 else (1, *w.shape)
    try:
        expected = matrix_shape(weight_shape.tolist(), matrices[0])
    except ValueError as exc:
        report.fail(f"layer '{name}': {exc}")
        return False
    if matrices != expected:
        report.fail(
            f"layer '{name}': weight_int has shape {w.shape}, but its weight_shape "
            f"{tuple(weight_shape.tolist())} maps to crossbar matrices {expected}"
        )
        return False
    return True


def _check_scale(name: str, scale: np.ndarray, w: np.ndarray, report: CheckReport) -> None:
    """Record why ``scale`` is not a positive, finite, real step per layer or per column of ``w``."""
    cols, groups = w.shape[-1], (w.shape[0] if w.ndim == 3 else 1)
    allowed = {(), (cols,)} if groups == 1 else {(), (groups, cols)}
    if not np.issubdtype(scale.dtype, np.floating):
        report.fail(f"layer '{name}': scale has dtype {scale.dtype}, not a real floating-point type")
    elif scale.shape not in allowed:
        report.fail(f"layer '{name}': scale shape {scale.shape} does not fit weight_int {w.shape}")
    elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        report.fail(f"layer '{name}': scales must be positive and finite")


def _check_layer(arrays: dict[str, np.ndarray], name: str, meta: dict[str, int], report: CheckReport) -> None:
    """Check one layer's entries against the constraints; record its summary and every violation."""
    missing = [f"{name}.{k}" for k in LAYER_KEYS if f"{name}.{k}" not in arrays]
    if missing:
        report.fail(f"layer '{name}': missing {', '.join(missing)}")
        return
    w = arrays[f"{name}.weight_int"]
    r = _integer_scalar(arrays, f"{name}.fragment_size", "layer entry", report)
    if r is None or not _check_weights(name, w, arrays[f"{name}.weight_shape"], report):
        return
    limit = (1 << meta["weight_bits"]) - 1
    over = int(((w > limit) | (w < -limit)).sum())
    if over:
        report.fail(f"layer '{name}': {over} weights exceed |w| <= 2^{meta['weight_bits']} - 1 = {limit}")
    mixed = 0
    if r not in (1, meta["fragment_size"]):
        report.fail(
            f"layer '{name}': fragment_size {r} is neither the global R={meta['fragment_size']} nor 1"
        )
    else:
        mixed = mixed_sign_fragments(w, r)
    if mixed:
        report.fail(f"layer '{name}': {mixed} fragments of R={r} rows hold both signs")
    _check_scale(name, arrays[f"{name}.scale"], w, report)
    report.layers.append(
        {
            "name": name,
            "shape": list(w.shape),
            "fragment_size": r,
            "mixed_sign_fragments": mixed,
            "over_range": over,
        }
    )


def _read_arrays(p: Path, report: CheckReport) -> dict[str, np.ndarray]:
    """Every array in the archive ``p``; a member that cannot be read is a violation in ``report``.

    Raises :class:`ConfigError` when ``p`` is missing or not an ``.npz`` archive at all.
    """
    fix = f"write one with `forms export --checkpoint <compressed checkpoint> --out {p}`"
    if p.is_dir():
        raise ConfigError(f"{p} is a folder, not an .npz file; {fix}")
    if not p.is_file():
        raise ConfigError(f"{p} does not exist; {fix}")
    if p.stat().st_size == 0:
        raise ConfigError(f"{p} is empty, not an .npz archive; {fix}")
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as exc:  # numpy and zipfile raise many types for damaged or foreign files
        raise ConfigError(
            f"{p} is not a readable .npz archive ({type(exc).__name__}: {exc}); {fix}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ConfigError(f"{p} holds a single array (.npy), not an .npz archive; {fix}")
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except Exception as exc:  # a CRC error, a damaged header, an object array
                report.fail(f"member '{key}' cannot be read ({type(exc).__name__}: {exc})")
    return arrays


def _check_metadata(arrays: dict[str, np.ndarray], report: CheckReport) -> dict[str, int] | None:
    """The archive's integer metadata, or None after recording why it is missing or impossible."""
    meta = {k: _integer_scalar(arrays, k, "metadata", report) for k in META_KEYS[:-1]}
    if any(v is None for v in meta.values()):
        return None
    m: dict[str, int] = {k: int(v) for k, v in meta.items() if v is not None}
    report.metadata = m
    if not 1 <= m["weight_bits"] <= MAX_WEIGHT_BITS:
        report.fail(f"metadata weight_bits={m['weight_bits']} is outside 1..{MAX_WEIGHT_BITS}")
    if m["crossbar_rows"] < 1 or m["crossbar_cols"] < 1:
        report.fail("metadata crossbar_rows and crossbar_cols must be positive")
    elif m["fragment_size"] < 1 or m["crossbar_rows"] % m["fragment_size"]:
        report.fail(
            f"metadata fragment_size={m['fragment_size']} does not divide crossbar_rows={m['crossbar_rows']}"
        )
    layers = arrays.get("layers")
    if layers is None or layers.ndim != 1 or layers.size == 0:
        report.fail("metadata 'layers' (a 1-D array of layer names) is missing or empty")
    return m if report.ok else None


def check_npz(path: str | Path) -> CheckReport:
    """Verify an exported ``.npz`` against the FORMS constraints; never raises for a violation.

    Raises :class:`ConfigError` only when the file is missing or not an ``.npz`` archive; a damaged
    member, missing metadata or any broken constraint is a violation in the report.
    """
    p = Path(path)
    report = CheckReport(path=str(p))
    arrays = _read_arrays(p, report)
    if not report.ok:
        return report
    meta = _check_metadata(arrays, report)
    if meta is None:
        return report
    for name in arrays["layers"].tolist():
        _check_layer(arrays, str(name), meta, report)
    return report
