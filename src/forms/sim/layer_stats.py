"""The counters one layer's crossbar arrays accumulate over the vectors they convert."""

from __future__ import annotations

from dataclasses import dataclass, field

from forms.sim.zeroskip import ZeroSkipCounts


@dataclass
class LayerStats:
    """Per-layer counters accumulated over every vector a layer converted."""

    conversions: int = 0
    """Partial sums converted (every step, row group and physical column; no skipping)."""
    clipped: int = 0
    """Conversions whose code exceeded the ADC's largest code."""
    columns: int = 0
    """Physical columns one sub-array round converts: weight columns x slices x sets of ONE group's
    matrix (the rounds already count every group)."""
    zero_skip: ZeroSkipCounts = field(default_factory=ZeroSkipCounts)
    """Sub-array steps, crossbar reads and input digits, with and without zero-skipping
    (:mod:`forms.sim.zeroskip`)."""
    bit_level_calls: int = 0
    """Calls that ran some columns through a bit-level engine (table or GEMM)."""
    fast_calls: int = 0
    """Calls that ran as one exact integer GEMM (a lossless chip)."""
