"""Analog-to-digital converters of the crossbar columns: resolution rules and the conversion itself.

One conversion turns a column's analog partial sum ``p`` (in units of one cell level times one DAC
level) into ``step * clamp(round(p / step), 0, 2^bits - 1)``, rounding half to even. With ``step = 1``
and integer ``p`` (ideal cells, no read noise) that is just a clip, and it is lossless when
``2^bits - 1`` covers the largest possible sum (:func:`forms.encoding.lossless_adc_bits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from forms.errors import ConfigError
from forms.sim.integer_gemm import FLOAT32_EXACT
from forms.sim.workspace import Workspace

MAX_ADC_BITS = 32
"""Widest ADC a simulation accepts (beyond any built converter)."""


def check_adc_bits(bits: int) -> None:
    """ConfigError unless an ADC of ``bits`` bits can exist: 1 to :data:`MAX_ADC_BITS`."""
    if not 1 <= bits <= MAX_ADC_BITS:
        raise ConfigError(
            f"adc_bits={bits}: an ADC needs at least 1 bit and at most {MAX_ADC_BITS} (None means the "
            "lossless width)"
        )


@dataclass(frozen=True)
class Adc:
    """A column ADC: ``bits`` of resolution, ``step`` partial-sum units per code."""

    bits: int
    step: float = 1.0

    def __post_init__(self) -> None:
        check_adc_bits(self.bits)
        if not (math.isfinite(self.step) and self.step > 0):
            raise ConfigError(f"ADC step must be a positive finite number, got {self.step}")

    @property
    def max_code(self) -> int:
        """Largest output code: 2^bits - 1."""
        return (1 << self.bits) - 1

    @property
    def full_scale(self) -> float:
        """Largest converted value: max_code * step."""
        return self.max_code * self.step

    @property
    def grid(self) -> float:
        """The power of two every converted value is a multiple of: 1 / the denominator of ``step`` as
        an exact binary fraction (1 for a whole-number step, 0.5 for 0.5 or 1.5, 0.25 for 0.25)."""
        return 1.0 / self.step.as_integer_ratio()[1]

    def is_lossless_for(self, max_sum: int) -> bool:
        """True when every integer partial sum in [0, max_sum] converts exactly."""
        return self.step == 1.0 and max_sum <= self.max_code

    def convert_(self, partial: Tensor, integral: bool) -> Tensor:
        """Convert ``partial`` IN PLACE to the ADC's output values; return which conversions clipped.

        A conversion clips when its code, rounded half to even, exceeds ``max_code``; the test runs on
        the rounded codes themselves, so a sum at exactly (max_code + 0.5) * step, which rounds up to an
        even code beyond the range, is counted. ``integral`` says the partial sums already are integers
        on the code grid (step 1, ideal cells), which skips the rounding. The result is a bool tensor
        shaped like ``partial``.
        """
        if self.step != 1.0:
            partial.div_(self.step)
        if not integral or self.step != 1.0:
            partial.round_()
        clipped = partial > self.max_code
        partial.clamp_(0, self.max_code)
        if self.step != 1.0:
            partial.mul_(self.step)
        return clipped

    def convert_counted_(
        self,
        partial: Tensor,
        integral: bool,
        max_sum: float | None = None,
        workspace: Workspace | None = None,
    ) -> int:
        """Convert ``partial`` IN PLACE like :meth:`convert_` and return how many conversions clipped.

        ``max_sum`` bounds the partial sums when they are known to be non-negative integers (``integral``
        and ideal levels): if the ADC is lossless for it every conversion is the identity and nothing
        is touched; otherwise only the top of the range can clip (one counting pass, then the clamp
        where something clipped; one read-only pass first skips both where nothing in ``partial``
        clips). Without it one pass finds the range of the (rounded) codes; the clip count and the
        clamp run only when some code lies outside ``[0, max_code]``. ``workspace`` holds the count's
        scratch tensor.
        """
        if integral and max_sum is not None and self.step == 1.0:
            if max_sum <= self.max_code or not partial.numel() or float(partial.amax()) <= self.max_code:
                return 0
            clipped = count_above(partial, self.max_code, workspace)
            partial.clamp_(max=self.max_code)
            return clipped
        if self.step != 1.0:
            partial.div_(self.step)
        if not integral or self.step != 1.0:
            partial.round_()
        clipped = 0
        if partial.numel():
            low, high = (float(v) for v in torch.aminmax(partial))
            if high > self.max_code:
                clipped = count_above(partial, self.max_code, workspace)
            if low < 0 or high > self.max_code:
                partial.clamp_(0, self.max_code)
        if self.step != 1.0:
            partial.mul_(self.step)
        return clipped


def count_above(values: Tensor, limit: int, workspace: Workspace | None = None) -> int:
    """How many of the integer-valued float ``values`` exceed the integer ``limit``: the sum of
    ``clamp(values - limit, 0, 1)``, exact (three fast elementwise passes; a comparison to a bool
    tensor and its count are several times slower on CPU), its scratch from ``workspace`` if given."""
    ws = workspace or Workspace()
    excess = ws.take("excess", tuple(values.shape), values.dtype, values.device)
    torch.sub(values, limit, out=excess).clamp_(0, 1)
    return int(excess.sum(dtype=torch.float64 if excess.numel() >= FLOAT32_EXACT else excess.dtype))
