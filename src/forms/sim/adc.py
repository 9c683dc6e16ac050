"""Analog-to-digital converters of the crossbar columns: resolution rules and the conversion itself.

One conversion turns a column's analog partial sum ``p`` (in units of one cell level times one DAC
level) into ``step * clamp(round(p / step), 0, 2^bits - 1)``. With ``step = 1`` and integer ``p`` (ideal
cells, no read noise) that is just a clip, and it is lossless when ``2^bits - 1`` covers the largest
possible sum (:func:`forms.encoding.lossless_adc_bits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Adc:
    """A column ADC: ``bits`` of resolution, ``step`` partial-sum units per code."""

    bits: int
    step: float = 1.0

    def __post_init__(self) -> None:
        if self.bits < 1:
            raise ValueError(f"an ADC needs at least 1 bit, got {self.bits}")
        if not self.step > 0:
            raise ValueError(f"ADC step must be positive, got {self.step}")

    @property
    def max_code(self) -> int:
        """Largest output code: 2^bits - 1."""
        return (1 << self.bits) - 1

    @property
    def full_scale(self) -> float:
        """Largest converted value: max_code * step."""
        return self.max_code * self.step

    def is_lossless_for(self, max_sum: int) -> bool:
        """True when every integer partial sum in [0, max_sum] converts exactly."""
        return self.step == 1.0 and max_sum <= self.max_code

    def convert_(self, partial: Tensor, integral: bool) -> int:
        """Convert ``partial`` IN PLACE to the ADC's output values; return how many conversions clipped.

        A conversion clips when its rounded code exceeds ``max_code``. ``integral`` says the partial sums
        already are integers on the code grid (step 1, ideal cells), which skips the rounding.
        """
        clip_at = (self.max_code + 0.5) * self.step
        clipped = int(torch.count_nonzero(partial > clip_at))
        if self.step != 1.0:
            partial.div_(self.step)
        if not integral or self.step != 1.0:
            partial.round_()
        partial.clamp_(0, self.max_code)
        if self.step != 1.0:
            partial.mul_(self.step)
        return clipped
