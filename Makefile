# Set-up and entry points. `make demo` and `make test` each do the whole set-up on a fresh
# machine (Python 3.11 venv, torch 2.13.0 CPU, the package with dev extras, the default data)
# and are quick no-ops for whatever is already in place.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
FORMS := $(VENV)/bin/forms
STAMP := $(VENV)/.installed
OUT ?= runs/demo

.PHONY: install data demo test test-slow lint bench system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# setup.py builds the compiled zero-skip pass (src/forms/sim/_zeroskip_native.c): a change to it
# reinstalls, which rebuilds the extension in place.
$(STAMP): pyproject.toml setup.py src/forms/sim/_zeroskip_native.c src/forms/sim/_zeroskip_kernel.h | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Datasets go to $FORMS_DATA (default ~/.cache/forms/data). The fetch checks what is there first
# (file headers and sizes) and only downloads what is missing, so this always runs and stays quick.
data: $(STAMP)
	$(FORMS) data fetch mnist fashion-mnist

system-deps:
	bash scripts/system-deps.sh

demo: install data
	$(FORMS) demo --out $(OUT)

test: install data system-deps
	$(PY) -m pytest

test-slow: install data system-deps
	$(PY) -m pytest -m slow

lint: install
	$(VENV)/bin/ruff check setup.py src tests benchmarks examples scripts
	$(VENV)/bin/ruff format --check setup.py src tests benchmarks examples scripts
	$(VENV)/bin/mypy

# Benchmarks (long: tens of minutes on 2 CPU cores); each script rewrites its own docs/benchmarks.md section.
bench: install data
	for b in train compress sim perf; do $(PY) benchmarks/bench_$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
