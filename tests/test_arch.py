"""Architecture presets: loading, validation errors, and ISAAC Table I totals from components."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from forms.cost.arch import (
    AdcSpec,
    ArchSpec,
    OrganizationSpec,
    ZeroSkipSpec,
    list_presets,
    load_arch,
    preset_dir,
)
from forms.cost.inventory import chip_inventory
from forms.errors import ConfigError

PRESETS = ["isaac-ce", "isaac-opt", "prime", "forms-4", "forms-8", "forms-16", "forms-32"]


def test_all_presets_load_with_notes() -> None:
    assert set(PRESETS) <= set(list_presets())
    for name in PRESETS:
        arch = load_arch(name)
        assert arch.name == name
        assert arch.notes, f"{name} must list its assumptions"


def test_forms_presets_use_the_published_4_bit_adc() -> None:
    # FORMS (ISCA 2021) publishes a 4-bit fragment ADC. R rows of 2-bit cells, 1-bit DAC: max sum 3R,
    # lossless in ceil(log2(3R + 1)) bits, one less flipped: R = 4 -> 4; R = 8 -> 5, 4 flipped.
    archs = {r: load_arch(f"forms-{r}") for r in (4, 8, 16, 32)}
    assert [a.adc_bits for a in archs.values()] == [4, 4, 4, 4]
    assert [a.adc.flip for a in archs.values()] == [False, True, True, True]
    assert [a.lossless_adc_bits for a in archs.values()] == [4, 4, 5, 6]
    for r in (16, 32):  # no flipping makes 16 or 32 rows lossless at 4 bits: they clip, and say so
        assert archs[r].adc.allow_clipping
        assert any("clip rate" in note and "forms simulate" in note for note in archs[r].notes)
    assert not archs[4].adc.allow_clipping and not archs[8].adc.allow_clipping
    assert load_arch("isaac-ce").adc_bits == 8 == load_arch("isaac-ce").lossless_adc_bits


def test_flipping_saves_one_bit_in_every_preset_that_flips() -> None:
    for name in list_presets():
        arch = load_arch(name)
        unflipped = arch.replace(adc=arch.adc.replace(flip=False, bits=None, allow_clipping=False))
        assert arch.lossless_adc_bits == unflipped.lossless_adc_bits - int(arch.adc.flip)


def test_forms_presets_state_what_zero_skipping_saves() -> None:
    for r in (4, 8, 16, 32):
        zs = load_arch(f"forms-{r}").zero_skip
        assert zs.saves == ["conversions", "reads"]
        assert zs.default_skip_fraction == 0 == zs.default_read_skip_fraction
        assert any("saves" in note and "drivers" in note.lower() for note in load_arch(f"forms-{r}").notes)


def test_cells_per_weight() -> None:
    assert load_arch("isaac-ce").slices == 8  # 16 bits of w + 2^15 in 2-bit cells
    assert load_arch("isaac-opt").slices == 5  # 9 bits of w + 2^8
    assert load_arch("prime").slices == 4 and load_arch("prime").sets == 2
    assert load_arch("forms-8").slices == 4 and load_arch("forms-8").sets == 1


def _level_sums(name: str) -> dict[str, tuple[float, float]]:
    arch = load_arch(name)
    tiles = arch.organization.tiles
    inv = chip_inventory(arch)
    out = {}
    for level in ("ima", "tile", "chip"):
        items = [i for i in inv if i.level == level]
        out[level] = (sum(i.power_mw for i in items), sum(i.area_mm2 for i in items))
    ima_p, ima_a = out["ima"]
    tile_p, tile_a = out["tile"]
    return {
        "imas_per_tile": (ima_p / tiles, ima_a / tiles),
        "tile": ((ima_p + tile_p) / tiles, (ima_a + tile_a) / tiles),
        "chip": (sum(i.power_mw for i in inv), sum(i.area_mm2 for i in inv)),
    }


def test_isaac_ce_reproduces_table_one_totals() -> None:
    sums = _level_sums("isaac-ce")
    # ISAAC (ISCA 2016) Table I: 12 IMAs 289 mW / 0.157 mm2; tile 330 mW / 0.372 mm2; chip 65.8 W / 85.4 mm2.
    assert sums["imas_per_tile"][0] == pytest.approx(289, rel=0.01)
    assert sums["imas_per_tile"][1] == pytest.approx(0.157, rel=0.01)
    assert sums["tile"][0] == pytest.approx(330, rel=0.01)
    assert sums["tile"][1] == pytest.approx(0.372, rel=0.01)
    assert sums["chip"][0] == pytest.approx(65.8e3, rel=0.01)
    assert sums["chip"][1] == pytest.approx(85.4, rel=0.01)


@pytest.mark.parametrize("spec", [ArchSpec, AdcSpec, OrganizationSpec, ZeroSkipSpec])
def test_every_numeric_default_cites_its_source_or_says_assumption(spec) -> None:
    for name, info in spec.model_fields.items():
        default = info.default
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert re.search(r"ISAAC \(Shafiee|assumption", info.description or ""), f"{spec.__name__}.{name}"


def test_transfer_widths_come_from_the_component_table() -> None:
    # ISAAC (ISCA 2016) Table I: eDRAM bus width 256, eDRAM-to-IMA bus 384 wires, router flit 32 bits.
    assert load_arch("isaac-ce").transfer_widths() == {"edram": 256, "bus": 384, "router": 32}
    assert "edram" not in load_arch("isaac-ce").replace(components=["isaac-crossbar"]).transfer_widths()


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _base() -> dict:
    return yaml.safe_load((preset_dir() / "forms-8.yaml").read_text())


def test_user_yaml_round_trips(tmp_path: Path) -> None:
    data = _base()
    data["adc"]["per_crossbar"] = 8.0
    arch = load_arch(_write(tmp_path, data))
    assert arch.adc.per_crossbar == 8.0
    assert ArchSpec.from_dict(yaml.safe_load(arch.to_yaml())) == arch


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="red"), "unknown key 'colour'"),
        (lambda d: d["adc"].update(bits=3), "adc.bits = 3 is below the lossless 4"),
        (lambda d: d["crossbar"].update(fragment_size=12), "must divide the crossbar rows"),
        (lambda d: d["adc"].update(per_crossbar=0), "adc.per_crossbar"),
        (lambda d: d.update(encoding="offset"), "fragment_size must equal crossbar.rows"),
        (lambda d: d["adc"].update(anchor="nope"), "unknown ADC 'nope'"),
        (lambda d: d.update(components=["isaac-edram", "flux-capacitor"]), "flux-capacitor"),
        (lambda d: d["zero_skip"].update(rule="sometimes"), "zero_skip.rule"),
    ],
)
def test_invalid_preset_is_refused_naming_the_field(tmp_path: Path, change, message: str) -> None:
    data = _base()
    change(data)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_arch(_write(tmp_path, data))


def test_clipping_adc_allowed_when_asked(tmp_path: Path) -> None:
    data = _base()
    data["adc"].update(bits=4, allow_clipping=True)
    assert load_arch(_write(tmp_path, data)).adc_bits == 4


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ConfigError, match="forms-8"):
        load_arch("isaac-xl")


@pytest.mark.parametrize("name", ["forms-4", "forms-8", "forms-16", "forms-32", "isaac-ce", "prime"])
def test_sample_hold_and_adc_mux_count_every_fragment_output(name: str) -> None:
    arch = load_arch(name)
    xb = arch.crossbar
    # A polarized column holds 128 / R fragment outputs for its ADCs; offset/differential convert a
    # whole column (ISAAC Table I: 8 x 128 sample-and-hold per IMA of 8 crossbars).
    outputs = xb.rows // xb.fragment_size if arch.encoding.signs_per_fragment else 1
    expected = arch.organization.crossbars * xb.cols * outputs
    units = {i.role: i.units for i in chip_inventory(arch)}
    assert units["sample_hold"] == expected
    assert units["adc_mux"] == expected
    if name == "forms-8":
        assert units["sample_hold"] == arch.organization.crossbars * 128 * 16
