# The README's two commands: `make demo` and `make test`. CI runs `make test` via .ci/run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck bench calibrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[openai]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/abllm demo --no-serve

test: $(DEV_STAMP)
	$(BIN)/ruff check src tests benches
	$(BIN)/ruff format --check src tests benches
	$(BIN)/mypy src
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benches
	$(BIN)/ruff format --check src tests benches

typecheck: $(DEV_STAMP)
	$(BIN)/mypy src

calibrate: $(DEV_STAMP)
	$(BIN)/python benches/calibrate.py --reps 1000

bench: $(DEV_STAMP)
	@# LiteLLM (the gateway's peer) goes in a venv of its own: it would downgrade openai here.
	@for b in benches/*.py; do \
	  args=""; [ "$$b" = benches/gateway.py ] && args="--install-litellm"; \
	  echo "== $$b $$args"; $(BIN)/python $$b $$args || exit 1; done

clean:
	rm -rf $(VENV) abllm-data .mypy_cache .ruff_cache .pytest_cache
