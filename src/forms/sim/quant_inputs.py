"""Activation quantization for the crossbars: per-layer scales, integer codes and DAC digit plans.

Each mapped layer's input is quantized to ``input_bits`` with one scale per layer, calibrated on a few
batches of real images run through the (dequantized) float model:

- the layer is *unsigned* when no calibration input was negative (ReLU outputs); codes lie in
  [0, 2^bits - 1] and negative run-time inputs clip to 0;
- otherwise it is *signed* (a first layer fed normalized images); codes are two's complement in
  [-2^(bits-1), 2^(bits-1) - 1], and the sign bit gets its own analog step whose result is
  subtracted (shift-and-subtract);
- the scale maps the ``percentile``-th percentile of |x| (100 = the maximum) to the largest code;
  larger inputs clip. Codes are ``clamp(round(x / scale))``.

With ``significant_bits`` < ``bits`` the activations are quantized to ``significant_bits`` (the scale and
the clamp of a ``significant_bits``-bit quantizer) but streamed through the ``bits``-wide datapath: the
upper bits of an unsigned code are zero, those of a negative signed code the two's-complement sign
extension. Every code and output equals the ``significant_bits``-bit run's; only the steps streamed
(and what zero-skipping can save of them) differ.

A :class:`DigitPlan` says how codes are streamed: each analog step applies one digit of
``dac_bits`` bits (the sign step one bit) and its result is weighted by ``coef * 2^shift``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest ``bits``-bit input code: [-2^(bits-1), 2^(bits-1) - 1] in two's complement
    when ``signed``, [0, 2^bits - 1] otherwise."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def code_dtype(bits: int) -> torch.dtype:
    """Integer dtype of ``bits``-bit codes: int32, int64 beyond 30 bits (two's complement digits stay
    below the sign of an int32)."""
    return torch.int32 if bits < 31 else torch.int64


@dataclass(frozen=True)
class DigitPlan:
    """How integer input codes are cut into the digits one analog step applies each."""

    shifts: tuple[int, ...]
    """Bit position of each digit's least significant bit, from the LSB up (sign step last)."""
    widths: tuple[int, ...]
    """Bits of each digit (``dac_bits``, fewer for the top magnitude digit, 1 for the sign step)."""
    coefs: tuple[int, ...]
    """+1, or -1 for the two's-complement sign step."""
    bits: int
    signed: bool

    @property
    def steps(self) -> int:
        """Analog steps per input: digits of the plan."""
        return len(self.shifts)

    @property
    def max_digit(self) -> int:
        """Largest digit any step applies: 2^max(width) - 1."""
        return (1 << max(self.widths)) - 1

    def digit_weights(self, dtype: torch.dtype = torch.float64, device: torch.device | None = None) -> Tensor:
        """Weight of each step's result in the output: coef * 2^shift, shape (steps,)."""
        return torch.tensor(
            [c * float(1 << s) for c, s in zip(self.coefs, self.shifts, strict=True)],
            dtype=dtype,
            device=device,
        )

    def digits(self, codes: Tensor) -> Tensor:
        """Digits (steps, *codes.shape) of integer codes (int64); two's complement when signed."""
        u = codes.to(torch.int64)
        if self.signed:
            u = torch.remainder(u, 1 << self.bits)
        shifts = torch.tensor(self.shifts, dtype=torch.int64, device=u.device)
        masks = torch.tensor([(1 << w) - 1 for w in self.widths], dtype=torch.int64, device=u.device)
        view = (-1,) + (1,) * u.dim()
        return torch.bitwise_and(
            torch.bitwise_right_shift(u.unsqueeze(0), shifts.view(view)), masks.view(view)
        )


def digit_plan(bits: int, dac_bits: int, signed: bool) -> DigitPlan:
    """The :class:`DigitPlan` of ``bits``-bit codes through a ``dac_bits``-bit DAC."""
    if bits < 1 or dac_bits < 1:
        raise ValueError(f"input bits ({bits}) and DAC bits ({dac_bits}) must be at least 1")
    if signed and bits < 2:
        raise ValueError("a signed input needs at least 2 bits (one magnitude bit and the sign bit)")
    magnitude = bits - 1 if signed else bits
    shifts, widths, coefs = [], [], []
    for start in range(0, magnitude, dac_bits):
        shifts.append(start)
        widths.append(min(dac_bits, magnitude - start))
        coefs.append(1)
    if signed:
        shifts.append(bits - 1)
        widths.append(1)
        coefs.append(-1)
    return DigitPlan(tuple(shifts), tuple(widths), tuple(coefs), bits, signed)


