"""The cost model: area, power, energy, latency and throughput of a network on an architecture.

Modules, in data-flow order (docs/design.md, "Cost model"):

- :mod:`~forms.cost.components`: the component table, every figure with its source; the ADC pricing rule.
- :mod:`~forms.cost.arch`: architecture specs and presets.
- :mod:`~forms.cost.layer_shapes`: each layer's matrix, output positions and kept rows/columns; the workload.
- :mod:`~forms.cost.fragment_use`: the rows each design keeps of a compressed layer (FORMS: whole fragments).
- :mod:`~forms.cost.activity`: measured or assumed zero-skip savings per layer (conversions, reads, drivers).
- :mod:`~forms.cost.measured_activity`: packaged simulator measurements per network and input mode.
- :mod:`~forms.cost.inventory`: every component of one chip.
- :mod:`~forms.cost.layer_cost`: per-layer crossbars, conversions, step time and action counts.
- :mod:`~forms.cost.pipeline`: layer replication over the chips; FPS and latency.
- :mod:`~forms.cost.energy`: actions and static power charged as energy per inference.
- :mod:`~forms.cost.estimate`: the estimate of one network on one architecture (estimate.json).
- :mod:`~forms.cost.compare`: several architectures side by side.
- :mod:`~forms.cost.optimize`: each architecture at its own optimum under a chip area or power bound.
- :mod:`~forms.cost.files`: estimate and comparison files.
"""
