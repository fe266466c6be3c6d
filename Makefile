# `make demo`, `make test`, `make bench`: each creates .venv if missing, installs
# vggkit and every plugin distribution under plugins/ in editable mode with the
# tested constraints, and re-installs only when a setup file or the constraints change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
PLUGIN_SETUPS := $(sort $(wildcard plugins/*/setup.py))
PLUGIN_DIRS := $(patsubst %/setup.py,%,$(PLUGIN_SETUPS))
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -q -c $(CONSTRAINTS)

.PHONY: demo test bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(PY) setup.py $(CONSTRAINTS) $(PLUGIN_SETUPS)
	$(PIP_INSTALL) -e '.[dev]' $(addprefix -e ,$(PLUGIN_DIRS))
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed requirements/bench.txt
	$(PIP_INSTALL) -e '.[dev,bench]'
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements/bench.txt
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/vggkit demo

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

# `make bench ONLY="extract eval"` runs some benchmarks (RESULTS.md is then kept as it was);
# `make bench ONLY=cifar` the accuracy comparison on CIFAR-10 (docs/natural_images.md), not run by default
bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run_all.py $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) *.egg-info plugins/*/*.egg-info
