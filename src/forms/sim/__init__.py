"""The bit-accurate simulator: a compressed network run on ReRAM crossbars, bit by bit.

Data flow (docs/design.md, "Simulator"): integer layers -> :mod:`~forms.sim.mapping` (where each layer
sits, per encoding) -> :mod:`~forms.sim.encodings` (cell levels and the signed place value of every
converted column, where the fragment sign is applied) -> :mod:`~forms.sim.crossbar` (one layer's
arrays, choosing among the exact GEMM path, the table engine and the GEMM engine) ->
:mod:`~forms.sim.simnet` (a model whose Conv2d/Linear layers run on those arrays) ->
:mod:`~forms.sim.simulate` (accuracy, clipping and zero-skip statistics on a test set, per chip in
:mod:`~forms.sim.runs`, as a :class:`~forms.sim.result.SimulationResult`).

Modules:

- ``spec``: :class:`SimSpec` and :class:`DeviceSpec`, the typed settings of one run.
- ``mapping``: crossbar tiles, fragments, utilization and lossless ADC width per layer.
- ``boundary``: the checks every engine entry point applies to weights and input codes.
- ``encodings``: the three sign encodings as cell levels.
- ``quant_inputs``: activation quantization and the digit plan of bit-serial inputs.
- ``bitplanes``: input bit planes and fragment patterns.
- ``adc``: the column ADC (clipping and quantization).
- ``devices``: programming variation, stuck cells, read noise.
- ``zeroskip``: counting the conversions zero-skipping removes.
- ``integer_gemm``: the exact GEMM path (``integer_matmul``) and the float32/float64 exactness rule.
- ``column_split``: a programmed chip's columns split into exact ones and risky (bit-level) ones.
- ``lookup``: per-pattern partial-sum tables for small fragments.
- ``table_engine``: the bit-level path through per-pattern tables (deterministic cells).
- ``gemm_engine``: the bit-level path as batched GEMMs (always with read noise).
- ``layer_stats``: per-layer conversion, clip and zero-skip counters.
- ``crossbar``: :class:`CrossbarArray`, one layer's arrays, choosing among the paths.
- ``simnet``: the simulated network.
- ``runs``: per-chip run records and the resumable ``runs.json``.
- ``result``: :class:`SimulationResult`, the typed ``metrics.json``.
- ``simulate``: the ``forms simulate`` entry point.
"""
