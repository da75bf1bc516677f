# Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-quick lint format docs demo bench bench-gpu clean

install: $(VENV)/.installed

# torch==2.13.0 first: it is a CPU wheel on local disk, while a bare `torch`
# requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The suite runs on pytest-xdist workers, one more than there are cores: the end-to-end tests spend
# part of their time waiting (heartbeat timeouts, programs that sleep between steps), and the extra
# worker keeps the cores busy meanwhile. A test module goes to one worker whole, so its module
# fixtures (a reference run, a whole sweep) are built once; modules go out in collection order,
# which puts those with end-to-end tests first (tests/conftest.py), so the long ones start early.
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
XDIST := -n $(WORKERS) --dist loadfile --no-loadscope-reorder

test: install
	$(BIN)/python -m pytest -q $(XDIST)

# The same suite less its end-to-end runs: under a minute, while working on one part.
test-quick: install
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not gpu and not e2e"

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The reference sections of docs/*.md (trial parameters, command options), written from the code;
# tests/test_docs.py fails when they are out of date.
docs: install
	$(BIN)/python docs/reference.py

demo: install
	WANDB_MODE=offline $(BIN)/lora-sweep demo

bench: install
	$(BIN)/python benchmarks/rouge_eval.py
	$(BIN)/python benchmarks/rouge_aggregate.py
	$(BIN)/python benchmarks/training_padding.py
	$(BIN)/python benchmarks/agent_overhead.py
	$(BIN)/python benchmarks/time_to_answer.py

# One prepared run on a CUDA machine, about 8 minutes (docs/performance.md); tests run its --dry-run.
bench-gpu: install
	$(BIN)/python benchmarks/gpu_sweep.py

clean:
	rm -rf $(VENV) outputs wandb .lora-sweep
