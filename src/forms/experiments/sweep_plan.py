"""Expanding a sweep's grid into validated design points, before any point runs.

Every point's architecture is built up front, so an unknown key or an impossible combination is
refused naming the grid key (offset and differential points ignore ``fragment_size``: a whole column
converts at once).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from forms.encoding import Encoding, lossless_adc_bits
from forms.errors import ConfigError
from forms.experiments.sweep_spec import Point, SweepSpec, set_arch_field


def _arch_for(
    base: Any, values: dict[str, Any], fields: tuple[tuple[str, Any], ...], allow_clipping: bool
) -> Any:
    """The base ArchSpec with the point's axes, then its ArchSpec field paths, applied (validated)."""
    data = base.model_dump()
    encoding = Encoding(values.get("encoding", data["encoding"]))
    data["encoding"] = encoding
    xb = data["crossbar"]
    if values.get("crossbar_size") is not None:
        xb["rows"] = xb["cols"] = values["crossbar_size"]
    if values.get("cell_bits") is not None:
        xb["cell_bits"] = values["cell_bits"]
    if encoding.signs_per_fragment:
        if values.get("fragment_size") is not None:
            xb["fragment_size"] = values["fragment_size"]
        elif xb["rows"] % xb["fragment_size"]:
            xb["fragment_size"] = xb["rows"]
    else:
        xb["fragment_size"] = xb["rows"]  # a whole column converts at once
    if values.get("weight_bits") is not None:
        data["weight_bits"] = values["weight_bits"]
    if "adc_bits" in values:
        data["adc"]["bits"] = values["adc_bits"]
    if allow_clipping:
        data["adc"]["allow_clipping"] = True
    data["name"] = f"{data['name']}*" if values or fields else data["name"]
    return with_arch_fields(type(base), data, fields, "sweep point")


def with_arch_fields(
    spec_type: Any, data: dict[str, Any], fields: Sequence[tuple[str, Any]], source: str
) -> Any:
    """``spec_type`` (ArchSpec) validated from its plain-dict form ``data`` with each dotted field path
    of ``fields`` set to its value (``data`` is changed in place)."""
    for path, value in fields:
        set_arch_field(data, path, value)
    return spec_type.from_dict(data, source=source)


def _impossible(key: str, value: Any, point: dict[str, Any], why: str) -> ConfigError:
    shown = ", ".join(f"{k}={v}" for k, v in point.items())
    return ConfigError(f"sweep grid key '{key}' = {value!r} is impossible with ({shown}): {why}")


def _check_point(values: dict[str, Any], base: Any, allow_clipping: bool) -> None:
    """Name the grid key of an impossible combination before the ArchSpec's own (generic) message."""
    rows = values.get("crossbar_size", base.crossbar.rows)
    encoding = Encoding(values.get("encoding", base.encoding))
    cell = values.get("cell_bits", base.crossbar.cell_bits)
    r = values.get("fragment_size")
    if encoding.signs_per_fragment and r is not None and (r < 1 or rows % r):
        why = f"R = {r} must divide the crossbar rows ({rows})"
        if "crossbar_size" in values:
            raise ConfigError(
                f"sweep grid keys 'fragment_size' = {r} and 'crossbar_size' = {rows} are incompatible: {why}"
            )
        raise _impossible("fragment_size", r, values, why)
    weight_bits = values.get("weight_bits", base.weight_bits)
    try:
        encoding.check_widths(weight_bits, cell)
    except ConfigError as exc:
        key = "cell_bits" if "cell_bits" in values else "weight_bits"
        raise _impossible(key, values.get(key, cell), values, str(exc)) from None
    bits = values.get("adc_bits")
    if bits is not None:
        group = encoding.rows_per_conversion(rows, r or base.crossbar.fragment_size)
        lossless = lossless_adc_bits(group, cell, base.dac_bits, base.adc.flip)
        if bits < 1:
            raise _impossible("adc_bits", bits, values, "an ADC needs at least 1 bit")
        if bits < lossless and not allow_clipping:
            raise _impossible(
                "adc_bits",
                bits,
                values,
                f"below the lossless {lossless} bits for groups of {group} rows; set allow_clipping: true "
                "to measure the clipping instead",
            )


AXES: tuple[str, ...] = ("encoding", "fragment_size", "adc_bits", "cell_bits", "crossbar_size", "weight_bits")


def plan(spec: SweepSpec) -> list[tuple[Point, Any]]:
    """Expand the grid into (point, ArchSpec) pairs, validating every one; duplicates are dropped.

    Raises :class:`ConfigError` naming the grid key of the first impossible combination (before any
    point runs). Offset/differential points ignore ``fragment_size`` (a whole column converts at once),
    so they collapse to one point per remaining combination.
    """
    from forms.cost.arch import load_arch
    from forms.nn.models import MODEL_NAMES

    grid = spec.grid
    for model in grid.model:
        if model not in MODEL_NAMES:
            raise ConfigError(
                f"sweep grid key 'model': unknown model '{model}'; choose from {', '.join(MODEL_NAMES)}"
            )
    axes = {axis: getattr(grid, axis) for axis in AXES if getattr(grid, axis) is not None}
    paths = grid.arch_fields
    out: dict[str, tuple[Point, Any]] = {}
    for arch_name in grid.arch:
        try:
            base = load_arch(arch_name)
        except ConfigError as exc:
            raise ConfigError(f"sweep grid key 'arch': {exc}") from None
        for combo in itertools.product(*axes.values(), *paths.values()):
            values = dict(zip(axes, combo[: len(axes)], strict=True))
            fields = tuple(zip(paths, combo[len(axes) :], strict=True))
            _check_point(values, base, spec.allow_clipping)
            try:
                arch = _arch_for(base, values, fields, spec.allow_clipping)
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v}" for k, v in [*values.items(), *fields])
                raise ConfigError(f"sweep point ({shown}) on '{arch_name}' is impossible: {exc}") from None
            for model in grid.model:
                point = Point(
                    arch=arch_name,
                    model=model,
                    encoding=arch.encoding,
                    fragment_size=arch.crossbar.fragment_size,
                    adc_bits=arch.adc_bits,
                    cell_bits=arch.crossbar.cell_bits,
                    crossbar_size=arch.crossbar.rows,
                    weight_bits=arch.weight_bits,
                    arch_fields=fields,
                )
                out.setdefault(point.id, (point, arch))
    _check_simulation(spec, [p for p, _ in out.values()])
    return list(out.values())


def _check_simulation(spec: SweepSpec, points: Sequence[Point]) -> None:
    """With ``simulate``: the checkpoint must be this model's and its fragments must fit every point."""
    if spec.simulate is None:
        return
    from forms.intweights import integer_layers_from_checkpoint
    from forms.nn.checkpoint import load_checkpoint

    path = spec.simulate.checkpoint
    ckpt = load_checkpoint(path)
    name = ckpt.get("model", {}).get("name")
    if spec.grid.model != [name]:
        raise ConfigError(
            f"sweep grid key 'model' = {spec.grid.model} must be exactly ['{name}'], the model of "
            f"simulate.checkpoint {path}"
        )
    layers = integer_layers_from_checkpoint(ckpt, path)
    r_ckpt = min(layer.fragment_size for layer in layers)
    for point in points:
        if Encoding(point.encoding).signs_per_fragment and r_ckpt % point.fragment_size:
            raise _impossible(
                "fragment_size",
                point.fragment_size,
                point.to_dict(),
                f"the checkpoint is polarized in fragments of {r_ckpt} rows, so only fragment sizes "
                f"dividing {r_ckpt} are single-signed; compress a checkpoint for R = {point.fragment_size}",
            )