@dataclass(frozen=True)
class InputQuantizer:
    """Per-layer input quantizer: x -> clamp(round(x / scale), lo, hi)."""

    scale: float
    bits: int
    """Width of the datapath the codes are streamed in (the crossbars' input_bits)."""
    signed: bool
    significant_bits: int | None = None
    """Bits the codes are quantized to, held in the low bits of ``bits`` (None: ``bits``)."""

    @property
    def code_bits(self) -> int:
        """Bits the codes span: ``significant_bits``, else ``bits``."""
        return self.bits if self.significant_bits is None else self.significant_bits

    @property
    def low(self) -> int:
        """Smallest code."""
        return code_range(self.code_bits, self.signed)[0]

    @property
    def high(self) -> int:
        """Largest code."""
        return code_range(self.code_bits, self.signed)[1]

    def codes(self, x: Tensor) -> Tensor:
        """Integer codes of ``x`` as a float64 tensor holding exact integers."""
        return torch.clamp(torch.round(x.to(torch.float64) / self.scale), self.low, self.high)

    @classmethod
    def from_range(
        cls, max_abs: float, bits: int, signed: bool, significant_bits: int | None = None
    ) -> InputQuantizer:
        """The quantizer that maps ``max_abs`` to the largest code of ``significant_bits`` (None: ``bits``)
        bits, streamed ``bits`` wide (a zero range gets scale 1)."""
        code_bits = bits if significant_bits is None else significant_bits
        if not 1 <= code_bits <= bits:
            raise ValueError(f"significant_bits={code_bits} must lie in 1..bits={bits}")
        if signed and code_bits < 2:
            raise ValueError("a signed input needs at least 2 bits")
        top = code_range(code_bits, signed)[1]
        scale = max_abs / top if max_abs > 0 else 1.0
        return cls(scale=float(scale), bits=bits, signed=signed, significant_bits=significant_bits)


@dataclass
class _RangeObserver:
    samples: list[Tensor]
    negative: bool = False


def calibrate_inputs(
    model: nn.Module,
    layer_names: Iterable[str],
    batches: Iterable[Tensor],
    bits: int,
    percentile: float = 100.0,
    max_samples: int = 1 << 20,
    significant_bits: int | None = None,
) -> dict[str, InputQuantizer]:
    """Run ``batches`` through ``model`` and return one :class:`InputQuantizer` per named layer.

    Codes are ``bits`` wide, quantized to ``significant_bits`` (None: ``bits``; module docstring).

    Each layer's |input| values are sub-sampled (at most ``max_samples`` per batch, deterministically
    strided) for the percentile; the maximum is exact. The model is run in eval mode under no_grad.
    """
    names = list(layer_names)
    observers = {name: _RangeObserver([]) for name in names}
    maxima = dict.fromkeys(names, 0.0)
    handles = []

    def hook(name: str) -> Callable[[nn.Module, tuple[Tensor, ...]], None]:
        def _record(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
            x = args[0].detach()
            obs = observers[name]
            obs.negative = obs.negative or bool((x < 0).any())
            a = x.abs().reshape(-1)
            maxima[name] = max(maxima[name], float(a.max()) if a.numel() else 0.0)
            if percentile < 100.0:
                stride = max(1, a.numel() // max_samples)
                obs.samples.append(a[::stride].float().cpu())

        return _record

    was_training = model.training
    model.eval()
    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_pre_hook(hook(name)))
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out: dict[str, InputQuantizer] = {}
    for name in names:
        obs = observers[name]
        top = maxima[name]
        if percentile < 100.0 and obs.samples:
            top = float(torch.quantile(torch.cat(obs.samples)[: 1 << 24], percentile / 100.0))
        out[name] = InputQuantizer.from_range(top, bits, obs.negative, significant_bits)
    return out
