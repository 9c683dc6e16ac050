"""FORMS: fine-grained polarized ReRAM-based in-situ computation, as a co-design toolkit.

Subpackages: ``nn`` (data, models, training), ``compress`` (ADMM polarization, quantization,
pruning), ``hw`` (crossbar mapping, bit-accurate simulation, cost model), ``report``.
Shared definitions: :mod:`forms.config`, :mod:`forms.geometry`, :mod:`forms.intweights`.
"""

__version__ = "0.1.0"
