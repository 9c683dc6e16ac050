"""The simulator's library boundary: weights and input codes are checked where they enter an engine.

The specs (:class:`forms.sim.spec.SimSpec`) refuse impossible settings before a run; these checks
refuse impossible *data* at every engine entry point with a :class:`~forms.errors.ConfigError` that
names the layer and what is wrong, instead of returning a silently wrong number:

- integer weights (:func:`forms.sim.encodings.encode`, :class:`forms.sim.crossbar.CrossbarArray`):
  finite integers with ``|w| <= 2^weight_bits - 1`` in a (groups, rows, cols) stack, on crossbars
  whose fragment size R divides their rows (the rule of :func:`forms.config.check_fragment_size`);
- input codes (the crossbar arrays, the table and GEMM engines, ``integer_matmul``): finite integers
  in the digit plan's range (two's complement when signed), shaped (vectors, groups, rows).

Cost per call: one min/max reduction over the codes, which sees NaN (it propagates), infinities and
out-of-range values at once; floating-point codes pay one more pass for integrality and come back as
integers, so a check further down the same call is one min/max over integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from forms.config import check_fragment_size
from forms.errors import ConfigError
from forms.intweights import max_magnitude
from forms.sim.quant_inputs import DigitPlan, code_dtype, code_range

if TYPE_CHECKING:
    from forms.sim.encodings import EncodedLayer


@dataclass(frozen=True)
class IntegerRange:
    """The integers a tensor may hold: ``low <= value <= high``, and the rule that sets them."""

    low: int
    high: int
    rule: str
    """Why these bounds (quoted in the error message)."""


def check_shape(values: Tensor, expected: tuple[int | None, ...], what: str) -> None:
    """ConfigError unless ``values`` has ``len(expected)`` dimensions of the sizes given (None: any)."""
    shape = tuple(values.shape)
    if len(shape) != len(expected) or any(
        e is not None and s != e for s, e in zip(shape, expected, strict=True)
    ):
        want = ", ".join("any" if e is None else str(e) for e in expected)
        raise ConfigError(f"{what} have shape {shape}; expected ({want})")


def check_finite(values: Tensor, what: str) -> tuple[float, float]:
    """The smallest and largest of real ``values`` (one min/max reduction); ConfigError when some are
    NaN or infinite."""
    if values.is_complex():
        raise ConfigError(f"{what} must be real numbers, got {values.dtype}")
    if values.numel() == 0:
        return 0.0, 0.0
    low, high = (
        v.item() for v in torch.aminmax(values.to(torch.uint8) if values.dtype == torch.bool else values)
    )
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int((~torch.isfinite(values)).sum())
        raise ConfigError(f"{what}: {bad} value(s) are NaN or infinite; every value must be a finite number")
    return low, high


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def check_integers(values: Tensor, allowed: IntegerRange, what: str) -> int:
    """Refuse ``values`` unless each is a finite integer in ``allowed``; return the largest magnitude.

    One min/max reduction; floating-point values pay one more pass to show they hold integers.
    """
    low, high = check_finite(values, what)
    if low < allowed.low or high > allowed.high:
        raise ConfigError(
            f"{what} fall outside [{allowed.low}, {allowed.high}] ({allowed.rule}): found values from "
            f"{_number(low)} to {_number(high)}"
        )
    if values.is_floating_point() and not torch.equal(values, values.round()):
        fractional = values[values != values.round()]
        example = _number(float(fractional[0]))
        raise ConfigError(f"{what} must be integers: {fractional.numel()} value(s) are not, e.g. {example}")
    return int(max(-low, high))


def weight_range(weight_bits: int) -> IntegerRange:
    """Integer weights of ``weight_bits`` magnitude bits: ``|w| <= 2^weight_bits - 1``."""
    limit = max_magnitude(weight_bits)
    return IntegerRange(-limit, limit, f"|w| <= 2^{weight_bits} - 1 for {weight_bits}-bit weights")


def integer_weights(weight: Tensor, weight_bits: int, name: str) -> Tensor:
    """A (groups, rows, cols) stack of ``weight_bits``-bit integer weights, checked, as int64."""
    what = f"{name}: integer weights"
    check_shape(weight, (None, None, None), f"{what} (groups, rows, cols)")
    check_integers(weight, weight_range(weight_bits), what)
    return weight.to(torch.int64)


def check_fragments(crossbar_rows: int, fragment_size: int, name: str) -> None:
    """ConfigError unless the fragment size R divides the crossbar rows (as every spec requires)."""
    if crossbar_rows < 1:
        raise ConfigError(f"{name}: a crossbar needs at least 1 row, got crossbar_rows={crossbar_rows}")
    try:
        check_fragment_size(fragment_size, crossbar_rows)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def check_encoded_weights(weight_int: Tensor, encoded: EncodedLayer, fragment_size: int) -> Tensor:
    """``weight_int`` as int64, once checked to be integers of ``encoded``'s width and shape, with the
    fragment size ``encoded`` was made with."""
    name = encoded.name
    if fragment_size != encoded.fragment_size:
        raise ConfigError(
            f"{name}: fragment size R={fragment_size} differs from the R={encoded.fragment_size} the "
            "weights were encoded with"
        )
    expected = (encoded.groups, encoded.rows, encoded.columns)
    check_shape(weight_int, expected, f"{name}: integer weights (groups, rows, cols) of the encoded layer")
    return integer_weights(weight_int, encoded.weight_bits, name)


def plan_range(plan: DigitPlan) -> IntegerRange:
    """The codes ``plan`` streams: [0, 2^bits - 1] unsigned, [-2^(bits-1), 2^(bits-1) - 1] signed."""
    low, high = code_range(plan.bits, plan.signed)
    kind = "signed (two's complement)" if plan.signed else "unsigned"
    return IntegerRange(low, high, f"{plan.bits}-bit {kind} input codes")


def integer_codes(codes: Tensor, plan: DigitPlan, what: str) -> Tensor:
    """``codes`` as integers (:func:`~forms.sim.quant_inputs.code_dtype`), once each is checked to be
    a finite integer in ``plan``'s range."""
    check_integers(codes, plan_range(plan), what)
    return codes.to(code_dtype(plan.bits))


def check_code_shape(codes: Tensor, encoded: EncodedLayer) -> None:
    """ConfigError unless ``codes`` are (vectors, groups, rows) for ``encoded``'s layer."""
    what = f"{encoded.name}: input codes (vectors, groups, rows)"
    check_shape(codes, (None, encoded.groups, encoded.rows), what)


def layer_codes(
    codes: Tensor, encoded: EncodedLayer, plan: DigitPlan, values_checked: bool = False
) -> Tensor:
    """Input codes (vectors, groups, rows) of ``encoded``'s layer, checked (shape, then values), as
    integers; with ``values_checked`` (a caller that checked them already) only the shape is checked
    and ``codes`` come back as they are."""
    check_code_shape(codes, encoded)
    return codes if values_checked else integer_codes(codes, plan, f"{encoded.name}: input codes")
