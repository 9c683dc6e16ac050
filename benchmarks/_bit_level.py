"""Issue 20's bit-level benchmark: every bit and slice of one layer simulated, against its GEMM floor.

Workload (the one compared against CrossSim): rng = numpy.random.default_rng(0);
W = rng.integers(-127, 128, (1152, 128)); X = rng.integers(1, 256, (4096, 1152));
X[rng.random((4096, 1152)) < 0.5] = 0 (:func:`bench_zeroskip.workload`; polarized arrays give each
fragment of |W| one sign from the same generator). Each case forces every column through the
bit-level path (``force_bit_level``) and times one ``CrossbarArray.forward`` call (with its statistics,
and again without: ``collect=False``), alternating with its floor in the same process and thread
count: the ``input steps x slices`` float32 GEMMs of X @ W's shape the bit-level path must at least
perform (int8 GEMMs are not faster on this CPU), and for the polarized table engine the float64 GEMM
of X @ W. Medians of ``repeat`` alternating runs. Every case checks its output against the exact
integer product. The cases of issue 20's list have lossless ADCs: every conversion provably returns
its partial sum, so the GEMM engine adds the partial sums the shift-and-add adds with one place value
before converting them, by linearity: the row groups of a column and the two crossbar sets of a
differential pair (``ADC(P+) - ADC(P-) = X_t @ (W+_s - W-_s)`` when both conversions are the
identity) become one signed slice over all rows, several slices packed per float32 GEMM column
(``forms.sim.slice_lanes``; path "signed slices"). That shortcut is exact only because nothing can
clip; the two 6-bit ADC cases (offset and differential, not on the issue's list) clip, so there every
(step, row group, set, slice) partial sum is computed and converted on its own (path "every
conversion"): they show the cost of the honest conversion. The narrow-ADC case is checked against
the same chip's every-column bit-level run.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from _report import machine_line, stamp, update_section
from bench_zeroskip import workload
from forms.encoding import Encoding, lossless_adc_bits
from forms.sim.adc import Adc
from forms.sim.crossbar import CrossbarArray
from forms.sim.encodings import encode
from forms.sim.quant_inputs import digit_plan


@dataclass(frozen=True)
class Case:
    """One array of the workload: encoding, crossbar rows, cell and DAC bits, ADC, fragment size."""

    name: str
    encoding: Encoding
    rows: int
    cell_bits: int
    dac_bits: int
    adc_bits: int | None = None
    """None: the lossless width."""
    flipped: bool = False
    fragment: int = 0
    """Fragment size R (0: the crossbar rows)."""
    target: bool = True
    """True for the cases of issue 20's list (lossless ADCs); False for the clipping ones shown beside
    them."""


CASES = (
    Case("offset (ISAAC), lossless ADC", Encoding.OFFSET, 128, 2, 1),
    Case("offset (ISAAC), 8-bit ADC, flipped", Encoding.OFFSET, 128, 2, 1, 8, True),
    Case("offset (ISAAC), 6-bit ADC (clips)", Encoding.OFFSET, 128, 2, 1, 6, target=False),
    Case("differential, 128 rows", Encoding.DIFFERENTIAL, 128, 2, 1),
    Case("differential, 128 rows, 6-bit ADC (clips)", Encoding.DIFFERENTIAL, 128, 2, 1, 6, target=False),
    Case("PRIME-style differential, 256 rows, 4-bit cells, 3-bit DAC", Encoding.DIFFERENTIAL, 256, 4, 3),
    Case("polarized (FORMS) R = 8, table engine", Encoding.POLARIZED, 128, 2, 1, fragment=8),
)


def build(case: Case, weights: np.ndarray, signs: np.ndarray, force: bool = True) -> CrossbarArray:
    """The case's array of ``weights`` (fragment-polarized for the polarized encoding)."""
    r = case.fragment or case.rows
    w = torch.from_numpy(weights)
    if case.encoding is Encoding.POLARIZED:
        w = w.abs() * torch.from_numpy(signs[::r]).repeat_interleave(r, 0)
    w = w.unsqueeze(0)
    enc = encode(w, case.encoding, 8, case.cell_bits, case.rows, r, flipped=case.flipped)
    adc_bits = case.adc_bits or lossless_adc_bits(enc.group_rows, case.cell_bits, case.dac_bits, False)
    plan = digit_plan(8, case.dac_bits, False)
    return CrossbarArray(w, enc, Adc(adc_bits), plan, r, force_bit_level=force)


