"""The bit-accurate simulator: a compressed network run on ReRAM crossbars, bit by bit.

Data flow (docs/design.md, "Simulator"): integer layers -> :mod:`~forms.sim.mapping` (where each layer
sits, per encoding) -> :mod:`~forms.sim.encodings` (cell levels and the signed place value of every
converted column, where the fragment sign is applied) -> :mod:`~forms.sim.crossbar` (one layer's
arrays: the exact GEMM path, the bit-level path, the lookup-table path) -> :mod:`~forms.sim.simnet`
(a model whose Conv2d/Linear layers run on those arrays) -> :mod:`~forms.sim.simulate` (accuracy,
clipping and zero-skip statistics on a test set).

Modules:

- ``spec``: :class:`SimSpec` and :class:`DeviceSpec`, the typed settings of one run.
- ``mapping``: crossbar tiles, fragments, utilization and lossless ADC width per layer.
- ``encodings``: the three sign encodings as cell levels.
- ``quant_inputs``: activation quantization and the digit plan of bit-serial inputs.
- ``bitplanes``: input bit planes and fragment patterns.
- ``adc``: the column ADC (clipping and quantization).
- ``devices``: programming variation, stuck cells, read noise.
- ``lookup``: per-pattern partial-sum tables for small fragments.
- ``zeroskip``: counting the conversions zero-skipping removes.
- ``crossbar``: one layer's crossbar arrays and their engines.
- ``simnet``: the simulated network; ``simulate``: the ``forms simulate`` entry point.
"""
