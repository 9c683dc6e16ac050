"""Build of the one compiled piece, the zero-skip counting pass (src/forms/sim/_zeroskip_native.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the package
still installs, and the simulator counts zero-skips with torch passes (forms.sim.zeroskip_native).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "forms.sim._zeroskip_native",
            ["src/forms/sim/_zeroskip_native.c"],
            depends=["src/forms/sim/_zeroskip_kernel.h"],
            extra_compile_args=["-O3", "-pthread", "-fno-strict-aliasing"],  # scratch words read as lanes
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
