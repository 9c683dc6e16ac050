"""FORMS: fine-grained polarized ReRAM-based in-situ computation, as a co-design toolkit.

Subpackages, in the order data flows through them (docs/design.md): ``nn`` (data, models,
training), ``compress`` (ADMM polarization, quantization, pruning), ``sim`` (crossbar mapping and
bit-accurate simulation), ``cost`` (area, power, energy, throughput), ``report``; ``experiments``
and ``cli`` on top. Shared definitions: :mod:`forms.config`, :mod:`forms.geometry`,
:mod:`forms.encoding`, :mod:`forms.intweights`, :mod:`forms.io`.
"""

__version__ = "0.1.0"
