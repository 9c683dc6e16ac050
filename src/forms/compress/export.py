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
integer dtype, R divides the crossbar rows, positive finite scales of a matching shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forms.encoding import MAX_WEIGHT_BITS
from forms.errors import CheckpointError, ConfigError
from forms.intweights import IntegerLayer, integer_layers_from_checkpoint

META_KEYS = ("fragment_size", "weight_bits", "crossbar_rows", "crossbar_cols", "layers")


def layer_arrays(layer: IntegerLayer) -> dict[str, np.ndarray]:
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


def export_npz(checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the integer layers of a compressed checkpoint to ``out`` (atomically); return a summary."""
    from forms.io import atomic_write
    from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint)
    if ckpt["stage"] != "compressed":
        raise CheckpointError(
            f"{checkpoint} is a '{ckpt['stage']}' checkpoint; export needs one written by `forms compress`"
        )
    layers = integer_layers_from_checkpoint(ckpt, str(checkpoint))
    model = model_from_checkpoint(ckpt, str(checkpoint))
    for layer in layers:  # the integers must belong to this model
        try:
            weight = model.get_submodule(layer.name).weight
        except AttributeError:
            raise CheckpointError(f"{checkpoint}: integer layer '{layer.name}' is not in the model") from None
        assert isinstance(weight, torch.Tensor)
        shape = tuple(weight.shape)
        if shape != tuple(layer.weight_shape):
            raise CheckpointError(
                f"{checkpoint}: integer layer '{layer.name}' has shape {layer.weight_shape}, "
                f"the model {shape}"
            )
    spec = ckpt.get("compression_spec") or ckpt.get("compression") or {}
    crossbar = spec.get("crossbar", {})
    try:
        meta = {
            "fragment_size": int(crossbar["fragment_size"]),
            "weight_bits": int(spec["quant"]["weight_bits"]),
            "crossbar_rows": int(crossbar["rows"]),
            "crossbar_cols": int(crossbar["cols"]),
        }
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{checkpoint}: no compression settings recorded ({exc})") from None
    arrays: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.int64) for k, v in meta.items()}
    arrays["layers"] = np.asarray([layer.name for layer in layers])
    for layer in layers:
        arrays.update(layer_arrays(layer))
    target = Path(out)
    atomic_write(target, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]
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


def _scalar(data: Any, key: str, report: CheckReport) -> int | None:
    if key not in data.files:
        report.fail(f"metadata '{key}' is missing")
        return None
    value = data[key]
    if value.shape != () or not np.issubdtype(value.dtype, np.integer):
        report.fail(
            f"metadata '{key}' must be an integer scalar, got dtype {value.dtype} shape {value.shape}"
        )
        return None
    return int(value)


def _check_layer(data: Any, name: str, meta: dict[str, int], report: CheckReport) -> None:
    keys = {k: f"{name}.{k}" for k in ("weight_int", "scale", "fragment_size")}
    missing = [v for v in keys.values() if v not in data.files]
    if missing:
        report.fail(f"layer '{name}': missing {', '.join(missing)}")
        return
    w, scale = data[keys["weight_int"]], data[keys["scale"]]
    r = int(data[keys["fragment_size"]])
    if not np.issubdtype(w.dtype, np.integer):
        report.fail(f"layer '{name}': weight_int has dtype {w.dtype}, not an integer type")
        return
    if w.ndim not in (2, 3):
        report.fail(f"layer '{name}': weight_int must be (rows, cols) or (groups, rows, cols), got {w.shape}")
        return
    limit = (1 << meta["weight_bits"]) - 1
    over = int((np.abs(w.astype(np.int64)) > limit).sum())
    if over:
        report.fail(f"layer '{name}': {over} weights exceed |w| <= 2^{meta['weight_bits']} - 1 = {limit}")
    if r not in (1, meta["fragment_size"]):
        report.fail(
            f"layer '{name}': fragment_size {r} is neither the global R={meta['fragment_size']} nor 1"
        )
    mixed = mixed_sign_fragments(w, max(r, 1))
    if mixed:
        report.fail(f"layer '{name}': {mixed} fragments of R={r} rows hold both signs")
    cols, groups = w.shape[-1], (w.shape[0] if w.ndim == 3 else 1)
    allowed = {(), (cols,)} if groups == 1 else {(), (groups, cols)}
    if scale.shape not in allowed:
        report.fail(f"layer '{name}': scale shape {scale.shape} does not fit weight_int {w.shape}")
    elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        report.fail(f"layer '{name}': scales must be positive and finite")
    report.layers.append(
        {
            "name": name,
            "shape": list(w.shape),
            "fragment_size": r,
            "mixed_sign_fragments": mixed,
            "over_range": over,
        }
    )


def check_npz(path: str | Path) -> CheckReport:
    """Verify an exported ``.npz`` against the FORMS constraints; never raises for a violation.

    Raises :class:`ConfigError` only when the file is missing or not an ``.npz`` archive.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p} does not exist; write one with `forms export --checkpoint <ckpt> --out {p}`")
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{p} is not a readable .npz archive ({exc})") from None
    report = CheckReport(path=str(p))
    with data:
        meta = {k: _scalar(data, k, report) for k in META_KEYS[:-1]}
        if any(v is None for v in meta.values()):
            return report
        m: dict[str, int] = {k: int(v) for k, v in meta.items() if v is not None}
        report.metadata = m
        if not 1 <= m["weight_bits"] <= MAX_WEIGHT_BITS:
            report.fail(f"metadata weight_bits={m['weight_bits']} is outside 1..{MAX_WEIGHT_BITS}")
        if m["crossbar_rows"] < 1 or m["crossbar_cols"] < 1:
            report.fail("metadata crossbar_rows and crossbar_cols must be positive")
        elif m["fragment_size"] < 1 or m["crossbar_rows"] % m["fragment_size"]:
            report.fail(
                f"metadata fragment_size={m['fragment_size']} does not divide "
                f"crossbar_rows={m['crossbar_rows']}"
            )
        if not report.ok:
            return report
        if "layers" not in data.files or data["layers"].ndim != 1 or data["layers"].size == 0:
            report.fail("metadata 'layers' (a 1-D array of layer names) is missing or empty")
            return report
        for name in data["layers"].tolist():
            _check_layer(data, str(name), m, report)
    return report
