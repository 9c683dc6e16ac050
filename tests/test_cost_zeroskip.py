"""Zero-skip savings at every level: conversions, crossbar reads, row drivers (hand cases, properties)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.cost.activity import OLD_METRICS_NOTE, SkipFractions, activity_from_metrics
from forms.cost.arch import ArchSpec, load_arch
from forms.cost.estimate import estimate
from forms.cost.layer_shapes import LayerShape, ModelShapes, Workload
from forms.geometry import LayerGeometry

ROWS, COLS, STEPS, R = 128, 32, 16, 8
"""One layer of 128 rows x 32 weights: on forms-8 one crossbar (32 weights x 4 cells = 128 columns),
16 fragments of 8 rows per column, 16 one-bit input steps, one output position."""


def _layer_workload() -> Workload:
    geom = LayerGeometry("fc", "conv", (COLS, ROWS, 1, 1), 1, ROWS, COLS)
    return Workload(ModelShapes((1, 1, 1), (LayerShape(geom, 1, ROWS, COLS, ROWS, COLS),), 0))


def _arch(saves: list[str], rule: str = "bitplane", per_crossbar: float = 4.0) -> ArchSpec:
    base = load_arch("forms-8")
    return base.replace(
        zero_skip=base.zero_skip.replace(rule=rule, saves=saves),
        adc=base.adc.replace(per_crossbar=per_crossbar),
    )


def _bitplane_counts(digits: np.ndarray) -> dict[str, int]:
    """The simulator's counts for one crossbar by their definition (the bitplane rule): a fragment is
    converted at a step unless its R digits are all zero; the crossbar is read unless every fragment is
    idle; a row driver acts for each non-zero digit. ``digits`` is (rows, steps)."""
    busy = digits.reshape(ROWS // R, R, STEPS).any(axis=1)  # (fragments, steps)
    cells = COLS * 4
    return {
        "conversions_total": busy.size * cells,
        "conversions_skipped_bitplane": int((~busy).sum()) * cells,
        "conversions_skipped_leading": 0,
        "reads_total": STEPS,
        "reads_skipped_bitplane": int((~busy.any(axis=0)).sum()),
        "reads_skipped_leading": 0,
        "input_digits_total": digits.size,
        "input_digits_nonzero": int(np.count_nonzero(digits)),
    }


def _costed(digits: np.ndarray, saves: list[str]):
    act = activity_from_metrics({"zero_skip": {"fc": _bitplane_counts(digits)}}, "bitplane", "hand case")
    return estimate(_arch(saves), _layer_workload(), SkipFractions(act)).layers[0]


def test_every_fragment_idle_at_a_bit_saves_a_read_cycle() -> None:
    digits = np.ones((ROWS, STEPS), dtype=int)
    digits[:, 3] = 0  # bit 3: every fragment of the crossbar idle
    layer = _costed(digits, ["conversions", "reads"])
    assert layer.crossbars == 1
    assert layer.read_skip_fraction == pytest.approx(1 / STEPS)
    assert layer.actions["crossbar"] == pytest.approx(STEPS - 1)
    assert layer.actions["input_register"] == layer.actions["output_register"] == pytest.approx(STEPS - 1)
    assert layer.conversions == pytest.approx((STEPS - 1) * (ROWS // R) * COLS * 4)


def test_half_the_fragments_idle_saves_conversions_only() -> None:
    digits = np.ones((ROWS, STEPS), dtype=int)
    digits[: ROWS // 2, 3] = 0  # bit 3: fragments 0..7 idle, 8..15 busy
    layer = _costed(digits, ["conversions", "reads"])
    assert layer.read_skip_fraction == 0
    assert layer.actions["crossbar"] == pytest.approx(STEPS)
    full = STEPS * (ROWS // R) * COLS * 4
    assert layer.conversions == pytest.approx(full - (ROWS // R // 2) * COLS * 4)


def test_driver_activity_counts_the_nonzero_digits_when_drivers_are_saved() -> None:
    rng = np.random.default_rng(0)
    digits = (rng.random((ROWS, STEPS)) < 0.3).astype(int)
    with_drivers = _costed(digits, ["conversions", "drivers"])
    without = _costed(digits, ["conversions"])
    assert with_drivers.actions["dac"] == pytest.approx(np.count_nonzero(digits))
    assert without.actions["dac"] == pytest.approx(digits.size)
    assert without.driver_activity == 1.0


def test_savings_not_taken_cost_nothing_saved() -> None:
    digits = np.zeros((ROWS, STEPS), dtype=int)
    digits[0, :8] = 1
    layer = _costed(digits, [])
    assert (layer.skip_fraction, layer.read_skip_fraction, layer.driver_activity) == (0, 0, 1)


def test_read_bound_step_time_scales_with_the_reads_that_happen() -> None:
    # 16 ADCs per crossbar: 2048 conversions / (16 x 2.1 GS/s) = 61 ns < 100 ns read: read-bound.
    arch = _arch(["conversions", "reads"], per_crossbar=16.0)
    skip = SkipFractions(default=0.5, default_read=0.5)
    layer = estimate(arch, _layer_workload(), skip).layers[0]
    assert layer.bound == "read"
    assert layer.step_time_ns == pytest.approx(50.0)
    assert layer.layer_time_s == pytest.approx(STEPS * 50e-9)


def test_a_skipped_read_skips_its_conversions() -> None:
    layer = estimate(
        _arch(["reads"]), _layer_workload(), SkipFractions(default=0.0, default_read=0.25)
    ).layers[0]
    assert layer.skip_fraction == pytest.approx(0.25)


def test_metrics_without_read_counts_say_so() -> None:
    old = {"conversions_total": 100, "conversions_skipped_leading": 20, "conversions_skipped_bitplane": 30}
    act = activity_from_metrics({"zero_skip": {"fc": old}}, "leading", "old.json")
    assert OLD_METRICS_NOTE in act.source
    skip = SkipFractions(act).for_layer(_arch(["conversions", "reads", "drivers"], "leading").zero_skip, "fc")
    assert (skip.fraction, skip.read_fraction, skip.driver_activity) == (0.2, 0.0, 1.0)


@settings(max_examples=25, deadline=None)
@given(
    conv=st.floats(0, 0.95),
    read=st.floats(0, 0.95),
    more=st.floats(0, 0.95),
    per_crossbar=st.sampled_from([1.0, 4.0, 16.0]),
)
def test_more_skipping_never_lowers_fps_nor_raises_energy(
    conv: float, read: float, more: float, per_crossbar: float
) -> None:
    arch = _arch(["conversions", "reads"], per_crossbar=per_crossbar)
    workload = _layer_workload()
    base = estimate(arch, workload, SkipFractions(default=conv, default_read=read))
    more_conv = estimate(arch, workload, SkipFractions(default=max(conv, more), default_read=read))
    more_read = estimate(arch, workload, SkipFractions(default=conv, default_read=max(read, more)))
    for better in (more_conv, more_read):
        assert better.fps >= base.fps * (1 - 1e-12)
        dynamic = sum(v for k, v in better.breakdown["energy_j"].items() if k != "zero_skip_logic")
        base_dynamic = sum(v for k, v in base.breakdown["energy_j"].items() if k != "zero_skip_logic")
        assert dynamic <= base_dynamic * (1 + 1e-12)
