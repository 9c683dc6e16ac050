"""Sparse read-noise errors on a lossless chip: same statistics as per-cell noise, seeded, and dense
draws where they do not apply."""

from __future__ import annotations

import torch

from forms.encoding import lossless_adc_bits
from forms.sim.adc import Adc
from forms.sim.column_split import engine_layout
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.integer_gemm import integer_matmul
from forms.sim.quant_inputs import digit_plan
from forms.sim.spec import DeviceSpec

R, BITS = 8, 4
GEN = torch.Generator().manual_seed(0)
W = torch.randint(0, 16, (1, 16, 3), generator=GEN) * torch.tensor([1, -1]).repeat_interleave(R).view(
    1, 16, 1
)
X = torch.randint(0, 1 << BITS, (32, 1, 16), generator=GEN).to(torch.float64)


def make(read_noise: float, adc_bits: int | None = None) -> CrossbarArray:
    enc = encode(W, "polarized", 4, 2, 128, R)
    adc = Adc(adc_bits or lossless_adc_bits(enc.group_rows, 2, 1, False))
    devices = DeviceSpec.from_dict({"read_noise": read_noise})
    return CrossbarArray(W, enc, adc, digit_plan(BITS, 1, False), R, devices=devices)


def per_cell_reference(arr: CrossbarArray, draws: int, read_noise: float) -> torch.Tensor:
    """(draws, V, G, C) outputs with every cell's conductance perturbed independently at every read."""
    enc, plan = arr.encoded, arr.plan
    levels = engine_layout(enc.cells.to(torch.float64))  # (G*F, Rg, K); ideal cells: G = level
    digits = plan.digits(X.to(torch.int64)).to(torch.float64)  # (steps, V, G, rows)
    s, v = digits.shape[:2]
    d = digits.view(s, v, enc.groups * enc.row_groups, R)  # one group: fragments in order
    place = arr.signed_place_value.reshape(d.shape[2], -1).to(torch.float64)  # (G*F, Q*C)
    weights = plan.digit_weights()
    generator = torch.Generator().manual_seed(9)
    outs = []
    for start in range(0, draws, 500):  # 500 draws at a time bound the per-cell noise tensor
        shape = (min(500, draws - start), s, v, d.shape[2], R, levels.shape[-1])
        eps = torch.randn(shape, generator=generator, dtype=torch.float64)
        analog = torch.einsum("svfr,frk->svfk", d, levels) + read_noise * torch.einsum(
            "svfr,frk,nsvfrk->nsvfk", d, levels, eps
        )
        converted = analog.round().clamp(0, arr.adc.max_code)
        outs.append(torch.einsum("nsvfk,fk,s->nvk", converted, place, weights))  # per physical column
    out = torch.cat(outs)
    c = enc.columns
    return out.view(draws, v, -1, c).sum(2).unsqueeze(2)  # (draws, V, G=1, C)


def test_errors_match_per_cell_noise_in_mean_and_variance() -> None:
    """Over 4000 reads of 32 vectors, per output: means agree within 5 standard errors, and the
    variances summed over the outputs within 10% (about 10,000 conversion errors in each sample, so
    each sum's relative standard error is about 1-2%: the bound is over 5 of them)."""
    read_noise, draws = 0.037, 4000
    arr = make(read_noise)
    assert arr.engine == "events" and arr.noise_events is not None
    assert 0.04 < arr.noise_events.max_rate <= 0.05
    arr.program(1)
    sparse = torch.stack([arr(X) for _ in range(draws)])
    reference = per_cell_reference(arr, draws, read_noise)
    mean_gap = (sparse.mean(0) - reference.mean(0)).abs()
    stderr = ((sparse.var(0) + reference.var(0)) / draws).sqrt()
    assert bool((mean_gap <= 5 * stderr + 1e-9).all())
    var_sparse, var_reference = float(sparse.var(0).sum()), float(reference.var(0).sum())
    assert var_reference > 0 and abs(var_sparse / var_reference - 1) < 0.1


def test_errors_are_seeded_and_rare() -> None:
    arr = make(0.03)
    arr.program(5)
    a = torch.stack([arr(X) for _ in range(50)])
    arr.program(5)
    b = torch.stack([arr(X) for _ in range(50)])
    assert torch.equal(a, b)
    exact = integer_matmul(X, W)
    assert not torch.equal(a, exact.expand_as(a))  # some reads err
    assert float((a != exact).float().mean()) < 0.5


def test_dense_draws_where_sparse_errors_do_not_apply() -> None:
    assert make(0.2).engine == "gemm"  # error rate per conversion above the limit
    assert make(0.02, adc_bits=3).engine in ("gemm", "table")  # columns may clip
    assert make(0.02, adc_bits=3).noise_events is None
