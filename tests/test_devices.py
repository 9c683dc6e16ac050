"""Device non-idealities: seeded, statistically right, off by default, exactly corrected when ideal."""

from __future__ import annotations

import math

import pytest
import torch

from forms.encoding import lossless_adc_bits
from forms.errors import ConfigError
from forms.sim.adc import Adc
from forms.sim.crossbar import CrossbarArray
from forms.sim.devices import program_cells
from forms.sim.encodings import encode
from forms.sim.integer_gemm import integer_matmul
from forms.sim.quant_inputs import digit_plan
from forms.sim.spec import DeviceSpec, SimSpec


def spec(**kw: float) -> DeviceSpec:
    return DeviceSpec.from_dict(kw)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


CELLS = torch.randint(0, 4, (2, 3, 16, 50, 4), generator=gen(0))


def test_default_is_ideal() -> None:
    prog = program_cells(CELLS, 3, spec(), gen(1))
    assert prog.integral and torch.equal(prog.levels, CELLS.float())
    assert SimSpec.from_dict({}).devices.ideal


def test_variation_is_seeded_and_lognormal() -> None:
    s = spec(variation=0.1)
    a = program_cells(CELLS, 3, s, gen(5)).levels
    b = program_cells(CELLS, 3, s, gen(5)).levels
    c = program_cells(CELLS, 3, s, gen(6)).levels
    assert torch.equal(a, b) and not torch.equal(a, c)
    on = CELLS > 0
    log_ratio = torch.log(a[on].double() / CELLS[on].double())
    assert abs(float(log_ratio.mean())) < 0.01
    assert abs(float(log_ratio.std()) - 0.1) < 0.01
    assert torch.equal(a[~on], torch.zeros_like(a[~on]))  # ideal off state: zero stays zero


def test_on_off_ratio_makes_off_cells_vary() -> None:
    a = program_cells(CELLS, 3, spec(variation=0.2, on_off_ratio=10.0), gen(2)).levels
    assert float(a[CELLS == 0].abs().max()) > 0  # G_off varies; the reference column removes only its mean


def test_stuck_at_rates() -> None:
    big = torch.full((200_000,), 1).reshape(1, 1, 1, -1, 1)
    levels = program_cells(big, 3, spec(stuck_at_0=0.05, stuck_at_1=0.1), gen(3)).levels
    assert abs(float((levels == 0).float().mean()) - 0.05) < 0.005
    assert abs(float((levels == 3).float().mean()) - 0.1) < 0.005


def test_stuck_rates_must_fit() -> None:
    with pytest.raises(ConfigError, match="exceeds 1"):
        spec(stuck_at_0=0.6, stuck_at_1=0.6)


def make(devices: DeviceSpec, w: torch.Tensor) -> CrossbarArray:
    enc = encode(w, "polarized", 6, 2, 16, 8)
    return CrossbarArray(w, enc, Adc(lossless_adc_bits(8, 2, 1)), digit_plan(8, 1, False), 8, devices)


W = torch.randint(0, 64, (1, 24, 6), generator=gen(7))
X = torch.randint(0, 256, (10, 1, 24), generator=gen(8)).double()


def test_finite_on_off_ratio_alone_is_corrected_exactly() -> None:
    arr = make(spec(on_off_ratio=5.0), W)
    arr.program(1)
    assert torch.equal(arr(X), integer_matmul(X, W))


def test_variation_perturbs_and_is_reproducible() -> None:
    arr = make(spec(variation=0.1), W)
    arr.program(11)
    y1 = arr(X)
    arr.program(11)
    y2 = arr(X)
    arr.program(12)
    y3 = arr(X)
    exact = integer_matmul(X, W)
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)
    rel = float((y1 - exact).norm() / exact.norm())
    assert 0 < rel < 0.2
    assert arr.stats.bit_level_calls > 0


def test_read_noise_differs_per_read_and_is_small() -> None:
    arr = make(spec(read_noise=0.2), W)
    arr.program(3)
    y1, y2 = arr(X), arr(X)
    exact = integer_matmul(X, W)
    assert not torch.equal(y1, y2)
    assert float((y1 - exact).norm() / exact.norm()) < 0.1


def test_stuck_faults_change_weights() -> None:
    arr = make(spec(stuck_at_1=0.2), W)
    arr.program(4)
    y = arr(X)
    assert float((y - integer_matmul(X, W)).sum()) > 0  # stuck-high cells only add current
    assert math.isfinite(float(y.sum()))
