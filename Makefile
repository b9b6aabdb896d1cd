# Everything creates .venv on first use; nothing needs to be installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test chaos lint typecheck bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/failover demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not chaos"

# Fault injection on a fleet of worker processes with its own redis-server (about 30 s).
chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos -s tests/test_fleet_chaos.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tests/typing

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The docs site with the API reference, rebuilt on every save: http://127.0.0.1:8000
docs: $(STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) build dist site
