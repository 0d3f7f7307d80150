# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo serve bench lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m attentive_sync.deployments.demo

serve: $(STAMP)
	$(BIN)/attentive-sync serve

lint: $(STAMP)
	$(BIN)/ruff check src flows tasks deployments tests benchmarks
	$(BIN)/ruff format --check src flows tasks deployments tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src flows tasks

clean:
	rm -rf $(VENV) .demo *.db *.db-wal *.db-shm
