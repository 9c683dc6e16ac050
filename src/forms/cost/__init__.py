"""The cost model: area, power, energy, latency and throughput of a network on an architecture.

Data flow (docs/design.md, "Cost model"): :mod:`~forms.cost.components` (the component table, every
figure with its source) and :mod:`~forms.cost.arch` (architecture presets) -> chip inventory ->
:mod:`~forms.cost.layer_shapes` (each layer's matrix, output positions and kept rows/columns) ->
per-layer cost (crossbars, conversions, step time, actions) -> estimate (pipeline balance, FPS,
energy, efficiency) and comparison of several architectures.
"""