def alternate(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, the functions called in turn ``repeat`` times."""
    runs: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            runs[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in runs.items()}


def timed_once(fn: Callable[[], object]) -> float:
    """Seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def gemm_floor(x: torch.Tensor, w: torch.Tensor, count: int) -> Callable[[], None]:
    """``count`` GEMMs x @ w."""

    def run() -> None:
        for _ in range(count):
            torch.mm(x, w)

    return run


def engine_path(array: CrossbarArray) -> tuple[str, float]:
    """Which bit-level path the array takes and the X @ W-sized GEMM work it performs: the signed
    slices (every conversion provably the identity, :mod:`forms.sim.slice_lanes`) or every partial sum
    converted (GEMM engine), or the table engine (no GEMM of the layer's shape)."""
    enc, plan = array.encoded, array.plan
    if array.engine == "table":
        return "table", 0.0
    engine = array.gemm_engine()
    if engine.lanes is not None:
        return "signed slices", plan.steps * engine.lanes.levels.shape[-1] / enc.columns
    count = engine.packed.levels.shape[-1] if engine.packed is not None else engine.columns.count
    padded_rows = enc.row_groups * enc.group_rows / enc.rows
    return "every conversion", plan.steps * count * padded_rows / enc.columns


def bench_case(case: Case, repeat: int) -> dict[str, object]:
    """Times, floor and exactness of one case (module docstring)."""
    weights, inputs, signs = workload()
    start = time.perf_counter()
    array = build(case, weights, signs)
    codes = torch.from_numpy(inputs).to(torch.int32).unsqueeze(1)
    first = array(codes, checked=True)
    first_s = time.perf_counter() - start
    exact: bool | str = torch.equal(
        first[:, 0], torch.from_numpy(inputs).double() @ array.weight_int[0].double()
    )
    if array.stats.clipped:
        exact = f"clips ({array.stats.clipped} conversions)"
    enc, plan = array.encoded, array.plan
    x64, w64 = torch.from_numpy(inputs).double(), array.weight_int[0].double()
    x32, w32 = x64.float(), w64.float()
    count = plan.steps * enc.slices
    table_build_s = None
    if array.engine == "table":  # the first call's table build, on a fresh array of the same chip
        fresh = build(case, weights, signs)
        table_build_s = timed_once(fresh.pattern_table)
    times = alternate(
        {
            "bit_level": lambda: array(codes, checked=True),
            "no_stats": lambda: array(codes, checked=True, collect=False),
            "floor_f32": gemm_floor(x32, w32, count),
            "gemm_f64": gemm_floor(x64, w64, 1),
        },
        repeat,
    )
    path, engine_gemms = engine_path(array)
    return {
        "case": case.name,
        "target": case.target,
        "engine": array.engine,
        "path": path,
        "exact": exact,
        "gemms": count,
        "converted_gemms": plan.steps * enc.physical_columns * enc.row_groups * enc.group_rows / enc.rows,
        "engine_gemms": engine_gemms,
        "table_build_s": table_build_s,
        "first_call_s": first_s,
        **{f"{k}_s": v for k, v in times.items()},
        "ratio_floor": times["bit_level"] / times["floor_f32"],
        "ratio_f64": times["bit_level"] / times["gemm_f64"],
    }


def bench_narrow_adc(repeat: int, adc_bits: int = 4) -> dict[str, object]:
    """Polarized R = 8 with a narrow ADC: the default split (only columns that can clip bit-level) vs
    every column bit-level, same chip and inputs; outputs must agree."""
    weights, inputs, signs = workload()
    case = Case("polarized narrow ADC", Encoding.POLARIZED, 128, 2, 1, adc_bits, fragment=8)
    split, forced = build(case, weights, signs, force=False), build(case, weights, signs)
    codes = torch.from_numpy(inputs).to(torch.int32).unsqueeze(1)
    same = torch.equal(split(codes, checked=True), forced(codes, checked=True))
    times = alternate(
        {"split": lambda: split(codes, checked=True), "forced": lambda: forced(codes, checked=True)}, repeat
    )
    table = split.pattern_table()
    covered = table.output_columns if table is not None else None
    return {
        "adc_bits": adc_bits,
        "risky_per_row_group": split.risky_count,
        "table_columns": int(covered.numel()) if covered is not None else 128,
        "same": same,
        "engine": split.engine,
        **{f"{k}_s": v for k, v in times.items()},
    }


def run_workload(threads: list[int], repeat: int) -> list[dict[str, Any]]:
    """Every case and the narrow-ADC comparison at each thread count, with the load averages."""
    out = []
    for n in threads:
        torch.set_num_threads(n)
        load = os.getloadavg()[0]
        cases = [bench_case(case, repeat) for case in CASES]
        narrow = bench_narrow_adc(repeat)
        out.append({"threads": n, "cases": cases, "narrow": narrow, "load": (load, os.getloadavg()[0])})
        print(json.dumps(out[-1], default=str), flush=True)
    return out


def write_section(results: list[dict[str, Any]], command: str) -> None:
    """The ``sim-bit-level`` section of docs/benchmarks.md."""
    lines = [
        "## Simulator: bit-level path on issue 20's workload (`benchmarks/bench_sim.py --workload-only`)",
        "",
        f"Measured {stamp()} on {machine_line()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}. "
        f"Command: `{command}`. " + " ".join(str(__doc__).split("\n\n")[1].split("\n")),
        "",
        "Columns: *path*: the GEMM engine's signed slices (every conversion provably the identity) or "
        "every partial sum converted on its own, or the table engine; *floor GEMMs* = input steps x "
        "slices (the issue's floor); *converted GEMMs* = the X @ W-sized GEMM work of every converted "
        "column (steps x slices x crossbar sets x padded rows / rows), what converting every partial "
        "sum on its own must compute before any packing; *engine GEMMs* = the X @ W-sized GEMM work the "
        "path performs (packed columns, padded rows); *no stats s* = the same call without zero-skip "
        "statistics (``collect=False``); the ratios use the call with them.",
    ]
    for res in results:
        (l0, l1), n = res["load"], res["threads"]
        lines += [
            "",
            f"**torch threads = {n}** (1-min load average {l0:.1f} at start, {l1:.1f} at the end):",
            "",
            "| case | path | exact | floor GEMMs | converted GEMMs | engine GEMMs | bit-level s | "
            "no stats s | floor s | ratio | float64 X @ W s | ratio | first call s | table build s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["cases"]:
            build_s = f"{r['table_build_s']:.3f}" if r["table_build_s"] is not None else "-"
            engine_gemms = f"{r['engine_gemms']:.1f}" if r["engine_gemms"] else "-"
            lines.append(
                f"| {r['case']} | {r['path']} | {r['exact']} | {r['gemms']} | {r['converted_gemms']:.1f} | "
                f"{engine_gemms} | {r['bit_level_s']:.3f} | {r['no_stats_s']:.3f} | "
                f"{r['floor_f32_s']:.3f} | **{r['ratio_floor']:.2f}x** | {r['gemm_f64_s']:.4f} | "
                f"**{r['ratio_f64']:.1f}x** | {r['first_call_s']:.2f} | {build_s} |"
            )
        nr = res["narrow"]
        covers = (
            "the risky columns add to every layer column, so the table covers them all and no exact GEMM "
            "is added (a split table would be as wide and add a GEMM)"
            if nr["table_columns"] == 128
            else f"its table over {nr['table_columns']} of 128 layer columns, the rest in one exact GEMM"
        )
        lines += [
            "",
            f"Polarized R = 8 with a {nr['adc_bits']}-bit ADC (lossless needs 5): up to "
            f"{nr['risky_per_row_group']} of 512 converted columns per fragment can clip; {covers}: "
            f"{nr['split_s']:.3f} s by default vs {nr['forced_s']:.3f} s with every column bit-level; "
            f"outputs identical: {nr['same']}.",
        ]
    lines += ["", status_line(results)]
    update_section("sim-bit-level", "\n".join(lines))


def status_line(results: list[dict[str, Any]]) -> str:
    """Which of issue 20's cases meet its targets (GEMM engine: <= 1.5x the floor; polarized table
    engine: <= 5x the float64 GEMM) at each thread count, and the clipping cases' ratios beside them."""
    parts = []
    for res in results:
        met: list[str] = []
        missed: list[str] = []
        shown: list[str] = []
        for r in res["cases"]:
            if not r["target"]:
                shown.append(f"{r['case']} {r['ratio_floor']:.2f}x")
                continue
            ok = r["ratio_f64"] <= 5 if r["engine"] == "table" else r["ratio_floor"] <= 1.5
            (met if ok else missed).append(str(r["case"]))
        meets, misses = " / ".join(met) or "none", " / ".join(missed) or "none"
        parts.append(
            f"{res['threads']} thread(s): meets for {meets}; misses for {misses} (not targets, every "
            f"conversion: {' / '.join(shown) or 'none'})"
        )
    return (
        "Status (targets: bit-level <= 1.5x the floor GEMMs, polarized table engine <= 5x the float64 "
        "GEMM): " + "; ".join(parts) + "."
    )
