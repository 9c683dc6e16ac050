"""The Encoding type: one rule per question, and every entry point accepting the same configurations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.config import CrossbarSpec
from forms.cost.arch import load_arch
from forms.encoding import ENCODINGS, Encoding, lossless_adc_bits
from forms.errors import ConfigError
from forms.sim.encodings import encode


def _accepts(check: object) -> bool:
    try:
        check()  # type: ignore[operator]
    except (ConfigError, ValueError):
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(ENCODINGS),
    weight_bits=st.integers(1, 16),
    cell_bits=st.integers(1, 8),
)
def test_arch_spec_and_simulator_accept_the_same_widths(
    encoding: Encoding, weight_bits: int, cell_bits: int
) -> None:
    base = load_arch("forms-8").model_dump(mode="json")
    rows = base["crossbar"]["rows"]
    base |= {"encoding": encoding.value, "weight_bits": weight_bits, "name": "t"}
    base["crossbar"] |= {"cell_bits": cell_bits, "fragment_size": 8 if encoding.signs_per_fragment else rows}
    base["adc"] |= {"bits": None}
    arch_ok = _accepts(lambda: type(load_arch("forms-8")).from_dict(base))
    w = torch.zeros(1, 16, 4, dtype=torch.int64)
    sim_ok = _accepts(lambda: encode(w, encoding, weight_bits, cell_bits, rows, 8))
    assert arch_ok == sim_ok


def test_each_rule_per_encoding() -> None:
    xbar = CrossbarSpec(rows=128, cols=128, cell_bits=2, fragment_size=8)
    pol, off, dif = Encoding.POLARIZED, Encoding.OFFSET, Encoding.DIFFERENTIAL
    assert [e.crossbar_sets for e in (pol, off, dif)] == [1, 1, 2]
    assert [e.stored_bits(8) for e in (pol, off, dif)] == [8, 9, 8]
    assert [e.slices(8, 2) for e in (pol, off, dif)] == [4, 5, 4]
    assert [e.rows_per_conversion(128, 8) for e in (pol, off, dif)] == [8, 128, 128]
    assert [e.has_unit_column for e in (pol, off, dif)] == [False, True, False]
    assert pol.lossless_adc_bits(xbar, 1) == lossless_adc_bits(8, 2, 1) == 5
    assert off.lossless_adc_bits(xbar, 1, flipped=True) == 8


def test_every_encoding_flips_and_saves_one_adc_bit() -> None:
    """FORMS's R = 8 fragments of 2-bit cells with a 1-bit DAC sum up to 24: 5 bits, 4 flipped (the
    published 4-bit ADC); a 128-row column sums up to 384: 9 bits, 8 flipped (ISAAC's 8-bit ADC)."""
    xbar = CrossbarSpec(rows=128, cols=128, cell_bits=2, fragment_size=8)
    widths = [(e.lossless_adc_bits(xbar, 1), e.lossless_adc_bits(xbar, 1, flipped=True)) for e in ENCODINGS]
    assert widths == [(5, 4), (9, 8), (9, 8)]


def test_parse_names_the_choices() -> None:
    assert Encoding.parse("offset") is Encoding.OFFSET
    with pytest.raises(ConfigError, match="polarized, offset, differential"):
        Encoding.parse("twos-complement")
