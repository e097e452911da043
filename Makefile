# Two commands: `make run` trains the default VAE, `make test` lints (ruff) and runs the test suite
# (on two cores with pytest-xdist, an idle worker taking tests queued for the other, listing its 25
# slowest tests).
# Both first make .venv (python3 -m venv leaves an existing one as it is; with CI=true it
# is emptied first, so CI starts from a fresh environment) and install pyrovae into it
# with its test extras. Every recipe calls the venv's python by path, since each recipe
# line runs in a shell of its own.
PYTHON3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_FLAGS := $(if $(filter true,$(CI)),--clear,)

.PHONY: setup run test

setup:
	$(PYTHON3) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"

# ARGS: extra flags for the training, e.g. make run ARGS="--epochs 10" (CI trains a short run this way)
run: setup
	$(PY) scripts/svi_train.py $(ARGS)

test: setup
	$(PY) -c 'import torch, pyro, torchvision; print("torch", torch.__version__, "| pyro", pyro.__version__, "| torchvision", torchvision.__version__)'
	$(PY) -m ruff check --no-cache pyrovae benchmarks scripts tests
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=25 tests
