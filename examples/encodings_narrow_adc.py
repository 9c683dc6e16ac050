"""One layer under the three sign encodings with a narrow ADC (runs in seconds on a CPU).

The same 8-bit polarized integers are mapped under FORMS' polarized encoding, ISAAC's offset encoding
and PRIME's differential encoding, each read by a 5-bit ADC; the table shows how far each output
moves from the exact result and how many conversions clip, beside the ADC width each would need to
convert every partial sum exactly.

    python examples/encodings_narrow_adc.py
"""

from __future__ import annotations

import torch
from torch import nn

import forms
from forms.encoding import Encoding


def main(rows: int = 128, images: int = 64, adc_bits: int = 5) -> dict[str, float]:
    """Print and return each encoding's clip rate with an ``adc_bits`` ADC on one Linear(rows, 32)."""
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(rows, 32))
    spec = forms.CompressSpec.model_validate({"crossbar": {"fragment_size": 8}, "quant": {"weight_bits": 8}})
    integers = forms.project(layer, spec)
    x = torch.rand(images, rows)  # non-negative activations, as after a ReLU
    with torch.no_grad():
        exact = layer(x)
    clip_rates = {}
    print(f"{'encoding':<13} {'lossless ADC':>12} {'clip rate':>9} {'max |error|':>11}")
    for encoding in Encoding:
        sim = forms.SimSpec(encoding=encoding, adc_bits=adc_bits, input_bits=8, fragment_size=8)
        lossless = encoding.lossless_adc_bits(sim.crossbar(8), sim.dac_bits)
        chip = forms.to_crossbars(layer, sim, calibration=x, layers=integers)
        with torch.no_grad():
            error = float((chip(x) - exact).abs().max())
        clip_rates[encoding] = chip.stats().clip_rate
        print(f"{encoding:<13} {lossless:>10}-b {clip_rates[encoding]:>9.4f} {error:>11.4f}")
    return clip_rates


if __name__ == "__main__":
    main()
