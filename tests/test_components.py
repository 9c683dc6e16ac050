"""Component table: derived energies, the single ADC scaling rule, lossless resolutions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forms.cost.components import ComponentLibrary, ComponentSpec, adc_cost, load_library
from forms.encoding import lossless_adc_bits
from forms.errors import ConfigError


def test_library_loads_and_every_row_is_sourced() -> None:
    lib = load_library()
    assert lib.components and lib.adcs
    for c in lib.components:
        assert c.source and c.arithmetic, c.name


def test_energy_per_action_is_power_over_rate() -> None:
    lib = load_library()
    # ISAAC Table I: 8 crossbars draw 2.4 mW; one read per 100 ns -> 0.3 mW * 100 ns = 30 pJ.
    assert lib.component("isaac-crossbar").energy_pj == pytest.approx(30.0)
    # 2 KB input register, 1.24 mW feeding 8 crossbars per 100 ns -> 15.5 pJ per read.
    assert lib.component("isaac-input-register").energy_pj == pytest.approx(15.5)
    # HyperTransport is all static: no dynamic energy per action.
    assert lib.component("isaac-hypertransport").energy_pj == 0.0


def test_adc_at_anchor_resolution_is_the_published_adc() -> None:
    isaac = adc_cost(8, "isaac-adc-8b")
    assert isaac.energy_pj == pytest.approx(16 / 8 / 1.28)  # 2 mW / 1.28 GS/s, in pJ
    assert isaac.power_mw == pytest.approx(2.0)
    assert isaac.area_mm2 == pytest.approx(0.0096 / 8)
    assert "published" in isaac.rule
    forms = adc_cost(4, "forms-adc-4b-cimloop")
    assert forms.power_mw * 32 == pytest.approx(15.2, rel=1e-3)  # CiMLoop: 32 ADCs draw 15.2 mW


def test_adc_scaling_uses_table_ratios() -> None:
    lib = load_library()
    table = lib.adc_scaling.table
    five = adc_cost(5, "forms-adc-4b-cimloop")
    assert five.energy_pj == pytest.approx(0.2262 * table[5].energy_pj / table[4].energy_pj)
    assert five.area_mm2 == pytest.approx(0.000284 * table[5].area_um2 / table[4].area_um2)
    assert "scaled" in five.rule


@given(bits=st.integers(1, 15), anchor=st.sampled_from(["isaac-adc-8b", "forms-adc-4b-cimloop"]))
def test_wider_adc_never_cheaper(bits: int, anchor: str) -> None:
    lo, hi = adc_cost(bits, anchor), adc_cost(bits + 1, anchor)
    assert hi.energy_pj >= lo.energy_pj
    assert hi.area_mm2 >= lo.area_mm2


def test_lossless_bits_match_the_reference() -> None:
    # FORMS: ceil(log2(R*3 + 1)) for 2-bit cells, 1-bit DAC.
    assert [lossless_adc_bits(r, 2, 1) for r in (4, 8, 16, 32)] == [4, 5, 6, 7]
    # ISAAC: 9 bits for 128 rows, 8 with flipping.
    assert lossless_adc_bits(128, 2, 1) == 9
    assert lossless_adc_bits(128, 2, 1, flipped=True) == 8


def test_unknown_names_and_duplicates_are_refused() -> None:
    lib = load_library()
    with pytest.raises(ConfigError, match="unknown ADC"):
        adc_cost(6, "no-such-adc")
    with pytest.raises(ConfigError, match="unknown component"):
        lib.component("no-such-part")
    data = lib.model_dump()
    data["components"].append(data["components"][0])
    with pytest.raises(ConfigError, match="duplicate component names"):
        ComponentLibrary.from_dict(data)


def test_data_moving_rows_carry_their_width() -> None:
    lib = load_library()
    assert {c.role: c.width_bits for c in lib.components if c.width_bits} == {
        "edram": 256,
        "bus": 384,
        "router": 32,
    }
    edram = lib.component("isaac-edram").model_dump()
    with pytest.raises(ConfigError, match="needs width_bits"):
        ComponentSpec.from_dict({**edram, "width_bits": None})
    crossbar = lib.component("isaac-crossbar").model_dump()
    with pytest.raises(ConfigError, match="width_bits applies only"):
        ComponentSpec.from_dict({**crossbar, "width_bits": 64})
