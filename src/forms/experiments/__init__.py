"""End-to-end jobs built on the library: `forms demo`, `forms reproduce`, `forms sweep`.

They wire the stages together through library calls only (never through our own CLI):
nn (train) -> compress (ADMM) -> sim (simulate) -> cost (estimate) -> report.
"""
