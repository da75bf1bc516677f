# Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-quick lint format demo bench clean

install: $(VENV)/.installed

# torch==2.13.0 first: it is a CPU wheel on local disk, while a bare `torch`
# requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

# The same suite less its end-to-end runs: a minute or two while working on one part.
test-quick: install
	$(BIN)/python -m pytest -q -m "not slow and not gpu and not e2e"

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	WANDB_MODE=offline $(BIN)/lora-sweep demo

bench: install
	$(BIN)/python benchmarks/rouge_eval.py
	$(BIN)/python benchmarks/training_padding.py
	$(BIN)/python benchmarks/agent_overhead.py

clean:
	rm -rf $(VENV) outputs wandb .lora-sweep
